/*
 * Worker endpoints: two round trips each.  bystate decides whether the
 * caller may (and which bundle and limits apply); byspawn acts.
 *
 *	POST /api/v1/apps/{id}/start	start a worker for the active bundle
 *	GET  /api/v1/apps/{id}/runtime	the app's workers
 *	GET  /api/v1/apps/{id}/logs	a worker's output, streamed
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

/* bystate's answer: on success, hand its data to byspawn as op. */
static void
workers_allowed(struct http_request *req, json_t *res, void *arg)
{
	const char	*op = arg;
	json_t		*data = json_object_get(res, "data");

	if (json_integer_value(json_object_get(res, "status")) != 200 ||
	    !json_is_object(data)) {
		api_reply(req, res);
		return;
	}
	api_call_spawn(req, op, json_incref(data), NULL, NULL);
}

static void
h_start(struct http_request *req, void *arg)
{
	api_call(req, "workers.prepare", json_pack("{s:s}", "id",
	    http_request_param(req, "id")), workers_allowed, "workers.start");
}

/*
 * byspawn's workers, with the sessions the app proxy placed on each
 * and bystate's view counts (byspawn passes them through).
 */
static void
runtime_listed(struct http_request *req, json_t *res, void *arg)
{
	json_t		*data, *workers, *w, *s;
	const char	*id;
	json_int_t	 active = 0;
	size_t		 i;

	data = json_object_get(res, "data");
	workers = json_object_get(data, "workers");
	if (json_integer_value(json_object_get(res, "status")) == 200 &&
	    json_is_array(workers)) {
		json_array_foreach(workers, i, w) {
			id = json_string_value(json_object_get(w, "id"));
			/* byspawn cannot know the proxy drains it */
			if (id != NULL && proxy_worker_draining(id))
				json_object_set_new(w, "status",
				    json_string("draining"));
			s = proxy_worker_sessions(id ? id : "");
			active += (json_int_t)json_array_size(s);
			json_object_set_new(w, "sessions", s);
		}
		json_object_set_new(data, "active_sessions",
		    json_integer(active));
	}
	api_reply(req, res);
}

static void
runtime_allowed(struct http_request *req, json_t *res, void *arg)
{
	json_t	*data = json_object_get(res, "data");

	if (json_integer_value(json_object_get(res, "status")) != 200 ||
	    !json_is_object(data)) {
		api_reply(req, res);
		return;
	}
	api_call_spawn(req, "workers.list", json_incref(data),
	    runtime_listed, NULL);
}

static void
h_runtime(struct http_request *req, void *arg)
{
	api_call(req, "workers.check", json_pack("{s:s}", "id",
	    http_request_param(req, "id")), runtime_allowed, NULL);
}

/* A log stream: byspawn sends lines, byproxy relays them as chunks. */
struct logview {
	TAILQ_ENTRY(logview)	 entry;
	uint32_t		 reqid;
	uint64_t		 handle;
	struct http_server	*srv;
	int			 started;
};

static TAILQ_HEAD(, logview) logviews = TAILQ_HEAD_INITIALIZER(logviews);

static struct logview *
logview_find(uint32_t reqid)
{
	struct logview	*v;

	TAILQ_FOREACH(v, &logviews, entry)
		if (v->reqid == reqid)
			return v;
	return NULL;
}

static void
logview_free(struct logview *v)
{
	TAILQ_REMOVE(&logviews, v, entry);
	free(v);
}

/* The client left: byspawn stops sending. */
static void
logview_cancel(struct http_request *req, void *arg)
{
	struct logview	*v = arg;

	proc_send(PROC_SPAWN, MSG_LOGS_CANCEL, v->reqid, -1, NULL, 0);
	logview_free(v);
}

static struct http_request *
logview_start(struct logview *v)
{
	struct http_request	*req;

	if ((req = http_request_lookup(v->srv, v->handle)) == NULL)
		return NULL;
	if (!v->started) {
		http_stream_start(req, 200, "text/plain; charset=utf-8");
		v->started = 1;
	}
	return req;
}

void
api_logs_data(uint32_t reqid, const void *data, size_t len)
{
	struct logview		*v = logview_find(reqid);
	struct http_request	*req;
	struct evbuffer		*buf;

	if (v == NULL || (req = logview_start(v)) == NULL)
		return;
	if ((buf = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	evbuffer_add(buf, data, len);
	http_stream_chunk(req, buf);
	evbuffer_free(buf);
}

void
api_logs_end(uint32_t reqid, const struct msg_bundle_result *r)
{
	struct logview		*v = logview_find(reqid);
	struct http_request	*req;

	if (v == NULL)
		return;
	req = http_request_lookup(v->srv, v->handle);
	if (req != NULL) {
		http_set_cancel(req, NULL, NULL);
		if (r->status != 0 && !v->started)
			http_error(req, r->status, "not_found", r->message);
		else if (logview_start(v) != NULL)
			http_stream_end(req);
	}
	logview_free(v);
}

/* bystate allowed it: subscribe to the worker's lines at byspawn. */
static void
logs_allowed(struct http_request *req, json_t *res, void *arg)
{
	struct msg_logs	 m;
	struct logview	*v;
	const char	*app;
	char		*wid, *stream;

	app = json_string_value(json_object_get(json_object_get(res, "data"),
	    "app_id"));
	if (json_integer_value(json_object_get(res, "status")) != 200 ||
	    app == NULL) {
		api_reply(req, res);
		return;
	}
	if ((wid = api_query_get(req, "worker_id")) == NULL || *wid == '\0') {
		free(wid);
		http_error(req, 400, "bad_request",
		    "worker_id query parameter is required");
		return;
	}
	memset(&m, 0, sizeof(m));
	strlcpy(m.app_id, app, sizeof(m.app_id));
	strlcpy(m.worker_id, wid, sizeof(m.worker_id));
	stream = api_query_get(req, "stream");
	m.follow = stream == NULL || strcmp(stream, "false") != 0;
	free(stream);
	if (strlen(wid) >= sizeof(m.worker_id)) {
		free(wid);
		http_error(req, 404, "not_found", "worker not found for app");
		return;
	}
	free(wid);
	if ((v = calloc(1, sizeof(*v))) == NULL)
		fatal("calloc");
	v->reqid = msg_reqid();
	v->handle = http_request_handle(req);
	v->srv = http_request_server(req);
	TAILQ_INSERT_TAIL(&logviews, v, entry);
	http_set_cancel(req, logview_cancel, v);
	if (proc_send(PROC_SPAWN, MSG_LOGS_SUBSCRIBE, v->reqid, -1, &m,
	    sizeof(m)) == -1) {
		http_set_cancel(req, NULL, NULL);
		logview_free(v);
		http_error(req, 503, "service_unavailable",
		    "spawner unavailable");
	}
}

static void
h_logs(struct http_request *req, void *arg)
{
	api_call(req, "workers.check", json_pack("{s:s}", "id",
	    http_request_param(req, "id")), logs_allowed, NULL);
}

static const struct http_route worker_routes[] = {
	{ "GET", "/api/v1/apps/{id}/logs", HTTP_LISTEN_MAIN, 0, 0, h_logs,
	    NULL },
	{ "POST", "/api/v1/apps/{id}/start", HTTP_LISTEN_MAIN, 0, 0, h_start,
	    NULL },
	{ "GET", "/api/v1/apps/{id}/runtime", HTTP_LISTEN_MAIN, 0, 0,
	    h_runtime, NULL },
};

int
api_workers_routes(struct http_router *r)
{
	return http_router_add_table(r, worker_routes,
	    sizeof(worker_routes) / sizeof(worker_routes[0]));
}
