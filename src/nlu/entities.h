/*
 * Entities from spoken-form caller text (what an STT engine writes: "call me tomorrow at
 * three", "seven six two nine", "john at example dot com"), normalised:
 *   datetime  ISO 8601 in the caller's time zone with its offset ("2026-11-23T15:00:00-05:00"),
 *             or a date alone ("2026-11-23") when no time was said
 *   number    a decimal string ("120", "2.5")
 *   digits    a digit string read out one by one ("7629")
 *   money     amount with two decimals, currency in `unit` ("5000.00", "USD")
 *   phone     E.164 ("+14155550100")
 *   email     lower case ("john@example.com")
 *   yesno     "yes" or "no"
 *   name      capitalised words, only when the dialog asked for a name
 * Relative expressions ("tomorrow", "next Tuesday", "in two hours") resolve against `now` in
 * the caller's IANA time zone (ICU does the zone rules). Thread-safe; no global state.
 */
#ifndef RV_NLU_ENTITIES_H
#define RV_NLU_ENTITIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rv_entity_type {
	RV_ENT_DATETIME,
	RV_ENT_NUMBER,
	RV_ENT_DIGITS,
	RV_ENT_MONEY,
	RV_ENT_PHONE,
	RV_ENT_EMAIL,
	RV_ENT_YESNO,
	RV_ENT_NAME,
};

#define RV_ENTITY_MAX 16 /* entities reported per utterance */

struct rv_entity {
	enum rv_entity_type type;
	char value[96];    /* normalised, see above */
	char unit[8];      /* money: ISO 4217 currency */
	char text[160];    /* the words it came from, as written in the input */
	size_t start, end; /* byte offsets of those words in the input */
};

struct rv_entity_ctx {
	const char *timezone; /* IANA name, "America/New_York"; NULL: UTC */
	int64_t now_ms;       /* Unix milliseconds "now" pins relative dates to */
	const char *region;   /* ISO 3166 region for phone numbers without a country code */
	bool expect_name;     /* the dialog just asked for a name */
};

/*
 * Extract entities from text (at most 2000 bytes are read). Writes up to max entities in the
 * order they appear and sets *n. Returns 0, or -EINVAL for an unknown time zone (nothing
 * extracted). Never fails on odd text: what is not understood is not reported.
 */
int rv_entities_extract(const char *text, const struct rv_entity_ctx *ctx, struct rv_entity *out,
                        size_t max, size_t *n);

/* "datetime", "number", ... */
const char *rv_entity_type_name(enum rv_entity_type t);

#endif
