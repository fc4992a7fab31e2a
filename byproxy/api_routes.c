/*
 * The REST API's routes.  Each handler checks the shape of the request
 * and hands it to bystate as one op.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

static const struct http_route api_routes[] = {
	{ NULL, NULL, 0, 0, 0, NULL, NULL },
};

int
api_routes_init(struct http_router *r)
{
	size_t	 i;

	for (i = 0; api_routes[i].method != NULL; i++)
		if (http_router_add(r, &api_routes[i]) == -1)
			return -1;
	if (api_apps_routes(r) == -1 || api_auth_routes(r) == -1 ||
	    api_bundles_routes(r) == -1 ||
	    api_workers_routes(r) == -1)
		return -1;
	return 0;
}
