/*
 * bystate's pure checks for the apps API: name rules, memory limits,
 * cron schedules and UUIDs.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "bystate.h"

START_TEST(test_names)
{
	static const char *const ok[] = { "a", "app", "my-app-2", "a1",
	    "abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefgh",
	    NULL };
	char	 long64[65];
	size_t	 i;

	for (i = 0; ok[i] != NULL; i++)
		ck_assert_msg(app_name_problem(ok[i]) == NULL, "%s", ok[i]);
	memset(long64, 'a', 64);
	long64[64] = '\0';
	ck_assert_str_eq(app_name_problem(""), "must be 1-63 characters");
	ck_assert_str_eq(app_name_problem(long64), "must be 1-63 characters");
	ck_assert_str_eq(app_name_problem("Abc"),
	    "must contain only lowercase letters, digits, and hyphens");
	ck_assert_str_eq(app_name_problem("a_b"),
	    "must contain only lowercase letters, digits, and hyphens");
	ck_assert_str_eq(app_name_problem("caf\xc3\xa9"),
	    "must contain only lowercase letters, digits, and hyphens");
	/* the character rule comes before the first-letter rule */
	ck_assert_str_eq(app_name_problem("1_"),
	    "must contain only lowercase letters, digits, and hyphens");
	ck_assert_str_eq(app_name_problem("1abc"),
	    "must start with a lowercase letter");
	ck_assert_str_eq(app_name_problem("-"),
	    "must start with a lowercase letter");
	ck_assert_str_eq(app_name_problem("abc-"),
	    "must not end with a hyphen");
}
END_TEST

static uint64_t
mem(const char *s)
{
	uint64_t	 v = 0;

	ck_assert_msg(memory_limit_parse(s, &v) == 0, "%s", s);
	return v;
}

START_TEST(test_memory_limit)
{
	static const char *const bad[] = { "", "m", "-1", "1.5g", "1 g", "1t",
	    "1kbb", "1bk", "g1", " 1", "1b", "18446744073709551616",
	    "17179869184g", NULL };
	uint64_t	 v;
	size_t		 i;

	ck_assert(mem("0") == 0);
	ck_assert(mem("1024") == 1024);
	ck_assert(mem("1k") == 1024);
	ck_assert(mem("1KB") == 1024);
	ck_assert(mem("512m") == 512ULL << 20);
	ck_assert(mem("512Mb") == 512ULL << 20);
	ck_assert(mem("2g") == 2ULL << 30);
	ck_assert(mem("2GB") == 2ULL << 30);
	ck_assert(mem("18446744073709551615") == UINT64_MAX);
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(memory_limit_parse(bad[i], &v) == -1, "%s",
		    bad[i]);
}
END_TEST

START_TEST(test_cron)
{
	static const char *const ok[] = { "* * * * *", "0 3 * * *",
	    "*/5 * * * 1-5", "0,30 8-18/2 1-15 JAN-jun MON-FRI",
	    "59 23 31 12 6", "? * * * ?", "  0  0  1  1  0  ", "5/10 * * * *",
	    "0 0 * * sun", NULL };
	static const char *const bad[] = { "", "daily", "* * * *",
	    "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
	    "* * 32 * *", "* * * 13 *", "* * * * 7", "*/0 * * * *",
	    "5-1 * * * *", "1, * * * *", ",1 * * * *", "1,,2 * * * *",
	    "a * * * *", "* * * FOO *", "* * * * MONDAY", "1- * * * *",
	    "*/ * * * *", "@daily", "* * * jan-feb/x *", NULL };
	size_t	 i;

	for (i = 0; ok[i] != NULL; i++)
		ck_assert_msg(cron_valid(ok[i]) == 0, "%s", ok[i]);
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(cron_valid(bad[i]) == -1, "%s", bad[i]);
}
END_TEST

START_TEST(test_uuid)
{
	char	 a[UUID_LEN], b[UUID_LEN];
	size_t	 i;

	uuid_v4(a, sizeof(a));
	uuid_v4(b, sizeof(b));
	ck_assert_int_eq(strlen(a), 36);
	ck_assert_str_ne(a, b);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			ck_assert_int_eq(a[i], '-');
		else
			ck_assert(isxdigit((unsigned char)a[i]) &&
			    !isupper((unsigned char)a[i]));
	}
	ck_assert_int_eq(a[14], '4');
	ck_assert(strchr("89ab", a[19]) != NULL);
}
END_TEST

START_TEST(test_relations)
{
	ck_assert(!REL_CAN_VIEW(REL_NONE));
	ck_assert(REL_CAN_VIEW(REL_ANONYMOUS) && !REL_CAN_DEPLOY(REL_VIEWER));
	ck_assert(REL_CAN_DEPLOY(REL_COLLABORATOR) &&
	    !REL_CAN_MANAGE(REL_COLLABORATOR));
	ck_assert(REL_CAN_MANAGE(REL_OWNER) && REL_CAN_MANAGE(REL_ADMIN));
	ck_assert_str_eq(app_rel_name(REL_COLLABORATOR), "collaborator");
	ck_assert_str_eq(app_rel_name(REL_ANONYMOUS), "anonymous");
}
END_TEST

static Suite *
validate_suite(void)
{
	Suite	*s = suite_create("bystate_validate");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_memory_limit);
	tcase_add_test(tc, test_cron);
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_relations);
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
