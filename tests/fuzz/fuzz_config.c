/*
 * libFuzzer target: a YAML (or JSON) config file through rv_config_load_file. The bytes are
 * written to one temporary file per process and loaded over built-in defaults. A refusal must
 * come with a sentence; either way the config must still free cleanly (no leak, no double free).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

#include "fuzz_check.h"

static char path[64];
static int fd = -1;

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rv_config cfg;
	char err[512];

	if (fd < 0) {
		rv_log_set_level(RV_LOG_ERROR + 1);
		snprintf(path, sizeof(path), "/tmp/rv-fuzz-config-XXXXXX");
		fd = mkstemp(path);
		CHECK(fd >= 0);
		atexit(cleanup);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

	rv_config_defaults(&cfg);
	err[0] = '\0';
	int rc = rv_config_load_file(&cfg, path, err, sizeof(err));
	if (rc != 0)
		CHECK(err[0] != '\0');
	rv_config_free(&cfg);
	return 0;
}
