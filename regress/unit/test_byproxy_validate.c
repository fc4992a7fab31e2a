/*
 * byproxy's request helpers for the apps API: the query-string reader
 * and the integer parser that mirrors Go's strconv.Atoi.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "byproxy.h"

static char *
q(const char *query, const char *key)
{
	struct http_request	 req;

	memset(&req, 0, sizeof(req));
	req.query = (char *)query;
	return api_query_get(&req, key);
}

static void
q_is(const char *query, const char *key, const char *want)
{
	char	*got = q(query, key);

	if (want == NULL)
		ck_assert_msg(got == NULL, "%s [%s]: got \"%s\"", query, key,
		    got);
	else {
		ck_assert_msg(got != NULL, "%s [%s]: NULL", query, key);
		ck_assert_str_eq(got, want);
	}
	free(got);
}

START_TEST(test_query_get)
{
	q_is(NULL, "a", NULL);
	q_is("", "a", NULL);
	q_is("a=1", "a", "1");
	q_is("a=1&b=2", "b", "2");
	q_is("a=1&a=2", "a", "1");		/* the first value */
	q_is("a", "a", "");
	q_is("a=", "a", "");
	q_is("&&a=x&&", "a", "x");
	q_is("ab=1", "a", NULL);
	q_is("search=a+b%20c", "search", "a b c");
	q_is("search=%25_%5C", "search", "%_\\");
	q_is("se%61rch=x", "search", "x");	/* keys are decoded too */
	q_is("a=%zz&a=2", "a", "2");		/* a bad pair is skipped */
	q_is("a=%2", "a", NULL);
	q_is("a=%", "a", NULL);
	q_is("a=%00", "a", NULL);		/* no NUL inside a value */
	q_is("a=1=2", "a", "1=2");
	q_is("a=%C3%A9", "a", "\xc3\xa9");
	q_is("a=%FF", "a", "\xff");		/* UTF-8 is checked later */
}
END_TEST

START_TEST(test_parse_int)
{
	ck_assert_int_eq(api_parse_int(NULL, 7), 7);
	ck_assert_int_eq(api_parse_int("", 7), 7);
	ck_assert_int_eq(api_parse_int("0", 7), 0);
	ck_assert_int_eq(api_parse_int("42", 7), 42);
	ck_assert_int_eq(api_parse_int("+42", 7), 42);
	ck_assert_int_eq(api_parse_int("-42", 7), -42);
	ck_assert_int_eq(api_parse_int("007", 7), 7);
	ck_assert_int_eq(api_parse_int("-", 7), 7);
	ck_assert_int_eq(api_parse_int("+", 7), 7);
	ck_assert_int_eq(api_parse_int("1.5", 7), 7);
	ck_assert_int_eq(api_parse_int("0x10", 7), 7);
	ck_assert_int_eq(api_parse_int(" 1", 7), 7);
	ck_assert_int_eq(api_parse_int("1 ", 7), 7);
	ck_assert_int_eq(api_parse_int("abc", 7), 7);
	ck_assert(api_parse_int("9223372036854775807", 7) == INT64_MAX);
	ck_assert(api_parse_int("-9223372036854775808", 7) == INT64_MIN);
	ck_assert_int_eq(api_parse_int("9223372036854775808", 7), 7);
	ck_assert_int_eq(api_parse_int("-9223372036854775809", 7), 7);
	ck_assert_int_eq(api_parse_int("99999999999999999999", 7), 7);
}
END_TEST

static Suite *
validate_suite(void)
{
	Suite	*s = suite_create("byproxy_validate");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_query_get);
	tcase_add_test(tc, test_parse_int);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(validate_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
