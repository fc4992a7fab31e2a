/*
 * Listening sockets for [server] bind and management_bind.  byd binds
 * them as root (so any port works) and hands them to byproxy.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byd.h"
#include "log.h"

#define LISTEN_BACKLOG	1024

/* Split "host:port", "[v6]:port" or ":port" (all addresses). */
static int
split_hostport(const char *s, char *host, size_t hlen, char *port,
    size_t plen)
{
	const char	*colon, *end;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return -1;
		if ((size_t)(end - s - 1) >= hlen)
			return -1;
		memcpy(host, s + 1, end - s - 1);
		host[end - s - 1] = '\0';
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		if ((size_t)(colon - s) >= hlen)
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = '\0';
	}
	if (strlcpy(port, colon + 1, plen) >= plen || port[0] == '\0')
		return -1;
	return 0;
}

int
listen_open(const char *hostport, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res, *ai;
	char		 host[256], port[16];
	int		 fd = -1, on = 1, e, saved = 0;

	if (split_hostport(hostport, host, sizeof(host), port,
	    sizeof(port)) == -1) {
		snprintf(err, errlen, "%s: not host:port", hostport);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", hostport, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, LISTEN_BACKLOG) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "%s: %s", hostport, strerror(saved));
	return fd;
}
