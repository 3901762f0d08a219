/* Outbound call outcomes: SIP final status -> disposition, and the names stored on call rows. */
#include <string.h>

#include "sip/sip_ua.h"
#include "../test.h"

RV_TEST(sip_status_disposition_mapping)
{
	ASSERT_EQ_INT(rv_sip_status_disposition(486), RV_DISP_BUSY);
	ASSERT_EQ_INT(rv_sip_status_disposition(600), RV_DISP_BUSY);
	ASSERT_EQ_INT(rv_sip_status_disposition(408), RV_DISP_NO_ANSWER);
	ASSERT_EQ_INT(rv_sip_status_disposition(480), RV_DISP_NO_ANSWER);
	ASSERT_EQ_INT(rv_sip_status_disposition(487), RV_DISP_NO_ANSWER);
	ASSERT_EQ_INT(rv_sip_status_disposition(404), RV_DISP_INVALID_NUMBER);
	ASSERT_EQ_INT(rv_sip_status_disposition(484), RV_DISP_INVALID_NUMBER);
	ASSERT_EQ_INT(rv_sip_status_disposition(500), RV_DISP_FAILED);
	ASSERT_EQ_INT(rv_sip_status_disposition(503), RV_DISP_FAILED);
	ASSERT_EQ_INT(rv_sip_status_disposition(403), RV_DISP_FAILED);
	ASSERT_EQ_INT(rv_sip_status_disposition(0), RV_DISP_FAILED);
}

RV_TEST(sip_outcome_names)
{
	ASSERT_EQ_STR(rv_call_disposition_name(RV_DISP_NO_ANSWER), "no_answer");
	ASSERT_EQ_STR(rv_call_disposition_name(RV_DISP_INVALID_NUMBER), "invalid_number");
	ASSERT_EQ_STR(rv_call_disposition_name((enum rv_call_disposition)99), "unknown");
	ASSERT_EQ_STR(rv_hangup_cause_name(RV_HANGUP_REMOTE_BYE), "remote_bye");
	ASSERT_EQ_STR(rv_hangup_cause_name(RV_HANGUP_NO_ANSWER), "no_answer");
	ASSERT_EQ_STR(rv_hangup_cause_name((enum rv_hangup_cause) - 1), "unknown");
}
