/* The JSON form of a call's outcome: see sip_report.h. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "sip/sip_report.h"

static int set(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

int rv_call_report_json(const struct rv_call_report *r, char **out)
{
	int bad = 0;
	char *text = NULL;
	json_t *o = json_object();
	json_t *rtp = json_object();
	if (!o || !rtp) {
		bad = 1;
		goto out;
	}
	bad |= set(o, "uri", str_or_null(r->uri));
	if (r->error) {
		bad |= set(o, "disposition", json_string("failed"));
		bad |= set(o, "sip_status", json_integer(0));
		bad |= set(o, "cause", json_string("error"));
		bad |= set(o, "error", json_string(r->error));
		goto dump;
	}
	bad |= set(o, "call_id", str_or_null(r->call_id));
	bad |= set(o, "disposition", str_or_null(r->disposition));
	bad |= set(o, "sip_status", json_integer(r->sip_status));
	bad |= set(o, "last_provisional", json_integer(r->last_provisional));
	bad |= set(o, "cause", str_or_null(r->cause));
	bad |= set(o, "hangup_by", str_or_null(r->hangup_by));
	bad |= set(o, "codec", str_or_null(r->codec));
	bad |= set(o, "early_media", json_boolean(r->early_media));
	bad |= set(o, "ring_ms", json_integer(r->ring_ms));
	bad |= set(o, "setup_ms", json_integer(r->setup_ms));
	bad |= set(o, "talk_ms", json_integer(r->talk_ms));
	bad |= set(o, "duration_ms", json_integer(r->duration_ms));
	bad |= set(o, "prompt_played_ms", json_integer(r->prompt_played_ms));
	bad |= set(o, "recording", str_or_null(r->recording));
	bad |= set(rtp, "rx_packets", json_integer((json_int_t)r->rx_packets));
	bad |= set(rtp, "tx_packets", json_integer((json_int_t)r->tx_packets));
	bad |= set(rtp, "lost", json_integer((json_int_t)r->lost));
	bad |= set(rtp, "frames_received", json_integer((json_int_t)r->frames_received));
	bad |= set(rtp, "jitter_ms", json_real(r->jitter_ms));
	bad |= set(rtp, "rx_bad_source", json_integer((json_int_t)r->rx_bad_source));
	bad |= set(rtp, "rx_malformed", json_integer((json_int_t)r->rx_malformed));
	bad |= json_object_set(o, "rtp", rtp);
dump:
	if (!bad)
		text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(rtp);
	json_decref(o);
	if (bad || !text)
		return -ENOMEM;
	*out = text;
	return 0;
}
