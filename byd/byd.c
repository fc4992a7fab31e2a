/*
 * byd: start, supervise and stop the byd suite.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byd.h"
#include "log.h"

struct byd	*env;

static __attribute__((noreturn)) void
usage(void)
{
	fprintf(stderr, "usage: byd [-dnv] [-f file] [-X helperdir]\n"
	    "       byd [--config file]\n");
	exit(1);
}

/* ../libexec/blockyard relative to our own binary. */
static void
default_helperdir(char *buf, size_t len)
{
	char	 self[PATH_MAX], *dir;
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1)
		fatal("readlink /proc/self/exe");
	self[n] = '\0';
	dir = dirname(self);
	snprintf(buf, len, "%s/../libexec/blockyard", dir);
}

static const char *
resolve_config_path(const char *given)
{
	if (given != NULL)
		return given;
	return "/etc/blockyard.toml";
}

static struct config *
load_config(const char *path, char *err, size_t errlen)
{
	return config_load(path, NULL, NULL, err, errlen);
}

static void
log_config_warnings(const struct config *conf)
{
	size_t	 i;

	for (i = 0; i < config_nwarnings(conf); i++)
		log_warnx("%s", config_warning(conf, i));
}

/* Keys that only take effect at start-up. */
static void
warn_restart_keys(const struct config *o, const struct config *n)
{
#define STRDIFF(a, b) (((a) == NULL) != ((b) == NULL) || \
	    ((a) != NULL && strcmp((a), (b)) != 0))
	if (STRDIFF(o->server.bind, n->server.bind))
		log_warnx("reload: [server] bind changed; restart byd to "
		    "apply it");
	if (STRDIFF(o->server.management_bind, n->server.management_bind))
		log_warnx("reload: [server] management_bind changed; restart "
		    "byd to apply it");
	if (STRDIFF(o->server.control_socket, n->server.control_socket))
		log_warnx("reload: [server] control_socket changed; restart "
		    "byd to apply it");
	if (STRDIFF(o->server.user, n->server.user))
		log_warnx("reload: [server] user changed; restart byd to "
		    "apply it");
	if (STRDIFF(o->database.path, n->database.path) ||
	    STRDIFF(o->database.driver, n->database.driver) ||
	    STRDIFF(o->database.url, n->database.url))
		log_warnx("reload: [database] changed; restart byd to "
		    "apply it");
#undef STRDIFF
}

/* Not root: everything runs as the invoking user. */
static void
adjust_for_user(struct config *conf)
{
	struct passwd	*pw;

	if (env->root)
		return;
	if ((pw = getpwuid(geteuid())) == NULL)
		fatalx("cannot find the name of uid %u", (unsigned)geteuid());
	free(conf->server.user);
	if ((conf->server.user = strdup(pw->pw_name)) == NULL)
		fatal("strdup");
}

int
byd_reload(char *err, size_t errlen)
{
	struct config	*conf;
	size_t		 j;
	static const enum proc_id ids[] = { PROC_STATE, PROC_SPAWN,
	    PROC_PROXY };

	if ((conf = load_config(env->config_file, err, errlen)) == NULL) {
		log_warnx("reload failed, keeping the old configuration: %s",
		    err);
		return -1;
	}
	adjust_for_user(conf);
	log_config_warnings(conf);
	warn_restart_keys(env->conf, conf);
	config_free(env->conf);
	env->conf = conf;
	if (!env->verbose)
		log_setlevel((enum log_level)log_level_parse(
		    conf->server.log_level));
	for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++)
		if (env->children[ids[j]].state == CHILD_READY)
			child_send_config(ids[j], MSG_RELOAD);
	log_info("configuration reloaded from %s", env->config_file);
	return 0;
}

void
byd_set_loglevel(enum log_level lvl)
{
	struct msg_int	 v;

	log_setlevel_announce(lvl);
	v.value = lvl;
	child_send_all(MSG_LOG_LEVEL, &v, sizeof(v));
}

void
byd_drain(void)
{
	if (env->draining)
		return;
	env->draining = 1;
	log_info("entering drain mode");
	child_send_all(MSG_DRAIN, NULL, 0);
}

static void
stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	log_warnx("helpers did not stop within shutdown_timeout");
	child_kill_all();
	event_base_loopexit(env->base, NULL);
}

void
byd_shutdown(int status)
{
	struct timeval	 tv;
	int64_t		 ms = env->conf->server.shutdown_timeout;

	if (status > env->exit_status)
		env->exit_status = status;
	if (env->stopping)
		return;
	env->stopping = 1;
	log_info("shutting down%s", status ? " after an error" : "");
	if (ms <= 0)
		ms = 1000;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	env->stop_timer = evtimer_new(env->base, stop_timeout, NULL);
	evtimer_add(env->stop_timer, &tv);
	child_stop_next();
}

/* Effective user name of a running process, from /proc. */
static void
proc_user(pid_t pid, char *buf, size_t len)
{
	char		 path[64], line[256];
	FILE		*f;
	unsigned	 ruid, euid;
	struct passwd	*pw;

	strlcpy(buf, "?", len);
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
			if ((pw = getpwuid(euid)) != NULL)
				strlcpy(buf, pw->pw_name, len);
			else
				snprintf(buf, len, "%u", euid);
			break;
		}
	}
	fclose(f);
}

static json_t *
status_proc(enum proc_id id, pid_t pid, time_t started, const char *state)
{
	char	 user[64];

	proc_user(pid, user, sizeof(user));
	return json_pack("{s:s s:s s:I s:s s:I s:s}",
	    "name", proc_names[id], "role", proc_titles[id],
	    "pid", (json_int_t)pid, "user", user,
	    "uptime", (json_int_t)(time(NULL) - started), "state", state);
}

json_t *
byd_status(void)
{
	json_t		*procs, *st, *v;
	struct child	*ch;
	size_t		 i;

	procs = json_array();
	json_array_append_new(procs, status_proc(PROC_BYD, getpid(),
	    env->started, env->stopping ? "stopping" : env->draining ?
	    "draining" : env->ready ? "running" : "starting"));
	for (i = PROC_PROXY; i < PROC_CTL; i++) {
		ch = &env->children[i];
		if (ch->pid <= 0)
			continue;
		json_array_append_new(procs, status_proc(ch->id, ch->pid,
		    ch->started, child_state_name(ch->state)));
	}
	st = json_pack("{s:s s:s s:b s:o}", "version", BY_VERSION,
	    "config_file", env->config_file, "draining", env->draining,
	    "processes", procs);
	ch = &env->children[PROC_STATE];
	if (ch->status != NULL &&
	    (v = json_object_get(ch->status, "schema_version")) != NULL)
		json_object_set(st, "schema_version", v);
	else
		json_object_set_new(st, "schema_version", json_null());
	if (ch->status != NULL &&
	    (v = json_object_get(ch->status, "driver")) != NULL)
		json_object_set(st, "database", v);
	else
		json_object_set_new(st, "database", json_null());
	return st;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	char	 err[1024];
	pid_t	 pid;
	int	 status;

	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading %s", env->config_file);
		byd_reload(err, sizeof(err));
		break;
	case SIGUSR1:
		byd_drain();
		break;
	case SIGTERM:
	case SIGINT:
		log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		byd_shutdown(0);
		break;
	case SIGCHLD:
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			child_reaped(pid, status);
		break;
	}
}

static void
ready_timeout(evutil_socket_t fd, short what, void *arg)
{
	size_t	 i;

	for (i = PROC_PROXY; i < PROC_CTL; i++)
		if (env->children[i].state == CHILD_STARTING)
			log_errorx("%s did not report ready within %d s",
			    proc_names[i], BYD_READY_TIMEOUT);
	byd_shutdown(1);
}

/* The directory byproxy chroots into: root-owned, empty, not writable. */
static void
prepare_dirs(void)
{
	char		 dir[PATH_MAX], tmp[PATH_MAX];
	struct stat	 st;

	strlcpy(tmp, env->conf->server.control_socket, sizeof(tmp));
	strlcpy(dir, dirname(tmp), sizeof(dir));
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", dir);
	if (!env->root)
		return;
	proc_chroot_dir(env->conf, dir, sizeof(dir));
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", dir);
	if (stat(dir, &st) == -1)
		fatal("stat %s", dir);
	if (st.st_uid != 0 || (st.st_mode & 022) != 0)
		fatalx("%s must be owned by root and not writable by others",
		    dir);
}

static void
check_user(void)
{
	if (!env->root) {
		log_warnx("not started as root: every process runs as %s; no "
		    "privilege separation between byd's processes, and "
		    "workers will run without per-worker uids or cgroup "
		    "limits", env->conf->server.user);
		return;
	}
	if (getpwnam(env->conf->server.user) == NULL)
		fatalx("[server] user %s does not exist; create it (for "
		    "example with etc/install-deps or useradd --system %s)",
		    env->conf->server.user, env->conf->server.user);
}

static void
open_listeners(void)
{
	char	 err[512];

	env->listen_fd[LISTEN_MAIN] = listen_open(env->conf->server.bind,
	    err, sizeof(err));
	if (env->listen_fd[LISTEN_MAIN] == -1)
		fatalx("[server] bind: cannot listen on %s", err);
	env->listen_fd[LISTEN_MANAGEMENT] = -1;
	if (env->conf->server.management_bind != NULL &&
	    env->conf->server.management_bind[0] != '\0') {
		env->listen_fd[LISTEN_MANAGEMENT] = listen_open(
		    env->conf->server.management_bind, err, sizeof(err));
		if (env->listen_fd[LISTEN_MANAGEMENT] == -1)
			fatalx("[server] management_bind: cannot listen on %s",
			    err);
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL,	'f' },
		{ "help",	no_argument,		NULL,	'h' },
		{ NULL,		0,			NULL,	0 }
	};
	static struct byd	 byd;
	struct event		*sigev[5];
	struct timeval		 tv;
	int			 sigs[] = { SIGHUP, SIGUSR1, SIGTERM, SIGINT,
				    SIGCHLD };
	const char		*file = NULL;
	char			 err[1024];
	int			 ch, noaction = 0, lvl;
	size_t			 i;

	env = &byd;
	env->started = time(NULL);
	env->root = geteuid() == 0;
	env->listen_fd[0] = env->listen_fd[1] = -1;
	env->helperdir[0] = '\0';
	log_init("byd", 0);

	while ((ch = getopt_long(argc, argv, "df:nvX:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'd':
			env->debug = 1;
			break;
		case 'f':
			file = optarg;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'v':
			env->verbose = 1;
			break;
		case 'X':
			if (strlcpy(env->helperdir, optarg,
			    sizeof(env->helperdir)) >= sizeof(env->helperdir))
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if ((env->config_file = strdup(resolve_config_path(file))) == NULL)
		fatal("strdup");
	if ((env->conf = load_config(env->config_file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "byd: %s\n", err);
		exit(1);
	}
	if (noaction) {
		for (i = 0; i < config_nwarnings(env->conf); i++)
			fprintf(stderr, "byd: warning: %s\n",
			    config_warning(env->conf, i));
		fprintf(stderr, "byd: configuration OK: %s\n",
		    env->config_file);
		config_free(env->conf);
		free(env->config_file);
		exit(0);
	}
	adjust_for_user(env->conf);
	if ((lvl = log_level_parse(env->conf->server.log_level)) != -1)
		log_setlevel((enum log_level)lvl);
	if (env->verbose)
		log_setlevel(LOG_LVL_DEBUG);
	if (env->helperdir[0] == '\0')
		default_helperdir(env->helperdir, sizeof(env->helperdir));

	log_init("byd", !env->debug);
	log_config_warnings(env->conf);
	check_user();
	prepare_dirs();
	open_listeners();
	if (!env->debug && daemon(0, 0) == -1)
		fatal("daemon");
	proc_title_init(argc, argv);
	proc_settitle(proc_titles[PROC_BYD]);
	signal(SIGPIPE, SIG_IGN);

	if ((env->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigev[i] = evsignal_new(env->base, sigs[i], on_signal, NULL);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL) == -1)
			fatalx("evsignal_add");
	}
	control_init();
	log_info("starting byd %s with %s", BY_VERSION, env->config_file);
	child_start_all();
	env->ready_timer = evtimer_new(env->base, ready_timeout, NULL);
	tv.tv_sec = BYD_READY_TIMEOUT;
	tv.tv_usec = 0;
	evtimer_add(env->ready_timer, &tv);

	event_base_dispatch(env->base);

	control_cleanup();
	for (i = PROC_PROXY; i < PROC_CTL; i++) {
		msgchan_free(env->children[i].chan);
		json_decref(env->children[i].status);
	}
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_free(sigev[i]);
	if (env->ready_timer != NULL)
		event_free(env->ready_timer);
	if (env->stop_timer != NULL)
		event_free(env->stop_timer);
	event_base_free(env->base);
	log_info("stopped");
	config_free(env->conf);
	free(env->config_file);
	return env->exit_status;
}
