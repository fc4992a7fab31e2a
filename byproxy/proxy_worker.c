/*
 * The workers byproxy started for its apps: spawn through byspawn
 * (workers.start, the one way workers start), readiness, health, stop.
 *
 * Readiness means the app answers HTTP: after byspawn started bwrap we
 * connect to 127.0.0.1:port every PROBE_RETRY_MS (a refused connect on
 * loopback costs microseconds) and, once one is accepted, send a GET
 * and wait for a status line.  R needs about half a second to load
 * shiny; polling at 10 ms keeps our share of a cold start small.
 *
 * Health: every proxy.health_interval each ready worker must accept a
 * TCP connection within HEALTH_TIMEOUT_MS; two misses in a row and its
 * sessions are marked crashed and it is stopped.  byspawn also tells
 * us at once when a worker's process exits (MSG_WORKER_EXITED).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

#define PROBE_RETRY_MS		10
#define PROBE_IO_MS		5000	/* an accepted probe must answer */
#define HEALTH_TIMEOUT_MS	2000
#define HEALTH_MISSES		2

struct pworker_list	 proxy_workers = TAILQ_HEAD_INITIALIZER(proxy_workers);
static uint64_t		 worker_seq;

static void	 probe_start(struct pworker *);
static void	 probe_end(struct pworker *);

int64_t
proxy_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval
ms_tv(int64_t ms)
{
	struct timeval	 tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

/*
 * A connection to a worker on 127.0.0.1:port: every dial to a worker
 * (probes, health, HTTP, WebSocket) goes through here.  TCP_NODELAY,
 * because what we send is small and must not wait for ACKs.  The
 * callbacks are set before the connect, so a refusal (on loopback it
 * can be immediate) reaches eventcb; NULL when no socket could be made.
 */
struct bufferevent *
proxy_dial(struct event_base *base, int port, int options,
    bufferevent_data_cb readcb, bufferevent_data_cb writecb,
    bufferevent_event_cb eventcb, void *arg)
{
	struct sockaddr_in	 sin;
	struct bufferevent	*bev;
	int			 fd, on = 1;

	if (port <= 0 || port > 65535)
		return NULL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("proxy: socket");
		return NULL;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		log_warn("proxy: TCP_NODELAY");
	if ((bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE | options)) == NULL) {
		close(fd);
		return NULL;
	}
	bufferevent_setcb(bev, readcb, writecb, eventcb, arg);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

struct pworker *
pworker_find(const char *id)
{
	struct pworker	*w;

	TAILQ_FOREACH(w, &proxy_workers, all_entry)
		if (w->id[0] != '\0' && strcmp(w->id, id) == 0)
			return w;
	return NULL;
}

static struct pworker *
pworker_by_seq(uint64_t seq)
{
	struct pworker	*w;

	TAILQ_FOREACH(w, &proxy_workers, all_entry)
		if (w->seq == seq)
			return w;
	return NULL;
}

int
proxy_worker_draining(const char *id)
{
	struct pworker	*w = pworker_find(id);

	return w != NULL && w->draining;
}

size_t
pworker_count(void)
{
	struct pworker	*w;
	size_t		 n = 0;

	TAILQ_FOREACH(w, &proxy_workers, all_entry)
		if (w->state != PW_GONE)
			n++;
	return n;
}

int
pworker_load(const struct pworker *w)
{
	return w->nws + w->npending;
}

static void
pworker_free(struct pworker *w)
{
	probe_end(w);
	if (w->timer != NULL)
		event_free(w->timer);
	TAILQ_REMOVE(&w->app->workers, w, app_entry);
	TAILQ_REMOVE(&proxy_workers, w, all_entry);
	free(w);
}

/* Shutdown: drop every record; byspawn stops the processes itself. */
void
pworker_free_all(void)
{
	struct pworker	*w;

	while ((w = TAILQ_FIRST(&proxy_workers)) != NULL)
		pworker_free(w);
}

/*
 * Stop a worker and forget it: byspawn kills it (SIGTERM, then the
 * cgroup), its WebSockets and pooled connections close, its sessions
 * end (or crash).  Requests still waiting for it get 503.
 */
void
pworker_stop(struct pworker *w, const char *reason, int crashed)
{
	if (w->state == PW_GONE)
		return;
	/* it was the app's one spawn in flight: the slot is free again */
	if (w->state == PW_SPAWNING || w->state == PW_STARTING)
		papp_worker_failed(w, 503, "app failed to start");
	if (w->id[0] != '\0') {
		log_info("app %s: stopping worker %s (%s)", w->app->name,
		    w->id, reason);
		if (!w->stopping && api_call_internal(PROC_SPAWN,
		    "workers.stop", json_pack("{s:s}", "worker_id", w->id),
		    NULL, NULL) == -1)
			log_warnx("worker %s: cannot ask byspawn to stop it",
			    w->id);
		w->stopping = 1;
		proxy_ws_close_worker(w->id);
		proxy_http_forget(w->id);
	}
	w->state = PW_GONE;
	papp_worker_gone(w, crashed);
	pworker_free(w);
}

/* byspawn: the worker's process exited. */
void
proxy_worker_exited(const char *id, int stopped)
{
	struct pworker	*w;

	if ((w = pworker_find(id)) == NULL || w->state == PW_GONE)
		return;
	w->stopping = 1;	/* nothing left to stop */
	if (w->state == PW_STARTING) {
		pworker_stop(w, "exited while starting", 1);
		return;
	}
	pworker_stop(w, stopped ? "stopped by an operator" : "exited",
	    !stopped);
}

/* ---- readiness probe ---- */

static void
probe_end(struct pworker *w)
{
	if (w->probe != NULL) {
		bufferevent_free(w->probe);
		w->probe = NULL;
	}
}

static void
probe_ready(struct pworker *w)
{
	probe_end(w);
	if (w->timer != NULL)
		evtimer_del(w->timer);
	w->state = PW_READY;
	w->last_active = proxy_now_ms();
	log_info("app %s: worker %s ready on port %d after %lld ms",
	    w->app->name, w->id, w->port,
	    (long long)(w->last_active - w->started_ms));
	papp_worker_ready(w);
}

static void
probe_retry(struct pworker *w)
{
	int64_t		 left = w->deadline - proxy_now_ms();
	struct timeval	 tv;

	probe_end(w);
	if (left <= 0) {
		log_warnx("app %s: worker %s did not answer within "
		    "worker_start_timeout", w->app->name, w->id);
		pworker_stop(w, "start timeout", 0);
		return;
	}
	tv = ms_tv(left < PROBE_RETRY_MS ? left : PROBE_RETRY_MS);
	evtimer_add(w->timer, &tv);
}

static void
probe_read(struct bufferevent *bev, void *arg)
{
	struct pworker	*w = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	unsigned char	*p;

	if (evbuffer_get_length(in) < 12)
		return;
	p = evbuffer_pullup(in, 12);
	if (memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ')
		probe_ready(w);
	else
		probe_retry(w);
}

static void
probe_event(struct bufferevent *bev, short what, void *arg)
{
	struct pworker	*w = arg;
	struct timeval	 tv = ms_tv(PROBE_IO_MS);

	if (what & BEV_EVENT_CONNECTED) {
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		    "User-Agent: byproxy-probe\r\n"
		    "Connection: close\r\n\r\n", w->port);
		bufferevent_set_timeouts(bev, &tv, &tv);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	probe_retry(w);
}

static void
probe_connect(struct pworker *w)
{
	if ((w->probe = proxy_dial(proc_base, w->port, 0, probe_read, NULL,
	    probe_event, w)) == NULL)
		probe_retry(w);
}

static void
worker_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct pworker	*w = arg;

	if (w->state == PW_STARTING)
		probe_connect(w);
}

static void
probe_start(struct pworker *w)
{
	w->deadline = proxy_now_ms() + proc_conf->proxy.worker_start_timeout;
	probe_connect(w);
}

/* ---- spawning ---- */

static void
spawn_done(json_t *res, void *arg)
{
	struct pworker	*w = pworker_by_seq((uint64_t)(uintptr_t)arg);
	json_t		*data = json_object_get(res, "data");
	const char	*id, *msg;
	int		 status;

	status = (int)json_integer_value(json_object_get(res, "status"));
	id = json_string_value(json_object_get(data, "worker_id"));
	if (w == NULL) {
		/* the app went away meanwhile: the worker is not wanted */
		if (status == 200 && id != NULL)
			api_call_internal(PROC_SPAWN, "workers.stop",
			    json_pack("{s:s}", "worker_id", id), NULL, NULL);
		return;
	}
	if (status != 200 || id == NULL || strlen(id) >= sizeof(w->id)) {
		msg = json_string_value(json_object_get(res, "message"));
		log_warnx("app %s: byspawn could not start a worker: %s",
		    w->app->name, msg ? msg : "no answer");
		if (status == 503)
			papp_worker_failed(w, 503, "server at capacity");
		else
			papp_worker_failed(w, 503, "app failed to start");
		pworker_stop(w, "spawn failed", 0);
		return;
	}
	strlcpy(w->id, id, sizeof(w->id));
	w->port = (int)json_integer_value(json_object_get(data, "port"));
	w->state = PW_STARTING;
	probe_start(w);
}

/*
 * Start a worker for the app's active bundle.  The record exists (and
 * counts against every cap) from this call on.
 */
struct pworker *
pworker_spawn(struct papp *a)
{
	struct pworker	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("calloc");
	w->seq = ++worker_seq;
	w->app = a;
	strlcpy(w->bundle, a->bundle, sizeof(w->bundle));
	w->state = PW_SPAWNING;
	w->port = -1;
	w->started_ms = w->last_active = proxy_now_ms();
	TAILQ_INIT(&w->waiters);
	if ((w->timer = evtimer_new(proc_base, worker_timer, w)) == NULL)
		fatal("evtimer_new");
	TAILQ_INSERT_TAIL(&a->workers, w, app_entry);
	TAILQ_INSERT_TAIL(&proxy_workers, w, all_entry);
	a->spawning = 1;
	if (api_call_internal(PROC_SPAWN, "workers.start", json_pack(
	    "{s:s s:s s:I s:f}", "app_id", a->id, "bundle_id", a->bundle,
	    "memory_limit", (json_int_t)a->memory_limit, "cpu_limit",
	    a->cpu_limit), spawn_done, (void *)(uintptr_t)w->seq) == -1) {
		log_warnx("app %s: byspawn unavailable", a->name);
		TAILQ_REMOVE(&a->workers, w, app_entry);
		TAILQ_REMOVE(&proxy_workers, w, all_entry);
		event_free(w->timer);
		free(w);
		a->spawning = 0;
		return NULL;
	}
	log_debug("app %s: starting a worker", a->name);
	return w;
}

/* ---- health ---- */

struct health_probe {
	uint64_t		 seq;
	struct bufferevent	*bev;
	struct event		*timer;
};

static void
health_result(struct health_probe *hp, int ok)
{
	struct pworker	*w = pworker_by_seq(hp->seq);

	if (hp->bev != NULL)
		bufferevent_free(hp->bev);
	event_free(hp->timer);
	free(hp);
	if (w == NULL || w->state != PW_READY)
		return;
	w->probing = 0;
	if (ok) {
		w->misses = 0;
		return;
	}
	if (++w->misses < HEALTH_MISSES) {
		log_warnx("app %s: worker %s missed a health check",
		    w->app->name, w->id);
		return;
	}
	log_warnx("app %s: worker %s failed %d health checks in a row",
	    w->app->name, w->id, w->misses);
	pworker_stop(w, "health check failed", 1);
}

static void
health_event(struct bufferevent *bev, short what, void *arg)
{
	health_result(arg, (what & BEV_EVENT_CONNECTED) != 0);
}

static void
health_timeout(evutil_socket_t fd, short ev, void *arg)
{
	health_result(arg, 0);
}

static void
health_check(struct pworker *w)
{
	struct health_probe	*hp;
	struct timeval		 tv = ms_tv(HEALTH_TIMEOUT_MS);

	if ((hp = calloc(1, sizeof(*hp))) == NULL)
		fatal("calloc");
	hp->seq = w->seq;
	if ((hp->timer = evtimer_new(proc_base, health_timeout, hp)) == NULL)
		fatal("evtimer_new");
	w->probing = 1;
	evtimer_add(hp->timer, &tv);
	if ((hp->bev = proxy_dial(proc_base, w->port, 0, NULL, NULL,
	    health_event, hp)) == NULL)
		health_result(hp, 0);
}

void
pworker_health_tick(void)
{
	struct pworker	*w, *tw;

	TAILQ_FOREACH_SAFE(w, &proxy_workers, all_entry, tw)
		if (w->state == PW_READY && !w->probing)
			health_check(w);
}
