/*
 * The outcome of one call as a flat record, and its JSON form. Kept apart from the SIP code
 * because libre's re.h and jansson both define JSON_* names and cannot share a file.
 */
#ifndef RV_SIP_REPORT_H
#define RV_SIP_REPORT_H

#include <stdbool.h>
#include <stdint.h>

struct rv_call_report {
	const char *uri, *call_id, *disposition, *cause, *hangup_by;
	const char *codec;     /* NULL when no media was negotiated */
	const char *recording; /* NULL when nothing was recorded */
	const char *error;     /* set only when the call could not be placed at all */
	int sip_status, last_provisional;
	bool early_media;
	int64_t ring_ms, setup_ms, talk_ms, duration_ms, prompt_played_ms;
	uint64_t rx_packets, tx_packets, lost, frames_received, rx_bad_source, rx_malformed;
	double jitter_ms;
};

/*
 * Format r as one compact JSON object (no newline). Returns 0 and sets *out (free() it), or
 * -ENOMEM. The strings in r are borrowed.
 */
int rv_call_report_json(const struct rv_call_report *r, char **out);

#endif
