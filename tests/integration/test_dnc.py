"""The do-not-call list reaches leads that are already stored."""
from harness import Daemon, check, eq


def test_dnc_entry_marks_existing_leads_in_every_campaign():
    with Daemon() as d:
        tok = d.admin()
        ids = []
        for name in ("dnc-a", "dnc-b"):
            st, c, _ = d.request("POST", "/api/campaigns", {"name": name}, token=tok)
            eq(st, 201, "campaign")
            st, lead, _ = d.request("POST", "/api/leads", {"campaign_id": c["id"],
                                    "phone": "(415) 555-2671"}, token=tok)
            eq(st, 201, "lead")
            eq(lead["status"], "new", "status before")
            ids.append(lead["id"])
        st, other, _ = d.request("POST", "/api/leads", {"campaign_id": c["id"],
                                 "phone": "+1 415 555 2672"}, token=tok)
        eq(st, 201, "other lead")

        # The number is listed in another spelling; both leads holding it stop being dialable.
        st, entry, _ = d.request("POST", "/api/dnc", {"phone": "+1-415-555-2671",
                                 "reason": "asked on a call"}, token=tok)
        eq(st, 201, "dnc create")
        eq(entry["phone"], "+14155552671", "normalised")
        for lid in ids:
            st, lead, _ = d.request("GET", "/api/leads/%d" % lid, token=tok)
            eq(lead["status"], "dnc", "lead %d after the DNC entry" % lid)
        st, lead, _ = d.request("GET", "/api/leads/%d" % other["id"], token=tok)
        eq(lead["status"], "new", "a different number is untouched")

        st, audit, _ = d.request("GET", "/api/audit?resource=dnc", token=tok)
        eq(st, 200, "audit")
        row = audit["items"][0]
        eq(row["action"], "create", "audit action")
        eq(row["details"].get("leads_marked_dnc"), 2, "audit counts the marked leads")

        # A duplicate entry is refused and marks nothing more.
        st, body, _ = d.request("POST", "/api/dnc", {"phone": "4155552671"}, token=tok)
        eq(st, 409, "duplicate")


def test_webhook_url_with_credentials_is_refused():
    with Daemon() as d:
        tok = d.admin()
        st, body, _ = d.request("POST", "/api/webhooks", {"url": "https://u:p@hooks.example.com/x",
                                "events": ["call.ended"]}, token=tok)
        eq(st, 400, "status")
        eq(body["error"]["code"], "invalid_field", "code")
        check("credentials" in body["error"]["message"], body)
        st, body, _ = d.request("GET", "/api/webhooks", token=tok)
        eq(body["items"], [], "nothing stored")
