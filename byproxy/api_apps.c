/*
 * REST API routes: apps.
 */

#include "byproxy.h"

int
api_apps_routes(struct http_router *r)
{
	return 0;
}
