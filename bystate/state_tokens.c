/*
 * Personal access tokens and the bootstrap exchange.
 *
 * A token is "by_" and the base62 form of 32 random bytes; only its
 * SHA-256 is stored, so the plaintext exists once, in the answer that
 * creates it.  Operators mint tokens with byctl (ops marked API_CTL);
 * over the API a caller may list and revoke its own.  Creating one over
 * the API needs a browser session, which comes with OIDC.
 */

#include <sys/types.h>
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sha2.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

#define TOKEN_PREFIX	"by_"
#define TOKEN_RAW	32
#define TOKEN_NAME_MAX	256
/* the last date our stored format can hold */
#define EXPIRY_MAX	253402300799LL	/* 9999-12-31T23:59:59Z */

static void
random_bytes(void *buf, size_t len)
{
	unsigned char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = getrandom(p, len, 0)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
}


/*
 * Base62 of a big-endian number, as the reference writes it: digits
 * 0-9A-Za-z, one leading '0' per leading zero byte.  out needs
 * 2 * len + 1 bytes at most.
 */
void
token_base62(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	static const char	 digits[] = "0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char		 num[64];
	char			 rev[128];
	size_t			 i, n = 0, zeros = 0, start;
	unsigned int		 rem;

	if (len > sizeof(num) || outlen == 0) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	memcpy(num, in, len);
	while (zeros < len && num[zeros] == 0)
		zeros++;
	/* long division by 62, most significant byte first */
	for (start = zeros; start < len;) {
		rem = 0;
		for (i = start; i < len; i++) {
			rem = rem * 256 + num[i];
			num[i] = (unsigned char)(rem / 62);
			rem %= 62;
		}
		rev[n++] = digits[rem];
		while (start < len && num[start] == 0)
			start++;
	}
	for (i = 0; i < zeros && i + 1 < outlen; i++)
		out[i] = '0';
	while (n > 0 && i + 1 < outlen)
		out[i++] = rev[--n];
	out[i] = '\0';
}

static void
sha256_raw(const void *data, size_t len, unsigned char *out)
{
	SHA2_CTX	 c;

	SHA256Init(&c);
	SHA256Update(&c, data, len);
	SHA256Final(out, &c);
}

static void
format_time(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "1970-01-01T00:00:00Z", len);
}

/*
 * expires_in: "<n>d", "<n>h" or "<n>m" from now, in our stored time
 * format.  -1 when malformed or beyond the year 9999.
 */
int
token_expiry(const char *in, char *out, size_t len)
{
	const char	*p;
	long long	 n, unit;
	time_t		 now = time(NULL);

	if (in == NULL || in[0] < '0' || in[0] > '9')
		return -1;
	for (p = in, n = 0; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (*p - '0');
		if (n > EXPIRY_MAX)
			return -1;
	}
	switch (*p) {
	case 'd':
		unit = 86400;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'm':
		unit = 60;
		break;
	default:
		return -1;
	}
	if (p[1] != '\0' || n > (EXPIRY_MAX - now) / unit)
		return -1;
	format_time(now + (time_t)(n * unit), out, len);
	return 0;
}

/* "Z", "+hh:mm" or "-hh:mm" ending an RFC 3339 time, as seconds east. */
static int
tz_offset(const char *p, long *off)
{
	int	 hh, mm;

	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		*off = 0;
		return 0;
	}
	if ((*p != '+' && *p != '-') || strlen(p) != 6 || p[3] != ':' ||
	    sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh < 0 || hh > 23 ||
	    mm < 0 || mm > 59)
		return -1;
	*off = (*p == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
	return 0;
}

/*
 * An absolute expiry for operators: RFC 3339 ("2030-01-31T12:00:00Z",
 * or with an offset "+02:00"), stored in UTC.  0, -1 malformed, -2 past.
 */
int
token_expiry_at(const char *in, char *out, size_t len)
{
	struct tm	 tm;
	const char	*p;
	time_t		 t;
	long		 off;

	memset(&tm, 0, sizeof(tm));
	if (in == NULL || (p = strptime(in, "%Y-%m-%dT%H:%M:%S", &tm)) ==
	    NULL)
		return -1;
	if (*p == '.')		/* fractions of a second are dropped */
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((t = timegm(&tm)) == (time_t)-1 || tz_offset(p, &off) == -1)
		return -1;
	t -= off;
	if (t > EXPIRY_MAX || t < 0)
		return -1;
	if (t <= time(NULL))
		return -2;
	format_time(t, out, len);
	return 0;
}

/*
 * Insert a new token for sub (inside the caller's transaction, if any)
 * and return {"id","name","token","created_at","expires_at"}, or NULL
 * with the database error.
 */
json_t *
token_mint(struct db *db, const char *sub, const char *name,
    const char *expires_at)
{
	unsigned char	 raw[TOKEN_RAW], hash[SHA256_DIGEST_LENGTH];
	char		 tok[sizeof(TOKEN_PREFIX) + 2 * TOKEN_RAW];
	char		 id[40], now[32];
	struct db_param	 p[6];
	json_t		*out;

	random_bytes(raw, sizeof(raw));
	strlcpy(tok, TOKEN_PREFIX, sizeof(tok));
	token_base62(raw, sizeof(raw), tok + strlen(TOKEN_PREFIX),
	    sizeof(tok) - strlen(TOKEN_PREFIX));
	explicit_bzero(raw, sizeof(raw));
	sha256_raw(tok, strlen(tok), hash);
	uuid_v4(id, sizeof(id));
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(id);
	p[1] = DB_PBLOB(hash, sizeof(hash));
	p[2] = DB_PTEXT(sub);
	p[3] = DB_PTEXT(name);
	p[4] = DB_PTEXT(now);
	p[5] = DB_PTEXT(expires_at);
	if (db_exec(db, "INSERT INTO personal_access_tokens (id, token_hash, "
	    "user_sub, name, created_at, expires_at) VALUES "
	    "($1, $2, $3, $4, $5, $6)", p, 6) == -1) {
		explicit_bzero(tok, sizeof(tok));
		return NULL;
	}
	out = json_pack("{s:s s:s s:s s:s s:s?}", "id", id, "name", name,
	    "token", tok, "created_at", now, "expires_at", expires_at);
	explicit_bzero(tok, sizeof(tok));
	return out;
}

static int
ct_equal(const unsigned char *a, const unsigned char *b, size_t len)
{
	unsigned char	 d = 0;
	size_t		 i;

	for (i = 0; i < len; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* One row of personal_access_tokens as the API shows it. */
static int
token_obj_row(const struct db_row *r, void *arg)
{
	json_t	*list = arg;

	json_array_append_new(list, json_pack(
	    "{s:s s:s s:s s:s s:s? s:s? s:b}",
	    "id", db_row_text(r, 0),
	    "user_sub", db_row_text(r, 1),
	    "name", db_row_text(r, 2),
	    "created_at", db_row_text(r, 3),
	    "expires_at", db_row_text(r, 4),
	    "last_used_at", db_row_text(r, 5),
	    "revoked", db_row_int(r, 6) != 0));
	return 0;
}

#define TOKEN_COLS	"id, user_sub, name, created_at, expires_at, " \
			"last_used_at, revoked"

/* GET /api/v1/users/me/tokens: the caller's live tokens, newest first. */
static void
op_tokens_mine(struct api_ctx *ctx)
{
	struct db_param	 p[2];
	json_t		*list = json_array();

	p[0] = DB_PTEXT(ctx->caller.sub);
	p[1] = DB_PTEXT(TOKEN_SENTINEL_ID);
	if (db_query(state_handle(), "SELECT " TOKEN_COLS " FROM "
	    "personal_access_tokens WHERE user_sub = $1 AND revoked = 0 "
	    "AND id <> $2 ORDER BY created_at DESC, id DESC", p, 2,
	    token_obj_row, list) == -1) {
		json_decref(list);
		api_internal(ctx, "tokens.mine");
		return;
	}
	api_ok(ctx, 200, list);
}

/* POST /api/v1/users/me/tokens: only a browser session may. */
static void
op_tokens_create_mine(struct api_ctx *ctx)
{
	api_fail(ctx, 403, "forbidden",
	    "tokens can only be created via browser session");
}

/* Revoke one token (of sub, unless NULL); 1 done, 0 none, -1 error. */
static int
token_revoke(const char *id, const char *sub)
{
	struct db_param	 p[3];
	int64_t		 n;

	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(TOKEN_SENTINEL_ID);
	p[2] = DB_PTEXT(sub);
	n = db_exec(state_handle(), "UPDATE personal_access_tokens SET "
	    "revoked = 1 WHERE id = $1 AND id <> $2 AND "
	    "(CAST($3 AS TEXT) IS NULL OR user_sub = $3)", p, 3);
	if (n == -1)
		return -1;
	return n > 0;
}

/* DELETE /api/v1/users/me/tokens/{id} */
static void
op_tokens_revoke_mine(struct api_ctx *ctx)
{
	const char	*id = json_string_value(json_object_get(ctx->args,
	    "id"));
	int		 r;

	if (id == NULL || (r = token_revoke(id, ctx->caller.sub)) == 0) {
		api_fail(ctx, 404, "not_found", "token not found");
		return;
	}
	if (r == -1) {
		api_internal(ctx, "tokens.revoke_mine");
		return;
	}
	audit_log(ctx, "token.revoke", id, NULL);
	api_ok(ctx, 204, NULL);
}

/* DELETE /api/v1/users/me/tokens: every live token of the caller. */
static void
op_tokens_revoke_all(struct api_ctx *ctx)
{
	struct db_param	 p[2];
	int64_t		 n;

	p[0] = DB_PTEXT(ctx->caller.sub);
	p[1] = DB_PTEXT(TOKEN_SENTINEL_ID);
	if ((n = db_exec(state_handle(), "UPDATE personal_access_tokens SET "
	    "revoked = 1 WHERE user_sub = $1 AND revoked = 0 AND id <> $2",
	    p, 2)) == -1) {
		api_internal(ctx, "tokens.revoke_all");
		return;
	}
	audit_log(ctx, "token.revoke_all", ctx->caller.sub,
	    json_pack("{s:I}", "count", (json_int_t)n));
	api_ok(ctx, 204, NULL);
}

/* ---- byctl ----------------------------------------------------------- */

struct token_req {
	const char	*user;
	const char	*role;		/* NULL: keep, or viewer when new */
	const char	*name;
	char		 expires_at[32];	/* "" for never */
};

static int
ctl_token_args(struct api_ctx *ctx, struct token_req *tr)
{
	json_t		*a = ctx->args;
	const char	*in, *at;
	int		 r;

	memset(tr, 0, sizeof(*tr));
	tr->user = json_string_value(json_object_get(a, "user"));
	tr->role = json_string_value(json_object_get(a, "role"));
	tr->name = json_string_value(json_object_get(a, "name"));
	in = json_string_value(json_object_get(a, "expires_in"));
	at = json_string_value(json_object_get(a, "expires_at"));
	if (!user_valid_sub(tr->user)) {
		api_fail(ctx, 400, "bad_request", "invalid user name");
		return -1;
	}
	if (tr->role != NULL && !user_valid_role(tr->role)) {
		api_fail(ctx, 400, "bad_request", "invalid role '%s', must be "
		    "one of: admin, publisher, viewer", tr->role);
		return -1;
	}
	if (tr->name == NULL)
		tr->name = "byctl";
	if (tr->name[0] == '\0' || strlen(tr->name) > TOKEN_NAME_MAX) {
		api_fail(ctx, 400, "bad_request", "the token name must have "
		    "1 to %d bytes", TOKEN_NAME_MAX);
		return -1;
	}
	if (in != NULL && at != NULL) {
		api_fail(ctx, 400, "bad_request",
		    "give either an expiry duration or a time, not both");
		return -1;
	}
	if (in != NULL && token_expiry(in, tr->expires_at,
	    sizeof(tr->expires_at)) == -1) {
		api_fail(ctx, 400, "bad_request", "invalid expiry '%s', use "
		    "e.g. '90d', '24h' or '30m'", in);
		return -1;
	}
	if (at != NULL && (r = token_expiry_at(at, tr->expires_at,
	    sizeof(tr->expires_at))) < 0) {
		if (r == -2)
			api_fail(ctx, 400, "bad_request",
			    "expiry time %s is not in the future", at);
		else
			api_fail(ctx, 400, "bad_request", "invalid expiry "
			    "time '%s', use RFC 3339 such as "
			    "2030-01-31T12:00:00Z", at);
		return -1;
	}
	return 0;
}

struct user_state {
	int	 found;
	char	 role[16];
	int	 active;
};

static int
user_state_row(const struct db_row *r, void *arg)
{
	struct user_state	*us = arg;

	us->found = 1;
	strlcpy(us->role, db_row_text(r, 0), sizeof(us->role));
	us->active = db_row_int(r, 1) != 0;
	return 1;
}

/*
 * The owner of a new token, inside the transaction: created when
 * missing, its role set when the operator gave one.  0, or -1 with the
 * answer made.
 */
static int
ctl_token_owner(struct api_ctx *ctx, const struct token_req *tr,
    json_t *out)
{
	struct db	*db = state_handle();
	struct user_state us;
	struct db_param	 p[2];

	memset(&us, 0, sizeof(us));
	p[0] = DB_PTEXT(tr->user);
	p[1] = DB_PTEXT(tr->role);
	if (db_query(db, "SELECT role, active FROM users WHERE sub = $1", p,
	    1, user_state_row, &us) == -1)
		goto fail;
	if (!us.found) {
		if (user_ensure(db, tr->user, tr->role ? tr->role : "viewer",
		    "", "") == -1)
			goto fail;
		json_object_set_new(out, "user_created", json_true());
		json_object_set_new(out, "role",
		    json_string(tr->role ? tr->role : "viewer"));
		return 0;
	}
	if (!us.active) {
		api_fail(ctx, 409, "conflict", "user %s is deactivated; "
		    "enable it first with: byctl user set %s --active true",
		    tr->user, tr->user);
		return -1;
	}
	if (tr->role != NULL && strcmp(tr->role, us.role) != 0) {
		if (db_exec(db, "UPDATE users SET role = $2 WHERE sub = $1",
		    p, 2) == -1)
			goto fail;
		json_object_set_new(out, "previous_role",
		    json_string(us.role));
	}
	json_object_set_new(out, "user_created", json_false());
	json_object_set_new(out, "role", json_string(tr->role ? tr->role :
	    us.role));
	return 0;
fail:
	api_internal(ctx, "tokens.create");
	return -1;
}

/* byctl token create USER [--role R] [--name N] [--expires D|--expires-at T] */
static void
op_ctl_token_create(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct token_req tr;
	json_t		*info, *tok;
	const char	*prev;

	if (ctl_token_args(ctx, &tr) == -1)
		return;
	if (db_begin(db) == -1) {
		api_internal(ctx, "tokens.create");
		return;
	}
	info = json_object();
	if (ctl_token_owner(ctx, &tr, info) == -1) {
		db_rollback(db);
		json_decref(info);
		return;
	}
	if ((tok = token_mint(db, tr.user, tr.name, tr.expires_at[0] ?
	    tr.expires_at : NULL)) == NULL || db_commit(db) == -1) {
		api_internal(ctx, "tokens.create");
		db_rollback(db);
		json_decref(tok);
		json_decref(info);
		return;
	}
	if ((prev = json_string_value(json_object_get(info,
	    "previous_role"))) != NULL)
		audit_log(ctx, "user.update", tr.user,
		    json_pack("{s:s}", "role", tr.role));
	audit_log(ctx, "token.create", json_string_value(json_object_get(tok,
	    "id")), json_pack("{s:s s:s}", "name", tr.name, "user", tr.user));
	json_object_set_new(tok, "user", json_string(tr.user));
	json_object_update(tok, info);
	json_decref(info);
	api_ok(ctx, 201, tok);
}

/* byctl token revoke ID: any user's token. */
static void
op_ctl_token_revoke(struct api_ctx *ctx)
{
	const char	*id = json_string_value(json_object_get(ctx->args,
	    "id"));
	int		 r;

	if (id == NULL || (r = token_revoke(id, NULL)) == 0) {
		api_fail(ctx, 404, "not_found", "token not found");
		return;
	}
	if (r == -1) {
		api_internal(ctx, "tokens.revoke");
		return;
	}
	audit_log(ctx, "token.revoke", id, NULL);
	api_ok(ctx, 200, json_pack("{s:s}", "id", id));
}

/* byctl token list [USER] [--all]: never the hashes. */
static void
op_ctl_token_list(struct api_ctx *ctx)
{
	const char	*user = json_string_value(json_object_get(ctx->args,
	    "user"));
	int		 all = json_is_true(json_object_get(ctx->args, "all"));
	struct db_param	 p[3];
	json_t		*list, *u;

	if (user != NULL) {
		if (user_get(state_handle(), user, &u) == -1) {
			api_internal(ctx, "tokens.list");
			return;
		}
		if (u == NULL) {
			api_fail(ctx, 404, "not_found", "user not found");
			return;
		}
		json_decref(u);
	}
	p[0] = DB_PTEXT(user);
	p[1] = DB_PINT(all);
	p[2] = DB_PTEXT(TOKEN_SENTINEL_ID);
	list = json_array();
	if (db_query(state_handle(), "SELECT " TOKEN_COLS " FROM "
	    "personal_access_tokens WHERE (CAST($1 AS TEXT) IS NULL OR "
	    "user_sub = $1) AND "
	    "($2 = 1 OR revoked = 0) AND id <> $3 "
	    "ORDER BY created_at DESC, id DESC", p, 3, token_obj_row,
	    list) == -1) {
		json_decref(list);
		api_internal(ctx, "tokens.list");
		return;
	}
	api_ok(ctx, 200, list);
}

/* ---- bootstrap ------------------------------------------------------- */

/* SHA-256 of the empty string: "Bearer " with nothing after it. */
#define SHA256_EMPTY	"e3b0c44298fc1c149afbf4c8996fb924" \
			"27ae41e4649b934ca495991b7852b855"

/* The bearer must be [server] bootstrap_token; 0 or -1 answered. */
static int
bootstrap_check_bearer(struct api_ctx *ctx, const char *conf)
{
	unsigned char	 got[SHA256_DIGEST_LENGTH];
	unsigned char	 want[SHA256_DIGEST_LENGTH];

	if (!ctx->bearer || ctx->bearer_sha256[0] == '\0' ||
	    strcmp(ctx->bearer_sha256, SHA256_EMPTY) == 0) {
		api_fail(ctx, 401, "unauthorized", "bearer token required");
		return -1;
	}
	sha256_raw(conf, strlen(conf), want);
	/* both sides are hashes: the time taken says nothing of the token */
	if (hex_decode(ctx->bearer_sha256, got, sizeof(got)) == -1 ||
	    !ct_equal(got, want, sizeof(got))) {
		api_fail(ctx, 401, "unauthorized", "invalid bootstrap token");
		return -1;
	}
	return 0;
}

static int
bootstrap_redeemed(struct api_ctx *ctx)
{
	struct db_param	 p[1];
	int64_t		 n = 0;

	p[0] = DB_PTEXT(TOKEN_SENTINEL_ID);
	if (db_query_int(state_handle(), "SELECT COUNT(*) FROM "
	    "personal_access_tokens WHERE id = $1", p, 1, &n) == -1) {
		api_internal(ctx, "bootstrap");
		return -1;
	}
	if (n > 0) {
		api_fail(ctx, 410, "gone", "bootstrap token already redeemed");
		return -1;
	}
	return 0;
}

/* {"name"?: string, "expires_in"?: "<n>[dhm]"}; 0 or -1 answered. */
static int
bootstrap_body(struct api_ctx *ctx, const char **name, char *exp,
    size_t explen)
{
	json_t	*body = json_object_get(ctx->args, "body");
	json_t	*n, *e;

	n = json_object_get(body, "name");
	e = json_object_get(body, "expires_in");
	if (!json_is_object(body) ||
	    (n != NULL && !json_is_null(n) && !json_is_string(n)) ||
	    (e != NULL && !json_is_null(e) && !json_is_string(e))) {
		api_fail(ctx, 400, "bad_request", "invalid request body");
		return -1;
	}
	*name = json_string_value(n);
	if (*name == NULL || **name == '\0')
		*name = "bootstrap";
	exp[0] = '\0';
	if (json_is_string(e) && token_expiry(json_string_value(e), exp,
	    explen) == -1) {
		api_fail(ctx, 400, "bad_request", "invalid expires_in format, "
		    "use e.g. '90d', '24h'");
		return -1;
	}
	return 0;
}

/*
 * Burn the bootstrap token and mint the admin's token in one
 * transaction.  The sentinel row's primary key is the compare-and-swap:
 * a second exchange, here or by another server on the same database,
 * inserts nothing and gets 410.
 */
static json_t *
bootstrap_mint(struct api_ctx *ctx, const char *sub, const char *name,
    const char *exp)
{
	struct db	*db = state_handle();
	unsigned char	 hash[SHA256_DIGEST_LENGTH];
	struct db_param	 p[4];
	char		 now[32];
	json_t		*tok = NULL;
	int64_t		 n;

	sha256_raw(proc_conf->server.bootstrap_token,
	    strlen(proc_conf->server.bootstrap_token), hash);
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(TOKEN_SENTINEL_ID);
	p[1] = DB_PBLOB(hash, sizeof(hash));
	p[2] = DB_PTEXT(sub);
	p[3] = DB_PTEXT(now);
	if (db_begin(db) == -1)
		goto fail;
	if (user_ensure(db, sub, "admin", "bootstrap@blockyard.local",
	    "Bootstrap User") == -1 ||
	    (n = db_exec(db, "INSERT INTO personal_access_tokens (id, "
	    "token_hash, user_sub, name, created_at, revoked) VALUES "
	    "($1, $2, $3, $1, $4, 1) ON CONFLICT DO NOTHING", p, 4)) == -1)
		goto fail;
	if (n == 0) {
		db_rollback(db);
		api_fail(ctx, 410, "gone", "bootstrap token already redeemed");
		return NULL;
	}
	if ((tok = token_mint(db, sub, name, exp[0] ? exp : NULL)) == NULL ||
	    db_commit(db) == -1)
		goto fail;
	return tok;
fail:
	json_decref(tok);
	api_internal(ctx, "bootstrap");
	db_rollback(db);
	return NULL;
}

/* POST /api/v1/bootstrap */
static void
op_bootstrap(struct api_ctx *ctx)
{
	const char	*conf = proc_conf->server.bootstrap_token;
	const char	*admin = proc_conf->oidc.initial_admin;
	const char	*name;
	char		 exp[32];
	json_t		*tok;

	if (conf == NULL || *conf == '\0') {
		api_fail(ctx, 404, "not_found", "bootstrap not available");
		return;
	}
	if (bootstrap_check_bearer(ctx, conf) == -1 ||
	    bootstrap_redeemed(ctx) == -1 ||
	    bootstrap_body(ctx, &name, exp, sizeof(exp)) == -1)
		return;
	if (admin == NULL || *admin == '\0')
		admin = "admin";
	if ((tok = bootstrap_mint(ctx, admin, name, exp)) == NULL)
		return;
	log_info("bootstrap token redeemed for %s from %s", admin,
	    ctx->remote);
	/* the reference leaves no trace of this; an admin credential should */
	audit_log(ctx, "token.create", json_string_value(json_object_get(tok,
	    "id")), json_pack("{s:s s:s s:b}", "name", name, "user", admin,
	    "bootstrap", 1));
	api_ok(ctx, 201, tok);
}

const struct api_op api_token_ops[] = {
	{ "tokens.mine",	API_USER,	op_tokens_mine },
	{ "tokens.create_mine",	API_USER,	op_tokens_create_mine },
	{ "tokens.revoke_mine",	API_USER,	op_tokens_revoke_mine },
	{ "tokens.revoke_all",	API_USER,	op_tokens_revoke_all },
	{ "tokens.create",	API_CTL,	op_ctl_token_create },
	{ "tokens.revoke",	API_CTL,	op_ctl_token_revoke },
	{ "tokens.list",	API_CTL,	op_ctl_token_list },
	{ "bootstrap",		API_PUBLIC,	op_bootstrap },
	{ NULL,			0,		NULL }
};
