/*
 * The REST API's routes.  Each handler checks the shape of the request
 * and hands it to bystate as one op.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

static void
h_users_me(struct http_request *req, void *arg)
{
	api_forward(req, "users.me", NULL);
}

static const struct http_route api_routes[] = {
	{ "GET", "/api/v1/users/me", HTTP_LISTEN_MAIN, 0, 0, h_users_me,
	    NULL },
};

int
api_routes_init(struct http_router *r)
{
	size_t	 i;

	for (i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
		if (http_router_add(r, &api_routes[i]) == -1)
			return -1;
	if (api_apps_routes(r) == -1 || api_auth_routes(r) == -1)
		return -1;
	return 0;
}
