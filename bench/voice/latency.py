#!/usr/bin/env python3
"""Voice-to-voice latency measured from the caller's side (issue 4, benchmark 1).

A baresip softphone calls RevoVoice (inbound, a campaign running bench/voice/loop_flow.json,
which answers every utterance with one short sentence) and plays a scripted caller track:
flite utterances (voices slt, rms, kal in turn) each followed by a silence long enough for the
reply. baresip records what it sends (dump-*-enc.wav) and what it decodes (dump-*-dec.wav);
its jitter buffer is off (jitter_buffer_delay 0-0), so a packet is decoded and written the
moment it arrives. For every utterance: the end of its speech in the sent track (10 ms
energy windows >= -40 dBFS) and the onset of the next agent speech in the received track;
the difference is the voice-to-voice latency as the peer hears it. The same is measured on the
daemon's own stereo recording (caller left, agent right, the daemon's clock) and compared with
the daemon's latency marks of the same turns (call_turns.latency).

    latency.py --bin build/revovoice --out bench/out/voice [--turns 36] [--calls 1]
Writes OUT/latency.json and keeps the recordings in OUT/latency/.
"""
import argparse
import json
import os
import shutil
import sys
import time

import vcommon as vc

THR_DB = -40.0      # speech windows in both directions (flite speech peaks near -10 dBFS)
SEARCH_S = 2.6      # an agent onset later than this after the utterance's end is not its reply


def alignment(enc_path, dec_path):
    """Both dump files are opened when the audio stream starts and written frame by frame; the
    sent track from baresip's source clock, the received one per arriving packet. Returns the
    offset (s) to add to a received-track time to put it on the sent track's clock, assuming
    both tracks end together (at the BYE), and the start-aligned alternative (0)."""
    r1, a = vc.read_mono(enc_path)
    r2, b = vc.read_mono(dec_path)
    return len(a) / r1 - len(b) / r2, len(a) / r1, len(b) / r2


def measure_pair(caller_env, agent_env, spans, offset, win_ms=10):
    """For each caller utterance span (expected position): the end of its speech in
    caller_env, and the first agent onset after it in agent_env (shifted by offset s onto the
    caller clock). Returns a list of dicts."""
    csegs = vc.segments(caller_env, THR_DB, win_ms)
    asegs = [(s + offset, e + offset) for s, e in vc.segments(agent_env, THR_DB, win_ms)]
    out = []
    for (s0, s1, text, voice) in spans:
        # The caller segment that overlaps the placed utterance best.
        cand = [c for c in csegs if c[1] > s0 - 0.5 and c[0] < s1 + 0.5]
        if not cand:
            out.append({"text": text, "voice": voice, "error": "no caller speech found"})
            continue
        end = max(c[1] for c in cand)
        busy = [a for a in asegs if a[0] < end and a[1] > end]
        nxt = [a for a in asegs if end <= a[0] <= end + SEARCH_S]
        row = {"text": text, "voice": voice, "speech_end_s": round(end, 3)}
        if busy:
            row["error"] = "agent was talking when the utterance ended"
        elif not nxt:
            row["error"] = "no agent reply within %.1f s" % SEARCH_S
        else:
            row["reply_onset_s"] = round(nxt[0][0], 3)
            row["latency_ms"] = round((nxt[0][0] - end) * 1000.0, 1)
        out.append(row)
    return out


def run_call(args, d, tok, tmp, idx, number):
    items = [(vc.UTTERANCES[(idx * 7 + i) % len(vc.UTTERANCES)], vc.VOICES[i % 3])
             for i in range(args.turns)]
    track, spans = vc.build_track(tmp, "caller%d" % idx, items, args.lead, args.gap, 2.0)
    peer = vc.Baresip(tmp, "peer%d" % idx, track)
    try:
        before = {c["id"] for c in vc.calls(d, tok)}
        peer.cmd("dial", "sip:%s@127.0.0.1:%d" % (number, d.sip_port))
        deadline = time.time() + 20
        call = None
        while time.time() < deadline and not call:
            new = [c for c in vc.calls(d, tok) if c["id"] not in before]
            call = new[0] if new and new[0]["state"] in ("answered", "ended") else None
            time.sleep(0.1)
        if not call:
            raise RuntimeError("the call was not answered")
        track_s = spans[-1][1] + args.gap + 2.0
        time.sleep(track_s + 0.5)
        peer.cmd("hangup")
        deadline = time.time() + 20
        while time.time() < deadline:
            st, row, _ = d.request("GET", "/api/calls/%d" % call["id"], token=tok)
            if row.get("state") == "ended":
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        peer.stop()
    enc, dec = peer.dumps()
    if not enc or not dec:
        raise RuntimeError("baresip wrote no recordings: %s" % peer.text()[-2000:])
    st, row, _ = d.request("GET", "/api/calls/%d" % call["id"], token=tok)
    return row, spans, enc, dec, vc.turns(d, tok, call["id"])


def analyse(row, spans, enc, dec, tl, keep):
    res = {"call_id": row["id"], "duration_ms": row.get("duration_ms"),
           "rtp_stats": row.get("rtp_stats")}
    off_end, enc_s, dec_s = alignment(enc, dec)
    res["sent_track_s"], res["received_track_s"] = round(enc_s, 3), round(dec_s, 3)
    res["end_alignment_offset_ms"] = round(off_end * 1000, 1)
    r, a = vc.read_mono(enc)
    cenv = vc.envelope_db(a, r)
    r, b = vc.read_mono(dec)
    aenv = vc.envelope_db(b, r)
    # The sent track starts with the first frame baresip encoded; our spans are positions in
    # the file it reads, so they line up with the sent track from its first sample.
    peer = measure_pair(cenv, aenv, spans, 0.0)
    peer_end = measure_pair(cenv, aenv, spans, off_end)
    for p, q in zip(peer, peer_end):
        if "latency_ms" in q:
            p["latency_end_aligned_ms"] = q["latency_ms"]
    # The daemon's own recording: caller left, agent right, one clock.
    rec = row.get("recording_path")
    daemon_rec = []
    if rec and os.path.exists(rec):
        shutil.copy(rec, os.path.join(keep, "daemon-%d.wav" % row["id"]))
        r, left = vc.read_channel(rec, 0)
        r2, right = vc.read_channel(rec, 1)
        lenv, renv = vc.envelope_db(left, r), vc.envelope_db(right, r2)
        # The recording starts at answer; the caller track's first sample arrives a few
        # tens of ms later: place the spans by the first caller speech.
        lsegs = vc.segments(lenv, THR_DB)
        shift = (lsegs[0][0] - spans[0][0]) if lsegs else 0.0
        daemon_rec = measure_pair(lenv, renv, [(s + shift, e + shift, t, v)
                                               for s, e, t, v in spans], 0.0)
    res["recording_shift_s"] = None
    # The daemon's marks: agent turns with latency, in order, one per answered utterance.
    marks = [t["latency"] for t in tl if t["speaker"] == "agent" and t.get("latency")]
    caller_rows = [t for t in tl if t["speaker"] == "caller"]
    res["caller_turns"] = len(caller_rows)
    res["agent_turns_with_latency"] = len(marks)
    res["transcripts"] = [t["text"] for t in caller_rows]
    res["turns"] = []
    for i, p in enumerate(peer):
        t = dict(p)
        if i < len(daemon_rec) and "latency_ms" in daemon_rec[i]:
            t["daemon_recording_ms"] = daemon_rec[i]["latency_ms"]
        res["turns"].append(t)
    res["marks"] = marks
    return res


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "p50": round(vc.pct(xs, 50), 1), "p95": round(vc.pct(xs, 95), 1),
            "max": round(max(xs), 1), "min": round(min(xs), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(vc.ROOT, "build", "revovoice"))
    ap.add_argument("--out", default=os.path.join(vc.ROOT, "bench", "out", "voice"))
    ap.add_argument("--turns", type=int, default=36)
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--gap", type=float, default=3.0)
    ap.add_argument("--lead", type=float, default=3.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--end-silence-ms", type=int, default=0)
    ap.add_argument("--tag", default="latency")
    args = ap.parse_args()
    keep = os.path.join(args.out, args.tag)
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    cfg = vc.daemon_config(args.workers, rtp_ports=vc.harness_rtp_range())
    if args.end_silence_ms:
        cfg += "  end_silence_ms: %d\n" % args.end_silence_ms
    info = vc.machine()
    d = vc.harness.Daemon(bin_path=os.path.abspath(args.bin), config=cfg, agent=True)
    d.start()
    results = []
    try:
        number = "+14155550900"
        tok, _ = vc.setup_campaign(d, number)
        for i in range(args.calls):
            row, spans, enc, dec, tl = run_call(args, d, tok, keep, i, number)
            results.append(analyse(row, spans, enc, dec, tl, keep))
        st, metrics, _ = d.request("GET", "/metrics", token=tok)
    finally:
        d.stop()
        shutil.rmtree(d.data_dir, ignore_errors=True)
    turns = [t for r in results for t in r["turns"]]
    marks = [m for r in results for m in r["marks"]]
    stages = ["endpoint_ms", "stt_final_ms", "reply_ready_ms", "tts_first_ms", "audio_out_ms"]
    out = {
        "machine": info,
        "command": " ".join([os.path.relpath(sys.argv[0], vc.ROOT)] + sys.argv[1:]),
        "config": {"turns_per_call": args.turns, "calls": args.calls, "gap_s": args.gap,
                   "workers": args.workers, "end_silence_ms": args.end_silence_ms or 700,
                   "threshold_db": THR_DB, "baresip_jitter_buffer": "off"},
        "peer": summary([t.get("latency_ms") for t in turns]),
        "peer_end_aligned": summary([t.get("latency_end_aligned_ms") for t in turns]),
        "daemon_recording": summary([t.get("daemon_recording_ms") for t in turns]),
        "marks": {s: summary([m.get(s) for m in marks]) for s in stages},
        "errors": [t for t in turns if "error" in t],
        "calls": results,
    }
    with open(os.path.join(args.out, args.tag + ".json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: out[k] for k in ("peer", "peer_end_aligned", "daemon_recording",
                                          "marks")}, indent=1))
    print("errors: %d" % len(out["errors"]))


if __name__ == "__main__":
    main()
