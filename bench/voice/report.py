#!/usr/bin/env python3
"""Writes the "Voice-to-voice latency" and "AI calls per core" sections of docs/BENCHMARKS.md
from bench/voice/latency.py's and load.py's JSON (other sections are left as they are).

    report.py OUTDIR DOC [REVISION]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import vcommon as vc


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def flite_lead_ms(text, voice="rms"):
    """Silence flite puts before the first sound of `text` (first 10 ms window >= -40 dBFS)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "x.wav")
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", p], check=True, timeout=60)
        r, a = vc.read_mono(p)
        segs = vc.segments(vc.envelope_db(a, r), -40.0)
        return segs[0][0] * 1000 if segs else None


def f(x, nd=0):
    return "—" if x is None else ("%.*f" % (nd, x))


def latency_section(lat, rev):
    if not lat:
        return "## Voice-to-voice latency\n\nNot measured (bench/voice/latency.py did not run).\n"
    m, cfg = lat["machine"], lat["config"]
    turns = [t for c in lat["calls"] for t in c["turns"]]
    marks = [x for c in lat["calls"] for x in c["marks"]]
    peer, rec = lat["peer"], lat["daemon_recording"]
    with open(vc.FLOW) as fh:
        flow = json.load(fh)
    replies = [s["say"] for s in flow["states"].values()]
    leads = [flite_lead_ms(r) for r in replies]
    lead = sum(leads) / len(leads)
    # Per-turn stage deltas (only turns the peer measured and the daemon marked, in order).
    paired = []
    for c in lat["calls"]:
        for t, mk in zip(c["turns"], c["marks"]):
            if "latency_ms" in t:
                paired.append((t, mk))
    ep = {}
    for _, mk in paired:
        ep.setdefault(int(round(mk["endpoint_ms"])), []).append(mk)

    def med(xs):
        return vc.pct(xs, 50) if xs else None

    d_stt = med([mk["stt_final_ms"] - mk["endpoint_ms"] for _, mk in paired])
    d_dlg = med([mk["reply_ready_ms"] - mk["stt_final_ms"] for _, mk in paired])
    d_tts = med([mk["tts_first_ms"] - mk["reply_ready_ms"] for _, mk in paired])
    d_out = med([mk["audio_out_ms"] - mk["tts_first_ms"] for _, mk in paired])
    d_rec = med([t["daemon_recording_ms"] - mk["audio_out_ms"] for t, mk in paired
                 if "daemon_recording_ms" in t])
    d_peer = med([t["latency_ms"] - t["daemon_recording_ms"] for t, mk in paired
                  if "daemon_recording_ms" in t])
    d_all = med([t["latency_ms"] - mk["audio_out_ms"] for t, mk in paired])

    L = ["## Voice-to-voice latency", "",
         "`make bench` (bench/run.sh → bench/voice/run.sh → bench/voice/latency.py). A baresip "
         "softphone calls RevoVoice on loopback (inbound, PCMU; a campaign running "
         "bench/voice/loop_flow.json, which answers every utterance with one short sentence, "
         "flite rms) and plays a scripted caller track: %d short answers in flite voices slt, "
         "rms and kal in turn, each followed by %.1f s of silence. baresip records what it "
         "sends and what it receives (sndfile module; its jitter buffer is off, "
         "`jitter_buffer_delay 0-0`, so a packet is decoded and written when it arrives). "
         "For every utterance: the end of the caller's speech in the sent track and the onset "
         "of the agent's reply in the received track (10 ms windows at or above %.0f dBFS); "
         "the difference is the silence the caller hears before the agent speaks."
         % (cfg["turns_per_call"] * cfg["calls"], cfg["gap_s"], cfg["threshold_db"]), "",
         "- Machine: %d CPUs, %s; date: %s; revovoice %s; load average before the run: %s."
         % (m["nproc"], m["cpu"], m["date"], rev, " ".join("%.2f" % x for x in m["load"])),
         "- Command: `%s`; speech.workers %d, speech.end_silence_ms %d (defaults otherwise: "
         "embedded pocketsphinx STT, flite TTS, semantic endpoint 300 ms, mid-sentence "
         "1500 ms)." % (lat["command"], cfg["workers"], cfg["end_silence_ms"]),
         "- Both recordings start with the audio stream; they end within %s ms of each other "
         "(%s s sent, %s s received), so the two tracks share baresip's clock."
         % (f(abs(lat["calls"][0]["end_alignment_offset_ms"])),
            f(lat["calls"][0]["sent_track_s"], 2), f(lat["calls"][0]["received_track_s"], 2)),
         "", "| measured where | turns | p50 ms | p95 ms | max ms | min ms |",
         "|---|---:|---:|---:|---:|---:|"]

    def row(name, s):
        if s:
            L.append("| %s | %d | %s | %s | %s | %s |" % (name, s["n"], f(s["p50"]),
                                                          f(s["p95"]), f(s["max"]),
                                                          f(s["min"])))
    row("**peer (baresip's recordings): caller speech end → agent audio heard**", peer)
    row("daemon's call recording (caller left, agent right, the daemon's clock)", rec)
    for s in ("endpoint_ms", "stt_final_ms", "reply_ready_ms", "tts_first_ms",
              "audio_out_ms"):
        row("daemon mark `%s` (call_turns.latency)" % s[:-3], lat["marks"].get(s))
    L += ["", "Errors (an utterance with no reply found, or the agent still talking): %d."
          % len(lat["errors"]), ""]
    L += ["Against the targets (p50 ≤ 300 ms, p95 ≤ 500 ms on the embedded stack): p50 %s ms "
          "and p95 %s ms as the caller hears it: **%s**." % (
              f(peer["p50"]), f(peer["p95"]),
              "meets them" if peer["p50"] <= 300 and peer["p95"] <= 500 else "misses them"), ""]
    L += ["Where the time goes (medians over the turns; the daemon's marks count from the end "
          "of the caller's last voiced frame as its VAD saw it):", ""]
    L.append("| step | ms |")
    L.append("|---|---:|")
    for v in sorted(ep):
        L.append("| end-of-turn silence %d ms (%d turns%s) | %d |" % (
            v, len(ep[v]), {300: ": the partial transcript already answers (semantic endpoint)",
                            700: ": the default silence (the answer is out of the flow's "
                                 "intents, or \"provide_info\")",
                            1500: ": the partial ends like an unfinished sentence (a digit "
                                  "word, \"i\", \"is\"…)"}.get(v, ""), v))
    L += ["| STT final decode (endpoint → stt_final) | %s |" % f(d_stt, 1),
          "| dialog turn (stt_final → reply_ready) | %s |" % f(d_dlg, 1),
          "| first TTS chunk (reply_ready → tts_first; flite streams) | %s |" % f(d_tts, 1),
          "| first 100 ms chunk queued → first RTP packet (tts_first → audio_out; the 20 ms "
          "tick) | %s |" % f(d_out, 1),
          "| audio_out → audible onset in the daemon's recording | %s |" % f(d_rec, 1),
          "| … of which flite's leading silence before the first sound (\"%s\", measured "
          "directly) | %s |" % ("\", \"".join(replies), f(lead)),
          "| the daemon's recording → the peer (receive path: baresip's 20 ms source frames, "
          "loopback, RevoVoice's jitter buffer (min 1 frame) and 20 ms tick, before the VAD "
          "sees the audio) | %s |" % f(d_peer, 1),
          "| total: peer-measured latency − daemon's audio_out mark | %s |" % f(d_all, 1), ""]
    L += ["So the daemon's `audio_out` mark under-reads what the caller hears by about "
          "%s ms: the marks start at the VAD's end of speech, which the daemon sees one "
          "receive path (~%s ms) after the caller stopped, and end at the first RTP packet of "
          "the reply, which starts with flite's ~%s ms of leading silence. A phone adds its own "
          "playout buffer on top (baresip's default `jitter_buffer_delay 5-10` holds 5 frames, "
          "100 ms; it was off here)." % (f(d_all), f(d_peer), f(lead)), "",
          "Per-turn figures, transcripts and the recordings of the last run: "
          "bench/out/voice/latency.json, bench/out/voice/latency/.", ""]
    return "\n".join(L)


def load_section(runs, rev):
    L = ["## AI calls per core", "",
         "`make bench` (bench/run.sh → bench/voice/run.sh → bench/voice/load.py). The daemon "
         "runs pinned to CPU 0 (affinity set before it starts, so all its threads stay there) "
         "with speech.workers W; N baresip softphones pinned to CPU 1 call it at once "
         "(inbound, bench/voice/loop_flow.json, no recording) and each plays 12 short flite "
         "utterances (slt/rms/kal) 3 s apart, start times staggered over ~4.5 s so turns do "
         "not line up. Before them, N warm-up calls each say one sentence at the same moment: the "
         "STT engine starts with one pocketsphinx decoder and loads another, on the speech "
         "worker, whenever more utterances are decoded at once than it has, so after the "
         "warm-up its pool covers N, as in a daemon that has already run at this load (the "
         "last table is without the warm-up). Latency is the daemon's own marks of every "
         "answered turn (call_turns.latency, from the caller's end of speech as the VAD saw "
         "it; add ~%s ms for what the caller hears, see above); CPU is the daemon's "
         "utime+stime over the "
         "window in which all calls were up. \"After the endpoint\" is audio_out − endpoint per "
         "turn: the processing the CPU decides (final decode, dialog, synthesis, queueing on "
         "the worker and the loop), while the endpoint silence (300/700/1500 ms) depends on "
         "what was said, so the load criterion is read on both. \"Turns answered\" counts "
         "agent replies against the utterances played: turns lost to a late or merged "
         "endpoint show there. \"Peer-measured\" is the same turns from the callers' side, as "
         "in the section above (end of each utterance in what the peer sent → onset of the "
         "reply in what it received; in brackets the turns measured). \"Daemon waiting for "
         "the CPU\" is the time its threads were runnable but not running, per second "
         "(schedstat): its own threads queueing behind "
         "each other, and other work on CPU 0 (the machine is shared)." %
         "LEADPLUS", ""]
    any_run = False
    for label, data in runs:
        if not data or not data["runs"]:
            continue
        any_run = True
        m = data["machine"]
        L += ["**%s** — machine: %d CPUs, %s; date: %s; revovoice %s; load average "
              "before: %s; command: `%s`." % (label, m["nproc"], m["cpu"], m["date"], rev,
                                             " ".join("%.2f" % x for x in m["load"]),
                                             data["command"]), "",
              "| N calls | daemon CPU (cores) | turns answered / utterances | **peer-measured p50 "
              "/ p95 / max ms** | audio_out p50 / p95 "
              "/ max ms | after the endpoint p50 / p95 / max ms | endpoint p50 / p95 ms | "
              "STT decoders loaded | daemon waiting for the CPU | peers' CPU |",
              "|---:|---:|---:|---|---|---|---|---:|---:|---:|"]
        for r in data["runs"]:
            a, s, e = r.get("audio_out_ms"), r.get("after_endpoint_ms"), r.get("endpoint_ms")
            w, pm = r.get("daemon_wait_for_cpu"), r.get("peer_ms")
            L.append("| %d | %.2f | %d / %d | %s | %s / %s / %s | %s / %s / %s | %s / %s | %s | "
                     "%s | %.2f |"
                     % (r["calls"], r["daemon_cpu_cores"], r["answered_turns"], r["utterances"],
                        "%s / %s / %s (%d)" % (f(pm["p50"]), f(pm["p95"]), f(pm["max"]), pm["n"])
                        if pm else "—",
                        f(a and a["p50"]), f(a and a["p95"]), f(a and a["max"]),
                        f(s and s["p50"]), f(s and s["p95"]), f(s and s["max"]),
                        f(e and e["p50"]), f(e and e["p95"]),
                        f(r.get("decoder_loads")), "—" if w is None else "%.2f" % w,
                        r["peers_cpu_cores"]))
        for key, what in (("peer_ms", "the peer-measured latency"),
                          ("audio_out_ms", "audio_out"),
                          ("after_endpoint_ms", "the part after the endpoint")):
            base = data["runs"][0].get(key)
            if not base:
                continue
            lim = 2 * base["p95"]
            rs = [r for r in data["runs"] if r.get(key)]
            over = [r["calls"] for r in rs if r[key]["p95"] > lim]
            ok = [r["calls"] for r in rs if r[key]["p95"] <= lim and
                  (not over or r["calls"] < min(over))]
            L += ["", "p95 of %s doubles (above %s ms, twice the %d-call p95): %s." % (
                what, f(lim), data["runs"][0]["calls"],
                ("first at N = %d; the largest N below it held it: %d" % (min(over), max(ok or
                                                                                         [0])))
                if over else "not within the N measured (up to %d)" % max(ok))]
        L.append("")
    if not any_run:
        L.append("Not measured (bench/voice/load.py did not run).")
    else:
        L += ["How to read the doubling lines: each call plays its own rotation of the same "
              "utterance list, so the endpoint silences differ between runs (the N = 1 run "
              "happens to hold no utterance that waits the 1500 ms mid-sentence silence; "
              "from N = 2 on some do). The p95 of audio_out and of the peer-measured "
              "latency against N = 1 therefore also compares utterance mixes; the column "
              "\"after the endpoint\" and the p50s are the load-sensitive figures. The CPU "
              "column shows the core was never saturated: the latency grows because the "
              "speech worker threads do every call's VAD, STT, dialog and TTS one message "
              "at a time, so one call's final decode or synthesis waits behind others'.", ""]
    return "\n".join(L) + "\n"


def replace_section(text, title, body):
    m = re.search(r"^## %s\n.*?(?=^## |\Z)" % re.escape(title), text, flags=re.S | re.M)
    if m:
        return text[:m.start()] + body.rstrip("\n") + "\n\n" + text[m.end():]
    return text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"


def main():
    out, doc = sys.argv[1], sys.argv[2]
    rev = sys.argv[3] if len(sys.argv) > 3 else "?"
    lat = load(os.path.join(out, "latency.json"))
    sec1 = latency_section(lat, rev)
    lead_plus = "200"
    m = re.search(r"total: peer-measured latency − daemon's audio_out mark \| ([0-9.]+)", sec1)
    if m:
        lead_plus = "%.0f" % float(m.group(1))
    sec1 += ("\nPer-engine figures behind these stages: STT word error rate and real-time "
             "factor in the \"STT\" section, TTS time to first audio per engine in the \"TTS\" "
             "section, the VAD's end-of-speech accuracy and the end-of-turn silences it "
             "supports in the \"VAD\" section (docs/adr/0008-vad.md).\n")
    sec2 = load_section([
        ("speech.workers 1, warm STT decoder pool",
         load(os.path.join(out, "load-w1.json"))),
        ("speech.workers 2, warm STT decoder pool",
         load(os.path.join(out, "load-w2.json"))),
        ("speech.workers 1, fresh daemon (one STT decoder, more loaded on demand)",
         load(os.path.join(out, "load-w1-cold.json")))], rev)
    sec2 = sec2.replace("LEADPLUS", lead_plus)
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
    text = replace_section(text, "Voice-to-voice latency", sec1)
    text = replace_section(text, "AI calls per core", sec2)
    with open(doc, "w") as fh:
        fh.write(text)
    print("voice bench: wrote the Voice-to-voice latency and AI calls per core sections of %s"
          % doc)


if __name__ == "__main__":
    main()
