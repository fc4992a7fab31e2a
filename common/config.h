/*
 * Configuration: one TOML file plus BLOCKYARD_<SECTION>_<FIELD>
 * environment overrides.  byd parses and validates it; the helpers get the
 * effective configuration from byd as JSON (config_to_json and
 * config_from_json) and never read the file themselves.
 *
 * Durations are kept in milliseconds, sizes in bytes.  A string that is not
 * set is NULL.  Optional sections have a "present" flag.
 */

#ifndef BY_CONFIG_H
#define BY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct strlist {
	char		**v;
	size_t		  n;
};

struct strmap {			/* ordered key/value pairs */
	char		**k;
	char		**v;
	size_t		  n;
};

struct data_mount {
	char		*name;
	char		*path;
};

struct vault_service {
	char		*id;
	char		*label;
};

struct config {
	char		*path;		/* file it came from ("" if none) */
	struct strlist	 warnings;	/* deprecated keys, ignored sections */

	struct {
		char		*bind;			/* 127.0.0.1:8080 */
		char		*backend;		/* process */
		int		 skip_preflight;
		uint64_t	 default_memory_limit;	/* 0 = unlimited */
		double		 default_cpu_limit;	/* 0 = unlimited */
		char		*management_bind;
		int64_t		 shutdown_timeout;	/* 30s */
		int64_t		 drain_timeout;		/* 0 = unset */
		char		*log_level;		/* info */
		char		*session_secret;
		char		*external_url;
		struct strlist	 trusted_proxies;
		char		*bootstrap_token;
		struct strmap	 worker_env;
		char		*user;			/* blockyard */
		char		*control_socket;	/* /run/blockyard/byd.sock */
	} server;

	struct {
		int		 present;
		char		*socket;
		char		*image;
		int		 shiny_port;
		char		*pak_version;
		char		*service_network;
		char		*runtime;
		struct strmap	 runtime_defaults;
	} docker;

	struct {
		char		*bwrap_path;		/* /usr/bin/bwrap */
		char		*r_path;		/* /usr/bin/R */
		char		*seccomp_profile;
		int		 port_range_start;	/* 10000 */
		int		 port_range_end;	/* 10999 */
		int		 worker_uid_range_start;/* 60000 */
		int		 worker_uid_range_end;	/* 60999 */
		int		 worker_gid;		/* 65534 */
		int		 skip_metadata_check;
		int64_t		 build_timeout;		/* 30m */
		struct strlist	 repositories;		/* [] = CRAN */
	} process;

	struct {
		char		*bundle_server_path;	/* /data/bundles */
		char		*bundle_worker_path;	/* /app */
		int		 bundle_retention;	/* 50 */
		uint64_t	 max_bundle_size;	/* 104857600 */
		int64_t		 soft_delete_retention;	/* 0 */
		int64_t		 store_retention;	/* 0 */
		struct data_mount *data_mounts;
		size_t		 n_data_mounts;
	} storage;

	struct {
		char		*driver;		/* sqlite */
		char		*path;			/* /data/db/blockyard.db */
		char		*url;
		char		*vault_mount;		/* database */
		char		*vault_role;
	} database;

	struct {
		int64_t		 ws_cache_ttl;		/* 60s */
		int64_t		 health_interval;	/* 15s */
		int64_t		 worker_start_timeout;	/* 60s */
		int		 max_workers;		/* 100 */
		int64_t		 log_retention;		/* 1h */
		int64_t		 session_idle_ttl;	/* 0 */
		int64_t		 idle_worker_timeout;	/* 5m */
		int64_t		 http_forward_timeout;	/* 5m */
		double		 max_cpu_limit;		/* 16.0 */
		int64_t		 transfer_timeout;	/* 60s */
		int64_t		 session_max_lifetime;	/* 0 */
	} proxy;

	struct {
		int		 present;
		char		*url;
		char		*key_prefix;		/* blockyard: */
	} redis;

	struct {
		int		 present;
		char		*schedule;
		char		*channel;		/* stable */
		int64_t		 watch_period;
		char		*alt_bind_range;	/* 8090-8099 */
		int64_t		 drain_idle_wait;	/* 5m */
	} update;

	struct {
		int		 present;
		char		*issuer_url;
		char		*issuer_discovery_url;
		char		*client_id;
		char		*client_secret;
		int64_t		 cookie_max_age;	/* 24h */
		char		*initial_admin;
		char		*default_role;		/* viewer */
	} oidc;

	struct {
		int		 present;
		char		*address;
		char		*role_id;
		char		*admin_token;
		int64_t		 token_ttl;		/* 1h */
		char		*jwt_auth_path;		/* jwt */
		char		*secret_id_file;
		int		 secret_id_wrapped;
		char		*ca_cert;
		int		 skip_policy_scope_check;
		struct vault_service *services;
		size_t		 n_services;
	} vault;

	struct {
		int		 present;
		char		*postgrest_url;
	} board_storage;

	struct {
		int		 present;
		char		*path;
	} audit;

	struct {
		int		 present;
		int		 metrics_enabled;
		char		*otlp_endpoint;
	} telemetry;
};

/* Where an environment variable comes from; tests pass their own. */
typedef const char *(*config_getenv_fn)(const char *name, void *arg);

/*
 * Load a file (path may be NULL: defaults plus environment only), apply
 * the environment overrides and validate.  On failure returns NULL and
 * writes one line to err: "FILE:LINE: [section] key: what is wrong"
 * (without LINE when the problem is not tied to a line, e.g. it came
 * from the environment: "environment: BLOCKYARD_SERVER_BIND: ...").
 * getenv_fn NULL means the process environment.
 */
struct config	*config_load(const char *path, config_getenv_fn getenv_fn,
		    void *arg, char *err, size_t errlen);
/* The same from a string; name is used in error messages. */
struct config	*config_load_string(const char *text, const char *name,
		    config_getenv_fn getenv_fn, void *arg, char *err,
		    size_t errlen);
void		 config_free(struct config *);

/* Warnings found while loading (deprecated keys, ignored sections). */
size_t		 config_nwarnings(const struct config *);
const char	*config_warning(const struct config *, size_t);

/* The effective configuration as sent from byd to the helpers. */
json_t		*config_to_json(const struct config *);
struct config	*config_from_json(const json_t *, char *err, size_t errlen);
/* The same with secrets replaced by "********", for showing to people. */
json_t		*config_to_json_redacted(const struct config *);
/* Nonzero if both hold the same values (e.g. to tell if a reload changed). */
int		 config_equal(const struct config *, const struct config *);

/* Value parsers, also used for API input.  0 on success, -1 on error. */
int		 config_parse_duration(const char *, int64_t *ms);
int		 config_parse_size(const char *, uint64_t *bytes);
/* Format a duration in Go syntax ("1h30m0s" style, "0s"). */
void		 config_format_duration(int64_t ms, char *buf, size_t len);

#endif /* BY_CONFIG_H */
