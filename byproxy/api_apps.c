/*
 * REST API routes: apps, access grants, tags, an app's sessions.
 *
 * byproxy only takes the request apart: path parameters, the query
 * string and the JSON body become the op's arguments.  Every decision
 * that needs data, and the checks whose order the reference fixes
 * relative to them (401, then 403/404, then 400), is bystate's; so a
 * body that is not one JSON object travels as "body_invalid" and
 * bystate answers 400 at the point where the reference does.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "byproxy.h"

/* What a route hands to bystate besides its path parameters. */
#define AR_BODY		0x1	/* the JSON body */
#define AR_LIST		0x2	/* search, tag, page, per_page... */
#define AR_PURGE	0x4	/* ?purge=true */
#define AR_SESSIONS	0x8	/* user, status, limit */
/* What the app proxy must learn after a successful answer. */
#define AR_CHANGED	0x10	/* forget the cached app */
#define AR_DRAIN	0x20	/* drain its workers in the background */
#define AR_DRAIN_WAIT	0x40	/* drain them, then answer */

#define PER_PAGE_DEFAULT 25
#define PER_PAGE_MAX	100
#define SESSIONS_DEFAULT 50
#define SESSIONS_MAX	200
/* a state call is one message; leave room for op, auth and remote */
#define ARGS_MAX	(MSG_MAX_LEN - 4096)

struct app_route {
	const char	*op;
	unsigned int	 flags;
};

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Form decoding of n bytes: '+' is a space; NULL on a bad escape. */
static char *
query_decode(const char *s, size_t n)
{
	char	*out, *o;
	size_t	 i;
	int	 hi, lo;

	if ((out = malloc(n + 1)) == NULL)
		fatal("malloc");
	for (i = 0, o = out; i < n; i++) {
		if (s[i] == '+')
			*o++ = ' ';
		else if (s[i] != '%')
			*o++ = s[i];
		else {
			if (i + 2 >= n)
				goto bad;
			if ((hi = hexval((unsigned char)s[i + 1])) == -1 ||
			    (lo = hexval((unsigned char)s[i + 2])) == -1 ||
			    (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/*
 * The first value of key in the query string, decoded (the caller frees
 * it), or NULL when absent.  A pair that cannot be decoded is skipped,
 * as Go's url.Query does.
 */
char *
api_query_get(const struct http_request *req, const char *key)
{
	const char	*p, *end, *eq;
	char		*k, *v;
	size_t		 klen;

	if (req->query == NULL)
		return NULL;
	for (p = req->query; *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		if (end == p)
			continue;
		eq = memchr(p, '=', (size_t)(end - p));
		klen = eq != NULL ? (size_t)(eq - p) : (size_t)(end - p);
		if ((k = query_decode(p, klen)) == NULL)
			continue;
		if (strcmp(k, key) != 0) {
			free(k);
			continue;
		}
		free(k);
		v = eq != NULL ? query_decode(eq + 1, (size_t)(end - eq - 1)) :
		    strdup("");
		if (v == NULL)
			continue;
		return v;
	}
	return NULL;
}

/*
 * An integer as Go's strconv.Atoi reads it (optional sign, decimal
 * digits, 64-bit range); def when absent or not one.
 */
int64_t
api_parse_int(const char *s, int64_t def)
{
	const char	*p = s;
	uint64_t	 v = 0, lim;
	int		 neg = 0;

	if (s == NULL)
		return def;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p == '\0')
		return def;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return def;
		if (v > (lim - (uint64_t)(*p - '0')) / 10)
			return def;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (neg)
		return v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	return (int64_t)v;
}

/*
 * A string that bystate must see: text that is not UTF-8 cannot travel
 * as JSON and can match nothing stored (every stored string came through
 * a JSON parser), so it becomes "", which matches nothing either.
 */
static void
set_text(json_t *args, const char *key, const char *value)
{
	json_t	*s = json_string(value);

	json_object_set_new(args, key, s != NULL ? s : json_string(""));
}

static void
list_args(struct http_request *req, json_t *args)
{
	char	*v;
	int64_t	 per_page;
	json_t	*s;

	if ((v = api_query_get(req, "deleted")) != NULL) {
		json_object_set_new(args, "deleted",
		    json_boolean(strcmp(v, "true") == 0));
		free(v);
	}
	v = api_query_get(req, "page");
	json_object_set_new(args, "page", json_integer(api_parse_int(v, 1)));
	free(v);
	v = api_query_get(req, "per_page");
	per_page = api_parse_int(v, PER_PAGE_DEFAULT);
	free(v);
	if (per_page < 1)
		per_page = 1;
	if (per_page > PER_PAGE_MAX)
		per_page = PER_PAGE_MAX;
	json_object_set_new(args, "per_page", json_integer(per_page));
	if ((v = api_query_get(req, "search")) != NULL) {
		if ((s = json_string(v)) == NULL)
			json_object_set_new(args, "nomatch", json_true());
		else
			json_object_set_new(args, "search", s);
		free(v);
	}
	if ((v = api_query_get(req, "tag")) != NULL) {
		if ((s = json_string(v)) == NULL)
			json_object_set_new(args, "nomatch", json_true());
		else
			json_object_set_new(args, "tag", s);
		free(v);
	}
}

/*
 * The sessions filters: user (a sub) and status match exactly, limit is
 * clamped to 1..200 (50 when absent or not a number).  A filter that is
 * not UTF-8 can match no stored row: "nomatch".
 */
static void
sessions_args(struct http_request *req, json_t *args)
{
	static const char *const keys[] = { "user", "status" };
	char	*v;
	json_t	*s;
	int64_t	 limit;
	size_t	 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if ((v = api_query_get(req, keys[i])) == NULL)
			continue;
		if ((s = json_string(v)) == NULL)
			json_object_set_new(args, "nomatch", json_true());
		else
			json_object_set_new(args, keys[i], s);
		free(v);
	}
	v = api_query_get(req, "limit");
	limit = api_parse_int(v, SESSIONS_DEFAULT);
	free(v);
	if (limit < 1)
		limit = 1;
	if (limit > SESSIONS_MAX)
		limit = SESSIONS_MAX;
	json_object_set_new(args, "limit", json_integer(limit));
}

/* The body, when it is one JSON object; bystate answers 400 otherwise. */
static void
body_args(struct http_request *req, json_t *args)
{
	json_t		*j;
	json_error_t	 jerr;
	size_t		 len = evbuffer_get_length(req->body);
	const char	*data;

	data = len > 0 ? (const char *)evbuffer_pullup(req->body, -1) : NULL;
	j = data != NULL ? json_loadb(data, len, JSON_REJECT_DUPLICATES,
	    &jerr) : NULL;
	if (j != NULL && json_is_object(j))
		json_object_set_new(args, "body", j);
	else {
		json_decref(j);
		json_object_set_new(args, "body_invalid", json_true());
	}
}

/* An answer held until the app's workers drained (delete, rollback). */
struct held_answer {
	struct http_server	*srv;
	uint64_t		 handle;
	json_t			*res;
};

static void
held_answer_send(void *arg)
{
	struct held_answer	*h = arg;
	struct http_request	*req;

	if ((req = http_request_lookup(h->srv, h->handle)) != NULL) {
		http_set_cancel(req, NULL, NULL);
		api_reply(req, h->res);
	}
	json_decref(h->res);
	free(h);
}

static void
held_answer_cancel(struct http_request *req, void *arg)
{
	/* the client left: the drain goes on, the answer is dropped */
}

/*
 * After bystate changed an app: tell the app proxy, which drains the
 * app's workers where the reference does (disable: in the background;
 * delete and rollback: before answering).
 */
static void
app_op_done(struct http_request *req, json_t *res, void *arg)
{
	const struct app_route	*ar = arg;
	struct held_answer	*h;
	const char		*id;
	int			 status;

	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status < 200 || status > 299) {
		api_reply(req, res);
		return;
	}
	id = json_string_value(json_object_get(json_object_get(res, "data"),
	    "id"));
	if (id == NULL)
		id = http_request_param(req, "id");
	proxy_app_changed(id);
	if (ar->flags & AR_DRAIN)
		proxy_app_drain(id, 0, NULL, NULL);
	if (!(ar->flags & AR_DRAIN_WAIT)) {
		api_reply(req, res);
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatal("calloc");
	h->srv = http_request_server(req);
	h->handle = http_request_handle(req);
	h->res = json_incref(res);
	http_set_cancel(req, held_answer_cancel, h);
	proxy_app_drain(id, 1, held_answer_send, h);
}

static void
h_app_op(struct http_request *req, void *arg)
{
	const struct app_route	*ar = arg;
	json_t			*args;
	char			*v;
	size_t			 i;

	args = json_object();
	for (i = 0; i < req->nparams; i++)
		set_text(args, req->params[i].name, req->params[i].value);
	if (ar->flags & AR_BODY)
		body_args(req, args);
	if (ar->flags & AR_LIST)
		list_args(req, args);
	if (ar->flags & AR_SESSIONS)
		sessions_args(req, args);
	if ((ar->flags & AR_PURGE) &&
	    (v = api_query_get(req, "purge")) != NULL) {
		json_object_set_new(args, "purge",
		    json_boolean(strcmp(v, "true") == 0));
		free(v);
	}
	/* the HTTP core allows 1 MiB; one state message holds less */
	if (json_dumpb(args, NULL, 0, JSON_COMPACT) > ARGS_MAX) {
		json_decref(args);
		http_error(req, 413, "payload_too_large",
		    "request body too large");
		return;
	}
	if (ar->flags & (AR_CHANGED | AR_DRAIN | AR_DRAIN_WAIT))
		api_call(req, ar->op, args, app_op_done, (void *)ar);
	else
		api_call(req, ar->op, args, NULL, NULL);
}

#define R(m, pat, op, fl)						\
	{ m, pat, HTTP_LISTEN_MAIN, 0, 0, h_app_op,			\
	    &(struct app_route){ op, fl } }

static const struct http_route app_routes[] = {
	R("POST", "/api/v1/apps", "apps.create", AR_BODY),
	R("GET", "/api/v1/apps", "apps.list", AR_LIST),
	R("GET", "/api/v1/apps/{id}", "apps.get", 0),
	R("PATCH", "/api/v1/apps/{id}", "apps.update", AR_BODY | AR_CHANGED),
	R("DELETE", "/api/v1/apps/{id}", "apps.delete",
	    AR_PURGE | AR_DRAIN_WAIT),
	R("POST", "/api/v1/apps/{id}/restore", "apps.restore", AR_CHANGED),
	R("POST", "/api/v1/apps/{id}/enable", "apps.enable", AR_CHANGED),
	R("POST", "/api/v1/apps/{id}/disable", "apps.disable", AR_DRAIN),
	R("POST", "/api/v1/apps/{id}/rollback", "apps.rollback",
	    AR_BODY | AR_DRAIN_WAIT),
	R("GET", "/api/v1/apps/{id}/sessions", "sessions.list", AR_SESSIONS),

	R("POST", "/api/v1/apps/{id}/access", "access.grant", AR_BODY),
	R("GET", "/api/v1/apps/{id}/access", "access.list", 0),
	R("DELETE", "/api/v1/apps/{id}/access/{kind}/{principal}",
	    "access.revoke", 0),

	R("GET", "/api/v1/tags", "tags.list", 0),
	R("POST", "/api/v1/tags", "tags.create", AR_BODY),
	R("PATCH", "/api/v1/tags/{id}", "tags.update", AR_BODY),
	R("DELETE", "/api/v1/tags/{id}", "tags.delete", 0),
	R("GET", "/api/v1/apps/{id}/tags", "apps.tags.list", 0),
	R("POST", "/api/v1/apps/{id}/tags", "apps.tags.add", AR_BODY),
	R("DELETE", "/api/v1/apps/{id}/tags/{tag}", "apps.tags.remove", 0),
};

int
api_apps_routes(struct http_router *r)
{
	return http_router_add_table(r, app_routes,
	    sizeof(app_routes) / sizeof(app_routes[0]));
}
