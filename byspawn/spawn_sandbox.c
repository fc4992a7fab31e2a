/*
 * The worker sandbox: the bwrap command line, and the fork that puts
 * the child into its cgroups and uid before it execs bwrap.
 *
 * The sandbox root is an empty tmpfs with only /usr and the few /etc
 * entries R needs, read-only; never the host's /.  So a worker sees no
 * other bundle, no database, no configuration and no key, whatever their
 * file modes.
 */

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byspawn.h"
#include "log.h"
#include "seccomp_profile.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif

#define SANDBOX_SECCOMP_FD	3
#define SANDBOX_HOSTNAME	"worker"
/* R's site libraries under /usr, searched after the bundle's library */
#define SANDBOX_SITE_LIBS	"/usr/local/lib/R/site-library:" \
				"/usr/lib/R/site-library"

/* Host entries R needs, bound read-only when the host has them. */
static const char *const ro_entries[] = {
	"/etc/R", "/etc/alternatives", "/etc/fonts", "/etc/ld.so.cache",
	"/etc/localtime", "/etc/ssl", "/etc/resolv.conf", "/etc/hosts",
	"/var/cache/fontconfig", NULL
};

/* usr-merged top directories: symlinks on Debian, real ones elsewhere */
static const char *const top_dirs[] = {
	"/bin", "/lib", "/lib64", "/sbin", NULL
};

void
argv_free(struct argv *a)
{
	size_t	 i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static void
argv_add(struct argv *a, const char *s)
{
	char	**v;

	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		if ((v = reallocarray(a->v, a->cap, sizeof(*v))) == NULL)
			fatal("reallocarray");
		a->v = v;
	}
	if ((a->v[a->n] = strdup(s)) == NULL)
		fatal("strdup");
	a->v[++a->n] = NULL;
}

static void
argv_addf(struct argv *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
argv_addf(struct argv *a, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	argv_add(a, s);
	free(s);
}

static void
argv_add3(struct argv *a, const char *opt, const char *x, const char *y)
{
	argv_add(a, opt);
	argv_add(a, x);
	if (y != NULL)
		argv_add(a, y);
}

/* [A-Za-z_][A-Za-z0-9_]* */
static int
env_name_ok(const char *s)
{
	if (s == NULL || (!isalpha((unsigned char)*s) && *s != '_'))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

static void
add_root(struct argv *a)
{
	char		 target[PATH_MAX];
	struct stat	 st;
	ssize_t		 n;
	size_t		 i;

	argv_add3(a, "--ro-bind", "/usr", "/usr");
	for (i = 0; top_dirs[i] != NULL; i++) {
		if (lstat(top_dirs[i], &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode) && (n = readlink(top_dirs[i], target,
		    sizeof(target) - 1)) > 0) {
			target[n] = '\0';
			argv_add3(a, "--symlink", target, top_dirs[i]);
		} else if (S_ISDIR(st.st_mode))
			argv_add3(a, "--ro-bind", top_dirs[i], top_dirs[i]);
	}
	for (i = 0; ro_entries[i] != NULL; i++)
		if (access(ro_entries[i], F_OK) == 0)
			argv_add3(a, "--ro-bind", ro_entries[i], ro_entries[i]);
}

/*
 * An R outside /usr (e.g. /opt/R/4.4.3/bin/R) brings its installation
 * prefix, two levels above the binary, read-only.
 */
static int
add_r_prefix(struct argv *a, const char *r_path, char *err, size_t errlen)
{
	char	 real[PATH_MAX], *prefix;

	if (realpath(r_path, real) == NULL) {
		snprintf(err, errlen, "R %s: %s", r_path, strerror(errno));
		return -1;
	}
	if (strncmp(real, "/usr/", 5) == 0)
		return 0;
	prefix = dirname(dirname(real));
	if (strcmp(prefix, "/") == 0) {
		snprintf(err, errlen, "R %s: not in an installation prefix",
		    r_path);
		return -1;
	}
	argv_add3(a, "--ro-bind", prefix, prefix);
	return 0;
}

static void
add_setenv_map(struct argv *a, const struct strmap *m)
{
	size_t	 i;

	for (i = 0; m != NULL && i < m->n; i++)
		argv_add3(a, "--setenv", m->k[i], m->v[i]);
}

/*
 * The worker's whole environment (bwrap --clearenv drops ours).  The
 * documented variables come last so that worker_env cannot change them.
 */
static void
add_env(struct argv *a, const struct worker *w, const struct worker_spec *s)
{
	add_setenv_map(a, &proc_conf->server.worker_env);
	add_setenv_map(a, s->env);
	argv_add3(a, "--setenv", "PATH", "/usr/bin:/bin");
	argv_add3(a, "--setenv", "HOME", "/tmp");
	argv_add3(a, "--setenv", "TMPDIR", "/tmp");
	argv_add3(a, "--setenv", "LANG", "C.UTF-8");
	argv_add3(a, "--setenv", "TZ", "UTC");
	argv_add(a, "--setenv");
	argv_add(a, "R_LIBS");
	/* a build step installs into its out dir, on top of the library */
	argv_addf(a, "%s%s%s%s", s->build ? BUILD_OUT_PATH ":" : "",
	    s->library_dir != NULL ? WORKER_LIB_PATH : "",
	    s->library_dir != NULL ? ":" : "", SANDBOX_SITE_LIBS);
	if (s->build) {
		argv_add3(a, "--setenv", "BLOCKYARD_HOST_LIBS",
		    SANDBOX_SITE_LIBS ":/usr/lib/R/library");
		return;
	}
	argv_add(a, "--setenv");
	argv_add(a, "SHINY_PORT");
	argv_addf(a, "%d", w->port);
	argv_add3(a, "--setenv", "SHINY_HOST", "127.0.0.1");
	argv_add(a, "--setenv");
	argv_add(a, "BLOCKYARD_API_URL");
	if (proc_conf->server.external_url != NULL)
		argv_add(a, proc_conf->server.external_url);
	else
		argv_addf(a, "http://%s", proc_conf->server.bind);
}

static int
check_env(const struct worker_spec *s, char *err, size_t errlen)
{
	const struct strmap	*maps[2] = { &proc_conf->server.worker_env,
				    s->env };
	size_t			 i, j;

	for (j = 0; j < 2; j++)
		for (i = 0; maps[j] != NULL && i < maps[j]->n; i++)
			if (!env_name_ok(maps[j]->k[i])) {
				snprintf(err, errlen, "bad environment "
				    "variable name \"%s\"", maps[j]->k[i]);
				return -1;
			}
	return 0;
}

/* The path lands inside R code between single quotes. */
static int
check_worker_path(const char *bwp, char *err, size_t errlen)
{
	if (bwp[0] != '/' || strpbrk(bwp, "'\\\"\n") != NULL ||
	    strcmp(bwp, "/") == 0) {
		snprintf(err, errlen, "[storage] bundle_worker_path \"%s\" "
		    "cannot hold a bundle", bwp);
		return -1;
	}
	return 0;
}

static void
add_namespaces(struct argv *a)
{
	argv_add(a, "--unshare-user");
	argv_add(a, "--unshare-pid");
	argv_add(a, "--unshare-ipc");
	argv_add(a, "--unshare-uts");
	argv_add(a, "--unshare-cgroup-try");
	/* no nested user namespace, and fail if that cannot be ensured */
	argv_add(a, "--disable-userns");
	argv_add(a, "--assert-userns-disabled");
	argv_add(a, "--die-with-parent");
	argv_add(a, "--new-session");
	argv_add3(a, "--cap-drop", "ALL", NULL);
	argv_add(a, "--clearenv");
}

static void
add_mounts(struct argv *a, const struct worker_spec *s, const char *bwp)
{
	size_t	 i;

	argv_add3(a, "--proc", "/proc", NULL);
	argv_add3(a, "--dev", "/dev", NULL);
	/* --dev's own /dev is an uncapped tmpfs the worker can write */
	argv_add(a, "--size");
	argv_addf(a, "%llu", (unsigned long long)WORKER_SHM_SIZE);
	argv_add3(a, "--tmpfs", "/dev/shm", NULL);
	argv_add(a, "--size");
	argv_addf(a, "%llu", (unsigned long long)(s->build ? BUILD_TMP_SIZE :
	    WORKER_TMP_SIZE));
	argv_add3(a, "--tmpfs", "/tmp", NULL);
	/* after /tmp, so that a bundle_worker_path below /tmp works */
	argv_add3(a, "--ro-bind", s->bundle_dir, bwp);
	if (s->library_dir != NULL)
		argv_add3(a, "--ro-bind", s->library_dir, WORKER_LIB_PATH);
	if (!s->build)
		return;
	argv_add3(a, "--ro-bind", s->build_dir, BUILD_DIR_PATH);
	argv_add3(a, "--bind", s->out_dir, BUILD_OUT_PATH);
	for (i = 0; s->ro_paths != NULL && i < s->ro_paths->n; i++)
		argv_add3(a, "--ro-bind", s->ro_paths->v[i], s->ro_paths->v[i]);
}

/* Rscript next to the R binary runs a build step's script. */
static void
add_build_command(struct argv *a, const char *r_path, const char *arg)
{
	char	 dir[PATH_MAX];

	strlcpy(dir, r_path, sizeof(dir));
	argv_addf(a, "%s/Rscript", dirname(dir));
	argv_add(a, "--vanilla");
	argv_add(a, BUILD_DIR_PATH "/build.R");
	argv_add(a, arg);
}

/*
 * The bwrap command line of a worker.  seccomp_fd -1: no filter; else
 * the child passes the filter on SANDBOX_SECCOMP_FD.
 */
int
sandbox_argv(const struct worker *w, const struct worker_spec *s,
    int seccomp_fd, struct argv *a, char *err, size_t errlen)
{
	const char	*bwp = proc_conf->storage.bundle_worker_path;
	const char	*r_path = s->r_path != NULL ? s->r_path :
			    proc_conf->process.r_path;

	memset(a, 0, sizeof(*a));
	if (check_worker_path(bwp, err, errlen) == -1 ||
	    check_env(s, err, errlen) == -1)
		return -1;
	argv_add(a, proc_conf->process.bwrap_path);
	add_namespaces(a);
	add_root(a);
	if (add_r_prefix(a, r_path, err, errlen) == -1) {
		argv_free(a);
		return -1;
	}
	add_mounts(a, s, bwp);
	argv_add3(a, "--hostname", SANDBOX_HOSTNAME, NULL);
	argv_add3(a, "--chdir", bwp, NULL);
	if (seccomp_fd != -1) {
		argv_add(a, "--seccomp");
		argv_addf(a, "%d", SANDBOX_SECCOMP_FD);
	}
	add_env(a, w, s);
	argv_add(a, "--");
	if (s->build) {
		add_build_command(a, r_path, s->build_args);
		return 0;
	}
	argv_add(a, r_path);
	argv_add(a, "--no-save");
	argv_add(a, "--no-restore");
	argv_add(a, "-q");
	argv_add(a, "-e");
	/* runApp on the directory serves app.R as well as ui.R + server.R */
	argv_addf(a, "shiny::runApp('%s', port=%d, host='127.0.0.1', "
	    "launch.browser=FALSE)", bwp, w->port);
	return 0;
}

/* Open [process] seccomp_profile; -1 with err, or -2 when none is set. */
int
sandbox_open_seccomp(char *err, size_t errlen)
{
	const char	*path = proc_conf->process.seccomp_profile;
	char		 why[256];
	size_t		 n;
	int		 fd;

	if (path == NULL || *path == '\0')
		return -2;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "[process] seccomp_profile %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (seccomp_profile_check(fd, &n, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "[process] seccomp_profile %s: %s", path,
		    why);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- fork and exec -------------------------------------------------- */

enum child_step {
	STEP_SIGNALS = 1,
	STEP_CGROUP,
	STEP_FDS,
	STEP_SETGROUPS,
	STEP_SETRESGID,
	STEP_SETRESUID,
	STEP_VERIFY,
	STEP_PRCTL,
	STEP_PARENT,
	STEP_EXEC,
};

static const char *const step_names[] = {
	[STEP_SIGNALS] = "resetting signals",
	[STEP_CGROUP] = "joining the worker cgroups",
	[STEP_FDS] = "setting up file descriptors",
	[STEP_SETGROUPS] = "setgroups",
	[STEP_SETRESGID] = "setresgid",
	[STEP_SETRESUID] = "setresuid",
	[STEP_VERIFY] = "verifying the dropped ids",
	[STEP_PRCTL] = "prctl",
	[STEP_PARENT] = "byspawn went away",
	[STEP_EXEC] = "exec",
};

struct child_report {
	int	 step;
	int	 error;
};

/* What the child needs, all prepared before fork: no malloc after it. */
struct child_ctx {
	const struct worker	*w;
	char *const		*argv;
	int			 devnull, out, seccomp, status;
	pid_t			 parent;
	int			 root;
};

__attribute__((noreturn)) static void
child_fail(const struct child_ctx *c, int step)
{
	struct child_report	 r = { step, errno };

	(void)!write(c->status, &r, sizeof(r));
	_exit(127);
}

static int
child_signals(void)
{
	struct sigaction	 sa;
	sigset_t		 none;
	int			 sig;

	/* byspawn ignores SIGPIPE and handles others; workers start clean */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

static int
child_fds(struct child_ctx *c)
{
	unsigned int	 from, fd;
	int		 sc = -1;

	/* move everything above the numbers it is dup'ed onto */
	if ((c->status = fcntl(c->status, F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (c->devnull = fcntl(c->devnull, F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (c->out = fcntl(c->out, F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (c->seccomp != -1 &&
	    (sc = fcntl(c->seccomp, F_DUPFD_CLOEXEC, 10)) == -1))
		return -1;
	if (dup2(c->devnull, STDIN_FILENO) == -1 ||
	    dup2(c->out, STDOUT_FILENO) == -1 ||
	    dup2(c->out, STDERR_FILENO) == -1 ||
	    (sc != -1 && dup2(sc, SANDBOX_SECCOMP_FD) == -1))
		return -1;
	/*
	 * Everything else closes at exec; marking rather than closing
	 * keeps the status pipe usable until then.
	 */
	from = sc != -1 ? SANDBOX_SECCOMP_FD + 1 : SANDBOX_SECCOMP_FD;
	if (close_range(from, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
		for (fd = from; fd < 65536; fd++)
			fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

static void
child_ids(const struct child_ctx *c)
{
	uid_t	 r, e, s;
	gid_t	 rg, eg, sg;
	uid_t	 uid = c->w->uid;
	gid_t	 gid = c->w->gid;

	if (setgroups(0, NULL) == -1)
		child_fail(c, STEP_SETGROUPS);
	if (setresgid(gid, gid, gid) == -1)
		child_fail(c, STEP_SETRESGID);
	if (setresuid(uid, uid, uid) == -1)
		child_fail(c, STEP_SETRESUID);
	errno = EPERM;
	if (getresuid(&r, &e, &s) == -1 || r != uid || e != uid ||
	    s != uid || getresgid(&rg, &eg, &sg) == -1 || rg != gid ||
	    eg != gid || sg != gid || getgroups(0, NULL) != 0 ||
	    setresuid(0, 0, 0) != -1)
		child_fail(c, STEP_VERIFY);
}

__attribute__((noreturn)) static void
child_run(struct child_ctx *c)
{
	static char *const	 noenv[] = { NULL };
	struct rlimit		 nocore = { 0, 0 };

	if (child_signals() == -1)
		child_fail(c, STEP_SIGNALS);
	/* own session: a terminal's ^C to byd must not reach workers */
	setsid();
	if (c->root && cgroup_enter(c->w) == -1)
		child_fail(c, STEP_CGROUP);
	if (child_fds(c) == -1)
		child_fail(c, STEP_FDS);
	if (c->root)
		child_ids(c);
	/* after the uid change, which clears it; bwrap is not setuid */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		child_fail(c, STEP_PRCTL);
	if (getppid() != c->parent) {
		errno = ESRCH;
		child_fail(c, STEP_PARENT);
	}
	/* a core file would hold the app's memory and secrets */
	setrlimit(RLIMIT_CORE, &nocore);
	execve(c->argv[0], c->argv, noenv);
	child_fail(c, STEP_EXEC);
}

/* Wait for exec (the status pipe closes) or the child's report. */
static int
child_wait(pid_t pid, int fd, char *err, size_t errlen)
{
	struct child_report	 r;
	ssize_t			 n;
	int			 st;

	while ((n = read(fd, &r, sizeof(r))) == -1 && errno == EINTR)
		;
	if (n == 0)
		return 0;
	if (n == (ssize_t)sizeof(r) && r.step > 0 && r.step <= STEP_EXEC)
		snprintf(err, errlen, "sandbox start failed: %s: %s",
		    step_names[r.step], strerror(r.error));
	else
		snprintf(err, errlen, "sandbox start failed");
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	return -1;
}

/*
 * Fork the worker and exec bwrap.  Returns its pid once the exec
 * happened, or -1 with the failing step in err (the child is reaped).
 */
pid_t
sandbox_exec(const struct worker *w, struct argv *a, int out_fd,
    int seccomp_fd, char *err, size_t errlen)
{
	struct child_ctx	 c;
	int			 sp[2];
	pid_t			 pid;

	memset(&c, 0, sizeof(c));
	c.w = w;
	c.argv = a->v;
	c.out = out_fd;
	c.seccomp = seccomp_fd;
	c.parent = getpid();
	c.root = geteuid() == 0;
	if ((c.devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		return -1;
	}
	if (pipe2(sp, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(c.devnull);
		return -1;
	}
	c.status = sp[1];
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		close(c.devnull);
		return -1;
	}
	if (pid == 0)
		child_run(&c);
	close(sp[1]);
	close(c.devnull);
	if (child_wait(pid, sp[0], err, errlen) == -1)
		pid = -1;
	close(sp[0]);
	return pid;
}
