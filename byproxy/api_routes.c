/*
 * The REST API's routes.  Each handler checks the shape of the request
 * and hands it to bystate as one op.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

/* Each resource file adds its own table. */
int
api_routes_init(struct http_router *r)
{
	if (api_apps_routes(r) == -1 || api_auth_routes(r) == -1 ||
	    api_bundles_routes(r) == -1 ||
	    api_workers_routes(r) == -1)
		return -1;
	return 0;
}
