/*
 * byproxy HTTP core, router and health routes, driven in-process: a
 * server on an event_base, a socketpair per client, raw bytes written
 * from the client side and the answers parsed with http_parser.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>
#include <jansson.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

#define MAXRESP		16
#define MAXHDR		48
#define BODYMAX		(96 * 1024)

struct tresp {
	int		 status;
	int		 nh;
	char		 hn[MAXHDR][64];
	char		 hv[MAXHDR][256];
	char		 body[BODYMAX];
	size_t		 bodylen;
	int		 complete;
};

struct tclient {
	int		 fd;
	struct event	*ev;
	struct evbuffer	*raw;
	int		 eof;
	int		 head[MAXRESP];	/* response i answers a HEAD */
};

static struct event_base	*base;
static struct http_router	*router;
static struct http_server	*srv;
static struct tresp		 resp[MAXRESP];
static int			 nresp;
static int			 in_value;

/* ---- test routes --------------------------------------------------- */

static int		 cancelled;
static int		 async_answered;
static struct event	*async_ev;
static struct http_request *async_req;

static void
h_hello(struct http_request *req, void *arg)
{
	http_reply(req, 200, "text/plain", "hello", 5);
}

static void	 up_data(struct http_request *, struct evbuffer *, void *);
static void	 up_end(struct http_request *, void *);

static void
h_echo(struct http_request *req, void *arg)
{
	/* not a streaming route: the body was read whole */
	ck_assert_int_eq(http_body_stream(req, up_data, up_end, NULL, NULL),
	    -1);
	ck_assert_int_eq(http_body_pause(req), -1);
	ck_assert_int_eq(http_body_limit(req, 1, NULL), -1);
	http_reply_buffer(req, 200, "application/octet-stream", req->body);
}

static void
h_json(struct http_request *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void
h_item(struct http_request *req, void *arg)
{
	const char	*id = http_request_param(req, "id");

	http_reply_text(req, 200, id != NULL ? id : "(null)");
}

static void
h_app(struct http_request *req, void *arg)
{
	char	 buf[256];

	snprintf(buf, sizeof(buf), "name=%s rest=%s query=%s",
	    http_request_param(req, "name"), http_request_param(req, "*"),
	    req->query != NULL ? req->query : "-");
	http_reply_text(req, 200, buf);
}

static void
h_header(struct http_request *req, void *arg)
{
	const char	*v = http_header_get(req, "x-test");

	http_reply_text(req, 200, v != NULL ? v : "(none)");
}

static void
async_fire(evutil_socket_t fd, short ev, void *arg)
{
	struct http_request	*req = async_req;

	async_req = NULL;
	event_free(async_ev);
	async_ev = NULL;
	async_answered++;
	http_set_cancel(req, NULL, NULL);
	http_reply_text(req, 200, "late");
}

static void
async_cancel(struct http_request *req, void *arg)
{
	cancelled++;
	/* a continuation that forgot about cancel would crash under ASan */
	ck_assert_ptr_eq(req, async_req);
	event_free(async_ev);
	async_ev = NULL;
	async_req = NULL;
	/* the request is detached: answering it is refused */
	ck_assert_int_eq(http_reply_text(req, 200, "too late"), -1);
}

static void
h_async(struct http_request *req, void *arg)
{
	struct timeval	 tv = { 0, 150 * 1000 };

	ck_assert_ptr_null(async_req);
	async_req = req;
	async_ev = evtimer_new(base, async_fire, NULL);
	evtimer_add(async_ev, &tv);
	http_set_cancel(req, async_cancel, NULL);
}

struct stream {
	struct event		*ev;
	struct http_request	*req;
};
static int	 streams_live;

static void
stream_free(struct stream *st)
{
	event_free(st->ev);
	free(st);
	streams_live--;
}

static void
stream_more(evutil_socket_t fd, short ev, void *arg)
{
	struct stream		*st = arg;
	struct http_request	*req = st->req;
	struct evbuffer		*b = evbuffer_new();

	stream_free(st);
	evbuffer_add(b, "defg", 4);
	ck_assert_int_eq(http_stream_chunk(req, b), 0);
	evbuffer_free(b);
	http_set_cancel(req, NULL, NULL);
	ck_assert_int_eq(http_stream_end(req), 0);
}

static void
stream_cancel(struct http_request *req, void *arg)
{
	cancelled++;
	stream_free(arg);
}

static void
h_stream(struct http_request *req, void *arg)
{
	struct evbuffer	*b = evbuffer_new();
	struct timeval	 tv = { 0, 100 * 1000 };
	struct stream	*st = calloc(1, sizeof(*st));

	ck_assert_int_eq(http_add_header(req, "X-Stream", "yes"), 0);
	ck_assert_int_eq(http_stream_start(req, 200, "text/plain"), 0);
	/* too late for headers once the head is out */
	ck_assert_int_eq(http_add_header(req, "X-Late", "no"), -1);
	evbuffer_add(b, "abc", 3);
	ck_assert_int_eq(http_stream_chunk(req, b), 0);
	ck_assert_int_eq(evbuffer_get_length(b), 0);
	evbuffer_free(b);
	st->req = req;
	st->ev = evtimer_new(base, stream_more, st);
	evtimer_add(st->ev, &tv);
	streams_live++;
	http_set_cancel(req, stream_cancel, st);
}

/* A relayed answer (the app proxy's way): GET /len?mode */
static int	 drains;

static void
len_drained(struct http_request *req, void *arg)
{
	struct evbuffer	*b = evbuffer_new();

	drains++;
	evbuffer_add(b, "defg", 4);
	ck_assert_int_eq(http_stream_chunk(req, b), 0);
	evbuffer_free(b);
	ck_assert_int_eq(http_stream_end(req), 0);
}

static void
h_len(struct http_request *req, void *arg)
{
	const char	*q = req->query != NULL ? req->query : "";
	struct evbuffer	*b = evbuffer_new();
	int64_t		 len = 7;

	if (strcmp(q, "nobody") == 0) {
		/* no length and no body: no framing header either */
		ck_assert_int_eq(http_stream_start_length(req, 204, -1), 0);
		ck_assert_int_eq(http_stream_end(req), 0);
		evbuffer_free(b);
		return;
	}
	if (strcmp(q, "short") == 0)
		len = 10;
	else if (strcmp(q, "abort") == 0)
		len = -1;
	ck_assert_int_eq(http_add_header(req, "Content-Type", "x/y"), 0);
	ck_assert_int_eq(http_stream_start_length(req, 200, len), 0);
	ck_assert_int_eq(http_add_header(req, "X-Late", "no"), -1);
	evbuffer_add(b, "abc", 3);
	ck_assert_int_eq(http_stream_chunk(req, b), 0);
	ck_assert_uint_gt(http_stream_queued(req), 0);
	if (strcmp(q, "short") == 0) {
		/* fewer bytes than announced: the connection is cut */
		ck_assert_int_eq(http_stream_end(req), -1);
	} else if (strcmp(q, "abort") == 0)
		ck_assert_int_eq(http_stream_abort(req), 0);
	else {
		/* more than announced is refused and left with the caller */
		evbuffer_add(b, "defgh", 5);
		if (!req->head) {
			ck_assert_int_eq(http_stream_chunk(req, b), -1);
			ck_assert_uint_eq(evbuffer_get_length(b), 5);
		}
		ck_assert_int_eq(http_stream_on_drain(req, len_drained, NULL),
		    0);
	}
	evbuffer_free(b);
}

static void
h_takeover(struct http_request *req, void *arg)
{
	struct bufferevent	*bev;
	struct evbuffer		*in;
	char			 buf[64];
	size_t			 n;

	int			 fd;

	bev = http_takeover(req);
	ck_assert_ptr_nonnull(bev);
	/* a second answer to a taken-over request is refused */
	in = bufferevent_get_input(bev);
	n = evbuffer_remove(in, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	/* plain writes, so that all is out before the close */
	fd = bufferevent_getfd(bev);
	ck_assert_int_eq(write(fd, "HTTP/1.1 101 Switching Protocols\r\n\r\n"
	    "after:", 42), 42);
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	bufferevent_free(bev);
}

static void
h_bad_header(struct http_request *req, void *arg)
{
	ck_assert_int_eq(http_add_header(req, "X-Evil", "a\r\nSet-Cookie: x"),
	    -1);
	ck_assert_int_eq(http_add_header(req, "Bad Name", "v"), -1);
	http_reply_text(req, 200, "fine");
}

/* ---- streamed request bodies: POST /up?mode ------------------------ */

#define UP_PAUSE	0x01	/* a slow consumer: pause, drain, resume */
#define UP_LATE		0x02	/* take the body 100 ms late */
#define UP_REFUSE	0x04	/* answer 404 without taking the body */
#define UP_DUPLEX	0x08	/* stream the body back as it arrives */
#define UP_EARLY	0x10	/* answer in the first on_data */
#define UP_HOARD	0x20	/* leave bytes in req->body for later */
#define UP_HOARD_MIN	(200 * 1024)	/* near the core's bound */
#define UP_SINK_MAX	(64 * 1024)	/* the consumer's own buffer */
#define UP_BOUND	(HTTP_INBUF_MAX + HTTP_BODY_CHUNK_MAX)

struct upstate {
	struct http_request *req;
	struct evbuffer	*sink;
	struct event	*ev;
	int		 mode;
	int		 nhandler, ndata, nend, nerror, ncancel, pauses;
	enum http_body_error why;
	size_t		 total;		/* bytes checked */
	size_t		 bad;		/* bytes that were not */
	size_t		 maxbuf;	/* most the core held */
	size_t		 maxsink;
};
static struct upstate	 up;

/* Between requests of one test: counters to zero, the sink kept. */
static void
up_reset(void)
{
	struct evbuffer	*sink = up.sink;

	ck_assert_ptr_null(up.req);
	memset(&up, 0, sizeof(up));
	up.sink = sink;
}

static unsigned char
pattern(size_t i)
{
	return (unsigned char)(i % 251);
}

/* The consumer "writes" n bytes of its sink: check them, drop them. */
static void
up_consume(size_t n)
{
	unsigned char	 buf[4096];
	size_t		 k, i;

	while (n > 0) {
		k = n < sizeof(buf) ? n : sizeof(buf);
		k = evbuffer_remove(up.sink, buf, k);
		for (i = 0; i < k; i++)
			if (buf[i] != pattern(up.total + i))
				up.bad++;
		up.total += k;
		n -= k;
	}
}

static void
up_note_buffered(struct http_request *req)
{
	size_t	 n = http_body_buffered(req);

	if (n > up.maxbuf)
		up.maxbuf = n;
	ck_assert_uint_le(n, UP_BOUND);
}

/* The slow consumer's tick: 16 KiB per turn of the loop, then resume. */
static void
up_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, 0 }, ms = { 0, 1000 };

	up_note_buffered(up.req);
	if (up.mode & UP_HOARD) {
		/* taken outside on_data: resume makes the core go on */
		evbuffer_remove_buffer(up.req->body, up.sink, 32768);
		up_consume(evbuffer_get_length(up.sink));
		ck_assert_int_eq(http_body_resume(up.req), 0);
		evtimer_add(up.ev, &ms);
		return;
	}
	up_consume(evbuffer_get_length(up.sink) < 16384 ?
	    evbuffer_get_length(up.sink) : 16384);
	if (evbuffer_get_length(up.sink) > 0) {
		evtimer_add(up.ev, &tv);
		return;
	}
	ck_assert_int_eq(http_body_resume(up.req), 0);
}

static void
up_forget(void)
{
	if (up.ev != NULL)
		event_free(up.ev);
	up.ev = NULL;
	up.req = NULL;
}

static void
up_data(struct http_request *req, struct evbuffer *chunk, void *arg)
{
	struct timeval	 tv = { 0, 0 };

	ck_assert_ptr_eq(req, up.req);
	ck_assert_ptr_eq(chunk, req->body);
	ck_assert_uint_gt(evbuffer_get_length(chunk), 0);
	up.ndata++;
	up_note_buffered(req);
	if (up.mode & UP_EARLY) {
		up_forget();
		http_set_cancel(req, NULL, NULL);
		ck_assert_int_eq(http_reply_text(req, 200, "early"), 0);
		return;
	}
	if (up.mode & UP_DUPLEX) {
		ck_assert_int_eq(http_stream_chunk(req, chunk), 0);
		return;
	}
	if (up.mode & UP_HOARD) {
		/* no pause, nothing taken: the core keeps it, reads no more */
		if (!evtimer_pending(up.ev, NULL))
			evtimer_add(up.ev, &tv);
		return;
	}
	evbuffer_add_buffer(up.sink, chunk);
	if (evbuffer_get_length(up.sink) > up.maxsink)
		up.maxsink = evbuffer_get_length(up.sink);
	if ((up.mode & UP_PAUSE) && evbuffer_get_length(up.sink) >
	    UP_SINK_MAX) {
		ck_assert_int_eq(http_body_pause(req), 0);
		up.pauses++;
		evtimer_add(up.ev, &tv);
	}
}

static void
up_end(struct http_request *req, void *arg)
{
	char	 buf[128];

	ck_assert_ptr_eq(req, up.req);
	up.nend++;
	/* the body is over: these are refused now */
	ck_assert_int_eq(http_body_pause(req), -1);
	ck_assert_int_eq(http_body_limit(req, 1, NULL), -1);
	http_set_cancel(req, NULL, NULL);
	if (up.mode & UP_DUPLEX) {
		up_forget();
		ck_assert_int_eq(http_stream_end(req), 0);
		return;
	}
	if (up.mode & (UP_PAUSE | UP_HOARD)) {
		evbuffer_add_buffer(up.sink, req->body);
		up_consume(evbuffer_get_length(up.sink));
		snprintf(buf, sizeof(buf), "total=%zu bad=%zu", up.total,
		    up.bad);
		up_forget();
		ck_assert_int_eq(http_reply_text(req, 200, buf), 0);
		return;
	}
	up_forget();
	ck_assert_int_eq(http_reply_buffer(req, 200,
	    "application/octet-stream", up.sink), 0);
}

static void
up_error(struct http_request *req, enum http_body_error why, void *arg)
{
	ck_assert_ptr_eq(req, up.req);
	up.nerror++;
	up.why = why;
	/* the last word: the request cannot be answered from here */
	ck_assert_int_eq(http_reply_text(req, 200, "no"), -1);
	ck_assert_int_eq(http_body_resume(req), -1);
	up_forget();
}

static void
up_cancel(struct http_request *req, void *arg)
{
	ck_assert_ptr_eq(req, up.req);
	up.ncancel++;
	up_forget();
}

static void
up_accept(struct http_request *req)
{
	ck_assert_int_eq(http_body_stream(req, up_data, up_end, up_error,
	    NULL), 0);
	/* once only */
	ck_assert_int_eq(http_body_stream(req, up_data, up_end, up_error,
	    NULL), -1);
	if (up.mode & UP_DUPLEX)
		ck_assert_int_eq(http_stream_start(req, 200,
		    "application/octet-stream"), 0);
}

static void
up_late(evutil_socket_t fd, short ev, void *arg)
{
	/* from now on the timer serves the slow consumer */
	event_free(up.ev);
	up.ev = evtimer_new(base, up_tick, NULL);
	up_accept(up.req);
}

static void
h_up(struct http_request *req, void *arg)
{
	const char	*q = req->query != NULL ? req->query : "";
	const char	*lim;
	struct timeval	 tv = { 0, 100 * 1000 };

	ck_assert_ptr_null(up.req);
	up.nhandler++;
	up.req = req;
	up.mode = (strstr(q, "pause") ? UP_PAUSE : 0) |
	    (strstr(q, "late") ? UP_LATE : 0) |
	    (strstr(q, "refuse") ? UP_REFUSE : 0) |
	    (strstr(q, "duplex") ? UP_DUPLEX : 0) |
	    (strstr(q, "early") ? UP_EARLY : 0) |
	    (strstr(q, "hoard") ? UP_HOARD : 0);
	evbuffer_drain(up.sink, evbuffer_get_length(up.sink));
	http_set_cancel(req, up_cancel, NULL);
	if (up.mode & UP_REFUSE) {
		up_forget();
		http_set_cancel(req, NULL, NULL);
		http_error(req, 404, "not_found", "no such app");
		return;
	}
	if ((lim = strstr(q, "limit=")) != NULL)
		ck_assert_int_eq(http_body_limit(req, strtoul(lim + 6, NULL,
		    10), "bundle exceeds max_bundle_size"), 0);
	if (up.mode & UP_LATE) {
		up.ev = evtimer_new(base, up_late, NULL);
		evtimer_add(up.ev, &tv);
		return;
	}
	up.ev = evtimer_new(base, up_tick, NULL);
	up_accept(req);
}

static const struct http_route test_routes[] = {
	{ "GET", "/hello", HTTP_LISTEN_ANY, 0, 0, h_hello, NULL },
	{ "POST", "/echo", HTTP_LISTEN_MAIN, 64, 0, h_echo, NULL },
	{ "PUT", "/echo", HTTP_LISTEN_MAIN, 64, 0, h_echo, NULL },
	{ "POST", "/big", HTTP_LISTEN_MAIN, 200000, 0, h_echo, NULL },
	{ "GET", "/api/v1/thing", HTTP_LISTEN_MAIN, 0, 0, h_json, NULL },
	{ "GET", "/api/v1/items/{id}", HTTP_LISTEN_MAIN, 0, 0, h_item, NULL },
	{ "GET", "/api/v1/items/special", HTTP_LISTEN_MAIN, 0, 0, h_hello,
	    NULL },
	{ "GET", "/app/{name}/*", HTTP_LISTEN_MAIN, 0, 0, h_app, NULL },
	{ "GET", "/header", HTTP_LISTEN_MAIN, 0, 0, h_header, NULL },
	{ "GET", "/async", HTTP_LISTEN_MAIN, 0, 0, h_async, NULL },
	{ "GET", "/stream", HTTP_LISTEN_MAIN, 0, 0, h_stream, NULL },
	{ "GET", "/len", HTTP_LISTEN_MAIN, 0, 0, h_len, NULL },
	{ "GET", "/takeover", HTTP_LISTEN_MAIN, 0, 0, h_takeover, NULL },
	{ "GET", "/badheader", HTTP_LISTEN_MAIN, 0, 0, h_bad_header, NULL },
	{ "POST", "/up", HTTP_LISTEN_MAIN, 32 * 1024 * 1024,
	    HTTP_ROUTE_STREAM_BODY, h_up, NULL },
	{ "GET", "/up", HTTP_LISTEN_MAIN, 0, HTTP_ROUTE_STREAM_BODY, h_up,
	    NULL },
};

/* ---- health pinger -------------------------------------------------- */

static uint32_t	 ping_id[PROC_MAX];
static int	 ping_count;
static int	 ping_fail;

static int
test_ping(enum proc_id peer, uint32_t reqid)
{
	ping_count++;
	ping_id[peer] = reqid;
	return ping_fail ? -1 : 0;
}

/* ---- fixture -------------------------------------------------------- */

static void
setup_with(unsigned int health_listeners)
{
	size_t	 i;

	signal(SIGPIPE, SIG_IGN);
	/* syslog, which is nowhere here: quiet unless a test looks */
	log_init("test", 1);
	log_setlevel(LOG_LVL_ERROR);
	base = event_base_new();
	router = http_router_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_nonnull(router);
	for (i = 0; i < sizeof(test_routes) / sizeof(test_routes[0]); i++)
		ck_assert_int_eq(http_router_add(router, &test_routes[i]), 0);
	ck_assert_int_eq(http_router_group(router, "/api/v1/",
	    http_api_headers), 0);
	ck_assert_int_eq(proxy_health_init(router, health_listeners,
	    test_ping), 0);
	srv = http_server_new(base, router);
	ck_assert_ptr_nonnull(srv);
	proxy_set_draining(0);
	nresp = 0;
	cancelled = async_answered = 0;
	ping_count = ping_fail = 0;
	memset(ping_id, 0, sizeof(ping_id));
	memset(&up, 0, sizeof(up));
	up.sink = evbuffer_new();
}

static void
setup(void)
{
	setup_with(HTTP_LISTEN_MAIN);
}

static void
setup_mgmt(void)
{
	setup_with(HTTP_LISTEN_MGMT);
}

static void
teardown(void)
{
	http_server_free(srv);
	/* a request still open was cancelled by the free */
	ck_assert_ptr_null(up.req);
	evbuffer_free(up.sink);
	http_router_free(router);
	event_base_free(base);
	srv = NULL;
	router = NULL;
	base = NULL;
}

/* ---- client --------------------------------------------------------- */

static void
client_read(evutil_socket_t fd, short ev, void *arg)
{
	struct tclient	*tc = arg;
	char		 buf[16384];
	ssize_t		 n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			evbuffer_add(tc->raw, buf, n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			tc->eof = 1;
			event_del(tc->ev);
		}
		return;
	}
}

static struct tclient *
client_new_on(unsigned int listener)
{
	struct tclient	*tc;
	int		 sv[2];

	tc = calloc(1, sizeof(*tc));
	ck_assert_ptr_nonnull(tc);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(http_server_adopt(srv, sv[0], listener, NULL, 0), 0);
	tc->fd = sv[1];
	fcntl(tc->fd, F_SETFL, O_NONBLOCK);
	tc->raw = evbuffer_new();
	tc->ev = event_new(base, tc->fd, EV_READ | EV_PERSIST, client_read,
	    tc);
	event_add(tc->ev, NULL);
	return tc;
}

static struct tclient *
client_new(void)
{
	return client_new_on(HTTP_LISTEN_MAIN);
}

static void
client_free(struct tclient *tc)
{
	event_free(tc->ev);
	evbuffer_free(tc->raw);
	if (tc->fd != -1)
		close(tc->fd);
	free(tc);
}

static void
client_close(struct tclient *tc)
{
	close(tc->fd);
	tc->fd = -1;
	event_del(tc->ev);
}

static void
loop_once(void)
{
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void
client_send(struct tclient *tc, const char *data, size_t len)
{
	ssize_t	 n;
	int	 spins = 0;

	while (len > 0) {
		n = write(tc->fd, data, len);
		if (n > 0) {
			data += n;
			len -= n;
			continue;
		}
		if (n == -1 && errno == EAGAIN && spins++ < 100000) {
			loop_once();
			continue;
		}
		return;		/* the server closed: fine for error tests */
	}
}

static void
client_sends(struct tclient *tc, const char *s)
{
	client_send(tc, s, strlen(s));
}

/* Parse everything received so far into resp[]; returns complete ones. */
static int
r_begin(http_parser *p)
{
	if (nresp < MAXRESP)
		memset(&resp[nresp], 0, sizeof(resp[0]));
	in_value = 0;
	return 0;
}

static int
r_field(http_parser *p, const char *at, size_t len)
{
	struct tresp	*r = &resp[nresp];

	if (nresp >= MAXRESP)
		return 0;
	if (in_value || r->nh == 0) {
		if (r->nh == MAXHDR)
			return 0;
		r->nh++;
		in_value = 0;
	}
	strncat(r->hn[r->nh - 1], at, len < 63 ? len : 63);
	return 0;
}

static int
r_value(http_parser *p, const char *at, size_t len)
{
	struct tresp	*r = &resp[nresp];

	if (nresp >= MAXRESP || r->nh == 0)
		return 0;
	in_value = 1;
	strncat(r->hv[r->nh - 1], at, len < 255 ? len : 255);
	return 0;
}

static int
r_headers_done(http_parser *p)
{
	struct tclient	*tc = p->data;

	if (nresp < MAXRESP)
		resp[nresp].status = p->status_code;
	/* a HEAD answer has no body whatever it announces */
	if (p->status_code >= 200 && nresp < MAXRESP && tc->head[nresp])
		return 1;
	return 0;
}

static int
r_body(http_parser *p, const char *at, size_t len)
{
	struct tresp	*r = &resp[nresp];

	if (nresp >= MAXRESP || r->bodylen + len >= BODYMAX)
		return 0;
	memcpy(r->body + r->bodylen, at, len);
	r->bodylen += len;
	r->body[r->bodylen] = '\0';
	return 0;
}

static int
r_done(http_parser *p)
{
	if (nresp < MAXRESP)
		resp[nresp].complete = 1;
	nresp++;
	return 0;
}

static const http_parser_settings rsettings = {
	.on_message_begin = r_begin,
	.on_header_field = r_field,
	.on_header_value = r_value,
	.on_headers_complete = r_headers_done,
	.on_body = r_body,
	.on_message_complete = r_done,
};

static int
parse_all(struct tclient *tc)
{
	http_parser	 p;
	size_t		 len = evbuffer_get_length(tc->raw);
	const char	*data = (const char *)evbuffer_pullup(tc->raw, -1);

	nresp = 0;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = tc;
	if (len > 0)
		http_parser_execute(&p, &rsettings, data, len);
	/* a body delimited by the close ends at EOF */
	if (tc->eof && HTTP_PARSER_ERRNO(&p) == HPE_OK)
		http_parser_execute(&p, &rsettings, NULL, 0);
	return nresp;
}

static int	 timed_out;

static void
deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	timed_out = 1;
}

/* Run the loop until n answers arrived (and EOF, if asked) or ms pass. */
static int
run_until(struct tclient *tc, int n, int want_eof, int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	int		 got;

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	for (;;) {
		got = parse_all(tc);
		if (got >= n && (!want_eof || tc->eof))
			break;
		if (timed_out)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(dl);
	return got;
}

/* Run the loop for ms, whatever happens. */
static void
run_for(int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	while (!timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dl);
}

static void
run_until_nconns(size_t n, int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	while (!timed_out && http_server_nconns(srv) != n)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dl);
}

static const char *
hdr(const struct tresp *r, const char *name)
{
	int	 i;

	for (i = 0; i < r->nh; i++)
		if (strcasecmp(r->hn[i], name) == 0)
			return r->hv[i];
	return NULL;
}

static char *
raw_str(struct tclient *tc)
{
	size_t	 len = evbuffer_get_length(tc->raw);
	char	*s = malloc(len + 1);

	evbuffer_copyout(tc->raw, s, len);
	s[len] = '\0';
	return s;
}

/* One request, one answer: the common case. */
static struct tresp *
roundtrip(const char *request, int status)
{
	struct tclient	*tc = client_new();

	client_sends(tc, request);
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_int_eq(resp[0].status, status);
	client_free(tc);
	return &resp[0];
}

/* An error answer, then the server closes the connection. */
static void
expect_error_close(const char *request, size_t len, int status)
{
	struct tclient	*tc = client_new();

	client_send(tc, request, len);
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, status);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_str_eq(hdr(&resp[0], "Content-Type"), "application/json");
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(t_simple_get)
{
	struct tclient	*tc = client_new();
	char		*raw;

	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	raw = raw_str(tc);
	ck_assert_msg(strncmp(raw, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", raw);
	free(raw);
	ck_assert_str_eq(resp[0].body, "hello");
	ck_assert_str_eq(hdr(&resp[0], "Content-Length"), "5");
	ck_assert_str_eq(hdr(&resp[0], "Content-Type"), "text/plain");
	ck_assert_ptr_nonnull(hdr(&resp[0], "Date"));
	ck_assert_ptr_null(hdr(&resp[0], "Connection"));
	ck_assert_int_eq(tc->eof, 0);
	ck_assert_int_eq(http_server_nconns(srv), 1);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}
END_TEST

START_TEST(t_security_headers)
{
	struct tresp	*r;

	r = roundtrip("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(hdr(r, "X-Content-Type-Options"), "nosniff");
	ck_assert_str_eq(hdr(r, "X-Frame-Options"), "DENY");
	ck_assert_str_eq(hdr(r, "Referrer-Policy"),
	    "strict-origin-when-cross-origin");
	ck_assert_str_eq(hdr(r, "X-Blockyard-Version"), BY_VERSION);
	ck_assert_ptr_null(hdr(r, "Strict-Transport-Security"));
	ck_assert_ptr_null(hdr(r, "Content-Security-Policy"));
	ck_assert_ptr_null(hdr(r, "Cache-Control"));

	/* errors from the core carry them too */
	r = roundtrip("GET /hello HTTP/1.1\r\n\r\n", 400);
	ck_assert_str_eq(hdr(r, "X-Frame-Options"), "DENY");
	ck_assert_str_eq(hdr(r, "X-Blockyard-Version"), BY_VERSION);
}
END_TEST

START_TEST(t_hsts)
{
	struct tresp	*r;

	http_server_set_hsts(srv, 1);
	r = roundtrip("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(hdr(r, "Strict-Transport-Security"),
	    "max-age=63072000; includeSubDomains");
	r = roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	ck_assert_ptr_nonnull(hdr(r, "Strict-Transport-Security"));
	http_server_set_hsts(srv, 0);
	r = roundtrip("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_ptr_null(hdr(r, "Strict-Transport-Security"));
}
END_TEST

START_TEST(t_api_group_headers)
{
	struct tresp	*r;

	r = roundtrip("GET /api/v1/thing HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "{\"ok\":true}\n");
	ck_assert_str_eq(hdr(r, "Content-Type"), "application/json");
	ck_assert_str_eq(hdr(r, "Content-Security-Policy"),
	    "default-src 'none'; frame-ancestors 'none'");
	ck_assert_str_eq(hdr(r, "Cache-Control"), "no-store");
	r = roundtrip("GET /api/v1/missing HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	ck_assert_str_eq(hdr(r, "Cache-Control"), "no-store");
	ck_assert_ptr_nonnull(hdr(r, "Content-Security-Policy"));
	r = roundtrip("GET /api/v1?x HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	ck_assert_ptr_null(hdr(r, "Cache-Control"));
}
END_TEST

START_TEST(t_keepalive)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	client_sends(tc, "GET /api/v1/items/42 HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_str_eq(resp[0].body, "hello");
	ck_assert_str_eq(resp[1].body, "42");
	ck_assert_int_eq(tc->eof, 0);
	ck_assert_int_eq(http_server_nconns(srv), 1);
	client_free(tc);
}
END_TEST

START_TEST(t_pipelined)
{
	struct tclient	*tc = client_new();

	/* the slow one first: the quick ones must wait for it */
	client_sends(tc,
	    "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
	    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	    "GET /api/v1/items/7 HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 4, 0, 2000), 4);
	ck_assert_str_eq(resp[0].body, "late");
	ck_assert_str_eq(resp[1].body, "hello");
	ck_assert_str_eq(resp[2].body, "abc");
	ck_assert_str_eq(resp[3].body, "7");
	ck_assert_int_eq(async_answered, 1);
	ck_assert_int_eq(http_server_nconns(srv), 1);
	client_free(tc);
}
END_TEST

START_TEST(t_http10_close)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /hello HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_str_eq(resp[0].body, "hello");
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}
END_TEST

START_TEST(t_http10_keepalive)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /hello HTTP/1.0\r\n"
	    "Connection: keep-alive\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "keep-alive");
	client_sends(tc, "GET /hello HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 1, 2000), 2);
	ck_assert_str_eq(hdr(&resp[1], "Connection"), "close");
	client_free(tc);
}
END_TEST

START_TEST(t_connection_close)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);
}
END_TEST

START_TEST(t_chunked_body)
{
	struct tresp	*r;

	r = roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "hello world");
	ck_assert_str_eq(hdr(r, "Content-Length"), "11");
}
END_TEST

/* The same request one byte at a time: parser and scanner resume. */
START_TEST(t_split_input)
{
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
	    "GET /api/v1/items/x%20y HTTP/1.1\r\nhost: x\r\n\r\n";
	struct tclient	*tc = client_new();
	size_t		 i;

	for (i = 0; i < sizeof(req) - 1; i++) {
		client_send(tc, req + i, 1);
		loop_once();
		loop_once();
	}
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_str_eq(resp[0].body, "abcde");
	ck_assert_str_eq(resp[1].body, "x y");
	client_free(tc);
}
END_TEST

START_TEST(t_cl_and_te)
{
	static const char r[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n";

	expect_error_close(r, sizeof(r) - 1, 400);
}
END_TEST

START_TEST(t_duplicate_cl)
{
	static const char r[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
	static const char r2[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3, 3\r\n\r\nabc";

	expect_error_close(r, sizeof(r) - 1, 400);
	expect_error_close(r2, sizeof(r2) - 1, 400);
}
END_TEST

START_TEST(t_te_not_chunked)
{
	static const char r[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
	static const char r2[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n";
	static const char r3[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: identity\r\n\r\n";

	expect_error_close(r, sizeof(r) - 1, 400);
	expect_error_close(r2, sizeof(r2) - 1, 400);
	expect_error_close(r3, sizeof(r3) - 1, 400);
}
END_TEST

START_TEST(t_bare_lf)
{
	static const char r[] = "GET /hello HTTP/1.1\nHost: x\r\n\r\n";
	static const char r2[] = "GET /hello HTTP/1.1\r\nHost: x\n\n";
	static const char r3[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n";
	static const char r4[] = "GET /hello HTTP/1.1\r\nHost: x\ry\r\n\r\n";

	expect_error_close(r, sizeof(r) - 1, 400);
	expect_error_close(r2, sizeof(r2) - 1, 400);
	expect_error_close(r3, sizeof(r3) - 1, 400);
	expect_error_close(r4, sizeof(r4) - 1, 400);
}
END_TEST

START_TEST(t_obs_fold)
{
	static const char r[] = "GET /hello HTTP/1.1\r\nHost: x\r\n"
	    "X-Test: a\r\n b\r\n\r\n";
	static const char r2[] = "GET /hello HTTP/1.1\r\n Host: x\r\n\r\n";

	expect_error_close(r, sizeof(r) - 1, 400);
	expect_error_close(r2, sizeof(r2) - 1, 400);
}
END_TEST

START_TEST(t_bad_header_bytes)
{
	static const char nul[] = "GET /hello HTTP/1.1\r\nHost: x\r\n"
	    "X-Test: a\0b\r\n\r\n";
	static const char ctl[] = "GET /hello HTTP/1.1\r\nHost: x\r\n"
	    "X-Test: a\x01" "b\r\n\r\n";
	static const char name[] = "GET /hello HTTP/1.1\r\nHost: x\r\n"
	    "Bad Name: v\r\n\r\n";
	static const char colon[] = "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n";
	static const char nohost[] = "GET /hello HTTP/1.1\r\n\r\n";
	static const char twohost[] = "GET /hello HTTP/1.1\r\nHost: a\r\n"
	    "Host: b\r\n\r\n";

	expect_error_close(nul, sizeof(nul) - 1, 400);
	expect_error_close(ctl, sizeof(ctl) - 1, 400);
	expect_error_close(name, sizeof(name) - 1, 400);
	expect_error_close(colon, sizeof(colon) - 1, 400);
	expect_error_close(nohost, sizeof(nohost) - 1, 400);
	expect_error_close(twohost, sizeof(twohost) - 1, 400);
}
END_TEST

START_TEST(t_malformed)
{
	static const char junk[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03";
	static const char ver[] = "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n";
	static const char target[] = "GET hello HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char pct[] = "GET /api/v1/items/%zz HTTP/1.1\r\n"
	    "Host: x\r\n\r\n";
	static const char pct0[] = "GET /api/v1/items/a%00 HTTP/1.1\r\n"
	    "Host: x\r\n\r\n";

	expect_error_close(junk, sizeof(junk) - 1, 400);
	expect_error_close(ver, sizeof(ver) - 1, 505);
	expect_error_close(target, sizeof(target) - 1, 400);
	expect_error_close(pct, sizeof(pct) - 1, 400);
	expect_error_close(pct0, sizeof(pct0) - 1, 400);
}
END_TEST

START_TEST(t_too_many_headers)
{
	struct evbuffer	*b = evbuffer_new();
	int		 i;

	evbuffer_add_printf(b, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		evbuffer_add_printf(b, "X-H%d: v\r\n", i);
	evbuffer_add_printf(b, "\r\n");
	expect_error_close((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 431);
	evbuffer_free(b);
}
END_TEST

START_TEST(t_exactly_max_headers)
{
	struct evbuffer	*b = evbuffer_new();
	struct tclient	*tc = client_new();
	int		 i;

	evbuffer_add_printf(b, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS - 1; i++)
		evbuffer_add_printf(b, "X-H%d: v\r\n", i);
	evbuffer_add_printf(b, "\r\n");
	client_send(tc, (const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_int_eq(resp[0].status, 200);
	evbuffer_free(b);
	client_free(tc);
}
END_TEST

START_TEST(t_header_block_too_large)
{
	struct evbuffer	*b = evbuffer_new();
	int		 i;

	evbuffer_add_printf(b, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	/* 80 fields of 1000 bytes: under the count, over 64 KiB */
	for (i = 0; i < 80; i++) {
		evbuffer_add_printf(b, "X-H%d: ", i);
		evbuffer_add_printf(b, "%01000d\r\n", i);
	}
	evbuffer_add_printf(b, "\r\n");
	expect_error_close((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 431);
	evbuffer_free(b);
}
END_TEST

START_TEST(t_request_line_too_long)
{
	struct evbuffer	*b = evbuffer_new();
	int		 i;

	evbuffer_add_printf(b, "GET /hello?");
	for (i = 0; i < HTTP_MAX_REQUEST_LINE; i++)
		evbuffer_add(b, "a", 1);
	evbuffer_add_printf(b, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_error_close((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 414);
	evbuffer_free(b);
}
END_TEST

START_TEST(t_body_too_large)
{
	static const char cl[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 65\r\n\r\n";
	struct evbuffer	*b = evbuffer_new();
	struct tresp	*r;
	int		 i;

	expect_error_close(cl, sizeof(cl) - 1, 413);
	ck_assert_str_eq(resp[0].body, "{\"error\":\"payload_too_large\","
	    "\"message\":\"request body too large\"}\n");

	/* chunked: noticed while the chunks arrive */
	evbuffer_add_printf(b, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 10; i++)
		evbuffer_add_printf(b, "8\r\n12345678\r\n");
	evbuffer_add_printf(b, "0\r\n\r\n");
	expect_error_close((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 413);
	evbuffer_free(b);

	/* the limit itself is fine */
	r = roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 64"
	    "\r\n\r\n"
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    200);
	ck_assert_int_eq(r->bodylen, 64);
}
END_TEST

START_TEST(t_route_body_limit)
{
	struct evbuffer	*b = evbuffer_new();
	struct tclient	*tc = client_new();
	size_t		 n = 150000;
	char		*big = malloc(n);

	/* a route may take more than the default */
	memset(big, 'z', n);
	evbuffer_add_printf(b, "POST /big HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: %zu\r\n\r\n", n);
	evbuffer_add(b, big, n);
	client_send(tc, (const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	ck_assert_int_eq(run_until(tc, 1, 0, 3000), 1);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(hdr(&resp[0], "Content-Length"), "150000");
	free(big);
	evbuffer_free(b);
	client_free(tc);
}
END_TEST

START_TEST(t_expect_continue)
{
	struct tclient	*tc = client_new();
	char		*raw;

	client_sends(tc, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
	run_for(50);
	raw = raw_str(tc);
	ck_assert_str_eq(raw, "HTTP/1.1 100 Continue\r\n\r\n");
	free(raw);
	client_sends(tc, "body");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[0].status, 100);
	ck_assert_int_eq(resp[1].status, 200);
	ck_assert_str_eq(resp[1].body, "body");
	client_free(tc);

	/* too large: refused before the client sends the body */
	tc = client_new();
	client_sends(tc, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4000\r\nExpect: 100-continue\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 413);
	client_free(tc);
}
END_TEST

START_TEST(t_expect_not_allowed)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "PUT /hello HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 405);
	ck_assert_str_eq(hdr(&resp[0], "Allow"), "GET, HEAD");
	client_free(tc);

	tc = client_new();
	client_sends(tc, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nExpect: magic\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 417);
	client_free(tc);
}
END_TEST

/* One line per request, at a level that depends on status and route. */
START_TEST(t_request_log)
{
	char		 buf[8192];
	FILE		*f = tmpfile();
	int		 saved = dup(2);
	size_t		 n;

	ck_assert_ptr_nonnull(f);
	dup2(fileno(f), 2);
	log_init("test", 0);
	log_setlevel(LOG_LVL_DEBUG);
	roundtrip("GET /hello?secret=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	roundtrip("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	roundtrip("GET /hello HTTP/7.0\r\nHost: x\r\n\r\n", 505);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(buf, "\"level\":\"info\"") != NULL &&
	    strstr(buf, "request method=GET path=/hello status=200 "
	    "duration_ms=") != NULL, "%s", buf);
	/* the query is not logged: it may carry secrets */
	ck_assert_ptr_null(strstr(buf, "secret"));
	ck_assert_ptr_nonnull(strstr(buf, "remote=unix"));
	ck_assert_ptr_nonnull(strstr(buf, "\"level\":\"debug\"") );
	ck_assert_ptr_nonnull(strstr(buf, "path=/healthz status=200"));
	ck_assert_ptr_nonnull(strstr(buf, "\"level\":\"warn\""));
	ck_assert_ptr_nonnull(strstr(buf, "path=/nope status=404"));
	ck_assert_ptr_nonnull(strstr(buf, "\"level\":\"error\""));
	ck_assert_ptr_nonnull(strstr(buf, "path=/hello status=505"));
}
END_TEST

START_TEST(t_leading_crlf)
{
	struct tresp	*r;

	r = roundtrip("\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "hello");
}
END_TEST

START_TEST(t_timeout_head)
{
	struct http_timeouts	 to = { 100, 200, 150, 1000, 100 };
	struct tclient		*tc;
	char			*raw;

	http_server_set_timeouts(srv, &to);
	tc = client_new();
	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 1000), 1);
	ck_assert_int_eq(resp[0].status, 408);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	client_free(tc);

	/* a connection that never says anything is closed without a word */
	tc = client_new();
	run_until(tc, 1, 1, 1000);
	ck_assert_int_eq(tc->eof, 1);
	raw = raw_str(tc);
	ck_assert_str_eq(raw, "");
	free(raw);
	client_free(tc);
	run_until_nconns(0, 500);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}
END_TEST

/* A slow body: every byte on time for a per-read timer, too slow in all. */
START_TEST(t_timeout_body)
{
	struct http_timeouts	 to = { 100, 200, 150, 1000, 100 };
	struct tclient		*tc;
	int			 i;

	http_server_set_timeouts(srv, &to);
	tc = client_new();
	client_sends(tc, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 30\r\n\r\n");
	for (i = 0; i < 10 && !tc->eof; i++) {
		client_sends(tc, "x");
		run_for(40);
	}
	ck_assert_int_eq(run_until(tc, 1, 1, 1000), 1);
	ck_assert_int_eq(resp[0].status, 408);
	client_free(tc);
}
END_TEST

START_TEST(t_timeout_idle)
{
	struct http_timeouts	 to = { 1000, 1000, 100, 1000, 100 };
	struct tclient		*tc;

	http_server_set_timeouts(srv, &to);
	tc = client_new();
	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 1000), 1);
	/* closed after the idle time, with no further answer */
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_int_eq(parse_all(tc), 1);
	client_free(tc);
}
END_TEST

START_TEST(t_not_found)
{
	struct tresp	*r;

	r = roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	ck_assert_str_eq(r->body,
	    "{\"error\":\"not_found\",\"message\":\"not found\"}\n");
	ck_assert_str_eq(hdr(r, "Content-Type"), "application/json");
	/* exact paths: no trailing-slash match */
	roundtrip("GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	roundtrip("GET /app/foo HTTP/1.1\r\nHost: x\r\n\r\n", 404);
}
END_TEST

START_TEST(t_method_not_allowed)
{
	struct tresp	*r;

	r = roundtrip("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", 405);
	ck_assert_str_eq(hdr(r, "Allow"), "GET, HEAD");
	ck_assert_str_eq(r->body, "{\"error\":\"method_not_allowed\","
	    "\"message\":\"method not allowed\"}\n");
	r = roundtrip("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 405);
	ck_assert_str_eq(hdr(r, "Allow"), "POST, PUT");
}
END_TEST

START_TEST(t_head)
{
	struct tclient	*tc = client_new();

	tc->head[0] = 1;
	/* if HEAD sent a body, the second answer would not parse */
	client_sends(tc, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(hdr(&resp[0], "Content-Length"), "5");
	ck_assert_int_eq(resp[0].bodylen, 0);
	ck_assert_str_eq(resp[1].body, "hello");
	client_free(tc);

	tc = client_new();
	tc->head[0] = 1;
	client_sends(tc, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[0].status, 404);
	ck_assert_int_eq(resp[0].bodylen, 0);
	ck_assert_str_eq(resp[1].body, "hello");
	client_free(tc);
}
END_TEST

START_TEST(t_params_and_prefix)
{
	struct tresp	*r;

	r = roundtrip("GET /api/v1/items/abc HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "abc");
	/* a literal segment beats a parameter */
	r = roundtrip("GET /api/v1/items/special HTTP/1.1\r\nHost: x\r\n\r\n",
	    200);
	ck_assert_str_eq(r->body, "hello");
	r = roundtrip("GET /app/shiny/ HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "name=shiny rest= query=-");
	r = roundtrip("GET /app/shiny/www/a%20b.js?v=1&x HTTP/1.1\r\n"
	    "Host: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "name=shiny rest=www/a%20b.js query=v=1&x");
	/* absolute-form targets route on their path */
	r = roundtrip("GET http://example.org/hello HTTP/1.1\r\nHost: x\r\n"
	    "\r\n", 200);
	ck_assert_str_eq(r->body, "hello");
	r = roundtrip("GET /header HTTP/1.1\r\nHOST: x\r\nx-TEST:  v1 \r\n\r\n",
	    200);
	ck_assert_str_eq(r->body, "v1");
}
END_TEST

START_TEST(t_async)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(20);
	ck_assert_int_eq(parse_all(tc), 0);
	ck_assert_ptr_nonnull(async_req);
	ck_assert_ptr_eq(http_request_lookup(srv,
	    http_request_handle(async_req)), async_req);
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(resp[0].body, "late");
	ck_assert_int_eq(async_answered, 1);
	ck_assert_int_eq(cancelled, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_async_disconnect)
{
	struct tclient	*tc = client_new();
	uint64_t	 handle;

	client_sends(tc, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	ck_assert_ptr_nonnull(async_req);
	handle = http_request_handle(async_req);
	client_close(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	ck_assert_int_eq(cancelled, 1);
	ck_assert_int_eq(async_answered, 0);
	ck_assert_ptr_null(async_req);
	/* a handle-holding continuation learns the request is gone */
	ck_assert_ptr_null(http_request_lookup(srv, handle));
	run_for(100);
	ck_assert_int_eq(async_answered, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_stream)
{
	struct tclient	*tc = client_new();
	char		*raw;

	client_sends(tc, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(resp[0].body, "abcdefg");
	ck_assert_str_eq(hdr(&resp[0], "Transfer-Encoding"), "chunked");
	ck_assert_str_eq(hdr(&resp[0], "X-Stream"), "yes");
	ck_assert_ptr_null(hdr(&resp[0], "X-Late"));
	ck_assert_ptr_null(hdr(&resp[0], "Content-Length"));
	raw = raw_str(tc);
	ck_assert_ptr_nonnull(strstr(raw, "\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n"
	    "0\r\n\r\n"));
	free(raw);
	/* the connection is reusable afterwards */
	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_str_eq(resp[1].body, "hello");
	client_free(tc);

	/* HTTP/1.0: no chunks, the end of the body is the close */
	tc = client_new();
	client_sends(tc, "GET /stream HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_str_eq(resp[0].body, "abcdefg");
	ck_assert_ptr_null(hdr(&resp[0], "Transfer-Encoding"));
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	client_free(tc);
}
END_TEST

START_TEST(t_stream_disconnect)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(5);
	ck_assert_int_eq(streams_live, 1);
	client_close(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(cancelled, 1);
	ck_assert_int_eq(streams_live, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_stream_length)
{
	struct tclient	*tc = client_new();
	char		*raw;

	drains = 0;
	tc->head[1] = 1;
	client_sends(tc, "GET /len HTTP/1.1\r\nHost: x\r\n\r\n"
	    "HEAD /len HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /len?nobody HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 4, 0, 2000), 4);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(hdr(&resp[0], "Content-Length"), "7");
	ck_assert_ptr_null(hdr(&resp[0], "Transfer-Encoding"));
	ck_assert_str_eq(hdr(&resp[0], "Content-Type"), "x/y");
	ck_assert_str_eq(resp[0].body, "abcdefg");
	ck_assert_str_eq(hdr(&resp[1], "Content-Length"), "7");
	ck_assert_int_eq(resp[1].bodylen, 0);
	ck_assert_int_eq(resp[2].status, 204);
	ck_assert_ptr_null(hdr(&resp[2], "Content-Length"));
	ck_assert_ptr_null(hdr(&resp[2], "Transfer-Encoding"));
	ck_assert_str_eq(resp[3].body, "hello");
	ck_assert_int_eq(drains, 2);
	ck_assert_int_eq(tc->eof, 0);
	client_free(tc);

	/* short of the length: what was sent, then the close */
	tc = client_new();
	client_sends(tc, "GET /len?short HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 0, 1, 2000), 0);
	ck_assert_int_eq(tc->eof, 1);
	raw = raw_str(tc);
	ck_assert_ptr_nonnull(strstr(raw, "Content-Length: 10\r\n"));
	ck_assert_ptr_nonnull(strstr(raw, "\r\n\r\nabc"));
	free(raw);
	client_free(tc);

	/* aborted: the last chunk never comes */
	tc = client_new();
	client_sends(tc, "GET /len?abort HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 0, 1, 2000), 0);
	ck_assert_int_eq(tc->eof, 1);
	raw = raw_str(tc);
	ck_assert_ptr_nonnull(strstr(raw, "Transfer-Encoding: chunked\r\n"));
	ck_assert_ptr_nonnull(strstr(raw, "\r\n\r\n3\r\nabc\r\n"));
	ck_assert_ptr_null(strstr(raw, "0\r\n\r\n"));
	free(raw);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}
END_TEST

START_TEST(t_takeover)
{
	struct tclient	*tc = client_new();
	char		*raw;

	client_sends(tc, "GET /takeover HTTP/1.1\r\nHost: x\r\n"
	    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAMEBYTES");
	run_until(tc, 99, 1, 500);
	raw = raw_str(tc);
	ck_assert_str_eq(raw, "HTTP/1.1 101 Switching Protocols\r\n\r\n"
	    "after:FRAMEBYTES");
	free(raw);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	client_free(tc);
}
END_TEST

/*
 * A full input buffer behind a busy handler: the core must stop reading,
 * not spin (libevent calls the read callback again while the input stays
 * at the watermark and reading is enabled).
 */
START_TEST(t_pipelined_full_input)
{
	struct tclient	*tc = client_new();
	struct evbuffer	*b = evbuffer_new();
	clock_t		 t0;
	int		 i;

	evbuffer_add_printf(b, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	for (i = 0; i < 4000; i++)
		evbuffer_add_printf(b, "GET /hello HTTP/1.1\r\nHost: x\r\n"
		    "X-Pad: %0100d\r\n\r\n", i);
	ck_assert_uint_gt(evbuffer_get_length(b), 2 * HTTP_INBUF_MAX);
	t0 = clock();
	client_send(tc, (const char *)evbuffer_pullup(b, -1),
	    HTTP_INBUF_MAX + 4096);
	run_for(100);
	ck_assert_msg(clock() - t0 < CLOCKS_PER_SEC / 20, "spun: %ld",
	    (long)(clock() - t0));
	evbuffer_free(b);
	client_free(tc);
}
END_TEST

START_TEST(t_response_header_injection)
{
	struct tresp	*r;

	r = roundtrip("GET /badheader HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_ptr_null(hdr(r, "Set-Cookie"));
	ck_assert_ptr_null(hdr(r, "X-Evil"));
}
END_TEST

static int
count_fds(void)
{
	DIR		*d = opendir("/proc/self/fd");
	struct dirent	*de;
	int		 n = 0;

	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

START_TEST(t_no_leaks)
{
	struct tclient	*tc[24];
	int		 before, i;
	static const char *reqs[] = {
		"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /async HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /hello HTTP/1.1\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: x\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n",
		"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
	};

	before = count_fds();
	for (i = 0; i < 24; i++) {
		tc[i] = client_new();
		/* one async at a time: the test handler keeps one */
		if (i % 6 == 1 && i != 1)
			continue;
		client_sends(tc[i], reqs[i % 6]);
	}
	run_for(30);
	ck_assert_int_eq(http_server_nconns(srv), 24);
	for (i = 0; i < 24; i++)
		client_free(tc[i]);
	run_until_nconns(0, 2000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

static void
listener_done(void *arg)
{
	*(int *)arg = 1;
}

/* A real listening socket, accepted through evconnlistener. */
START_TEST(t_listener_and_shutdown)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct tclient		 tcl, *tc = &tcl;
	struct tclient		*idle;
	int			 lfd, done = 0, before;

	before = count_fds();
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	ck_assert_int_eq(http_server_listen(srv, lfd, HTTP_LISTEN_MAIN), 0);

	memset(tc, 0, sizeof(*tc));
	tc->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(tc->fd, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	fcntl(tc->fd, F_SETFL, O_NONBLOCK);
	tc->raw = evbuffer_new();
	tc->ev = event_new(base, tc->fd, EV_READ | EV_PERSIST, client_read,
	    tc);
	event_add(tc->ev, NULL);
	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(resp[0].body, "hello");

	/* in flight during shutdown: answered, with Connection: close */
	idle = client_new();
	client_sends(tc, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	ck_assert_int_eq(http_server_nconns(srv), 2);
	http_server_shutdown(srv, listener_done, &done);
	run_until(tc, 2, 1, 2000);
	ck_assert_int_eq(resp[1].status, 200);
	ck_assert_str_eq(resp[1].body, "late");
	ck_assert_str_eq(hdr(&resp[1], "Connection"), "close");
	run_for(20);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	ck_assert_int_eq(done, 1);
	ck_assert_int_eq(idle->eof, 1);
	event_free(tc->ev);
	evbuffer_free(tc->raw);
	close(tc->fd);
	client_free(idle);
	/* the listening socket is closed too */
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- health ----------------------------------------------------------- */

START_TEST(t_healthz)
{
	struct tresp	*r;

	r = roundtrip("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(r->body, "ok");
	ck_assert_str_eq(hdr(r, "Content-Type"), "text/plain; charset=utf-8");
	proxy_set_draining(1);
	r = roundtrip("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 503);
	ck_assert_str_eq(r->body, "draining");
}
END_TEST

START_TEST(t_readyz_ready)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	ck_assert_int_eq(ping_count, 2);
	ck_assert_uint_ne(ping_id[PROC_STATE], 0);
	ck_assert_uint_ne(ping_id[PROC_SPAWN], 0);
	ck_assert_uint_ne(ping_id[PROC_STATE], ping_id[PROC_SPAWN]);
	ck_assert_int_eq(proxy_health_pending(), 1);
	/* a pong with the wrong id or from the wrong peer changes nothing */
	proxy_health_pong(PROC_STATE, ping_id[PROC_SPAWN], 1);
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE] + 1000, 1);
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE], 1);
	run_for(10);
	ck_assert_int_eq(parse_all(tc), 0);
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 1);
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(resp[0].body, "{\"status\":\"ready\"}\n");
	ck_assert_int_eq(proxy_health_pending(), 0);
	/* late pong: ignored */
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 1);
	client_free(tc);
}
END_TEST

START_TEST(t_readyz_failing)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 1);
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE], 0);
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_int_eq(resp[0].status, 503);
	ck_assert_str_eq(resp[0].body, "{\"status\":\"not_ready\"}\n");
	client_free(tc);

	/* a ping that cannot be sent fails at once */
	ping_fail = 1;
	tc = client_new();
	client_sends(tc, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_int_eq(resp[0].status, 503);
	ck_assert_int_eq(proxy_health_pending(), 0);
	client_free(tc);
}
END_TEST

START_TEST(t_readyz_timeout)
{
	struct tclient	*tc = client_new();

	proxy_health_set_timeout(100);
	client_sends(tc, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE], 1);
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_int_eq(resp[0].status, 503);
	ck_assert_str_eq(resp[0].body, "{\"status\":\"not_ready\"}\n");
	ck_assert_int_eq(proxy_health_pending(), 0);
	/* the late one finds nothing */
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 1);
	proxy_health_set_timeout(0);
	client_free(tc);
}
END_TEST

START_TEST(t_readyz_draining)
{
	struct tresp	*r;

	proxy_set_draining(1);
	r = roundtrip("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503);
	ck_assert_str_eq(r->body, "{\"status\":\"draining\"}\n");
	ck_assert_int_eq(ping_count, 0);
}
END_TEST

START_TEST(t_readyz_disconnect)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	run_for(10);
	ck_assert_int_eq(proxy_health_pending(), 1);
	client_close(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(proxy_health_pending(), 0);
	/* pongs after the client left are dropped safely */
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE], 1);
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 1);
	run_for(10);
	client_free(tc);
}
END_TEST

START_TEST(t_management_listener)
{
	struct tclient	*tc;

	/* health moved to the management listener: gone from the main one */
	roundtrip("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 404);
	roundtrip("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 404);

	tc = client_new_on(HTTP_LISTEN_MGMT);
	client_sends(tc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_str_eq(resp[0].body, "ok");
	run_for(10);
	proxy_health_pong(PROC_STATE, ping_id[PROC_STATE], 1);
	proxy_health_pong(PROC_SPAWN, ping_id[PROC_SPAWN], 0);
	ck_assert_int_eq(run_until(tc, 2, 0, 1000), 2);
	ck_assert_int_eq(resp[1].status, 503);
	ck_assert_str_eq(resp[1].body, "{\"status\":\"not_ready\",\"checks\":"
	    "{\"database\":\"pass\",\"docker\":\"fail\"}}\n");
	client_free(tc);
}
END_TEST

/* ---- streamed request bodies ------------------------------------------ */

/*
 * Writes a request with a big generated body as fast as the socket
 * takes it, from the event loop, so that the server's reading (and
 * pausing) decides the pace.
 */
struct feeder {
	struct event	*ev;
	struct evbuffer	*out;
	size_t		 total;
	size_t		 sent;
	int		 chunked;
	const char	*tail;
	int		 tail_added;
};

static void
feeder_fill(struct feeder *f)
{
	unsigned char	 buf[10000];
	size_t		 n, i;

	while (evbuffer_get_length(f->out) < 65536 && f->sent < f->total) {
		n = f->total - f->sent < sizeof(buf) ? f->total - f->sent :
		    sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pattern(f->sent + i);
		if (f->chunked)
			evbuffer_add_printf(f->out, "%zx;i=%zu\r\n", n,
			    f->sent);
		evbuffer_add(f->out, buf, n);
		if (f->chunked)
			evbuffer_add(f->out, "\r\n", 2);
		f->sent += n;
	}
	if (f->sent == f->total && !f->tail_added) {
		if (f->chunked)
			evbuffer_add_printf(f->out, "0\r\nX-Sum: 1\r\n\r\n");
		evbuffer_add_printf(f->out, "%s", f->tail);
		f->tail_added = 1;
	}
}

static void
feeder_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct feeder	*f = arg;

	feeder_fill(f);
	if (evbuffer_write(f->out, fd) == -1 && errno != EAGAIN) {
		event_del(f->ev);
		return;
	}
	if (f->tail_added && evbuffer_get_length(f->out) == 0)
		event_del(f->ev);
}

static void
feeder_start(struct feeder *f, struct tclient *tc, const char *head,
    size_t total, int chunked, const char *tail)
{
	memset(f, 0, sizeof(*f));
	f->out = evbuffer_new();
	f->total = total;
	f->chunked = chunked;
	f->tail = tail;
	evbuffer_add_printf(f->out, "%s", head);
	f->ev = event_new(base, tc->fd, EV_WRITE | EV_PERSIST, feeder_cb, f);
	event_add(f->ev, NULL);
}

static void
feeder_free(struct feeder *f)
{
	event_free(f->ev);
	evbuffer_free(f->out);
}

START_TEST(t_body_stream_cl)
{
	struct tclient	*tc = client_new();

	/* the handler runs with the head, before any of the body */
	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 15\r\n\r\n");
	run_for(20);
	ck_assert_int_eq(up.nhandler, 1);
	ck_assert_int_eq(up.ndata, 0);
	client_sends(tc, "hello");
	run_for(20);
	ck_assert_int_eq(up.ndata, 1);
	client_sends(tc, " strea");
	run_for(20);
	client_sends(tc, "ming");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(resp[0].body, "hello streaming");
	ck_assert_int_eq(up.ndata, 3);
	ck_assert_int_eq(up.nend, 1);
	ck_assert_int_eq(up.nerror + up.ncancel, 0);

	/* no body: on_end at once; the connection was kept */
	client_sends(tc, "GET /up HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[1].status, 200);
	ck_assert_int_eq(resp[1].bodylen, 0);
	ck_assert_int_eq(up.ndata, 3);
	ck_assert_int_eq(up.nend, 2);
	ck_assert_int_eq(tc->eof, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_chunked)
{
	static const char req[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5;ext=1\r\nhello\r\n"
	    "6;a=b;c=\"d e\"\r\n world\r\n"
	    "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
	struct tclient	*tc = client_new();
	size_t		 i;

	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n");
	run_for(20);
	ck_assert_int_eq(up.ndata, 1);
	client_sends(tc, "6;a=b\r\n world\r\n");
	run_for(20);
	ck_assert_int_eq(up.ndata, 2);
	ck_assert_int_eq(up.nend, 0);
	client_sends(tc, "0\r\nX-Trailer: t\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(resp[0].body, "hello world");
	ck_assert_int_eq(up.nend, 1);
	client_free(tc);

	/* one byte at a time, and a pipelined request behind it */
	up_reset();
	tc = client_new();
	for (i = 0; i < sizeof(req) - 1; i++) {
		client_send(tc, req + i, 1);
		loop_once();
		loop_once();
	}
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_str_eq(resp[0].body, "hello world");
	ck_assert_str_eq(resp[1].body, "hello");
	ck_assert_int_eq(up.nend, 1);
	ck_assert_int_eq(up.nerror + up.ncancel, 0);
	client_free(tc);
}
END_TEST

/* 20 MiB past a slow consumer: the core never holds more than the bound */
static void
big_body(const char *mode, int chunked, size_t total)
{
	struct tclient	*tc = client_new();
	struct feeder	 f;
	char		 want[64], head[256];

	up_reset();
	if (chunked)
		snprintf(head, sizeof(head), "POST /up?%s HTTP/1.1\r\n"
		    "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", mode);
	else
		snprintf(head, sizeof(head), "POST /up?%s HTTP/1.1\r\n"
		    "Host: x\r\nContent-Length: %zu\r\n\r\n", mode, total);
	feeder_start(&f, tc, head, total, chunked,
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 60000), 2);
	snprintf(want, sizeof(want), "total=%zu bad=0", total);
	ck_assert_str_eq(resp[0].body, want);
	ck_assert_str_eq(resp[1].body, "hello");
	ck_assert_int_eq(up.nend, 1);
	ck_assert_int_eq(up.nerror + up.ncancel, 0);
	ck_assert_uint_le(up.maxbuf, UP_BOUND);
	ck_assert_uint_le(up.maxsink, UP_SINK_MAX + HTTP_BODY_CHUNK_MAX);
	ck_assert_uint_le(up.maxbuf + up.maxsink, 512 * 1024);
	feeder_free(&f);
	client_free(tc);
}

START_TEST(t_body_stream_big)
{
	big_body("pause", 0, 20 * 1024 * 1024);
	ck_assert_int_gt(up.pauses, 10);
}
END_TEST

START_TEST(t_body_stream_big_chunked)
{
	big_body("pause", 1, 8 * 1024 * 1024);
	ck_assert_int_gt(up.pauses, 10);
}
END_TEST

/* A consumer that leaves bytes behind: the core's own buffers fill up. */
START_TEST(t_body_stream_big_hoard)
{
	big_body("hoard", 0, 20 * 1024 * 1024);
	ck_assert_uint_gt(up.maxbuf, UP_HOARD_MIN);
	big_body("hoard", 1, 8 * 1024 * 1024);
	ck_assert_uint_gt(up.maxbuf, UP_HOARD_MIN);
}
END_TEST

START_TEST(t_body_stream_limit)
{
	struct tclient	*tc;
	char		*raw;
	int		 i;

	/* announced over the handler's limit: refused, no 100 Continue */
	tc = client_new();
	client_sends(tc, "POST /up?limit=1000 HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	raw = raw_str(tc);
	ck_assert_msg(strncmp(raw, "HTTP/1.1 413 ", 13) == 0, "%s", raw);
	free(raw);
	ck_assert_str_eq(resp[0].body, "{\"error\":\"payload_too_large\","
	    "\"message\":\"bundle exceeds max_bundle_size\"}\n");
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_TOO_LARGE);
	ck_assert_int_eq(up.ndata, 0);
	client_free(tc);

	/* chunked, noticed mid-stream */
	up.nerror = 0;
	tc = client_new();
	client_sends(tc, "POST /up?limit=1000 HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 5 && !tc->eof; i++) {
		client_sends(tc, "12c\r\n");
		client_sends(tc, "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "01234567890123456789\r\n");
		run_for(20);
	}
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 413);
	ck_assert_str_eq(resp[0].body, "{\"error\":\"payload_too_large\","
	    "\"message\":\"bundle exceeds max_bundle_size\"}\n");
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_int_eq(up.ndata, 3);
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_TOO_LARGE);
	ck_assert_int_eq(up.nend + up.ncancel, 0);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);

	/* over the route's own ceiling: refused before the handler runs */
	up.nhandler = 0;
	tc = client_new();
	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 40000000\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 413);
	ck_assert_str_eq(resp[0].body, "{\"error\":\"payload_too_large\","
	    "\"message\":\"request body too large\"}\n");
	ck_assert_int_eq(up.nhandler, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_disconnect)
{
	struct tclient	*tc = client_new();
	uint64_t	 handle;

	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100\r\n\r\nsome");
	run_for(20);
	ck_assert_int_eq(up.ndata, 1);
	handle = http_request_handle(up.req);
	client_close(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	/* on_error is the last word, the cancel callback is not called */
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_ABORTED);
	ck_assert_int_eq(up.ncancel, 0);
	ck_assert_int_eq(up.nend, 0);
	ck_assert_ptr_null(http_request_lookup(srv, handle));
	client_free(tc);

	/* gone while paused */
	tc = client_new();
	client_sends(tc, "POST /up?pause HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 1000000\r\n\r\n");
	{
		char	*buf = calloc(1, 100000);

		client_send(tc, buf, 100000);
		free(buf);
	}
	run_for(5);
	client_close(tc);
	run_until_nconns(0, 2000);
	ck_assert_int_eq(up.nerror, 2);
	ck_assert_int_eq(up.ncancel, 0);
	client_free(tc);

	/* gone before the handler took the body: the cancel callback */
	up.ndata = 0;
	tc = client_new();
	client_sends(tc, "POST /up?late HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100\r\n\r\nsome");
	run_for(20);
	client_close(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(up.ncancel, 1);
	ck_assert_int_eq(up.nerror, 2);
	run_for(150);
	ck_assert_int_eq(up.ndata, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_refuse)
{
	struct tclient	*tc = client_new();

	/* most of the body still to come: answered, then closed */
	client_sends(tc, "POST /up?refuse HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100000\r\n\r\n0123456789");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 404);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);

	/* chunked: the end is unknown, so closed too */
	tc = client_new();
	client_sends(tc, "POST /up?refuse HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 404);
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);

	/* all of a small body is here: dropped, the connection kept */
	tc = client_new();
	client_sends(tc, "POST /up?refuse HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\n\r\nhello"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[0].status, 404);
	ck_assert_ptr_null(hdr(&resp[0], "Connection"));
	ck_assert_str_eq(resp[1].body, "hello");
	ck_assert_int_eq(tc->eof, 0);
	client_free(tc);

	/* answered from on_data, body half read */
	tc = client_new();
	client_sends(tc, "POST /up?early HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100000\r\n\r\n0123456789");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_str_eq(resp[0].body, "early");
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	ck_assert_int_eq(up.ndata, 1);
	ck_assert_int_eq(up.nend + up.nerror + up.ncancel, 0);
	client_free(tc);
	run_until_nconns(0, 1000);
	ck_assert_int_eq(http_server_nconns(srv), 0);
}
END_TEST

START_TEST(t_body_stream_expect)
{
	struct tclient	*tc = client_new();
	char		*raw;

	/* 100 only once the handler takes the body (100 ms later here) */
	client_sends(tc, "POST /up?late HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
	run_for(50);
	raw = raw_str(tc);
	ck_assert_str_eq(raw, "");
	free(raw);
	run_for(100);
	raw = raw_str(tc);
	ck_assert_str_eq(raw, "HTTP/1.1 100 Continue\r\n\r\n");
	free(raw);
	client_sends(tc, "body");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_int_eq(resp[0].status, 100);
	ck_assert_int_eq(resp[1].status, 200);
	ck_assert_str_eq(resp[1].body, "body");
	client_free(tc);

	/* refused: the final answer and no 100 */
	tc = client_new();
	client_sends(tc, "POST /up?refuse HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	raw = raw_str(tc);
	ck_assert_msg(strncmp(raw, "HTTP/1.1 404 ", 13) == 0, "%s", raw);
	free(raw);
	ck_assert_str_eq(hdr(&resp[0], "Connection"), "close");
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_smuggling)
{
	static const char clte[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n";
	static const char twocl[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
	static const char tegz[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
	static const char badsize[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
	static const char barelf[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\nabc\r\n"
	    "0\r\n\r\n";
	static const char nocrlf[] = "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n";
	struct evbuffer	*b = evbuffer_new();
	int		 i;

	/* framing is refused with the head: the handler never runs */
	expect_error_close(clte, sizeof(clte) - 1, 400);
	expect_error_close(twocl, sizeof(twocl) - 1, 400);
	expect_error_close(tegz, sizeof(tegz) - 1, 400);
	ck_assert_int_eq(up.nhandler, 0);

	/* inside the body: the handler hears it, the client gets a 400 */
	expect_error_close(badsize, sizeof(badsize) - 1, 400);
	ck_assert_int_eq(up.nhandler, 1);
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_MALFORMED);
	expect_error_close(barelf, sizeof(barelf) - 1, 400);
	ck_assert_int_eq(up.nerror, 2);
	expect_error_close(nocrlf, sizeof(nocrlf) - 1, 400);
	ck_assert_int_eq(up.nerror, 3);

	/* a chunk line over the limit */
	evbuffer_add_printf(b, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1;x=");
	for (i = 0; i < HTTP_MAX_CHUNK_LINE; i++)
		evbuffer_add(b, "a", 1);
	evbuffer_add_printf(b, "\r\na\r\n0\r\n\r\n");
	expect_error_close((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 400);
	ck_assert_int_eq(up.nerror, 4);
	ck_assert_int_eq(up.nend, 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(t_body_stream_timeout)
{
	struct http_timeouts	 to = { 100, 200, 150, 1000, 100 };
	struct tclient		*tc;
	int			 i;

	http_server_set_timeouts(srv, &to);
	/* the body stops coming */
	tc = client_new();
	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 30\r\n\r\nx");
	ck_assert_int_eq(run_until(tc, 1, 1, 2000), 1);
	ck_assert_int_eq(resp[0].status, 408);
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_TIMEOUT);
	client_free(tc);

	/* slow but steady: streamed bodies time out between bytes only */
	tc = client_new();
	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 10\r\n\r\n");
	for (i = 0; i < 10; i++) {
		client_sends(tc, "y");
		run_for(40);
	}
	ck_assert_int_eq(run_until(tc, 1, 0, 1000), 1);
	ck_assert_int_eq(resp[0].status, 200);
	ck_assert_str_eq(resp[0].body, "yyyyyyyyyy");
	ck_assert_int_eq(up.nerror, 1);
	client_free(tc);
}
END_TEST

/* The body streamed back while it arrives (what the app proxy does). */
START_TEST(t_body_stream_duplex)
{
	struct tclient	*tc = client_new();
	char		*raw;

	client_sends(tc, "POST /up?duplex HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 9\r\n\r\nabc");
	run_for(20);
	raw = raw_str(tc);
	ck_assert_ptr_nonnull(strstr(raw, "\r\n\r\n3\r\nabc\r\n"));
	free(raw);
	client_sends(tc, "def");
	run_for(20);
	client_sends(tc, "ghi");
	ck_assert_int_eq(run_until(tc, 1, 0, 2000), 1);
	ck_assert_str_eq(resp[0].body, "abcdefghi");
	ck_assert_str_eq(hdr(&resp[0], "Transfer-Encoding"), "chunked");
	client_sends(tc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 2000), 2);
	ck_assert_str_eq(resp[1].body, "hello");
	ck_assert_int_eq(up.nend, 1);
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_pipelined)
{
	struct tclient	*tc = client_new();

	client_sends(tc,
	    "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	    "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n3\r\nabc\r\n0\r\n\r\n"
	    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
	    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 4, 0, 2000), 4);
	ck_assert_str_eq(resp[0].body, "hello");
	ck_assert_str_eq(resp[1].body, "abc");
	ck_assert_str_eq(resp[2].body, "xyz");
	ck_assert_str_eq(resp[3].body, "hello");
	ck_assert_int_eq(up.nend, 2);
	ck_assert_int_eq(tc->eof, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_body_stream_shutdown)
{
	struct tclient	*tc = client_new();

	/* a body in flight when the server goes: on_error, nothing leaks */
	client_sends(tc, "POST /up HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100\r\n\r\nsome");
	run_for(20);
	ck_assert_int_eq(up.ndata, 1);
	http_server_free(srv);
	srv = NULL;
	ck_assert_int_eq(up.nerror, 1);
	ck_assert_int_eq(up.why, HTTP_BODY_ABORTED);
	srv = http_server_new(base, router);
	client_free(tc);
}
END_TEST

static Suite *
byproxy_http_suite(void)
{
	Suite	*s = suite_create("byproxy_http");
	TCase	*tc = tcase_create("core");
	TCase	*th = tcase_create("health");
	TCase	*tm = tcase_create("management");
	TCase	*ts = tcase_create("stream");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_simple_get);
	tcase_add_test(tc, t_security_headers);
	tcase_add_test(tc, t_hsts);
	tcase_add_test(tc, t_api_group_headers);
	tcase_add_test(tc, t_keepalive);
	tcase_add_test(tc, t_pipelined);
	tcase_add_test(tc, t_http10_close);
	tcase_add_test(tc, t_http10_keepalive);
	tcase_add_test(tc, t_connection_close);
	tcase_add_test(tc, t_chunked_body);
	tcase_add_test(tc, t_split_input);
	tcase_add_test(tc, t_cl_and_te);
	tcase_add_test(tc, t_duplicate_cl);
	tcase_add_test(tc, t_te_not_chunked);
	tcase_add_test(tc, t_bare_lf);
	tcase_add_test(tc, t_obs_fold);
	tcase_add_test(tc, t_bad_header_bytes);
	tcase_add_test(tc, t_malformed);
	tcase_add_test(tc, t_too_many_headers);
	tcase_add_test(tc, t_exactly_max_headers);
	tcase_add_test(tc, t_header_block_too_large);
	tcase_add_test(tc, t_request_line_too_long);
	tcase_add_test(tc, t_body_too_large);
	tcase_add_test(tc, t_route_body_limit);
	tcase_add_test(tc, t_expect_continue);
	tcase_add_test(tc, t_expect_not_allowed);
	tcase_add_test(tc, t_request_log);
	tcase_add_test(tc, t_leading_crlf);
	tcase_add_test(tc, t_timeout_head);
	tcase_add_test(tc, t_timeout_body);
	tcase_add_test(tc, t_timeout_idle);
	tcase_add_test(tc, t_not_found);
	tcase_add_test(tc, t_method_not_allowed);
	tcase_add_test(tc, t_head);
	tcase_add_test(tc, t_params_and_prefix);
	tcase_add_test(tc, t_async);
	tcase_add_test(tc, t_async_disconnect);
	tcase_add_test(tc, t_stream);
	tcase_add_test(tc, t_stream_disconnect);
	tcase_add_test(tc, t_stream_length);
	tcase_add_test(tc, t_takeover);
	tcase_add_test(tc, t_pipelined_full_input);
	tcase_add_test(tc, t_response_header_injection);
	tcase_add_test(tc, t_no_leaks);
	tcase_add_test(tc, t_listener_and_shutdown);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(ts, setup, teardown);
	/* 20 MiB under ASan */
	tcase_set_timeout(ts, 120);
	tcase_add_test(ts, t_body_stream_cl);
	tcase_add_test(ts, t_body_stream_chunked);
	tcase_add_test(ts, t_body_stream_big);
	tcase_add_test(ts, t_body_stream_big_chunked);
	tcase_add_test(ts, t_body_stream_big_hoard);
	tcase_add_test(ts, t_body_stream_limit);
	tcase_add_test(ts, t_body_stream_disconnect);
	tcase_add_test(ts, t_body_stream_refuse);
	tcase_add_test(ts, t_body_stream_expect);
	tcase_add_test(ts, t_body_stream_smuggling);
	tcase_add_test(ts, t_body_stream_timeout);
	tcase_add_test(ts, t_body_stream_duplex);
	tcase_add_test(ts, t_body_stream_pipelined);
	tcase_add_test(ts, t_body_stream_shutdown);
	suite_add_tcase(s, ts);

	tcase_add_checked_fixture(th, setup, teardown);
	tcase_add_test(th, t_healthz);
	tcase_add_test(th, t_readyz_ready);
	tcase_add_test(th, t_readyz_failing);
	tcase_add_test(th, t_readyz_timeout);
	tcase_add_test(th, t_readyz_draining);
	tcase_add_test(th, t_readyz_disconnect);
	suite_add_tcase(s, th);

	tcase_add_checked_fixture(tm, setup_mgmt, teardown);
	tcase_add_test(tm, t_management_listener);
	suite_add_tcase(s, tm);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(byproxy_http_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
