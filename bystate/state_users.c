/*
 * Users: who the caller is.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "bystate.h"

struct user_row {
	json_t	*obj;
};

static int
user_me_row(const struct db_row *r, void *arg)
{
	struct user_row	*u = arg;

	u->obj = json_pack("{s:s s:s s:s s:s}", "sub", db_row_text(r, 0),
	    "email", db_row_text(r, 1), "name", db_row_text(r, 2), "role",
	    db_row_text(r, 3));
	return 1;
}

/* GET /api/v1/users/me */
static void
op_users_me(struct api_ctx *ctx)
{
	struct user_row	 u = { NULL };
	struct db_param	 p[1];

	p[0] = DB_PTEXT(ctx->caller.sub);
	if (db_query(state_handle(), "SELECT sub, email, name, role FROM "
	    "users WHERE sub = $1", p, 1, user_me_row, &u) == -1) {
		api_internal(ctx, "users.me");
		return;
	}
	if (u.obj == NULL)
		u.obj = json_pack("{s:s s:s s:s}", "sub", ctx->caller.sub,
		    "name", ctx->caller.sub, "role", ctx->caller.role);
	api_ok(ctx, 200, u.obj);
}

const struct api_op api_user_ops[] = {
	{ "users.me",	API_USER,	op_users_me },
	{ NULL,		0,		NULL }
};
