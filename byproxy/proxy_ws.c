/*
 * WebSocket relay between a client and an R worker, and the ws_cache_ttl
 * reconnection cache (blockyard-behaviour 3.3 step 9 and 3.4).
 *
 * byproxy terminates the handshake on both sides: it answers the
 * client's upgrade itself and opens a WebSocket of its own to the
 * worker.  Frames are parsed on each side (ws_frame.c) and written out
 * again for the other one, unmasked towards the client and masked
 * towards the worker.  Since neither side ever sees the other's
 * handshake, a worker connection whose client went away abnormally can
 * be parked and continued by the session's next client, which is what
 * a reconnecting Shiny page needs.
 *
 * Frames are relayed one by one, not gathered into messages: a frame's
 * payload chains move from one bufferevent's input to the other's
 * output.  A connection holds no buffer of its own; an idle one is two
 * bufferevents, a timer and this struct.
 *
 * Flow control: once the output towards one side holds more than
 * WS_OUT_HIGH, reading from the other side stops, and the write
 * watermark (WS_OUT_LOW) starts it again.  There is no read watermark:
 * ws_parse takes whole frames only, so any frame up to max_message must
 * fit in the input, and a read watermark below that would stall for
 * good on a large frame.
 *
 * Closing: a close frame is forwarded to the other side and the reply
 * forwarded back (the closing handshake passes through), both sides
 * ending once they sent and got a close, or WS_CLOSE_WAIT_MS after the
 * first.  A client that leaves without a clean close (no close frame,
 * a network error, a code other than 1000 or 1001) leaves its worker
 * connection parked: reading from the worker stops, so whatever it
 * sends waits in our input and its socket until the session's next
 * client takes the connection, or cache_ttl_ms pass.  Its rest is
 * dropped if the old client got part of a message; a client that left
 * in the middle of a message of its own is not parked (the worker could
 * not make sense of the next one).  A close code 1005 (none) is not a
 * clean close either, as in the reference.  lifetime_ms counts from the
 * opening of the worker side, so a reconnect does not renew it.
 *
 * events.released and events.activity may run inside any proxy_ws_*
 * call and inside the relay's own callbacks; they must not call
 * proxy_ws_close_worker or proxy_ws_shutdown.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>

#include "log.h"
#include "byproxy.h"
#include "ws_frame.h"

#define WS_CONNECT_TIMEOUT_MS	30000	/* connect and the worker's 101 */
#define WS_CLOSE_WAIT_MS	2000	/* for the other side's close */
#define WS_WRITE_TIMEOUT_MS	60000	/* no write progress: gone */
#define WS_ACTIVITY_MS		1000	/* events.activity at most */
#define WS_OUT_HIGH		(1024 * 1024)	/* stop reading the source */
#define WS_OUT_LOW		(256 * 1024)	/* and read again */
#define WS_HEAD_MAX		(16 * 1024)	/* the worker's 101 */
#define WS_KEY_CHARS		24		/* base64 of 16 bytes */
#define WS_LINGER_READS		16		/* 64 KiB dropped at close */

enum ws_state {
	WS_CONNECTING,	/* our handshake with the worker; the request waits */
	WS_RELAY,	/* frames pass both ways */
	WS_CLOSING,	/* close frames under way: both sides end */
	WS_PARKED,	/* no client: the worker waits for the session */
};

struct ws_side {
	struct bufferevent	*bev;
	struct ws_parser	 parser;
	int			 held;		/* not read: other side full */
	int			 sent_close;
	int			 got_close;
	int			 close_code;	/* the one it sent */
};

struct ws_conn {
	TAILQ_ENTRY(ws_conn)	 entry;
	enum ws_state		 state;
	char			*worker_id;
	char			*session_id;
	char			*protocol;	/* the worker's choice, or NULL */
	struct ws_side		 client;
	struct ws_side		 up;
	struct event		*timer;
	struct http_request	*req;		/* WS_CONNECTING only */
	char			 expect[WS_ACCEPT_LEN + 1]; /* worker's */
	int64_t			 idle_ms;
	int64_t			 lifetime_ms;
	int64_t			 cache_ttl_ms;
	uint64_t		 max_message;
	int64_t			 born;		/* the worker side opened */
	int64_t			 last_data;	/* a data frame passed */
	int64_t			 last_touch;	/* events.activity */
	int			 released;	/* for this client */
	int			 skip_cont;	/* drop a half-sent message */
};
TAILQ_HEAD(ws_connq, ws_conn);

static struct proxy_ws_events	 ws_events;
static struct ws_connq		 ws_live = TAILQ_HEAD_INITIALIZER(ws_live);
static struct ws_connq		 ws_parked = TAILQ_HEAD_INITIALIZER(ws_parked);
static size_t			 ws_nparked;

static void	 ws_read_cb(struct bufferevent *, void *);
static void	 ws_write_cb(struct bufferevent *, void *);
static void	 ws_event_cb(struct bufferevent *, short, void *);
static void	 ws_timer_cb(evutil_socket_t, short, void *);
static void	 ws_conn_free(struct ws_conn *, int, const char *);
static int	 ws_settle(struct ws_conn *);

/* ---- small helpers ------------------------------------------------ */

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
ws_timer_in(struct ws_conn *c, int64_t ms)
{
	struct timeval	 tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

/* Is tok one of the comma-separated tokens of s[0..len)? */
static int
token_in(const char *s, size_t len, const char *tok, int icase)
{
	const char	*e = s + len, *p;
	size_t		 n = strlen(tok), k;

	while (s < e) {
		while (s < e && (*s == ' ' || *s == '\t' || *s == ','))
			s++;
		for (p = s; p < e && *p != ','; p++)
			;
		k = (size_t)(p - s);
		while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
			k--;
		if (k == n && k > 0 && (icase ? strncasecmp(s, tok, n) :
		    strncmp(s, tok, n)) == 0)
			return 1;
		s = p;
	}
	return 0;
}

/* Does any header called name list tok? */
static int
req_has_token(const struct http_request *req, const char *name,
    const char *tok, int icase)
{
	size_t	 i;

	for (i = 0; i < req->headers.n; i++)
		if (strcasecmp(req->headers.v[i].name, name) == 0 &&
		    token_in(req->headers.v[i].value,
		    strlen(req->headers.v[i].value), tok, icase))
			return 1;
	return 0;
}

static int
is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Safe to put on the wire as a header line of ours. */
static int
header_ok(const char *name, const char *value)
{
	const unsigned char	*p;

	if (name == NULL || *name == '\0' || value == NULL)
		return 0;
	for (p = (const unsigned char *)name; *p != '\0'; p++)
		if (!is_tchar(*p))
			return 0;
	for (p = (const unsigned char *)value; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

/* A request target we send: origin-form, no spaces or controls. */
static int
target_ok(const char *t)
{
	const unsigned char	*p;

	if (t == NULL || t[0] != '/')
		return 0;
	for (p = (const unsigned char *)t; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/*
 * Our Sec-WebSocket-Key: the base64 of 16 random bytes.  21 characters
 * carry 126 bits; the 22nd holds the last 2 bits, so only its top two
 * bits may be set (A, Q, g or w).
 */
static void
ws_new_key(char key[WS_KEY_CHARS + 1])
{
	static const char	 tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int			 i;

	for (i = 0; i < 21; i++)
		key[i] = tab[arc4random_uniform(64)];
	key[21] = tab[arc4random_uniform(4) << 4];
	key[22] = '=';
	key[23] = '=';
	key[24] = '\0';
}

static void
set_nodelay(struct bufferevent *bev)
{
	int	 fd, one = 1;

	/* frames go out as they come; AF_UNIX sockets (tests) refuse */
	if ((fd = bufferevent_getfd(bev)) != -1)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
}

/* ---- origins ------------------------------------------------------- */

struct ws_origin {
	char		 scheme[16];	/* lower case; "" for a Host header */
	char		 host[256];	/* lower case, IPv6 with brackets */
	int		 port;		/* 0 when none was given */
};

/* host[:port], the whole of s[0..len). */
static int
authority_parse(const char *s, size_t len, struct ws_origin *o)
{
	const char	*e = s + len, *h = s, *hp;
	size_t		 hlen, i;
	long		 port = 0;

	if (len == 0)
		return -1;
	if (*s == '[') {
		if ((hp = memchr(s, ']', len)) == NULL)
			return -1;
		hp++;
	} else
		for (hp = s; hp < e && *hp != ':'; hp++)
			;
	hlen = (size_t)(hp - h);
	if (hlen == 0 || hlen >= sizeof(o->host))
		return -1;
	if (hp < e) {
		if (*hp != ':' || hp + 1 == e || e - hp > 6)
			return -1;
		for (hp++; hp < e; hp++) {
			if (!isdigit((unsigned char)*hp))
				return -1;
			port = port * 10 + (*hp - '0');
		}
		if (port < 1 || port > 65535)
			return -1;
	}
	for (i = 0; i < hlen; i++) {
		if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f ||
		    h[i] == '@' || h[i] == '/')
			return -1;
		o->host[i] = tolower((unsigned char)h[i]);
	}
	o->host[hlen] = '\0';
	o->port = (int)port;
	return 0;
}

/*
 * scheme://host[:port], then (path_ok) anything from a '/', '?' or '#'
 * on, or else at most a lone "/".
 */
static int
origin_parse(const char *url, int path_ok, struct ws_origin *o)
{
	const char	*p, *a;
	size_t		 n, i;

	memset(o, 0, sizeof(*o));
	if (url == NULL || (p = strstr(url, "://")) == NULL)
		return -1;
	n = (size_t)(p - url);
	if (n == 0 || n >= sizeof(o->scheme))
		return -1;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)url[i]) && url[i] != '+' &&
		    url[i] != '-' && url[i] != '.')
			return -1;
		o->scheme[i] = tolower((unsigned char)url[i]);
	}
	a = p + 3;
	n = strcspn(a, "/?#");
	if (a[n] != '\0' && !path_ok && strcmp(a + n, "/") != 0)
		return -1;
	return authority_parse(a, n, o);
}

static int
default_port(const char *scheme)
{
	if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0)
		return 80;
	if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0)
		return 443;
	return 0;
}

int
proxy_ws_origin_ok(const struct http_request *req, const char *external_url)
{
	struct ws_origin	 o, h, x;
	const char		*origin, *host;
	int			 op, hp;

	if ((origin = http_header_get(req, "Origin")) == NULL)
		return 1;
	if (origin_parse(origin, 0, &o) == -1)
		return 0;
	/* same origin: host[:port] as in Host, 80 and 443 left out */
	host = http_header_get(req, "Host");
	if (host != NULL && authority_parse(host, strlen(host), &h) == 0) {
		op = o.port == 80 || o.port == 443 ? 0 : o.port;
		hp = h.port == 80 || h.port == 443 ? 0 : h.port;
		if (strcmp(o.host, h.host) == 0 && op == hp)
			return 1;
	}
	/* or the origin of external_url */
	if (external_url == NULL || *external_url == '\0' ||
	    origin_parse(external_url, 1, &x) == -1)
		return 0;
	if (o.port == default_port(o.scheme))
		o.port = 0;
	if (x.port == default_port(x.scheme))
		x.port = 0;
	return strcmp(o.scheme, x.scheme) == 0 &&
	    strcmp(o.host, x.host) == 0 && o.port == x.port;
}

int
proxy_ws_is_upgrade(const struct http_request *req)
{
	return req->method == HTTP_GET &&
	    req_has_token(req, "Upgrade", "websocket", 1);
}

/* ---- connections -------------------------------------------------- */

void
proxy_ws_init(const struct proxy_ws_events *ev)
{
	if (ev != NULL)
		ws_events = *ev;
	else
		memset(&ws_events, 0, sizeof(ws_events));
}

size_t
proxy_ws_count(void)
{
	struct ws_conn	*c;
	size_t		 n = 0;

	TAILQ_FOREACH(c, &ws_live, entry)
		if (c->state != WS_CONNECTING)
			n++;
	return n;
}

size_t
proxy_ws_parked_count(void)
{
	return ws_nparked;
}

/* The client side of this upgrade ended: once per proxy_ws_upgrade. */
static void
ws_release(struct ws_conn *c)
{
	if (c->released)
		return;
	c->released = 1;
	if (ws_events.released != NULL)
		ws_events.released(c->worker_id, c->session_id);
}

static void
ws_touch(struct ws_conn *c)
{
	int64_t	 now = now_ms();

	c->last_data = now;
	if (now - c->last_touch < WS_ACTIVITY_MS)
		return;
	c->last_touch = now;
	if (ws_events.activity != NULL)
		ws_events.activity(c->session_id);
}

static struct ws_side *
ws_other(struct ws_conn *c, struct ws_side *s)
{
	return s == &c->client ? &c->up : &c->client;
}

static struct ws_side *
ws_side_of(struct ws_conn *c, struct bufferevent *bev)
{
	return bev == c->client.bev ? &c->client : &c->up;
}

/* The limits of the latest upgrade apply, also to a parked worker. */
static void
ws_conn_limits(struct ws_conn *c, const struct proxy_ws_target *t)
{
	c->idle_ms = t->idle_ms;
	c->lifetime_ms = t->lifetime_ms;
	c->cache_ttl_ms = t->cache_ttl_ms;
	c->max_message = t->max_message != 0 ? t->max_message :
	    WS_MESSAGE_MAX_DEFAULT;
	c->up.parser.max_message = c->max_message;
	c->up.parser.max_frame = c->max_message;
}

static struct ws_conn *
ws_conn_new(struct event_base *base, const struct proxy_ws_target *t)
{
	struct ws_conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->worker_id = strdup(t->worker_id != NULL ? t->worker_id : "");
	c->session_id = strdup(t->session_id != NULL ? t->session_id : "");
	c->timer = evtimer_new(base, ws_timer_cb, c);
	if (c->worker_id == NULL || c->session_id == NULL ||
	    c->timer == NULL) {
		if (c->timer != NULL)
			event_free(c->timer);
		free(c->worker_id);
		free(c->session_id);
		free(c);
		return NULL;
	}
	ws_parser_init(&c->up.parser, WS_ROLE_CLIENT, 0);
	ws_conn_limits(c, t);
	c->born = now_ms();
	c->state = WS_CONNECTING;
	TAILQ_INSERT_TAIL(&ws_live, c, entry);
	return c;
}

/* Append a close frame for s, once: code 1005 sends one without code. */
static void
ws_send_close(struct ws_conn *c, struct ws_side *s, int code,
    const char *reason)
{
	unsigned char	 key[4];

	if (s->bev == NULL || s->sent_close)
		return;
	if (code == WS_CLOSE_NO_STATUS)
		code = 0;
	if (s == &c->up)
		ws_mask_key(key);
	if (ws_write_close(bufferevent_get_output(s->bev), code, reason,
	    s == &c->up ? key : NULL) == -1)
		log_warnx("proxy_ws: cannot write a close frame");
	s->sent_close = 1;
}

/* What to send a side that ends now: its own code back if it closed. */
static int
ws_answer(const struct ws_side *s, int code)
{
	return s->got_close ? s->close_code : code;
}

/*
 * Close one side now: write what its output holds as far as the socket
 * takes it, drop some unread input (so that the close is a FIN rather
 * than a reset that could destroy our last frames), free it.
 */
static void
ws_side_end(struct ws_conn *c, struct ws_side *s)
{
	struct evbuffer	*out;
	char		 buf[4096];
	int		 fd, i;

	if (s->bev == NULL)
		return;
	if (c->state != WS_CONNECTING || s == &c->client) {
		out = bufferevent_get_output(s->bev);
		if ((fd = bufferevent_getfd(s->bev)) != -1) {
			/* a bufferevent's output is frozen at the start */
			evbuffer_unfreeze(out, 1);
			while (evbuffer_get_length(out) > 0 &&
			    evbuffer_write(out, fd) > 0)
				;
			for (i = 0; i < WS_LINGER_READS &&
			    read(fd, buf, sizeof(buf)) > 0; i++)
				;
		}
	}
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->held = 0;
	if (s == &c->client)
		ws_release(c);
}

/*
 * Free the connection.  code (0: none) goes in a close frame to each
 * side not sent one yet; a request still waiting is answered 502.
 */
static void
ws_conn_free(struct ws_conn *c, int code, const char *reason)
{
	struct http_request	*req;

	if (c->state == WS_PARKED) {
		TAILQ_REMOVE(&ws_parked, c, entry);
		ws_nparked--;
	} else
		TAILQ_REMOVE(&ws_live, c, entry);
	if ((req = c->req) != NULL) {
		c->req = NULL;
		http_set_cancel(req, NULL, NULL);
		http_reply_text(req, 502, "bad gateway");
	}
	if (code != 0 && c->state != WS_CONNECTING) {
		ws_send_close(c, &c->client, ws_answer(&c->client, code),
		    reason);
		ws_send_close(c, &c->up, ws_answer(&c->up, code), reason);
	}
	ws_side_end(c, &c->up);
	ws_side_end(c, &c->client);
	event_free(c->timer);
	ws_release(c);
	free(c->protocol);
	free(c->worker_id);
	free(c->session_id);
	free(c);
}

/* ---- relay ----------------------------------------------------------- */

static void
ws_hold(struct ws_side *s)
{
	s->held = 1;
	bufferevent_disable(s->bev, EV_READ);
}

/* Read s again, and look at what waits in its input from the loop. */
static void
ws_unhold(struct ws_conn *c, struct ws_side *s)
{
	s->held = 0;
	if (s->bev == NULL || c->state == WS_PARKED)
		return;
	bufferevent_enable(s->bev, EV_READ);
	bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* The idle and lifetime deadlines while relaying. */
static void
ws_relay_timer(struct ws_conn *c)
{
	int64_t	 now = now_ms(), at = INT64_MAX;

	if (c->idle_ms > 0)
		at = c->last_data + c->idle_ms;
	if (c->lifetime_ms > 0 && c->born + c->lifetime_ms < at)
		at = c->born + c->lifetime_ms;
	if (at == INT64_MAX)
		evtimer_del(c->timer);
	else
		ws_timer_in(c, at - now);
}

static void
ws_closing(struct ws_conn *c)
{
	if (c->state == WS_CLOSING)
		return;
	c->state = WS_CLOSING;
	ws_timer_in(c, WS_CLOSE_WAIT_MS);
}

/* Close both sides with code (idle, lifetime): a clean end. */
static int
ws_terminate(struct ws_conn *c, int code, const char *reason)
{
	log_debug("proxy_ws: session %s: %s", c->session_id, reason);
	ws_send_close(c, &c->client, code, reason);
	ws_send_close(c, &c->up, code, reason);
	ws_closing(c);
	return ws_settle(c);
}

/*
 * While closing: end each side that sent and got its close and has
 * written everything, read again a side whose other side is gone, free
 * the connection with both sides.  -1 when it was freed.
 */
static int
ws_settle(struct ws_conn *c)
{
	struct ws_side	*s, *d;
	int		 i;

	if (c->state != WS_CLOSING)
		return 0;
	for (i = 0; i < 2; i++) {
		s = i == 0 ? &c->client : &c->up;
		d = ws_other(c, s);
		if (s->bev == NULL)
			continue;
		if (s->sent_close && s->got_close &&
		    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			ws_side_end(c, s);
		else if (s->held && (d->bev == NULL || d->sent_close))
			ws_unhold(c, s);
	}
	if (c->client.bev == NULL && c->up.bev == NULL) {
		ws_conn_free(c, 0, NULL);
		return -1;
	}
	return 0;
}

static int
ws_parkable(const struct ws_conn *c)
{
	return c->state == WS_RELAY && c->cache_ttl_ms > 0 &&
	    c->session_id[0] != '\0' && c->up.bev != NULL &&
	    !c->up.sent_close && !c->up.got_close &&
	    /* a message half sent to the worker could not be finished */
	    c->client.parser.msg_opcode == 0;
}

static void
ws_park(struct ws_conn *c)
{
	int64_t	 ttl = c->cache_ttl_ms;

	bufferevent_disable(c->up.bev, EV_READ);
	c->up.held = 0;
	/* the rest of a message half sent to the old client is dropped */
	c->skip_cont = c->up.parser.msg_opcode != 0;
	TAILQ_REMOVE(&ws_live, c, entry);
	TAILQ_INSERT_TAIL(&ws_parked, c, entry);
	ws_nparked++;
	c->state = WS_PARKED;
	if (c->lifetime_ms > 0 && c->born + c->lifetime_ms - now_ms() < ttl)
		ttl = c->born + c->lifetime_ms - now_ms();
	ws_timer_in(c, ttl);
	log_debug("proxy_ws: session %s: parked", c->session_id);
}

/*
 * The client left while relaying, without a clean close: park the
 * worker side for the session's next client, or close it.  -1 when the
 * connection is gone or parked (do not touch it).
 */
static int
ws_client_lost(struct ws_conn *c)
{
	ws_side_end(c, &c->client);
	if (ws_parkable(c)) {
		ws_park(c);
		return -1;
	}
	ws_send_close(c, &c->up, WS_CLOSE_GOING_AWAY, "client gone");
	ws_closing(c);
	ws_settle(c);
	return -1;
}

/* The worker side failed while relaying or closing. */
static int
ws_up_lost(struct ws_conn *c, const char *why)
{
	log_debug("proxy_ws: session %s: worker side %s", c->session_id,
	    why);
	ws_side_end(c, &c->up);
	ws_send_close(c, &c->client, ws_answer(&c->client,
	    WS_CLOSE_INTERNAL), "worker connection lost");
	ws_closing(c);
	return ws_settle(c);
}

/* A protocol error from s: close it with the parser's code. */
static int
ws_violation(struct ws_conn *c, struct ws_side *s)
{
	log_debug("proxy_ws: session %s: %s protocol error %d",
	    c->session_id, s == &c->client ? "client" : "worker",
	    s->parser.error);
	ws_send_close(c, s, s->parser.error, NULL);
	if (s == &c->client) {
		if (c->state == WS_RELAY)
			return ws_client_lost(c);
		ws_side_end(c, s);
		ws_send_close(c, &c->up, ws_answer(&c->up,
		    WS_CLOSE_GOING_AWAY), "client gone");
		ws_closing(c);
		return ws_settle(c);
	}
	return ws_up_lost(c, "protocol error");
}

static void
ws_send(struct ws_conn *c, struct ws_side *d, int opcode, int fin,
    struct evbuffer *payload)
{
	unsigned char	 key[4];

	if (d == &c->up)
		ws_mask_key(key);
	if (ws_write_frame(bufferevent_get_output(d->bev), opcode, fin,
	    payload, d == &c->up ? key : NULL) == -1)
		log_warnx("proxy_ws: cannot write a frame");
}

/* A close frame from s. */
static int
ws_got_close(struct ws_conn *c, struct ws_side *s, struct ws_side *d,
    struct ws_frame *f)
{
	s->got_close = 1;
	s->close_code = f->close_code;
	if (c->state == WS_RELAY) {
		if (s == &c->client && f->close_code != WS_CLOSE_NORMAL &&
		    f->close_code != WS_CLOSE_GOING_AWAY) {
			/* not a clean end: answer it, keep the worker */
			log_debug("proxy_ws: session %s: client closed with "
			    "%d", c->session_id, f->close_code);
			ws_send_close(c, s, f->close_code, NULL);
			return ws_client_lost(c);
		}
		ws_closing(c);
	}
	if (d->bev != NULL && !d->sent_close) {
		ws_send(c, d, WS_OP_CLOSE, 1, f->payload);
		d->sent_close = 1;
	}
	return ws_settle(c);
}

/* One frame from s to d.  -1 when the connection changed state. */
static int
ws_frame_in(struct ws_conn *c, struct ws_side *s, struct ws_frame *f)
{
	struct ws_side	*d = ws_other(c, s);

	if (f->opcode == WS_OP_CLOSE)
		return ws_got_close(c, s, d, f);
	if (!ws_is_control(f->opcode)) {
		ws_touch(c);
		if (s == &c->up && c->skip_cont) {
			if (f->fin)
				c->skip_cont = 0;
			return 0;
		}
	}
	/* nothing may follow a close frame */
	if (d->bev == NULL || d->sent_close)
		return 0;
	ws_send(c, d, f->opcode, f->fin, f->payload);
	return 0;
}

/*
 * Relay the whole frames s has, as long as the other side takes them.
 * -1 when the connection changed state (it may be gone).
 */
static int
ws_pump(struct ws_conn *c, struct ws_side *s)
{
	struct ws_side	*d = ws_other(c, s);
	struct evbuffer	*in;
	struct ws_frame	 f;
	int		 rc;

	if (c->state == WS_PARKED || s->bev == NULL)
		return 0;
	in = bufferevent_get_input(s->bev);
	for (;;) {
		if (s->got_close) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return 0;
		}
		if (d->bev != NULL && !d->sent_close &&
		    evbuffer_get_length(bufferevent_get_output(d->bev)) >
		    WS_OUT_HIGH) {
			ws_hold(s);
			return 0;
		}
		if ((rc = ws_parse(&s->parser, in, &f)) == 0)
			return 0;
		if (rc == -1) {
			ws_violation(c, s);
			return -1;
		}
		rc = ws_frame_in(c, s, &f);
		ws_frame_free(&f);
		if (rc == -1)
			return -1;
	}
}

static void
ws_read_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn	*c = arg;

	ws_pump(c, ws_side_of(c, bev));
}

/* Output at the low watermark: read the other side again; or closing. */
static void
ws_write_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn	*c = arg;
	struct ws_side	*s = ws_side_of(c, bev), *d = ws_other(c, s);

	if (d->held && d->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) <= WS_OUT_LOW)
		ws_unhold(c, d);
	ws_settle(c);
}

static void
ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn	*c = arg;
	struct ws_side	*s = ws_side_of(c, bev), *d = ws_other(c, s);
	const char	*why;

	why = (what & BEV_EVENT_TIMEOUT) ? "write timeout" :
	    (what & BEV_EVENT_ERROR) ? "connection error" : "closed";
	/* whole frames read before the end still go (not queued yet
	   when they came with the worker's 101) */
	if ((what & BEV_EVENT_EOF) && ws_pump(c, s) == -1)
		return;
	switch (c->state) {
	case WS_RELAY:
		if (s == &c->client) {
			log_debug("proxy_ws: session %s: client %s",
			    c->session_id, why);
			ws_client_lost(c);
		} else
			ws_up_lost(c, why);
		break;
	case WS_CLOSING:
		ws_side_end(c, s);
		ws_send_close(c, d, ws_answer(d, s == &c->up ?
		    WS_CLOSE_INTERNAL : WS_CLOSE_GOING_AWAY), NULL);
		ws_settle(c);
		break;
	case WS_PARKED:
		log_debug("proxy_ws: session %s: parked worker side %s",
		    c->session_id, why);
		ws_conn_free(c, 0, NULL);
		break;
	default:
		break;
	}
}

static void
ws_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ws_conn	*c = arg;
	int64_t		 now = now_ms();

	switch (c->state) {
	case WS_CONNECTING:
		log_warnx("proxy_ws: worker %s: no handshake in %d ms",
		    c->worker_id, WS_CONNECT_TIMEOUT_MS);
		ws_conn_free(c, 0, NULL);
		break;
	case WS_RELAY:
		if (c->lifetime_ms > 0 && now >= c->born + c->lifetime_ms)
			ws_terminate(c, WS_CLOSE_GOING_AWAY,
			    "session lifetime reached");
		else if (c->idle_ms > 0 && now >= c->last_data + c->idle_ms)
			ws_terminate(c, WS_CLOSE_GOING_AWAY, "idle timeout");
		else
			ws_relay_timer(c);
		break;
	case WS_CLOSING:
		log_debug("proxy_ws: session %s: no close in %d ms",
		    c->session_id, WS_CLOSE_WAIT_MS);
		ws_conn_free(c, WS_CLOSE_GOING_AWAY, NULL);
		break;
	case WS_PARKED:
		log_debug("proxy_ws: session %s: parked connection expired",
		    c->session_id);
		ws_conn_free(c, WS_CLOSE_GOING_AWAY, "session expired");
		break;
	}
}

/* ---- the handshakes -------------------------------------------------- */

/* 0, or the status refusing the client's upgrade. */
static int
ws_check_request(const struct http_request *req,
    char accept[WS_ACCEPT_LEN + 1])
{
	const char	*v;

	if (req->method != HTTP_GET || req->http_major != 1 ||
	    req->http_minor < 1 ||
	    !req_has_token(req, "Upgrade", "websocket", 1) ||
	    !req_has_token(req, "Connection", "upgrade", 1))
		return 400;
	/* a body would be taken for frames */
	if (http_header_get(req, "Transfer-Encoding") != NULL ||
	    ((v = http_header_get(req, "Content-Length")) != NULL &&
	    strcmp(v, "0") != 0))
		return 400;
	v = http_header_get(req, "Sec-WebSocket-Version");
	if (v == NULL || strcmp(v, "13") != 0)
		return 426;
	if (ws_accept_key(http_header_get(req, "Sec-WebSocket-Key"),
	    accept) == -1)
		return 400;
	return 0;
}

static void
ws_refuse(struct http_request *req, int status,
    const struct proxy_ws_target *t)
{
	log_debug("proxy_ws: %s: refused upgrade (%d)", req->remote, status);
	if (status == 426) {
		http_add_header(req, "Sec-WebSocket-Version", "13");
		http_reply_text(req, 426, "upgrade required");
	} else
		http_reply_text(req, status, "bad websocket handshake");
	if (ws_events.released != NULL)
		ws_events.released(t->worker_id, t->session_id);
}

/* The client's 101, with the headers the caller added to req. */
static struct evbuffer *
ws_head_101(const struct http_request *req, const char *protocol)
{
	struct evbuffer	*b;
	char		 accept[WS_ACCEPT_LEN + 1];
	size_t		 i;

	if (ws_accept_key(http_header_get(req, "Sec-WebSocket-Key"),
	    accept) == -1 || (b = evbuffer_new()) == NULL)
		return NULL;
	evbuffer_add_printf(b, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n", accept);
	/* only a protocol the client offered (a resumed worker chose it) */
	if (protocol != NULL && req_has_token(req, "Sec-WebSocket-Protocol",
	    protocol, 0))
		evbuffer_add_printf(b, "Sec-WebSocket-Protocol: %s\r\n",
		    protocol);
	for (i = 0; i < req->resp_headers.n; i++)
		evbuffer_add_printf(b, "%s: %s\r\n",
		    req->resp_headers.v[i].name, req->resp_headers.v[i].value);
	evbuffer_add(b, "\r\n", 2);
	return b;
}

/* Both sides are ready: relay from now on. */
static void
ws_attach(struct ws_conn *c, struct bufferevent *bev, struct evbuffer *head)
{
	struct timeval	 wtv = { WS_WRITE_TIMEOUT_MS / 1000,
			    (WS_WRITE_TIMEOUT_MS % 1000) * 1000 };
	struct ws_side	*s;
	int		 i;

	memset(&c->client, 0, sizeof(c->client));
	c->client.bev = bev;
	ws_parser_init(&c->client.parser, WS_ROLE_SERVER, c->max_message);
	c->released = 0;
	c->state = WS_RELAY;
	c->last_data = now_ms();
	set_nodelay(bev);
	evbuffer_add_buffer(bufferevent_get_output(bev), head);
	evbuffer_free(head);
	for (i = 0; i < 2; i++) {
		s = i == 0 ? &c->client : &c->up;
		s->held = 0;
		bufferevent_setcb(s->bev, ws_read_cb, ws_write_cb,
		    ws_event_cb, c);
		bufferevent_setwatermark(s->bev, EV_READ, 0, 0);
		bufferevent_setwatermark(s->bev, EV_WRITE, WS_OUT_LOW, 0);
		bufferevent_set_timeouts(s->bev, NULL, &wtv);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		/* frames that came with the handshakes, or while parked */
		bufferevent_trigger(s->bev, EV_READ,
		    BEV_TRIG_DEFER_CALLBACKS);
	}
	ws_relay_timer(c);
}

/* A parked worker side for this session: take it, answer 101 now. */
static void
ws_resume(struct ws_conn *c, struct http_request *req,
    const struct proxy_ws_target *t)
{
	struct evbuffer		*head;
	struct bufferevent	*bev;

	evtimer_del(c->timer);
	TAILQ_REMOVE(&ws_parked, c, entry);
	ws_nparked--;
	TAILQ_INSERT_TAIL(&ws_live, c, entry);
	c->state = WS_RELAY;
	c->released = 0;
	ws_conn_limits(c, t);
	if ((head = ws_head_101(req, c->protocol)) == NULL ||
	    (bev = http_takeover(req)) == NULL) {
		/* cannot happen with a request fresh from the router */
		if (head != NULL)
			evbuffer_free(head);
		http_reply_text(req, 500, "internal server error");
		ws_release(c);
		TAILQ_REMOVE(&ws_live, c, entry);
		TAILQ_INSERT_TAIL(&ws_parked, c, entry);
		ws_nparked++;
		c->state = WS_PARKED;
		ws_timer_in(c, c->cache_ttl_ms);
		return;
	}
	log_debug("proxy_ws: session %s: resumed", c->session_id);
	ws_attach(c, bev, head);
}

/* The worker's response head, in one piece. */
struct ws_head {
	const char	*field;
	size_t		 flen;
	int		 upgrade;
	int		 connection;
	int		 extensions;
	const char	*accept;
	size_t		 alen;
	int		 naccept;
	const char	*proto;
	size_t		 plen;
	int		 nproto;
	int		 done;
};

static int
hs_field(http_parser *p, const char *at, size_t len)
{
	struct ws_head	*h = p->data;

	h->field = at;
	h->flen = len;
	return 0;
}

static int
hs_name_is(const struct ws_head *h, const char *name)
{
	return h->flen == strlen(name) &&
	    strncasecmp(h->field, name, h->flen) == 0;
}

static int
hs_value(http_parser *p, const char *at, size_t len)
{
	struct ws_head	*h = p->data;

	while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t'))
		len--;
	if (h->field == NULL)
		return 0;
	if (hs_name_is(h, "Upgrade"))
		h->upgrade |= token_in(at, len, "websocket", 1);
	else if (hs_name_is(h, "Connection"))
		h->connection |= token_in(at, len, "upgrade", 1);
	else if (hs_name_is(h, "Sec-WebSocket-Extensions"))
		h->extensions = 1;
	else if (hs_name_is(h, "Sec-WebSocket-Accept")) {
		h->accept = at;
		h->alen = len;
		h->naccept++;
	} else if (hs_name_is(h, "Sec-WebSocket-Protocol")) {
		h->proto = at;
		h->plen = len;
		h->nproto++;
	}
	h->field = NULL;
	return 0;
}

static int
hs_headers_done(http_parser *p)
{
	struct ws_head	*h = p->data;

	h->done = 1;
	return 1;	/* no body: the head is all we read */
}

static const http_parser_settings hs_settings = {
	.on_header_field = hs_field,
	.on_header_value = hs_value,
	.on_headers_complete = hs_headers_done,
};

/* Check the worker's answer to our upgrade; its head is s[0..len). */
static const char *
hs_check(struct ws_conn *c, const char *s, size_t len)
{
	struct ws_head	 h;
	http_parser	 p;
	char		 proto[256];

	memset(&h, 0, sizeof(h));
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &h;
	http_parser_execute(&p, &hs_settings, s, len);
	if (!h.done || HTTP_PARSER_ERRNO(&p) != HPE_OK)
		return "malformed response";
	if (p.status_code != 101)
		return "no 101";
	if (!h.upgrade || !h.connection)
		return "no upgrade to websocket";
	if (h.naccept != 1 || h.alen != WS_ACCEPT_LEN ||
	    memcmp(h.accept, c->expect, WS_ACCEPT_LEN) != 0)
		return "wrong Sec-WebSocket-Accept";
	if (h.extensions)
		return "an extension we did not offer";
	if (h.nproto > 1 || (h.nproto == 1 && (h.plen == 0 ||
	    h.plen >= sizeof(proto))))
		return "bad Sec-WebSocket-Protocol";
	if (h.nproto == 1) {
		memcpy(proto, h.proto, h.plen);
		proto[h.plen] = '\0';
		if (!req_has_token(c->req, "Sec-WebSocket-Protocol", proto, 0))
			return "a protocol the client did not offer";
		if ((c->protocol = strdup(proto)) == NULL)
			return "out of memory";
	}
	return NULL;
}

static void
hs_fail(struct ws_conn *c, const char *why)
{
	log_warnx("proxy_ws: worker %s: websocket handshake failed: %s",
	    c->worker_id, why);
	ws_conn_free(c, 0, NULL);
}

static void
hs_read_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn		*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev), *head;
	struct evbuffer_ptr	 pos;
	struct http_request	*req = c->req;
	struct bufferevent	*client;
	const char		*why, *s;
	size_t			 hlen;

	pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (pos.pos == -1) {
		if (evbuffer_get_length(in) > WS_HEAD_MAX)
			hs_fail(c, "response head too large");
		return;
	}
	hlen = (size_t)pos.pos + 4;
	if (hlen > WS_HEAD_MAX) {
		hs_fail(c, "response head too large");
		return;
	}
	if ((s = (const char *)evbuffer_pullup(in, hlen)) == NULL) {
		hs_fail(c, "out of memory");
		return;
	}
	if ((why = hs_check(c, s, hlen)) != NULL) {
		hs_fail(c, why);
		return;
	}
	evbuffer_drain(in, hlen);
	evtimer_del(c->timer);
	if ((head = ws_head_101(req, c->protocol)) == NULL) {
		hs_fail(c, "out of memory");
		return;
	}
	c->req = NULL;
	http_set_cancel(req, NULL, NULL);
	if ((client = http_takeover(req)) == NULL) {
		evbuffer_free(head);
		ws_conn_free(c, 0, NULL);
		return;
	}
	log_debug("proxy_ws: session %s: relaying to worker %s",
	    c->session_id, c->worker_id);
	ws_attach(c, client, head);
}

static void
hs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn	*c = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	hs_fail(c, (what & BEV_EVENT_EOF) ? "connection closed" :
	    "cannot connect");
}

/* The client left before the worker answered. */
static void
hs_cancel(struct http_request *req, void *arg)
{
	struct ws_conn	*c = arg;

	log_debug("proxy_ws: %s: client left during the handshake",
	    req->remote);
	c->req = NULL;
	ws_conn_free(c, 0, NULL);
}

/* Our upgrade request to the worker. */
static int
hs_request(struct ws_conn *c, struct evbuffer *out,
    const struct http_request *req, const struct proxy_ws_target *t)
{
	static const char *const pass[] = {
		"Origin", "Cookie", "User-Agent", "Sec-WebSocket-Protocol",
		NULL
	};
	char		 key[WS_KEY_CHARS + 1];
	size_t		 i, j;

	ws_new_key(key);
	if (ws_accept_key(key, c->expect) == -1)
		return -1;
	if (evbuffer_add_printf(out, "GET %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n", t->target, t->port, key) == -1)
		return -1;
	for (i = 0; i < req->headers.n; i++)
		for (j = 0; pass[j] != NULL; j++)
			if (strcasecmp(req->headers.v[i].name, pass[j]) == 0)
				evbuffer_add_printf(out, "%s: %s\r\n",
				    req->headers.v[i].name,
				    req->headers.v[i].value);
	for (i = 0; i < t->add.n; i++) {
		if (!header_ok(t->add.v[i].name, t->add.v[i].value)) {
			log_warnx("proxy_ws: dropping header %s",
			    t->add.v[i].name != NULL ? t->add.v[i].name : "");
			continue;
		}
		evbuffer_add_printf(out, "%s: %s\r\n", t->add.v[i].name,
		    t->add.v[i].value);
	}
	return evbuffer_add(out, "\r\n", 2);
}

/* Open our own WebSocket to the worker; the client waits for it. */
static void
ws_connect(struct http_request *req, const struct proxy_ws_target *t)
{
	struct ws_conn		*c;

	if ((c = ws_conn_new(http_request_base(req), t)) == NULL) {
		log_warnx("proxy_ws: out of memory");
		http_reply_text(req, 502, "bad gateway");
		if (ws_events.released != NULL)
			ws_events.released(t->worker_id, t->session_id);
		return;
	}
	c->req = req;
	http_set_cancel(req, hs_cancel, c);
	if (!target_ok(t->target) || t->port <= 0 || t->port > 65535) {
		hs_fail(c, "bad target");
		return;
	}
	/* a refused connection is reported to hs_event_cb */
	if ((c->up.bev = proxy_dial(http_request_base(req), t->port,
	    BEV_OPT_DEFER_CALLBACKS, hs_read_cb, NULL, hs_event_cb, c)) ==
	    NULL) {
		hs_fail(c, "cannot connect");
		return;
	}
	if (hs_request(c, bufferevent_get_output(c->up.bev), req, t) == -1) {
		hs_fail(c, "out of memory");
		return;
	}
	bufferevent_enable(c->up.bev, EV_READ | EV_WRITE);
	ws_timer_in(c, WS_CONNECT_TIMEOUT_MS);
}

static struct ws_conn *
ws_find_parked(const char *worker_id, const char *session_id)
{
	struct ws_conn	*c;

	if (worker_id == NULL || session_id == NULL || *session_id == '\0')
		return NULL;
	TAILQ_FOREACH(c, &ws_parked, entry)
		if (strcmp(c->session_id, session_id) == 0 &&
		    strcmp(c->worker_id, worker_id) == 0)
			return c;
	return NULL;
}

void
proxy_ws_upgrade(struct http_request *req, const struct proxy_ws_target *t)
{
	struct ws_conn	*c;
	char		 accept[WS_ACCEPT_LEN + 1];
	int		 status;

	if ((status = ws_check_request(req, accept)) != 0) {
		ws_refuse(req, status, t);
		return;
	}
	if ((c = ws_find_parked(t->worker_id, t->session_id)) != NULL) {
		ws_resume(c, req, t);
		return;
	}
	ws_connect(req, t);
}

/* ---- the worker stops, byproxy stops ------------------------------- */

static void
ws_close_list(struct ws_connq *q, const char *worker_id, const char *reason)
{
	struct ws_conn	*c, *next;

	for (c = TAILQ_FIRST(q); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (worker_id == NULL || strcmp(c->worker_id, worker_id) == 0)
			ws_conn_free(c, WS_CLOSE_GOING_AWAY, reason);
	}
}

void
proxy_ws_close_worker(const char *worker_id)
{
	ws_close_list(&ws_live, worker_id, "worker stopped");
	ws_close_list(&ws_parked, worker_id, "worker stopped");
}

void
proxy_ws_shutdown(void)
{
	ws_close_list(&ws_live, NULL, "server shutting down");
	ws_close_list(&ws_parked, NULL, "server shutting down");
}
