/*
 * A small router: a table of method + path pattern, matched segment by
 * segment.  Patterns are exact ("/healthz"), carry "{name}" segments
 * ("/api/v1/apps/{id}"), or end in a "*" segment for a prefix
 * ("/app/{name}/" followed by "*"), whose rest is the parameter "*".
 * The most specific match wins: more literal segments first, a prefix
 * route last.
 *
 * Groups add response headers to every answer under a path prefix
 * (the /api/v1/ security headers), including 404 and 405 answers.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "byproxy.h"

#define ROUTE_MAX_SEGS	32

struct route_ent {
	TAILQ_ENTRY(route_ent) entry;
	struct http_route route;
	enum http_method method;
	char		*pattern;	/* owned copy, split into segs */
	char		*segs[ROUTE_MAX_SEGS];
	size_t		 nsegs;
	int		 prefix;	/* last segment is "*" */
	int		 any;		/* method "*": every method */
};

struct route_group {
	TAILQ_ENTRY(route_group) entry;
	char		*prefix;
	http_group_fn	 fn;
};

struct http_router {
	TAILQ_HEAD(, route_ent) routes;
	TAILQ_HEAD(, route_group) groups;
	http_gate_fn	 gate;		/* before any handler (rate limits) */
};

struct http_router *
http_router_new(void)
{
	struct http_router	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	TAILQ_INIT(&r->routes);
	TAILQ_INIT(&r->groups);
	return r;
}

void
http_router_free(struct http_router *r)
{
	struct route_ent	*e;
	struct route_group	*g;

	if (r == NULL)
		return;
	while ((e = TAILQ_FIRST(&r->routes)) != NULL) {
		TAILQ_REMOVE(&r->routes, e, entry);
		free(e->pattern);
		free(e);
	}
	while ((g = TAILQ_FIRST(&r->groups)) != NULL) {
		TAILQ_REMOVE(&r->groups, g, entry);
		free(g->prefix);
		free(g);
	}
	free(r);
}

static int
method_parse(const char *s, enum http_method *m)
{
	int	 i;

	for (i = 0; i <= HTTP_SOURCE; i++) {
		if (strcmp(http_method_str((enum http_method)i), s) == 0) {
			*m = (enum http_method)i;
			return 0;
		}
	}
	return -1;
}

/* Split "/a/{b}/c" in place into "a", "{b}", "c". */
static int
pattern_split(struct route_ent *e)
{
	char	*p, *seg;

	if (e->pattern[0] != '/')
		return -1;
	p = e->pattern + 1;
	if (*p == '\0')
		return 0;		/* "/" has no segments */
	while ((seg = strsep(&p, "/")) != NULL) {
		if (e->nsegs == ROUTE_MAX_SEGS)
			return -1;
		if (strcmp(seg, "*") == 0) {
			if (p != NULL)
				return -1;	/* "*" only at the end */
			e->prefix = 1;
			break;
		}
		if (seg[0] == '{') {
			/* "{name}" is stored as "{name" */
			if (strlen(seg) < 3 || seg[strlen(seg) - 1] != '}')
				return -1;
			seg[strlen(seg) - 1] = '\0';
		}
		e->segs[e->nsegs++] = seg;
	}
	return 0;
}

int
http_router_add(struct http_router *r, const struct http_route *route)
{
	struct route_ent	*e;
	size_t			 i, nparams = 0;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->route = *route;
	e->any = strcmp(route->method, "*") == 0;
	if ((!e->any && method_parse(route->method, &e->method) == -1) ||
	    route->fn == NULL || route->listeners == 0 ||
	    (e->pattern = strdup(route->pattern)) == NULL ||
	    pattern_split(e) == -1)
		goto bad;
	e->route.pattern = route->pattern;
	for (i = 0; i < e->nsegs; i++)
		if (e->segs[i][0] == '{')
			nparams++;
	if (nparams + e->prefix > HTTP_MAX_PARAMS)
		goto bad;
	TAILQ_INSERT_TAIL(&r->routes, e, entry);
	return 0;
bad:
	log_warnx("router: bad route %s %s", route->method, route->pattern);
	free(e->pattern);
	free(e);
	return -1;
}

int
http_router_group(struct http_router *r, const char *prefix,
    http_group_fn fn)
{
	struct route_group	*g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return -1;
	if ((g->prefix = strdup(prefix)) == NULL) {
		free(g);
		return -1;
	}
	g->fn = fn;
	TAILQ_INSERT_TAIL(&r->groups, g, entry);
	return 0;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Percent-decode n bytes of s; NULL on a bad escape or a NUL. */
static char *
pct_decode(const char *s, size_t n)
{
	char	*out, *o;
	size_t	 i;
	int	 hi, lo;

	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0, o = out; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n)
			goto bad;
		if ((hi = hexval((unsigned char)s[i + 1])) == -1 ||
		    (lo = hexval((unsigned char)s[i + 2])) == -1 ||
		    (hi == 0 && lo == 0))
			goto bad;
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

struct path_segs {
	const char	*s[ROUTE_MAX_SEGS];
	size_t		 len[ROUTE_MAX_SEGS];
	size_t		 n;
	int		 overflow;	/* more segments than we track */
};

static void
path_split(const char *path, struct path_segs *ps)
{
	const char	*p = path + 1, *slash;

	memset(ps, 0, sizeof(*ps));
	if (*path != '/' || *p == '\0')
		return;
	for (;;) {
		if (ps->n == ROUTE_MAX_SEGS) {
			ps->overflow = 1;
			return;
		}
		slash = strchr(p, '/');
		ps->s[ps->n] = p;
		ps->len[ps->n] = slash != NULL ? (size_t)(slash - p) :
		    strlen(p);
		ps->n++;
		if (slash == NULL)
			return;
		p = slash + 1;
	}
}

/*
 * Does the route's pattern match?  Returns the number of literal
 * segments (its specificity) or -1.
 */
static int
route_match_path(const struct route_ent *e, const struct path_segs *ps)
{
	size_t	 i;
	int	 score = 0;

	if (e->prefix ? ps->n < e->nsegs + 1 :
	    (ps->n != e->nsegs || ps->overflow))
		return -1;
	for (i = 0; i < e->nsegs; i++) {
		if (e->segs[i][0] == '{') {
			if (ps->len[i] == 0)
				return -1;	/* "{x}" needs a value */
			continue;
		}
		if (strlen(e->segs[i]) != ps->len[i] ||
		    memcmp(e->segs[i], ps->s[i], ps->len[i]) != 0)
			return -1;
		score++;
	}
	return score;
}

static int
route_better(const struct route_ent *a, int ascore,
    const struct route_ent *b, int bscore)
{
	if (b == NULL)
		return 1;
	if (a->prefix != b->prefix)
		return !a->prefix;
	return ascore > bscore;
}

static int
params_fill(const struct route_ent *e, const struct path_segs *ps,
    struct http_request *req)
{
	struct http_param	*pp;
	size_t			 i;
	char			*v;

	for (i = 0; i < e->nsegs; i++) {
		if (e->segs[i][0] != '{')
			continue;
		if ((v = pct_decode(ps->s[i], ps->len[i])) == NULL)
			return -1;
		/* the name is kept, without braces, in the route's copy */
		pp = &req->params[req->nparams++];
		pp->name = e->segs[i] + 1;
		pp->value = v;
	}
	if (e->prefix) {
		/* the raw rest after the prefix, for the proxy to forward */
		v = strdup(ps->s[e->nsegs]);
		if (v == NULL)
			return -1;
		pp = &req->params[req->nparams++];
		pp->name = "*";
		pp->value = v;
	}
	return 0;
}

static void
allow_add(char *allow, size_t len, const char *m)
{
	const char	*p = allow;
	size_t		 n = strlen(m);

	/* avoid duplicates such as GET twice on two patterns */
	while ((p = strstr(p, m)) != NULL) {
		if ((p == allow || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ','))
			return;
		p += n;
	}
	if (allow[0] != '\0')
		strlcat(allow, ", ", len);
	strlcat(allow, m, len);
}

/*
 * Fill req->route and its params, or set req->route_status to 404 (no
 * route on this listener) or 405 (path known, method not: req->allow).
 * HEAD is served by a GET route.  -1 on a path that cannot be decoded.
 */
int
http_router_match(const struct http_router *r, struct http_request *req)
{
	const struct route_ent	*e, *best = NULL;
	struct path_segs	 ps;
	int			 score, bscore = -1, known = 0;
	enum http_method	 m = req->method;

	path_split(req->path, &ps);
	req->allow[0] = '\0';
	TAILQ_FOREACH(e, &r->routes, entry) {
		if (!(e->route.listeners & req->listener))
			continue;
		if ((score = route_match_path(e, &ps)) == -1)
			continue;
		known = 1;
		if (!e->any) {
			allow_add(req->allow, sizeof(req->allow),
			    http_method_str(e->method));
			if (e->method == HTTP_GET)
				allow_add(req->allow, sizeof(req->allow),
				    "HEAD");
		}
		if (!e->any && e->method != m && !(m == HTTP_HEAD &&
		    e->method == HTTP_GET))
			continue;
		if (route_better(e, score, best, bscore)) {
			best = e;
			bscore = score;
		}
	}
	if (best == NULL) {
		req->route_status = known ? 405 : 404;
		return 0;
	}
	req->route = &best->route;
	req->route_status = 0;
	return params_fill(best, &ps, req);
}

void
http_router_headers(const struct http_router *r, struct http_request *req)
{
	const struct route_group *g;

	TAILQ_FOREACH(g, &r->groups, entry)
		if (strncmp(req->path, g->prefix, strlen(g->prefix)) == 0)
			g->fn(req);
}

/* One function that may answer a request before its handler runs. */
void
http_router_gate(struct http_router *r, http_gate_fn fn)
{
	r->gate = fn;
}

void
http_router_dispatch(const struct http_router *r, struct http_request *req)
{
	if (r->gate != NULL && r->gate(req) == -1)
		return;
	if (req->route_status == 405) {
		http_add_header(req, "Allow", req->allow);
		http_error(req, 405, "method_not_allowed",
		    "method not allowed");
		return;
	}
	if (req->route == NULL) {
		http_error(req, 404, "not_found", "not found");
		return;
	}
	req->route->fn(req, req->route->arg);
}

/* The /api/v1/ group: API answers are never framed, sniffed or cached. */
void
http_api_headers(struct http_request *req)
{
	http_add_header(req, "Content-Security-Policy",
	    "default-src 'none'; frame-ancestors 'none'");
	http_add_header(req, "Cache-Control", "no-store");
}

/* Every route of a table, in order; -1 at the first that fails. */
int
http_router_add_table(struct http_router *r, const struct http_route *t,
    size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (http_router_add(r, &t[i]) == -1)
			return -1;
	return 0;
}
