/*
 * The configuration table and the typed values behind it: defaults,
 * conversions from TOML values and from environment strings, durations
 * and sizes, and freeing.  Reading the file is config_load.c, the
 * cross-field checks config_check.c, the JSON transport config_json.c.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "config.h"
#include "config_keys.h"
#include "config_toml.h"

#define O(f)	offsetof(struct config, f)

static const struct ck_tables data_mounts_tables = {
	sizeof(struct data_mount), O(storage.n_data_mounts),
	{ "name", "path" },
	{ offsetof(struct data_mount, name), offsetof(struct data_mount, path) }
};

static const struct ck_tables vault_services_tables = {
	sizeof(struct vault_service), O(vault.n_services),
	{ "id", "label" },
	{ offsetof(struct vault_service, id),
	  offsetof(struct vault_service, label) }
};

/* Feature names used in "... is not built yet" refusals. */
#define NB_OIDC		"OIDC"
#define NB_VAULT	"vault integration"
#define NB_REDIS	"Redis"
#define NB_UPDATE	"support for rolling updates"
#define NB_BOARD	"board storage"
#define NB_TELEMETRY	"telemetry"
#define NB_AUDIT	"the audit log"
#define NB_MOUNTS	"support for data mounts"

/*
 * Every key.  The notbuilt column refuses a feature at start-up until it
 * exists; lifting it is deleting that column's entry (see also
 * unbuilt_values below).
 */
const struct config_key config_keys[] = {
	/* section, key, type, offset, default, flags, notbuilt, deprecated */
	{ "server", "bind", CK_STRING, O(server.bind), "127.0.0.1:8080",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "server", "backend", CK_STRING, O(server.backend), "process",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "server", "skip_preflight", CK_BOOL, O(server.skip_preflight),
	    "false", 0, NULL, NULL, NULL },
	{ "server", "skip_docker_preflight", CK_BOOL, O(server.skip_preflight),
	    NULL, 0, NULL, "server.skip_preflight", NULL },
	{ "server", "default_memory_limit", CK_SIZE,
	    O(server.default_memory_limit), "0", 0, NULL, NULL, NULL },
	{ "server", "default_cpu_limit", CK_FLOAT, O(server.default_cpu_limit),
	    "0", CK_NONNEG, NULL, NULL, NULL },
	{ "server", "management_bind", CK_STRING, O(server.management_bind),
	    NULL, 0, NULL, NULL, NULL },
	{ "server", "shutdown_timeout", CK_DURATION,
	    O(server.shutdown_timeout), "30s", 0, NULL, NULL, NULL },
	{ "server", "drain_timeout", CK_DURATION, O(server.drain_timeout),
	    NULL, 0, NULL, NULL, NULL },
	{ "server", "log_level", CK_STRING, O(server.log_level), "info",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "server", "session_secret", CK_STRING, O(server.session_secret),
	    NULL, CK_SECRET, NB_OIDC, NULL, NULL },
	{ "server", "external_url", CK_STRING, O(server.external_url), NULL,
	    0, NULL, NULL, NULL },
	{ "server", "trusted_proxies", CK_LIST, O(server.trusted_proxies),
	    NULL, 0, NULL, NULL, NULL },
	{ "server", "bootstrap_token", CK_STRING, O(server.bootstrap_token),
	    NULL, CK_SECRET, NULL, NULL, NULL },
	{ "server", "worker_env", CK_MAP, O(server.worker_env), NULL, 0,
	    NULL, NULL, NULL },
	{ "server", "user", CK_STRING, O(server.user), "blockyard",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "server", "control_socket", CK_PATH, O(server.control_socket),
	    "/run/blockyard/byd.sock", CK_NONEMPTY, NULL, NULL, NULL },

	{ "docker", "socket", CK_STRING, O(docker.socket),
	    "/var/run/docker.sock", 0, NULL, NULL, NULL },
	{ "docker", "image", CK_STRING, O(docker.image), NULL, 0, NULL, NULL,
	    NULL },
	{ "docker", "shiny_port", CK_INT, O(docker.shiny_port), "3838", 0,
	    NULL, NULL, NULL },
	{ "docker", "pak_version", CK_STRING, O(docker.pak_version), "stable",
	    0, NULL, NULL, NULL },
	{ "docker", "service_network", CK_STRING, O(docker.service_network),
	    NULL, 0, NULL, NULL, NULL },
	{ "docker", "runtime", CK_STRING, O(docker.runtime), NULL, 0, NULL,
	    NULL, NULL },
	{ "docker", "runtime_defaults", CK_MAP, O(docker.runtime_defaults),
	    NULL, 0, NULL, NULL, NULL },
	{ "docker", "default_memory_limit", CK_SIZE,
	    O(server.default_memory_limit), NULL, 0, NULL,
	    "server.default_memory_limit", NULL },
	{ "docker", "default_cpu_limit", CK_FLOAT, O(server.default_cpu_limit),
	    NULL, CK_NONNEG, NULL, "server.default_cpu_limit", NULL },
	{ "docker", "store_retention", CK_DURATION, O(storage.store_retention),
	    NULL, 0, NULL, "storage.store_retention", NULL },

	{ "process", "bwrap_path", CK_PATH, O(process.bwrap_path),
	    "/usr/bin/bwrap", CK_NONEMPTY, NULL, NULL, NULL },
	{ "process", "r_path", CK_PATH, O(process.r_path), "/usr/bin/R",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "process", "seccomp_profile", CK_PATH, O(process.seccomp_profile),
	    NULL, 0, NULL, NULL, NULL },
	{ "process", "port_range_start", CK_INT, O(process.port_range_start),
	    "10000", 0, NULL, NULL, NULL },
	{ "process", "port_range_end", CK_INT, O(process.port_range_end),
	    "10999", 0, NULL, NULL, NULL },
	{ "process", "worker_uid_range_start", CK_INT,
	    O(process.worker_uid_range_start), "60000", 0, NULL, NULL, NULL },
	{ "process", "worker_uid_range_end", CK_INT,
	    O(process.worker_uid_range_end), "60999", 0, NULL, NULL, NULL },
	{ "process", "worker_gid", CK_INT, O(process.worker_gid), "65534", 0,
	    NULL, NULL, NULL },
	{ "process", "skip_metadata_check", CK_BOOL,
	    O(process.skip_metadata_check), "false", 0, NULL, NULL, NULL },
	{ "process", "build_timeout", CK_DURATION, O(process.build_timeout),
	    "30m", CK_POSITIVE, NULL, NULL, NULL },
	{ "process", "repositories", CK_LIST, O(process.repositories), NULL,
	    0, NULL, NULL, NULL },

	{ "storage", "bundle_server_path", CK_PATH,
	    O(storage.bundle_server_path), "/data/bundles", CK_NONEMPTY, NULL,
	    NULL, NULL },
	{ "storage", "bundle_worker_path", CK_PATH,
	    O(storage.bundle_worker_path), "/app", CK_NONEMPTY, NULL, NULL,
	    NULL },
	{ "storage", "bundle_retention", CK_INT, O(storage.bundle_retention),
	    "50", CK_POSITIVE, NULL, NULL, NULL },
	{ "storage", "max_bundle_size", CK_SIZE, O(storage.max_bundle_size),
	    "104857600", CK_POSITIVE, NULL, NULL, NULL },
	{ "storage", "soft_delete_retention", CK_DURATION,
	    O(storage.soft_delete_retention), "0", 0, NULL, NULL, NULL },
	{ "storage", "store_retention", CK_DURATION,
	    O(storage.store_retention), "0", 0, NULL, NULL, NULL },
	{ "storage", "data_mounts", CK_TABLES, O(storage.data_mounts), NULL,
	    0, NB_MOUNTS, NULL, &data_mounts_tables },

	{ "database", "driver", CK_STRING, O(database.driver), "sqlite",
	    CK_NONEMPTY, NULL, NULL, NULL },
	{ "database", "path", CK_PATH, O(database.path),
	    "/data/db/blockyard.db", 0, NULL, NULL, NULL },
	{ "database", "url", CK_STRING, O(database.url), NULL, CK_SECRET,
	    NULL, NULL, NULL },
	{ "database", "vault_mount", CK_STRING, O(database.vault_mount),
	    "database", 0, NB_VAULT, NULL, NULL },
	{ "database", "vault_role", CK_STRING, O(database.vault_role), NULL, 0,
	    NB_VAULT, NULL, NULL },

	{ "proxy", "ws_cache_ttl", CK_DURATION, O(proxy.ws_cache_ttl), "60s",
	    0, NULL, NULL, NULL },
	{ "proxy", "health_interval", CK_DURATION, O(proxy.health_interval),
	    "15s", CK_POSITIVE, NULL, NULL, NULL },
	{ "proxy", "worker_start_timeout", CK_DURATION,
	    O(proxy.worker_start_timeout), "60s", CK_POSITIVE, NULL, NULL,
	    NULL },
	{ "proxy", "max_workers", CK_INT, O(proxy.max_workers), "100",
	    CK_POSITIVE, NULL, NULL, NULL },
	{ "proxy", "log_retention", CK_DURATION, O(proxy.log_retention), "1h",
	    0, NULL, NULL, NULL },
	{ "proxy", "session_idle_ttl", CK_DURATION, O(proxy.session_idle_ttl),
	    "0", 0, NULL, NULL, NULL },
	{ "proxy", "idle_worker_timeout", CK_DURATION,
	    O(proxy.idle_worker_timeout), "5m", 0, NULL, NULL, NULL },
	{ "proxy", "http_forward_timeout", CK_DURATION,
	    O(proxy.http_forward_timeout), "5m", 0, NULL, NULL, NULL },
	{ "proxy", "max_cpu_limit", CK_FLOAT, O(proxy.max_cpu_limit), "16.0",
	    CK_POSITIVE, NULL, NULL, NULL },
	{ "proxy", "transfer_timeout", CK_DURATION, O(proxy.transfer_timeout),
	    "60s", 0, NULL, NULL, NULL },
	{ "proxy", "session_max_lifetime", CK_DURATION,
	    O(proxy.session_max_lifetime), "0", 0, NULL, NULL, NULL },

	{ "redis", "url", CK_STRING, O(redis.url), NULL, CK_SECRET, NB_REDIS,
	    NULL, NULL },
	{ "redis", "key_prefix", CK_STRING, O(redis.key_prefix), "blockyard:",
	    0, NB_REDIS, NULL, NULL },

	{ "update", "schedule", CK_STRING, O(update.schedule), NULL, 0,
	    NB_UPDATE, NULL, NULL },
	{ "update", "channel", CK_STRING, O(update.channel), "stable", 0,
	    NB_UPDATE, NULL, NULL },
	{ "update", "watch_period", CK_DURATION, O(update.watch_period), "5m",
	    0, NB_UPDATE, NULL, NULL },
	{ "update", "alt_bind_range", CK_STRING, O(update.alt_bind_range),
	    "8090-8099", 0, NB_UPDATE, NULL, NULL },
	{ "update", "drain_idle_wait", CK_DURATION, O(update.drain_idle_wait),
	    "5m", 0, NB_UPDATE, NULL, NULL },

	{ "oidc", "issuer_url", CK_STRING, O(oidc.issuer_url), NULL, 0,
	    NB_OIDC, NULL, NULL },
	{ "oidc", "issuer_discovery_url", CK_STRING,
	    O(oidc.issuer_discovery_url), NULL, 0, NB_OIDC, NULL, NULL },
	{ "oidc", "client_id", CK_STRING, O(oidc.client_id), NULL, 0, NB_OIDC,
	    NULL, NULL },
	{ "oidc", "client_secret", CK_STRING, O(oidc.client_secret), NULL,
	    CK_SECRET, NB_OIDC, NULL, NULL },
	{ "oidc", "cookie_max_age", CK_DURATION, O(oidc.cookie_max_age), "24h",
	    CK_POSITIVE, NB_OIDC, NULL, NULL },
	/* built alone: the bootstrap exchange's admin (config_check.c) */
	{ "oidc", "initial_admin", CK_STRING, O(oidc.initial_admin), NULL, 0,
	    NULL, NULL, NULL },
	{ "oidc", "default_role", CK_STRING, O(oidc.default_role), "viewer", 0,
	    NB_OIDC, NULL, NULL },

	{ "vault", "address", CK_STRING, O(vault.address), NULL, 0, NB_VAULT,
	    NULL, NULL },
	{ "vault", "role_id", CK_STRING, O(vault.role_id), NULL, 0, NB_VAULT,
	    NULL, NULL },
	{ "vault", "admin_token", CK_STRING, O(vault.admin_token), NULL,
	    CK_SECRET, NB_VAULT, NULL, NULL },
	{ "vault", "token_ttl", CK_DURATION, O(vault.token_ttl), "1h",
	    CK_POSITIVE, NB_VAULT, NULL, NULL },
	{ "vault", "jwt_auth_path", CK_STRING, O(vault.jwt_auth_path), "jwt",
	    0, NB_VAULT, NULL, NULL },
	{ "vault", "secret_id_file", CK_PATH, O(vault.secret_id_file), NULL, 0,
	    NB_VAULT, NULL, NULL },
	{ "vault", "secret_id_wrapped", CK_BOOL, O(vault.secret_id_wrapped),
	    "false", 0, NB_VAULT, NULL, NULL },
	{ "vault", "ca_cert", CK_PATH, O(vault.ca_cert), NULL, 0, NB_VAULT,
	    NULL, NULL },
	{ "vault", "skip_policy_scope_check", CK_BOOL,
	    O(vault.skip_policy_scope_check), "false", 0, NB_VAULT, NULL,
	    NULL },
	{ "vault", "services", CK_TABLES, O(vault.services), NULL, 0,
	    NB_VAULT, NULL, &vault_services_tables },

	{ "board_storage", "postgrest_url", CK_STRING,
	    O(board_storage.postgrest_url), NULL, 0, NB_BOARD, NULL, NULL },

	{ "audit", "path", CK_PATH, O(audit.path), NULL, 0, NULL, NULL,
	    NULL },

	{ "telemetry", "metrics_enabled", CK_BOOL,
	    O(telemetry.metrics_enabled), "false", 0, NB_TELEMETRY, NULL,
	    NULL },
	{ "telemetry", "otlp_endpoint", CK_STRING, O(telemetry.otlp_endpoint),
	    NULL, 0, NB_TELEMETRY, NULL, NULL },
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

const struct config_section config_sections[] = {
	{ "server", -1, NULL, 0 },
	{ "docker", O(docker.present), NULL, 1 },
	{ "process", -1, NULL, 0 },
	{ "storage", -1, NULL, 0 },
	{ "database", -1, NULL, 0 },
	{ "proxy", -1, NULL, 0 },
	{ "redis", O(redis.present), NULL, 0 },
	{ "update", O(update.present), NULL, 0 },
	{ "oidc", O(oidc.present), NULL, 0 },
	{ "vault", O(vault.present), NULL, 0 },
	{ "board_storage", O(board_storage.present), NULL, 0 },
	{ "audit", O(audit.present), NULL, 0 },
	{ "telemetry", O(telemetry.present), NULL, 0 },
	{ "openbao", O(vault.present), "vault", 0 },
};
const size_t config_nsections = sizeof(config_sections) /
    sizeof(config_sections[0]);

/* Values that name a feature not built yet, next to the notbuilt column. */
static const struct {
	const char	*section;
	const char	*name;
	const char	*value;
	const char	*feature;
} unbuilt_values[] = {
	{ NULL, NULL, NULL, NULL }
};

int config_unbuilt_ok;

const char *
config_not_built(const struct config_key *k, const char *value)
{
	size_t	 i;

	if (config_unbuilt_ok)
		return NULL;
	if (k->notbuilt != NULL)
		return k->notbuilt;
	if (value == NULL)
		return NULL;
	for (i = 0; unbuilt_values[i].section != NULL; i++)
		if (strcmp(k->section, unbuilt_values[i].section) == 0 &&
		    strcmp(k->name, unbuilt_values[i].name) == 0 &&
		    strcmp(value, unbuilt_values[i].value) == 0)
			return unbuilt_values[i].feature;
	return NULL;
}

const struct config_section *
config_section_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < config_nsections; i++)
		if (strcmp(config_sections[i].name, name) == 0)
			return &config_sections[i];
	return NULL;
}

const struct config_key *
config_key_find(const char *section, const char *name)
{
	const struct config_section	*s;
	size_t				 i;

	if ((s = config_section_find(section)) != NULL && s->alias_of != NULL)
		section = s->alias_of;
	for (i = 0; i < config_nkeys; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

const struct config_key *
config_key_target(const struct config_key *k)
{
	char	 sec[64];
	char	*dot;

	if (k->deprecated == NULL)
		return k;
	strlcpy(sec, k->deprecated, sizeof(sec));
	if ((dot = strchr(sec, '.')) == NULL)
		return k;
	*dot = '\0';
	return config_key_find(sec, dot + 1);
}

void
config_env_name(const char *section, const char *key, char *buf,
    size_t len)
{
	size_t	 i;

	snprintf(buf, len, "BLOCKYARD_%s_%s", section, key);
	for (i = 0; buf[i] != '\0'; i++)
		buf[i] = toupper((unsigned char)buf[i]);
}

void *
config_field(const struct config *c, const struct config_key *k)
{
	return (char *)c + k->off;
}

int *
config_present(const struct config *c, const struct config_section *s)
{
	if (s->present < 0)
		return NULL;
	return (int *)((char *)c + s->present);
}

/* ---- containers ---------------------------------------------------------- */

int
config_strlist_add(struct strlist *l, const char *s)
{
	char	**nv, *d;

	if ((d = strdup(s)) == NULL)
		return -1;
	if ((nv = reallocarray(l->v, l->n + 1, sizeof(*nv))) == NULL) {
		free(d);
		return -1;
	}
	l->v = nv;
	l->v[l->n++] = d;
	return 0;
}

int
config_strmap_add(struct strmap *m, const char *k, const char *v)
{
	char	**nk, **nv, *dk, *dv;

	dk = strdup(k);
	dv = strdup(v);
	if (dk == NULL || dv == NULL)
		goto fail;
	if ((nk = reallocarray(m->k, m->n + 1, sizeof(*nk))) == NULL)
		goto fail;
	m->k = nk;
	if ((nv = reallocarray(m->v, m->n + 1, sizeof(*nv))) == NULL)
		goto fail;
	m->v = nv;
	m->k[m->n] = dk;
	m->v[m->n++] = dv;
	return 0;
 fail:
	free(dk);
	free(dv);
	return -1;
}

void
config_strlist_free(struct strlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
config_strmap_free(struct strmap *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++) {
		free(m->k[i]);
		free(m->v[i]);
	}
	free(m->k);
	free(m->v);
	m->k = m->v = NULL;
	m->n = 0;
}

void *
config_tables_add(struct config *c, const struct config_key *k)
{
	const struct ck_tables	*t = k->tables;
	char			**arr = config_field(c, k);
	size_t			*n = (size_t *)((char *)c + t->count_off);
	char			*na;

	if ((na = reallocarray(*arr, *n + 1, t->elemsize)) == NULL)
		return NULL;
	*arr = na;
	memset(na + *n * t->elemsize, 0, t->elemsize);
	return na + (*n)++ * t->elemsize;
}

static void
tables_free(struct config *c, const struct config_key *k)
{
	const struct ck_tables	*t = k->tables;
	char			**arr = config_field(c, k);
	size_t			*n = (size_t *)((char *)c + t->count_off);
	size_t			 i, f;

	for (i = 0; i < *n; i++)
		for (f = 0; f < 2; f++)
			free(*(char **)(*arr + i * t->elemsize +
			    t->field_off[f]));
	free(*arr);
	*arr = NULL;
	*n = 0;
}

void
config_field_clear(struct config *c, const struct config_key *k)
{
	void	*f = config_field(c, k);

	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case CK_BOOL:
	case CK_INT:
		*(int *)f = 0;
		break;
	case CK_FLOAT:
		*(double *)f = 0;
		break;
	case CK_DURATION:
		*(int64_t *)f = 0;
		break;
	case CK_SIZE:
		*(uint64_t *)f = 0;
		break;
	case CK_LIST:
		config_strlist_free(f);
		break;
	case CK_MAP:
		config_strmap_free(f);
		break;
	case CK_TABLES:
		tables_free(c, k);
		break;
	}
}

void
config_free(struct config *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	/* Deprecated keys share their target's field: free it once. */
	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].deprecated == NULL)
			config_field_clear(c, &config_keys[i]);
	config_strlist_free(&c->warnings);
	free(c->path);
	free(c);
}

size_t
config_nwarnings(const struct config *c)
{
	return c->warnings.n;
}

const char *
config_warning(const struct config *c, size_t i)
{
	return i < c->warnings.n ? c->warnings.v[i] : NULL;
}

/* ---- durations and sizes ------------------------------------------------- */

struct unit {
	const char	*name;
	uint64_t	 mult;
};

static const struct unit duration_units[] = {
	{ "ns", 1ULL },
	{ "us", 1000ULL },
	{ "\xc2\xb5s", 1000ULL },		/* U+00B5 micro sign */
	{ "\xce\xbcs", 1000ULL },		/* U+03BC mu */
	{ "ms", 1000000ULL },
	{ "s", 1000000000ULL },
	{ "m", 60000000000ULL },
	{ "h", 3600000000000ULL },
};

static const struct unit *
duration_unit(const char **sp)
{
	const struct unit	*u, *best = NULL;
	size_t			 i, len, blen = 0;

	for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]);
	    i++) {
		u = &duration_units[i];
		len = strlen(u->name);
		if (strncmp(*sp, u->name, len) == 0 && len > blen) {
			best = u;
			blen = len;
		}
	}
	if (best != NULL)
		*sp += blen;
	return best;
}

/* One "1.5h" component in nanoseconds; -1 if malformed or too large. */
static int
duration_part(const char **sp, uint64_t *ns)
{
	const struct unit	*u;
	const char		*s = *sp;
	uint64_t		 v = 0, frac = 0, scale = 1;
	unsigned __int128	 t;
	int			 digits = 0;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, digits++)
			if (scale <= UINT64_MAX / 100) {
				frac = frac * 10 + (*s - '0');
				scale *= 10;
			}
	if (digits == 0 || (u = duration_unit(&s)) == NULL)
		return -1;
	t = (unsigned __int128)v * u->mult +
	    (unsigned __int128)frac * u->mult / scale;
	if (t > INT64_MAX)
		return -1;
	*ns = (uint64_t)t;
	*sp = s;
	return 0;
}

int
config_parse_duration(const char *s, int64_t *ms)
{
	uint64_t	 total = 0, ns;

	if (s == NULL)
		return -1;
	if (*s == '+')
		s++;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		if (duration_part(&s, &ns) == -1 || ns > INT64_MAX - total)
			return -1;
		total += ns;
	}
	/* Kept in milliseconds: a non-zero value must not turn into 0. */
	if (total > 0 && total < 1000000)
		return -1;
	*ms = total / 1000000;
	return 0;
}

void
config_format_duration(int64_t ms, char *buf, size_t len)
{
	uint64_t	 u;
	char		 frac[8];
	const char	*sign = "";
	int		 i;

	if (ms < 0) {
		sign = "-";
		u = (uint64_t)0 - (uint64_t)ms;
	} else
		u = ms;
	if (u == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (u < 1000) {
		snprintf(buf, len, "%s%" PRIu64 "ms", sign, u);
		return;
	}
	frac[0] = '\0';
	if (u % 1000 != 0) {
		snprintf(frac, sizeof(frac), ".%03u", (unsigned)(u % 1000));
		for (i = 3; frac[i] == '0'; i--)
			frac[i] = '\0';
	}
	if (u >= 3600000)
		snprintf(buf, len, "%s%" PRIu64 "h%um%u%ss", sign, u / 3600000,
		    (unsigned)(u / 60000 % 60), (unsigned)(u / 1000 % 60),
		    frac);
	else if (u >= 60000)
		snprintf(buf, len, "%s%um%u%ss", sign, (unsigned)(u / 60000),
		    (unsigned)(u / 1000 % 60), frac);
	else
		snprintf(buf, len, "%s%u%ss", sign, (unsigned)(u / 1000), frac);
}

static const struct unit size_units[] = {
	{ "", 1ULL }, { "b", 1ULL },
	{ "k", 1ULL << 10 }, { "kb", 1ULL << 10 }, { "kib", 1ULL << 10 },
	{ "m", 1ULL << 20 }, { "mb", 1ULL << 20 }, { "mib", 1ULL << 20 },
	{ "g", 1ULL << 30 }, { "gb", 1ULL << 30 }, { "gib", 1ULL << 30 },
	{ "t", 1ULL << 40 }, { "tb", 1ULL << 40 }, { "tib", 1ULL << 40 },
};

int
config_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t	 v = 0;
	size_t		 i;
	int		 digits = 0;

	if (s == NULL)
		return -1;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (digits == 0)
		return -1;
	if (*s == ' ')
		s++;
	for (i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
		if (strcasecmp(s, size_units[i].name) != 0)
			continue;
		/* Sizes travel as JSON integers: keep them in int64 range. */
		if (v > INT64_MAX / size_units[i].mult)
			return -1;
		*bytes = v * size_units[i].mult;
		return 0;
	}
	return -1;
}

/* ---- typed values -------------------------------------------------------- */

static const char *
expected(enum ck_type t)
{
	switch (t) {
	case CK_STRING:
		return "expected a string";
	case CK_PATH:
		return "expected a path string";
	case CK_BOOL:
		return "expected true or false";
	case CK_INT:
		return "expected an integer";
	case CK_FLOAT:
		return "expected a number";
	case CK_DURATION:
		return "expected a duration like \"30s\"";
	case CK_SIZE:
		return "expected a size like \"2g\" or a number of bytes";
	case CK_LIST:
		return "expected an array of strings";
	case CK_MAP:
		return "expected a table of strings like { KEY = \"value\" }";
	case CK_TABLES:
		return "expected an array of tables";
	}
	return "unexpected type";
}

static int __attribute__((format(printf, 3, 4)))
fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int
mismatch(const struct config_key *k, const struct tval *tv, char *msg,
    size_t len)
{
	char	 got[96];

	tval_describe(tv, k->flags & CK_SECRET, got, sizeof(got));
	return fail(msg, len, "%s, got %s", expected(k->type), got);
}

static int
set_string(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	char	**f = config_field(c, k);
	char	 *d = NULL;

	if (*s == '\0' && (k->flags & CK_NONEMPTY))
		return fail(msg, len, "must not be empty");
	if (*s != '\0' && k->type == CK_PATH && *s != '/')
		return fail(msg, len, "must be an absolute path, got \"%.80s\"",
		    s);
	if (*s != '\0' && (d = strdup(s)) == NULL)
		return fail(msg, len, "out of memory");
	free(*f);
	*f = d;
	return 0;
}

static int
set_int(struct config *c, const struct config_key *k, int64_t v, char *msg,
    size_t len)
{
	if (v < INT_MIN || v > INT_MAX)
		return fail(msg, len, "%" PRId64 " is out of range", v);
	if ((k->flags & CK_POSITIVE) && v <= 0)
		return fail(msg, len, "must be greater than 0, got %" PRId64,
		    v);
	if ((k->flags & CK_NONNEG) && v < 0)
		return fail(msg, len, "must not be negative, got %" PRId64, v);
	*(int *)config_field(c, k) = v;
	return 0;
}

static int
set_float(struct config *c, const struct config_key *k, double v, char *msg,
    size_t len)
{
	if (!isfinite(v))
		return fail(msg, len, "must be a finite number");
	if ((k->flags & CK_POSITIVE) && v <= 0)
		return fail(msg, len, "must be greater than 0, got %g", v);
	if ((k->flags & CK_NONNEG) && v < 0)
		return fail(msg, len, "must not be negative, got %g", v);
	*(double *)config_field(c, k) = v;
	return 0;
}

static int
set_duration(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	int64_t	 ms;

	if (*s == '-')
		return fail(msg, len, "must not be negative, got \"%.40s\"", s);
	if (config_parse_duration(s, &ms) == -1)
		return fail(msg, len, "invalid duration \"%.40s\" (use Go "
		    "syntax like \"30s\", \"5m\" or \"1h30m\", at least 1ms)",
		    s);
	if ((k->flags & CK_POSITIVE) && ms == 0)
		return fail(msg, len, "must be greater than 0");
	*(int64_t *)config_field(c, k) = ms;
	return 0;
}

static int
set_size_value(struct config *c, const struct config_key *k, uint64_t v,
    char *msg, size_t len)
{
	if ((k->flags & CK_POSITIVE) && v == 0)
		return fail(msg, len, "must be greater than 0");
	*(uint64_t *)config_field(c, k) = v;
	return 0;
}

static int
set_size(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	uint64_t	 v;

	if (*s == '\0')
		return set_size_value(c, k, 0, msg, len);
	if (*s == '-')
		return fail(msg, len, "must not be negative, got \"%.40s\"", s);
	if (config_parse_size(s, &v) == -1)
		return fail(msg, len, "invalid size \"%.40s\" (use a number of "
		    "bytes or a number with k, m, g or t, like \"512m\")", s);
	return set_size_value(c, k, v, msg, len);
}

static int
set_list_tval(struct config *c, const struct config_key *k,
    const struct tval *tv, char *msg, size_t len)
{
	struct strlist	 l = { NULL, 0 };
	char		 got[96];
	size_t		 i;

	for (i = 0; i < tv->n; i++) {
		if (tv->v[i]->type != TV_STRING) {
			tval_describe(tv->v[i], 0, got, sizeof(got));
			config_strlist_free(&l);
			return fail(msg, len, "element %zu: expected a string, "
			    "got %s", i + 1, got);
		}
		if (config_strlist_add(&l, tv->v[i]->s) == -1) {
			config_strlist_free(&l);
			return fail(msg, len, "out of memory");
		}
	}
	config_strlist_free(config_field(c, k));
	*(struct strlist *)config_field(c, k) = l;
	return 0;
}

static int
set_map_tval(struct config *c, const struct config_key *k,
    const struct tval *tv, char *msg, size_t len)
{
	struct strmap	 m = { NULL, NULL, 0 };
	char		 got[96];
	size_t		 i;

	for (i = 0; i < tv->n; i++) {
		if (tv->v[i]->type != TV_STRING) {
			tval_describe(tv->v[i], 0, got, sizeof(got));
			config_strmap_free(&m);
			return fail(msg, len, "%.64s: expected a string, got "
			    "%s", tv->k[i], got);
		}
		if (config_strmap_add(&m, tv->k[i], tv->v[i]->s) == -1) {
			config_strmap_free(&m);
			return fail(msg, len, "out of memory");
		}
	}
	config_strmap_free(config_field(c, k));
	*(struct strmap *)config_field(c, k) = m;
	return 0;
}

/* One field of an array-of-tables element; the caller checks the name. */
int
config_tables_set(const struct config_key *k, void *elem, const char *field,
    const char *value)
{
	const struct ck_tables	*t = k->tables;
	char			**f;
	int			 i;

	for (i = 0; i < 2; i++) {
		if (strcmp(t->field[i], field) != 0)
			continue;
		f = (char **)((char *)elem + t->field_off[i]);
		free(*f);
		if ((*f = strdup(value)) == NULL)
			return -1;
		return 0;
	}
	return -1;
}

int
config_tables_field(const struct config_key *k, const char *field)
{
	return strcmp(k->tables->field[0], field) == 0 ||
	    strcmp(k->tables->field[1], field) == 0;
}

static int
set_tables_elem(struct config *c, const struct config_key *k,
    const struct tval *e, size_t idx, char *msg, size_t len)
{
	void	*elem;
	char	 got[96];
	size_t	 i;

	if (e->type != TV_TABLE) {
		tval_describe(e, 0, got, sizeof(got));
		return fail(msg, len, "entry %zu: expected an inline table, "
		    "got %s", idx + 1, got);
	}
	if ((elem = config_tables_add(c, k)) == NULL)
		return fail(msg, len, "out of memory");
	for (i = 0; i < e->n; i++) {
		if (!config_tables_field(k, e->k[i]))
			return fail(msg, len, "entry %zu: unknown key "
			    "\"%.64s\" (expected %s and %s)", idx + 1, e->k[i],
			    k->tables->field[0], k->tables->field[1]);
		if (e->v[i]->type != TV_STRING) {
			tval_describe(e->v[i], 0, got, sizeof(got));
			return fail(msg, len, "entry %zu: %s: expected a "
			    "string, got %s", idx + 1, e->k[i], got);
		}
		if (config_tables_set(k, elem, e->k[i], e->v[i]->s) == -1)
			return fail(msg, len, "out of memory");
	}
	return 0;
}

static int
set_tables_tval(struct config *c, const struct config_key *k,
    const struct tval *tv, char *msg, size_t len)
{
	size_t	 i;

	tables_free(c, k);
	for (i = 0; i < tv->n; i++)
		if (set_tables_elem(c, k, tv->v[i], i, msg, len) == -1)
			return -1;
	return 0;
}

int
config_set_tval(struct config *c, const struct config_key *k,
    const struct tval *tv, char *msg, size_t len)
{
	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		if (tv->type != TV_STRING)
			break;
		return set_string(c, k, tv->s, msg, len);
	case CK_BOOL:
		if (tv->type != TV_BOOLEAN)
			break;
		*(int *)config_field(c, k) = tv->b;
		return 0;
	case CK_INT:
		if (tv->type != TV_INTEGER)
			break;
		return set_int(c, k, tv->i, msg, len);
	case CK_FLOAT:
		if (tv->type == TV_INTEGER)
			return set_float(c, k, (double)tv->i, msg, len);
		if (tv->type != TV_FLOAT)
			break;
		return set_float(c, k, tv->f, msg, len);
	case CK_DURATION:
		if (tv->type == TV_INTEGER && tv->i == 0)
			return set_duration(c, k, "0", msg, len);
		if (tv->type != TV_STRING)
			break;
		return set_duration(c, k, tv->s, msg, len);
	case CK_SIZE:
		if (tv->type == TV_INTEGER && tv->i < 0)
			return fail(msg, len, "must not be negative, got %"
			    PRId64, tv->i);
		if (tv->type == TV_INTEGER)
			return set_size_value(c, k, tv->i, msg, len);
		if (tv->type != TV_STRING)
			break;
		return set_size(c, k, tv->s, msg, len);
	case CK_LIST:
		if (tv->type != TV_ARRAY)
			break;
		return set_list_tval(c, k, tv, msg, len);
	case CK_MAP:
		if (tv->type != TV_TABLE)
			break;
		return set_map_tval(c, k, tv, msg, len);
	case CK_TABLES:
		if (tv->type != TV_ARRAY)
			break;
		return set_tables_tval(c, k, tv, msg, len);
	}
	return mismatch(k, tv, msg, len);
}

/* ---- values from environment strings (and defaults) ---------------------- */

static int
parse_bool(const char *s, int *b)
{
	static const char	*yes[] = { "true", "1", "yes", "on" };
	static const char	*no[] = { "false", "0", "no", "off" };
	size_t			 i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b = 0;
			return 0;
		}
	}
	return -1;
}

static int
env_int(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || isspace((unsigned char)*s) || *end != '\0' ||
	    errno == ERANGE)
		return fail(msg, len, "expected an integer, got \"%.40s\"", s);
	return set_int(c, k, v, msg, len);
}

static int
env_float(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || isspace((unsigned char)*s) || *end != '\0' ||
	    errno == ERANGE)
		return fail(msg, len, "expected a number, got \"%.40s\"", s);
	return set_float(c, k, v, msg, len);
}

/* "a, b,c": items trimmed, empty ones dropped. */
static int
env_list(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	struct strlist	 l = { NULL, 0 };
	char		*dup, *p, *item, *e;

	if ((dup = strdup(s)) == NULL)
		return fail(msg, len, "out of memory");
	for (p = dup; (item = strsep(&p, ",")) != NULL; ) {
		while (isspace((unsigned char)*item))
			item++;
		for (e = item + strlen(item); e > item &&
		    isspace((unsigned char)e[-1]); e--)
			e[-1] = '\0';
		if (*item != '\0' && config_strlist_add(&l, item) == -1) {
			free(dup);
			config_strlist_free(&l);
			return fail(msg, len, "out of memory");
		}
	}
	free(dup);
	config_strlist_free(config_field(c, k));
	*(struct strlist *)config_field(c, k) = l;
	return 0;
}

/* Split "k:v" at the first colon (values such as URLs keep theirs). */
static int
env_pair(char *item, char **k, char **v)
{
	char	*colon;

	while (isspace((unsigned char)*item))
		item++;
	if ((colon = strchr(item, ':')) == NULL || colon == item)
		return -1;
	*colon = '\0';
	*k = item;
	*v = colon + 1;
	return 0;
}

static int
env_map(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	struct strmap	 m = { NULL, NULL, 0 };
	char		*dup, *p, *item, *mk, *mv;
	size_t		 i;

	if ((dup = strdup(s)) == NULL)
		return fail(msg, len, "out of memory");
	for (p = dup; (item = strsep(&p, ";")) != NULL; ) {
		if (*item == '\0')
			continue;
		if (env_pair(item, &mk, &mv) == -1) {
			fail(msg, len, "expected KEY:VALUE pairs separated by "
			    "';', got \"%.40s\"", item);
			goto fail;
		}
		for (i = 0; i < m.n; i++)
			if (strcmp(m.k[i], mk) == 0) {
				fail(msg, len, "duplicate key \"%.64s\"", mk);
				goto fail;
			}
		if (config_strmap_add(&m, mk, mv) == -1) {
			fail(msg, len, "out of memory");
			goto fail;
		}
	}
	free(dup);
	config_strmap_free(config_field(c, k));
	*(struct strmap *)config_field(c, k) = m;
	return 0;
 fail:
	free(dup);
	config_strmap_free(&m);
	return -1;
}

static int
env_tables(struct config *c, const struct config_key *k, const char *s,
    char *msg, size_t len)
{
	const struct ck_tables	*t = k->tables;
	char			*dup, *p, *item, *a, *b;
	void			*elem;

	if ((dup = strdup(s)) == NULL)
		return fail(msg, len, "out of memory");
	tables_free(c, k);
	for (p = dup; (item = strsep(&p, ";")) != NULL; ) {
		if (*item == '\0')
			continue;
		if (env_pair(item, &a, &b) == -1) {
			fail(msg, len, "expected %s:%s entries separated by "
			    "';', got \"%.40s\"", t->field[0], t->field[1],
			    item);
			goto fail;
		}
		if ((elem = config_tables_add(c, k)) == NULL ||
		    config_tables_set(k, elem, t->field[0], a) == -1 ||
		    config_tables_set(k, elem, t->field[1], b) == -1) {
			fail(msg, len, "out of memory");
			goto fail;
		}
	}
	free(dup);
	return 0;
 fail:
	free(dup);
	return -1;
}

int
config_set_string(struct config *c, const struct config_key *k,
    const char *s, char *msg, size_t len)
{
	int	 b;

	/* The file is checked as it is parsed; the environment is not. */
	if (!toml_valid_utf8(s))
		return fail(msg, len, "invalid UTF-8");
	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		return set_string(c, k, s, msg, len);
	case CK_BOOL:
		if (parse_bool(s, &b) == -1)
			return fail(msg, len, "expected true or false, got "
			    "\"%.40s\"", s);
		*(int *)config_field(c, k) = b;
		return 0;
	case CK_INT:
		return env_int(c, k, s, msg, len);
	case CK_FLOAT:
		return env_float(c, k, s, msg, len);
	case CK_DURATION:
		return set_duration(c, k, s, msg, len);
	case CK_SIZE:
		return set_size(c, k, s, msg, len);
	case CK_LIST:
		return env_list(c, k, s, msg, len);
	case CK_MAP:
		return env_map(c, k, s, msg, len);
	case CK_TABLES:
		return env_tables(c, k, s, msg, len);
	}
	return fail(msg, len, "unexpected type");
}

struct config *
config_new_defaults(void)
{
	struct config	*c;
	char		 msg[256];
	size_t		 i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->path = strdup("")) == NULL)
		goto fail;
	for (i = 0; i < config_nkeys; i++) {
		if (config_keys[i].def == NULL ||
		    config_keys[i].deprecated != NULL)
			continue;
		/* Only fails on allocation: the table's defaults are tested. */
		if (config_set_string(c, &config_keys[i], config_keys[i].def,
		    msg, sizeof(msg)) == -1)
			goto fail;
	}
	return c;
 fail:
	config_free(c);
	return NULL;
}
