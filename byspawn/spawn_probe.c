/*
 * Worker health, without blocking: a TCP connect to the worker's port,
 * or that plus "GET /" answered by any HTTP status line.  The proxy
 * only sends users to a worker that answers HTTP, so readiness is the
 * HTTP probe, repeated until it passes.
 */

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "byspawn.h"
#include "log.h"

#define PROBE_RETRY_MS	100

struct worker_probe {
	TAILQ_ENTRY(worker_probe) entry;
	struct worker		*w;
	enum worker_probe_kind	 kind;
	int			 repeat;	/* until ok or deadline */
	int			 retry_wait;	/* timer is the retry delay */
	int			 sent;		/* connected, request sent */
	int64_t			 deadline;	/* monotonic ms */
	int			 fd;
	struct event		*ev;
	struct event		*timer;
	char			 buf[64];
	size_t			 len;
	worker_probe_cb		 cb;
	void			*arg;
};

static void	 attempt_start(struct worker_probe *);
static void	 on_fd(evutil_socket_t, short, void *);

static int64_t
mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
timer_in(struct worker_probe *p, int64_t ms)
{
	struct timeval	 tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

static void
attempt_close(struct worker_probe *p)
{
	if (p->ev != NULL)
		event_free(p->ev);
	p->ev = NULL;
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
	p->len = 0;
	p->sent = 0;
}

/* Finish: unlink and free first, so cb may forget the worker. */
static void
probe_done(struct worker_probe *p, int ok, int status)
{
	struct worker	*w = p->w;
	worker_probe_cb	 cb = p->cb;
	void		*arg = p->arg;

	TAILQ_REMOVE(&w->probes, p, entry);
	attempt_close(p);
	event_free(p->timer);
	free(p);
	if (ok && w->state == WORKER_STARTING && status > 0)
		w->state = WORKER_RUNNING;
	if (cb != NULL)
		cb(w, ok, status, arg);
}

static void
attempt_failed(struct worker_probe *p)
{
	int64_t	 left = p->deadline - mono_ms();

	attempt_close(p);
	if (!p->repeat || left <= 0 || p->w->reaped) {
		probe_done(p, 0, 0);
		return;
	}
	p->retry_wait = 1;
	timer_in(p, left < PROBE_RETRY_MS ? left : PROBE_RETRY_MS);
}

/* "HTTP/1.1 200 ..." -> 200; 0 while incomplete, -1 when not HTTP. */
static int
status_line(const char *s, size_t n)
{
	int	 code;

	if (n < 12)
		return memchr(s, '\n', n) != NULL ? -1 : 0;
	if (strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' ||
	    sscanf(s + 9, "%3d", &code) != 1 || code < 100 || code > 999)
		return -1;
	return code;
}

static void
on_readable(struct worker_probe *p)
{
	ssize_t	 n;
	int	 code;

	n = read(p->fd, p->buf + p->len, sizeof(p->buf) - p->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		attempt_failed(p);
		return;
	}
	p->len += (size_t)n;
	if ((code = status_line(p->buf, p->len)) == 0 &&
	    p->len < sizeof(p->buf))
		return;
	if (code <= 0)
		attempt_failed(p);
	else
		probe_done(p, 1, code);
}

static void
on_connected(struct worker_probe *p)
{
	static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n"
	    "User-Agent: byspawn-probe\r\n\r\n";
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		attempt_failed(p);
		return;
	}
	if (p->kind == WORKER_PROBE_TCP) {
		probe_done(p, 1, 0);
		return;
	}
	/* a fresh socket's buffer takes the whole request */
	if (write(p->fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		attempt_failed(p);
		return;
	}
	p->sent = 1;
	event_free(p->ev);
	if ((p->ev = event_new(proc_base, p->fd, EV_READ | EV_PERSIST, on_fd,
	    p)) == NULL || event_add(p->ev, NULL) == -1)
		attempt_failed(p);
}

static void
on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct worker_probe	*p = arg;

	if (p->sent)
		on_readable(p);
	else
		on_connected(p);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker_probe	*p = arg;

	if (p->retry_wait && mono_ms() < p->deadline) {
		p->retry_wait = 0;
		attempt_start(p);
		return;
	}
	attempt_close(p);
	probe_done(p, 0, 0);
}

static void
attempt_start(struct worker_probe *p)
{
	struct sockaddr_in	 sin;

	timer_in(p, p->deadline - mono_ms());
	if ((p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		attempt_failed(p);
		return;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)p->w->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(p->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS) {
		attempt_failed(p);
		return;
	}
	if ((p->ev = event_new(proc_base, p->fd, EV_WRITE | EV_PERSIST, on_fd,
	    p)) == NULL || event_add(p->ev, NULL) == -1)
		attempt_failed(p);
}

static int
probe_new(struct worker *w, enum worker_probe_kind kind, int repeat,
    int timeout_ms, worker_probe_cb cb, void *arg)
{
	struct worker_probe	*p;

	if (w->reaped || w->port <= 0)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->w = w;
	p->kind = kind;
	p->repeat = repeat;
	p->deadline = mono_ms() + timeout_ms;
	p->fd = -1;
	p->cb = cb;
	p->arg = arg;
	if ((p->timer = evtimer_new(proc_base, on_timer, p)) == NULL)
		fatalx("evtimer_new");
	TAILQ_INSERT_TAIL(&w->probes, p, entry);
	/* start from the loop: cb never runs before this returns */
	p->retry_wait = 1;
	timer_in(p, 0);
	return 0;
}

int
worker_probe(struct worker *w, enum worker_probe_kind kind, int timeout_ms,
    worker_probe_cb cb, void *arg)
{
	return probe_new(w, kind, 0, timeout_ms, cb, arg);
}

int
worker_await_ready(struct worker *w, int timeout_ms, worker_probe_cb cb,
    void *arg)
{
	return probe_new(w, WORKER_PROBE_HTTP, 1, timeout_ms, cb, arg);
}

/* The worker exited or goes away: every pending probe fails. */
void
worker_probes_cancel(struct worker *w)
{
	struct worker_probe	*p;

	while ((p = TAILQ_FIRST(&w->probes)) != NULL)
		probe_done(p, 0, 0);
}
