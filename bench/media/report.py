#!/usr/bin/env python3
"""Media-plane benchmark report (bench/media_bench.sh).

    report.py --summary FILE.json          one line about one run, for the console
    report.py --out DIR --print            the Media plane section as Markdown on stdout
    report.py --out DIR --doc BENCHMARKS.md   replace (or append) the "## Media plane" section

DIR holds meta.txt and the <target>-<N>.json files of bench/media/run_load.py. Other sections
of the document are left as they are.
"""
import argparse
import json
import os
import re
import sys

TARGET_PER_CORE = 1000
ASTERISK_PER_CORE = 240
HEADING = "## Media plane"


def load(path):
    with open(path) as f:
        return json.load(f)


def meta(out):
    m = {}
    with open(os.path.join(out, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                m[k] = v
    return m


def fmt(v, spec="%s", none="n/a"):
    return none if v is None else spec % v


def thousands(v):
    return "n/a" if v is None else "{:,}".format(v)


def summary(r):
    s = "%s %d calls: %s, window %.0f s, %.3f cores, %.4f CPU s per call-minute (%s calls/core)" % (
        r["target"], r["calls"], "ok" if r.get("ok") else "PROBLEMS %s" % r.get("problems"),
        r.get("window_s") or 0, r.get("cpu_cores") or 0, r.get("cpu_s_per_call_min") or 0,
        fmt(r.get("calls_per_core")))
    s += ", kernel drops %s" % fmt(r.get("target_socket_drops"))
    if r["target"] == "revovoice":
        s += ", received %s%% of sent, jitter mean %s ms max %s ms, skipped frames %s" % (
            fmt(r.get("rx_vs_talk_pct")), fmt(r.get("jitter_ms_mean")),
            fmt(r.get("jitter_ms_max")), fmt(r.get("frames_skipped")))
    return s


def results(out):
    rs = []
    for f in os.listdir(out):
        m = re.match(r"(revovoice|echo)-(\d+)\.json$", f)
        if m:
            rs.append(load(os.path.join(out, f)))
    rs.sort(key=lambda r: (r["calls"], r["target"] != "revovoice"))
    return rs


def section(out):
    m = meta(out)
    rs = results(out)
    if not rs:
        sys.exit("report: no results in %s" % out)
    lines = [HEADING, ""]
    lines.append(
        "`make bench` (bench/run.sh → bench/media_bench.sh → bench/media/run_load.py). On "
        "loopback, sipp (`bench/media/uac_stream.xml`) places N concurrent calls at %s calls/s, "
        "each offering PCMA and streaming the speech of `/usr/share/sip-tester/g711a.pcap` in a "
        "loop with sipp's `rtp_stream` (20 ms packets, continuous sequence numbers, one SSRC per "
        "call), and hangs up after %s s. Two answerers take the same calls in the same run, one "
        "after the other:" % (m.get("rate"), m.get("hold")))
    lines.append("")
    lines.append(
        "- **RevoVoice**: `revovoice answer --keep-open --quiet` (the play-and-record flow): it "
        "answers with PCMA, plays a prompt as long as the call (the same speech, so it sends "
        "audio the whole time) and records both sides of every call to a 16 kHz stereo WAV "
        "(in `%s`), all on one media loop thread plus one writer thread per recording." %
        re.sub(r"\.\d+$", ".PID", m.get("rec_dir", "?")))
    lines.append(
        "- **sipp echo** (`sipp -sn uas -rtp_echo`): answers and sends every RTP packet back; "
        "no decoding, no jitter buffer, no recording: a lower bound for moving the packets.")
    lines.append("")
    lines.append(
        "CPU is the answering process's utime+stime (`/proc/PID/stat`, all threads) over a "
        "steady-state window that starts 3 s after the last call was placed and ends 1 s before "
        "the first hang-up; sipp's per-second statistics confirm all N calls were up throughout "
        "it. CPU seconds per call-minute = CPU seconds ÷ (N × window ÷ 60); calls per core = "
        "N × window ÷ CPU seconds (what one core would carry at that cost, if the work could "
        "spread over cores: RevoVoice's media loop is one thread, so one loop tops out at one "
        "core). RevoVoice's loss is from its per-call report: packets received against the "
        "call's talk time ÷ 20 ms (the caller streams from its ACK to its BYE), so a few tenths "
        "of a percent are timing, not loss. \"Kernel drops\" are the `drops` column of "
        "/proc/net/udp for the answerer's own sockets at the end of the window (datagrams that "
        "arrived while the socket's receive buffer was full, i.e. while the answerer did not keep "
        "up), against what the caller had sent by then; sipp's echo keeps no usable counters, so "
        "that is its loss figure. \"tx on time\" compares the packets RevoVoice sent with talk "
        "time ÷ 20 ms (the caller only sends — sipp's rtp_stream never reads what comes back — so "
        "what reached the far end is not counted there); frames skipped are 20 ms ticks given "
        "up after the loop fell more than 200 ms behind. Jitter is RevoVoice's RFC 3550 "
        "interarrival jitter per call (mean, 99th percentile and maximum over the calls; the "
        "arrival time is taken when the loop reads the packet, so a loop that lags shows up "
        "here); sipp's echo computes none. RevoVoice's own gap counter (`rx_lost`) is not used: "
        "it comes from libre's jitter-buffer statistics, which Debian's libre is built without, "
        "so it is always 0.")
    lines.append("")
    lines.append("- Machine: %s CPUs (`nproc`), %s, %s GiB; Linux %s" % (
        m.get("nproc"), m.get("cpu"), m.get("mem_gb"), m.get("kernel")))
    dirty = m.get("dirty", "0")
    lines.append("- Date: %s; revovoice %s (%s%s); %s" % (
        m.get("date"), m.get("version"), m.get("commit"),
        "" if dirty in ("0", "") else " + uncommitted changes in src/", m.get("sipp")))
    lines.append("- Command: `%s` (raw outputs in `bench/out/media/`)" % m.get("command"))
    loads = ["%s/%s: %s" % (k.split("_")[1], k.split("_")[2], v)
             for k, v in sorted(m.items(), key=lambda kv: (kv[0].count("_"), kv[0]))
             if k.startswith("load_")]
    lines.append("- Load average before each run (answerer/N: 1, 5, 15 min; other work on the "
                 "2 cores makes the figures pessimistic): " + "; ".join(loads))
    lines.append("")
    lines.append("| N | answerer | window s | CPU cores | CPU s / call-min | calls / core "
                 "| received / sent | kernel drops | tx on time | jitter ms mean / p99 / max "
                 "| caller sipp cores | problems |")
    lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for r in rs:
        rv = r["target"] == "revovoice"
        lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["calls"], "RevoVoice" if rv else "sipp echo", fmt(r.get("window_s"), "%.0f"),
            fmt(r.get("cpu_cores"), "%.3f"), fmt(r.get("cpu_s_per_call_min"), "%.4f"),
            thousands(r.get("calls_per_core")),
            fmt(r.get("rx_vs_talk_pct"), "%.2f%%") if rv else "n/a",
            "%s (%s%%)" % (thousands(r.get("target_socket_drops")),
                           fmt(r.get("target_drop_pct"), "%.3f")),
            ("%s (%s skipped)" % (fmt(r.get("tx_vs_talk_pct"), "%.2f%%"),
                                  thousands(r.get("frames_skipped")))) if rv else "n/a",
            ("%s / %s / %s" % (fmt(r.get("jitter_ms_mean"), "%.2f"),
                               fmt(r.get("jitter_ms_p99"), "%.2f"),
                               fmt(r.get("jitter_ms_max"), "%.2f"))) if rv else "n/a",
            fmt(r.get("caller_cpu_cores"), "%.3f"),
            "; ".join(r.get("problems") or []) or "none"))
    lines.append("")
    lines.append("Against the target (%s concurrent G.711 calls per core with zero loss; "
                 "Asterisk publishes about %s per core):" % (thousands(TARGET_PER_CORE),
                                                             ASTERISK_PER_CORE))
    lines.append("")
    for r in rs:
        if r["target"] != "revovoice":
            continue
        echo = next((e for e in rs if e["target"] == "echo" and e["calls"] == r["calls"]), None)
        cpc = r.get("calls_per_core")
        zero = (r.get("target_socket_drops") == 0 and r.get("frames_skipped") == 0 and
                (r.get("rx_vs_talk_pct") or 0) >= 99.5)
        verdict = "**meets** the target" if (cpc and cpc >= TARGET_PER_CORE and zero and
                                             r.get("ok")) else "**falls short** of the target"
        s = "- %s calls: %s calls per core at %.4f CPU s per call-minute, %s; %s" % (
            thousands(r["calls"]), thousands(cpc),
            r.get("cpu_s_per_call_min") or 0,
            "no loss" if zero else "%s received, %s kernel drops, %s skipped frames" % (
                fmt(r.get("rx_vs_talk_pct"), "%.2f%%"), thousands(r.get("target_socket_drops")),
                thousands(r.get("frames_skipped"))),
            verdict)
        if cpc:
            s += " (%.1f× Asterisk's figure)" % (cpc / ASTERISK_PER_CORE)
        if echo and echo.get("cpu_s_per_call_min") and r.get("cpu_s_per_call_min"):
            s += "; %.1f× the CPU of sipp's bare echo" % (r["cpu_s_per_call_min"] /
                                                          echo["cpu_s_per_call_min"])
        if not r.get("ok"):
            s = ("- %s calls: **fails**: %s; the media loop used %s cores, %s of the caller's "
                 "packets were received, %s were dropped by the kernel at full receive buffers "
                 "and %s ticks were skipped (its cost figures describe an overloaded loop, not a "
                 "steady state)" % (
                     thousands(r["calls"]), "; ".join(r.get("problems") or []),
                     fmt(r.get("cpu_cores"), "%.3f"), fmt(r.get("rx_vs_talk_pct"), "%.2f%%"),
                     thousands(r.get("target_socket_drops")), thousands(r.get("frames_skipped"))))
        lines.append(s + ".")
    lines.append("")
    lines.append("Where the time goes and what would close the gap: see \"Media plane: "
                 "profile\" below (written by hand, not by the benchmark).")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary")
    ap.add_argument("--out")
    ap.add_argument("--print", action="store_true")
    ap.add_argument("--doc")
    a = ap.parse_args()
    if a.summary:
        if os.path.exists(a.summary):
            print("media_bench: " + summary(load(a.summary)))
        return
    text = section(a.out)
    if a.print:
        print(text)
    if a.doc:
        old = open(a.doc).read() if os.path.exists(a.doc) else "# Benchmarks\n"
        pat = re.compile(r"^## Media plane[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
        if pat.search(old):
            new = pat.sub(lambda _: text + "\n", old, count=1)
        else:
            new = old.rstrip("\n") + "\n\n" + text + "\n"
        with open(a.doc, "w") as f:
            f.write(new)


if __name__ == "__main__":
    main()
