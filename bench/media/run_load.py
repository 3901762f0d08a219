#!/usr/bin/env python3
"""One media-plane load run: sipp places N concurrent PCMA calls (bench/media/uac_stream.xml,
rtp_stream looping a raw A-law file) against one answerer on loopback, and the answerer's CPU,
packet loss and jitter are measured over a steady-state window in which all N calls are up.

    run_load.py --target revovoice --bin build/revovoice --calls N --hold S --out DIR ...
    run_load.py --target echo --calls N --hold S --out DIR ...      (sipp -sn uas -rtp_echo)

Writes DIR/<target>-<N>.json (the figures) and keeps the raw outputs in DIR/<target>-<N>/.
Exits 1 when a call failed or the window did not hold all N calls; the JSON says why.

Measured:
- CPU: utime+stime of the answerer's process (/proc/PID/stat, all threads) at the start and
  the end of the window; CPU seconds per call-minute = delta / (N x window / 60 s). The caller
  sipp's CPU is measured over the same window, for context.
- Loss at RevoVoice: its per-call report, packets received (rx_packets) against the talk time
  / 20 ms (the caller streams from its ACK to its BYE), plus tx_packets and frames_skipped for
  its own sending pace. (rx_lost, the jitter buffer's gap count, is always 0 with Debian's
  libre, built without jitter-buffer statistics.)
- Kernel drops: the "drops" column of /proc/net/udp for the answerer's own sockets (at the end
  of the window) against an estimate of what the caller had sent by then; for sipp's echo, which
  keeps no usable counters, that is its loss figure. Also the caller's socket drops and the
  machine's Udp RcvbufErrors delta.
- Jitter: RevoVoice's RFC 3550 interarrival jitter per call (sipp's echo computes none).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def free_udp_tcp(port):
    socks = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port():
    for _ in range(500):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port < 65000 and free_udp_tcp(port):
            return port
    raise RuntimeError("no free port")


def udp_ports_in_use():
    used = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    used.add(int(line.split()[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return used


def free_block(size, avoid=()):
    """First port of `size` consecutive ports no UDP socket uses now, in 20000-60999, clear of
    the blocks in `avoid` ((lo, hi) pairs)."""
    used = udp_ports_in_use()
    for base in range(20000, 61000 - size, 500):
        hi = base + size - 1
        if any(not (hi < lo2 or base > hi2) for lo2, hi2 in avoid):
            continue
        if not any(p in used for p in range(base, hi + 1)):
            return base
    raise RuntimeError("no free block of %d ports" % size)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            out.add(m.group(1))
    return out


def udp_drops(inodes):
    """(sockets, total drops) over the UDP sockets with these inodes."""
    n = drops = 0
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[9] in inodes:
                        n += 1
                        drops += int(p[12])
        except OSError:
            pass
    return n, drops


def udp_snmp():
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stat_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l.rstrip("\n").split(";") for l in f if l.strip()]
    if len(lines) < 2:
        return []
    return [dict(zip(lines[0], row)) for row in lines[1:]]


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=("revovoice", "echo"), required=True)
    ap.add_argument("--bin", help="revovoice binary (target revovoice)")
    ap.add_argument("--calls", type=int, required=True)
    ap.add_argument("--hold", type=float, required=True, help="seconds each call lasts")
    ap.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    ap.add_argument("--scenario", required=True, help="bench/media/uac_stream.xml")
    ap.add_argument("--audio", required=True, help="raw A-law file the caller loops")
    ap.add_argument("--prompt", help="WAV RevoVoice plays (as long as the call)")
    ap.add_argument("--rec-dir", help="where RevoVoice records (emptied after the run)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.target == "revovoice" and not (a.bin and a.prompt and a.rec_dir):
        ap.error("--target revovoice needs --bin, --prompt and --rec-dir")

    n = a.calls
    name = "%s-%d" % (a.target, n)
    raw = os.path.join(a.out, name)
    shutil.rmtree(raw, ignore_errors=True)
    os.makedirs(raw)
    result = {"target": a.target, "calls": n, "hold_s": a.hold, "rate_cps": a.rate,
              "ok": False, "problems": []}
    problems = result["problems"]

    with open(a.scenario) as f:
        xml = f.read().replace("@AUDIO@", os.path.abspath(a.audio))
    xml = xml.replace("@HOLD@", str(int(a.hold * 1000)))
    scen = os.path.join(raw, "uac.xml")
    with open(scen, "w") as f:
        f.write(xml)

    sip_port = free_port()
    uac_port = free_port()
    rtp_lo = free_block(max(4 * n, 2000))
    rtp_block = (rtp_lo, rtp_lo + max(4 * n, 2000) - 1)
    uac_mp = free_block(4, [rtp_block])
    peer_mp = free_block(4, [rtp_block, (uac_mp, uac_mp + 3)])

    tout = open(os.path.join(raw, "target.out"), "wb")
    terr = open(os.path.join(raw, "target.err"), "wb")
    if a.target == "revovoice":
        os.makedirs(a.rec_dir, exist_ok=True)
        cmd = [a.bin, "answer", "--sip", "127.0.0.1:%d" % sip_port, "--play", a.prompt,
               "--record-dir", a.rec_dir, "--calls", str(n), "--max-calls", str(n + 50),
               "--keep-open", "--ring-ms", "100",
               "--rtp-ports", "%d-%d" % rtp_block, "--quiet"]
        tcwd = raw
    else:
        cmd = ["sipp", "-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p", str(sip_port),
               "-mp", str(peer_mp), "-m", str(n), "-nostdin", "-trace_screen", "-trace_stat",
               "-stf", os.path.join(raw, "uas_stat.csv"), "-fd", "5", "-trace_err",
               "-error_file", os.path.join(raw, "uas_err.log")]
        tcwd = raw
    result["target_cmd"] = " ".join(cmd)
    target = subprocess.Popen(cmd, stdout=tout, stderr=terr, cwd=tcwd, preexec_fn=raise_nofile)
    uac = None
    try:
        # Wait until the answerer listens.
        deadline = time.time() + 15
        while time.time() < deadline:
            if target.poll() is not None:
                raise RuntimeError("target exited %s" % target.returncode)
            if a.target == "revovoice":
                with open(os.path.join(raw, "target.out"), "rb") as f:
                    if b"listening" in f.read():
                        break
            elif sip_port in udp_ports_in_use():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("target did not start")

        ucmd = ["sipp", "127.0.0.1:%d" % sip_port, "-sf", scen, "-i", "127.0.0.1",
                "-p", str(uac_port), "-mp", str(uac_mp), "-m", str(n), "-l", str(n),
                "-r", "%g" % a.rate, "-rtp_threadtasks", "20", "-nostdin", "-trace_stat",
                "-stf", os.path.join(raw, "uac_stat.csv"), "-fd", "1", "-trace_screen",
                "-trace_err", "-error_file", os.path.join(raw, "uac_err.log"),
                "-timeout", "%ds" % int(a.hold + n / a.rate + 120), "-timeout_error"]
        result["caller_cmd"] = " ".join(ucmd)
        snmp0 = udp_snmp()
        t0 = time.monotonic()
        uac = subprocess.Popen(ucmd, cwd=raw, stdout=open(os.path.join(raw, "uac.out"), "wb"),
                               stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
        ramp = n / a.rate
        w_start = ramp + 3.0
        w_end = a.hold - 1.0
        if w_end - w_start < 10:
            raise RuntimeError("hold %.0f s leaves no 10 s window after a %.0f s ramp"
                               % (a.hold, ramp))
        time.sleep(max(0.0, t0 + w_start - time.monotonic()))
        c0 = (time.monotonic(), cpu_ticks(target.pid), cpu_ticks(uac.pid), udp_snmp())
        time.sleep(max(0.0, t0 + w_end - time.monotonic()))
        c1 = (time.monotonic(), cpu_ticks(target.pid), cpu_ticks(uac.pid), udp_snmp())
        if target.poll() is not None:
            raise RuntimeError("the answerer died during the window (exit %s)"
                               % target.returncode)
        t_sock, t_drops = udp_drops(socket_inodes(target.pid))
        u_sock, u_drops = udp_drops(socket_inodes(uac.pid))
        window = c1[0] - c0[0]
        # Packets the caller had sent to the answerer by the end of the window: call k starts
        # at k / rate (plus ~0.15 s of ringing) and streams 50 packets/s from then on.
        until = c1[0] - t0
        est_sent = int(sum(50 * max(0.0, until - k / a.rate - 0.15) for k in range(n)))
        cpu = (c1[1] - c0[1]) / CLK
        ucpu = (c1[2] - c0[2]) / CLK
        result.update({
            "window_s": round(window, 2),
            "window_from_s": round(c0[0] - t0, 2),
            "cpu_s": round(cpu, 3),
            "cpu_cores": round(cpu / window, 3),
            "caller_cpu_s": round(ucpu, 3),
            "caller_cpu_cores": round(ucpu / window, 3),
            "target_udp_sockets": t_sock,
            "target_socket_drops": t_drops,
            "est_sent_by_window_end": est_sent,
            "target_drop_pct": round(100.0 * t_drops / est_sent, 4) if est_sent else None,
            "caller_udp_sockets": u_sock,
            "caller_socket_drops": u_drops,
            "udp_rcvbuf_errors_window": c1[3]["RcvbufErrors"] - c0[3]["RcvbufErrors"],
            "udp_in_datagrams_window": c1[3]["InDatagrams"] - c0[3]["InDatagrams"],
        })

        urc = uac.wait(a.hold + ramp + 300)
        result["caller_exit"] = urc
        try:
            trc = target.wait(60)
        except subprocess.TimeoutExpired:
            target.send_signal(signal.SIGTERM)
            trc = target.wait(30)
            problems.append("target did not exit by itself after the calls")
        result["target_exit"] = trc
        snmp1 = udp_snmp()
        result["udp_rcvbuf_errors_run"] = snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"]
    finally:
        for p in (uac, target):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        tout.close()
        terr.close()

    # The caller's verdict and concurrency over the window.
    rows = stat_rows(os.path.join(raw, "uac_stat.csv"))
    if rows:
        last = rows[-1]
        result["successful_calls"] = int(last["SuccessfulCall(C)"])
        result["failed_calls"] = int(last["FailedCall(C)"])
        t_first = rows[0]
        # Rows come once a second; those inside the window must show all N calls up.
        start = float(t_first["StartTime"].split("\t")[-1])
        inside = [int(r["CurrentCall"]) for r in rows
                  if result["window_from_s"] + 1 <= float(r["CurrentTime"].split("\t")[-1]) -
                  start <= result["window_from_s"] + result["window_s"] - 1]
        result["min_calls_in_window"] = min(inside) if inside else None
        result["mean_calls_in_window"] = round(sum(inside) / len(inside), 1) if inside else None
    # Call-minutes of the window: the calls really up then (N when all went well).
    up = result.get("mean_calls_in_window") or n
    if result.get("cpu_s") is not None and up:
        call_min = up * result["window_s"] / 60.0
        result["cpu_s_per_call_min"] = round(result["cpu_s"] / call_min, 5)
        result["calls_per_core"] = (round(up * result["window_s"] / result["cpu_s"])
                                    if result["cpu_s"] > 0 else None)
        result["caller_cpu_s_per_call_min"] = round(result["caller_cpu_s"] / call_min, 5)
    else:
        problems.append("no sipp statistics")

    if a.target == "revovoice":
        with open(os.path.join(raw, "target.out"), errors="replace") as f:
            text = f.read()
        hang = []
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0] == "hangup":
                hang.append(dict(p.split("=", 1) for p in parts[1:] if "=" in p))
        rx = sum(int(h["rx_packets"]) for h in hang)
        lost = sum(int(h["rx_lost"]) for h in hang)
        tx = sum(int(h["tx_packets"]) for h in hang)
        talk = sum(int(h["talk_ms"]) for h in hang)
        jit = [float(h["jitter_ms"]) for h in hang]
        result.update({
            "reports": len(hang),
            "rx_packets": rx,
            # Sequence gaps from libre's jitter buffer statistics, which Debian's libre is
            # built without (RELEASE): 0 whatever happens. Kept to show that.
            "rx_lost": lost,
            # The caller streams from the ACK to its BYE: ~talk time / 20 ms packets.
            "rx_vs_talk_pct": round(100.0 * rx / (talk / 20.0), 2) if talk else None,
            "loss_pct": round(max(0.0, 100.0 - 100.0 * rx / (talk / 20.0)), 2) if talk else None,
            "tx_packets": tx,
            "tx_vs_talk_pct": round(100.0 * tx / (talk / 20.0), 2) if talk else None,
            "frames_skipped": sum(int(h["frames_skipped"]) for h in hang),
            "rx_bad_source": sum(int(h["rx_bad_source"]) for h in hang),
            "rx_malformed": sum(int(h["rx_malformed"]) for h in hang),
            "jitter_ms_mean": round(sum(jit) / len(jit), 3) if jit else None,
            "jitter_ms_p99": pct(jit, 0.99),
            "jitter_ms_max": max(jit) if jit else None,
            "recordings": len([f for f in os.listdir(a.rec_dir) if f.endswith(".wav")]),
        })
        if len(hang) != n:
            problems.append("%d per-call reports, not %d" % (len(hang), n))
        shutil.rmtree(a.rec_dir, ignore_errors=True)
    else:
        # sipp's echo keeps no per-call counters (and its screen dump at exit has none): its
        # loss is what the kernel dropped at its one socket, against what had been sent to it.
        result["loss_pct"] = result.get("target_drop_pct")

    if result.get("failed_calls") or result.get("successful_calls") != n:
        problems.append("sipp: %s successful, %s failed" % (result.get("successful_calls"),
                                                             result.get("failed_calls")))
    if result.get("min_calls_in_window") != n:
        problems.append("only %s calls up during the window" % result.get("min_calls_in_window"))
    result["ok"] = not problems
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
