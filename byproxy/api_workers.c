/*
 * Worker endpoints: two round trips each.  bystate decides whether the
 * caller may (and which bundle and limits apply); byspawn acts.
 *
 *	POST /api/v1/apps/{id}/start	start a worker for the active bundle
 *	GET  /api/v1/apps/{id}/runtime	the app's workers
 */

#include <sys/types.h>

#include <string.h>

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

static void
h_runtime(struct http_request *req, void *arg)
{
	api_call(req, "workers.check", json_pack("{s:s}", "id",
	    http_request_param(req, "id")), workers_allowed, "workers.list");
}

static const struct http_route worker_routes[] = {
	{ "POST", "/api/v1/apps/{id}/start", HTTP_LISTEN_MAIN, 0, 0, h_start,
	    NULL },
	{ "GET", "/api/v1/apps/{id}/runtime", HTTP_LISTEN_MAIN, 0, 0,
	    h_runtime, NULL },
};

int
api_workers_routes(struct http_router *r)
{
	size_t	 i;

	for (i = 0; i < sizeof(worker_routes) / sizeof(worker_routes[0]); i++)
		if (http_router_add(r, &worker_routes[i]) == -1)
			return -1;
	return 0;
}
