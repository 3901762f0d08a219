/* Twilio Media Streams messages with jansson: see twilio_msg.h. */
#include "twilio/twilio_msg.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>

#include "core/util.h"

/* Our longest outgoing text: a media message of RV_TWMSG_MAX_AUDIO bytes, in base64. */
#define B64_MAX sodium_base64_ENCODED_LEN(RV_TWMSG_MAX_AUDIO, sodium_base64_VARIANT_ORIGINAL)

/* SIDs go into log lines, JSON we send and store rows: letters, digits, '-' and '_' only. */
static bool sid_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= RV_TWMSG_SID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Copy a string member into dst; -EINVAL when absent (if required), not a string or too long. */
static int get_str(json_t *obj, const char *key, char *dst, size_t cap, bool required)
{
	json_t *v = json_object_get(obj, key);
	dst[0] = '\0';
	if (!v)
		return required ? -EINVAL : 0;
	if (!json_is_string(v) || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -EINVAL;
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int get_sid(json_t *obj, const char *key, char *dst, bool required)
{
	if (get_str(obj, key, dst, RV_TWMSG_SID_MAX, required) != 0)
		return -EINVAL;
	if (dst[0] && !sid_ok(dst))
		return -EINVAL;
	return 0;
}

/* Twilio writes counters as strings ("sequenceNumber":"3"); accept integers too. */
static int get_count(json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	*out = -1;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0)
			return -EINVAL;
		*out = (int64_t)i;
		return 0;
	}
	if (json_is_string(v))
		return rv_parse_int64(json_string_value(v), 0, INT64_MAX, out) == 0 ? 0 : -EINVAL;
	return -EINVAL;
}

static int parse_start(json_t *root, struct rv_twmsg *m, const char **why)
{
	json_t *st = json_object_get(root, "start");
	*why = "bad_start";
	if (!json_is_object(st))
		return -EINVAL;
	if (!m->stream_sid[0] && get_sid(st, "streamSid", m->stream_sid, true) != 0)
		return -EINVAL;
	if (get_sid(st, "callSid", m->call_sid, true) != 0 ||
	    get_sid(st, "accountSid", m->account_sid, true) != 0)
		return -EINVAL;

	json_t *fmt = json_object_get(st, "mediaFormat");
	if (!json_is_object(fmt) ||
	    get_str(fmt, "encoding", m->encoding, sizeof(m->encoding), true))
		return -EINVAL;
	json_t *rate = json_object_get(fmt, "sampleRate");
	json_t *ch = json_object_get(fmt, "channels");
	if (!json_is_integer(rate) || !json_is_integer(ch))
		return -EINVAL;
	m->sample_rate = (int64_t)json_integer_value(rate);
	m->channels = (int64_t)json_integer_value(ch);

	json_t *tracks = json_object_get(st, "tracks");
	size_t i;
	json_t *t;
	if (tracks && !json_is_array(tracks))
		return -EINVAL;
	json_array_foreach(tracks, i, t)
	{
		const char *s = json_string_value(t);
		if (!s)
			return -EINVAL;
		if (strcmp(s, "inbound") == 0)
			m->track_inbound = true;
		else if (strcmp(s, "outbound") == 0)
			m->track_outbound = true;
	}
	if (!tracks)
		m->track_inbound = true;

	json_t *params = json_object_get(st, "customParameters");
	const char *key;
	json_t *val;
	if (params && !json_is_object(params))
		return -EINVAL;
	json_object_foreach(params, key, val)
	{
		if (m->nparams == RV_TWMSG_MAX_PARAMS) {
			*why = "too_many_params";
			return -EINVAL;
		}
		struct rv_twmsg_param *p = &m->params[m->nparams];
		if (strlen(key) >= sizeof(p->name) || !json_is_string(val) ||
		    json_string_length(val) >= sizeof(p->value) ||
		    strlen(json_string_value(val)) != json_string_length(val))
			return -EINVAL;
		rv_strlcpy(p->name, key, sizeof(p->name));
		rv_strlcpy(p->value, json_string_value(val), sizeof(p->value));
		m->nparams++;
	}
	return 0;
}

static int parse_media(json_t *root, struct rv_twmsg *m, uint8_t *audio, size_t audio_cap,
                       const char **why)
{
	json_t *md = json_object_get(root, "media");
	char track[16];
	*why = "bad_media";
	if (!json_is_object(md) || get_str(md, "track", track, sizeof(track), false) != 0 ||
	    get_count(md, "chunk", &m->chunk) != 0 ||
	    get_count(md, "timestamp", &m->timestamp_ms) != 0)
		return -EINVAL;
	m->outbound_track = strcmp(track, "outbound") == 0;
	json_t *pl = json_object_get(md, "payload");
	if (!json_is_string(pl))
		return -EINVAL;
	const char *b64 = json_string_value(pl);
	size_t b64_len = json_string_length(pl);
	/* Every 4 base64 characters carry 3 bytes; refuse before decoding what cannot fit. */
	size_t cap = audio_cap < RV_TWMSG_MAX_AUDIO ? audio_cap : RV_TWMSG_MAX_AUDIO;
	if (b64_len / 4 * 3 > cap + 2) {
		*why = "payload_too_large";
		return -EINVAL;
	}
	size_t n = 0;
	const char *end = NULL;
	if (b64_len == 0 || strlen(b64) != b64_len ||
	    sodium_base642bin(audio, cap, b64, b64_len, NULL, &n, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + b64_len || n == 0) {
		*why = "bad_base64";
		return -EINVAL;
	}
	m->audio_len = n;
	return 0;
}

static bool dtmf_digit_ok(char c)
{
	return (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D');
}

int rv_twmsg_parse(const char *text, size_t len, struct rv_twmsg *out, uint8_t *audio,
                   size_t audio_cap, const char **why)
{
	static const char *none = "";
	json_error_t jerr;
	json_t *root = NULL;
	int err = -EINVAL;
	const char *reason = none;

	memset(out, 0, sizeof(*out));
	out->seq = out->chunk = out->timestamp_ms = -1;
	if (!text) {
		reason = "json";
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		reason = "json";
		goto out;
	}
	if (!json_is_object(root)) {
		reason = "not_object";
		goto out;
	}
	json_t *ev = json_object_get(root, "event");
	const char *event = json_string_value(ev);
	if (!event) {
		reason = "no_event";
		goto out;
	}
	if (get_sid(root, "streamSid", out->stream_sid, false) != 0 ||
	    get_count(root, "sequenceNumber", &out->seq) != 0) {
		reason = "bad_sid";
		goto out;
	}

	if (strcmp(event, "connected") == 0) {
		out->type = RV_TWMSG_CONNECTED;
	} else if (strcmp(event, "start") == 0) {
		out->type = RV_TWMSG_START;
		if (parse_start(root, out, &reason) != 0)
			goto out;
	} else if (strcmp(event, "media") == 0) {
		out->type = RV_TWMSG_MEDIA;
		if (parse_media(root, out, audio, audio_cap, &reason) != 0)
			goto out;
	} else if (strcmp(event, "dtmf") == 0) {
		char digit[4];
		out->type = RV_TWMSG_DTMF;
		json_t *d = json_object_get(root, "dtmf");
		if (!json_is_object(d) || get_str(d, "digit", digit, sizeof(digit), true) != 0 ||
		    strlen(digit) != 1 || !dtmf_digit_ok(digit[0])) {
			reason = "bad_dtmf";
			goto out;
		}
		out->digit = digit[0];
	} else if (strcmp(event, "mark") == 0) {
		out->type = RV_TWMSG_MARK;
		json_t *mk = json_object_get(root, "mark");
		if (!json_is_object(mk) ||
		    get_str(mk, "name", out->mark, sizeof(out->mark), true)) {
			reason = "bad_mark";
			goto out;
		}
	} else if (strcmp(event, "stop") == 0) {
		out->type = RV_TWMSG_STOP;
		json_t *sp = json_object_get(root, "stop");
		/* The SIDs in stop only repeat the start's; a malformed one is not worth a fault.
		 */
		if (json_is_object(sp)) {
			if (get_sid(sp, "callSid", out->call_sid, false) != 0)
				out->call_sid[0] = '\0';
			if (get_sid(sp, "accountSid", out->account_sid, false) != 0)
				out->account_sid[0] = '\0';
		}
	} else {
		reason = "unknown_event";
		goto out;
	}
	err = 0;
out:
	json_decref(root);
	if (why)
		*why = err ? reason : none;
	return err;
}

const char *rv_twmsg_param(const struct rv_twmsg *m, const char *name)
{
	for (size_t i = 0; i < m->nparams; i++)
		if (strcmp(m->params[i].name, name) == 0)
			return m->params[i].value;
	return NULL;
}

static int dump(json_t *j, char *buf, size_t cap, size_t *len)
{
	if (!j)
		return -ENOMEM;
	size_t n = json_dumpb(j, buf, cap, JSON_COMPACT);
	json_decref(j);
	if (n == 0)
		return -ENOMEM;
	if (n >= cap)
		return -ENOSPC;
	buf[n] = '\0';
	*len = n;
	return 0;
}

int rv_twmsg_format_media(const char *stream_sid, const uint8_t *ulaw, size_t n, char *buf,
                          size_t cap, size_t *len)
{
	char b64[B64_MAX];
	if (!stream_sid || !ulaw || n == 0 || n > RV_TWMSG_MAX_AUDIO)
		return -EINVAL;
	sodium_bin2base64(b64, sizeof(b64), ulaw, n, sodium_base64_VARIANT_ORIGINAL);
	return dump(json_pack("{s:s, s:s, s:{s:s}}", "event", "media", "streamSid", stream_sid,
	                      "media", "payload", b64),
	            buf, cap, len);
}

int rv_twmsg_format_mark(const char *stream_sid, const char *name, char *buf, size_t cap,
                         size_t *len)
{
	if (!stream_sid || !name || !name[0] || strlen(name) >= RV_TWMSG_MARK_MAX)
		return -EINVAL;
	return dump(json_pack("{s:s, s:s, s:{s:s}}", "event", "mark", "streamSid", stream_sid,
	                      "mark", "name", name),
	            buf, cap, len);
}

int rv_twmsg_format_clear(const char *stream_sid, char *buf, size_t cap, size_t *len)
{
	if (!stream_sid)
		return -EINVAL;
	return dump(json_pack("{s:s, s:s}", "event", "clear", "streamSid", stream_sid), buf, cap,
	            len);
}
