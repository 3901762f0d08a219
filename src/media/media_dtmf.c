/* DTMF: RFC 4733 events and in-band tones, sent and received. See media_dtmf.h. */
#include <errno.h>
#include <re.h>
#include <spandsp.h>
#include <string.h>

#include "core/util.h"
#include "media/media_dtmf.h"
#include "media/media_pcm.h"

static const char digit_map[] = "0123456789*#ABCD";

int rv_dtmf_code(char digit)
{
	if (digit >= 'a' && digit <= 'd')
		digit = (char)(digit - 'a' + 'A');
	if (digit == '\0')
		return -1;
	const char *p = strchr(digit_map, digit);
	return p ? (int)(p - digit_map) : -1;
}

char rv_dtmf_digit(int code)
{
	return code >= 0 && code < 16 ? digit_map[code] : 0;
}

int rv_telev_decode(const uint8_t *p, size_t len, struct rv_telev *out)
{
	if (!p || len < 4)
		return -EBADMSG;
	out->event = p[0];
	out->end = (p[1] & 0x80) != 0;
	out->volume = p[1] & 0x3f;
	out->duration = (uint16_t)(p[2] << 8 | p[3]);
	return 0;
}

void rv_telev_encode(const struct rv_telev *ev, uint8_t out[4])
{
	out[0] = ev->event;
	out[1] = (uint8_t)((ev->end ? 0x80 : 0) | (ev->volume & 0x3f));
	out[2] = (uint8_t)(ev->duration >> 8);
	out[3] = (uint8_t)(ev->duration & 0xff);
}

char rv_dtmf_rx_event(struct rv_dtmf_rx *rx, uint32_t ts, const struct rv_telev *ev)
{
	char digit = rv_dtmf_digit(ev->event);
	if (!digit)
		return 0;
	for (unsigned i = 0; i < rx->n; i++)
		if (rx->recent_ts[i] == ts && rx->recent_ev[i] == ev->event)
			return 0;
	rx->recent_ts[rx->next] = ts;
	rx->recent_ev[rx->next] = ev->event;
	rx->next = (rx->next + 1) % RV_ARRAY_LEN(rx->recent_ts);
	if (rx->n < RV_ARRAY_LEN(rx->recent_ts))
		rx->n++;
	return digit;
}

enum tx_state { TX_IDLE, TX_EVENT, TX_ENDING, TX_TONE };

struct tx_digit {
	uint8_t code;
	uint32_t samples; /* duration in 8 kHz samples, whole ticks */
};

struct rv_dtmf_tx {
	struct tx_digit q[RV_DTMF_QUEUE];
	size_t head, n;
	enum tx_state state;
	struct tx_digit cur;
	uint32_t ts;          /* RFC 4733: timestamp of the current event */
	uint32_t elapsed;     /* RFC 4733: duration sent so far */
	unsigned ends;        /* RFC 4733: end packets sent */
	bool have_end;        /* RFC 4733: end_ts is valid */
	uint32_t end_ts;      /* RFC 4733: where the previous event ended, for the gap */
	dtmf_tx_state_t *gen; /* in-band generator, created on first use */
	uint64_t started;     /* digits begun */
};

static void tx_destructor(void *arg)
{
	struct rv_dtmf_tx *tx = arg;
	if (tx->gen)
		dtmf_tx_free(tx->gen);
}

int rv_dtmf_tx_alloc(struct rv_dtmf_tx **out)
{
	struct rv_dtmf_tx *tx = mem_zalloc(sizeof(*tx), tx_destructor);
	if (!tx)
		return -ENOMEM;
	*out = tx;
	return 0;
}

int rv_dtmf_tx_queue(struct rv_dtmf_tx *tx, const char *digits, uint32_t duration_ms)
{
	size_t len = digits ? strlen(digits) : 0;
	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (rv_dtmf_code(digits[i]) < 0)
			return -EINVAL;
	if (len > RV_DTMF_QUEUE - tx->n)
		return -E2BIG;
	if (duration_ms == 0)
		duration_ms = RV_DTMF_DEFAULT_MS;
	if (duration_ms < RV_DTMF_MIN_MS)
		duration_ms = RV_DTMF_MIN_MS;
	if (duration_ms > RV_DTMF_MAX_MS)
		duration_ms = RV_DTMF_MAX_MS;
	uint32_t ticks = (duration_ms + RV_MEDIA_PTIME_MS - 1) / RV_MEDIA_PTIME_MS;
	for (size_t i = 0; i < len; i++) {
		struct tx_digit *d = &tx->q[(tx->head + tx->n) % RV_DTMF_QUEUE];
		d->code = (uint8_t)rv_dtmf_code(digits[i]);
		d->samples = ticks * RV_DTMF_TICK;
		tx->n++;
	}
	return 0;
}

uint64_t rv_dtmf_tx_started(const struct rv_dtmf_tx *tx)
{
	return tx ? tx->started : 0;
}

bool rv_dtmf_tx_busy(const struct rv_dtmf_tx *tx)
{
	return tx->n > 0 || tx->state != TX_IDLE;
}

static bool pop(struct rv_dtmf_tx *tx)
{
	if (tx->n == 0)
		return false;
	tx->cur = tx->q[tx->head];
	tx->head = (tx->head + 1) % RV_DTMF_QUEUE;
	tx->n--;
	tx->started++;
	return true;
}

bool rv_dtmf_tx_event(struct rv_dtmf_tx *tx, uint32_t tick_ts, struct rv_telev *ev, bool *marker,
                      uint32_t *ts)
{
	*marker = false;
	switch (tx->state) {
	case TX_IDLE:
		if (tx->n == 0)
			return false;
		/* Wrap-safe: the gap is measured in RTP time from the previous event's end. */
		if (tx->have_end && (int32_t)(tick_ts - tx->end_ts) <
		                        (int32_t)(RV_DTMF_GAP_MS * RV_DTMF_RATE / 1000))
			return false;
		pop(tx);
		tx->ts = tick_ts;
		tx->elapsed = 0;
		tx->ends = 0;
		tx->state = TX_EVENT;
		*marker = true;
		/* fall through */
	case TX_EVENT:
		tx->elapsed += RV_DTMF_TICK;
		if (tx->elapsed >= tx->cur.samples) {
			tx->elapsed = tx->cur.samples;
			tx->state = TX_ENDING;
		}
		break;
	case TX_ENDING:
	case TX_TONE:
		break;
	}
	*ev = (struct rv_telev){.event = tx->cur.code,
	                        .end = tx->state == TX_ENDING,
	                        .volume = 10,
	                        .duration = (uint16_t)tx->elapsed};
	*ts = tx->ts;
	if (tx->state == TX_ENDING && ++tx->ends >= RV_DTMF_END_PACKETS) {
		tx->state = TX_IDLE;
		tx->have_end = true;
		tx->end_ts = tx->ts + tx->cur.samples;
	}
	return true;
}

bool rv_dtmf_tx_tones(struct rv_dtmf_tx *tx, int16_t *pcm, size_t n)
{
	if (tx->state == TX_IDLE && tx->n == 0)
		return false;
	if (!tx->gen) {
		tx->gen = dtmf_tx_init(NULL);
		if (!tx->gen) {
			tx->n = 0;
			return false;
		}
	}
	size_t done = 0;
	while (done < n) {
		if (tx->state != TX_TONE) {
			if (!pop(tx))
				break;
			char d[2] = {rv_dtmf_digit(tx->cur.code), '\0'};
			/* The generator applies its timing when a digit starts: one digit at a
			 * time. */
			dtmf_tx_set_timing(tx->gen, (int)(tx->cur.samples / (RV_DTMF_RATE / 1000)),
			                   RV_DTMF_GAP_MS);
			dtmf_tx_put(tx->gen, d, 1);
			tx->state = TX_TONE;
		}
		int got = dtmf_tx(tx->gen, pcm + done, (int)(n - done));
		if (got > 0)
			done += (size_t)got;
		if (done < n)
			tx->state = TX_IDLE; /* tone and gap finished inside this tick */
	}
	if (done < n)
		memset(pcm + done, 0, (n - done) * sizeof(*pcm));
	return true;
}

struct rv_dtmf_detect {
	dtmf_rx_state_t *rx;
	char cur;      /* digit spandsp reports as on, 0 when none */
	bool reported; /* cur has been returned once */
};

static void detect_destructor(void *arg)
{
	struct rv_dtmf_detect *d = arg;
	if (d->rx)
		dtmf_rx_free(d->rx);
}

static void digits_h(void *arg, const char *digits, int len)
{
	/* Digits are taken from the realtime callback, which gives their timing. */
	(void)arg;
	(void)digits;
	(void)len;
}

static void tone_h(void *arg, int code, int level, int delay)
{
	struct rv_dtmf_detect *d = arg;
	(void)level;
	(void)delay;
	char c = code > 0 && code < 128 ? (char)code : 0;
	if (c == d->cur)
		return;
	d->cur = c;
	d->reported = false;
}

int rv_dtmf_detect_alloc(struct rv_dtmf_detect **out)
{
	struct rv_dtmf_detect *d = mem_zalloc(sizeof(*d), detect_destructor);
	if (!d)
		return -ENOMEM;
	d->rx = dtmf_rx_init(NULL, digits_h, d);
	if (!d->rx) {
		mem_deref(d);
		return -ENOMEM;
	}
	dtmf_rx_set_realtime_callback(d->rx, tone_h, d);
	/*
	 * Talk-off: no dial-tone filter (it widens the notch around 350/440 Hz), spandsp's
	 * standard twist limits (8 dB normal, 4 dB reverse), and a per-tone threshold of
	 * -32 dBm0 instead of spandsp's far more sensitive default: phones send -6 to -10 dBm0
	 * per tone, while quiet background speech is what triggers false digits.
	 */
	dtmf_rx_parms(d->rx, 0, 8, 4, -32);
	*out = d;
	return 0;
}

/*
 * Mean square of a tick below which no detectable tone pair can be present: -50 dBm0 (an RMS
 * of about 50), well under spandsp's per-tone threshold. Quiet ticks skip the detector, which
 * is most of a call's ticks; while a tone is on every tick is fed so its end is seen.
 */
#define QUIET_MEAN_SQUARE 2500

char rv_dtmf_detect_run(struct rv_dtmf_detect *d, const int16_t *pcm, size_t n)
{
	if (!d->cur) {
		int64_t e = 0;
		for (size_t i = 0; i < n; i++)
			e += (int32_t)pcm[i] * pcm[i];
		if (e < (int64_t)n * QUIET_MEAN_SQUARE)
			return 0;
	}
	dtmf_rx(d->rx, pcm, (int)n);
	if (!d->cur || d->reported)
		return 0;
	d->reported = true;
	return rv_dtmf_code(d->cur) >= 0 ? d->cur : 0;
}
