/* Phone numbers: parse what people type and normalise to E.164 (libphonenumber). */
#ifndef RV_PHONE_H
#define RV_PHONE_H

#include <stddef.h>

/*
 * Normalise `input` ("(415) 555-2671", "+44 20 7946 0958", "0044...") to E.164 ("+14155552671")
 * using `default_region` (ISO 3166 alpha-2, e.g. "US") for numbers without a country code.
 * Returns 0 and writes out (outlen >= 17), or -EINVAL with a short reason in *why (static
 * string: "not a phone number", "invalid number for region", ...).
 */
int rv_phone_e164(const char *input, const char *default_region, char *out, size_t outlen,
                  const char **why);

/* Is `region` a region code libphonenumber knows ("US", "GB", "IN"...)? 1 or 0. */
int rv_phone_region_valid(const char *region);

#endif
