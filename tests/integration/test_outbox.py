"""The webhook outbox (issue 5): events from real calls (sipp calling the daemon, routed to a
campaign, hung up by the caller; baresip speaking to the voice agent) reach local webhook
receivers as signed JSON POSTs. Each test checks what the receiver got (signature made with
the secret the API returned at create, headers, body), and the outbox rows in the SQLite file
(status, attempts, last_status, last_error, the backoff between attempts)."""
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import test_agent as ta
import test_sip_answer as sa
import test_tel as tt
from harness import Daemon, check, eq


# ---- a webhook receiver ------------------------------------------------------------------

class Receiver:
    """A local HTTP server that records every POST and answers from a script of statuses
    (then `then`). Checks each request's signature against the webhook's secret."""

    def __init__(self, script=(), then=200, port=0, delay=0.0):
        self.script = list(script)
        self.delay = delay
        self.then = then
        self.secret = None
        self.hits = []  # dicts: t, path, headers, body, status, sig_ok
        self.lock = threading.Lock()
        rcv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                time.sleep(rcv.delay)
                with rcv.lock:
                    status = rcv.script.pop(0) if rcv.script else rcv.then
                    rcv.hits.append({"t": time.time(), "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body, "status": status,
                                     "sig_ok": rcv.sig_ok(self.headers, body)})
                reply = b'{"ok":false}' if status >= 300 else b'{"ok":true}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sig_ok(self, headers, body):
        ts = headers.get("X-RevoVoice-Timestamp", "")
        want = "sha256=" + hmac.new((self.secret or "").encode(), ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, headers.get("X-RevoVoice-Signature", ""))

    def events(self, name=None):
        with self.lock:
            out = []
            for h in self.hits:
                doc = json.loads(h["body"])
                if name is None or doc["event"] == name:
                    out.append((h, doc))
            return out

    def wait(self, what, pred, timeout=40):
        return tt.wait_for(what, lambda: pred(self), timeout, 0.1)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def webhook(d, tok, rcv, events, active=True, name="hook"):
    st, w, _ = d.request("POST", "/api/webhooks", {"name": name, "url": rcv.url,
                                                   "events": events, "active": active},
                         token=tok)
    eq(st, 201, "create webhook: %r" % (w,))
    check(len(w.get("secret", "")) == 64, "the secret is returned on create: %r" % (w,))
    rcv.secret = w["secret"]
    return w


def config(tmp, extra=""):
    return tt.config(tmp, prompt_s=1.0, extra="webhooks:\n  poll_ms: 200\n"
                     "  postcall_delay_ms: 300\n" + extra)


def sipp_call(tmp, d, number, name="caller"):
    """One inbound call to `number`, hung up by the caller after a moment of RTP."""
    xml = sa.scenario(tmp, "uac_offer.xml", codecs="0 101", media="", hold=800,
                      expect=r"m=audio [0-9]+ RTP/AVP 0 101\r?\n")
    caller = tt.Caller(tmp, xml, d.sip_port, service=number, name=name)
    try:
        rc = caller.wait(60)
    finally:
        caller.stop()
    eq(rc, 0, "sipp: " + caller.text())


def outbox_rows(d, where):
    cols = ["id", "webhook_id", "event", "status", "attempts", "last_status", "last_error",
            "event_id", "next_attempt_at", "last_attempt_at", "sent_at", "locked_until"]
    rows = tt.sql(d, "SELECT %s FROM outbox WHERE %s ORDER BY id" % (", ".join(cols), where))
    return [dict(zip(cols, r)) for r in rows]


# ---- tests -------------------------------------------------------------------------------

def test_outbox_call_events_signed_and_inactive_gets_nothing():
    """A routed inbound call answered and hung up by the caller: call.answered then call.ended
    reach the subscribed webhook, signed with its secret; an inactive webhook and one
    subscribed to other events get nothing and have no outbox rows."""
    rcv, off, other = Receiver(), Receiver(), Receiver()
    try:
        with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
            tok = d.admin()
            w = webhook(d, tok, rcv, ["call.answered", "call.ended"])
            w_off = webhook(d, tok, off, ["*"], active=False, name="off")
            w_other = webhook(d, tok, other, ["lead.dnc"], name="other")
            camp = tt.campaign(d, tok, inbound_numbers="+14155550400")
            t0 = time.time()
            sipp_call(tmp, d, "+14155550400")
            rcv.wait("call.ended at the receiver", lambda r: r.events("call.ended"))
            row = tt.wait_ended(d, tok, tt.calls(d, tok)[0]["id"])

            ans, end = rcv.events("call.answered"), rcv.events("call.ended")
            eq(len(ans), 1, "one call.answered: %r" % [h["body"] for h, _ in ans])
            eq(len(end), 1, "one call.ended")
            for h, doc in ans + end:
                check(h["sig_ok"], "signature checks with the webhook's secret: %r" % h)
                eq(h["path"], "/hook", "path")
                eq(h["headers"]["content-type"], "application/json", "content type")
                eq(h["headers"]["x-revovoice-event"], doc["event"], "event header")
                check(abs(int(h["headers"]["x-revovoice-timestamp"]) - time.time()) < 120,
                      "timestamp is now: %r" % h["headers"])
                check(h["headers"]["x-revovoice-delivery"].isdigit(), h["headers"])
                eq(doc["data"]["id"], row["id"], "the call's id")
                check(isinstance(doc["id"], int) and doc["created_at"].endswith("Z"), doc)
            # A changed body no longer matches the signature (the receiver's check is real).
            h0 = end[0][0]
            check(not rcv.sig_ok({"X-RevoVoice-Timestamp": h0["headers"]["x-revovoice-timestamp"],
                                  "X-RevoVoice-Signature": h0["headers"]["x-revovoice-signature"]},
                                 h0["body"].replace(b'"call.ended"', b'"call.endeD"')),
                  "a tampered body fails the signature check")
            a = ans[0][1]["data"]
            eq(a["state"], "answered", "call.answered snapshot state")
            check(a["answered_at"] and not a["ended_at"], a)
            check(ans[0][0]["t"] <= end[0][0]["t"], "answered arrives before ended")
            e = end[0][1]["data"]
            eq(e["state"], "ended", "state")
            eq(e["disposition"], "answered", "disposition")
            eq(e["campaign_id"], camp["id"], "campaign")
            eq(e["direction"], "inbound", "direction")
            eq(e["hangup_by"], "remote", "hangup_by")
            check(e["answered_at"] and e["ended_at"] and e["duration_ms"] > 500, e)
            check(isinstance(e["rtp_stats"], dict) and e["rtp_stats"]["tx_packets"] > 10,
                  "RTP stats as an object: %r" % e["rtp_stats"])
            check("recording_path" in e and "analysis" in e and "turn_count" in e, e)
            eq(e["turn_count"], 0, "the prompt player stores no turns")
            an = e["analysis"]
            eq((an["disposition"], an["turns"]), ("answered", {"caller": 0, "agent": 0}),
               "an analysis of a call without conversation: %r" % an)
            eq(e["extracted"], an, "the analysis is the row's extracted document")
            eq(tt.sql(d, "SELECT extracted FROM calls WHERE id = %d" % row["id"]),
               [[json.dumps(an, separators=(",", ":"))]], "and is stored on the row")
            check(end[0][0]["t"] - t0 < 40, "delivered promptly")

            # The rows: one event row per event, fanned out to the one subscriber only.
            ev = outbox_rows(d, "webhook_id IS NULL")
            eq(sorted(r["event"] for r in ev), ["call.answered", "call.ended"], "event rows")
            check(all(r["status"] == "sent" for r in ev), ev)
            dl = outbox_rows(d, "webhook_id IS NOT NULL")
            eq(len(dl), 2, "deliveries: %r" % dl)
            for r in dl:
                eq(r["webhook_id"], str(w["id"]), "delivery webhook")
                eq((r["status"], r["attempts"], r["last_status"]), ("sent", "1", "200"), r)
                check(r["sent_at"] and r["last_error"] == "" and r["locked_until"] == "", r)
            ids = {h["headers"]["x-revovoice-delivery"] for h, _ in ans + end}
            eq(ids, {r["id"] for r in dl}, "X-RevoVoice-Delivery is the delivery row id")
            eq({str(doc["id"]) for _, doc in ans + end}, {r["id"] for r in ev},
               "the body's id is the event id")
            eq(outbox_rows(d, "webhook_id IN (%d, %d)" % (w_off["id"], w_other["id"])), [],
               "no rows for the inactive or unsubscribed webhooks")
            time.sleep(1.0)
            eq(len(off.hits), 0, "the inactive webhook got nothing")
            eq(len(other.hits), 0, "the webhook for other events got nothing")
            st, text, _ = d.request("GET", "/metrics")
            check('rv_webhook_deliveries_total{result="delivered"} 2' in text, text[-3000:])
            check("rv_webhook_delivery_seconds_count 2" in text, "latency histogram")
            check('rv_outbox_events_total{event="call.ended"} 1' in text, "events counter")
            tt.wait_for("the pending gauge at 0", lambda: "\nrv_outbox_pending 0\n" in
                        d.request("GET", "/metrics")[1], 15)
            logs = [l for l in d.log_lines() if l.get("component") == "outbox"]
            check(any(l["msg"] == "webhook delivered" and l.get("event") == "call.ended"
                      for l in logs), logs)
    finally:
        for r in (rcv, off, other):
            r.close()


def test_outbox_retries_with_backoff_and_410_is_dead():
    """One call, two webhooks: one answers 500, 500, then 200 and gets the same delivery three
    times with growing gaps (the row shows 3 attempts, sent); the other answers 410 once and
    its row is dead at once with the status and the answer in last_error."""
    flaky, gone = Receiver(script=[500, 500]), Receiver(then=410)
    try:
        extra = "  backoff_base_ms: 400\n  backoff_max_ms: 5000\n  max_attempts: 5\n"
        with sa.Tmp() as tmp, Daemon(config=config(tmp, extra)) as d:
            tok = d.admin()
            wf = webhook(d, tok, flaky, ["call.ended"], name="flaky")
            wg = webhook(d, tok, gone, ["call.ended"], name="gone")
            tt.campaign(d, tok, inbound_numbers="+14155550401")
            sipp_call(tmp, d, "+14155550401")
            flaky.wait("three attempts", lambda r: len(r.hits) >= 3)
            rows = tt.wait_for("the flaky delivery sent",
                               lambda: [r for r in outbox_rows(d, "webhook_id = %d" % wf["id"])
                                        if r["status"] == "sent"], 20)
            r = rows[0]
            eq((r["attempts"], r["last_status"]), ("3", "200"), "attempts: %r" % r)
            eq(r["last_error"], "", "a success clears last_error")
            hits = flaky.hits
            eq([h["status"] for h in hits], [500, 500, 200], "answers")
            eq(len({h["headers"]["x-revovoice-delivery"] for h in hits}), 1, "same delivery")
            eq(len({h["body"] for h in hits}), 1, "same body each time")
            check(all(h["sig_ok"] for h in hits), "every attempt is signed")
            g1, g2 = hits[1]["t"] - hits[0]["t"], hits[2]["t"] - hits[1]["t"]
            # Equal jitter: attempt n waits within [d/2, d], d = 400 ms * 2^(n-1).
            check(g1 >= 0.19 and g2 >= 0.39, "backoff gaps %.3f s, %.3f s" % (g1, g2))
            time.sleep(1.0)
            eq(len(flaky.hits), 3, "nothing more after the 200")

            dead = tt.wait_for("the 410 delivery dead",
                               lambda: [x for x in outbox_rows(d, "webhook_id = %d" % wg["id"])
                                        if x["status"] == "dead"], 20)[0]
            eq((dead["attempts"], dead["last_status"]), ("1", "410"), "dead row: %r" % dead)
            check(dead["last_error"].startswith("HTTP 410") and "ok" in dead["last_error"],
                  dead)
            eq(len(gone.hits), 1, "a permanent refusal is not retried")
            logs = [l for l in d.log_lines() if l.get("component") == "outbox"]
            retries = [l for l in logs if l["msg"].startswith("webhook delivery failed")]
            eq(len(retries), 2, "two retry log lines: %r" % retries)
            check(retries[0]["error"].startswith("HTTP 500"), retries)
            check(any(l["msg"].startswith("webhook refused") for l in logs), logs)
            st, text, _ = d.request("GET", "/metrics")
            check('rv_webhook_deliveries_total{result="retry"} 2' in text, text[-3000:])
            check('rv_webhook_deliveries_total{result="dead"} 1' in text, "dead counted")
            check('rv_webhook_deliveries_total{result="delivered"} 1' in text, "delivered")
    finally:
        flaky.close()
        gone.close()


def test_outbox_undelivered_rows_survive_a_crash_and_restart():
    """The receiver is down: the call.ended delivery fails (connection refused) and stays
    pending with its attempts counted. The daemon is killed (SIGKILL, no clean stop); after a
    restart with the receiver up, the same delivery arrives and the row is sent."""
    port = sa.free_port()
    extra = "  backoff_base_ms: 300\n  backoff_max_ms: 1000\n  max_attempts: 50\n"
    with sa.Tmp() as tmp:
        os.makedirs(os.path.join(tmp, "data"))
        d = Daemon(config=config(tmp, extra), data_dir=os.path.join(tmp, "data"))
        d.start()
        try:
            tok = d.admin()
            st, w, _ = d.request("POST", "/api/webhooks",
                                 {"url": "http://127.0.0.1:%d/hook" % port,
                                  "events": ["call.ended"]}, token=tok)
            eq(st, 201, "webhook: %r" % (w,))
            rcv_secret = w["secret"]
            tt.campaign(d, tok, inbound_numbers="+14155550402")
            sipp_call(tmp, d, "+14155550402")
            row = tt.wait_for("a failed attempt", lambda: [
                r for r in outbox_rows(d, "webhook_id = %d" % w["id"])
                if int(r["attempts"]) >= 2 and r["status"] == "pending"], 30)[0]
            check(row["last_status"] == "" and row["last_error"], "a network error: %r" % row)
            d.stop(sig=signal.SIGKILL)
            eq(outbox_rows(d, "id = %s" % row["id"])[0]["status"], "pending",
               "still pending after the crash")
            rcv = Receiver(port=port)
            rcv.secret = rcv_secret
            try:
                d.start()
                rcv.wait("the delivery after restart", lambda r: r.events("call.ended"))
                h, doc = rcv.events("call.ended")[0]
                check(h["sig_ok"], "signed with the same secret")
                eq(h["headers"]["x-revovoice-delivery"], row["id"], "the same delivery row")
                done = tt.wait_for("the row sent", lambda: [
                    r for r in outbox_rows(d, "id = %s" % row["id"]) if r["status"] == "sent"],
                    20)[0]
                check(int(done["attempts"]) >= 3, done)
                eq(done["last_status"], "200", "last status")
                eq(doc["data"]["disposition"], "answered", "the call's data")
            finally:
                rcv.close()
        finally:
            d.__exit__(None, None, None)


def test_outbox_agent_call_post_call_analysis_and_callback_event():
    """baresip asks the voice agent for a callback: call.ended carries the turns' post-call
    analysis, which is stored on the call row too, and callback.scheduled carries the
    callback row with the caller's local time."""
    tt.need_baresip()
    rcv = Receiver()
    try:
        with sa.Tmp() as tmp, Daemon(config=ta.agent_config(tmp) +
                                     "webhooks:\n  poll_ms: 200\n  postcall_delay_ms: 1500\n",
                                     agent=True) as d:
            tok = d.admin()
            webhook(d, tok, rcv, ["*"])
            ta.appointment_campaign(d, tok, inbound_numbers="+14155550403",
                                    timezone="America/New_York")
            ask = ta.flite_wav(tmp, "ask", "Please call me back tomorrow at three p m.")
            a = tt.Baresip(tmp, "a", ta.script_wav(tmp, "caller", [9.0, ask, 20.0]))
            try:
                a.cmd("dial", "sip:+14155550403@127.0.0.1:%d" % d.sip_port)
                row = tt.wait_call(d, tok, lambda x: x["state"] == "answered", "the call")
                row = tt.wait_ended(d, tok, row["id"], timeout=60)
            finally:
                a.stop()
            rcv.wait("call.ended", lambda r: r.events("call.ended"), 40)
            rcv.wait("callback.scheduled", lambda r: r.events("callback.scheduled"), 20)
            h, doc = rcv.events("call.ended")[0]
            check(h["sig_ok"], "signed")
            e = doc["data"]
            eq(e["disposition"], "callback", "disposition: %r" % e)
            check(e["turn_count"] >= 3, "turns counted: %r" % e)
            an = e["analysis"]
            check(isinstance(an, dict), "an analysis: %r" % (an,))
            eq(an["disposition"], "callback", "the analysis' disposition: %r" % an)
            check(an["summary"] and "tomorrow" in an["summary"].lower(), "a summary: %r" % an)
            cb_at = an["fields"].get("callback_at", "")
            check(cb_at.endswith("T15:00:00-05:00") or cb_at.endswith("T15:00:00-04:00"),
                  "the callback time extracted: %r" % an["fields"])
            check(an["sentiment"]["trend"] in ("improving", "worsening", "flat", "unknown"),
                  "a sentiment trend: %r" % an["sentiment"])
            check(an["turns"]["caller"] >= 1 and an["turns"]["agent"] >= 2, an["turns"])
            eq(e["summary"], an["summary"], "the row's summary is the analysis'")
            eq(e["extracted"], an, "the row's extracted document is the analysis")
            stored = tt.sql(d, "SELECT summary, extracted FROM calls WHERE id = %d" % row["id"])
            eq(stored[0][0], an["summary"], "summary stored on the call row")
            eq(json.loads(stored[0][1]), an, "the analysis stored on the call row")
            st, api_row, _ = d.request("GET", "/api/calls/%d" % row["id"], token=tok)
            eq(api_row["summary"], an["summary"], "the API shows the summary")
            h2, cb = rcv.events("callback.scheduled")[0]
            check(h2["sig_ok"], "signed")
            eq(cb["data"]["call_id"], row["id"], "callback's call")
            lt = cb["data"]["callback"]["local_time"]
            check(lt.endswith("T15:00:00-05:00") or lt.endswith("T15:00:00-04:00"), lt)
            check(cb["id"] > doc["id"], "derived after the call's event")
            eq(rcv.events("lead.dnc"), [], "no DNC request on this call")
    finally:
        rcv.close()



def test_outbox_dnc_request_on_an_outbound_call():
    """The voice agent calls a lead (baresip) who asks to be taken off the list: lead.dnc
    carries the number, the DNC entry the call stored and the lead; call.ended carries the
    dnc_request disposition and an analysis."""
    tt.need_baresip()
    rcv = Receiver()
    try:
        with sa.Tmp() as tmp, Daemon(config=ta.agent_config(tmp) +
                                     "webhooks:\n  poll_ms: 200\n  postcall_delay_ms: 1500\n",
                                     agent=True) as d:
            tok = d.admin()
            webhook(d, tok, rcv, ["*"])
            camp = ta.appointment_campaign(d, tok, name="Acme Dental", amd_policy="hangup")
            st, lead, _ = d.request("POST", "/api/leads", {"campaign_id": camp["id"],
                                    "phone": "+14155550378", "first_name": "Dana"}, token=tok)
            eq(st, 201, "lead")
            hello = ta.flite_wav(tmp, "hello", "Hello?")
            stop = ta.flite_wav(tmp, "stop", "Please stop calling me and take me off your list.")
            b = tt.Baresip(tmp, "dnc", ta.script_wav(tmp, "dnc", [0.6, hello, 15.0, stop, 15.0]))
            try:
                st, row, _ = d.request("POST", "/api/calls", {"to": b.uri, "campaign_id":
                                       camp["id"], "lead_id": lead["id"]}, token=tok)
                eq(st, 202, "dial: %r" % (row,))
                row = tt.wait_ended(d, tok, row["id"], timeout=60)
            finally:
                b.stop()
            eq(row["disposition"], "dnc_request", "disposition")
            rcv.wait("lead.dnc", lambda r: r.events("lead.dnc"), 30)
            h, ev = rcv.events("lead.dnc")[0]
            check(h["sig_ok"], "signed")
            data = ev["data"]
            eq((data["phone"], data["lead_id"], data["campaign_id"], data["call_id"]),
               ("+14155550378", lead["id"], camp["id"], row["id"]), "lead.dnc: %r" % data)
            eq(data["dnc"]["source"], "call", "the DNC entry: %r" % data)
            eq(data["disposition"], "dnc_request", "disposition in lead.dnc")
            eq(len(rcv.events("lead.dnc")), 1, "one lead.dnc")
            _, end = rcv.events("call.ended")[0]
            eq(end["data"]["disposition"], "dnc_request", "call.ended")
            eq(end["data"]["direction"], "outbound", "direction")
            an = end["data"]["analysis"]
            check(isinstance(an, dict), "analysis: %r" % end["data"])
            eq(an["disposition"], "dnc_request", "the analysis' disposition")
            eq(an["intents"].get("do_not_call"), 1, "the request counted: %r" % an["intents"])
            eq(rcv.events("callback.scheduled"), [], "no callback on this call")
    finally:
        rcv.close()

# ---- two nodes on one PostgreSQL ---------------------------------------------------------

class Postgres:
    """A private PostgreSQL server on a Unix socket in a temporary directory (initdb runs as
    the postgres user when we are root, which initdb refuses)."""

    def __init__(self):
        self.bin = os.environ.get("RV_PG_BIN", "/usr/lib/postgresql/15/bin")
        check(os.access(os.path.join(self.bin, "initdb"), os.X_OK),
              "no PostgreSQL server binaries in %s (Debian package postgresql; RV_PG_BIN)"
              % self.bin)
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="rv-outbox-pg-")
        self.runas = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.run("initdb", "-D", self.dir + "/data", "-A", "trust", "-U", "rv", "-E", "UTF8",
                 "--no-sync")
        self.run("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/server.log", "-w",
                 "-t", "60", "-o", "-p 5432 -k %s -c listen_addresses= -c fsync=off" % self.dir,
                 "start")
        self.url = "host=%s port=5432 user=rv dbname=postgres" % self.dir

    def run(self, tool, *args):
        r = subprocess.run(self.runas + [os.path.join(self.bin, tool)] + list(args),
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("%s failed: %s" % (tool, r.stderr.decode(errors="replace")))

    def query(self, q):
        r = subprocess.run(["psql", "-h", self.dir, "-U", "rv", "-d", "postgres", "-tA",
                            "-F", "\t", "-c", q], capture_output=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("psql: %s" % r.stderr.decode(errors="replace"))
        return [ln.split("\t") for ln in r.stdout.decode().splitlines() if ln]

    def close(self):
        try:
            self.run("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def test_outbox_two_nodes_on_postgres_deliver_each_event_once():
    """Two daemons share one PostgreSQL and compete for the same outbox rows (FOR UPDATE SKIP
    LOCKED plus leases): every delivery of three calls' events reaches each of two slow
    receivers exactly once, and the two nodes' logs together account for each delivery
    once."""
    pg = Postgres()
    slow = []
    try:
        env = {"REVOVOICE_STORE_DRIVER": "postgres", "REVOVOICE_STORE_URL": pg.url}
        extra = "  concurrency: 2\n"
        with sa.Tmp() as tmp, Daemon(config=config(tmp, extra), env=env) as a, \
                Daemon(config=config(tmp, extra), env=env) as b:
            tok = a.admin()
            for i in range(2):
                r = Receiver(delay=0.15)
                webhook(a, tok, r, ["call.answered", "call.ended"], name="slow%d" % i)
                slow.append(r)
            tt.campaign(a, tok, inbound_numbers="+14155550404")
            for i in range(3):
                sipp_call(tmp, a, "+14155550404", name="c%d" % i)
            for r in slow:
                r.wait("six events", lambda x: len(x.events()) >= 6, 60)
            time.sleep(1.5)
            rows = pg.query("SELECT id, webhook_id, event_id, status, attempts FROM outbox "
                            "WHERE webhook_id IS NOT NULL ORDER BY id")
            eq(len(rows), 12, "3 calls x 2 events x 2 webhooks: %r" % rows)
            check(all(r[3] == "sent" and r[4] == "1" for r in rows), rows)
            for r in slow:
                got = [(h["headers"]["x-revovoice-delivery"], doc["id"]) for h, doc in r.events()]
                eq(len(got), 6, "each event once at %s: %r" % (r.url, got))
                eq(len(set(got)), 6, "no duplicates")
                check(all(h["sig_ok"] for h in r.hits), "signed")
            logs = [l for d in (a, b) for l in d.log_lines()
                    if l.get("component") == "outbox" and l["msg"] == "webhook delivered"]
            eq(sorted(l["delivery"] for l in logs), sorted(r[0] for r in rows),
               "each delivery sent by exactly one node")
    finally:
        for r in slow:
            r.close()
        pg.close()


def test_outbox_dnc_added_through_the_api_emits_lead_dnc():
    """A number put on the do-not-call list through the API reaches a CRM as lead.dnc: one
    event per lead holding it (in every campaign), one with lead_id null for a number no lead
    holds, none for a refused duplicate; all signed."""
    rcv = Receiver()
    try:
        with sa.Tmp() as tmp, Daemon(config=config(tmp)) as d:
            tok = d.admin()
            webhook(d, tok, rcv, ["lead.dnc"])
            leads = {}
            for name in ("crm-a", "crm-b"):
                st, c, _ = d.request("POST", "/api/campaigns", {"name": name}, token=tok)
                eq(st, 201, "campaign")
                st, lead, _ = d.request("POST", "/api/leads", {"campaign_id": c["id"],
                                        "phone": "+14155552681"}, token=tok)
                eq(st, 201, "lead")
                leads[lead["id"]] = c["id"]
            st, _, _ = d.request("POST", "/api/dnc", {"phone": "(415) 555-2681",
                                 "reason": "asked by email"}, token=tok)
            eq(st, 201, "dnc for the leads' number")
            rcv.wait("two lead.dnc", lambda r: len(r.events("lead.dnc")) >= 2)
            st, _, _ = d.request("POST", "/api/dnc", {"phone": "+14155552699"}, token=tok)
            eq(st, 201, "dnc for a number with no lead")
            rcv.wait("three lead.dnc", lambda r: len(r.events("lead.dnc")) >= 3)
            st, _, _ = d.request("POST", "/api/dnc", {"phone": "4155552681"}, token=tok)
            eq(st, 409, "duplicate refused")
            time.sleep(1.0)  # several poll intervals: a refused entry must emit nothing
            got = rcv.events("lead.dnc")
            eq(len(got), 3, "events: %r" % [doc for _, doc in got])
            for h, _ in got:
                check(h["sig_ok"], "signed: %r" % h)
            data = [doc["data"] for _, doc in got]
            by_lead = {x["lead_id"]: x for x in data if x["lead_id"] is not None}
            eq(sorted(by_lead), sorted(leads), "one event per lead")
            for lid, x in by_lead.items():
                eq(x["campaign_id"], leads[lid], "campaign of lead %d" % lid)
                eq(x["phone"], "+14155552681", "normalised number")
                eq(x["call_id"], None, "not from a call")
                eq(x["dnc"]["source"], "api", "source")
                eq(x["dnc"]["reason"], "asked by email", "reason")
            none = [x for x in data if x["lead_id"] is None]
            eq(len(none), 1, "one event for the number without a lead")
            eq(none[0]["phone"], "+14155552699", "its number")
            eq(none[0]["dnc"]["reason"], None, "no reason given")
    finally:
        rcv.close()
