"""The text endpoints of the voice AI: understanding, emotion, and whole conversations."""
import base64
import io
import math
import struct
import wave

from harness import Daemon, check, eq

NOW = "2026-11-22T10:00:00-05:00"  # a Sunday morning in New York


def test_understand_intent_entities_emotion():
    with Daemon() as d:
        tok = d.admin()
        st, r, _ = d.request("POST", "/api/voice-ai/understand",
                             {"text": "can you call me back tomorrow at 3 pm",
                              "timezone": "America/New_York", "now": NOW}, token=tok)
        eq(st, 200, "understand")
        eq(r["intent"], "callback_later", "intent")
        check(0 < r["confidence"] <= 1, "confidence in (0, 1]")
        dt = [e for e in r["entities"] if e["type"] == "datetime"]
        eq(len(dt), 1, "one datetime")
        eq(dt[0]["value"], "2026-11-23T15:00:00-05:00", "tomorrow 3 pm in New York")
        eq(r["emotion"]["label"], "neutral", "emotion")

        st, r, _ = d.request("POST", "/api/voice-ai/understand",
                             {"text": "this is ridiculous, stop calling me"}, token=tok)
        eq(r["intent"], "do_not_call", "intent")
        eq(r["emotion"]["label"], "frustrated", "emotion")

        st, r, _ = d.request("POST", "/api/voice-ai/understand",
                             {"text": "my email is jane dot doe at example dot org and my "
                                      "number is 415 555 0100"}, token=tok)
        values = {e["type"]: e["value"] for e in r["entities"]}
        eq(values.get("email"), "jane.doe@example.org", "email")
        eq(values.get("phone"), "+14155550100", "phone")

        # Bad input: clear 400s.
        for body, fld in (({}, "text"), ({"text": 5}, "text"),
                          ({"text": "hi", "timezone": "Mars/Base"}, "timezone"),
                          ({"text": "hi", "now": "yesterday"}, "now"),
                          ({"text": "hi", "colour": "red"}, "colour")):
            st, r, _ = d.request("POST", "/api/voice-ai/understand", body, token=tok)
            eq(st, 400, "bad body %r" % body)
            eq(r["error"]["details"]["field"], fld, "field named")
        st, _, _ = d.request("POST", "/api/voice-ai/understand", {"text": "hi"})
        eq(st, 401, "needs credentials")


def _wav(freq, amp, seconds=1.0, rate=16000):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(rate * seconds)):
            ph = (i * freq / rate) % 1.0
            v = amp * (1.0 - ph * 10 if ph < 0.1 else -0.1)
            frames += struct.pack("<h", int(v))
        w.writeframes(bytes(frames))
    return base64.b64encode(buf.getvalue()).decode()


def test_analyze_emotion_text_and_voice():
    with Daemon() as d:
        tok = d.admin()
        st, r, _ = d.request("POST", "/api/voice-ai/analyze-emotion",
                             {"text": "thank you, that's wonderful", "audio": _wav(180, 9000),
                              "words": 4}, token=tok)
        eq(st, 200, "analyze")
        eq(r["label"], "positive", "label from the words")
        check(r["voice"]["valid"], "voice measured")
        check(abs(r["voice"]["pitch_hz"] - 180) < 10, "pitch %r" % r["voice"]["pitch_hz"])
        check(abs(r["voice"]["words_per_second"] - 4.0) < 0.01, "rate")
        st, r, _ = d.request("POST", "/api/voice-ai/analyze-emotion",
                             {"audio": base64.b64encode(b"RIFF....not a wav").decode()},
                             token=tok)
        eq(st, 422, "garbage audio")
        st, r, _ = d.request("POST", "/api/voice-ai/analyze-emotion", {}, token=tok)
        eq(st, 400, "nothing to analyse")


def test_conversation_books_a_callback_over_text():
    with Daemon() as d:
        tok = d.admin()
        base = {"flow_name": "appointment", "timezone": "America/New_York", "now": NOW,
                "outbound": True, "lead": {"first_name": "Maria"},
                "campaign": {"name": "Acme Dental", "transfer_to": "sip:desk@127.0.0.1"}}
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation", base, token=tok)
        eq(st, 200, "start")
        check("automated assistant" in r["preamble"], "the AI disclosure opens the call")
        check("Maria" in r["say"], "the greeting uses the lead's name")
        eq(r["state"], "greet", "start state")
        conv = r["conversation"]

        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             dict(base, conversation=conv, text="not right now"), token=tok)
        eq(r["state"], "offer_callback", "offers a callback")
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             dict(base, conversation=r["conversation"],
                                  text="try me on wednesday evening"), token=tok)
        eq(r["end"], True, "ends")
        eq(r["disposition"], "callback", "disposition")
        acts = [a for a in r["actions"] if a["type"] == "schedule_callback"]
        eq(len(acts), 1, "one callback action")
        eq(acts[0]["at"], "2026-11-25T18:00:00-05:00", "Wednesday evening, local time")
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             dict(base, conversation=r["conversation"], text="hello?"),
                             token=tok)
        eq(st, 409, "an ended conversation takes no more turns")

        # generate-response: one utterance, one reply.
        st, r, _ = d.request("POST", "/api/voice-ai/generate-response",
                             dict(base, text="are you a robot?"), token=tok)
        eq(st, 200, "generate")
        check("automated assistant" in r["response"], "honest answer: %r" % r["response"])


def test_conversation_with_a_stored_flow_and_bad_flows():
    with Daemon() as d:
        tok = d.admin()
        flow = {"start": "ask", "states": {
            "ask": {"say": "Pick one or two.", "on": {"dtmf:1": "one", "dtmf:2": "two"},
                    "fallback": {"say": "Please press a key.", "goto": "ask"}},
            "one": {"say": "You chose one.", "end": "chose_one"},
            "two": {"say": "You chose two.", "end": "chose_two"}}}
        st, f, _ = d.request("POST", "/api/flows", {"name": "keys", "definition": flow},
                             token=tok)
        eq(st, 201, "flow stored")
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             {"flow_id": f["id"]}, token=tok)
        eq(r["say"], "Pick one or two.", "prompt")
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             {"flow_id": f["id"], "conversation": r["conversation"],
                              "dtmf": "2"}, token=tok)
        eq(r["disposition"], "chose_two", "key press routes")

        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             {"flow": {"start": "x", "states": {"x": {"say": "hi",
                                                                        "on": {"affirm": "y"}}}}},
                             token=tok)
        eq(st, 422, "invalid inline flow")
        paths = [e["path"] for e in r["error"]["details"]["errors"]]
        check("$.states.x.on.affirm" in paths, "the error names the bad transition: %r" % paths)
        st, r, _ = d.request("POST", "/api/voice-ai/manage-conversation",
                             {"flow_id": 999999}, token=tok)
        eq(st, 422, "unknown flow id")
