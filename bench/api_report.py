#!/usr/bin/env python3
"""Turns the raw outputs of bench/api_bench.sh (bench/out/) into the "API" section of
docs/BENCHMARKS.md: wrk and api_paced figures, the daemon's own p99 from its /metrics
histograms over the same window, and the comparison with the targets.

Other sections of the document are left as they are; the "## API" section is replaced whole.
"""
import argparse
import datetime
import os
import re
import sys

READ_TARGET_MS = 5.0    # issue 2: p99 under 5 ms for reads at 1,000 requests/s on 2 cores
SEED_P95_MS = 200.0     # the seed's requirement: API p95 under 200 ms
METRIC = "rv_http_request_duration_seconds"


def wrk_figures(path):
    """p50/p99 (ms), requests/s and non-2xx count from wrk --latency output."""
    text = open(path).read()
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
    res = {}
    for pct, val, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        res["p" + pct] = float(val) * unit[u]
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+(\d+) requests in", text, re.M)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    res["errors"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", text)
    res["socket_errors"] = m.group(0) if m else ""
    if "p50" not in res or "p99" not in res:
        raise SystemExit("api_report: no latency distribution in %s" % path)
    return res


def paced_figures(path):
    out = {}
    for line in open(path):
        k, _, v = line.strip().partition(" ")
        if k:
            out[k] = float(v)
    if "p99_ms" not in out:
        raise SystemExit("api_report: no figures in %s" % path)
    return out


def buckets(path, route, method):
    """{le: cumulative count} of the request-duration histogram for one route."""
    out = {}
    pat = re.compile(r'^%s_bucket\{(.*)\}\s+([\d.eE+-]+)\s*$' % METRIC)
    for line in open(path):
        m = pat.match(line.strip())
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if labels.get("route") != route or labels.get("method") != method:
            continue
        le = labels.get("le")
        out[float("inf") if le == "+Inf" else float(le)] = float(m.group(2))
    return out


def daemon_quantile(before, after, route, method, q):
    """histogram_quantile(q) over the requests between two scrapes, as a string in ms ("n/a"
    without samples; "≤ B" when it falls in the first bucket, where interpolation means nothing)."""
    b0, b1 = buckets(before, route, method), buckets(after, route, method)
    if not b1:
        return None
    les = sorted(b1)
    counts = [b1[le] - b0.get(le, 0.0) for le in les]
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for i, (le, c) in enumerate(zip(les, counts)):
        if c >= rank:
            if le == float("inf"):
                return "> %g" % (prev_le * 1000.0)
            if i == 0:
                return "≤ %g" % (le * 1000.0)
            # Linear inside the bucket, as Prometheus' histogram_quantile does.
            frac = (rank - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return "%.2f" % ((prev_le + (le - prev_le) * frac) * 1000.0)
        prev_le, prev_c = le, c
    return None


def fmt(v, digits=2):
    return "n/a" if v is None else ("%.*f" % (digits, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--read-rate", type=int, required=True)
    ap.add_argument("--write-rate", type=int, required=True)
    ap.add_argument("--nproc", required=True)
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--version", default="unknown")
    ap.add_argument("--loadavg", default="unknown")
    a = ap.parse_args()
    o = lambda name: os.path.join(a.out, name)

    rmax = wrk_figures(o("read_max.txt"))
    rpace = paced_figures(o("read_paced.txt"))
    wmax = wrk_figures(o("write_max.txt"))
    wpace = paced_figures(o("write_paced.txt"))
    rroute, wroute = ("/api/campaigns/{id}", "GET"), ("/api/leads", "POST")
    d_rmax = daemon_quantile(o("m0.txt"), o("m1.txt"), *rroute, 0.99)
    d_rpace = daemon_quantile(o("m1.txt"), o("m2.txt"), *rroute, 0.99)
    d_wmax = daemon_quantile(o("m2.txt"), o("m3.txt"), *wroute, 0.99)
    d_wpace = daemon_quantile(o("m3.txt"), o("m4.txt"), *wroute, 0.99)

    s = a.seconds
    rows = [
        ("GET /api/campaigns/{id}", "max (wrk -t2 -c16 -d%ds)" % s, rmax["rps"], rmax["p50"], None,
         rmax["p99"], rmax["errors"], d_rmax),
        ("GET /api/campaigns/{id}", "fixed %d req/s (api_paced, 16 conns)" % a.read_rate,
         rpace["achieved_rps"], rpace["p50_ms"], rpace["p95_ms"], rpace["p99_ms"],
         int(rpace["errors"]), d_rpace),
        ("POST /api/leads", "max (wrk -t2 -c16 -d%ds)" % s, wmax["rps"], wmax["p50"], None,
         wmax["p99"], wmax["errors"], d_wmax),
        ("POST /api/leads", "fixed %d req/s (api_paced, 16 conns)" % a.write_rate,
         wpace["achieved_rps"], wpace["p50_ms"], wpace["p95_ms"], wpace["p99_ms"],
         int(wpace["errors"]), d_wpace),
    ]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    read_p99 = rpace["p99_ms"]
    verdict = "meets" if read_p99 < READ_TARGET_MS and rpace["errors"] == 0 else "misses"
    worst_p95 = max(rpace["p95_ms"], wpace["p95_ms"])

    lines = [
        "## API",
        "",
        "`make bench` (bench/run.sh → bench/api_bench.sh). The daemon runs on loopback with a fresh "
        "SQLite store, `REVOVOICE_RATE_LIMIT_RPS=0`, log level warn; an admin, an API key (sent as "
        "`X-API-Key` on every request) and a campaign holding 1,000 leads (CSV import) are created "
        "first. Each run lasts %d s. Client and daemon share the machine's cores." % s,
        "",
        "- Machine: %s CPUs (`nproc`), %s" % (a.nproc, a.cpu),
        "- Date: %s; %s" % (today, a.version),
        "- Load average just before the run: %s (anything well above 0 means other work shared "
        "the cores and the figures are pessimistic)." % a.loadavg,
        "- Max-throughput runs: `wrk -t2 -c16 -d%ds --latency -s bench/wrk_api.lua URL` "
        "(closed loop: latency at saturation)." % s,
        "- Fixed-rate runs: `bench/api_paced` (libcurl multi, open loop); each request's latency "
        "is counted from the moment it was due, so server stalls are not hidden by the client "
        "slowing down. Writes post a new lead with a phone number no other request uses.",
        "- \"daemon p99\" is the daemon's own `%s` histogram for that route over the same "
        "window (difference of two /metrics scrapes, interpolated inside buckets whose bounds "
        "are 0.5, 1, 2.5, 5, 10 ms…; it covers handling until the response is queued, not the "
        "network)." % METRIC,
        "",
        "| route | load | req/s | p50 ms | p95 ms | p99 ms | non-2xx | daemon p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for route, load, rps, p50, p95, p99, errs, dp99 in rows:
        lines.append("| %s | %s | %.0f | %s | %s | %s | %d | %s |" % (
            route, load, rps, fmt(p50), fmt(p95), fmt(p99), errs, dp99 or "n/a"))
    lines += [
        "",
        "Against the targets (no peer server was measured: there is no comparable HTTP API "
        "here to run the same requests against, so the figures are compared with the "
        "requirements instead):",
        "",
        "- Reads at %d requests/s: p99 %.2f ms against the 5 ms target (%.0f%% of it): **%s** "
        "the target." % (a.read_rate, read_p99, 100.0 * read_p99 / READ_TARGET_MS, verdict),
        "- The daemon's own p99 for those reads (time in the server, from the request to the "
        "queued response) was %s ms; the rest of the client-side figure is spent outside the "
        "handler: kernel, thread wake-ups and, on a shared 2-core machine, waiting for a core. "
        "Compare with the load average above before reading the client percentiles as the "
        "server's." % (d_rpace or "n/a"),
        "- The seed's \"API p95 under 200 ms\": worst fixed-rate p95 %.2f ms, %.1f%% of the "
        "limit (%.0f× under it)." % (worst_p95, 100.0 * worst_p95 / SEED_P95_MS,
                                      SEED_P95_MS / worst_p95 if worst_p95 > 0 else 0),
        "- Writes commit one SQLite transaction each (lead row and audit row); "
        "maximum write throughput %.0f requests/s with p99 %.2f ms under saturation."
        % (wmax["rps"], wmax["p99"]),
        "",
        "Raw outputs of the last run are in `bench/out/` (not committed).",
        "",
    ]
    section = "\n".join(lines)

    old = open(a.doc).read() if os.path.exists(a.doc) else "# Benchmarks\n\n"
    m = re.search(r"^## API\s*$.*?(?=^## |\Z)", old, re.M | re.S)
    if m:
        new = old[:m.start()] + section + ("\n" if old[m.end():] else "") + old[m.end():]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    os.makedirs(os.path.dirname(os.path.abspath(a.doc)), exist_ok=True)
    with open(a.doc, "w") as f:
        f.write(new)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
