/*
 * REST API routes: who the caller is, its tokens, the admin's user
 * management and the bootstrap exchange.  Whether the caller may is
 * bystate's to say (it sees the token's row); here the request is only
 * taken apart.
 *
 * Bodies are passed on as "body" only when they are one JSON object,
 * and bystate answers a missing one: the reference checks some things
 * before it looks at the body ("cannot modify your own account", the
 * bootstrap token), which only bystate can.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "proc.h"
#include "byproxy.h"

static json_t *
body_object(struct http_request *req)
{
	size_t		 len = evbuffer_get_length(req->body);
	const char	*data = "";
	json_t		*j;

	if (len > 0 && (data = (const char *)evbuffer_pullup(req->body,
	    -1)) == NULL)
		return NULL;
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* {"<name>": path param, "body": the body if it is an object} */
static json_t *
args_with_body(struct http_request *req, const char *name)
{
	json_t		*args = json_object(), *body;
	const char	*v;

	if (name != NULL && (v = http_request_param(req, name)) != NULL)
		json_object_set_new(args, name, json_string(v));
	if ((body = body_object(req)) != NULL)
		json_object_set_new(args, "body", body);
	return args;
}

static json_t *
args_param(struct http_request *req, const char *name)
{
	const char	*v = http_request_param(req, name);

	return json_pack("{s:s}", name, v != NULL ? v : "");
}

static void
h_users_me(struct http_request *req, void *arg)
{
	api_forward(req, "users.me", NULL);
}

static void
h_tokens_list(struct http_request *req, void *arg)
{
	api_forward(req, "tokens.mine", NULL);
}

static void
h_tokens_create(struct http_request *req, void *arg)
{
	api_forward(req, "tokens.create_mine", NULL);
}

static void
h_tokens_revoke_all(struct http_request *req, void *arg)
{
	api_forward(req, "tokens.revoke_all", NULL);
}

static void
h_token_revoke(struct http_request *req, void *arg)
{
	api_forward(req, "tokens.revoke_mine", args_param(req, "id"));
}

static void
h_users_list(struct http_request *req, void *arg)
{
	api_forward(req, "users.list", NULL);
}

static void
h_user_get(struct http_request *req, void *arg)
{
	api_forward(req, "users.get", args_param(req, "sub"));
}

static void
h_user_patch(struct http_request *req, void *arg)
{
	api_forward(req, "users.update", args_with_body(req, "sub"));
}

static void
h_bootstrap(struct http_request *req, void *arg)
{
	api_forward(req, "bootstrap", args_with_body(req, NULL));
}

static const struct http_route auth_routes[] = {
	{ "GET", "/api/v1/users/me", HTTP_LISTEN_MAIN, 0, 0, h_users_me,
	    NULL },
	{ "GET", "/api/v1/users/me/tokens", HTTP_LISTEN_MAIN, 0, 0,
	    h_tokens_list, NULL },
	{ "POST", "/api/v1/users/me/tokens", HTTP_LISTEN_MAIN, 0, 0,
	    h_tokens_create, NULL },
	{ "DELETE", "/api/v1/users/me/tokens", HTTP_LISTEN_MAIN, 0, 0,
	    h_tokens_revoke_all, NULL },
	{ "DELETE", "/api/v1/users/me/tokens/{id}", HTTP_LISTEN_MAIN, 0, 0,
	    h_token_revoke, NULL },
	{ "GET", "/api/v1/users", HTTP_LISTEN_MAIN, 0, 0, h_users_list,
	    NULL },
	{ "GET", "/api/v1/users/{sub}", HTTP_LISTEN_MAIN, 0, 0, h_user_get,
	    NULL },
	{ "PATCH", "/api/v1/users/{sub}", HTTP_LISTEN_MAIN, 0, 0,
	    h_user_patch, NULL },
	{ "POST", "/api/v1/bootstrap", HTTP_LISTEN_MAIN, 0, 0, h_bootstrap,
	    NULL },
};

int
api_auth_routes(struct http_router *r)
{
	if (http_router_add_table(r, auth_routes,
	    sizeof(auth_routes) / sizeof(auth_routes[0])) == -1)
		return -1;
	/* the per-client limits guard every route, not only these */
	http_router_gate(r, ratelimit_gate);
	return 0;
}
