/*
 * A bare forwarder for bench/proxy-quickack: byproxy's HTTP core with
 * one route, /app/<name>/<rest>, handed to proxy_http_forward for a
 * worker on 127.0.0.1:<worker-port>.  Built against the objects of
 * make (like the unit tests), not installed.
 *
 *   proxy-fwd <listen-port> <worker-port>
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "byproxy.h"

static int	 worker_port;

static void
h_app(struct http_request *req, void *arg)
{
	struct proxy_upstream	 up;
	char			 target[8192];

	snprintf(target, sizeof(target), "/%s%s%s",
	    http_request_param(req, "*"), req->query != NULL ? "?" : "",
	    req->query != NULL ? req->query : "");
	memset(&up, 0, sizeof(up));
	up.worker_id = "bench";
	up.port = worker_port;
	up.target = target;
	up.timeout_ms = 300000;
	proxy_http_forward(req, &up);
}

static const struct http_route routes[] = {
	{ "GET", "/app/{name}/*", HTTP_LISTEN_MAIN, 0,
	    HTTP_ROUTE_STREAM_BODY, h_app, NULL },
	{ "POST", "/app/{name}/*", HTTP_LISTEN_MAIN, 1 << 30,
	    HTTP_ROUTE_STREAM_BODY, h_app, NULL },
};

int
main(int argc, char *argv[])
{
	struct event_base	*base;
	struct http_router	*router;
	struct http_server	*srv;
	struct sockaddr_in	 sin;
	size_t			 i;
	int			 fd, on = 1;

	if (argc != 3)
		errx(1, "usage: proxy-fwd listen-port worker-port");
	worker_port = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	log_init("proxy-fwd", 0);
	log_setlevel(LOG_LVL_WARN);
	if ((base = event_base_new()) == NULL ||
	    (router = http_router_new()) == NULL)
		errx(1, "setup");
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_router_add(router, &routes[i]) == -1)
			errx(1, "route");
	if ((srv = http_server_new(base, router)) == NULL)
		errx(1, "server");
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 128) == -1)
		err(1, "listen");
	if (http_server_listen(srv, fd, HTTP_LISTEN_MAIN) == -1)
		errx(1, "http_server_listen");
	event_base_dispatch(base);
	return 0;
}
