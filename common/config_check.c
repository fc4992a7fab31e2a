/*
 * Cross-field validation of a loaded configuration.  Nothing here looks
 * at the file system or the network: writability, binaries and sockets
 * are the preflight's business.  Each message names the key and, where
 * known, the line or environment variable its value came from.
 */

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "config.h"
#include "config_keys.h"

struct vctx {
	const struct config		*c;
	const struct config_origin	*o;
	char				*err;
	size_t				 errlen;
	int				 failed;
};

/* The line or variable a key's value came from, also via an old name. */
static long
key_origin(const struct vctx *v, const struct config_key *k,
    const struct config_key **via)
{
	size_t	 i;

	*via = k;
	if (v->o == NULL || v->o->setat == NULL)
		return 0;
	if (v->o->setat[k - config_keys] != 0)
		return v->o->setat[k - config_keys];
	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].deprecated != NULL &&
		    config_key_target(&config_keys[i]) == k &&
		    v->o->setat[i] != 0) {
			*via = &config_keys[i];
			return v->o->setat[i];
		}
	return 0;
}

static void
vemit(struct vctx *v, const char *prefix, const char *fmt, va_list ap)
{
	size_t	 n = strlen(prefix);

	v->failed = 1;
	snprintf(v->err, v->errlen, "%s", prefix);
	if (n < v->errlen)
		vsnprintf(v->err + n, v->errlen - n, fmt, ap);
}

static void __attribute__((format(printf, 4, 5)))
verr(struct vctx *v, const char *sec, const char *key, const char *fmt, ...)
{
	const struct config_key	*k, *via;
	const char		*name;
	char			 prefix[512], var[128];
	va_list			 ap;
	long			 at = 0;

	if (v->failed)
		return;
	name = v->o != NULL && v->o->name != NULL ? v->o->name : "(config)";
	if ((k = config_key_find(sec, key)) != NULL)
		at = key_origin(v, k, &via);
	if (at > 0)
		snprintf(prefix, sizeof(prefix), "%s:%ld: [%s] %s: ", name, at,
		    via->section, via->name);
	else if (at == CONFIG_FROM_ENV) {
		config_env_name(via->section, via->name, var, sizeof(var));
		snprintf(prefix, sizeof(prefix), "environment: %s: ", var);
	} else
		snprintf(prefix, sizeof(prefix), "%s: [%s] %s: ", name, sec,
		    key);
	va_start(ap, fmt);
	vemit(v, prefix, fmt, ap);
	va_end(ap);
}

/* An element of an array of tables: [storage.data_mounts] entry i. */
static void __attribute__((format(printf, 6, 7)))
verr_elem(struct vctx *v, const char *sec, const char *key, size_t i,
    const char *field, const char *fmt, ...)
{
	const struct config_key	*k;
	const struct config_lines *el = NULL;
	const char		*name;
	char			 prefix[512], var[128];
	va_list			 ap;
	long			 at = 0;

	if (v->failed)
		return;
	name = v->o != NULL && v->o->name != NULL ? v->o->name : "(config)";
	k = config_key_find(sec, key);
	if (k != NULL && v->o != NULL && v->o->elines != NULL)
		el = &v->o->elines[k - config_keys];
	if (el != NULL && i < el->n)
		at = el->v[i];
	if (at > 0)
		snprintf(prefix, sizeof(prefix), "%s:%ld: [%s.%s] %s: ", name,
		    at, sec, key, field);
	else if (at == CONFIG_FROM_ENV) {
		config_env_name(sec, key, var, sizeof(var));
		snprintf(prefix, sizeof(prefix), "environment: %s: entry %zu: "
		    "%s: ", var, i + 1, field);
	} else
		snprintf(prefix, sizeof(prefix), "%s: [%s.%s] entry %zu: %s: ",
		    name, sec, key, i + 1, field);
	va_start(ap, fmt);
	vemit(v, prefix, fmt, ap);
	va_end(ap);
}

static int
one_of(const char *s, const char *const *set)
{
	for (; *set != NULL; set++)
		if (s != NULL && strcmp(s, *set) == 0)
			return 1;
	return 0;
}

static int
empty(const char *s)
{
	return s == NULL || *s == '\0';
}

static int
http_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 && s[7] != '\0') ||
	    (strncmp(s, "https://", 8) == 0 && s[8] != '\0');
}

static int
valid_port(const char *s)
{
	long	 n = 0;
	int	 digits = 0;

	for (; *s >= '0' && *s <= '9' && digits < 6; s++, digits++)
		n = n * 10 + (*s - '0');
	return *s == '\0' && digits > 0 && n >= 1 && n <= 65535;
}

static int
valid_hostname(const char *s)
{
	size_t	 label = 0, total = 0;
	char	 prev = '.';

	for (; *s != '\0'; s++, total++) {
		if (*s == '.') {
			if (label == 0 || prev == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)*s) || *s == '-') {
			if (label == 0 && *s == '-')
				return 0;
			if (++label > 63)
				return 0;
		} else
			return 0;
		prev = *s;
	}
	return total <= 253 && prev != '-';
}

/* "host:port", "[v6]:port" or ":port"; why says what is wrong. */
static int
valid_hostport(const char *s, const char **why)
{
	char		 host[256], buf[16];
	const char	*colon, *close;
	size_t		 n;

	if (*s == '[') {
		if ((close = strchr(s, ']')) == NULL ||
		    (n = close - s - 1) >= sizeof(host)) {
			*why = "missing ']' after an IPv6 address";
			return 0;
		}
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, buf) != 1) {
			*why = "invalid IPv6 address";
			return 0;
		}
		colon = close + 1;
		if (*colon != ':') {
			*why = "missing port (use [address]:port)";
			return 0;
		}
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			*why = "missing port (use host:port)";
			return 0;
		}
		if ((n = colon - s) >= sizeof(host)) {
			*why = "host name too long";
			return 0;
		}
		if (memchr(s, ':', n) != NULL) {
			*why = "IPv6 addresses must be in brackets, like "
			    "[::1]:8080";
			return 0;
		}
		memcpy(host, s, n);
		host[n] = '\0';
		if (n > 0 && strspn(host, "0123456789.") == n ?
		    inet_pton(AF_INET, host, buf) != 1 :
		    !valid_hostname(host)) {
			*why = "invalid host";
			return 0;
		}
	}
	if (!valid_port(colon + 1)) {
		*why = "port must be a number from 1 to 65535";
		return 0;
	}
	return 1;
}

static int
valid_cidr(const char *s)
{
	char		 addr[64], buf[16];
	const char	*slash;
	size_t		 n;
	long		 bits = 0;
	int		 digits = 0, max;

	if ((slash = strchr(s, '/')) == NULL ||
	    (n = slash - s) >= sizeof(addr))
		return 0;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		max = 128;
	else
		return 0;
	for (s = slash + 1; *s >= '0' && *s <= '9' && digits < 4; s++)
		bits = bits * 10 + (*s - '0'), digits++;
	return *s == '\0' && digits > 0 && bits <= max;
}

/* Names the worker environment gets from byd; worker_env cannot set them. */
static const char *const managed_env[] = {
	"PATH", "HOME", "TMPDIR", "LANG", "TZ", "R_LIBS", "R_PROFILE_USER",
	"SHINY_HOST", "SHINY_PORT", "VAULT_ADDR", "OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES", NULL
};

static int
valid_env_name(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

static void
check_worker_env(struct vctx *v)
{
	const struct strmap	*m = &v->c->server.worker_env;
	size_t			 i;

	for (i = 0; i < m->n; i++) {
		if (!valid_env_name(m->k[i]))
			verr(v, "server", "worker_env", "\"%.64s\" is not a "
			    "valid environment variable name", m->k[i]);
		else if (one_of(m->k[i], managed_env) ||
		    strncmp(m->k[i], "BLOCKYARD_", 10) == 0)
			verr(v, "server", "worker_env", "%s is set by byd and "
			    "cannot be overridden", m->k[i]);
	}
}

static void
check_bind(struct vctx *v, const char *key, const char *s)
{
	const char	*why;

	if (empty(s))
		verr(v, "server", key, "must not be empty");
	else if (!valid_hostport(s, &why))
		verr(v, "server", key, "invalid address \"%.80s\": %s", s, why);
}

static void
check_server(struct vctx *v)
{
	static const char *const levels[] = { "trace", "debug", "info",
	    "warn", "warning", "error", NULL };
	const struct config	*c = v->c;
	struct sockaddr_un	 sun;
	size_t			 i;

	if (c->server.backend != NULL && strcmp(c->server.backend, "docker")
	    == 0)
		verr(v, "server", "backend", "byd supports only the process "
		    "backend");
	else if (c->server.backend == NULL ||
	    strcmp(c->server.backend, "process") != 0)
		verr(v, "server", "backend", "unknown backend \"%.40s\": byd "
		    "supports only the process backend",
		    c->server.backend ? c->server.backend : "");
	check_bind(v, "bind", c->server.bind);
	if (c->server.management_bind != NULL) {
		check_bind(v, "management_bind", c->server.management_bind);
		if (c->server.bind != NULL && strcmp(c->server.bind,
		    c->server.management_bind) == 0)
			verr(v, "server", "management_bind", "must differ "
			    "from bind");
	}
	if (!one_of(c->server.log_level, levels))
		verr(v, "server", "log_level", "unknown level \"%.40s\" "
		    "(trace, debug, info, warn, warning or error)",
		    c->server.log_level ? c->server.log_level : "");
	if (c->server.external_url != NULL && !http_url(c->server.external_url))
		verr(v, "server", "external_url", "must start with http:// or "
		    "https://");
	for (i = 0; i < c->server.trusted_proxies.n; i++)
		if (!valid_cidr(c->server.trusted_proxies.v[i]))
			verr(v, "server", "trusted_proxies", "entry %zu: "
			    "\"%.80s\" is not a CIDR like 10.0.0.0/8", i + 1,
			    c->server.trusted_proxies.v[i]);
	check_worker_env(v);
	if (empty(c->server.user))
		verr(v, "server", "user", "must not be empty");
	if (empty(c->server.control_socket) || c->server.control_socket[0] !=
	    '/')
		verr(v, "server", "control_socket", "must be an absolute path");
	else if (strlen(c->server.control_socket) >= sizeof(sun.sun_path))
		verr(v, "server", "control_socket", "longer than the %zu bytes "
		    "a Unix socket path may have", sizeof(sun.sun_path) - 1);
}

static void
check_process(struct vctx *v)
{
	const struct config	*c = v->c;
	long			 nports, nuids;

	if (c->process.port_range_start < 1 || c->process.port_range_start >
	    65535)
		verr(v, "process", "port_range_start", "must be from 1 to "
		    "65535");
	if (c->process.port_range_end < 1 || c->process.port_range_end > 65535)
		verr(v, "process", "port_range_end", "must be from 1 to 65535");
	if (c->process.port_range_end < c->process.port_range_start)
		verr(v, "process", "port_range_end", "must not be less than "
		    "port_range_start (%d)", c->process.port_range_start);
	if (c->process.worker_uid_range_start <= 0)
		verr(v, "process", "worker_uid_range_start", "must be greater "
		    "than 0");
	if (c->process.worker_uid_range_end <= 0)
		verr(v, "process", "worker_uid_range_end", "must be greater "
		    "than 0");
	if (c->process.worker_uid_range_end < c->process.worker_uid_range_start)
		verr(v, "process", "worker_uid_range_end", "must not be less "
		    "than worker_uid_range_start (%d)",
		    c->process.worker_uid_range_start);
	if (c->process.worker_gid <= 0)
		verr(v, "process", "worker_gid", "must be greater than 0");
	nports = (long)c->process.port_range_end - c->process.port_range_start
	    + 1;
	nuids = (long)c->process.worker_uid_range_end -
	    c->process.worker_uid_range_start + 1;
	if (nuids < nports)
		verr(v, "process", "worker_uid_range_end", "the uid range has "
		    "%ld uids but the port range %ld ports: every worker needs "
		    "its own uid", nuids, nports);
}

static int
valid_mount_name(const char *s)
{
	return *s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(s);
}

static void
check_storage(struct vctx *v)
{
	const struct config	*c = v->c;
	const struct data_mount	*m;
	size_t			 i, j;

	for (i = 0; i < c->storage.n_data_mounts; i++) {
		m = &c->storage.data_mounts[i];
		if (empty(m->name))
			verr_elem(v, "storage", "data_mounts", i, "name",
			    "required");
		else if (!valid_mount_name(m->name))
			verr_elem(v, "storage", "data_mounts", i, "name",
			    "\"%.64s\" may only have letters, digits, '_' and "
			    "'-'", m->name);
		if (empty(m->path) || m->path[0] != '/')
			verr_elem(v, "storage", "data_mounts", i, "path",
			    "must be an absolute path");
		for (j = 0; j < i && m->name != NULL; j++)
			if (c->storage.data_mounts[j].name != NULL &&
			    strcmp(c->storage.data_mounts[j].name, m->name)
			    == 0)
				verr_elem(v, "storage", "data_mounts", i,
				    "name", "\"%.64s\" is used twice", m->name);
	}
}

static void
check_database(struct vctx *v)
{
	const struct config	*c = v->c;
	const char		*d = c->database.driver;

	if (d == NULL || (strcmp(d, "sqlite") != 0 &&
	    strcmp(d, "postgres") != 0))
		verr(v, "database", "driver", "unknown driver \"%.40s\" "
		    "(sqlite or postgres)", d ? d : "");
	else if (strcmp(d, "sqlite") == 0 && empty(c->database.path))
		verr(v, "database", "path", "required when driver = "
		    "\"sqlite\"");
	else if (strcmp(d, "postgres") == 0 && empty(c->database.url))
		verr(v, "database", "url", "required when driver = "
		    "\"postgres\"");
	if (c->database.vault_role != NULL && (!c->vault.present || d == NULL
	    || strcmp(d, "postgres") != 0))
		verr(v, "database", "vault_role", "requires [vault] and driver "
		    "= \"postgres\"");
}

static void
check_oidc(struct vctx *v)
{
	static const char *const roles[] = { "viewer", "publisher", NULL };
	const struct config	*c = v->c;

	if (!c->oidc.present)
		return;
	/*
	 * Until OIDC is built, [oidc] may only name the bootstrap admin:
	 * its other keys are refused as not built when they are read.
	 */
	if (config_not_built(config_key_find("oidc", "issuer_url"), NULL) !=
	    NULL) {
		if (empty(c->oidc.initial_admin))
			verr(v, "oidc", "initial_admin", "required: OIDC is not "
			    "built yet in this version of byd, so [oidc] may "
			    "only set initial_admin");
		return;
	}
	if (empty(c->oidc.issuer_url))
		verr(v, "oidc", "issuer_url", "required when [oidc] is set");
	else if (!http_url(c->oidc.issuer_url))
		verr(v, "oidc", "issuer_url", "must start with http:// or "
		    "https://");
	if (empty(c->oidc.client_id))
		verr(v, "oidc", "client_id", "required when [oidc] is set");
	if (empty(c->oidc.client_secret))
		verr(v, "oidc", "client_secret", "required when [oidc] is set");
	if (empty(c->server.external_url))
		verr(v, "server", "external_url", "required when [oidc] is "
		    "set");
	if (empty(c->server.session_secret) && !c->vault.present)
		verr(v, "server", "session_secret", "required when [oidc] is "
		    "set without [vault]");
	if (!one_of(c->oidc.default_role, roles))
		verr(v, "oidc", "default_role", "must be viewer or publisher%s",
		    c->oidc.default_role != NULL && strcmp(c->oidc.default_role,
		    "admin") == 0 ? " (make admins with initial_admin)" : "");
}

static int
valid_service_id(const char *s)
{
	return strlen(s) <= 64 && valid_mount_name(s);
}

static void
check_vault_services(struct vctx *v)
{
	const struct config		*c = v->c;
	const struct vault_service	*s;
	size_t				 i, j;

	for (i = 0; i < c->vault.n_services; i++) {
		s = &c->vault.services[i];
		if (empty(s->id))
			verr_elem(v, "vault", "services", i, "id", "required");
		else if (!valid_service_id(s->id))
			verr_elem(v, "vault", "services", i, "id", "\"%.64s\" "
			    "may only have up to 64 letters, digits, '_' and "
			    "'-'", s->id);
		if (empty(s->label))
			verr_elem(v, "vault", "services", i, "label",
			    "required");
		for (j = 0; j < i && s->id != NULL; j++)
			if (c->vault.services[j].id != NULL &&
			    strcmp(c->vault.services[j].id, s->id) == 0)
				verr_elem(v, "vault", "services", i, "id",
				    "\"%.64s\" is used twice", s->id);
	}
}

static void
check_vault(struct vctx *v)
{
	const struct config	*c = v->c;

	if (!c->vault.present)
		return;
	if (empty(c->vault.address))
		verr(v, "vault", "address", "required when [vault] is set");
	else if (!http_url(c->vault.address))
		verr(v, "vault", "address", "must start with http:// or "
		    "https://");
	if (!c->oidc.present)
		verr(v, "vault", "address", "[vault] requires [oidc]");
	if (empty(c->vault.role_id) == empty(c->vault.admin_token))
		verr(v, "vault", "role_id", "set exactly one of role_id and "
		    "admin_token");
	if (c->vault.secret_id_wrapped && empty(c->vault.secret_id_file))
		verr(v, "vault", "secret_id_wrapped", "requires "
		    "secret_id_file");
	check_vault_services(v);
}

static void
check_redis(struct vctx *v)
{
	const char	*u = v->c->redis.url;

	if (!v->c->redis.present)
		return;
	if (empty(u))
		verr(v, "redis", "url", "required when [redis] is set");
	else if (strncmp(u, "redis://", 8) != 0 &&
	    strncmp(u, "rediss://", 9) != 0 && strncmp(u, "unix://", 7) != 0)
		verr(v, "redis", "url", "must start with redis://, rediss:// "
		    "or unix://");
}

/* "8090-8099" into two ports; 0 if malformed. */
static int
port_range(const char *s, int *lo, int *hi)
{
	char	 a[8], b[8];
	size_t	 n;

	n = strcspn(s, "-");
	if (s[n] != '-' || n >= sizeof(a) || strlen(s + n + 1) >= sizeof(b))
		return 0;
	memcpy(a, s, n);
	a[n] = '\0';
	strlcpy(b, s + n + 1, sizeof(b));
	if (!valid_port(a) || !valid_port(b))
		return 0;
	*lo = atoi(a);
	*hi = atoi(b);
	return *lo <= *hi;
}

static int
count_fields(const char *s)
{
	int	 n = 0;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		n++;
		while (*s != '\0' && *s != ' ' && *s != '\t')
			s++;
	}
	return n;
}

static void
check_update(struct vctx *v)
{
	static const char *const channels[] = { "stable", "main", NULL };
	const struct config	*c = v->c;
	int			 lo, hi;

	if (!c->update.present)
		return;
	if (!one_of(c->update.channel, channels))
		verr(v, "update", "channel", "must be stable or main");
	if (c->update.schedule != NULL && count_fields(c->update.schedule) != 5)
		verr(v, "update", "schedule", "must be a cron expression of 5 "
		    "fields");
	if (c->update.alt_bind_range == NULL ||
	    !port_range(c->update.alt_bind_range, &lo, &hi))
		verr(v, "update", "alt_bind_range", "must be a port range like "
		    "8090-8099");
	else if (lo <= c->process.port_range_end &&
	    hi >= c->process.port_range_start)
		verr(v, "update", "alt_bind_range", "overlaps [process] "
		    "port_range_start..port_range_end");
	if (!c->redis.present)
		verr(v, "update", "alt_bind_range", "[update] requires "
		    "[redis]");
}

static void
check_optional(struct vctx *v)
{
	const struct config	*c = v->c;

	check_oidc(v);
	check_vault(v);
	check_redis(v);
	check_update(v);
	if (c->board_storage.present) {
		if (empty(c->board_storage.postgrest_url))
			verr(v, "board_storage", "postgrest_url", "required "
			    "when [board_storage] is set");
		if (!c->vault.present || c->database.driver == NULL ||
		    strcmp(c->database.driver, "postgres") != 0)
			verr(v, "board_storage", "postgrest_url", "requires "
			    "[vault] and [database] driver = \"postgres\"");
	}
	if (c->audit.present && empty(c->audit.path))
		verr(v, "audit", "path", "required when [audit] is set");
}

int
config_check(const struct config *c, const struct config_origin *o,
    char *err, size_t errlen)
{
	struct vctx	 v = { c, o, err, errlen, 0 };

	check_server(&v);
	check_process(&v);
	check_storage(&v);
	check_database(&v);
	check_optional(&v);
	return v.failed ? -1 : 0;
}
