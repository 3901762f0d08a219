"""REST resources end to end: CRUD with keyset pagination for every resource, validation and
conflict errors, campaign status rules, webhook secrets, last-admin protection, the audit log,
analytics, and persistence across a restart. Rows are also checked in the SQLite file."""
import os
import re
import sqlite3

from harness import Daemon, check, eq

ADMIN = "admin@example.com"


def db_rows(d, sql, *args):
    con = sqlite3.connect(os.path.join(d.data_dir, "revovoice.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def db_exec(d, sql, *args):
    con = sqlite3.connect(os.path.join(d.data_dir, "revovoice.db"), timeout=10)
    try:
        cur = con.execute(sql, args)
        con.commit()
        return cur.lastrowid
    finally:
        con.close()


def req(d, method, path, body=None, status=None, token=None):
    st, out, _ = d.request(method, path, body, token=token or d.admin())
    if status is not None:
        eq(st, status, "%s %s -> %s" % (method, path, out))
    return st, out


def err(d, method, path, body, status, code, field=None):
    """Assert an error reply; returns its details."""
    st, out = req(d, method, path, body)
    eq(st, status, "%s %s %r -> %r" % (method, path, body, out))
    eq(out["error"]["code"], code, "error code of %s %s: %r" % (method, path, out))
    check(isinstance(out["error"]["message"], str) and out["error"]["message"], "message")
    if field is not None:
        eq((out["error"]["details"] or {}).get("field"), field, "details.field: %r" % out)
    return out["error"]["details"]


def page_all(d, path, limit):
    """Walk every page of a list; asserts newest-first order and page sizes."""
    items, cursor, pages = [], None, 0
    sep = "&" if "?" in path else "?"
    while True:
        url = "%s%slimit=%d" % (path, sep, limit) + ("&cursor=%s" % cursor if cursor else "")
        _, body = req(d, "GET", url, status=200)
        check(len(body["items"]) <= limit, "page larger than limit")
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        check(isinstance(cursor, str) and cursor, "next_cursor must be a non-empty string")
        eq(len(body["items"]), limit, "a page before the last one is full")
        check(pages < 100, "pagination does not end")
    ids = [i["id"] for i in items]
    eq(ids, sorted(ids, reverse=True), "newest first")
    return items


def audit(d, **filters):
    q = "&".join("%s=%s" % kv for kv in filters.items())
    return page_all(d, "/api/audit" + ("?" + q if q else ""), 100)


def audit_has(d, resource, action, rid, actor=ADMIN):
    rows = [a for a in audit(d, resource=resource)
            if a["action"] == action and a["resource_id"] == rid]
    eq(len(rows), 1, "audit rows for %s %s %s" % (action, resource, rid))
    eq(rows[0]["actor"], actor, "audit actor")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", rows[0]["at"]), "audit at")
    check(isinstance(rows[0]["details"], dict), "audit details is an object")
    return rows[0]


def crud(d, path, resource, bodies, patch, patched, hidden=()):
    """Create every body, get each, list them across pages, patch the first, delete it."""
    created = []
    for b in bodies:
        _, obj = req(d, "POST", path, b, status=201)
        check(isinstance(obj["id"], int) and obj["id"] > 0, "id")
        for h in hidden:
            check(h not in obj, "%s must not be returned" % h)
        created.append(obj)
    for obj in created:
        _, got = req(d, "GET", "%s/%d" % (path, obj["id"]), status=200)
        eq(got, {k: v for k, v in obj.items() if k != "secret"}, "GET equals the created object")
        audit_has(d, resource, "create", obj["id"])
    listed = page_all(d, path, 2)
    ids = [i["id"] for i in listed]
    for obj in created:
        eq(ids.count(obj["id"]), 1, "id %d listed exactly once" % obj["id"])
    first = created[0]
    if patch is not None:
        _, upd = req(d, "PATCH", "%s/%d" % (path, first["id"]), patch, status=200)
        for k, v in patched.items():
            eq(upd[k], v, "patched %s" % k)
        check(upd["updated_at"] >= first["updated_at"], "updated_at moves forward")
        _, again = req(d, "GET", "%s/%d" % (path, first["id"]), status=200)
        eq(again, upd, "GET after PATCH")
        a = audit_has(d, resource, "update", first["id"])
        check(set(a["details"]["fields"]) >= set(k for k in patch if k not in ("password",)),
              "update audit names the fields: %r" % a)
    st, body = req(d, "DELETE", "%s/%d" % (path, first["id"]))
    eq(st, 204, "DELETE status")
    check(body is None, "DELETE has no body")
    req(d, "GET", "%s/%d" % (path, first["id"]), status=404)
    req(d, "DELETE", "%s/%d" % (path, first["id"]), status=404)
    if patch is not None:
        req(d, "PATCH", "%s/%d" % (path, first["id"]), patch, status=404)
    audit_has(d, resource, "delete", first["id"])
    ids = [i["id"] for i in page_all(d, path, 3)]
    check(first["id"] not in ids, "deleted row is gone from the list")
    for obj in created[1:]:
        check(obj["id"] in ids, "other rows stay")
    # Ids that are not positive integers are 404s, not 400s or 500s.
    for bad in ("0", "-1", "abc", "1.5", "99999999999999999999", "999999"):
        req(d, "GET", "%s/%s" % (path, bad), status=404)
    return created[1:]


# ---- per resource ---------------------------------------------------------------------------

def test_res_campaigns_crud_and_defaults():
    with Daemon() as d:
        _, c = req(d, "POST", "/api/campaigns", {"name": "Only a name"}, status=201)
        defaults = {"status": "draft", "description": "", "flow_id": None, "voice": "flite:rms",
                    "language": "en-US", "caller_id": "", "trunk": "", "default_country": "US",
                    "timezone": "America/New_York", "calling_window_start": "09:00",
                    "calling_window_end": "20:00", "calling_days": "mon,tue,wed,thu,fri",
                    "max_concurrent": 5, "calls_per_minute": 30, "max_attempts": 3,
                    "retry_delay_minutes": 60, "retry_on": "no_answer,busy,failed,machine",
                    "amd_policy": "hangup", "voicemail_message": "", "recording_policy": "never",
                    "require_consent": False, "settings": {}, "created_by": 1}
        for k, v in defaults.items():
            eq(c[k], v, "default of %s" % k)
        eq(c["created_at"], c["updated_at"], "fresh row")
        _, f = req(d, "POST", "/api/flows", {"name": "greeting", "definition": flow_doc("Hi.")},
                   status=201)
        bodies = [{"name": "camp %d" % i, "timezone": "Europe/London", "default_country": "GB",
                   "calling_days": "mon,wed", "max_concurrent": 1000, "flow_id": f["id"],
                   "settings": {"k": [1, 2]}, "require_consent": True} for i in range(5)]
        rest = crud(d, "/api/campaigns", "campaigns", bodies,
                    {"description": "changed", "calling_window_start": "08:30",
                     "caller_id": "020 7946 0958", "amd_policy": "voicemail"},
                    {"description": "changed", "calling_window_start": "08:30",
                     "caller_id": "+442079460958", "amd_policy": "voicemail",
                     "timezone": "Europe/London"})
        eq(rest[0]["settings"], {"k": [1, 2]}, "settings come back as an object")
        eq(rest[0]["flow_id"], f["id"], "flow_id")
        # The JSON column holds JSON text, the boolean 0/1.
        row = db_rows(d, "SELECT settings, require_consent FROM campaigns WHERE id = ?",
                      rest[0]["id"])[0]
        eq(row, ('{"k":[1,2]}', 1), "stored representation")
        # flow_id can be cleared with null.
        _, upd = req(d, "PATCH", "/api/campaigns/%d" % rest[0]["id"], {"flow_id": None},
                     status=200)
        eq(upd["flow_id"], None, "flow_id cleared")


def test_res_campaign_validation_writes_nothing():
    with Daemon() as d:
        _, base = req(d, "POST", "/api/campaigns", {"name": "base"}, status=201)
        before_list = page_all(d, "/api/campaigns", 50)
        before_audit = audit(d)
        cases = [
            ({"name": "x", "bogus": 1}, 400, "invalid_field", "bogus"),
            ({"name": "x", "id": 5}, 400, "invalid_field", "id"),
            ({"name": "x", "created_by": 5}, 400, "invalid_field", "created_by"),
            ({"name": 12}, 400, "invalid_field", "name"),
            ({"name": ""}, 400, "invalid_field", "name"),
            ({}, 400, "invalid_field", "name"),
            ({"name": "x", "max_concurrent": "5"}, 400, "invalid_field", "max_concurrent"),
            ({"name": "x", "max_concurrent": 0}, 400, "invalid_field", "max_concurrent"),
            ({"name": "x", "max_concurrent": 1001}, 400, "invalid_field", "max_concurrent"),
            ({"name": "x", "calls_per_minute": 6001}, 400, "invalid_field", "calls_per_minute"),
            ({"name": "x", "max_attempts": 21}, 400, "invalid_field", "max_attempts"),
            ({"name": "x", "retry_delay_minutes": -1}, 400, "invalid_field",
             "retry_delay_minutes"),
            ({"name": "x", "retry_delay_minutes": 10081}, 400, "invalid_field",
             "retry_delay_minutes"),
            ({"name": "x", "amd_policy": "sometimes"}, 400, "invalid_field", "amd_policy"),
            ({"name": "x", "recording_policy": "maybe"}, 400, "invalid_field",
             "recording_policy"),
            ({"name": "x", "status": "running"}, 400, "invalid_field", "status"),
            ({"name": "x", "timezone": "../../etc/passwd"}, 400, "invalid_field", "timezone"),
            ({"name": "x", "timezone": "/etc/passwd"}, 400, "invalid_field", "timezone"),
            ({"name": "x", "timezone": "Mars/Olympus"}, 400, "invalid_field", "timezone"),
            ({"name": "x", "calling_window_start": "9:00"}, 400, "invalid_field",
             "calling_window_start"),
            ({"name": "x", "calling_window_end": "24:00"}, 400, "invalid_field",
             "calling_window_end"),
            ({"name": "x", "calling_window_start": "18:00", "calling_window_end": "09:00"}, 400,
             "invalid_field", "calling_window_end"),
            ({"name": "x", "calling_window_start": "10:00", "calling_window_end": "10:00"}, 400,
             "invalid_field", "calling_window_end"),
            ({"name": "x", "calling_days": "mon,funday"}, 400, "invalid_field", "calling_days"),
            ({"name": "x", "calling_days": ""}, 400, "invalid_field", "calling_days"),
            ({"name": "x", "default_country": "XX"}, 400, "invalid_field", "default_country"),
            ({"name": "x", "default_country": "us"}, 400, "invalid_field", "default_country"),
            ({"name": "x", "settings": [1]}, 400, "invalid_field", "settings"),
            ({"name": "x", "settings": "{}"}, 400, "invalid_field", "settings"),
            ({"name": "x", "require_consent": 1}, 400, "invalid_field", "require_consent"),
            ({"name": "x", "caller_id": "not a phone"}, 400, "invalid_field", "caller_id"),
            ({"name": "x", "retry_on": "busy,sometimes"}, 400, "invalid_field", "retry_on"),
            ({"name": "x", "flow_id": 424242}, 422, "unprocessable", "flow_id"),
            ({"name": "x", "flow_id": 0}, 400, "invalid_field", "flow_id"),
            ({"name": "base"}, 409, "conflict", None),
            ({"name": "x", "status": "paused"}, 409, "conflict", None),
        ]
        for body, status, code, field in cases:
            err(d, "POST", "/api/campaigns", body, status, code, field)
        # Unparseable body.
        st, out, _ = d.request("POST", "/api/campaigns", raw=b"{not json", token=d.admin(),
                               content_type="application/json")
        eq((st, out["error"]["code"]), (400, "invalid_json"), "bad JSON")
        # PATCH validation uses the stored half of the window.
        err(d, "PATCH", "/api/campaigns/%d" % base["id"], {"calling_window_start": "21:00"},
            400, "invalid_field", "calling_window_start")
        err(d, "PATCH", "/api/campaigns/%d" % base["id"], {"nope": True}, 400, "invalid_field",
            "nope")
        err(d, "PATCH", "/api/campaigns/%d" % base["id"], {"name": None}, 400, "invalid_field",
            "name")
        eq(page_all(d, "/api/campaigns", 50), before_list, "failed writes leave the list as it was")
        eq(audit(d), before_audit, "failed writes add no audit row")
        eq(db_rows(d, "SELECT COUNT(*) FROM campaigns")[0][0], 1, "one row in the table")


def test_res_campaign_status_transitions():
    with Daemon() as d:
        _, c = req(d, "POST", "/api/campaigns", {"name": "flow"}, status=201)
        path = "/api/campaigns/%d" % c["id"]
        det = err(d, "PATCH", path, {"status": "paused"}, 409, "conflict")
        eq((det["from"], det["to"], sorted(det["allowed"])), ("draft", "paused",
                                                              ["active", "archived"]), "details")
        err(d, "PATCH", path, {"status": "completed"}, 409, "conflict")
        for to in ("active", "paused", "active", "paused", "completed", "archived"):
            _, out = req(d, "PATCH", path, {"status": to}, status=200)
            eq(out["status"], to, "status")
        det = err(d, "PATCH", path, {"status": "active"}, 409, "conflict")
        eq(det["allowed"], [], "archived is final")
        _, c2 = req(d, "POST", "/api/campaigns", {"name": "two", "status": "active"}, status=201)
        det = err(d, "PATCH", "/api/campaigns/%d" % c2["id"], {"status": "draft"}, 409,
                  "conflict")
        eq(sorted(det["allowed"]), ["completed", "paused"], "active may go to")
        _, c3 = req(d, "GET", path, status=200)
        eq(c3["status"], "archived", "refused moves changed nothing")


def test_res_leads():
    with Daemon() as d:
        _, gb = req(d, "POST", "/api/campaigns", {"name": "uk", "default_country": "GB"},
                    status=201)
        _, us = req(d, "POST", "/api/campaigns", {"name": "us"}, status=201)
        bodies = [{"campaign_id": gb["id"], "phone": "020 7946 09%02d" % i, "first_name": "N%d" % i,
                   "email": "n%d@example.com" % i, "timezone": "Europe/London",
                   "custom_fields": {"plan": "gold", "n": i}} for i in range(5)]
        rest = crud(d, "/api/leads", "leads", bodies,
                    {"status": "callback", "last_name": "Smith", "custom_fields": {"a": None}},
                    {"status": "callback", "last_name": "Smith", "custom_fields": {"a": None}})
        eq(rest[0]["phone"], "+4420794609%02d" % 1, "national number normalised with GB")
        eq(rest[0]["custom_fields"], {"plan": "gold", "n": 1}, "custom_fields object")
        eq(rest[0]["status"], "new", "default status")
        # Same number as a US lead: a different campaign, so allowed; +44 keeps its country.
        _, l2 = req(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+44 20 7946 0901"},
                    status=201)
        eq(l2["phone"], "+442079460901", "explicit country code")
        _, l3 = req(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "(415) 555-2671"},
                    status=201)
        eq(l3["phone"], "+14155552671", "US national number")
        before = db_rows(d, "SELECT COUNT(*) FROM leads")[0][0]
        n_audit = len(audit(d))
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "415.555.2671"}, 409,
            "conflict")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "hello"}, 400,
            "invalid_field", "phone")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "123"}, 400,
            "invalid_field", "phone")
        err(d, "POST", "/api/leads", {"campaign_id": 9999, "phone": "+14155552672"}, 422,
            "unprocessable", "campaign_id")
        err(d, "POST", "/api/leads", {"phone": "+14155552672"}, 400, "invalid_field",
            "campaign_id")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"]}, 400, "invalid_field", "phone")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+14155552672",
                                      "email": "not-an-email"}, 400, "invalid_field", "email")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+14155552672",
                                      "timezone": "../../etc/passwd"}, 400, "invalid_field",
            "timezone")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+14155552672",
                                      "status": "zombie"}, 400, "invalid_field", "status")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+14155552672",
                                      "attempts": 3}, 400, "invalid_field", "attempts")
        err(d, "POST", "/api/leads", {"campaign_id": us["id"], "phone": "+14155552672",
                                      "custom_fields": "x"}, 400, "invalid_field", "custom_fields")
        err(d, "PATCH", "/api/leads/%d" % l3["id"], {"campaign_id": gb["id"]}, 400,
            "invalid_field", "campaign_id")
        eq(db_rows(d, "SELECT COUNT(*) FROM leads")[0][0], before, "nothing written")
        eq(len(audit(d)), n_audit, "no audit rows for refused writes")
        # PATCH phone normalises with the lead's campaign's country.
        _, p = req(d, "PATCH", "/api/leads/%d" % rest[0]["id"], {"phone": "020 7946 0999"},
                   status=200)
        eq(p["phone"], "+442079460999", "patched phone")
        # Filters.
        gb_ids = sorted(i["id"] for i in page_all(d, "/api/leads?campaign_id=%d" % gb["id"], 2))
        eq(gb_ids, sorted(r["id"] for r in rest), "campaign_id filter")
        req(d, "PATCH", "/api/leads/%d" % l2["id"], {"status": "converted"}, status=200)
        conv = page_all(d, "/api/leads?status=converted", 10)
        eq([i["id"] for i in conv], [l2["id"]], "status filter")
        both = page_all(d, "/api/leads?status=converted&campaign_id=%d" % gb["id"], 10)
        eq(both, [], "filters combine")
        err(d, "GET", "/api/leads?status=zombie", None, 400, "invalid_field", "status")
        err(d, "GET", "/api/leads?campaign_id=x", None, 400, "invalid_field", "campaign_id")
        err(d, "GET", "/api/leads?limit=0", None, 400, "invalid_field", "limit")
        err(d, "GET", "/api/leads?limit=501", None, 400, "invalid_field", "limit")
        err(d, "GET", "/api/leads?cursor=abc", None, 400, "invalid_field", "cursor")
        # Deleting a campaign deletes its leads.
        req(d, "DELETE", "/api/campaigns/%d" % us["id"], status=204)
        req(d, "GET", "/api/leads/%d" % l3["id"], status=404)


def test_res_users_and_last_admin():
    with Daemon() as d:
        t = d.admin()
        me = page_all(d, "/api/users", 10)
        eq([u["email"] for u in me], [ADMIN], "the admin")
        admin_id = me[0]["id"]
        for body, field in (({"email": "a@b.co", "password": "short", "role": "viewer"},
                             "password"),
                            ({"email": "nope", "password": "long enough pw", "role": "viewer"},
                             "email"),
                            ({"email": "a@b.co", "password": "long enough pw", "role": "god"},
                             "role"),
                            ({"email": "a@b.co", "password": "long enough pw"}, "role"),
                            ({"email": "a@b.co", "password": "long enough pw", "role": "viewer",
                              "password_hash": "x"}, "password_hash")):
            err(d, "POST", "/api/users", body, 400, "invalid_field", field)
        bodies = [{"email": "User%d@Example.com" % i, "password": "password-%d-long" % i,
                   "role": "manager", "name": "User %d" % i} for i in range(4)]
        rest = crud(d, "/api/users", "users", bodies, {"role": "viewer", "name": "Renamed"},
                    {"role": "viewer", "name": "Renamed"}, hidden=("password", "password_hash"))
        eq(rest[0]["email"], "user1@example.com", "email stored lower-case")
        eq(rest[0]["active"], True, "active is a boolean")
        err(d, "POST", "/api/users", {"email": "user1@example.com", "password": "whatever-123",
                                      "role": "viewer"}, 409, "conflict")
        # The new user can log in; a password change takes effect.
        d.login("user1@example.com", "password-1-long")
        _, u = req(d, "PATCH", "/api/users/%d" % rest[0]["id"], {"password": "new-password-1"},
                   status=200)
        check("password_hash" not in u and "password" not in u, "no hash in PATCH reply")
        st, _, _ = d.request("POST", "/api/auth/login", {"email": "user1@example.com",
                                                         "password": "password-1-long"})
        eq(st, 401, "old password refused")
        d.login("user1@example.com", "new-password-1")
        a = audit_has(d, "users", "update", rest[0]["id"])
        check("password_hash" not in str(a) and "new-password-1" not in str(a),
              "audit row carries no secret")
        # Last active admin: no demotion, deactivation or deletion.
        for body in ({"role": "manager"}, {"active": False}):
            det = err(d, "PATCH", "/api/users/%d" % admin_id, body, 409, "conflict")
            eq(det["reason"], "last_admin", "reason")
        err(d, "DELETE", "/api/users/%d" % admin_id, None, 409, "conflict")
        _, me2 = req(d, "GET", "/api/users/%d" % admin_id, status=200)
        eq((me2["role"], me2["active"]), ("admin", True), "admin untouched")
        # With a second active admin the first may step down.
        req(d, "PATCH", "/api/users/%d" % rest[1]["id"], {"role": "admin"}, status=200)
        req(d, "PATCH", "/api/users/%d" % admin_id, {"name": "Still admin"}, status=200)
        _, me3 = req(d, "PATCH", "/api/users/%d" % admin_id, {"role": "manager"}, status=200)
        eq(me3["role"], "manager", "demoted")
        eq(db_rows(d, "SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$%'")[0][0],
           len(rest) + 1, "hashes are argon2id")


def flow_doc(say):
    """The smallest flow the conversation engine accepts."""
    return {"start": "s", "states": {"s": {"say": say, "end": "done"}}}


def test_res_flows_versions():
    with Daemon() as d:
        bodies = [{"name": "flow %d" % i, "definition": flow_doc("Hello %d." % i)}
                  for i in range(5)]
        rest = crud(d, "/api/flows", "flows", bodies, {"description": "d"}, {"description": "d",
                                                                              "version": 1})
        f = rest[0]
        eq(f["definition"], flow_doc("Hello 1."), "definition as an object")
        path = "/api/flows/%d" % f["id"]
        _, same = req(d, "PATCH", path, {"definition": flow_doc("Hello 1.")}, status=200)
        eq(same["version"], 1, "same definition keeps the version")
        _, v2 = req(d, "PATCH", path, {"definition": flow_doc("Changed.")}, status=200)
        eq(v2["version"], 2, "new definition bumps the version")
        _, v3 = req(d, "PATCH", path, {"definition": flow_doc("Again."), "name": "renamed"},
                    status=200)
        eq((v3["version"], v3["name"]), (3, "renamed"), "bump again")
        err(d, "POST", "/api/flows", {"name": "nodef"}, 400, "invalid_field", "definition")
        err(d, "POST", "/api/flows", {"name": "arr", "definition": []}, 400, "invalid_field",
            "definition")
        err(d, "POST", "/api/flows", {"name": "k", "definition": flow_doc("x"), "kind": "magic"},
            400, "invalid_field", "kind")
        err(d, "POST", "/api/flows", {"name": "renamed", "definition": flow_doc("x")}, 409,
            "conflict")
        # Validated on save: every problem named, nothing stored, the stored version untouched.
        st, out = req(d, "POST", "/api/flows", {"name": "broken", "definition": {
            "start": "a", "states": {"a": {"say": "hi", "on": {"affirm": "nowhere"}}}}})
        eq(st, 422, "invalid flow refused")
        eq(out["error"]["details"]["field"], "definition", "the field")
        check(any(e["path"] == "$.states.a.on.affirm" and "nowhere" in e["message"]
                  for e in out["error"]["details"]["errors"]), "the bad transition is named")
        st, out = req(d, "PATCH", path, {"definition": {"states": {}}})
        eq(st, 422, "an invalid update is refused too")
        _, still = req(d, "GET", path, status=200)
        eq(still["version"], 3, "the stored flow is unchanged")
        err(d, "PATCH", path, {"version": 9}, 400, "invalid_field", "version")
        big = {"blob": "x" * (300 * 1024)}
        st, out = req(d, "POST", "/api/flows", {"name": "big", "definition": big})
        check(st in (400, 413), "oversized definition refused: %s" % st)
        eq(db_rows(d, "SELECT COUNT(*) FROM flows WHERE name IN ('nodef','arr','k','big')")[0][0],
           0, "nothing written")


def test_res_webhooks_secret_only_on_create():
    with Daemon() as d:
        bodies = [{"url": "https://hooks.example.com/%d" % i, "events": ["call.ended", "lead.dnc"],
                   "name": "h%d" % i} for i in range(4)]
        created = []
        for b in bodies:
            _, h = req(d, "POST", "/api/webhooks", b, status=201)
            check(re.match(r"^[0-9a-f]{64}$", h["secret"]), "secret: 32 random bytes as hex")
            eq(h["secret_set"], True, "secret_set")
            eq(db_rows(d, "SELECT secret FROM webhooks WHERE id = ?", h["id"])[0][0],
               h["secret"], "stored secret is the one returned")
            created.append(h)
        eq(len({h["secret"] for h in created}), len(created), "secrets differ")
        for h in created:
            _, g = req(d, "GET", "/api/webhooks/%d" % h["id"], status=200)
            check("secret" not in g and g["secret_set"] is True, "GET hides the secret")
        for item in page_all(d, "/api/webhooks", 3):
            check("secret" not in item, "list hides the secret")
        _, p = req(d, "PATCH", "/api/webhooks/%d" % created[0]["id"],
                   {"active": False, "events": ["*"]}, status=200)
        check("secret" not in p, "PATCH hides the secret")
        eq((p["active"], p["events"]), (False, ["*"]), "patched")
        eq(db_rows(d, "SELECT secret FROM webhooks WHERE id = ?", created[0]["id"])[0][0],
           created[0]["secret"], "PATCH keeps the secret")
        a = audit_has(d, "webhooks", "create", created[0]["id"])
        check(created[0]["secret"] not in str(a), "audit row has no secret")
        crud(d, "/api/webhooks", "webhooks",
             [{"url": "http://127.0.0.1:9/x"}, {"url": "http://[::1]:8080/y", "active": False}],
             {"url": "https://new.example.com/"}, {"url": "https://new.example.com/"},
             hidden=())
        for body, field in (({"url": "ftp://x.example.com/"}, "url"),
                            ({"url": "not a url"}, "url"),
                            ({"url": "https://" + "a" * 2048}, "url"),
                            ({"url": "https://x.example.com/", "events": []}, "events"),
                            ({"url": "https://x.example.com/", "events": ["call.exploded"]},
                             "events"),
                            ({"url": "https://x.example.com/", "events": [""]}, "events"),
                            ({"url": "https://x.example.com/", "events": "call.ended"}, "events"),
                            ({"url": "https://x.example.com/", "secret": "mine"}, "secret"),
                            ({"events": ["*"]}, "url")):
            err(d, "POST", "/api/webhooks", body, 400, "invalid_field", field)


def test_res_dnc():
    with Daemon() as d:
        bodies = [{"phone": "(415) 555-26%02d" % i, "reason": "asked"} for i in range(5)]
        rest = crud(d, "/api/dnc", "dnc", bodies, None, None)
        e = rest[0]
        eq((e["phone"], e["source"], e["reason"], e["created_by"]),
           ("+14155552601", "api", "asked", 1), "normalised entry")
        err(d, "POST", "/api/dnc", {"phone": "+1 415 555 2601"}, 409, "conflict")
        err(d, "POST", "/api/dnc", {"phone": "nope"}, 400, "invalid_field", "phone")
        err(d, "POST", "/api/dnc", {"phone": "+14155552699", "source": "call"}, 400,
            "invalid_field", "source")
        err(d, "PATCH", "/api/dnc/%d" % e["id"], {"reason": "x"}, 405, "method_not_allowed")
        _, found = req(d, "GET", "/api/dnc?phone=415-555-2601", status=200)
        eq([i["id"] for i in found["items"]], [e["id"]], "lookup by a differently written number")
        _, found = req(d, "GET", "/api/dnc?phone=%2B14155552601", status=200)
        eq([i["id"] for i in found["items"]], [e["id"]], "lookup by E.164")
        _, none = req(d, "GET", "/api/dnc?phone=4155550000", status=200)
        eq(none["items"], [], "no entry")
        err(d, "GET", "/api/dnc?phone=garbage", None, 400, "invalid_field", "phone")
        _, gb = req(d, "POST", "/api/dnc", {"phone": "+44 20 7946 0958"}, status=201)
        eq(gb["phone"], "+442079460958", "+country code wins over the default region")


def test_res_calls_turns_and_analytics():
    with Daemon() as d:
        t = d.admin()
        _, c1 = req(d, "POST", "/api/campaigns", {"name": "a"}, status=201)
        _, c2 = req(d, "POST", "/api/campaigns", {"name": "b"}, status=201)
        req(d, "PATCH", "/api/campaigns/%d" % c2["id"], {"status": "active"}, status=200)
        _, l1 = req(d, "POST", "/api/leads", {"campaign_id": c1["id"], "phone": "+14155550101"},
                    status=201)
        req(d, "POST", "/api/leads", {"campaign_id": c2["id"], "phone": "+14155550102",
                                      "status": "completed"}, status=201)
        now = "2026-01-01T00:00:00.000Z"
        calls = []
        for camp, lead, disp, ans, dur in ((c1, l1, "answered", now, 1000),
                                           (c1, l1, "no_answer", None, None),
                                           (c2, None, "answered", now, 2001),
                                           (c2, None, None, None, None)):
            calls.append(db_exec(
                d, "INSERT INTO calls (campaign_id, lead_id, direction, disposition, created_at, "
                   "answered_at, duration_ms, rtp_stats, latency) VALUES (?,?,?,?,?,?,?,?,?)",
                camp["id"], lead["id"] if lead else None, "outbound", disp, now, ans, dur,
                '{"lost":3}', '{"ttfb_ms":420}'))
        for seq, speaker, text in ((2, "caller", "yes"), (0, "agent", "hello"),
                                   (1, "agent", "is this Ann?")):
            db_exec(d, "INSERT INTO call_turns (call_id, seq, speaker, text, started_at, entities, "
                       "barge_in) VALUES (?,?,?,?,?,?,?)", calls[0], seq, speaker, text, now,
                    '[{"type":"yes_no","value":true}]', 1 if seq == 2 else 0)
        listed = page_all(d, "/api/calls", 3)
        eq(sorted(i["id"] for i in listed), sorted(calls), "every call listed once")
        _, one = req(d, "GET", "/api/calls/%d" % calls[0], status=200)
        eq((one["rtp_stats"], one["latency"], one["extracted"], one["duration_ms"]),
           ({"lost": 3}, {"ttfb_ms": 420}, {}, 1000), "JSON columns parsed")
        eq([i["id"] for i in page_all(d, "/api/calls?campaign_id=%d" % c1["id"], 1)],
           [calls[1], calls[0]], "campaign filter")
        eq([i["id"] for i in page_all(d, "/api/calls?lead_id=%d" % l1["id"], 5)],
           [calls[1], calls[0]], "lead filter")
        _, turns = req(d, "GET", "/api/calls/%d/turns" % calls[0], status=200)
        eq([x["seq"] for x in turns["items"]], [0, 1, 2], "turns ordered by seq")
        eq(turns["items"][2]["entities"], [{"type": "yes_no", "value": True}], "entities")
        eq([x["barge_in"] for x in turns["items"]], [False, False, True], "barge_in booleans")
        _, empty = req(d, "GET", "/api/calls/%d/turns" % calls[1], status=200)
        eq(empty, {"items": []}, "no turns")
        req(d, "GET", "/api/calls/99999/turns", status=404)
        req(d, "GET", "/api/calls/x/turns", status=404)
        # Rows are written by the telephony service; POST /api/calls dials and takes no row.
        st, body, _ = d.request("POST", "/api/calls", {"direction": "inbound"}, token=t)
        eq(st, 400, "POST /api/calls is a dial request, not a row")
        eq(body["error"]["details"]["field"], "direction", "the unknown field is named")

        _, a = req(d, "GET", "/api/analytics", status=200)
        eq(a["campaigns"]["total"], 2, "campaign total")
        eq((a["campaigns"]["by_status"]["draft"], a["campaigns"]["by_status"]["active"],
            a["campaigns"]["by_status"]["archived"]), (1, 1, 0), "campaigns by status")
        eq((a["leads"]["total"], a["leads"]["by_status"]["new"],
            a["leads"]["by_status"]["completed"]), (2, 1, 1), "leads by status")
        eq(a["calls"]["total"], 4, "calls total")
        eq(a["calls"]["by_disposition"], {"answered": 2, "no_answer": 1, "none": 1},
           "by disposition")
        eq((a["calls"]["answered"], a["calls"]["avg_duration_ms"]), (2, 1501), "answered, avg")
        _, a1 = req(d, "GET", "/api/analytics?campaign_id=%d" % c1["id"], status=200)
        eq((a1["campaigns"]["total"], a1["leads"]["total"], a1["calls"]["total"],
            a1["calls"]["answered"], a1["calls"]["avg_duration_ms"]), (1, 1, 2, 1, 1000),
           "one campaign")
        err(d, "GET", "/api/analytics?campaign_id=-4", None, 400, "invalid_field", "campaign_id")


def test_res_audit_filters_and_restart():
    with Daemon() as d:
        t = d.admin()
        _, f = req(d, "POST", "/api/flows", {"name": "f", "definition": flow_doc("A.")}, status=201)
        _, c = req(d, "POST", "/api/campaigns", {"name": "keep", "flow_id": f["id"],
                                                 "settings": {"x": {"y": [1]}}}, status=201)
        _, l = req(d, "POST", "/api/leads", {"campaign_id": c["id"], "phone": "+14155550123",
                                             "custom_fields": {"k": "v"}}, status=201)
        _, h = req(d, "POST", "/api/webhooks", {"url": "https://e.example.com/h"}, status=201)
        _, n = req(d, "POST", "/api/dnc", {"phone": "+14155550999"}, status=201)
        _, u = req(d, "POST", "/api/users", {"email": "v@example.com", "password": "viewer-pass-1",
                                             "role": "viewer"}, status=201)
        # Another actor: a manager writes a flow.
        d.user_add("mgr@example.com", "manager-pass-1", "manager")
        mt = d.login("mgr@example.com", "manager-pass-1")
        st, mf, _ = d.request("POST", "/api/flows", {"name": "mine", "definition": flow_doc("M.")},
                              token=mt)
        eq(st, 201, "manager creates a flow")
        mine = [a for a in audit(d, actor="mgr@example.com")]
        eq([(a["action"], a["resource"], a["resource_id"]) for a in mine if a["resource"] == "flows"],
           [("create", "flows", mf["id"])], "actor filter")
        eq(mine[0]["actor_user_id"] is not None, True, "actor user id recorded")
        eq(mine[0]["client_ip"], "127.0.0.1", "client ip")
        # An API key acts as "api-key:<id>".
        st, key, _ = d.request("POST", "/api/keys", {"name": "ci", "role": "manager"}, token=t)
        eq(st, 201, "API key created")
        st, kf, _ = d.request("POST", "/api/flows", {"name": "by key", "definition": flow_doc("K.")},
                              api_key=key["key"])
        eq(st, 201, "flow created with an API key")
        a = audit_has(d, "flows", "create", kf["id"], actor="api-key:%d" % key["id"])
        eq(a["actor_api_key_id"], key["id"], "actor_api_key_id")
        flows = audit(d, resource="flows")
        check(all(a["resource"] == "flows" for a in flows) and len(flows) == 3, "resource filter")
        # Viewers may read campaigns but not the audit log.
        vt = d.login("v@example.com", "viewer-pass-1")
        st, _, _ = d.request("GET", "/api/audit", token=vt)
        eq(st, 403, "audit is admin-only")

        objs = {p: req(d, "GET", p, status=200)[1] for p in (
            "/api/flows/%d" % f["id"], "/api/campaigns/%d" % c["id"], "/api/leads/%d" % l["id"],
            "/api/webhooks/%d" % h["id"], "/api/dnc/%d" % n["id"], "/api/users/%d" % u["id"])}
        old_audit = audit(d)
        d.restart()
        d._admin_token = d.login(ADMIN, "admin-pass-123")
        for p, o in objs.items():
            _, again = req(d, "GET", p, status=200)
            eq(again, o, "%s survives a restart" % p)
        # The new login may add rows of its own; every earlier row is still there, unchanged.
        top = old_audit[0]["id"]
        eq([a for a in audit(d) if a["id"] <= top], old_audit, "audit log survives a restart")


def test_res_lead_on_dnc_list_is_never_dialable():
    """A lead whose number is on the DNC list gets status "dnc" through the API exactly as through
    the CSV import, and can't be taken off "dnc" while the number stays listed."""
    with Daemon() as d:
        _, c = req(d, "POST", "/api/campaigns", {"name": "dnc-leads"}, status=201)
        req(d, "POST", "/api/dnc", {"phone": "+1 415 555 0100"}, status=201)
        # Another format of the same number, and an explicit dialable status: still "dnc".
        _, a = req(d, "POST", "/api/leads",
                   {"campaign_id": c["id"], "phone": "(415) 555-0100", "status": "new"}, status=201)
        eq((a["phone"], a["status"]), ("+14155550100", "dnc"), "API lead on the DNC list")
        eq(db_rows(d, "SELECT status FROM leads WHERE id = ?", a["id"]), [("dnc",)], "stored")
        a_audit = audit_has(d, "leads", "create", a["id"])
        eq(a_audit["details"].get("dnc"), True, "audit says why the status was set")
        # Taking it off "dnc" is refused and changes nothing.
        det = err(d, "PATCH", "/api/leads/%d" % a["id"], {"status": "queued"}, 409, "conflict",
                  field="status")
        eq(det["reason"], "dnc", "reason")
        eq(db_rows(d, "SELECT status FROM leads WHERE id = ?", a["id"]), [("dnc",)], "unchanged")
        # Re-numbering a lead onto the list marks it; off the list it can be dialled again.
        _, b = req(d, "POST", "/api/leads", {"campaign_id": c["id"], "phone": "4155550101"},
                   status=201)
        eq(b["status"], "new", "a number not on the list")
        _, b2 = req(d, "PATCH", "/api/leads/%d" % b["id"], {"phone": "+14155550100"}, status=409)
        _, b2 = req(d, "PATCH", "/api/leads/%d" % b["id"], {"first_name": "B"}, status=200)
        eq(b2["status"], "new", "other changes leave the status alone")
        _, c2 = req(d, "POST", "/api/campaigns", {"name": "dnc-leads-2"}, status=201)
        _, e = req(d, "POST", "/api/leads", {"campaign_id": c2["id"], "phone": "4155550102"},
                   status=201)
        _, e2 = req(d, "PATCH", "/api/leads/%d" % e["id"], {"phone": "415 555 0100"}, status=200)
        eq(e2["status"], "dnc", "re-numbered onto the DNC list")
        # The CSV import agrees with the API for the same number.
        _, c3 = req(d, "POST", "/api/campaigns", {"name": "dnc-leads-3"}, status=201)
        st, rep, _ = d.request("POST", "/api/campaigns/%d/leads/import" % c3["id"],
                               raw="phone\n415-555-0100\n", content_type="text/csv",
                               token=d.admin())
        eq(st, 200, "import: %r" % rep)
        eq(db_rows(d, "SELECT status FROM leads WHERE campaign_id = ?", c3["id"]), [("dnc",)],
           "imported lead on the DNC list")


def test_res_concurrent_patches_lose_no_update():
    """Parallel PATCHes of one flow each bump its version once: none reads a stale row."""
    import threading
    with Daemon(env={"REVOVOICE_STORE_POOL": "4"}) as d:
        tok = d.admin()
        _, f = req(d, "POST", "/api/flows", {"name": "race", "definition": flow_doc("R.")},
                  status=201)
        out = []

        def patch(i):
            st, _, _ = d.request("PATCH", "/api/flows/%d" % f["id"], {"definition": flow_doc("Say %d." % i)},
                                 token=tok, timeout=30)
            out.append(st)
        th = [threading.Thread(target=patch, args=(i,)) for i in range(24)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        eq(out.count(200), 24, "every PATCH succeeded: %r" % out)
        _, g = req(d, "GET", "/api/flows/%d" % f["id"], status=200)
        eq(g["version"], 25, "one version per PATCH")
        eq(len([a for a in audit(d, resource="flows") if a["action"] == "update"]), 24,
           "one audit row per PATCH")


def test_res_pool_of_one_survives_every_kind_of_request():
    """With one pooled connection, concurrent requests of every kind (reads, writes, failing
    writes at each stage, auth) must all be answered: a handler that kept its connection or
    asked for a second one would hang the daemon."""
    import threading
    with Daemon(env={"REVOVOICE_STORE_POOL": "1", "REVOVOICE_RATE_LIMIT_RPS": "100000",
                     "REVOVOICE_RATE_LIMIT_BURST": "100000"}) as d:
        tok = d.admin()
        _, c = req(d, "POST", "/api/campaigns", {"name": "pool"}, status=201)
        _, f = req(d, "POST", "/api/flows", {"name": "pool", "definition": flow_doc("P.")},
                  status=201)
        _, ld = req(d, "POST", "/api/leads", {"campaign_id": c["id"], "phone": "4155550199"},
                    status=201)
        _, w = req(d, "POST", "/api/webhooks", {"url": "https://example.com/h"}, status=201)
        call = db_exec(d, "INSERT INTO calls (campaign_id, direction, created_at) "
                          "VALUES (?, 'outbound', '2026-01-01T00:00:00Z')", c["id"])
        cid, fid = c["id"], f["id"]
        kinds = [
            ("GET", "/api/campaigns", None, 200), ("GET", "/api/campaigns/%d" % cid, None, 200),
            ("GET", "/api/campaigns/999999", None, 404), ("GET", "/api/leads?status=new", None, 200),
            ("GET", "/api/calls/%d/turns" % call, None, 200), ("GET", "/api/calls/999999/turns", None, 404),
            ("GET", "/api/analytics", None, 200), ("GET", "/api/audit?limit=5", None, 200),
            ("GET", "/api/users", None, 200), ("GET", "/api/auth/me", None, 200),
            ("GET", "/api/webhooks/%d" % w["id"], None, 200), ("GET", "/api/dnc?phone=4155550100", None, 200),
            ("PATCH", "/api/flows/%d" % fid, {"description": "x"}, 200),
            ("PATCH", "/api/campaigns/%d" % cid, {"status": "completed"}, 409),   # hook refuses
            ("PATCH", "/api/campaigns/%d" % cid, {"flow_id": 999999}, 422),       # hook refuses
            ("PATCH", "/api/campaigns/999999", {"description": "x"}, 404),
            ("PATCH", "/api/campaigns/%d" % cid, {"name": "pool-flow"}, 409),     # unique
            ("POST", "/api/leads", {"campaign_id": cid, "phone": "4155550199"}, 409),
            ("POST", "/api/leads", {"campaign_id": 999999, "phone": "4155550198"}, 422),
            ("POST", "/api/leads", {"campaign_id": cid, "phone": "12"}, 400),
            ("PATCH", "/api/users/1", {"role": "viewer"}, 409),                    # last admin
            ("DELETE", "/api/dnc/999999", None, 404),
            ("POST", "/api/campaigns/%d/leads/import" % cid, "phone\nnot-a-number\n", 200),
        ]
        req(d, "POST", "/api/campaigns", {"name": "pool-flow"}, status=201)
        bad = []

        def worker(n):
            for i in range(6):
                m, path, body, want = kinds[(n + i) % len(kinds)]
                if isinstance(body, str):
                    st, out, _ = d.request(m, path, raw=body, content_type="text/csv",
                                           token=tok, timeout=30)
                else:
                    st, out, _ = d.request(m, path, body, token=tok, timeout=30)
                if st != want:
                    bad.append((m, path, st, out))
        th = [threading.Thread(target=worker, args=(n,)) for n in range(len(kinds))]
        for t in th:
            t.start()
        for t in th:
            t.join()
        eq(bad, [], "every request got its usual answer")
        # The one connection came back every time: a plain read still answers at once.
        st, _, _ = d.request("GET", "/api/leads/%d" % ld["id"], token=tok, timeout=3)
        eq(st, 200, "the daemon still answers")
        check("released inside a transaction" not in d.read_log(),
              "no handler returned its connection with a transaction open")
