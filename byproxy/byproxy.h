/*
 * byproxy: every HTTP byte of the suite.  One header for the program.
 *
 * The HTTP core (http.c) runs HTTP/1.1 on evconnlistener + bufferevent
 * with Debian's http_parser, one request at a time per connection:
 * the next pipelined request is parsed only after the previous response
 * is queued, so responses leave in request order without a queue.
 *
 * A handler gets a struct http_request and answers now or later with
 * one of the http_reply* functions, http_error, or the http_stream_*
 * trio.  Whatever answers last frees the request: after http_reply,
 * http_error or http_stream_end the pointer is gone.  If the client goes
 * away first, the cancel callback set with http_set_cancel runs and the
 * request is freed; a continuation that only holds a handle can ask
 * http_request_lookup whether the request still exists.
 *
 * Streamed request bodies (routes with HTTP_ROUTE_STREAM_BODY, for
 * uploads and the app proxy): the handler runs as soon as the head is
 * complete, before a byte of the body is read.  It either answers
 * without the body, or takes it with http_body_stream, which sends
 * "100 Continue" when the client asked for it.  on_data then gets the
 * decoded bytes (chunked framing removed) in order, in req->body, to
 * move out with evbuffer_add_buffer or evbuffer_remove_buffer; bytes it
 * leaves there are offered again with the next ones and count against
 * the bound.  on_end runs once, after the last.  The core holds at most
 * HTTP_INBUF_MAX + HTTP_BODY_CHUNK_MAX of a connection's input; a
 * consumer that cannot keep up calls http_body_pause, which stops
 * reading the socket, and http_body_resume later (also after taking
 * bytes from req->body outside on_data).
 *
 * The handler may answer at any time.  A complete answer ends the body:
 * no body callback follows, and the connection is closed after the
 * answer unless the rest of a Content-Length body is already here to be
 * dropped.  A streamed answer (http_stream_start) lets the body go on.
 * When the body fails (client gone, no progress for body_ms, over the
 * limit, bad chunk framing), on_error -- or, without one, the cancel
 * callback -- is the last call the handler gets for the request: it
 * cannot answer from there and must forget the pointer.  The core then
 * answers 408, 413 or 400 itself (413 with the message set by
 * http_body_limit) if no response was begun, and closes the connection.
 * Before http_body_stream and after on_end, a client that goes away is
 * reported to the cancel callback as for any request; never both.
 */

#ifndef BY_BYPROXY_H
#define BY_BYPROXY_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <bsd/sys/tree.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <jansson.h>

#include "proc.h"
#include "uuid.h"

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

/* Limits (bytes and counts); violations end the connection. */
#define HTTP_MAX_REQUEST_LINE	(8 * 1024)	/* 414 */
#define HTTP_MAX_HEADER_BYTES	(64 * 1024)	/* 431 */
#define HTTP_MAX_HEADERS	100		/* 431 */
#define HTTP_MAX_CHUNK_LINE	1024		/* 400, chunk size + ext */
#define HTTP_BODY_MAX_DEFAULT	(1024 * 1024)	/* 413, JSON bodies */
#define HTTP_MAX_PARAMS		8		/* {param}s in a pattern */
#define HTTP_INBUF_MAX		(128 * 1024)	/* held while a handler runs */
#define HTTP_LINGER_MAX		(1024 * 1024)	/* discarded before close */
#define HTTP_BODY_CHUNK_MAX	(128 * 1024)	/* streamed, untaken */

/* Timeouts in milliseconds (408 when a request was begun). */
#define HTTP_HEADER_TIMEOUT_MS	10000	/* first byte to end of head */
#define HTTP_BODY_TIMEOUT_MS	30000	/* first byte to end of body;
					   streamed: between body bytes */
#define HTTP_IDLE_TIMEOUT_MS	120000	/* keep-alive between requests */
#define HTTP_WRITE_TIMEOUT_MS	60000	/* no write progress */
#define HTTP_LINGER_TIMEOUT_MS	2000	/* draining input after close */
#define HTTP_ACCEPT_PAUSE_MS	1000	/* after EMFILE/ENFILE */

#define READYZ_TIMEOUT_MS	5000

/* Listener kinds, as a bit mask for routes. */
#define HTTP_LISTEN_MAIN	0x1
#define HTTP_LISTEN_MGMT	0x2
#define HTTP_LISTEN_ANY		(HTTP_LISTEN_MAIN | HTTP_LISTEN_MGMT)

/* Route flags */
#define HTTP_ROUTE_QUIET	0x1	/* request log at debug (probes) */
#define HTTP_ROUTE_STREAM_BODY	0x2	/* handler runs at the head */

struct http_server;
struct http_router;
struct http_conn;
struct http_request;

typedef void	(*http_handler_fn)(struct http_request *, void *);
typedef void	(*http_cancel_fn)(struct http_request *, void *);
/* Router group: adds headers to every response under a path prefix. */
typedef void	(*http_group_fn)(struct http_request *);

/* Why a streamed request body failed (see the top of this file). */
enum http_body_error {
	HTTP_BODY_ABORTED,	/* client closed, connection failed */
	HTTP_BODY_TIMEOUT,	/* no body byte for body_ms: 408 */
	HTTP_BODY_TOO_LARGE,	/* over the limit: 413 */
	HTTP_BODY_MALFORMED,	/* bad chunk framing: 400 */
};
typedef void	(*http_body_data_fn)(struct http_request *,
		    struct evbuffer *, void *);
typedef void	(*http_body_end_fn)(struct http_request *, void *);
typedef void	(*http_body_error_fn)(struct http_request *,
		    enum http_body_error, void *);

struct http_header {
	char		*name;
	char		*value;
};

struct http_headers {
	struct http_header *v;
	size_t		 n;
	size_t		 cap;
};

struct http_param {
	const char	*name;		/* points into the route */
	char		*value;		/* percent-decoded */
};

struct http_route {
	const char	*method;	/* "GET", "POST", ... */
	/*
	 * "/healthz", "/api/v1/apps/{id}", or a prefix "/app/{name}/ *"
	 * (without the space) whose rest ("" or more) is the param "*".
	 */
	const char	*pattern;
	unsigned int	 listeners;	/* HTTP_LISTEN_* mask */
	size_t		 body_max;	/* 0: HTTP_BODY_MAX_DEFAULT */
	unsigned int	 flags;		/* HTTP_ROUTE_* */
	http_handler_fn	 fn;
	void		*arg;
};

/* A streamed request body: the core's own bookkeeping. */
struct http_body_state {
	http_body_data_fn  on_data;
	http_body_end_fn   on_end;
	http_body_error_fn on_error;
	void		*arg;
	uint64_t	 left;		/* Content-Length still to come */
	char		*msg;		/* 413 message, or NULL */
	int		 chunked;
	int		 accepted;	/* http_body_stream was called */
	int		 begun;		/* limits checked */
	int		 complete;	/* the last byte was read */
	int		 ended;		/* on_end or last word said */
	int		 paused;
	int		 offer;		/* offer req->body again */
};

enum http_req_state {
	HTTP_REQ_READING,	/* head or body still arriving */
	HTTP_REQ_HANDLER,	/* handed to the handler, no answer yet */
	HTTP_REQ_STREAMING,	/* head sent, chunks follow */
	HTTP_REQ_DONE,		/* answer queued */
};

struct http_request {
	RB_ENTRY(http_request) live_entry;
	uint64_t	 id;		/* handle, unique per server */
	struct http_conn *conn;
	enum http_req_state state;

	/* what the client sent */
	enum http_method method;
	const char	*method_str;
	char		*target;	/* request target as sent */
	char		*path;		/* raw path, no query */
	char		*query;		/* raw query without '?', or NULL */
	unsigned short	 http_major;
	unsigned short	 http_minor;
	struct http_headers headers;
	struct evbuffer	*body;		/* streamed: untaken */
	int		 keepalive;	/* client allows another request */
	int		 upgrade;	/* Upgrade or CONNECT */
	int		 head;		/* HEAD: answer without body */
	unsigned int	 listener;	/* HTTP_LISTEN_MAIN or _MGMT */
	const char	*remote;	/* "ip:port" of the peer */
	struct timespec	 start;

	/* routing */
	const struct http_route *route;
	struct http_param params[HTTP_MAX_PARAMS + 1];
	size_t		 nparams;
	int		 route_status;	/* 0, 404 or 405 */
	char		 allow[64];	/* methods for 405 */

	/* answer */
	int		 status;
	struct http_headers resp_headers;
	http_cancel_fn	 cancel;
	void		*cancel_arg;
	int		 chunked;	/* streaming with chunked encoding */
	int64_t		 resp_left;	/* streamed, known length: bytes to
					   come; -1 when unknown */
	void		(*drain_fn)(struct http_request *, void *);
	void		*drain_arg;	/* http_stream_on_drain */
	size_t		 hdrs_seen;	/* trailer accounting */
	size_t		 body_max;

	int		 stream_body;	/* HTTP_ROUTE_STREAM_BODY */
	struct http_body_state bs;
};

struct http_timeouts {
	int		 header_ms;
	int		 body_ms;
	int		 idle_ms;
	int		 write_ms;
	int		 linger_ms;
};

/* http.c: the server and its connections */
struct http_server *http_server_new(struct event_base *, struct http_router *);
void		 http_server_free(struct http_server *);
/* Accept on an already listening socket (takes the fd). */
int		 http_server_listen(struct http_server *, int fd,
		    unsigned int listener);
/* Serve an already connected socket (takes the fd): tests, fuzzing. */
int		 http_server_adopt(struct http_server *, int fd,
		    unsigned int listener, const struct sockaddr *, socklen_t);
/*
 * Stop accepting, let in-flight requests finish (with Connection: close),
 * close idle connections, call done once no connection is left.
 */
void		 http_server_shutdown(struct http_server *,
		    void (*done)(void *), void *);
void		 http_server_set_hsts(struct http_server *, int);
void		 http_server_set_timeouts(struct http_server *,
		    const struct http_timeouts *);
size_t		 http_server_nconns(const struct http_server *);

/* Request accessors */
const char	*http_header_get(const struct http_request *, const char *);
const char	*http_request_param(const struct http_request *,
		    const char *);
uint64_t	 http_request_handle(const struct http_request *);
struct http_request *http_request_lookup(struct http_server *, uint64_t);
struct http_server *http_request_server(const struct http_request *);
struct event_base *http_request_base(const struct http_request *);
void		 http_set_cancel(struct http_request *, http_cancel_fn, void *);

/* Answers.  Each returns 0, or -1 when the request cannot take it. */
int		 http_add_header(struct http_request *, const char *,
		    const char *);
int		 http_reply(struct http_request *, int status,
		    const char *content_type, const void *body, size_t len);
/* Moves the contents of body into the response (no copy). */
int		 http_reply_buffer(struct http_request *, int status,
		    const char *content_type, struct evbuffer *body);
int		 http_reply_text(struct http_request *, int status,
		    const char *text);
/* Takes the reference to json; the body ends with a newline. */
int		 http_reply_json(struct http_request *, int status, json_t *);
/* {"error":code,"message":message} */
int		 http_error(struct http_request *, int status,
		    const char *code, const char *message);
/* Chunked (plain, then close, for HTTP/1.0 clients). */
int		 http_stream_start(struct http_request *, int status,
		    const char *content_type);
int		 http_stream_chunk(struct http_request *, struct evbuffer *);
int		 http_stream_end(struct http_request *);
/*
 * A streamed answer that relays another server's (the app proxy): the
 * core adds only its own headers (Date, security, version), no
 * Content-Type; the caller adds the rest with http_add_header first.
 * With length >= 0 the body is sent as is with that Content-Length:
 * http_stream_chunk refuses bytes beyond it, and http_stream_end short
 * of it cuts the connection like http_stream_abort and returns -1.
 * With length -1 it is chunked (HTTP/1.1) or until close (HTTP/1.0).
 * An answer to HEAD or with status 1xx, 204 or 304 has no body: chunks
 * are dropped, and without a length no framing header is sent.
 */
int		 http_stream_start_length(struct http_request *, int status,
		    int64_t length);
/*
 * A streamed answer that cannot be completed (its source failed): what
 * is queued is still written, then the connection closes, so that the
 * client sees a cut body (an HTTP/1.0 client of an answer without a
 * length cannot tell).  The request is freed; no cancel follows.
 */
int		 http_stream_abort(struct http_request *);
/* Bytes queued for the client and not yet written to its socket. */
size_t		 http_stream_queued(const struct http_request *);
/*
 * Backpressure for a streamed answer: fn runs once, from the loop, when
 * what is queued for the client has been written out (at the next turn
 * when nothing is queued now).  A later call replaces fn; it is
 * forgotten with the request (the cancel callback says so).
 */
int		 http_stream_on_drain(struct http_request *,
		    void (*fn)(struct http_request *, void *), void *);
/*
 * Hand the client's bufferevent to the caller after the request head
 * (WebSocket later).  Bytes that followed the request are in its input
 * buffer, its callbacks are cleared, and the request is freed.  NULL if
 * a response was begun already.
 */
struct bufferevent *http_takeover(struct http_request *);

/*
 * Streamed request bodies.  Each returns 0, or -1 when the request is
 * not (or no longer) streaming its body.  http_body_stream is taken
 * only before any answer; on_data and on_end are required.
 */
int		 http_body_stream(struct http_request *, http_body_data_fn,
		    http_body_end_fn, http_body_error_fn, void *);
int		 http_body_pause(struct http_request *);
int		 http_body_resume(struct http_request *);
/*
 * Lower this request's body limit below the route's body_max (which
 * stays the ceiling); message, when not NULL, replaces the text of the
 * 413 answer.  A Content-Length over it is refused before reading.
 */
int		 http_body_limit(struct http_request *, size_t max,
		    const char *message);
/* Bytes of the connection's input the core holds now (tests). */
size_t		 http_body_buffered(const struct http_request *);

const char	*http_reason(int status);

/* http_router.c */
struct http_router *http_router_new(void);
void		 http_router_free(struct http_router *);
int		 http_router_add_table(struct http_router *,
		    const struct http_route *, size_t);
int		 http_router_add(struct http_router *,
		    const struct http_route *);
int		 http_router_group(struct http_router *, const char *prefix,
		    http_group_fn);
/* Fill req->route and params, or req->route_status (404/405, allow). */
int		 http_router_match(const struct http_router *,
		    struct http_request *);
void		 http_router_headers(const struct http_router *,
		    struct http_request *);
void		 http_router_dispatch(const struct http_router *,
		    struct http_request *);
void		 http_api_headers(struct http_request *);

/* proxy_health.c */
typedef int	(*health_ping_fn)(enum proc_id, uint32_t reqid);
int		 proxy_health_init(struct http_router *, unsigned int listeners,
		    health_ping_fn);
void		 proxy_health_pong(enum proc_id, uint32_t reqid, int ok);
void		 proxy_set_draining(int);
int		 proxy_draining(void);
size_t		 proxy_health_pending(void);
void		 proxy_health_set_timeout(int);

/* api.c: the REST API's round trips to bystate */
typedef int	(*api_send_fn)(uint32_t type, uint32_t reqid, const char *);
typedef void	(*api_done_fn)(struct http_request *, json_t *res, void *);
void		 api_init(api_send_fn state, api_send_fn spawn);
/* Ask bystate; done (or, when NULL, api_reply) answers.  Takes args. */
int		 api_call(struct http_request *, const char *op, json_t *args,
		    api_done_fn, void *);
void		 api_forward(struct http_request *, const char *op, json_t *);
int		 api_call_spawn(struct http_request *, const char *op,
		    json_t *args, api_done_fn, void *);
void		 api_reply(struct http_request *, json_t *res);
void		 api_result(uint32_t reqid, const char *, size_t);
json_t		*api_body(struct http_request *, int empty_ok);

/* api_routes.c */
int		 api_routes_init(struct http_router *);
/* api_apps.c: apps, access, tags */
int		 api_apps_routes(struct http_router *);
/* api_auth.c: users, tokens, bootstrap */
int		 api_auth_routes(struct http_router *);

/* api_auth.c / api_ratelimit.c (and api_realip.c) */
/* Router gate (http_router.c): 0 go on, -1 the request was answered. */
typedef int	(*http_gate_fn)(struct http_request *);
void		 http_router_gate(struct http_router *, http_gate_fn);

/* An address (IPv4 as IPv4-mapped IPv6) and prefix length (0..128). */
struct cidr {
	uint8_t		 addr[16];
	int		 bits;
};
int		 ip_parse(const char *, size_t, uint8_t[16]);
void		 ip_format(const uint8_t[16], char *, size_t);
int		 cidr_parse(const char *, struct cidr *);
int		 cidr_contains(const struct cidr *, const uint8_t[16]);
int		 realip_resolve(const struct cidr *, size_t, const char *peer,
		    const char *const *xff, size_t nxff, const char *xrealip,
		    uint8_t[16]);
int		 realip_addr(const struct http_request *, uint8_t[16]);
void		 realip_str(const struct http_request *, char *, size_t);

int		 ratelimit_group(const char *path);
int		 ratelimit_limit(int group);
int		 ratelimit_take(int group, const uint8_t[16], double now,
		    int *remaining, int64_t *reset);
void		 ratelimit_reset(void);
size_t		 ratelimit_size(int group);
#define RL_MAX_ENTRIES	65536		/* addresses per group */
int		 ratelimit_gate(struct http_request *);

/* api_apps.c / api_validate.c */
/* First value of key in the query string, decoded; free it.  NULL: none */
char		*api_query_get(const struct http_request *, const char *key);
/* Decimal integer as Go's strconv.Atoi reads it, else def */
int64_t		 api_parse_int(const char *, int64_t def);

/* api_bundles.c: uploads; api_workers.c: start, runtime */
int		 api_bundles_routes(struct http_router *);
int		 api_workers_routes(struct http_router *);
void		 api_logs_data(uint32_t reqid, const void *, size_t);
void		 api_logs_end(uint32_t reqid, const struct msg_bundle_result *);
void		 api_bundle_fd(uint32_t reqid, const struct msg_bundle_result *,
		    int fd);
void		 api_bundle_result(uint32_t reqid,
		    const struct msg_bundle_result *);

/*
 * The app proxy: /app/<name>/ (proxy_app.c routes and places sessions,
 * proxy_worker.c keeps the registry of workers byproxy started,
 * proxy_http.c forwards HTTP, proxy_ws.c relays WebSockets,
 * proxy_headers.c decides which client headers reach a worker).
 */

/* proxy_headers.c */
/*
 * 1 if a client's request header must not reach a worker: hop-by-hop
 * (Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
 * Upgrade, Host), identity (X-Shiny-*, X-Blockyard-*), forwarding
 * (X-Forwarded-*, X-Real-IP, Forwarded), and any name listed in the
 * request's Connection header.  Names compare case-insensitively with
 * '_' and '-' alike (httpuv folds both into '_'; machine-facts 9).
 */
int		 proxy_header_dropped(const struct http_request *,
		    const char *name);
/* Normalised name equality: case-insensitive, '_' == '-'. */
int		 proxy_header_name_eq(const char *, const char *);
/* A header list of copies (struct proxy_upstream's add, ...). */
void		 proxy_headers_add(struct http_headers *, const char *name,
		    const char *value);
void		 proxy_headers_free(struct http_headers *);
/*
 * 1 if a worker's response header must not reach the client: hop-by-hop
 * (Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
 * Upgrade, names in the response's Connection), Content-Length (the
 * core frames the body), and those the core sets on every answer (Date,
 * X-Blockyard-Version, X-Content-Type-Options, X-Frame-Options,
 * Referrer-Policy, Strict-Transport-Security).
 */
int		 proxy_resp_header_dropped(const struct http_headers *,
		    const char *name);

/* proxy_http.c: one request to a worker, keep-alive pool per worker */
struct proxy_upstream {
	const char	*worker_id;	/* pool key */
	int		 port;		/* the worker on 127.0.0.1:port */
	const char	*target;	/* path and query sent upstream */
	struct http_headers add;	/* appended after the client's */
	int64_t		 timeout_ms;	/* whole exchange; 0: none */
	/*
	 * Called once when the exchange ends, may be NULL: the status
	 * sent (the worker's once its head went out, also when the body
	 * was cut), 502/504 when the worker failed before, 499 when the
	 * client left first (408/413/400 when its body failed).
	 */
	void		(*done)(void *arg, int status);
	void		*arg;
};
/*
 * Forward req to the worker and answer it: the client's headers minus
 * proxy_header_dropped (and Content-Length, Expect), Host:
 * 127.0.0.1:<port>, then up->add; the request body (streamed, with
 * HTTP_ROUTE_STREAM_BODY) sent as it arrives with the client's
 * Content-Length or chunked; the response streamed back (status,
 * headers minus proxy_resp_header_dropped, body with its Content-Length
 * or re-chunked).  502 "bad gateway" (plain text) if the worker fails
 * before the response began, 504 "gateway timeout" when timeout_ms
 * passes first; after the head either cuts the client's connection.
 * A pooled connection that closes before any answer is retried once on
 * a new one if no body byte went up.  Copies what it needs from up.
 */
void		 proxy_http_forward(struct http_request *,
		    const struct proxy_upstream *);
/* Close the worker's pooled connections (it stopped). */
void		 proxy_http_forget(const char *worker_id);
size_t		 proxy_http_pooled(const char *worker_id);	/* tests */
void		 proxy_http_shutdown(void);

/* proxy_ws.c: WebSocket relay and the ws_cache_ttl reconnection cache */
struct proxy_ws_target {
	const char	*worker_id;
	const char	*session_id;	/* the blockyard_route cookie */
	int		 port;
	const char	*target;	/* path and query sent upstream */
	struct http_headers add;	/* X-Shiny-Access, X-Forwarded-* */
	int64_t		 idle_ms;	/* session_idle_ttl; 0: none */
	int64_t		 lifetime_ms;	/* session_max_lifetime; 0: none */
	int64_t		 cache_ttl_ms;	/* ws_cache_ttl; 0: never park */
	uint64_t	 max_message;	/* WS_MESSAGE_MAX_DEFAULT */
};
struct proxy_ws_events {
	/*
	 * The client side of an upgrade that proxy_ws_upgrade accepted
	 * ended (handshake failed, clean close, drop): exactly once per
	 * proxy_ws_upgrade call.  Capacity goes back here.  It may run
	 * before proxy_ws_upgrade returns (a refused handshake), and runs
	 * for every client before proxy_ws_close_worker and
	 * proxy_ws_shutdown return.  Neither callback may call
	 * proxy_ws_close_worker or proxy_ws_shutdown.
	 */
	void		(*released)(const char *worker_id,
			    const char *session_id);
	/* A data message passed, either way (at most once a second). */
	void		(*activity)(const char *session_id);
};
void		 proxy_ws_init(const struct proxy_ws_events *);
/* The request asks for a WebSocket (GET, Upgrade: websocket). */
int		 proxy_ws_is_upgrade(const struct http_request *);
/*
 * Same origin (Origin's host:port equals Host), or Origin equal to the
 * origin of external_url (may be NULL or empty: none); a request
 * without Origin passes (not a browser).
 */
int		 proxy_ws_origin_ok(const struct http_request *,
		    const char *external_url);
/*
 * Take the request: check the handshake (400 when malformed), reuse a
 * parked upstream of session_id on worker_id or open one, and answer
 * 101 once the worker accepted (502 "bad gateway" when it did not).
 * events->released follows exactly once.  Copies what it needs from
 * the target.
 */
void		 proxy_ws_upgrade(struct http_request *,
		    const struct proxy_ws_target *);
/* Close every WebSocket of a worker, parked ones too (it stops). */
void		 proxy_ws_close_worker(const char *worker_id);
size_t		 proxy_ws_count(void);		/* past 101, not parked */
size_t		 proxy_ws_parked_count(void);	/* waiting for a client */
void		 proxy_ws_shutdown(void);

/* proxy_worker.c / proxy_app.c */
int		 proxy_app_routes(struct http_router *);
void		 proxy_app_init(struct event_base *);
void		 proxy_app_shutdown(void);
/* An app changed through the API: forget its cached resolution. */
void		 proxy_app_changed(const char *app_id);
/* Drain the app's workers; done (may be NULL) when they are gone. */
void		 proxy_app_renew(const char *app_id);
void		 proxy_app_drain(const char *app_id, int wait,
		    void (*done)(void *), void *);
/* byspawn says a worker exited. */
void		 proxy_worker_exited(const char *worker_id, int stopped);
/* 1 if the app proxy drains the worker (runtime status). */
int		 proxy_worker_draining(const char *worker_id);
/* Sessions per worker for the runtime answer (an array, new ref). */
json_t		*proxy_worker_sessions(const char *worker_id);

/*
 * proxy_app.c / proxy_worker.c internals.  byproxy is one thread: the
 * placement decision and the reservation it makes happen in one call,
 * so parallel first requests cannot overshoot a cap.
 */
struct pwait;

enum pw_state {
	PW_SPAWNING,		/* workers.start sent to byspawn */
	PW_STARTING,		/* running, not yet answering HTTP */
	PW_READY,		/* answered HTTP */
	PW_GONE,		/* stopped or exited; record on its way out */
};

struct papp {
	RB_ENTRY(papp)		 entry;
	char			 id[UUID_LEN];
	char			*name;
	int			 enabled;
	char			 bundle[UUID_LEN];	/* "" none */
	int			 max_workers;		/* 0: no cap */
	int			 max_sessions;		/* >= 1 */
	int			 prewarm;
	uint64_t		 memory_limit;
	double			 cpu_limit;
	int			 spawning;		/* single flight */
	int64_t			 fetched_ms;
	TAILQ_HEAD(, pworker)	 workers;
	TAILQ_HEAD(, pwait)	 spawn_waiters;
};

struct pworker {
	TAILQ_ENTRY(pworker)	 app_entry;
	TAILQ_ENTRY(pworker)	 all_entry;
	uint64_t		 seq;
	char			 id[UUID_LEN];	/* "" while spawning */
	struct papp		*app;
	char			 bundle[UUID_LEN];
	int			 port;
	enum pw_state		 state;
	int			 draining;
	int			 stopping;	/* we asked byspawn */
	int			 nws;		/* client WebSockets */
	int			 npending;	/* sessions awaiting a WS */
	int			 inflight;	/* HTTP requests forwarded */
	int64_t			 last_active;	/* ms */
	int64_t			 started_ms;
	int64_t			 deadline;	/* start or drain deadline */
	int			 misses;	/* health */
	int			 probing;
	struct event		*timer;
	struct bufferevent	*probe;
	TAILQ_HEAD(, pwait)	 waiters;
};

int64_t		 proxy_now_ms(void);
/* proxy_worker.c */
extern TAILQ_HEAD(pworker_list, pworker) proxy_workers;
struct pworker	*pworker_spawn(struct papp *);
struct pworker	*pworker_find(const char *id);
void		 pworker_free_all(void);
/* Connect to a worker on 127.0.0.1:port (TCP_NODELAY, cbs set first). */
struct bufferevent *proxy_dial(struct event_base *, int port, int options,
		    bufferevent_data_cb, bufferevent_data_cb,
		    bufferevent_event_cb, void *);
/* The worker's load: open WebSockets plus sessions waiting for one. */
int		 pworker_load(const struct pworker *);
void		 pworker_stop(struct pworker *, const char *reason,
		    int crashed);
void		 pworker_health_tick(void);
size_t		 pworker_count(void);
/* proxy_app.c, called by proxy_worker.c */
void		 papp_worker_ready(struct pworker *);
void		 papp_worker_failed(struct pworker *, int status,
		    const char *text);
void		 papp_worker_gone(struct pworker *, int crashed);

/* api.c: calls made by byproxy itself, with no client request */
typedef void	(*api_internal_fn)(json_t *res, void *arg);
/* to bystate (proc PROC_STATE) or byspawn; done may be NULL */
int		 api_call_internal(enum proc_id, const char *op, json_t *args,
		    api_internal_fn done, void *arg);

#endif /* BY_BYPROXY_H */
