/*
 * libFuzzer target: datagrams into an RTP stream through rv_media_stream_input(), the path the
 * socket handler takes (RTP with libre's header decoding, RFC 4733 telephone-events, RTCP
 * demultiplexed as with rtcp-mux), followed by media ticks that decode what the jitter buffer
 * holds and run the in-band DTMF detector on it.
 *
 * Input: a sequence of records, each [flags][len hi][len lo][len bytes]. Flags bit 0 picks
 * another source address (a stranger), bit 1 runs one 20 ms tick after the packet, bit 2 sends
 * a digit. The stream is started with PCMU and telephone-event 101 on every input.
 */
#include <re.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "media/media_audio.h"
#include "media/media_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static unsigned digits;

static void dtmf_h(char digit, void *arg)
{
	(void)arg;
	if (!((digit >= '0' && digit <= '9') || digit == '*' || digit == '#' ||
	      (digit >= 'A' && digit <= 'D'))) {
		fprintf(stderr, "check failed: digit %d reported\n", digit);
		abort();
	}
	digits++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (libre_init() != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rv_media_stream *ms;
	struct sa ip, peer, stranger;
	sa_set_str(&ip, "127.0.0.1", 0);
	sa_set_str(&peer, "127.0.0.1", 9);
	sa_set_str(&stranger, "127.0.0.2", 9);

	/* A fresh stream per input, so inputs do not depend on one another. */
	if (rv_media_stream_alloc(&ip, 43000, 43999, &ms) != 0)
		return 0;
	if (rv_media_stream_start(ms, &peer, 0, 101, dtmf_h, NULL) != 0)
		abort();
	size_t pos = 0;
	while (pos + 3 <= size) {
		uint8_t flags = data[pos];
		size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		rv_media_stream_input(ms, flags & 1 ? &stranger : &peer, data + pos, len);
		pos += len;
		if (flags & 4)
			(void)rv_audio_send_dtmf(rv_media_stream_audio(ms), "5", 40);
		if (flags & 2)
			rv_media_stream_tick(ms);
	}
	struct rv_media_stats st;
	rv_media_stream_stats(ms, &st);
	if (st.rx_packets > 100000)
		abort();
	ms = mem_deref(ms);
	return 0;
}
