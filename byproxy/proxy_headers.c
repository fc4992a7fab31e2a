/*
 * Which of a client's request headers reach a worker.
 *
 * httpuv hands headers to R as HTTP_<NAME> with '-' and '_' both folded
 * into '_' (machine-facts 9): "X_Shiny_User" arrives exactly like
 * "X-Shiny-User".  So identity and forwarding headers are matched by
 * their normalised name, and everything under the X-Shiny- and
 * X-Blockyard- prefixes is dropped, not only the names we set.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "byproxy.h"

static int
norm(int ch)
{
	ch = tolower((unsigned char)ch);
	return ch == '_' ? '-' : ch;
}

int
proxy_header_name_eq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (norm(*a) != norm(*b))
			return 0;
	return *a == *b;
}

static int
name_prefix(const char *name, const char *prefix)
{
	for (; *prefix != '\0'; name++, prefix++)
		if (*name == '\0' || norm(*name) != norm(*prefix))
			return 0;
	return 1;
}

/* Is name one of the comma-separated tokens of a Connection header? */
static int
connection_lists(const char *conn, const char *name)
{
	const char	*p = conn, *e;
	size_t		 n = strlen(name), i;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		for (e = p; *e != '\0' && *e != ','; e++)
			;
		i = (size_t)(e - p);
		while (i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t'))
			i--;
		if (i == n && strncasecmp(p, name, n) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int
proxy_header_dropped(const struct http_request *req, const char *name)
{
	static const char *const exact[] = {
		"Connection", "Keep-Alive", "TE", "Trailer",
		"Transfer-Encoding", "Upgrade", "Host", "Forwarded",
		"X-Real-IP", NULL
	};
	static const char *const prefixes[] = {
		"X-Shiny-", "X-Blockyard-", "X-Forwarded-", "Proxy-", NULL
	};
	size_t		 i;

	for (i = 0; exact[i] != NULL; i++)
		if (proxy_header_name_eq(name, exact[i]))
			return 1;
	for (i = 0; prefixes[i] != NULL; i++)
		if (name_prefix(name, prefixes[i]))
			return 1;
	if (req != NULL) {
		for (i = 0; i < req->headers.n; i++)
			if (strcasecmp(req->headers.v[i].name,
			    "Connection") == 0 &&
			    connection_lists(req->headers.v[i].value, name))
				return 1;
	}
	return 0;
}

/* Append a copy of name: value to a header list. */
void
proxy_headers_add(struct http_headers *h, const char *name,
    const char *value)
{
	struct http_header	*v;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 8;
		if ((v = reallocarray(h->v, h->cap, sizeof(*v))) == NULL)
			fatal("reallocarray");
		h->v = v;
	}
	if ((h->v[h->n].name = strdup(name)) == NULL ||
	    (h->v[h->n].value = strdup(value)) == NULL)
		fatal("strdup");
	h->n++;
}

void
proxy_headers_free(struct http_headers *h)
{
	size_t	 i;

	for (i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

/*
 * 1 if a worker's response header must not reach the client: hop-by-hop
 * names and those the response's Connection header lists, the framing
 * (the core frames the relayed body itself), and what the core writes
 * on every answer, which a copy from the worker would contradict (two
 * X-Frame-Options make browsers ignore both).
 */
int
proxy_resp_header_dropped(const struct http_headers *h, const char *name)
{
	static const char *const exact[] = {
		"Connection", "Keep-Alive", "TE", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Date",
		"X-Content-Type-Options", "X-Frame-Options",
		"Referrer-Policy", "Strict-Transport-Security",
		"X-Blockyard-Version", NULL
	};
	size_t		 i;

	for (i = 0; exact[i] != NULL; i++)
		if (strcasecmp(name, exact[i]) == 0)
			return 1;
	if (strncasecmp(name, "Proxy-", 6) == 0)
		return 1;
	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, "Connection") == 0 &&
		    connection_lists(h->v[i].value, name))
			return 1;
	return 0;
}
