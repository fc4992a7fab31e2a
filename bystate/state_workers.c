/*
 * Workers: what byproxy asks bystate before it asks byspawn to start,
 * list, stop or read a worker of an app (the caller's relation, the
 * bundle to run, the limits that apply), and what it asks before it
 * proxies /app/{name}/ (proxy.resolve: the app and its limits).
 */

#include <sys/types.h>

#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

#define RECENT_VIEWS	(7 * 24 * 3600)	/* runtime's recent_views */

struct worker_limits {
	char	 memory[32];
	double	 cpu;
	int	 has_cpu;
};

/* memory_limit and cpu_limit of an app from columns col and col + 1 */
static void
limits_row(const struct db_row *r, int col, struct worker_limits *l)
{
	memset(l, 0, sizeof(*l));
	if (!db_row_isnull(r, col))
		strlcpy(l->memory, db_row_text(r, col), sizeof(l->memory));
	if (!db_row_isnull(r, col + 1)) {
		l->cpu = db_row_real(r, col + 1);
		l->has_cpu = 1;
	}
}

/*
 * The limits a worker of the app gets: the app's own where it has one
 * that makes sense (a memory_limit that parses, a cpu_limit above 0),
 * else the server's defaults.
 */
static void
limits_apply(const struct worker_limits *l, uint64_t *mem, double *cpu)
{
	uint64_t	 m;

	*mem = proc_conf != NULL ? proc_conf->server.default_memory_limit : 0;
	*cpu = proc_conf != NULL ? proc_conf->server.default_cpu_limit : 0;
	if (l->memory[0] != '\0' && memory_limit_parse(l->memory, &m) == 0)
		*mem = m;
	if (l->has_cpu && l->cpu > 0)
		*cpu = l->cpu;
}

struct worker_row {
	int			 found;
	int			 enabled;
	char			 bundle[UUID_LEN];
	struct worker_limits	 limits;
};

static int
worker_row(const struct db_row *r, void *arg)
{
	struct worker_row	*w = arg;

	w->found = 1;
	w->enabled = (int)db_row_int(r, 0);
	if (!db_row_isnull(r, 1))
		strlcpy(w->bundle, db_row_text(r, 1), sizeof(w->bundle));
	limits_row(r, 2, &w->limits);
	return 1;
}

/*
 * The limits a worker or a dependency build of the app gets, and its
 * active bundle (bundle may be NULL).  0, or -1 when the app is gone.
 */
int
app_limits(const char *app_id, uint64_t *mem, double *cpu, char *bundle,
    size_t len)
{
	struct worker_row	 w;
	struct db_param		 p[1];

	memset(&w, 0, sizeof(w));
	p[0] = DB_PTEXT(app_id);
	if (db_query(state_handle(), "SELECT enabled, active_bundle, "
	    "memory_limit, cpu_limit FROM apps WHERE id = $1", p, 1,
	    worker_row, &w) == -1 || !w.found)
		return -1;
	limits_apply(&w.limits, mem, cpu);
	if (bundle != NULL)
		strlcpy(bundle, w.bundle, len);
	return 0;
}

/*
 * POST /api/v1/apps/{id}/start, first half: may the caller start a
 * worker, and with which bundle and limits (the app's own, else the
 * server's defaults)?  byspawn does the rest.
 */
static void
op_workers_prepare(struct api_ctx *ctx)
{
	struct app_ref		 app;
	struct worker_row	 w;
	struct db_param		 p[1];
	uint64_t		 mem;
	double			 cpu;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	memset(&w, 0, sizeof(w));
	p[0] = DB_PTEXT(app.id);
	if (db_query(state_handle(), "SELECT enabled, active_bundle, "
	    "memory_limit, cpu_limit FROM apps WHERE id = $1", p, 1,
	    worker_row, &w) == -1 || !w.found) {
		api_internal(ctx, "workers.prepare");
		return;
	}
	if (!w.enabled) {
		api_fail(ctx, 503, "service_unavailable", "app is disabled");
		return;
	}
	if (w.bundle[0] == '\0') {
		api_fail(ctx, 409, "conflict", "app has no active bundle");
		return;
	}
	limits_apply(&w.limits, &mem, &cpu);
	api_ok(ctx, 200, json_pack("{s:s s:s s:I s:f}", "app_id", app.id,
	    "bundle_id", w.bundle, "memory_limit", (json_int_t)mem,
	    "cpu_limit", cpu));
}

static int
views_row(const struct db_row *r, void *arg)
{
	json_t	*o = arg;

	json_object_set_new(o, "total_views", json_integer(db_row_int(r, 0)));
	json_object_set_new(o, "recent_views", json_integer(db_row_int(r, 1)));
	json_object_set_new(o, "unique_visitors",
	    json_integer(db_row_int(r, 2)));
	json_object_set_new(o, "last_deployed_at", db_row_isnull(r, 3) ?
	    json_null() : json_string(db_row_text(r, 3)));
	return 1;
}

/*
 * The runtime answer's numbers from the sessions rows of an app (one
 * row per proxied session, ever) and its active bundle, set into o.
 */
static int
app_views(struct db *db, const char *id, json_t *o)
{
	struct db_param	 p[2];
	char		 since[32];

	db_timestamp_offset(since, sizeof(since), -RECENT_VIEWS);
	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(since);
	return db_query(db, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN "
	    "started_at >= $2 THEN 1 ELSE 0 END), 0), COUNT(DISTINCT user_sub), "
	    "(SELECT b.deployed_at FROM apps a JOIN bundles b ON "
	    "b.id = a.active_bundle WHERE a.id = $1) FROM sessions "
	    "WHERE app_id = $1", p, 2, views_row, o) == 1 ? 0 : -1;
}

/*
 * Per-app worker endpoints: collaborator or better, the app's id, and
 * for the runtime answer total_views, recent_views (7 days),
 * unique_visitors (signed-in users) and last_deployed_at.
 */
static void
op_workers_check(struct api_ctx *ctx)
{
	struct app_ref	 app;
	json_t		*o;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	o = json_pack("{s:s}", "app_id", app.id);
	if (app_views(state_handle(), app.id, o) == -1) {
		json_decref(o);
		api_internal(ctx, "workers.check");
		return;
	}
	api_ok(ctx, 200, o);
}

/*
 * Live apps by UUID, then by name, then by alias, in one round trip;
 * each branch is an index lookup (primary key, the partial unique
 * index on live names, the unique alias name).
 */
#define RESOLVE_COLS	"a.id, a.name, a.enabled, a.active_bundle, "	\
			"a.max_workers_per_app, a.max_sessions_per_worker, " \
			"a.pre_warmed_sessions, a.memory_limit, a.cpu_limit"
enum {
	R_PRIO, R_ID, R_NAME, R_ENABLED, R_BUNDLE, R_MAXW, R_MAXS, R_PREWARM,
	R_MEM, R_CPU, R_PHASE
};
static const char resolve_sql[] =
    "SELECT 0, " RESOLVE_COLS ", NULL FROM apps a "
    "WHERE a.id = $1 AND a.deleted_at IS NULL "
    "UNION ALL SELECT 1, " RESOLVE_COLS ", NULL FROM apps a "
    "WHERE a.name = $1 AND a.deleted_at IS NULL "
    "UNION ALL SELECT 2, " RESOLVE_COLS ", al.phase FROM app_aliases al "
    "JOIN apps a ON a.id = al.app_id "
    "WHERE al.name = $1 AND a.deleted_at IS NULL "
    "ORDER BY 1 LIMIT 1";

static json_t *
nullable_int(const struct db_row *r, int c)
{
	return db_row_isnull(r, c) ? json_null() :
	    json_integer(db_row_int(r, c));
}

static int
resolve_row(const struct db_row *r, void *arg)
{
	json_t			**out = arg;
	struct worker_limits	 l;
	const char		*phase = db_row_text(r, R_PHASE);
	uint64_t		 mem;
	double			 cpu;
	int			 redirect;

	limits_row(r, R_MEM, &l);
	limits_apply(&l, &mem, &cpu);
	redirect = phase != NULL && strcmp(phase, "redirect") == 0;
	*out = json_pack("{s:s s:s s:b s:o s:o s:I s:I s:I s:f s:o}",
	    "id", db_row_text(r, R_ID), "name", db_row_text(r, R_NAME),
	    "enabled", db_row_int(r, R_ENABLED) != 0,
	    "active_bundle", db_row_isnull(r, R_BUNDLE) ? json_null() :
	    json_string(db_row_text(r, R_BUNDLE)),
	    "max_workers_per_app", nullable_int(r, R_MAXW),
	    "max_sessions_per_worker", (json_int_t)(db_row_isnull(r, R_MAXS) ?
	    1 : db_row_int(r, R_MAXS)),
	    "pre_warmed_sessions", (json_int_t)db_row_int(r, R_PREWARM),
	    "memory_limit", (json_int_t)mem, "cpu_limit", cpu,
	    "redirect", redirect ? json_string(db_row_text(r, R_NAME)) :
	    json_null());
	return 1;
}

/*
 * /app/{name}/: which app, by UUID, live name or alias.  An alias in
 * its redirect phase answers the canonical name in "redirect" (byproxy
 * answers 301); a soft-deleted app is not found.  Disabled apps are
 * found: byproxy answers 503 for them.
 */
static void
op_proxy_resolve(struct api_ctx *ctx)
{
	const char	*name = op_arg(ctx, "name");
	struct db_param	 p[1];
	json_t		*data = NULL;

	if (name == NULL || *name == '\0') {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	p[0] = DB_PTEXT(name);
	if (db_query(state_handle(), resolve_sql, p, 1, resolve_row,
	    &data) == -1) {
		json_decref(data);
		api_internal(ctx, "proxy.resolve");
		return;
	}
	if (data == NULL) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	api_ok(ctx, 200, data);
}

static int
prewarm_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, json_string(db_row_text(r, 0)));
	return 0;
}

/*
 * Apps that want workers started ahead of demand: byproxy asks at
 * start-up and now and then, so an app nobody opened yet is warm too.
 */
static void
op_proxy_prewarm(struct api_ctx *ctx)
{
	json_t	*ids = json_array();

	if (db_query(state_handle(), "SELECT id FROM apps "
	    "WHERE pre_warmed_sessions > 0 AND deleted_at IS NULL "
	    "AND active_bundle IS NOT NULL ORDER BY id", NULL, 0,
	    prewarm_row, ids) == -1) {
		json_decref(ids);
		api_internal(ctx, "proxy.prewarm");
		return;
	}
	api_ok(ctx, 200, json_pack("{s:o}", "apps", ids));
}

const struct api_op api_worker_ops[] = {
	{ "workers.prepare",	API_USER,	op_workers_prepare },
	{ "workers.check",	API_USER,	op_workers_check },
	{ "proxy.resolve",	API_PROXY,	op_proxy_resolve },
	{ "proxy.prewarm",	API_PROXY,	op_proxy_prewarm },
	{ NULL,			0,		NULL }
};
