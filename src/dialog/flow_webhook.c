/* The webhook action: a JSON request to the operator's endpoint, its JSON answer used in the
 * conversation. See flow_int.h. */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "dialog/flow_int.h"
#include "obs/metrics.h"

#define MAX_ANSWER (64 * 1024)

struct buf {
	char *p;
	size_t n;
	bool over;
};

static size_t on_data(char *d, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	if (b->n + n > MAX_ANSWER) {
		b->over = true;
		return 0;
	}
	char *p = realloc(b->p, b->n + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->n, d, n);
	b->p = p;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

int rv_flow_webhook_http(const char *method, const char *url, const json_t *body, json_t **answer,
                         void *arg)
{
	if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0))
		return -EINVAL;
	if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 && strcmp(method, "GET") != 0)
		return -EINVAL;
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	char *payload = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, "Accept: application/json");
	struct buf b = {0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1500L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "RevoVoice-flow/1");
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "{}");
	}
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	int ret = 0;
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		ret = -ETIMEDOUT;
	} else if (rc != CURLE_OK || status >= 400) {
		ret = b.over ? -EPROTO : -EIO;
	} else {
		json_error_t je;
		*answer = json_loadb(b.p ? b.p : "", b.n, JSON_REJECT_DUPLICATES, &je);
		if (!*answer)
			ret = -EPROTO;
	}
	if (ret)
		rv_warn("dialog", "webhook %s %s failed: %s (HTTP %ld)", method, url,
		        rc != CURLE_OK   ? curl_easy_strerror(rc)
		        : ret == -EPROTO ? "not JSON"
		                         : "",
		        status);
	rv_metrics_register("rv_flow_webhooks_total", RV_METRIC_COUNTER,
	                    "Webhook actions run by flows, by result", "result", NULL, 0);
	rv_metrics_inc("rv_flow_webhooks_total", 1, ret ? "error" : "ok", NULL);
	free(b.p);
	free(payload);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return ret;
}
