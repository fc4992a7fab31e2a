/*
 * Bundle upload, POST /api/v1/apps/{id}/bundles, and the bundle list.
 *
 * The body is never held in memory: once bystate said the caller may
 * deploy to the app (bundles.begin), byspawn opens the archive file and
 * passes its fd here, and the body streams into it with backpressure.
 * byspawn then unpacks it as an unprivileged user and reads its
 * manifest; only a bundle that unpacked cleanly with a valid manifest
 * gets its row (bundles.create, pending), and byspawn then builds its
 * dependencies (builds.start), which makes it ready and active.  Anything that fails
 * on the way asks byspawn to discard the files, so a rejected upload
 * leaves nothing behind.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <bsd/string.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "byproxy.h"

#define TASK_POLL_MS	200	/* a running task's new log lines */

struct upload {
	TAILQ_ENTRY(upload)	 entry;
	uint32_t		 reqid;		/* towards byspawn */
	uint64_t		 handle;
	struct http_server	*srv;
	struct msg_bundle	 ids;
	int			 fd;
	uint64_t		 bytes;
};

static TAILQ_HEAD(, upload) uploads = TAILQ_HEAD_INITIALIZER(uploads);

static void
upload_free(struct upload *u)
{
	TAILQ_REMOVE(&uploads, u, entry);
	if (u->fd != -1)
		close(u->fd);
	free(u);
}

static void
upload_send(struct upload *u, uint32_t type)
{
	if (proc_send(PROC_SPAWN, type, u->reqid, -1, &u->ids,
	    sizeof(u->ids)) == -1)
		log_warn("bundle %s: %s", u->ids.bundle_id,
		    msg_type_name(type));
}

/* Give up on an upload: byspawn removes its files. */
static void
upload_discard(struct upload *u)
{
	upload_send(u, MSG_BUNDLE_DISCARD);
	upload_free(u);
}

static struct upload *
upload_find(uint32_t reqid)
{
	struct upload	*u;

	TAILQ_FOREACH(u, &uploads, entry)
		if (u->reqid == reqid)
			return u;
	return NULL;
}

static void
upload_data(struct http_request *req, struct evbuffer *buf, void *arg)
{
	struct upload	*u = arg;
	int		 n;

	/* a regular file: writes complete or fail, they do not block long */
	while (evbuffer_get_length(buf) > 0) {
		if ((n = evbuffer_write(buf, u->fd)) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("bundle %s: write", u->ids.bundle_id);
			http_error(req, 500, "internal_error",
			    "internal server error");
			upload_discard(u);
			return;
		}
		u->bytes += (uint64_t)n;
	}
}

static void
upload_error(struct http_request *req, enum http_body_error e, void *arg)
{
	struct upload	*u = arg;

	log_info("bundle %s: upload failed (%d) after %llu bytes",
	    u->ids.bundle_id, (int)e, (unsigned long long)u->bytes);
	upload_discard(u);
}

static void
upload_end(struct http_request *req, void *arg)
{
	struct upload	*u = arg;

	/* byspawn reads the file through its own descriptor */
	close(u->fd);
	u->fd = -1;
	log_debug("bundle %s: %llu bytes received", u->ids.bundle_id,
	    (unsigned long long)u->bytes);
	upload_send(u, MSG_BUNDLE_UNPACK);
}

/* byspawn opened the archive file: take the body. */
void
api_bundle_fd(uint32_t reqid, const struct msg_bundle_result *r, int fd)
{
	struct upload		*u = upload_find(reqid);
	struct http_request	*req;

	if (u == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	req = http_request_lookup(u->srv, u->handle);
	if (r->status != 0 || fd == -1) {
		if (req != NULL)
			http_error(req, 500, "internal_error",
			    "internal server error");
		upload_discard(u);
		if (fd != -1)
			close(fd);
		return;
	}
	u->fd = fd;
	if (req == NULL) {
		upload_discard(u);
		return;
	}
	http_body_limit(req, proc_conf->storage.max_bundle_size,
	    "bundle exceeds max_bundle_size");
	if (http_body_stream(req, upload_data, upload_end, upload_error,
	    u) == -1)
		upload_discard(u);
}

/* byspawn could not take the build: the task says so. */
static void
build_started(json_t *res, void *arg)
{
	if (res == NULL || json_integer_value(json_object_get(res,
	    "status")) >= 300)
		log_warnx("a dependency build could not start");
}

/*
 * bystate recorded the bundle as pending: answer 202 and have byspawn
 * build its dependencies (with the app's limits, which bystate sent
 * along and the client does not see).  The bundle becomes active when
 * the build succeeds.
 */
static void
upload_created(struct http_request *req, json_t *res, void *arg)
{
	struct upload	*u = arg;
	json_t		*data = json_object_get(res, "data"), *build;
	int		 status;

	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status < 300 && json_is_object(data)) {
		build = json_incref(json_object_get(data, "build"));
		json_object_del(data, "build");
		if (api_call_internal(PROC_SPAWN, "builds.start",
		    json_pack("{s:s s:s s:O s:O s:O}", "app_id",
		    u->ids.app_id, "bundle_id", u->ids.bundle_id, "task_id",
		    json_object_get(data, "task_id"), "memory_limit",
		    json_object_get(build, "memory_limit") ?: json_integer(0),
		    "cpu_limit", json_object_get(build, "cpu_limit") ?:
		    json_real(0)), build_started, NULL) == -1)
			log_warnx("bundle %s: cannot start its build",
			    u->ids.bundle_id);
		json_decref(build);
	}
	api_reply(req, res);
	if (status >= 300)
		upload_discard(u);
	else
		upload_free(u);
}

/* byspawn unpacked the archive, or refused it. */
void
api_bundle_result(uint32_t reqid, const struct msg_bundle_result *r)
{
	struct upload		*u = upload_find(reqid);
	struct http_request	*req;
	char			 msg[sizeof(r->message)];

	if (u == NULL)
		return;
	if ((req = http_request_lookup(u->srv, u->handle)) == NULL) {
		/* nobody to tell and no row: remove the files */
		upload_discard(u);
		return;
	}
	if (r->status != 0) {
		/* byspawn already removed what it made */
		strlcpy(msg, r->message, sizeof(msg));
		http_error(req, r->status, r->status >= 500 ?
		    "internal_error" : "bad_request", msg);
		upload_free(u);
		return;
	}
	log_info("bundle %s: %lld files, %lld bytes unpacked",
	    u->ids.bundle_id, (long long)r->files, (long long)r->bytes);
	api_call(req, "bundles.create", json_pack("{s:s s:s s:s s:b}", "id",
	    u->ids.app_id, "bundle_id", u->ids.bundle_id, "task_id",
	    r->task_id, "pinned", r->pinned != 0), upload_created, u);
}

/* bystate said who may deploy where: have byspawn open the file. */
static void
upload_begun(struct http_request *req, json_t *res, void *arg)
{
	struct upload	*u;
	json_t		*data = json_object_get(res, "data");
	const char	*app, *bundle;

	app = json_string_value(json_object_get(data, "app_id"));
	bundle = json_string_value(json_object_get(data, "bundle_id"));
	if (json_integer_value(json_object_get(res, "status")) != 200 ||
	    app == NULL || bundle == NULL) {
		api_reply(req, res);
		return;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL)
		fatal("calloc");
	u->fd = -1;
	u->reqid = msg_reqid();
	u->handle = http_request_handle(req);
	u->srv = http_request_server(req);
	strlcpy(u->ids.app_id, app, sizeof(u->ids.app_id));
	strlcpy(u->ids.bundle_id, bundle, sizeof(u->ids.bundle_id));
	TAILQ_INSERT_TAIL(&uploads, u, entry);
	if (proc_send(PROC_SPAWN, MSG_BUNDLE_OPEN, u->reqid, -1, &u->ids,
	    sizeof(u->ids)) == -1) {
		http_error(req, 503, "service_unavailable",
		    "spawner unavailable");
		upload_free(u);
	}
}

static void
h_bundle_upload(struct http_request *req, void *arg)
{
	api_call(req, "bundles.begin", json_pack("{s:s}", "id",
	    http_request_param(req, "id")), upload_begun, NULL);
}

static void
h_bundle_list(struct http_request *req, void *arg)
{
	api_forward(req, "bundles.list", json_pack("{s:s}", "id",
	    http_request_param(req, "id")));
}

/*
 * GET /api/v1/tasks/{id}/logs follows the task, like a worker's log:
 * its lines so far, then new ones as they come (byspawn is asked a
 * page at a time, every TASK_POLL_MS while the task runs), until it
 * has ended and every line was sent.
 */
struct taskview {
	uint64_t		 handle;
	struct http_server	*srv;
	char			 id[MSG_ID_LEN];
	json_int_t		 sent;		/* lines */
	struct event		*ev;
};

static void	 taskview_poll(evutil_socket_t, short, void *);

static void
taskview_free(struct taskview *v)
{
	event_free(v->ev);
	free(v);
}

static void
taskview_cancel(struct http_request *req, void *arg)
{
	struct taskview	*v = arg;

	/* a call in flight finds no request and frees it */
	v->handle = 0;
}

static void
taskview_lines(json_t *res, void *arg)
{
	struct taskview		*v = arg;
	struct http_request	*req;
	struct evbuffer		*buf;
	struct timeval		 tv = { 0, TASK_POLL_MS * 1000 };
	json_t			*t = json_object_get(res, "data"), *line;
	const char		*st;
	size_t			 i;

	if (v->handle == 0 ||
	    (req = http_request_lookup(v->srv, v->handle)) == NULL) {
		taskview_free(v);
		return;
	}
	if (json_integer_value(json_object_get(res, "status")) != 200) {
		/* forgotten meanwhile: end what was sent */
		http_set_cancel(req, NULL, NULL);
		http_stream_end(req);
		taskview_free(v);
		return;
	}
	if ((buf = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	json_array_foreach(json_object_get(t, "lines"), i, line) {
		evbuffer_add_printf(buf, "%s\n", json_string_value(line));
		v->sent++;
	}
	if (evbuffer_get_length(buf) > 0)
		http_stream_chunk(req, buf);
	evbuffer_free(buf);
	st = json_string_value(json_object_get(t, "status"));
	if (v->sent < json_integer_value(json_object_get(t, "nlines")))
		taskview_poll(-1, 0, v);		/* the next page now */
	else if (st != NULL && strcmp(st, "running") != 0) {
		http_set_cancel(req, NULL, NULL);
		http_stream_end(req);
		taskview_free(v);
	} else
		evtimer_add(v->ev, &tv);
}

static void
taskview_poll(evutil_socket_t fd, short what, void *arg)
{
	struct taskview	*v = arg;
	struct http_request *req;

	if (api_call_internal(PROC_SPAWN, "tasks.get", json_pack("{s:s s:b "
	    "s:I}", "id", v->id, "lines", 1, "from", v->sent), taskview_lines,
	    v) == -1) {
		if (v->handle != 0 &&
		    (req = http_request_lookup(v->srv, v->handle)) != NULL) {
			http_set_cancel(req, NULL, NULL);
			http_stream_abort(req);
		}
		taskview_free(v);
	}
}

/* bystate said the caller may see the task's app: render the task. */
static void
task_allowed(struct http_request *req, json_t *res, void *arg)
{
	json_t		*t = json_object_get(res, "data");
	struct taskview	*v;
	const char	*id;

	if (json_integer_value(json_object_get(res, "status")) != 200) {
		api_reply(req, res);
		return;
	}
	if (arg == NULL) {
		http_reply_json(req, 200, json_pack("{s:O s:O s:O}", "id",
		    json_object_get(t, "id"), "status",
		    json_object_get(t, "status"), "created_at",
		    json_object_get(t, "created_at")));
		return;
	}
	id = json_string_value(json_object_get(t, "id"));
	if ((v = calloc(1, sizeof(*v))) == NULL)
		fatal("calloc");
	v->handle = http_request_handle(req);
	v->srv = http_request_server(req);
	strlcpy(v->id, id ? id : "", sizeof(v->id));
	if ((v->ev = evtimer_new(http_request_base(req), taskview_poll,
	    v)) == NULL)
		fatal("evtimer_new");
	http_stream_start(req, 200, "text/plain; charset=utf-8");
	http_set_cancel(req, taskview_cancel, v);
	taskview_poll(-1, 0, v);
}

/* byspawn knows the task and its app; bystate decides who sees it. */
static void
task_found(struct http_request *req, json_t *res, void *arg)
{
	json_t	*t = json_object_get(res, "data");

	if (json_integer_value(json_object_get(res, "status")) != 200) {
		api_reply(req, res);
		return;
	}
	api_call(req, "tasks.check", json_pack("{s:O s:O}", "app_id",
	    json_object_get(t, "app_id"), "task", t), task_allowed, arg);
}

static void
h_task(struct http_request *req, void *arg)
{
	/* anonymous callers learn nothing, not even whether it exists */
	if (http_header_get(req, "Authorization") == NULL) {
		http_error(req, 401, "unauthorized", "authentication required");
		return;
	}
	api_call_spawn(req, "tasks.get", json_pack("{s:s s:b}", "id",
	    http_request_param(req, "id"), "lines", 0), task_found, arg);
}

/* bystate allowed the refresh (or rollback): byspawn does it. */
static void
refresh_allowed(struct http_request *req, json_t *res, void *arg)
{
	json_t	*d = json_object_get(res, "data");

	if (json_integer_value(json_object_get(res, "status")) != 200) {
		api_reply(req, res);
		return;
	}
	api_call_spawn(req, arg != NULL ? "builds.rollback" : "builds.refresh",
	    json_pack("{s:O s:O s:O s:O}", "app_id", json_object_get(d,
	    "app_id"), "bundle_id", json_object_get(d, "bundle_id"),
	    "memory_limit", json_object_get(d, "memory_limit"), "cpu_limit",
	    json_object_get(d, "cpu_limit")), NULL, NULL);
}

static void
h_refresh(struct http_request *req, void *arg)
{
	api_call(req, "bundles.refresh_check", json_pack("{s:s s:b}", "id",
	    http_request_param(req, "id"), "rollback", arg != NULL),
	    refresh_allowed, arg);
}

static const struct http_route bundle_routes[] = {
	{ "GET", "/api/v1/tasks/{id}", HTTP_LISTEN_MAIN, 0, 0, h_task, NULL },
	{ "GET", "/api/v1/tasks/{id}/logs", HTTP_LISTEN_MAIN, 0, 0, h_task,
	    "logs" },
	/* the real cap is storage.max_bundle_size, set per request */
	{ "POST", "/api/v1/apps/{id}/bundles", HTTP_LISTEN_MAIN, SIZE_MAX,
	    HTTP_ROUTE_STREAM_BODY, h_bundle_upload, NULL },
	{ "GET", "/api/v1/apps/{id}/bundles", HTTP_LISTEN_MAIN, 0, 0,
	    h_bundle_list, NULL },
	{ "POST", "/api/v1/apps/{id}/refresh", HTTP_LISTEN_MAIN, 0, 0,
	    h_refresh, NULL },
	{ "POST", "/api/v1/apps/{id}/refresh/rollback", HTTP_LISTEN_MAIN, 0,
	    0, h_refresh, "rollback" },
};

int
api_bundles_routes(struct http_router *r)
{
	return http_router_add_table(r, bundle_routes,
	    sizeof(bundle_routes) / sizeof(bundle_routes[0]));
}
