/*
 * Token text and expiry parsing in bystate (state_tokens.c).
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "bystate.h"

static const char *
b62(const char *hex)
{
	static char	 out[128];
	unsigned char	 in[64];
	size_t		 i, n = strlen(hex) / 2;
	unsigned int	 v;

	for (i = 0; i < n; i++) {
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		in[i] = (unsigned char)v;
	}
	token_base62(in, n, out, sizeof(out));
	return out;
}

/* Expected values from an independent big-integer conversion. */
START_TEST(test_base62)
{
	ck_assert_str_eq(b62("0001"), "01");
	ck_assert_str_eq(b62("ff"), "47");
	ck_assert_str_eq(b62("0000"), "00");
	ck_assert_str_eq(b62("000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f"),
	    "03aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");
	ck_assert_str_eq(b62("ffffffffffffffffffffffffffffffff"
	    "ffffffffffffffffffffffffffffffff"),
	    "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
	ck_assert_str_eq(b62("00808080808080808080808080808080"
	    "80808080808080808080808080808080"),
	    "07NYGclyRF7bZ9WSdTwIIuG3vmmOiDahXoZpQyDyJW4");
}
END_TEST

static time_t
parse_utc(const char *s)
{
	struct tm	 tm;

	memset(&tm, 0, sizeof(tm));
	ck_assert_ptr_nonnull(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

START_TEST(test_expiry)
{
	static const char *const bad[] = { "", "90", "d", "1w", "-1d", "+1d",
	    "1.5h", "1d ", " 1d", "1dd", "1D", "99999999999999999999d",
	    "3000000d", NULL };
	char	 out[32];
	time_t	 now = time(NULL);
	size_t	 i;

	ck_assert_int_eq(token_expiry("90d", out, sizeof(out)), 0);
	ck_assert_int_le(labs((long)(parse_utc(out) - now - 90 * 86400)), 2);
	ck_assert_int_eq(token_expiry("24h", out, sizeof(out)), 0);
	ck_assert_int_le(labs((long)(parse_utc(out) - now - 86400)), 2);
	ck_assert_int_eq(token_expiry("0m", out, sizeof(out)), 0);
	ck_assert_int_le(labs((long)(parse_utc(out) - now)), 2);
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(token_expiry(bad[i], out, sizeof(out)) == -1,
		    "\"%s\" accepted", bad[i]);
	ck_assert_int_eq(token_expiry(NULL, out, sizeof(out)), -1);
}
END_TEST

START_TEST(test_expiry_at)
{
	static const char *const bad[] = { "", "tomorrow", "2099-01-01",
	    "2099-01-01T00:00:00", "2099-01-01T00:00:00+0100",
	    "2099-01-01T00:00:00Zjunk", "2099-13-01T00:00:00Z",
	    "10000-01-01T00:00:00Z", NULL };
	char	 out[32];
	size_t	 i;

	ck_assert_int_eq(token_expiry_at("2099-01-31T12:00:00Z", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "2099-01-31T12:00:00Z");
	ck_assert_int_eq(token_expiry_at("2099-01-31T12:00:00.123z", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "2099-01-31T12:00:00Z");
	/* offsets are turned into UTC */
	ck_assert_int_eq(token_expiry_at("2099-01-31T12:00:00+02:00", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "2099-01-31T10:00:00Z");
	ck_assert_int_eq(token_expiry_at("2099-01-31T23:30:00-01:00", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "2099-02-01T00:30:00Z");
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(token_expiry_at(bad[i], out, sizeof(out)) == -1,
		    "\"%s\" accepted", bad[i]);
	ck_assert_int_eq(token_expiry_at("2001-01-01T00:00:00Z", out,
	    sizeof(out)), -2);
}
END_TEST

START_TEST(test_roles_and_subs)
{
	char	 longsub[300];

	ck_assert(user_valid_role("admin"));
	ck_assert(user_valid_role("publisher"));
	ck_assert(user_valid_role("viewer"));
	ck_assert(!user_valid_role("Admin"));
	ck_assert(!user_valid_role("owner"));
	ck_assert(!user_valid_role(""));
	ck_assert(!user_valid_role(NULL));
	ck_assert(user_valid_sub("google-oauth2|abc123"));
	ck_assert(user_valid_sub("a@b.org"));
	ck_assert(!user_valid_sub(""));
	ck_assert(!user_valid_sub(NULL));
	ck_assert(!user_valid_sub("a\nb"));
	memset(longsub, 'x', sizeof(longsub) - 1);
	longsub[sizeof(longsub) - 1] = '\0';
	ck_assert(!user_valid_sub(longsub));
}
END_TEST

static Suite *
tokens_suite(void)
{
	Suite	*s = suite_create("bystate_tokens");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_base62);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_expiry_at);
	tcase_add_test(tc, test_roles_and_subs);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(tokens_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
