/*
 * The client's address behind reverse proxies ([server] trusted_proxies).
 *
 * Only a peer inside a trusted CIDR may say who the client is.  Then
 * X-Forwarded-For is read from the right: each entry was appended by
 * the hop to its right, so the walk may go on only while that hop is
 * trusted, and the first entry that is not a trusted proxy is the
 * client.  Entries further left came from the client itself and are
 * never believed.  Without X-Forwarded-For, X-Real-IP is used.
 *
 * Addresses are kept as 16 bytes, IPv4 as IPv4-mapped IPv6, so one
 * CIDR type covers both families.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

#define XFF_MAX_HOPS	32	/* a longer chain is not walked further */

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
    0xff };

/* A bare IPv4 or IPv6 address. */
static int
ip_pton(const char *s, uint8_t out[16])
{
	struct in_addr	 a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		memcpy(out, v4mapped, sizeof(v4mapped));
		memcpy(out + 12, &a4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

/*
 * An address as a client or proxy writes it: "1.2.3.4", "::1",
 * "[::1]", "1.2.3.4:80" or "[::1]:80" (len bytes of s).  0 or -1.
 */
int
ip_parse(const char *s, size_t len, uint8_t out[16])
{
	char		 buf[INET6_ADDRSTRLEN + 8], *p, *colon;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	p = buf;
	if (*p == '[') {
		/* "[v6]" or "[v6]:port" */
		if ((p = strchr(buf, ']')) == NULL || (p[1] != '\0' &&
		    p[1] != ':'))
			return -1;
		*p = '\0';
		p = buf + 1;
	} else if ((colon = strchr(p, ':')) != NULL &&
	    colon == strrchr(p, ':'))
		*colon = '\0';		/* one colon: "v4:port" */
	return ip_pton(p, out);
}

void
ip_format(const uint8_t a[16], char *buf, size_t len)
{
	if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
		if (inet_ntop(AF_INET, a + 12, buf, (socklen_t)len) != NULL)
			return;
	} else if (inet_ntop(AF_INET6, a, buf, (socklen_t)len) != NULL)
		return;
	strlcpy(buf, "", len);
}

/* "10.0.0.0/8", "fd00::/8"; a bare address is a single host. */
int
cidr_parse(const char *s, struct cidr *c)
{
	const char	*slash = strchr(s, '/');
	const char	*errstr;
	char		 buf[INET6_ADDRSTRLEN];
	size_t		 alen = slash ? (size_t)(slash - s) : strlen(s);
	long long	 bits;
	int		 v4;

	memset(c, 0, sizeof(*c));
	if (alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (ip_pton(buf, c->addr) == -1)
		return -1;
	/* "::ffff:a.b.c.d/n" is IPv6 notation: n counts all 128 bits */
	v4 = memchr(s, ':', alen) == NULL;
	if (slash == NULL)
		bits = 128;
	else {
		bits = strtonum(slash + 1, 0, v4 ? 32 : 128, &errstr);
		if (errstr != NULL || slash[1] == '\0')
			return -1;
		if (v4)
			bits += 96;
	}
	c->bits = (int)bits;
	return 0;
}

int
cidr_contains(const struct cidr *c, const uint8_t a[16])
{
	int	 full = c->bits / 8, rest = c->bits % 8;
	uint8_t	 mask;

	if (memcmp(c->addr, a, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (a[full] & mask);
}

static int
trusted(const struct cidr *set, size_t n, const uint8_t a[16])
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (cidr_contains(&set[i], a))
			return 1;
	return 0;
}

/*
 * Walk the X-Forwarded-For values (in header order) from the right.
 * 1 with the client in out, 0 when there is no usable entry.
 */
static int
xff_walk(const struct cidr *set, size_t n, const char *const *xff,
    size_t nxff, uint8_t out[16])
{
	const char	*v, *end, *comma;
	uint8_t		 a[16];
	size_t		 i, hops = 0;
	int		 got = 0;

	for (i = nxff; i-- > 0;) {
		v = xff[i];
		end = v + strlen(v);
		while (end > v) {
			for (comma = end; comma > v && comma[-1] != ',';
			    comma--)
				;
			/*
			 * Garbage (or an endless chain) from a trusted hop:
			 * no answer here, the caller falls back.
			 */
			if (++hops > XFF_MAX_HOPS ||
			    ip_parse(comma, (size_t)(end - comma), a) == -1)
				return 0;
			memcpy(out, a, 16);
			got = 1;
			if (!trusted(set, n, a))
				return 1;
			end = comma > v ? comma - 1 : v;
		}
	}
	/* all hops trusted: the leftmost one is as close as we get */
	return got;
}

/*
 * The client address of a request from peer (as http.c writes it),
 * given X-Forwarded-For values and X-Real-IP (NULL when absent).
 * 0 with out set, -1 when even the peer is no IP address (Unix socket).
 */
int
realip_resolve(const struct cidr *set, size_t n, const char *peer,
    const char *const *xff, size_t nxff, const char *xrealip,
    uint8_t out[16])
{
	uint8_t	 p[16];

	if (peer == NULL || ip_parse(peer, strlen(peer), p) == -1)
		return -1;
	memcpy(out, p, 16);
	if (n == 0 || !trusted(set, n, p))
		return 0;
	if (nxff > 0 && xff_walk(set, n, xff, nxff, out) == 1)
		return 0;
	if (xrealip != NULL && ip_parse(xrealip, strlen(xrealip), out) == 0)
		return 0;
	memcpy(out, p, 16);
	return 0;
}

/* ---- the configured set ---------------------------------------------- */

static struct {
	char		**src;		/* the list the set was made from */
	size_t		  nsrc;
	struct cidr	 *v;
	size_t		  n;
} tp;

static int
tp_same(const struct strlist *l)
{
	size_t	 i;

	if (l->n != tp.nsrc)
		return 0;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], tp.src[i]) != 0)
			return 0;
	return 1;
}

static void
tp_clear(void)
{
	size_t	 i;

	for (i = 0; i < tp.nsrc; i++)
		free(tp.src[i]);
	free(tp.src);
	free(tp.v);
	memset(&tp, 0, sizeof(tp));
}

/*
 * The trusted set of the running configuration, parsed again only when
 * a reload changed the list (so no hook into byproxy's reload).
 */
static void
tp_update(void)
{
	const struct strlist	*l = &proc_conf->server.trusted_proxies;
	size_t			 i;

	if (tp_same(l))
		return;
	tp_clear();
	if (l->n == 0)
		return;
	if ((tp.src = calloc(l->n, sizeof(*tp.src))) == NULL ||
	    (tp.v = calloc(l->n, sizeof(*tp.v))) == NULL)
		fatal("calloc");
	for (i = 0; i < l->n; i++) {
		if ((tp.src[i] = strdup(l->v[i])) == NULL)
			fatal("strdup");
		tp.nsrc++;
		if (cidr_parse(l->v[i], &tp.v[tp.n]) == -1)
			log_warnx("trusted_proxies: %s: not a CIDR, ignored",
			    l->v[i]);
		else
			tp.n++;
	}
}

/*
 * The client address of req: 0 with the 16 bytes, -1 when the peer is
 * not an IP endpoint.
 */
int
realip_addr(const struct http_request *req, uint8_t out[16])
{
	const char	*xff[HTTP_MAX_HEADERS];
	size_t		 i, nxff = 0;

	tp_update();
	if (tp.n > 0)
		for (i = 0; i < req->headers.n && nxff < HTTP_MAX_HEADERS;
		    i++)
			if (strcasecmp(req->headers.v[i].name,
			    "X-Forwarded-For") == 0)
				xff[nxff++] = req->headers.v[i].value;
	return realip_resolve(tp.v, tp.n, req->remote, xff, nxff,
	    tp.n > 0 ? http_header_get(req, "X-Real-IP") : NULL, out);
}

/* The client address of req as text, without a port. */
void
realip_str(const struct http_request *req, char *buf, size_t len)
{
	uint8_t	 a[16];

	if (realip_addr(req, a) == 0)
		ip_format(a, buf, len);
	else
		strlcpy(buf, req->remote ? req->remote : "", len);
}
