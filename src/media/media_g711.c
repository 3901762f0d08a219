/* G.711 μ-law / A-law tables: see media_g711.h. */
#include <errno.h>
#include <pthread.h>

#include "media/media_g711.h"

static int16_t ulaw_dec[256], alaw_dec[256];
static uint8_t ulaw_enc[1 << 14]; /* indexed by (pcm >> 2) + 8192 */
static uint8_t alaw_enc[1 << 13]; /* indexed by (pcm >> 3) + 4096 */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* The reference algorithms (ITU-T G.711 / the classic Sun g711.c arithmetic), used only to
 * fill the tables. They work on the same truncated magnitudes the tables are indexed by, so
 * table and algorithm agree for every input. */
static uint8_t ulaw_from_linear14(int v) /* v: 14-bit signed */
{
	const int bias = 0x21; /* 33 in 14-bit units = 132 in 16-bit units */
	uint8_t mask;
	if (v < 0) {
		v = -v;
		mask = 0x7f;
	} else {
		mask = 0xff;
	}
	v += bias;
	if (v > 0x1fff)
		v = 0x1fff;
	int seg = 0;
	for (int t = v >> 6; t; t >>= 1)
		seg++;
	if (seg > 7)
		return (uint8_t)(0x7f ^ mask);
	uint8_t uval = (uint8_t)((seg << 4) | ((v >> (seg + 1)) & 0x0f));
	return uval ^ mask;
}

static int16_t ulaw_to_linear(uint8_t u)
{
	u = (uint8_t)~u;
	int t = ((u & 0x0f) << 3) + 0x84;
	t <<= (u & 0x70) >> 4;
	return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

static uint8_t alaw_from_linear13(int v) /* v: 13-bit signed */
{
	uint8_t mask;
	if (v >= 0) {
		mask = 0xd5;
	} else {
		mask = 0x55;
		v = -v - 1;
	}
	int seg = 0;
	for (int t = v >> 5; t; t >>= 1)
		seg++;
	if (seg > 7)
		return (uint8_t)(0x7f ^ mask);
	uint8_t aval = (uint8_t)(seg << 4);
	aval |= (uint8_t)(seg < 2 ? (v >> 1) & 0x0f : (v >> seg) & 0x0f);
	return aval ^ mask;
}

static int16_t alaw_to_linear(uint8_t a)
{
	a ^= 0x55;
	int t = (a & 0x0f) << 4;
	int seg = (a & 0x70) >> 4;
	if (seg == 0)
		t += 8;
	else if (seg == 1)
		t += 0x108;
	else
		t = (t + 0x108) << (seg - 1);
	return (int16_t)((a & 0x80) ? t : -t);
}

static void build_tables(void)
{
	for (int i = 0; i < 256; i++) {
		ulaw_dec[i] = ulaw_to_linear((uint8_t)i);
		alaw_dec[i] = alaw_to_linear((uint8_t)i);
	}
	for (int i = 0; i < (1 << 14); i++)
		ulaw_enc[i] = ulaw_from_linear14(i - 8192);
	for (int i = 0; i < (1 << 13); i++)
		alaw_enc[i] = alaw_from_linear13(i - 4096);
}

static inline void tables(void)
{
	pthread_once(&tables_once, build_tables);
}

uint8_t rv_g711_ulaw_encode(int16_t pcm)
{
	tables();
	return ulaw_enc[(pcm >> 2) + 8192];
}

int16_t rv_g711_ulaw_decode(uint8_t code)
{
	tables();
	return ulaw_dec[code];
}

uint8_t rv_g711_alaw_encode(int16_t pcm)
{
	tables();
	return alaw_enc[(pcm >> 3) + 4096];
}

int16_t rv_g711_alaw_decode(uint8_t code)
{
	tables();
	return alaw_dec[code];
}

void rv_g711_encode(enum rv_g711_law law, const int16_t *src, uint8_t *dst, size_t n)
{
	tables();
	if (law == RV_G711_ULAW) {
		for (size_t i = 0; i < n; i++)
			dst[i] = ulaw_enc[(src[i] >> 2) + 8192];
	} else {
		for (size_t i = 0; i < n; i++)
			dst[i] = alaw_enc[(src[i] >> 3) + 4096];
	}
}

void rv_g711_decode(enum rv_g711_law law, const uint8_t *src, int16_t *dst, size_t n)
{
	tables();
	const int16_t *t = law == RV_G711_ULAW ? ulaw_dec : alaw_dec;
	for (size_t i = 0; i < n; i++)
		dst[i] = t[src[i]];
}

int rv_g711_law_from_pt(int pt, enum rv_g711_law *out)
{
	if (pt == RV_G711_PT_PCMU) {
		*out = RV_G711_ULAW;
		return 0;
	}
	if (pt == RV_G711_PT_PCMA) {
		*out = RV_G711_ALAW;
		return 0;
	}
	return -ENOTSUP;
}
