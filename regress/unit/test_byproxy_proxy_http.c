/*
 * proxy_http.c driven in-process: the HTTP core on an event_base with
 * routes that forward to a scripted worker listening on 127.0.0.1 in
 * the same loop.  Clients talk over socketpairs; their answers are
 * parsed as they arrive, so that bodies of many MiB are checked byte by
 * byte without being kept.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <http_parser.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

#define MAXRESP		8
#define MAXHDR		48
#define BODYMAX		(96 * 1024)
#define PROXY_BUF	(256 * 1024)	/* proxy_http.c's PROXY_BUF_MAX */
#define WORKER		"w1"

static struct event_base	*base;
static struct http_router	*router;
static struct http_server	*srv;

static unsigned char
pattern(size_t i)
{
	return (unsigned char)(i % 251);
}

static int
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int	 timed_out;

static void
deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	timed_out = 1;
}

/* ---- the scripted worker ------------------------------------------- */

struct wconn {
	LIST_ENTRY(wconn) entry;
	struct bufferevent *bev;
	http_parser	 p;
	int		 nreq;		/* requests begun on it */
	int		 in_value;
	char		 url[1024];
	size_t		 body_len;
	size_t		 body_bad;
	int		 kill;		/* close without answering */
	int		 close_after;	/* close once the output is out */
	int		 stalled;	/* not reading the request body */
	int		 held;		/* /hold: waiting for w_release */
	size_t		 src_left;	/* a generated body still to write */
	size_t		 src_off;
	int		 src_chunked;
	struct event	*ev;
};

/* The last request the worker saw, as it saw it. */
struct wseen {
	char		 method[16];
	char		 url[1024];
	int		 nh;
	char		 hn[MAXHDR][64];
	char		 hv[MAXHDR][256];
	size_t		 body_len;
	size_t		 body_bad;
	int		 n;		/* requests seen */
};

static struct {
	struct evconnlistener *lev;
	int		 port;
	int		 accepts;
	int		 open;
	int		 drop_reused;	/* kill a reused conn's next request */
	int		 stall_ms;	/* /sink?stall: read the body late */
	LIST_HEAD(, wconn) conns;
} w;
static struct wseen	 seen;

static void	 w_free(struct wconn *);

static void
w_fill(struct wconn *wc)
{
	struct evbuffer	*out = bufferevent_get_output(wc->bev);
	unsigned char	 buf[16384];
	size_t		 n, i;

	while (wc->src_left > 0 && evbuffer_get_length(out) < 256 * 1024) {
		n = wc->src_left < sizeof(buf) ? wc->src_left : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pattern(wc->src_off + i);
		if (wc->src_chunked)
			evbuffer_add_printf(out, "%zx\r\n", n);
		evbuffer_add(out, buf, n);
		if (wc->src_chunked)
			evbuffer_add(out, "\r\n", 2);
		wc->src_off += n;
		wc->src_left -= n;
		if (wc->src_left == 0 && wc->src_chunked)
			evbuffer_add_printf(out, "0\r\n\r\n");
	}
}

static void
w_unstall(evutil_socket_t fd, short ev, void *arg)
{
	struct wconn	*wc = arg;

	wc->stalled = 0;
	http_parser_pause(&wc->p, 0);
	bufferevent_enable(wc->bev, EV_READ);
	bufferevent_trigger(wc->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

static int
w_begin(http_parser *p)
{
	struct wconn	*wc = p->data;

	wc->nreq++;
	wc->url[0] = '\0';
	wc->body_len = wc->body_bad = 0;
	memset(&seen, 0, offsetof(struct wseen, n));
	wc->in_value = 0;
	return 0;
}

static int
w_url(http_parser *p, const char *at, size_t len)
{
	struct wconn	*wc = p->data;

	strncat(wc->url, at, len < 1000 - strlen(wc->url) ? len :
	    1000 - strlen(wc->url));
	return 0;
}

static int
w_field(http_parser *p, const char *at, size_t len)
{
	struct wconn	*wc = p->data;

	if (wc->in_value || seen.nh == 0) {
		if (seen.nh == MAXHDR)
			return 0;
		seen.nh++;
		wc->in_value = 0;
	}
	strncat(seen.hn[seen.nh - 1], at, len < 63 ? len : 63);
	return 0;
}

static int
w_value(http_parser *p, const char *at, size_t len)
{
	struct wconn	*wc = p->data;

	if (seen.nh == 0)
		return 0;
	wc->in_value = 1;
	strncat(seen.hv[seen.nh - 1], at, len < 255 ? len : 255);
	return 0;
}

static int
w_headers_done(http_parser *p)
{
	struct wconn	*wc = p->data;
	struct timeval	 tv = { w.stall_ms / 1000, (w.stall_ms % 1000) * 1000 };
	struct evbuffer	*out = bufferevent_get_output(wc->bev);

	snprintf(seen.method, sizeof(seen.method), "%s",
	    http_method_str(p->method));
	snprintf(seen.url, sizeof(seen.url), "%s", wc->url);
	if (strstr(wc->url, "stall") != NULL) {
		wc->stalled = 1;
		http_parser_pause(p, 1);
		bufferevent_disable(wc->bev, EV_READ);
		evtimer_add(wc->ev, &tv);
	}
	if (has_prefix(wc->url, "/early"))
		evbuffer_add_printf(out, "HTTP/1.1 413 Payload Too Large\r\n"
		    "Content-Length: 4\r\n\r\nnope");
	return 0;
}

static int
w_body(http_parser *p, const char *at, size_t len)
{
	struct wconn	*wc = p->data;
	size_t		 i;

	for (i = 0; i < len; i++)
		if ((unsigned char)at[i] != pattern(wc->body_len + i))
			wc->body_bad++;
	wc->body_len += len;
	return 0;
}

/* Answer by the path of the request. */
static void
w_answer(struct wconn *wc)
{
	struct evbuffer	*out = bufferevent_get_output(wc->bev);
	const char	*u = wc->url;
	char		 msg[128];

	if (has_prefix(u, "/clsaysclose"))
		/* says close but leaves it to us */
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Connection: close\r\nContent-Length: 3\r\n\r\nbye");
	else if (has_prefix(u, "/old"))
		evbuffer_add_printf(out, "HTTP/1.0 200 OK\r\n"
		    "Content-Length: 3\r\n\r\nold");
	else if (has_prefix(u, "/cl") && !has_prefix(u, "/close"))
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Content-Type: text/plain\r\nX-Up: yes\r\n"
		    "Connection: X-Hop\r\nX-Hop: secret\r\n"
		    "Keep-Alive: timeout=5\r\nX-Frame-Options: SAMEORIGIN\r\n"
		    "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
		    "Proxy-Thing: x\r\nContent-Length: 11\r\n\r\nhello world");
	else if (has_prefix(u, "/chunked"))
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
		    "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n");
	else if (has_prefix(u, "/close")) {
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Connection: close\r\n\r\nuntil close");
		wc->close_after = 1;
	} else if (has_prefix(u, "/nocontent"))
		evbuffer_add_printf(out, "HTTP/1.1 204 No Content\r\n"
		    "X-A: b\r\n\r\n");
	else if (has_prefix(u, "/notmod"))
		evbuffer_add_printf(out, "HTTP/1.1 304 Not Modified\r\n"
		    "ETag: \"x\"\r\nContent-Length: 42\r\n\r\n");
	else if (has_prefix(u, "/headbare"))
		/* no length at all: still no body, since it answers HEAD */
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nX-B: c\r\n\r\n");
	else if (has_prefix(u, "/head"))
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Content-Length: 1000\r\n\r\n");
	else if (has_prefix(u, "/continue"))
		evbuffer_add_printf(out, "HTTP/1.1 100 Continue\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	else if (has_prefix(u, "/sink")) {
		snprintf(msg, sizeof(msg), "len=%zu bad=%zu", wc->body_len,
		    wc->body_bad);
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Content-Length: %zu\r\n\r\n%s", strlen(msg), msg);
	} else if (has_prefix(u, "/big")) {
		wc->src_left = strtoul(strchr(u, '=') + 1, NULL, 10);
		wc->src_off = 0;
		wc->src_chunked = has_prefix(u, "/bigchunked");
		if (wc->src_chunked)
			evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n");
		else
			evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Content-Length: %zu\r\n\r\n", wc->src_left);
		w_fill(wc);
	} else if (has_prefix(u, "/diechunked")) {
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
		wc->close_after = 1;
	} else if (has_prefix(u, "/die")) {
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Content-Length: 1000\r\n\r\nonly a part");
		wc->close_after = 1;
	} else if (has_prefix(u, "/stall"))
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
		    "Content-Length: 1000\r\n\r\nonly a part");
	else if (has_prefix(u, "/garbage"))
		evbuffer_add_printf(out, "HTTP/1.1 2x0 What\r\n\r\n");
	else if (has_prefix(u, "/drop"))
		wc->kill = 1;
	else if (has_prefix(u, "/hold"))
		wc->held = 1;
	else if (has_prefix(u, "/early"))
		;	/* answered with the head */
	else if (!has_prefix(u, "/hang"))
		evbuffer_add_printf(out, "HTTP/1.1 404 Not Found\r\n"
		    "Content-Length: 0\r\n\r\n");
}

static int
w_done(http_parser *p)
{
	struct wconn	*wc = p->data;

	seen.body_len = wc->body_len;
	seen.body_bad = wc->body_bad;
	seen.n++;
	if (w.drop_reused && wc->nreq > 1) {
		wc->kill = 1;
		return 0;
	}
	w_answer(wc);
	return 0;
}

static const http_parser_settings wsettings = {
	.on_message_begin = w_begin,
	.on_url = w_url,
	.on_header_field = w_field,
	.on_header_value = w_value,
	.on_headers_complete = w_headers_done,
	.on_body = w_body,
	.on_message_complete = w_done,
};

static void
w_read(struct bufferevent *bev, void *arg)
{
	struct wconn		*wc = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_iovec	 v;
	size_t			 n;

	while (!wc->stalled && !wc->kill &&
	    evbuffer_peek(in, -1, NULL, &v, 1) == 1) {
		n = http_parser_execute(&wc->p, &wsettings, v.iov_base,
		    v.iov_len);
		evbuffer_drain(in, n);
		if (HTTP_PARSER_ERRNO(&wc->p) != HPE_OK)
			break;
	}
	if (wc->kill)
		w_free(wc);
}

static void
w_write(struct bufferevent *bev, void *arg)
{
	struct wconn	*wc = arg;

	w_fill(wc);
	if (wc->close_after &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		w_free(wc);
}

static void
w_event(struct bufferevent *bev, short what, void *arg)
{
	w_free(arg);
}

static void
w_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct wconn	*wc = calloc(1, sizeof(*wc));

	w.accepts++;
	w.open++;
	wc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	wc->ev = evtimer_new(base, w_unstall, wc);
	http_parser_init(&wc->p, HTTP_REQUEST);
	wc->p.data = wc;
	bufferevent_setcb(wc->bev, w_read, w_write, w_event, wc);
	bufferevent_enable(wc->bev, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&w.conns, wc, entry);
}

static void
w_free(struct wconn *wc)
{
	LIST_REMOVE(wc, entry);
	w.open--;
	event_free(wc->ev);
	bufferevent_free(wc->bev);
	free(wc);
}

/* Answer every /hold request. */
static void
w_release(void)
{
	struct wconn	*wc;

	LIST_FOREACH(wc, &w.conns, entry) {
		if (!wc->held)
			continue;
		wc->held = 0;
		evbuffer_add_printf(bufferevent_get_output(wc->bev),
		    "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld");
	}
}

static void
w_start(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd, rcv = 65536;

	memset(&w, 0, sizeof(w));
	LIST_INIT(&w.conns);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ne(fd, -1);
	/* accepted sockets inherit it: a stalled worker holds little */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	w.port = ntohs(sin.sin_port);
	w.lev = evconnlistener_new(base, w_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 64, fd);
	ck_assert_ptr_nonnull(w.lev);
}

static void
w_stop(void)
{
	struct wconn	*wc;

	while ((wc = LIST_FIRST(&w.conns)) != NULL)
		w_free(wc);
	evconnlistener_free(w.lev);
}

/* ---- the route ------------------------------------------------------- */

static struct http_header add_v[] = {
	{ "X-Shiny-Access", "viewer" },
	{ "X-Forwarded-Proto", "https" },
};
static int		 fwd_port;
static int64_t		 fwd_timeout;
static int		 ndone, last_done;
static uint64_t		 cur_handle;

static void
fwd_done(void *arg, int status)
{
	ck_assert_ptr_eq(arg, &ndone);
	ndone++;
	last_done = status;
}

static void
h_proxy(struct http_request *req, void *arg)
{
	struct proxy_upstream	 up;
	char			 target[2048];

	snprintf(target, sizeof(target), "/%s%s%s",
	    http_request_param(req, "*"), req->query != NULL ? "?" : "",
	    req->query != NULL ? req->query : "");
	memset(&up, 0, sizeof(up));
	up.worker_id = WORKER;
	up.port = fwd_port;
	up.target = target;
	up.add.v = add_v;
	up.add.n = sizeof(add_v) / sizeof(add_v[0]);
	up.timeout_ms = fwd_timeout;
	up.done = fwd_done;
	up.arg = &ndone;
	cur_handle = http_request_handle(req);
	proxy_http_forward(req, &up);
}

#define BIGMAX	(64 * 1024 * 1024)
static const struct http_route routes[] = {
	{ "GET", "/app/{name}/*", HTTP_LISTEN_MAIN, 0,
	    HTTP_ROUTE_STREAM_BODY, h_proxy, NULL },
	{ "HEAD", "/app/{name}/*", HTTP_LISTEN_MAIN, 0,
	    HTTP_ROUTE_STREAM_BODY, h_proxy, NULL },
	{ "POST", "/app/{name}/*", HTTP_LISTEN_MAIN, BIGMAX,
	    HTTP_ROUTE_STREAM_BODY, h_proxy, NULL },
	{ "PUT", "/app/{name}/*", HTTP_LISTEN_MAIN, BIGMAX,
	    HTTP_ROUTE_STREAM_BODY, h_proxy, NULL },
	/* a route that reads the body whole first */
	{ "POST", "/plain/{name}/*", HTTP_LISTEN_MAIN, 0, 0, h_proxy, NULL },
};

/* ---- clients: answers parsed as they arrive --------------------------- */

struct tresp {
	int		 status;
	int		 nh;
	char		 hn[MAXHDR][64];
	char		 hv[MAXHDR][256];
	char		 body[BODYMAX];
	size_t		 bodylen;	/* kept, up to BODYMAX */
	size_t		 total;		/* all body bytes */
	size_t		 bad;		/* bytes off the pattern */
	int		 complete;
};

struct tclient {
	int		 fd;
	struct event	*ev;
	http_parser	 p;
	int		 in_value;
	int		 eof;
	int		 perr;
	int		 nresp;
	int		 head[MAXRESP];	/* answer i is to a HEAD */
	struct tresp	 r[MAXRESP + 1];
};

static struct tresp *
cur(http_parser *p)
{
	struct tclient	*tc = p->data;

	return &tc->r[tc->nresp < MAXRESP ? tc->nresp : MAXRESP];
}

static int
c_begin(http_parser *p)
{
	struct tclient	*tc = p->data;

	memset(cur(p), 0, sizeof(struct tresp));
	tc->in_value = 0;
	return 0;
}

static int
c_field(http_parser *p, const char *at, size_t len)
{
	struct tclient	*tc = p->data;
	struct tresp	*r = cur(p);

	if (tc->in_value || r->nh == 0) {
		if (r->nh == MAXHDR)
			return 0;
		r->nh++;
		tc->in_value = 0;
	}
	strncat(r->hn[r->nh - 1], at, len < 63 ? len : 63);
	return 0;
}

static int
c_value(http_parser *p, const char *at, size_t len)
{
	struct tclient	*tc = p->data;
	struct tresp	*r = cur(p);

	if (r->nh == 0)
		return 0;
	tc->in_value = 1;
	strncat(r->hv[r->nh - 1], at, len < 255 ? len : 255);
	return 0;
}

static int
c_headers_done(http_parser *p)
{
	struct tclient	*tc = p->data;
	int		 st = p->status_code;

	cur(p)->status = st;
	/* no body, whatever the head says */
	return (tc->nresp < MAXRESP && tc->head[tc->nresp]) ||
	    st / 100 == 1 || st == 204 || st == 304;
}

static int
c_body(http_parser *p, const char *at, size_t len)
{
	struct tresp	*r = cur(p);
	size_t		 i, n;

	for (i = 0; i < len; i++)
		if ((unsigned char)at[i] != pattern(r->total + i))
			r->bad++;
	r->total += len;
	n = BODYMAX - 1 - r->bodylen;
	if (n > len)
		n = len;
	memcpy(r->body + r->bodylen, at, n);
	r->bodylen += n;
	r->body[r->bodylen] = '\0';
	return 0;
}

static int
c_done(http_parser *p)
{
	struct tclient	*tc = p->data;

	cur(p)->complete = 1;
	tc->nresp++;
	return 0;
}

static const http_parser_settings csettings = {
	.on_message_begin = c_begin,
	.on_header_field = c_field,
	.on_header_value = c_value,
	.on_headers_complete = c_headers_done,
	.on_body = c_body,
	.on_message_complete = c_done,
};

static void
client_parse(struct tclient *tc, const char *buf, size_t len)
{
	if (tc->perr)
		return;
	http_parser_execute(&tc->p, &csettings, buf, len);
	if (HTTP_PARSER_ERRNO(&tc->p) != HPE_OK)
		tc->perr = HTTP_PARSER_ERRNO(&tc->p);
}

static void
client_read(evutil_socket_t fd, short ev, void *arg)
{
	struct tclient	*tc = arg;
	char		 buf[65536];
	ssize_t		 n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			client_parse(tc, buf, n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			tc->eof = 1;
			event_del(tc->ev);
			/* a body delimited by the close ends here */
			client_parse(tc, NULL, 0);
		}
		return;
	}
}

static struct tclient *
client_new(void)
{
	struct tclient	*tc;
	int		 sv[2];

	tc = calloc(1, sizeof(*tc));
	ck_assert_ptr_nonnull(tc);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(http_server_adopt(srv, sv[0], HTTP_LISTEN_MAIN,
	    NULL, 0), 0);
	tc->fd = sv[1];
	fcntl(tc->fd, F_SETFL, O_NONBLOCK);
	http_parser_init(&tc->p, HTTP_RESPONSE);
	tc->p.data = tc;
	tc->ev = event_new(base, tc->fd, EV_READ | EV_PERSIST, client_read,
	    tc);
	event_add(tc->ev, NULL);
	return tc;
}

/* Stop reading (a slow client) or go on. */
static void
client_hold(struct tclient *tc, int hold)
{
	if (hold)
		event_del(tc->ev);
	else if (!tc->eof)
		event_add(tc->ev, NULL);
}

static void
client_free(struct tclient *tc)
{
	event_free(tc->ev);
	if (tc->fd != -1)
		close(tc->fd);
	free(tc);
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
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
			continue;
		}
		return;
	}
}

static void
client_sends(struct tclient *tc, const char *s)
{
	client_send(tc, s, strlen(s));
}

/* Run the loop until n answers arrived (and EOF, if asked) or ms pass. */
static int
run_until(struct tclient *tc, int n, int want_eof, int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	while (!timed_out && (tc->nresp < n || (want_eof && !tc->eof)))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dl);
	return tc->nresp;
}

/* Run until the server closed the client's connection or ms pass. */
static void
run_until_eof(struct tclient *tc, int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	while (!timed_out && !tc->eof)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(dl);
}

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

/* Run until *v == want or ms pass. */
static void
run_until_eq(const int *v, int want, int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	while (!timed_out && *v != want)
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

static int
hdr_count(const struct tresp *r, const char *name)
{
	int	 i, n = 0;

	for (i = 0; i < r->nh; i++)
		if (strcasecmp(r->hn[i], name) == 0)
			n++;
	return n;
}

static const char *
seen_hdr(const char *name)
{
	int	 i;

	for (i = 0; i < seen.nh; i++)
		if (strcasecmp(seen.hn[i], name) == 0)
			return seen.hv[i];
	return NULL;
}

static int
seen_count(const char *name)
{
	int	 i, n = 0;

	for (i = 0; i < seen.nh; i++)
		if (strcasecmp(seen.hn[i], name) == 0)
			n++;
	return n;
}

/* One request on a new client, one complete answer. */
static struct tclient *
roundtrip(const char *request, int status)
{
	struct tclient	*tc = client_new();

	client_sends(tc, request);
	ck_assert_int_eq(run_until(tc, 1, 0, 5000), 1);
	ck_assert_int_eq(tc->r[0].status, status);
	return tc;
}

/*
 * The request's state in the core, sampled while it lives: how much it
 * queued for the client and held of the client's body.
 */
static struct {
	struct event	*ev;
	size_t		 max_queued;
	size_t		 max_buffered;
} smp;

static void
sample_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct http_request	*req;
	size_t			 n;

	if ((req = http_request_lookup(srv, cur_handle)) == NULL)
		return;
	if ((n = http_stream_queued(req)) > smp.max_queued)
		smp.max_queued = n;
	if ((n = http_body_buffered(req)) > smp.max_buffered)
		smp.max_buffered = n;
}

static void
sample_start(void)
{
	struct timeval	 tv = { 0, 1000 };

	memset(&smp, 0, sizeof(smp));
	smp.ev = event_new(base, -1, EV_PERSIST, sample_cb, NULL);
	evtimer_add(smp.ev, &tv);
}

static void
sample_stop(void)
{
	event_free(smp.ev);
	smp.ev = NULL;
}

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

/* ---- fixture ----------------------------------------------------------- */

static void
setup(void)
{
	size_t	 i;

	signal(SIGPIPE, SIG_IGN);
	log_init("test", 1);
	log_setlevel(LOG_LVL_ERROR);
	base = event_base_new();
	router = http_router_new();
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		ck_assert_int_eq(http_router_add(router, &routes[i]), 0);
	srv = http_server_new(base, router);
	ck_assert_ptr_nonnull(srv);
	w_start();
	fwd_port = w.port;
	fwd_timeout = 0;
	ndone = last_done = 0;
	memset(&seen, 0, sizeof(seen));
}

static void
teardown(void)
{
	http_server_free(srv);
	proxy_http_shutdown();
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	w_stop();
	http_router_free(router);
	event_base_free(base);
	srv = NULL;
	router = NULL;
	base = NULL;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(t_get_content_length)
{
	struct tclient	*tc;
	struct tresp	*r;
	char		 host[64];

	tc = roundtrip("GET /app/x/cl?a=1&b=%20 HTTP/1.1\r\nHost: front\r\n"
	    "Accept: text/plain\r\n\r\n", 200);
	r = &tc->r[0];
	ck_assert_str_eq(r->body, "hello world");
	ck_assert_str_eq(hdr(r, "Content-Length"), "11");
	ck_assert_ptr_null(hdr(r, "Transfer-Encoding"));
	ck_assert_str_eq(hdr(r, "Content-Type"), "text/plain");
	ck_assert_str_eq(hdr(r, "X-Up"), "yes");
	/* hop-by-hop, listed in Connection, and what the core sets */
	ck_assert_ptr_null(hdr(r, "X-Hop"));
	ck_assert_ptr_null(hdr(r, "Keep-Alive"));
	ck_assert_ptr_null(hdr(r, "Proxy-Thing"));
	ck_assert_int_eq(hdr_count(r, "X-Frame-Options"), 1);
	ck_assert_str_eq(hdr(r, "X-Frame-Options"), "DENY");
	ck_assert_int_eq(hdr_count(r, "Date"), 1);
	ck_assert_str_ne(hdr(r, "Date"), "Thu, 01 Jan 1970 00:00:00 GMT");
	ck_assert_ptr_nonnull(hdr(r, "X-Blockyard-Version"));

	/* what the worker saw */
	ck_assert_str_eq(seen.method, "GET");
	ck_assert_str_eq(seen.url, "/cl?a=1&b=%20");
	snprintf(host, sizeof(host), "127.0.0.1:%d", w.port);
	ck_assert_int_eq(seen_count("Host"), 1);
	ck_assert_str_eq(seen_hdr("Host"), host);
	ck_assert_str_eq(seen_hdr("Accept"), "text/plain");
	ck_assert_str_eq(seen_hdr("X-Shiny-Access"), "viewer");
	ck_assert_str_eq(seen_hdr("X-Forwarded-Proto"), "https");
	ck_assert_ptr_null(seen_hdr("Content-Length"));
	ck_assert_ptr_null(seen_hdr("Transfer-Encoding"));
	run_until_eq(&ndone, 1, 1000);
	ck_assert_int_eq(ndone, 1);
	ck_assert_int_eq(last_done, 200);
	client_free(tc);
}
END_TEST

START_TEST(t_chunked_rechunked)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/chunked HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(tc->r[0].body, "abcdefg");
	ck_assert_str_eq(hdr(&tc->r[0], "Transfer-Encoding"), "chunked");
	ck_assert_ptr_null(hdr(&tc->r[0], "Trailer"));
	ck_assert_ptr_null(hdr(&tc->r[0], "X-T"));
	/* the connection goes on, and so does the worker's */
	client_sends(tc, "GET /app/x/chunked HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_str_eq(tc->r[1].body, "abcdefg");
	ck_assert_int_eq(tc->eof, 0);
	ck_assert_int_eq(w.accepts, 1);
	client_free(tc);

	/* an HTTP/1.0 client: until close */
	tc = client_new();
	client_sends(tc, "GET /app/x/chunked HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 1, 1, 5000), 1);
	ck_assert_str_eq(tc->r[0].body, "abcdefg");
	ck_assert_ptr_null(hdr(&tc->r[0], "Transfer-Encoding"));
	ck_assert_int_eq(tc->eof, 1);
	client_free(tc);
}
END_TEST

START_TEST(t_close_delimited)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/close HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(tc->r[0].body, "until close");
	ck_assert_str_eq(hdr(&tc->r[0], "Transfer-Encoding"), "chunked");
	ck_assert_ptr_null(hdr(&tc->r[0], "Connection"));
	/* the client's connection stays; the worker's is not pooled */
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_str_eq(tc->r[1].body, "hello world");
	ck_assert_int_eq(w.accepts, 2);
	ck_assert_int_eq(ndone, 2);

	/* told to close, or HTTP/1.0 without keep-alive: we close it */
	run_until_eq(&w.open, 1, 1000);
	client_sends(tc, "GET /app/x/clsaysclose HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 3, 0, 5000), 3);
	ck_assert_str_eq(tc->r[2].body, "bye");
	ck_assert_ptr_null(hdr(&tc->r[2], "Connection"));
	run_until_eq(&w.open, 0, 1000);
	ck_assert_int_eq(w.open, 0);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	client_sends(tc, "GET /app/x/old HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 4, 0, 5000), 4);
	ck_assert_str_eq(tc->r[3].body, "old");
	run_until_eq(&w.open, 0, 1000);
	ck_assert_int_eq(w.open, 0);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	ck_assert_int_eq(w.accepts, 3);
	ck_assert_int_eq(tc->eof, 0);
	client_free(tc);
}
END_TEST

START_TEST(t_keepalive_reuse)
{
	struct tclient	*tc, *tc2;

	tc = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	run_until_eq(&ndone, 1, 1000);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 1);
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_str_eq(tc->r[1].body, "hello world");
	/* another client, the same worker connection */
	tc2 = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	ck_assert_str_eq(tc2->r[0].body, "hello world");
	ck_assert_int_eq(w.accepts, 1);
	ck_assert_int_eq(seen.n, 3);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 1);
	client_free(tc);
	client_free(tc2);
}
END_TEST

static void
post_pattern(struct tclient *tc, const char *head, size_t n, int chunked)
{
	char	*buf = malloc(n);
	char	 line[32];
	size_t	 i;

	for (i = 0; i < n; i++)
		buf[i] = pattern(i);
	client_sends(tc, head);
	if (!chunked) {
		client_send(tc, buf, n);
		free(buf);
		return;
	}
	for (i = 0; i < n; i += 1000) {
		snprintf(line, sizeof(line), "%zx\r\n", n - i < 1000 ? n - i :
		    (size_t)1000);
		client_sends(tc, line);
		client_send(tc, buf + i, n - i < 1000 ? n - i : 1000);
		client_sends(tc, "\r\n");
	}
	client_sends(tc, "0\r\nX-Trailer: 1\r\n\r\n");
	free(buf);
}

START_TEST(t_post_bodies)
{
	struct tclient	*tc = client_new();

	post_pattern(tc, "POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5000\r\n\r\n", 5000, 0);
	ck_assert_int_eq(run_until(tc, 1, 0, 5000), 1);
	ck_assert_str_eq(tc->r[0].body, "len=5000 bad=0");
	ck_assert_str_eq(seen_hdr("Content-Length"), "5000");
	ck_assert_ptr_null(seen_hdr("Transfer-Encoding"));

	post_pattern(tc, "PUT /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 7777, 1);
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_str_eq(tc->r[1].body, "len=7777 bad=0");
	ck_assert_str_eq(seen.method, "PUT");
	ck_assert_str_eq(seen_hdr("Transfer-Encoding"), "chunked");
	ck_assert_ptr_null(seen_hdr("Content-Length"));
	ck_assert_ptr_null(seen_hdr("X-Trailer"));

	/* an empty body, and 100-continue answered by the core */
	client_sends(tc, "POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 0\r\nExpect: 100-continue\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 3, 0, 5000), 3);
	ck_assert_str_eq(tc->r[2].body, "len=0 bad=0");
	ck_assert_str_eq(seen_hdr("Content-Length"), "0");
	ck_assert_ptr_null(seen_hdr("Expect"));
	client_sends(tc, "POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 4, 0, 5000), 4);
	ck_assert_str_eq(tc->r[3].body, "len=0 bad=0");

	/* a route that read the body whole: sent with its length */
	post_pattern(tc, "POST /plain/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 3000, 1);
	ck_assert_int_eq(run_until(tc, 5, 0, 5000), 5);
	ck_assert_str_eq(tc->r[4].body, "len=3000 bad=0");
	ck_assert_str_eq(seen_hdr("Content-Length"), "3000");
	ck_assert_ptr_null(seen_hdr("Transfer-Encoding"));
	ck_assert_int_eq(w.accepts, 1);
	ck_assert_int_eq(ndone, 5);
	client_free(tc);
}
END_TEST

/* Writes a request with a big generated body as fast as it is taken. */
struct feeder {
	struct event	*ev;
	struct evbuffer	*out;
	size_t		 total;
	size_t		 sent;		/* body bytes generated */
	int		 chunked;
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
			evbuffer_add_printf(f->out, "%zx\r\n", n);
		evbuffer_add(f->out, buf, n);
		if (f->chunked)
			evbuffer_add(f->out, "\r\n", 2);
		f->sent += n;
	}
	if (f->sent == f->total && !f->tail_added) {
		if (f->chunked)
			evbuffer_add_printf(f->out, "0\r\n\r\n");
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
    size_t total, int chunked)
{
	memset(f, 0, sizeof(*f));
	f->out = evbuffer_new();
	f->total = total;
	f->chunked = chunked;
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

/*
 * A big upload to a worker that does not read for a while: the client
 * is held back (the proxy paused the body) instead of everything piling
 * up in byproxy.
 */
static void
big_upload(int chunked, size_t total)
{
	struct tclient		*tc = client_new();
	struct http_request	*req;
	struct feeder		 f;
	char			 head[256], want[64];
	size_t			 during;

	w.stall_ms = 500;
	if (chunked)
		snprintf(head, sizeof(head), "POST /app/x/sink?stall HTTP/1.1"
		    "\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	else
		snprintf(head, sizeof(head), "POST /app/x/sink?stall HTTP/1.1"
		    "\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", total);
	sample_start();
	feeder_start(&f, tc, head, total, chunked);
	run_for(400);
	/* the worker is not reading: the body is paused, the client waits */
	req = http_request_lookup(srv, cur_handle);
	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(req->bs.paused, 1);
	during = f.sent;
	ck_assert_uint_lt(during, 6 * 1024 * 1024);
	ck_assert_int_eq(run_until(tc, 1, 0, 60000), 1);
	sample_stop();
	snprintf(want, sizeof(want), "len=%zu bad=0", total);
	ck_assert_str_eq(tc->r[0].body, want);
	ck_assert_uint_le(smp.max_buffered, HTTP_INBUF_MAX +
	    HTTP_BODY_CHUNK_MAX);
	ck_assert_int_eq(f.sent, total);
	feeder_free(&f);
	client_free(tc);
}

START_TEST(t_big_upload)
{
	big_upload(0, 16 * 1024 * 1024);
}
END_TEST

START_TEST(t_big_upload_chunked)
{
	big_upload(1, 16 * 1024 * 1024);
}
END_TEST

/*
 * A big download to a client that does not read for a while: byproxy
 * stops reading the worker instead of queueing the body for the client.
 */
static void
big_download(const char *path, size_t total)
{
	struct tclient	*tc = client_new();
	char		 req[256];

	snprintf(req, sizeof(req), "GET /app/x/%s=%zu HTTP/1.1\r\nHost: x\r\n"
	    "\r\n", path, total);
	client_sends(tc, req);
	client_hold(tc, 1);
	sample_start();
	run_for(400);
	/* the worker had more than the client's queue to give */
	ck_assert_int_eq(w.open, 1);
	ck_assert_uint_gt(evbuffer_get_length(bufferevent_get_output(
	    LIST_FIRST(&w.conns)->bev)) + LIST_FIRST(&w.conns)->src_left, 0);
	client_hold(tc, 0);
	ck_assert_int_eq(run_until(tc, 1, 0, 60000), 1);
	sample_stop();
	ck_assert_int_eq(tc->r[0].status, 200);
	ck_assert_uint_eq(tc->r[0].total, total);
	ck_assert_uint_eq(tc->r[0].bad, 0);
	/* at most the bound plus one read of the worker (and the head) */
	ck_assert_uint_gt(smp.max_queued, 0);
	ck_assert_uint_le(smp.max_queued, PROXY_BUF + 64 * 1024);
	/* the connection is fine for the next request */
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_str_eq(tc->r[1].body, "hello world");
	client_free(tc);
}

START_TEST(t_big_download)
{
	big_download("big?n", 16 * 1024 * 1024);
	ck_assert_int_eq(w.accepts, 1);
}
END_TEST

START_TEST(t_big_download_chunked)
{
	big_download("bigchunked?n", 8 * 1024 * 1024);
	ck_assert_int_eq(w.accepts, 1);
}
END_TEST

START_TEST(t_headers_dropped)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: front.example\r\n"
	    "X-Shiny-User: mallory\r\nX_Shiny_User: mallory\r\n"
	    "x-shiny-access: owner\r\nx-blockyard-foo: 1\r\n"
	    "X_Blockyard_Session_Token: t\r\nX-Forwarded-For: 6.6.6.6\r\n"
	    "X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
	    "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
	    "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
	    "Proxy-Authorization: x\r\nX-Keep: yes\r\n"
	    "Cookie: a=b\r\n\r\n", 200);
	ck_assert_ptr_null(seen_hdr("X-Shiny-User"));
	ck_assert_ptr_null(seen_hdr("X_Shiny_User"));
	ck_assert_ptr_null(seen_hdr("x-blockyard-foo"));
	ck_assert_ptr_null(seen_hdr("X_Blockyard_Session_Token"));
	ck_assert_ptr_null(seen_hdr("X-Forwarded-For"));
	ck_assert_ptr_null(seen_hdr("X-Real-IP"));
	ck_assert_ptr_null(seen_hdr("Forwarded"));
	ck_assert_ptr_null(seen_hdr("Connection"));
	ck_assert_ptr_null(seen_hdr("X-Secret"));
	ck_assert_ptr_null(seen_hdr("Keep-Alive"));
	ck_assert_ptr_null(seen_hdr("TE"));
	ck_assert_ptr_null(seen_hdr("Upgrade"));
	ck_assert_ptr_null(seen_hdr("Proxy-Authorization"));
	/* ours, once, and the client's own */
	ck_assert_int_eq(seen_count("X-Shiny-Access"), 1);
	ck_assert_str_eq(seen_hdr("X-Shiny-Access"), "viewer");
	ck_assert_str_eq(seen_hdr("X-Forwarded-Proto"), "https");
	ck_assert_str_eq(seen_hdr("X-Keep"), "yes");
	ck_assert_str_eq(seen_hdr("Cookie"), "a=b");
	ck_assert_int_eq(seen_count("Host"), 1);
	ck_assert_str_ne(seen_hdr("Host"), "front.example");
	client_free(tc);
}
END_TEST

START_TEST(t_refused)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct tclient		*tc;
	int			 fd;

	/* a port nobody listens on */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	fwd_port = ntohs(sin.sin_port);

	tc = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n", 502);
	ck_assert_str_eq(tc->r[0].body, "bad gateway");
	ck_assert(has_prefix(hdr(&tc->r[0], "Content-Type"), "text/plain"));
	ck_assert_int_eq(ndone, 1);
	ck_assert_int_eq(last_done, 502);
	/* with a body on its way too */
	client_sends(tc, "POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\n\r\nhello");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_int_eq(tc->r[1].status, 502);
	ck_assert_int_eq(ndone, 2);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	client_free(tc);

	/* a worker that closes without a word, and one that talks nonsense */
	fwd_port = w.port;
	tc = roundtrip("GET /app/x/drop HTTP/1.1\r\nHost: x\r\n\r\n", 502);
	ck_assert_str_eq(tc->r[0].body, "bad gateway");
	client_free(tc);
	tc = roundtrip("GET /app/x/garbage HTTP/1.1\r\nHost: x\r\n\r\n", 502);
	client_free(tc);
	ck_assert_int_eq(ndone, 4);
	ck_assert_int_eq(last_done, 502);
}
END_TEST

START_TEST(t_dies_mid_body)
{
	struct tclient	*tc;

	tc = client_new();
	client_sends(tc, "GET /app/x/die HTTP/1.1\r\nHost: x\r\n\r\n");
	run_until_eof(tc, 5000);
	/* the head and what came of the body, then the close */
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_int_eq(tc->nresp, 0);
	ck_assert_int_eq(tc->r[0].status, 200);
	ck_assert_str_eq(hdr(&tc->r[0], "Content-Length"), "1000");
	ck_assert_str_eq(tc->r[0].body, "only a part");
	client_free(tc);

	tc = client_new();
	client_sends(tc, "GET /app/x/diechunked HTTP/1.1\r\nHost: x\r\n\r\n");
	run_until_eof(tc, 5000);
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_int_eq(tc->nresp, 0);
	ck_assert_str_eq(tc->r[0].body, "hello");
	client_free(tc);
	run_until_eq(&ndone, 2, 1000);
	ck_assert_int_eq(ndone, 2);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	ck_assert_int_eq(w.open, 0);
}
END_TEST

START_TEST(t_no_body_answers)
{
	struct tclient	*tc = client_new();

	tc->head[0] = tc->head[4] = 1;
	/* pipelined: any stray body byte would break the answers after */
	client_sends(tc, "HEAD /app/x/head HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /app/x/nocontent HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /app/x/notmod HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n"
	    "HEAD /app/x/headbare HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 6, 0, 5000), 6);
	ck_assert_int_eq(tc->perr, 0);
	ck_assert_int_eq(tc->r[0].status, 200);
	ck_assert_str_eq(hdr(&tc->r[0], "Content-Length"), "1000");
	ck_assert_int_eq(tc->r[1].status, 204);
	ck_assert_str_eq(hdr(&tc->r[1], "X-A"), "b");
	ck_assert_ptr_null(hdr(&tc->r[1], "Content-Length"));
	ck_assert_ptr_null(hdr(&tc->r[1], "Transfer-Encoding"));
	ck_assert_int_eq(tc->r[2].status, 304);
	ck_assert_str_eq(hdr(&tc->r[2], "ETag"), "\"x\"");
	ck_assert_ptr_null(hdr(&tc->r[2], "Transfer-Encoding"));
	ck_assert_int_eq(tc->r[3].status, 200);
	ck_assert_str_eq(tc->r[3].body, "hello world");
	ck_assert_int_eq(tc->r[4].status, 200);
	ck_assert_str_eq(hdr(&tc->r[4], "X-B"), "c");
	ck_assert_str_eq(tc->r[5].body, "hello world");
	ck_assert_str_eq(seen.method, "GET");
	ck_assert_int_eq(tc->eof, 0);
	/* the worker's connection survived all of them */
	ck_assert_int_eq(w.accepts, 1);
	ck_assert_int_eq(ndone, 6);
	client_free(tc);
}
END_TEST

START_TEST(t_continue_skipped)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/continue HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	run_for(20);
	ck_assert_int_eq(tc->nresp, 1);
	ck_assert_str_eq(tc->r[0].body, "ok");
	client_free(tc);
}
END_TEST

START_TEST(t_dead_pooled_retried)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	run_until_eq(&ndone, 1, 1000);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 1);
	/* the pooled connection dies with the next request on it */
	w.drop_reused = 1;
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_int_eq(tc->r[1].status, 200);
	ck_assert_str_eq(tc->r[1].body, "hello world");
	ck_assert_int_eq(w.accepts, 2);
	ck_assert_int_eq(seen.n, 3);

	/* a body already sent is not sent again: 502 */
	run_until_eq(&ndone, 2, 1000);
	client_sends(tc, "POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\n\r\nhello");
	ck_assert_int_eq(run_until(tc, 3, 0, 5000), 3);
	ck_assert_int_eq(tc->r[2].status, 502);
	ck_assert_int_eq(w.accepts, 2);
	client_free(tc);
}
END_TEST

START_TEST(t_forget)
{
	struct tclient	*tc;

	tc = roundtrip("GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n", 200);
	run_until_eq(&ndone, 1, 1000);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 1);
	ck_assert_int_eq(w.open, 1);
	proxy_http_forget("another");
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 1);
	proxy_http_forget(WORKER);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	run_until_eq(&w.open, 0, 2000);
	ck_assert_int_eq(w.open, 0);
	/* and the next request opens a new one */
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_int_eq(tc->r[1].status, 200);
	ck_assert_int_eq(w.accepts, 2);
	client_free(tc);
}
END_TEST

START_TEST(t_timeouts)
{
	struct tclient	*tc;

	fwd_timeout = 100;
	tc = roundtrip("GET /app/x/hang HTTP/1.1\r\nHost: x\r\n\r\n", 504);
	ck_assert_str_eq(tc->r[0].body, "gateway timeout");
	ck_assert_int_eq(last_done, 504);
	/* the client's connection goes on; the worker's is closed */
	client_sends(tc, "GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(run_until(tc, 2, 0, 5000), 2);
	ck_assert_int_eq(tc->r[1].status, 200);
	ck_assert_int_eq(w.accepts, 2);
	client_free(tc);

	/* after the head: only the close can tell */
	tc = client_new();
	client_sends(tc, "GET /app/x/stall HTTP/1.1\r\nHost: x\r\n\r\n");
	run_until_eof(tc, 5000);
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_int_eq(tc->nresp, 0);
	ck_assert_str_eq(tc->r[0].body, "only a part");
	ck_assert_int_eq(last_done, 200);
	ck_assert_int_eq(ndone, 3);
	client_free(tc);
}
END_TEST

START_TEST(t_client_gone)
{
	struct tclient	*tc = client_new();

	client_sends(tc, "GET /app/x/big?n=67108864 HTTP/1.1\r\nHost: x\r\n"
	    "\r\n");
	run_for(50);
	ck_assert_uint_gt(tc->r[0].total, 0);
	ck_assert_int_eq(w.open, 1);
	client_free(tc);
	/* the worker's connection is closed, not pooled mid-body */
	run_until_eq(&w.open, 0, 2000);
	ck_assert_int_eq(w.open, 0);
	ck_assert_int_eq(ndone, 1);
	ck_assert_int_eq(last_done, 200);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);

	/* gone while the worker still thinks */
	tc = client_new();
	client_sends(tc, "GET /app/x/hang HTTP/1.1\r\nHost: x\r\n\r\n");
	run_until_eq(&w.open, 1, 2000);
	client_free(tc);
	run_until_eq(&w.open, 0, 2000);
	ck_assert_int_eq(w.open, 0);
	ck_assert_int_eq(ndone, 2);
	ck_assert_int_eq(last_done, 499);
}
END_TEST

START_TEST(t_early_answer)
{
	struct tclient	*tc = client_new();

	/* the worker refuses before the body: the rest is not waited for */
	client_sends(tc, "POST /app/x/early HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 100000\r\n\r\nsome");
	ck_assert_int_eq(run_until(tc, 1, 1, 5000), 1);
	ck_assert_int_eq(tc->r[0].status, 413);
	ck_assert_str_eq(tc->r[0].body, "nope");
	ck_assert_int_eq(tc->eof, 1);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 0);
	client_free(tc);
}
END_TEST

START_TEST(t_connection_limit)
{
	struct tclient	*tc[27];
	int		 i;

	for (i = 0; i < 27; i++) {
		tc[i] = client_new();
		client_sends(tc[i], "GET /app/x/hold HTTP/1.1\r\nHost: x\r\n"
		    "\r\n");
	}
	run_for(100);
	/* 25 to the worker, 2 waiting for one of them */
	ck_assert_int_eq(w.accepts, 25);
	ck_assert_int_eq(seen.n, 25);
	/* the two go out on connections the first answers freed */
	w_release();
	run_until_eq(&seen.n, 27, 5000);
	ck_assert_int_eq(seen.n, 27);
	w_release();
	for (i = 0; i < 27; i++) {
		run_until(tc[i], 1, 0, 5000);
		ck_assert_int_eq(tc[i]->r[0].status, 200);
		ck_assert_str_eq(tc[i]->r[0].body, "held");
	}
	run_until_eq(&ndone, 27, 2000);
	ck_assert_int_eq(w.accepts, 25);
	ck_assert_int_eq(ndone, 27);
	ck_assert_uint_eq(proxy_http_pooled(WORKER), 25);
	for (i = 0; i < 27; i++)
		client_free(tc[i]);
}
END_TEST

START_TEST(t_no_leaks)
{
	static const char *reqs[] = {
		"GET /app/x/cl HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /app/x/close HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /app/x/die HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /app/x/drop HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /app/x/hang HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /app/x/big?n=33554432 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /app/x/sink HTTP/1.1\r\nHost: x\r\n"
		    "Content-Length: 100\r\n\r\npart",
		"GET /app/x/chunked HTTP/1.1\r\nHost: x\r\n\r\n",
	};
	struct tclient	*tc[16];
	int		 before, i;

	before = count_fds();
	fwd_timeout = 300;
	for (i = 0; i < 16; i++) {
		tc[i] = client_new();
		client_sends(tc[i], reqs[i % 8]);
	}
	run_for(100);
	/* clients leave in every state */
	for (i = 0; i < 16; i++)
		client_free(tc[i]);
	run_for(400);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	ck_assert_int_eq(ndone, 16);
	proxy_http_forget(WORKER);
	run_until_eq(&w.open, 0, 2000);
	ck_assert_int_eq(w.open, 0);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

static Suite *
proxy_http_suite(void)
{
	Suite	*s = suite_create("byproxy_proxy_http");
	TCase	*tc = tcase_create("forward");
	TCase	*tb = tcase_create("big");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_get_content_length);
	tcase_add_test(tc, t_chunked_rechunked);
	tcase_add_test(tc, t_close_delimited);
	tcase_add_test(tc, t_keepalive_reuse);
	tcase_add_test(tc, t_post_bodies);
	tcase_add_test(tc, t_headers_dropped);
	tcase_add_test(tc, t_refused);
	tcase_add_test(tc, t_dies_mid_body);
	tcase_add_test(tc, t_no_body_answers);
	tcase_add_test(tc, t_continue_skipped);
	tcase_add_test(tc, t_dead_pooled_retried);
	tcase_add_test(tc, t_forget);
	tcase_add_test(tc, t_timeouts);
	tcase_add_test(tc, t_client_gone);
	tcase_add_test(tc, t_early_answer);
	tcase_add_test(tc, t_connection_limit);
	tcase_add_test(tc, t_no_leaks);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tb, setup, teardown);
	/* 16 MiB each way under ASan */
	tcase_set_timeout(tb, 120);
	tcase_add_test(tb, t_big_upload);
	tcase_add_test(tb, t_big_upload_chunked);
	tcase_add_test(tb, t_big_download);
	tcase_add_test(tb, t_big_download_chunked);
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(proxy_http_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
