"""The HTTP server seen from outside: ops endpoints, error shapes, body caps, rate limiting,
CORS, the access log and the static file server, against the real daemon."""
import http.client
import json
import os
import re
import shutil
import tempfile

from harness import Daemon, check, eq


def raw_get(d, path, headers=None):
    """GET with the path sent byte for byte (urllib would not normalise it, but be explicit)."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        c.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def metric_value(text, name, labels):
    """The value of one sample, labels given as a dict (order as rendered does not matter)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if got == labels:
            return float(m.group(3))
    return None


def error_code(body):
    check(isinstance(body, dict) and isinstance(body.get("error"), dict), "not an error body: %r" % (body,))
    e = body["error"]
    eq(sorted(e.keys()), ["code", "details", "message"], "error keys")
    check(isinstance(e["message"], str) and e["message"], "error message")
    return e["code"]


def test_ops_endpoints_and_metrics():
    with Daemon() as d:
        st, body, h = d.request("GET", "/healthz")
        eq(st, 200, "healthz")
        eq(body["status"], "ok")
        check(re.match(r"^\d+\.\d+\.\d+", body["version"]), "version %r" % body["version"])
        eq(h.get("X-Content-Type-Options"), "nosniff")
        eq(h.get("Cache-Control"), "no-store")

        st, body, _ = d.request("GET", "/readyz")
        eq(st, 200, "readyz")
        eq(body, {"status": "ready"})

        for _ in range(3):
            st, _, _ = d.request("GET", "/api/no-such-thing")
            eq(st, 404)

        st, text, h = d.request("GET", "/metrics")
        eq(st, 200, "metrics")
        check(h["Content-Type"].startswith("text/plain; version=0.0.4"), h["Content-Type"])
        check("# TYPE rv_http_requests_total counter" in text, "requests family")
        check("# TYPE rv_http_request_duration_seconds histogram" in text, "duration family")
        ready = metric_value(text, "rv_http_requests_total",
                             {"route": "/readyz", "method": "GET", "status": "200"})
        eq(ready, 1.0, "readyz counted once")
        eq(metric_value(text, "rv_http_requests_total",
                        {"route": "unmatched", "method": "GET", "status": "404"}), 3.0,
           "404s counted under 'unmatched', not by path")
        check("/api/no-such-thing" not in text, "paths never become label values")
        check(metric_value(text, "rv_http_request_duration_seconds_count",
                           {"route": "/readyz", "method": "GET"}) == 1.0, "histogram count")
        inf = metric_value(text, "rv_http_request_duration_seconds_bucket",
                           {"route": "/readyz", "method": "GET", "le": "+Inf"})
        eq(inf, 1.0, "+Inf bucket")
        check(metric_value(text, "rv_build_info", {"version": body_version(d), "commit":
                                                   build_commit(text)}) == 1.0, "build info")


def body_version(d):
    return d.request("GET", "/healthz")[1]["version"]


def build_commit(text):
    m = re.search(r'^rv_build_info\{version="[^"]*",commit="([^"]*)"\} 1$', text, re.M)
    check(m, "rv_build_info sample")
    return m.group(1)


def test_error_shapes_404_405_json():
    with Daemon() as d:
        st, body, h = d.request("GET", "/api/nope/1")
        eq(st, 404)
        eq(error_code(body), "not_found")
        eq(body["error"]["details"], None)
        check(h["Content-Type"].startswith("application/json"), "json content type")

        st, body, h = d.request("PUT", "/api/auth/login", body={})
        eq(st, 405, "PUT on login")
        eq(error_code(body), "method_not_allowed")
        eq(h.get("Allow"), "POST")
        st, body, h = d.request("PUT", "/api/keys/3", body={})
        eq(st, 405, "PUT on a key")
        eq(h.get("Allow"), "DELETE")

        st, body, _ = d.request("POST", "/api/auth/login", raw='{\n  "email": "a@b.c",\n  oops\n}',
                                content_type="application/json")
        eq(st, 400, "broken JSON")
        eq(error_code(body), "invalid_json")
        eq(body["error"]["details"]["line"], 3, "line")
        check(body["error"]["details"]["column"] >= 1, "column")
        check("position" in body["error"]["details"], "position")

        st, body, _ = d.request("POST", "/api/auth/login", raw='[{"email": "a@b.c"}]',
                                content_type="application/json")
        eq(st, 400, "array body")
        eq(error_code(body), "invalid_body")

        # The same rules on an authenticated route.
        tok = d.admin()
        st, body, _ = d.request("POST", "/api/keys", raw='{"name": "x",}', token=tok,
                                content_type="application/json")
        eq(st, 400)
        eq(error_code(body), "invalid_json")
        st, body, _ = d.request("POST", "/api/keys", raw='{"a":1,"a":2}', token=tok,
                                content_type="application/json")
        eq(st, 400, "duplicate keys")
        eq(error_code(body), "invalid_json")

        st, body, h = d.request("GET", "/api/auth/me")
        eq(st, 401)
        eq(error_code(body), "unauthorized")
        check(h.get("WWW-Authenticate", "").startswith("Bearer"), "WWW-Authenticate")


def test_body_cap_413_and_still_serving():
    with Daemon(env={"REVOVOICE_HTTP_MAX_BODY": "1024"}) as d:
        small = json.dumps({"email": "nobody@example.com", "password": "x" * 900})
        check(len(small) < 1024, "fixture under the cap")
        st, body, _ = d.request("POST", "/api/auth/login", raw=small, content_type="application/json")
        check(st != 413, "a body under the cap is read (%d)" % st)
        eq(st, 401, "wrong credentials")

        big = json.dumps({"email": "nobody@example.com", "password": "x" * 4000})
        st, body, _ = d.request("POST", "/api/auth/login", raw=big, content_type="application/json")
        eq(st, 413, "over the cap")
        eq(error_code(body), "body_too_large")

        # Chunked (no Content-Length): found out while reading, still 413, nothing buffered past it.
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("POST", "/api/auth/login", body=iter([b"{" + b" " * 800, b" " * 800, b"}"]),
                  headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                  encode_chunked=True)
        r = c.getresponse()
        eq(r.status, 413, "chunked over the cap")
        eq(json.loads(r.read())["error"]["code"], "body_too_large")
        c.close()

        for _ in range(3):
            st, body, _ = d.request("GET", "/healthz")
            eq(st, 200, "still serving")
        lines = [l for l in d.log_lines() if l.get("msg") == "request" and l.get("status") == "413"]
        eq(len(lines), 2, "two 413s logged")


def test_rate_limit_429_with_retry_after():
    with Daemon(env={"REVOVOICE_RATE_LIMIT_RPS": "5", "REVOVOICE_RATE_LIMIT_BURST": "5"}) as d:
        tok = d.admin()
        statuses = []
        retry = None
        for _ in range(12):
            st, body, h = d.request("GET", "/api/auth/me", token=tok)
            statuses.append(st)
            if st == 429:
                eq(error_code(body), "rate_limited")
                retry = h.get("Retry-After")
        check(statuses[:5] == [200] * 5, "the burst passes: %r" % statuses)
        check(429 in statuses, "then 429: %r" % statuses)
        check(retry is not None and retry.isdigit() and int(retry) >= 1, "Retry-After %r" % retry)
        # Ops endpoints are exempt, even for this client while it is limited.
        for _ in range(10):
            eq(d.request("GET", "/healthz")[0], 200, "healthz never limited")
        st, text, _ = d.request("GET", "/metrics")
        check((metric_value(text, "rv_http_requests_total",
                            {"route": "/api/auth/me", "method": "GET", "status": "429"}) or 0) >= 1,
              "429 counted")


def test_cors_preflight_and_origin():
    origin = "https://app.example.com"
    with Daemon(env={"REVOVOICE_HTTP_CORS_ORIGINS": origin}) as d:
        pre = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}
        st, _, h = d.request("OPTIONS", "/api/campaigns", headers=pre)
        eq(st, 204, "preflight")
        eq(h.get("Access-Control-Allow-Origin"), origin)
        check("POST" in h.get("Access-Control-Allow-Methods", ""), "methods")
        check("Authorization" in h.get("Access-Control-Allow-Headers", ""), "headers")
        check(h.get("Access-Control-Max-Age", "").isdigit(), "max-age")

        bad = dict(pre, Origin="https://evil.example.com")
        st, _, h = d.request("OPTIONS", "/api/campaigns", headers=bad)
        check("Access-Control-Allow-Origin" not in h, "no CORS for other origins")
        check("Access-Control-Allow-Methods" not in h, "no methods for other origins")

        st, _, h = d.request("GET", "/healthz", headers={"Origin": origin})
        eq(h.get("Access-Control-Allow-Origin"), origin, "simple request")
        st, _, h = d.request("GET", "/healthz", headers={"Origin": "https://evil.example.com"})
        check("Access-Control-Allow-Origin" not in h, "simple request, other origin")
        eq(h.get("Vary"), "Origin", "the refusal varies by origin too, for caches")

    with Daemon() as d:  # off by default
        st, _, h = d.request("GET", "/healthz", headers={"Origin": origin})
        check("Access-Control-Allow-Origin" not in h, "no CORS when not configured")
        st, body, h = d.request("OPTIONS", "/api/campaigns",
                                headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        eq(st, 405, "no preflight handling when not configured")


def test_access_log_lines():
    with Daemon() as d:
        tok = d.admin()
        eq(d.request("GET", "/api/auth/me", token=tok)[0], 200)
        eq(d.request("GET", "/api/missing?secret=1")[0], 404)
        lines = d.log_lines()  # every line must parse as JSON
        reqs = [l for l in lines if l.get("component") == "http" and l.get("msg") == "request"]
        check(reqs, "request lines")
        for l in reqs:
            for f in ("ts", "level", "method", "route", "path", "status", "duration_ms", "client", "user"):
                check(f in l, "field %s in %r" % (f, l))
            float(l["duration_ms"])
            eq(l["client"], "127.0.0.1")
        me = [l for l in reqs if l["route"] == "/api/auth/me"]
        eq(len(me), 1)
        eq(me[0]["status"], "200")
        eq(me[0]["method"], "GET")
        eq(me[0]["user"], "admin@example.com")
        miss = [l for l in reqs if l["path"] == "/api/missing"]
        eq(len(miss), 1, "query strings stay out of the log")
        eq(miss[0]["route"], "unmatched")
        eq(miss[0]["status"], "404")
        eq(miss[0]["user"], "")


def test_static_files_and_traversal():
    tmp = tempfile.mkdtemp(prefix="rv-web-")
    try:
        root = os.path.join(tmp, "dist")
        os.makedirs(os.path.join(root, "assets"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>RevoVoice</title>")
        with open(os.path.join(root, "assets", "app.js"), "w") as f:
            f.write("console.log('hi');")
        with open(os.path.join(tmp, "secret.txt"), "w") as f:
            f.write("top secret")
        os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(root, "leak.txt"))

        with Daemon(env={"REVOVOICE_WEB_ROOT": root}) as d:
            st, body, h = raw_get(d, "/")
            eq(st, 200, "index")
            check(b"<title>RevoVoice</title>" in body, "index body")
            eq(h["content-type"], "text/html; charset=utf-8")
            eq(h["x-content-type-options"], "nosniff")

            st, body, h = raw_get(d, "/assets/app.js")
            eq(st, 200)
            eq(body, b"console.log('hi');")
            check(h["content-type"].startswith("text/javascript"), h["content-type"])

            st, body, _ = raw_get(d, "/campaigns/7")  # client-side route -> app shell
            eq(st, 200, "SPA fallback")
            check(b"RevoVoice" in body, "SPA fallback body")

            for path in ("/..%2f..%2fetc/passwd", "/../secret.txt", "/assets/..%2f..%2fsecret.txt",
                         "/%2e%2e/secret.txt", "/leak.txt", "/missing.png", "/assets/%00.js"):
                st, body, h = raw_get(d, path)
                eq(st, 404, "refused %s" % path)
                check(b"secret" not in body and b"root:" not in body, "no leak for %s" % path)
                eq(json.loads(body)["error"]["code"], "not_found", path)

            st, body, _ = raw_get(d, "/api/unknown")  # API paths never fall back to the app
            eq(st, 404)
            eq(json.loads(body)["error"]["code"], "not_found")

        with Daemon(env={"REVOVOICE_WEB_ROOT": os.path.join(tmp, "absent")}) as d:
            st, body, _ = raw_get(d, "/")
            eq(st, 404, "no web root")
            eq(json.loads(body)["error"]["code"], "not_found")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_handler_headers_replace_defaults():
    """A header a handler sets (the docs page's Cache-Control, nosniff) is sent once, not next
    to the server's default of the same name: two Cache-Control values contradict each other."""
    with Daemon() as d:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        try:
            c.request("GET", "/api/docs")
            r = c.getresponse()
            r.read()
            eq(r.status, 200, "docs page")
            names = [k.lower() for k, _ in r.getheaders()]
            for name in ("cache-control", "x-content-type-options", "x-frame-options"):
                eq(names.count(name), 1, "%s sent once (%r)" % (name, r.getheaders()))
            eq(r.getheader("Cache-Control"), "no-cache", "the handler's choice wins")
        finally:
            c.close()
        st, _, h = raw_get(d, "/healthz")
        eq(st, 200)
        eq(h["cache-control"], "no-store", "the default still applies elsewhere")


def test_endless_chunked_body_dropped_and_logged():
    """A chunked body that goes on far past the cap is cut off without an answer (reading on to
    say 413 would cost unbounded time), but the request still leaves a log line and a count."""
    import socket
    with Daemon(env={"REVOVOICE_HTTP_MAX_BODY": "1024"}) as d:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        got = b""
        try:
            s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            try:
                for _ in range(200):  # 12.5 MiB, well past cap + the 4 MiB we drain
                    s.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
            except (ConnectionResetError, socket.timeout):
                pass
        finally:
            s.close()
        check(b" 200 " not in got and b" 401 " not in got, "never handled: %r" % got[:200])
        st, _, _ = d.request("GET", "/healthz")
        eq(st, 200, "still serving")
        lines = [l for l in d.log_lines() if l.get("msg") == "request" and l.get("status") == "413"]
        eq(len(lines), 1, "the dropped request is logged")
        eq(lines[0].get("route"), "/api/auth/login")
        st, text, _ = d.request("GET", "/metrics")
        eq(metric_value(text, "rv_http_requests_total",
                        {"route": "/api/auth/login", "method": "POST", "status": "413"}), 1.0,
           "and counted")


def test_client_gone_mid_body_does_not_hold_up_stop():
    """Clients that send half a body and hang up must not count as in-flight requests: the
    graceful stop waits for those, and would sit out its whole timeout for nothing."""
    import socket
    import time
    d = Daemon()
    d.start()
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 500\r\n\r\n" + b"{" * 100)
            s.close()
        time.sleep(0.5)
        st, _, _ = d.request("GET", "/healthz")
        eq(st, 200)
    finally:
        t0 = time.time()
        rc = d.stop()
        took = time.time() - t0
    eq(rc, 0, "clean exit")
    stuck = [l for l in d.log_lines() if "still in flight" in l.get("msg", "")]
    eq(stuck, [], "no request left in flight")
    check(took < 5, "stopped in %.1f s" % took)


def test_invalid_utf8_in_json_error_still_gets_invalid_json():
    """A parser message quoting broken UTF-8 from the body (found by fuzz_json_body) must still
    come back as a well-formed 400 invalid_json, not a failed encoding."""
    with Daemon() as d:
        tok = d.admin()
        st, body, _ = d.request("POST", "/api/campaigns", raw=b'{"s\\u0\xd0\x9a\xc6\xcb',
                                content_type="application/json", token=tok)
        eq(st, 400, "status")
        eq(body["error"]["code"], "invalid_json", "code")
