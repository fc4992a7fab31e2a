/*
 * REST API routes: auth.
 */

#include "byproxy.h"

int
api_auth_routes(struct http_router *r)
{
	return 0;
}
