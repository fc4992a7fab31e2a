/*
 * Unit tests of the configuration parser: defaults, every value type,
 * the corpus of valid and invalid files, environment overrides, the
 * features refused while not built, validation and the JSON transport.
 */

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <check.h>
#include <jansson.h>

#include "config.h"
#include "config_keys.h"
#include "config_toml.h"

static char	 errbuf[2048];

static const char *const noenv[] = { NULL };

/* The environment a test passes: "NAME=value" strings. */
static const char *
fake_getenv(const char *name, void *arg)
{
	const char *const	*kv = arg;
	size_t			 n = strlen(name);

	for (; kv != NULL && *kv != NULL; kv++)
		if (strncmp(*kv, name, n) == 0 && (*kv)[n] == '=')
			return *kv + n + 1;
	return NULL;
}

static struct config *
load_env(const char *text, const char *const *env)
{
	return config_load_string(text, "test.toml", fake_getenv, (void *)env,
	    errbuf, sizeof(errbuf));
}

static struct config *
load(const char *text)
{
	return load_env(text, noenv);
}

#define LOAD_OK(c, text, env) do {					\
	(c) = load_env((text), (env));					\
	ck_assert_msg((c) != NULL, "load failed: %s", errbuf);		\
} while (0)

#define LOAD_ERR(text, env, msg) do {					\
	struct config	*c_ = load_env((text), (env));			\
	int		 ok_ = c_ == NULL;				\
	config_free(c_);						\
	ck_assert_msg(ok_, "loaded although \"%s\" was expected", (msg)); \
	ck_assert_msg(strstr(errbuf, (msg)) != NULL,			\
	    "error \"%s\" lacks \"%s\"", errbuf, (msg));		\
} while (0)

static void
setup(void)
{
	config_unbuilt_ok = 0;
	errbuf[0] = '\0';
}

static void
teardown(void)
{
	config_unbuilt_ok = 0;
}

/* ---- defaults ------------------------------------------------------------ */

START_TEST(test_defaults)
{
	struct config	*c;

	c = config_load(NULL, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	ck_assert_msg(c != NULL, "%s", errbuf);
	ck_assert_str_eq(c->path, "");
	ck_assert_uint_eq(config_nwarnings(c), 0);

	ck_assert_str_eq(c->server.bind, "127.0.0.1:8080");
	ck_assert_str_eq(c->server.backend, "process");
	ck_assert_int_eq(c->server.skip_preflight, 0);
	ck_assert_uint_eq(c->server.default_memory_limit, 0);
	ck_assert_double_eq(c->server.default_cpu_limit, 0);
	ck_assert_ptr_null(c->server.management_bind);
	ck_assert_int_eq(c->server.shutdown_timeout, 30000);
	ck_assert_int_eq(c->server.drain_timeout, 0);
	ck_assert_str_eq(c->server.log_level, "info");
	ck_assert_ptr_null(c->server.session_secret);
	ck_assert_ptr_null(c->server.external_url);
	ck_assert_uint_eq(c->server.trusted_proxies.n, 0);
	ck_assert_ptr_null(c->server.bootstrap_token);
	ck_assert_uint_eq(c->server.worker_env.n, 0);
	ck_assert_str_eq(c->server.user, "blockyard");
	ck_assert_str_eq(c->server.control_socket, "/run/blockyard/byd.sock");

	ck_assert_int_eq(c->docker.present, 0);
	ck_assert_str_eq(c->docker.socket, "/var/run/docker.sock");
	ck_assert_ptr_null(c->docker.image);
	ck_assert_int_eq(c->docker.shiny_port, 3838);
	ck_assert_str_eq(c->docker.pak_version, "stable");
	ck_assert_ptr_null(c->docker.service_network);
	ck_assert_ptr_null(c->docker.runtime);
	ck_assert_uint_eq(c->docker.runtime_defaults.n, 0);

	ck_assert_str_eq(c->process.bwrap_path, "/usr/bin/bwrap");
	ck_assert_str_eq(c->process.r_path, "/usr/bin/R");
	ck_assert_ptr_null(c->process.seccomp_profile);
	ck_assert_int_eq(c->process.port_range_start, 10000);
	ck_assert_int_eq(c->process.port_range_end, 10999);
	ck_assert_int_eq(c->process.worker_uid_range_start, 60000);
	ck_assert_int_eq(c->process.worker_uid_range_end, 60999);
	ck_assert_int_eq(c->process.worker_gid, 65534);
	ck_assert_int_eq(c->process.skip_metadata_check, 0);
	ck_assert_int_eq(c->process.build_timeout, 30 * 60 * 1000);
	ck_assert_uint_eq(c->process.repositories.n, 0);

	ck_assert_str_eq(c->storage.bundle_server_path, "/data/bundles");
	ck_assert_str_eq(c->storage.bundle_worker_path, "/app");
	ck_assert_int_eq(c->storage.bundle_retention, 50);
	ck_assert_uint_eq(c->storage.max_bundle_size, 104857600);
	ck_assert_int_eq(c->storage.soft_delete_retention, 0);
	ck_assert_int_eq(c->storage.store_retention, 0);
	ck_assert_uint_eq(c->storage.n_data_mounts, 0);

	ck_assert_str_eq(c->database.driver, "sqlite");
	ck_assert_str_eq(c->database.path, "/data/db/blockyard.db");
	ck_assert_ptr_null(c->database.url);
	ck_assert_str_eq(c->database.vault_mount, "database");
	ck_assert_ptr_null(c->database.vault_role);

	ck_assert_int_eq(c->proxy.ws_cache_ttl, 60000);
	ck_assert_int_eq(c->proxy.health_interval, 15000);
	ck_assert_int_eq(c->proxy.worker_start_timeout, 60000);
	ck_assert_int_eq(c->proxy.max_workers, 100);
	ck_assert_int_eq(c->proxy.log_retention, 3600000);
	ck_assert_int_eq(c->proxy.session_idle_ttl, 0);
	ck_assert_int_eq(c->proxy.idle_worker_timeout, 300000);
	ck_assert_int_eq(c->proxy.http_forward_timeout, 300000);
	ck_assert_double_eq(c->proxy.max_cpu_limit, 16.0);
	ck_assert_int_eq(c->proxy.transfer_timeout, 60000);
	ck_assert_int_eq(c->proxy.session_max_lifetime, 0);

	ck_assert_int_eq(c->redis.present, 0);
	ck_assert_ptr_null(c->redis.url);
	ck_assert_str_eq(c->redis.key_prefix, "blockyard:");

	ck_assert_int_eq(c->update.present, 0);
	ck_assert_ptr_null(c->update.schedule);
	ck_assert_str_eq(c->update.channel, "stable");
	ck_assert_int_eq(c->update.watch_period, 300000);
	ck_assert_str_eq(c->update.alt_bind_range, "8090-8099");
	ck_assert_int_eq(c->update.drain_idle_wait, 300000);

	ck_assert_int_eq(c->oidc.present, 0);
	ck_assert_ptr_null(c->oidc.issuer_url);
	ck_assert_ptr_null(c->oidc.issuer_discovery_url);
	ck_assert_ptr_null(c->oidc.client_id);
	ck_assert_ptr_null(c->oidc.client_secret);
	ck_assert_int_eq(c->oidc.cookie_max_age, 86400000);
	ck_assert_ptr_null(c->oidc.initial_admin);
	ck_assert_str_eq(c->oidc.default_role, "viewer");

	ck_assert_int_eq(c->vault.present, 0);
	ck_assert_ptr_null(c->vault.address);
	ck_assert_ptr_null(c->vault.role_id);
	ck_assert_ptr_null(c->vault.admin_token);
	ck_assert_int_eq(c->vault.token_ttl, 3600000);
	ck_assert_str_eq(c->vault.jwt_auth_path, "jwt");
	ck_assert_ptr_null(c->vault.secret_id_file);
	ck_assert_int_eq(c->vault.secret_id_wrapped, 0);
	ck_assert_ptr_null(c->vault.ca_cert);
	ck_assert_int_eq(c->vault.skip_policy_scope_check, 0);
	ck_assert_uint_eq(c->vault.n_services, 0);

	ck_assert_int_eq(c->board_storage.present, 0);
	ck_assert_ptr_null(c->board_storage.postgrest_url);
	ck_assert_int_eq(c->audit.present, 0);
	ck_assert_ptr_null(c->audit.path);
	ck_assert_int_eq(c->telemetry.present, 0);
	ck_assert_int_eq(c->telemetry.metrics_enabled, 0);
	ck_assert_ptr_null(c->telemetry.otlp_endpoint);
	config_free(c);
}
END_TEST

START_TEST(test_defaults_empty_file)
{
	struct config	*a, *b;

	a = config_load(NULL, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	ck_assert_ptr_nonnull(a);
	LOAD_OK(b, "# nothing but a comment\n\n   \n", noenv);
	ck_assert(config_equal(a, b));
	config_free(a);
	config_free(b);
}
END_TEST

/* The table itself: sections exist, no key twice, old names resolve. */
START_TEST(test_table_consistent)
{
	const struct config_key	*k, *t;
	size_t			 i, j;

	for (i = 0; i < config_nkeys; i++) {
		k = &config_keys[i];
		ck_assert_msg(config_section_find(k->section) != NULL, "%s",
		    k->section);
		ck_assert_ptr_eq(config_key_find(k->section, k->name), k);
		for (j = i + 1; j < config_nkeys; j++)
			ck_assert_msg(strcmp(k->section, config_keys[j].section)
			    != 0 || strcmp(k->name, config_keys[j].name) != 0,
			    "%s.%s twice", k->section, k->name);
		t = config_key_target(k);
		ck_assert_ptr_nonnull(t);
		if (k->deprecated != NULL) {
			ck_assert_ptr_ne(t, k);
			ck_assert_uint_eq(t->off, k->off);
			ck_assert_int_eq(t->type, k->type);
			ck_assert_ptr_null(t->deprecated);
		}
		ck_assert_int_eq(k->type == CK_TABLES, k->tables != NULL);
	}
	ck_assert_ptr_eq(config_key_find("openbao", "address"),
	    config_key_find("vault", "address"));
}
END_TEST

/* ---- value types --------------------------------------------------------- */

struct strcase {
	const char	*toml;
	const char	*want;
};

START_TEST(test_strings)
{
	static const struct strcase cases[] = {
		{ "\"plain\"", "plain" },
		{ "\"a\\tb\"", "a\tb" },
		{ "\"\\b\\t\\n\\f\\r\\\"\\\\\"", "\b\t\n\f\r\"\\" },
		{ "\"\\u00e9\\U0001F600\"", "\xc3\xa9\xf0\x9f\x98\x80" },
		{ "\"caf\xc3\xa9\"", "caf\xc3\xa9" },
		{ "'C:\\path\\n'", "C:\\path\\n" },
		{ "\"a # b\"", "a # b" },
		{ "\"a ; b\"", "a ; b" },
		{ "\"a;b\"", "a;b" },
		{ "'it''s'", NULL },
		{ "\"\"\"\nab\ncd\"\"\"", "ab\ncd" },
		{ "\"\"\"one \\\n      two\"\"\"", "one two" },
		{ "\"\"\"a\"\"\"\"\"", "a\"\"" },
		{ "'''\nraw \\n\nline'''", "raw \\n\nline" },
		{ "\"tab\there\"", "tab\there" },
		{ "\"x\" # comment", "x" },
	};
	struct config	*c;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nuser = %s\n",
		    cases[i].toml);
		c = load(text);
		if (cases[i].want == NULL) {
			ck_assert_msg(c == NULL, "%s accepted", cases[i].toml);
			continue;
		}
		ck_assert_msg(c != NULL, "%s: %s", cases[i].toml, errbuf);
		ck_assert_str_eq(c->server.user, cases[i].want);
		config_free(c);
	}
}
END_TEST

START_TEST(test_strings_invalid)
{
	LOAD_ERR("[server]\nuser = \"a\xff\"\n", noenv,
	    "test.toml:2: [server] user: invalid UTF-8");
	LOAD_ERR("[server]\nuser = \"a\xc0\xaf\"\n", noenv, "invalid UTF-8");
	LOAD_ERR("[server]\nuser = \"a\x01\"\n", noenv,
	    "control character 0x01");
	LOAD_ERR("[server]\nuser = 'a\x7f'\n", noenv, "control character 0x7f");
	LOAD_ERR("[server]\nuser = \"\\x41\"\n", noenv, "invalid escape \\x");
	LOAD_ERR("[server]\nuser = \"\\u12\"\n", noenv,
	    "escape \\u needs 4 hex digits");
	LOAD_ERR("[server]\nuser = \"\\U00110000\"\n", noenv,
	    "escape \\U00110000 is not a Unicode scalar value");
	LOAD_ERR("[server]\nuser = \"\"\"a\"\"\"\"\"\"\n", noenv,
	    "too many quotes");
	LOAD_ERR("[server]\nuser = 'abc\n", noenv, "unterminated string");
}
END_TEST

struct intcase {
	const char	*toml;
	int		 want;		/* -1: rejected */
};

START_TEST(test_integers)
{
	static const struct intcase cases[] = {
		{ "7", 7 }, { "+7", 7 }, { "1_000", 1000 }, { "0x10", 16 },
		{ "0xdead_BEEF", -1 }, { "0o17", 15 }, { "0b101", 5 },
		{ "0x7fff_ffff", INT_MAX },
		{ "1__0", -1 }, { "_1", -1 }, { "1_", -1 }, { "0x", -1 },
		{ "-0x1", -1 }, { "0b2", -1 }, { "012", -1 }, { "1e3", -1 },
		{ "\"5\"", -1 }, { "true", -1 }, { "9223372036854775808", -1 },
		{ "-9223372036854775809", -1 },
	};
	struct config	*c;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[proxy]\nmax_workers = %s\n",
		    cases[i].toml);
		c = load(text);
		if (cases[i].want == -1) {
			ck_assert_msg(c == NULL, "%s accepted", cases[i].toml);
			ck_assert_msg(strncmp(errbuf, "test.toml:2: [proxy] "
			    "max_workers: ", 34) == 0, "%s", errbuf);
			continue;
		}
		ck_assert_msg(c != NULL, "%s: %s", cases[i].toml, errbuf);
		ck_assert_int_eq(c->proxy.max_workers, cases[i].want);
		config_free(c);
	}
}
END_TEST

struct floatcase {
	const char	*toml;
	double		 want;		/* 0: rejected */
};

START_TEST(test_floats)
{
	static const struct floatcase cases[] = {
		{ "1.5", 1.5 }, { "2", 2.0 }, { "1e2", 100.0 },
		{ "6.25E-1", 0.625 }, { "1_0.5", 10.5 }, { "+3.0", 3.0 },
		{ ".5", 0 }, { "5.", 0 }, { "1e", 0 }, { "inf", 0 },
		{ "-1.0", 0 }, { "0.0", 0 }, { "01.5", 0 }, { "1.5.2", 0 },
		{ "\"1.5\"", 0 }, { "1e400", 0 },
	};
	struct config	*c;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[proxy]\nmax_cpu_limit = %s\n",
		    cases[i].toml);
		c = load(text);
		if (cases[i].want == 0) {
			ck_assert_msg(c == NULL, "%s accepted", cases[i].toml);
			continue;
		}
		ck_assert_msg(c != NULL, "%s: %s", cases[i].toml, errbuf);
		ck_assert_double_eq(c->proxy.max_cpu_limit, cases[i].want);
		config_free(c);
	}
}
END_TEST

START_TEST(test_booleans)
{
	struct config	*c;

	LOAD_OK(c, "[server]\nskip_preflight = true\n[process]\n"
	    "skip_metadata_check = false\n", noenv);
	ck_assert_int_eq(c->server.skip_preflight, 1);
	ck_assert_int_eq(c->process.skip_metadata_check, 0);
	config_free(c);
	LOAD_ERR("[server]\nskip_preflight = True\n", noenv,
	    "test.toml:2: [server] skip_preflight: invalid value True");
	LOAD_ERR("[server]\nskip_preflight = 1\n", noenv,
	    "expected true or false, got integer 1");
}
END_TEST

struct durcase {
	const char	*s;
	int64_t		 ms;		/* -1: rejected */
};

START_TEST(test_parse_duration)
{
	static const struct durcase cases[] = {
		{ "30s", 30000 }, { "5m", 300000 }, { "720h", 2592000000LL },
		{ "1h30m", 5400000 }, { "500ms", 500 }, { "0", 0 },
		{ "0s", 0 }, { "1.5h", 5400000 }, { "1m30.5s", 90500 },
		{ "+5s", 5000 }, { "1000us", 1 }, { "1000\xc2\xb5s", 1 },
		{ "1000\xce\xbcs", 1 }, { "1000000ns", 1 },
		{ "2h45m30s", 9930000 }, { ".5s", 500 }, { "1.s", 1000 },
		{ "2562047h", 9223369200000LL },
		{ "", -1 }, { "-5s", -1 }, { "5", -1 }, { "5x", -1 },
		{ "s", -1 }, { "1h-5m", -1 }, { "10us", -1 }, { "1.5", -1 },
		{ " 5s", -1 }, { "5s ", -1 }, { "5 s", -1 }, { "2562048h", -1 },
		{ "99999999999999999999s", -1 }, { ".s", -1 }, { "5M", -1 },
		{ "1d", -1 },
	};
	int64_t		 ms;
	size_t		 i;
	int		 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = -7;
		r = config_parse_duration(cases[i].s, &ms);
		if (cases[i].ms == -1) {
			ck_assert_msg(r == -1, "\"%s\" accepted", cases[i].s);
			ck_assert_int_eq(ms, -7);
		} else {
			ck_assert_msg(r == 0, "\"%s\" rejected", cases[i].s);
			ck_assert_int_eq(ms, cases[i].ms);
		}
	}
	ck_assert_int_eq(config_parse_duration(NULL, &ms), -1);
}
END_TEST

START_TEST(test_format_duration)
{
	static const struct {
		int64_t		 ms;
		const char	*want;
	} cases[] = {
		{ 0, "0s" }, { 1, "1ms" }, { 500, "500ms" }, { 1000, "1s" },
		{ 1001, "1.001s" }, { 30000, "30s" }, { 90500, "1m30.5s" },
		{ 3600000, "1h0m0s" }, { 5400000, "1h30m0s" },
		{ 86400000, "24h0m0s" }, { -1500, "-1.5s" },
	};
	static const int64_t	 rt[] = { 1, 999, 1000, 59999, 60000, 61001,
	    3599999, 3600000, 86399999, 2592000000LL, 9223369200000LL };
	char			 buf[64];
	int64_t			 ms;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_format_duration(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].want);
	}
	/* What we print, we parse back to the same value. */
	for (i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		config_format_duration(rt[i], buf, sizeof(buf));
		ck_assert_int_eq(config_parse_duration(buf, &ms), 0);
		ck_assert_int_eq(ms, rt[i]);
	}
	config_format_duration(3600000, buf, 3);
	ck_assert_str_eq(buf, "1h");
}
END_TEST

struct sizecase {
	const char	*s;
	uint64_t	 bytes;
	int		 ok;
};

START_TEST(test_parse_size)
{
	static const struct sizecase cases[] = {
		{ "2g", 2ULL << 30, 1 }, { "512m", 512ULL << 20, 1 },
		{ "100k", 102400, 1 }, { "2G", 2ULL << 30, 1 },
		{ "2GB", 2ULL << 30, 1 }, { "2GiB", 2ULL << 30, 1 },
		{ "2gib", 2ULL << 30, 1 }, { "1024", 1024, 1 }, { "0", 0, 1 },
		{ "5b", 5, 1 }, { "1 kb", 1024, 1 }, { "3t", 3ULL << 40, 1 },
		{ "9223372036854775807", 9223372036854775807ULL, 1 },
		{ "8589934591g", 8589934591ULL << 30, 1 },
		{ "", 0, 0 }, { "-1", 0, 0 }, { "1.5g", 0, 0 }, { "2pb", 0, 0 },
		{ "g", 0, 0 }, { "18446744073709551616", 0, 0 },
		{ "9223372036854775808", 0, 0 }, { "8589934592g", 0, 0 },
		{ " 1g", 0, 0 }, { "1g ", 0, 0 }, { "1  g", 0, 0 },
		{ "1gig", 0, 0 },
	};
	uint64_t	 b;
	size_t		 i;
	int		 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = 7;
		r = config_parse_size(cases[i].s, &b);
		if (!cases[i].ok) {
			ck_assert_msg(r == -1, "\"%s\" accepted", cases[i].s);
			ck_assert_uint_eq(b, 7);
		} else {
			ck_assert_msg(r == 0, "\"%s\" rejected", cases[i].s);
			ck_assert_uint_eq(b, cases[i].bytes);
		}
	}
	ck_assert_int_eq(config_parse_size(NULL, &b), -1);
}
END_TEST

START_TEST(test_typed_keys)
{
	struct config	*c;

	LOAD_OK(c, "[server]\ndefault_memory_limit = 1073741824\n"
	    "shutdown_timeout = 0\ndrain_timeout = \"0\"\n"
	    "[storage]\nmax_bundle_size = \"200m\"\n"
	    "soft_delete_retention = \"720h\"\n", noenv);
	ck_assert_uint_eq(c->server.default_memory_limit, 1ULL << 30);
	ck_assert_int_eq(c->server.shutdown_timeout, 0);
	ck_assert_int_eq(c->server.drain_timeout, 0);
	ck_assert_uint_eq(c->storage.max_bundle_size, 200ULL << 20);
	ck_assert_int_eq(c->storage.soft_delete_retention, 2592000000LL);
	config_free(c);

	/* "" means unset for sizes and for strings without a default. */
	LOAD_OK(c, "[server]\ndefault_memory_limit = \"\"\n"
	    "management_bind = \"\"\n[process]\nseccomp_profile = \"\"\n",
	    noenv);
	ck_assert_uint_eq(c->server.default_memory_limit, 0);
	ck_assert_ptr_null(c->server.management_bind);
	ck_assert_ptr_null(c->process.seccomp_profile);
	config_free(c);

	LOAD_ERR("[server]\nbind = \"\"\n", noenv,
	    "test.toml:2: [server] bind: must not be empty");
	LOAD_ERR("[server]\ntrusted_proxies = [[\"a\"]]\n", noenv,
	    "element 1: expected a string, got an array");
	LOAD_ERR("[server]\nworker_env = [\"A=b\"]\n", noenv,
	    "expected a table of strings like { KEY = \"value\" }, got an "
	    "array");
	LOAD_ERR("[server]\nworker_env = { A = { B = \"c\" } }\n", noenv,
	    "A: expected a string, got an inline table");
	LOAD_ERR("[server]\nbind = [\"127.0.0.1:80\"]\n", noenv,
	    "expected a string, got an array");
	LOAD_ERR("[server]\ncontrol_socket = 5\n", noenv,
	    "expected a path string, got integer 5");
}
END_TEST

START_TEST(test_maps)
{
	struct config	*c;

	LOAD_OK(c, "[server]\nworker_env = { B = \"2\", A = \"1\", "
	    "\"C\" = 'x:y' }\n", noenv);
	ck_assert_uint_eq(c->server.worker_env.n, 3);
	/* Kept in file order, which is the order workers see. */
	ck_assert_str_eq(c->server.worker_env.k[0], "B");
	ck_assert_str_eq(c->server.worker_env.k[1], "A");
	ck_assert_str_eq(c->server.worker_env.v[2], "x:y");
	config_free(c);

	LOAD_OK(c, "[server]\nbind = \"127.0.0.1:8080\"\n\n"
	    "[server.worker_env]\nOTEL_EXPORTER_OTLP_ENDPOINT = "
	    "\"http://otel:4317\"\nOTEL_EXPORTER_OTLP_PROTOCOL = \"grpc\"\n"
	    "[proxy]\nmax_workers = 3\n", noenv);
	ck_assert_uint_eq(c->server.worker_env.n, 2);
	ck_assert_str_eq(c->server.worker_env.v[1], "grpc");
	ck_assert_int_eq(c->proxy.max_workers, 3);
	config_free(c);

	LOAD_OK(c, "[server]\nworker_env = {\n  A = \"1\",  # one\n"
	    "  B = \"2\",\n}\n", noenv);
	ck_assert_uint_eq(c->server.worker_env.n, 2);
	config_free(c);
}
END_TEST

/* ---- the corpus ---------------------------------------------------------- */

static int
is_dir(const char *p)
{
	struct stat	 sb;

	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/*
 * regress/unit/<rel>: from $CONFIG_TEST_DIR, from where this file was
 * compiled, from the repository root, or from the binary's place
 * (build/regress/test_config).
 */
static int
find_path(const char *rel, char *buf, size_t len, int dir)
{
	char		 src[PATH_MAX], exe[PATH_MAX], exedir[PATH_MAX + 32];
	struct stat	 sb;
	const char	*cands[4];
	ssize_t		 n;
	size_t		 i;

	strlcpy(src, __FILE__, sizeof(src));
	cands[0] = getenv("CONFIG_TEST_DIR");
	cands[1] = dirname(src);
	cands[2] = "regress/unit";
	cands[3] = NULL;
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		snprintf(exedir, sizeof(exedir), "%s/../../regress/unit",
		    dirname(exe));
		cands[3] = exedir;
	}
	for (i = 0; i < 4; i++) {
		if (cands[i] == NULL)
			continue;
		snprintf(buf, len, "%s/%s", cands[i], rel);
		if (dir ? is_dir(buf) : stat(buf, &sb) == 0)
			return 0;
	}
	return -1;
}

static size_t
corpus_files(const char *sub, char names[][PATH_MAX], size_t max)
{
	char		 dir[1024];
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0, len;

	ck_assert_msg(find_path(sub, dir, sizeof(dir), 1) == 0,
	    "corpus %s not found (run from the repository root)", sub);
	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL && n < max) {
		len = strlen(de->d_name);
		if (len > 5 && strcmp(de->d_name + len - 5, ".toml") == 0)
			snprintf(names[n++], PATH_MAX, "%s/%s", dir,
			    de->d_name);
	}
	closedir(d);
	return n;
}

static void
first_line(const char *path, char *buf, size_t len)
{
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	if (fgets(buf, len, f) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static char	 corpus[256][PATH_MAX];

START_TEST(test_corpus_valid)
{
	struct config	*c;
	char		 line[512];
	size_t		 i, n;
	unsigned	 nwarn;

	n = corpus_files("config-corpus/valid", corpus, 256);
	ck_assert_uint_ge(n, 5);
	for (i = 0; i < n; i++) {
		c = config_load(corpus[i], fake_getenv, (void *)noenv, errbuf,
		    sizeof(errbuf));
		ck_assert_msg(c != NULL, "%s: %s", corpus[i], errbuf);
		ck_assert_str_eq(c->path, corpus[i]);
		first_line(corpus[i], line, sizeof(line));
		if (sscanf(line, "# warnings: %u", &nwarn) != 1)
			nwarn = 0;
		ck_assert_msg(config_nwarnings(c) == nwarn, "%s: %zu warnings",
		    corpus[i], config_nwarnings(c));
		config_free(c);
	}
}
END_TEST

/*
 * Each invalid file starts with "# expect: LINE: text": the error must
 * name the file and that line, and contain the text.
 */
START_TEST(test_corpus_invalid)
{
	struct config	*c;
	char		 line[512], prefix[PATH_MAX + 32];
	const char	*want;
	size_t		 i, n;
	long		 lineno;

	n = corpus_files("config-corpus/invalid", corpus, 256);
	ck_assert_uint_ge(n, 90);
	for (i = 0; i < n; i++) {
		first_line(corpus[i], line, sizeof(line));
		ck_assert_msg(strncmp(line, "# expect: ", 10) == 0,
		    "%s: no expectation", corpus[i]);
		lineno = strtol(line + 10, (char **)&want, 10);
		ck_assert_msg(lineno > 0 && strncmp(want, ": ", 2) == 0,
		    "%s: bad expectation", corpus[i]);
		want += 2;
		c = config_load(corpus[i], fake_getenv, (void *)noenv, errbuf,
		    sizeof(errbuf));
		ck_assert_msg(c == NULL, "%s loaded", corpus[i]);
		snprintf(prefix, sizeof(prefix), "%s:%ld: ", corpus[i], lineno);
		ck_assert_msg(strncmp(errbuf, prefix, strlen(prefix)) == 0,
		    "%s: wrong line in \"%s\"", corpus[i], errbuf);
		ck_assert_msg(strstr(errbuf, want) != NULL,
		    "%s: \"%s\" lacks \"%s\"", corpus[i], errbuf, want);
	}
}
END_TEST

START_TEST(test_example_file)
{
	struct config	*c;
	char		 path[PATH_MAX];

	ck_assert_msg(find_path("../../etc/blockyard.toml", path, sizeof(path),
	    0) == 0, "etc/blockyard.toml not found");
	c = config_load(path, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	ck_assert_msg(c != NULL, "%s", errbuf);
	ck_assert_uint_eq(config_nwarnings(c), 0);
	config_free(c);
}
END_TEST

/* ---- inih's habits ------------------------------------------------------- */

START_TEST(test_inih_pitfalls)
{
	struct config	*c;
	char		*text, *big;
	size_t		 n;

	/* Semicolons in strings are data, not inline comments. */
	LOAD_OK(c, "[server]\nexternal_url = \"https://x/a ; b\"\n"
	    "user = \"a;b\"\n", noenv);
	ck_assert_str_eq(c->server.external_url, "https://x/a ; b");
	ck_assert_str_eq(c->server.user, "a;b");
	config_free(c);

	/* An indented key is a key, not a continuation of the one before. */
	LOAD_OK(c, "[server]\nlog_level = \"debug\"\n    bind = "
	    "\"0.0.0.0:9000\"\n\t user = \"by\"\n  [proxy]\n"
	    "  max_workers = 2\n", noenv);
	ck_assert_str_eq(c->server.log_level, "debug");
	ck_assert_str_eq(c->server.bind, "0.0.0.0:9000");
	ck_assert_str_eq(c->server.user, "by");
	ck_assert_int_eq(c->proxy.max_workers, 2);
	config_free(c);

	/* Values much longer than inih's 200-byte lines. */
	for (n = 500; n <= 20000; n *= 40) {
		ck_assert_ptr_nonnull(big = malloc(n + 1));
		memset(big, 'x', n);
		big[n] = '\0';
		ck_assert_int_ne(asprintf(&text, "[server]\nworker_env = { "
		    "LONG = \"%s\" }\nuser = \"after\"\n", big), -1);
		LOAD_OK(c, text, noenv);
		ck_assert_uint_eq(strlen(c->server.worker_env.v[0]), n);
		ck_assert_str_eq(c->server.user, "after");
		config_free(c);
		free(text);
		free(big);
	}

	/* Multi-line arrays with comments, brackets in strings and comments. */
	LOAD_OK(c, "[server]\ntrusted_proxies = [ # ] not the end\n"
	    "  \"10.0.0.0/8\", # [ nor a start\n\n  # \"1.2.3.4/32\",\n"
	    "  \"fd00::/8\"\n  ]\nexternal_url = \"https://x/[\"\n"
	    "user = \"u#[\"\n", noenv);
	ck_assert_uint_eq(c->server.trusted_proxies.n, 2);
	ck_assert_str_eq(c->server.trusted_proxies.v[1], "fd00::/8");
	ck_assert_str_eq(c->server.external_url, "https://x/[");
	ck_assert_str_eq(c->server.user, "u#[");
	config_free(c);

	/* Spaces in headers, CRLF, a byte order mark. */
	LOAD_OK(c, "\xef\xbb\xbf[ server ]\r\nuser = \"crlf\"\r\n", noenv);
	ck_assert_str_eq(c->server.user, "crlf");
	config_free(c);
}
END_TEST

START_TEST(test_long_line)
{
	char	*text;
	size_t	 n = 70000;

	ck_assert_ptr_nonnull(text = malloc(n + 64));
	strcpy(text, "[server]\n# short\nuser = \"");
	memset(text + strlen(text), 'y', n);
	strcpy(text + strlen("[server]\n# short\nuser = \"") + n, "\"\n");
	LOAD_ERR(text, noenv, "test.toml:3: line is longer than 65536 bytes");
	free(text);
}
END_TEST

START_TEST(test_error_lines)
{
	/* Inside a multi-line value the error names the line it is on. */
	LOAD_ERR("[server]\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n"
	    "  10.0.0.0/8,\n]\n", noenv, "test.toml:4: [server] "
	    "trusted_proxies: invalid value 10.0.0.0 (strings must be "
	    "quoted)");
	LOAD_ERR("[server]\nuser = \"\"\"a\nb\nc\\q\"\"\"\n", noenv,
	    "test.toml:4: [server] user: invalid escape \\q");
	LOAD_ERR("[server]\r\n\r\n\r\nuser = 5\r\n", noenv,
	    "test.toml:4: [server] user: expected a string, got integer 5");
	/* After a multi-line value the count goes on right. */
	LOAD_ERR("[server]\nworker_env = {\n A = \"1\",\n B = \"2\"\n}\n"
	    "bogus = 1\n", noenv, "test.toml:6: [server] bogus: unknown key");
}
END_TEST

/* ---- environment --------------------------------------------------------- */

START_TEST(test_env_overrides)
{
	static const char *const env[] = {
		"BLOCKYARD_SERVER_BIND=0.0.0.0:9000",
		"BLOCKYARD_PROXY_MAX_WORKERS=7",
		"BLOCKYARD_SERVER_TRUSTED_PROXIES= 10.0.0.0/8, 172.16.0.0/12,,",
		"BLOCKYARD_SERVER_WORKER_ENV=A:1;OTEL_EXPORTER_OTLP_ENDPOINT:"
		    "http://otel:4317",
		"BLOCKYARD_SERVER_SKIP_PREFLIGHT=TRUE",
		"BLOCKYARD_SERVER_SHUTDOWN_TIMEOUT=1m",
		"BLOCKYARD_SERVER_DEFAULT_MEMORY_LIMIT=512m",
		"BLOCKYARD_PROXY_MAX_CPU_LIMIT=2.5",
		"BLOCKYARD_PROCESS_SECCOMP_PROFILE=/etc/blockyard/seccomp.bpf",
		"BLOCKYARD_SERVER_LOG_LEVEL=",
		NULL
	};
	struct config	*c;

	LOAD_OK(c, "[server]\nbind = \"127.0.0.1:8080\"\n"
	    "trusted_proxies = [\"192.168.0.0/16\"]\nlog_level = \"warn\"\n"
	    "worker_env = { FROM_FILE = \"x\" }\n", env);
	ck_assert_str_eq(c->server.bind, "0.0.0.0:9000");
	ck_assert_int_eq(c->proxy.max_workers, 7);
	ck_assert_uint_eq(c->server.trusted_proxies.n, 2);
	ck_assert_str_eq(c->server.trusted_proxies.v[0], "10.0.0.0/8");
	ck_assert_str_eq(c->server.trusted_proxies.v[1], "172.16.0.0/12");
	ck_assert_uint_eq(c->server.worker_env.n, 2);
	ck_assert_str_eq(c->server.worker_env.k[1],
	    "OTEL_EXPORTER_OTLP_ENDPOINT");
	ck_assert_str_eq(c->server.worker_env.v[1], "http://otel:4317");
	ck_assert_int_eq(c->server.skip_preflight, 1);
	ck_assert_int_eq(c->server.shutdown_timeout, 60000);
	ck_assert_uint_eq(c->server.default_memory_limit, 512ULL << 20);
	ck_assert_double_eq(c->proxy.max_cpu_limit, 2.5);
	ck_assert_str_eq(c->process.seccomp_profile,
	    "/etc/blockyard/seccomp.bpf");
	/* An empty variable is ignored. */
	ck_assert_str_eq(c->server.log_level, "warn");
	config_free(c);
}
END_TEST

START_TEST(test_env_errors)
{
	static const char *const e1[] = { "BLOCKYARD_PROXY_MAX_WORKERS=abc",
	    NULL };
	static const char *const e2[] = { "BLOCKYARD_SERVER_BIND=nope", NULL };
	static const char *const e3[] = {
	    "BLOCKYARD_SERVER_SHUTDOWN_TIMEOUT=30", NULL };
	static const char *const e4[] = {
	    "BLOCKYARD_SERVER_SKIP_PREFLIGHT=maybe", NULL };
	static const char *const e5[] = {
	    "BLOCKYARD_SERVER_WORKER_ENV=A:1;novalue", NULL };
	static const char *const e6[] = {
	    "BLOCKYARD_SERVER_WORKER_ENV=PATH:/bin", NULL };
	static const char *const e7[] = {
	    "BLOCKYARD_PROCESS_PORT_RANGE_END=9000", NULL };
	static const char *const e8[] = {
	    "BLOCKYARD_PROXY_MAX_WORKERS=99999999999", NULL };
	static const char *const e9[] = {
	    "BLOCKYARD_SERVER_CONTROL_SOCKET=byd.sock", NULL };
	static const char *const e10[] = {
	    "BLOCKYARD_SERVER_DEFAULT_CPU_LIMIT=-1", NULL };
	static const char *const e11[] = {
	    "BLOCKYARD_SERVER_BACKEND=docker", NULL };
	static const char *const e12[] = {
	    "BLOCKYARD_SERVER_WORKER_ENV=A\xff:1", NULL };

	LOAD_ERR("", e1, "environment: BLOCKYARD_PROXY_MAX_WORKERS: expected "
	    "an integer, got \"abc\"");
	LOAD_ERR("[server]\nbind = \"127.0.0.1:80\"\n", e2,
	    "environment: BLOCKYARD_SERVER_BIND: invalid address \"nope\"");
	LOAD_ERR("", e3, "environment: BLOCKYARD_SERVER_SHUTDOWN_TIMEOUT: "
	    "invalid duration \"30\"");
	LOAD_ERR("", e4, "environment: BLOCKYARD_SERVER_SKIP_PREFLIGHT: "
	    "expected true or false, got \"maybe\"");
	LOAD_ERR("", e5, "environment: BLOCKYARD_SERVER_WORKER_ENV: expected "
	    "KEY:VALUE pairs");
	LOAD_ERR("", e6, "environment: BLOCKYARD_SERVER_WORKER_ENV: PATH is "
	    "set by byd");
	LOAD_ERR("", e7, "environment: BLOCKYARD_PROCESS_PORT_RANGE_END: must "
	    "not be less than port_range_start");
	LOAD_ERR("", e8, "environment: BLOCKYARD_PROXY_MAX_WORKERS: "
	    "99999999999 is out of range");
	LOAD_ERR("", e9, "environment: BLOCKYARD_SERVER_CONTROL_SOCKET: must "
	    "be an absolute path");
	LOAD_ERR("", e10, "environment: BLOCKYARD_SERVER_DEFAULT_CPU_LIMIT: "
	    "must not be negative");
	LOAD_ERR("", e11, "environment: BLOCKYARD_SERVER_BACKEND: byd supports "
	    "only the process backend");
	LOAD_ERR("", e12, "environment: BLOCKYARD_SERVER_WORKER_ENV: invalid "
	    "UTF-8");
}
END_TEST

START_TEST(test_env_sections)
{
	static const char *const docker[] = {
	    "BLOCKYARD_DOCKER_IMAGE=ghcr.io/cynkra/blockyard-worker:4.4.3",
	    NULL };
	static const char *const oidc[] = {
	    "BLOCKYARD_OIDC_CLIENT_ID=blockyard", NULL };
	static const char *const board[] = {
	    "BLOCKYARD_BOARD_STORAGE_POSTGREST_URL=http://postgrest:3000",
	    NULL };
	static const char *const audit[] = {
	    "BLOCKYARD_AUDIT_PATH=/data/audit/blockyard.jsonl", NULL };
	static const char *const telemetry[] = {
	    "BLOCKYARD_TELEMETRY_METRICS_ENABLED=true", NULL };
	static const char *const openbao[] = {
	    "BLOCKYARD_OPENBAO_ADDRESS=http://openbao:8200", NULL };
	static const char *const postgres[] = {
	    "BLOCKYARD_DATABASE_DRIVER=postgres", NULL };
	struct config	*c;

	LOAD_OK(c, "", docker);
	ck_assert_int_eq(c->docker.present, 1);
	ck_assert_str_eq(c->docker.image,
	    "ghcr.io/cynkra/blockyard-worker:4.4.3");
	ck_assert_uint_eq(config_nwarnings(c), 1);
	ck_assert_str_eq(config_warning(c, 0), "environment: "
	    "BLOCKYARD_DOCKER_IMAGE: [docker] is ignored: byd runs workers "
	    "with bubblewrap ([process])");
	ck_assert_ptr_null(config_warning(c, 1));
	config_free(c);

	LOAD_ERR("", oidc, "environment: BLOCKYARD_OIDC_CLIENT_ID: OIDC is "
	    "not built yet in this version of byd");
	LOAD_ERR("", board, "environment: BLOCKYARD_BOARD_STORAGE_POSTGREST_URL"
	    ": board storage is not built yet");
	LOAD_ERR("", openbao, "environment: BLOCKYARD_OPENBAO_ADDRESS: vault "
	    "integration is not built yet");
	LOAD_ERR("", postgres, "[database] url: required when driver = "
	    "\"postgres\"");

	/* Once built, a variable makes its section present. */
	config_unbuilt_ok = 1;
	LOAD_OK(c, "", audit);
	ck_assert_int_eq(c->audit.present, 1);
	ck_assert_str_eq(c->audit.path, "/data/audit/blockyard.jsonl");
	ck_assert_int_eq(c->telemetry.present, 0);
	config_free(c);
	LOAD_OK(c, "", telemetry);
	ck_assert_int_eq(c->telemetry.present, 1);
	ck_assert_int_eq(c->telemetry.metrics_enabled, 1);
	config_free(c);
	LOAD_ERR("", board, "environment: BLOCKYARD_BOARD_STORAGE_POSTGREST_URL"
	    ": requires [vault] and [database] driver = \"postgres\"");
}
END_TEST

START_TEST(test_env_deprecated)
{
	static const char *const old[] = {
	    "BLOCKYARD_SERVER_SKIP_DOCKER_PREFLIGHT=true",
	    "BLOCKYARD_DOCKER_DEFAULT_MEMORY_LIMIT=1g", NULL };
	static const char *const both[] = {
	    "BLOCKYARD_SERVER_SKIP_DOCKER_PREFLIGHT=true",
	    "BLOCKYARD_SERVER_SKIP_PREFLIGHT=false", NULL };
	static const char *const bad[] = {
	    "BLOCKYARD_SERVER_SKIP_DOCKER_PREFLIGHT=sure", NULL };
	struct config	*c;

	LOAD_OK(c, "[server]\nskip_preflight = false\n", old);
	ck_assert_int_eq(c->server.skip_preflight, 1);
	ck_assert_uint_eq(c->server.default_memory_limit, 1ULL << 30);
	ck_assert_ptr_nonnull(strstr(config_warning(c, 0),
	    "BLOCKYARD_SERVER_SKIP_DOCKER_PREFLIGHT: deprecated, use "
	    "BLOCKYARD_SERVER_SKIP_PREFLIGHT"));
	config_free(c);

	/* The new name wins, in the file as in the environment. */
	LOAD_OK(c, "", both);
	ck_assert_int_eq(c->server.skip_preflight, 0);
	config_free(c);
	LOAD_OK(c, "[server]\nskip_preflight = false\n"
	    "skip_docker_preflight = true\n", noenv);
	ck_assert_int_eq(c->server.skip_preflight, 0);
	config_free(c);
	LOAD_OK(c, "[server]\nskip_docker_preflight = true\n"
	    "skip_preflight = false\n", noenv);
	ck_assert_int_eq(c->server.skip_preflight, 0);
	config_free(c);
	LOAD_ERR("", bad, "environment: BLOCKYARD_SERVER_SKIP_DOCKER_PREFLIGHT:"
	    " expected true or false");
}
END_TEST

START_TEST(test_env_data_mounts)
{
	static const char *const env[] = {
	    "BLOCKYARD_STORAGE_DATA_MOUNTS=data:/srv/data; models:/srv/models",
	    NULL };
	static const char *const bad[] = {
	    "BLOCKYARD_STORAGE_DATA_MOUNTS=data:/srv/data;bad name:/x", NULL };
	static const char *const rel[] = {
	    "BLOCKYARD_STORAGE_DATA_MOUNTS=data:srv/data", NULL };
	struct config	*c;

	LOAD_ERR("", env, "environment: BLOCKYARD_STORAGE_DATA_MOUNTS: "
	    "support for data mounts is not built yet");
	config_unbuilt_ok = 1;
	LOAD_OK(c, "[[storage.data_mounts]]\nname = \"file\"\npath = \"/f\"\n",
	    env);
	ck_assert_uint_eq(c->storage.n_data_mounts, 2);
	ck_assert_str_eq(c->storage.data_mounts[0].name, "data");
	ck_assert_str_eq(c->storage.data_mounts[1].name, "models");
	ck_assert_str_eq(c->storage.data_mounts[1].path, "/srv/models");
	config_free(c);
	LOAD_ERR("", bad, "environment: BLOCKYARD_STORAGE_DATA_MOUNTS: entry "
	    "2: name: \"bad name\" may only have letters");
	LOAD_ERR("", rel, "environment: BLOCKYARD_STORAGE_DATA_MOUNTS: entry "
	    "1: path: must be an absolute path");
}
END_TEST

/* Remove every BLOCKYARD_* variable the test runner may have. */
static void
clear_blockyard_env(void)
{
	extern char	**environ;
	char		  name[256];
	size_t		  n;

	for (;;) {
		char	**e;

		for (e = environ; *e != NULL; e++)
			if (strncmp(*e, "BLOCKYARD_", 10) == 0)
				break;
		if (*e == NULL)
			return;
		n = strcspn(*e, "=");
		snprintf(name, sizeof(name), "%.*s", (int)n, *e);
		unsetenv(name);
	}
}

START_TEST(test_env_real)
{
	struct config	*c;

	clear_blockyard_env();
	setenv("BLOCKYARD_SERVER_BIND", "127.0.0.1:7000", 1);
	setenv("BLOCKYARD_SERVER_BND", "typo", 1);
	setenv("BLOCKYARD_DATABASE_PATH", "/var/lib/by/by.db", 1);
	c = config_load_string("", "t", NULL, NULL, errbuf, sizeof(errbuf));
	ck_assert_msg(c != NULL, "%s", errbuf);
	ck_assert_str_eq(c->server.bind, "127.0.0.1:7000");
	ck_assert_str_eq(c->database.path, "/var/lib/by/by.db");
	ck_assert_uint_eq(config_nwarnings(c), 1);
	ck_assert_str_eq(config_warning(c, 0), "environment: "
	    "BLOCKYARD_SERVER_BND: unknown variable, ignored");
	config_free(c);

	/* The longest section name wins: board_storage, not a "board". */
	setenv("BLOCKYARD_BOARD_STORAGE_SOMETHING", "1", 1);
	c = config_load_string("", "t", NULL, NULL, errbuf, sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(errbuf, "environment: "
	    "BLOCKYARD_BOARD_STORAGE_SOMETHING: board storage is not built "
	    "yet in this version of byd");
	unsetenv("BLOCKYARD_BOARD_STORAGE_SOMETHING");

	setenv("BLOCKYARD_VAULT_SECRET_ID", "s", 1);
	c = config_load_string("", "t", NULL, NULL, errbuf, sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(errbuf, "BLOCKYARD_VAULT_SECRET_ID: vault "
	    "integration is not built yet"));
	clear_blockyard_env();
}
END_TEST

/* ---- features not built yet ---------------------------------------------- */

struct nbcase {
	const char	*text;
	const char	*want;
};

START_TEST(test_not_built)
{
	static const struct nbcase cases[] = {
		{ "[oidc]\nissuer_url = \"https://idp\"\n",
		    "test.toml:2: [oidc] issuer_url: OIDC is not built yet in "
		    "this version of byd" },
		{ "[oidc]\n", "test.toml: [oidc] initial_admin: required: "
		    "OIDC is not built yet" },
		{ "[oidc]\ninitial_admin = \"a\"\nclient_id = \"x\"\n",
		    "test.toml:3: [oidc] client_id: OIDC is not built yet" },
		{ "[oidc]\ninitial_admin = \"a\"\ndefault_role = \"viewer\"\n",
		    "test.toml:3: [oidc] default_role: OIDC is not built" },
		{ "[vault]\naddress = \"http://v:8200\"\n",
		    "test.toml:2: [vault] address: vault integration" },
		{ "[[vault.services]]\nid = \"a\"\nlabel = \"A\"\n",
		    "test.toml:1: [vault] services: vault integration" },
		{ "[openbao]\n", "test.toml:1: [openbao]: vault integration" },
		{ "[redis]\nkey_prefix = \"x:\"\n",
		    "test.toml:2: [redis] key_prefix: Redis is not built" },
		{ "[update]\n\nschedule = \"0 3 * * 0\"\n",
		    "test.toml:3: [update] schedule: support for rolling "
		    "updates" },
		{ "[board_storage]\n", "test.toml:1: [board_storage]: board "
		    "storage" },
		{ "[telemetry]\notlp_endpoint = \"http://o:4317\"\n",
		    "test.toml:2: [telemetry] otlp_endpoint: telemetry" },
		{ "[server]\nsession_secret = \"x\"\n",
		    "test.toml:2: [server] session_secret: OIDC is not built" },
		{ "[[storage.data_mounts]]\n", "test.toml:1: [storage] "
		    "data_mounts: support for data mounts" },
		{ "[database]\nvault_role = \"r\"\n",
		    "test.toml:2: [database] vault_role: vault integration" },
		{ "[database]\nvault_mount = \"m\"\n",
		    "test.toml:2: [database] vault_mount: vault integration" },
	};
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		LOAD_ERR(cases[i].text, noenv, cases[i].want);
}
END_TEST

/*
 * The bootstrap token is built, with or without [oidc] initial_admin,
 * the one [oidc] key that is.
 */
START_TEST(test_bootstrap_built)
{
	static const char *const env[] = {
	    "BLOCKYARD_OIDC_INITIAL_ADMIN=carol", NULL };
	struct config	*c;

	LOAD_OK(c, "[server]\nbootstrap_token = \"t\"\n", noenv);
	ck_assert_str_eq(c->server.bootstrap_token, "t");
	ck_assert_int_eq(c->oidc.present, 0);
	ck_assert_ptr_null(c->oidc.initial_admin);
	config_free(c);
	LOAD_OK(c, "[server]\nbootstrap_token = \"t\"\n[oidc]\n"
	    "initial_admin = \"alice\"\n", noenv);
	ck_assert_int_eq(c->oidc.present, 1);
	ck_assert_str_eq(c->oidc.initial_admin, "alice");
	ck_assert_ptr_null(c->oidc.issuer_url);
	config_free(c);
	LOAD_OK(c, "", env);
	ck_assert_str_eq(c->oidc.initial_admin, "carol");
	config_free(c);
	/* an empty string is no token: the exchange answers 404 */
	LOAD_OK(c, "[server]\nbootstrap_token = \"\"\n", noenv);
	ck_assert_ptr_null(c->server.bootstrap_token);
	config_free(c);
}
END_TEST

/* PostgreSQL is built: driver and url load, from the file or the env. */
START_TEST(test_postgres_built)
{
	static const char *const env[] = {
	    "BLOCKYARD_DATABASE_DRIVER=postgres",
	    "BLOCKYARD_DATABASE_URL=host=/run/pg dbname=by", NULL };
	struct config	*c;

	LOAD_OK(c, "[database]\ndriver = \"postgres\"\n"
	    "url = \"postgres://by:pw@db/by?sslmode=require\"\n", noenv);
	ck_assert_str_eq(c->database.driver, "postgres");
	ck_assert_str_eq(c->database.url,
	    "postgres://by:pw@db/by?sslmode=require");
	config_free(c);
	LOAD_OK(c, "", env);
	ck_assert_str_eq(c->database.driver, "postgres");
	ck_assert_str_eq(c->database.url, "host=/run/pg dbname=by");
	config_free(c);
	/* a url alone does not switch drivers */
	LOAD_OK(c, "[database]\nurl = \"postgres://db/by\"\n", noenv);
	ck_assert_str_eq(c->database.driver, "sqlite");
	config_free(c);
	LOAD_ERR("[database]\ndriver = \"postgres\"\n", noenv,
	    "test.toml: [database] url: required when driver = "
	    "\"postgres\"");
	LOAD_ERR("[database]\ndriver = \"postgres\"\nurl = \"\"\n", noenv,
	    "[database] url: required when driver = \"postgres\"");
	/* the vault credentials are not built yet */
	LOAD_ERR("[database]\ndriver = \"postgres\"\nurl = \"postgres://db\"\n"
	    "vault_role = \"r\"\n", noenv,
	    "test.toml:4: [database] vault_role: vault integration");
}
END_TEST

/* Built features load; their own validation runs. */
START_TEST(test_audit_built)
{
	struct config	*c;

	LOAD_ERR("[audit]\n", noenv, "[audit] path: required");
	c = config_load_string("[audit]\npath = \"/var/log/by.jsonl\"\n",
	    "test.toml", fake_getenv, (void *)noenv, errbuf, sizeof(errbuf));
	ck_assert_msg(c != NULL, "%s", errbuf);
	ck_assert_int_eq(c->audit.present, 1);
	ck_assert_str_eq(c->audit.path, "/var/log/by.jsonl");
	config_free(c);
}
END_TEST

/* With the refusal lifted, each feature's own validation runs. */
START_TEST(test_unbuilt_validation)
{
	static const char oidc[] = "[server]\nexternal_url = \"https://by\"\n"
	    "session_secret = \"s\"\n[oidc]\nissuer_url = \"https://idp\"\n"
	    "client_id = \"by\"\nclient_secret = \"cs\"\n";
	static const struct nbcase cases[] = {
		{ "[oidc]\nclient_id = \"x\"\n",
		    "test.toml: [oidc] issuer_url: required when [oidc] is "
		    "set" },
		{ "[oidc]\nissuer_url = \"idp\"\n",
		    "test.toml:2: [oidc] issuer_url: must start with http://" },
		{ "[oidc]\nissuer_url = \"https://idp\"\nclient_id = \"x\"\n"
		    "client_secret = \"y\"\n", "test.toml: [server] "
		    "external_url: required when [oidc] is set" },
		{ "[server]\nexternal_url = \"https://by\"\n[oidc]\n"
		    "issuer_url = \"https://idp\"\nclient_id = \"x\"\n"
		    "client_secret = \"y\"\n", "[server] session_secret: "
		    "required when [oidc] is set without [vault]" },
		{ "[audit]\n", "test.toml: [audit] path: required" },
		{ "[redis]\n", "test.toml: [redis] url: required" },
		{ "[redis]\nurl = \"http://r\"\n",
		    "test.toml:2: [redis] url: must start with redis://" },
		{ "[board_storage]\npostgrest_url = \"http://p\"\n",
		    "test.toml:2: [board_storage] postgrest_url: requires "
		    "[vault]" },
		{ "[redis]\nurl = \"redis://r\"\n[update]\n"
		    "channel = \"beta\"\n", "test.toml:4: [update] channel: "
		    "must be stable or main" },
		{ "[redis]\nurl = \"redis://r\"\n[update]\n"
		    "alt_bind_range = \"10500-10600\"\n",
		    "test.toml:4: [update] alt_bind_range: overlaps "
		    "[process]" },
		{ "[redis]\nurl = \"redis://r\"\n[update]\n"
		    "alt_bind_range = \"9000\"\n", "alt_bind_range: must be a "
		    "port range" },
		{ "[redis]\nurl = \"redis://r\"\n[update]\n"
		    "schedule = \"0 3 * *\"\n", "test.toml:4: [update] "
		    "schedule: must be a cron expression of 5 fields" },
		{ "[update]\n", "[update] alt_bind_range: [update] requires "
		    "[redis]" },
		{ "[database]\nvault_role = \"r\"\n",
		    "test.toml:2: [database] vault_role: requires [vault]" },
		{ "[database]\ndriver = \"postgres\"\n",
		    "test.toml: [database] url: required when driver = "
		    "\"postgres\"" },
		{ "[[storage.data_mounts]]\nname = \"a b\"\npath = \"/x\"\n",
		    "test.toml:1: [storage.data_mounts] name: \"a b\" may "
		    "only" },
		{ "[[storage.data_mounts]]\nname = \"a\"\npath = \"/x\"\n\n"
		    "[[storage.data_mounts]]\nname = \"a\"\npath = \"/y\"\n",
		    "test.toml:5: [storage.data_mounts] name: \"a\" is used "
		    "twice" },
		{ "[[storage.data_mounts]]\nname = \"a\"\n",
		    "test.toml:1: [storage.data_mounts] path: must be an "
		    "absolute path" },
		{ "[[storage.data_mounts]]\npath = \"/x\"\n",
		    "test.toml:1: [storage.data_mounts] name: required" },
		{ "[[storage.data_mounts]]\nname = \"a\"\nname = \"b\"\n",
		    "test.toml:3: [storage.data_mounts] name: duplicate key" },
		{ "[[storage.data_mounts]]\nsource = \"a\"\n",
		    "test.toml:2: [storage.data_mounts] source: unknown key "
		    "(expected name and path)" },
		{ "[[storage.data_mounts]]\nname = 5\n",
		    "test.toml:2: [storage.data_mounts] name: expected a "
		    "string" },
		{ "[storage]\ndata_mounts = [\n"
		    "  { name = \"a\", path = \"/a\" },\n"
		    "  { name = \"b c\", path = \"/b\" },\n]\n",
		    "test.toml:4: [storage.data_mounts] name: \"b c\"" },
		{ "[storage]\n"
		    "data_mounts = [{ name = \"a\", bogus = \"/a\" }]\n",
		    "test.toml:2: [storage] data_mounts: entry 1: unknown key "
		    "\"bogus\"" },
		{ "[storage]\ndata_mounts = [\"a:/b\"]\n",
		    "test.toml:2: [storage] data_mounts: entry 1: expected an "
		    "inline table" },
		{ "[storage]\ndata_mounts = [{ name = \"a\", path = \"/a\" }]\n"
		    "[[storage.data_mounts]]\nname = \"b\"\n",
		    "test.toml:3: [storage] data_mounts is already set at line "
		    "2" },
	};
	/* Appended to the valid [oidc] above. */
	static const struct nbcase vaultcases[] = {
		{ "[vault]\naddress = \"v:8200\"\nrole_id = \"r\"\n",
		    "test.toml:9: [vault] address: must start with http://" },
		{ "[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "admin_token = \"t\"\n", "test.toml:10: [vault] role_id: "
		    "set exactly one of role_id and admin_token" },
		{ "[vault]\naddress = \"http://v\"\n", "test.toml: [vault] "
		    "role_id: set exactly one" },
		{ "[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "secret_id_wrapped = true\n", "test.toml:11: [vault] "
		    "secret_id_wrapped: requires secret_id_file" },
		{ "[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "[[vault.services]]\nid = \"a\"\n",
		    "test.toml:11: [vault.services] label: required" },
		{ "[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "[[vault.services]]\nid = \"a\"\nlabel = \"A\"\n"
		    "[[vault.services]]\nid = \"a\"\nlabel = \"B\"\n",
		    "test.toml:14: [vault.services] id: \"a\" is used twice" },
		{ "[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "[[vault.services]]\nid = \"a/b\"\nlabel = \"A\"\n",
		    "test.toml:11: [vault.services] id: \"a/b\" may only "
		    "have" },
		{ "[openbao]\naddress = \"http://v\"\nrole_id = \"r\"\n"
		    "admin_token = \"t\"\n", "test.toml:10: [vault] role_id: "
		    "set exactly one" },
		{ "[oidc]\n", "test.toml:8: [oidc] is defined twice" },
	};
	struct config	*c;
	char		 text[1024];
	size_t		 i;

	config_unbuilt_ok = 1;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		LOAD_ERR(cases[i].text, noenv, cases[i].want);
	for (i = 0; i < sizeof(vaultcases) / sizeof(vaultcases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", oidc, vaultcases[i].text);
		LOAD_ERR(text, noenv, vaultcases[i].want);
	}
	LOAD_ERR("[vault]\naddress = \"http://v\"\nrole_id = \"r\"\n", noenv,
	    "test.toml:2: [vault] address: [vault] requires [oidc]");
	snprintf(text, sizeof(text), "%s", oidc);
	*strstr(text, "[oidc]") = '\0';
	strlcat(text, "[oidc]\ndefault_role = \"admin\"\nissuer_url = "
	    "\"https://idp\"\nclient_id = \"by\"\nclient_secret = \"cs\"\n",
	    sizeof(text));
	LOAD_ERR(text, noenv, "test.toml:5: [oidc] default_role: must be "
	    "viewer or publisher (make admins with initial_admin)");

	/* The same configurations, completed, load. */
	LOAD_OK(c, oidc, noenv);
	ck_assert_int_eq(c->oidc.present, 1);
	ck_assert_str_eq(c->oidc.default_role, "viewer");
	config_free(c);
	snprintf(text, sizeof(text), "%s[openbao]\naddress = \"http://v\"\n"
	    "role_id = \"r\"\n", oidc);
	LOAD_OK(c, text, noenv);
	ck_assert_int_eq(c->vault.present, 1);
	ck_assert_str_eq(c->vault.address, "http://v");
	ck_assert_uint_eq(config_nwarnings(c), 1);
	ck_assert_str_eq(config_warning(c, 0), "test.toml:8: [openbao] is "
	    "deprecated, use [vault]");
	config_free(c);
}
END_TEST

/* ---- JSON ---------------------------------------------------------------- */

static const char full_toml[] =
"[server]\n"
"bind = \"0.0.0.0:8081\"\n"
"backend = \"process\"\n"
"skip_preflight = true\n"
"default_memory_limit = \"2g\"\n"
"default_cpu_limit = 1.25\n"
"management_bind = \"127.0.0.1:9100\"\n"
"shutdown_timeout = \"45s\"\n"
"drain_timeout = \"2m\"\n"
"log_level = \"trace\"\n"
"session_secret = \"session-s3cret\"\n"
"external_url = \"https://by.example.org\"\n"
"trusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n"
"bootstrap_token = \"bootstrap-s3cret\"\n"
"worker_env = { OTEL_EXPORTER_OTLP_ENDPOINT = \"http://otel:4317\", "
    "Z = \"\xc3\xa9\\n\" }\n"
"user = \"by\"\n"
"control_socket = \"/run/by/ctl.sock\"\n"
"[docker]\n"
"socket = \"/run/podman.sock\"\n"
"image = \"img:1\"\n"
"shiny_port = 3000\n"
"pak_version = \"rc\"\n"
"service_network = \"net\"\n"
"runtime = \"runsc\"\n"
"runtime_defaults = { public = \"kata-runtime\" }\n"
"[process]\n"
"bwrap_path = \"/opt/bwrap\"\n"
"r_path = \"/opt/R/4.4.1/bin/R\"\n"
"seccomp_profile = \"/etc/by/seccomp.bpf\"\n"
"port_range_start = 20000\n"
"port_range_end = 20099\n"
"worker_uid_range_start = 70000\n"
"worker_uid_range_end = 70199\n"
"worker_gid = 70000\n"
"skip_metadata_check = true\n"
"build_timeout = \"10m\"\n"
"repositories = [\"LOCAL=file:///srv/cran\", \"https://cran.example\"]\n"
"[storage]\n"
"bundle_server_path = \"/srv/bundles\"\n"
"bundle_worker_path = \"/bundle\"\n"
"bundle_retention = 5\n"
"max_bundle_size = \"1g\"\n"
"soft_delete_retention = \"720h\"\n"
"store_retention = \"48h\"\n"
"[[storage.data_mounts]]\n"
"name = \"data\"\n"
"path = \"/srv/data\"\n"
"[[storage.data_mounts]]\n"
"name = \"models\"\n"
"path = \"/srv/models\"\n"
"[database]\n"
"driver = \"postgres\"\n"
"path = \"/var/lib/by/by.db\"\n"
"url = \"postgres://user:db-s3cret@db/by\"\n"
"vault_mount = \"dbs\"\n"
"vault_role = \"by_admin\"\n"
"[proxy]\n"
"ws_cache_ttl = \"30s\"\n"
"health_interval = \"5s\"\n"
"worker_start_timeout = \"2m\"\n"
"max_workers = 12\n"
"log_retention = \"2h\"\n"
"session_idle_ttl = \"10m\"\n"
"idle_worker_timeout = \"1m\"\n"
"http_forward_timeout = \"90s\"\n"
"max_cpu_limit = 8.5\n"
"transfer_timeout = \"3m\"\n"
"session_max_lifetime = \"12h\"\n"
"[redis]\n"
"url = \"redis://:redis-s3cret@r:6379/0\"\n"
"key_prefix = \"by:\"\n"
"[update]\n"
"schedule = \"0 3 * * 0\"\n"
"channel = \"main\"\n"
"watch_period = \"15m\"\n"
"alt_bind_range = \"8100-8109\"\n"
"drain_idle_wait = \"10m\"\n"
"[oidc]\n"
"issuer_url = \"https://idp.example.org\"\n"
"issuer_discovery_url = \"http://dex:5556\"\n"
"client_id = \"by\"\n"
"client_secret = \"oidc-s3cret\"\n"
"cookie_max_age = \"12h\"\n"
"initial_admin = \"sub|1\"\n"
"default_role = \"publisher\"\n"
"[vault]\n"
"address = \"https://vault:8200\"\n"
"role_id = \"role\"\n"
"token_ttl = \"30m\"\n"
"jwt_auth_path = \"jwt2\"\n"
"secret_id_file = \"/run/secrets/sid\"\n"
"secret_id_wrapped = true\n"
"ca_cert = \"/etc/ssl/vault.pem\"\n"
"skip_policy_scope_check = true\n"
"[[vault.services]]\n"
"id = \"openai\"\n"
"label = \"OpenAI\"\n"
"[board_storage]\n"
"postgrest_url = \"http://postgrest:3000\"\n"
"[audit]\n"
"path = \"/var/log/by/audit.jsonl\"\n"
"[telemetry]\n"
"metrics_enabled = true\n"
"otlp_endpoint = \"http://otel:4317\"\n";

/* A config with every key set away from its default. */
static struct config *
full_config(char *path, size_t len)
{
	struct config	*c;
	int		 fd;

	config_unbuilt_ok = 1;
	snprintf(path, len, "/tmp/test_config.XXXXXX");
	ck_assert_int_ne(fd = mkstemp(path), -1);
	ck_assert_int_eq(write(fd, full_toml, strlen(full_toml)),
	    (ssize_t)strlen(full_toml));
	close(fd);
	c = config_load(path, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	unlink(path);
	ck_assert_msg(c != NULL, "%s", errbuf);
	/* Exclusive with role_id, so set past validation. */
	ck_assert_ptr_nonnull(c->vault.admin_token = strdup("admin-s3cret"));
	return c;
}

static void
assert_roundtrip(const struct config *c)
{
	struct config	*back;
	json_t		*j, *j2, *parsed;
	char		*text;

	ck_assert_ptr_nonnull(j = config_to_json(c));
	back = config_from_json(j, errbuf, sizeof(errbuf));
	ck_assert_msg(back != NULL, "%s", errbuf);
	ck_assert(config_equal(c, back));
	ck_assert_ptr_nonnull(j2 = config_to_json(back));
	ck_assert(json_equal(j, j2));
	config_free(back);

	/* Through text, as it travels between processes. */
	ck_assert_ptr_nonnull(text = json_dumps(j, JSON_COMPACT));
	ck_assert_ptr_nonnull(parsed = json_loads(text, 0, NULL));
	back = config_from_json(parsed, errbuf, sizeof(errbuf));
	ck_assert_msg(back != NULL, "%s", errbuf);
	ck_assert(config_equal(c, back));
	config_free(back);
	json_decref(parsed);
	free(text);
	json_decref(j);
	json_decref(j2);
}

START_TEST(test_json_defaults)
{
	struct config	*c;
	json_t		*j;

	LOAD_OK(c, "", noenv);
	assert_roundtrip(c);
	ck_assert_ptr_nonnull(j = config_to_json(c));
	ck_assert(json_is_null(json_object_get(j, "oidc")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j,
	    "server"), "shutdown_timeout")), 30000);
	json_decref(j);
	config_free(c);
}
END_TEST

START_TEST(test_json_full)
{
	struct config	*c, *d;
	json_t		*jc, *jd, *sc, *sd;
	const char	*sec, *key;
	json_t		*v;
	char		 path[64];
	size_t		 i;

	c = full_config(path, sizeof(path));
	ck_assert_str_eq(c->path, path);
	ck_assert_uint_eq(config_nwarnings(c), 1);
	assert_roundtrip(c);

	/* Every key differs from its default, or the test proves little. */
	LOAD_OK(d, "", noenv);
	for (i = 0; i < config_nsections; i++)
		if (config_present(d, &config_sections[i]) != NULL)
			*config_present(d, &config_sections[i]) = 1;
	ck_assert_ptr_nonnull(jc = config_to_json(c));
	ck_assert_ptr_nonnull(jd = config_to_json(d));
	json_object_foreach(jc, sec, sc) {
		if (!json_is_object(sc))
			continue;
		sd = json_object_get(jd, sec);
		ck_assert(json_is_object(sd));
		json_object_foreach(sc, key, v) {
			if (strcmp(sec, "server") == 0 &&
			    strcmp(key, "backend") == 0)
				continue;
			ck_assert_msg(!json_equal(v,
			    json_object_get(sd, key)), "%s.%s has its default",
			    sec, key);
		}
	}
	ck_assert_uint_eq(json_object_size(jc), 15);
	json_decref(jc);
	json_decref(jd);
	config_free(d);
	config_free(c);
}
END_TEST

START_TEST(test_json_redacted)
{
	struct config	*c;
	json_t		*j;
	char		*text, path[64];

	c = full_config(path, sizeof(path));
	ck_assert_ptr_nonnull(j = config_to_json_redacted(c));
	ck_assert_ptr_nonnull(text = json_dumps(j, 0));
	ck_assert_ptr_null(strstr(text, "s3cret"));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "oidc"), "client_secret")), "********");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "oidc"), "client_id")), "by");
	free(text);
	json_decref(j);
	ck_assert_ptr_nonnull(j = config_to_json(c));
	ck_assert_ptr_nonnull(text = json_dumps(j, 0));
	ck_assert_ptr_nonnull(strstr(text, "oidc-s3cret"));
	free(text);
	json_decref(j);
	config_free(c);
}
END_TEST

static void
assert_json_rejected(const char *mutation, json_t *j)
{
	struct config	*c;

	c = config_from_json(j, errbuf, sizeof(errbuf));
	ck_assert_msg(c == NULL, "%s accepted", mutation);
	ck_assert_msg(strncmp(errbuf, "config JSON: ", 13) == 0, "%s", errbuf);
	json_decref(j);
}

static json_t *
default_json(void)
{
	struct config	*c;
	json_t		*j;

	LOAD_OK(c, "", noenv);
	j = config_to_json(c);
	config_free(c);
	return j;
}

START_TEST(test_json_invalid)
{
	json_t	*j;

	j = json_array();
	assert_json_rejected("array", j);
	j = default_json();
	json_object_del(j, "proxy");
	assert_json_rejected("no proxy", j);
	j = default_json();
	json_object_set_new(j, "extra", json_object());
	assert_json_rejected("extra section", j);
	j = default_json();
	json_object_set_new(j, "server", json_null());
	assert_json_rejected("null server", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "server"), "bind",
	    json_integer(5));
	assert_json_rejected("integer bind", j);
	j = default_json();
	json_object_del(json_object_get(j, "server"), "bind");
	assert_json_rejected("no bind", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "server"),
	    "skip_docker_preflight", json_true());
	assert_json_rejected("deprecated key", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "proxy"), "ws_cache_ttl",
	    json_integer(-1));
	assert_json_rejected("negative duration", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "proxy"), "max_workers",
	    json_integer(1LL << 40));
	assert_json_rejected("int range", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "server"), "trusted_proxies",
	    json_pack("[i]", 1));
	assert_json_rejected("list of int", j);
	j = default_json();
	json_object_set_new(j, "oidc", json_pack("{s:s}", "issuer_url", "x"));
	assert_json_rejected("partial oidc", j);
	j = default_json();
	json_object_set_new(json_object_get(j, "storage"), "data_mounts",
	    json_pack("[{s:s}]", "name", "x"));
	assert_json_rejected("mount without path", j);
	j = default_json();
	json_object_del(j, "warnings");
	assert_json_rejected("no warnings", j);
}
END_TEST

/* ---- the value parser alone ---------------------------------------------- */

START_TEST(test_tval)
{
	struct tval	*tv;
	char		 err[256], desc[128];
	unsigned	 line;

	tv = tval_parse("[[1, 2], [\"a\"], { x = [true] }, 1.5e3] # c", &line,
	    err, sizeof(err));
	ck_assert_msg(tv != NULL, "%s", err);
	ck_assert_int_eq(tv->type, TV_ARRAY);
	ck_assert_uint_eq(tv->n, 4);
	ck_assert_int_eq(tv->v[0]->v[1]->i, 2);
	ck_assert_str_eq(tv->v[1]->v[0]->s, "a");
	ck_assert_str_eq(tv->v[2]->k[0], "x");
	ck_assert_int_eq(tv->v[2]->v[0]->v[0]->b, 1);
	ck_assert_double_eq(tv->v[3]->f, 1500.0);
	tval_free(tv);

	tv = tval_parse("\"a very long string value that goes on and on\"",
	    &line, err, sizeof(err));
	ck_assert_ptr_nonnull(tv);
	tval_describe(tv, 0, desc, sizeof(desc));
	ck_assert_str_eq(desc, "string \"a very long string value that goes "
	    "on an...\"");
	tval_describe(tv, 1, desc, sizeof(desc));
	ck_assert_str_eq(desc, "a string");
	tval_free(tv);

	ck_assert_ptr_null(tval_parse("[1,\n2,\n3", &line, err, sizeof(err)));
	ck_assert_uint_eq(line, 2);
	ck_assert_str_eq(err, "unterminated array");
	ck_assert_ptr_null(tval_parse("{ a = 1 b = 2 }", &line, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "expected ',' or '}' in an inline table");
	ck_assert_ptr_null(tval_parse("07:32:00", &line, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "dates and times"));
	ck_assert_ptr_null(tval_parse("", &line, err, sizeof(err)));
	ck_assert_str_eq(err, "missing value");
	ck_assert_ptr_null(tval_parse("{ a = 1, a = 2 }", &line, err,
	    sizeof(err)));
	ck_assert_str_eq(err, "duplicate key \"a\" in an inline table");
}
END_TEST

/* ---- files --------------------------------------------------------------- */

START_TEST(test_load_files)
{
	struct config	*c;
	char		 path[64];
	char		*big;
	int		 fd;

	c = config_load("/nonexistent/blockyard.toml", fake_getenv,
	    (void *)noenv, errbuf, sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(errbuf, "/nonexistent/blockyard.toml: No such file "
	    "or directory");
	c = config_load("/tmp", fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(errbuf, "/tmp: is a directory");

	snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
	ck_assert_int_ne(fd = mkstemp(path), -1);
	ck_assert_int_eq(write(fd, "[server]\nuser = \"a\0b\"\n", 22), 22);
	close(fd);
	c = config_load(path, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(errbuf, ":2: NUL byte in the file"));

	ck_assert_int_ne(fd = open(path, O_WRONLY | O_TRUNC), -1);
	ck_assert_ptr_nonnull(big = calloc(1, 1024 * 1024 + 2));
	memset(big, '#', 1024 * 1024 + 1);
	ck_assert_int_eq(write(fd, big, 1024 * 1024 + 1), 1024 * 1024 + 1);
	close(fd);
	free(big);
	c = config_load(path, fake_getenv, (void *)noenv, errbuf,
	    sizeof(errbuf));
	unlink(path);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(errbuf, "file is larger than 1048576 "
	    "bytes"));
}
END_TEST

START_TEST(test_small_err_buffer)
{
	struct config	*c;
	char		 small[8];

	c = config_load_string("[nope]\n", "a-long-file-name.toml", fake_getenv,
	    (void *)noenv, small, sizeof(small));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(small, "a-long-");
	c = config_load_string("[nope]\n", NULL, fake_getenv, (void *)noenv,
	    errbuf, sizeof(errbuf));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(errbuf, "(string):1: unknown section [nope]");
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_defaults_empty_file);
	tcase_add_test(tc, test_table_consistent);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_strings_invalid);
	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_floats);
	tcase_add_test(tc, test_booleans);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_format_duration);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_typed_keys);
	tcase_add_test(tc, test_maps);
	tcase_add_test(tc, test_corpus_valid);
	tcase_add_test(tc, test_corpus_invalid);
	tcase_add_test(tc, test_example_file);
	tcase_add_test(tc, test_inih_pitfalls);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_error_lines);
	tcase_add_test(tc, test_env_overrides);
	tcase_add_test(tc, test_env_errors);
	tcase_add_test(tc, test_env_sections);
	tcase_add_test(tc, test_env_deprecated);
	tcase_add_test(tc, test_env_data_mounts);
	tcase_add_test(tc, test_env_real);
	tcase_add_test(tc, test_not_built);
	tcase_add_test(tc, test_bootstrap_built);
	tcase_add_test(tc, test_postgres_built);
	tcase_add_test(tc, test_audit_built);
	tcase_add_test(tc, test_unbuilt_validation);
	tcase_add_test(tc, test_json_defaults);
	tcase_add_test(tc, test_json_full);
	tcase_add_test(tc, test_json_redacted);
	tcase_add_test(tc, test_json_invalid);
	tcase_add_test(tc, test_tval);
	tcase_add_test(tc, test_load_files);
	tcase_add_test(tc, test_small_err_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
