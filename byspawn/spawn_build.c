/*
 * Dependency builds: give a bundle the R packages its manifest asks
 * for, in a library of its own, <bsp>/<app>/<bundle>.lib.
 *
 * A build is a few sandboxed steps, each a worker-like bwrap sandbox
 * (own uid slot, the app's memory and CPU limits, the bundle read-only)
 * that runs our build script (build.R, compiled in) with Rscript:
 *
 *	resolve		reads the manifest, the host library and the
 *			repositories' indexes, writes a plan: the packages
 *			to install, dependencies first
 *	(byspawn)	links every planned package the store has into the
 *			library
 *	install		once per package the store lacks, into an empty
 *			directory of its own, with the library read-only;
 *			byspawn seals the result and moves it into the
 *			store, then links it into the library
 *
 * So no step can write anywhere but its own output directory, and no
 * package's install-time code can touch another package.  A build has
 * [process] build_timeout in all.  The library is published by
 * pointing the symlink <bundle>.lib at <bundle>.lib.<n>; a refresh
 * builds <bundle>.lib.<n+1> the same way and moves the link, keeping
 * the previous target as <bundle>.lib.prev for rollback.
 *
 * Work files live in <bsp>/<app>/<bundle>.build.<n>/: in/ (build.R,
 * the manifest, the per-package plans; read-only to the steps), out/
 * (the resolve step's), stage.<i>/ (an install step's).
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config_keys.h"
#include "log.h"
#include "byspawn.h"

#define PLAN_MAX	(4 << 20)
#define BUILD_PATH_MAX	(PATH_MAX / 2)	/* of <bsp>/<app> */	/* bytes of a plan or DESCRIPTION */
#define STOP_GRACE_MS	2000
#define DEFAULT_REPO	"CRAN=https://cloud.r-project.org"

extern const char	 build_script[];	/* build.R, generated */

enum build_kind {
	BUILD_DEPLOY,
	BUILD_REFRESH,
};

struct build_pkg {
	struct store_pkg	 sp;
	json_t			*entry;		/* its plan entry */
	int			 hit;		/* linked from the store */
};

struct build {
	TAILQ_ENTRY(build)	 entry;
	enum build_kind		 kind;
	char			 app_id[MSG_ID_LEN];
	char			 bundle_id[MSG_ID_LEN];
	struct task		*task;
	uint64_t		 mem;
	double			 cpu;
	char			 r_path[PATH_MAX];
	/* short enough that every path below them fits PATH_MAX */
	char			 appdir[BUILD_PATH_MAX];
	char			 bundledir[BUILD_PATH_MAX + 64];
	char			 workdir[BUILD_PATH_MAX + 64];
	char			 libname[128];
	char			 libdir[BUILD_PATH_MAX + 192];
	struct strmap		 env;
	json_t			*plan;
	struct build_pkg	*pkgs;
	size_t			 npkgs, next, nhost, nhit, ninstalled;
	struct worker		*w;
	struct event		*timeout_ev;
	int			 timed_out;
	struct timespec		 t0;
};

static TAILQ_HEAD(, build) builds = TAILQ_HEAD_INITIALIZER(builds);
static int		 builds_stopping;
static struct strlist	 ro_repos;	/* file:// repositories' paths */

static void	 step_next(struct build *);
static void	 build_fail(struct build *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* ---- small file helpers ---------------------------------------------- */

static int
write_file(const char *path, const char *text, mode_t mode)
{
	char	 tmp[PATH_MAX];
	size_t	 len = strlen(text);
	ssize_t	 n;
	int	 fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, mode)) == -1)
		return -1;
	if ((n = write(fd, text, len)) != (ssize_t)len || fchmod(fd,
	    mode) == -1 || close(fd) == -1) {
		if (n >= 0)
			close(fd);
		unlink(tmp);
		return -1;
	}
	return rename(tmp, path);
}

static int
write_json(const char *path, const json_t *j)
{
	char	*s;
	int	 rv;

	if ((s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return -1;
	rv = write_file(path, s, 0644);
	free(s);
	return rv;
}

/* Read a file a build step wrote: relative to dirfd, never followed. */
static json_t *
read_json_at(int dirfd, const char *name, char *err, size_t errlen)
{
	json_error_t	 jerr;
	struct stat	 st;
	json_t		*j;
	char		*buf;
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1 || fstat(fd, &st) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_size > PLAN_MAX) {
		snprintf(err, errlen, "%s: %s", name, fd == -1 ?
		    strerror(errno) : "not a regular file of sane size");
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		fatal("malloc");
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		snprintf(err, errlen, "%s: short read", name);
		free(buf);
		return NULL;
	}
	if ((j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL)
		snprintf(err, errlen, "%s: %s", name, jerr.text);
	free(buf);
	return j;
}

static int
open_dir(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Remove <dir>/<name> and everything below it; ENOENT is fine. */
static void
remove_at(const char *dir, const char *name)
{
	int	 fd;

	if ((fd = open_dir(dir)) == -1)
		return;
	if (unpack_remove_tree(fd, name) == -1 && errno != ENOENT)
		log_warn("remove %s/%s", dir, name);
	close(fd);
}

static void
env_set(struct strmap *m, const char *k, const char *v)
{
	if (config_strmap_add(m, k, v) == -1)
		fatal("config_strmap_add");
}

/* ---- start-up ---------------------------------------------------------- */

/*
 * [process] repositories as the build script's BLOCKYARD_REPOS lines,
 * "Name=URL".  file:// ones are operator-chosen host directories: the
 * steps see them read-only at the same path (a bundle cannot name a
 * host directory of its own choosing: only these are bound).
 */
static char *
repos_env(void)
{
	const struct strlist	*l = &proc_conf->process.repositories;
	const char		*eq, *scheme;
	char			*s = NULL, *t, name[32];
	size_t			 i;

	if (l->n == 0)
		return strdup(DEFAULT_REPO);
	for (i = 0; i < l->n; i++) {
		eq = strchr(l->v[i], '=');
		scheme = strstr(l->v[i], "://");
		if (eq != NULL && (scheme == NULL || eq < scheme))
			name[0] = '\0';	/* named already */
		else
			snprintf(name, sizeof(name), i == 0 ? "CRAN=" :
			    "repo%zu=", i + 1);
		if (asprintf(&t, "%s%s%s%s", s ? s : "", s ? "\n" : "", name,
		    l->v[i]) == -1)
			fatal("asprintf");
		free(s);
		s = t;
	}
	return s;
}

static void
repos_paths(void)
{
	const struct strlist	*l = &proc_conf->process.repositories;
	const char		*p;
	struct stat		 st;
	size_t			 i;

	config_strlist_free(&ro_repos);
	for (i = 0; i < l->n; i++) {
		if ((p = strstr(l->v[i], "file://")) == NULL)
			continue;
		p += 7;
		if (*p != '/' || stat(p, &st) == -1 || !S_ISDIR(st.st_mode)) {
			log_warnx("[process] repositories: %s is not a "
			    "directory", l->v[i]);
			continue;
		}
		if (config_strlist_add(&ro_repos, p) == -1)
			fatal("config_strlist_add");
	}
}

/* R installations: [process] r_path and rig's /opt/R/<version>. */
#define R_INSTALLS_MAX	16
static struct r_install	 r_installs[R_INSTALLS_MAX];
static int		 r_ninstalls;

void
r_installs_init(void)
{
	int	 i;

	r_ninstalls = r_installs_scan(proc_conf->process.r_path, "/opt/R",
	    r_installs, R_INSTALLS_MAX);
	if (r_ninstalls <= 0)
		log_warnx("builds: no R found ([process] r_path %s)",
		    proc_conf->process.r_path);
	for (i = 0; i < r_ninstalls; i++)
		log_info("builds: R %s at %s", r_installs[i].version,
		    r_installs[i].path);
}

/*
 * Upload: the R a bundle asks for (r_version, "" for any), or -1 with
 * the reason for a 400 ("bundle requires R 4.4 which is not
 * installed; available: 4.2.2").
 */
int
bundle_r_pick(const char *want, char *path, size_t len, char *err,
    size_t errlen)
{
	const struct r_install	*r;

	if (r_ninstalls <= 0) {
		strlcpy(path, proc_conf->process.r_path, len);
		return 0;
	}
	if (r_install_pick(r_installs, r_ninstalls, want ? want : "", &r, err,
	    errlen) == -1)
		return -1;
	strlcpy(path, r->path, len);
	return 0;
}

json_t *
manifest_load(const char *path, char *err, size_t errlen)
{
	return read_json_at(AT_FDCWD, path, err, errlen);
}

/*
 * The R binary a bundle's manifest settled on at upload (our
 * "blockyard" object), if it is still one of ours; else r_path.
 */
int
bundle_r_path(const json_t *m, char *buf, size_t len, char *err,
    size_t errlen)
{
	const char	*p = json_string_value(json_object_get(json_object_get(m,
			    "blockyard"), "r_path"));
	int		 i;

	if (p == NULL || strcmp(p, proc_conf->process.r_path) == 0) {
		strlcpy(buf, proc_conf->process.r_path, len);
		return 0;
	}
	for (i = 0; i < r_ninstalls; i++)
		if (strcmp(r_installs[i].path, p) == 0) {
			strlcpy(buf, p, len);
			return 0;
		}
	snprintf(err, errlen, "R %s is no longer installed", p);
	return -1;
}

void
builds_init(void)
{
	repos_paths();
	r_installs_init();
	store_clean_staging();
	if (proc_conf->storage.store_retention > 0)
		store_sweep(proc_conf->storage.store_retention);
}

void
builds_reload(void)
{
	repos_paths();
	r_installs_init();
}

/* ---- the end of a build ----------------------------------------------- */

static void
build_free(struct build *b)
{
	size_t	 i;

	TAILQ_REMOVE(&builds, b, entry);
	if (b->timeout_ev != NULL)
		event_free(b->timeout_ev);
	for (i = 0; i < b->npkgs; i++)
		json_decref(b->pkgs[i].entry);
	free(b->pkgs);
	json_decref(b->plan);
	config_strmap_free(&b->env);
	free(b);
}

static double
build_seconds(const struct build *b)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - b->t0.tv_sec) +
	    (double)(now.tv_nsec - b->t0.tv_nsec) / 1e9;
}

static void
build_notify_proxy(const struct build *b)
{
	char	*s;

	if (asprintf(&s, "{\"app_id\":\"%s\",\"bundle_id\":\"%s\","
	    "\"kind\":\"%s\"}", b->app_id, b->bundle_id,
	    b->kind == BUILD_DEPLOY ? "deploy" : "refresh") == -1)
		fatal("asprintf");
	if (proc_send(PROC_PROXY, MSG_BUILD_DONE, 0, -1, s, strlen(s)) == -1)
		log_warnx("app %s: cannot tell byproxy about the build",
		    b->app_id);
	free(s);
}

/* bystate recorded a deploy's outcome; prune what it pruned. */
static void
deploy_recorded(json_t *res, void *arg)
{
	struct build	*b = arg;
	json_t		*data = json_object_get(res, "data"), *id;
	struct msg_bundle ids;
	size_t		 i;
	int		 ok = json_integer_value(json_object_get(res,
			    "status")) == 200;

	if (ok && json_is_true(json_object_get(data, "activated"))) {
		task_log(b->task, "Bundle activated.");
		build_notify_proxy(b);
	} else if (ok)
		task_log(b->task, "A newer bundle is active; this one is "
		    "ready but not activated.");
	else
		log_warnx("bundle %s: bystate did not record the build",
		    b->bundle_id);
	json_array_foreach(json_object_get(data, "pruned"), i, id) {
		memset(&ids, 0, sizeof(ids));
		strlcpy(ids.app_id, b->app_id, sizeof(ids.app_id));
		if (!json_is_string(id) || !msg_id_valid(json_string_value(id)))
			continue;
		strlcpy(ids.bundle_id, json_string_value(id),
		    sizeof(ids.bundle_id));
		bundle_remove(&ids);
	}
	task_done(b->task, ok);
	build_free(b);
}

static void
failed_recorded(json_t *res, void *arg)
{
	struct build	*b = arg;

	task_done(b->task, 0);
	build_free(b);
}

static void
build_fail(struct build *b, const char *fmt, ...)
{
	va_list	 ap;
	char	 why[1024];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (b->timeout_ev != NULL)
		evtimer_del(b->timeout_ev);
	log_info("bundle %s of app %s: build failed: %s", b->bundle_id,
	    b->app_id, why);
	task_log(b->task, "ERROR: %s", why);
	/* before build_names there is nothing on disk */
	if (b->libname[0] != '\0') {
		remove_at(b->appdir, strrchr(b->workdir, '/') + 1);
		remove_at(b->appdir, b->libname);
	}
	if (b->kind == BUILD_REFRESH) {
		task_log(b->task, "Refresh failed; the app keeps its library.");
		task_done(b->task, 0);
		build_free(b);
		return;
	}
	task_log(b->task, "Build failed; the app keeps its previous bundle.");
	if (builds_stopping || spawn_state_call("bundles.status",
	    json_pack("{s:s s:s}", "bundle_id", b->bundle_id, "status",
	    "failed"), failed_recorded, b) == -1) {
		task_done(b->task, 0);
		build_free(b);
	}
}

/* The name <bundle>.lib points at, or "" when none. */
static void
lib_target(const struct build *b, const char *link, char *buf, size_t len)
{
	char	 path[PATH_MAX];
	ssize_t	 n;

	snprintf(path, sizeof(path), "%s/%s%s", b->appdir, b->bundle_id, link);
	if ((n = readlink(path, buf, len - 1)) < 0)
		n = 0;
	buf[n] = '\0';
}

/* Point <bundle><link> at target, atomically. */
static int
lib_point(const struct build *b, const char *link, const char *target)
{
	char	 path[PATH_MAX], tmp[PATH_MAX + 8];

	snprintf(path, sizeof(path), "%s/%s%s", b->appdir, b->bundle_id, link);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	unlink(tmp);
	if (symlink(target, tmp) == -1 || rename(tmp, path) == -1) {
		log_warn("%s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Libraries of the bundle that neither link names. */
static void
lib_prune(const struct build *b)
{
	char		 cur[256], prev[256], pfx[128];
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	lib_target(b, ".lib", cur, sizeof(cur));
	lib_target(b, ".lib.prev", prev, sizeof(prev));
	snprintf(pfx, sizeof(pfx), "%s.lib.", b->bundle_id);
	if ((fd = open_dir(b->appdir)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, pfx, strlen(pfx)) == 0 &&
		    strcmp(de->d_name + strlen(pfx), "prev") != 0 &&
		    strcmp(de->d_name, cur) != 0 &&
		    strcmp(de->d_name, prev) != 0)
			unpack_remove_tree(dirfd(d), de->d_name);
	closedir(d);
}

/* {package: store key} of a library, as a build left it. */
static json_t *
lib_packages(const struct build *b, const char *libname)
{
	char	 path[PATH_MAX], err[256];
	json_t	*j;
	int	 fd;

	snprintf(path, sizeof(path), "%s/%s", b->appdir, libname);
	if ((fd = open_dir(path)) == -1)
		return NULL;
	j = read_json_at(fd, ".blockyard-packages.json", err, sizeof(err));
	close(fd);
	return j;
}

static void
build_succeed(struct build *b)
{
	json_t	*pk = json_object(), *old;
	char	 path[PATH_MAX], cur[256];
	size_t	 i;

	evtimer_del(b->timeout_ev);
	for (i = 0; i < b->npkgs; i++)
		json_object_set_new(pk, b->pkgs[i].sp.name,
		    json_string(b->pkgs[i].sp.key));
	snprintf(path, sizeof(path), "%s/.blockyard-packages.json", b->libdir);
	if (write_json(path, pk) == -1) {
		json_decref(pk);
		build_fail(b, "cannot record the library: %s",
		    strerror(errno));
		return;
	}
	remove_at(b->appdir, strrchr(b->workdir, '/') + 1);
	task_log(b->task, "dependencies: %zu from the package store, %zu "
	    "installed, %zu from the host library (%.1f s)", b->nhit,
	    b->ninstalled, b->nhost, build_seconds(b));
	store_sweep(proc_conf->storage.store_retention);

	if (b->kind == BUILD_REFRESH) {
		lib_target(b, ".lib", cur, sizeof(cur));
		old = lib_packages(b, cur);
		if (old != NULL && json_equal(old, pk)) {
			json_decref(old);
			json_decref(pk);
			remove_at(b->appdir, b->libname);
			task_log(b->task, "Dependencies unchanged — no action "
			    "needed.");
			task_done(b->task, 1);
			build_free(b);
			return;
		}
		json_decref(old);
		json_decref(pk);
		if ((cur[0] != '\0' && lib_point(b, ".lib.prev", cur) == -1) ||
		    lib_point(b, ".lib", b->libname) == -1) {
			build_fail(b, "cannot switch the library");
			return;
		}
		lib_prune(b);
		task_log(b->task, "Dependencies updated — new sessions get "
		    "new workers; old workers drain.");
		build_notify_proxy(b);
		task_done(b->task, 1);
		build_free(b);
		return;
	}
	json_decref(pk);
	if (lib_point(b, ".lib", b->libname) == -1) {
		build_fail(b, "cannot publish the library");
		return;
	}
	task_log(b->task, "Build succeeded. Activating bundle...");
	if (builds_stopping || spawn_state_call("bundles.status",
	    json_pack("{s:s s:s}", "bundle_id", b->bundle_id, "status",
	    "ready"), deploy_recorded, b) == -1) {
		task_done(b->task, 0);
		build_free(b);
	}
}

/* ---- steps ------------------------------------------------------------ */

static void
step_log(struct worker *w, const struct worker_logline *ln, void *arg)
{
	struct build	*b = arg;

	task_log(b->task, "%s", ln->text);
}

static int
exit_ok(const struct worker *w, char *why, size_t len)
{
	if (w->exit.oom)
		snprintf(why, len, "out of memory (memory limit %llu bytes)",
		    (unsigned long long)w->memory_limit);
	else if (w->exit.signal > 0)
		snprintf(why, len, "killed by signal %d", w->exit.signal);
	else if (w->exit.code != 0)
		snprintf(why, len, "exit status %d", w->exit.code);
	else
		return 1;
	return 0;
}

/* DESCRIPTION of an installed package says Package and Version. */
static int
installed_ok(int dfd, const struct store_pkg *p, char *err, size_t errlen)
{
	char		 buf[65536], want[128], *line;
	struct stat	 st;
	ssize_t		 n;
	int		 pfd, fd, name_ok = 0, ver_ok = 0;

	if ((pfd = openat(dfd, p->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s was not installed", p->name);
		return -1;
	}
	fd = openat(pfd, "DESCRIPTION", O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	close(pfd);
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (n = read(fd, buf, sizeof(buf) - 1)) < 0) {
		if (fd != -1)
			close(fd);
		snprintf(err, errlen, "%s has no DESCRIPTION", p->name);
		return -1;
	}
	close(fd);
	buf[n] = '\0';
	for (line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		snprintf(want, sizeof(want), "Package: %s", p->name);
		if (strcmp(line, want) == 0)
			name_ok = 1;
		snprintf(want, sizeof(want), "Version: %s", p->version);
		if (strcmp(line, want) == 0)
			ver_ok = 1;
	}
	if (!name_ok || !ver_ok) {
		snprintf(err, errlen, "%s %s: the installed DESCRIPTION "
		    "differs", p->name, p->version);
		return -1;
	}
	return 0;
}

static void
step_exited(struct worker *w, void *arg)
{
	struct build	*b = arg;
	char		 why[256], dir[PATH_MAX], err[512];
	int		 ok, sfd, lfd;
	struct build_pkg *p;

	b->w = NULL;
	worker_forget(w);
	if (builds_stopping) {
		task_log(b->task, "ERROR: the server is shutting down");
		task_done(b->task, 0);
		build_free(b);
		return;
	}
	ok = exit_ok(w, why, sizeof(why));
	if (b->timed_out) {
		build_fail(b, "the build took longer than build_timeout");
		return;
	}
	if (b->plan == NULL) {
		if (!ok) {
			build_fail(b, "resolving dependencies failed (%s)", why);
			return;
		}
		step_next(b);
		return;
	}
	p = &b->pkgs[b->next];
	snprintf(dir, sizeof(dir), "%s/stage.%zu", b->workdir, b->next);
	if (!ok) {
		build_fail(b, "installing %s %s failed (%s)", p->sp.name,
		    p->sp.version, why);
		return;
	}
	if ((sfd = open_dir(dir)) == -1 || (lfd = open_dir(b->libdir)) == -1) {
		if (sfd != -1)
			close(sfd);
		build_fail(b, "internal error: %s", strerror(errno));
		return;
	}
	if (installed_ok(sfd, &p->sp, err, sizeof(err)) == -1 ||
	    store_ingest(&p->sp, sfd, lfd, err, sizeof(err)) == -1) {
		close(sfd);
		close(lfd);
		build_fail(b, "%s", err);
		return;
	}
	close(sfd);
	close(lfd);
	task_log(b->task, "store: %s %s added to the package store",
	    p->sp.name, p->sp.version);
	b->ninstalled++;
	b->next++;
	step_next(b);
}

static int
step_start(struct build *b, const char *what, const char *out,
    const char *plan, int with_lib)
{
	struct worker_spec	 spec;
	char			 id[WORKER_ID_MAX + 1], in[PATH_MAX];
	char			 err[512], *repos;

	snprintf(id, sizeof(id), "build-%.8s-%s", b->bundle_id, what);
	snprintf(in, sizeof(in), "%s/in", b->workdir);
	if (mkdir(out, 0700) == -1) {
		build_fail(b, "internal error: %s: %s", out, strerror(errno));
		return -1;
	}
	/* the plan this step installs from, or none (resolve) */
	config_strmap_free(&b->env);
	env_set(&b->env, "BLOCKYARD_MANIFEST", BUILD_DIR_PATH
	    "/manifest.json");
	env_set(&b->env, "BLOCKYARD_LIB", BUILD_OUT_PATH);
	env_set(&b->env, "BLOCKYARD_APP",
	    proc_conf->storage.bundle_worker_path);
	if ((repos = repos_env()) == NULL)
		fatal("repos_env");
	env_set(&b->env, "BLOCKYARD_REPOS", repos);
	free(repos);
	env_set(&b->env, "BLOCKYARD_REFRESH", b->kind == BUILD_REFRESH ?
	    "1" : "0");
	/* compiling the script's closures costs more than running them */
	env_set(&b->env, "R_ENABLE_JIT", "0");
	if (plan != NULL)
		env_set(&b->env, "BLOCKYARD_PLAN", plan);
	memset(&spec, 0, sizeof(spec));
	spec.id = id;
	spec.app_id = b->app_id;
	spec.bundle_id = b->bundle_id;
	spec.bundle_dir = b->bundledir;
	spec.library_dir = with_lib ? b->libdir : NULL;
	spec.memory_limit = b->mem;
	spec.cpu_limit = b->cpu;
	spec.env = &b->env;
	spec.r_path = b->r_path;
	spec.build = 1;
	spec.build_dir = in;
	spec.out_dir = out;
	spec.build_args = plan != NULL ? "install" : "resolve";
	spec.ro_paths = &ro_repos;
	spec.on_exit = step_exited;
	spec.on_log = step_log;
	spec.cb_arg = b;
	if (worker_spawn(&spec, &b->w, err, sizeof(err)) == -1) {
		build_fail(b, "cannot start the build sandbox: %s", err);
		return -1;
	}
	return 0;
}

/* Store keys and checks of the resolve step's plan. */
static int
plan_load(struct build *b, char *err, size_t errlen)
{
	char		 out[PATH_MAX];
	json_t		*pk, *e, *lt, *v;
	const char	*rv, *pf, *f[8];
	char		 ltkeys[8192];
	size_t		 i, j, k;
	int		 fd;

	snprintf(out, sizeof(out), "%s/out/.blockyard", b->workdir);
	if ((fd = open_dir(out)) == -1) {
		snprintf(err, errlen, "the resolve step wrote no plan");
		return -1;
	}
	b->plan = read_json_at(fd, "plan.json", err, errlen);
	close(fd);
	if (b->plan == NULL)
		return -1;
	rv = json_string_value(json_object_get(b->plan, "r_version"));
	pf = json_string_value(json_object_get(b->plan, "platform"));
	pk = json_object_get(b->plan, "packages");
	if (rv == NULL || pf == NULL || !store_word_ok(rv) ||
	    !store_word_ok(pf) || !json_is_array(pk)) {
		snprintf(err, errlen, "the plan is malformed");
		return -1;
	}
	b->nhost = json_array_size(json_object_get(b->plan, "host"));
	b->npkgs = json_array_size(pk);
	if ((b->pkgs = calloc(b->npkgs + 1, sizeof(*b->pkgs))) == NULL)
		fatal("calloc");
	json_array_foreach(pk, i, e) {
		struct store_pkg *sp = &b->pkgs[i].sp;
		const char *name = json_string_value(json_object_get(e,
		    "package"));
		const char *ver = json_string_value(json_object_get(e,
		    "version"));

		if (name == NULL || ver == NULL || !store_name_ok(name) ||
		    !store_word_ok(ver)) {
			snprintf(err, errlen, "the plan names a bad package");
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(b->pkgs[j].sp.name, name) == 0) {
				snprintf(err, errlen, "the plan names %s twice",
				    name);
				return -1;
			}
		b->pkgs[i].entry = json_incref(e);
		strlcpy(sp->name, name, sizeof(sp->name));
		strlcpy(sp->version, ver, sizeof(sp->version));
		snprintf(sp->rplat, sizeof(sp->rplat), "%s-%s", rv, pf);
		/* what it links to is part of what it is */
		ltkeys[0] = '\0';
		lt = json_object_get(e, "linking_to");
		json_array_foreach(lt, j, v) {
			for (k = 0; k < i; k++)
				if (json_is_string(v) && strcmp(json_string_value(v),
				    b->pkgs[k].sp.name) == 0) {
					strlcat(ltkeys, b->pkgs[k].sp.key,
					    sizeof(ltkeys));
					strlcat(ltkeys, ",", sizeof(ltkeys));
				}
		}
		f[0] = name;
		f[1] = ver;
		f[2] = json_string_value(json_object_get(e, "source"));
		f[3] = json_string_value(json_object_get(e, "checksum"));
		/* without a checksum the tarball's address identifies it */
		if (f[3] == NULL || *f[3] == '\0')
			f[3] = json_string_value(json_object_get(e, "url"));
		f[4] = json_string_value(json_object_get(e, "remote_sha"));
		f[5] = json_string_value(json_object_get(e, "remote_subdir"));
		f[6] = ltkeys;
		f[7] = sp->rplat;
		store_key(f, 8, sp->key);
	}
	return 0;
}

/* One package's plan, for its install step. */
static int
plan_write_one(struct build *b, size_t i, char *path, size_t len)
{
	json_t	*one;
	int	 rv;

	snprintf(path, len, "%s/in/plan.%zu.json", b->workdir, i);
	one = json_pack("{s:O s:O s:[O] s:[]}", "r_version",
	    json_object_get(b->plan, "r_version"), "platform",
	    json_object_get(b->plan, "platform"), "packages",
	    b->pkgs[i].entry, "host");
	rv = write_json(path, one);
	json_decref(one);
	return rv;
}

/* After the resolve step: link what the store has, then install. */
static int
plan_link(struct build *b)
{
	char	 err[512];
	size_t	 i;
	int	 lfd;

	if ((lfd = open_dir(b->libdir)) == -1) {
		build_fail(b, "internal error: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < b->npkgs; i++) {
		if (!store_has(&b->pkgs[i].sp))
			continue;
		if (store_link(&b->pkgs[i].sp, lfd, err, sizeof(err)) == -1) {
			close(lfd);
			build_fail(b, "%s", err);
			return -1;
		}
		b->pkgs[i].hit = 1;
		b->nhit++;
		task_log(b->task, "store: %s %s linked from the package store",
		    b->pkgs[i].sp.name, b->pkgs[i].sp.version);
	}
	close(lfd);
	return 0;
}

static void
step_next(struct build *b)
{
	char	 err[512], out[PATH_MAX], plan[PATH_MAX], what[32];

	if (b->plan == NULL) {
		if (plan_load(b, err, sizeof(err)) == -1) {
			build_fail(b, "%s", err);
			return;
		}
		if (plan_link(b) == -1)
			return;
	}
	while (b->next < b->npkgs && b->pkgs[b->next].hit)
		b->next++;
	if (b->next == b->npkgs) {
		build_succeed(b);
		return;
	}
	if (plan_write_one(b, b->next, plan, sizeof(plan)) == -1) {
		build_fail(b, "internal error: plan: %s", strerror(errno));
		return;
	}
	snprintf(out, sizeof(out), "%s/stage.%zu", b->workdir, b->next);
	snprintf(what, sizeof(what), "i%zu", b->next);
	snprintf(plan, sizeof(plan), BUILD_DIR_PATH "/plan.%zu.json", b->next);
	step_start(b, what, out, plan, 1);
}

static void
on_build_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct build	*b = arg;

	b->timed_out = 1;
	if (b->w != NULL)
		worker_stop(b->w, STOP_GRACE_MS);
}

/* ---- starting ------------------------------------------------------- */

/* The next free <bundle>.lib.<n> and <bundle>.build.<n>. */
static void
build_names(struct build *b)
{
	char		 path[PATH_MAX];
	struct stat	 st;
	int		 n;

	for (n = 1; ; n++) {
		snprintf(b->libname, sizeof(b->libname), "%s.lib.%d",
		    b->bundle_id, n);
		snprintf(path, sizeof(path), "%s/%s", b->appdir, b->libname);
		snprintf(b->workdir, sizeof(b->workdir), "%s/%s.build.%d",
		    b->appdir, b->bundle_id, n);
		if (lstat(path, &st) == -1 && lstat(b->workdir, &st) == -1)
			break;
	}
	strlcpy(b->libdir, path, sizeof(b->libdir));
}

static struct build *
build_new(enum build_kind kind, const char *app, const char *bundle,
    struct task *t, uint64_t mem, double cpu)
{
	struct build	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatal("calloc");
	b->kind = kind;
	strlcpy(b->app_id, app, sizeof(b->app_id));
	strlcpy(b->bundle_id, bundle, sizeof(b->bundle_id));
	b->task = t;
	b->mem = mem;
	b->cpu = cpu;
	clock_gettime(CLOCK_MONOTONIC, &b->t0);
	snprintf(b->appdir, sizeof(b->appdir), "%s/%s",
	    proc_conf->storage.bundle_server_path, app);
	snprintf(b->bundledir, sizeof(b->bundledir), "%s/%s", b->appdir,
	    bundle);
	if ((b->timeout_ev = evtimer_new(proc_base, on_build_timeout,
	    b)) == NULL)
		fatalx("evtimer_new");
	TAILQ_INSERT_TAIL(&builds, b, entry);
	return b;
}

/* Work directories, the script and the manifest; then resolve. */
static void
build_begin(struct build *b)
{
	char		 in[BUILD_PATH_MAX + 128], path[PATH_MAX];
	char		 out[PATH_MAX], err[512];
	json_t		*m;
	int64_t		 ms = proc_conf->process.build_timeout;
	struct timeval	 tv;

	snprintf(path, sizeof(path), "%s/%s.manifest.json", b->appdir,
	    b->bundle_id);
	if ((m = manifest_load(path, err, sizeof(err))) == NULL) {
		build_fail(b, "no manifest: %s", err);
		return;
	}
	if (bundle_r_path(m, b->r_path, sizeof(b->r_path), err,
	    sizeof(err)) == -1) {
		json_decref(m);
		build_fail(b, "%s", err);
		return;
	}
	build_names(b);
	snprintf(in, sizeof(in), "%s/in", b->workdir);
	/* exact modes whatever the umask: the steps read in/, workers lib */
	if (mkdir(b->workdir, 0755) == -1 || chmod(b->workdir, 0755) == -1 ||
	    mkdir(in, 0755) == -1 || chmod(in, 0755) == -1 ||
	    mkdir(b->libdir, 0755) == -1 || chmod(b->libdir, 0755) == -1) {
		json_decref(m);
		build_fail(b, "internal error: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/manifest.json", in);
	if (write_json(path, m) == -1) {
		json_decref(m);
		build_fail(b, "internal error: manifest: %s", strerror(errno));
		return;
	}
	json_decref(m);
	snprintf(path, sizeof(path), "%s/build.R", in);
	if (write_file(path, build_script, 0644) == -1) {
		build_fail(b, "internal error: build.R: %s", strerror(errno));
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(b->timeout_ev, &tv);
	task_log(b->task, "%s dependencies with %s...", b->kind ==
	    BUILD_DEPLOY ? "Restoring" : "Refreshing", b->r_path);
	snprintf(out, sizeof(out), "%s/out", b->workdir);
	step_start(b, "resolve", out, NULL, 0);
}

static int
app_building(const char *app)
{
	struct build	*b;

	TAILQ_FOREACH(b, &builds, entry)
		if (strcmp(b->app_id, app) == 0)
			return 1;
	return 0;
}

/*
 * builds.start {app_id, bundle_id, task_id, memory_limit, cpu_limit}:
 * byproxy, after bystate recorded the upload.  The unpack's task
 * carries on with the build.
 */
json_t *
build_op_start(json_t *args)
{
	const char	*app, *bundle, *tid;
	struct task	*t;
	struct build	*b;

	app = json_string_value(json_object_get(args, "app_id"));
	bundle = json_string_value(json_object_get(args, "bundle_id"));
	tid = json_string_value(json_object_get(args, "task_id"));
	if (app == NULL || bundle == NULL || !msg_id_valid(app) ||
	    !msg_id_valid(bundle))
		return spawn_fail(400, "bad_request", "bad app or bundle id");
	if (tid == NULL || (t = task_find(tid)) == NULL)
		t = task_new(app);
	b = build_new(BUILD_DEPLOY, app, bundle, t,
	    (uint64_t)json_integer_value(json_object_get(args,
	    "memory_limit")), json_number_value(json_object_get(args,
	    "cpu_limit")));
	if (spawn_state_call("bundles.status", json_pack("{s:s s:s}",
	    "bundle_id", bundle, "status", "building"), NULL, NULL) == -1)
		log_warnx("bundle %s: cannot mark it building", bundle);
	build_begin(b);
	return spawn_ok(202, json_pack("{s:s}", "task_id", task_id(t)));
}

/*
 * builds.refresh {app_id, bundle_id, memory_limit, cpu_limit}: resolve
 * an unpinned bundle's dependencies again, newest versions first.
 */
json_t *
build_op_refresh(json_t *args)
{
	const char	*app, *bundle;
	char		 path[PATH_MAX], err[512];
	struct build	*b;
	json_t		*m;

	app = json_string_value(json_object_get(args, "app_id"));
	bundle = json_string_value(json_object_get(args, "bundle_id"));
	if (app == NULL || bundle == NULL || !msg_id_valid(app) ||
	    !msg_id_valid(bundle))
		return spawn_fail(400, "bad_request", "bad app or bundle id");
	snprintf(path, sizeof(path), "%s/%s/%s.manifest.json",
	    proc_conf->storage.bundle_server_path, app, bundle);
	/* bystate refused pinned bundles; older bundles have no manifest */
	if ((m = manifest_load(path, err, sizeof(err))) == NULL)
		return spawn_fail(409, "conflict", "the active bundle has no "
		    "manifest; redeploy it");
	json_decref(m);
	if (app_building(app))
		return spawn_fail(409, "conflict", "a build of this app is "
		    "already running");
	b = build_new(BUILD_REFRESH, app, bundle, task_new(app),
	    (uint64_t)json_integer_value(json_object_get(args,
	    "memory_limit")), json_number_value(json_object_get(args,
	    "cpu_limit")));
	task_log(b->task, "Refreshing dependencies...");
	build_begin(b);
	return spawn_ok(202, json_pack("{s:s s:s}", "task_id",
	    task_id(b->task), "message", "refresh started"));
}

/* builds.rollback {app_id, bundle_id}: back to the previous library. */
json_t *
build_op_rollback(json_t *args)
{
	const char	*app, *bundle;
	char		 cur[256], prev[256];
	struct build	*b;
	struct task	*t;
	json_t		*r;

	app = json_string_value(json_object_get(args, "app_id"));
	bundle = json_string_value(json_object_get(args, "bundle_id"));
	if (app == NULL || bundle == NULL || !msg_id_valid(app) ||
	    !msg_id_valid(bundle))
		return spawn_fail(400, "bad_request", "bad app or bundle id");
	if (app_building(app))
		return spawn_fail(409, "conflict", "a build of this app is "
		    "already running");
	/* a record only for the helpers; it never runs a step */
	b = build_new(BUILD_REFRESH, app, bundle, NULL, 0, 0);
	lib_target(b, ".lib", cur, sizeof(cur));
	lib_target(b, ".lib.prev", prev, sizeof(prev));
	if (prev[0] == '\0') {
		build_free(b);
		return spawn_fail(409, "conflict", "no previous refresh to "
		    "roll back to");
	}
	if (lib_point(b, ".lib", prev) == -1 ||
	    lib_point(b, ".lib.prev", cur) == -1) {
		build_free(b);
		return spawn_fail(500, "internal_error",
		    "internal server error");
	}
	t = task_new(app);
	task_log(t, "Rolling back dependencies to the previous library...");
	task_log(t, "Rolled back; new sessions get new workers, old workers "
	    "drain.");
	task_done(t, 1);
	build_notify_proxy(b);
	r = spawn_ok(202, json_pack("{s:s s:s}", "task_id", task_id(t),
	    "message", "rollback started"));
	build_free(b);
	return r;
}

/* The library a new worker of the bundle gets, or NULL. */
const char *
bundle_library(const char *app, const char *bundle, char *buf, size_t len)
{
	char		 link[PATH_MAX], real[PATH_MAX], dir[BUILD_PATH_MAX];
	struct stat	 st;

	if (snprintf(dir, sizeof(dir), "%s/%s",
	    proc_conf->storage.bundle_server_path, app) >= (int)sizeof(dir))
		return NULL;
	snprintf(link, sizeof(link), "%s/%s.lib", dir, bundle);
	/* pinned at start: a refresh moves the link, not this worker */
	if (realpath(link, real) == NULL || stat(real, &st) == -1 ||
	    !S_ISDIR(st.st_mode) || strncmp(real, dir, strlen(dir)) != 0)
		return NULL;
	strlcpy(buf, real, len);
	return buf;
}

/* Shutdown: steps end with the workers; nothing is recorded. */
void
builds_shutdown(void)
{
	builds_stopping = 1;
}

void
builds_free(void)
{
	struct build	*b;

	while ((b = TAILQ_FIRST(&builds)) != NULL)
		build_free(b);
	config_strlist_free(&ro_repos);
	spawn_state_free();
}
