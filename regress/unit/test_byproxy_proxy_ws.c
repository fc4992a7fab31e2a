/*
 * byproxy WebSocket relay (proxy_ws.c), driven in-process: an HTTP
 * server whose route hands upgrades to proxy_ws_upgrade, a scripted
 * WebSocket "worker" listening on 127.0.0.1 (kernel-chosen port), and
 * clients on socketpairs adopted by the server, all on one event loop.
 * The worker parses with WS_ROLE_SERVER and the clients with
 * WS_ROLE_CLIENT, so a frame masked the wrong way fails the test.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
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
#include <event2/listener.h>
#include <http_parser.h>
#include <jansson.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"
#include "ws_frame.h"

#define MAXUP		512
#define HEADMAX		4096

/* ---- the loop --------------------------------------------------------- */

static struct event_base	*base;	/* the proxy's */
static struct event_base	*tbase;	/* the test's side: base, or a child's */
static struct http_router	*router;
static struct http_server	*srv;
static int			 timed_out;
static int			 fds_at_start;

static void
deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	timed_out = 1;
}

static struct event *
deadline(int ms)
{
	struct event	*dl;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	timed_out = 0;
	dl = evtimer_new(tbase, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	return dl;
}

#define RUN_UNTIL(cond, ms) do {					\
	struct event *dl_ = deadline(ms);				\
	while (!(cond) && !timed_out)					\
		event_base_loop(tbase, EVLOOP_ONCE);			\
	event_free(dl_);						\
} while (0)
#define RUN_FOR(ms)	RUN_UNTIL(0, ms)

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
	return n - 1;	/* the DIR's own */
}

static void
base64(const unsigned char *s, size_t len, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		 i;
	unsigned int	 v;

	for (i = 0; i + 3 <= len; i += 3) {
		v = s[i] << 16 | s[i + 1] << 8 | s[i + 2];
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = tab[(v >> 6) & 63];
		*out++ = tab[v & 63];
	}
	if (len - i == 1) {
		v = s[i] << 16;
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	}
	*out = '\0';
}

static void
new_key(char key[25])
{
	unsigned char	 b[16];

	arc4random_buf(b, sizeof(b));
	base64(b, sizeof(b), key);
}

/* The value of a header in a raw head, or NULL; into buf. */
static const char *
head_get(const char *head, const char *name, char *buf, size_t len)
{
	const char	*p = head, *e;
	size_t		 n = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			e = strstr(p, "\r\n");
			snprintf(buf, len, "%.*s", (int)(e - p), p);
			return buf;
		}
	}
	return NULL;
}

static int
head_count(const char *head, const char *name)
{
	const char	*p = head;
	size_t		 n = strlen(name);
	int		 c = 0;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			c++;
	}
	return c;
}

static uint32_t
hash_bytes(uint32_t h, const unsigned char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint32_t
hashbuf(struct evbuffer *b)
{
	return hash_bytes(2166136261u, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
}

/* ---- the worker: a scripted WebSocket server ------------------------- */

#define UP_SILENT	0x01	/* never answers the upgrade */
#define UP_403		0x02	/* answers 403 */
#define UP_BADACCEPT	0x04	/* 101 with a wrong Sec-WebSocket-Accept */
#define UP_NOECHO	0x08	/* records, echoes nothing */
#define UP_NOCLOSE	0x10	/* does not answer a close */
#define UP_HANGUP	0x20	/* closes without an answer */
#define UP_GREET	0x40	/* a message right behind the 101 */

struct uconn {
	struct bufferevent *bev;
	int		 ws;
	char		 head[HEADMAX];
	struct ws_parser p;
	struct evbuffer	*msg;		/* message in progress */
	struct evbuffer	*last;		/* last complete message */
	int		 last_op;
	int		 nmsg;
	int		 nframes;
	int		 nping;
	int		 npong;
	int		 close_code;	/* received; 0 none */
	char		 close_reason[128];
	int		 eof;
	int		 perr;
	int		 bye;		/* free after flushing */
	char		 texts[4096];	/* small text messages, "|" after each */
};

static struct evconnlistener	*up_lev;
static int			 up_port;
static int			 up_mode;
static struct uconn		*ups[MAXUP];
static int			 nups;

/* The worker's end of the connection closes. */
static void
up_free_bev(struct uconn *u)
{
	if (u->bev != NULL)
		bufferevent_free(u->bev);
	u->bev = NULL;
	u->eof = 1;
}

static void
up_send(struct uconn *u, int op, int fin, const void *d, size_t n)
{
	struct evbuffer	*b = evbuffer_new();

	ck_assert_ptr_nonnull(u->bev);
	evbuffer_add(b, d, n);
	ck_assert_int_eq(ws_write_frame(bufferevent_get_output(u->bev), op,
	    fin, b, NULL), 0);
	evbuffer_free(b);
}

static void
up_send_close(struct uconn *u, int code, const char *reason)
{
	ck_assert_int_eq(ws_write_close(bufferevent_get_output(u->bev), code,
	    reason, NULL), 0);
}

static void
up_handshake(struct uconn *u, struct evbuffer *in)
{
	struct evbuffer_ptr	 pos;
	struct evbuffer		*out = bufferevent_get_output(u->bev);
	char			 key[128], acc[WS_ACCEPT_LEN + 1], proto[128];
	size_t			 n;

	pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (pos.pos == -1)
		return;
	n = pos.pos + 4;
	ck_assert_uint_lt(n, sizeof(u->head));
	evbuffer_remove(in, u->head, n);
	u->head[n] = '\0';
	if (up_mode & UP_SILENT)
		return;
	if (up_mode & UP_403) {
		evbuffer_add_printf(out, "HTTP/1.1 403 Forbidden\r\n"
		    "Content-Length: 2\r\n\r\nno");
		return;
	}
	ck_assert_ptr_nonnull(head_get(u->head, "Sec-WebSocket-Key", key,
	    sizeof(key)));
	ck_assert_int_eq(ws_accept_key(key, acc), 0);
	if (up_mode & UP_BADACCEPT)
		acc[3] ^= 1;
	evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n", acc);
	if (head_get(u->head, "Sec-WebSocket-Protocol", proto,
	    sizeof(proto)) != NULL && strstr(proto, "chat") != NULL)
		evbuffer_add_printf(out, "Sec-WebSocket-Protocol: chat\r\n");
	evbuffer_add_printf(out, "\r\n");
	u->ws = 1;
	if (up_mode & UP_GREET)
		up_send(u, WS_OP_TEXT, 1, "welcome", 7);
}

static void
up_frame(struct uconn *u, struct ws_frame *f)
{
	struct evbuffer	*out = bufferevent_get_output(u->bev);
	size_t		 len = evbuffer_get_length(f->payload);
	unsigned char	 b[2];

	u->nframes++;
	switch (f->opcode) {
	case WS_OP_PING:
		u->nping++;
		if (!(up_mode & UP_NOECHO))
			ws_write_frame(out, WS_OP_PONG, 1, f->payload, NULL);
		return;
	case WS_OP_PONG:
		u->npong++;
		return;
	case WS_OP_CLOSE:
		u->close_code = f->close_code;
		if (len > 2) {
			evbuffer_copyout(f->payload, b, 2);
			evbuffer_drain(f->payload, 2);
			evbuffer_remove(f->payload, u->close_reason,
			    sizeof(u->close_reason) - 1);
		}
		if (up_mode & UP_HANGUP) {
			up_free_bev(u);
			return;
		}
		if (!(up_mode & UP_NOCLOSE)) {
			ws_write_close(out, f->close_code ==
			    WS_CLOSE_NO_STATUS ? 0 : f->close_code, NULL, NULL);
			u->bye = 1;
		}
		return;
	}
	evbuffer_add(u->msg, evbuffer_pullup(f->payload, -1), len);
	if (!(up_mode & UP_NOECHO))
		ws_write_frame(out, f->opcode, f->fin, f->payload, NULL);
	if (!f->fin)
		return;
	u->nmsg++;
	u->last_op = f->msg_opcode;
	evbuffer_drain(u->last, evbuffer_get_length(u->last));
	evbuffer_add_buffer(u->last, u->msg);
	if (u->last_op == WS_OP_TEXT && evbuffer_get_length(u->last) < 256 &&
	    strlen(u->texts) + 260 < sizeof(u->texts)) {
		strncat(u->texts, (char *)evbuffer_pullup(u->last, -1),
		    evbuffer_get_length(u->last));
		strcat(u->texts, "|");
	}
}

static void
up_read(struct bufferevent *bev, void *arg)
{
	struct uconn	*u = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct ws_frame	 f;
	int		 rc;

	if (!u->ws) {
		up_handshake(u, in);
		if (!u->ws)
			return;
	}
	while (u->bev != NULL && (rc = ws_parse(&u->p, in, &f)) == 1) {
		up_frame(u, &f);
		ws_frame_free(&f);
	}
	if (u->p.error)
		u->perr = u->p.error;
	if (u->bye && u->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		up_free_bev(u);
}

static void
up_write(struct bufferevent *bev, void *arg)
{
	struct uconn	*u = arg;

	if (u->bye)
		up_free_bev(u);
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
	struct uconn	*u = arg;

	u->eof = 1;
	up_free_bev(u);
}

static void
up_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct uconn	*u;

	ck_assert_int_lt(nups, MAXUP);
	u = calloc(1, sizeof(*u));
	u->bev = bufferevent_socket_new(tbase, fd, BEV_OPT_CLOSE_ON_FREE);
	u->msg = evbuffer_new();
	u->last = evbuffer_new();
	ws_parser_init(&u->p, WS_ROLE_SERVER, 0);
	bufferevent_setcb(u->bev, up_read, up_write, up_event, u);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	ups[nups++] = u;
}

static void
up_listen(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	up_lev = evconnlistener_new_bind(tbase, up_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(up_lev);
	getsockname(evconnlistener_get_fd(up_lev), (struct sockaddr *)&sin,
	    &len);
	up_port = ntohs(sin.sin_port);
}

static void
up_free_all(void)
{
	int	 i;

	for (i = 0; i < nups; i++) {
		up_free_bev(ups[i]);
		evbuffer_free(ups[i]->msg);
		evbuffer_free(ups[i]->last);
		free(ups[i]);
	}
	nups = 0;
	if (up_lev != NULL)
		evconnlistener_free(up_lev);
	up_lev = NULL;
}

/* A port nothing listens on. */
static int
dead_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* ---- clients ----------------------------------------------------------- */

struct wc {
	int		 fd;
	struct event	*ev;
	struct evbuffer	*raw;
	int		 eof;
	int		 paused;
	int		 status;	/* of the answer's head; 0 before */
	char		 key[25];
	char		 head[HEADMAX];
	struct ws_parser p;
	int		 perr;
	uint64_t	 got;		/* payload bytes of frames taken */
};

static void
wc_read(evutil_socket_t fd, short ev, void *arg)
{
	struct wc	*w = arg;
	char		 buf[65536];
	ssize_t		 n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			evbuffer_add(w->raw, buf, n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			w->eof = 1;
			event_del(w->ev);
		}
		return;
	}
}

static struct wc *
wc_new(void)
{
	struct wc	*w = calloc(1, sizeof(*w));
	int		 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(http_server_adopt(srv, sv[0], HTTP_LISTEN_MAIN,
	    NULL, 0), 0);
	w->fd = sv[1];
	fcntl(w->fd, F_SETFL, O_NONBLOCK);
	w->raw = evbuffer_new();
	w->ev = event_new(tbase, w->fd, EV_READ | EV_PERSIST, wc_read, w);
	event_add(w->ev, NULL);
	ws_parser_init(&w->p, WS_ROLE_CLIENT, 0);
	new_key(w->key);
	return w;
}

static void
wc_free(struct wc *w)
{
	event_free(w->ev);
	evbuffer_free(w->raw);
	if (w->fd != -1)
		close(w->fd);
	free(w);
}

/* Drop the connection without a close frame. */
static void
wc_drop(struct wc *w)
{
	event_del(w->ev);
	close(w->fd);
	w->fd = -1;
}

static void
wc_pause(struct wc *w, int on)
{
	w->paused = on;
	if (on)
		event_del(w->ev);
	else {
		event_add(w->ev, NULL);
		event_active(w->ev, EV_READ, 0);
	}
}

static void
wc_write(struct wc *w, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;
	int		 spins = 0;

	while (len > 0) {
		n = write(w->fd, p, len);
		if (n > 0) {
			p += n;
			len -= n;
			continue;
		}
		if (n == -1 && errno == EAGAIN && spins++ < 1000000) {
			event_base_loop(tbase, EVLOOP_ONCE | EVLOOP_NONBLOCK);
			continue;
		}
		return;
	}
}

static void
wc_writes(struct wc *w, const char *s)
{
	wc_write(w, s, strlen(s));
}

/* The upgrade request, with extra header lines. */
static void
wc_upgrade(struct wc *w, const char *extra)
{
	char	 buf[2048];

	snprintf(buf, sizeof(buf), "GET /app/x/ws?x=1 HTTP/1.1\r\n"
	    "Host: proxy.example:8080\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n%s\r\n", w->key,
	    extra != NULL ? extra : "");
	wc_writes(w, buf);
}

static int
wc_has_head(struct wc *w)
{
	return evbuffer_search(w->raw, "\r\n\r\n", 4, NULL).pos != -1 ||
	    w->eof;
}

/* Wait for the answer's head; its status. */
static int
wc_head(struct wc *w, int ms)
{
	struct evbuffer_ptr	 pos;
	size_t			 n;

	RUN_UNTIL(wc_has_head(w), ms);
	pos = evbuffer_search(w->raw, "\r\n\r\n", 4, NULL);
	if (pos.pos == -1)
		return 0;
	n = pos.pos + 4;
	ck_assert_uint_lt(n, sizeof(w->head));
	evbuffer_remove(w->raw, w->head, n);
	w->head[n] = '\0';
	ck_assert_int_eq(sscanf(w->head, "HTTP/1.1 %d", &w->status), 1);
	return w->status;
}

/* Open a WebSocket through the proxy: 101 expected. */
static struct wc *
wc_open(const char *extra)
{
	struct wc	*w = wc_new();
	char		 acc[WS_ACCEPT_LEN + 1], got[128];

	wc_upgrade(w, extra);
	ck_assert_int_eq(wc_head(w, 3000), 101);
	ck_assert_int_eq(ws_accept_key(w->key, acc), 0);
	ck_assert_ptr_nonnull(head_get(w->head, "Sec-WebSocket-Accept", got,
	    sizeof(got)));
	ck_assert_str_eq(got, acc);
	return w;
}

static void
wc_send(struct wc *w, int op, int fin, const void *d, size_t n)
{
	struct evbuffer	*p = evbuffer_new(), *out = evbuffer_new();
	unsigned char	 key[4];

	evbuffer_add(p, d, n);
	ws_mask_key(key);
	ck_assert_int_eq(ws_write_frame(out, op, fin, p, key), 0);
	wc_write(w, evbuffer_pullup(out, -1), evbuffer_get_length(out));
	evbuffer_free(p);
	evbuffer_free(out);
}

static void
wc_text(struct wc *w, const char *s)
{
	wc_send(w, WS_OP_TEXT, 1, s, strlen(s));
}

static void
wc_close(struct wc *w, int code, const char *reason)
{
	struct evbuffer	*out = evbuffer_new();
	unsigned char	 key[4];

	ws_mask_key(key);
	ck_assert_int_eq(ws_write_close(out, code, reason, key), 0);
	wc_write(w, evbuffer_pullup(out, -1), evbuffer_get_length(out));
	evbuffer_free(out);
}

static int	 wc_rc;

static int
wc_try(struct wc *w, struct ws_frame *f)
{
	wc_rc = ws_parse(&w->p, w->raw, f);
	if (wc_rc == -1)
		w->perr = w->p.error;
	return wc_rc != 0 || w->eof;
}

/* The next frame: 1, or 0 (timeout or EOF), -1 (protocol error). */
static int
wc_recv(struct wc *w, struct ws_frame *f, int ms)
{
	RUN_UNTIL(wc_try(w, f), ms);
	if (wc_rc == 1)
		w->got += evbuffer_get_length(f->payload);
	return wc_rc;
}

/* The next frame must be a text frame saying s. */
static void
wc_expect_text(struct wc *w, const char *s)
{
	struct ws_frame	 f;
	size_t		 len;

	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.fin, 1);
	len = evbuffer_get_length(f.payload);
	ck_assert_uint_eq(len, strlen(s));
	ck_assert_int_eq(memcmp(evbuffer_pullup(f.payload, -1), s, len), 0);
	ws_frame_free(&f);
}

/* The next frame must be a close with this code. */
static void
wc_expect_close(struct wc *w, int code)
{
	struct ws_frame	 f;

	ck_assert_int_eq(wc_recv(w, &f, 4000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CLOSE);
	ck_assert_int_eq(f.close_code, code);
	ws_frame_free(&f);
}

/* ---- the proxy's side: route, events ----------------------------------- */

static struct proxy_ws_target	 tgt;
static const char		*ext_url;
static int			 nreleased;
static int			 nactivity;
static char			 last_released[128];

static void
ev_released(const char *worker_id, const char *session_id)
{
	nreleased++;
	snprintf(last_released, sizeof(last_released), "%s/%s", worker_id,
	    session_id);
}

static void
ev_activity(const char *session_id)
{
	nactivity++;
}

static const struct proxy_ws_events test_events = {
	.released = ev_released,
	.activity = ev_activity,
};

static void
h_app(struct http_request *req, void *arg)
{
	if (!proxy_ws_origin_ok(req, ext_url)) {
		http_reply_text(req, 403, "forbidden");
		return;
	}
	proxy_ws_upgrade(req, &tgt);
}

static const struct http_route test_routes[] = {
	{ "GET", "/app/x/*", HTTP_LISTEN_MAIN, 0, HTTP_ROUTE_STREAM_BODY,
	    h_app, NULL },
};

static struct http_header	 add_hdrs[] = {
	{ "X-Shiny-Access", "viewer" },
	{ "X-Forwarded-Proto", "https" },
};

static void
target_reset(void)
{
	memset(&tgt, 0, sizeof(tgt));
	tgt.worker_id = "w1";
	tgt.session_id = "s1";
	tgt.port = up_port;
	tgt.target = "/ws/path?x=1";
	tgt.add.v = add_hdrs;
	tgt.add.n = tgt.add.cap = 2;
	tgt.max_message = 0;
	ext_url = "https://Apps.Example.com/";
}

static void
setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	fds_at_start = count_fds();
	if (getenv("WS_DEBUG") != NULL) {
		log_init("test", 0);
		log_setlevel(LOG_LVL_DEBUG);
	} else {
		log_init("test", 1);
		log_setlevel(LOG_LVL_ERROR);
	}
	base = tbase = event_base_new();
	router = http_router_new();
	ck_assert_int_eq(http_router_add_table(router, test_routes,
	    sizeof(test_routes) / sizeof(test_routes[0])), 0);
	srv = http_server_new(base, router);
	up_mode = 0;
	up_listen();
	target_reset();
	nreleased = nactivity = 0;
	proxy_ws_init(&test_events);
}

static void
teardown(void)
{
	proxy_ws_shutdown();
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	http_server_free(srv);
	up_free_all();
	http_router_free(router);
	event_base_free(base);
	/* every socket, timer fd and pipe of the test is gone */
	ck_assert_int_eq(count_fds(), fds_at_start);
}

static struct uconn *
up_wait(int i)
{
	RUN_UNTIL(nups > i && ups[i]->ws, 2000);
	ck_assert_int_gt(nups, i);
	return ups[i];
}

/* ---- handshakes -------------------------------------------------------- */

START_TEST(t_handshake)
{
	struct wc	*w;
	struct uconn	*u;
	char		 v[256], line[256];

	w = wc_open("Origin: https://apps.example.com\r\n"
	    "Cookie: blockyard_route=s1\r\nUser-Agent: test/1.0\r\n"
	    "Sec-WebSocket-Protocol: chat, superchat\r\n"
	    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	    "X-Shiny-User: mallory\r\n");
	ck_assert_ptr_nonnull(head_get(w->head, "Upgrade", v, sizeof(v)));
	ck_assert_str_eq(v, "websocket");
	ck_assert_ptr_nonnull(head_get(w->head, "Connection", v, sizeof(v)));
	ck_assert_str_eq(v, "Upgrade");
	ck_assert_ptr_nonnull(head_get(w->head, "Sec-WebSocket-Protocol", v,
	    sizeof(v)));
	ck_assert_str_eq(v, "chat");
	ck_assert_ptr_null(head_get(w->head, "Sec-WebSocket-Extensions", v,
	    sizeof(v)));

	/* what the worker saw: our own handshake with some of the client's */
	u = up_wait(0);
	snprintf(line, sizeof(line), "GET /ws/path?x=1 HTTP/1.1\r\n");
	ck_assert_int_eq(strncmp(u->head, line, strlen(line)), 0);
	snprintf(line, sizeof(line), "127.0.0.1:%d", up_port);
	ck_assert_str_eq(head_get(u->head, "Host", v, sizeof(v)), line);
	ck_assert_str_eq(head_get(u->head, "Upgrade", v, sizeof(v)),
	    "websocket");
	ck_assert_str_eq(head_get(u->head, "Connection", v, sizeof(v)),
	    "Upgrade");
	ck_assert_str_eq(head_get(u->head, "Sec-WebSocket-Version", v,
	    sizeof(v)), "13");
	ck_assert_ptr_nonnull(head_get(u->head, "Sec-WebSocket-Key", v,
	    sizeof(v)));
	ck_assert_str_ne(v, w->key);
	ck_assert_str_eq(head_get(u->head, "Origin", v, sizeof(v)),
	    "https://apps.example.com");
	ck_assert_str_eq(head_get(u->head, "Cookie", v, sizeof(v)),
	    "blockyard_route=s1");
	ck_assert_str_eq(head_get(u->head, "User-Agent", v, sizeof(v)),
	    "test/1.0");
	ck_assert_str_eq(head_get(u->head, "Sec-WebSocket-Protocol", v,
	    sizeof(v)), "chat, superchat");
	ck_assert_str_eq(head_get(u->head, "X-Shiny-Access", v, sizeof(v)),
	    "viewer");
	ck_assert_str_eq(head_get(u->head, "X-Forwarded-Proto", v, sizeof(v)),
	    "https");
	ck_assert_int_eq(head_count(u->head, "Sec-WebSocket-Extensions"), 0);
	ck_assert_int_eq(head_count(u->head, "X-Shiny-User"), 0);
	ck_assert_int_eq(head_count(u->head, "Host"), 1);

	ck_assert_uint_eq(proxy_ws_count(), 1);
	ck_assert_int_eq(nreleased, 0);
	wc_text(w, "hello");
	wc_expect_text(w, "hello");
	ck_assert_str_eq(u->texts, "hello|");
	ck_assert_int_eq(http_server_nconns(srv), 0);
	wc_free(w);
}
END_TEST

/* Without a protocol offered, none is chosen; caller headers reach 101. */
static void
h_cookie(struct http_request *req, void *arg)
{
	http_add_header(req, "Set-Cookie", "blockyard_route=s1; Path=/");
	proxy_ws_upgrade(req, &tgt);
}

START_TEST(t_handshake_plain)
{
	static const struct http_route r = { "GET", "/cookie/*",
	    HTTP_LISTEN_MAIN, 0, 0, h_cookie, NULL };
	struct wc	*w = wc_new();
	char		 v[256], buf[512];

	ck_assert_int_eq(http_router_add(router, &r), 0);
	snprintf(buf, sizeof(buf), "GET /cookie/ HTTP/1.1\r\nHost: x\r\n"
	    "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    w->key);
	wc_writes(w, buf);
	ck_assert_int_eq(wc_head(w, 3000), 101);
	ck_assert_ptr_null(head_get(w->head, "Sec-WebSocket-Protocol", v,
	    sizeof(v)));
	ck_assert_str_eq(head_get(w->head, "Set-Cookie", v, sizeof(v)),
	    "blockyard_route=s1; Path=/");
	ck_assert_int_eq(head_count(up_wait(0)->head,
	    "Sec-WebSocket-Protocol"), 0);
	wc_text(w, "x");
	wc_expect_text(w, "x");
	wc_free(w);
}
END_TEST

static void
bad_handshake(const char *req, int status)
{
	struct wc	*w = wc_new();
	char		 v[64];
	int		 before = nreleased;

	wc_writes(w, req);
	ck_assert_int_eq(wc_head(w, 2000), status);
	if (status == 426)
		ck_assert_str_eq(head_get(w->head, "Sec-WebSocket-Version", v,
		    sizeof(v)), "13");
	ck_assert_str_eq(head_get(w->head, "Content-Type", v, sizeof(v)),
	    "text/plain; charset=utf-8");
	ck_assert_int_eq(nreleased, before + 1);
	wc_free(w);
}

/* An upgrade request to the route with these header lines. */
static const char *
hs_req(const char *version, const char *extra)
{
	static char	 buf[512];

	snprintf(buf, sizeof(buf), "GET /app/x/ HTTP/%s\r\nHost: x\r\n%s\r\n",
	    version, extra);
	return buf;
}

#define KEY	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define UPG	"Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define V13	"Sec-WebSocket-Version: 13\r\n"

START_TEST(t_bad_handshake)
{
	/* the good one, for reference */
	wc_free(wc_open(NULL));
	RUN_UNTIL(nreleased == 1, 1000);
	ck_assert_int_eq(nups, 1);
	/* no key, or one that is not 16 bytes of base64 */
	bad_handshake(hs_req("1.1", UPG V13), 400);
	bad_handshake(hs_req("1.1", UPG V13 "Sec-WebSocket-Key: abc\r\n"),
	    400);
	bad_handshake(hs_req("1.1", UPG V13
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n"), 400);
	/* no Connection: upgrade, no Upgrade: websocket */
	bad_handshake(hs_req("1.1", "Upgrade: websocket\r\n" V13 KEY), 400);
	bad_handshake(hs_req("1.1", "Upgrade: websocket\r\n"
	    "Connection: keep-alive\r\n" V13 KEY), 400);
	bad_handshake(hs_req("1.1", "Upgrade: h2c\r\nConnection: Upgrade\r\n"
	    V13 KEY), 400);
	/* HTTP/1.0 */
	bad_handshake(hs_req("1.0", UPG V13 KEY), 400);
	/* an old version, and none */
	bad_handshake(hs_req("1.1", UPG "Sec-WebSocket-Version: 8\r\n" KEY),
	    426);
	bad_handshake(hs_req("1.1", UPG KEY), 426);
	/* a body would be read as frames */
	bad_handshake(hs_req("1.1", UPG V13 KEY "Content-Length: 2\r\n"),
	    400);
	/* the worker never heard of any of them */
	RUN_FOR(20);
	ck_assert_int_eq(nups, 1);
	ck_assert_uint_eq(proxy_ws_count(), 0);
}
END_TEST

/* The worker does not take the upgrade: 502 "bad gateway". */
static void
expect_502(void)
{
	struct wc	*w = wc_new();
	struct evbuffer_ptr p;

	wc_upgrade(w, NULL);
	ck_assert_int_eq(wc_head(w, 3000), 502);
	RUN_UNTIL(evbuffer_get_length(w->raw) >= 11, 1000);
	p = evbuffer_search(w->raw, "bad gateway", 11, NULL);
	ck_assert_int_ge(p.pos, 0);
	RUN_UNTIL(nreleased == 1, 1000);
	ck_assert_int_eq(nreleased, 1);
	ck_assert_str_eq(last_released, "w1/s1");
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	wc_free(w);
}

START_TEST(t_upstream_refused)
{
	tgt.port = dead_port();
	expect_502();
}
END_TEST

START_TEST(t_upstream_403)
{
	up_mode = UP_403;
	expect_502();
	ck_assert_int_eq(nups, 1);
}
END_TEST

START_TEST(t_upstream_bad_accept)
{
	up_mode = UP_BADACCEPT;
	expect_502();
	/* the worker connection was closed */
	RUN_UNTIL(ups[0]->eof, 1000);
	ck_assert_int_eq(ups[0]->eof, 1);
}
END_TEST

START_TEST(t_upstream_hangup)
{
	up_mode = UP_SILENT;
	/* the worker accepts and closes before answering */
	tgt.port = up_port;
	{
		struct wc	*w = wc_new();

		wc_upgrade(w, NULL);
		RUN_UNTIL(nups == 1 && ups[0]->head[0] != '\0', 2000);
		up_free_bev(ups[0]);
		ck_assert_int_eq(wc_head(w, 3000), 502);
		RUN_UNTIL(nreleased == 1, 1000);
		ck_assert_int_eq(nreleased, 1);
		wc_free(w);
	}
}
END_TEST

/*
 * Frames that came in the same segment as a handshake wait in the
 * input; nothing else would make the relay look at them.
 */
START_TEST(t_frames_with_handshakes)
{
	struct wc	*w;
	struct uconn	*u;
	struct evbuffer	*b = evbuffer_new(), *p = evbuffer_new();
	unsigned char	 key[4];

	up_mode = UP_GREET;
	w = wc_new();
	evbuffer_add_printf(b, "GET /app/x/ws HTTP/1.1\r\nHost: x\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    w->key);
	evbuffer_add(p, "early", 5);
	ws_mask_key(key);
	ws_write_frame(b, WS_OP_TEXT, 1, p, key);
	wc_write(w, evbuffer_pullup(b, -1), evbuffer_get_length(b));
	ck_assert_int_eq(wc_head(w, 3000), 101);
	u = up_wait(0);
	wc_expect_text(w, "welcome");
	RUN_UNTIL(u->nmsg == 1, 1000);
	ck_assert_str_eq(u->texts, "early|");
	wc_expect_text(w, "early");
	evbuffer_free(b);
	evbuffer_free(p);
	wc_free(w);
}
END_TEST

/* The client leaves while the worker has not answered yet. */
START_TEST(t_cancel_during_handshake)
{
	struct wc	*w = wc_new();

	up_mode = UP_SILENT;
	wc_upgrade(w, NULL);
	RUN_UNTIL(nups == 1 && ups[0]->head[0] != '\0', 2000);
	ck_assert_int_eq(nreleased, 0);
	wc_drop(w);
	RUN_UNTIL(nreleased == 1 && ups[0]->eof, 2000);
	ck_assert_int_eq(nreleased, 1);
	ck_assert_int_eq(ups[0]->eof, 1);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	wc_free(w);
}
END_TEST

/* ---- relaying ------------------------------------------------------------ */

START_TEST(t_relay_messages)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	struct ws_frame	 f;
	unsigned char	 bin[300];
	size_t		 i;

	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	/* text and binary, client to worker and back (the echo) */
	wc_text(w, "one");
	wc_expect_text(w, "one");
	wc_send(w, WS_OP_BINARY, 1, bin, sizeof(bin));
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_BINARY);
	ck_assert_uint_eq(evbuffer_get_length(f.payload), sizeof(bin));
	ck_assert_int_eq(memcmp(evbuffer_pullup(f.payload, -1), bin,
	    sizeof(bin)), 0);
	ws_frame_free(&f);
	ck_assert_int_eq(u->nmsg, 2);
	ck_assert_int_eq(u->last_op, WS_OP_BINARY);

	/* fragmented, with a ping between the fragments */
	wc_send(w, WS_OP_TEXT, 0, "fr", 2);
	wc_send(w, WS_OP_PING, 1, "p1", 2);
	wc_send(w, WS_OP_CONT, 0, "ag", 2);
	wc_send(w, WS_OP_CONT, 1, "ment", 4);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	ck_assert_int_eq(f.fin, 0);
	ws_frame_free(&f);
	/* the worker's pong comes back between the fragments too */
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_PONG);
	ck_assert_uint_eq(evbuffer_get_length(f.payload), 2);
	ws_frame_free(&f);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CONT);
	ck_assert_int_eq(f.fin, 0);
	ws_frame_free(&f);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CONT);
	ck_assert_int_eq(f.fin, 1);
	ck_assert_int_eq(f.msg_opcode, WS_OP_TEXT);
	ws_frame_free(&f);
	ck_assert_int_eq(u->nping, 1);
	ck_assert_int_eq(u->nmsg, 3);
	ck_assert_str_eq(u->texts, "one|fragment|");
	/* the frames kept their boundaries on the way to the worker */
	ck_assert_int_eq(u->nframes, 2 + 4);

	/* the worker speaks first: a message, a fragmented one, a ping */
	up_send(u, WS_OP_BINARY, 1, "\x00\x01\x02", 3);
	up_send(u, WS_OP_TEXT, 0, "ab", 2);
	up_send(u, WS_OP_CONT, 1, "cd", 2);
	up_send(u, WS_OP_PING, 1, "hb", 2);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_BINARY);
	ck_assert_uint_eq(evbuffer_get_length(f.payload), 3);
	ws_frame_free(&f);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_TEXT);
	ws_frame_free(&f);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CONT);
	ws_frame_free(&f);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_PING);
	ws_frame_free(&f);
	wc_send(w, WS_OP_PONG, 1, "hb", 2);
	RUN_UNTIL(u->npong == 1, 2000);
	ck_assert_int_eq(u->npong, 1);

	/* masked one way, unmasked the other: both parsers agreed */
	ck_assert_int_eq(u->perr, 0);
	ck_assert_int_eq(w->perr, 0);
	/* data messages were noted, once a second at most */
	ck_assert_int_ge(nactivity, 1);
	ck_assert_int_le(nactivity, 2);
	wc_free(w);
}
END_TEST

/* The proxy masks towards the worker, and never towards the client. */
START_TEST(t_masking)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	unsigned char	 h[2];

	up_mode = UP_NOECHO;
	/* read the worker's raw bytes ourselves */
	bufferevent_disable(u->bev, EV_READ);
	wc_text(w, "masked?");
	RUN_FOR(50);
	ck_assert_int_eq(recv(bufferevent_getfd(u->bev), h, 2, MSG_PEEK), 2);
	ck_assert_int_eq(h[0], 0x81);
	ck_assert_int_eq(h[1], 0x80 | 7);
	bufferevent_enable(u->bev, EV_READ);
	RUN_UNTIL(u->nmsg == 1, 1000);
	ck_assert_str_eq(u->texts, "masked?|");

	/* and the client sees a plain frame */
	wc_pause(w, 1);
	up_send(u, WS_OP_TEXT, 1, "plain", 5);
	RUN_FOR(50);
	ck_assert_int_eq(recv(w->fd, h, 2, MSG_PEEK), 2);
	ck_assert_int_eq(h[0], 0x81);
	ck_assert_int_eq(h[1], 5);
	wc_pause(w, 0);
	wc_expect_text(w, "plain");
	wc_free(w);
}
END_TEST

START_TEST(t_big_message)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	struct ws_frame	 f;
	size_t		 n = 1024 * 1024, i;
	unsigned char	*big = malloc(n);
	uint32_t	 want;

	for (i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7 + (i >> 11));
	want = hash_bytes(2166136261u, big, n);
	wc_send(w, WS_OP_BINARY, 1, big, n);
	ck_assert_int_eq(wc_recv(w, &f, 10000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_BINARY);
	ck_assert_uint_eq(evbuffer_get_length(f.payload), n);
	ck_assert_uint_eq(hashbuf(f.payload), want);
	ws_frame_free(&f);
	ck_assert_uint_eq(evbuffer_get_length(u->last), n);
	ck_assert_uint_eq(hashbuf(u->last), want);
	free(big);
	wc_free(w);
}
END_TEST

/*
 * A client that does not read: the proxy stops reading the worker once
 * about WS_OUT_HIGH waits for the client, and the rest stays with the
 * worker.  Nothing is lost when the client reads again.
 */
START_TEST(t_backpressure)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	struct ws_frame	 f;
	size_t		 n = 1024 * 1024, total = 32 * n, i, left;
	unsigned char	*chunk = malloc(n);
	int		 frames = 0;

	for (i = 0; i < n; i++)
		chunk[i] = (unsigned char)i;
	wc_pause(w, 1);
	for (i = 0; i < 32; i++)
		up_send(u, WS_OP_BINARY, 1, chunk, n);
	RUN_FOR(500);
	left = evbuffer_get_length(bufferevent_get_output(u->bev));
	/* proxy and kernel buffers hold a few MiB, not 32 */
	ck_assert_msg(left > total / 2, "worker still has %zu bytes", left);
	wc_pause(w, 0);
	while (w->got < total && wc_recv(w, &f, 5000) == 1) {
		ck_assert_uint_eq(evbuffer_get_length(f.payload), n);
		ck_assert_int_eq(memcmp(evbuffer_pullup(f.payload, 4096),
		    chunk, 4096), 0);
		ws_frame_free(&f);
		frames++;
	}
	ck_assert_int_eq(frames, 32);
	free(chunk);
	wc_free(w);
}
END_TEST

START_TEST(t_message_too_big)
{
	struct wc	*w;
	struct uconn	*u;
	char		 big[2000];

	memset(big, 'x', sizeof(big));
	tgt.max_message = 1000;
	w = wc_open(NULL);
	u = up_wait(0);
	wc_text(w, "small");
	wc_expect_text(w, "small");
	wc_send(w, WS_OP_TEXT, 1, big, sizeof(big));
	wc_expect_close(w, WS_CLOSE_TOO_BIG);
	RUN_UNTIL(w->eof, 2000);
	ck_assert_int_eq(w->eof, 1);
	/* never reached the worker, which is told the client left */
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_int_eq(u->nmsg, 1);
	RUN_UNTIL(proxy_ws_count() == 0, 3000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);

	/* from the worker: 1009 to the worker, 1011 to the client */
	w = wc_open(NULL);
	u = up_wait(1);
	up_send(u, WS_OP_BINARY, 1, big, sizeof(big));
	wc_expect_close(w, WS_CLOSE_INTERNAL);
	RUN_UNTIL(u->close_code != 0 || u->eof, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_TOO_BIG);
	wc_close(w, WS_CLOSE_INTERNAL, NULL);
	RUN_UNTIL(proxy_ws_count() == 0 && w->eof, 3000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_int_eq(nreleased, 2);
	wc_free(w);
}
END_TEST

/* An unmasked frame from the client is a protocol error: 1002. */
START_TEST(t_protocol_error)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	static const unsigned char plain[] = { 0x81, 0x02, 'h', 'i' };

	wc_write(w, plain, sizeof(plain));
	wc_expect_close(w, WS_CLOSE_PROTOCOL);
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_int_eq(u->nmsg, 0);
	RUN_UNTIL(nreleased == 1, 2000);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* ---- closing ------------------------------------------------------------- */

START_TEST(t_clean_close)
{
	struct wc	*w;
	struct uconn	*u;

	tgt.cache_ttl_ms = 5000;	/* a clean close never parks */
	w = wc_open(NULL);
	u = up_wait(0);
	{
	struct ws_frame	 f;

	wc_text(w, "a");
	wc_expect_text(w, "a");
	wc_close(w, WS_CLOSE_NORMAL, "bye");
	/* the worker got it, reason and all, and its answer came back */
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_CLOSE);
	ck_assert_int_eq(f.close_code, WS_CLOSE_NORMAL);
	ws_frame_free(&f);
	ck_assert_int_eq(u->close_code, WS_CLOSE_NORMAL);
	ck_assert_str_eq(u->close_reason, "bye");
	RUN_UNTIL(w->eof && proxy_ws_count() == 0, 2000);
	ck_assert_int_eq(w->eof, 1);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	ck_assert_str_eq(last_released, "w1/s1");
	wc_free(w);
	/* nothing happens later */
	RUN_FOR(50);
	ck_assert_int_eq(nreleased, 1);
	}
}
END_TEST

START_TEST(t_close_1001)
{
	struct wc	*w;
	struct uconn	*u;

	tgt.cache_ttl_ms = 5000;
	w = wc_open(NULL);
	u = up_wait(0);
	wc_close(w, WS_CLOSE_GOING_AWAY, NULL);
	wc_expect_close(w, WS_CLOSE_GOING_AWAY);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	RUN_UNTIL(proxy_ws_count() == 0, 2000);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* The worker closes: the client hears it and answers; all ends. */
START_TEST(t_worker_close)
{
	struct wc	*w;
	struct uconn	*u;

	tgt.cache_ttl_ms = 5000;
	w = wc_open(NULL);
	u = up_wait(0);
	up_send_close(u, 4000, "app done");
	wc_expect_close(w, 4000);
	wc_close(w, 4000, NULL);
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, 4000);
	RUN_UNTIL(w->eof && proxy_ws_count() == 0, 2000);
	ck_assert_int_eq(w->eof, 1);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* The worker never answers the client's close: both end after 2 s. */
START_TEST(t_close_wait)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);
	struct timespec	 t0, t1;
	int64_t		 ms;

	up_mode = UP_NOCLOSE;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wc_close(w, WS_CLOSE_NORMAL, NULL);
	RUN_UNTIL(u->close_code != 0, 1000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_NORMAL);
	/* our answer in the worker's place, then the end */
	wc_expect_close(w, WS_CLOSE_NORMAL);
	RUN_UNTIL(w->eof && u->eof, 4000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_eq(w->eof, 1);
	ck_assert_int_eq(u->eof, 1);
	ck_assert_int_ge(ms, 1900);
	ck_assert_int_eq(nreleased, 1);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	wc_free(w);
}
END_TEST

/* The worker's connection breaks: the client gets 1011. */
START_TEST(t_worker_gone)
{
	struct wc	*w;
	struct uconn	*u;

	tgt.cache_ttl_ms = 5000;
	w = wc_open(NULL);
	u = up_wait(0);
	up_free_bev(u);
	wc_expect_close(w, WS_CLOSE_INTERNAL);
	wc_close(w, WS_CLOSE_INTERNAL, NULL);
	RUN_UNTIL(w->eof && proxy_ws_count() == 0, 2000);
	ck_assert_int_eq(w->eof, 1);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* ---- the reconnection cache --------------------------------------------- */

static void
park_and_resume(int how)
{
	struct wc	*w, *w2;
	struct uconn	*u;
	char		 v[128];

	tgt.cache_ttl_ms = 5000;
	w = wc_open("Sec-WebSocket-Protocol: chat\r\n");
	u = up_wait(0);
	wc_text(w, "before");
	wc_expect_text(w, "before");
	if (how == 0)
		wc_drop(w);
	else
		wc_close(w, how, NULL);
	RUN_UNTIL(proxy_ws_parked_count() == 1, 2000);
	ck_assert_uint_eq(proxy_ws_parked_count(), 1);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	if (how != 0) {
		/* the abnormal close was answered, not passed on */
		wc_expect_close(w, how);
		RUN_UNTIL(w->eof, 1000);
		ck_assert_int_eq(w->eof, 1);
	}

	/* the worker talks to nobody; it waits, the worker stays */
	up_send(u, WS_OP_TEXT, 1, "m1", 2);
	up_send(u, WS_OP_TEXT, 0, "m", 1);
	up_send(u, WS_OP_CONT, 1, "2", 1);
	up_send(u, WS_OP_TEXT, 1, "m3", 2);
	RUN_FOR(100);
	ck_assert_int_eq(u->close_code, 0);
	ck_assert_int_eq(u->eof, 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 1);

	/* another session or worker does not get it */
	tgt.session_id = "s2";
	w2 = wc_open(NULL);
	ck_assert_int_eq(nups, 2);
	wc_close(w2, WS_CLOSE_NORMAL, NULL);
	wc_expect_close(w2, WS_CLOSE_NORMAL);
	RUN_UNTIL(nreleased == 2, 2000);
	wc_free(w2);
	tgt.session_id = "s1";

	/* the same session comes back: same worker connection */
	w2 = wc_open("Sec-WebSocket-Protocol: chat\r\n");
	ck_assert_str_eq(head_get(w2->head, "Sec-WebSocket-Protocol", v,
	    sizeof(v)), "chat");
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_uint_eq(proxy_ws_count(), 1);
	wc_expect_text(w2, "m1");
	{
		struct ws_frame	 f;

		ck_assert_int_eq(wc_recv(w2, &f, 2000), 1);
		ck_assert_int_eq(f.opcode, WS_OP_TEXT);
		ck_assert_int_eq(f.fin, 0);
		ws_frame_free(&f);
		ck_assert_int_eq(wc_recv(w2, &f, 2000), 1);
		ck_assert_int_eq(f.opcode, WS_OP_CONT);
		ws_frame_free(&f);
	}
	wc_expect_text(w2, "m3");
	wc_text(w2, "after");
	wc_expect_text(w2, "after");
	ck_assert_str_eq(u->texts, "before|after|");
	ck_assert_int_eq(nups, 2);
	ck_assert_int_eq(u->perr, 0);
	ck_assert_int_eq(nreleased, 2);
	wc_close(w2, WS_CLOSE_NORMAL, NULL);
	wc_expect_close(w2, WS_CLOSE_NORMAL);
	RUN_UNTIL(proxy_ws_count() == 0, 2000);
	ck_assert_int_eq(nreleased, 3);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	wc_free(w);
	wc_free(w2);
}

START_TEST(t_park_on_drop)
{
	park_and_resume(0);
}
END_TEST

START_TEST(t_park_on_abnormal_close)
{
	park_and_resume(4001);
}
END_TEST

/*
 * A message the worker had half sent to the old client cannot be
 * finished for the new one: its rest is dropped, what follows arrives.
 * A message the old client had half sent to the worker cannot be
 * finished either: then there is no parking.
 */
START_TEST(t_park_half_message)
{
	struct wc	*w, *w2;
	struct uconn	*u;
	struct ws_frame	 f;

	tgt.cache_ttl_ms = 5000;
	w = wc_open(NULL);
	u = up_wait(0);
	up_send(u, WS_OP_TEXT, 0, "half", 4);
	ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
	ck_assert_int_eq(f.fin, 0);
	ws_frame_free(&f);
	wc_drop(w);
	RUN_UNTIL(proxy_ws_parked_count() == 1, 2000);
	ck_assert_uint_eq(proxy_ws_parked_count(), 1);
	up_send(u, WS_OP_CONT, 0, "more", 4);
	up_send(u, WS_OP_CONT, 1, "rest", 4);
	up_send(u, WS_OP_PING, 1, "pp", 2);
	up_send(u, WS_OP_TEXT, 1, "whole", 5);
	w2 = wc_open(NULL);
	ck_assert_int_eq(wc_recv(w2, &f, 2000), 1);
	ck_assert_int_eq(f.opcode, WS_OP_PING);
	ws_frame_free(&f);
	wc_expect_text(w2, "whole");
	ck_assert_int_eq(w2->perr, 0);
	ck_assert_int_eq(nups, 1);

	/* now the client leaves in the middle of a message */
	wc_send(w2, WS_OP_TEXT, 0, "par", 3);
	RUN_UNTIL(u->nframes == 1, 2000);
	ck_assert_int_eq(u->nframes, 1);
	wc_drop(w2);
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	RUN_UNTIL(proxy_ws_count() == 0, 2000);
	ck_assert_int_eq(nreleased, 2);
	wc_free(w);
	wc_free(w2);
}
END_TEST

START_TEST(t_park_ttl)
{
	struct wc	*w;
	struct uconn	*u;

	tgt.cache_ttl_ms = 500;
	w = wc_open(NULL);
	u = up_wait(0);
	wc_drop(w);
	RUN_UNTIL(proxy_ws_parked_count() == 1, 1000);
	ck_assert_uint_eq(proxy_ws_parked_count(), 1);
	RUN_FOR(100);
	ck_assert_int_eq(u->close_code, 0);
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	RUN_UNTIL(u->eof, 1000);
	ck_assert_int_eq(u->eof, 1);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* No parking without ws_cache_ttl: the worker is told at once. */
START_TEST(t_no_park)
{
	struct wc	*w = wc_open(NULL);
	struct uconn	*u = up_wait(0);

	wc_drop(w);
	RUN_UNTIL(u->close_code != 0, 2000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	RUN_UNTIL(proxy_ws_count() == 0, 2000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* ---- timers -------------------------------------------------------------- */

START_TEST(t_idle_timeout)
{
	struct wc	*w;
	struct uconn	*u;
	int		 i;

	tgt.idle_ms = 600;
	tgt.cache_ttl_ms = 5000;
	w = wc_open(NULL);
	u = up_wait(0);
	/* messages either way keep it alive */
	for (i = 0; i < 4; i++) {
		RUN_FOR(300);
		if (i % 2)
			wc_text(w, "tick");
		else
			up_send(u, WS_OP_TEXT, 1, "tock", 4);
		wc_expect_text(w, i % 2 ? "tick" : "tock");
	}
	ck_assert_int_eq(u->close_code, 0);
	/* pings are not messages */
	up_mode = UP_NOECHO;
	RUN_FOR(300);
	wc_send(w, WS_OP_PING, 1, NULL, 0);
	wc_expect_close(w, WS_CLOSE_GOING_AWAY);
	ck_assert_int_eq(u->nping, 1);
	RUN_UNTIL(u->close_code != 0, 1000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	wc_close(w, WS_CLOSE_GOING_AWAY, NULL);
	RUN_UNTIL(proxy_ws_count() == 0 && w->eof, 2000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

START_TEST(t_lifetime)
{
	struct wc	*w;
	struct uconn	*u;
	struct ws_frame	 f;
	struct timespec	 t0, t1;
	int64_t		 ms;
	int		 i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tgt.lifetime_ms = 400;
	tgt.idle_ms = 10000;
	w = wc_open(NULL);
	u = up_wait(0);
	/* busy all along, closed all the same */
	for (i = 0;; i++) {
		ck_assert_int_lt(i, 200);
		wc_text(w, "busy");
		ck_assert_int_eq(wc_recv(w, &f, 2000), 1);
		if (f.opcode == WS_OP_CLOSE)
			break;
		ws_frame_free(&f);
		RUN_FOR(20);
	}
	ck_assert_int_eq(f.close_code, WS_CLOSE_GOING_AWAY);
	ws_frame_free(&f);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 380);
	RUN_UNTIL(u->close_code != 0, 1000);
	ck_assert_int_eq(u->close_code, WS_CLOSE_GOING_AWAY);
	RUN_UNTIL(proxy_ws_count() == 0, 3000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_int_eq(nreleased, 1);
	wc_free(w);
}
END_TEST

/* ---- a worker stops ------------------------------------------------------ */

START_TEST(t_close_worker)
{
	struct wc	*a, *b, *c, *d;
	struct uconn	*ua, *ub, *uc;

	tgt.cache_ttl_ms = 5000;
	tgt.session_id = "sa";
	a = wc_open(NULL);
	ua = up_wait(0);
	tgt.session_id = "sb";
	b = wc_open(NULL);
	ub = up_wait(1);
	tgt.session_id = "sc";
	tgt.worker_id = "w2";
	c = wc_open(NULL);
	uc = up_wait(2);
	tgt.worker_id = "w1";
	tgt.session_id = "sd";
	d = wc_open(NULL);
	up_wait(3);
	wc_drop(d);
	RUN_UNTIL(proxy_ws_parked_count() == 1, 1000);
	ck_assert_int_eq(nreleased, 1);
	ck_assert_uint_eq(proxy_ws_count(), 3);

	/* at once: the clients were released before it returned */
	proxy_ws_close_worker("w1");
	ck_assert_int_eq(nreleased, 3);
	ck_assert_uint_eq(proxy_ws_count(), 1);
	ck_assert_uint_eq(proxy_ws_parked_count(), 0);
	wc_expect_close(a, WS_CLOSE_GOING_AWAY);
	wc_expect_close(b, WS_CLOSE_GOING_AWAY);
	RUN_UNTIL(ua->eof && ub->eof && ups[3]->eof, 1000);
	ck_assert_int_eq(ua->close_code, WS_CLOSE_GOING_AWAY);
	ck_assert_int_eq(ups[3]->eof, 1);
	/* the other worker goes on */
	wc_text(c, "still");
	wc_expect_text(c, "still");
	ck_assert_int_eq(uc->close_code, 0);
	wc_free(a);
	wc_free(b);
	wc_free(c);
	wc_free(d);
}
END_TEST

/* ---- origins and is_upgrade, on requests made by hand ------------------- */

static struct http_header	 fh[4];
static struct http_request	 freq;

static struct http_request *
fake(const char *host, const char *origin)
{
	memset(&freq, 0, sizeof(freq));
	freq.method = HTTP_GET;
	freq.headers.v = fh;
	if (host != NULL) {
		fh[freq.headers.n].name = "Host";
		fh[freq.headers.n++].value = (char *)host;
	}
	if (origin != NULL) {
		fh[freq.headers.n].name = "Origin";
		fh[freq.headers.n++].value = (char *)origin;
	}
	return &freq;
}

START_TEST(t_origin)
{
	const char	*ext = "https://Apps.Example.com/base/";

	/* not a browser */
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x", NULL), ext), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x", NULL), NULL), 1);
	/* same origin, scheme aside, default ports normalised */
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example:8080",
	    "http://proxy.example:8080"), NULL), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("Proxy.Example:8080",
	    "https://proxy.example:8080"), ""), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example",
	    "https://proxy.example"), NULL), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example:443",
	    "https://proxy.example"), NULL), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example",
	    "http://proxy.example:80"), NULL), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("[::1]:8080",
	    "http://[::1]:8080"), NULL), 1);
	/* another port or host is another origin */
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example:8080",
	    "http://proxy.example:8081"), NULL), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example",
	    "http://proxy.example:8080"), NULL), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example",
	    "http://evil.example"), NULL), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("proxy.example",
	    "http://proxy.example.evil.example"), NULL), 0);
	/* external_url's origin */
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://apps.example.com"), ext), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://APPS.example.com:443"), ext), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "http://apps.example.com"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://apps.example.com:8443"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://apps.example.com:8443"),
	    "https://apps.example.com:8443"), 1);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://apps.example.com"), NULL), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://apps.example.com"), "not a url"), 0);
	/* foreign or malformed */
	ck_assert_int_eq(proxy_ws_origin_ok(fake("10.0.0.1:8080",
	    "https://evil.example"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x", "null"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x", ""), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x",
	    "https://apps.example.com/path"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake("x",
	    "https://user@apps.example.com"), ext), 0);
	ck_assert_int_eq(proxy_ws_origin_ok(fake(NULL,
	    "https://evil.example"), ext), 0);
}
END_TEST

/* Through the route: a foreign origin is refused before the upgrade. */
START_TEST(t_origin_route)
{
	struct wc	*w = wc_new();

	wc_upgrade(w, "Origin: https://evil.example\r\n");
	ck_assert_int_eq(wc_head(w, 2000), 403);
	wc_free(w);
	wc_free(wc_open("Origin: http://proxy.example:8080\r\n"));
	wc_free(wc_open("Origin: https://apps.example.com\r\n"));
	RUN_UNTIL(nups == 2, 1000);
	ck_assert_int_eq(nups, 2);
}
END_TEST

START_TEST(t_is_upgrade)
{
	struct http_request *r;

	r = fake("x", NULL);
	ck_assert_int_eq(proxy_ws_is_upgrade(r), 0);
	fh[r->headers.n].name = "upgrade";
	fh[r->headers.n++].value = "foo, WebSocket";
	ck_assert_int_eq(proxy_ws_is_upgrade(r), 1);
	r->method = HTTP_POST;
	ck_assert_int_eq(proxy_ws_is_upgrade(r), 0);
	r->method = HTTP_GET;
	fh[r->headers.n - 1].value = "websockets";
	ck_assert_int_eq(proxy_ws_is_upgrade(r), 0);
}
END_TEST

/* ---- leaks and memory ---------------------------------------------------- */

START_TEST(t_no_fd_leak)
{
	struct wc	*w[8];
	int		 before = count_fds(), i;

	tgt.cache_ttl_ms = 100;
	for (i = 0; i < 8; i++) {
		w[i] = wc_open(NULL);
		up_wait(i);
	}
	wc_close(w[0], WS_CLOSE_NORMAL, NULL);
	wc_drop(w[1]);
	wc_drop(w[2]);
	wc_close(w[3], 4000, NULL);
	up_send_close(ups[4], WS_CLOSE_NORMAL, NULL);
	up_free_bev(ups[5]);
	RUN_FOR(50);
	proxy_ws_close_worker("w1");
	RUN_UNTIL(proxy_ws_count() == 0 && proxy_ws_parked_count() == 0,
	    3000);
	ck_assert_int_eq(nreleased, 8);
	for (i = 0; i < 8; i++)
		wc_free(w[i]);
	up_free_all();
	up_listen();
	RUN_FOR(20);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

#define MEM_N	200

static int	 child_ready;

static void
child_ready_cb(evutil_socket_t fd, short ev, void *arg)
{
	char	 c;

	if (read(fd, &c, 1) == 1)
		child_ready = 1;
}

/*
 * The child: the worker and MEM_N clients on their own loop, over TCP
 * to the proxy, each WebSocket open and one message through; then
 * idle until the parent has measured.
 */
static void
mem_child(int proxy_port, int to_parent, int from_parent)
{
	struct sockaddr_in	 sin;
	struct wc		*w[MEM_N];
	char			 c = 'r';
	int			 i, fd, port, done = 0;

	tbase = event_base_new();
	nups = 0;
	up_lev = NULL;
	up_listen();
	port = up_port;
	if (write(to_parent, &port, sizeof(port)) != sizeof(port))
		_exit(2);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(proxy_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < MEM_N; i++) {
		w[i] = calloc(1, sizeof(*w[i]));
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			_exit(3);
		fcntl(fd, F_SETFL, O_NONBLOCK);
		w[i]->fd = fd;
		w[i]->raw = evbuffer_new();
		w[i]->ev = event_new(tbase, fd, EV_READ | EV_PERSIST, wc_read,
		    w[i]);
		event_add(w[i]->ev, NULL);
		ws_parser_init(&w[i]->p, WS_ROLE_CLIENT, 0);
		new_key(w[i]->key);
		wc_upgrade(w[i], NULL);
		if (wc_head(w[i], 5000) != 101)
			_exit(4);
		wc_text(w[i], "hi");
		{
			struct ws_frame	 f;

			if (wc_recv(w[i], &f, 5000) != 1)
				_exit(5);
			ws_frame_free(&f);
		}
	}
	/* let the proxy's side settle too */
	RUN_FOR(100);
	if (write(to_parent, &c, 1) != 1)
		_exit(6);
	if (read(from_parent, &c, 1) != 1)
		done = 1;
	_exit(done ? 7 : 0);
}

static size_t
rss_bytes(void)
{
	FILE		*f = fopen("/proc/self/statm", "r");
	unsigned long	 size = 0, res = 0;

	if (f != NULL) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * Memory per idle relayed WebSocket in this process (the proxy side
 * only: workers and clients live in a child).  Printed; asserted below
 * 20 KiB of heap without sanitizers, whose allocator mallinfo does not
 * see.
 */
START_TEST(t_memory_per_ws)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct event		*ev;
	struct mallinfo2	 m0, m1;
	size_t			 r0, r1;
	ssize_t			 heap;
	int			 lfd, to_parent[2], from_parent[2], port, st;
	pid_t			 pid;
	char			 c = 'd';

	tgt.cache_ttl_ms = 0;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, MEM_N), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	ck_assert_int_eq(pipe(to_parent), 0);
	ck_assert_int_eq(pipe(from_parent), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(lfd);
		close(to_parent[0]);
		close(from_parent[1]);
		mem_child(ntohs(sin.sin_port), to_parent[1], from_parent[0]);
	}
	close(to_parent[1]);
	close(from_parent[0]);
	ck_assert_int_eq(http_server_listen(srv, lfd, HTTP_LISTEN_MAIN), 0);
	ck_assert_int_eq(read(to_parent[0], &port, sizeof(port)),
	    sizeof(port));
	tgt.port = port;
	/* the first connection grows libevent's tables too: count it */
	malloc_trim(0);
	m0 = mallinfo2();
	r0 = rss_bytes();
	ev = event_new(base, to_parent[0], EV_READ, child_ready_cb, NULL);
	event_add(ev, NULL);
	RUN_UNTIL(child_ready, 30000);
	ck_assert_int_eq(child_ready, 1);
	ck_assert_uint_eq(proxy_ws_count(), MEM_N);
	ck_assert_int_eq(http_server_nconns(srv), 0);
	m1 = mallinfo2();
	r1 = rss_bytes();
	heap = ((ssize_t)m1.uordblks - (ssize_t)m0.uordblks) / MEM_N;
#if defined(__SANITIZE_ADDRESS__)
	(void)heap;
	fprintf(stderr, "proxy_ws: %d idle WebSockets: RSS %zd bytes each "
	    "(ASan; heap not measured)\n", MEM_N,
	    ((ssize_t)r1 - (ssize_t)r0) / MEM_N);
#else
	fprintf(stderr, "proxy_ws: %d idle WebSockets: heap %zd bytes each, "
	    "RSS %zd bytes each\n", MEM_N, heap,
	    ((ssize_t)r1 - (ssize_t)r0) / MEM_N);
	ck_assert_int_lt(heap, 20 * 1024);
#endif
	ck_assert_int_eq(write(from_parent[1], &c, 1), 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	RUN_UNTIL(proxy_ws_count() == 0, 5000);
	ck_assert_uint_eq(proxy_ws_count(), 0);
	ck_assert_int_eq(nreleased, MEM_N);
	event_free(ev);
	close(to_parent[0]);
	close(from_parent[1]);
}
END_TEST

static Suite *
proxy_ws_suite(void)
{
	Suite	*s = suite_create("byproxy_proxy_ws");
	TCase	*th = tcase_create("handshake");
	TCase	*tr = tcase_create("relay");
	TCase	*tc = tcase_create("close");
	TCase	*tm = tcase_create("memory");

	tcase_add_checked_fixture(th, setup, teardown);
	tcase_add_test(th, t_handshake);
	tcase_add_test(th, t_handshake_plain);
	tcase_add_test(th, t_bad_handshake);
	tcase_add_test(th, t_upstream_refused);
	tcase_add_test(th, t_upstream_403);
	tcase_add_test(th, t_upstream_bad_accept);
	tcase_add_test(th, t_upstream_hangup);
	tcase_add_test(th, t_cancel_during_handshake);
	tcase_add_test(th, t_frames_with_handshakes);
	tcase_add_test(th, t_origin);
	tcase_add_test(th, t_origin_route);
	tcase_add_test(th, t_is_upgrade);
	suite_add_tcase(s, th);

	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_set_timeout(tr, 120);
	tcase_add_test(tr, t_relay_messages);
	tcase_add_test(tr, t_masking);
	tcase_add_test(tr, t_big_message);
	tcase_add_test(tr, t_backpressure);
	tcase_add_test(tr, t_message_too_big);
	tcase_add_test(tr, t_protocol_error);
	suite_add_tcase(s, tr);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_clean_close);
	tcase_add_test(tc, t_close_1001);
	tcase_add_test(tc, t_worker_close);
	tcase_add_test(tc, t_close_wait);
	tcase_add_test(tc, t_worker_gone);
	tcase_add_test(tc, t_park_on_drop);
	tcase_add_test(tc, t_park_on_abnormal_close);
	tcase_add_test(tc, t_park_half_message);
	tcase_add_test(tc, t_park_ttl);
	tcase_add_test(tc, t_no_park);
	tcase_add_test(tc, t_idle_timeout);
	tcase_add_test(tc, t_lifetime);
	tcase_add_test(tc, t_close_worker);
	tcase_add_test(tc, t_no_fd_leak);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tm, setup, teardown);
	tcase_set_timeout(tm, 120);
	tcase_add_test(tm, t_memory_per_ws);
	suite_add_tcase(s, tm);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(proxy_ws_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
