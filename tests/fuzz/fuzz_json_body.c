/*
 * libFuzzer target: a request body through rv_http_json_body, the one JSON entry point of the
 * API (jansson json_loadb with the server's flags), then a walk over every value the way the
 * resource validators read them. On refusal the reply must be a well-formed 400 error body;
 * on success the document must survive a dump and reload unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "core/log.h"

#include "fuzz_check.h"

static size_t walk(json_t *v, int depth)
{
	size_t n = 1;
	const char *key;
	json_t *child;
	size_t i;

	CHECK(depth < 4096);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, key, child)
		{
			CHECK(key != NULL);
			n += walk(child, depth + 1);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, child) n += walk(child, depth + 1);
		break;
	case JSON_STRING:
		CHECK(json_string_value(v) != NULL);
		(void)json_string_length(v);
		break;
	case JSON_INTEGER:
		(void)json_integer_value(v);
		break;
	case JSON_REAL:
		(void)json_real_value(v);
		break;
	default:
		break;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		rv_log_set_level(RV_LOG_ERROR + 1);
		quiet = 1;
	}
	/* The server hands handlers a NUL-terminated copy of the body. */
	char *body = malloc(size + 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	struct rv_http_req req = {
	    .method = "POST", .path = "/api/x", .body = size ? body : NULL, .body_len = size};
	struct rv_http_resp resp = {0};
	json_t *doc = NULL;

	if (rv_http_json_body(&req, &resp, &doc) != 0) {
		CHECK(doc == NULL);
		CHECK(resp.status == 400);
		json_t *reply = json_loadb(resp.body, resp.body_len, 0, NULL);
		CHECK(reply != NULL);
		const char *code =
		    json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
		CHECK(code &&
		      (strcmp(code, "invalid_json") == 0 || strcmp(code, "invalid_body") == 0));
		json_decref(reply);
	} else {
		CHECK(json_is_object(doc));
		walk(doc, 0);
		char *text = json_dumps(doc, JSON_COMPACT);
		CHECK(text != NULL);
		json_t *again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		CHECK(again != NULL && json_equal(doc, again));
		json_decref(again);
		free(text);
		json_decref(doc);
	}
	free(resp.body);
	free(body);
	return 0;
}
