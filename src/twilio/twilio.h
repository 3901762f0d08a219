/*
 * The Twilio channel: calls whose audio travels over Twilio Media Streams instead of SIP/RTP.
 *
 * - POST /twilio/voice (twilio_api.c): Twilio's voice webhook. Checks X-Twilio-Signature and
 *   the AccountSid, checks the outbound row it names (inbound rows are written by the
 *   telephony service when the stream attaches) and answers with TwiML
 *   <Connect><Stream url="wss://…/twilio/stream"> carrying the call's parameters.
 * - POST /twilio/status: Twilio's status callback for calls we placed; updates the row.
 * - The /twilio/stream WebSocket (twilio_stream.c) on its own listener (twilio.stream_listen)
 *   on the media loop: the Media Streams protocol, feeding the same per-call audio interface as
 *   RTP, attached to the telephony service with rv_tel_call_attach.
 * - Outbound calls through the REST API (twilio_rest.c): rv_tel_dial with trunk "twilio" ends
 *   in rv_twilio_dial through the dialer hook rv_twilio_start registers.
 *
 * See docs/adr/0011-twilio.md.
 */
#ifndef RV_TWILIO_H
#define RV_TWILIO_H

#include <stddef.h>
#include <stdint.h>

struct rv_app;
struct rv_tel;
struct rv_twilio;

/*
 * Start the channel inside `revovoice serve`: the WebSocket listener on twilio.stream_listen
 * (on the service's media loop), the webhooks' state, and the Twilio dialer of `tel`. With
 * twilio.account_sid empty the channel is off: nothing listens, the webhooks answer 503 and
 * 0 is returned. Both arguments are borrowed and must outlive rv_twilio_stop. Only one may run
 * per process. Returns 0 and sets *out, or a negative errno (e.g. the port is taken) with a log
 * line; nothing is left running then.
 */
int rv_twilio_start(struct rv_app *app, struct rv_tel *tel, struct rv_twilio **out);

/*
 * Stop: the webhooks answer 503 from now on, every open stream is closed (its call ends with
 * cause "shutdown") and the listener stops. Call it before rv_tel_stop (it needs the loop).
 * Blocks until the loop has done it. NULL is a no-op.
 */
void rv_twilio_stop(struct rv_twilio *tw);

struct rv_twilio_dial {
	int64_t call_id;  /* the calls row (channel twilio, outbound) the call belongs to */
	const char *to;   /* E.164 number, or a "sip:" / "client:" address Twilio accepts */
	const char *from; /* our Twilio number or verified caller ID */
};

/*
 * Ask Twilio to place the call: POST {api_base}/2010-04-01/Accounts/{sid}/Calls.json with
 * HTTP Basic auth, Url = public_url/twilio/voice?call_id=N and StatusCallback =
 * public_url/twilio/status?call_id=N. Blocking (libcurl, 5 s to connect, 15 s in all): call it
 * on a control-plane thread, never on the media loop. On success stores the Call SID on the
 * row, copies it into sid (sidlen bytes; may be NULL) and returns 0. On failure returns
 * -EINVAL (bad arguments or twilio.* settings), -EACCES (Twilio refused our credentials),
 * -EPERM (Twilio refused the call, e.g. an unverified number), -EAGAIN (rate limited), -EIO
 * (a server error or an answer we cannot read), -ETIMEDOUT or -ECONNREFUSED, and writes a
 * sentence with Twilio's code, message and more_info into err. The row is left to the caller.
 */
int rv_twilio_dial(struct rv_app *app, const struct rv_twilio_dial *d, char *sid, size_t sidlen,
                   char *err, size_t errlen);

#endif
