/*
 * Authentication of personal access tokens.  Only the SHA-256 of a token
 * is stored and only the SHA-256 travels from byproxy; every call looks
 * it up again, so a revoked or expired token, or a deactivated user,
 * stops working at once.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "bystate.h"

int
hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
	size_t	 i;
	unsigned int v;

	if (strlen(hex) != outlen * 2)
		return -1;
	for (i = 0; i < outlen; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

struct pat_row {
	int	 found;
	char	 id[64];
	char	 sub[256];
	char	 role[16];
	int	 active;
	int	 revoked;
	char	 expires_at[32];
};

static int
pat_row(const struct db_row *r, void *arg)
{
	struct pat_row	*p = arg;

	p->found = 1;
	strlcpy(p->id, db_row_text(r, 0), sizeof(p->id));
	strlcpy(p->sub, db_row_text(r, 1), sizeof(p->sub));
	strlcpy(p->role, db_row_text(r, 2), sizeof(p->role));
	p->active = (int)db_row_int(r, 3);
	p->revoked = (int)db_row_int(r, 4);
	if (!db_row_isnull(r, 5))
		strlcpy(p->expires_at, db_row_text(r, 5),
		    sizeof(p->expires_at));
	return 0;
}

/*
 * Record last_used_at, at most once a minute per token: a write per
 * request would cost more than the information is worth.
 */
static void
pat_touch(struct db *db, const char *id, const char *now)
{
	struct db_param	 prm[3];
	struct tm	 tm;
	time_t		 t = time(NULL) - 60;
	char		 before[32];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(before, sizeof(before), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return;
	prm[0] = DB_PTEXT(now);
	prm[1] = DB_PTEXT(id);
	prm[2] = DB_PTEXT(before);
	if (db_exec(db, "UPDATE personal_access_tokens SET last_used_at = $1 "
	    "WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
	    prm, 3) == -1)
		log_warnx("token last_used_at: %s", db_error(db));
}

void
auth_pat(struct api_ctx *ctx)
{
	unsigned char	 hash[32];
	struct pat_row	 p;
	struct db_param	 prm[1];
	char		 now[32];
	struct db	*db = state_handle();

	if (db == NULL || hex_decode(ctx->bearer_sha256, hash,
	    sizeof(hash)) == -1)
		return;
	memset(&p, 0, sizeof(p));
	prm[0] = DB_PBLOB(hash, sizeof(hash));
	if (db_query(db, "SELECT t.id, u.sub, u.role, u.active, t.revoked, "
	    "t.expires_at FROM personal_access_tokens t JOIN users u "
	    "ON u.sub = t.user_sub WHERE t.token_hash = $1", prm, 1, pat_row,
	    &p) == -1) {
		log_warnx("token lookup: %s", db_error(db));
		return;
	}
	if (!p.found || p.revoked || !p.active)
		return;
	db_timestamp(now, sizeof(now));
	/* RFC 3339 UTC text with seconds: string order is time order */
	if (p.expires_at[0] != '\0' && strcmp(p.expires_at, now) < 0)
		return;
	ctx->caller.authenticated = 1;
	strlcpy(ctx->caller.sub, p.sub, sizeof(ctx->caller.sub));
	strlcpy(ctx->caller.role, p.role, sizeof(ctx->caller.role));
	strlcpy(ctx->caller.token_id, p.id, sizeof(ctx->caller.token_id));
	pat_touch(db, p.id, now);
}
