"""Authentication end to end: `user add`, login, bearer tokens, API keys, demotion, restart."""
import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import statistics
import time

from harness import Daemon, check, eq

PW = "correct horse battery"


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_key(d):
    with open(os.path.join(d.data_dir, "secrets.json")) as f:
        return bytes.fromhex(json.load(f)["jwt_secret"])


def craft(key, claims, alg="HS256"):
    """A JWT signed with `key` (None: no signature) under the header's `alg`."""
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    msg = ("%s.%s" % (head, body)).encode()
    if key is None:
        return msg.decode() + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return msg.decode() + "." + b64url(hmac.new(key, msg, digest).digest())


def db_rows(d, sql, *args):
    con = sqlite3.connect(os.path.join(d.data_dir, "revovoice.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def add_user(d, email, role, password=PW):
    out = d.cli("user", "add", "--email", email, "--password", password, "--role", role).stdout
    m = re.match(r"^created user (\d+) (\S+) \((\w+)\)\n$", out.decode())
    check(m, "unexpected `user add` output: %r" % out)
    return int(m.group(1))


def login(d, email, password=PW):
    return d.request("POST", "/api/auth/login", {"email": email, "password": password})


def test_user_add_then_login():
    with Daemon() as d:
        r = d.cli("user", "add", "--email", "Ann@Example.com", "--password", PW, "--role",
                  "manager", "--name", "Ann Example")
        m = re.match(r"^created user (\d+) ann@example\.com \(manager\)\n$", r.stdout.decode())
        check(m, "output: %r" % r.stdout)
        uid = int(m.group(1))
        check(PW not in d.read_log(), "the password reached the log")

        t0 = time.time()
        st, body, _ = login(d, "ANN@example.com")
        eq(st, 200, "login status")
        eq(sorted(body), ["expires_at", "token", "user"], "login keys")
        eq(body["user"], {"id": uid, "email": "ann@example.com", "name": "Ann Example",
                          "role": "manager"}, "login user")
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["expires_at"]), body["expires_at"])
        exp = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        check(abs(exp - (t0 + 12 * 3600)) < 10, "expires_at is not now + 12 h: %s" % body["expires_at"])
        check(body["token"].count(".") == 2, "token is not a JWT")
        check(body["token"] not in d.read_log(), "the token reached the log")

        st, me, _ = d.request("GET", "/api/auth/me", token=body["token"])
        eq(st, 200, "me status")
        eq((me["id"], me["email"], me["role"], me["active"]), (uid, "ann@example.com", "manager", True))
        check(me["last_login_at"], "last_login_at not set")
        eq(me["auth"], {"method": "token", "api_key_id": None, "role": "manager"}, "me.auth")
        check("password_hash" not in me, "me leaks the hash")

        rows = db_rows(d, "SELECT password_hash, last_login_at FROM users WHERE id = ?", uid)
        check(rows[0][0].startswith("$argon2id$"), "stored hash is not argon2id")
        check(rows[0][1], "last_login_at not stored")
        rows = db_rows(d, "SELECT actor, actor_user_id, action FROM audit_log "
                          "WHERE resource = 'users' AND resource_id = ? ORDER BY id", uid)
        eq(rows, [("cli", None, "create"), ("ann@example.com", uid, "login")], "audit rows")

        # The CLI refuses a taken address (in any case), an unknown role and a weak password.
        for args, needle in (
                (["--email", "ann@EXAMPLE.com", "--password", PW, "--role", "viewer"], "already exists"),
                (["--email", "bo@example.com", "--password", PW, "--role", "owner"], "unknown role"),
                (["--email", "bo@example.com", "--password", "short", "--role", "viewer"], "at least 8"),
                (["--email", "not-an-email", "--password", PW, "--role", "viewer"], "@")):
            r = d.cli("user", "add", *args, check=False)
            check(r.returncode != 0, "accepted %s" % args)
            check(needle in r.stderr.decode(), "stderr %r lacks %r" % (r.stderr, needle))
        eq(db_rows(d, "SELECT COUNT(*) FROM users")[0][0], 1, "users after refusals")

        # The password need not be on the command line.
        r = d.cli("user", "add", "--email", "cy@example.com", "--password-stdin", "--role", "viewer",
                  input=b"stdin password 1\n")
        check(r.stdout.decode().endswith("cy@example.com (viewer)\n"), r.stdout)
        eq(login(d, "cy@example.com", "stdin password 1")[0], 200, "stdin password login")


def test_login_refusals_look_alike():
    with Daemon() as d:
        uid = add_user(d, "dee@example.com", "viewer")
        st1, wrong, _ = login(d, "dee@example.com", "wrong password!")
        st2, unknown, _ = login(d, "nobody@example.com", "wrong password!")
        eq(st1, 401, "wrong password")
        eq(st2, 401, "unknown email")
        eq(wrong, unknown, "the two refusals differ")
        eq(wrong["error"]["code"], "unauthorized")

        # An unknown email costs about as much as a wrong password (no timing oracle).
        def median(email):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                eq(login(d, email, "wrong password!")[0], 401)
                times.append(time.perf_counter() - t)
            return statistics.median(times)
        t_wrong, t_unknown = median("dee@example.com"), median("nobody@example.com")
        check(t_wrong > 0.005, "a wrong password took only %.4f s: no argon2id?" % t_wrong)
        check(t_unknown > 0.5 * t_wrong, "unknown email %.4f s vs wrong password %.4f s"
              % (t_unknown, t_wrong))

        # A deactivated user gets the very same answer, even with the right password.
        admin = d.admin()
        st, _, _ = d.request("PATCH", "/api/users/%d" % uid, {"active": False}, token=admin)
        eq(st, 200, "deactivate")
        st3, inactive, _ = login(d, "dee@example.com")
        eq((st3, inactive), (401, wrong), "inactive login")

        # Bad bodies are 400s, not 401s.
        eq(d.request("POST", "/api/auth/login", {"email": "dee@example.com"})[0], 400)
        st, body, _ = d.request("POST", "/api/auth/login", {"email": "x@y.z", "password": PW, "otp": 1})
        eq((st, body["error"]["code"], body["error"]["details"]["field"]), (400, "invalid_field", "otp"))
        st, body, _ = d.request("POST", "/api/auth/login", {"email": 5, "password": PW})
        eq((st, body["error"]["details"]["field"]), (400, "email"))
        eq(d.request("POST", "/api/auth/login", raw="{nope", content_type="application/json")[0], 400)

        rows = db_rows(d, "SELECT actor, details FROM audit_log WHERE action = 'login_failed' ORDER BY id")
        emails = [json.loads(r[1])["email"] for r in rows]
        check(emails.count("nobody@example.com") == 6, "login_failed rows: %s" % emails)
        check("inactive" in [json.loads(r[1])["reason"] for r in rows], "no inactive reason audited")
        check(all(PW not in r[1] and "wrong password" not in r[1] for r in rows), "password audited")
        check("wrong password!" not in d.read_log(), "a password reached the log")
        _, metrics, _ = d.request("GET", "/metrics")
        check(re.search(r'rv_auth_failures_total\{reason="bad_credentials"\} (\d+)', metrics),
              "no bad_credentials counter")
        check(re.search(r'rv_auth_failures_total\{reason="inactive"\} 1', metrics), "no inactive counter")


def test_bearer_refusals():
    with Daemon() as d:
        uid = add_user(d, "eve@example.com", "admin")
        key = jwt_key(d)
        now = int(time.time())
        good = {"sub": str(uid), "iss": "revovoice", "role": "admin", "iat": now,
                "exp": now + 600}
        eq(d.request("GET", "/api/auth/me", headers={"Authorization": "Bearer " + craft(key, good)})[0],
           200, "a correctly signed crafted token")

        st, body, hdrs = d.request("GET", "/api/auth/me")
        eq((st, body["error"]["code"]), (401, "unauthorized"), "no credentials")
        check("Bearer" in hdrs.get("WWW-Authenticate", ""), "no WWW-Authenticate")

        cases = {
            "garbage": "Bearer garbage",
            "basic": "Basic ZXZlOnB3",
            "empty bearer": "Bearer ",
            "expired": "Bearer " + craft(key, dict(good, exp=now - 5)),
            "alg none": "Bearer " + craft(None, good, alg="none"),
            "other key": "Bearer " + craft(b"k" * 32, good),
            "HS512": "Bearer " + craft(key, good, alg="HS512"),
            "wrong issuer": "Bearer " + craft(key, dict(good, iss="evil")),
            "no exp": "Bearer " + craft(key, {k: v for k, v in good.items() if k != "exp"}),
            "no iat": "Bearer " + craft(key, {k: v for k, v in good.items() if k != "iat"}),
            "unknown user": "Bearer " + craft(key, dict(good, sub="999999")),
        }
        tampered = craft(key, good)
        head, _, sig = tampered.split(".")
        cases["tampered payload"] = "Bearer %s.%s.%s" % (
            head, b64url(json.dumps(dict(good, sub="1", role="admin", exp=now + 9999)).encode()), sig)
        for name, value in cases.items():
            st, body, _ = d.request("GET", "/api/auth/me", headers={"Authorization": value})
            eq((st, body["error"]["code"]), (401, "unauthorized"), name)
        st, body, _ = d.request("GET", "/api/auth/me",
                                headers={"Authorization": cases["expired"]})
        check("expired" in body["error"]["message"], body)
        _, metrics, _ = d.request("GET", "/metrics")
        for reason in ("expired", "malformed", "bad_credentials"):
            check(re.search(r'rv_auth_failures_total\{reason="%s"\} [1-9]' % reason, metrics),
                  "no %s failures counted" % reason)


def test_api_keys():
    with Daemon() as d:
        admin = d.admin()
        admin_id = d.request("GET", "/api/auth/me", token=admin)[1]["id"]
        vid = add_user(d, "vic@example.com", "viewer")

        st, k, _ = d.request("POST", "/api/keys", {"name": "ci"}, token=admin)
        eq(st, 201, "create key")
        check(re.match(r"^rvk_[A-Za-z0-9_-]{40}$", k["key"]), k["key"])
        eq((k["name"], k["role"], k["user_id"], k["prefix"], k["revoked_at"], k["last_used_at"]),
           ("ci", "admin", admin_id, k["key"][:8], None, None))
        secret = k["key"]
        check(secret not in d.read_log(), "the key reached the log")
        stored = db_rows(d, "SELECT key_hash FROM api_keys WHERE id = ?", k["id"])[0][0]
        eq(stored, hashlib.blake2b(secret.encode(), digest_size=32).hexdigest(), "stored hash")

        st, me, _ = d.request("GET", "/api/auth/me", api_key=secret)
        eq((st, me["id"], me["auth"]["method"], me["auth"]["api_key_id"]), (200, admin_id, "api_key", k["id"]))
        check(db_rows(d, "SELECT last_used_at FROM api_keys WHERE id = ?", k["id"])[0][0],
              "last_used_at not set")

        # Shown once: the list has no secret and no hash.
        st, lst, _ = d.request("GET", "/api/keys", token=admin)
        eq(st, 200)
        eq([i["id"] for i in lst["items"]], [k["id"]])
        eq(sorted(lst["items"][0]), sorted(["id", "name", "prefix", "role", "user_id", "created_at",
                                           "last_used_at", "revoked_at"]))
        check(secret not in json.dumps(lst) and stored not in json.dumps(lst), "list leaks the key")

        # A key for another user defaults to that user's role and may not exceed it.
        st, vk, _ = d.request("POST", "/api/keys", {"name": "vk", "user_id": vid}, token=admin)
        eq((st, vk["role"], vk["user_id"]), (201, "viewer", vid))
        st, body, _ = d.request("POST", "/api/keys", {"name": "vk2", "user_id": vid, "role": "manager"},
                                token=admin)
        eq((st, body["error"]["code"]), (422, "unprocessable"))
        eq(d.request("POST", "/api/keys", {"name": "x", "user_id": 999999}, token=admin)[0], 422)
        eq(d.request("POST", "/api/keys", {"name": "x", "role": "owner"}, token=admin)[0], 400)
        eq(d.request("POST", "/api/keys", {"role": "viewer"}, token=admin)[0], 400)
        eq(d.request("POST", "/api/keys", {"name": "x", "secret": "y"}, token=admin)[0], 400)
        eq(d.request("GET", "/api/keys", api_key=vk["key"])[0], 403, "viewer key lists keys")
        eq(d.request("GET", "/api/campaigns", api_key=vk["key"])[0], 200, "viewer key reads")

        # A viewer can't create keys, with a token or a key.
        vtok = login(d, "vic@example.com")[1]["token"]
        eq(d.request("POST", "/api/keys", {"name": "mine"}, token=vtok)[0], 403, "viewer creates key")
        eq(d.request("POST", "/api/keys", {"name": "mine"}, api_key=vk["key"])[0], 403)
        eq(d.request("POST", "/api/keys", {"name": "mine"}, token=vtok, api_key=vk["key"])[0], 401,
           "both credentials")

        # Pagination: newest first, keyset cursor.
        for n in range(3):
            eq(d.request("POST", "/api/keys", {"name": "p%d" % n}, token=admin)[0], 201)
        st, p1, _ = d.request("GET", "/api/keys?limit=2", token=admin)
        eq(len(p1["items"]), 2)
        check(p1["next_cursor"], "no next_cursor")
        st, p2, _ = d.request("GET", "/api/keys?limit=2&cursor=%s" % p1["next_cursor"], token=admin)
        st, p3, _ = d.request("GET", "/api/keys?limit=2&cursor=%s" % p2["next_cursor"], token=admin)
        ids = [i["id"] for i in p1["items"] + p2["items"] + p3["items"]]
        eq(ids, sorted(ids, reverse=True), "order")
        eq(len(ids), 5, "all keys across pages")
        eq(p3["next_cursor"], None, "last page")
        eq(d.request("GET", "/api/keys?user_id=%d" % vid, token=admin)[1]["items"][0]["id"], vk["id"])
        eq(d.request("GET", "/api/keys?limit=0", token=admin)[0], 400)
        eq(d.request("GET", "/api/keys?limit=501", token=admin)[0], 400)
        eq(d.request("GET", "/api/keys?cursor=abc", token=admin)[0], 400)

        # Revoke: 204, then the key is refused; revoking again is harmless; unknown id 404.
        st, body, _ = d.request("DELETE", "/api/keys/%d" % k["id"], token=admin)
        eq((st, body), (204, None), "revoke")
        st, body, _ = d.request("GET", "/api/auth/me", api_key=secret)
        eq((st, body["error"]["code"]), (401, "unauthorized"), "revoked key")
        check("revoked" in body["error"]["message"], body)
        eq(d.request("DELETE", "/api/keys/%d" % k["id"], token=admin)[0], 204, "revoke again")
        eq(d.request("DELETE", "/api/keys/999999", token=admin)[0], 404)
        eq(d.request("DELETE", "/api/keys/abc", token=admin)[0], 404)
        lst = d.request("GET", "/api/keys?limit=500", token=admin)[1]
        check([i for i in lst["items"] if i["id"] == k["id"]][0]["revoked_at"], "revoked_at missing")

        rows = db_rows(d, "SELECT action, resource_id, actor_user_id FROM audit_log "
                          "WHERE resource = 'api_keys' ORDER BY id")
        eq([r[0] for r in rows], ["create"] * 5 + ["revoke"], "api key audit rows")
        eq(rows[-1][1:], (k["id"], admin_id))
        _, metrics, _ = d.request("GET", "/metrics")
        check(re.search(r'rv_auth_failures_total\{reason="revoked"\} 1', metrics), "revoked not counted")


def test_demoted_user_token_loses_rights():
    with Daemon() as d:
        admin = d.admin()
        mid = add_user(d, "max@example.com", "manager")
        tok = login(d, "max@example.com")[1]["token"]
        st, c, _ = d.request("POST", "/api/campaigns", {"name": "before demotion"}, token=tok)
        eq(st, 201, "manager creates a campaign")
        st, _, _ = d.request("PATCH", "/api/users/%d" % mid, {"role": "viewer"}, token=admin)
        eq(st, 200, "demote")
        st, body, _ = d.request("POST", "/api/campaigns", {"name": "after demotion"}, token=tok)
        eq((st, body["error"]["code"]), (403, "forbidden"), "old token after demotion")
        eq(d.request("DELETE", "/api/campaigns/%d" % c["id"], token=tok)[0], 403)
        eq(d.request("GET", "/api/campaigns/%d" % c["id"], token=tok)[0], 200, "still a viewer")
        eq(d.request("GET", "/api/auth/me", token=tok)[1]["role"], "viewer")
        st, _, _ = d.request("PATCH", "/api/users/%d" % mid, {"active": False}, token=admin)
        eq(st, 200)
        eq(d.request("GET", "/api/campaigns", token=tok)[0], 401, "deactivated user's token")


def test_restart_keeps_users_and_secret():
    with Daemon() as d:
        add_user(d, "rita@example.com", "supervisor")
        tok = login(d, "rita@example.com")[1]["token"]
        secrets = os.path.join(d.data_dir, "secrets.json")
        eq(os.stat(secrets).st_mode & 0o777, 0o600, "secrets.json mode")
        with open(secrets) as f:
            before = f.read()
        d.restart()
        with open(secrets) as f:
            eq(f.read(), before, "secrets.json changed on restart")
        st, me, _ = d.request("GET", "/api/auth/me", token=tok)
        eq((st, me["email"], me["role"]), (200, "rita@example.com", "supervisor"), "token after restart")
        eq(login(d, "rita@example.com")[0], 200, "login after restart")


def test_password_change_ends_older_tokens():
    """A password set through the API (by the user or an admin) makes every login token issued
    before it useless: 401, a log line and the "revoked" failure counter. A new login works;
    API keys are not tokens and keep working."""
    with Daemon() as d:
        admin = d.admin()
        st, u, _ = d.request("POST", "/api/users", {"email": "pat@example.com",
                             "password": "first-password-1", "role": "admin"}, token=admin)
        eq(st, 201, "user")
        old = d.login("pat@example.com", "first-password-1")
        st, key, _ = d.request("POST", "/api/keys", {"name": "pat-key"}, token=old)
        eq(st, 201, "api key: %r" % (key,))
        eq(d.request("GET", "/api/auth/me", token=old)[0], 200, "the token works")
        time.sleep(1.1)  # token times are whole seconds
        st, _, _ = d.request("PATCH", "/api/users/%d" % u["id"],
                             {"password": "second-password-2"}, token=admin)
        eq(st, 200, "password changed by an admin")
        st, body, _ = d.request("GET", "/api/auth/me", token=old)
        eq(st, 401, "the old token is refused")
        check("password was changed" in body["error"]["message"], body)
        check(any(l.get("reason") == "revoked" for l in d.log_lines()), "log line")
        _, metrics, _ = d.request("GET", "/metrics")
        check(re.search(r'rv_auth_failures_total\{reason="revoked"\} [1-9]', metrics),
              "revoked counted")
        eq(d.request("GET", "/api/auth/me", api_key=key["key"])[0], 200, "the API key still works")
        st, _, _ = d.request("POST", "/api/auth/login", {"email": "pat@example.com",
                             "password": "first-password-1"})
        eq(st, 401, "the old password is refused")
        new = d.login("pat@example.com", "second-password-2")
        eq(d.request("GET", "/api/auth/me", token=new)[0], 200, "a new login works")

