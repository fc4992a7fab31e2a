/*
 * The process suite: names, the channel table, and the helper side of the
 * start-up protocol (see proc.h).
 */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/unistd.h>

#include "log.h"
#include "proc.h"

const char *const proc_names[PROC_MAX] = {
	"byd", "byproxy", "byspawn", "bystate", "byctl"
};

const char *const proc_titles[PROC_MAX] = {
	"monitor", "http", "spawner", "state", "control"
};

/* Nothing else talks to anything else. */
const struct proc_channel proc_channels[] = {
	{ PROC_BYD,	PROC_PROXY },
	{ PROC_BYD,	PROC_SPAWN },
	{ PROC_BYD,	PROC_STATE },
	{ PROC_PROXY,	PROC_STATE },
	{ PROC_PROXY,	PROC_SPAWN },
	{ PROC_SPAWN,	PROC_STATE },
};
const size_t proc_nchannels = sizeof(proc_channels) / sizeof(proc_channels[0]);

static const char *const msg_names[MSG_TYPE_MAX] = {
	[MSG_NONE] = "none",
	[MSG_CONFIG] = "config",
	[MSG_PEER_FD] = "peer_fd",
	[MSG_LISTEN_FD] = "listen_fd",
	[MSG_CONFIG_END] = "config_end",
	[MSG_GO] = "go",
	[MSG_RELOAD] = "reload",
	[MSG_LOG_LEVEL] = "log_level",
	[MSG_DRAIN] = "drain",
	[MSG_SHUTDOWN] = "shutdown",
	[MSG_READY] = "ready",
	[MSG_PING] = "ping",
	[MSG_PONG] = "pong",
	[MSG_STATE_CALL] = "state_call",
	[MSG_STATE_RESULT] = "state_result",
	[MSG_BUNDLE_OPEN] = "bundle_open",
	[MSG_BUNDLE_FD] = "bundle_fd",
	[MSG_BUNDLE_UNPACK] = "bundle_unpack",
	[MSG_BUNDLE_RESULT] = "bundle_result",
	[MSG_BUNDLE_DISCARD] = "bundle_discard",
	[MSG_SPAWN_CALL] = "spawn_call",
	[MSG_SPAWN_RESULT] = "spawn_result",
	[MSG_LOGS_SUBSCRIBE] = "logs_subscribe",
	[MSG_LOGS_DATA] = "logs_data",
	[MSG_LOGS_END] = "logs_end",
	[MSG_LOGS_CANCEL] = "logs_cancel",
	[MSG_WORKER_EXITED] = "worker_exited",
	[MSG_BUILD_DONE] = "build_done",
	[MSG_CTL_STATUS] = "ctl_status",
	[MSG_CTL_RELOAD] = "ctl_reload",
	[MSG_CTL_LOG_LEVEL] = "ctl_log_level",
	[MSG_CTL_RESULT] = "ctl_result",
	[MSG_CTL_STATE] = "ctl_state",
	[MSG_CTL_SPAWN] = "ctl_spawn",
};

struct event_base	*proc_base;
struct config		*proc_conf;
char			*proc_config_file;
struct msgchan		*proc_peers[PROC_MAX];
enum proc_id		 proc_self = PROC_BYD;
int			 proc_debug;

static const struct helper *helper;
static int		 helper_verbose;
static struct event	*sigev[4];

const char *
msg_type_name(uint32_t type)
{
	if (type < MSG_TYPE_MAX && msg_names[type] != NULL)
		return msg_names[type];
	return "unknown";
}

int
msg_id_valid(const char *s)
{
	size_t	 i;

	for (i = 0; i < MSG_ID_LEN - 1; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return s[i] == '\0';
}

int
fd_nonblock_cloexec(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	if ((fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return -1;
	return 0;
}

void
proc_title_init(int argc, char **argv)
{
	extern char	**environ;

	setproctitle_init(argc, argv, environ);
}

void
proc_settitle(const char *title)
{
	setproctitle("%s", title);
}

void
proc_chroot_dir(const struct config *conf, char *buf, size_t len)
{
	char	 tmp[PATH_MAX];

	strlcpy(tmp, conf->server.control_socket, sizeof(tmp));
	snprintf(buf, len, "%s/empty", dirname(tmp));
}

void
proc_drop_privs(const char *user, const char *chroot_dir)
{
	struct passwd	*pw;
	uid_t		 ruid, euid, suid;
	gid_t		 rgid, egid, sgid;

	if (geteuid() == 0) {
		if ((pw = getpwnam(user)) == NULL)
			fatalx("unknown user %s", user);
		if (chroot_dir != NULL) {
			if (chroot(chroot_dir) == -1)
				fatal("chroot %s", chroot_dir);
			if (chdir("/") == -1)
				fatal("chdir /");
		}
		if (setgroups(1, &pw->pw_gid) == -1)
			fatal("setgroups");
		if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1)
			fatal("setresgid %u", (unsigned)pw->pw_gid);
		if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			fatal("setresuid %u", (unsigned)pw->pw_uid);
		/* verify: no way back to root */
		if (getresuid(&ruid, &euid, &suid) == -1 ||
		    getresgid(&rgid, &egid, &sgid) == -1)
			fatal("getresuid");
		if (ruid != pw->pw_uid || euid != pw->pw_uid ||
		    suid != pw->pw_uid || rgid != pw->pw_gid ||
		    egid != pw->pw_gid || sgid != pw->pw_gid)
			fatalx("privilege drop to %s did not take", user);
		if (setuid(0) != -1 || seteuid(0) != -1)
			fatalx("could regain root after dropping privileges");
		log_debug("running as %s (uid %u)%s%s", user,
		    (unsigned)pw->pw_uid, chroot_dir ? ", chrooted to " : "",
		    chroot_dir ? chroot_dir : "");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_NO_NEW_PRIVS)");
	/* the credential change cleared it; byd's death ends us too */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_PDEATHSIG)");
}

int
proc_send(enum proc_id to, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (to >= PROC_MAX || proc_peers[to] == NULL)
		fatalx("no channel from %s to %s", proc_names[proc_self],
		    to < PROC_MAX ? proc_names[to] : "?");
	return msgchan_send(proc_peers[to], type, peerid, fd, data, len);
}

void
proc_dispatch(struct msgchan *c, struct msg *m, const struct msg_handler *tab)
{
	struct msg_int	 pong;
	size_t		 i;

	for (i = 0; tab != NULL && tab[i].fn != NULL; i++) {
		if (tab[i].type == m->hdr.type) {
			tab[i].fn(c, m);
			return;
		}
	}
	if (m->hdr.type == MSG_PING) {
		/* being able to answer is all a plain liveness check asks */
		pong.value = 1;
		msgchan_send(c, MSG_PONG, m->hdr.peerid, -1, &pong,
		    sizeof(pong));
		return;
	}
	fatalx("unexpected message %s (%u) from %s", msg_type_name(m->hdr.type),
	    m->hdr.type, c->name);
}

/* ---- helper side ---------------------------------------------------------- */

__attribute__((noreturn)) void
helper_exit(int status)
{
	size_t	 i;

	for (i = 0; i < PROC_MAX; i++) {
		if (proc_peers[i] != NULL) {
			/* best effort: a last reply may be queued */
			msg_flush(proc_peers[i]);
			msgchan_free(proc_peers[i]);
			proc_peers[i] = NULL;
		}
	}
	for (i = 0; i < sizeof(sigev) / sizeof(sigev[0]); i++)
		if (sigev[i] != NULL)
			event_free(sigev[i]);
	if (proc_conf != NULL)
		config_free(proc_conf);
	free(proc_config_file);
	if (proc_base != NULL)
		event_base_free(proc_base);
	log_debug("exiting (%d)", status);
	exit(status);
}

static void
helper_peer_closed(struct msgchan *c, void *arg)
{
	if (c->peer == PROC_BYD) {
		/* byd is gone: the suite is over */
		log_debug("byd closed the channel; exiting");
		helper_exit(0);
	}
	/*
	 * A peer that goes away is either stopping in order or dead, and
	 * in both cases byd (which reaps it) decides what happens to the
	 * suite.  Keep the dead channel: sends on it fail with EPIPE.
	 */
	log_debug("channel to %s closed", c->name);
}

static void
helper_apply_loglevel(const struct config *conf)
{
	int	 lvl;

	if ((lvl = log_level_parse(conf->server.log_level)) != -1 &&
	    !helper_verbose)
		log_setlevel((enum log_level)lvl);
}

static struct config *
helper_parse_config(struct msg *m)
{
	json_t		*root, *cj, *f;
	json_error_t	 jerr;
	struct config	*conf;
	char		 err[512];

	if ((root = json_loadb(m->data, m->datalen, 0, &jerr)) == NULL)
		fatalx("bad configuration from byd: %s", jerr.text);
	if ((cj = json_object_get(root, "config")) == NULL)
		fatalx("bad configuration from byd: no config");
	if ((conf = config_from_json(cj, err, sizeof(err))) == NULL)
		fatalx("bad configuration from byd: %s", err);
	if ((f = json_object_get(root, "config_file")) != NULL &&
	    json_is_string(f)) {
		free(proc_config_file);
		if ((proc_config_file = strdup(json_string_value(f))) == NULL)
			fatal("strdup");
	}
	json_decref(root);
	return conf;
}

static void
helper_dispatch_byd(struct msgchan *c, struct msg *m, void *arg)
{
	struct config	*old;
	struct msg_int	 v;

	switch (m->hdr.type) {
	case MSG_GO:
		log_debug("go");
		if (helper->go != NULL)
			helper->go();
		return;
	case MSG_RELOAD:
		old = proc_conf;
		proc_conf = helper_parse_config(m);
		helper_apply_loglevel(proc_conf);
		if (helper->reload != NULL)
			helper->reload(old);
		config_free(old);
		return;
	case MSG_LOG_LEVEL:
		if (m->datalen != sizeof(v))
			fatalx("bad log level message");
		memcpy(&v, m->data, sizeof(v));
		if (v.value < LOG_LVL_TRACE || v.value > LOG_LVL_ERROR)
			fatalx("bad log level %d", v.value);
		log_setlevel_announce((enum log_level)v.value);
		return;
	case MSG_DRAIN:
		log_info("entering drain mode");
		if (helper->drain != NULL)
			helper->drain();
		return;
	case MSG_SHUTDOWN:
		log_debug("shutdown requested");
		if (helper->shutdown != NULL)
			helper->shutdown();
		else
			helper_exit(0);
		return;
	}
	proc_dispatch(c, m, helper->handlers[PROC_BYD]);
}

static void
helper_dispatch_peer(struct msgchan *c, struct msg *m, void *arg)
{
	proc_dispatch(c, m, helper->handlers[c->peer]);
}

/* Started by byd?  The channel is a connected Unix stream socket on fd 3. */
static void
helper_check_parent(const char *prog)
{
	struct stat		 st;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 type;
	socklen_t		 tlen = sizeof(type);

	if (fstat(PROC_PARENT_FD, &st) == -1 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(PROC_PARENT_FD, SOL_SOCKET, SO_TYPE, &type,
	    &tlen) == -1 || type != SOCK_STREAM ||
	    getsockname(PROC_PARENT_FD, (struct sockaddr *)&ss, &len) == -1 ||
	    ss.ss_family != AF_UNIX) {
		fprintf(stderr, "%s: this program is part of byd(8) and is "
		    "started by byd; do not run it by hand\n", prog);
		exit(1);
	}
}

/* Read the start-up messages from byd until MSG_CONFIG_END. */
static void
helper_receive_setup(struct msgchan *c)
{
	struct msg		 m;
	struct msg_peer		 peer;
	struct msg_listen	 ls;
	int			 r;

	for (;;) {
		if ((r = msg_recv_blocking(c, &m)) != 1)
			fatalx("byd went away during start-up");
		switch (m.hdr.type) {
		case MSG_CONFIG:
			proc_conf = helper_parse_config(&m);
			helper_apply_loglevel(proc_conf);
			break;
		case MSG_PEER_FD:
			if (m.datalen != sizeof(peer) || m.fd == -1)
				fatalx("bad peer message");
			memcpy(&peer, m.data, sizeof(peer));
			if (peer.proc <= PROC_BYD || peer.proc >= PROC_CTL ||
			    proc_peers[peer.proc] != NULL)
				fatalx("bad peer %d", peer.proc);
			if (fd_nonblock_cloexec(m.fd) == -1)
				fatal("fcntl");
			proc_peers[peer.proc] = msgchan_new(m.fd, peer.proc,
			    proc_names[peer.proc]);
			m.fd = -1;
			break;
		case MSG_LISTEN_FD:
			if (m.datalen != sizeof(ls) || m.fd == -1 ||
			    helper->listen_fd == NULL)
				fatalx("bad listen message");
			memcpy(&ls, m.data, sizeof(ls));
			helper->listen_fd((enum listen_kind)ls.kind, m.fd);
			m.fd = -1;
			break;
		case MSG_CONFIG_END:
			msg_free(&m);
			if (proc_conf == NULL)
				fatalx("no configuration from byd");
			return;
		default:
			fatalx("unexpected %s during start-up",
			    msg_type_name(m.hdr.type));
		}
		msg_free(&m);
	}
}

static void
helper_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		/* byd's death (PDEATHSIG) or an operator: stop in order */
		log_debug("signal %d: stopping", (int)sig);
		if (helper->shutdown != NULL)
			helper->shutdown();
		else
			helper_exit(0);
		break;
	default:
		/* SIGHUP and SIGUSR1 belong to byd; ignore */
		break;
	}
}

void
helper_main(int argc, char **argv, const struct helper *h)
{
	struct msgchan	*c;
	json_t		*status;
	char		*s, chdir_buf[PATH_MAX];
	int		 ch, sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	size_t		 i;

	helper = h;
	proc_self = h->id;
	helper_check_parent(proc_names[h->id]);
	while ((ch = getopt(argc, argv, "dv")) != -1) {
		switch (ch) {
		case 'd':
			proc_debug = 1;
			break;
		case 'v':
			helper_verbose = 1;
			log_setlevel(LOG_LVL_DEBUG);
			break;
		default:
			fprintf(stderr, "usage: %s [-dv]\n",
			    proc_names[h->id]);
			exit(1);
		}
	}
	log_init(proc_names[h->id], !proc_debug);
	proc_title_init(argc, argv);
	proc_settitle(proc_titles[h->id]);
	signal(SIGPIPE, SIG_IGN);

	if (fd_nonblock_cloexec(PROC_PARENT_FD) == -1)
		fatal("fcntl");
	c = msgchan_new(PROC_PARENT_FD, PROC_BYD, "byd");
	proc_peers[PROC_BYD] = c;
	helper_receive_setup(c);

	if (h->init != NULL)
		h->init();
	if (h->drop_privs) {
		if (h->chroot && geteuid() == 0) {
			proc_chroot_dir(proc_conf, chdir_buf, sizeof(chdir_buf));
			proc_drop_privs(proc_conf->server.user, chdir_buf);
		} else
			proc_drop_privs(proc_conf->server.user, NULL);
	}

	if ((proc_base = event_base_new()) == NULL)
		fatalx("event_base_new");
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigev[i] = evsignal_new(proc_base, sigs[i], helper_signal, NULL);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL) == -1)
			fatalx("evsignal_add");
	}
	msgchan_event_start(c, proc_base, helper_dispatch_byd,
	    helper_peer_closed, NULL);
	for (i = PROC_BYD + 1; i < PROC_CTL; i++)
		if (proc_peers[i] != NULL)
			msgchan_event_start(proc_peers[i], proc_base,
			    helper_dispatch_peer, helper_peer_closed, NULL);

	status = h->start != NULL ? h->start() : NULL;
	if (status == NULL)
		status = json_object();
	if ((s = json_dumps(status, JSON_COMPACT)) == NULL)
		fatalx("json_dumps");
	json_decref(status);
	msgchan_send_str(c, MSG_READY, 0, s);
	free(s);
	log_debug("ready");

	event_base_dispatch(proc_base);
	helper_exit(0);
}
