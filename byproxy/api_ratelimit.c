/*
 * Per-client rate limits, as the reference sets them: a sliding window
 * of one minute that weights the previous minute's count by how much of
 * it still overlaps, per client address (api_realip.c) and per group of
 * paths.  Every answer in a limited group carries X-RateLimit-Limit,
 * -Remaining and -Reset; one over the limit gets 429 with Retry-After.
 *
 * Memory is bounded: each group keeps at most RL_MAX_ENTRIES addresses
 * in least-recently-seen order; entries two windows old carry no count
 * and are dropped as they reach the old end, and a full table drops its
 * oldest entry (that client starts afresh, which only errs on the side
 * of letting a request through).
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/sys/tree.h>

#include "log.h"
#include "byproxy.h"

#define RL_WINDOW	60		/* seconds */

struct rl_entry {
	RB_ENTRY(rl_entry)	 node;
	TAILQ_ENTRY(rl_entry)	 lru;
	uint8_t			 addr[16];
	int64_t			 window;	/* start / RL_WINDOW */
	uint32_t		 curr;
	uint32_t		 prev;
};

static int
rl_cmp(const struct rl_entry *a, const struct rl_entry *b)
{
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

RB_HEAD(rl_tree, rl_entry);
RB_PROTOTYPE(rl_tree, rl_entry, node, rl_cmp);
RB_GENERATE(rl_tree, rl_entry, node, rl_cmp);

struct rl_group {
	const char		*name;
	int			 limit;		/* per RL_WINDOW */
	struct rl_tree		 tree;
	TAILQ_HEAD(, rl_entry)	 lru;		/* oldest first */
	size_t			 n;
};

enum { RL_ME, RL_API, RL_NGROUPS };

static struct rl_group rl_groups[RL_NGROUPS] = {
	[RL_ME] = { "users/me", 20, RB_INITIALIZER(&rl_groups[RL_ME].tree),
	    TAILQ_HEAD_INITIALIZER(rl_groups[RL_ME].lru), 0 },
	[RL_API] = { "api", 120, RB_INITIALIZER(&rl_groups[RL_API].tree),
	    TAILQ_HEAD_INITIALIZER(rl_groups[RL_API].lru), 0 },
};

/* path == prefix, or prefix followed by '/' and more */
static int
path_under(const char *path, const char *prefix)
{
	size_t	 n = strlen(prefix);

	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' ||
	    path[n] == '/');
}

/*
 * Which group limits path, or -1.  The unlimited API paths are the
 * reference's: the bootstrap exchange and the workers' package calls.
 */
int
ratelimit_group(const char *path)
{
	if (path == NULL || !path_under(path, "/api/v1"))
		return -1;
	if (path_under(path, "/api/v1/bootstrap") ||
	    path_under(path, "/api/v1/packages"))
		return -1;
	if (path_under(path, "/api/v1/users/me"))
		return RL_ME;
	return RL_API;
}

static void
rl_drop(struct rl_group *g, struct rl_entry *e)
{
	RB_REMOVE(rl_tree, &g->tree, e);
	TAILQ_REMOVE(&g->lru, e, lru);
	free(e);
	g->n--;
}

/* Forget what no longer counts: nothing from before the last window. */
static void
rl_expire(struct rl_group *g, int64_t window)
{
	struct rl_entry	*e;

	while ((e = TAILQ_FIRST(&g->lru)) != NULL && e->window < window - 1)
		rl_drop(g, e);
}

static struct rl_entry *
rl_lookup(struct rl_group *g, const uint8_t addr[16], int64_t window)
{
	struct rl_entry	 key, *e;

	rl_expire(g, window);
	memcpy(key.addr, addr, sizeof(key.addr));
	if ((e = RB_FIND(rl_tree, &g->tree, &key)) != NULL) {
		TAILQ_REMOVE(&g->lru, e, lru);
		TAILQ_INSERT_TAIL(&g->lru, e, lru);
	} else {
		/* full: the least recently seen client starts afresh */
		if (g->n >= RL_MAX_ENTRIES)
			rl_drop(g, TAILQ_FIRST(&g->lru));
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return NULL;
		memcpy(e->addr, addr, sizeof(e->addr));
		e->window = window;
		RB_INSERT(rl_tree, &g->tree, e);
		TAILQ_INSERT_TAIL(&g->lru, e, lru);
		g->n++;
	}
	/* roll the counts forward to this window */
	if (e->window != window) {
		e->prev = e->window == window - 1 ? e->curr : 0;
		e->curr = 0;
		e->window = window;
	}
	return e;
}

/*
 * Count one request of addr at time now (seconds, with fractions) in
 * group g.  Returns 1 when it is allowed, 0 when over the limit; the
 * remaining count and the end of the window (epoch seconds) are set
 * either way.  -1 when out of memory (the request is let through).
 */
int
ratelimit_take(int group, const uint8_t addr[16], double now,
    int *remaining, int64_t *reset)
{
	struct rl_group	*g;
	struct rl_entry	*e;
	int64_t		 window;
	double		 rate, elapsed;
	int		 used;

	if (group < 0 || group >= RL_NGROUPS)
		return 1;
	g = &rl_groups[group];
	window = (int64_t)(now / RL_WINDOW);
	elapsed = now - (double)window * RL_WINDOW;
	*reset = (window + 1) * RL_WINDOW;
	*remaining = g->limit;
	if ((e = rl_lookup(g, addr, window)) == NULL)
		return -1;
	rate = e->prev * (RL_WINDOW - elapsed) / RL_WINDOW + e->curr;
	if (rate + 1 > g->limit) {
		*remaining = 0;
		return 0;
	}
	e->curr++;
	used = (int)(rate + 1 + 0.999);
	*remaining = used >= g->limit ? 0 : g->limit - used;
	return 1;
}

int
ratelimit_limit(int group)
{
	if (group < 0 || group >= RL_NGROUPS)
		return 0;
	return rl_groups[group].limit;
}

/* For tests: how many addresses a group remembers. */
size_t
ratelimit_size(int group)
{
	if (group < 0 || group >= RL_NGROUPS)
		return 0;
	return rl_groups[group].n;
}

/* For tests: forget every count. */
void
ratelimit_reset(void)
{
	struct rl_entry	*e;
	size_t		 i;

	for (i = 0; i < RL_NGROUPS; i++)
		while ((e = TAILQ_FIRST(&rl_groups[i].lru)) != NULL)
			rl_drop(&rl_groups[i], e);
}

/*
 * The router's gate: runs before every handler.  0 lets the request
 * on, -1 means it was answered (429).
 */
int
ratelimit_gate(struct http_request *req)
{
	struct timespec	 ts;
	uint8_t		 addr[16];
	char		 buf[32];
	int64_t		 reset;
	int		 group, remaining, r;

	if (req->listener != HTTP_LISTEN_MAIN ||
	    (group = ratelimit_group(req->path)) == -1 ||
	    realip_addr(req, addr) == -1)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	r = ratelimit_take(group, addr, (double)ts.tv_sec +
	    (double)ts.tv_nsec / 1e9, &remaining, &reset);
	snprintf(buf, sizeof(buf), "%d", ratelimit_limit(group));
	http_add_header(req, "X-RateLimit-Limit", buf);
	snprintf(buf, sizeof(buf), "%d", remaining);
	http_add_header(req, "X-RateLimit-Remaining", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)reset);
	http_add_header(req, "X-RateLimit-Reset", buf);
	if (r != 0)
		return 0;
	http_add_header(req, "Retry-After", "60");
	http_error(req, 429, "too_many_requests", "rate limit exceeded");
	return -1;
}
