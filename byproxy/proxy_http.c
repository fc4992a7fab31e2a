/*
 * HTTP to the workers: one exchange per client request, over keep-alive
 * connections to 127.0.0.1:<port> pooled per worker.
 *
 * httpuv writes a response in more than one segment with Nagle on, so
 * on a reused connection every response waits for our ACK of the first
 * segment, and Linux delays that ACK by 40 ms once a connection looks
 * interactive (machine-facts 9: 43 ms per request).  Every upstream
 * socket therefore has TCP_NODELAY, and TCP_QUICKACK is set again after
 * each read and after each request goes out, because the kernel clears
 * it by itself.
 *
 * Bytes move as evbuffer chains both ways.  A request body goes up as
 * it arrives (paused while more than PROXY_BUF_MAX waits for the
 * worker); a response body goes down as it arrives (the worker is not
 * read while more than PROXY_BUF_MAX waits for the client).  Only the
 * response head and a chunked response body pass through http_parser;
 * a Content-Length or close-delimited body is moved without it.
 *
 * A connection goes back to the pool only after a complete response
 * that did not ask for the close, with the whole request written: any
 * other end leaves it in a state nobody can know, so it is closed.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/sys/tree.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>

#include "log.h"
#include "byproxy.h"

#define PROXY_CONNS_MAX	25		/* open connections per worker */
#define PROXY_IDLE_MS	60000		/* a pooled connection unused */
#define PROXY_BUF_MAX	(256 * 1024)	/* queued towards either side */

enum resp_state {
	R_HEAD,		/* the response head (and 1xx before it) */
	R_LENGTH,	/* a Content-Length body */
	R_CHUNKED,	/* a chunked body, through the parser */
	R_EOF,		/* a body that ends when the worker closes */
	R_DONE,		/* complete */
};

struct pool;
struct exchange;

struct upconn {
	TAILQ_ENTRY(upconn) entry;	/* pool->idle */
	struct pool	*pool;
	struct bufferevent *bev;
	struct exchange	*ex;		/* NULL while idle */
	int		 port;
	int		 reused;	/* served a response before */
};
TAILQ_HEAD(upconnq, upconn);

struct sbuf {
	char		*s;
	size_t		 len;
};

struct exchange {
	TAILQ_ENTRY(exchange) entry;	/* exchanges */
	TAILQ_ENTRY(exchange) wait;	/* pool->waiting */
	struct http_request *req;	/* NULL once answered or gone */
	struct event_base *base;
	struct pool	*pool;		/* while waiting */
	int		 waiting;
	struct upconn	*uc;
	struct event	*timer;
	char		*worker_id;
	int		 port;
	int		 is_head;
	struct evbuffer	*head;		/* the request head, for a retry */
	struct evbuffer	*body;		/* response body on its way */

	/* the request body */
	int		 accepted;	/* http_body_stream was called */
	int		 up_chunked;	/* goes up chunked */
	int		 body_sent;	/* a body byte went up */
	int		 body_done;	/* all of it went up */
	int		 body_paused;	/* the worker's side is full */

	/* the response */
	http_parser	 parser;
	enum resp_state	 rs;
	struct http_headers rh;
	struct sbuf	 field;
	struct sbuf	 value;
	int		 in_value;
	size_t		 hbytes;
	int		 head_done;	/* parser paused at the head's end */
	int		 msg_done;	/* parser paused at the body's end */
	uint64_t	 left;		/* of a Content-Length body */
	int		 status;
	int		 keepalive;	/* the worker keeps the connection */
	int		 got;		/* a response byte arrived */
	int		 begun;		/* the client has the head */
	int		 retried;

	void		(*done)(void *, int);
	void		*done_arg;
};
TAILQ_HEAD(exchangeq, exchange);

struct pool {
	RB_ENTRY(pool)	 entry;
	char		*worker_id;
	struct upconnq	 idle;		/* most recently used first */
	struct exchangeq waiting;	/* for a connection, in order */
	size_t		 nidle;
	size_t		 nconns;	/* open: idle, busy, connecting */
	int		 gone;		/* forgotten: out of the tree */
	int		 settling;	/* inside pool_settle */
};
RB_HEAD(proxy_pools, pool);

static int	 pool_cmp(struct pool *, struct pool *);
RB_PROTOTYPE(proxy_pools, pool, entry, pool_cmp);
RB_GENERATE(proxy_pools, pool, entry, pool_cmp);

static struct proxy_pools pools = RB_INITIALIZER(&pools);
static struct exchangeq	 exchanges = TAILQ_HEAD_INITIALIZER(exchanges);

static void	 ex_start(struct exchange *, struct pool *);
static void	 ex_fail(struct exchange *, int, const char *);
static int	 ex_pump(struct exchange *);

static int	 rp_header_field(http_parser *, const char *, size_t);
static int	 rp_header_value(http_parser *, const char *, size_t);
static int	 rp_headers_complete(http_parser *);
static int	 rp_body(http_parser *, const char *, size_t);
static int	 rp_message_complete(http_parser *);

static const http_parser_settings rp_settings = {
	.on_header_field = rp_header_field,
	.on_header_value = rp_header_value,
	.on_headers_complete = rp_headers_complete,
	.on_body = rp_body,
	.on_message_complete = rp_message_complete,
};

static int
pool_cmp(struct pool *a, struct pool *b)
{
	return strcmp(a->worker_id, b->worker_id);
}

/* ---- upstream connections ----------------------------------------- */

/* For the next read: the kernel drops back to delayed ACKs by itself. */
static void
uc_quickack(struct upconn *uc)
{
	int	 fd, on = 1;

	if ((fd = bufferevent_getfd(uc->bev)) != -1)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on,
		    sizeof(on));
}

static void	 up_read(struct bufferevent *, void *);
static void	 up_write(struct bufferevent *, void *);
static void	 up_event(struct bufferevent *, short, void *);

/* A connecting bufferevent for uc; a refused connect reports later. */
static struct bufferevent *
uc_dial(struct upconn *uc, struct event_base *base)
{
	struct bufferevent	*bev;

	/* TCP_NODELAY: a request head and its body go out without ACKs */
	if ((bev = proxy_dial(base, uc->port, BEV_OPT_DEFER_CALLBACKS,
	    up_read, up_write, up_event, uc)) != NULL)
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}

/* A new connection in the pool's count. */
static struct upconn *
uc_new(struct pool *p, struct event_base *base, int port)
{
	struct upconn	*uc;

	if ((uc = calloc(1, sizeof(*uc))) == NULL)
		return NULL;
	uc->pool = p;
	uc->port = port;
	if ((uc->bev = uc_dial(uc, base)) == NULL) {
		free(uc);
		return NULL;
	}
	p->nconns++;
	return uc;
}

/* The same slot, a new connection (a retry). */
static int
uc_redial(struct upconn *uc, struct event_base *base)
{
	struct bufferevent	*bev;

	if ((bev = uc_dial(uc, base)) == NULL)
		return -1;
	bufferevent_free(uc->bev);
	uc->bev = bev;
	uc->reused = 0;
	return 0;
}

/*
 * After a change to the pool: hand idle connections, or room for new
 * ones, to the exchanges waiting, then free the pool if nothing uses
 * it.  An exchange started here may fail and come back through a
 * nested call (and a done callback may forget the pool): the outermost
 * call does the work.
 */
static void
pool_settle(struct pool *p)
{
	struct exchange	*ex;

	if (p->settling)
		return;
	p->settling = 1;
	while ((ex = TAILQ_FIRST(&p->waiting)) != NULL &&
	    (p->nidle > 0 || p->nconns < PROXY_CONNS_MAX)) {
		TAILQ_REMOVE(&p->waiting, ex, wait);
		ex->waiting = 0;
		ex_start(ex, p);
	}
	p->settling = 0;
	if (p->nconns > 0 || !TAILQ_EMPTY(&p->waiting))
		return;
	if (!p->gone)
		RB_REMOVE(proxy_pools, &pools, p);
	free(p->worker_id);
	free(p);
}

/* Close uc; pool_settle is the caller's. */
static void
uc_free(struct upconn *uc)
{
	uc->pool->nconns--;
	bufferevent_free(uc->bev);
	free(uc);
}

/* Close a connection that is not in the idle list. */
static void
uc_close(struct upconn *uc)
{
	struct pool	*p = uc->pool;

	uc_free(uc);
	pool_settle(p);
}

/* Back to the pool after a clean response, or to the next in line. */
static void
uc_release(struct upconn *uc)
{
	struct pool	*p = uc->pool;
	struct timeval	 tv;

	if (p->gone) {
		uc_close(uc);
		return;
	}
	uc->ex = NULL;
	uc->reused = 1;
	/* idle: reading notices the worker's close; silence ends it */
	tv.tv_sec = PROXY_IDLE_MS / 1000;
	tv.tv_usec = (PROXY_IDLE_MS % 1000) * 1000;
	bufferevent_set_timeouts(uc->bev, &tv, NULL);
	bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_HEAD(&p->idle, uc, entry);
	p->nidle++;
	pool_settle(p);
}

/* An idle connection to port, stale ones closed on the way. */
static struct upconn *
pool_take(struct pool *p, int port)
{
	struct upconn	*uc;

	while ((uc = TAILQ_FIRST(&p->idle)) != NULL) {
		TAILQ_REMOVE(&p->idle, uc, entry);
		p->nidle--;
		if (uc->port == port && evbuffer_get_length(
		    bufferevent_get_input(uc->bev)) == 0)
			return uc;
		uc_free(uc);
	}
	return NULL;
}

static struct pool *
pool_get(const char *worker_id)
{
	struct pool	 key, *p;

	key.worker_id = (char *)worker_id;
	if ((p = RB_FIND(proxy_pools, &pools, &key)) != NULL)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->worker_id = strdup(worker_id)) == NULL) {
		free(p);
		return NULL;
	}
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiting);
	RB_INSERT(proxy_pools, &pools, p);
	return p;
}

/* Close the idle connections and keep the pool out of new requests. */
static void
pool_forget(struct pool *p)
{
	struct upconn	*uc;

	RB_REMOVE(proxy_pools, &pools, p);
	p->gone = 1;
	while ((uc = TAILQ_FIRST(&p->idle)) != NULL) {
		TAILQ_REMOVE(&p->idle, uc, entry);
		p->nidle--;
		uc_free(uc);
	}
	pool_settle(p);
}

/* ---- response headers --------------------------------------------- */

static int
sbuf_add(struct exchange *ex, struct sbuf *b, const char *p, size_t n)
{
	char	*s;

	ex->hbytes += n;
	if (ex->hbytes > HTTP_MAX_HEADER_BYTES)
		return -1;
	if ((s = realloc(b->s, b->len + n + 1)) == NULL)
		return -1;
	memcpy(s + b->len, p, n);
	b->len += n;
	s[b->len] = '\0';
	b->s = s;
	return 0;
}

static void
sbuf_clear(struct sbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = 0;
}

static void
rh_clear(struct http_headers *h)
{
	size_t	 i;

	for (i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

/* The header just read goes into ex->rh. */
static int
rh_commit(struct exchange *ex)
{
	struct http_headers	*h = &ex->rh;
	struct http_header	*v;
	size_t			 cap;

	ex->in_value = 0;
	if (h->n >= HTTP_MAX_HEADERS || ex->field.s == NULL)
		return -1;
	if (h->n == h->cap) {
		cap = h->cap ? h->cap * 2 : 16;
		if ((v = reallocarray(h->v, cap, sizeof(*v))) == NULL)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	/* OWS after the value is not part of it */
	while (ex->value.len > 0 && (ex->value.s[ex->value.len - 1] == ' ' ||
	    ex->value.s[ex->value.len - 1] == '\t'))
		ex->value.s[--ex->value.len] = '\0';
	h->v[h->n].name = ex->field.s;
	h->v[h->n].value = ex->value.s != NULL ? ex->value.s : strdup("");
	if (h->v[h->n].value == NULL)
		return -1;
	h->n++;
	memset(&ex->field, 0, sizeof(ex->field));
	memset(&ex->value, 0, sizeof(ex->value));
	return 0;
}

static int
rp_header_field(http_parser *p, const char *at, size_t len)
{
	struct exchange	*ex = p->data;

	/* trailers of a chunked body are read and dropped */
	if (ex->rs != R_HEAD)
		return 0;
	if (ex->in_value && rh_commit(ex) == -1)
		return -1;
	return sbuf_add(ex, &ex->field, at, len);
}

static int
rp_header_value(http_parser *p, const char *at, size_t len)
{
	struct exchange	*ex = p->data;

	if (ex->rs != R_HEAD)
		return 0;
	ex->in_value = 1;
	return sbuf_add(ex, &ex->value, at, len);
}

/* Stop at the end of the head: the body is ours to move. */
static int
rp_headers_complete(http_parser *p)
{
	struct exchange	*ex = p->data;
	int		 st = p->status_code;

	if ((ex->in_value || ex->field.len > 0) && rh_commit(ex) == -1)
		return -1;
	ex->head_done = 1;
	http_parser_pause(p, 1);
	/* no body, whatever the head announces */
	return ex->is_head || st / 100 == 1 || st == 204 || st == 304;
}

static int
rp_body(http_parser *p, const char *at, size_t len)
{
	struct exchange	*ex = p->data;

	/* the one copy of a chunked body: out of its framing */
	return evbuffer_add(ex->body, at, len);
}

static int
rp_message_complete(http_parser *p)
{
	struct exchange	*ex = p->data;

	ex->msg_done = 1;
	http_parser_pause(p, 1);
	return 0;
}

/* For the next response head (after a 1xx). */
static void
ex_head_reset(struct exchange *ex)
{
	http_parser_init(&ex->parser, HTTP_RESPONSE);
	ex->parser.data = ex;
	rh_clear(&ex->rh);
	sbuf_clear(&ex->field);
	sbuf_clear(&ex->value);
	ex->in_value = 0;
	ex->hbytes = 0;
	ex->head_done = 0;
	ex->msg_done = 0;
}

/* ---- the request head --------------------------------------------- */

/* No CR or LF, and in a name no colon or space either. */
static int
name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == ':')
			return 0;
	return 1;
}

static int
field_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 0;
	return 1;
}

static int
target_ok(const char *s)
{
	if (s == NULL || *s != '/')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* Framing is ours: the client's Content-Length as it was, or chunks. */
static void
ex_framing(struct exchange *ex, struct http_request *req)
{
	struct evbuffer	*h = ex->head;
	const char	*cl = http_header_get(req, "Content-Length");
	size_t		 len;

	if (!req->stream_body) {
		/* read whole already (a route without streaming) */
		len = evbuffer_get_length(req->body);
		if (len > 0 || cl != NULL ||
		    http_header_get(req, "Transfer-Encoding") != NULL)
			evbuffer_add_printf(h, "Content-Length: %zu\r\n", len);
		ex->body_done = 1;
		return;
	}
	if (req->bs.chunked) {
		evbuffer_add_printf(h, "Transfer-Encoding: chunked\r\n");
		ex->up_chunked = 1;
	} else if (cl != NULL)
		evbuffer_add_printf(h, "Content-Length: %s\r\n", cl);
	/* no body at all: nothing to wait for before pooling */
	ex->body_done = req->bs.complete;
}

static int
ex_build_head(struct exchange *ex, struct http_request *req,
    const struct proxy_upstream *up)
{
	struct evbuffer		*h = ex->head;
	const struct http_header *v;
	size_t			 i;

	if (!target_ok(up->target)) {
		log_warnx("proxy: worker %s: bad target", up->worker_id);
		return -1;
	}
	evbuffer_add_printf(h, "%s %s HTTP/1.1\r\n", req->method_str,
	    up->target);
	for (i = 0; i < req->headers.n; i++) {
		v = &req->headers.v[i];
		/* framing and 100-continue are between us and the client */
		if (proxy_header_dropped(req, v->name) ||
		    proxy_header_name_eq(v->name, "Content-Length") ||
		    proxy_header_name_eq(v->name, "Expect"))
			continue;
		evbuffer_add_printf(h, "%s: %s\r\n", v->name, v->value);
	}
	evbuffer_add_printf(h, "Host: 127.0.0.1:%d\r\n", up->port);
	for (i = 0; i < up->add.n; i++) {
		v = &up->add.v[i];
		if (!name_ok(v->name) || !field_ok(v->value)) {
			log_warnx("proxy: refusing header %s", v->name);
			continue;
		}
		evbuffer_add_printf(h, "%s: %s\r\n", v->name, v->value);
	}
	ex_framing(ex, req);
	return evbuffer_add(h, "\r\n", 2);
}

/* ---- exchanges ---------------------------------------------------- */

/* The last step of every exchange: done is called once, at the end. */
static void
ex_finish(struct exchange *ex, int status)
{
	void	(*done)(void *, int) = ex->done;
	void	*arg = ex->done_arg;

	TAILQ_REMOVE(&exchanges, ex, entry);
	if (ex->timer != NULL)
		event_free(ex->timer);
	if (ex->head != NULL)
		evbuffer_free(ex->head);
	if (ex->body != NULL)
		evbuffer_free(ex->body);
	rh_clear(&ex->rh);
	sbuf_clear(&ex->field);
	sbuf_clear(&ex->value);
	free(ex->worker_id);
	free(ex);
	if (done != NULL)
		done(arg, status);
}

/* Let go of the connection (closed: its state is unknown) or the queue. */
static void
ex_detach(struct exchange *ex)
{
	struct upconn	*uc = ex->uc;

	if (uc != NULL) {
		ex->uc = NULL;
		uc->ex = NULL;
		uc_close(uc);
	}
	if (ex->waiting) {
		TAILQ_REMOVE(&ex->pool->waiting, ex, wait);
		ex->waiting = 0;
		pool_settle(ex->pool);
	}
}

/*
 * The worker failed or took too long.  Before the response head the
 * client gets status and text; after it, only a cut connection can say
 * that the body is incomplete.
 */
static void
ex_fail(struct exchange *ex, int status, const char *text)
{
	struct http_request	*req = ex->req;

	ex->req = NULL;
	if (req != NULL) {
		http_set_cancel(req, NULL, NULL);
		if (ex->begun)
			http_stream_abort(req);
		else
			http_reply_text(req, status, text);
	}
	if (ex->begun)
		status = ex->status;
	ex_detach(ex);
	ex_finish(ex, status);
}

/* The client is gone (the request with it): so is the exchange. */
static void
ex_client_gone(struct exchange *ex, int status)
{
	log_debug("proxy: worker %s: client gone", ex->worker_id);
	ex->req = NULL;
	ex_detach(ex);
	ex_finish(ex, ex->begun ? ex->status : status);
}

static void
ex_cancel(struct http_request *req, void *arg)
{
	/* the client left; nginx's 499 for the log and the caller */
	ex_client_gone(arg, 499);
}

static void
ex_body_error(struct http_request *req, enum http_body_error why,
    void *arg)
{
	static const int status[] = {
		[HTTP_BODY_ABORTED] = 499,
		[HTTP_BODY_TIMEOUT] = 408,
		[HTTP_BODY_TOO_LARGE] = 413,
		[HTTP_BODY_MALFORMED] = 400,
	};

	/* the core answers the client itself */
	ex_client_gone(arg, status[why]);
}

static void
ex_body_data(struct http_request *req, struct evbuffer *buf, void *arg)
{
	struct exchange	*ex = arg;
	struct evbuffer	*out;
	size_t		 n = evbuffer_get_length(buf);

	if (ex->uc == NULL || n == 0)
		return;
	out = bufferevent_get_output(ex->uc->bev);
	if (ex->up_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add_buffer(out, buf);
	if (ex->up_chunked)
		evbuffer_add(out, "\r\n", 2);
	ex->body_sent = 1;
	/* up_write resumes once the worker has taken it */
	if (evbuffer_get_length(out) > PROXY_BUF_MAX && !ex->body_paused &&
	    http_body_pause(req) == 0)
		ex->body_paused = 1;
}

static void
ex_body_end(struct http_request *req, void *arg)
{
	struct exchange	*ex = arg;

	if (ex->uc != NULL && ex->up_chunked)
		evbuffer_add(bufferevent_get_output(ex->uc->bev),
		    "0\r\n\r\n", 5);
	ex->body_done = 1;
}

/* Write the request (again, for a retry) and let its body come. */
static void
ex_send(struct exchange *ex)
{
	struct http_request	*req = ex->req;
	struct evbuffer		*out = bufferevent_get_output(ex->uc->bev);

	evbuffer_add(out, evbuffer_pullup(ex->head, -1),
	    evbuffer_get_length(ex->head));
	if (!req->stream_body) {
		if (evbuffer_get_length(req->body) > 0) {
			evbuffer_add_buffer(out, req->body);
			ex->body_sent = 1;
		}
	} else if (!ex->accepted) {
		ex->accepted = 1;
		if (http_body_stream(req, ex_body_data, ex_body_end,
		    ex_body_error, ex) == -1) {
			ex_fail(ex, 502, "bad gateway");
			return;
		}
	} else if (ex->body_done && ex->up_chunked)
		evbuffer_add(out, "0\r\n\r\n", 5);	/* empty, retried */
	uc_quickack(ex->uc);
}

static void
ex_attach(struct exchange *ex, struct upconn *uc)
{
	ex->uc = uc;
	uc->ex = ex;
	bufferevent_set_timeouts(uc->bev, NULL, NULL);
	bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
}

/* A pooled connection, a new one, or a place in the queue. */
static void
ex_start(struct exchange *ex, struct pool *p)
{
	struct upconn	*uc;

	if ((uc = pool_take(p, ex->port)) == NULL) {
		if (p->nconns >= PROXY_CONNS_MAX) {
			ex->pool = p;
			ex->waiting = 1;
			TAILQ_INSERT_TAIL(&p->waiting, ex, wait);
			return;
		}
		if ((uc = uc_new(p, ex->base, ex->port)) == NULL) {
			ex_fail(ex, 502, "bad gateway");
			return;
		}
	}
	ex_attach(ex, uc);
	ex_send(ex);
}

/* A pooled connection died before a byte of the answer: once more. */
static void
ex_retry(struct exchange *ex)
{
	log_debug("proxy: worker %s: pooled connection closed, retrying",
	    ex->worker_id);
	ex->retried = 1;
	if (uc_redial(ex->uc, ex->base) == -1) {
		ex_fail(ex, 502, "bad gateway");
		return;
	}
	ex_head_reset(ex);
	ex_send(ex);
}

/* The response completed cleanly: finish it, keep the connection if we can. */
static void
ex_complete(struct exchange *ex)
{
	struct upconn		*uc = ex->uc;
	struct http_request	*req = ex->req;
	int			 reuse;

	reuse = ex->keepalive && ex->body_done &&
	    evbuffer_get_length(bufferevent_get_input(uc->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(uc->bev)) == 0;
	ex->uc = NULL;
	uc->ex = NULL;
	ex->req = NULL;
	http_set_cancel(req, NULL, NULL);
	http_stream_end(req);
	if (reuse)
		uc_release(uc);
	else
		uc_close(uc);
	ex_finish(ex, ex->status);
}

static void
ex_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct exchange	*ex = arg;

	log_warnx("proxy: worker %s: no answer in time", ex->worker_id);
	ex_fail(ex, 504, "gateway timeout");
}

/* ---- the response ------------------------------------------------- */

/* Start the client's response: the worker's headers, our framing. */
static int
ex_begin(struct exchange *ex, int64_t length)
{
	const struct http_header *v;
	size_t			 i;

	for (i = 0; i < ex->rh.n; i++) {
		v = &ex->rh.v[i];
		/* a header the core refuses is left out, not fatal */
		if (!proxy_resp_header_dropped(&ex->rh, v->name))
			http_add_header(ex->req, v->name, v->value);
	}
	if (http_stream_start_length(ex->req, ex->status, length) == -1)
		return -1;
	ex->begun = 1;
	return 0;
}

/*
 * A complete response head.  Returns 1 to go on reading, -1 when the
 * exchange ended.
 */
static int
ex_head(struct exchange *ex)
{
	http_parser	*p = &ex->parser;
	int64_t		 length = -1;
	static const char lf[] = "\n";

	ex->status = p->status_code;
	if (ex->status < 100 || ex->status == 101) {
		log_warnx("proxy: worker %s: status %d", ex->worker_id,
		    ex->status);
		ex_fail(ex, 502, "bad gateway");
		return -1;
	}
	if (ex->status < 200) {
		/* 100 Continue, 103 Early Hints: the answer follows */
		ex_head_reset(ex);
		return 1;
	}
	ex->keepalive = http_should_keep_alive(p);
	if (p->flags & F_CONTENTLENGTH)
		length = (int64_t)p->content_length;
	if (ex->is_head || ex->status == 204 || ex->status == 304)
		ex->rs = R_DONE;
	else if (p->flags & F_CHUNKED) {
		ex->rs = R_CHUNKED;
		length = -1;
		/* the parser gets back the LF it stopped on (ex_read_head) */
		if (http_parser_execute(p, &rp_settings, lf, 1) != 1) {
			ex_fail(ex, 502, "bad gateway");
			return -1;
		}
	} else if (length >= 0) {
		ex->left = (uint64_t)length;
		ex->rs = length > 0 ? R_LENGTH : R_DONE;
	} else
		ex->rs = R_EOF;
	if (ex_begin(ex, length) == -1) {
		ex_fail(ex, 502, "bad gateway");
		return -1;
	}
	return 1;
}

static int
ex_read_head(struct exchange *ex, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	const char		*data;
	size_t			 n;
	enum http_errno		 e;

	/* an empty chain peeks as one, and no bytes mean EOF to the parser */
	if (evbuffer_get_length(in) == 0 ||
	    evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return 0;
	data = v.iov_base;
	n = http_parser_execute(&ex->parser, &rp_settings, data, v.iov_len);
	e = HTTP_PARSER_ERRNO(&ex->parser);
	if (e == HPE_PAUSED && ex->head_done) {
		/* paused on the head's last LF, which is ours to take */
		if (n >= v.iov_len || data[n] != '\n') {
			ex_fail(ex, 502, "bad gateway");
			return -1;
		}
		evbuffer_drain(in, n + 1);
		ex->head_done = 0;
		http_parser_pause(&ex->parser, 0);
		return ex_head(ex);
	}
	evbuffer_drain(in, n);
	if (e != HPE_OK) {
		log_warnx("proxy: worker %s: bad response: %s",
		    ex->worker_id, http_errno_name(e));
		ex_fail(ex, 502, "bad gateway");
		return -1;
	}
	return 1;
}

/* Pass on what is in ex->body. */
static int
ex_relay(struct exchange *ex)
{
	if (evbuffer_get_length(ex->body) == 0)
		return 1;
	if (http_stream_chunk(ex->req, ex->body) == -1) {
		ex_fail(ex, 502, "bad gateway");
		return -1;
	}
	return 1;
}

static int
ex_read_length(struct exchange *ex, struct evbuffer *in)
{
	size_t	 n = evbuffer_get_length(in);

	if (n == 0)
		return 0;
	if (n > ex->left)
		n = (size_t)ex->left;
	/* whole chains change hands: the body is not copied */
	evbuffer_remove_buffer(in, ex->body, n);
	ex->left -= n;
	if (ex->left == 0)
		ex->rs = R_DONE;
	return ex_relay(ex);
}

static int
ex_read_eof(struct exchange *ex, struct evbuffer *in)
{
	if (evbuffer_get_length(in) == 0)
		return 0;
	evbuffer_add_buffer(ex->body, in);
	return ex_relay(ex);
}

static int
ex_read_chunked(struct exchange *ex, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	size_t			 n;
	enum http_errno		 e;

	/* an empty chain peeks as one, and no bytes mean EOF to the parser */
	if (evbuffer_get_length(in) == 0 ||
	    evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return 0;
	n = http_parser_execute(&ex->parser, &rp_settings, v.iov_base,
	    v.iov_len);
	e = HTTP_PARSER_ERRNO(&ex->parser);
	evbuffer_drain(in, n);
	if (ex_relay(ex) == -1)
		return -1;
	if (ex->msg_done) {
		ex->rs = R_DONE;
		return 1;
	}
	if (e != HPE_OK) {
		log_warnx("proxy: worker %s: bad chunked body: %s",
		    ex->worker_id, http_errno_name(e));
		ex_fail(ex, 502, "bad gateway");
		return -1;
	}
	return 1;
}

/* Everything readable now.  -1 when the exchange ended. */
static int
ex_read(struct exchange *ex)
{
	struct evbuffer	*in = bufferevent_get_input(ex->uc->bev);
	int		 r = 1;

	if (evbuffer_get_length(in) > 0)
		ex->got = 1;
	while (r == 1 && ex->rs != R_DONE) {
		switch (ex->rs) {
		case R_HEAD:
			r = ex_read_head(ex, in);
			break;
		case R_LENGTH:
			r = ex_read_length(ex, in);
			break;
		case R_CHUNKED:
			r = ex_read_chunked(ex, in);
			break;
		default:
			r = ex_read_eof(ex, in);
			break;
		}
	}
	if (r == -1)
		return -1;
	if (ex->rs == R_DONE) {
		ex_complete(ex);
		return -1;
	}
	return 0;
}

static void
ex_drained(struct http_request *req, void *arg)
{
	struct exchange	*ex = arg;

	bufferevent_enable(ex->uc->bev, EV_READ);
	ex_pump(ex);
}

/*
 * Read, then stop reading while the client has more than PROXY_BUF_MAX
 * to take: ex_drained goes on.  -1 when the exchange ended.
 */
static int
ex_pump(struct exchange *ex)
{
	if (ex_read(ex) == -1)
		return -1;
	uc_quickack(ex->uc);
	if (ex->begun && http_stream_queued(ex->req) > PROXY_BUF_MAX) {
		bufferevent_disable(ex->uc->bev, EV_READ);
		http_stream_on_drain(ex->req, ex_drained, ex);
	}
	return 0;
}

/* The worker closed or failed: the end of a body, a retry, or a 502. */
static void
ex_upstream_end(struct exchange *ex, short what)
{
	if (ex->rs == R_EOF && !(what & BEV_EVENT_ERROR)) {
		ex->rs = R_DONE;
		ex_complete(ex);
		return;
	}
	if (!ex->got && ex->uc->reused && !ex->body_sent && !ex->retried) {
		ex_retry(ex);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		log_warnx("proxy: worker %s: %s", ex->worker_id,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		log_warnx("proxy: worker %s: connection closed%s",
		    ex->worker_id, ex->begun ? " in the body" : "");
	ex_fail(ex, 502, "bad gateway");
}

/* ---- upstream callbacks ------------------------------------------- */

static void
up_read(struct bufferevent *bev, void *arg)
{
	struct upconn	*uc = arg;

	if (uc->ex == NULL) {
		/* an idle connection has nothing to say */
		TAILQ_REMOVE(&uc->pool->idle, uc, entry);
		uc->pool->nidle--;
		uc_close(uc);
		return;
	}
	ex_pump(uc->ex);
}

static void
up_write(struct bufferevent *bev, void *arg)
{
	struct upconn	*uc = arg;
	struct exchange	*ex = uc->ex;

	if (ex == NULL)
		return;
	/* the request is out; the answer is next */
	uc_quickack(uc);
	if (ex->body_paused && ex->req != NULL) {
		ex->body_paused = 0;
		http_body_resume(ex->req);
	}
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
	struct upconn	*uc = arg;
	struct exchange	*ex = uc->ex;

	if (ex == NULL) {
		/* idle: closed by the worker, or unused for too long */
		TAILQ_REMOVE(&uc->pool->idle, uc, entry);
		uc->pool->nidle--;
		uc_close(uc);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		uc_quickack(uc);
		return;
	}
	/* what arrived before the end counts */
	if ((what & BEV_EVENT_EOF) && ex_read(ex) == -1)
		return;
	ex_upstream_end(ex, what);
}

/* ---- interface ---------------------------------------------------- */

static struct exchange *
ex_new(struct http_request *req, const struct proxy_upstream *up)
{
	struct exchange	*ex;

	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return NULL;
	TAILQ_INSERT_TAIL(&exchanges, ex, entry);
	ex->req = req;
	ex->base = http_request_base(req);
	ex->port = up->port;
	ex->is_head = req->method == HTTP_HEAD;
	ex->rs = R_HEAD;
	ex_head_reset(ex);
	if ((ex->worker_id = strdup(up->worker_id)) == NULL ||
	    (ex->head = evbuffer_new()) == NULL ||
	    (ex->body = evbuffer_new()) == NULL ||
	    (ex->timer = evtimer_new(ex->base, ex_timeout, ex)) == NULL) {
		ex->req = NULL;
		ex_finish(ex, 0);	/* no done yet: the caller's */
		return NULL;
	}
	ex->done = up->done;
	ex->done_arg = up->arg;
	return ex;
}

void
proxy_http_forward(struct http_request *req, const struct proxy_upstream *up)
{
	struct exchange	*ex;
	struct pool	*p;
	struct timeval	 tv;

	if (up->worker_id == NULL || up->target == NULL ||
	    (ex = ex_new(req, up)) == NULL) {
		log_warnx("proxy: cannot forward");
		http_reply_text(req, 502, "bad gateway");
		if (up->done != NULL)
			up->done(up->arg, 502);
		return;
	}
	http_set_cancel(req, ex_cancel, ex);
	if (up->port <= 0 || up->port > 65535 ||
	    ex_build_head(ex, req, up) == -1 ||
	    (p = pool_get(up->worker_id)) == NULL) {
		ex_fail(ex, 502, "bad gateway");
		return;
	}
	if (up->timeout_ms > 0) {
		tv.tv_sec = up->timeout_ms / 1000;
		tv.tv_usec = (up->timeout_ms % 1000) * 1000;
		evtimer_add(ex->timer, &tv);
	}
	ex_start(ex, p);
	/* a new pool that ex_start did not take into use goes */
	pool_settle(p);
}

void
proxy_http_forget(const char *worker_id)
{
	struct pool	 key, *p;

	key.worker_id = (char *)worker_id;
	if ((p = RB_FIND(proxy_pools, &pools, &key)) != NULL)
		pool_forget(p);
}

size_t
proxy_http_pooled(const char *worker_id)
{
	struct pool	 key, *p;

	key.worker_id = (char *)worker_id;
	if ((p = RB_FIND(proxy_pools, &pools, &key)) == NULL)
		return 0;
	return p->nidle;
}

void
proxy_http_shutdown(void)
{
	struct exchange	*ex;
	struct pool	*p;

	while ((ex = TAILQ_FIRST(&exchanges)) != NULL)
		ex_fail(ex, 502, "bad gateway");
	while ((p = RB_MIN(proxy_pools, &pools)) != NULL)
		pool_forget(p);
}
