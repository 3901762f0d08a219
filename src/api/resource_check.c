/*
 * Pure validators for API input: ids, paging arguments, calling windows, day lists, time-zone
 * names, URLs and e-mail addresses. No I/O except the time-zone file probe.
 */
#include "api/resource.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

int rv_res_parse_id(const char *s, int64_t *out)
{
	int64_t v;
	/* Digits only: strtoll would also take "+5", " 5" and "-0". */
	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	if (rv_parse_int64(s, 1, INT64_MAX, &v) != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int rv_res_parse_limit(const char *s, int64_t *out)
{
	int64_t v;
	if (!s) {
		*out = RV_RES_LIMIT_DEFAULT;
		return 0;
	}
	if (!*s || strspn(s, "0123456789") != strlen(s) ||
	    rv_parse_int64(s, 1, RV_RES_LIMIT_MAX, &v) != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int rv_res_parse_cursor(const char *s, int64_t *out)
{
	if (!s || !*s) {
		*out = 0;
		return 0;
	}
	return rv_res_parse_id(s, out);
}

int rv_res_hhmm_parse(const char *s, int *minutes)
{
	if (!s || strlen(s) != 5 || s[2] != ':')
		return -EINVAL;
	for (int i = 0; i < 5; i++) {
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return -EINVAL;
	}
	int h = (s[0] - '0') * 10 + (s[1] - '0');
	int m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59)
		return -EINVAL;
	if (minutes)
		*minutes = h * 60 + m;
	return 0;
}

int rv_res_csv_valid(const char *s, const char *const *allowed, int allow_empty)
{
	unsigned seen = 0; /* bit per entry of `allowed` (at most 32) */
	size_t nallowed = 0;

	if (!s)
		return -EINVAL;
	while (allowed[nallowed])
		nallowed++;
	if (nallowed > 32)
		return -EINVAL;
	if (!*s)
		return allow_empty ? 0 : -EINVAL;
	const char *p = s;
	for (;;) {
		size_t n = strcspn(p, ",");
		size_t k;
		for (k = 0; k < nallowed; k++) {
			if (strlen(allowed[k]) == n && strncmp(p, allowed[k], n) == 0)
				break;
		}
		if (n == 0 || k == nallowed || (seen & (1u << k)))
			return -EINVAL;
		seen |= 1u << k;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

int rv_res_days_valid(const char *s)
{
	static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun", NULL};
	return rv_res_csv_valid(s, days, 0);
}

int rv_res_timezone_valid(const char *name, const char *zoneinfo_dir)
{
	char path[PATH_MAX];
	char magic[4];
	struct stat st;
	int fd, ok;

	if (!name || !*name || strlen(name) > 64 || name[0] == '/' || name[0] == '-')
		return -EINVAL;
	if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") !=
	    strlen(name))
		return -EINVAL;
	/* No empty components ("a//b", trailing "/"); '.' is not in the set so ".." can't occur. */
	if (strstr(name, "//") || name[strlen(name) - 1] == '/')
		return -EINVAL;
	/* Files in zoneinfo that are TZif data but not zone names. */
	if (strcmp(name, "localtime") == 0 || strcmp(name, "posixrules") == 0)
		return -EINVAL;
	if (!zoneinfo_dir)
		zoneinfo_dir = "/usr/share/zoneinfo";
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", zoneinfo_dir, name) >= sizeof(path))
		return -EINVAL;
	/* Symbolic links are fine here (Debian links "UTC" to "Etc/UTC"): the character check
	 * above already keeps the name inside zoneinfo_dir. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -EINVAL;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
	     memcmp(magic, "TZif", 4) == 0;
	close(fd);
	return ok ? 0 : -EINVAL;
}

static int host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_' || c == '~' || c == '%';
}

int rv_res_url_valid(const char *url, const char **why)
{
	size_t len, skip;
	const char *p, *end, *host, *hend;

	*why = "not an absolute http or https URL";
	if (!url)
		return -EINVAL;
	len = strlen(url);
	if (len == 0 || len > 2048) {
		*why = len ? "URL longer than 2048 bytes" : "empty URL";
		return -EINVAL;
	}
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f) {
			*why = "URL contains whitespace, control or non-ASCII bytes";
			return -EINVAL;
		}
	}
	if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return -EINVAL;
	p = url + skip;
	end = p + strcspn(p, "/?#");
	/* Credentials in a webhook URL would be shown to every manager who lists webhooks; the
	 * signing secret is how a receiver authenticates us. */
	if (memchr(p, '@', (size_t)(end - p))) {
		*why =
		    "URL must not contain user credentials (user:password@); receivers verify the "
		    "signature made with the webhook's secret";
		return -EINVAL;
	}
	*why = "URL has no valid host";
	if (p == end)
		return -EINVAL;
	if (*p == '[') {
		host = p + 1;
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend || hend == host)
			return -EINVAL;
		for (const char *q = host; q < hend; q++) {
			if (!(host_char(*q) || *q == ':'))
				return -EINVAL;
		}
		p = hend + 1;
	} else {
		host = p;
		hend = host;
		while (hend < end && *hend != ':')
			hend++;
		if (hend == host)
			return -EINVAL;
		for (const char *q = host; q < hend; q++) {
			if (!host_char(*q))
				return -EINVAL;
		}
		p = hend;
	}
	if (p < end) {
		char port[8];
		int64_t v;
		size_t n = (size_t)(end - p - 1);
		*why = "URL has an invalid port";
		if (*p != ':' || n == 0 || n >= sizeof(port))
			return -EINVAL;
		memcpy(port, p + 1, n);
		port[n] = '\0';
		if (strspn(port, "0123456789") != n || rv_parse_int64(port, 1, 65535, &v) != 0)
			return -EINVAL;
	}
	*why = NULL;
	return 0;
}

int rv_res_email_valid(const char *s)
{
	const char *at, *dot;
	size_t len;

	if (!s)
		return -EINVAL;
	len = strlen(s);
	if (len < 3 || len > 254)
		return -EINVAL;
	at = strchr(s, '@');
	if (!at || at == s || strchr(at + 1, '@') || (size_t)(at - s) > 64)
		return -EINVAL;
	for (const char *p = s; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("()<>[]\\,;:\"", c))
			return -EINVAL;
	}
	const char *dom = at + 1;
	if (!*dom || *dom == '.' || *dom == '-' || s[len - 1] == '.' || strstr(dom, ".."))
		return -EINVAL;
	for (const char *p = dom; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return -EINVAL;
	}
	dot = strrchr(dom, '.');
	if (!dot || dot[1] == '\0')
		return -EINVAL;
	return 0;
}
