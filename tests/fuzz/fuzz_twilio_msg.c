/*
 * libFuzzer target: one WebSocket text frame from Twilio through rv_twmsg_parse, the Media
 * Streams parser the /twilio/stream socket runs on every message. A refusal must name a reason;
 * an accepted message must hold only what the parser promises (valid SIDs, a decoded payload
 * within the buffer, a DTMF digit from the keypad), and a media payload must survive our own
 * formatter and parser unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "twilio/twilio_msg.h"

#include "fuzz_check.h"

static int sid_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t audio[RV_TWMSG_MAX_AUDIO], again[RV_TWMSG_MAX_AUDIO];
	static struct rv_twmsg m, m2;
	static char out[RV_TWMSG_MAX_AUDIO * 2];
	const char *why = NULL;

	rv_log_set_level(RV_LOG_ERROR + 1);
	if (rv_twmsg_parse((const char *)data, size, &m, audio, sizeof(audio), &why) != 0) {
		CHECK(why && *why);
		return 0;
	}
	CHECK(why && !*why);
	CHECK(m.type >= RV_TWMSG_CONNECTED && m.type <= RV_TWMSG_STOP);
	CHECK(strlen(m.stream_sid) < RV_TWMSG_SID_MAX && sid_ok(m.stream_sid));
	CHECK(sid_ok(m.call_sid) && sid_ok(m.account_sid));
	CHECK(m.nparams <= RV_TWMSG_MAX_PARAMS);
	for (size_t i = 0; i < m.nparams; i++)
		CHECK(rv_twmsg_param(&m, m.params[i].name) != NULL);
	if (m.type == RV_TWMSG_DTMF)
		CHECK(strchr("0123456789*#ABCD", m.digit) && m.digit);
	if (m.type == RV_TWMSG_MEDIA) {
		CHECK(m.audio_len > 0 && m.audio_len <= RV_TWMSG_MAX_AUDIO);
		size_t len = 0;
		CHECK(rv_twmsg_format_media("MZfuzz", audio, m.audio_len, out, sizeof(out), &len) ==
		      0);
		CHECK(rv_twmsg_parse(out, len, &m2, again, sizeof(again), &why) == 0);
		CHECK(m2.type == RV_TWMSG_MEDIA && m2.audio_len == m.audio_len);
		CHECK(memcmp(again, audio, m.audio_len) == 0);
	}
	return 0;
}
