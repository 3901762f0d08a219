/*
 * DTMF state machines offline: RFC 4733 payloads, the send schedule, the receive de-duplication,
 * in-band generation and detection, and the talk-off guard against synthesised speech.
 */
#include <flite.h>
#include <re.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "media/media_dtmf.h"
#include "media/media_g711.h"
#include "media/media_resample.h"
#include "../test.h"

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);

RV_TEST(media_dtmf_codes_and_payloads)
{
	ASSERT_EQ_INT(rv_dtmf_code('0'), 0);
	ASSERT_EQ_INT(rv_dtmf_code('9'), 9);
	ASSERT_EQ_INT(rv_dtmf_code('*'), 10);
	ASSERT_EQ_INT(rv_dtmf_code('#'), 11);
	ASSERT_EQ_INT(rv_dtmf_code('A'), 12);
	ASSERT_EQ_INT(rv_dtmf_code('d'), 15);
	ASSERT_EQ_INT(rv_dtmf_code('E'), -1);
	ASSERT_EQ_INT(rv_dtmf_code('\0'), -1);
	ASSERT_EQ_INT(rv_dtmf_digit(11), '#');
	ASSERT_EQ_INT(rv_dtmf_digit(16), 0);
	ASSERT_EQ_INT(rv_dtmf_digit(-1), 0);

	uint8_t b[4];
	struct rv_telev ev = {.event = 5, .end = true, .volume = 10, .duration = 0x1234}, back;
	rv_telev_encode(&ev, b);
	ASSERT_EQ_INT(b[0], 5);
	ASSERT_EQ_INT(b[1], 0x8a);
	ASSERT_EQ_INT(b[2], 0x12);
	ASSERT_EQ_INT(b[3], 0x34);
	ASSERT_OK(rv_telev_decode(b, 4, &back));
	ASSERT(back.event == 5 && back.end && back.volume == 10 && back.duration == 0x1234);
	ASSERT_EQ_INT(rv_telev_decode(b, 3, &back), -EBADMSG);
}

RV_TEST(media_dtmf_rx_one_report_per_press)
{
	struct rv_dtmf_rx rx = {0};
	struct rv_telev ev = {.event = 1, .duration = 160};
	/* Start, updates and three ends of one press: one digit. */
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 1000, &ev), '1');
	ev.duration = 320;
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 1000, &ev), 0);
	ev.end = true;
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 1000, &ev), 0);
	/* The same key again is a new timestamp: a second press. Its start was lost. */
	ev = (struct rv_telev){.event = 1, .duration = 480};
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 3000, &ev), '1');
	/* A late end packet of the first press is not a third one. */
	ev.end = true;
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 1000, &ev), 0);
	/* Non-DTMF events (16: flash) are never reported. */
	ev = (struct rv_telev){.event = 16, .duration = 160};
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 5000, &ev), 0);
	ev.event = 11;
	ASSERT_EQ_INT(rv_dtmf_rx_event(&rx, 5000, &ev), '#');
}

RV_TEST(media_dtmf_tx_event_schedule)
{
	struct rv_dtmf_tx *tx = NULL;
	ASSERT_OK(rv_dtmf_tx_alloc(&tx));
	ASSERT_EQ_INT(rv_dtmf_tx_queue(tx, "12x", 100), -EINVAL);
	ASSERT_EQ_INT(rv_dtmf_tx_queue(tx, "", 100), -EINVAL);
	ASSERT(!rv_dtmf_tx_busy(tx));
	ASSERT_OK(rv_dtmf_tx_queue(tx, "1#", 100));
	ASSERT(rv_dtmf_tx_busy(tx));

	/* Walk ticks: 5 packets growing 160..800 (the fifth is the first end), 2 more ends. */
	uint32_t tick_ts = 0xfffffe00u; /* wraps during the second digit */
	struct rv_telev ev;
	bool marker;
	uint32_t ts;
	int events = 0, audio_ticks_between = 0, seen_second = 0;
	uint32_t first_ts = 0, second_ts = 0;
	for (int tick = 0; tick < 40; tick++, tick_ts += RV_DTMF_TICK) {
		if (!rv_dtmf_tx_event(tx, tick_ts, &ev, &marker, &ts)) {
			if (events == 7 && !seen_second)
				audio_ticks_between++;
			continue;
		}
		events++;
		if (events <= 7) {
			ASSERT_EQ_INT(ev.event, 1);
			ASSERT_EQ_INT(marker, events == 1);
			if (events == 1)
				first_ts = ts;
			ASSERT_EQ_INT(ts, first_ts);
			ASSERT_EQ_INT(ev.duration, events < 5 ? events * 160 : 800);
			ASSERT_EQ_INT(ev.end, events >= 5);
		} else {
			ASSERT_EQ_INT(ev.event, 11);
			if (events == 8) {
				seen_second = 1;
				second_ts = ts;
				ASSERT(marker);
			}
			ASSERT_EQ_INT(ts, second_ts);
		}
	}
	ASSERT_EQ_INT(events, 14);
	/* The second digit starts 100 ms of RTP time after the first one's end. */
	ASSERT_EQ_INT((uint32_t)(second_ts - first_ts), 800 + 800);
	ASSERT_EQ_INT(audio_ticks_between, 3);
	ASSERT(!rv_dtmf_tx_busy(tx));

	/* The queue is capped, all or nothing. */
	char many[RV_DTMF_QUEUE + 2];
	memset(many, '5', sizeof(many) - 1);
	many[sizeof(many) - 1] = '\0';
	ASSERT_EQ_INT(rv_dtmf_tx_queue(tx, many, 0), -E2BIG);
	ASSERT(!rv_dtmf_tx_busy(tx));
	mem_deref(tx);
}

/* Run 8 kHz audio through a detector in 20 ms ticks; collect the digits. */
static size_t detect(const int16_t *pcm, size_t n, char *out, size_t cap)
{
	struct rv_dtmf_detect *d = NULL;
	size_t got = 0;
	if (rv_dtmf_detect_alloc(&d) != 0)
		return (size_t)-1;
	for (size_t i = 0; i + RV_DTMF_TICK <= n; i += RV_DTMF_TICK) {
		char c = rv_dtmf_detect_run(d, pcm + i, RV_DTMF_TICK);
		if (c && got + 1 < cap)
			out[got++] = c;
	}
	out[got] = '\0';
	mem_deref(d);
	return got;
}

/* Generate digits in-band with the sender, through a G.711 round trip as on the wire. */
static size_t gen_tones(const char *digits, uint32_t ms, enum rv_g711_law law, int16_t *pcm,
                        size_t cap)
{
	struct rv_dtmf_tx *tx = NULL;
	size_t n = 0;
	if (rv_dtmf_tx_alloc(&tx) != 0 || rv_dtmf_tx_queue(tx, digits, ms) != 0)
		return 0;
	uint8_t enc[RV_DTMF_TICK];
	/* Some silence first, then until the sender is idle, then some silence again. */
	memset(pcm, 0, cap * sizeof(*pcm));
	n = 5 * RV_DTMF_TICK;
	while (n + RV_DTMF_TICK <= cap && rv_dtmf_tx_tones(tx, pcm + n, RV_DTMF_TICK)) {
		rv_g711_encode(law, pcm + n, enc, RV_DTMF_TICK);
		rv_g711_decode(law, enc, pcm + n, RV_DTMF_TICK);
		n += RV_DTMF_TICK;
	}
	mem_deref(tx);
	n += 10 * RV_DTMF_TICK;
	return n < cap ? n : cap;
}

RV_TEST(media_dtmf_inband_generate_and_detect)
{
	static int16_t pcm[8000 * 10];
	char got[64];
	size_t n = gen_tones("0123456789*#ABCD", 0, RV_G711_ULAW, pcm, RV_ARRAY_LEN(pcm));
	ASSERT(n > 0);
	ASSERT_EQ_INT(detect(pcm, n, got, sizeof(got)), 16);
	ASSERT_EQ_STR(got, "0123456789*#ABCD");

	n = gen_tones("159", 40, RV_G711_ALAW, pcm, RV_ARRAY_LEN(pcm));
	ASSERT_EQ_INT(detect(pcm, n, got, sizeof(got)), 3);
	ASSERT_EQ_STR(got, "159");

	/* A repeated key is two presses (the gap separates them). */
	n = gen_tones("77", 60, RV_G711_ULAW, pcm, RV_ARRAY_LEN(pcm));
	ASSERT_EQ_INT(detect(pcm, n, got, sizeof(got)), 2);
	ASSERT_EQ_STR(got, "77");
}

RV_TEST(media_dtmf_inband_short_blips_ignored)
{
	/* Tone pairs of 5 to 23 ms are glitches, not key presses (ITU-T Q.24: reject < 23 ms). */
	static int16_t pcm[8000];
	char got[8];
	size_t n = gen_tones("5", 40, RV_G711_ULAW, pcm, RV_ARRAY_LEN(pcm));
	ASSERT(n > 0);
	for (size_t keep = 40; keep <= 184; keep += 8) {
		n = gen_tones("5", 40, RV_G711_ULAW, pcm, RV_ARRAY_LEN(pcm));
		size_t on = 0;
		for (size_t i = 0; i < n; i++) {
			if (pcm[i] != 0 && on >= keep)
				pcm[i] = 0; /* keep the first `keep` samples of tone only */
			else if (pcm[i] != 0)
				on++;
		}
		ASSERT_EQ_INT(on, keep);
		ASSERT_MSG(detect(pcm, n, got, sizeof(got)) == 0, "%zu ms tone taken as \"%s\"",
		           keep / 8, got);
	}
}

/* Synthesize text with a flite voice and bring it to 8 kHz through a G.711 round trip. */
static int16_t *speech_8k(cst_voice *v, const char *text, size_t *n_out)
{
	cst_wave *w = flite_text_to_wave(text, v);
	if (!w)
		return NULL;
	struct rv_resampler *rs = NULL;
	size_t n = (size_t)w->num_samples * 8000 / (size_t)w->sample_rate + 64, got = 0;
	int16_t *out = calloc(n, sizeof(*out));
	if (out && w->sample_rate != 8000) {
		if (rv_resampler_alloc((uint32_t)w->sample_rate, 8000, 5, &rs) != 0 ||
		    rv_resampler_run(rs, w->samples, (size_t)w->num_samples, out, n, &got) != 0)
			got = 0;
		mem_deref(rs);
	} else if (out) {
		memcpy(out, w->samples, (size_t)w->num_samples * sizeof(*out));
		got = (size_t)w->num_samples;
	}
	delete_wave(w);
	for (size_t i = 0; out && i < got; i++)
		out[i] = rv_g711_ulaw_decode(rv_g711_ulaw_encode(out[i]));
	*n_out = got;
	return out;
}

RV_TEST(media_dtmf_inband_speech_no_talk_off)
{
	static const char *texts[] = {
	    "Hello, thank you for calling. Please tell me briefly how I can help you today, "
	    "and I will connect you to the right person.",
	    "Eeeee. Ooooh. Mmmm. Ahhhh, yes, I see, interesting! One two three four five six "
	    "seven eight nine zero, star, pound.",
	    "The quick brown fox jumps over the lazy dog while singing la la la la in a high "
	    "pitched voice, beep beep boop.",
	};
	flite_init();
	cst_voice *voices[] = {register_cmu_us_slt(NULL), register_cmu_us_rms(NULL),
	                       register_cmu_us_kal(NULL)};
	size_t total = 0;
	for (size_t v = 0; v < RV_ARRAY_LEN(voices); v++) {
		ASSERT(voices[v] != NULL);
		for (size_t t = 0; t < RV_ARRAY_LEN(texts); t++) {
			size_t n = 0;
			char got[64];
			int16_t *pcm = speech_8k(voices[v], texts[t], &n);
			ASSERT(pcm != NULL && n > 8000);
			/* As synthesised, then 10 dB louder (clipping), as a hot microphone would.
			 */
			for (int gain = 1; gain <= 3; gain += 2) {
				for (size_t i = 0; gain > 1 && i < n; i++) {
					int32_t x = pcm[i] * gain;
					pcm[i] = (int16_t)(x > 32767    ? 32767
					                   : x < -32768 ? -32768
					                                : x);
				}
				size_t digits = detect(pcm, n, got, sizeof(got));
				if (digits != 0)
					free(pcm);
				ASSERT_MSG(digits == 0,
				           "voice %zu text %zu gain %d: talk-off \"%s\"", v, t,
				           gain, got);
			}
			free(pcm);
			total += n;
		}
	}
	/* The guard was exercised on a meaningful amount of speech. */
	ASSERT(total > 8000 * 30);
}
