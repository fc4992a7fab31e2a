/*
 * Worker control by message (MSG_SPAWN_CALL): byproxy asks after
 * bystate has checked the caller; byd forwards byctl's requests.  The
 * answer has the shape of bystate's: {"status","data"} or
 * {"status","error","message"}.
 *
 *	workers.start	{app_id, bundle_id, memory_limit, cpu_limit}
 *	workers.list	{app_id?}
 *	workers.stop	{worker_id, app_id?}
 *	tasks.get	{id, lines?, from?}
 *	builds.start	{app_id, bundle_id, task_id, memory_limit, cpu_limit}
 *	builds.refresh	{app_id, bundle_id, memory_limit, cpu_limit}
 *	builds.rollback	{app_id, bundle_id}
 * (the builds.* ops live in spawn_build.c)
 */

#include <sys/types.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "byspawn.h"
#include "uuid.h"

#define STOP_GRACE_MS	5000

json_t *
spawn_fail(int status, const char *code, const char *message)
{
	return json_pack("{s:i s:s s:s}", "status", status, "error", code,
	    "message", message);
}

json_t *
spawn_ok(int status, json_t *data)
{
	return json_pack("{s:i s:o}", "status", status, "data", data);
}

static void	 worker_exit_notify(const struct worker *);

static void
worker_exited(struct worker *w, void *arg)
{
	log_info("worker %s of app %s exited: code %d, signal %d%s%s", w->id,
	    w->app_id, w->exit.code, w->exit.signal, w->exit.oom ?
	    ", out of memory" : "", w->exit.stopped ? " (stopped)" : "");
	logsub_worker_exited(w);
	worker_exit_notify(w);
}

/* byproxy places sessions on workers: it must know when one is gone. */
static void
worker_exit_notify(const struct worker *w)
{
	struct msg_worker	 m;

	memset(&m, 0, sizeof(m));
	strlcpy(m.worker_id, w->id, sizeof(m.worker_id));
	strlcpy(m.app_id, w->app_id, sizeof(m.app_id));
	m.stopped = w->exit.stopped;
	m.code = w->exit.code;
	m.signal = w->exit.signal;
	m.oom = w->exit.oom;
	if (proc_send(PROC_PROXY, MSG_WORKER_EXITED, 0, -1, &m,
	    sizeof(m)) == -1)
		log_warnx("worker %s: cannot tell byproxy it exited", w->id);
}

/* The record's state says "running" once the app answered HTTP. */
static void
worker_answered(struct worker *w, int ok, int http_status, void *arg)
{
	if (!ok && w->state == WORKER_STARTING)
		log_warnx("worker %s of app %s did not answer HTTP within "
		    "worker_start_timeout", w->id, w->app_id);
}

static json_t *
op_start(json_t *args)
{
	struct worker_spec	 spec;
	struct worker		*w;
	const char		*app, *bundle;
	char			 id[MSG_ID_LEN], dir[PATH_MAX], err[512];
	char			 lib[PATH_MAX], mpath[PATH_MAX], rpath[PATH_MAX];
	json_t			*m;

	app = json_string_value(json_object_get(args, "app_id"));
	bundle = json_string_value(json_object_get(args, "bundle_id"));
	if (app == NULL || bundle == NULL || !msg_id_valid(app) ||
	    !msg_id_valid(bundle))
		return spawn_fail(400, "bad_request", "bad app or bundle id");
	snprintf(dir, sizeof(dir), "%s/%s/%s",
	    proc_conf->storage.bundle_server_path, app, bundle);
	if (access(dir, F_OK) == -1)
		return spawn_fail(409, "conflict",
		    "the active bundle has no files");
	uuid_v4(id, sizeof(id));
	memset(&spec, 0, sizeof(spec));
	spec.id = id;
	spec.app_id = app;
	spec.bundle_id = bundle;
	spec.bundle_dir = dir;
	/* its library first on R_LIBS, then the host's site library */
	spec.library_dir = bundle_library(app, bundle, lib, sizeof(lib));
	snprintf(mpath, sizeof(mpath), "%s/%s/%s.manifest.json",
	    proc_conf->storage.bundle_server_path, app, bundle);
	if ((m = manifest_load(mpath, err, sizeof(err))) != NULL) {
		if (bundle_r_path(m, rpath, sizeof(rpath), err,
		    sizeof(err)) == 0)
			spec.r_path = rpath;
		json_decref(m);
	}
	spec.memory_limit = (uint64_t)json_integer_value(json_object_get(args,
	    "memory_limit"));
	spec.cpu_limit = json_number_value(json_object_get(args, "cpu_limit"));
	spec.on_exit = worker_exited;
	spec.on_log = logsub_line;
	if (worker_spawn(&spec, &w, err, sizeof(err)) == -1) {
		log_warnx("app %s: cannot start a worker: %s", app, err);
		if (strstr(err, "slot") != NULL || strstr(err, "free") != NULL)
			return spawn_fail(503, "service_unavailable",
			    "server at capacity");
		return spawn_fail(500, "internal_error",
		    "internal server error");
	}
	log_info("worker %s of app %s started on port %d", w->id, app,
	    w->port);
	if (worker_await_ready(w, (int)proc_conf->proxy.worker_start_timeout,
	    worker_answered, NULL) == -1)
		log_warnx("worker %s: cannot watch it start", w->id);
	return spawn_ok(200, json_pack("{s:s s:s s:i}", "worker_id", w->id,
	    "status", "starting", "port", w->port));
}

/*
 * Our record of a worker plus the fields of the reference's runtime
 * answer: status active|draining|ended, stats, sessions.
 */
static json_t *
worker_runtime_json(const struct worker *w)
{
	json_t	*o = worker_to_json(w), *usage;

	usage = json_object_get(o, "usage");
	json_object_set_new(o, "status", json_string(
	    w->state == WORKER_EXITED ? "ended" :
	    w->state == WORKER_STOPPING ? "draining" : "active"));
	if (w->state == WORKER_EXITED)
		json_object_set_new(o, "stats", json_null());
	else
		json_object_set_new(o, "stats", json_pack("{s:O? s:I}",
		    "memory_usage_bytes", json_object_get(usage,
		    "memory_bytes"), "memory_limit_bytes",
		    (json_int_t)w->memory_limit));
	json_object_set_new(o, "sessions", json_array());
	return o;
}

/*
 * The runtime answer: our workers of the app, and the numbers bystate
 * counted from its sessions rows (workers.check's answer, which
 * byproxy passes on as our arguments).
 */
static json_t *
op_list(json_t *args)
{
	static const char *const views[] = { "total_views", "recent_views",
	    "unique_visitors", "last_deployed_at" };
	const char	*app = json_string_value(json_object_get(args, "app_id"));
	struct worker	*w;
	json_t		*arr = json_array(), *res, *v;
	size_t		 i;

	TAILQ_FOREACH(w, &workers, entry) {
		/* build steps are the task's business, not the runtime's */
		if (w->build || (app != NULL && strcmp(app, w->app_id) != 0))
			continue;
		json_array_append_new(arr, worker_runtime_json(w));
	}
	/*
	 * byproxy adds the sessions it placed; bystate's view counts
	 * travel through in args.
	 */
	res = json_pack("{s:o s:i}", "workers", arr, "active_sessions", 0);
	for (i = 0; i < sizeof(views) / sizeof(views[0]); i++)
		if ((v = json_object_get(args, views[i])) != NULL)
			json_object_set(res, views[i], v);
	return spawn_ok(200, res);
}

static json_t *
op_stop(json_t *args)
{
	const char	*id = json_string_value(json_object_get(args,
			    "worker_id"));
	const char	*app = json_string_value(json_object_get(args, "app_id"));
	struct worker	*w;

	if (id == NULL || (w = worker_find(id)) == NULL ||
	    (app != NULL && strcmp(app, w->app_id) != 0))
		return spawn_fail(404, "not_found", "worker not found");
	if (w->state != WORKER_EXITED)
		worker_stop(w, STOP_GRACE_MS);
	return spawn_ok(200, worker_to_json(w));
}

static json_t *
op_task(json_t *args)
{
	const char	*id = json_string_value(json_object_get(args, "id"));
	json_t		*t;
	char		 msg[128];

	if ((t = task_to_json(id, json_is_true(json_object_get(args,
	    "lines")), (size_t)json_integer_value(json_object_get(args,
	    "from")))) == NULL) {
		snprintf(msg, sizeof(msg), "task %.64s not found",
		    id ? id : "");
		return spawn_fail(404, "not_found", msg);
	}
	return spawn_ok(200, t);
}

void
spawn_call(struct msgchan *c, struct msg *m)
{
	json_t		*req, *args, *res;
	json_error_t	 jerr;
	const char	*op;
	char		*s;

	if ((req = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
		fatalx("%s: bad spawn call: %s", c->name, jerr.text);
	op = json_string_value(json_object_get(req, "op"));
	args = json_object_get(req, "args");
	if (op == NULL)
		res = spawn_fail(400, "bad_request", "no op");
	else if (strcmp(op, "workers.start") == 0)
		res = op_start(args);
	else if (strcmp(op, "workers.list") == 0)
		res = op_list(args);
	else if (strcmp(op, "workers.stop") == 0)
		res = op_stop(args);
	else if (strcmp(op, "tasks.get") == 0)
		res = op_task(args);
	else if (strcmp(op, "builds.start") == 0)
		res = build_op_start(args);
	else if (strcmp(op, "builds.refresh") == 0)
		res = build_op_refresh(args);
	else if (strcmp(op, "builds.rollback") == 0)
		res = build_op_rollback(args);
	else {
		log_warnx("%s: unknown spawn op %s", c->name, op);
		res = spawn_fail(500, "internal_error", "internal server error");
	}
	json_decref(req);
	if ((s = json_dumps(res, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	json_decref(res);
	if (msgchan_send_str(c, MSG_SPAWN_RESULT, m->hdr.peerid, s) == -1)
		log_warn("%s: spawn result", c->name);
	free(s);
}
