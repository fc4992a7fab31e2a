/*
 * The control plane's entry point in bystate: MSG_STATE_CALL.  Each op
 * authenticates its caller, checks permissions against the data and does
 * its work in one place, so that the decision and the change see the
 * same rows.  byproxy only checks the shape of requests and renders the
 * answers.
 *
 * A call from byproxy carries the SHA-256 of the bearer token (never the
 * token).  A call from byd carries byctl's requests: the operator on the
 * admin socket is trusted, and only ops marked API_CTL accept it.  The
 * calls byproxy makes on its own behalf carry "auth": null and reach
 * only the ops marked API_PROXY, which nothing else reaches.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "bystate.h"

/* Every table of ops; each resource file exports one. */
static const struct api_op *const api_tables[] = {
	api_app_ops,
	api_access_ops,
	api_tag_ops,
	api_user_ops,
	api_token_ops,
	api_bundle_ops,
	api_worker_ops,
	api_session_ops,
};

static const struct api_op *
api_find(const char *name)
{
	const struct api_op	*op;
	size_t			 i;

	for (i = 0; i < sizeof(api_tables) / sizeof(api_tables[0]); i++)
		for (op = api_tables[i]; op->name != NULL; op++)
			if (strcmp(op->name, name) == 0)
				return op;
	return NULL;
}

void
api_ok(struct api_ctx *ctx, int status, json_t *data)
{
	ctx->status = status;
	json_decref(ctx->data);
	ctx->data = data;
	ctx->error[0] = '\0';
}

void
api_fail(struct api_ctx *ctx, int status, const char *code,
    const char *fmt, ...)
{
	va_list	 ap;

	ctx->status = status;
	json_decref(ctx->data);
	ctx->data = NULL;
	strlcpy(ctx->error, code, sizeof(ctx->error));
	va_start(ap, fmt);
	vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
	va_end(ap);
}

void
api_internal(struct api_ctx *ctx, const char *what)
{
	log_warnx("%s: %s: %s", ctx->op, what,
	    state_handle() ? db_error(state_handle()) : "no database");
	api_fail(ctx, 500, "internal_error", "internal server error");
}

void
api_header(struct api_ctx *ctx, const char *name, const char *value)
{
	if (ctx->headers == NULL)
		ctx->headers = json_object();
	json_object_set_new(ctx->headers, name, json_string(value));
}

/* Fill ctx->caller from the bearer token, if any. */
static int
api_authenticate(struct api_ctx *ctx, json_t *auth)
{
	const char	*hash;

	if (auth == NULL || json_is_null(auth))
		return 0;
	if (json_is_true(json_object_get(auth, "ctl"))) {
		if (!ctx->from_ctl)
			return -1;
		ctx->caller.authenticated = 1;
		ctx->caller.operator = 1;
		strlcpy(ctx->caller.role, "admin", sizeof(ctx->caller.role));
		strlcpy(ctx->caller.sub, "byctl", sizeof(ctx->caller.sub));
		return 0;
	}
	ctx->bearer = 1;
	hash = json_string_value(json_object_get(auth, "bearer_sha256"));
	if (hash == NULL || strlen(hash) != 64)
		return 0;
	strlcpy(ctx->bearer_sha256, hash, sizeof(ctx->bearer_sha256));
	if (json_is_true(json_object_get(auth, "pat")))
		auth_pat(ctx);
	return 0;
}

static json_t *
api_result(struct api_ctx *ctx)
{
	json_t	*r;

	if (ctx->status == 0)
		api_fail(ctx, 500, "internal_error", "internal server error");
	if (ctx->error[0] != '\0')
		r = json_pack("{s:i s:s s:s}", "status", ctx->status,
		    "error", ctx->error, "message", ctx->message);
	else
		r = json_pack("{s:i s:O?}", "status", ctx->status, "data",
		    ctx->data);
	if (ctx->headers != NULL)
		json_object_set(r, "headers", ctx->headers);
	return r;
}

/* Run one call; the result object is the caller's. */
json_t *
api_call(json_t *req, int from_ctl)
{
	return api_call_from(req, from_ctl ? API_FROM_CTL : API_FROM_PROXY);
}

/* Run one call that came from the given peer. */
json_t *
api_call_from(json_t *req, enum api_from from)
{
	int			 from_ctl = from == API_FROM_CTL;
	struct api_ctx		 ctx;
	const struct api_op	*op;
	const char		*name, *remote;
	json_t			*res;

	memset(&ctx, 0, sizeof(ctx));
	ctx.from_ctl = from_ctl;
	name = json_string_value(json_object_get(req, "op"));
	ctx.op = name != NULL ? name : "?";
	ctx.args = json_object_get(req, "args");
	if (ctx.args == NULL || !json_is_object(ctx.args))
		ctx.args = NULL;
	remote = json_string_value(json_object_get(req, "remote"));
	strlcpy(ctx.remote, remote ? remote : "", sizeof(ctx.remote));

	if (name == NULL || (op = api_find(name)) == NULL) {
		log_warnx("state call: unknown op %s", ctx.op);
		api_fail(&ctx, 500, "internal_error", "internal server error");
	} else if ((op->auth == API_SPAWN) != (from == API_FROM_SPAWN)) {
		/* byspawn reaches its own ops and nothing else, and only it */
		log_warnx("state call: %s from the wrong peer", name);
		api_fail(&ctx, 403, "forbidden", "forbidden");
	} else if (op->auth == API_CTL && !from_ctl) {
		/* byproxy must never reach operator ops */
		log_warnx("state call: %s is for byctl only", name);
		api_fail(&ctx, 403, "forbidden", "forbidden");
	} else if (op->auth == API_PROXY && (from_ctl ||
	    !json_is_null(json_object_get(req, "auth")))) {
		/* nor byctl, nor anything a client's credentials came with */
		log_warnx("state call: %s is for byproxy's own calls only",
		    name);
		api_fail(&ctx, 403, "forbidden", "forbidden");
	} else if (api_authenticate(&ctx, json_object_get(req, "auth")) ==
	    -1) {
		api_fail(&ctx, 403, "forbidden", "forbidden");
	} else if (op->auth == API_USER && !ctx.caller.authenticated) {
		if (ctx.bearer)
			api_fail(&ctx, 401, "unauthorized",
			    "invalid or expired token");
		else
			api_fail(&ctx, 401, "unauthorized",
			    "authentication required");
	} else
		op->fn(&ctx);

	res = api_result(&ctx);
	json_decref(ctx.data);
	json_decref(ctx.headers);
	return res;
}

static void
state_call(struct msgchan *c, struct msg *m)
{
	json_t		*req, *res;
	json_error_t	 jerr;
	char		*s;

	if ((req = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
		fatalx("%s: bad state call: %s", c->name, jerr.text);
	res = api_call_from(req, c->peer == PROC_BYD ? API_FROM_CTL :
	    c->peer == PROC_SPAWN ? API_FROM_SPAWN : API_FROM_PROXY);
	json_decref(req);
	if ((s = json_dumps(res, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	json_decref(res);
	if (msgchan_send_str(c, MSG_STATE_RESULT, m->hdr.peerid, s) == -1) {
		/* too big for one message: the caller must not hang */
		log_warn("%s: state result (%zu bytes)", c->name, strlen(s));
		msgchan_send_str(c, MSG_STATE_RESULT, m->hdr.peerid,
		    "{\"status\":500,\"error\":\"internal_error\","
		    "\"message\":\"internal server error\"}");
	}
	free(s);
}

void
state_call_proxy(struct msgchan *c, struct msg *m)
{
	state_call(c, m);
}

void
state_call_ctl(struct msgchan *c, struct msg *m)
{
	state_call(c, m);
}

void
state_call_spawn(struct msgchan *c, struct msg *m)
{
	state_call(c, m);
}
