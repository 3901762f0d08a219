"""Integration-test harness: starts the real `revovoice serve` on a free loopback port with a
temporary data directory and drives it over HTTP. Standard library only.

    with Daemon(bin) as d:
        d.user_add("admin@example.com", "correct horse battery", "admin")
        tok = d.login("admin@example.com", "correct horse battery")
        st, body, hdrs = d.request("GET", "/api/campaigns", token=tok)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("RV_BIN", "build/revovoice")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free UDP+TCP port")


class Daemon:
    """One daemon process with its own data directory. Restartable with the same data."""

    def __init__(self, bin_path=None, env=None, config=None, data_dir=None, sip=True,
                 agent=False):
        """sip: True gives the daemon its own free SIP port on 127.0.0.1 (d.sip_port), so
        parallel daemons never collide on 5060; False leaves sip.listen to the config; a
        "HOST:PORT" string is passed as is.
        agent: answered calls run the voice agent (the product's default); False runs the
        prompt player (calls.default_prompt), which telephony tests assert on exactly."""
        self.bin = bin_path or BIN
        self.sip = sip
        self.sip_port = None
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="rv-it-")
        self.extra_env = {"REVOVOICE_SPEECH_AGENT": "1" if agent else "0"}
        self.extra_env.update(env or {})
        self.config = config
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "daemon.log")

    # -- process control ---------------------------------------------------------------
    def env(self):
        e = dict(os.environ)
        e.update(self.extra_env)
        return e

    def start(self):
        self.port = free_port()
        args = [self.bin, "serve", "--data-dir", self.data_dir,
                "--http", "127.0.0.1:%d" % self.port]
        if self.sip is True:
            self.sip_port = free_udp_tcp_port()
            args += ["--sip", "127.0.0.1:%d" % self.sip_port]
        elif isinstance(self.sip, str):
            args += ["--sip", self.sip]
            if self.sip.rsplit(":", 1)[-1].isdigit():
                self.sip_port = int(self.sip.rsplit(":", 1)[-1])
        if self.config:
            path = os.path.join(self.data_dir, "config.yaml")
            with open(path, "w") as f:
                f.write(self.config)
            args += ["--config", path]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=self.env())
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                st, _, _ = self.request("GET", "/healthz")
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon did not come up:\n" + self.read_log())

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop the daemon; returns its exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("daemon did not stop on %s" % sig)
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """The daemon's structured log, parsed (every line must be JSON)."""
        out = []
        for line in self.read_log().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *exc):
        try:
            rc = self.stop()
            # A clean stop exits 0; under ASan a leak or sanitizer report makes it non-zero.
            if exc_type is None and rc not in (None, 0):
                raise AssertionError("daemon exited %s on SIGTERM:\n%s" % (rc, self.read_log()[-4000:]))
        finally:
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- CLI ---------------------------------------------------------------------------
    def cli(self, *args, check=True, input=None):
        r = subprocess.run([self.bin] + list(args[:1]) + ["--data-dir", self.data_dir] + list(args[1:]),
                           capture_output=True, env=self.env(), input=input, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("revovoice %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                                 r.stderr.decode()))
        return r

    def user_add(self, email, password, role):
        return self.cli("user", "add", "--email", email, "--password", password, "--role", role)

    # -- HTTP --------------------------------------------------------------------------
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def request(self, method, path, body=None, token=None, api_key=None, headers=None,
                raw=None, content_type=None, timeout=10):
        """Returns (status, parsed JSON or text or None, headers dict)."""
        h = dict(headers or {})
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            h.setdefault("Content-Type", content_type or "application/octet-stream")
        elif body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = "Bearer " + token
        if api_key:
            h["X-API-Key"] = api_key
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, _decode(r), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, _decode(e), dict(e.headers)

    def login(self, email, password):
        st, body, _ = self.request("POST", "/api/auth/login", {"email": email, "password": password})
        if st != 200:
            raise RuntimeError("login failed: %s %s" % (st, body))
        return body["token"]

    def admin(self):
        """Create (once) and log in an admin; returns its token."""
        if not getattr(self, "_admin_token", None):
            self.user_add("admin@example.com", "admin-pass-123", "admin")
            self._admin_token = self.login("admin@example.com", "admin-pass-123")
        return self._admin_token


def _decode(r):
    raw = r.read()
    ctype = r.headers.get("Content-Type", "")
    if not raw:
        return None
    if "json" in ctype:
        return json.loads(raw)
    return raw.decode("utf-8", "replace")


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what or "values differ", a, b))
