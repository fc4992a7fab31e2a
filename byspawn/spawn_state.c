/*
 * byspawn's own calls to bystate (MSG_STATE_CALL on their channel):
 * what a dependency build did to a bundle.  bystate accepts only its
 * API_SPAWN ops from us, with no caller ("auth": null).
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "byspawn.h"

struct state_pending {
	TAILQ_ENTRY(state_pending) entry;
	uint32_t		 reqid;
	spawn_state_fn		 done;
	void			*arg;
};

static TAILQ_HEAD(, state_pending) pending =
    TAILQ_HEAD_INITIALIZER(pending);

/* Takes args.  done gets the answer, or NULL if bystate is gone. */
int
spawn_state_call(const char *op, json_t *args, spawn_state_fn done,
    void *arg)
{
	struct state_pending	*p;
	json_t			*call;
	char			*s;
	uint32_t		 reqid = msg_reqid();
	int			 rv;

	call = json_pack("{s:s s:n s:o}", "op", op, "auth", "args",
	    args != NULL ? args : json_object());
	if (call == NULL || (s = json_dumps(call, JSON_COMPACT)) == NULL)
		fatalx("state call %s: json", op);
	json_decref(call);
	rv = proc_send(PROC_STATE, MSG_STATE_CALL, reqid, -1, s, strlen(s));
	free(s);
	if (rv == -1) {
		log_warnx("state call %s: bystate unreachable", op);
		return -1;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("calloc");
	p->reqid = reqid;
	p->done = done;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&pending, p, entry);
	return 0;
}

void
spawn_state_result(struct msgchan *c, struct msg *m)
{
	struct state_pending	*p;
	json_t			*res;
	json_error_t		 jerr;

	TAILQ_FOREACH(p, &pending, entry)
		if (p->reqid == m->hdr.peerid)
			break;
	if (p == NULL) {
		log_warnx("%s: state result for no call", c->name);
		return;
	}
	TAILQ_REMOVE(&pending, p, entry);
	if ((res = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
		log_warnx("%s: bad state result: %s", c->name, jerr.text);
	if (p->done != NULL)
		p->done(res, p->arg);
	json_decref(res);
	free(p);
}

/* Shutdown: nobody waits for answers any more. */
void
spawn_state_free(void)
{
	struct state_pending	*p;

	while ((p = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, p, entry);
		free(p);
	}
}
