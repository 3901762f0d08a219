/*
 * libre odict JSON, wrapped for json_bench.c (which cannot include re.h
 * next to jansson.h). Trees and texts returned here are libre mem objects;
 * free them with the matching rvb_re_free* call. NULL means failure.
 */
#ifndef RV_JSON_BENCH_RE_H
#define RV_JSON_BENCH_RE_H

#include <stddef.h>

int rvb_re_init(void);
void rvb_re_close(void);
void *rvb_re_parse(const char *s, size_t len);
char *rvb_re_dump(void *tree);
void rvb_re_free(void *tree);
void rvb_re_free_text(char *s);
/* Parses text and prints what libre made of key "a" (no newline). */
void rvb_re_check(const char *text);

#endif
