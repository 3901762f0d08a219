/*
 * Phone number normalisation over libphonenumber. This is the only C++ in the project: it keeps
 * to the two C entry points of core/phone.h, and no C++ exception may cross them.
 */
#include <cerrno>
#include <cstring>
#include <exception>
#include <set>
#include <string>

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

extern "C" {
#include "core/phone.h"
#include "core/util.h"
}

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

/*
 * What people type in a phone cell is short; anything longer is not a number and would only
 * cost parse time (libphonenumber itself refuses inputs over 250 characters).
 */
static const size_t max_input = 128;

/* Copies an ISO region code into buf upper-cased; "ZZ" (unknown) when absent or malformed. */
static void region_code(const char *region, char buf[3])
{
	buf[0] = 'Z';
	buf[1] = 'Z';
	buf[2] = '\0';
	if (!region || strlen(region) != 2)
		return;
	for (int i = 0; i < 2; i++) {
		char c = region[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c < 'A' || c > 'Z') {
			buf[0] = buf[1] = 'Z';
			return;
		}
		buf[i] = c;
	}
}

static const char *parse_error_reason(PhoneNumberUtil::ErrorType e)
{
	switch (e) {
	case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
		return "unknown country code";
	case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
	case PhoneNumberUtil::TOO_SHORT_NSN:
		return "too short to be a phone number";
	case PhoneNumberUtil::TOO_LONG_NSN:
		return "too long to be a phone number";
	default:
		return "not a phone number";
	}
}

/* Why a parsed number is not valid, as precisely as its length tells. */
static const char *length_reason(PhoneNumberUtil::ValidationResult v)
{
	switch (v) {
	case PhoneNumberUtil::INVALID_COUNTRY_CODE:
		return "unknown country code";
	case PhoneNumberUtil::TOO_SHORT:
		return "too short for its region";
	case PhoneNumberUtil::TOO_LONG:
		return "too long for its region";
	case PhoneNumberUtil::INVALID_LENGTH:
		return "wrong length for its region";
	default:
		return "invalid number for its region";
	}
}

extern "C" int rv_phone_e164(const char *input, const char *default_region, char *out,
                             size_t outlen, const char **why)
{
	const char *reason = "not a phone number";
	int err = -EINVAL;

	if (!input || !out || outlen < 17) {
		reason = "internal: bad arguments";
		goto out;
	}
	{
		size_t n = strlen(input);
		if (n == 0) {
			reason = "empty phone number";
			goto out;
		}
		if (n > max_input) {
			reason = "too long to be a phone number";
			goto out;
		}
		/* libphonenumber assumes UTF-8; bytes that are not must never reach it. */
		if (!rv_utf8_valid(input, n)) {
			reason = "not valid UTF-8";
			goto out;
		}
	}
	try {
		const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
		char region[3];
		region_code(default_region, region);
		PhoneNumber num;
		PhoneNumberUtil::ErrorType pe = util->Parse(std::string(input), region, &num);
		if (pe != PhoneNumberUtil::NO_PARSING_ERROR) {
			reason = parse_error_reason(pe);
			goto out;
		}
		if (num.has_extension() && !num.extension().empty()) {
			/* An extension cannot be dialled as part of the E.164 number; dropping it
			 * silently would lose what the user gave us. */
			reason = "extensions are not supported";
			goto out;
		}
		if (!util->IsValidNumber(num)) {
			reason = length_reason(util->IsPossibleNumberWithReason(num));
			goto out;
		}
		std::string e164;
		util->Format(num, PhoneNumberUtil::E164, &e164);
		/* E.164 allows 15 digits; libphonenumber accepts a few longer national plans. */
		if (e164.size() > 16) {
			reason = "too long for E.164 (more than 15 digits)";
			goto out;
		}
		if (e164.size() < 2 || e164.size() >= outlen || e164[0] != '+') {
			reason = "number cannot be written in E.164";
			goto out;
		}
		memcpy(out, e164.c_str(), e164.size() + 1);
		err = 0;
	} catch (const std::exception &) {
		reason = "phone number library failed";
		err = -EINVAL;
	} catch (...) {
		reason = "phone number library failed";
		err = -EINVAL;
	}
out:
	if (err && why)
		*why = reason;
	return err;
}

extern "C" int rv_phone_region_valid(const char *region)
{
	if (!region || strlen(region) != 2)
		return 0;
	try {
		/* The set is built once; GetSupportedRegions copies the library's table. */
		static const std::set<std::string> regions = [] {
			std::set<std::string> s;
			PhoneNumberUtil::GetInstance()->GetSupportedRegions(&s);
			return s;
		}();
		return regions.count(std::string(region)) ? 1 : 0;
	} catch (...) {
		return 0;
	}
}
