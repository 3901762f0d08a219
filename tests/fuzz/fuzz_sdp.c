/*
 * libFuzzer target: arbitrary bytes as the far end's SDP through rv_sip_sdp_choose, the SIP
 * UA's offer/answer decision (libre's SDP decoder underneath). It must never crash or leak,
 * must return one of its documented errors, and whatever it accepts must be self-consistent
 * and the same on a second run.
 */
#include <errno.h>
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip/sip_sdp.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rv_sdp_choice a, b;
	memset(&a, 0x5a, sizeof(a));
	int err = rv_sip_sdp_choose((const char *)data, size, &a);
	CHECK(err == 0 || err == -EBADMSG || err == -ENOMEDIUM || err == -ENOTCONN ||
	      err == -ENOTSUP || err == -EMSGSIZE || err == -ENOMEM);
	CHECK(strcmp(rv_sip_sdp_reason(err), "error") != 0 || err == -ENOMEM || err == 0);
	if (err)
		return 0;
	CHECK(a.codec && (!strcmp(a.codec, "PCMU") || !strcmp(a.codec, "PCMA")));
	CHECK(a.pt == (!strcmp(a.codec, "PCMU") ? 0 : 8));
	CHECK(!strcmp(a.codec, "PCMU") ? a.pcmu : a.pcma);
	CHECK(a.telev_pt == -1 || (a.telev_pt > 0 && a.telev_pt <= 127 && a.telev_pt != 8));
	CHECK(a.port != 0);
	CHECK(memchr(a.addr, '\0', sizeof(a.addr)) != NULL);
	if (a.addr[0]) {
		struct sa sa;
		CHECK(sa_set_str(&sa, a.addr, a.port) == 0);
		CHECK(sa_isset(&sa, SA_ADDR));
	} else {
		CHECK(a.hold); /* no address: the far end takes no audio */
	}
	CHECK(rv_sip_sdp_choose((const char *)data, size, &b) == 0);
	CHECK(b.codec == a.codec && b.pt == a.pt && b.telev_pt == a.telev_pt && b.port == a.port &&
	      b.hold == a.hold && b.recv == a.recv && !strcmp(b.addr, a.addr));
	return 0;
}
