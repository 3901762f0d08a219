"""CSV lead import: POST /api/campaigns/{id}/leads/import and `revovoice import-leads`.

Row numbers in reports are the line of the file where the record starts (header = line 1).
"""
import json
import os
import re
import tempfile

from harness import Daemon, check, eq

GOOD = (
    b"\xef\xbb\xbfPhone,First Name,last_name,Email,TZ,Company,Notes\r\n"
    b"(415) 555-2671,Ada,Lovelace,ada@example.com,America/Los_Angeles,"
    b"\"Analytical Engines, Ltd\",\"said \"\"hi\"\"\"\r\n"
    b"+44 20 7946 0958,Alan,Turing,,Europe/London,Bletchley,\"line one\r\nline two\"\r\n"
    b"202-555-0100,  Grace ,Hopper,grace@navy.example.org,,,\r\n"
)


def campaign(d, tok, name, **extra):
    body = {"name": name}
    body.update(extra)
    st, c, _ = d.request("POST", "/api/campaigns", body, token=tok)
    eq(st, 201, "create campaign: %s" % c)
    return c["id"]


def upload(d, tok, cid, data, ctype="text/csv"):
    return d.request("POST", "/api/campaigns/%d/leads/import" % cid, raw=data,
                     content_type=ctype, token=tok, timeout=30)


def leads(d, tok, cid):
    st, body, _ = d.request("GET", "/api/leads?campaign_id=%d&limit=500" % cid, token=tok)
    eq(st, 200, "list leads: %s" % body)
    return {l["phone"]: l for l in body["items"]}


def import_audits(d, tok):
    st, body, _ = d.request("GET", "/api/audit?resource=campaigns&limit=500", token=tok)
    eq(st, 200, "audit list: %s" % body)
    return [a for a in body["items"] if a["action"] == "import"]


def metric(d, name, labels=""):
    st, text, _ = d.request("GET", "/metrics")
    eq(st, 200, "metrics")
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else 0.0


def test_import_good_file():
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "good")
        st, rep, _ = upload(d, tok, cid, GOOD)
        eq(st, 200, "import: %s" % rep)
        eq(rep["imported"], 3, "imported")
        eq(rep["rows"], 3, "rows")
        eq(rep["skipped_duplicates"], 0, "duplicates")
        eq(rep["dnc"], 0, "dnc")
        eq(rep["failed"], 0, "failed")
        eq(rep["errors"], [], "errors")
        eq(rep["errors_truncated"], False, "truncated")

        got = leads(d, tok, cid)
        eq(sorted(got), ["+12025550100", "+14155552671", "+442079460958"], "phones")
        ada = got["+14155552671"]
        eq((ada["first_name"], ada["last_name"], ada["email"], ada["timezone"], ada["status"]),
           ("Ada", "Lovelace", "ada@example.com", "America/Los_Angeles", "new"), "ada")
        eq(ada["custom_fields"], {"Company": "Analytical Engines, Ltd", "Notes": 'said "hi"'},
           "ada custom fields")
        eq(got["+442079460958"]["custom_fields"],
           {"Company": "Bletchley", "Notes": "line one\r\nline two"}, "multi-line field")
        eq(got["+12025550100"]["first_name"], "Grace", "trimmed name")
        eq(got["+12025550100"]["custom_fields"], {"Company": "", "Notes": ""}, "empty custom")

        audits = import_audits(d, tok)
        eq(len(audits), 1, "one audit row")
        a = audits[0]
        eq(a["resource_id"], cid, "audit resource id")
        eq(a["actor"], "admin@example.com", "audit actor")
        eq((a["details"]["imported"], a["details"]["rows"], a["details"]["campaign_id"]),
           (3, 3, cid), "audit details")
        eq(metric(d, "rv_leads_imported_total"), 3.0, "imported metric")


def test_import_mixed_file_reports_rows():
    csv = (
        "phone,email,timezone,plan\n"            # 1
        "4155552671,a@example.com,UTC,gold\n"    # 2 ok
        "4155552672,b@example.com\n"             # 3 wrong column count
        "not a phone,c@example.com,UTC,x\n"      # 4 bad phone
        "+1 415 555 267,d@example.com,UTC,x\n"   # 5 +1 with a wrong length
        "4155552673,not-an-email,UTC,x\n"        # 6 bad email
        "4155552674,e@example.com,Mars/Olympus,x\n"  # 7 bad time zone
        "\n"                                     # 8 empty: skipped
        "4155552675,f@example.com,../../etc/passwd,x\n"  # 9 escaping time zone
        "\"4155552676\",g@example.com,Asia/Kolkata,\"two\nlines\"\n"  # 10-11 ok
        ",h@example.com,UTC,x\n"                 # 12 missing phone
    )
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "mixed")
        st, rep, _ = upload(d, tok, cid, csv.encode())
        eq(st, 200, "import: %s" % rep)
        eq((rep["rows"], rep["imported"], rep["failed"], rep["error_count"]), (9, 2, 7, 7),
           "counts")
        eq([(e["row"], e["column"]) for e in rep["errors"]],
           [(3, None), (4, "phone"), (5, "phone"), (6, "email"), (7, "timezone"),
            (9, "timezone"), (12, "phone")], "errors")
        check("expected 4 fields" in rep["errors"][0]["message"], rep["errors"][0]["message"])
        check("too short" in rep["errors"][2]["message"], rep["errors"][2]["message"])
        eq(sorted(leads(d, tok, cid)), ["+14155552671", "+14155552676"], "imported leads")
        eq(leads(d, tok, cid)["+14155552676"]["custom_fields"], {"plan": "two\nlines"}, "custom")
        eq(metric(d, "rv_lead_import_errors_total", '{reason="phone"}'), 3.0, "phone errors")
        eq(metric(d, "rv_lead_import_errors_total", '{reason="timezone"}'), 2.0, "tz errors")
        eq(metric(d, "rv_lead_import_errors_total", '{reason="columns"}'), 1.0, "column errors")


def test_import_unreadable_files_are_422_and_import_nothing():
    cases = [
        (b"phone,name\n4155552671,ok\n4155552672,Jos\xe9\n", "line 3 is not valid UTF-8"),
        (b"name,email\nAda,a@example.com\n", "no phone column"),
        (b"phone,name\n4155552671,ok\n4155552672,bro\"ken\n", "line 3: malformed quoting"),
        (b"phone,name\n4155552671,\"never closed\n4155552672,x\n", "never closed"),
        (b"phone,Phone_Number\n1,2\n", "both name the phone field"),
        (b"", "empty"),
        (b"\xff\xfep\x00h\x00o\x00n\x00e\x00\n\x00", "UTF-8"),
    ]
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "bad files")
        for data, needle in cases:
            st, body, _ = upload(d, tok, cid, data)
            eq(st, 422, "status for %r: %s" % (data[:30], body))
            eq(body["error"]["code"], "unprocessable", "code")
            check(needle in body["error"]["details"]["reason"],
                  "%r not in %r" % (needle, body["error"]["details"]["reason"]))
        eq(leads(d, tok, cid), {}, "nothing imported")
        eq(import_audits(d, tok), [], "no audit rows for refused files")
        eq(metric(d, "rv_lead_import_errors_total", '{reason="not_utf8"}'), 1.0, "not_utf8")
        eq(metric(d, "rv_lead_import_errors_total", '{reason="malformed_csv"}'), 2.0, "malformed")


def test_import_duplicates_and_dnc():
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "dups", default_country="GB")
        st, body, _ = d.request("POST", "/api/leads",
                                {"campaign_id": cid, "phone": "+442079460958"}, token=tok)
        eq(st, 201, "existing lead: %s" % body)
        st, body, _ = d.request("POST", "/api/dnc", {"phone": "+442079460959"}, token=tok)
        eq(st, 201, "dnc entry: %s" % body)
        csv = ("phone,first_name\n"
               "020 7946 0958,exists\n"      # already in the campaign
               "020 7946 0959,on dnc\n"      # imported with status dnc
               "020 7946 0960,new\n"
               "+44 20 7946 0960,again\n"    # repeated in the file
               "0044 20 7946 0961,x\n")      # GB international prefix
        st, rep, _ = upload(d, tok, cid, csv.encode())
        eq(st, 200, "import: %s" % rep)
        eq((rep["rows"], rep["imported"], rep["skipped_duplicates"], rep["dnc"], rep["failed"]),
           (5, 3, 2, 1, 0), "counts")
        got = leads(d, tok, cid)
        eq(sorted(got), ["+442079460958", "+442079460959", "+442079460960", "+442079460961"],
           "phones")
        eq(got["+442079460958"]["first_name"], "", "existing lead untouched")
        eq(got["+442079460959"]["status"], "dnc", "dnc status")
        eq(got["+442079460960"]["first_name"], "new", "first occurrence wins")

        # The same file again: everything is already there.
        st, rep, _ = upload(d, tok, cid, csv.encode())
        eq(st, 200, "again")
        eq((rep["imported"], rep["skipped_duplicates"]), (0, 5), "second import")


def test_import_oversize_is_413():
    with Daemon(env={"REVOVOICE_HTTP_MAX_UPLOAD": "2048"}) as d:
        tok = d.admin()
        cid = campaign(d, tok, "big")
        rows = "".join("41555526%02d,name %d\n" % (i, i) for i in range(150))
        data = ("phone,name\n" + rows).encode()
        check(len(data) > 2048, "test file must pass the cap")
        st, body, _ = upload(d, tok, cid, data)
        eq(st, 413, "oversize: %s" % body)
        eq(body["error"]["code"], "body_too_large", "code")
        eq(leads(d, tok, cid), {}, "nothing imported")
        # Just under the cap goes through.
        small = ("phone,name\n" + rows[:1500]).rsplit("\n", 1)[0].encode() + b"\n"
        st, rep, _ = upload(d, tok, cid, small)
        eq(st, 200, "small: %s" % rep)
        check(rep["imported"] > 10, rep)


def test_import_access_and_errors():
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "access")
        d.user_add("viewer@example.com", "viewer-pass-123", "viewer")
        d.user_add("manager@example.com", "manager-pass-123", "manager")
        viewer = d.login("viewer@example.com", "viewer-pass-123")
        manager = d.login("manager@example.com", "manager-pass-123")
        data = b"phone\n4155552671\n"
        st, _, _ = d.request("POST", "/api/campaigns/%d/leads/import" % cid, raw=data,
                             content_type="text/csv")
        eq(st, 401, "no credentials")
        eq(upload(d, viewer, cid, data)[0], 403, "viewer")
        st, body, _ = upload(d, tok, 999999, data)
        eq(st, 404, "missing campaign: %s" % body)
        eq(body["error"]["code"], "not_found", "code")
        st, body, _ = upload(d, tok, cid, data, ctype="multipart/form-data; boundary=x")
        eq(st, 415, "multipart: %s" % body)
        st, rep, _ = upload(d, manager, cid, data, ctype="application/octet-stream")
        eq(st, 200, "manager: %s" % rep)
        eq(rep["imported"], 1, "imported")


def test_import_cli():
    with Daemon() as d:
        tok = d.admin()
        cid = campaign(d, tok, "cli")
        fd, path = tempfile.mkstemp(suffix=".csv")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(GOOD + b"12,bad,,,,,\r\n")
            r = d.cli("import-leads", "--campaign", str(cid), path)
            rep = json.loads(r.stdout)
            eq((rep["imported"], rep["rows"], rep["failed"]), (3, 4, 1), "cli report")
            eq([(e["row"], e["column"]) for e in rep["errors"]], [(6, "Phone")], "cli errors")
            eq(len(leads(d, tok, cid)), 3, "leads via the API")
            audits = import_audits(d, tok)
            eq(len(audits), 1, "audit row")
            eq(audits[0]["actor"], "cli", "cli actor")

            r = d.cli("import-leads", "--campaign", "424242", path, check=False)
            eq(r.returncode, 1, "missing campaign exit")
            check(b"campaign 424242 does not exist" in r.stderr, r.stderr)

            with open(path, "wb") as f:
                f.write(b"name\nx\n")
            r = d.cli("import-leads", "--campaign", str(cid), path, check=False)
            eq(r.returncode, 1, "bad file exit")
            check(b"no phone column" in r.stderr, r.stderr)
            eq(r.stdout, b"", "no report for a refused file")

            r = d.cli("import-leads", "--campaign", str(cid), path + ".missing", check=False)
            eq(r.returncode, 1, "unreadable file exit")
            check(b"No such file" in r.stderr, r.stderr)
            r = d.cli("import-leads", path, check=False)
            eq(r.returncode, 2, "usage exit")
        finally:
            os.unlink(path)
