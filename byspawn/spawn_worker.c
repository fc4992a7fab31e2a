/*
 * Worker lifecycle: spawn, stop, reap, clean up, forget.
 *
 * A worker ends in steps, all on proc_base: SIGCHLD reaps bwrap and
 * records how it ended; anything left in its cgroup is killed; once the
 * cgroups are removed and its output pipe is drained, its uid and port
 * go back to the pools, on_exit runs, and the record (with its log ring)
 * stays for [proxy] log_retention.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byspawn.h"
#include "log.h"

#define CLEANUP_RETRY_MS	20
#define CLEANUP_TRIES		250	/* about 5 s */

struct worker_list	 workers = TAILQ_HEAD_INITIALIZER(workers);
/* forgotten, to be freed from the loop */
static struct worker_list forgotten = TAILQ_HEAD_INITIALIZER(forgotten);

static struct event	*sigchld_ev;
static struct {
	int		 active;
	void		(*done)(void *);
	void		*arg;
	struct event	*ev;
} shutdown_wait;

static void	 worker_finish_try(struct worker *);
static void	 on_stop_timeout(evutil_socket_t, short, void *);
static void	 worker_free(struct worker *);
static void	 shutdown_check(void);

const char *
worker_state_name(enum worker_state s)
{
	switch (s) {
	case WORKER_STARTING:
		return "starting";
	case WORKER_RUNNING:
		return "running";
	case WORKER_STOPPING:
		return "stopping";
	case WORKER_EXITED:
		return "exited";
	}
	return "unknown";
}

struct worker *
worker_find(const char *id)
{
	struct worker	*w;

	TAILQ_FOREACH(w, &workers, entry)
		if (strcmp(w->id, id) == 0)
			return w;
	return NULL;
}

static void
ms_timer(struct event *ev, int64_t ms)
{
	struct timeval	 tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* ---- start-up -------------------------------------------------------- */

static int
check_seccomp(char *err, size_t errlen)
{
	int	 fd;

	if ((fd = sandbox_open_seccomp(err, errlen)) == -1)
		return -1;
	if (fd == -2) {
		log_warnx("seccomp: no [process] seccomp_profile; workers run "
		    "without a syscall filter (see byctl seccomp export)");
		return 0;
	}
	log_info("seccomp: workers get %s",
	    proc_conf->process.seccomp_profile);
	close(fd);
	return 0;
}

int
workers_init(const char *cgroup_name, char *err, size_t errlen)
{
	if (geteuid() != 0)
		log_warnx("workers: not root: every worker runs as uid %d in "
		    "an unprivileged user namespace; no uid slots, cgroups "
		    "or limits (development only)", (int)getuid());
	if (cgroup_init(cgroup_name) == -1) {
		snprintf(err, errlen, "cgroups: cannot set up");
		return -1;
	}
	cgroup_cleanup_orphans();
	slots_kill_strays();
	return check_seccomp(err, errlen);
}

json_t *
workers_status(void)
{
	struct worker	*w;
	int		 live = 0;

	TAILQ_FOREACH(w, &workers, entry)
		if (w->state != WORKER_EXITED)
			live++;
	return json_pack("{s:o,s:b,s:i}", "limits", cgroup_status(),
	    "seccomp", proc_conf->process.seccomp_profile != NULL,
	    "workers", live);
}

/* ---- reaping --------------------------------------------------------- */

static void
record_exit(struct worker *w, int status)
{
	w->reaped = 1;
	w->exit.status = status;
	if (WIFSIGNALED(status)) {
		w->exit.code = -1;
		w->exit.signal = WTERMSIG(status);
	} else {
		w->exit.code = WEXITSTATUS(status);
		/* bwrap relays a killed child as 128 + the signal */
		if (w->exit.code > 128 && w->exit.code < 128 + NSIG)
			w->exit.signal = w->exit.code - 128;
	}
	if (cgroup_oom_kills(w) > 0)
		w->exit.oom = 1;
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*w;
	int		 status;

	/*
	 * Only our own children: other code may wait for its own.  The
	 * scan restarts after each exit, as callbacks may forget workers.
	 */
again:
	TAILQ_FOREACH(w, &workers, entry) {
		if (w->reaped || w->pid <= 0 ||
		    waitpid(w->pid, &status, WNOHANG) != w->pid)
			continue;
		record_exit(w, status);
		evtimer_del(w->stop_ev);
		/* the app is gone: nothing of the worker may stay */
		cgroup_kill(w);
		worker_probes_cancel(w);
		worker_finish_try(w);
		goto again;
	}
}

static int
sigchld_watch(char *err, size_t errlen)
{
	if (sigchld_ev != NULL)
		return 0;
	if (proc_base == NULL ||
	    (sigchld_ev = evsignal_new(proc_base, SIGCHLD, on_sigchld,
	    NULL)) == NULL || evsignal_add(sigchld_ev, NULL) == -1) {
		snprintf(err, errlen, "cannot watch SIGCHLD");
		if (sigchld_ev != NULL)
			event_free(sigchld_ev);
		sigchld_ev = NULL;
		return -1;
	}
	return 0;
}

/* ---- ending ---------------------------------------------------------- */

static void
release_slots(struct worker *w)
{
	if (w->uid_slot != -1)
		slot_uid_release(w->uid_slot);
	w->uid_slot = -1;
	if (w->port > 0)
		slot_port_release(w->port);
}

static void
log_exit(const struct worker *w)
{
	char	 how[64] = "";

	if (w->exit.signal > 0)
		snprintf(how, sizeof(how), ", signal %d", w->exit.signal);
	log_info("worker %s: exited (%s %d%s%s%s)", w->id,
	    w->exit.code == -1 ? "bwrap killed by signal" : "code",
	    w->exit.code == -1 ? w->exit.signal : w->exit.code,
	    w->exit.code == -1 ? "" : how,
	    w->exit.oom ? ", out of memory" : "",
	    w->exit.stopped ? ", stopped" : "");
}

static void
on_retained(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	/* log_retention is over, or worker_forget asked */
	TAILQ_REMOVE(w->forgotten ? &forgotten : &workers, w, entry);
	worker_free(w);
}

static void
worker_finished(struct worker *w)
{
	if (w->cg_removed)
		release_slots(w);
	else
		log_warnx("worker %s: its cgroup cannot be removed; uid %d "
		    "and port %d stay reserved", w->id, w->uid_slot, w->port);
	w->state = WORKER_EXITED;
	clock_gettime(CLOCK_REALTIME, &w->exited);
	log_exit(w);
	/* armed first: on_exit may forget the worker */
	ms_timer(w->retain_ev, proc_conf->proxy.log_retention > 0 ?
	    proc_conf->proxy.log_retention : 0);
	if (w->on_exit != NULL)
		w->on_exit(w, w->cb_arg);
	shutdown_check();
}

static void
on_cleanup_retry(evutil_socket_t fd, short what, void *arg)
{
	worker_finish_try(arg);
}

/*
 * Reaped: wait until the cgroups can be removed and the pipe is
 * drained (both come right after the exit), then finish.
 */
static void
worker_finish_try(struct worker *w)
{
	if (!w->reaped || w->state == WORKER_EXITED)
		return;
	if (!w->cg_removed && cgroup_remove(w) == 0)
		w->cg_removed = 1;
	if ((!w->cg_removed || !worker_log_eof(w)) &&
	    ++w->cleanup_tries < CLEANUP_TRIES) {
		if (!w->cg_removed)
			cgroup_kill(w);
		ms_timer(w->cleanup_ev, CLEANUP_RETRY_MS);
		return;
	}
	evtimer_del(w->cleanup_ev);
	worker_finished(w);
}

/* spawn_logs.c: the output pipe reached EOF */
void
worker_log_closed(struct worker *w)
{
	if (w->reaped)
		worker_finish_try(w);
}

/* ---- spawn ----------------------------------------------------------- */

static int
id_ok(const char *id)
{
	size_t	 n;

	if (id == NULL || (n = strlen(id)) == 0 || n > WORKER_ID_MAX ||
	    id[0] == '.' || id[0] == '-')
		return 0;
	for (; *id; id++)
		if (!isalnum((unsigned char)*id) && *id != '-' && *id != '_')
			return 0;
	return 1;
}

static int
is_dir(const char *path)
{
	struct stat	 st;

	return path != NULL && path[0] == '/' && stat(path, &st) == 0 &&
	    S_ISDIR(st.st_mode);
}

static int
spec_check(const struct worker_spec *s, char *err, size_t errlen)
{
	struct worker	*old;

	if (!id_ok(s->id)) {
		snprintf(err, errlen, "bad worker id");
		return -1;
	}
	if ((old = worker_find(s->id)) != NULL) {
		if (old->state != WORKER_EXITED) {
			snprintf(err, errlen, "worker %s exists", s->id);
			return -1;
		}
		worker_forget(old);
	}
	if (s->build && (!is_dir(s->build_dir) || !is_dir(s->out_dir) ||
	    s->build_args == NULL)) {
		snprintf(err, errlen, "a build step needs its directories");
		return -1;
	}
	if (!is_dir(s->bundle_dir) ||
	    (s->library_dir != NULL && !is_dir(s->library_dir))) {
		snprintf(err, errlen, "bundle or library directory %s is not "
		    "an absolute path to a directory", is_dir(s->bundle_dir) ?
		    s->library_dir : s->bundle_dir ? s->bundle_dir : "(none)");
		return -1;
	}
	if (shutdown_wait.active) {
		snprintf(err, errlen, "shutting down");
		return -1;
	}
	return 0;
}

static struct worker *
worker_new(const struct worker_spec *s)
{
	struct worker	*w;
	int		 r;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("calloc");
	strlcpy(w->id, s->id, sizeof(w->id));
	if ((w->app_id = strdup(s->app_id ? s->app_id : "")) == NULL ||
	    (w->bundle_id = strdup(s->bundle_id ? s->bundle_id : "")) == NULL)
		fatal("strdup");
	w->build = s->build;
	w->pid = -1;
	w->uid_slot = -1;
	w->port = -1;
	w->memory_limit = s->memory_limit;
	w->cpu_limit = s->cpu_limit;
	w->pids_max = s->pids_max > 0 ? s->pids_max : WORKER_PIDS_DEFAULT;
	w->exit.code = -1;
	w->on_exit = s->on_exit;
	w->on_log = s->on_log;
	w->cb_arg = s->cb_arg;
	w->log.fd = -1;
	w->cg.oom_efd = -1;
	for (r = 0; r < CG_NRES; r++)
		w->cg.procs_fd[r] = -1;
	TAILQ_INIT(&w->probes);
	if ((w->stop_ev = evtimer_new(proc_base, on_stop_timeout,
	    w)) == NULL ||
	    (w->cleanup_ev = evtimer_new(proc_base, on_cleanup_retry,
	    w)) == NULL ||
	    (w->retain_ev = evtimer_new(proc_base, on_retained, w)) == NULL)
		fatalx("evtimer_new");
	return w;
}

static int
take_slots(struct worker *w, const struct worker_spec *s, char *err,
    size_t errlen)
{
	if (geteuid() == 0) {
		if (slot_uid_alloc(&w->uid_slot, err, errlen) == -1)
			return -1;
		w->uid = (uid_t)w->uid_slot;
		w->gid = (gid_t)proc_conf->process.worker_gid;
	} else {
		w->uid = getuid();
		w->gid = getgid();
	}
	if (s->build) {
		/* the one place the step may write, and only the step */
		if (chown(s->out_dir, w->uid, w->gid) == -1 ||
		    chmod(s->out_dir, 0700) == -1) {
			snprintf(err, errlen, "%s: %s", s->out_dir,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	return slot_port_alloc(&w->port, err, errlen);
}

/* Fork and exec; the pipe's read end becomes the log. */
static int
start_sandbox(struct worker *w, const struct worker_spec *s, char *err,
    size_t errlen)
{
	struct argv	 a;
	int		 sfd, out[2];

	if ((sfd = sandbox_open_seccomp(err, errlen)) == -1)
		return -1;
	if (sandbox_argv(w, s, sfd == -2 ? -1 : sfd, &a, err, errlen) == -1) {
		if (sfd >= 0)
			close(sfd);
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		out[0] = out[1] = -1;
	} else
		w->pid = sandbox_exec(w, &a, out[1], sfd == -2 ? -1 : sfd, err,
		    errlen);
	argv_free(&a);
	if (sfd >= 0)
		close(sfd);
	if (out[1] != -1)
		close(out[1]);
	cgroup_close_procs(w);
	if (w->pid == -1) {
		if (out[0] != -1)
			close(out[0]);
		return -1;
	}
	if (worker_log_start(w, out[0]) == -1) {
		close(out[0]);
		snprintf(err, errlen, "cannot read the worker's output");
		return -1;
	}
	return 0;
}

/* Undo a spawn that failed before or at exec. */
static void
spawn_undo(struct worker *w)
{
	if (w->pid > 0) {
		/* exec'ed but we cannot follow it: end it now */
		cgroup_kill(w);
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	for (w->cleanup_tries = 0; w->cleanup_tries < CLEANUP_TRIES &&
	    cgroup_remove(w) == -1; w->cleanup_tries++)
		nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
	release_slots(w);
	worker_free(w);
}

int
worker_spawn(const struct worker_spec *s, struct worker **out, char *err,
    size_t errlen)
{
	struct worker	*w;

	if (spec_check(s, err, errlen) == -1 ||
	    sigchld_watch(err, errlen) == -1)
		return -1;
	w = worker_new(s);
	if (take_slots(w, s, err, errlen) == -1 ||
	    (cgroup_enabled() && cgroup_create(w, err, errlen) == -1) ||
	    start_sandbox(w, s, err, errlen) == -1) {
		log_warnx("worker %s: %s", w->id, err);
		spawn_undo(w);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &w->started);
	w->state = WORKER_STARTING;
	TAILQ_INSERT_TAIL(&workers, w, entry);
	log_info("worker %s: started (app %s, bundle %s, pid %d, uid %d, "
	    "port %d)", w->id, w->app_id, w->bundle_id, (int)w->pid,
	    (int)w->uid, w->port);
	if (out != NULL)
		*out = w;
	return 0;
}

/* ---- stop ------------------------------------------------------------ */

static void
on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	if (w->reaped)
		return;
	log_info("worker %s: still running after the grace period; killing",
	    w->id);
	cgroup_kill(w);
	kill(w->pid, SIGKILL);
}

void
worker_stop(struct worker *w, int grace_ms)
{
	if (w->reaped || w->state == WORKER_EXITED)
		return;
	w->exit.stopped = 1;
	if (w->state == WORKER_STOPPING && grace_ms > 0)
		return;
	w->state = WORKER_STOPPING;
	log_info("worker %s: stopping", w->id);
	/*
	 * SIGTERM to the app but not to the outer bwrap: its death would
	 * SIGKILL the sandbox at once.  The app's exit ends the sandbox.
	 * Without cgroups (or before the sandbox is up) bwrap it is.
	 */
	if (!cgroup_enabled() || cgroup_signal(w, SIGTERM, w->pid) == 0)
		kill(w->pid, SIGTERM);
	ms_timer(w->stop_ev, grace_ms > 0 ? grace_ms : 0);
}

/* ---- forgetting ------------------------------------------------------ */

static void
worker_free(struct worker *w)
{
	worker_probes_cancel(w);
	worker_log_free(w);
	cgroup_free(w);
	if (w->stop_ev != NULL)
		event_free(w->stop_ev);
	if (w->cleanup_ev != NULL)
		event_free(w->cleanup_ev);
	if (w->retain_ev != NULL)
		event_free(w->retain_ev);
	free(w->app_id);
	free(w->bundle_id);
	free(w);
}

void
worker_forget(struct worker *w)
{
	if (w->state != WORKER_EXITED || w->forgotten)
		return;
	TAILQ_REMOVE(&workers, w, entry);
	TAILQ_INSERT_TAIL(&forgotten, w, entry);
	w->forgotten = 1;
	/* callers up the stack (a log line, an exit) may still hold it */
	ms_timer(w->retain_ev, 0);
}

/* ---- shutdown -------------------------------------------------------- */

static void
on_shutdown_done(evutil_socket_t fd, short what, void *arg)
{
	void	(*done)(void *) = shutdown_wait.done;

	shutdown_wait.done = NULL;
	if (done != NULL)
		done(shutdown_wait.arg);
}

static void
shutdown_check(void)
{
	struct worker	*w;

	if (!shutdown_wait.active || shutdown_wait.done == NULL)
		return;
	TAILQ_FOREACH(w, &workers, entry)
		if (w->state != WORKER_EXITED)
			return;
	/* from the loop, not from inside a worker's callbacks */
	ms_timer(shutdown_wait.ev, 0);
}

void
workers_shutdown(int grace_ms, void (*done)(void *), void *arg)
{
	struct worker	*w;

	shutdown_wait.active = 1;
	shutdown_wait.done = done;
	shutdown_wait.arg = arg;
	if (shutdown_wait.ev == NULL &&
	    (shutdown_wait.ev = evtimer_new(proc_base, on_shutdown_done,
	    NULL)) == NULL)
		fatalx("evtimer_new");
	TAILQ_FOREACH(w, &workers, entry)
		worker_stop(w, grace_ms);
	shutdown_check();
}

/* A worker still alive at free time (a failed test): end it here. */
static void
worker_end_now(struct worker *w)
{
	int	 i;

	if (!w->reaped && w->pid > 0) {
		cgroup_kill(w);
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
			;
		w->reaped = 1;
	}
	for (i = 0; i < CLEANUP_TRIES && !w->cg_removed; i++) {
		if (cgroup_remove(w) == 0)
			w->cg_removed = 1;
		else
			nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	}
}

void
workers_free(void)
{
	struct worker	*w;

	while ((w = TAILQ_FIRST(&workers)) != NULL) {
		worker_end_now(w);
		TAILQ_REMOVE(&workers, w, entry);
		worker_free(w);
	}
	while ((w = TAILQ_FIRST(&forgotten)) != NULL) {
		TAILQ_REMOVE(&forgotten, w, entry);
		worker_free(w);
	}
	if (sigchld_ev != NULL)
		event_free(sigchld_ev);
	sigchld_ev = NULL;
	if (shutdown_wait.ev != NULL)
		event_free(shutdown_wait.ev);
	memset(&shutdown_wait, 0, sizeof(shutdown_wait));
	slots_free();
}

/* ---- description ----------------------------------------------------- */

static json_t *
time_json(const struct timespec *ts)
{
	struct tm	 tm;
	char		 buf[32];

	if (ts->tv_sec == 0 || gmtime_r(&ts->tv_sec, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

static json_t *
usage_json(const struct worker *w)
{
	struct worker_usage	 u;
	json_t			*o;

	worker_usage(w, &u);
	if ((o = json_object()) == NULL)
		fatalx("json_object");
	if (u.have_memory)
		json_object_set_new(o, "memory_bytes",
		    json_integer((json_int_t)u.memory_bytes));
	if (u.have_cpu)
		json_object_set_new(o, "cpu_seconds",
		    json_real((double)u.cpu_usec / 1e6));
	if (u.have_pids)
		json_object_set_new(o, "pids",
		    json_integer((json_int_t)u.pids));
	return o;
}

static json_t *
exit_json(const struct worker *w)
{
	if (!w->reaped)
		return json_null();
	return json_pack("{s:o,s:o,s:b,s:b}",
	    "code", w->exit.code == -1 ? json_null() :
	    json_integer(w->exit.code),
	    "signal", w->exit.signal > 0 ? json_integer(w->exit.signal) :
	    json_null(),
	    "oom", w->exit.oom, "stopped", w->exit.stopped);
}

/* For the API and byctl: what a worker is, uses and how it ended. */
json_t *
worker_to_json(const struct worker *w)
{
	json_t	*o;

	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:o,s:o,s:o,s:o,s:I,"
	    "s:f,s:i,s:I}",
	    "id", w->id, "app_id", w->app_id, "bundle_id", w->bundle_id,
	    "kind", w->build ? "build" : "app",
	    "state", worker_state_name(w->state),
	    "pid", (int)w->pid, "uid", (int)w->uid, "port", w->port,
	    "started_at", time_json(&w->started),
	    "exited_at", time_json(&w->exited),
	    "exit", exit_json(w), "usage", usage_json(w),
	    "memory_limit", (json_int_t)w->memory_limit,
	    "cpu_limit", w->cpu_limit, "pids_max", w->pids_max,
	    "log_lines", (json_int_t)w->log.next_seq);
	if (o == NULL)
		fatalx("json_pack");
	return o;
}
