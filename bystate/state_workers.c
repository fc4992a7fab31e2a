/*
 * Workers: what byproxy asks bystate before it asks byspawn to start,
 * list, stop or read a worker of an app (the caller's relation, the
 * bundle to run, the limits that apply).
 */

#include <sys/types.h>

#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

struct worker_row {
	int	 found;
	int	 enabled;
	char	 bundle[UUID_LEN];
	char	 memory[32];
	double	 cpu;
	int	 has_cpu;
};

static int
worker_row(const struct db_row *r, void *arg)
{
	struct worker_row	*w = arg;

	w->found = 1;
	w->enabled = (int)db_row_int(r, 0);
	if (!db_row_isnull(r, 1))
		strlcpy(w->bundle, db_row_text(r, 1), sizeof(w->bundle));
	if (!db_row_isnull(r, 2))
		strlcpy(w->memory, db_row_text(r, 2), sizeof(w->memory));
	if (!db_row_isnull(r, 3)) {
		w->cpu = db_row_real(r, 3);
		w->has_cpu = 1;
	}
	return 1;
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
	uint64_t		 mem = proc_conf->server.default_memory_limit;
	double			 cpu = proc_conf->server.default_cpu_limit;

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
	if (w.memory[0] != '\0' && memory_limit_parse(w.memory, &mem) == -1)
		mem = proc_conf->server.default_memory_limit;
	if (w.has_cpu && w.cpu > 0)
		cpu = w.cpu;
	api_ok(ctx, 200, json_pack("{s:s s:s s:I s:f}", "app_id", app.id,
	    "bundle_id", w.bundle, "memory_limit", (json_int_t)mem,
	    "cpu_limit", cpu));
}

/* Per-app worker endpoints: collaborator or better, the app's id. */
static void
op_workers_check(struct api_ctx *ctx)
{
	struct app_ref	 app;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	api_ok(ctx, 200, json_pack("{s:s}", "app_id", app.id));
}

const struct api_op api_worker_ops[] = {
	{ "workers.prepare",	API_USER,	op_workers_prepare },
	{ "workers.check",	API_USER,	op_workers_check },
	{ NULL,			0,		NULL }
};
