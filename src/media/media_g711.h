/*
 * G.711 (ITU-T) μ-law and A-law: 8-bit telephone samples to and from 16-bit linear PCM.
 * Table-driven: decoding is one lookup per byte; encoding one lookup per sample in a table
 * indexed by the sample's top 14 (μ-law) or 13 (A-law) bits, which is all the precision the
 * companding keeps. The tables are built once, on first use, from the ITU-T segment rules; all
 * functions are thread-safe.
 */
#ifndef RV_MEDIA_G711_H
#define RV_MEDIA_G711_H

#include <stddef.h>
#include <stdint.h>

/* RTP static payload types (RFC 3551). */
#define RV_G711_PT_PCMU 0
#define RV_G711_PT_PCMA 8

/* The code of linear 0: what a silent G.711 frame is filled with. */
#define RV_G711_ULAW_SILENCE 0xff
#define RV_G711_ALAW_SILENCE 0xd5

enum rv_g711_law { RV_G711_ULAW, RV_G711_ALAW };

uint8_t rv_g711_ulaw_encode(int16_t pcm);
int16_t rv_g711_ulaw_decode(uint8_t code);
uint8_t rv_g711_alaw_encode(int16_t pcm);
int16_t rv_g711_alaw_decode(uint8_t code);

/* Encode/decode n samples; src and dst must not overlap. */
void rv_g711_encode(enum rv_g711_law law, const int16_t *src, uint8_t *dst, size_t n);
void rv_g711_decode(enum rv_g711_law law, const uint8_t *src, int16_t *dst, size_t n);

/*
 * Map an RTP payload type to its law: 0 and sets *out for PCMU (0) and PCMA (8), -ENOTSUP for
 * any other payload type.
 */
int rv_g711_law_from_pt(int pt, enum rv_g711_law *out);

#endif
