"""The daemon as a process: start-up, configuration sources, logs, secrets, clean shutdown."""
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time

import harness
from harness import Daemon, check, eq


def test_sigterm_exits_zero_and_logs_json():
    with Daemon() as d:
        st, body, _ = d.request("GET", "/healthz")
        eq(st, 200, "healthz")
        rc = d.stop(signal.SIGTERM)
        eq(rc, 0, "exit code after SIGTERM")
        lines = d.log_lines()  # raises if any line is not JSON
    msgs = [l["msg"] for l in lines]
    check(any("serving http://127.0.0.1:" in m for m in msgs), "start line missing: %r" % msgs)
    check(any(m == "stopped" for m in msgs), "no 'stopped' line: %r" % msgs)
    for l in lines:
        for k in ("ts", "level", "component", "msg"):
            check(k in l, "log line without %s: %r" % (k, l))


def test_sigint_also_stops_cleanly():
    with Daemon() as d:
        eq(d.stop(signal.SIGINT), 0, "exit code after SIGINT")


def test_in_flight_request_finishes_during_shutdown():
    """A request being uploaded when SIGTERM arrives still gets its answer."""
    import socket
    with Daemon() as d:
        tok = d.admin()
        body = json.dumps({"name": "shutdown-race"}).encode()
        s = socket.create_connection(("127.0.0.1", d.port))
        head = ("POST /api/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (tok, len(body)))
        s.sendall(head.encode() + body[:5])
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        s.sendall(body[5:])
        s.settimeout(10)
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
        s.close()
        check(resp.startswith(b"HTTP/1.1 201"), "in-flight request got %r" % resp[:80])
        d.proc.wait(15)
        eq(d.proc.returncode, 0, "exit code")
        d.proc = None
        d.log.close()


def test_restart_keeps_data_and_secret():
    with Daemon() as d:
        tok = d.admin()
        st, c, _ = d.request("POST", "/api/campaigns", {"name": "persist me"}, token=tok)
        eq(st, 201, "create")
        secrets = os.path.join(d.data_dir, "secrets.json")
        mode = stat.S_IMODE(os.stat(secrets).st_mode)
        eq(mode, 0o600, "secrets.json mode")
        with open(secrets) as f:
            first = json.load(f)["jwt_secret"]
        d.restart()
        st, got, _ = d.request("GET", "/api/campaigns/%d" % c["id"], token=tok)
        eq(st, 200, "old token and campaign after restart")
        eq(got["name"], "persist me", "name after restart")
        with open(secrets) as f:
            eq(json.load(f)["jwt_secret"], first, "secret reused")


def test_config_file_env_and_flags_precedence():
    d = Daemon(config="http:\n  max_body: 2k\nleads:\n  default_country: GB\n",
               env={"REVOVOICE_LEADS_DEFAULT_COUNTRY": "IN"})
    with d:
        r = d.cli("config", "--config", os.path.join(d.data_dir, "config.yaml"))
        out = r.stdout.decode()
        check('max_body: 2048' in out, out)
        check('default_country: "IN"' in out, "env must override the file: " + out)
        check('"********"' in out, "store.url must be masked: " + out)
        # The running daemon uses the 2 KiB body cap from the file.
        tok = d.admin()
        st, body, _ = d.request("POST", "/api/campaigns", {"name": "x" * 4000}, token=tok)
        eq(st, 413, "body over the configured cap")


def test_bad_config_is_a_clear_error():
    d = Daemon()
    path = os.path.join(d.data_dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("http:\n  listen: 127.0.0.1:1\n  thread: 4\n")
    r = subprocess.run([harness.BIN, "serve", "--config", path, "--data-dir", d.data_dir],
                       capture_output=True, timeout=20)
    eq(r.returncode, 1, "exit code")
    err = r.stderr.decode()
    check("bad.yaml:3" in err and 'unknown config key "http.thread"' in err, err)
    r = subprocess.run([harness.BIN, "serve", "--data-dir", d.data_dir],
                       env=dict(os.environ, REVOVOICE_HTTP_THREADS="lots"),
                       capture_output=True, timeout=20)
    eq(r.returncode, 1, "exit code for a bad env value")
    check("REVOVOICE_HTTP_THREADS" in r.stderr.decode(), r.stderr.decode())
    shutil.rmtree(d.data_dir, ignore_errors=True)


def test_port_in_use_fails_with_message():
    with Daemon() as d:
        # The same environment as the first daemon (no voice agent, as in every test that
        # does not exercise it), only the data directory differs.
        r = subprocess.run([harness.BIN, "serve", "--data-dir", d.data_dir + "-2",
                            "--http", "127.0.0.1:%d" % d.port], env=d.env(),
                           capture_output=True, timeout=20)
        shutil.rmtree(d.data_dir + "-2", ignore_errors=True)
        eq(r.returncode, 1, "second daemon on a taken port; stderr: %s" %
           r.stderr.decode("utf-8", "replace")[-3000:])
        check(b"cannot listen" in r.stderr, r.stderr.decode())


def test_unknown_command_and_help():
    r = subprocess.run([harness.BIN, "frobnicate"], capture_output=True, timeout=10)
    eq(r.returncode, 2, "unknown command")
    check(b"unknown command" in r.stderr)
    r = subprocess.run([harness.BIN, "--help"], capture_output=True, timeout=10)
    eq(r.returncode, 0, "help")
    check(b"import-leads" in r.stdout)
    r = subprocess.run([harness.BIN, "version"], capture_output=True, timeout=10)
    eq(r.returncode, 0)
    check(r.stdout.startswith(b"revovoice "), r.stdout)


def test_migrate_reports_schema_version():
    # The newest numbered file in src/store/migrations is the schema version.
    mig = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "store",
                       "migrations")
    want = max(int(f.split("_")[0]) for f in os.listdir(mig) if f.endswith(".sql"))
    d = Daemon()
    try:
        r = d.cli("migrate")
        check(r.stdout.decode().startswith("schema version %d (sqlite)" % want), r.stdout)
        # A second run applies nothing and reports the same version.
        r = d.cli("migrate")
        check(r.stdout.decode().startswith("schema version %d (sqlite)" % want), r.stdout)
    finally:
        shutil.rmtree(d.data_dir, ignore_errors=True)
