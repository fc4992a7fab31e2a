/*
 * /healthz and /readyz.
 *
 * /healthz says whether this process serves at all (503 once draining,
 * so a load balancer stops sending new traffic).  /readyz asks bystate
 * (the database) and byspawn (the worker backend) with a MSG_PING each
 * and answers when both have answered or READYZ_TIMEOUT_MS passed.
 * Pending checks are keyed by the ping's request id; a PONG for a check
 * that already answered or whose client left finds nothing and is
 * dropped.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "byproxy.h"

enum {
	CHECK_DATABASE,		/* bystate */
	CHECK_BACKEND,		/* byspawn */
	CHECK_MAX
};

static const enum proc_id check_peer[CHECK_MAX] = {
	[CHECK_DATABASE] = PROC_STATE,
	[CHECK_BACKEND] = PROC_SPAWN,
};

/* The reference server's check names (it says "docker" for any backend). */
static const char *const check_name[CHECK_MAX] = {
	[CHECK_DATABASE] = "database",
	[CHECK_BACKEND] = "docker",
};

enum check_result {
	CHECK_PENDING,
	CHECK_PASS,
	CHECK_FAIL,
};

struct readyz {
	TAILQ_ENTRY(readyz) entry;
	struct http_request *req;
	struct event	*timer;
	uint32_t	 reqid[CHECK_MAX];
	enum check_result result[CHECK_MAX];
};

static TAILQ_HEAD(, readyz) readyz_pending =
    TAILQ_HEAD_INITIALIZER(readyz_pending);
static size_t		 readyz_npending;
static int		 health_draining;
static health_ping_fn	 health_ping;
static int		 readyz_timeout_ms = READYZ_TIMEOUT_MS;

static void	 healthz(struct http_request *, void *);
static void	 readyz(struct http_request *, void *);

void
proxy_set_draining(int on)
{
	health_draining = on;
}

int
proxy_draining(void)
{
	return health_draining;
}

/* Tests shorten the wait; 0 restores the default. */
void
proxy_health_set_timeout(int ms)
{
	readyz_timeout_ms = ms > 0 ? ms : READYZ_TIMEOUT_MS;
}

size_t
proxy_health_pending(void)
{
	return readyz_npending;
}

int
proxy_health_init(struct http_router *r, unsigned int listeners,
    health_ping_fn ping)
{
	struct http_route	 hz = {
		.method = "GET", .pattern = "/healthz", .listeners = listeners,
		.flags = HTTP_ROUTE_QUIET, .fn = healthz,
	};
	struct http_route	 rz = {
		.method = "GET", .pattern = "/readyz", .listeners = listeners,
		.flags = HTTP_ROUTE_QUIET, .fn = readyz,
	};

	health_ping = ping;
	if (http_router_add(r, &hz) == -1 || http_router_add(r, &rz) == -1)
		return -1;
	return 0;
}

static void
healthz(struct http_request *req, void *arg)
{
	if (health_draining)
		http_reply_text(req, 503, "draining");
	else
		http_reply_text(req, 200, "ok");
}

static void
readyz_free(struct readyz *rz)
{
	TAILQ_REMOVE(&readyz_pending, rz, entry);
	readyz_npending--;
	event_free(rz->timer);
	free(rz);
}

static json_t *
readyz_body(const struct readyz *rz, int ready)
{
	json_t	*body, *checks;
	int	 i;

	body = json_pack("{s:s}", "status", ready ? "ready" : "not_ready");
	/* the management listener is for operators: show the detail */
	if (body == NULL || rz->req->listener != HTTP_LISTEN_MGMT)
		return body;
	if ((checks = json_object()) == NULL)
		return body;
	for (i = 0; i < CHECK_MAX; i++)
		json_object_set_new(checks, check_name[i], json_string(
		    rz->result[i] == CHECK_PASS ? "pass" : "fail"));
	json_object_set_new(body, "checks", checks);
	return body;
}

static void
readyz_answer(struct readyz *rz)
{
	struct http_request	*req = rz->req;
	int			 i, ready = 1;

	for (i = 0; i < CHECK_MAX; i++)
		if (rz->result[i] != CHECK_PASS)
			ready = 0;
	http_set_cancel(req, NULL, NULL);
	http_reply_json(req, ready ? 200 : 503, readyz_body(rz, ready));
	readyz_free(rz);
}

static int
readyz_complete(const struct readyz *rz)
{
	int	 i;

	for (i = 0; i < CHECK_MAX; i++)
		if (rz->result[i] == CHECK_PENDING)
			return 0;
	return 1;
}

static void
readyz_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct readyz	*rz = arg;
	int		 i;

	for (i = 0; i < CHECK_MAX; i++) {
		if (rz->result[i] != CHECK_PENDING)
			continue;
		log_warnx("readyz: no answer from %s",
		    proc_names[check_peer[i]]);
		rz->result[i] = CHECK_FAIL;
	}
	readyz_answer(rz);
}

/* The client left: forget the check; its PONGs will find nothing. */
static void
readyz_cancel(struct http_request *req, void *arg)
{
	readyz_free(arg);
}

static void
readyz(struct http_request *req, void *arg)
{
	struct readyz	*rz;
	struct timeval	 tv;
	int		 i;

	if (health_draining) {
		http_reply_json(req, 503, json_pack("{s:s}", "status",
		    "draining"));
		return;
	}
	if ((rz = calloc(1, sizeof(*rz))) == NULL ||
	    (rz->timer = evtimer_new(http_request_base(req), readyz_timeout,
	    rz)) == NULL) {
		free(rz);
		http_error(req, 500, "internal_error", "internal server error");
		return;
	}
	rz->req = req;
	TAILQ_INSERT_TAIL(&readyz_pending, rz, entry);
	readyz_npending++;
	for (i = 0; i < CHECK_MAX; i++) {
		rz->reqid[i] = msg_reqid();
		if (health_ping == NULL ||
		    health_ping(check_peer[i], rz->reqid[i]) == -1)
			rz->result[i] = CHECK_FAIL;
	}
	if (readyz_complete(rz)) {
		readyz_answer(rz);
		return;
	}
	http_set_cancel(req, readyz_cancel, rz);
	tv.tv_sec = readyz_timeout_ms / 1000;
	tv.tv_usec = (readyz_timeout_ms % 1000) * 1000;
	evtimer_add(rz->timer, &tv);
}

void
proxy_health_pong(enum proc_id from, uint32_t reqid, int ok)
{
	struct readyz	*rz;
	int		 i;

	TAILQ_FOREACH(rz, &readyz_pending, entry) {
		for (i = 0; i < CHECK_MAX; i++) {
			if (rz->reqid[i] != reqid || check_peer[i] != from ||
			    rz->result[i] != CHECK_PENDING)
				continue;
			rz->result[i] = ok ? CHECK_PASS : CHECK_FAIL;
			if (!ok)
				log_warnx("readyz: %s reports a failure",
				    proc_names[from]);
			if (readyz_complete(rz))
				readyz_answer(rz);
			return;
		}
	}
	log_debug("readyz: late or unknown pong %u from %s", reqid,
	    proc_names[from]);
}
