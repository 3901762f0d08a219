/*
 * libFuzzer target: one text message from a Deepgram-shaped live STT server through
 * rv_stt_deepgram_parse, which a speech worker runs on every message of the stream. Anything
 * that is not a well-formed message must be refused with -EPROTO; an accepted Results message
 * must give a final or interim result whose text is normalised and capped, with at most
 * RV_STT_MAX_WORDS words, each inside a sane time range.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "speech/stt_int.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rv_stt_result *res = NULL;
	bool fin = false;
	double end_s = -1;
	int kind = -1;

	rv_log_set_level(RV_LOG_ERROR + 1);
	int err = rv_stt_deepgram_parse((const char *)data, size, 1.5, &kind, &fin, &end_s, &res);
	if (err) {
		CHECK(err == -EPROTO);
		CHECK(res == NULL);
		return 0;
	}
	CHECK(end_s >= 0 && end_s < 86400);
	if (kind == 0) {
		CHECK(res == NULL);
		return 0;
	}
	CHECK(kind == 1 || kind == 2);
	CHECK(res && res->text);
	CHECK(res->is_final == (kind == 2));
	CHECK(strlen(res->text) < RV_STT_MAX_TEXT);
	for (const char *p = res->text; *p; p++)
		CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '\'' ||
		      (*p == ' ' && p[1] && p[1] != ' ' && p != res->text));
	CHECK(res->nwords <= RV_STT_MAX_WORDS);
	for (size_t i = 0; i < res->nwords; i++) {
		CHECK(res->words[i].word);
		CHECK(res->words[i].start_ms <= 3600u * 1000 &&
		      res->words[i].end_ms <= 3600u * 1000);
	}
	CHECK(res->conf >= 0 && res->conf <= 1);
	rv_stt_result_free(res);
	return 0;
}
