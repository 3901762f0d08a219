/*
 * Structured logging: one JSON object per line on stderr (or a file), with time, level,
 * component, message and optional fields. Thread-safe; a line is written with one write(2).
 */
#ifndef RV_LOG_H
#define RV_LOG_H

#include <stdarg.h>

enum rv_log_level { RV_LOG_DEBUG = 0, RV_LOG_INFO, RV_LOG_WARN, RV_LOG_ERROR };

/* Set the minimum level that is written. */
void rv_log_set_level(enum rv_log_level level);
/* Parse "debug|info|warn|error"; returns 0 and sets *out, or -EINVAL. */
int rv_log_level_parse(const char *s, enum rv_log_level *out);
/* Send log lines to fd (borrowed; default 2). */
void rv_log_set_fd(int fd);

/*
 * Write one line. `component` names the subsystem ("http", "store"...). `fmt` formats the
 * message. Extra fields follow as a NULL-terminated list of key, value string pairs given with
 * rv_logf_kv(); the plain rv_logf() has none.
 */
void rv_logf(enum rv_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Like rv_logf() but with extra string fields: pairs of (const char *key, const char *value)
 * ended by a NULL key. Values are JSON-escaped. A call id is passed as key "call_id".
 */
void rv_logkv(enum rv_log_level level, const char *component, const char *msg, ...);

#define rv_debug(comp, ...) rv_logf(RV_LOG_DEBUG, comp, __VA_ARGS__)
#define rv_info(comp, ...)  rv_logf(RV_LOG_INFO, comp, __VA_ARGS__)
#define rv_warn(comp, ...)  rv_logf(RV_LOG_WARN, comp, __VA_ARGS__)
#define rv_error(comp, ...) rv_logf(RV_LOG_ERROR, comp, __VA_ARGS__)

#endif
