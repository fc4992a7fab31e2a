/*
 * The HTTP/1.1 server core: connections, request parsing with strict
 * framing rules, limits, timeouts and response writing.
 *
 * A connection reads one request at a time.  http_parser is paused at
 * the end of each message; the request goes to the router and the rest
 * of the input waits (bounded by a read watermark) until the response
 * is queued.  That keeps pipelined responses in order without a queue.
 *
 * http_parser is lenient where a front server must not be (bare LF,
 * obs-fold, spaces in header names), so the bytes of every request head
 * and of the chunked framing are checked here before the parser acts on
 * them.  Anything ambiguous is refused: the proxy frames the bodies it
 * forwards itself, and what it accepts is what the workers will see.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/sys/tree.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <jansson.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

enum conn_state {
	C_IDLE,		/* between requests: nothing of the next one yet */
	C_HEAD,		/* reading a request head */
	C_BODY,		/* reading a request body */
	C_HANDLER,	/* request dispatched, response not yet queued */
	C_STREAM,	/* streaming a response */
	C_CLOSING,	/* last response queued, flushing it */
	C_LINGER,	/* write side shut, discarding input until EOF */
};

/* What the byte scanner expects next. */
enum scan_mode {
	SCAN_REQLINE,	/* the request line (or empty lines before it) */
	SCAN_HEADERS,	/* header lines up to the empty line */
	SCAN_BODY,	/* chunk framing and trailers, between body bytes */
};

struct hbuf {
	char		*s;
	size_t		 len;
	size_t		 cap;
};

struct http_conn {
	TAILQ_ENTRY(http_conn) entry;
	struct http_server *srv;
	struct bufferevent *bev;
	struct event	*timer;
	struct event	*resume;
	enum conn_state	 state;
	unsigned int	 listener;
	char		 remote[INET6_ADDRSTRLEN + 16];
	int		 is_new;	/* no request yet */

	http_parser	 parser;
	struct http_request *req;
	int		 msg_done;
	int		 head_ready;	/* streamed body: head done */
	int		 close_after;	/* Connection: close on this answer */
	int		 busy;		/* inside conn_process */
	int		 dead;		/* free when no longer busy */
	int		 read_eof;
	int		 read_held;	/* input full, reading stopped */
	int		 linger;	/* client may still be sending */
	size_t		 discarded;

	/* byte scanner */
	enum scan_mode	 scan;
	unsigned char	 last;
	size_t		 line_len;
	int		 line_start;
	size_t		 head_bytes;
	size_t		 head_lines;
	const char	*scan_pos;

	/* header assembly */
	struct hbuf	 url;
	struct hbuf	 field;
	struct hbuf	 value;
	int		 in_value;
	int		 headers_done;
	size_t		 trailer_bytes;
	size_t		 body_len;

	/* first error found inside a parser callback */
	int		 fail_status;
	const char	*fail_code;
	const char	*fail_msg;
};
TAILQ_HEAD(http_connq, http_conn);

RB_HEAD(http_live, http_request);

struct http_listener {
	struct http_server *srv;
	struct evconnlistener *lev;
	struct event	*pause;
	unsigned int	 kind;
};

struct http_server {
	struct event_base *base;
	struct http_router *router;
	struct http_connq conns;
	size_t		 nconns;
	struct http_live live;
	uint64_t	 next_id;
	struct http_listener listeners[4];
	size_t		 nlisteners;
	int		 hsts;
	struct http_timeouts to;
	int		 shutting_down;
	void		(*done)(void *);
	void		*done_arg;
	struct event	*done_ev;
};

static int	 live_cmp(struct http_request *, struct http_request *);
RB_PROTOTYPE(http_live, http_request, live_entry, live_cmp);
RB_GENERATE(http_live, http_request, live_entry, live_cmp);

static struct http_conn *conn_new(struct http_server *, int, unsigned int,
		    const struct sockaddr *, socklen_t);
static void	 conn_free(struct http_conn *);
static void	 conn_process(struct http_conn *);
static void	 conn_fail(struct http_conn *, int, const char *, const char *);
static void	 conn_request_done(struct http_conn *);
static void	 conn_closing(struct http_conn *);
static void	 conn_timer(struct http_conn *, int);
static void	 req_free(struct http_request *);
static void	 req_log(struct http_request *, int);
static int	 resp_head(struct http_request *, int, const char *, int64_t,
		    int);
static int	 resp_write_head(struct http_request *, int, const char *,
		    int64_t, int);
static int	 body_reading(const struct http_request *);
static int	 body_step(struct http_conn *, struct evbuffer *);
static void	 body_fail(struct http_conn *, enum http_body_error, int,
		    const char *, const char *);
static void	 body_settle(struct http_request *);
static void	 req_last_word(struct http_request *, enum http_body_error);

static int	 on_url(http_parser *, const char *, size_t);
static int	 on_header_field(http_parser *, const char *, size_t);
static int	 on_header_value(http_parser *, const char *, size_t);
static int	 on_headers_complete(http_parser *);
static int	 on_body(http_parser *, const char *, size_t);
static int	 on_message_complete(http_parser *);
static int	 on_chunk_header(http_parser *);

static const http_parser_settings parser_settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
};

static const struct http_timeouts default_timeouts = {
	.header_ms = HTTP_HEADER_TIMEOUT_MS,
	.body_ms = HTTP_BODY_TIMEOUT_MS,
	.idle_ms = HTTP_IDLE_TIMEOUT_MS,
	.write_ms = HTTP_WRITE_TIMEOUT_MS,
	.linger_ms = HTTP_LINGER_TIMEOUT_MS,
};

static int
live_cmp(struct http_request *a, struct http_request *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

/* ---- small helpers ------------------------------------------------ */

static int
hbuf_add(struct hbuf *b, const char *p, size_t n, size_t max)
{
	char	*s;
	size_t	 cap;

	if (b->len + n > max)
		return -1;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((s = realloc(b->s, cap)) == NULL)
			return -1;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/* Hand the string over to the caller and start again empty. */
static char *
hbuf_take(struct hbuf *b)
{
	char	*s;

	if (b->s == NULL)
		return strdup("");
	s = b->s;
	memset(b, 0, sizeof(*b));
	return s;
}

static void
hbuf_clear(struct hbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* RFC 9110 tchar */
static int
is_tchar(unsigned char ch)
{
	if (isalnum(ch))
		return 1;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int
is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* A header value may hold HTAB, visible ASCII and obs-text. */
static int
is_field_value(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

static int
headers_add(struct http_headers *h, char *name, char *value)
{
	struct http_header *v;
	size_t		 cap;

	if (h->n == h->cap) {
		cap = h->cap ? h->cap * 2 : 16;
		if ((v = reallocarray(h->v, cap, sizeof(*v))) == NULL)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n].name = name;
	h->v[h->n].value = value;
	h->n++;
	return 0;
}

static void
headers_clear(struct http_headers *h)
{
	size_t	 i;

	for (i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

static const char *
headers_get(const struct http_headers *h, const char *name, size_t *count)
{
	const char	*found = NULL;
	size_t		 i, n = 0;

	for (i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) != 0)
			continue;
		if (found == NULL)
			found = h->v[i].value;
		n++;
	}
	if (count != NULL)
		*count = n;
	return found;
}

static int64_t
ms_since(const struct timespec *t0)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* IMF-fixdate, formatted once a second. */
static const char *
http_date(void)
{
	static char	 buf[64];
	static time_t	 cached = -1;
	struct tm	 tm;
	time_t		 now;

	now = time(NULL);
	if (now != cached && gmtime_r(&now, &tm) != NULL) {
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		cached = now;
	}
	return buf;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

static void
format_peer(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	char				 ip[INET6_ADDRSTRLEN];

	if (sa == NULL || salen == 0) {
		strlcpy(buf, "unknown", len);
		return;
	}
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
		break;
	case AF_UNIX:
		strlcpy(buf, "unix", len);
		break;
	default:
		strlcpy(buf, "unknown", len);
		break;
	}
}

/* ---- server ------------------------------------------------------- */

struct http_server *
http_server_new(struct event_base *base, struct http_router *router)
{
	struct http_server	*srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->router = router;
	srv->to = default_timeouts;
	srv->next_id = 1;
	TAILQ_INIT(&srv->conns);
	RB_INIT(&srv->live);
	return srv;
}

static void
listener_close(struct http_listener *l)
{
	if (l->lev != NULL)
		evconnlistener_free(l->lev);
	if (l->pause != NULL)
		event_free(l->pause);
	l->lev = NULL;
	l->pause = NULL;
}

void
http_server_free(struct http_server *srv)
{
	struct http_conn	*c;
	size_t			 i;

	if (srv == NULL)
		return;
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	srv->done = NULL;
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL) {
		c->busy = 0;
		conn_free(c);
	}
	if (srv->done_ev != NULL)
		event_free(srv->done_ev);
	free(srv);
}

void
http_server_set_hsts(struct http_server *srv, int on)
{
	srv->hsts = on;
}

void
http_server_set_timeouts(struct http_server *srv,
    const struct http_timeouts *to)
{
	srv->to = to != NULL ? *to : default_timeouts;
}

size_t
http_server_nconns(const struct http_server *srv)
{
	return srv->nconns;
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct http_listener	*l = arg;
	struct http_server	*srv = l->srv;

	if (srv->shutting_down) {
		close(fd);
		return;
	}
	if (conn_new(srv, fd, l->kind, sa, (socklen_t)salen) == NULL) {
		log_warnx("http: cannot set up a connection");
		close(fd);
	}
}

static void
accept_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct http_server	*srv = arg;
	size_t			 i;

	if (srv->shutting_down)
		return;
	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].lev != NULL)
			evconnlistener_enable(srv->listeners[i].lev);
}

/*
 * Out of descriptors: the listening socket stays readable, so stop
 * accepting for a moment rather than spin.
 */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct http_listener	*l = arg;
	struct timeval		 tv;
	int			 saved = errno;

	if (saved != EMFILE && saved != ENFILE && saved != ENOBUFS &&
	    saved != ENOMEM) {
		log_warnx("http: accept: %s", strerror(saved));
		return;
	}
	log_warnx("http: accept: %s; pausing", strerror(saved));
	evconnlistener_disable(lev);
	tv.tv_sec = HTTP_ACCEPT_PAUSE_MS / 1000;
	tv.tv_usec = (HTTP_ACCEPT_PAUSE_MS % 1000) * 1000;
	evtimer_add(l->pause, &tv);
}

int
http_server_listen(struct http_server *srv, int fd, unsigned int kind)
{
	struct http_listener	*l;

	if (srv->nlisteners == sizeof(srv->listeners) /
	    sizeof(srv->listeners[0]) || srv->shutting_down) {
		close(fd);
		return -1;
	}
	l = &srv->listeners[srv->nlisteners];
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    (l->pause = evtimer_new(srv->base, accept_resume, srv)) == NULL) {
		close(fd);
		return -1;
	}
	l->kind = kind;
	l->srv = srv;
	l->lev = evconnlistener_new(srv->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		event_free(l->pause);
		l->pause = NULL;
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	srv->nlisteners++;
	return 0;
}

int
http_server_adopt(struct http_server *srv, int fd, unsigned int kind,
    const struct sockaddr *sa, socklen_t salen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);

	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1) {
		close(fd);
		return -1;
	}
	if (sa == NULL && getpeername(fd, (struct sockaddr *)&ss,
	    &sslen) == 0) {
		sa = (struct sockaddr *)&ss;
		salen = sslen;
	}
	if (conn_new(srv, fd, kind, sa, salen) == NULL) {
		close(fd);
		return -1;
	}
	return 0;
}

static void
server_done_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct http_server	*srv = arg;
	void			(*done)(void *) = srv->done;

	srv->done = NULL;
	if (done != NULL)
		done(srv->done_arg);
}

/* Called whenever a connection goes away. */
static void
server_check_done(struct http_server *srv)
{
	struct timeval	 tv = { 0, 0 };

	if (!srv->shutting_down || srv->nconns > 0 || srv->done == NULL)
		return;
	/* from the loop, never from deep inside a connection's callbacks */
	if (srv->done_ev == NULL)
		srv->done_ev = evtimer_new(srv->base, server_done_cb, srv);
	if (srv->done_ev == NULL)
		return;
	evtimer_add(srv->done_ev, &tv);
}

void
http_server_shutdown(struct http_server *srv, void (*done)(void *),
    void *arg)
{
	struct http_conn	*c, *next;
	size_t			 i;

	srv->shutting_down = 1;
	srv->done = done;
	srv->done_arg = arg;
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		switch (c->state) {
		case C_IDLE:
			/* idle keep-alive: nothing in flight */
			if (c->busy)
				c->close_after = 1;
			else
				conn_closing(c);
			break;
		case C_LINGER:
		case C_CLOSING:
			break;
		default:
			/* in flight: finish it, then close */
			c->close_after = 1;
			break;
		}
	}
	server_check_done(srv);
}

/* ---- requests ----------------------------------------------------- */

static struct http_request *
req_new(struct http_conn *c)
{
	struct http_request	*req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	if ((req->body = evbuffer_new()) == NULL) {
		free(req);
		return NULL;
	}
	req->id = c->srv->next_id++;
	req->conn = c;
	req->state = HTTP_REQ_READING;
	req->method_str = "-";
	req->listener = c->listener;
	req->remote = c->remote;
	req->body_max = HTTP_BODY_MAX_DEFAULT;
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	RB_INSERT(http_live, &c->srv->live, req);
	return req;
}

static void
req_free(struct http_request *req)
{
	size_t	 i;

	if (req->conn != NULL)
		RB_REMOVE(http_live, &req->conn->srv->live, req);
	free(req->target);
	free(req->path);
	free(req->query);
	headers_clear(&req->headers);
	headers_clear(&req->resp_headers);
	for (i = 0; i < req->nparams; i++)
		free(req->params[i].value);
	evbuffer_free(req->body);
	free(req->bs.msg);
	free(req);
}

static void __attribute__((format(printf, 2, 3)))
req_logf(enum log_level lvl, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_msg(lvl, fmt, ap);
	va_end(ap);
}

/* One line per request; probes at debug, errors louder. */
static void
req_log(struct http_request *req, int status)
{
	enum log_level	 lvl;

	if (req->route != NULL && (req->route->flags & HTTP_ROUTE_QUIET))
		lvl = LOG_LVL_DEBUG;
	else if (status >= 500)
		lvl = LOG_LVL_ERROR;
	else if (status >= 400)
		lvl = LOG_LVL_WARN;
	else
		lvl = LOG_LVL_INFO;
	req_logf(lvl, "request method=%s path=%s status=%d duration_ms=%"
	    PRId64 " remote=%s", req->method_str,
	    req->path != NULL ? req->path : "-", status,
	    ms_since(&req->start), req->remote);
}

/*
 * The request ends without its answer: tell the handler, once.  A body
 * in flight goes to on_error when there is one, anything else to the
 * cancel callback; the caller has made answers impossible already.
 */
static void
req_last_word(struct http_request *req, enum http_body_error why)
{
	http_cancel_fn		 cancel = req->cancel;
	http_body_error_fn	 on_error = NULL;

	if (body_reading(req))
		on_error = req->bs.on_error;
	req->bs.ended = 1;
	req->cancel = NULL;
	if (on_error != NULL)
		on_error(req, why, req->bs.arg);
	else if (cancel != NULL)
		cancel(req, req->cancel_arg);
}

/*
 * The client went away before the answer was complete.  The handler's
 * cancel callback runs with the request already detached, so anything
 * it tries to send is refused instead of touching a dead connection.
 */
static void
req_abort(struct http_request *req)
{
	int		 was = req->state;

	if (was == HTTP_REQ_HANDLER || was == HTTP_REQ_STREAMING)
		req_log(req, was == HTTP_REQ_STREAMING ? req->status : 499);
	RB_REMOVE(http_live, &req->conn->srv->live, req);
	req->conn = NULL;
	req->state = HTTP_REQ_DONE;
	req_last_word(req, HTTP_BODY_ABORTED);
	req_free(req);
}

static int
req_answerable(struct http_request *req)
{
	return req != NULL && req->conn != NULL && !req->conn->dead &&
	    req->state == HTTP_REQ_HANDLER;
}

static void
req_done(struct http_request *req)
{
	struct http_conn	*c = req->conn;

	req->state = HTTP_REQ_DONE;
	body_settle(req);
	req_log(req, req->status);
	conn_request_done(c);
}

const char *
http_header_get(const struct http_request *req, const char *name)
{
	return headers_get(&req->headers, name, NULL);
}

const char *
http_request_param(const struct http_request *req, const char *name)
{
	size_t	 i;

	for (i = 0; i < req->nparams; i++)
		if (strcmp(req->params[i].name, name) == 0)
			return req->params[i].value;
	return NULL;
}

uint64_t
http_request_handle(const struct http_request *req)
{
	return req->id;
}

struct http_request *
http_request_lookup(struct http_server *srv, uint64_t id)
{
	struct http_request	 key;

	key.id = id;
	return RB_FIND(http_live, &srv->live, &key);
}

struct http_server *
http_request_server(const struct http_request *req)
{
	return req->conn != NULL ? req->conn->srv : NULL;
}

struct event_base *
http_request_base(const struct http_request *req)
{
	return req->conn != NULL ? req->conn->srv->base : NULL;
}

void
http_set_cancel(struct http_request *req, http_cancel_fn fn, void *arg)
{
	req->cancel = fn;
	req->cancel_arg = arg;
}

/* ---- responses ---------------------------------------------------- */

int
http_add_header(struct http_request *req, const char *name,
    const char *value)
{
	char	*n, *v;

	if (req == NULL || req->state == HTTP_REQ_DONE ||
	    req->state == HTTP_REQ_STREAMING)
		return -1;
	/* no header injection: CR and LF never reach the wire */
	if (!is_token(name) || !is_field_value(value)) {
		log_warnx("http: refusing response header %s", name);
		return -1;
	}
	if ((n = strdup(name)) == NULL || (v = strdup(value)) == NULL) {
		free(n);
		return -1;
	}
	if (headers_add(&req->resp_headers, n, v) == -1) {
		free(n);
		free(v);
		return -1;
	}
	return 0;
}

static int
status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

/*
 * Queue the status line and headers.  clen is the body length, or -1
 * when the body is streamed (chunked for HTTP/1.1, until close for 1.0).
 */
static int
resp_head(struct http_request *req, int status, const char *ctype,
    int64_t clen, int chunked)
{
	/* a complete answer ends a streamed body (a streamed one not) */
	if (clen >= 0)
		body_settle(req);
	return resp_write_head(req, status, ctype, clen, chunked);
}

static int
resp_write_head(struct http_request *req, int status, const char *ctype,
    int64_t clen, int chunked)
{
	struct http_conn	*c = req->conn;
	struct http_server	*srv = c->srv;
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	size_t			 i;

	if (!req->keepalive || srv->shutting_down || (req->upgrade &&
	    req->method == HTTP_CONNECT))
		c->close_after = 1;
	/* only a body without length or chunks needs the close to end */
	if (clen < 0 && !chunked && status_has_body(status))
		c->close_after = 1;
	req->status = status;
	if (req->path != NULL)
		http_router_headers(srv->router, req);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
	    http_reason(status), http_date());
	evbuffer_add_printf(out, "X-Content-Type-Options: nosniff\r\n"
	    "X-Frame-Options: DENY\r\n"
	    "Referrer-Policy: strict-origin-when-cross-origin\r\n");
	if (srv->hsts)
		evbuffer_add_printf(out, "Strict-Transport-Security: "
		    "max-age=63072000; includeSubDomains\r\n");
	evbuffer_add_printf(out, "X-Blockyard-Version: %s\r\n", BY_VERSION);
	for (i = 0; i < req->resp_headers.n; i++)
		evbuffer_add_printf(out, "%s: %s\r\n",
		    req->resp_headers.v[i].name, req->resp_headers.v[i].value);
	if (ctype != NULL && status_has_body(status))
		evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
	if (chunked)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	else if (clen >= 0 && status != 204 && status >= 200)
		evbuffer_add_printf(out, "Content-Length: %" PRId64 "\r\n",
		    clen);
	if (c->close_after)
		evbuffer_add_printf(out, "Connection: close\r\n");
	else if (req->http_minor == 0)
		evbuffer_add_printf(out, "Connection: keep-alive\r\n");
	return evbuffer_add(out, "\r\n", 2);
}

static int
resp_sends_body(const struct http_request *req)
{
	return !req->head && status_has_body(req->status);
}

int
http_reply_buffer(struct http_request *req, int status,
    const char *content_type, struct evbuffer *body)
{
	struct evbuffer	*out;
	size_t		 len;

	if (!req_answerable(req))
		return -1;
	len = body != NULL ? evbuffer_get_length(body) : 0;
	resp_head(req, status, content_type, (int64_t)len, 0);
	out = bufferevent_get_output(req->conn->bev);
	if (body != NULL) {
		if (resp_sends_body(req))
			evbuffer_add_buffer(out, body);
		else
			evbuffer_drain(body, len);
	}
	req_done(req);
	return 0;
}

int
http_reply(struct http_request *req, int status, const char *content_type,
    const void *body, size_t len)
{
	struct evbuffer	*out;

	if (!req_answerable(req))
		return -1;
	resp_head(req, status, content_type, (int64_t)len, 0);
	out = bufferevent_get_output(req->conn->bev);
	if (len > 0 && resp_sends_body(req))
		evbuffer_add(out, body, len);
	req_done(req);
	return 0;
}

int
http_reply_text(struct http_request *req, int status, const char *text)
{
	return http_reply(req, status, "text/plain; charset=utf-8", text,
	    strlen(text));
}

int
http_reply_json(struct http_request *req, int status, json_t *obj)
{
	static const char oom[] = "{\"error\":\"internal_error\","
			    "\"message\":\"internal server error\"}\n";
	char		*s;
	int		 rv;

	s = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (s == NULL)
		return http_reply(req, 500, "application/json", oom,
		    sizeof(oom) - 1);
	/* Go's json.Encoder ends every body with a newline; so do we */
	if (req_answerable(req)) {
		resp_head(req, status, "application/json",
		    (int64_t)strlen(s) + 1, 0);
		if (resp_sends_body(req)) {
			evbuffer_add(bufferevent_get_output(req->conn->bev),
			    s, strlen(s));
			evbuffer_add(bufferevent_get_output(req->conn->bev),
			    "\n", 1);
		}
		req_done(req);
		rv = 0;
	} else
		rv = -1;
	free(s);
	return rv;
}

int
http_error(struct http_request *req, int status, const char *code,
    const char *message)
{
	if (!req_answerable(req))
		return -1;
	return http_reply_json(req, status, json_pack("{s:s, s:s}",
	    "error", code, "message", message));
}

int
http_stream_start(struct http_request *req, int status,
    const char *content_type)
{
	int	 chunked;

	if (!req_answerable(req))
		return -1;
	/* HTTP/1.0 has no chunked coding: send until close instead */
	chunked = req->http_major == 1 && req->http_minor >= 1;
	req->chunked = chunked;
	req->resp_left = -1;
	resp_head(req, status, content_type, -1, chunked);
	req->state = HTTP_REQ_STREAMING;
	req->conn->state = C_STREAM;
	return 0;
}

int
http_stream_start_length(struct http_request *req, int status,
    int64_t length)
{
	int	 chunked = 0;

	if (!req_answerable(req))
		return -1;
	if (length < 0 && status_has_body(status))
		chunked = req->http_major == 1 && req->http_minor >= 1;
	req->chunked = chunked;
	req->status = status;
	/* the count http_stream_end checks: nothing when no body goes */
	if (!resp_sends_body(req))
		req->resp_left = 0;
	else
		req->resp_left = length;
	resp_write_head(req, status, NULL, length, chunked);
	req->state = HTTP_REQ_STREAMING;
	req->conn->state = C_STREAM;
	return 0;
}

/*
 * End a streamed answer without its proper end: flush what is queued,
 * then close, so that the missing bytes or last chunk show the client
 * that the body is cut.
 */
static void
stream_cut(struct http_request *req)
{
	struct http_conn	*c = req->conn;

	log_debug("http: %s: streamed answer cut", c->remote);
	req->state = HTTP_REQ_DONE;
	req->bs.ended = 1;
	req->cancel = NULL;
	req_log(req, req->status);
	c->req = NULL;
	req_free(req);
	c->close_after = 1;
	c->linger = 1;
	conn_closing(c);
}

int
http_stream_abort(struct http_request *req)
{
	if (req == NULL || req->conn == NULL ||
	    req->state != HTTP_REQ_STREAMING)
		return -1;
	stream_cut(req);
	return 0;
}

size_t
http_stream_queued(const struct http_request *req)
{
	if (req == NULL || req->conn == NULL || req->conn->bev == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(req->conn->bev));
}

int
http_stream_on_drain(struct http_request *req,
    void (*fn)(struct http_request *, void *), void *arg)
{
	struct http_conn	*c;

	if (req == NULL || (c = req->conn) == NULL ||
	    req->state != HTTP_REQ_STREAMING || fn == NULL)
		return -1;
	req->drain_fn = fn;
	req->drain_arg = arg;
	/* nothing queued: no write will call back, so ask for the call */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		bufferevent_trigger(c->bev, EV_WRITE,
		    BEV_TRIG_DEFER_CALLBACKS);
	return 0;
}

int
http_stream_chunk(struct http_request *req, struct evbuffer *buf)
{
	struct evbuffer	*out;
	size_t		 len;

	if (req == NULL || req->conn == NULL ||
	    req->state != HTTP_REQ_STREAMING)
		return -1;
	len = evbuffer_get_length(buf);
	if (!resp_sends_body(req)) {
		evbuffer_drain(buf, len);
		return 0;
	}
	/* an empty chunk would end the body */
	if (len == 0)
		return 0;
	if (req->resp_left >= 0) {
		/* never past the Content-Length: the next answer follows */
		if ((uint64_t)len > (uint64_t)req->resp_left)
			return -1;
		req->resp_left -= (int64_t)len;
	}
	out = bufferevent_get_output(req->conn->bev);
	if (req->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add_buffer(out, buf);
	if (req->chunked)
		evbuffer_add(out, "\r\n", 2);
	return 0;
}

int
http_stream_end(struct http_request *req)
{
	if (req == NULL || req->conn == NULL ||
	    req->state != HTTP_REQ_STREAMING)
		return -1;
	if (req->resp_left > 0) {
		/* short of its Content-Length: the client must not wait */
		stream_cut(req);
		return -1;
	}
	if (req->chunked && resp_sends_body(req))
		evbuffer_add(bufferevent_get_output(req->conn->bev),
		    "0\r\n\r\n", 5);
	req_done(req);
	return 0;
}

struct bufferevent *
http_takeover(struct http_request *req)
{
	struct http_conn	*c;
	struct bufferevent	*bev;

	if (!req_answerable(req))
		return NULL;
	c = req->conn;
	bev = c->bev;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, NULL, NULL);
	/* as the caller expects it, even if held or paused until now */
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	c->bev = NULL;
	req->state = HTTP_REQ_DONE;
	req_log(req, 101);
	c->req = NULL;
	req_free(req);
	conn_free(c);
	return bev;
}

/* ---- the byte scanner --------------------------------------------- */

static void
scan_reset(struct http_conn *c)
{
	c->scan = SCAN_REQLINE;
	c->last = 0;
	c->line_len = 0;
	c->line_start = 1;
	c->head_bytes = 0;
	c->head_lines = 0;
}

static int
scan_error(struct http_conn *c, int status, const char *msg)
{
	if (c->fail_status == 0) {
		c->fail_status = status;
		c->fail_code = status == 400 ? "bad_request" :
		    status == 414 ? "uri_too_long" :
		    "request_header_fields_too_large";
		c->fail_msg = msg;
	}
	return -1;
}

/* An end of line in the head; returns 1 at the end of the head. */
static int
scan_eol(struct http_conn *c)
{
	size_t	 len = c->line_len;

	c->line_len = 0;
	c->line_start = 1;
	if (c->scan == SCAN_REQLINE) {
		/* empty lines before a request are tolerated (RFC 9112 2.2) */
		if (len > 0)
			c->scan = SCAN_HEADERS;
		return 0;
	}
	if (c->scan == SCAN_HEADERS) {
		if (len == 0) {
			c->scan = SCAN_BODY;
			return 1;
		}
		if (++c->head_lines > HTTP_MAX_HEADERS)
			return scan_error(c, 431, "too many header fields");
	}
	return 0;
}

/*
 * Check framing bytes: every LF after a CR, every CR before an LF, no
 * control characters, no line starting with whitespace (obs-fold), and
 * the length limits.  In head mode it stops after the empty line that
 * ends the head and returns the offset just past it (or len).
 */
static int
scan_bytes(struct http_conn *c, const char *p, size_t len, size_t *used)
{
	unsigned char	 ch;
	size_t		 i;
	int		 head = c->scan != SCAN_BODY;

	for (i = 0; i < len; i++) {
		ch = (unsigned char)p[i];
		if (c->last == '\r' && ch != '\n')
			return scan_error(c, 400, "bare CR in request");
		if (ch == '\n') {
			if (c->last != '\r')
				return scan_error(c, 400, "bare LF in request");
			c->last = ch;
			if (head && scan_eol(c) == -1)
				return -1;
			if (!head) {
				c->line_len = 0;
				c->line_start = 1;
			}
			if (head && c->scan == SCAN_BODY) {
				i++;
				break;
			}
			continue;
		}
		c->last = ch;
		if (ch == '\r')
			continue;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return scan_error(c, 400,
			    "control character in request");
		if (c->line_start && (ch == ' ' || ch == '\t') &&
		    c->scan != SCAN_REQLINE)
			return scan_error(c, 400,
			    "folded or indented header line");
		c->line_start = 0;
		c->line_len++;
		if (c->scan == SCAN_REQLINE &&
		    c->line_len > HTTP_MAX_REQUEST_LINE)
			return scan_error(c, 414, "request line too long");
		if (c->scan == SCAN_BODY && c->line_len > HTTP_MAX_CHUNK_LINE)
			return scan_error(c, 400, "chunk line too long");
		if (c->scan == SCAN_HEADERS &&
		    ++c->head_bytes > HTTP_MAX_HEADER_BYTES)
			return scan_error(c, 431, "request header too large");
	}
	if (used != NULL)
		*used = i;
	return 0;
}

/* Body bytes between framing: nothing of them belongs to a line. */
static void
scan_skip_body(struct http_conn *c)
{
	c->last = 0;
	c->line_len = 0;
	c->line_start = 0;
}

/* ---- parser callbacks --------------------------------------------- */

static int
parse_fail(struct http_conn *c, int status, const char *code,
    const char *msg)
{
	if (c->fail_status == 0) {
		c->fail_status = status;
		c->fail_code = code;
		c->fail_msg = msg;
	}
	return -1;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn	*c = p->data;

	if (hbuf_add(&c->url, at, len, HTTP_MAX_REQUEST_LINE) == -1)
		return parse_fail(c, 414, "uri_too_long",
		    "request line too long");
	return 0;
}

static int
header_commit(struct http_conn *c)
{
	struct http_request	*req = c->req;
	char			*name, *value;
	size_t			 n;

	c->in_value = 0;
	if (c->headers_done) {
		/* trailers are counted, checked and dropped */
		hbuf_clear(&c->field);
		hbuf_clear(&c->value);
		if (++req->hdrs_seen > HTTP_MAX_HEADERS)
			return parse_fail(c, 431,
			    "request_header_fields_too_large",
			    "too many trailer fields");
		return 0;
	}
	if (req->headers.n >= HTTP_MAX_HEADERS)
		return parse_fail(c, 431, "request_header_fields_too_large",
		    "too many header fields");
	/* OWS after the value is not part of it */
	n = c->value.len;
	while (n > 0 && (c->value.s[n - 1] == ' ' ||
	    c->value.s[n - 1] == '\t'))
		c->value.s[--n] = '\0';
	c->value.len = n;
	name = hbuf_take(&c->field);
	value = hbuf_take(&c->value);
	if (name == NULL || value == NULL || headers_add(&req->headers,
	    name, value) == -1) {
		free(name);
		free(value);
		return parse_fail(c, 500, "internal_error",
		    "internal server error");
	}
	if (!is_token(name))
		return parse_fail(c, 400, "bad_request",
		    "invalid header name");
	if (!is_field_value(value))
		return parse_fail(c, 400, "bad_request",
		    "invalid header value");
	return 0;
}

static int
header_room(struct http_conn *c, size_t len)
{
	if (c->headers_done) {
		c->trailer_bytes += len;
		return c->trailer_bytes <= HTTP_MAX_HEADER_BYTES;
	}
	return 1;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn	*c = p->data;

	if (c->in_value && header_commit(c) == -1)
		return -1;
	if (!header_room(c, len) ||
	    hbuf_add(&c->field, at, len, HTTP_MAX_HEADER_BYTES) == -1)
		return parse_fail(c, 431, "request_header_fields_too_large",
		    "request header too large");
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn	*c = p->data;

	c->in_value = 1;
	if (!header_room(c, len) ||
	    hbuf_add(&c->value, at, len, HTTP_MAX_HEADER_BYTES) == -1)
		return parse_fail(c, 431, "request_header_fields_too_large",
		    "request header too large");
	return 0;
}

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/*
 * Framing must be unambiguous: exactly one Content-Length of digits, or
 * exactly "Transfer-Encoding: chunked", never both.
 */
static int
check_framing(struct http_conn *c)
{
	struct http_request	*req = c->req;
	const char		*cl, *te, *host;
	size_t			 ncl, nte, nhost;

	cl = headers_get(&req->headers, "Content-Length", &ncl);
	te = headers_get(&req->headers, "Transfer-Encoding", &nte);
	host = headers_get(&req->headers, "Host", &nhost);
	if (ncl > 1)
		return parse_fail(c, 400, "bad_request",
		    "more than one Content-Length");
	if (cl != NULL && !all_digits(cl))
		return parse_fail(c, 400, "bad_request",
		    "invalid Content-Length");
	if (nte > 1 || (te != NULL && strcasecmp(te, "chunked") != 0))
		return parse_fail(c, 400, "bad_request",
		    "unsupported Transfer-Encoding");
	if (te != NULL && cl != NULL)
		return parse_fail(c, 400, "bad_request",
		    "both Content-Length and Transfer-Encoding");
	if (te != NULL && req->http_minor == 0)
		return parse_fail(c, 400, "bad_request",
		    "Transfer-Encoding in an HTTP/1.0 request");
	if (req->http_minor >= 1 && nhost != 1)
		return parse_fail(c, 400, "bad_request",
		    nhost == 0 ? "missing Host header" :
		    "more than one Host header");
	(void)host;
	return 0;
}

static int
url_field(struct http_parser_url *u, int f, const char *url, char **out)
{
	if (!(u->field_set & (1 << f)))
		return 0;
	*out = strndup(url + u->field_data[f].off, u->field_data[f].len);
	return *out == NULL ? -1 : 0;
}

/* origin-form ("/path?query") or absolute-form ("http://host/path") */
static int
parse_target(struct http_conn *c)
{
	struct http_request	*req = c->req;
	struct http_parser_url	 u;
	const char		*url;

	if ((req->target = hbuf_take(&c->url)) == NULL)
		return parse_fail(c, 500, "internal_error",
		    "internal server error");
	url = req->target;
	if (req->method == HTTP_CONNECT || (url[0] != '/' &&
	    strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0))
		return parse_fail(c, 400, "bad_request",
		    "unsupported request target");
	http_parser_url_init(&u);
	if (http_parser_parse_url(url, strlen(url), 0, &u) != 0)
		return parse_fail(c, 400, "bad_request",
		    "invalid request target");
	if (url_field(&u, UF_PATH, url, &req->path) == -1 ||
	    url_field(&u, UF_QUERY, url, &req->query) == -1)
		return parse_fail(c, 500, "internal_error",
		    "internal server error");
	if (req->path == NULL && (req->path = strdup("/")) == NULL)
		return parse_fail(c, 500, "internal_error",
		    "internal server error");
	if (req->path[0] != '/')
		return parse_fail(c, 400, "bad_request",
		    "invalid request target");
	return 0;
}

static int
has_body(http_parser *p)
{
	return (p->flags & F_CHUNKED) || (p->content_length > 0 &&
	    p->content_length != UINT64_MAX);
}

/* Expect: 100-continue is answered before the body arrives. */
static int
check_expect(struct http_conn *c)
{
	struct http_request	*req = c->req;
	const char		*expect;

	if ((expect = http_header_get(req, "Expect")) == NULL ||
	    req->http_minor == 0)
		return 0;
	if (strcasecmp(expect, "100-continue") != 0)
		return parse_fail(c, 417, "expectation_failed",
		    "unsupported expectation");
	if (!has_body(&c->parser))
		return 0;
	if (req->route == NULL)
		return parse_fail(c, req->route_status,
		    req->route_status == 405 ? "method_not_allowed" :
		    "not_found", req->route_status == 405 ?
		    "method not allowed" : "not found");
	/* a streaming route's handler decides: http_body_stream sends it */
	if (req->route->flags & HTTP_ROUTE_STREAM_BODY)
		return 0;
	evbuffer_add_printf(bufferevent_get_output(c->bev),
	    "HTTP/1.1 100 Continue\r\n\r\n");
	return 0;
}

/*
 * A streaming route: stop at the end of the head, so that the handler
 * runs before any of the body is read.  The paused parser still holds
 * the head's last LF; conn_parse consumes it, and body_begin gives it
 * back to the parser when a chunked body follows.
 */
static int
head_stream(struct http_conn *c, http_parser *p)
{
	struct http_request	*req = c->req;

	req->stream_body = 1;
	req->bs.chunked = (p->flags & F_CHUNKED) != 0;
	req->bs.left = !req->bs.chunked && (p->flags & F_CONTENTLENGTH) ?
	    p->content_length : 0;
	req->bs.complete = !has_body(p);
	c->head_ready = 1;
	http_parser_pause(p, 1);
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct http_conn	*c = p->data;
	struct http_request	*req = c->req;
	int64_t			 left;

	if (c->in_value || c->field.len > 0)
		if (header_commit(c) == -1)
			return -1;
	c->headers_done = 1;
	req->method = (enum http_method)p->method;
	req->method_str = http_method_str(req->method);
	req->http_major = p->http_major;
	req->http_minor = p->http_minor;
	req->keepalive = http_should_keep_alive(p);
	req->upgrade = p->upgrade;
	req->head = req->method == HTTP_HEAD;
	if (parse_target(c) == -1)
		return -1;
	if (req->http_major != 1)
		return parse_fail(c, 505, "http_version_not_supported",
		    "HTTP version not supported");
	if (check_framing(c) == -1)
		return -1;
	if (http_router_match(c->srv->router, req) == -1)
		return parse_fail(c, 400, "bad_request", "invalid path");
	if (req->route != NULL && req->route->body_max > 0)
		req->body_max = req->route->body_max;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > req->body_max)
		return parse_fail(c, 413, "payload_too_large",
		    "request body too large");
	if (check_expect(c) == -1)
		return -1;
	if (req->route != NULL && (req->route->flags & HTTP_ROUTE_STREAM_BODY))
		return head_stream(c, p);
	c->state = C_BODY;
	/* the body deadline counts from the first byte of the request */
	left = c->srv->to.body_ms - ms_since(&req->start);
	conn_timer(c, left > 0 ? (int)left : 0);
	return 0;
}

static int
on_chunk_header(http_parser *p)
{
	struct http_conn	*c = p->data;

	if (p->content_length > c->req->body_max - c->body_len)
		return parse_fail(c, 413, "payload_too_large",
		    "request body too large");
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn	*c = p->data;

	/* framing bytes before this piece of body */
	if (c->scan_pos != NULL && at > c->scan_pos &&
	    scan_bytes(c, c->scan_pos, at - c->scan_pos, NULL) == -1)
		return -1;
	scan_skip_body(c);
	c->scan_pos = at + len;
	if (len > c->req->body_max - c->body_len)
		return parse_fail(c, 413, "payload_too_large",
		    "request body too large");
	c->body_len += len;
	if (evbuffer_add(c->req->body, at, len) == -1)
		return parse_fail(c, 500, "internal_error",
		    "internal server error");
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_conn	*c = p->data;

	c->msg_done = 1;
	/* one request at a time: the rest waits for this answer */
	http_parser_pause(p, 1);
	return 0;
}

/* ---- connections -------------------------------------------------- */

static void
conn_timer(struct http_conn *c, int ms)
{
	struct timeval	 tv;

	if (ms < 0) {
		evtimer_del(c->timer);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

/*
 * Input waits while nothing takes it (a handler is busy, a consumer is
 * slow).  Once it fills the read watermark, stop reading: libevent
 * calls the read callback again and again while the input stays at the
 * watermark with reading enabled, which would spin.
 */
static void
conn_hold_input(struct http_conn *c)
{
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) <
	    HTTP_INBUF_MAX)
		return;
	c->read_held = 1;
	bufferevent_disable(c->bev, EV_READ);
}

/* Read again (not while the handler has paused a streamed body). */
static void
conn_release_input(struct http_conn *c)
{
	if (c->req != NULL && c->req->bs.paused)
		return;
	c->read_held = 0;
	bufferevent_enable(c->bev, EV_READ);
}

static void
conn_idle(struct http_conn *c)
{
	c->state = C_IDLE;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	scan_reset(c);
	hbuf_clear(&c->url);
	hbuf_clear(&c->field);
	hbuf_clear(&c->value);
	c->in_value = 0;
	c->headers_done = 0;
	c->trailer_bytes = 0;
	c->body_len = 0;
	c->msg_done = 0;
	c->head_ready = 0;
	/* held or paused while the last request was answered */
	c->read_held = 0;
	bufferevent_enable(c->bev, EV_READ);
	conn_timer(c, c->is_new ? c->srv->to.header_ms : c->srv->to.idle_ms);
}

/* The first byte of a request arrived. */
static int
conn_begin(struct http_conn *c)
{
	if ((c->req = req_new(c)) == NULL)
		return -1;
	c->is_new = 0;
	c->state = C_HEAD;
	conn_timer(c, c->srv->to.header_ms);
	return 0;
}

static void
conn_dispatch(struct http_conn *c)
{
	struct http_request	*req = c->req;

	conn_timer(c, -1);
	c->state = C_HANDLER;
	req->state = HTTP_REQ_HANDLER;
	http_router_dispatch(c->srv->router, req);
}

static int
parser_status(enum http_errno e)
{
	switch (e) {
	case HPE_HEADER_OVERFLOW:
		return 431;
	case HPE_INVALID_VERSION:
		return 505;
	default:
		return 400;
	}
}

/*
 * Feed the first contiguous piece of input, at most max bytes, to the
 * parser.  Returns -1 when the request is bad; c->fail_* say how to
 * answer it.
 */
static int
conn_parse(struct http_conn *c, struct evbuffer *in, size_t max)
{
	struct evbuffer_iovec	 v;
	const char		*data;
	size_t			 len, n, used;
	enum http_errno		 e;
	int			 st;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return 0;
	data = v.iov_base;
	len = v.iov_len < max ? v.iov_len : max;
	c->scan_pos = NULL;
	if (c->scan != SCAN_BODY) {
		/* check the head before the parser acts on any of it */
		if (scan_bytes(c, data, len, &used) == -1)
			return -1;
		if (c->scan == SCAN_BODY)
			c->scan_pos = data + used;
	} else
		c->scan_pos = data;

	n = http_parser_execute(&c->parser, &parser_settings, data, len);
	e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->fail_status == 0 && c->scan_pos != NULL &&
	    data + n > c->scan_pos)
		scan_bytes(c, c->scan_pos, data + n - c->scan_pos, NULL);
	c->scan_pos = NULL;
	if (c->fail_status == 0 && e == HPE_PAUSED && c->head_ready) {
		/* the LF head_stream left: checked by the scanner already */
		if (n >= len || data[n] != '\n')
			return parse_fail(c, 500, "internal_error",
			    "internal server error");
		n++;
	}
	evbuffer_drain(in, n);
	if (c->fail_status != 0)
		return -1;
	if (e == HPE_PAUSED) {
		http_parser_pause(&c->parser, 0);
		return 0;
	}
	if (e != HPE_OK) {
		st = parser_status(e);
		log_debug("http: %s: parse error %s", c->remote,
		    http_errno_name(e));
		return parse_fail(c, st, st == 431 ?
		    "request_header_fields_too_large" :
		    st == 505 ? "http_version_not_supported" : "bad_request",
		    st == 431 ? "request header too large" :
		    st == 505 ? "HTTP version not supported" :
		    "malformed request");
	}
	return 0;
}

static void
conn_process(struct http_conn *c)
{
	struct evbuffer	*in;

	if (c->busy || c->dead)
		return;
	c->busy = 1;
	in = bufferevent_get_input(c->bev);
	while (!c->dead) {
		if (c->req != NULL && body_reading(c->req)) {
			if (body_step(c, in) == 0)
				break;
			continue;
		}
		if (evbuffer_get_length(in) == 0)
			break;
		if (c->state == C_IDLE && conn_begin(c) == -1) {
			c->dead = 1;
			break;
		}
		if (c->state != C_HEAD && c->state != C_BODY)
			break;
		if (conn_parse(c, in, SIZE_MAX) == -1) {
			conn_fail(c, c->fail_status, c->fail_code, c->fail_msg);
			break;
		}
		if (c->msg_done || c->head_ready) {
			c->msg_done = c->head_ready = 0;
			conn_dispatch(c);
		}
	}
	c->busy = 0;
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (c->state == C_HANDLER || c->state == C_STREAM)
		conn_hold_input(c);
}

/* Answer a broken request and close the connection after it. */
static void
conn_fail(struct http_conn *c, int status, const char *code,
    const char *msg)
{
	struct http_request	*req = c->req;

	c->close_after = 1;
	c->linger = 1;
	if (req == NULL) {
		conn_closing(c);
		return;
	}
	conn_timer(c, -1);
	c->state = C_HANDLER;
	req->state = HTTP_REQ_HANDLER;
	log_debug("http: %s: %d %s", c->remote, status, msg);
	if (status == 405 && req->allow[0] != '\0')
		http_add_header(req, "Allow", req->allow);
	http_error(req, status, code, msg);
}

static void
conn_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	conn_process(arg);
}

static void
conn_request_done(struct http_conn *c)
{
	if (c->req != NULL) {
		req_free(c->req);
		c->req = NULL;
	}
	if (c->close_after || c->srv->shutting_down) {
		conn_closing(c);
		return;
	}
	conn_idle(c);
	/*
	 * Pipelined input waits in the buffer.  Go on from the loop, not
	 * from inside the handler that just answered.
	 */
	if (!c->busy && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		event_active(c->resume, EV_TIMEOUT, 1);
}

/*
 * Half-close and read what the client still sends, so that our answer
 * is not destroyed by a reset when we close with unread input.
 */
static void
conn_linger(struct http_conn *c)
{
	int	 fd;

	if (c->read_eof || (!c->linger &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)) {
		conn_free(c);
		return;
	}
	c->state = C_LINGER;
	c->read_held = 0;
	if ((fd = bufferevent_getfd(c->bev)) != -1)
		shutdown(fd, SHUT_WR);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_enable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	conn_timer(c, c->srv->to.linger_ms);
}

static void
conn_closing(struct http_conn *c)
{
	c->state = C_CLOSING;
	conn_timer(c, -1);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_linger(c);
}

static void
conn_discard(struct http_conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);

	c->discarded += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->discarded > HTTP_LINGER_MAX)
		conn_free(c);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn	*c = arg;

	switch (c->state) {
	case C_IDLE:
	case C_HEAD:
	case C_BODY:
		conn_process(c);
		break;
	case C_CLOSING:
	case C_LINGER:
		conn_discard(c);
		break;
	default:
		/* a streamed body goes on; pipelined input waits (watermark) */
		if (c->req != NULL && body_reading(c->req) &&
		    !c->req->bs.paused)
			conn_process(c);
		else
			conn_hold_input(c);
		break;
	}
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn	*c = arg;
	struct http_request	*req = c->req;
	void			(*fn)(struct http_request *, void *);

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->state == C_CLOSING) {
		conn_linger(c);
		return;
	}
	/* a streamed answer's producer waits for room (http_stream_on_drain) */
	if (c->state == C_STREAM && req != NULL && req->drain_fn != NULL &&
	    req->state == HTTP_REQ_STREAMING) {
		fn = req->drain_fn;
		req->drain_fn = NULL;
		fn(req, req->drain_arg);
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn	*c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		c->read_eof = 1;
		switch (c->state) {
		case C_IDLE:
			if (evbuffer_get_length(bufferevent_get_output(bev)))
				conn_closing(c);
			else
				conn_free(c);
			return;
		case C_CLOSING:
			/* finish writing; conn_linger frees */
			return;
		default:
			/* gone mid-request or while its answer was pending */
			log_debug("http: %s: client closed", c->remote);
			conn_free(c);
			return;
		}
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("http: %s: write timeout", c->remote);
	else if (what & BEV_EVENT_ERROR)
		log_debug("http: %s: %s", c->remote,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_free(c);
}

static void
conn_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct http_conn	*c = arg;

	switch (c->state) {
	case C_HEAD:
	case C_BODY:
		conn_fail(c, 408, "request_timeout", "request timeout");
		break;
	case C_IDLE:
	case C_LINGER:
		conn_free(c);
		break;
	case C_HANDLER:
	case C_STREAM:
		/* a streamed body that made no progress for body_ms */
		if (c->req != NULL && body_reading(c->req) &&
		    !c->req->bs.complete && !c->req->bs.paused)
			body_fail(c, HTTP_BODY_TIMEOUT, 408, "request_timeout",
			    "request timeout");
		break;
	default:
		break;
	}
}

static struct http_conn *
conn_new(struct http_server *srv, int fd, unsigned int kind,
    const struct sockaddr *sa, socklen_t salen)
{
	struct http_conn	*c;
	struct timeval		 wtv;
	int			 on = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	/*
	 * A streamed answer leaves in pieces (the app proxy sends a head,
	 * then the body as the worker gives it): with Nagle each small
	 * piece after the first waits for the client's delayed ACK, 40 ms
	 * (machine-facts 9).  Fails harmlessly on a socketpair (tests).
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->srv = srv;
	c->listener = kind;
	c->is_new = 1;
	format_peer(sa, salen, c->remote, sizeof(c->remote));
	c->bev = bufferevent_socket_new(srv->base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	c->timer = evtimer_new(srv->base, conn_timer_cb, c);
	c->resume = event_new(srv->base, -1, 0, conn_resume_cb, c);
	if (c->bev == NULL || c->timer == NULL || c->resume == NULL) {
		if (c->bev != NULL) {
			/* the caller closes fd */
			bufferevent_setfd(c->bev, -1);
			bufferevent_free(c->bev);
		}
		if (c->timer != NULL)
			event_free(c->timer);
		if (c->resume != NULL)
			event_free(c->resume);
		free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_INBUF_MAX);
	wtv.tv_sec = srv->to.write_ms / 1000;
	wtv.tv_usec = (srv->to.write_ms % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
	conn_idle(c);
	return c;
}

static void
conn_free(struct http_conn *c)
{
	struct http_server	*srv = c->srv;

	if (c->busy) {
		c->dead = 1;
		return;
	}
	if (c->req != NULL) {
		req_abort(c->req);
		c->req = NULL;
	}
	TAILQ_REMOVE(&srv->conns, c, entry);
	srv->nconns--;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->resume);
	hbuf_clear(&c->url);
	hbuf_clear(&c->field);
	hbuf_clear(&c->value);
	free(c);
	server_check_done(srv);
}

/* ---- streamed request bodies -------------------------------------- */

/* Accepted by the handler and neither ended nor failed. */
static int
body_reading(const struct http_request *req)
{
	return req->stream_body && req->bs.accepted && !req->bs.ended;
}

/* Go on with the body from the loop, never inside the caller's call. */
static void
body_kick(struct http_conn *c)
{
	event_active(c->resume, EV_TIMEOUT, 1);
}

static int
body_expects_continue(const struct http_request *req)
{
	const char	*expect;

	/* anything but 100-continue was refused with the head */
	expect = http_header_get(req, "Expect");
	return expect != NULL && req->http_minor >= 1 &&
	    strcasecmp(expect, "100-continue") == 0;
}

/* More body than the limit allows, read or announced. */
static int
body_over_limit(const struct http_conn *c, const struct http_request *req)
{
	if (c->body_len > req->body_max)
		return 1;
	return !req->bs.chunked && req->bs.left > req->body_max - c->body_len;
}

/*
 * The body failed.  Tell the handler (answers refused while it hears
 * it), then answer for it if nothing was sent yet, or cut the
 * connection if a response is under way: its framing cannot carry an
 * error any more.
 */
static void
body_fail(struct http_conn *c, enum http_body_error why, int status,
    const char *code, const char *msg)
{
	struct http_request	*req = c->req;
	enum http_req_state	 was = req->state;

	log_debug("http: %s: request body: %s", c->remote, msg);
	if (status == 413 && req->bs.msg != NULL)
		msg = req->bs.msg;
	req->state = HTTP_REQ_DONE;
	req_last_word(req, why);
	req->state = was;
	if (c->dead)
		return;
	if (was == HTTP_REQ_HANDLER) {
		conn_fail(c, status, code, msg);
		return;
	}
	conn_free(c);
}

/* A parse failure inside the body: c->fail_* say which. */
static void
body_fail_parse(struct http_conn *c)
{
	body_fail(c, c->fail_status == 413 ? HTTP_BODY_TOO_LARGE :
	    c->fail_status == 500 ? HTTP_BODY_ABORTED : HTTP_BODY_MALFORMED,
	    c->fail_status, c->fail_code, c->fail_msg);
}

/*
 * First step after http_body_stream: a Content-Length over the limit is
 * refused before a byte is read, and the chunk parser gets back the LF
 * head_stream kept from it.
 */
static int
body_begin(struct http_conn *c)
{
	struct http_request	*req = c->req;
	static const char	 lf[] = "\n";

	req->bs.begun = 1;
	if (req->bs.complete)
		return 0;
	if (body_over_limit(c, req))
		return parse_fail(c, 413, "payload_too_large",
		    "request body too large");
	if (req->bs.chunked) {
		if (http_parser_execute(&c->parser, &parser_settings, lf, 1) !=
		    1 || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
			return parse_fail(c, 500, "internal_error",
			    "internal server error");
	}
	conn_timer(c, c->srv->to.body_ms);
	return 0;
}

/* Chunked: the parser decodes into req->body (on_body). */
static int
body_dechunk(struct http_conn *c, struct evbuffer *in, size_t room)
{
	struct http_request	*req = c->req;
	size_t			 before = evbuffer_get_length(in);

	if (conn_parse(c, in, room) == -1)
		return -1;
	if (c->msg_done) {
		c->msg_done = 0;
		req->bs.complete = 1;
	}
	return evbuffer_get_length(in) < before;
}

/*
 * Move what input there is into req->body, never letting it grow past
 * HTTP_BODY_CHUNK_MAX.  A Content-Length body needs no parser: its
 * chains are moved, not copied.  Returns 1 when input was consumed.
 */
static int
body_read(struct http_conn *c, struct evbuffer *in)
{
	struct http_request	*req = c->req;
	size_t			 held, n;
	int			 moved;

	/* the handler may have lowered the limit since the last step */
	if (body_over_limit(c, req))
		return parse_fail(c, 413, "payload_too_large",
		    "request body too large");
	if (req->bs.complete)
		return 0;
	held = evbuffer_get_length(req->body);
	if (held >= HTTP_BODY_CHUNK_MAX || evbuffer_get_length(in) == 0)
		return 0;
	if (req->bs.chunked)
		moved = body_dechunk(c, in, HTTP_BODY_CHUNK_MAX - held);
	else {
		n = HTTP_BODY_CHUNK_MAX - held;
		if (n > evbuffer_get_length(in))
			n = evbuffer_get_length(in);
		if (n > req->bs.left)
			n = req->bs.left;
		if (evbuffer_remove_buffer(in, req->body, n) != (int)n)
			return parse_fail(c, 500, "internal_error",
			    "internal server error");
		req->bs.left -= n;
		c->body_len += n;
		req->bs.complete = req->bs.left == 0;
		moved = 1;
	}
	if (moved == 1) {
		conn_timer(c, req->bs.complete ? -1 : c->srv->to.body_ms);
		if (c->read_held)
			conn_release_input(c);
	}
	return moved;
}

/*
 * Offer req->body to the handler.  0: go on; -1: the request was
 * answered or went away inside the callback.
 */
static int
body_offer(struct http_conn *c, struct http_request *req)
{
	req->bs.offer = 0;
	req->bs.on_data(req, req->body, req->bs.arg);
	return c->req == req && !c->dead && body_reading(req) ? 0 : -1;
}

/*
 * One step of a streamed body: move input, offer it, end it.  Returns
 * 0 when there is nothing to do until more input arrives or the
 * consumer resumes, 1 when the loop should look again.  (c->req cannot
 * be replaced inside conn_process, so comparing pointers is safe.)
 */
static int
body_step(struct http_conn *c, struct evbuffer *in)
{
	struct http_request	*req = c->req;
	size_t			 had, left;
	int			 moved;

	if (req->bs.paused)
		return 0;
	if (!req->bs.begun && body_begin(c) == -1) {
		body_fail_parse(c);
		return 1;
	}
	had = evbuffer_get_length(req->body);
	if ((moved = body_read(c, in)) == -1) {
		body_fail_parse(c);
		return 1;
	}
	left = evbuffer_get_length(req->body);
	if (left > had || (req->bs.offer && left > 0)) {
		if (body_offer(c, req) == -1)
			return 1;
		/* room made while input waits: go on */
		if (evbuffer_get_length(req->body) < left)
			moved = 1;
	}
	if (req->bs.complete && !req->bs.paused) {
		req->bs.ended = 1;
		conn_timer(c, -1);
		req->bs.on_end(req, req->bs.arg);
		return 1;
	}
	return moved;
}

/*
 * A complete answer while the body is unread.  What is already here of
 * a Content-Length body is dropped and the connection kept; otherwise
 * it closes after the answer, since reading an unknown rest only to
 * reuse the connection is not worth it.
 */
static void
body_settle(struct http_request *req)
{
	struct http_conn	*c = req->conn;
	struct evbuffer		*in;

	if (!req->stream_body || req->bs.complete || c == NULL)
		return;
	in = bufferevent_get_input(c->bev);
	if (!req->bs.chunked && evbuffer_get_length(in) >= req->bs.left) {
		evbuffer_drain(in, req->bs.left);
		req->bs.left = 0;
		req->bs.complete = 1;
		return;
	}
	c->close_after = 1;
	c->linger = 1;
}

int
http_body_stream(struct http_request *req, http_body_data_fn on_data,
    http_body_end_fn on_end, http_body_error_fn on_error, void *arg)
{
	struct http_conn	*c;

	if (!req_answerable(req) || !req->stream_body || req->bs.accepted ||
	    on_data == NULL || on_end == NULL)
		return -1;
	c = req->conn;
	req->bs.on_data = on_data;
	req->bs.on_end = on_end;
	req->bs.on_error = on_error;
	req->bs.arg = arg;
	req->bs.accepted = 1;
	/* not when the body is refused at once (body_begin) */
	if (!req->bs.complete && body_expects_continue(req) &&
	    !body_over_limit(c, req))
		evbuffer_add_printf(bufferevent_get_output(c->bev),
		    "HTTP/1.1 100 Continue\r\n\r\n");
	body_kick(c);
	return 0;
}

int
http_body_pause(struct http_request *req)
{
	if (req == NULL || req->conn == NULL || !body_reading(req))
		return -1;
	if (req->bs.paused)
		return 0;
	req->bs.paused = 1;
	/* the socket's buffer and then TCP hold the client back */
	bufferevent_disable(req->conn->bev, EV_READ);
	conn_timer(req->conn, -1);
	return 0;
}

int
http_body_resume(struct http_request *req)
{
	struct http_conn	*c;

	if (req == NULL || (c = req->conn) == NULL || !body_reading(req))
		return -1;
	req->bs.paused = 0;
	req->bs.offer = 1;
	conn_release_input(c);
	if (req->bs.begun && !req->bs.complete)
		conn_timer(c, c->srv->to.body_ms);
	body_kick(c);
	return 0;
}

int
http_body_limit(struct http_request *req, size_t max, const char *message)
{
	char	*s;

	if (req == NULL || req->conn == NULL || !req->stream_body ||
	    req->bs.ended || req->state == HTTP_REQ_DONE)
		return -1;
	if (message != NULL) {
		if ((s = strdup(message)) == NULL)
			return -1;
		free(req->bs.msg);
		req->bs.msg = s;
	}
	if (max < req->body_max)
		req->body_max = max;
	if (body_reading(req))
		body_kick(req->conn);
	return 0;
}

size_t
http_body_buffered(const struct http_request *req)
{
	if (req == NULL || req->conn == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_input(req->conn->bev)) +
	    evbuffer_get_length(req->body);
}
