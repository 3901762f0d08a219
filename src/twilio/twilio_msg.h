/*
 * Twilio Media Streams messages: the JSON text frames of the /twilio/stream WebSocket. Twilio
 * sends connected, start, media, dtmf, mark and stop; we send media, mark and clear.
 *
 * Plain C on purpose: the parser uses jansson, the socket code uses libre, and the two
 * libraries' headers clash (JSON_* names), so neither appears here. Pure functions, safe on any
 * thread; nothing here allocates memory the caller must free.
 */
#ifndef RV_TWILIO_MSG_H
#define RV_TWILIO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RV_TWMSG_SID_MAX         64 /* SIDs are 34 characters; anything this long is refused */
#define RV_TWMSG_MAX_PARAMS      16 /* custom parameters kept from a start message */
#define RV_TWMSG_PARAM_NAME_MAX  64
#define RV_TWMSG_PARAM_VALUE_MAX 256
#define RV_TWMSG_MARK_MAX        64
/* Largest media payload accepted in one message, decoded: one second of 8 kHz μ-law. Twilio
 * sends 20 ms (160 bytes). */
#define RV_TWMSG_MAX_AUDIO 8000

enum rv_twmsg_type {
	RV_TWMSG_CONNECTED = 1,
	RV_TWMSG_START,
	RV_TWMSG_MEDIA,
	RV_TWMSG_DTMF,
	RV_TWMSG_MARK,
	RV_TWMSG_STOP,
};

struct rv_twmsg_param {
	char name[RV_TWMSG_PARAM_NAME_MAX];
	char value[RV_TWMSG_PARAM_VALUE_MAX];
};

/* One message from Twilio. Only the fields of its type are filled; the rest are zero. */
struct rv_twmsg {
	enum rv_twmsg_type type;
	char stream_sid[RV_TWMSG_SID_MAX]; /* "" when the message carries none (connected) */
	int64_t seq;                       /* sequenceNumber, -1 when absent */

	/* start */
	char account_sid[RV_TWMSG_SID_MAX];
	char call_sid[RV_TWMSG_SID_MAX];
	char encoding[32]; /* mediaFormat.encoding, e.g. "audio/x-mulaw" */
	int64_t sample_rate, channels;
	bool track_inbound, track_outbound;
	struct rv_twmsg_param params[RV_TWMSG_MAX_PARAMS]; /* customParameters */
	size_t nparams;

	/* media: the decoded payload goes into the caller's buffer */
	bool outbound_track;  /* media.track is "outbound" (we ignore our own echo) */
	int64_t chunk;        /* -1 when absent */
	int64_t timestamp_ms; /* -1 when absent */
	size_t audio_len;

	/* dtmf */
	char digit;

	/* mark */
	char mark[RV_TWMSG_MARK_MAX];
};

/*
 * Parse one text frame. Media payloads are base64-decoded into audio (audio_cap bytes, at
 * least RV_TWMSG_MAX_AUDIO to accept every valid message). Returns 0 and fills *out, or
 * -EINVAL with *why set to a short fixed reason usable as a metric label ("json",
 * "not_object", "no_event", "unknown_event", "bad_sid", "bad_start", "too_many_params",
 * "bad_media", "bad_base64", "payload_too_large", "bad_dtmf", "bad_mark"); *out is then
 * unspecified.
 */
int rv_twmsg_parse(const char *text, size_t len, struct rv_twmsg *out, uint8_t *audio,
                   size_t audio_cap, const char **why);

/* Value of custom parameter `name` in a parsed start message, or NULL. Borrowed from m. */
const char *rv_twmsg_param(const struct rv_twmsg *m, const char *name);

/*
 * Messages to Twilio, written as compact JSON into buf (cap bytes, NUL-terminated). Each
 * returns 0 and sets *len (without the NUL), -ENOSPC when buf is too small, -EINVAL for bad
 * arguments (n == 0 or above RV_TWMSG_MAX_AUDIO, an empty or over-long name), -ENOMEM.
 *   media: {"event":"media","streamSid":S,"media":{"payload":BASE64(ulaw)}}
 *   mark:  {"event":"mark","streamSid":S,"mark":{"name":NAME}}
 *   clear: {"event":"clear","streamSid":S}
 */
int rv_twmsg_format_media(const char *stream_sid, const uint8_t *ulaw, size_t n, char *buf,
                          size_t cap, size_t *len);
int rv_twmsg_format_mark(const char *stream_sid, const char *name, char *buf, size_t cap,
                         size_t *len);
int rv_twmsg_format_clear(const char *stream_sid, char *buf, size_t cap, size_t *len);

#endif
