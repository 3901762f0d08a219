/* The Twilio channel's pure parts: signatures, form bodies, TwiML escaping, stream URLs and the
 * Media Streams messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "twilio/twilio_int.h"
#include "twilio/twilio_msg.h"

/* Twilio's own documented example (docs "Validating requests"): token 12345. */
RV_TEST(twilio_signature_matches_twilio_example)
{
	struct tw_form f = {0};
	const char *body = "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234"
	                   "&From=%2B12349013030&To=%2B18005551212";
	ASSERT_OK(tw_form_parse(body, strlen(body), &f));
	char sig[32];
	const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
	ASSERT_OK(tw_signature("12345", url, &f, sig, sizeof(sig)));
	ASSERT_EQ_STR(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
	ASSERT_EQ_INT(tw_signature_check("12345", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), 1);
	ASSERT_EQ_INT(tw_signature_check("12345", url, &f, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="), 0);
	ASSERT_EQ_INT(tw_signature_check("12346", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), 0);
	ASSERT_EQ_INT(tw_signature_check("12345", url, &f, NULL), 0);
	ASSERT_EQ_INT(tw_signature_check("12345", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"), 0);
	ASSERT_EQ_INT(tw_signature_check("12345", "https://mycompany.com/myapp.php", &f,
	                                 "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
	              0);
	/* The order of the body does not matter: parameters are sorted. */
	struct tw_form g = {0};
	const char *shuffled = "To=%2B18005551212&Digits=1234&From=%2B12349013030"
	                       "&CallSid=CA1234567890ABCDE&Caller=%2B12349013030";
	ASSERT_OK(tw_form_parse(shuffled, strlen(shuffled), &g));
	ASSERT_EQ_INT(tw_signature_check("12345", url, &g, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), 1);
	tw_form_free(&f);
	tw_form_free(&g);
}

RV_TEST(twilio_form_decodes_and_refuses)
{
	struct tw_form f = {0};
	const char *body = "a=1+2&b=%26%3D%C3%A9&&c&d=&a=second";
	ASSERT_OK(tw_form_parse(body, strlen(body), &f));
	ASSERT_EQ_INT(f.n, 5);
	ASSERT_EQ_STR(tw_form_get(&f, "a"), "1 2");
	ASSERT_EQ_STR(tw_form_get(&f, "b"), "&=\xc3\xa9");
	ASSERT_EQ_STR(tw_form_get(&f, "c"), "");
	ASSERT_EQ_STR(tw_form_get(&f, "d"), "");
	ASSERT(tw_form_get(&f, "zz") == NULL);
	tw_form_free(&f);

	static const char *const bad[] = {"a=%2", "a=%zz", "a=%00", "%=1", "a=b%"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_MSG(tw_form_parse(bad[i], strlen(bad[i]), &f) == -EINVAL, "%s", bad[i]);
	ASSERT_EQ_INT(tw_form_parse("a\0b", 3, &f), -EINVAL);

	/* More pairs than the cap. */
	char many[TW_FORM_MAX_PAIRS * 4 + 16] = "";
	for (int i = 0; i <= TW_FORM_MAX_PAIRS; i++)
		strcat(many, "x=1&");
	ASSERT_EQ_INT(tw_form_parse(many, strlen(many), &f), -EINVAL);
	ASSERT_OK(tw_form_parse(NULL, 0, &f));
	ASSERT_EQ_INT(f.n, 0);
	tw_form_free(&f);
}

RV_TEST(twilio_xml_escape_and_urls)
{
	char out[128];
	ASSERT_OK(tw_xml_escape("a&b<c>\"d'e", out, sizeof(out)));
	ASSERT_EQ_STR(out, "a&amp;b&lt;c&gt;&quot;d&apos;e");
	ASSERT_OK(tw_xml_escape("bell\x07 tab\t \xff", out, sizeof(out)));
	ASSERT_EQ_STR(out, "bell? tab\t ?");
	ASSERT_EQ_INT(tw_xml_escape("&&&&", out, 8), -ENOSPC);

	ASSERT_OK(tw_stream_url("https://rv.example.com/", out, sizeof(out)));
	ASSERT_EQ_STR(out, "wss://rv.example.com/twilio/stream");
	ASSERT_OK(tw_stream_url("https://rv.example.com:8443/pre", out, sizeof(out)));
	ASSERT_EQ_STR(out, "wss://rv.example.com:8443/pre/twilio/stream");
	ASSERT_OK(tw_stream_url("http://127.0.0.1:8080", out, sizeof(out)));
	ASSERT_EQ_STR(out, "ws://127.0.0.1:8080/twilio/stream");
	ASSERT_EQ_INT(tw_stream_url("", out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(tw_stream_url("ftp://x", out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(tw_stream_url("https://", out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(tw_stream_url("https://a\"b", out, sizeof(out)), -EINVAL);
	ASSERT_EQ_INT(tw_stream_url("https://a/?x=1", out, sizeof(out)), -EINVAL);

	ASSERT_OK(tw_public_url("https://rv.example.com/", "/twilio/voice", "call_id=3", out,
	                        sizeof(out)));
	ASSERT_EQ_STR(out, "https://rv.example.com/twilio/voice?call_id=3");
	ASSERT_OK(
	    tw_public_url("https://rv.example.com", "/twilio/status", NULL, out, sizeof(out)));
	ASSERT_EQ_STR(out, "https://rv.example.com/twilio/status");
}

RV_TEST(twilio_msg_parses_twilio_messages)
{
	struct rv_twmsg m;
	uint8_t audio[RV_TWMSG_MAX_AUDIO];
	const char *why = NULL;
	const char *start =
	    "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"streamSid\":\"MZ18ad3ab5a668481ce02b8"
	    "3e7395059f0\",\"start\":{\"accountSid\":\"AC123\",\"streamSid\":\"MZ18ad3ab5a668481ce"
	    "02b83e7395059f0\",\"callSid\":\"CA123\",\"tracks\":[\"inbound\"],\"mediaFormat\":{"
	    "\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1},"
	    "\"customParameters\":{\"call_id\":\"42\",\"from\":\"+1555\"}}}";
	ASSERT_OK(rv_twmsg_parse(start, strlen(start), &m, audio, sizeof(audio), &why));
	ASSERT_EQ_INT(m.type, RV_TWMSG_START);
	ASSERT_EQ_INT(m.seq, 1);
	ASSERT_EQ_STR(m.call_sid, "CA123");
	ASSERT_EQ_STR(m.account_sid, "AC123");
	ASSERT_EQ_STR(m.encoding, "audio/x-mulaw");
	ASSERT_EQ_INT(m.sample_rate, 8000);
	ASSERT_EQ_INT(m.channels, 1);
	ASSERT(m.track_inbound && !m.track_outbound);
	ASSERT_EQ_STR(rv_twmsg_param(&m, "call_id"), "42");
	ASSERT_EQ_STR(rv_twmsg_param(&m, "from"), "+1555");

	const char *media =
	    "{\"event\":\"media\",\"sequenceNumber\":\"3\",\"media\":{\"track\":"
	    "\"inbound\",\"chunk\":\"1\",\"timestamp\":\"5\",\"payload\":\"/////w==\""
	    "},\"streamSid\":\"MZ1\"}";
	ASSERT_OK(rv_twmsg_parse(media, strlen(media), &m, audio, sizeof(audio), &why));
	ASSERT_EQ_INT(m.type, RV_TWMSG_MEDIA);
	ASSERT_EQ_INT(m.audio_len, 4);
	ASSERT_EQ_INT(audio[0], 0xff);
	ASSERT_EQ_INT(m.chunk, 1);
	ASSERT_EQ_INT(m.timestamp_ms, 5);

	const char *dtmf = "{\"event\":\"dtmf\",\"streamSid\":\"MZ1\",\"sequenceNumber\":\"5\","
	                   "\"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"#\"}}";
	ASSERT_OK(rv_twmsg_parse(dtmf, strlen(dtmf), &m, audio, sizeof(audio), &why));
	ASSERT_EQ_INT(m.digit, '#');
	const char *mark =
	    "{\"event\":\"mark\",\"streamSid\":\"MZ1\",\"mark\":{\"name\":\"item-3\"}}";
	ASSERT_OK(rv_twmsg_parse(mark, strlen(mark), &m, audio, sizeof(audio), &why));
	ASSERT_EQ_STR(m.mark, "item-3");
	const char *stop = "{\"event\":\"stop\",\"streamSid\":\"MZ1\",\"stop\":{\"accountSid\":"
	                   "\"AC1\",\"callSid\":\"CA1\"}}";
	ASSERT_OK(rv_twmsg_parse(stop, strlen(stop), &m, audio, sizeof(audio), &why));
	ASSERT_EQ_INT(m.type, RV_TWMSG_STOP);
	ASSERT_EQ_STR(m.call_sid, "CA1");

	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"", "json"},
	    {"[1]", "not_object"},
	    {"{}", "no_event"},
	    {"{\"event\":\"nope\"}", "unknown_event"},
	    {"{\"event\":\"media\",\"streamSid\":\"MZ 1\"}", "bad_sid"},
	    {"{\"event\":\"media\",\"media\":{\"payload\":\"!!\"}}", "bad_base64"},
	    {"{\"event\":\"media\",\"media\":{\"payload\":\"\"}}", "bad_base64"},
	    {"{\"event\":\"media\",\"media\":{}}", "bad_media"},
	    {"{\"event\":\"dtmf\",\"dtmf\":{\"digit\":\"12\"}}", "bad_dtmf"},
	    {"{\"event\":\"mark\",\"mark\":{}}", "bad_mark"},
	    {"{\"event\":\"start\",\"start\":{\"callSid\":\"CA1\"}}", "bad_start"},
	    {"{\"event\":\"connected\",\"event\":\"start\"}", "json"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int e = rv_twmsg_parse(bad[i].text, strlen(bad[i].text), &m, audio, sizeof(audio),
		                       &why);
		ASSERT_MSG(e == -EINVAL && strcmp(why, bad[i].why) == 0, "%s: %s", bad[i].text,
		           why);
	}
	/* A payload larger than one second. */
	size_t n = RV_TWMSG_MAX_AUDIO + 300;
	char *big = malloc(n / 3 * 4 + 200);
	ASSERT(big);
	int off = snprintf(big, 100, "{\"event\":\"media\",\"media\":{\"payload\":\"");
	for (size_t i = 0; i < n / 3; i++)
		memcpy(big + off + i * 4, "////", 4);
	strcpy(big + off + n / 3 * 4, "\"}}");
	int e = rv_twmsg_parse(big, strlen(big), &m, audio, sizeof(audio), &why);
	free(big);
	ASSERT_EQ_INT(e, -EINVAL);
	ASSERT_EQ_STR(why, "payload_too_large");
}

RV_TEST(twilio_msg_formats_round_trip)
{
	uint8_t ulaw[160], audio[RV_TWMSG_MAX_AUDIO];
	char buf[1024];
	size_t len = 0;
	struct rv_twmsg m;
	const char *why;
	for (size_t i = 0; i < sizeof(ulaw); i++)
		ulaw[i] = (uint8_t)i;
	ASSERT_OK(rv_twmsg_format_media("MZ9", ulaw, sizeof(ulaw), buf, sizeof(buf), &len));
	ASSERT_EQ_INT(len, strlen(buf));
	/* Our media message has Twilio's shape, so our own parser reads it back. */
	ASSERT_OK(rv_twmsg_parse(buf, len, &m, audio, sizeof(audio), &why));
	ASSERT_EQ_INT(m.type, RV_TWMSG_MEDIA);
	ASSERT_EQ_STR(m.stream_sid, "MZ9");
	ASSERT_EQ_INT(m.audio_len, 160);
	ASSERT(memcmp(audio, ulaw, 160) == 0);
	ASSERT_OK(rv_twmsg_format_mark("MZ9", "item-7", buf, sizeof(buf), &len));
	ASSERT_EQ_STR(buf,
	              "{\"event\":\"mark\",\"streamSid\":\"MZ9\",\"mark\":{\"name\":\"item-7\"}}");
	ASSERT_OK(rv_twmsg_format_clear("MZ9", buf, sizeof(buf), &len));
	ASSERT_EQ_STR(buf, "{\"event\":\"clear\",\"streamSid\":\"MZ9\"}");
	ASSERT_EQ_INT(rv_twmsg_format_media("MZ9", ulaw, sizeof(ulaw), buf, 64, &len), -ENOSPC);
	ASSERT_EQ_INT(rv_twmsg_format_media("MZ9", ulaw, 0, buf, sizeof(buf), &len), -EINVAL);
	ASSERT_EQ_INT(rv_twmsg_format_mark("MZ9", "", buf, sizeof(buf), &len), -EINVAL);
}
