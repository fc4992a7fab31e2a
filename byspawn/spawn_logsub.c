/*
 * Log subscriptions: GET /api/v1/apps/{id}/logs?worker_id= reads a
 * worker's ring and, when following, every new line until the worker
 * exits.  Lines travel in batches of at most LOGSUB_BATCH bytes.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "byspawn.h"

#define LOGSUB_BATCH	(64 * 1024)

struct logsub {
	TAILQ_ENTRY(logsub)	 entry;
	struct msgchan		*chan;
	uint32_t		 reqid;
	char			 worker_id[MSG_ID_LEN];
};

static TAILQ_HEAD(, logsub) logsubs = TAILQ_HEAD_INITIALIZER(logsubs);

static void
logsub_end(struct msgchan *c, uint32_t reqid, int status, const char *msg)
{
	struct msg_bundle_result	 r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	strlcpy(r.message, msg, sizeof(r.message));
	msgchan_send(c, MSG_LOGS_END, reqid, -1, &r, sizeof(r));
}

static void
logsub_flush(struct msgchan *c, uint32_t reqid, struct evbuffer *buf)
{
	size_t	 n;
	char	*p;

	while ((n = evbuffer_get_length(buf)) > 0) {
		if (n > LOGSUB_BATCH)
			n = LOGSUB_BATCH;
		p = (char *)evbuffer_pullup(buf, (ssize_t)n);
		msgchan_send(c, MSG_LOGS_DATA, reqid, -1, p, n);
		evbuffer_drain(buf, n);
	}
}

static void
logsub_collect(const struct worker_logline *l, void *arg)
{
	struct evbuffer	*buf = arg;

	evbuffer_add_printf(buf, "%s\n", l->text);
}

static void
logsub_subscribe(struct msgchan *c, struct msg *m)
{
	struct msg_logs	 req;
	struct worker	*w;
	struct logsub	*s;
	struct evbuffer	*buf;

	if (m->datalen != sizeof(req))
		fatalx("%s: bad log subscription", c->name);
	memcpy(&req, m->data, sizeof(req));
	req.app_id[MSG_ID_LEN - 1] = req.worker_id[MSG_ID_LEN - 1] = '\0';
	if ((w = worker_find(req.worker_id)) == NULL ||
	    strcmp(w->app_id, req.app_id) != 0) {
		logsub_end(c, m->hdr.peerid, 404, "worker not found for app");
		return;
	}
	if ((buf = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	worker_log_read(w, 0, logsub_collect, buf);
	logsub_flush(c, m->hdr.peerid, buf);
	evbuffer_free(buf);
	if (!req.follow || w->state == WORKER_EXITED) {
		logsub_end(c, m->hdr.peerid, 0, "");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("calloc");
	s->chan = c;
	s->reqid = m->hdr.peerid;
	strlcpy(s->worker_id, w->id, sizeof(s->worker_id));
	TAILQ_INSERT_TAIL(&logsubs, s, entry);
}

static void
logsub_cancel(struct msgchan *c, struct msg *m)
{
	struct logsub	*s;

	TAILQ_FOREACH(s, &logsubs, entry)
		if (s->chan == c && s->reqid == m->hdr.peerid)
			break;
	if (s != NULL) {
		TAILQ_REMOVE(&logsubs, s, entry);
		free(s);
	}
}

void
logsub_dispatch(struct msgchan *c, struct msg *m)
{
	if (m->hdr.type == MSG_LOGS_SUBSCRIBE)
		logsub_subscribe(c, m);
	else
		logsub_cancel(c, m);
}

/* A worker printed a line: pass it to those following it. */
void
logsub_line(struct worker *w, const struct worker_logline *l, void *arg)
{
	struct logsub	*s;
	struct evbuffer	*buf;

	TAILQ_FOREACH(s, &logsubs, entry) {
		if (strcmp(s->worker_id, w->id) != 0)
			continue;
		if ((buf = evbuffer_new()) == NULL)
			fatal("evbuffer_new");
		logsub_collect(l, buf);
		logsub_flush(s->chan, s->reqid, buf);
		evbuffer_free(buf);
	}
}

/* A worker exited: its followers' streams end. */
void
logsub_worker_exited(struct worker *w)
{
	struct logsub	*s, *next;

	for (s = TAILQ_FIRST(&logsubs); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (strcmp(s->worker_id, w->id) != 0)
			continue;
		logsub_end(s->chan, s->reqid, 0, "");
		TAILQ_REMOVE(&logsubs, s, entry);
		free(s);
	}
}

void
logsub_free(void)
{
	struct logsub	*s;

	while ((s = TAILQ_FIRST(&logsubs)) != NULL) {
		TAILQ_REMOVE(&logsubs, s, entry);
		free(s);
	}
}
