/*
 * The helpers: socketpairs from proc_channels[], fork+exec, the start-up
 * messages, readiness, and stopping them in order.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byd.h"
#include "log.h"

/* Helpers start in this order and stop in the reverse: state first up. */
static const enum proc_id start_order[] = { PROC_STATE, PROC_SPAWN,
    PROC_PROXY };
/* HTTP first down so no new work arrives, the database last. */
static const enum proc_id stop_order[] = { PROC_PROXY, PROC_SPAWN,
    PROC_STATE };
#define NHELPERS	(sizeof(start_order) / sizeof(start_order[0]))

/* socketpair ends: pairfd[i][0] belongs to proc_channels[i].a */
static int	 pairfd[16][2];

const char *
child_state_name(enum child_state s)
{
	switch (s) {
	case CHILD_NONE:
		return "none";
	case CHILD_STARTING:
		return "starting";
	case CHILD_READY:
		return "running";
	case CHILD_STOPPING:
		return "stopping";
	case CHILD_EXITED:
		return "exited";
	}
	return "?";
}

int
child_alive(enum proc_id id)
{
	return env->children[id].pid > 0 &&
	    env->children[id].state != CHILD_EXITED;
}

static void child_dispatch(struct msgchan *, struct msg *, void *);
static void child_closed(struct msgchan *, void *);

static __attribute__((noreturn)) void
child_exec(enum proc_id id, int fd)
{
	char	 path[PATH_MAX + 16];
	char	*argv[4];
	int	 argc = 0;

	snprintf(path, sizeof(path), "%s/%s", env->helperdir, proc_names[id]);
	if (fd != PROC_PARENT_FD) {
		if (dup2(fd, PROC_PARENT_FD) == -1)
			_exit(127);
	} else if (fcntl(fd, F_SETFD, 0) == -1)
		_exit(127);
	/* nothing else crosses exec: a fresh process with one channel */
	if (close_range(PROC_PARENT_FD + 1, ~0U, 0) == -1)
		_exit(127);
	argv[argc++] = (char *)proc_names[id];
	if (env->debug)
		argv[argc++] = "-d";
	if (env->verbose)
		argv[argc++] = "-v";
	argv[argc] = NULL;
	execv(path, argv);
	dprintf(STDERR_FILENO, "byd: exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

static void
child_send_setup(enum proc_id id)
{
	struct child		*ch = &env->children[id];
	struct msg_peer		 peer;
	struct msg_listen	 ls;
	size_t			 i;
	int			 fd;

	child_send_config(id, MSG_CONFIG);
	for (i = 0; i < proc_nchannels; i++) {
		if (proc_channels[i].a == PROC_BYD ||
		    proc_channels[i].b == PROC_BYD)
			continue;
		if (proc_channels[i].a == id) {
			peer.proc = proc_channels[i].b;
			fd = pairfd[i][0];
			pairfd[i][0] = -1;
		} else if (proc_channels[i].b == id) {
			peer.proc = proc_channels[i].a;
			fd = pairfd[i][1];
			pairfd[i][1] = -1;
		} else
			continue;
		msg_compose(ch->chan, MSG_PEER_FD, 0, fd, &peer, sizeof(peer));
	}
	if (id == PROC_PROXY) {
		for (i = 0; i < 2; i++) {
			if (env->listen_fd[i] == -1)
				continue;
			ls.kind = (int32_t)i;
			/* the message layer closes our copy once sent */
			msg_compose(ch->chan, MSG_LISTEN_FD, 0,
			    env->listen_fd[i], &ls, sizeof(ls));
			env->listen_fd[i] = -1;
		}
	}
	msg_compose(ch->chan, MSG_CONFIG_END, 0, -1, NULL, 0);
	if (msg_flush_all(ch->chan) == -1)
		fatal("send setup to %s", proc_names[id]);
}

void
child_send_config(enum proc_id id, uint32_t type)
{
	json_t	*root;
	char	*s;

	root = json_pack("{s:o s:s}", "config", config_to_json(env->conf),
	    "config_file", env->config_file ? env->config_file : "");
	if (root == NULL || (s = json_dumps(root, JSON_COMPACT)) == NULL)
		fatalx("cannot encode the configuration");
	json_decref(root);
	if (env->children[id].chan == NULL)
		fatalx("no channel to %s", proc_names[id]);
	if (msgchan_send_str(env->children[id].chan, type, 0, s) == -1)
		fatal("send configuration to %s", proc_names[id]);
	free(s);
}

void
child_start_all(void)
{
	struct child	*ch;
	size_t		 i, j;
	int		 byd_end[PROC_MAX];
	pid_t		 pid;

	if (proc_nchannels > sizeof(pairfd) / sizeof(pairfd[0]))
		fatalx("channel table too big");
	for (i = 0; i < PROC_MAX; i++)
		byd_end[i] = -1;
	for (i = 0; i < proc_nchannels; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		    pairfd[i]) == -1)
			fatal("socketpair");
		if (proc_channels[i].a == PROC_BYD) {
			byd_end[proc_channels[i].b] = pairfd[i][0];
			pairfd[i][0] = -1;
		}
	}

	for (j = 0; j < NHELPERS; j++) {
		enum proc_id id = start_order[j];
		int cfd = -1;

		for (i = 0; i < proc_nchannels; i++)
			if (proc_channels[i].a == PROC_BYD &&
			    proc_channels[i].b == id)
				cfd = pairfd[i][1];
		ch = &env->children[id];
		ch->id = id;
		switch ((pid = fork())) {
		case -1:
			fatal("fork");
		case 0:
			child_exec(id, cfd);
		}
		ch->pid = pid;
		ch->state = CHILD_STARTING;
		ch->started = time(NULL);
		if (fd_nonblock_cloexec(byd_end[id]) == -1)
			fatal("fcntl");
		ch->chan = msgchan_new(byd_end[id], id, proc_names[id]);
		log_debug("started %s, pid %ld", proc_names[id], (long)pid);
	}
	/* the children's ends of byd's channels are theirs now */
	for (i = 0; i < proc_nchannels; i++)
		if (proc_channels[i].a == PROC_BYD) {
			close(pairfd[i][1]);
			pairfd[i][1] = -1;
		}
	for (j = 0; j < NHELPERS; j++)
		child_send_setup(start_order[j]);
	for (j = 0; j < NHELPERS; j++) {
		ch = &env->children[start_order[j]];
		msgchan_event_start(ch->chan, env->base, child_dispatch,
		    child_closed, ch);
	}
}

void
child_send_all(uint32_t type, const void *data, size_t len)
{
	size_t	 j;
	struct child *ch;

	for (j = 0; j < NHELPERS; j++) {
		ch = &env->children[start_order[j]];
		if (ch->chan != NULL && ch->state == CHILD_READY)
			msgchan_send(ch->chan, type, 0, -1, data, len);
	}
}

static void
child_all_ready(void)
{
	size_t	 j;

	for (j = 0; j < NHELPERS; j++)
		if (env->children[start_order[j]].state != CHILD_READY)
			return;
	env->ready = 1;
	if (env->ready_timer != NULL)
		event_del(env->ready_timer);
	child_send_all(MSG_GO, NULL, 0);
	log_info("ready: serving on %s%s%s", env->conf->server.bind,
	    env->conf->server.management_bind ? ", management on " : "",
	    env->conf->server.management_bind ?
	    env->conf->server.management_bind : "");
}

static void
child_dispatch(struct msgchan *c, struct msg *m, void *arg)
{
	struct child	*ch = arg;
	json_error_t	 jerr;

	switch (m->hdr.type) {
	case MSG_READY:
		if (ch->state != CHILD_STARTING)
			fatalx("%s: ready twice", c->name);
		json_decref(ch->status);
		if ((ch->status = json_loadb(m->data, m->datalen, 0,
		    &jerr)) == NULL)
			ch->status = json_object();
		ch->state = CHILD_READY;
		log_debug("%s is ready", c->name);
		if (!env->stopping)
			child_all_ready();
		return;
	case MSG_STATE_RESULT:
		if (ch->id == PROC_STATE) {
			control_state_result(m);
			return;
		}
		break;
	case MSG_SPAWN_RESULT:
		if (ch->id == PROC_SPAWN) {
			control_state_result(m);
			return;
		}
		break;
	}
	proc_dispatch(c, m, NULL);
}

static void
child_closed(struct msgchan *c, void *arg)
{
	struct child	*ch = arg;

	/* the process itself is accounted for when it is reaped */
	log_debug("channel to %s closed", c->name);
	msgchan_free(ch->chan);
	ch->chan = NULL;
}

void
child_reaped(pid_t pid, int status)
{
	struct child	*ch = NULL;
	size_t		 i;

	for (i = 0; i < PROC_MAX; i++)
		if (env->children[i].pid == pid)
			ch = &env->children[i];
	if (ch == NULL)
		return;
	if (ch->chan != NULL) {
		msgchan_free(ch->chan);
		ch->chan = NULL;
	}
	if (ch->state == CHILD_STOPPING && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		log_debug("%s (pid %ld) stopped", proc_names[ch->id],
		    (long)pid);
	else if (WIFSIGNALED(status))
		log_errorx("lost child: %s (pid %ld) killed by signal %d",
		    proc_names[ch->id], (long)pid, WTERMSIG(status));
	else
		log_errorx("lost child: %s (pid %ld) exited with status %d",
		    proc_names[ch->id], (long)pid, WEXITSTATUS(status));
	if (ch->state != CHILD_STOPPING && !env->stopping) {
		ch->state = CHILD_EXITED;
		byd_shutdown(1);
		return;
	}
	ch->state = CHILD_EXITED;
	if (env->stopping)
		child_stop_next();
}

/* Stop the next helper in stop_order; exit the loop when none is left. */
void
child_stop_next(void)
{
	struct child	*ch;
	size_t		 j;

	for (j = 0; j < NHELPERS; j++) {
		ch = &env->children[stop_order[j]];
		if (ch->pid <= 0 || ch->state == CHILD_EXITED)
			continue;
		if (ch->state == CHILD_STOPPING)
			return;		/* wait for it */
		ch->state = CHILD_STOPPING;
		if (ch->chan != NULL &&
		    msgchan_send(ch->chan, MSG_SHUTDOWN, 0, -1, NULL, 0) == 0)
			log_debug("stopping %s", proc_names[ch->id]);
		else
			kill(ch->pid, SIGTERM);
		return;
	}
	event_base_loopexit(env->base, NULL);
}

void
child_kill_all(void)
{
	struct child	*ch;
	size_t		 j;
	int		 status;

	for (j = 0; j < NHELPERS; j++) {
		ch = &env->children[stop_order[j]];
		if (ch->pid <= 0 || ch->state == CHILD_EXITED)
			continue;
		log_warnx("%s (pid %ld) did not stop in time; killing it",
		    proc_names[ch->id], (long)ch->pid);
		kill(ch->pid, SIGKILL);
		if (waitpid(ch->pid, &status, 0) == ch->pid)
			ch->state = CHILD_EXITED;
	}
}
