"""Trained intent models: train from examples, version, list, activate (hot swap), restore."""
import os
import sqlite3

from harness import Daemon, check, eq

PIZZA = {
    "order_pizza": ["i want to order a pizza", "can i get a large pepperoni",
                    "i'd like two pizzas for delivery", "put in an order for a margherita",
                    "one cheese pizza please", "can i order food for pickup",
                    "i want a medium veggie pizza", "add a pizza to my order",
                    "i'd like to place an order", "get me a pizza with mushrooms"],
    "opening_hours": ["when are you open", "what are your opening hours",
                      "are you open on sunday", "what time do you close",
                      "how late are you open tonight", "when do you open in the morning",
                      "are you open on holidays", "what are your hours",
                      "until what time are you open", "do you close early on saturday"],
    "out_of_scope": ["what's the weather like", "tell me a joke", "my car broke down",
                     "who won the game", "i like blue", "how tall is the tower",
                     "my dog is barking", "what's two plus two", "i lost my keys",
                     "play some music"],
}


def _examples(d=PIZZA):
    return [{"intent": k, "text": t} for k, v in d.items() for t in v]


def _understand(d, tok, text):
    st, r, _ = d.request("POST", "/api/voice-ai/understand", {"text": text}, token=tok)
    eq(st, 200, "understand %r" % text)
    return r


def _db_rows(d, sql):
    con = sqlite3.connect(os.path.join(d.data_dir, "revovoice.db"), timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_train_model_bad_bodies_and_roles():
    with Daemon() as d:
        tok = d.admin()
        good = {"name": "pizza", "examples": _examples()}
        cases = (
            ({"examples": _examples()}, "name"),
            ({"name": "", "examples": _examples()}, "name"),
            ({"name": "bad/name", "examples": _examples()}, "name"),
            ({"name": "p"}, "examples"),
            ({"name": "p", "examples": "order_pizza"}, "examples"),
            ({"name": "p", "examples": [{"intent": "a", "text": "x"}, 5]}, "examples[1]"),
            ({"name": "p", "examples": [{"intent": "has space", "text": "x"}]},
             "examples[0].intent"),
            ({"name": "p", "examples": [{"intent": "a", "text": ""}]}, "examples[0].text"),
            ({"name": "p", "examples": [{"intent": "a", "text": "x" * 2001}]},
             "examples[0].text"),
            ({"name": "p", "examples": [{"intent": "a", "text": "x", "extra": 1}]},
             "examples[0]"),
            (dict(good, holdout=0.9), "holdout"),
            (dict(good, holdout="some"), "holdout"),
            (dict(good, include_builtin="yes"), "include_builtin"),
            (dict(good, colour="red"), "colour"),
            # One label only: the trainer refuses and says why.
            ({"name": "p", "examples": [{"intent": "a", "text": t}
                                        for t in ("x y", "y z", "z w", "w v")]}, "examples"),
        )
        for body, fld in cases:
            st, r, _ = d.request("POST", "/api/voice-ai/train-model", body, token=tok)
            eq(st, 400, "bad body %r" % (body if len(str(body)) < 200 else fld))
            eq(r["error"]["code"], "invalid_field", "error code")
            eq(r["error"]["details"]["field"], fld, "field named for %r" % fld)
        st, r, _ = d.request("POST", "/api/voice-ai/train-model", cases[-1][0], token=tok)
        check("two labels" in r["error"]["message"], "why: %s" % r["error"]["message"])
        # Nothing was stored by any of them.
        eq(_db_rows(d, "SELECT COUNT(*) FROM intent_models")[0][0], 0, "no rows")

        # Roles: a viewer lists but may not train or activate; no credentials is 401.
        d.user_add("viewer@example.com", "viewer-pass-123", "viewer")
        vtok = d.login("viewer@example.com", "viewer-pass-123")
        st, _, _ = d.request("POST", "/api/voice-ai/train-model", good, token=vtok)
        eq(st, 403, "viewer cannot train")
        st, _, _ = d.request("POST", "/api/voice-ai/models/builtin/activate", {}, token=vtok)
        eq(st, 403, "viewer cannot activate")
        st, r, _ = d.request("GET", "/api/voice-ai/models", token=vtok)
        eq(st, 200, "viewer lists")
        eq(r, {"models": [], "active": "builtin"}, "empty list")
        st, _, _ = d.request("GET", "/api/voice-ai/models")
        eq(st, 401, "needs credentials")
        st, _, _ = d.request("POST", "/api/voice-ai/models/99/activate", {}, token=tok)
        eq(st, 404, "no such model")
        st, _, _ = d.request("GET", "/api/voice-ai/models/abc", token=tok)
        eq(st, 404, "bad id")


def test_train_activate_and_hot_swap():
    with Daemon() as d:
        tok = d.admin()
        d.user_add("mgr@example.com", "manager-pass-123", "manager")
        mtok = d.login("mgr@example.com", "manager-pass-123")
        st, r, _ = d.request("POST", "/api/voice-ai/train-model",
                             {"name": "pizza shop", "examples": _examples(), "holdout": 0.3},
                             token=mtok)
        eq(st, 201, "trained")
        eq(r["name"], "pizza shop", "name")
        eq(r["version"], 1, "first version")
        eq(r["n_examples"], 30, "examples")
        eq(r["n_holdout"], 9, "30% held out")
        check(isinstance(r["holdout_accuracy"], float) and 0 <= r["holdout_accuracy"] <= 1,
              "held-out accuracy reported: %r" % r["holdout_accuracy"])
        eq(r["labels"], {"order_pizza": 10, "opening_hours": 10, "out_of_scope": 10},
           "per-intent counts")
        eq(r["active"], False, "not active until asked")
        check(r["size_bytes"] > 100 and r["temperature"] > 0, "size and temperature")
        first = r["id"]

        # The same name again is version 2; nothing held out means no accuracy.
        st, r, _ = d.request("POST", "/api/voice-ai/train-model",
                             {"name": "pizza shop", "examples": _examples(), "holdout": 0},
                             token=mtok)
        eq(st, 201, "second version")
        eq(r["version"], 2, "version 2")
        eq(r["holdout_accuracy"], None, "no hold-out, no accuracy")
        second = r["id"]

        st, r, _ = d.request("GET", "/api/voice-ai/models", token=tok)
        eq(st, 200, "list")
        eq([m["id"] for m in r["models"]], [second, first], "newest first")
        eq(r["active"], "builtin", "built-in model in use")
        check(all("model" not in m for m in r["models"]), "bytes are not listed")
        st, r, _ = d.request("GET", "/api/voice-ai/models/%d" % first, token=tok)
        eq((st, r["version"]), (200, 1), "one version")

        text = "what time do you close on sunday"
        before = _understand(d, tok, text)
        eq(before["model"], "builtin", "built-in before activation")
        check(before["intent"] != "opening_hours", "built-in model has no such intent")

        st, r, _ = d.request("POST", "/api/voice-ai/models/%d/activate" % first, {}, token=mtok)
        eq(st, 200, "activate")
        eq(r["active"], first, "active id")
        after = _understand(d, tok, text)
        eq(after["intent"], "opening_hours", "classification follows the activated model")
        eq(after["model"], first, "model id in the answer")
        eq(_understand(d, tok, "can i get a pepperoni pizza delivered")["intent"],
           "order_pizza", "second custom intent")
        eq(_db_rows(d, "SELECT id FROM intent_models WHERE active = 1"), [(first,)],
           "one active row")
        audit = _db_rows(d, "SELECT action FROM audit_log WHERE resource = 'intent_models' "
                            "ORDER BY id")
        eq([a for (a,) in audit], ["create", "create", "activate"], "audited")

        # Activating another version swaps again; the list says which is active.
        st, r, _ = d.request("POST", "/api/voice-ai/models/%d/activate" % second, {},
                             token=mtok)
        eq(st, 200, "activate second")
        st, r, _ = d.request("GET", "/api/voice-ai/models", token=tok)
        eq({m["id"]: m["active"] for m in r["models"]}, {first: False, second: True},
           "active flags")
        eq(r["active"], second, "active version")

        # A restart keeps the active model.
        d.restart()
        tok = d.admin()
        again = _understand(d, tok, text)
        eq((again["intent"], again["model"]), ("opening_hours", second), "restored on start")

        # Back to the built-in model.
        st, r, _ = d.request("POST", "/api/voice-ai/models/builtin/activate", {}, token=tok)
        eq((st, r["active"]), (200, "builtin"), "built-in again")
        back = _understand(d, tok, text)
        eq((back["intent"], back["model"]), (before["intent"], "builtin"), "built-in answers")
        eq(_db_rows(d, "SELECT COUNT(*) FROM intent_models WHERE active = 1")[0][0], 0,
           "no active row")


def test_train_with_builtin_examples_and_activate_at_once():
    with Daemon() as d:
        tok = d.admin()
        extra = [{"intent": "opening_hours", "text": t} for t in PIZZA["opening_hours"]]
        st, r, _ = d.request("POST", "/api/voice-ai/train-model",
                             {"name": "standard plus hours", "examples": extra,
                              "include_builtin": True, "activate": True}, token=tok,
                             timeout=180)  # ~2,500 examples: seconds, more under ASan and load
        eq(st, 201, "trained with the built-in examples")
        check(r["n_examples"] > 1800, "built-in examples included: %d" % r["n_examples"])
        eq(r["labels"]["opening_hours"], 10, "custom intent counted")
        check(r["labels"]["do_not_call"] >= 100, "standard intents kept")
        check(r["holdout_accuracy"] > 0.7, "held-out accuracy %.3f" % r["holdout_accuracy"])
        eq(r["active"], True, "activated at once")
        eq(_understand(d, tok, "please stop calling me")["intent"], "do_not_call",
           "standard intent still understood")
        u = _understand(d, tok, "how late are you open on friday")
        eq((u["intent"], u["model"]), ("opening_hours", r["id"]), "custom intent")
