#!/usr/bin/env python3
"""AI calls per core (issue 4, benchmark 4): how many concurrent voice-agent calls one core
carries before the turn latency p95 doubles.

The daemon runs pinned to CPU 0 (its affinity is set before it starts, so every thread it
creates stays there) with speech.workers W. N baresip softphones, pinned to CPU 1 with this
script, each call it at staggered times (inbound, bench/voice/loop_flow.json) and play a caller
track of short flite utterances separated by silences long enough for the reply. Latency comes
from the daemon's marks of every answered turn (call_turns.latency: endpoint, stt_final,
reply_ready, tts_first, audio_out, from the end of the caller's speech); CPU is the daemon's
utime+stime over the time all calls were up.

    load.py --bin build/revovoice --out bench/out/voice --workers 1 --calls 1,2,4,8
Writes OUT/load-w<W>.json.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

import latency
import vcommon as vc

STAGES = ["endpoint_ms", "stt_final_ms", "reply_ready_ms", "tts_first_ms", "audio_out_ms"]


def warm_up(d, tok, number, n, tmp):
    """N calls that each say one sentence at the same moment, then hang up: the STT engine
    loads a decoder for every utterance decoded at once (on the speech worker, the first
    time), so afterwards its pool covers N, as in a daemon that has run at this load before.
    Returns how many decoders were loaded."""
    before = d.read_log().count("decoders busy")
    track, spans = vc.build_track(tmp, "warm%d" % n, [("Hello, I am just warming up.", "rms")],
                                  3.0, 4.0, 0.5)
    peers = []
    try:
        peers = [vc.Baresip(tmp, "w%d-%d" % (n, i), track) for i in range(n)]
        known = {c["id"] for c in vc.calls(d, tok)}
        for p in peers:
            p.cmd("dial", "sip:%s@127.0.0.1:%d" % (number, d.sip_port))
        time.sleep(spans[-1][1] + 4.0)
        for p in peers:
            p.cmd("hangup")
        deadline = time.time() + 30
        while time.time() < deadline:
            if all(c["state"] == "ended" for c in vc.calls(d, tok) if c["id"] not in known):
                break
            time.sleep(0.3)
    finally:
        for p in peers:
            p.stop()
    return d.read_log().count("decoders busy") - before


def one_run(args, n, tmp):
    cfg = vc.daemon_config(args.workers, rtp_ports=vc.harness_rtp_range(4 * n + 40),
                           log_level="info")
    d = vc.harness.Daemon(bin_path=os.path.abspath(args.bin), config=cfg, agent=True)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {args.daemon_cpu})
    try:
        d.start()
    finally:
        os.sched_setaffinity(0, {args.peer_cpu} if args.peer_cpu in allowed else allowed)
    peers = []
    res = {"calls": n, "workers": args.workers}
    try:
        number = "+14155550910"
        tok, _ = vc.setup_campaign(d, number, recording="never")
        rnd = random.Random(n)
        utts = 0
        track_s = 0.0
        for i in range(n):
            items = [(vc.UTTERANCES[(i * 5 + k) % len(vc.UTTERANCES)], vc.VOICES[(i + k) % 3])
                     for k in range(args.turns)]
            lead = 3.5 + rnd.uniform(0, args.gap + 1.5)  # staggers the turns of the calls
            track, spans = vc.build_track(tmp, "c%d-%d" % (n, i), items, lead, args.gap, 1.0)
            track_s = max(track_s, spans[-1][1] + args.gap + 1.0)
            utts += len(spans)
            peers.append(vc.Baresip(tmp, "p%d-%d" % (n, i), track))
            peers[-1].spans = spans
        if args.warmup:
            res["warmup_decoder_loads"] = warm_up(d, tok, number, n, tmp)
        warm_ids = {c["id"] for c in vc.calls(d, tok)}
        loads0 = d.read_log().count("decoders busy")
        for p in peers:
            p.cmd("dial", "sip:%s@127.0.0.1:%d" % (number, d.sip_port))
            time.sleep(0.05)
        deadline = time.time() + 30
        while time.time() < deadline:
            up = [c for c in vc.calls(d, tok) if c["state"] == "answered"]
            if len(up) >= n:
                break
            time.sleep(0.2)
        t0, c0, w0 = time.time(), vc.cpu_s(d.proc.pid), vc.run_delay_s(d.proc.pid)
        pc0 = sum(vc.cpu_s(p.proc.pid) for p in peers)
        time.sleep(max(1.0, track_s - (time.time() - t0) - 0.5))
        t1, c1, w1 = time.time(), vc.cpu_s(d.proc.pid), vc.run_delay_s(d.proc.pid)
        pc1 = sum(vc.cpu_s(p.proc.pid) for p in peers)
        answered_at_end = len([c for c in vc.calls(d, tok) if c["state"] == "answered"])
        for p in peers:
            p.cmd("hangup")
        deadline = time.time() + 30
        while time.time() < deadline:
            if all(c["state"] == "ended" for c in vc.calls(d, tok)):
                break
            time.sleep(0.3)
        marks, caller_turns, empty = [], 0, 0
        skipped = 0
        for c in vc.calls(d, tok):
            if c["id"] in warm_ids:
                continue
            tl = vc.turns(d, tok, c["id"])
            marks += [t["latency"] for t in tl if t["speaker"] == "agent" and t.get("latency")]
            caller_turns += len([t for t in tl if t["speaker"] == "caller"])
            st, row, _ = d.request("GET", "/api/calls/%d" % c["id"], token=tok)
            skipped += (row.get("rtp_stats") or {}).get("frames_skipped", 0)
        res.update({
            "window_s": round(t1 - t0, 1),
            "daemon_cpu_cores": round((c1 - c0) / (t1 - t0), 3),
            "peers_cpu_cores": round((pc1 - pc0) / (t1 - t0), 3),
            "daemon_wait_for_cpu": round((w1 - w0) / (t1 - t0), 3),
            "calls_up_at_end": answered_at_end,
            "utterances": utts,
            "caller_turns": caller_turns,
            "answered_turns": len(marks),
            "frames_skipped": skipped,
            "load_before": os.getloadavg(),
        })
        for m in marks:
            if "audio_out_ms" in m and "endpoint_ms" in m:
                m["after_endpoint_ms"] = m["audio_out_ms"] - m["endpoint_ms"]
        res["marks"] = marks
        for s in STAGES + ["after_endpoint_ms"]:
            xs = [m[s] for m in marks if s in m]
            res[s] = {"p50": round(vc.pct(xs, 50), 1), "p95": round(vc.pct(xs, 95), 1),
                      "max": round(max(xs), 1)} if xs else None
        # The same turns from the callers' side: end of each utterance in what the peer sent
        # to the onset of the reply in what it received (bench/voice/latency.py's method).
        for p in peers:
            p.stop()
        peer_ms, peer_err = [], 0
        for p in peers:
            enc, dec = p.dumps()
            if not enc or not dec:
                peer_err += len(p.spans)
                continue
            r1, a = vc.read_mono(enc)
            r2, b = vc.read_mono(dec)
            for t in latency.measure_pair(vc.envelope_db(a, r1), vc.envelope_db(b, r2),
                                          p.spans, 0.0):
                if "latency_ms" in t:
                    peer_ms.append(t["latency_ms"])
                else:
                    peer_err += 1
        res["peer_ms"] = {"n": len(peer_ms), "p50": round(vc.pct(peer_ms, 50), 1),
                          "p95": round(vc.pct(peer_ms, 95), 1),
                          "max": round(max(peer_ms), 1)} if peer_ms else None
        res["peer_unmeasured"] = peer_err
        res["decoder_loads"] = d.read_log().count("decoders busy") - loads0
        res["log_errors"] = [ln for ln in d.read_log().splitlines() if '"error"' in ln][:5]
    finally:
        for p in peers:
            p.stop()
        d.stop()
        shutil.rmtree(d.data_dir, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(vc.ROOT, "build", "revovoice"))
    ap.add_argument("--out", default=os.path.join(vc.ROOT, "bench", "out", "voice"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--calls", default="1,2,4,6,8")
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--gap", type=float, default=3.0)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="measure from a fresh daemon (one STT decoder; more load on demand)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--daemon-cpu", type=int, default=0)
    ap.add_argument("--peer-cpu", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = {"machine": vc.machine(),
           "command": " ".join([os.path.relpath(sys.argv[0], vc.ROOT)] + sys.argv[1:]),
           "runs": []}
    path = os.path.join(args.out, "load-w%d%s.json" % (args.workers, args.tag))
    out["warmup"] = args.warmup
    for n in [int(x) for x in args.calls.split(",")]:
        tmp = tempfile.mkdtemp(prefix="rv-vload-")
        try:
            r = one_run(args, n, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out["runs"].append(r)
        keys = ("calls", "workers", "daemon_cpu_cores", "peers_cpu_cores", "utterances",
                "caller_turns", "answered_turns", "daemon_wait_for_cpu", "decoder_loads",
                "warmup_decoder_loads", "peer_ms", "peer_unmeasured", "audio_out_ms",
                "after_endpoint_ms", "endpoint_ms")
        print(json.dumps({k: r.get(k) for k in keys}), flush=True)
        with open(path, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
