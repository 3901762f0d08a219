/*
 * Prometheus metrics: counters, gauges and histograms in one process-wide registry, each
 * family with fixed label names and children created on first use. Thread-safe; updates take a
 * short mutex. Rendered in the Prometheus text exposition format (version 0.0.4) at /metrics.
 */
#ifndef RV_METRICS_H
#define RV_METRICS_H

#include <stddef.h>

enum rv_metric_type { RV_METRIC_COUNTER, RV_METRIC_GAUGE, RV_METRIC_HISTOGRAM };

/*
 * Register a family. `labels` is a comma-separated list of label names ("route,method,status")
 * or NULL. `buckets` (histograms only; upper bounds in ascending order, +Inf implied) may be NULL
 * for the default latency buckets in seconds (0.0005 ... 10). Registering an existing name
 * again with the same type is a no-op. Returns 0 or -EINVAL (bad name, type clash).
 */
int rv_metrics_register(const char *name, enum rv_metric_type type, const char *help,
                        const char *labels, const double *buckets, size_t nbuckets);

/*
 * Update the child identified by label values, given in the family's label order as a
 * NULL-terminated list of strings (values are escaped on output). Unknown family names are
 * ignored (and counted in rv_metrics_errors_total).
 */
void rv_metrics_inc(const char *name, double by, ...);        /* counter / gauge += by */
void rv_metrics_set(const char *name, double value, ...);     /* gauge = value */
void rv_metrics_observe(const char *name, double value, ...); /* histogram sample */

/* Render every family. *out is malloc'd (caller frees). Returns 0 or -ENOMEM. */
int rv_metrics_render(char **out, size_t *len);

/* Drop every family (tests, shutdown). */
void rv_metrics_reset(void);

#endif
