/*
 * What bystate answers on its channels.  One table per peer: a message
 * a peer has no business sending is not in its table, and proc_dispatch
 * treats it as fatal.
 */

#include <sys/types.h>

#include <stdint.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "bystate.h"

const struct msg_handler state_byd_handlers[] = {
	{ MSG_PING,	state_ping },
	{ MSG_STATE_CALL, state_call_ctl },
	{ 0,		NULL }
};

const struct msg_handler state_proxy_handlers[] = {
	{ MSG_PING,	state_ping },
	{ MSG_STATE_CALL, state_call_proxy },
	{ 0,		NULL }
};

const struct msg_handler state_spawn_handlers[] = {
	{ MSG_PING,	state_ping },
	{ MSG_STATE_CALL, state_call_spawn },
	{ 0,		NULL }
};

/*
 * Readiness: byproxy's /readyz asks whether the database answers, not
 * whether bystate does.  Log only changes, since /readyz is polled.
 */
void
state_ping(struct msgchan *c, struct msg *m)
{
	static int	 was_ok = 1;
	struct msg_int	 v;
	struct db	*db;

	if (m->datalen != 0)
		fatalx("%s: ping with a %zu byte payload", c->name,
		    m->datalen);
	db = state_handle();
	v.value = db != NULL && db_ping(db) == 0;
	if (!v.value && was_ok)
		log_warnx("database not answering: %s",
		    db != NULL ? db_error(db) : "not open");
	else if (v.value && !was_ok)
		log_info("database answering again");
	was_ok = v.value;
	if (msgchan_send(c, MSG_PONG, m->hdr.peerid, -1, &v, sizeof(v)) == -1)
		log_warn("%s: pong", c->name);
}
