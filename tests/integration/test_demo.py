"""`make run`'s demo: the example flows and a campaign answering sip:demo@host, seeded once."""
from harness import Daemon, eq


def test_demo_seeded_once_and_valid():
    with Daemon(env={"REVOVOICE_DEMO_SEED": "1"}) as d:
        tok = d.admin()
        st, flows, _ = d.request("GET", "/api/flows", token=tok)
        eq(sorted(f["name"] for f in flows["items"]),
           ["Appointment setting (example)", "Support triage (example)"], "example flows")
        st, camps, _ = d.request("GET", "/api/campaigns", token=tok)
        eq([(c["name"], c["status"], c["inbound_numbers"]) for c in camps["items"]],
           [("Demo appointments", "active", "demo")], "demo campaign")
        # The seeded flows are ones the API itself accepts (validated on save).
        for f in flows["items"]:
            st, body, _ = d.request("PATCH", "/api/flows/%d" % f["id"],
                                    {"definition": f["definition"]}, token=tok)
            eq(st, 200, "flow %s re-saved: %r" % (f["name"], body))
        d.restart()
        st, flows, _ = d.request("GET", "/api/flows", token=tok)
        eq(len(flows["items"]), 2, "a restart seeds nothing more")
