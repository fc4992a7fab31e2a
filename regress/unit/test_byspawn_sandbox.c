/*
 * byspawn's workers, for real: R in bwrap, as a worker uid, in cgroups.
 * The probe app reports from inside the sandbox what it can see and do;
 * the limits app misbehaves against each limit.  Runs as root (uids and
 * cgroups); as another user only the tests that need neither run.
 *
 * Everything lives in a temporary directory and in cgroups named
 * blockyard-test-<pid>, with ports 31500-31519 and uids 61500-61519, so
 * a byd running on the same host is not disturbed.  The parent's
 * teardown kills and removes whatever a failed test left.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <check.h>
#include <event2/event.h>
#include <jansson.h>

#include "byspawn.h"
#include "config.h"
#include "log.h"
#include "seccomp_profile.h"

#define PORT_LO		31500
#define PORT_HI		31519
#define UID_LO		61500
#define UID_HI		61519
#define WORKER_GID	65534
#define READY_MS	30000
#define CANARY		"BYSPAWN_TEST_CANARY"

static char	 tmpdir[256];
static char	 cgname[64];
static char	 fixtures[PATH_MAX] = "regress/fixtures";
static int	 is_root;

/* ---- set-up ---------------------------------------------------------- */

static const char *
noenv(const char *name, void *arg)
{
	return NULL;
}

static void
xsystem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
xsystem(const char *fmt, ...)
{
	char	 cmd[4096];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0) {
		fprintf(stderr, "failed: %s\n", cmd);
		abort();
	}
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) != 0 || chmod(path, mode) == -1) {
		perror(path);
		abort();
	}
}

/* Host paths a worker must not be able to read. */
static void
secret_paths(char *buf, size_t len)
{
	snprintf(buf, len, "%s/bundles/app-other/b1:%s/bundles/app-other/b1/"
	    "app.R:%s/db/blockyard.db:%s/blockyard.toml:%s/bundles:%s:"
	    "/etc/shadow:/root:/etc/passwd:/home", tmpdir, tmpdir, tmpdir,
	    tmpdir, tmpdir, tmpdir);
}

/* The test configuration; seccomp: a filter file or NULL. */
static struct config *
make_conf(const char *seccomp)
{
	char		 text[8192], paths[4096], sc[512] = "";
	char		 err[1024];
	struct config	*c;

	secret_paths(paths, sizeof(paths));
	if (seccomp != NULL)
		snprintf(sc, sizeof(sc), "seccomp_profile = \"%s\"", seccomp);
	snprintf(text, sizeof(text),
	    "[server]\nbind = \"127.0.0.1:18099\"\n"
	    "control_socket = \"%s/byd.sock\"\n"
	    "[server.worker_env]\nPROBE_PATHS = \"%s\"\n"
	    "[process]\n%s\nport_range_start = %d\nport_range_end = %d\n"
	    "worker_uid_range_start = %d\nworker_uid_range_end = %d\n"
	    "worker_gid = %d\n"
	    "[storage]\nbundle_server_path = \"%s/bundles\"\n"
	    "[database]\npath = \"%s/db/blockyard.db\"\n"
	    "[proxy]\nlog_retention = \"1h\"\n",
	    tmpdir, paths, sc, PORT_LO, PORT_HI, UID_LO, UID_HI, WORKER_GID,
	    tmpdir, tmpdir);
	if ((c = config_load_string(text, "test.toml", noenv, NULL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "config: %s\n", err);
		abort();
	}
	return c;
}

static void
make_bundle(const char *app, const char *fixture, int sysprobe)
{
	char	 dir[512];

	snprintf(dir, sizeof(dir), "%s/bundles/%s/b1", tmpdir, app);
	xsystem("mkdir -p '%s' && cp '%s/%s/'*.R '%s/'", dir, fixtures,
	    fixture, dir);
	if (sysprobe)
		xsystem("cc -O1 -o '%s/sysprobe' '%s/sysprobe.c'", dir,
		    fixtures);
	xsystem("chmod -R a+rX '%s/bundles/%s'", tmpdir, app);
}

static void
make_tree(void)
{
	char	 path[PATH_MAX], err[256];

	snprintf(path, sizeof(path), "%s/bundles/app-probe/b1.lib", tmpdir);
	make_bundle("app-probe", "probe", 1);
	make_bundle("app-hello", "hello", 0);
	make_bundle("app-limits", "limits", 1);
	make_bundle("app-split", "split", 0);
	make_bundle("app-broken", "broken", 0);
	xsystem("mkdir -p '%s' && chmod 755 '%s'", path, path);
	snprintf(path, sizeof(path), "%s/bundles/app-other/b1", tmpdir);
	xsystem("mkdir -p '%s'", path);
	strlcat(path, "/app.R", sizeof(path));
	write_text(path, "# another app's secret\n", 0644);
	xsystem("chmod -R a+rX '%s/bundles'", tmpdir);
	snprintf(path, sizeof(path), "%s/db", tmpdir);
	xsystem("mkdir -p '%s' && chmod 700 '%s'", path, path);
	strlcat(path, "/blockyard.db", sizeof(path));
	write_text(path, "not really sqlite\n", 0600);
	snprintf(path, sizeof(path), "%s/blockyard.toml", tmpdir);
	write_text(path, "# config\n", 0600);
	snprintf(path, sizeof(path), "%s/seccomp.bpf", tmpdir);
	if (seccomp_profile_write(path, err, sizeof(err)) == -1) {
		fprintf(stderr, "seccomp: %s\n", err);
		abort();
	}
}

/* Once, in the runner: the tree and the cgroup name. */
static void
suite_setup(void)
{
	const char	*t = getenv("TMPDIR");
	const char	*f = getenv("BY_FIXTURES");

	is_root = geteuid() == 0;
	if (f != NULL)
		strlcpy(fixtures, f, sizeof(fixtures));
	snprintf(tmpdir, sizeof(tmpdir), "%s/byspawn-test.XXXXXX",
	    t != NULL ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0755) == -1) {
		perror(tmpdir);
		abort();
	}
	snprintf(cgname, sizeof(cgname), "blockyard-test-%d", (int)getpid());
	make_tree();
	setenv(CANARY, "leaked", 1);
	log_init("test", 0);
	log_setlevel(getenv("BY_TEST_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Whatever a failed test left: workers, strays, cgroups, files. */
static void
suite_teardown(void)
{
	char	 err[256];

	proc_conf = make_conf(NULL);
	if (is_root) {
		workers_init(cgname, err, sizeof(err));
		cgroup_remove_base();
	}
	config_free(proc_conf);
	proc_conf = NULL;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_setup(void)
{
	char	 err[256];

	proc_base = event_base_new();
	proc_conf = make_conf(NULL);
	ck_assert_int_eq(workers_init(cgname, err, sizeof(err)), 0);
}

static void
use_seccomp(const char *name)
{
	char	 path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	config_free(proc_conf);
	proc_conf = make_conf(path);
}

static void
test_teardown(void)
{
	workers_free();
	config_free(proc_conf);
	proc_conf = NULL;
	event_base_free(proc_base);
	proc_base = NULL;
}

/* ---- driving the loop ------------------------------------------------ */

struct watch {
	int			 exited;
	int			 ready_done, ready_ok;
	int			 lines;
	int			 forget;	/* in on_exit */
	struct worker_exit	 exit;
};

static void
on_exit_cb(struct worker *w, void *arg)
{
	struct watch	*x = arg;

	x->exited = 1;
	x->exit = w->exit;
	if (x->forget)
		worker_forget(w);
}

static void
on_log_cb(struct worker *w, const struct worker_logline *l, void *arg)
{
	((struct watch *)arg)->lines++;
}

static void
on_ready(struct worker *w, int ok, int status, void *arg)
{
	struct watch	*x = arg;

	x->ready_done = 1;
	x->ready_ok = ok;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run proc_base until *flag is set; 0, or -1 after ms. */
static int
run_until(const int *flag, int ms)
{
	struct event	*t;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	int		 late = 0;

	t = evtimer_new(proc_base, on_deadline, &late);
	evtimer_add(t, &tv);
	while (!*flag && !late)
		event_base_loop(proc_base, EVLOOP_ONCE);
	event_free(t);
	return *flag ? 0 : -1;
}

static void
run_for(int ms)
{
	int	 never = 0;

	run_until(&never, ms);
}

static struct worker *
spawn(const char *id, const char *app, struct watch *x, uint64_t mem,
    double cpu, int pids, const struct strmap *env)
{
	struct worker_spec	 s;
	struct worker		*w = NULL;
	char			 dir[512], lib[512], err[512];

	snprintf(dir, sizeof(dir), "%s/bundles/%s/b1", tmpdir, app);
	snprintf(lib, sizeof(lib), "%s/bundles/%s/b1.lib", tmpdir, app);
	memset(&s, 0, sizeof(s));
	memset(x, 0, sizeof(*x));
	s.id = id;
	s.app_id = app;
	s.bundle_id = "b1";
	s.bundle_dir = dir;
	s.library_dir = access(lib, F_OK) == 0 ? lib : NULL;
	s.memory_limit = mem;
	s.cpu_limit = cpu;
	s.pids_max = pids;
	s.env = env;
	s.on_exit = on_exit_cb;
	s.on_log = on_log_cb;
	s.cb_arg = x;
	ck_assert_msg(worker_spawn(&s, &w, err, sizeof(err)) == 0,
	    "spawn %s: %s", id, err);
	return w;
}

static void
await_ready(struct worker *w, struct watch *x)
{
	ck_assert_int_eq(worker_await_ready(w, READY_MS, on_ready, x), 0);
	ck_assert_int_eq(run_until(&x->ready_done, READY_MS + 5000), 0);
	ck_assert_msg(x->ready_ok, "worker %s never answered HTTP", w->id);
	ck_assert_int_eq(w->state, WORKER_RUNNING);
}

static void
await_exit(struct watch *x, int ms)
{
	ck_assert_msg(run_until(&x->exited, ms) == 0, "no exit in %d ms", ms);
}

/* ---- talking to workers ---------------------------------------------- */

/* A blocking GET /; the status, with the body in buf. */
static int
http_get(int port, char *buf, size_t len)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 10, 0 };
	const char		*req = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
	char			*body;
	size_t			 off = 0;
	ssize_t			 n;
	int			 fd, status = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	while (off + 1 < len && (n = read(fd, buf + off, len - off - 1)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	if ((body = strstr(buf, "\r\n\r\n")) != NULL)
		memmove(buf, body + 4, strlen(body + 4) + 1);
	return status;
}

static json_t *
probe_report(struct worker *w)
{
	static char	 buf[1 << 20];
	json_error_t	 jerr;
	json_t		*j;

	ck_assert_int_eq(http_get(w->port, buf, sizeof(buf)), 200);
	if (getenv("BY_TEST_VERBOSE") != NULL)
		fprintf(stderr, "probe %s: %s\n", w->id, buf);
	j = json_loads(buf, 0, &jerr);
	ck_assert_msg(j != NULL, "probe JSON: %s: %.200s", jerr.text, buf);
	return j;
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

struct grep {
	const char	*needle;
	int		 found;
	char		 line[WORKER_LINE_MAX + 1];
};

static void
grep_line(const struct worker_logline *l, void *arg)
{
	struct grep	*g = arg;

	if (!g->found && strstr(l->text, g->needle) != NULL) {
		g->found = 1;
		strlcpy(g->line, l->text, sizeof(g->line));
	}
}

static int
log_has(const struct worker *w, const char *needle, char *line, size_t len)
{
	struct grep	 g;

	memset(&g, 0, sizeof(g));
	g.needle = needle;
	worker_log_read(w, 0, grep_line, &g);
	if (g.found && line != NULL)
		strlcpy(line, g.line, len);
	return g.found;
}

/* The pid of the process called comm in the worker's cgroup, or -1. */
static pid_t
cgroup_pid(const struct worker *w, const char *comm)
{
	char	 path[PATH_MAX], name[64];
	FILE	*f, *c;
	long	 pid, found = -1;
	int	 r;

	for (r = 0; r < CG_NRES && w->cg.dir[r] == NULL; r++)
		;
	ck_assert_int_lt(r, CG_NRES);
	snprintf(path, sizeof(path), "%s/cgroup.procs", w->cg.dir[r]);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (found == -1 && fscanf(f, "%ld", &pid) == 1) {
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		if ((c = fopen(path, "r")) == NULL)
			continue;
		if (fgets(name, sizeof(name), c) != NULL) {
			name[strcspn(name, "\n")] = '\0';
			if (strcmp(name, comm) == 0)
				found = pid;
		}
		fclose(c);
	}
	fclose(f);
	return (pid_t)found;
}

/* Every process of the worker runs as its uid and gid, no groups. */
static void
assert_host_ids(const struct worker *w)
{
	char	 path[PATH_MAX], line[256];
	FILE	*f, *s;
	long	 pid, uid[4], gid[4];
	int	 n = 0, r;

	for (r = 0; r < CG_NRES && w->cg.dir[r] == NULL; r++)
		;
	snprintf(path, sizeof(path), "%s/cgroup.procs", w->cg.dir[r]);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (fscanf(f, "%ld", &pid) == 1) {
		snprintf(path, sizeof(path), "/proc/%ld/status", pid);
		if ((s = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), s) != NULL) {
			if (sscanf(line, "Uid: %ld %ld %ld %ld", &uid[0],
			    &uid[1], &uid[2], &uid[3]) == 4)
				for (r = 0; r < 4; r++)
					ck_assert_int_eq(uid[r], w->uid);
			if (sscanf(line, "Gid: %ld %ld %ld %ld", &gid[0],
			    &gid[1], &gid[2], &gid[3]) == 4)
				for (r = 0; r < 4; r++)
					ck_assert_int_eq(gid[r], WORKER_GID);
			if (strncmp(line, "Groups:", 7) == 0)
				ck_assert_msg(strspn(line + 7, " \t\n") ==
				    strlen(line + 7), "groups: %s", line);
		}
		fclose(s);
		n++;
	}
	fclose(f);
	/* outer bwrap, bwrap's init in the sandbox, R */
	ck_assert_int_ge(n, 3);
}

static int
dir_exists(const char *path)
{
	struct stat	 st;

	return path != NULL && stat(path, &st) == 0;
}

/* ---- the sandbox, without R ------------------------------------------ */

static int
argv_find(const struct argv *a, const char *s, size_t from)
{
	size_t	 i;

	for (i = from; i < a->n; i++)
		if (strcmp(a->v[i], s) == 0)
			return (int)i;
	return -1;
}

static const char *const documented_env[] = {
	"PATH", "HOME", "TMPDIR", "LANG", "TZ", "R_LIBS", "SHINY_PORT",
	"SHINY_HOST", "BLOCKYARD_API_URL", "PROBE_PATHS", NULL
};

static int
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

START_TEST(test_argv)
{
	static const char *const flags[] = { "--unshare-user",
	    "--unshare-pid", "--unshare-ipc", "--unshare-uts",
	    "--unshare-cgroup-try", "--disable-userns", "--die-with-parent",
	    "--new-session", "--clearenv", "--proc", "--dev", NULL };
	struct worker		 w;
	struct worker_spec	 s;
	struct argv		 a;
	struct strmap		 bad;
	char			 dir[PATH_MAX], lib[PATH_MAX], err[256];
	char			*k[] = { "A-B" }, *v[] = { "x" };
	size_t			 i, nenv = 0;
	int			 clear;

	memset(&w, 0, sizeof(w));
	memset(&s, 0, sizeof(s));
	w.port = 31555;
	snprintf(dir, sizeof(dir), "%s/bundles/app-probe/b1", tmpdir);
	snprintf(lib, sizeof(lib), "%s/bundles/app-probe/b1.lib", tmpdir);
	s.bundle_dir = dir;
	s.library_dir = lib;
	ck_assert_int_eq(sandbox_argv(&w, &s, 7, &a, err, sizeof(err)), 0);
	ck_assert_str_eq(a.v[0], "/usr/bin/bwrap");
	for (i = 0; flags[i] != NULL; i++)
		ck_assert_msg(argv_find(&a, flags[i], 0) > 0, "no %s",
		    flags[i]);
	for (i = 1; i + 1 < a.n; i++) {
		/* never the host's root, never anything writable */
		if (strcmp(a.v[i], "--ro-bind") == 0)
			ck_assert_str_ne(a.v[i + 1], "/");
		ck_assert_str_ne(a.v[i], "--bind");
		ck_assert_str_ne(a.v[i], "--dev-bind");
	}
	i = (size_t)argv_find(&a, dir, 0);
	ck_assert_str_eq(a.v[i - 1], "--ro-bind");
	ck_assert_str_eq(a.v[i + 1], "/app");
	i = (size_t)argv_find(&a, lib, 0);
	ck_assert_str_eq(a.v[i + 1], "/blockyard-lib");
	i = (size_t)argv_find(&a, "--seccomp", 0);
	ck_assert_str_eq(a.v[i + 1], "3");
	i = (size_t)argv_find(&a, "--cap-drop", 0);
	ck_assert_str_eq(a.v[i + 1], "ALL");
	clear = argv_find(&a, "--clearenv", 0);
	for (i = 1; i + 2 < a.n; i++) {
		if (strcmp(a.v[i], "--setenv") != 0)
			continue;
		ck_assert_int_gt((int)i, clear);
		ck_assert_msg(in_list(a.v[i + 1], documented_env),
		    "undocumented variable %s", a.v[i + 1]);
		if (strcmp(a.v[i + 1], "R_LIBS") == 0)
			ck_assert(strncmp(a.v[i + 2], "/blockyard-lib:", 15) ==
			    0);
		if (strcmp(a.v[i + 1], "SHINY_PORT") == 0)
			ck_assert_str_eq(a.v[i + 2], "31555");
		if (strcmp(a.v[i + 1], "BLOCKYARD_API_URL") == 0)
			ck_assert_str_eq(a.v[i + 2], "http://127.0.0.1:18099");
		nenv++;
	}
	ck_assert_int_eq(nenv, 10);
	ck_assert_str_eq(a.v[a.n - 1], "shiny::runApp('/app', port=31555, "
	    "host='127.0.0.1', launch.browser=FALSE)");
	ck_assert_str_eq(a.v[a.n - 6], "/usr/bin/R");
	argv_free(&a);

	/* no filter: no --seccomp */
	ck_assert_int_eq(sandbox_argv(&w, &s, -1, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(argv_find(&a, "--seccomp", 0), -1);
	argv_free(&a);

	bad.k = k;
	bad.v = v;
	bad.n = 1;
	s.env = &bad;
	ck_assert_int_eq(sandbox_argv(&w, &s, -1, &a, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "A-B"));
}
END_TEST

START_TEST(test_slots)
{
	struct sockaddr_in	 sin;
	char			 err[256];
	int			 uids[UID_HI - UID_LO + 1], u, p, fd, i, on = 1;

	for (i = 0; i <= UID_HI - UID_LO; i++) {
		ck_assert_int_eq(slot_uid_alloc(&uids[i], err, sizeof(err)), 0);
		ck_assert_int_eq(uids[i], UID_LO + i);
	}
	ck_assert_int_eq(slot_uid_alloc(&u, err, sizeof(err)), -1);
	slot_uid_release(UID_LO + 3);
	ck_assert_int_eq(slot_uid_alloc(&u, err, sizeof(err)), 0);
	ck_assert_int_eq(u, UID_LO + 3);
	ck_assert(slot_uid_held(UID_LO + 3));

	/* a port someone listens on is skipped */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(PORT_LO);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(slot_port_alloc(&p, err, sizeof(err)), 0);
	ck_assert_int_eq(p, PORT_LO + 1);
	ck_assert_int_eq(slot_port_alloc(&u, err, sizeof(err)), 0);
	ck_assert_int_eq(u, PORT_LO + 2);
	close(fd);
	/* released ones come back last */
	slot_port_release(PORT_LO + 1);
	ck_assert_int_eq(slot_port_alloc(&u, err, sizeof(err)), 0);
	ck_assert_int_eq(u, PORT_LO + 3);
	ck_assert(!slot_port_held(PORT_LO + 1));
}
END_TEST

/* The ring: lines, order, UTF-8 repair, long lines, the 10 000 cap. */
START_TEST(test_log_ring)
{
	struct worker	 w;
	struct watch	 x;
	struct grep	 g;
	char		 big[WORKER_LINE_MAX + 100];
	const char	 mixed[] = "first\r\nbad \xff\xc3 \xc3\xa9!\n";
	int		 p[2], i;
	pid_t		 pid;
	FILE		*f;

	memset(&w, 0, sizeof(w));
	memset(&x, 0, sizeof(x));
	strlcpy(w.id, "ring", sizeof(w.id));
	w.on_log = on_log_cb;
	w.cb_arg = &x;
	w.log.fd = -1;
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(worker_log_start(&w, p[0]), 0);
	/* more than a pipe holds: write from a child while the loop reads */
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		f = fdopen(p[1], "w");
		fprintf(f, "first\r\nbad \xff\xc3 bytes\n");
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		fprintf(f, "%s\n", big);
		for (i = 0; i < 10050; i++)
			fprintf(f, "line %d\n", i);
		fprintf(f, "no newline at the end");
		fclose(f);
		_exit(0);
	}
	close(p[1]);
	while (!worker_log_eof(&w))
		event_base_loop(proc_base, EVLOOP_ONCE);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	/* 2 + 2 (the long line split) + 10050 + 1 */
	ck_assert_int_eq(x.lines, 10055);
	ck_assert_int_eq(w.log.count, WORKER_LOG_LINES);
	ck_assert_int_eq(w.log.next_seq, 10055);
	ck_assert_int_eq(w.log.lines[w.log.head].seq, 56);
	memset(&g, 0, sizeof(g));
	g.needle = "line 10049";
	ck_assert_int_eq(worker_log_read(&w, 10054, grep_line, &g), 2);
	ck_assert(g.found);
	ck_assert(log_has(&w, "no newline at the end", NULL, 0));
	ck_assert(!log_has(&w, "first", NULL, 0));
	worker_log_free(&w);

	/* UTF-8 repair and CR, before the ring wraps */
	memset(&w, 0, sizeof(w));
	memset(&x, 0, sizeof(x));
	w.log.fd = -1;
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(worker_log_start(&w, p[0]), 0);
	ck_assert_int_eq(write(p[1], mixed, sizeof(mixed) - 1),
	    sizeof(mixed) - 1);
	close(p[1]);
	while (!worker_log_eof(&w))
		event_base_loop(proc_base, EVLOOP_ONCE);
	ck_assert_int_eq(w.log.count, 2);
	ck_assert_str_eq(w.log.lines[0].text, "first");
	ck_assert_str_eq(w.log.lines[1].text, "bad ?? \xc3\xa9!");
	worker_log_free(&w);
}
END_TEST

/* A filter that is configured but unusable stops start-up and spawns. */
START_TEST(test_bad_seccomp)
{
	struct worker		*w = NULL;
	struct worker_spec	 s;
	char			 err[512], path[512];

	use_seccomp("missing.bpf");
	ck_assert_int_eq(workers_init(cgname, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "missing.bpf"));
	snprintf(path, sizeof(path), "%s/short.bpf", tmpdir);
	write_text(path, "1234567", 0644);
	use_seccomp("short.bpf");
	ck_assert_int_eq(workers_init(cgname, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a BPF program"));

	/* gone after start-up: the spawn fails and leaves nothing held */
	memset(&s, 0, sizeof(s));
	snprintf(path, sizeof(path), "%s/bundles/app-hello/b1", tmpdir);
	s.id = "nofilter";
	s.bundle_dir = path;
	ck_assert_int_eq(worker_spawn(&s, &w, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "seccomp_profile"));
	ck_assert_ptr_null(worker_find("nofilter"));
	ck_assert(!slot_uid_held(UID_LO));
	ck_assert(!slot_port_held(PORT_LO));
}
END_TEST

/* ---- from inside a real worker --------------------------------------- */

static void
assert_not_readable(json_t *r)
{
	json_t		*readable = json_object_get(r, "readable"), *v;
	const char	*path;

	ck_assert_int_ge(json_object_size(readable), 10);
	json_object_foreach(readable, path, v)
		ck_assert_msg(json_is_false(v), "worker can read %s", path);
	ck_assert(json_is_false(json_object_get(r, "write_app")));
	ck_assert(json_is_false(json_object_get(r, "write_usr")));
	ck_assert(json_is_true(json_object_get(r, "write_tmp")));
}

static void
assert_root_and_procs(json_t *r)
{
	static const char *const root[] = { "app", "bin", "blockyard-lib",
	    "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr", "var",
	    NULL };
	static const char *const comms[] = { "bwrap", "R", "sh", "sysprobe",
	    NULL };
	json_t	*v;
	size_t	 i;

	json_array_foreach(json_object_get(r, "root_entries"), i, v)
		ck_assert_msg(in_list(json_string_value(v), root),
		    "unexpected /%s", json_string_value(v));
	/* its own pid namespace: bwrap's init, R, maybe system()'s shell */
	ck_assert_int_le(json_array_size(json_object_get(r, "procs")), 5);
	json_array_foreach(json_object_get(r, "procs"), i, v) {
		ck_assert_msg(in_list(jstr(v, "comm"), comms), "sees %s",
		    jstr(v, "comm"));
		ck_assert_int_le(json_integer_value(json_object_get(v, "pid")),
		    10);
	}
}

static void
assert_env(json_t *r)
{
	static const char *const from_r[] = { "EDITOR", "LD_LIBRARY_PATH",
	    "LN_S", "MAKE", "PAGER", "PWD", "SED", "SHLVL", "TAR", NULL };
	const char	*k;
	json_t		*v, *env = json_object_get(r, "env");

	ck_assert_ptr_null(json_object_get(env, CANARY));
	json_object_foreach(env, k, v)
		ck_assert_msg(in_list(k, documented_env) ||
		    in_list(k, from_r) || strncmp(k, "R_", 2) == 0 ||
		    strncmp(k, "_R_", 3) == 0, "unexpected variable %s", k);
	ck_assert_str_eq(jstr(env, "HOME"), "/tmp");
	ck_assert_str_eq(jstr(env, "LANG"), "C.UTF-8");
	ck_assert_str_eq(jstr(env, "TZ"), "UTC");
	ck_assert_str_eq(jstr(env, "SHINY_HOST"), "127.0.0.1");
	ck_assert(strncmp(jstr(env, "R_LIBS"), "/blockyard-lib:", 15) == 0);
}

static void
assert_ids_and_caps(json_t *r, const struct worker *w)
{
	static const char *const caps[] = { "cap_inh", "cap_prm", "cap_eff",
	    "cap_bnd", "cap_amb", NULL };
	size_t	 i;

	ck_assert_int_eq(atoi(jstr(r, "uid")), w->uid);
	ck_assert_int_eq(atoi(jstr(r, "gid")), WORKER_GID);
	ck_assert_str_eq(jstr(r, "groups"), "");
	for (i = 0; caps[i] != NULL; i++)
		ck_assert_str_eq(jstr(r, caps[i]), "0000000000000000");
	ck_assert_str_eq(jstr(r, "no_new_privs"), "1");
	ck_assert_str_eq(jstr(r, "hostname"), "worker");
	ck_assert_str_eq(jstr(r, "cwd"), "/app");
}

START_TEST(test_probe_seccomp)
{
	static const char *const eperm[] = { "ptrace", "keyctl", "bpf",
	    "mount", "unshare", "clone_newuser", "io_uring_setup",
	    "perf_event_open", "kexec_load", "userfaultfd", "tiocsti",
	    "tiocsti_high", NULL };
	struct worker	*w;
	struct watch	 x;
	json_t		*r, *sc;
	char		 dirs[CG_NRES][PATH_MAX];
	size_t		 i;

	use_seccomp("seccomp.bpf");
	w = spawn("probe-1", "app-probe", &x, 512ULL << 20, 0, 0, NULL);
	ck_assert_int_ge(w->uid, UID_LO);
	ck_assert_int_le(w->uid, UID_HI);
	ck_assert_int_ge(w->port, PORT_LO);
	ck_assert_int_le(w->port, PORT_HI);
	await_ready(w, &x);
	assert_host_ids(w);
	r = probe_report(w);
	assert_ids_and_caps(r, w);
	ck_assert_str_eq(jstr(r, "seccomp"), "2");
	assert_not_readable(r);
	assert_root_and_procs(r);
	assert_env(r);
	sc = json_object_get(r, "syscalls");
	for (i = 0; eperm[i] != NULL; i++)
		ck_assert_msg(strcmp(jstr(sc, eperm[i]), "EPERM") == 0,
		    "%s: %s", eperm[i], jstr(sc, eperm[i]));
	ck_assert_str_eq(jstr(sc, "clone3"), "ENOSYS");
	ck_assert_str_eq(jstr(sc, "getpid"), "ok");
	ck_assert_str_eq(jstr(sc, "fork"), "ok");
	json_decref(r);
	ck_assert(log_has(w, "PROBE {", NULL, 0));
	ck_assert_int_gt(x.lines, 0);

	/* usage from the cgroup counters, as the runtime API shows it */
	r = worker_to_json(w);
	ck_assert_str_eq(jstr(r, "state"), "running");
	sc = json_object_get(r, "usage");
	ck_assert_int_gt(json_integer_value(json_object_get(sc,
	    "memory_bytes")), 30 << 20);
	ck_assert(json_real_value(json_object_get(sc, "cpu_seconds")) > 0.1);
	ck_assert_int_ge(json_integer_value(json_object_get(sc, "pids")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(r,
	    "memory_limit")), 512 << 20);
	json_decref(r);

	for (i = 0; i < CG_NRES; i++)
		strlcpy(dirs[i], w->cg.dir[i] ? w->cg.dir[i] : "",
		    sizeof(dirs[i]));
	worker_stop(w, 5000);
	await_exit(&x, 10000);
	ck_assert(w->exit.stopped);
	ck_assert(!w->exit.oom);
	ck_assert(!slot_uid_held(w->uid));
	ck_assert(!slot_port_held(w->port));
	for (i = 0; i < CG_NRES; i++)
		ck_assert_msg(dirs[i][0] == '\0' || !dir_exists(dirs[i]),
		    "%s is left", dirs[i]);
}
END_TEST

START_TEST(test_lifecycle)
{
	struct worker		*w1, *w2;
	struct watch		 x1, x2;
	struct worker_spec	 dup;
	json_t			*r, *sc;
	char			 line[WORKER_LINE_MAX + 1], want[64], err[256];
	char			 buf[65536];
	int			 uid1, uid2, port1, port2;
	pid_t			 rpid;

	w1 = spawn("life-1", "app-probe", &x1, 0, 0, 0, NULL);
	w2 = spawn("life-2", "app-probe", &x2, 0, 0, 0, NULL);
	uid1 = (int)w1->uid;
	uid2 = (int)w2->uid;
	port1 = w1->port;
	port2 = w2->port;
	ck_assert_int_ne(uid1, uid2);
	ck_assert_int_ne(port1, port2);
	memset(&dup, 0, sizeof(dup));
	dup.id = "life-1";
	dup.bundle_dir = tmpdir;
	ck_assert_int_eq(worker_spawn(&dup, NULL, err, sizeof(err)), -1);
	await_ready(w1, &x1);
	await_ready(w2, &x2);

	/* without the filter, --disable-userns still refuses a userns */
	r = probe_report(w1);
	ck_assert_str_eq(jstr(r, "seccomp"), "0");
	sc = json_object_get(r, "syscalls");
	ck_assert_str_eq(jstr(sc, "unshare"), "ENOSPC");
	ck_assert_str_eq(jstr(sc, "clone_newuser"), "ENOSPC");
	assert_not_readable(r);
	json_decref(r);
	snprintf(want, sizeof(want), "Listening on http://127.0.0.1:%d",
	    port1);
	ck_assert_msg(log_has(w1, want, line, sizeof(line)), "no \"%s\"",
	    want);

	/* stopping one leaves the other */
	worker_stop(w1, 5000);
	await_exit(&x1, 10000);
	ck_assert(w1->exit.stopped);
	ck_assert_int_eq(w1->exit.signal, SIGTERM);
	ck_assert_int_eq(w1->state, WORKER_EXITED);
	ck_assert(!slot_uid_held(uid1));
	ck_assert(!slot_port_held(port1));
	ck_assert_int_eq(http_get(port2, buf, sizeof(buf)), 200);
	ck_assert_int_eq(w2->state, WORKER_RUNNING);

	/* the R process killed behind our back is noticed, with its signal */
	ck_assert_int_gt(rpid = cgroup_pid(w2, "R"), 0);
	ck_assert_int_eq(kill(rpid, SIGKILL), 0);
	x2.forget = 1;		/* the exit callback may drop its worker */
	await_exit(&x2, 10000);
	ck_assert_int_eq(x2.exit.signal, SIGKILL);
	ck_assert_int_eq(x2.exit.code, 128 + SIGKILL);
	ck_assert(!x2.exit.stopped);
	ck_assert(!x2.exit.oom);
	ck_assert_ptr_null(worker_find("life-2"));
	ck_assert(!slot_uid_held(uid2));
	ck_assert(!slot_port_held(port2));

	/* the records and their logs stay until forgotten */
	ck_assert_ptr_eq(worker_find("life-1"), w1);
	ck_assert(log_has(w1, want, NULL, 0));
	worker_forget(w1);
	ck_assert_ptr_null(worker_find("life-1"));
}
END_TEST

/* An app that dies while loading: readiness fails, the exit and why. */
START_TEST(test_app_error)
{
	struct worker	*w;
	struct watch	 x;
	json_t		*j;

	w = spawn("broken", "app-broken", &x, 0, 0, 0, NULL);
	ck_assert_int_eq(worker_await_ready(w, READY_MS, on_ready, &x), 0);
	ck_assert_int_eq(run_until(&x.ready_done, READY_MS + 5000), 0);
	ck_assert(!x.ready_ok);
	await_exit(&x, 10000);
	ck_assert_int_eq(w->exit.code, 1);
	ck_assert_int_eq(w->exit.signal, 0);
	ck_assert(!w->exit.oom && !w->exit.stopped);
	ck_assert(log_has(w, "about to fail", NULL, 0));
	ck_assert(log_has(w, "broken on purpose", NULL, 0));
	j = worker_to_json(w);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")),
	    "exited");
	ck_assert_int_eq(json_integer_value(json_object_get(
	    json_object_get(j, "exit"), "code")), 1);
	json_decref(j);
}
END_TEST

/* ---- limits ---------------------------------------------------------- */

static struct strmap *
env1(const char *k, const char *v)
{
	static char	*ks[1], *vs[1];
	static struct strmap m;

	ks[0] = (char *)k;
	vs[0] = (char *)v;
	m.k = ks;
	m.v = vs;
	m.n = 1;
	return &m;
}

START_TEST(test_oom)
{
	struct worker	*hog, *sib;
	struct watch	 xh, xs;
	char		 buf[65536];

	sib = spawn("sibling", "app-hello", &xs, 512ULL << 20, 0, 0, NULL);
	hog = spawn("hog", "app-limits", &xh, 200ULL << 20, 0, 0,
	    env1("HOG_MB", "800"));
	await_exit(&xh, 30000);
	ck_assert_msg(hog->exit.oom, "not recorded as OOM (code %d signal %d)",
	    hog->exit.code, hog->exit.signal);
	ck_assert_int_eq(hog->exit.signal, SIGKILL);
	ck_assert(!log_has(hog, "allocated", NULL, 0));
	await_ready(sib, &xs);
	ck_assert_int_eq(http_get(sib->port, buf, sizeof(buf)), 200);
	ck_assert(!xs.exited);
	ck_assert(log_has(sib, "hello from stdout", NULL, 0));
	ck_assert(log_has(sib, "hello from stderr", NULL, 0));
}
END_TEST

START_TEST(test_pids)
{
	struct worker		*w;
	struct watch		 x;
	struct worker_usage	 u;
	char			 line[WORKER_LINE_MAX + 1], buf[65536];
	int			 forked;
	pid_t			 pid;

	w = spawn("forker", "app-limits", &x, 0, 0, 48,
	    env1("FORKLOOP", "500"));
	await_ready(w, &x);
	ck_assert(log_has(w, "FORKLOOP", line, sizeof(line)));
	ck_assert_msg(sscanf(line, "FORKLOOP {\"forked\":%d", &forked) == 1,
	    "%s", line);
	ck_assert_msg(strstr(line, "EAGAIN") != NULL, "%s", line);
	ck_assert_int_lt(forked, 48);
	worker_usage(w, &u);
	ck_assert(u.have_pids);
	ck_assert_int_gt(u.pids_refused, 0);
	ck_assert_int_le(u.pids, 48);
	/* the worker survives its fork bomb, and so does the host */
	ck_assert_int_eq(http_get(w->port, buf, sizeof(buf)), 200);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

START_TEST(test_cpu)
{
	struct worker		*w;
	struct watch		 x;
	struct worker_usage	 u;
	struct timespec		 t0, t1;
	double			 wall, cpu;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	w = spawn("busy", "app-limits", &x, 0, 0.2, 0,
	    env1("BUSY_SECS", "10"));
	run_for(2500);
	worker_usage(w, &u);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wall = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cpu = (double)u.cpu_usec / 1e6;
	ck_assert(u.have_cpu && u.have_throttle);
	ck_assert_msg(u.nr_throttled > 0, "never throttled");
	/* 0.2 cores, with room for the first period */
	ck_assert_msg(cpu > 0.1 && cpu < 0.2 * wall + 0.15,
	    "%.2f s CPU in %.2f s", cpu, wall);
	ck_assert(!x.exited);
}
END_TEST

/* ---- a crashed run's leftovers --------------------------------------- */

static const char *const hierarchies[] = { "/sys/fs/cgroup/memory",
	"/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu",
	"/sys/fs/cgroup/unified", NULL };

/* A process in our stray cgroups (when join) as a worker uid. */
static pid_t
stray(int join, uid_t uid)
{
	char	 path[PATH_MAX];
	pid_t	 pid;
	size_t	 i;
	int	 fd;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid != 0)
		return pid;
	for (i = 0; join && hierarchies[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s/stray/cgroup.procs",
		    hierarchies[i], cgname);
		if ((fd = open(path, O_WRONLY)) != -1) {
			if (write(fd, "0", 1) != 1)
				_exit(1);
			close(fd);
		}
	}
	if (setresgid(WORKER_GID, WORKER_GID, WORKER_GID) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		_exit(1);
	for (;;)
		pause();
}

START_TEST(test_orphans)
{
	char	 path[PATH_MAX], err[256];
	pid_t	 a, b;
	size_t	 i, n = 0;
	int	 st;

	for (i = 0; hierarchies[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", hierarchies[i], cgname);
		if (!dir_exists(path))
			continue;
		strlcat(path, "/stray", sizeof(path));
		ck_assert_int_eq(mkdir(path, 0755), 0);
		n++;
	}
	ck_assert_int_ge(n, 1);
	a = stray(1, UID_HI);
	b = stray(0, UID_HI - 1);
	run_for(200);
	ck_assert_int_eq(kill(a, 0), 0);

	/* a restart: cgroups and uids are cleaned before anything runs */
	workers_free();
	ck_assert_int_eq(workers_init(cgname, err, sizeof(err)), 0);
	ck_assert_int_eq(waitpid(a, &st, 0), a);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert_int_eq(waitpid(b, &st, 0), b);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	for (i = 0; hierarchies[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s/stray", hierarchies[i],
		    cgname);
		ck_assert_msg(!dir_exists(path), "%s is left", path);
	}
}
END_TEST

/* ---- shutdown -------------------------------------------------------- */

static void
on_all_stopped(void *arg)
{
	*(int *)arg = 1;
}

START_TEST(test_shutdown)
{
	struct worker	*w;
	struct watch	 x;
	char		 buf[65536];
	int		 done = 0;

	/* a ui.R + server.R bundle serves as well as app.R does */
	w = spawn("last", "app-split", &x, 0, 0, 0, NULL);
	await_ready(w, &x);
	ck_assert_int_eq(http_get(w->port, buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "split"));
	workers_shutdown(3000, on_all_stopped, &done);
	ck_assert_int_eq(run_until(&done, 10000), 0);
	ck_assert(x.exited);
	ck_assert(w->exit.stopped);
	ck_assert_int_eq(w->state, WORKER_EXITED);
}
END_TEST

/*
 * Development mode: byd run by a plain user.  No uid switch and no
 * cgroups, but the same sandbox in an unprivileged user namespace.
 */
START_TEST(test_unprivileged)
{
	struct worker	*w;
	struct watch	 x;
	char		 err[256], buf[65536];
	uid_t		 nobody = 65534;

	if (geteuid() == 0) {
		workers_free();
		ck_assert_int_eq(setresgid(nobody, nobody, nobody), 0);
		ck_assert_int_eq(setresuid(nobody, nobody, nobody), 0);
		ck_assert_int_eq(workers_init(cgname, err, sizeof(err)), 0);
	}
	ck_assert(!cgroup_enabled());
	w = spawn("plain", "app-hello", &x, 256ULL << 20, 0.5, 0, NULL);
	ck_assert_int_eq(w->uid, getuid());
	ck_assert_int_eq(w->uid_slot, -1);
	await_ready(w, &x);
	ck_assert_int_eq(http_get(w->port, buf, sizeof(buf)), 200);
	worker_stop(w, 3000);
	await_exit(&x, 10000);
	ck_assert(w->exit.stopped);
	ck_assert(!slot_port_held(w->port));
}
END_TEST

static Suite *
sandbox_suite(void)
{
	Suite	*s = suite_create("byspawn_sandbox");
	TCase	*tc = tcase_create("workers");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_argv);
	tcase_add_test(tc, test_slots);
	tcase_add_test(tc, test_log_ring);
	tcase_add_test(tc, test_bad_seccomp);
	tcase_add_test(tc, test_unprivileged);
	if (geteuid() == 0) {
		tcase_add_test(tc, test_probe_seccomp);
		tcase_add_test(tc, test_lifecycle);
		tcase_add_test(tc, test_app_error);
		tcase_add_test(tc, test_oom);
		tcase_add_test(tc, test_pids);
		tcase_add_test(tc, test_cpu);
		tcase_add_test(tc, test_orphans);
		tcase_add_test(tc, test_shutdown);
	} else
		fprintf(stderr, "test_byspawn_sandbox: not root: only the "
		    "tests without uids and cgroups run\n");
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(sandbox_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
