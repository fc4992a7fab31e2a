/*
 * libFuzzer target for the byproxy request parser.  The input is what a
 * client sends on one connection: the first byte picks the write size
 * (so heads, chunk framing and bodies get split everywhere), the rest
 * goes into a socketpair that the HTTP core serves with a few routes:
 * synchronous, asynchronous, streaming, takeover and the health routes,
 * and /up, which streams its request body in the way its query asks
 * (taken late, paused and resumed, under a lowered limit, refused,
 * answered early, echoed back while it arrives).
 * Then the client half-closes and the loop runs until the server has
 * let go of the connection; everything it allocated must be freed.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base	*base;
static struct http_router	*router;
static struct http_server	*srv;

struct pending {
	struct event		*ev;
	struct http_request	*req;
	int			 stream;
};

static void
f_hello(struct http_request *req, void *arg)
{
	http_reply_text(req, 200, "hello");
}

static void
f_echo(struct http_request *req, void *arg)
{
	http_reply_buffer(req, 200, "application/octet-stream", req->body);
}

static void
f_param(struct http_request *req, void *arg)
{
	const char	*v = http_request_param(req, "id");

	http_reply_json(req, 200, json_pack("{s:s?, s:s?}", "id", v,
	    "host", http_header_get(req, "Host")));
}

static void
pending_fire(evutil_socket_t fd, short ev, void *arg)
{
	struct pending		*p = arg;
	struct http_request	*req = p->req;
	struct evbuffer		*b;

	event_free(p->ev);
	http_set_cancel(req, NULL, NULL);
	if (p->stream) {
		b = evbuffer_new();
		evbuffer_add(b, "tail", 4);
		http_stream_chunk(req, b);
		evbuffer_free(b);
		http_stream_end(req);
	} else
		http_error(req, 503, "service_unavailable", "later");
	free(p);
}

static void
pending_cancel(struct http_request *req, void *arg)
{
	struct pending	*p = arg;

	event_free(p->ev);
	free(p);
}

static void
f_later(struct http_request *req, void *arg)
{
	struct pending	*p;
	struct timeval	 tv = { 0, 0 };

	if ((p = calloc(1, sizeof(*p))) == NULL)
		abort();
	p->req = req;
	p->stream = arg != NULL;
	p->ev = evtimer_new(base, pending_fire, p);
	if (p->stream) {
		http_add_header(req, "X-Stream", "1");
		http_stream_start(req, 200, "text/plain");
	}
	http_set_cancel(req, pending_cancel, p);
	evtimer_add(p->ev, &tv);
}

/* ---- /up: a streamed request body ---------------------------------- */

struct upload {
	struct http_request	*req;
	struct event		*ev;
	struct evbuffer		*sink;
	int			 late, pause, early, duplex;
};

static void
up_free(struct upload *u)
{
	event_free(u->ev);
	evbuffer_free(u->sink);
	free(u);
}

static void
up_error(struct http_request *req, enum http_body_error why, void *arg)
{
	up_free(arg);
}

static void
up_cancel(struct http_request *req, void *arg)
{
	up_free(arg);
}

static void
up_data(struct http_request *req, struct evbuffer *chunk, void *arg)
{
	struct upload	*u = arg;
	struct timeval	 tv = { 0, 0 };

	if (http_body_buffered(req) > HTTP_INBUF_MAX + HTTP_BODY_CHUNK_MAX)
		abort();
	/* (answering ends the body: no callback comes after it) */
	if (u->early && !u->duplex) {
		http_set_cancel(req, NULL, NULL);
		up_free(u);
		if (http_reply_text(req, 413, "enough") == -1)
			abort();
		return;
	}
	if (u->duplex) {
		http_stream_chunk(req, chunk);
		return;
	}
	/* a slow consumer: take some, pause, the timer takes the rest */
	evbuffer_remove_buffer(chunk, u->sink, 7);
	if (u->pause && http_body_pause(req) == 0)
		evtimer_add(u->ev, &tv);
}

static void
up_end(struct http_request *req, void *arg)
{
	struct upload	*u = arg;

	http_set_cancel(req, NULL, NULL);
	if (u->duplex)
		http_stream_end(req);
	else {
		evbuffer_add_buffer(u->sink, req->body);
		http_reply_buffer(req, 200, "application/octet-stream",
		    u->sink);
	}
	up_free(u);
}

static void
up_accept(struct upload *u)
{
	if (http_body_stream(u->req, up_data, up_end, up_error, u) == -1)
		abort();
	if (u->duplex)
		http_stream_start(u->req, 200, "text/plain");
}

static void
up_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct upload	*u = arg;

	if (u->late) {
		u->late = 0;
		up_accept(u);
		return;
	}
	evbuffer_drain(u->sink, evbuffer_get_length(u->sink));
	http_body_resume(u->req);
}

static void
f_upload(struct http_request *req, void *arg)
{
	const char	*q = req->query != NULL ? req->query : "";
	struct upload	*u;
	struct timeval	 tv = { 0, 0 };

	if (strstr(q, "refuse") != NULL) {
		http_error(req, 404, "not_found", "not found");
		return;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL ||
	    (u->sink = evbuffer_new()) == NULL ||
	    (u->ev = evtimer_new(base, up_timer, u)) == NULL)
		abort();
	u->req = req;
	u->late = strstr(q, "late") != NULL;
	u->pause = strstr(q, "pause") != NULL;
	u->early = strstr(q, "early") != NULL;
	u->duplex = strstr(q, "duplex") != NULL;
	http_set_cancel(req, up_cancel, u);
	if (strstr(q, "limit") != NULL)
		http_body_limit(req, 16, "bundle exceeds max_bundle_size");
	if (u->late)
		evtimer_add(u->ev, &tv);
	else
		up_accept(u);
}

static void
f_takeover(struct http_request *req, void *arg)
{
	struct bufferevent	*bev;

	if ((bev = http_takeover(req)) != NULL)
		bufferevent_free(bev);
}

static int
f_ping(enum proc_id peer, uint32_t id)
{
	return -1;
}

static const struct http_route routes[] = {
	{ "GET", "/hello", HTTP_LISTEN_ANY, 0, 0, f_hello, NULL },
	{ "POST", "/echo", HTTP_LISTEN_MAIN, 256, 0, f_echo, NULL },
	{ "PUT", "/echo", HTTP_LISTEN_MAIN, 0, 0, f_echo, NULL },
	{ "GET", "/api/v1/items/{id}", HTTP_LISTEN_MAIN, 0, 0, f_param, NULL },
	{ "GET", "/app/{name}/*", HTTP_LISTEN_MAIN, 0, 0, f_hello, NULL },
	{ "GET", "/later", HTTP_LISTEN_MAIN, 0, 0, f_later, NULL },
	{ "GET", "/stream", HTTP_LISTEN_MAIN, 0, 0, f_later, "stream" },
	{ "GET", "/ws", HTTP_LISTEN_MAIN, 0, 0, f_takeover, NULL },
	{ "POST", "/up", HTTP_LISTEN_MAIN, 4096, HTTP_ROUTE_STREAM_BODY,
	    f_upload, NULL },
	{ "PUT", "/up", HTTP_LISTEN_MAIN, 0, HTTP_ROUTE_STREAM_BODY,
	    f_upload, NULL },
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t	 i;

	signal(SIGPIPE, SIG_IGN);
	/* to syslog, i.e. nowhere here: keep the fuzzer's output readable */
	log_init("fuzz", 1);
	log_setlevel(LOG_LVL_ERROR);
	if ((base = event_base_new()) == NULL ||
	    (router = http_router_new()) == NULL)
		abort();
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_router_add(router, &routes[i]) == -1)
			abort();
	if (http_router_group(router, "/api/v1/", http_api_headers) == -1 ||
	    proxy_health_init(router, HTTP_LISTEN_MAIN, f_ping) == -1 ||
	    (srv = http_server_new(base, router)) == NULL)
		abort();
	http_server_set_hsts(srv, 1);
	return 0;
}

static void
drain_client(evutil_socket_t fd, short ev, void *arg)
{
	char	 buf[65536];
	ssize_t	 n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		event_del(arg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event	*rev;
	size_t		 step, off = 0, n;
	ssize_t		 w;
	int		 sv[2], spins;

	if (size == 0)
		return 0;
	step = data[0] & 0x3f ? (size_t)(data[0] & 0x3f) * 3 : size;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	if (http_server_adopt(srv, sv[0], HTTP_LISTEN_MAIN, NULL, 0) == -1)
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	rev = event_new(base, sv[1], EV_READ | EV_PERSIST, drain_client,
	    event_self_cbarg());
	event_add(rev, NULL);

	for (spins = 0; off < size && spins < 100000; spins++) {
		n = size - off < step ? size - off : step;
		w = write(sv[1], data + off, n);
		if (w > 0)
			off += (size_t)w;
		else if (w == -1 && errno != EAGAIN)
			break;		/* the server closed on an error */
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	shutdown(sv[1], SHUT_WR);
	/* every state ends on EOF: a connection left over is a bug */
	for (spins = 0; http_server_nconns(srv) > 0; spins++) {
		if (spins > 100000)
			abort();
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(rev);
	close(sv[1]);
	return 0;
}
