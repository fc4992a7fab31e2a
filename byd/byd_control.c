/*
 * The admin socket ([server] control_socket) that byctl talks to: mode
 * 0660, group of [server] user.  The same message layer as between the
 * processes; every request is answered with MSG_CTL_RESULT (JSON).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byd.h"
#include "log.h"

#define CONTROL_MAX_CONNS	32

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn)	 entry;
	struct msgchan		*chan;
	uid_t			 uid;
	uint64_t		 id;
};

/* byctl requests forwarded to bystate, waiting for the answer */
struct ctl_fwd {
	TAILQ_ENTRY(ctl_fwd)	 entry;
	uint32_t		 reqid;		/* to bystate */
	uint32_t		 ctl_reqid;	/* byctl's */
	uint64_t		 conn_id;
};
static TAILQ_HEAD(, ctl_fwd) ctl_fwds = TAILQ_HEAD_INITIALIZER(ctl_fwds);
static uint64_t		 ctl_next_id;

static TAILQ_HEAD(, ctl_conn) ctl_conns = TAILQ_HEAD_INITIALIZER(ctl_conns);
static int		 ctl_fd = -1;
static struct event	*ctl_ev;
static gid_t		 ctl_gid;
static char		 ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static size_t		 ctl_nconns;

static void
ctl_conn_free(struct ctl_conn *cc)
{
	TAILQ_REMOVE(&ctl_conns, cc, entry);
	msgchan_free(cc->chan);
	free(cc);
	ctl_nconns--;
}

static void
ctl_reply(struct ctl_conn *cc, uint32_t reqid, json_t *res)
{
	char	*s;

	if ((s = json_dumps(res, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	json_decref(res);
	msgchan_send_str(cc->chan, MSG_CTL_RESULT, reqid, s);
	free(s);
}

static json_t *
ctl_error(const char *fmt, const char *arg)
{
	char	 buf[1024];

	snprintf(buf, sizeof(buf), fmt, arg);
	return json_pack("{s:b s:s}", "ok", 0, "error", buf);
}

/*
 * Data commands (tokens, users) are bystate's: pass byctl's request on
 * as a trusted operator call and relay the answer.
 */
static int
ctl_forward(struct ctl_conn *cc, struct msg *m, enum proc_id to)
{
	struct child	*st = &env->children[to];
	struct ctl_fwd	*f;
	json_t		*req;
	json_error_t	 jerr;
	char		*s;
	uint32_t	 reqid = msg_reqid();

	if (st->chan == NULL || st->state != CHILD_READY)
		return -1;
	if ((req = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL ||
	    !json_is_string(json_object_get(req, "op"))) {
		json_decref(req);
		return -1;
	}
	json_object_set_new(req, "auth", json_pack("{s:b}", "ctl", 1));
	json_object_set_new(req, "remote", json_string("byctl"));
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (s == NULL || msgchan_send_str(st->chan, to == PROC_SPAWN ?
	    MSG_SPAWN_CALL : MSG_STATE_CALL, reqid, s) == -1) {
		free(s);
		return -1;
	}
	free(s);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		fatal("calloc");
	f->reqid = reqid;
	f->ctl_reqid = m->hdr.peerid;
	f->conn_id = cc->id;
	TAILQ_INSERT_TAIL(&ctl_fwds, f, entry);
	return 0;
}

/* bystate or byspawn answered a forwarded request. */
void
control_state_result(struct msg *m)
{
	struct ctl_fwd	*f;
	struct ctl_conn	*cc;
	json_t		*res, *out;
	json_error_t	 jerr;
	int		 status;

	TAILQ_FOREACH(f, &ctl_fwds, entry)
		if (f->reqid == m->hdr.peerid)
			break;
	if (f == NULL)
		return;
	TAILQ_REMOVE(&ctl_fwds, f, entry);
	TAILQ_FOREACH(cc, &ctl_conns, entry)
		if (cc->id == f->conn_id)
			break;
	if (cc != NULL) {
		if ((res = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
			out = ctl_error("%s", "bad answer from bystate");
		else {
			status = (int)json_integer_value(json_object_get(res,
			    "status"));
			out = json_pack("{s:b s:i s:O? s:O? s:O?}", "ok",
			    status >= 200 && status < 300, "status", status,
			    "data", json_object_get(res, "data"), "error",
			    json_object_get(res, "message"), "code",
			    json_object_get(res, "error"));
			json_decref(res);
		}
		ctl_reply(cc, f->ctl_reqid, out);
	}
	free(f);
}

static void
ctl_dispatch(struct msgchan *c, struct msg *m, void *arg)
{
	struct ctl_conn	*cc = arg;
	json_t		*res;
	char		 err[1024];
	int		 lvl;

	switch (m->hdr.type) {
	case MSG_CTL_STATUS:
		res = byd_status();
		json_object_set_new(res, "ok", json_true());
		break;
	case MSG_CTL_RELOAD:
		if (byd_reload(err, sizeof(err)) == -1)
			res = ctl_error("%s", err);
		else
			res = json_pack("{s:b s:s}", "ok", 1, "message",
			    "configuration reloaded");
		break;
	case MSG_CTL_STATE:
		if (ctl_forward(cc, m, PROC_STATE) == 0)
			return;
		res = ctl_error("%s", "the state service is not available");
		break;
	case MSG_CTL_SPAWN:
		if (ctl_forward(cc, m, PROC_SPAWN) == 0)
			return;
		res = ctl_error("%s", "the spawner is not available");
		break;
	case MSG_CTL_LOG_LEVEL:
		if ((lvl = log_level_parse(m->data)) == -1) {
			res = ctl_error("unknown log level %s (use trace, "
			    "debug, info, warn or error)", m->data);
			break;
		}
		log_info("log level change requested by uid %u",
		    (unsigned)cc->uid);
		byd_set_loglevel((enum log_level)lvl);
		res = json_pack("{s:b s:s}", "ok", 1, "level",
		    log_level_name((enum log_level)lvl));
		break;
	default:
		/* a confused client is not worth dying for: drop it */
		log_warnx("control: unknown request %u; closing", m->hdr.type);
		/* the read side sees EOF next and ctl_closed frees it */
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	ctl_reply(cc, m->hdr.peerid, res);
}

static void
ctl_closed(struct msgchan *c, void *arg)
{
	ctl_conn_free(arg);
}

/* root, byd's own user, or a member of the socket's group. */
static int
ctl_allowed(uid_t uid, gid_t gid)
{
	struct passwd	*pw;
	struct group	*gr;
	char		**mem;

	if (uid == 0 || uid == geteuid() || gid == ctl_gid)
		return 1;
	if ((pw = getpwuid(uid)) == NULL || (gr = getgrgid(ctl_gid)) == NULL)
		return 0;
	if (pw->pw_gid == ctl_gid)
		return 1;
	for (mem = gr->gr_mem; *mem != NULL; mem++)
		if (strcmp(*mem, pw->pw_name) == 0)
			return 1;
	return 0;
}

static void
ctl_accept(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_conn	*cc;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	int		 s;

	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn("control: accept");
		return;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    !ctl_allowed(cred.uid, cred.gid)) {
		log_warnx("control: refused connection from uid %u",
		    (unsigned)cred.uid);
		close(s);
		return;
	}
	if (ctl_nconns >= CONTROL_MAX_CONNS) {
		log_warnx("control: too many connections");
		close(s);
		return;
	}
	if ((cc = calloc(1, sizeof(*cc))) == NULL)
		fatal("calloc");
	cc->uid = cred.uid;
	cc->id = ++ctl_next_id;
	cc->chan = msgchan_new(s, PROC_CTL, "byctl");
	TAILQ_INSERT_TAIL(&ctl_conns, cc, entry);
	ctl_nconns++;
	msgchan_event_start(cc->chan, env->base, ctl_dispatch, ctl_closed, cc);
}

/* Refuse to steal the socket of a byd that is still running. */
static void
ctl_check_stale(const struct sockaddr_un *sun)
{
	int	 s;

	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (connect(s, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		fatalx("%s: another byd is running", sun->sun_path);
	close(s);
	if (unlink(sun->sun_path) == -1 && errno != ENOENT)
		fatal("unlink %s", sun->sun_path);
}

void
control_init(void)
{
	struct sockaddr_un	 sun;
	struct passwd		*pw;
	const char		*path = env->conf->server.control_socket;
	mode_t			 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("[server] control_socket: %s: path too long", path);
	ctl_check_stale(&sun);
	if ((ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	old = umask(0117);
	if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("[server] control_socket: bind %s", path);
	umask(old);
	ctl_gid = getegid();
	if ((pw = getpwnam(env->conf->server.user)) != NULL)
		ctl_gid = pw->pw_gid;
	if (env->root && chown(path, 0, ctl_gid) == -1)
		fatal("chown %s", path);
	if (chmod(path, 0660) == -1)
		fatal("chmod %s", path);
	if (listen(ctl_fd, 16) == -1)
		fatal("listen %s", path);
	strlcpy(ctl_path, path, sizeof(ctl_path));
	ctl_ev = event_new(env->base, ctl_fd, EV_READ | EV_PERSIST, ctl_accept,
	    NULL);
	event_add(ctl_ev, NULL);
	log_debug("admin socket %s", path);
}

void
control_cleanup(void)
{
	struct ctl_conn	*cc;

	struct ctl_fwd	*f;

	while ((cc = TAILQ_FIRST(&ctl_conns)) != NULL)
		ctl_conn_free(cc);
	while ((f = TAILQ_FIRST(&ctl_fwds)) != NULL) {
		TAILQ_REMOVE(&ctl_fwds, f, entry);
		free(f);
	}
	if (ctl_ev != NULL)
		event_free(ctl_ev);
	if (ctl_fd != -1) {
		close(ctl_fd);
		unlink(ctl_path);
	}
}
