/*
 * The client address behind trusted proxies (api_realip.c) and the
 * per-client rate limits (api_ratelimit.c), without a server.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <check.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

static const char *
fmt(const uint8_t a[16])
{
	static char	 buf[64];

	ip_format(a, buf, sizeof(buf));
	return buf;
}

static const char *
parsed(const char *s)
{
	uint8_t	 a[16];

	if (ip_parse(s, strlen(s), a) == -1)
		return "(invalid)";
	return fmt(a);
}

START_TEST(test_ip_parse)
{
	static const char *const bad[] = { "", " ", "1.2.3", "1.2.3.4.5",
	    "256.1.1.1", "[::1", "::1]", "abc", "1.2.3.4:80:90", "[1.2.3.4]x",
	    "[::1]80", "1.2.3.4/8", NULL };
	size_t	 i;

	ck_assert_str_eq(parsed("1.2.3.4"), "1.2.3.4");
	ck_assert_str_eq(parsed("  1.2.3.4 "), "1.2.3.4");
	ck_assert_str_eq(parsed("1.2.3.4:8080"), "1.2.3.4");
	ck_assert_str_eq(parsed("::1"), "::1");
	ck_assert_str_eq(parsed("[::1]"), "::1");
	ck_assert_str_eq(parsed("[2001:db8::7]:443"), "2001:db8::7");
	/* IPv4-mapped IPv6 is the same client as plain IPv4 */
	ck_assert_str_eq(parsed("::ffff:10.1.2.3"), "10.1.2.3");
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(strcmp(parsed(bad[i]), "(invalid)") == 0,
		    "\"%s\" parsed as %s", bad[i], parsed(bad[i]));
}
END_TEST

static int
in(const char *cidr, const char *ip)
{
	struct cidr	 c;
	uint8_t		 a[16];

	ck_assert_msg(cidr_parse(cidr, &c) == 0, "cidr %s", cidr);
	ck_assert_msg(ip_parse(ip, strlen(ip), a) == 0, "ip %s", ip);
	return cidr_contains(&c, a);
}

START_TEST(test_cidr)
{
	static const char *const bad[] = { "", "10.0.0.0/", "10.0.0.0/33",
	    "10.0.0.0/-1", "10.0.0.0/8x", "::/129", "[::1]/128",
	    "1.2.3.4:80/32", "10.0.0/8", "x/8", NULL };
	struct cidr	 c;
	size_t		 i;

	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(cidr_parse(bad[i], &c) == -1, "\"%s\" parsed",
		    bad[i]);
	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c), 0);
	ck_assert_int_eq(c.bits, 104);
	ck_assert_int_eq(cidr_parse("fd00::/8", &c), 0);
	ck_assert_int_eq(c.bits, 8);

	ck_assert(in("10.0.0.0/8", "10.255.1.2"));
	ck_assert(!in("10.0.0.0/8", "11.0.0.1"));
	ck_assert(!in("10.0.0.0/8", "9.255.255.255"));
	ck_assert(in("192.168.1.0/25", "192.168.1.127"));
	ck_assert(!in("192.168.1.0/25", "192.168.1.128"));
	ck_assert(in("172.16.0.0/12", "172.31.255.255"));
	ck_assert(!in("172.16.0.0/12", "172.32.0.0"));
	/* host bits in the network are ignored, as net.ParseCIDR does */
	ck_assert(in("10.1.2.3/8", "10.9.9.9"));
	ck_assert(in("0.0.0.0/0", "203.0.113.9"));
	ck_assert(!in("0.0.0.0/0", "::1"));
	ck_assert(in("::/0", "::1"));
	ck_assert(in("::/0", "1.2.3.4"));
	ck_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
	ck_assert(!in("2001:db8::/32", "2001:db9::1"));
	ck_assert(in("127.0.0.1", "127.0.0.1"));
	ck_assert(!in("127.0.0.1", "127.0.0.2"));
	ck_assert(in("::1/128", "[::1]:80"));
	ck_assert(in("::ffff:10.0.0.0/104", "10.2.3.4"));
	ck_assert(in("10.0.0.0/31", "10.0.0.1"));
	ck_assert(!in("10.0.0.0/31", "10.0.0.2"));
}
END_TEST

static struct cidr	 set[4];
static size_t		 nset;

static void
trust(const char *cidr)
{
	ck_assert_int_eq(cidr_parse(cidr, &set[nset]), 0);
	nset++;
}

/* The client for peer and the X-Forwarded-For lines, then X-Real-IP. */
static const char *
client(const char *peer, const char *xff1, const char *xff2,
    const char *xri)
{
	const char	*xff[2];
	size_t		 n = 0;
	uint8_t		 a[16];

	if (xff1 != NULL)
		xff[n++] = xff1;
	if (xff2 != NULL)
		xff[n++] = xff2;
	if (realip_resolve(set, nset, peer, xff, n, xri, a) == -1)
		return "(none)";
	return fmt(a);
}

START_TEST(test_realip)
{
	char	 chain[1024];
	int	 i;

	nset = 0;
	/* nothing trusted: the headers mean nothing */
	ck_assert_str_eq(client("10.0.0.2:5000", "1.1.1.1", NULL, "2.2.2.2"),
	    "10.0.0.2");
	ck_assert_str_eq(client("unix", NULL, NULL, NULL), "(none)");

	trust("10.0.0.0/8");
	trust("::1/128");
	/* an untrusted peer cannot claim anything */
	ck_assert_str_eq(client("203.0.113.5:1", "1.1.1.1", NULL, "2.2.2.2"),
	    "203.0.113.5");
	ck_assert_str_eq(client("10.0.0.2:1", "1.1.1.1", NULL, NULL),
	    "1.1.1.1");
	/* right to left: what the client wrote itself is not believed */
	ck_assert_str_eq(client("10.0.0.2:1", "9.9.9.9, 1.1.1.1, 10.0.0.7",
	    NULL, NULL), "1.1.1.1");
	ck_assert_str_eq(client("10.0.0.2:1", "9.9.9.9,1.1.1.1", NULL, NULL),
	    "1.1.1.1");
	/* several header lines form one list, in order */
	ck_assert_str_eq(client("10.0.0.2:1", "9.9.9.9", "1.1.1.1, 10.0.0.5",
	    NULL), "1.1.1.1");
	ck_assert_str_eq(client("10.0.0.2:1", "9.9.9.9", "10.0.0.5", NULL),
	    "9.9.9.9");
	/* every hop trusted: the leftmost is the client */
	ck_assert_str_eq(client("10.0.0.2:1", "10.0.0.3, 10.0.0.4", NULL,
	    NULL), "10.0.0.3");
	/* entries with ports */
	ck_assert_str_eq(client("10.0.0.2:1", "1.1.1.1:4444", NULL, NULL),
	    "1.1.1.1");
	ck_assert_str_eq(client("10.0.0.2:1", "[2001:db8::7]:4444", NULL,
	    NULL), "2001:db8::7");
	/* garbage from a trusted hop: X-Real-IP, then the peer */
	ck_assert_str_eq(client("10.0.0.2:1", "1.1.1.1, garbage", NULL,
	    "2.2.2.2"), "2.2.2.2");
	ck_assert_str_eq(client("10.0.0.2:1", "1.1.1.1, garbage", NULL,
	    NULL), "10.0.0.2");
	ck_assert_str_eq(client("10.0.0.2:1", "1.1.1.1,", NULL, NULL),
	    "10.0.0.2");
	ck_assert_str_eq(client("10.0.0.2:1", "", NULL, "2.2.2.2"),
	    "2.2.2.2");
	/* X-Real-IP alone */
	ck_assert_str_eq(client("10.0.0.2:1", NULL, NULL, " 3.3.3.3 "),
	    "3.3.3.3");
	ck_assert_str_eq(client("10.0.0.2:1", NULL, NULL, "nonsense"),
	    "10.0.0.2");
	ck_assert_str_eq(client("10.0.0.2:1", NULL, NULL, NULL), "10.0.0.2");
	/* IPv6 peers */
	ck_assert_str_eq(client("[::1]:5555", "2001:db8::7", NULL, NULL),
	    "2001:db8::7");
	ck_assert_str_eq(client("[::2]:5555", "2001:db8::7", NULL, NULL),
	    "::2");
	/* a chain longer than the walk allows is not believed */
	chain[0] = '\0';
	for (i = 0; i < 40; i++)
		strlcat(chain, i ? ", 10.0.0.9" : "10.0.0.9", sizeof(chain));
	ck_assert_str_eq(client("10.0.0.2:1", chain, NULL, NULL), "10.0.0.2");
}
END_TEST

START_TEST(test_ratelimit_groups)
{
	int	 me = ratelimit_group("/api/v1/users/me");
	int	 api = ratelimit_group("/api/v1/apps");

	ck_assert_int_ge(me, 0);
	ck_assert_int_ge(api, 0);
	ck_assert_int_ne(me, api);
	ck_assert_int_eq(ratelimit_limit(me), 20);
	ck_assert_int_eq(ratelimit_limit(api), 120);
	ck_assert_int_eq(ratelimit_group("/api/v1/users/me/tokens"), me);
	ck_assert_int_eq(ratelimit_group("/api/v1/users/me/tokens/x"), me);
	ck_assert_int_eq(ratelimit_group("/api/v1/users/meow"), api);
	ck_assert_int_eq(ratelimit_group("/api/v1/users"), api);
	ck_assert_int_eq(ratelimit_group("/api/v1"), api);
	ck_assert_int_eq(ratelimit_group("/api/v1/bootstrap"), -1);
	ck_assert_int_eq(ratelimit_group("/api/v1/packages"), -1);
	ck_assert_int_eq(ratelimit_group("/api/v10/x"), -1);
	ck_assert_int_eq(ratelimit_group("/healthz"), -1);
	ck_assert_int_eq(ratelimit_group("/readyz"), -1);
	ck_assert_int_eq(ratelimit_group("/app/x/"), -1);
}
END_TEST

static uint8_t *
addr(const char *s)
{
	static uint8_t	 a[16];

	ck_assert_int_eq(ip_parse(s, strlen(s), a), 0);
	return a;
}

/* How many requests of ip at time t get through, out of n. */
static int
allowed(int group, const char *ip, double t, int n)
{
	int64_t	 reset;
	int	 i, ok = 0, rem;

	for (i = 0; i < n; i++)
		if (ratelimit_take(group, addr(ip), t, &rem, &reset) == 1)
			ok++;
	return ok;
}

START_TEST(test_ratelimit_window)
{
	int	 me = ratelimit_group("/api/v1/users/me");
	double	 t0 = 1700000040.0;	/* the start of a minute */
	int64_t	 reset;
	int	 rem, i;

	ratelimit_reset();
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(ratelimit_take(me, addr("1.1.1.1"), t0 + 1,
		    &rem, &reset), 1);
		ck_assert_int_eq(rem, 19 - i);
		ck_assert_int_eq(reset, 1700000100);
	}
	ck_assert_int_eq(ratelimit_take(me, addr("1.1.1.1"), t0 + 2, &rem,
	    &reset), 0);
	ck_assert_int_eq(rem, 0);
	/* limited requests do not count: still exactly full */
	ck_assert_int_eq(allowed(me, "1.1.1.1", t0 + 59, 5), 0);
	/* others are not affected, nor the other group */
	ck_assert_int_eq(allowed(me, "1.1.1.2", t0 + 2, 20), 20);
	ck_assert_int_eq(allowed(me, "::1", t0 + 2, 20), 20);
	ck_assert_int_eq(allowed(ratelimit_group("/api/v1/apps"), "1.1.1.1",
	    t0 + 2, 3), 3);
	/* next minute, a second in: the previous one still weighs ~59/60 */
	ck_assert_int_eq(allowed(me, "1.1.1.1", t0 + 61, 5), 0);
	/* halfway: half of the 20 still counts */
	ck_assert_int_eq(allowed(me, "1.1.1.1", t0 + 90, 30), 10);
	/* two minutes on, nothing is remembered */
	ck_assert_int_eq(allowed(me, "1.1.1.1", t0 + 180, 30), 20);
}
END_TEST

START_TEST(test_ratelimit_memory)
{
	int	 api = ratelimit_group("/api/v1/apps");
	double	 t0 = 1700000040.0;
	char	 ip[64];
	int64_t	 reset;
	int	 rem;
	size_t	 i;

	ratelimit_reset();
	for (i = 0; i < RL_MAX_ENTRIES + 100; i++) {
		snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu", i >> 16 & 0xff,
		    i >> 8 & 0xff, i & 0xff);
		ratelimit_take(api, addr(ip), t0, &rem, &reset);
	}
	ck_assert_uint_eq(ratelimit_size(api), RL_MAX_ENTRIES);
	/* the oldest were dropped, the newest remain */
	ck_assert_int_eq(ratelimit_take(api, addr("10.1.0.99"), t0, &rem,
	    &reset), 1);
	ck_assert_int_eq(rem, 118);
	/* entries two windows old are dropped as time passes */
	ratelimit_take(api, addr("2.2.2.2"), t0 + 130, &rem, &reset);
	ck_assert_uint_eq(ratelimit_size(api), 1);
	ratelimit_reset();
	ck_assert_uint_eq(ratelimit_size(api), 0);
}
END_TEST

static Suite *
realip_suite(void)
{
	Suite	*s = suite_create("byproxy_realip");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_ip_parse);
	tcase_add_test(tc, test_cidr);
	tcase_add_test(tc, test_realip);
	tcase_add_test(tc, test_ratelimit_groups);
	tcase_add_test(tc, test_ratelimit_window);
	tcase_add_test(tc, test_ratelimit_memory);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(realip_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
