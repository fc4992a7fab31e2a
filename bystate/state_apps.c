/*
 * Apps: create, list, get, update (rename with aliases), soft delete,
 * purge, restore, enable, disable, rollback; the caller's relation to an
 * app; the sweep that ages aliases and purges apps past
 * soft_delete_retention.
 *
 * Workers are byspawn's, not ours: after a successful answer to delete,
 * purge, disable or rollback, byproxy has byspawn drain the app's
 * workers (the reference waits for them on delete, purge and rollback,
 * not on disable).  Nothing here waits for a worker.  The sweep's
 * purges need no draining: an app's workers went when it was deleted.
 *
 * Every op authenticates (state_api.c), then looks up, decides and
 * changes in one place, inside one transaction where it writes, so the
 * permission check and the change see the same rows.  The checks run in
 * the reference's order, which is why byproxy hands over a malformed
 * body as "body_invalid" instead of answering 400 itself: a caller
 * without the right to an app must get its 401/403/404 first.
 *
 * SQL text is fixed or assembled from fixed fragments; every value from
 * a request is a parameter.  The statements run on SQLite and
 * PostgreSQL alike (no engine-specific functions, LIKE with an explicit
 * ESCAPE, booleans as 0/1).
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include <event2/event.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "config.h"
#include "bystate.h"

#define ALIAS_TTL	(2 * 3600)		/* old name resolves */
#define REDIRECT_TTL	(7 * 24 * 3600)	/* proxy answers 301 */
#define SWEEP_SECONDS	60
#define PER_PAGE_DEFAULT 25
#define PER_PAGE_MAX	100
/* a state result must fit in one message (common/msg.h) */
#define RESULT_MAX	(MSG_MAX_LEN - 16 * 1024)

#define APP_COLS	"a.id, a.name, a.owner, a.access_type, "	\
			"a.active_bundle, a.max_workers_per_app, "	\
			"a.max_sessions_per_worker, a.memory_limit, "	\
			"a.cpu_limit, a.title, a.description, "		\
			"a.pre_warmed_sessions, a.enabled, "		\
			"a.refresh_schedule, a.image, a.runtime, "	\
			"a.created_at, a.updated_at, a.deleted_at"
enum {
	C_ID, C_NAME, C_OWNER, C_ACCESS, C_BUNDLE, C_MAXW, C_MAXS, C_MEM,
	C_CPU, C_TITLE, C_DESC, C_PREWARM, C_ENABLED, C_REFRESH, C_IMAGE,
	C_RUNTIME, C_CREATED, C_UPDATED, C_DELETED, C_NCOLS
};

static struct event	*sweep_ev;

/* ---- small helpers ------------------------------------------------ */

const char *
op_arg(struct api_ctx *ctx, const char *key)
{
	if (ctx->args == NULL)
		return NULL;
	return json_string_value(json_object_get(ctx->args, key));
}

int
op_str(struct api_ctx *ctx, json_t *body, const char *key, const char *def,
    const char *bodymsg, const char **out)
{
	json_t	*v = json_object_get(body, key);

	*out = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		api_fail(ctx, 400, "bad_request", "%s: %s must be a string",
		    bodymsg, key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

json_t *
op_body(struct api_ctx *ctx, const char *message)
{
	json_t	*b = NULL;

	if (ctx->args != NULL)
		b = json_object_get(ctx->args, "body");
	if (b == NULL || !json_is_object(b)) {
		api_fail(ctx, 400, "bad_request", "%s", message);
		return NULL;
	}
	return b;
}

static int
role_rank(const char *role)
{
	if (strcmp(role, "admin") == 0)
		return 3;
	if (strcmp(role, "publisher") == 0)
		return 2;
	if (strcmp(role, "viewer") == 0)
		return 1;
	return 0;
}

static int
is_admin(struct api_ctx *ctx)
{
	return ctx->caller.authenticated && role_rank(ctx->caller.role) == 3;
}

/* Answer 500 after a failed statement, undoing an open transaction. */
static void
fail_db(struct api_ctx *ctx, struct db *db, const char *what)
{
	api_internal(ctx, what);
	db_rollback(db);
}

/* An answer that would not fit in one message would never arrive. */
static int
result_fits(struct api_ctx *ctx, json_t *data)
{
	size_t	 n = json_dumpb(data, NULL, 0, JSON_COMPACT);

	if (n <= RESULT_MAX)
		return 1;
	log_warnx("%s: answer of %zu bytes exceeds a state message", ctx->op,
	    n);
	api_fail(ctx, 500, "internal_error", "internal server error");
	return 0;
}

/* ---- validators ---------------------------------------------------- */

const char *
app_name_problem(const char *name)
{
	size_t	 i, len = strlen(name);

	if (len == 0 || len > 63)
		return "must be 1-63 characters";
	for (i = 0; i < len; i++)
		if (!(name[i] >= 'a' && name[i] <= 'z') &&
		    !(name[i] >= '0' && name[i] <= '9') && name[i] != '-')
			return "must contain only lowercase letters, digits, "
			    "and hyphens";
	if (name[0] < 'a' || name[0] > 'z')
		return "must start with a lowercase letter";
	if (name[len - 1] == '-')
		return "must not end with a hyphen";
	return NULL;
}

int
memory_limit_parse(const char *s, uint64_t *bytes)
{
	uint64_t	 v = 0, mult = 1;
	const char	*p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (tolower((unsigned char)*p)) {
	case '\0':
		break;
	case 'k':
		mult = 1024;
		break;
	case 'm':
		mult = 1024 * 1024;
		break;
	case 'g':
		mult = 1024 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*p != '\0') {
		p++;
		if (tolower((unsigned char)*p) == 'b')
			p++;
		if (*p != '\0')
			return -1;
	}
	if (v > UINT64_MAX / mult)
		return -1;
	*bytes = v * mult;
	return 0;
}

static const char *const cron_months[] = { "jan", "feb", "mar", "apr",
    "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const cron_days[] = { "sun", "mon", "tue", "wed", "thu",
    "fri", "sat" };

/* One value of a cron field: a number or, for months and days, a name. */
static int
cron_value(const char **pp, int field, int lo, int hi, int *out)
{
	const char	*p = *pp;
	long		 v = 0;
	int		 i;

	if (isdigit((unsigned char)*p)) {
		for (; isdigit((unsigned char)*p); p++)
			if ((v = v * 10 + (*p - '0')) > 1000)
				return -1;
	} else if ((field == 3 || field == 4) && isalpha((unsigned char)p[0])
	    && isalpha((unsigned char)p[1]) && isalpha((unsigned char)p[2])) {
		v = -1;
		for (i = 0; i < (field == 3 ? 12 : 7); i++)
			if (strncasecmp(p, field == 3 ? cron_months[i] :
			    cron_days[i], 3) == 0)
				v = field == 3 ? i + 1 : i;
		if (v == -1)
			return -1;
		p += 3;
	} else
		return -1;
	if (v < lo || v > hi)
		return -1;
	*out = (int)v;
	*pp = p;
	return 0;
}

/* item := ("*" | "?" | value ["-" value]) ["/" step] */
static int
cron_item(const char *s, const char *end, int field)
{
	static const int	 lo[] = { 0, 0, 1, 1, 0 };
	static const int	 hi[] = { 59, 23, 31, 12, 6 };
	const char		*p = s;
	int			 a, b, step;

	if (p == end)
		return -1;
	if (*p == '*' || *p == '?')
		p++;
	else {
		if (cron_value(&p, field, lo[field], hi[field], &a) == -1)
			return -1;
		if (p < end && *p == '-') {
			p++;
			if (cron_value(&p, field, lo[field], hi[field],
			    &b) == -1 || b < a)
				return -1;
		}
	}
	if (p < end && *p == '/') {
		p++;
		if (cron_value(&p, 0, 1, 1000, &step) == -1)
			return -1;
	}
	return p == end ? 0 : -1;
}

int
cron_valid(const char *spec)
{
	const char	*p = spec, *start, *comma;
	int		 field = 0;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		if (field == 5)
			return -1;
		start = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		/* a field is a comma-separated list of items */
		while (start < p) {
			comma = memchr(start, ',', (size_t)(p - start));
			if (cron_item(start, comma ? comma : p, field) == -1)
				return -1;
			start = comma ? comma + 1 : p;
			if (comma != NULL && start == p)
				return -1;
		}
		field++;
	}
	return field == 5 ? 0 : -1;
}

/* ---- a little SQL assembly ---------------------------------------- */

#define QB_MAXP	24

/* SQL from fixed fragments; '?' in a fragment becomes the next $n. */
struct qb {
	char		 sql[2048];
	size_t		 len;
	struct db_param	 p[QB_MAXP];
	size_t		 n;
	int		 overflow;
};

static void
qb_putc(struct qb *q, char c)
{
	if (q->len + 1 >= sizeof(q->sql)) {
		q->overflow = 1;
		return;
	}
	q->sql[q->len++] = c;
	q->sql[q->len] = '\0';
}

/* Each '?' in frag takes the next struct db_param argument. */
static void
qb_add(struct qb *q, const char *frag, ...)
{
	va_list		 ap;
	const char	*s;
	char		 num[16], *d;

	va_start(ap, frag);
	for (s = frag; *s != '\0'; s++) {
		if (*s != '?') {
			qb_putc(q, *s);
			continue;
		}
		if (q->n == QB_MAXP) {
			q->overflow = 1;
			break;
		}
		q->p[q->n++] = va_arg(ap, struct db_param);
		snprintf(num, sizeof(num), "$%zu", q->n);
		for (d = num; *d != '\0'; d++)
			qb_putc(q, *d);
	}
	va_end(ap);
}

/* ---- reading apps -------------------------------------------------- */

static json_t *
col_text(const struct db_row *r, int c)
{
	const char	*s = db_row_text(r, c);

	return s != NULL ? json_string(s) : json_null();
}

/* NOT NULL text columns: never null in the answer */
static json_t *
col_text0(const struct db_row *r, int c)
{
	const char	*s = db_row_text(r, c);

	return json_string(s != NULL ? s : "");
}

static json_t *
col_int(const struct db_row *r, int c)
{
	return db_row_isnull(r, c) ? json_null() :
	    json_integer(db_row_int(r, c));
}

static json_t *
col_real(const struct db_row *r, int c)
{
	return db_row_isnull(r, c) ? json_null() :
	    json_real(db_row_real(r, c));
}

struct app_fetch {
	struct app_ref	*ref;
	json_t		*obj;		/* built when want_obj */
	int		 want_obj;
	int		 found;
	char		 grant[16];	/* extra column: caller's grant */
};

static void
app_ref_fill(const struct db_row *r, struct app_ref *a)
{
	memset(a, 0, sizeof(*a));
	strlcpy(a->id, db_row_text(r, C_ID), sizeof(a->id));
	strlcpy(a->name, db_row_text(r, C_NAME), sizeof(a->name));
	strlcpy(a->owner, db_row_text(r, C_OWNER), sizeof(a->owner));
	strlcpy(a->access_type, db_row_text(r, C_ACCESS),
	    sizeof(a->access_type));
	a->deleted = !db_row_isnull(r, C_DELETED);
}

/* The app object without status and tags (added by the caller). */
static json_t *
app_row_object(const struct db_row *r)
{
	json_t	*o;

	o = json_object();
	json_object_set_new(o, "id", col_text0(r, C_ID));
	json_object_set_new(o, "name", col_text0(r, C_NAME));
	json_object_set_new(o, "owner", col_text0(r, C_OWNER));
	json_object_set_new(o, "access_type", col_text0(r, C_ACCESS));
	json_object_set_new(o, "active_bundle", col_text(r, C_BUNDLE));
	json_object_set_new(o, "max_workers_per_app", col_int(r, C_MAXW));
	json_object_set_new(o, "max_sessions_per_worker",
	    json_integer(db_row_isnull(r, C_MAXS) ? 1 : db_row_int(r, C_MAXS)));
	json_object_set_new(o, "memory_limit", col_text(r, C_MEM));
	json_object_set_new(o, "cpu_limit", col_real(r, C_CPU));
	json_object_set_new(o, "title", col_text(r, C_TITLE));
	json_object_set_new(o, "description", col_text(r, C_DESC));
	json_object_set_new(o, "pre_warmed_sessions",
	    json_integer(db_row_int(r, C_PREWARM)));
	json_object_set_new(o, "enabled",
	    json_boolean(db_row_int(r, C_ENABLED) != 0));
	json_object_set_new(o, "refresh_schedule", col_text0(r, C_REFRESH));
	json_object_set_new(o, "image", col_text0(r, C_IMAGE));
	json_object_set_new(o, "runtime", col_text0(r, C_RUNTIME));
	json_object_set_new(o, "created_at", col_text0(r, C_CREATED));
	json_object_set_new(o, "updated_at", col_text0(r, C_UPDATED));
	return o;
}

static int
app_fetch_row(const struct db_row *r, void *arg)
{
	struct app_fetch	*f = arg;
	const char		*g;

	f->found = 1;
	if (f->ref != NULL)
		app_ref_fill(r, f->ref);
	if (f->want_obj)
		f->obj = app_row_object(r);
	if (db_row_ncols(r) > C_NCOLS && (g = db_row_text(r, C_NCOLS)))
		strlcpy(f->grant, g, sizeof(f->grant));
	return 1;
}

static int
tag_name_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, col_text0(r, 0));
	return 0;
}

json_t *
app_tag_names(struct db *db, const char *id)
{
	struct db_param	 p[1];
	json_t		*a = json_array();

	p[0] = DB_PTEXT(id);
	if (db_query(db, "SELECT t.name FROM app_tags x JOIN tags t "
	    "ON t.id = x.tag_id WHERE x.app_id = $1 ORDER BY t.name", p, 1,
	    tag_name_row, a) == -1) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/*
 * Workers do not exist yet: every app is "stopped".  The worker
 * registry (byspawn) will answer running/stopping here.
 */
static const char *
app_status(const char *id)
{
	return "stopped";
}

/* Add status and tags to a row object; -1 on a database error. */
static int
app_finish(struct db *db, json_t *o, const char *id)
{
	json_t	*tags;

	if ((tags = app_tag_names(db, id)) == NULL)
		return -1;
	json_object_set_new(o, "status", json_string(app_status(id)));
	json_object_set_new(o, "tags", tags);
	return 0;
}

json_t *
app_object(struct db *db, const char *id)
{
	struct app_fetch	 f;
	struct db_param		 p[1];

	memset(&f, 0, sizeof(f));
	f.want_obj = 1;
	p[0] = DB_PTEXT(id);
	if (db_query(db, "SELECT " APP_COLS " FROM apps a WHERE a.id = $1",
	    p, 1, app_fetch_row, &f) == -1 || !f.found)
		return NULL;
	if (app_finish(db, f.obj, id) == -1) {
		json_decref(f.obj);
		return NULL;
	}
	return f.obj;
}

static int
mount_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, json_pack("{s:o s:o s:o s:b}", "app_id",
	    col_text0(r, 0), "source", col_text0(r, 1), "target",
	    col_text0(r, 2), "readonly", db_row_int(r, 3) != 0));
	return 0;
}

/* data_mounts of an app, set into o; -1 on a database error */
static int
app_add_mounts(struct db *db, json_t *o, const char *id)
{
	struct db_param	 p[1];
	json_t		*a = json_array();

	p[0] = DB_PTEXT(id);
	if (db_query(db, "SELECT app_id, source, target, readonly FROM "
	    "app_data_mounts WHERE app_id = $1 ORDER BY target", p, 1,
	    mount_row, a) == -1) {
		json_decref(a);
		return -1;
	}
	json_object_set_new(o, "data_mounts", a);
	return 0;
}

const char *
app_rel_name(enum app_rel rel)
{
	switch (rel) {
	case REL_ANONYMOUS:
		return "anonymous";
	case REL_VIEWER:
		return "viewer";
	case REL_COLLABORATOR:
		return "collaborator";
	case REL_OWNER:
		return "owner";
	case REL_ADMIN:
		return "admin";
	default:
		return "none";
	}
}

static int
grant_row(const struct db_row *r, void *arg)
{
	const char	*s = db_row_text(r, 0);

	strlcpy(arg, s != NULL ? s : "", 16);
	return 1;
}

/*
 * The reference's order: anonymous sees public apps; admin; owner; the
 * best explicit grant; logged_in/public apps for anyone signed in.
 */
static int
app_relation(struct db *db, const struct caller *c, struct app_ref *a)
{
	struct db_param	 p[2];
	char		 grant[16] = "";

	if (!c->authenticated) {
		a->rel = strcmp(a->access_type, "public") == 0 ?
		    REL_ANONYMOUS : REL_NONE;
		return 0;
	}
	if (role_rank(c->role) == 3) {
		a->rel = REL_ADMIN;
		return 0;
	}
	if (strcmp(c->sub, a->owner) == 0) {
		a->rel = REL_OWNER;
		return 0;
	}
	p[0] = DB_PTEXT(a->id);
	p[1] = DB_PTEXT(c->sub);
	if (db_query(db, "SELECT role FROM app_access WHERE app_id = $1 AND "
	    "principal = $2 AND kind = 'user'", p, 2, grant_row, grant) == -1)
		return -1;
	if (strcmp(grant, "collaborator") == 0)
		a->rel = REL_COLLABORATOR;
	else if (strcmp(grant, "viewer") == 0)
		a->rel = REL_VIEWER;
	else if (strcmp(a->access_type, "logged_in") == 0 ||
	    strcmp(a->access_type, "public") == 0)
		a->rel = REL_VIEWER;
	else
		a->rel = REL_NONE;
	return 0;
}

/* Live apps by UUID, then by name, then by alias (either phase). */
static const char *const resolve_sql[] = {
	"SELECT " APP_COLS " FROM apps a WHERE a.id = $1 AND "
	    "a.deleted_at IS NULL",
	"SELECT " APP_COLS " FROM apps a WHERE a.name = $1 AND "
	    "a.deleted_at IS NULL",
	"SELECT " APP_COLS " FROM app_aliases al JOIN apps a ON "
	    "a.id = al.app_id WHERE al.name = $1 AND a.deleted_at IS NULL",
};

/* 1 found, 0 not, -1 error */
static int
app_find_live(struct db *db, const char *ref, struct app_ref *a)
{
	struct app_fetch	 f;
	struct db_param		 p[1];
	size_t			 i;

	memset(&f, 0, sizeof(f));
	f.ref = a;
	p[0] = DB_PTEXT(ref);
	for (i = 0; i < sizeof(resolve_sql) / sizeof(resolve_sql[0]); i++) {
		if (db_query(db, resolve_sql[i], p, 1, app_fetch_row,
		    &f) == -1)
			return -1;
		if (f.found)
			return 1;
	}
	return 0;
}

int
app_resolve(struct api_ctx *ctx, const char *ref, struct app_ref *a)
{
	struct db	*db = state_handle();
	int		 r;

	if (ref == NULL || *ref == '\0') {
		api_fail(ctx, 404, "not_found", "app not found");
		return 0;
	}
	if ((r = app_find_live(db, ref, a)) == -1 ||
	    (r == 1 && app_relation(db, &ctx->caller, a) == -1)) {
		api_internal(ctx, "resolve app");
		return -1;
	}
	if (r == 0 || !REL_CAN_VIEW(a->rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return 0;
	}
	return 1;
}

/*
 * Live or soft-deleted, for restore and purge: by UUID, then by name,
 * preferring a deleted app (restore) or a live one (purge); among
 * deleted apps of one name the most recently deleted.
 */
static int
app_find_any(struct db *db, const char *ref, int prefer_deleted,
    struct app_ref *a)
{
	struct app_fetch	 f;
	struct db_param		 p[1];

	memset(&f, 0, sizeof(f));
	f.ref = a;
	p[0] = DB_PTEXT(ref);
	if (db_query(db, "SELECT " APP_COLS " FROM apps a WHERE a.id = $1",
	    p, 1, app_fetch_row, &f) == -1)
		return -1;
	if (f.found)
		return 1;
	if (db_query(db, prefer_deleted ?
	    "SELECT " APP_COLS " FROM apps a WHERE a.name = $1 ORDER BY "
	    "CASE WHEN a.deleted_at IS NULL THEN 1 ELSE 0 END, "
	    "a.deleted_at DESC" :
	    "SELECT " APP_COLS " FROM apps a WHERE a.name = $1 ORDER BY "
	    "CASE WHEN a.deleted_at IS NULL THEN 0 ELSE 1 END, "
	    "a.deleted_at DESC", p, 1, app_fetch_row, &f) == -1)
		return -1;
	return f.found;
}

/* ---- changing apps ------------------------------------------------- */

/*
 * Remove an app and everything that hangs off it, inside the caller's
 * transaction.  The foreign keys decide the order: bundles and sessions
 * do not cascade; grants, tags, aliases and data mounts do.
 *
 * Bundle files under bundle_server_path do not exist yet; when bundles
 * arrive, their removal goes through byspawn after this commits.
 */
static int
app_purge_rows(struct db *db, const char *id)
{
	static const char *const sql[] = {
		"UPDATE apps SET active_bundle = NULL WHERE id = $1",
		"DELETE FROM sessions WHERE app_id = $1",
		"DELETE FROM bundles WHERE app_id = $1",
		"DELETE FROM apps WHERE id = $1",
	};
	struct db_param	 p[1];
	size_t		 i;

	p[0] = DB_PTEXT(id);
	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (db_exec(db, sql[i], p, 1) == -1)
			return -1;
	return 0;
}

/* Answer with the app object (plus extra keys) after a change. */
static void
app_answer(struct api_ctx *ctx, int status, const char *id, int mounts,
    const char *relation)
{
	struct db	*db = state_handle();
	json_t		*o;

	if ((o = app_object(db, id)) == NULL) {
		api_internal(ctx, "read app");
		return;
	}
	if (relation != NULL)
		json_object_set_new(o, "relation", json_string(relation));
	if (mounts && app_add_mounts(db, o, id) == -1) {
		json_decref(o);
		api_internal(ctx, "read data mounts");
		return;
	}
	if (result_fits(ctx, o))
		api_ok(ctx, status, o);
	else
		json_decref(o);
}

/* POST /api/v1/apps */
static void
op_apps_create(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[4];
	json_t		*body, *v;
	const char	*name = "", *problem;
	char		 id[UUID_LEN], now[32];
	int64_t		 n;
	int		 r;

	if (role_rank(ctx->caller.role) < 2) {
		api_fail(ctx, 403, "forbidden", "insufficient permissions");
		return;
	}
	if ((body = op_body(ctx, "invalid JSON body")) == NULL)
		return;
	if ((v = json_object_get(body, "name")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			api_fail(ctx, 400, "bad_request",
			    "invalid JSON body: name must be a string");
			return;
		}
		name = json_string_value(v);
	}
	if ((problem = app_name_problem(name)) != NULL) {
		api_fail(ctx, 400, "bad_request", "name %s", problem);
		return;
	}
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	p[0] = DB_PTEXT(name);
	if ((r = db_query_int(db, "SELECT 1 FROM apps WHERE name = $1 AND "
	    "deleted_at IS NULL", p, 1, &n)) == -1) {
		fail_db(ctx, db, "app name check");
		return;
	}
	if (r == 1) {
		db_rollback(db);
		api_fail(ctx, 409, "conflict", "app name \"%s\" already exists",
		    name);
		return;
	}
	uuid_v4(id, sizeof(id));
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(name);
	p[2] = DB_PTEXT(ctx->caller.sub);
	p[3] = DB_PTEXT(now);
	if (db_exec(db, "INSERT INTO apps (id, name, owner, access_type, "
	    "max_sessions_per_worker, created_at, updated_at, enabled) "
	    "VALUES ($1, $2, $3, 'acl', 1, $4, $4, 1)", p, 4) == -1) {
		if (db_errcode(db) == DB_E_UNIQUE) {
			db_rollback(db);
			api_fail(ctx, 409, "conflict",
			    "app name \"%s\" already exists", name);
			return;
		}
		fail_db(ctx, db, "insert app");
		return;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	audit_log(ctx, "app.create", id, json_pack("{s:s}", "name", name));
	app_answer(ctx, 201, id, 0, NULL);
}

/* "%", "_" and the escape character itself are data in a search. */
static char *
like_pattern(const char *s)
{
	size_t	 len = strlen(s), i, o = 0;
	char	*out;

	if ((out = malloc(2 * len + 3)) == NULL)
		fatal("malloc");
	out[o++] = '%';
	for (i = 0; i < len; i++) {
		if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o++] = '%';
	out[o] = '\0';
	return out;
}

struct list_state {
	struct db	*db;
	struct api_ctx	*ctx;
	json_t		*items;
	int		 deleted;	/* full app objects */
};

static int
list_row(const struct db_row *r, void *arg)
{
	struct list_state	*ls = arg;
	struct app_fetch	 f;
	struct app_ref		 a;
	json_t			*full, *o;
	const char		*rel;

	memset(&f, 0, sizeof(f));
	f.ref = &a;
	f.want_obj = 1;
	app_fetch_row(r, &f);
	full = f.obj;
	if (ls->deleted) {
		json_array_append_new(ls->items, full);
		return 0;
	}
	if (is_admin(ls->ctx))
		rel = "admin";
	else if (strcmp(a.owner, ls->ctx->caller.sub) == 0)
		rel = "owner";
	else if (strcmp(f.grant, "collaborator") == 0)
		rel = "collaborator";
	else
		rel = "viewer";
	/* the list item is a subset, in the reference's order */
	o = json_pack("{s:O s:O s:O s:O s:O s:O s:O s:O s:s s:s}",
	    "id", json_object_get(full, "id"),
	    "name", json_object_get(full, "name"),
	    "owner", json_object_get(full, "owner"),
	    "access_type", json_object_get(full, "access_type"),
	    "active_bundle", json_object_get(full, "active_bundle"),
	    "title", json_object_get(full, "title"),
	    "description", json_object_get(full, "description"),
	    "enabled", json_object_get(full, "enabled"),
	    "status", app_status(a.id),
	    "relation", rel);
	json_object_set(o, "tags", json_null());
	json_object_set(o, "created_at", json_object_get(full, "created_at"));
	json_object_set(o, "updated_at", json_object_get(full, "updated_at"));
	json_decref(full);
	json_array_append_new(ls->items, o);
	return 0;
}

/* Tags of every listed app (after the rows, not inside the query). */
static int
list_add_tags(struct db *db, json_t *items, int deleted)
{
	json_t	*o, *tags;
	size_t	 i;

	json_array_foreach(items, i, o) {
		tags = app_tag_names(db, json_string_value(json_object_get(o,
		    "id")));
		if (tags == NULL)
			return -1;
		if (deleted) {
			json_object_set_new(o, "status", json_string(
			    app_status(json_string_value(json_object_get(o,
			    "id")))));
		}
		json_object_set_new(o, "tags", tags);
	}
	return 0;
}

/* GET /api/v1/apps?deleted=true: admin only, a bare array. */
static void
list_deleted(struct api_ctx *ctx)
{
	struct db		*db = state_handle();
	struct list_state	 ls = { db, ctx, NULL, 1 };

	if (!is_admin(ctx)) {
		api_fail(ctx, 403, "forbidden", "admin only");
		return;
	}
	ls.items = json_array();
	if (db_query(db, "SELECT " APP_COLS " FROM apps a WHERE "
	    "a.deleted_at IS NOT NULL ORDER BY a.deleted_at DESC, a.name",
	    NULL, 0, list_row, &ls) == -1 ||
	    list_add_tags(db, ls.items, 1) == -1) {
		json_decref(ls.items);
		api_internal(ctx, "list deleted apps");
		return;
	}
	if (result_fits(ctx, ls.items))
		api_ok(ctx, 200, ls.items);
	else
		json_decref(ls.items);
}

static int64_t
arg_int(struct api_ctx *ctx, const char *key, int64_t def)
{
	json_t	*v;

	if (ctx->args == NULL ||
	    !json_is_integer(v = json_object_get(ctx->args, key)))
		return def;
	return json_integer_value(v);
}

/* FROM and WHERE of the app list, shared by the count and the page. */
static void
list_where(struct qb *q, struct api_ctx *ctx, const char *pat,
    const char *tag)
{
	if (is_admin(ctx))
		qb_add(q, " FROM apps a WHERE a.deleted_at IS NULL");
	else {
		/* (app_id, principal, kind) is the key: at most one row */
		qb_add(q, " FROM apps a LEFT JOIN app_access g ON "
		    "g.app_id = a.id AND g.kind = 'user' AND g.principal = ?"
		    " WHERE a.deleted_at IS NULL AND (a.owner = ? OR "
		    "g.role IS NOT NULL OR a.access_type IN "
		    "('logged_in', 'public'))", DB_PTEXT(ctx->caller.sub),
		    DB_PTEXT(ctx->caller.sub));
	}
	if (pat != NULL)
		qb_add(q, " AND (LOWER(a.name) LIKE LOWER(?) ESCAPE '\\' OR "
		    "LOWER(a.title) LIKE LOWER(?) ESCAPE '\\' OR "
		    "LOWER(a.description) LIKE LOWER(?) ESCAPE '\\')",
		    DB_PTEXT(pat), DB_PTEXT(pat), DB_PTEXT(pat));
	if (tag != NULL && *tag != '\0')
		qb_add(q, " AND EXISTS (SELECT 1 FROM app_tags x JOIN tags t "
		    "ON t.id = x.tag_id WHERE x.app_id = a.id AND t.name = ?)",
		    DB_PTEXT(tag));
}

/* GET /api/v1/apps */
static void
op_apps_list(struct api_ctx *ctx)
{
	struct db		*db = state_handle();
	struct list_state	 ls = { db, ctx, NULL, 0 };
	struct qb		 cq, pq;
	const char		*search, *tag;
	char			*pat = NULL;
	json_t			*res;
	int64_t			 page, per_page, total = 0, offset;

	if (ctx->args != NULL &&
	    json_is_true(json_object_get(ctx->args, "deleted"))) {
		list_deleted(ctx);
		return;
	}
	search = op_arg(ctx, "search");
	tag = op_arg(ctx, "tag");
	page = arg_int(ctx, "page", 1);
	per_page = arg_int(ctx, "per_page", PER_PAGE_DEFAULT);
	if (per_page < 1)
		per_page = 1;
	if (per_page > PER_PAGE_MAX)
		per_page = PER_PAGE_MAX;
	/* a page below 1 is the first; the raw value is echoed back */
	offset = page < 1 ? 0 : page - 1;
	offset = offset > INT64_MAX / PER_PAGE_MAX / 2 ?
	    INT64_MAX / 2 : offset * per_page;

	ls.items = json_array();
	/* a search no stored text can match (not UTF-8, see byproxy) */
	if (ctx->args != NULL &&
	    json_is_true(json_object_get(ctx->args, "nomatch")))
		goto answer;
	if (search != NULL && *search != '\0')
		pat = like_pattern(search);
	memset(&cq, 0, sizeof(cq));
	qb_add(&cq, "SELECT COUNT(*)");
	list_where(&cq, ctx, pat, tag);
	memset(&pq, 0, sizeof(pq));
	if (is_admin(ctx))
		qb_add(&pq, "SELECT " APP_COLS);
	else
		qb_add(&pq, "SELECT " APP_COLS ", g.role");
	list_where(&pq, ctx, pat, tag);
	qb_add(&pq, " ORDER BY a.updated_at DESC, a.name LIMIT ? OFFSET ?",
	    DB_PINT(per_page), DB_PINT(offset));
	if (cq.overflow || pq.overflow ||
	    db_query_int(db, cq.sql, cq.p, cq.n, &total) == -1 ||
	    db_query(db, pq.sql, pq.p, pq.n, list_row, &ls) == -1 ||
	    list_add_tags(db, ls.items, 0) == -1) {
		free(pat);
		json_decref(ls.items);
		api_internal(ctx, "list apps");
		return;
	}
	free(pat);
answer:
	res = json_pack("{s:o s:I s:I s:I}", "apps", ls.items, "total",
	    (json_int_t)total, "page", (json_int_t)page, "per_page",
	    (json_int_t)per_page);
	if (result_fits(ctx, res))
		api_ok(ctx, 200, res);
	else
		json_decref(res);
}

/* GET /api/v1/apps/{id} */
static void
op_apps_get(struct api_ctx *ctx)
{
	struct app_ref	 a;

	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		return;
	app_answer(ctx, 200, a.id, 1, app_rel_name(a.rel));
}

/* ---- PATCH --------------------------------------------------------- */

struct app_patch {
	const char	*name;
	int		 has_maxw, has_maxs, has_cpu, has_prewarm;
	int64_t		 maxw, maxs, prewarm;
	double		 cpu;
	const char	*memory, *access, *title, *description, *refresh;
	const char	*image, *runtime;
	json_t		*mounts;	/* array, or NULL to keep */
};


static int
patch_int(struct api_ctx *ctx, json_t *body, const char *key, int *has,
    int64_t *out)
{
	json_t	*v = json_object_get(body, key);

	*has = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		api_fail(ctx, 400, "bad_request",
		    "invalid JSON body: %s must be an integer", key);
		return -1;
	}
	*has = 1;
	*out = json_integer_value(v);
	return 0;
}

/* data_mounts: [{"source","target","readonly"?}], checked for types. */
static int
patch_mounts(struct api_ctx *ctx, json_t *body, json_t **out)
{
	json_t	*v = json_object_get(body, "data_mounts"), *m, *f;
	size_t	 i;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		goto bad;
	json_array_foreach(v, i, m) {
		if (!json_is_object(m))
			goto bad;
		if (((f = json_object_get(m, "source")) != NULL &&
		    !json_is_string(f) && !json_is_null(f)) ||
		    ((f = json_object_get(m, "target")) != NULL &&
		    !json_is_string(f) && !json_is_null(f)) ||
		    ((f = json_object_get(m, "readonly")) != NULL &&
		    !json_is_boolean(f) && !json_is_null(f)))
			goto bad;
	}
	*out = v;
	return 0;
bad:
	api_fail(ctx, 400, "bad_request", "invalid JSON body: data_mounts "
	    "must be an array of {\"source\", \"target\", \"readonly\"}");
	return -1;
}

/*
 * Decoding and the checks that need no app, in the reference's order:
 * they answer 400 even to a caller who cannot see the app.
 */
static int
patch_parse(struct api_ctx *ctx, json_t *body, struct app_patch *pt)
{
	json_t		*v;
	uint64_t	 bytes;
	double		 max;

	memset(pt, 0, sizeof(*pt));
	if (op_str(ctx, body, "name", NULL,
	    "invalid JSON body", &pt->name) == -1 ||
	    patch_int(ctx, body, "max_workers_per_app", &pt->has_maxw,
	    &pt->maxw) == -1 ||
	    patch_int(ctx, body, "max_sessions_per_worker", &pt->has_maxs,
	    &pt->maxs) == -1 ||
	    op_str(ctx, body, "memory_limit", NULL,
	    "invalid JSON body", &pt->memory) == -1 ||
	    op_str(ctx, body, "access_type", NULL,
	    "invalid JSON body", &pt->access) == -1 ||
	    op_str(ctx, body, "title", NULL,
	    "invalid JSON body", &pt->title) == -1 ||
	    op_str(ctx, body, "description", NULL,
	    "invalid JSON body", &pt->description) == -1 ||
	    patch_int(ctx, body, "pre_warmed_sessions", &pt->has_prewarm,
	    &pt->prewarm) == -1 ||
	    op_str(ctx, body, "refresh_schedule", NULL,
	    "invalid JSON body", &pt->refresh) == -1 ||
	    op_str(ctx, body, "image", NULL,
	    "invalid JSON body", &pt->image) == -1 ||
	    op_str(ctx, body, "runtime", NULL,
	    "invalid JSON body", &pt->runtime) == -1 ||
	    patch_mounts(ctx, body, &pt->mounts) == -1)
		return -1;
	if ((v = json_object_get(body, "cpu_limit")) != NULL &&
	    !json_is_null(v)) {
		if (!json_is_number(v)) {
			api_fail(ctx, 400, "bad_request",
			    "invalid JSON body: cpu_limit must be a number");
			return -1;
		}
		pt->has_cpu = 1;
		pt->cpu = json_number_value(v);
	}

	if (pt->has_maxs && pt->maxs < 1) {
		api_fail(ctx, 400, "bad_request",
		    "max_sessions_per_worker must be >= 1");
		return -1;
	}
	if (pt->has_maxw && pt->maxw < 1) {
		api_fail(ctx, 400, "bad_request",
		    "max_workers_per_app must be >= 1");
		return -1;
	}
	if (pt->memory != NULL && *pt->memory != '\0' &&
	    memory_limit_parse(pt->memory, &bytes) == -1) {
		api_fail(ctx, 400, "bad_request", "invalid memory_limit "
		    "format: use e.g. \"256m\", \"1g\", \"512mb\"");
		return -1;
	}
	if (pt->has_cpu) {
		max = proc_conf != NULL ? proc_conf->proxy.max_cpu_limit : 16.0;
		if (pt->cpu < 0) {
			api_fail(ctx, 400, "bad_request",
			    "cpu_limit must be non-negative");
			return -1;
		}
		if (max > 0 && pt->cpu > max) {
			api_fail(ctx, 400, "bad_request",
			    "cpu_limit must not exceed %.1f", max);
			return -1;
		}
	}
	if (pt->has_prewarm && pt->prewarm < 0) {
		api_fail(ctx, 400, "bad_request",
		    "pre_warmed_sessions must be non-negative");
		return -1;
	}
	if (pt->has_prewarm && pt->prewarm > 10) {
		api_fail(ctx, 400, "bad_request",
		    "pre_warmed_sessions must not exceed 10");
		return -1;
	}
	return 0;
}

/* Configured [[storage.data_mounts]] by name, or NULL. */
static const struct data_mount *
mount_source(const char *source)
{
	size_t	 i, n;

	if (proc_conf == NULL)
		return NULL;
	n = strcspn(source, "/");
	for (i = 0; i < proc_conf->storage.n_data_mounts; i++)
		if (strlen(proc_conf->storage.data_mounts[i].name) == n &&
		    strncmp(proc_conf->storage.data_mounts[i].name, source,
		    n) == 0)
			return &proc_conf->storage.data_mounts[i];
	return NULL;
}

/*
 * Data mounts are not built: no [[storage.data_mounts]] can be
 * configured yet, so every source is unknown and only [] is accepted.
 * The target rules of the reference come with the feature.
 */
static int
patch_check_mounts(struct api_ctx *ctx, json_t *mounts)
{
	json_t		*m;
	const char	*src;
	size_t		 i;

	json_array_foreach(mounts, i, m) {
		src = json_string_value(json_object_get(m, "source"));
		if (src == NULL || mount_source(src) == NULL) {
			api_fail(ctx, 400, "bad_request", "data_mounts: "
			    "mount[%zu]: unknown source \"%s\"", i,
			    src != NULL ? src : "");
			return -1;
		}
		api_fail(ctx, 400, "bad_request", "data_mounts: mount[%zu]: "
		    "data mounts are not supported yet", i);
		return -1;
	}
	return 0;
}

/*
 * Rename inside the caller's transaction: the old name becomes an alias
 * for ALIAS_TTL.  A name held by a live app, or by an alias of another
 * live app, is a conflict (409, not the reference's 500); renaming back
 * to one of the app's own aliases takes that alias back.  0 done, -1
 * answered.
 */
static int
app_rename(struct api_ctx *ctx, struct db *db, struct app_ref *a,
    const char *newname)
{
	struct db_param	 p[4];
	const char	*problem;
	char		 expires[32];
	int64_t		 n;
	int		 r;

	if (!REL_CAN_MANAGE(a->rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return -1;
	}
	if ((problem = app_name_problem(newname)) != NULL) {
		api_fail(ctx, 400, "bad_request", "name %s", problem);
		return -1;
	}
	p[0] = DB_PTEXT(newname);
	if ((r = db_query_int(db, "SELECT 1 FROM apps WHERE name = $1 AND "
	    "deleted_at IS NULL", p, 1, &n)) == -1)
		goto fail;
	if (r == 1) {
		api_fail(ctx, 409, "conflict", "app name \"%s\" already exists",
		    newname);
		return -1;
	}
	p[1] = DB_PTEXT(a->id);
	if ((r = db_query_int(db, "SELECT 1 FROM app_aliases al JOIN apps b "
	    "ON b.id = al.app_id WHERE al.name = $1 AND al.app_id <> $2 AND "
	    "b.deleted_at IS NULL", p, 2, &n)) == -1)
		goto fail;
	if (r == 1) {
		api_fail(ctx, 409, "conflict", "app name \"%s\" is still an "
		    "alias of another app", newname);
		return -1;
	}
	/* our own alias, or a stale one of a deleted app, gives way */
	if (db_exec(db, "DELETE FROM app_aliases WHERE name = $1", p, 1) == -1)
		goto fail;
	/* so does any alias shadowed by our current name */
	p[0] = DB_PTEXT(a->name);
	if (db_exec(db, "DELETE FROM app_aliases WHERE name = $1", p, 1) == -1)
		goto fail;
	db_timestamp_offset(expires, sizeof(expires), ALIAS_TTL);
	p[0] = DB_PTEXT(a->id);
	p[1] = DB_PTEXT(a->name);
	p[2] = DB_PTEXT(expires);
	if (db_exec(db, "INSERT INTO app_aliases (app_id, name, phase, "
	    "expires_at) VALUES ($1, $2, 'alias', $3)", p, 3) == -1)
		goto fail;
	p[0] = DB_PTEXT(newname);
	p[1] = DB_PTEXT(a->id);
	if (db_exec(db, "UPDATE apps SET name = $1 WHERE id = $2", p, 2) ==
	    -1) {
		if (db_errcode(db) == DB_E_UNIQUE) {
			api_fail(ctx, 409, "conflict",
			    "app name \"%s\" already exists", newname);
			return -1;
		}
		goto fail;
	}
	return 0;
fail:
	api_internal(ctx, "rename app");
	return -1;
}

static int
patch_apply(struct api_ctx *ctx, struct db *db, const struct app_patch *pt,
    const char *id)
{
	struct qb	 q;
	char		 now[32];
	json_t		*m;
	size_t		 i;

	db_timestamp(now, sizeof(now));
	memset(&q, 0, sizeof(q));
	qb_add(&q, "UPDATE apps SET updated_at = ?", DB_PTEXT(now));
	if (pt->has_maxw)
		qb_add(&q, ", max_workers_per_app = ?", DB_PINT(pt->maxw));
	if (pt->has_maxs)
		qb_add(&q, ", max_sessions_per_worker = ?", DB_PINT(pt->maxs));
	if (pt->memory != NULL)
		qb_add(&q, ", memory_limit = ?", DB_PTEXT(pt->memory));
	if (pt->has_cpu)
		qb_add(&q, ", cpu_limit = ?", DB_PREAL(pt->cpu));
	if (pt->access != NULL)
		qb_add(&q, ", access_type = ?", DB_PTEXT(pt->access));
	if (pt->title != NULL)
		qb_add(&q, ", title = ?", DB_PTEXT(pt->title));
	if (pt->description != NULL)
		qb_add(&q, ", description = ?", DB_PTEXT(pt->description));
	if (pt->has_prewarm)
		qb_add(&q, ", pre_warmed_sessions = ?", DB_PINT(pt->prewarm));
	if (pt->refresh != NULL)
		qb_add(&q, ", refresh_schedule = ?", DB_PTEXT(pt->refresh));
	if (pt->image != NULL)
		qb_add(&q, ", image = ?", DB_PTEXT(pt->image));
	if (pt->runtime != NULL)
		qb_add(&q, ", runtime = ?", DB_PTEXT(pt->runtime));
	qb_add(&q, " WHERE id = ?", DB_PTEXT(id));
	if (q.overflow || db_exec(db, q.sql, q.p, q.n) == -1)
		return -1;
	if (pt->mounts != NULL) {
		struct db_param	 p[4];

		p[0] = DB_PTEXT(id);
		if (db_exec(db, "DELETE FROM app_data_mounts WHERE app_id = $1",
		    p, 1) == -1)
			return -1;
		json_array_foreach(pt->mounts, i, m) {
			p[1] = DB_PTEXT(json_string_value(json_object_get(m,
			    "source")));
			p[2] = DB_PTEXT(json_string_value(json_object_get(m,
			    "target")));
			p[3] = DB_PINT(json_is_false(json_object_get(m,
			    "readonly")) ? 0 : 1);
			if (db_exec(db, "INSERT INTO app_data_mounts (app_id, "
			    "source, target, readonly) VALUES ($1, $2, $3, $4)",
			    p, 4) == -1)
				return -1;
		}
	}
	return 0;
}

/* PATCH /api/v1/apps/{id} */
static void
op_apps_update(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_patch pt;
	struct app_ref	 a;
	json_t		*body;
	char		 oldname[sizeof(a.name)];
	int		 renamed = 0;

	if ((body = op_body(ctx, "invalid JSON body")) == NULL ||
	    patch_parse(ctx, body, &pt) == -1)
		return;
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		goto out;
	if (!REL_CAN_DEPLOY(a.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		goto out;
	}
	if (pt.access != NULL) {
		if (!REL_CAN_MANAGE(a.rel)) {
			api_fail(ctx, 404, "not_found", "app not found");
			goto out;
		}
		if (strcmp(pt.access, "acl") != 0 &&
		    strcmp(pt.access, "logged_in") != 0 &&
		    strcmp(pt.access, "public") != 0) {
			api_fail(ctx, 400, "bad_request", "access_type must be "
			    "'acl', 'logged_in', or 'public'");
			goto out;
		}
	}
	if (pt.refresh != NULL && *pt.refresh != '\0' &&
	    cron_valid(pt.refresh) == -1) {
		api_fail(ctx, 400, "bad_request",
		    "invalid refresh_schedule cron expression");
		goto out;
	}
	if (pt.image != NULL && strpbrk(pt.image, " \t\n") != NULL) {
		api_fail(ctx, 400, "bad_request",
		    "image must not contain whitespace");
		goto out;
	}
	if (pt.runtime != NULL && !is_admin(ctx)) {
		api_fail(ctx, 403, "forbidden", "runtime requires admin");
		goto out;
	}
	if (pt.mounts != NULL && patch_check_mounts(ctx, pt.mounts) == -1)
		goto out;
	strlcpy(oldname, a.name, sizeof(oldname));
	if (pt.name != NULL && strcmp(pt.name, a.name) != 0) {
		if (app_rename(ctx, db, &a, pt.name) == -1)
			goto out;
		renamed = 1;
	}
	if (patch_apply(ctx, db, &pt, a.id) == -1) {
		api_internal(ctx, "update app");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	/* enforced limits reach running workers with the workers issue */
	if (renamed)
		audit_log(ctx, "app.rename", a.id, json_pack("{s:s s:s}",
		    "old_name", oldname, "new_name", pt.name));
	audit_log(ctx, "app.update", a.id, NULL);
	app_answer(ctx, 200, a.id, 1, NULL);
	return;
out:
	db_rollback(db);
}

/* ---- delete, purge, restore, enable, disable ----------------------- */

/* DELETE /api/v1/apps/{id}?purge=true: admin only, deleted apps only */
static void
app_purge(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	const char	*ref = op_arg(ctx, "id");
	int		 r;

	if (!is_admin(ctx)) {
		api_fail(ctx, 403, "forbidden", "admin only");
		return;
	}
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if ((r = app_find_any(db, ref ? ref : "", 0, &a)) == -1) {
		fail_db(ctx, db, "find app");
		return;
	}
	if (r == 0) {
		db_rollback(db);
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	if (!a.deleted) {
		db_rollback(db);
		api_fail(ctx, 409, "conflict",
		    "app must be soft-deleted before purging");
		return;
	}
	if (app_purge_rows(db, a.id) == -1) {
		fail_db(ctx, db, "purge app");
		return;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	log_info("app %s (%s) purged by %s", a.name, a.id, ctx->caller.sub);
	api_ok(ctx, 204, NULL);
}

/* DELETE /api/v1/apps/{id} */
static void
op_apps_delete(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[2];
	char		 now[32];
	int		 soft;

	if (ctx->args != NULL &&
	    json_is_true(json_object_get(ctx->args, "purge"))) {
		app_purge(ctx);
		return;
	}
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1) {
		db_rollback(db);
		return;
	}
	if (!REL_CAN_MANAGE(a.rel)) {
		db_rollback(db);
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	soft = proc_conf != NULL &&
	    proc_conf->storage.soft_delete_retention > 0;
	if (soft) {
		db_timestamp(now, sizeof(now));
		p[0] = DB_PTEXT(now);
		p[1] = DB_PTEXT(a.id);
		if (db_exec(db, "UPDATE apps SET deleted_at = $1 WHERE id = $2",
		    p, 2) == -1) {
			fail_db(ctx, db, "soft delete app");
			return;
		}
	} else if (app_purge_rows(db, a.id) == -1) {
		fail_db(ctx, db, "delete app");
		return;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	audit_log(ctx, "app.delete", a.id, json_pack("{s:s}", "name", a.name));
	api_ok(ctx, 204, NULL);
}

/* POST /api/v1/apps/{id}/restore: admin or the original owner */
static void
op_apps_restore(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[1];
	const char	*ref = op_arg(ctx, "id");
	int64_t		 n;
	int		 r;

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if ((r = app_find_any(db, ref ? ref : "", 1, &a)) == -1) {
		fail_db(ctx, db, "find app");
		return;
	}
	if (r == 0 || !a.deleted || (!is_admin(ctx) &&
	    strcmp(a.owner, ctx->caller.sub) != 0)) {
		db_rollback(db);
		api_fail(ctx, 404, "not_found", "deleted app not found");
		return;
	}
	p[0] = DB_PTEXT(a.name);
	if ((r = db_query_int(db, "SELECT 1 FROM apps WHERE name = $1 AND "
	    "deleted_at IS NULL", p, 1, &n)) == -1) {
		fail_db(ctx, db, "restore check");
		return;
	}
	p[0] = DB_PTEXT(a.id);
	if (r == 1 || db_exec(db, "UPDATE apps SET deleted_at = NULL WHERE "
	    "id = $1", p, 1) == -1) {
		if (r == 1 || db_errcode(db) == DB_E_UNIQUE) {
			db_rollback(db);
			api_fail(ctx, 409, "conflict",
			    "another app already uses the name %s", a.name);
			return;
		}
		fail_db(ctx, db, "restore app");
		return;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	audit_log(ctx, "app.restore", a.id, json_pack("{s:s}", "name",
	    a.name));
	app_answer(ctx, 200, a.id, 0, NULL);
}

static void
app_set_enabled(struct api_ctx *ctx, int enabled)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[3];
	char		 now[32];

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1) {
		db_rollback(db);
		return;
	}
	if (!REL_CAN_DEPLOY(a.rel)) {
		db_rollback(db);
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	db_timestamp(now, sizeof(now));
	p[0] = DB_PINT(enabled);
	p[1] = DB_PTEXT(now);
	p[2] = DB_PTEXT(a.id);
	if (db_exec(db, "UPDATE apps SET enabled = $1, updated_at = $2 "
	    "WHERE id = $3", p, 3) == -1) {
		fail_db(ctx, db, "enable app");
		return;
	}
	if (!enabled) {
		/* the app's recorded sessions end with it */
		p[0] = DB_PTEXT(now);
		p[1] = DB_PTEXT(a.id);
		if (db_exec(db, "UPDATE sessions SET status = 'ended', "
		    "ended_at = $1 WHERE app_id = $2 AND status = 'active'",
		    p, 2) == -1) {
			fail_db(ctx, db, "end sessions");
			return;
		}
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	app_answer(ctx, 200, a.id, 0, NULL);
}

static void
op_apps_enable(struct api_ctx *ctx)
{
	app_set_enabled(ctx, 1);
}

static void
op_apps_disable(struct api_ctx *ctx)
{
	app_set_enabled(ctx, 0);
}

/* ---- rollback ------------------------------------------------------ */

struct rollback_row {
	int	 found;
	char	 status[32];
	char	 active[UUID_LEN];	/* the app's active bundle, or "" */
};

static int
rollback_row(const struct db_row *r, void *arg)
{
	struct rollback_row	*rb = arg;
	const char		*s;

	rb->found = 1;
	strlcpy(rb->status, (s = db_row_text(r, 0)) ? s : "",
	    sizeof(rb->status));
	strlcpy(rb->active, (s = db_row_text(r, 1)) ? s : "",
	    sizeof(rb->active));
	return 1;
}

/*
 * May the app go back to bundle bid: one of its own, ready, not active
 * already?  The active bundle's id goes into prev.  0 or -1 answered.
 */
static int
rollback_check(struct api_ctx *ctx, struct db *db, const char *app_id,
    const char *bid, char *prev, size_t prevlen)
{
	struct rollback_row	 rb;
	struct db_param		 p[2];

	memset(&rb, 0, sizeof(rb));
	p[0] = DB_PTEXT(bid);
	p[1] = DB_PTEXT(app_id);
	if (db_query(db, "SELECT b.status, a.active_bundle FROM bundles b "
	    "JOIN apps a ON a.id = b.app_id WHERE b.id = $1 AND "
	    "b.app_id = $2", p, 2, rollback_row, &rb) == -1) {
		api_internal(ctx, "find bundle");
		return -1;
	}
	if (!rb.found) {
		api_fail(ctx, 404, "not_found", "bundle not found");
		return -1;
	}
	if (strcmp(rb.status, "ready") != 0) {
		api_fail(ctx, 400, "bad_request",
		    "bundle is not ready (status: %s)", rb.status);
		return -1;
	}
	if (strcmp(rb.active, bid) == 0) {
		api_fail(ctx, 400, "bad_request", "bundle is already active");
		return -1;
	}
	strlcpy(prev, rb.active, prevlen);
	return 0;
}

/* The bundle becomes active, stamped as deployed now by the caller. */
static int
rollback_apply(struct api_ctx *ctx, struct db *db, const char *app_id,
    const char *bid)
{
	struct db_param	 p[3];
	char		 now[32];

	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(bid);
	p[1] = DB_PTEXT(now);
	p[2] = DB_PTEXT(app_id);
	if (db_exec(db, "UPDATE apps SET active_bundle = $1, updated_at = $2 "
	    "WHERE id = $3", p, 3) == -1)
		return -1;
	p[2] = DB_PTEXT(ctx->caller.sub);
	return db_exec(db, "UPDATE bundles SET deployed_at = $2, "
	    "deployed_by = $3 WHERE id = $1", p, 3) == -1 ? -1 : 0;
}

/*
 * POST /api/v1/apps/{id}/rollback {"bundle_id"}: the body is checked
 * before the app is looked up, as in the reference.  byproxy drains
 * the app's workers after a successful answer.
 */
static void
op_apps_rollback(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	json_t		*body;
	const char	*bid;
	char		 prev[UUID_LEN];

	if ((body = op_body(ctx, "invalid JSON body")) == NULL ||
	    op_str(ctx, body, "bundle_id", NULL, "invalid JSON body",
	    &bid) == -1)
		return;
	if (bid == NULL || *bid == '\0') {
		api_fail(ctx, 400, "bad_request", "bundle_id is required");
		return;
	}
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		goto out;
	if (!REL_CAN_DEPLOY(a.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		goto out;
	}
	if (rollback_check(ctx, db, a.id, bid, prev, sizeof(prev)) == -1)
		goto out;
	if (rollback_apply(ctx, db, a.id, bid) == -1) {
		fail_db(ctx, db, "rollback");
		return;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	audit_log(ctx, "app.rollback", a.id, json_pack("{s:s s:s?}",
	    "bundle_id", bid, "previous_bundle_id",
	    prev[0] != '\0' ? prev : NULL));
	app_answer(ctx, 200, a.id, 0, NULL);
	return;
out:
	db_rollback(db);
}

/* ---- the sweep ----------------------------------------------------- */

static int
sweep_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, json_pack("[o o]", col_text0(r, 0),
	    col_text0(r, 1)));
	return 0;
}

/*
 * Aliases: "alias" rows past their time become "redirect" for seven
 * days (the proxy answers 301), then go.  Apps soft-deleted longer than
 * soft_delete_retention are purged.  Cheap: indexed or tiny tables.
 */
void
app_sweep(void)
{
	struct db	*db = state_handle();
	struct db_param	 p[2];
	char		 now[32], later[32], cutoff[32];
	int64_t		 keep;
	json_t		*gone, *e;
	size_t		 i;

	if (db == NULL || db->in_tx)
		return;
	db_timestamp(now, sizeof(now));
	db_timestamp_offset(later, sizeof(later), REDIRECT_TTL);
	p[0] = DB_PTEXT(later);
	p[1] = DB_PTEXT(now);
	if (db_exec(db, "UPDATE app_aliases SET phase = 'redirect', "
	    "expires_at = $1 WHERE phase = 'alias' AND expires_at <= $2", p,
	    2) == -1)
		log_warnx("alias sweep: %s", db_error(db));
	p[0] = DB_PTEXT(now);
	if (db_exec(db, "DELETE FROM app_aliases WHERE phase = 'redirect' "
	    "AND expires_at <= $1", p, 1) == -1)
		log_warnx("alias sweep: %s", db_error(db));

	keep = proc_conf != NULL ? proc_conf->storage.soft_delete_retention :
	    0;
	if (keep <= 0)
		return;
	db_timestamp_offset(cutoff, sizeof(cutoff), -(keep / 1000));
	gone = json_array();
	p[0] = DB_PTEXT(cutoff);
	if (db_query(db, "SELECT id, name FROM apps WHERE deleted_at IS NOT "
	    "NULL AND deleted_at < $1", p, 1, sweep_row, gone) == -1)
		log_warnx("soft-delete sweep: %s", db_error(db));
	json_array_foreach(gone, i, e) {
		const char	*id = json_string_value(json_array_get(e, 0));

		if (db_begin(db) == -1 || app_purge_rows(db, id) == -1 ||
		    db_commit(db) == -1) {
			log_warnx("soft-delete sweep: app %s: %s", id,
			    db_error(db));
			db_rollback(db);
			continue;
		}
		log_info("app %s (%s) purged: deleted longer than "
		    "soft_delete_retention", json_string_value(
		    json_array_get(e, 1)), id);
	}
	json_decref(gone);
}

static void
sweep_timer(evutil_socket_t fd, short what, void *arg)
{
	app_sweep();
}

void
app_sweep_start(void)
{
	struct timeval	 tv = { SWEEP_SECONDS, 0 };

	if (sweep_ev != NULL || proc_base == NULL || state_handle() == NULL)
		return;
	if ((sweep_ev = event_new(proc_base, -1, EV_PERSIST, sweep_timer,
	    NULL)) == NULL) {
		log_warnx("alias sweep: cannot create timer");
		return;
	}
	event_add(sweep_ev, &tv);
	app_sweep();
}

const struct api_op api_app_ops[] = {
	{ "apps.create",	API_USER,	op_apps_create },
	{ "apps.list",		API_USER,	op_apps_list },
	{ "apps.get",		API_USER,	op_apps_get },
	{ "apps.update",	API_USER,	op_apps_update },
	{ "apps.delete",	API_USER,	op_apps_delete },
	{ "apps.restore",	API_USER,	op_apps_restore },
	{ "apps.enable",	API_USER,	op_apps_enable },
	{ "apps.disable",	API_USER,	op_apps_disable },
	{ "apps.rollback",	API_USER,	op_apps_rollback },
	{ NULL,			0,		NULL }
};
