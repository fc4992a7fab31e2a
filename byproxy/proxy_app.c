/*
 * /app/<name>/: what a user of a deployed app touches.
 *
 *	GET /app/{name}			301 to /app/{name}/
 *	*   /app/{name}/...		the app: HTTP and WebSocket
 *	GET /app/{name}/__blockyard/ready	{"ready": bool}
 *
 * An app is resolved by id, name or alias through bystate
 * (proxy.resolve) and the answer is kept for RESOLVE_TTL_MS, or until
 * the API changes the app.  A browser session is the blockyard_route
 * cookie: it names a session, the session names its worker.
 *
 * Capacity.  A worker's load is its open WebSockets plus the sessions
 * placed on it that have not opened one yet (for PENDING_MS after
 * their last request).  A new session goes to the least-loaded worker
 * of the active bundle with load below max_sessions_per_worker; else a
 * new worker is started within max_workers_per_app and proxy.max_workers;
 * else 503.  The decision and the reservation happen in one call on
 * byproxy's only thread, so parallel first requests cannot overshoot.
 * One spawn at a time per app: a request that needs another worker
 * while one is starting waits for that start to settle.
 *
 * Cold start.  A browser (Accept: text/html) that finds no ready worker
 * gets the loading page at once; it long-polls __blockyard/ready and
 * reloads.  Other clients wait for the worker, up to
 * proxy.worker_start_timeout.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "uuid.h"
#include "byproxy.h"
#include "ws_frame.h"

#define RESOLVE_TTL_MS		1000
#define PENDING_MS		30000	/* a session without a WebSocket */
#define READY_WAIT_MS		20000	/* long poll of __blockyard/ready */
#define TICK_MS			1000
#define PREWARM_LIST_MS		60000	/* apps nobody opened yet */
#define APP_BODY_MAX		((size_t)1 << 32)
#define COOKIE_NAME		"blockyard_route"
#define NAME_MAX_LEN		128

/* A name as requested, and what bystate said it is. */
struct pname {
	RB_ENTRY(pname)		 entry;
	char			*name;
	int			 status;	/* 200, 404; 0: never asked */
	char			 app_id[UUID_LEN];
	char			*redirect;
	int64_t			 fetched_ms;
	int			 inflight;
	TAILQ_HEAD(, pwait)	 waiters;
};

struct psession {
	RB_ENTRY(psession)	 entry;
	char			 id[UUID_LEN];
	struct pworker		*w;
	int			 nws;
	int			 pending;	/* holds a slot, no WS yet */
	int			 recorded;	/* sessions row written */
	int64_t			 last_access;
	time_t			 created;
};

enum pwait_kind {
	PWAIT_NAME,		/* resolution: run the request again */
	PWAIT_SPAWN,		/* the app's spawn slot: run again */
	PWAIT_WORKER,		/* the session's worker to be ready */
	PWAIT_READY,		/* __blockyard/ready?wait=1 */
};

struct pwait {
	TAILQ_ENTRY(pwait)	 entry;
	TAILQ_ENTRY(pwait)	 all;
	enum pwait_kind		 kind;
	struct http_server	*srv;
	uint64_t		 handle;
	void			*on;		/* pname, papp or pworker */
	char			 session[UUID_LEN];
	int64_t			 deadline;	/* PWAIT_READY */
};

struct pdrain {
	TAILQ_ENTRY(pdrain)	 entry;
	char			 app_id[UUID_LEN];
	void			(*done)(void *);
	void			*arg;
};

static int	name_cmp(struct pname *, struct pname *);
static int	app_cmp(struct papp *, struct papp *);
static int	session_cmp(struct psession *, struct psession *);
RB_HEAD(pname_tree, pname);
RB_HEAD(papp_tree, papp);
RB_HEAD(psession_tree, psession);
RB_PROTOTYPE(pname_tree, pname, entry, name_cmp);
RB_PROTOTYPE(papp_tree, papp, entry, app_cmp);
RB_PROTOTYPE(psession_tree, psession, entry, session_cmp);
RB_GENERATE(pname_tree, pname, entry, name_cmp);
RB_GENERATE(papp_tree, papp, entry, app_cmp);
RB_GENERATE(psession_tree, psession, entry, session_cmp);

static struct pname_tree	 names = RB_INITIALIZER(&names);
static struct papp_tree		 apps = RB_INITIALIZER(&apps);
static struct psession_tree	 sessions = RB_INITIALIZER(&sessions);
static TAILQ_HEAD(, pwait)	 all_waits = TAILQ_HEAD_INITIALIZER(all_waits);
static TAILQ_HEAD(, pdrain)	 drains = TAILQ_HEAD_INITIALIZER(drains);
static struct event		*tick_ev;

static void	 app_request(struct http_request *);
static void	 session_go(struct http_request *, struct psession *);
static void	 ready_answer(struct http_request *, struct papp *);
static void	 papp_prewarm(struct papp *);
static void	 resolve_done(json_t *, void *);
static void	 prewarm_listed(json_t *, void *);
static int	 papp_ready(const struct papp *);

static int
name_cmp(struct pname *a, struct pname *b)
{
	return strcmp(a->name, b->name);
}

static int
app_cmp(struct papp *a, struct papp *b)
{
	return strcmp(a->id, b->id);
}

static int
session_cmp(struct psession *a, struct psession *b)
{
	return strcmp(a->id, b->id);
}

/* ---- waiting requests ---- */

static void
wait_free(struct pwait *pw)
{
	TAILQ_REMOVE(&all_waits, pw, all);
	free(pw);
}

static TAILQ_HEAD(pwait_list, pwait) *
wait_list(struct pwait *pw)
{
	switch (pw->kind) {
	case PWAIT_NAME:
		return (struct pwait_list *)&((struct pname *)pw->on)->waiters;
	case PWAIT_SPAWN:
		return (struct pwait_list *)
		    &((struct papp *)pw->on)->spawn_waiters;
	case PWAIT_WORKER:
		return (struct pwait_list *)
		    &((struct pworker *)pw->on)->waiters;
	case PWAIT_READY:
		return NULL;
	}
	return NULL;
}

/* The client left while it waited. */
static void
wait_cancel(struct http_request *req, void *arg)
{
	struct pwait		*pw = arg;
	struct pwait_list	*l = wait_list(pw);

	if (l != NULL)
		TAILQ_REMOVE(l, pw, entry);
	wait_free(pw);
}

static void
wait_on(struct http_request *req, enum pwait_kind kind, void *on,
    const char *session)
{
	struct pwait		*pw;
	struct pwait_list	*l;

	if ((pw = calloc(1, sizeof(*pw))) == NULL)
		fatal("calloc");
	pw->kind = kind;
	pw->on = on;
	pw->srv = http_request_server(req);
	pw->handle = http_request_handle(req);
	if (session != NULL)
		strlcpy(pw->session, session, sizeof(pw->session));
	if (kind == PWAIT_READY)
		pw->deadline = proxy_now_ms() + READY_WAIT_MS;
	TAILQ_INSERT_TAIL(&all_waits, pw, all);
	if ((l = wait_list(pw)) != NULL)
		TAILQ_INSERT_TAIL(l, pw, entry);
	http_set_cancel(req, wait_cancel, pw);
}

/*
 * Take a waiter off its list: its request, with our cancel hook
 * removed, or NULL when the client is gone.
 */
static struct http_request *
wait_take(struct pwait *pw)
{
	struct pwait_list	*l = wait_list(pw);
	struct http_request	*req;

	if (l != NULL)
		TAILQ_REMOVE(l, pw, entry);
	req = http_request_lookup(pw->srv, pw->handle);
	if (req != NULL)
		http_set_cancel(req, NULL, NULL);
	return req;
}

/* ---- small helpers ---- */

static int
text_reply(struct http_request *req, int status, const char *text)
{
	return http_reply(req, status, "text/plain; charset=utf-8", text,
	    strlen(text));
}

static int
app_name_valid(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '-'))
			return 0;
	return n >= 1 && n <= 63;
}

/* The raw path after /app/<name>: "/" or more. */
static const char *
path_rest(const struct http_request *req)
{
	const char	*p = req->path + strlen("/app/");

	p = strchr(p, '/');
	return p != NULL ? p : "/";
}

/* Path and query to send to the worker. */
static char *
upstream_target(const struct http_request *req)
{
	char	*t;

	if (asprintf(&t, "%s%s%s", path_rest(req), req->query ? "?" : "",
	    req->query ? req->query : "") == -1)
		fatal("asprintf");
	return t;
}

static int
external_https(void)
{
	const char	*u = proc_conf->server.external_url;

	return u != NULL && strncasecmp(u, "https://", 8) == 0;
}

/* The blockyard_route cookie's value, copied into buf, or NULL. */
static const char *
cookie_route(const struct http_request *req, char *buf, size_t len)
{
	size_t		 i, n = strlen(COOKIE_NAME);
	const char	*p, *e;

	for (i = 0; i < req->headers.n; i++) {
		if (strcasecmp(req->headers.v[i].name, "Cookie") != 0)
			continue;
		for (p = req->headers.v[i].value; *p != '\0'; p = e) {
			while (*p == ' ' || *p == ';')
				p++;
			e = p + strcspn(p, ";");
			if ((size_t)(e - p) > n && strncmp(p, COOKIE_NAME, n) ==
			    0 && p[n] == '=') {
				p += n + 1;
				if ((size_t)(e - p) >= len)
					return NULL;
				memcpy(buf, p, e - p);
				buf[e - p] = '\0';
				return buf;
			}
		}
	}
	return NULL;
}

static int
accepts_html(const struct http_request *req)
{
	const char	*a = http_header_get(req, "Accept");

	return (req->method == HTTP_GET || req->method == HTTP_HEAD) &&
	    a != NULL && strstr(a, "text/html") != NULL;
}

/* ---- apps ---- */

static struct papp *
papp_find(const char *id)
{
	struct papp	 key;

	strlcpy(key.id, id, sizeof(key.id));
	return RB_FIND(papp_tree, &apps, &key);
}

/* By id, or by the name it had when we last resolved it. */
static struct papp *
papp_lookup(const char *idname)
{
	struct papp	*a;

	if (idname == NULL)
		return NULL;
	if ((a = papp_find(idname)) != NULL)
		return a;
	RB_FOREACH(a, papp_tree, &apps)
		if (a->name != NULL && strcmp(a->name, idname) == 0)
			return a;
	return NULL;
}

static int
worker_current(const struct pworker *w)
{
	return w->state != PW_GONE && !w->draining &&
	    strcmp(w->bundle, w->app->bundle) == 0;
}

static void
worker_drain(struct pworker *w, int64_t timeout_ms)
{
	int64_t	 deadline = timeout_ms > 0 ? proxy_now_ms() + timeout_ms : 0;

	if (w->state == PW_GONE)
		return;
	if (!w->draining) {
		log_info("app %s: worker %s draining", w->app->name,
		    w->id[0] ? w->id : "(starting)");
		w->draining = 1;
		w->deadline = deadline;
	} else if (deadline != 0 && (w->deadline == 0 ||
	    deadline < w->deadline))
		w->deadline = deadline;
}

/* bystate's view of the app, applied: a new bundle drains the old. */
static struct papp *
papp_update(json_t *d)
{
	struct papp	*a;
	struct pworker	*w;
	const char	*id, *name, *bundle;
	json_t		*v;
	int		 was_enabled;

	id = json_string_value(json_object_get(d, "id"));
	name = json_string_value(json_object_get(d, "name"));
	if (id == NULL || strlen(id) >= UUID_LEN || name == NULL)
		return NULL;
	if ((a = papp_find(id)) == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL)
			fatal("calloc");
		strlcpy(a->id, id, sizeof(a->id));
		TAILQ_INIT(&a->workers);
		TAILQ_INIT(&a->spawn_waiters);
		a->enabled = 1;
		RB_INSERT(papp_tree, &apps, a);
	}
	free(a->name);
	if ((a->name = strdup(name)) == NULL)
		fatal("strdup");
	was_enabled = a->enabled;
	a->enabled = json_is_true(json_object_get(d, "enabled"));
	bundle = json_string_value(json_object_get(d, "active_bundle"));
	strlcpy(a->bundle, bundle && strlen(bundle) < UUID_LEN ? bundle : "",
	    sizeof(a->bundle));
	v = json_object_get(d, "max_workers_per_app");
	a->max_workers = json_is_integer(v) ? (int)json_integer_value(v) : 0;
	v = json_object_get(d, "max_sessions_per_worker");
	a->max_sessions = json_is_integer(v) && json_integer_value(v) > 0 ?
	    (int)json_integer_value(v) : 1;
	a->prewarm = (int)json_integer_value(json_object_get(d,
	    "pre_warmed_sessions"));
	a->memory_limit = (uint64_t)json_integer_value(json_object_get(d,
	    "memory_limit"));
	a->cpu_limit = json_number_value(json_object_get(d, "cpu_limit"));
	a->fetched_ms = proxy_now_ms();

	TAILQ_FOREACH(w, &a->workers, app_entry) {
		if (!a->enabled && was_enabled)
			worker_drain(w, proc_conf->server.shutdown_timeout);
		else if (strcmp(w->bundle, a->bundle) != 0)
			worker_drain(w, 0);
	}
	return a;
}

/* May the app start one more worker?  NULL, or the 503 text. */
static const char *
papp_spawn_refusal(const struct papp *a)
{
	const struct pworker	*w;
	int			 n = 0;

	TAILQ_FOREACH(w, &a->workers, app_entry)
		if (w->state != PW_GONE && !w->draining)
			n++;
	if (a->max_workers > 0 && n >= a->max_workers)
		return "app at capacity";
	if (proc_conf->proxy.max_workers > 0 &&
	    pworker_count() >= (size_t)proc_conf->proxy.max_workers)
		return "server at capacity";
	return NULL;
}

/* Free session slots on current workers (ready or on their way). */
static int
papp_free_slots(const struct papp *a, const struct pworker *except)
{
	const struct pworker	*w;
	int			 n = 0, f;

	TAILQ_FOREACH(w, &a->workers, app_entry) {
		if (w == except || !worker_current(w))
			continue;
		if ((f = a->max_sessions - pworker_load(w)) > 0)
			n += f;
	}
	return n;
}

static void
papp_prewarm(struct papp *a)
{
	if (!a->enabled || a->bundle[0] == '\0' || a->prewarm <= 0 ||
	    a->spawning)
		return;
	if (papp_free_slots(a, NULL) >= a->prewarm ||
	    papp_spawn_refusal(a) != NULL)
		return;
	log_debug("app %s: pre-warming a worker", a->name);
	pworker_spawn(a);
}

/* The least-loaded current worker with room; ready ones first. */
static struct pworker *
papp_place(struct papp *a)
{
	struct pworker	*w, *best = NULL;
	int		 load;

	TAILQ_FOREACH(w, &a->workers, app_entry) {
		if (!worker_current(w) || (load = pworker_load(w)) >=
		    a->max_sessions)
			continue;
		if (best == NULL ||
		    (w->state == PW_READY && best->state != PW_READY) ||
		    (w->state == best->state && load < pworker_load(best)))
			best = w;
	}
	return best;
}

static int
papp_ready(const struct papp *a)
{
	const struct pworker	*w;

	TAILQ_FOREACH(w, &a->workers, app_entry)
		if (worker_current(w) && w->state == PW_READY &&
		    pworker_load(w) < a->max_sessions)
			return 1;
	return 0;
}

/* ---- sessions ---- */

static struct psession *
session_find(const char *id)
{
	struct psession	 key;

	if (id == NULL || strlen(id) >= sizeof(key.id))
		return NULL;
	strlcpy(key.id, id, sizeof(key.id));
	return RB_FIND(psession_tree, &sessions, &key);
}

static void
session_unpend(struct psession *s)
{
	if (s->pending) {
		s->pending = 0;
		if (s->w != NULL)
			s->w->npending--;
	}
}

static void
session_free(struct psession *s)
{
	session_unpend(s);
	if (s->w != NULL)
		s->w->nws -= s->nws;
	RB_REMOVE(psession_tree, &sessions, s);
	free(s);
}

static struct psession *
session_new(struct pworker *w)
{
	struct psession	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("calloc");
	uuid_v4(s->id, sizeof(s->id));
	s->w = w;
	s->pending = 1;
	w->npending++;
	s->last_access = proxy_now_ms();
	s->created = time(NULL);
	RB_INSERT(psession_tree, &sessions, s);
	return s;
}

static void
session_record(struct psession *s)
{
	if (s->recorded || s->w == NULL || s->w->id[0] == '\0')
		return;
	s->recorded = 1;
	if (api_call_internal(PROC_STATE, "sessions.open", json_pack(
	    "{s:s s:s s:s s:n}", "id", s->id, "app_id", s->w->app->id,
	    "worker_id", s->w->id, "user_sub"), NULL, NULL) == -1)
		log_warnx("session %s: cannot record it", s->id);
}

static void
set_cookie(struct http_request *req, const char *name, const char *id)
{
	char	 buf[512], age[48] = "";

	if (proc_conf->proxy.session_idle_ttl > 0)
		snprintf(age, sizeof(age), "; Max-Age=%lld",
		    (long long)(proc_conf->proxy.session_idle_ttl / 1000));
	snprintf(buf, sizeof(buf), "%s=%s; Path=/app/%s/%s; HttpOnly; "
	    "SameSite=Lax%s", COOKIE_NAME, id, name, age,
	    external_https() ? "; Secure" : "");
	http_add_header(req, "Set-Cookie", buf);
}

json_t *
proxy_worker_sessions(const char *worker_id)
{
	struct psession	*s;
	json_t		*arr = json_array();
	char		 ts[32];

	RB_FOREACH(s, psession_tree, &sessions) {
		if (s->w == NULL || strcmp(s->w->id, worker_id) != 0)
			continue;
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ",
		    gmtime(&s->created));
		json_array_append_new(arr, json_pack("{s:s s:n s:s s:i}",
		    "id", s->id, "user_sub", "started_at", ts,
		    "websockets", s->nws));
	}
	return arr;
}

/* ---- workers settle ---- */

void
papp_worker_ready(struct pworker *w)
{
	struct papp		*a = w->app;
	struct pwait		*pw;
	struct http_request	*req;
	struct psession		*s;

	a->spawning = 0;
	while ((pw = TAILQ_FIRST(&w->waiters)) != NULL) {
		req = wait_take(pw);
		s = session_find(pw->session);
		wait_free(pw);
		if (req != NULL)
			session_go(req, s);
	}
	/* those who waited for the spawn slot decide again */
	while ((pw = TAILQ_FIRST(&a->spawn_waiters)) != NULL) {
		req = wait_take(pw);
		wait_free(pw);
		if (req != NULL)
			app_request(req);
	}
	TAILQ_FOREACH(pw, &all_waits, all)
		if (pw->kind == PWAIT_READY && pw->on == a)
			pw->deadline = 0;	/* answered on the next tick */
	if (papp_ready(a))
		event_active(tick_ev, EV_TIMEOUT, 0);
	papp_prewarm(a);
}

void
papp_worker_failed(struct pworker *w, int status, const char *text)
{
	struct papp		*a = w->app;
	struct pwait		*pw;
	struct http_request	*req;

	a->spawning = 0;
	while ((pw = TAILQ_FIRST(&w->waiters)) != NULL) {
		req = wait_take(pw);
		wait_free(pw);
		if (req != NULL)
			text_reply(req, status, text);
	}
	/* no second attempt on their behalf: the same start would fail */
	while ((pw = TAILQ_FIRST(&a->spawn_waiters)) != NULL) {
		req = wait_take(pw);
		wait_free(pw);
		if (req != NULL)
			text_reply(req, status, text);
	}
}

void
papp_worker_gone(struct pworker *w, int crashed)
{
	struct psession	*s, *ts;

	if (!TAILQ_EMPTY(&w->waiters))
		papp_worker_failed(w, 503, "app failed to start");
	RB_FOREACH_SAFE(s, psession_tree, &sessions, ts)
		if (s->w == w)
			session_free(s);
	if (w->id[0] != '\0' && api_call_internal(PROC_STATE, "sessions.end",
	    json_pack("{s:s s:s}", "worker_id", w->id, "status",
	    crashed ? "crashed" : "ended"), NULL, NULL) == -1)
		log_warnx("worker %s: cannot end its sessions", w->id);
}

/* ---- forwarding ---- */

static void
forward_done(void *arg, int status)
{
	struct pworker	*w = pworker_find(arg);

	if (w != NULL) {
		w->inflight--;
		w->last_active = proxy_now_ms();
	}
	free(arg);
}

static void
add_forwarded(struct http_request *req, struct http_headers *h)
{
	char		 ip[64];
	const char	*host = http_header_get(req, "Host");

	realip_str(req, ip, sizeof(ip));
	proxy_headers_add(h, "X-Forwarded-For", ip);
	if (host != NULL)
		proxy_headers_add(h, "X-Forwarded-Host", host);
	proxy_headers_add(h, "X-Forwarded-Proto", external_https() ? "https" :
	    "http");
	proxy_headers_add(h, "X-Shiny-Access", "anonymous");
}

static void
http_go(struct http_request *req, struct psession *s)
{
	struct proxy_upstream	 up;
	struct pworker		*w = s->w;
	char			*target;

	memset(&up, 0, sizeof(up));
	target = upstream_target(req);
	up.worker_id = w->id;
	up.port = w->port;
	up.target = target;
	add_forwarded(req, &up.add);
	up.timeout_ms = proc_conf->proxy.http_forward_timeout;
	up.done = forward_done;
	if ((up.arg = strdup(w->id)) == NULL)
		fatal("strdup");
	w->inflight++;
	s->last_access = w->last_active = proxy_now_ms();
	proxy_http_forward(req, &up);
	proxy_headers_free(&up.add);
	free(target);
}

static void
ws_go(struct http_request *req, struct psession *s)
{
	struct proxy_ws_target	 t;
	struct pworker		*w = s->w;
	struct papp		*a = w->app;
	char			*target;
	int			 load;

	if (!proxy_ws_origin_ok(req, proc_conf->server.external_url)) {
		text_reply(req, 403, "forbidden");
		return;
	}
	/* this session's own reservation becomes its WebSocket */
	load = pworker_load(w) - (s->pending ? 1 : 0);
	if (load + 1 > a->max_sessions) {
		text_reply(req, 503, "app at capacity");
		return;
	}
	session_unpend(s);
	s->nws++;
	w->nws++;
	s->last_access = w->last_active = proxy_now_ms();
	memset(&t, 0, sizeof(t));
	target = upstream_target(req);
	t.worker_id = w->id;
	t.session_id = s->id;
	t.port = w->port;
	t.target = target;
	add_forwarded(req, &t.add);
	t.idle_ms = proc_conf->proxy.session_idle_ttl;
	t.lifetime_ms = proc_conf->proxy.session_max_lifetime;
	t.cache_ttl_ms = proc_conf->proxy.ws_cache_ttl;
	t.max_message = WS_MESSAGE_MAX_DEFAULT;
	proxy_ws_upgrade(req, &t);
	proxy_headers_free(&t.add);
	free(target);
}

static void
ws_released(const char *worker_id, const char *session_id)
{
	struct psession	*s = session_find(session_id);

	if (s == NULL || s->w == NULL || s->nws == 0)
		return;
	s->nws--;
	s->w->nws--;
	s->last_access = s->w->last_active = proxy_now_ms();
}

static void
ws_activity(const char *session_id)
{
	struct psession	*s = session_find(session_id);

	if (s != NULL && s->w != NULL)
		s->last_access = s->w->last_active = proxy_now_ms();
}

/* A session whose worker exists: go now, or once it is ready. */
static void
session_go(struct http_request *req, struct psession *s)
{
	if (s == NULL || s->w == NULL || s->w->state == PW_GONE) {
		text_reply(req, 503, "app failed to start");
		return;
	}
	if (s->w->state != PW_READY) {
		wait_on(req, PWAIT_WORKER, s->w, s->id);
		return;
	}
	session_record(s);
	if (proxy_ws_is_upgrade(req))
		ws_go(req, s);
	else
		http_go(req, s);
}

/* ---- the loading page and __blockyard/ready ---- */

static void
loading_page(struct http_request *req, const char *name)
{
	struct evbuffer	*b;
	char		*ready;
	json_t		*j;

	if (asprintf(&ready, "/app/%s/__blockyard/ready", name) == -1)
		fatal("asprintf");
	j = json_string(ready);
	free(ready);
	if ((ready = json_dumps(j, JSON_ENCODE_ANY | JSON_ESCAPE_SLASH)) ==
	    NULL)
		fatal("json_dumps");
	json_decref(j);
	if ((b = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	evbuffer_add_printf(b,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width\">"
	    "<title>Starting&hellip;</title><style>body{font-family:"
	    "system-ui,sans-serif;display:flex;align-items:center;"
	    "justify-content:center;height:90vh;color:#444}"
	    ".s{width:1.2em;height:1.2em;border:3px solid #ccc;"
	    "border-top-color:#444;border-radius:50%%;margin-right:.8em;"
	    "animation:r 1s linear infinite}@keyframes r{to{transform:"
	    "rotate(360deg)}}</style></head><body><div class=\"s\"></div>"
	    "<p id=\"m\">Starting the app&hellip;</p><script>\n"
	    "(function(){var u=%s,end=Date.now()+%lld;\n"
	    "function poll(){if(Date.now()>end){document.getElementById('m')"
	    ".textContent='The app did not start. Reload to try again.';"
	    "return;}fetch(u+'?wait=1',{cache:'no-store'})"
	    ".then(function(r){return r.json();})"
	    ".then(function(j){if(j.ready)location.reload();"
	    "else setTimeout(poll,200);})"
	    ".catch(function(){setTimeout(poll,1000);});}\npoll();})();\n"
	    "</script></body></html>\n", ready,
	    (long long)(proc_conf->proxy.worker_start_timeout + 10000));
	free(ready);
	http_add_header(req, "Cache-Control", "no-store");
	http_reply_buffer(req, 200, "text/html; charset=utf-8", b);
	evbuffer_free(b);
}

static void
ready_answer(struct http_request *req, struct papp *a)
{
	http_add_header(req, "Cache-Control", "no-store");
	http_reply_json(req, 200, json_pack("{s:b}", "ready",
	    a != NULL && papp_ready(a)));
}

static void
ready_request(struct http_request *req, struct papp *a)
{
	char	*wait;

	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		text_reply(req, 405, "method not allowed");
		return;
	}
	if (papp_ready(a)) {
		ready_answer(req, a);
		return;
	}
	/* nothing on its way (reaped, failed): start one */
	if (papp_place(a) == NULL && !a->spawning &&
	    papp_spawn_refusal(a) == NULL)
		pworker_spawn(a);
	wait = api_query_get(req, "wait");
	if (wait != NULL && strcmp(wait, "1") == 0)
		wait_on(req, PWAIT_READY, a, NULL);
	else
		ready_answer(req, a);
	free(wait);
}

/* ---- the request ---- */

/* A new session: place it, or answer why not. */
static void
session_place(struct http_request *req, struct papp *a, const char *name)
{
	struct pworker	*w;
	struct psession	*s;
	const char	*no;
	int		 browser = accepts_html(req) &&
			    !proxy_ws_is_upgrade(req);

	w = papp_place(a);
	if (browser && (w == NULL || w->state != PW_READY)) {
		if (w == NULL && !a->spawning) {
			if ((no = papp_spawn_refusal(a)) != NULL) {
				text_reply(req, 503, no);
				return;
			}
			pworker_spawn(a);
		}
		loading_page(req, name);
		return;
	}
	if (w == NULL) {
		if ((no = papp_spawn_refusal(a)) != NULL) {
			text_reply(req, 503, no);
			return;
		}
		if (a->spawning) {
			wait_on(req, PWAIT_SPAWN, a, NULL);
			return;
		}
		if ((w = pworker_spawn(a)) == NULL) {
			text_reply(req, 503, "app failed to start");
			return;
		}
	}
	s = session_new(w);
	set_cookie(req, name, s->id);
	papp_prewarm(a);
	session_go(req, s);
}

static void
app_dispatch(struct http_request *req, struct pname *pn)
{
	struct papp	*a;
	struct psession	*s;
	const char	*rest = path_rest(req), *name;
	char		 buf[UUID_LEN + 8], *loc;

	name = http_request_param(req, "name");
	if (pn->status != 200 || (a = papp_find(pn->app_id)) == NULL) {
		text_reply(req, 404, "app not found");
		return;
	}
	if (pn->redirect != NULL) {
		if (asprintf(&loc, "/app/%s%s%s%s", pn->redirect, rest,
		    req->query ? "?" : "", req->query ? req->query : "") == -1)
			fatal("asprintf");
		http_add_header(req, "Location", loc);
		free(loc);
		text_reply(req, 301, "moved permanently");
		return;
	}
	if (!a->enabled) {
		text_reply(req, 503, "app is disabled");
		return;
	}
	if (strncmp(rest, "/__blockyard/", 13) == 0) {
		if (strcmp(rest + 13, "ready") == 0)
			ready_request(req, a);
		else
			text_reply(req, 404, "not found");
		return;
	}
	s = session_find(cookie_route(req, buf, sizeof(buf)));
	if (s != NULL && s->w != NULL && s->w->state != PW_GONE &&
	    s->w->app == a) {
		s->last_access = proxy_now_ms();
		session_go(req, s);
		return;
	}
	if (a->bundle[0] == '\0') {
		text_reply(req, 503, "app has no active bundle");
		return;
	}
	session_place(req, a, name);
}

static void
resolve_done(json_t *res, void *arg)
{
	char			*name = arg;
	struct pname		 key, *pn;
	struct pwait		*pw;
	struct http_request	*req;
	struct papp		*a;
	json_t			*data = json_object_get(res, "data");
	const char		*redir;
	int			 status;

	key.name = name;
	pn = RB_FIND(pname_tree, &names, &key);
	free(name);
	if (pn == NULL)
		return;
	pn->inflight = 0;
	status = (int)json_integer_value(json_object_get(res, "status"));
	free(pn->redirect);
	pn->redirect = NULL;
	pn->status = 0;
	if (status == 200 && (a = papp_update(data)) != NULL) {
		pn->status = 200;
		strlcpy(pn->app_id, a->id, sizeof(pn->app_id));
		redir = json_string_value(json_object_get(data, "redirect"));
		if (redir != NULL && (pn->redirect = strdup(redir)) == NULL)
			fatal("strdup");
		pn->fetched_ms = proxy_now_ms();
	} else if (status == 404) {
		pn->status = 404;
		pn->fetched_ms = proxy_now_ms();
	} else
		log_warnx("app %s: cannot resolve it (status %d)", pn->name,
		    status);
	while ((pw = TAILQ_FIRST(&pn->waiters)) != NULL) {
		req = wait_take(pw);
		wait_free(pw);
		if (req == NULL)
			continue;
		if (pn->status == 0)
			text_reply(req, 503, "service unavailable");
		else
			app_dispatch(req, pn);
	}
}

static int
resolve(struct pname *pn)
{
	char	*arg;

	if ((arg = strdup(pn->name)) == NULL)
		fatal("strdup");
	if (api_call_internal(PROC_STATE, "proxy.resolve", json_pack("{s:s}",
	    "name", pn->name), resolve_done, arg) == -1) {
		free(arg);
		return -1;
	}
	pn->inflight = 1;
	return 0;
}

/* The cache entry of a requested name, made on first use. */
static struct pname *
pname_get(const char *name)
{
	struct pname	 key, *pn;

	key.name = (char *)name;
	if ((pn = RB_FIND(pname_tree, &names, &key)) != NULL)
		return pn;
	if ((pn = calloc(1, sizeof(*pn))) == NULL ||
	    (pn->name = strdup(name)) == NULL)
		fatal("calloc");
	TAILQ_INIT(&pn->waiters);
	RB_INSERT(pname_tree, &names, pn);
	return pn;
}

static void
app_request(struct http_request *req)
{
	const char	*name = http_request_param(req, "name");
	struct pname	*pn;

	if (name == NULL || strlen(name) > NAME_MAX_LEN) {
		text_reply(req, 404, "app not found");
		return;
	}
	pn = pname_get(name);
	if (pn->status != 0 && proxy_now_ms() - pn->fetched_ms <
	    RESOLVE_TTL_MS) {
		app_dispatch(req, pn);
		return;
	}
	if (!pn->inflight && resolve(pn) == -1) {
		text_reply(req, 503, "service unavailable");
		return;
	}
	wait_on(req, PWAIT_NAME, pn, NULL);
}

static void
h_app(struct http_request *req, void *arg)
{
	app_request(req);
}

static void
h_app_slash(struct http_request *req, void *arg)
{
	const char	*name = http_request_param(req, "name");
	char		*loc;

	if (name == NULL || !app_name_valid(name)) {
		text_reply(req, 404, "not found");
		return;
	}
	if (asprintf(&loc, "/app/%s/", name) == -1)
		fatal("asprintf");
	http_add_header(req, "Location", loc);
	free(loc);
	text_reply(req, 301, "moved permanently");
}

/* ---- housekeeping ---- */

static void
sessions_tick(int64_t now)
{
	struct psession	*s, *ts;
	int64_t		 ttl = proc_conf->proxy.session_idle_ttl;

	RB_FOREACH_SAFE(s, psession_tree, &sessions, ts) {
		if (s->pending && now - s->last_access >= PENDING_MS)
			session_unpend(s);
		if (ttl > 0 && s->nws == 0 && now - s->last_access >= ttl)
			session_free(s);
	}
}

static int
worker_idle(const struct pworker *w)
{
	return w->state == PW_READY && pworker_load(w) == 0 &&
	    w->inflight == 0;
}

static void
workers_tick(int64_t now)
{
	struct pworker	*w, *tw;
	struct papp	*a;

	TAILQ_FOREACH_SAFE(w, &proxy_workers, all_entry, tw) {
		a = w->app;
		if (w->draining) {
			if (w->state != PW_SPAWNING && pworker_load(w) == 0 &&
			    w->inflight == 0)
				pworker_stop(w, "drained", 0);
			else if (w->deadline != 0 && now >= w->deadline &&
			    w->state != PW_SPAWNING)
				pworker_stop(w, "drain timeout", 0);
			continue;
		}
		if (worker_idle(w) && now - w->last_active >=
		    proc_conf->proxy.idle_worker_timeout &&
		    (a->prewarm <= 0 || papp_free_slots(a, w) >= a->prewarm))
			pworker_stop(w, "idle", 0);
	}
}

static void
waits_tick(int64_t now)
{
	struct pwait		*pw, *tpw;
	struct http_request	*req;
	struct papp		*a;

	TAILQ_FOREACH_SAFE(pw, &all_waits, all, tpw) {
		if (pw->kind != PWAIT_READY)
			continue;
		a = pw->on;
		if (now < pw->deadline && !papp_ready(a))
			continue;
		req = wait_take(pw);
		wait_free(pw);
		if (req != NULL)
			ready_answer(req, a);
	}
}

static int
papp_has_workers(const char *id)
{
	struct papp	*a = papp_find(id);

	return a != NULL && !TAILQ_EMPTY(&a->workers);
}

static void
drains_tick(void)
{
	struct pdrain	*d, *td;

	TAILQ_FOREACH_SAFE(d, &drains, entry, td) {
		if (papp_has_workers(d->app_id))
			continue;
		TAILQ_REMOVE(&drains, d, entry);
		d->done(d->arg);
		free(d);
	}
}

static void
tick(evutil_socket_t fd, short ev, void *arg)
{
	static int64_t	 last_health, last_prewarm = INT64_MIN / 2;
	struct timeval	 tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	int64_t		 now = proxy_now_ms();
	struct papp	*a;

	sessions_tick(now);
	workers_tick(now);
	waits_tick(now);
	drains_tick();
	RB_FOREACH(a, papp_tree, &apps)
		papp_prewarm(a);
	if (now - last_prewarm >= PREWARM_LIST_MS) {
		last_prewarm = now;
		api_call_internal(PROC_STATE, "proxy.prewarm", NULL,
		    prewarm_listed, NULL);
	}
	if (now - last_health >= proc_conf->proxy.health_interval) {
		last_health = now;
		pworker_health_tick();
	}
	evtimer_add(tick_ev, &tv);
}

/* ---- the API's side ---- */

/* Ask bystate what idname is now; papp_update applies the answer. */
static void
papp_refresh(const char *idname)
{
	struct pname	*pn;

	if (idname == NULL || strlen(idname) > NAME_MAX_LEN)
		return;
	pn = pname_get(idname);
	if (!pn->inflight)
		resolve(pn);
}

void
proxy_app_changed(const char *app_id)
{
	struct pname	*pn;
	struct papp	*a;

	/* a rename or a new alias changes what names mean */
	RB_FOREACH(pn, pname_tree, &names)
		if (!pn->inflight)
			pn->status = 0;
	/* learn the new state now: a new bundle's old workers drain */
	if ((a = papp_lookup(app_id)) != NULL)
		papp_refresh(a->id);
	else
		papp_refresh(app_id);
}

static void
prewarm_listed(json_t *res, void *arg)
{
	json_t	*id;
	size_t	 i;

	json_array_foreach(json_object_get(json_object_get(res, "data"),
	    "apps"), i, id)
		if (json_is_string(id) && papp_find(json_string_value(id)) ==
		    NULL)
			papp_refresh(json_string_value(id));
}

void
proxy_app_drain(const char *app_id, int wait, void (*done)(void *),
    void *arg)
{
	struct papp	*a = papp_lookup(app_id);
	struct pworker	*w;
	struct pdrain	*d;

	proxy_app_changed(NULL);
	if (a != NULL)
		TAILQ_FOREACH(w, &a->workers, app_entry)
			worker_drain(w, proc_conf->server.shutdown_timeout);
	if (!wait || a == NULL || TAILQ_EMPTY(&a->workers)) {
		if (done != NULL)
			done(arg);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("calloc");
	strlcpy(d->app_id, a->id, sizeof(d->app_id));
	d->done = done;
	d->arg = arg;
	TAILQ_INSERT_TAIL(&drains, d, entry);
	event_active(tick_ev, EV_TIMEOUT, 0);
}

/*
 * The app's library changed under the same bundle (refresh, rollback):
 * every worker drains, sessions on them go on, new ones start fresh.
 */
void
proxy_app_renew(const char *app_id)
{
	struct papp	*a = papp_lookup(app_id);
	struct pworker	*w;

	if (a == NULL)
		return;
	TAILQ_FOREACH(w, &a->workers, app_entry)
		worker_drain(w, 0);
}

static const struct http_route app_routes[] = {
	{ "GET", "/app/{name}", HTTP_LISTEN_MAIN, 0, 0, h_app_slash, NULL },
	{ "*", "/app/{name}/*", HTTP_LISTEN_MAIN, APP_BODY_MAX,
	    HTTP_ROUTE_STREAM_BODY, h_app, NULL },
};

static const struct proxy_ws_events ws_events = {
	.released = ws_released,
	.activity = ws_activity,
};

int
proxy_app_routes(struct http_router *r)
{
	return http_router_add_table(r, app_routes,
	    sizeof(app_routes) / sizeof(app_routes[0]));
}

void
proxy_app_init(struct event_base *base)
{
	struct timeval	 tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };

	proxy_ws_init(&ws_events);
	if ((tick_ev = evtimer_new(base, tick, NULL)) == NULL)
		fatal("evtimer_new");
	evtimer_add(tick_ev, &tv);
}

void
proxy_app_shutdown(void)
{
	struct pname	*pn, *tpn;
	struct psession	*s, *ts;
	struct papp	*a, *ta;
	struct pwait	*pw;
	struct pdrain	*d;

	if (tick_ev != NULL) {
		event_free(tick_ev);
		tick_ev = NULL;
	}
	proxy_ws_shutdown();
	proxy_http_shutdown();
	while ((pw = TAILQ_FIRST(&all_waits)) != NULL) {
		struct http_request *req = wait_take(pw);

		wait_free(pw);
		if (req != NULL)
			text_reply(req, 503, "server shutting down");
	}
	while ((d = TAILQ_FIRST(&drains)) != NULL) {
		TAILQ_REMOVE(&drains, d, entry);
		d->done(d->arg);
		free(d);
	}
	RB_FOREACH_SAFE(s, psession_tree, &sessions, ts)
		session_free(s);
	pworker_free_all();
	RB_FOREACH_SAFE(a, papp_tree, &apps, ta) {
		RB_REMOVE(papp_tree, &apps, a);
		free(a->name);
		free(a);
	}
	RB_FOREACH_SAFE(pn, pname_tree, &names, tpn) {
		RB_REMOVE(pname_tree, &names, pn);
		free(pn->name);
		free(pn->redirect);
		free(pn);
	}
}
