"""The OpenAPI document and the docs page, checked against the running daemon.

tests/openapi/validate.mjs (Node) validates the document the daemon serves with a real OpenAPI
3.1 validator, compares it with `revovoice routes` (paths, methods and x-min-role both ways) and
checks real responses of every resource against the schemas the document gives for them. The
responses come from the requests below, each of which must also get the status the contract says.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import sys

import test_sip_answer as _sa
import test_sip_call as _sc
from harness import Daemon, check, eq, free_port

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
import fake_twilio as _ft  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_DIR = os.path.join(ROOT, "tests", "openapi")

# Small caps so the 413 answers can be produced without megabytes of traffic; Twilio on, so its
# webhooks can be exercised with valid signatures.
TW_SID = "AC" + "0123456789abcdef" * 2
TW_TOKEN = "openapi-test-token"
TW_PUBLIC = "https://rv.example.test"
CONFIG = ("http:\n  max_body: 4096\n  max_upload: 2048\n"
          "twilio:\n  account_sid: %s\n  auth_token: %s\n  public_url: %s\n"
          "  stream_listen: 127.0.0.1:%%d\n  api_base: %%s\n" % (TW_SID, TW_TOKEN, TW_PUBLIC))


def _twilio_form(route, params):
    """A form body signed the way Twilio signs its webhooks (route may carry a query)."""
    data = TW_PUBLIC + route + "".join(k + v for k, v in sorted(params.items()))
    sig = base64.b64encode(hmac.new(TW_TOKEN.encode(), data.encode(), hashlib.sha1).digest())
    return dict(raw=urllib.parse.urlencode(params).encode(),
                content_type="application/x-www-form-urlencoded",
                headers={"X-Twilio-Signature": sig.decode()})


def _node_deps():
    if shutil.which("node") is None:
        raise AssertionError("node is not installed (scripts/install-deps.sh installs nodejs)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@seriousme")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           capture_output=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError("npm ci in tests/openapi failed:\n" + r.stderr.decode(errors="replace"))


class Recorder:
    """Sends requests through the harness and keeps (route, status, body) samples."""

    def __init__(self, d):
        self.d = d
        self.samples = []

    def call(self, want, method, route, path=None, **kw):
        st, body, hdrs = self.d.request(method, path or route, **kw)
        if st != want:
            raise AssertionError("%s %s: status %s, want %s: %r" % (method, path or route, st, want, body))
        ctype = next((v for k, v in hdrs.items() if k.lower() == "content-type"), "")
        self.samples.append({"method": method, "route": route, "status": st,
                             "content_type": ctype, "body": body})
        return body


def _sql(d, sql):
    r = subprocess.run(["sqlite3", os.path.join(d.data_dir, "revovoice.db")], input=sql.encode(),
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("sqlite3 failed: %s" % r.stderr.decode(errors="replace"))


def _exercise(d, rec):
    """One pass over every route (success and the error statuses the contract lists)."""
    tok = d.admin()
    r = rec.call

    r(200, "GET", "/healthz")
    r(200, "GET", "/readyz")
    r(200, "GET", "/metrics")
    r(200, "GET", "/api/openapi.json")
    r(200, "GET", "/api/docs")

    r(401, "POST", "/api/auth/login", body={"email": "admin@example.com", "password": "wrong-pass-999"})
    r(400, "POST", "/api/auth/login", raw=b"{not json", content_type="application/json")
    login = r(200, "POST", "/api/auth/login", body={"email": "admin@example.com",
                                                     "password": "admin-pass-123"})
    check(isinstance(login.get("token"), str), "login returns a token")
    r(200, "GET", "/api/auth/me", token=tok)
    r(401, "GET", "/api/auth/me")
    r(401, "GET", "/api/campaigns", token="not-a-jwt")

    # users and keys
    u = r(201, "POST", "/api/users", token=tok, body={"email": "viewer@example.com",
                                                      "password": "viewer-pass-123", "role": "viewer",
                                                      "name": "Vera"})
    uid = u["id"]
    r(409, "POST", "/api/users", token=tok, body={"email": "viewer@example.com",
                                                  "password": "viewer-pass-123", "role": "viewer"})
    r(400, "POST", "/api/users", token=tok, body={"email": "x@example.com", "password": "viewer-pass-123",
                                                  "role": "emperor"})
    r(200, "GET", "/api/users", token=tok)
    r(200, "GET", "/api/users/{id}", "/api/users/%d" % uid, token=tok)
    r(200, "PATCH", "/api/users/{id}", "/api/users/%d" % uid, token=tok, body={"name": "Vera V"})
    r(404, "GET", "/api/users/{id}", "/api/users/999999", token=tok)
    vtok = d.login("viewer@example.com", "viewer-pass-123")
    r(403, "GET", "/api/users", token=vtok)

    k = r(201, "POST", "/api/keys", token=tok, body={"name": "bench", "role": "manager"})
    check(isinstance(k.get("key"), str) and k["key"].startswith("rvk_"), "key shown on create")
    r(200, "GET", "/api/keys", token=tok)
    keys = d.request("GET", "/api/keys", token=tok)[1]
    check(all("key" not in x and "key_hash" not in x for x in keys["items"]), "no secrets in key list")
    r(200, "GET", "/api/auth/me", api_key=k["key"])

    # flows and campaigns
    f = r(201, "POST", "/api/flows", token=tok, body={"name": "Reminder", "kind": "scripted",
                                                      "definition": {"start": "hello", "states": {
                                                          "hello": {"say": "Hi.", "end": "done"}}}})
    r(200, "GET", "/api/flows", token=tok)
    r(200, "GET", "/api/flows/{id}", "/api/flows/%d" % f["id"], token=tok)
    r(200, "PATCH", "/api/flows/{id}", "/api/flows/%d" % f["id"], token=tok, body={"description": "d"})
    c = r(201, "POST", "/api/campaigns", token=tok, body={"name": "Spring", "flow_id": f["id"],
                                                          "calling_window_start": "10:00",
                                                          "max_attempts": 2})
    cid = c["id"]
    r(409, "POST", "/api/campaigns", token=tok, body={"name": "Spring"})
    r(422, "POST", "/api/campaigns", token=tok, body={"name": "Other", "flow_id": 999999})
    r(400, "POST", "/api/campaigns", token=tok, body={"name": "Bad", "max_attempts": "three"})
    r(400, "POST", "/api/campaigns", token=tok, body={"name": "Bad", "no_such_field": 1})
    r(403, "POST", "/api/campaigns", token=vtok, body={"name": "Nope"})
    r(413, "POST", "/api/campaigns", token=tok, body={"name": "Big", "description": "x" * 8000})
    r(200, "GET", "/api/campaigns", token=tok)
    r(200, "GET", "/api/campaigns", "/api/campaigns?limit=1", token=vtok)
    r(400, "GET", "/api/campaigns", "/api/campaigns?limit=100000", token=tok)
    r(200, "GET", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=vtok)
    r(404, "GET", "/api/campaigns/{id}", "/api/campaigns/999999", token=tok)
    r(200, "PATCH", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=tok, body={"status": "active"})
    r(409, "PATCH", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=tok, body={"status": "draft"})
    r(400, "PATCH", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=tok,
      body={"calling_window_end": "08:00"})

    # leads, CSV import
    csv = "phone,first_name,last_name,email,plan\n+14155550101,Ann,Lee,ann@example.com,gold\n" \
          "+14155550102,Bo,Ng,,silver\nnot-a-phone,Cy,,,\n+14155550101,Dup,,,\n"
    rep = r(200, "POST", "/api/campaigns/{id}/leads/import", "/api/campaigns/%d/leads/import" % cid,
            token=tok, raw=csv, content_type="text/csv")
    eq(rep.get("imported"), 2, "imported rows")
    r(404, "POST", "/api/campaigns/{id}/leads/import", "/api/campaigns/999999/leads/import",
      token=tok, raw=csv, content_type="text/csv")
    r(422, "POST", "/api/campaigns/{id}/leads/import", "/api/campaigns/%d/leads/import" % cid,
      token=tok, raw="name,city\nAnn,Oslo\n", content_type="text/csv")
    r(413, "POST", "/api/campaigns/{id}/leads/import", "/api/campaigns/%d/leads/import" % cid,
      token=tok, raw="phone\n" + "+14155550199\n" * 300, content_type="text/csv")
    lead = r(201, "POST", "/api/leads", token=tok, body={"campaign_id": cid, "phone": "+14155550177",
                                                         "first_name": "Eve",
                                                         "custom_fields": {"tier": "a"}})
    r(409, "POST", "/api/leads", token=tok, body={"campaign_id": cid, "phone": "+14155550177"})
    r(422, "POST", "/api/leads", token=tok, body={"campaign_id": 999999, "phone": "+14155550178"})
    r(400, "POST", "/api/leads", token=tok, body={"campaign_id": cid})
    r(200, "GET", "/api/leads", "/api/leads?campaign_id=%d&status=new" % cid, token=tok)
    r(200, "GET", "/api/leads/{id}", "/api/leads/%d" % lead["id"], token=tok)
    r(200, "PATCH", "/api/leads/{id}", "/api/leads/%d" % lead["id"], token=tok, body={"last_name": "Q"})

    # calls are read-only through the API (the media plane writes them): put one in the store
    # the way the call path will, so the call routes answer with real rows.
    _sql(d, "INSERT INTO calls (campaign_id, lead_id, direction, channel, sip_call_id, from_uri, "
            "to_uri, state, disposition, created_at, answered_at, ended_at, duration_ms, rtp_stats, "
            "latency, extracted) VALUES (%d, %d, 'outbound', 'sip', 'abc@host', 'sip:100@a', "
            "'sip:+14155550177@b', 'ended', 'human', '2024-05-01T10:00:00.000Z', "
            "'2024-05-01T10:00:03.000Z', '2024-05-01T10:01:00.000Z', 57000, "
            "'{\"packets\":2850}', '{}', '{\"callback\":\"tomorrow\"}');"
            "INSERT INTO call_turns (call_id, seq, speaker, text, started_at, intent, confidence, "
            "entities, emotion, barge_in) VALUES (last_insert_rowid(), 1, 'caller', 'call me "
            "tomorrow', '2024-05-01T10:00:05.000Z', 'callback', 0.91, '[]', '{}', 0);"
         % (cid, lead["id"]))
    calls = r(200, "GET", "/api/calls", "/api/calls?campaign_id=%d" % cid, token=tok)
    eq(len(calls["items"]), 1, "calls listed")
    call_id = calls["items"][0]["id"]
    r(200, "GET", "/api/calls/{id}", "/api/calls/%d" % call_id, token=tok)
    turns = r(200, "GET", "/api/calls/{id}/turns", "/api/calls/%d/turns" % call_id, token=tok)
    eq([t["text"] for t in turns["items"]], ["call me tomorrow"], "turns")
    r(404, "GET", "/api/calls/{id}", "/api/calls/999999", token=tok)
    r(404, "GET", "/api/calls/{id}/turns", "/api/calls/999999/turns", token=tok)

    # calls: control through the telephony service, against a sipp callee on loopback
    _tmp = tempfile.mkdtemp(prefix="rv-oa-")
    _uas = _sc.Sipp(_tmp, _sa.scenario(_tmp, "tel_uas_answer.xml", ruri="INVITE sip:oa@",
                                        media="", wait=30000))
    try:
        placed = r(202, "POST", "/api/calls", token=tok,
                   body={"to": "sip:oa@127.0.0.1:%d" % _uas.port, "campaign_id": cid})
        p = "/api/calls/%d" % placed["id"]
        for _ in range(200):
            if d.request("GET", p, token=tok)[1]["state"] == "answered":
                break
            time.sleep(0.1)
        r(202, "POST", "/api/calls/{id}/dtmf", p + "/dtmf", token=tok, body={"digits": "12#"})
        r(202, "POST", "/api/calls/{id}/record", p + "/record", token=tok, body={"on": True})
        r(202, "POST", "/api/calls/{id}/transfer", p + "/transfer", token=tok,
          body={"to": "sip:agent@127.0.0.1:9", "mode": "bridged"})
        r(202, "POST", "/api/calls/{id}/hangup", p + "/hangup", token=tok)
        _uas.wait(30)
        for _ in range(200):
            if d.request("GET", p, token=tok)[1]["state"] == "ended":
                break
            time.sleep(0.1)
        r(409, "POST", "/api/calls/{id}/hangup", p + "/hangup", token=tok)
        r(404, "POST", "/api/calls/{id}/hangup", "/api/calls/999999/hangup", token=tok)
        r(400, "POST", "/api/calls", token=tok, body={"to": "not a number"})
        r(422, "POST", "/api/calls", token=tok, body={"to": "sip:a@127.0.0.1:9",
                                                      "campaign_id": 999999})
    finally:
        _uas.stop()
        shutil.rmtree(_tmp, ignore_errors=True)

    # Twilio webhooks: signed as Twilio signs them
    sid = "CA" + "5" * 32
    voice = {"CallSid": sid, "AccountSid": TW_SID, "From": "+14155550111", "To": "+14155550199",
             "Direction": "inbound", "CallStatus": "ringing"}
    r(200, "POST", "/twilio/voice", **_twilio_form("/twilio/voice", voice))
    bad = _twilio_form("/twilio/voice", voice)
    bad["headers"] = {"X-Twilio-Signature": "AAAA"}
    r(403, "POST", "/twilio/voice", **bad)
    # An outbound call through the REST API (the fake plays Twilio), then its status callback.
    placed = r(202, "POST", "/api/calls", token=tok,
               body={"to": "+14155550124", "trunk": "twilio", "from": "+14155550100"})
    fake = d.fake_twilio
    for _ in range(100):
        if fake.calls:
            break
        time.sleep(0.05)
    form = {k: v[0] for k, v in fake.calls[0]["form"].items()}
    q = urllib.parse.urlparse(form["StatusCallback"]).query
    status = {"CallSid": fake.calls[0]["sid"], "AccountSid": TW_SID, "CallStatus": "busy",
              "From": form["From"], "To": form["To"], "Direction": "outbound-api"}
    r(204, "POST", "/twilio/status", "/twilio/status?" + q,
      **_twilio_form("/twilio/status?" + q, status))
    # The row is written by the telephony writer thread after the 204: wait for it.
    disp = None
    for _ in range(100):
        disp = d.request("GET", "/api/calls/%d" % placed["id"], token=tok)[1]["disposition"]
        if disp is not None:
            break
        time.sleep(0.05)
    eq(disp, "busy", "status callback ended the call")

    # voice AI on text
    r(200, "POST", "/api/voice-ai/understand", token=tok,
      body={"text": "call me tomorrow at 3 pm", "timezone": "America/New_York",
            "now": "2026-11-22T10:00:00-05:00"})
    r(400, "POST", "/api/voice-ai/understand", token=tok, body={"text": 5})
    r(200, "POST", "/api/voice-ai/analyze-emotion", token=tok, body={"text": "this is great"})
    r(422, "POST", "/api/voice-ai/analyze-emotion", token=tok, body={"audio": "AAAA"})
    conv = r(200, "POST", "/api/voice-ai/manage-conversation", token=tok,
             body={"flow_name": "appointment", "outbound": True})
    r(200, "POST", "/api/voice-ai/manage-conversation", token=tok,
      body={"flow_name": "appointment", "conversation": conv["conversation"], "text": "yes"})
    r(422, "POST", "/api/voice-ai/manage-conversation", token=tok, body={"flow_name": "nope"})
    r(200, "POST", "/api/voice-ai/generate-response", token=tok,
      body={"flow_name": "default", "text": "are you a robot"})
    r(200, "POST", "/api/voice-ai/synthesize-speech", token=tok, body={"text": "Hello there.", "voice": "rms"})
    examples = [{"intent": i, "text": t} for i, t in (
        ("order", "i want to order a pizza"), ("order", "can i order food"),
        ("order", "i'd like to place an order"), ("hours", "when are you open"),
        ("hours", "what are your opening hours"), ("hours", "are you open on sunday"))]
    m = r(201, "POST", "/api/voice-ai/train-model", token=tok,
          body={"name": "openapi", "examples": examples, "holdout": 0})
    r(400, "POST", "/api/voice-ai/train-model", token=tok, body={"name": "x", "examples": 5})
    r(200, "GET", "/api/voice-ai/models", token=tok)
    r(200, "GET", "/api/voice-ai/models/{id}", "/api/voice-ai/models/%d" % m["id"], token=tok)
    r(404, "GET", "/api/voice-ai/models/{id}", "/api/voice-ai/models/999999", token=tok)
    r(200, "POST", "/api/voice-ai/models/{id}/activate", "/api/voice-ai/models/builtin/activate",
      token=tok, body={})
    r(400, "POST", "/api/voice-ai/synthesize-speech", token=tok, body={"text": "", "voice": "rms"})

    # do-not-call
    dnc = r(201, "POST", "/api/dnc", token=tok, body={"phone": "+14155550123", "reason": "asked"})
    r(409, "POST", "/api/dnc", token=tok, body={"phone": "+14155550123"})
    r(200, "GET", "/api/dnc", token=tok)
    r(200, "GET", "/api/dnc/{id}", "/api/dnc/%d" % dnc["id"], token=tok)

    # webhooks: the secret only in the create response
    wh = r(201, "POST", "/api/webhooks", token=tok, body={"url": "https://crm.example.com/hook",
                                                          "events": ["call.ended"]})
    check(isinstance(wh.get("secret"), str) and wh["secret"], "webhook secret on create")
    r(200, "GET", "/api/webhooks", token=tok)
    got = r(200, "GET", "/api/webhooks/{id}", "/api/webhooks/%d" % wh["id"], token=tok)
    check("secret" not in got, "webhook secret not returned by GET")
    r(200, "PATCH", "/api/webhooks/{id}", "/api/webhooks/%d" % wh["id"], token=tok, body={"active": False})
    r(400, "POST", "/api/webhooks", token=tok, body={"url": "ftp://example.com/x"})

    r(200, "GET", "/api/audit", "/api/audit?resource=campaigns", token=tok)
    r(200, "GET", "/api/analytics", token=tok)

    # deletes last
    r(204, "DELETE", "/api/webhooks/{id}", "/api/webhooks/%d" % wh["id"], token=tok)
    r(204, "DELETE", "/api/dnc/{id}", "/api/dnc/%d" % dnc["id"], token=tok)
    r(204, "DELETE", "/api/leads/{id}", "/api/leads/%d" % lead["id"], token=tok)
    r(204, "DELETE", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=tok)
    r(404, "DELETE", "/api/campaigns/{id}", "/api/campaigns/%d" % cid, token=tok)
    r(204, "DELETE", "/api/flows/{id}", "/api/flows/%d" % f["id"], token=tok)
    r(204, "DELETE", "/api/keys/{id}", "/api/keys/%d" % k["id"], token=tok)
    r(204, "DELETE", "/api/users/{id}", "/api/users/%d" % uid, token=tok)


def test_openapi_document_matches_daemon():
    _node_deps()
    fake = _ft.FakeTwilio(TW_SID, TW_TOKEN).start()
    try:
        _document_matches_daemon(fake)
    finally:
        fake.stop()


def _document_matches_daemon(fake):
    with Daemon(config=CONFIG % (free_port(), fake.base),
                env={"REVOVOICE_RATE_LIMIT_RPS": "0"}) as d:
        d.fake_twilio = fake
        routes = d.cli("routes").stdout.decode()
        check(len(routes.splitlines()) >= 40, "revovoice routes printed %r" % routes[:200])
        routes_file = os.path.join(d.data_dir, "routes.txt")
        with open(routes_file, "w") as fh:
            fh.write(routes)

        rec = Recorder(d)
        _exercise(d, rec)
        # Every served operation answered successfully at least once, so each success schema
        # in the document was checked against a real body.
        served = {tuple(ln.split()[:2]) for ln in routes.splitlines() if ln.strip()}
        succeeded = {(s["method"], s["route"]) for s in rec.samples if 200 <= s["status"] < 300}
        eq(sorted(served - succeeded), [], "operations never exercised successfully")
        samples_file = os.path.join(d.data_dir, "samples.json")
        with open(samples_file, "w") as fh:
            json.dump(rec.samples, fh)

        p = subprocess.run(["node", os.path.join(NODE_DIR, "validate.mjs"), d.url(""), routes_file,
                            samples_file], capture_output=True, timeout=120)
        out = p.stdout.decode(errors="replace")
        lines = out.splitlines()
        # Indented, so the test runner's own "ok"/"FAIL" counting does not pick these lines up.
        shown = "\n".join("    " + ln for ln in lines) + "\n" + p.stderr.decode(errors="replace")
        for name in ("fetch", "schema", "jsonschema", "operations", "routes", "responses"):
            check(("ok openapi/" + name) in lines, "node check %s did not pass:\n%s" % (name, shown))
        check(not any(ln.startswith("FAIL ") for ln in lines), "node reported a failure:\n" + shown)
        eq(p.returncode, 0, "validate.mjs exit code\n" + shown)


def test_openapi_served_document_is_the_source_file():
    with open(os.path.join(ROOT, "src", "api", "openapi.json"), "rb") as fh:
        src = fh.read()
    with Daemon() as d:
        st, body, hdrs = d.request("GET", "/api/openapi.json")
        eq(st, 200, "status")
        check(hdrs.get("Content-Type", "").startswith("application/json"), "content type %r" % hdrs)
        eq(body, json.loads(src), "served document")
        eq(body["openapi"], "3.1.0", "openapi version")


def test_openapi_docs_page():
    with Daemon() as d:
        st, body, hdrs = d.request("GET", "/api/docs")
        eq(st, 200, "status")
        check(hdrs.get("Content-Type", "").startswith("text/html"), "content type %r" % hdrs)
        check(isinstance(body, str) and body.lstrip().lower().startswith("<!doctype html>"), "an HTML page")
        check('fetch("/api/openapi.json"' in body, "the page loads /api/openapi.json")
        check("x-min-role" in body, "the page shows each operation's role")
        # Self-contained: nothing is loaded from another origin, and HTML parsing of document
        # strings is never used.
        check(not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', body, re.I), "no external resources")
        check("innerHTML" not in body, "no innerHTML")
        csp = hdrs.get("Content-Security-Policy", "")
        check("default-src 'none'" in csp and "connect-src 'self'" in csp, "CSP %r" % csp)
