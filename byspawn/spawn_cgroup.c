/*
 * Per-worker cgroups.  Each limit goes through a cgroup v2 controller
 * when the host delegates it to us, else through the v1 hierarchy of
 * that controller (hybrid hosts bind memory, pids and cpu to v1), else
 * nowhere, and the start-up log says which.  A v2 group per worker is
 * made whenever cgroup2 is mounted, for cgroup.kill and a CPU usage
 * counter, even when it carries no controllers.
 *
 * Our directories are <hierarchy root>/<name>/<worker id>, so a restart
 * finds what a crashed run left behind.
 */

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "byspawn.h"
#include "log.h"

#define CPU_PERIOD_US	100000

enum cg_kind {
	CGK_NONE,
	CGK_V1,
	CGK_V2,
};

static const char *const cg_ctrl[CG_NRES] = {
	[CG_GROUP] = NULL,
	[CG_MEMORY] = "memory",
	[CG_PIDS] = "pids",
	[CG_CPU] = "cpu",
	[CG_CPUACCT] = "cpuacct",
};

static struct {
	char		 name[NAME_MAX + 1];
	char		*v2root;
	char		*v1root[CG_NRES];
	enum cg_kind	 kind[CG_NRES];
	char		*base[CG_NRES];	/* <root>/<name>, NULL: not used */
	int		 have_kill;
} cg;

static void	 cg_reset(void);
static int	 write_file(const char *dir, const char *file, const char *s);
static int	 read_file(const char *dir, const char *file, char *buf,
		    size_t len);

int
cgroup_enabled(void)
{
	return cg.base[CG_GROUP] != NULL || cg.base[CG_MEMORY] != NULL ||
	    cg.base[CG_PIDS] != NULL || cg.base[CG_CPU] != NULL;
}

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

static char *
path_join(const char *a, const char *b)
{
	char	*p;

	if (asprintf(&p, "%s/%s", a, b) == -1)
		fatal("asprintf");
	return p;
}

/* Write s to dir/file; -1 with errno set. */
static int
write_file(const char *dir, const char *file, const char *s)
{
	char	 path[PATH_MAX];
	size_t	 len = strlen(s);
	ssize_t	 n;
	int	 fd, saved;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	n = write(fd, s, len);
	saved = errno;
	close(fd);
	if (n != (ssize_t)len) {
		errno = n == -1 ? saved : EIO;
		return -1;
	}
	return 0;
}

static int
read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char	 path[PATH_MAX];
	ssize_t	 n;
	int	 fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n == -1)
		return -1;
	buf[n] = '\0';
	return 0;
}

/*
 * A counter from a cgroup file: the whole file when key is NULL, else
 * the value on the line "key value" (memory.events, cpu.stat, ...).
 */
int
cgroup_read_key(const char *dir, const char *file, const char *key,
    uint64_t *val)
{
	char		 buf[4096], *line, *next, *end;
	size_t		 klen;

	if (dir == NULL || read_file(dir, file, buf, sizeof(buf)) == -1)
		return -1;
	if (key == NULL) {
		if (strncmp(buf, "max", 3) == 0) {
			*val = UINT64_MAX;
			return 0;
		}
		errno = 0;
		*val = strtoull(buf, &end, 10);
		return (end == buf || errno) ? -1 : 0;
	}
	klen = strlen(key);
	for (line = buf; line != NULL && *line; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			errno = 0;
			*val = strtoull(line + klen + 1, &end, 10);
			return (end == line + klen + 1 || errno) ? -1 : 0;
		}
	}
	return -1;
}

/* ---- detection ------------------------------------------------------- */

static void
find_mounts(void)
{
	FILE		*f;
	struct mntent	*m;
	int		 i;

	if ((f = setmntent("/proc/self/mounts", "r")) == NULL) {
		log_warn("cgroups: /proc/self/mounts");
		return;
	}
	while ((m = getmntent(f)) != NULL) {
		if (strcmp(m->mnt_type, "cgroup2") == 0 && cg.v2root == NULL)
			cg.v2root = xstrdup(m->mnt_dir);
		if (strcmp(m->mnt_type, "cgroup") != 0)
			continue;
		for (i = CG_MEMORY; i < CG_NRES; i++)
			if (cg.v1root[i] == NULL &&
			    hasmntopt(m, cg_ctrl[i]) != NULL)
				cg.v1root[i] = xstrdup(m->mnt_dir);
	}
	endmntent(f);
}

/* Make root/name; its path, or NULL when we may not. */
static char *
make_base(const char *root, const char *what)
{
	char	*dir = path_join(root, cg.name);

	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		log_warn("cgroups: %s: cannot create %s", what, dir);
		free(dir);
		return NULL;
	}
	return dir;
}

/* Does the space-separated list hold word? */
static int
has_word(const char *list, const char *word)
{
	size_t	 n = strlen(word);
	const char *p;

	for (p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return 1;
	return 0;
}

/*
 * Enable a v2 controller for our workers: it must be offered at the
 * root and switched on in the root's and in our base's subtree_control.
 */
static int
v2_delegate(const char *ctrl)
{
	char	 buf[1024], on[64];

	if (read_file(cg.v2root, "cgroup.controllers", buf, sizeof(buf)) ==
	    -1 || !has_word(buf, ctrl))
		return -1;
	snprintf(on, sizeof(on), "+%s", ctrl);
	if (read_file(cg.v2root, "cgroup.subtree_control", buf,
	    sizeof(buf)) == -1)
		return -1;
	if (!has_word(buf, ctrl) &&
	    write_file(cg.v2root, "cgroup.subtree_control", on) == -1)
		return -1;
	return write_file(cg.base[CG_GROUP], "cgroup.subtree_control", on);
}

static void
choose(enum cg_res r)
{
	if (r != CG_CPUACCT && cg.base[CG_GROUP] != NULL &&
	    v2_delegate(cg_ctrl[r]) == 0) {
		cg.kind[r] = CGK_V2;
		cg.base[r] = xstrdup(cg.base[CG_GROUP]);
		return;
	}
	if (cg.v1root[r] != NULL &&
	    (cg.base[r] = make_base(cg.v1root[r], cg_ctrl[r])) != NULL)
		cg.kind[r] = CGK_V1;
}

static void
log_choice(enum cg_res r, const char *limit)
{
	switch (cg.kind[r]) {
	case CGK_V2:
		log_info("limits: %s through cgroup v2 (%s)", limit,
		    cg.base[r]);
		break;
	case CGK_V1:
		log_info("limits: %s through cgroup v1 %s (%s)", limit,
		    cg_ctrl[r], cg.base[r]);
		break;
	default:
		log_warnx("limits: %s NOT enforced: no usable %s controller "
		    "in cgroup v2 or v1", limit, cg_ctrl[r]);
		break;
	}
}

int
cgroup_init(const char *name)
{
	char	*kill;

	cg_reset();
	strlcpy(cg.name, name, sizeof(cg.name));
	if (geteuid() != 0) {
		log_warnx("limits: not root: no per-worker cgroups, so memory, "
		    "cpu and pids limits are NOT enforced (development "
		    "mode)");
		return 0;
	}
	find_mounts();
	if (cg.v2root != NULL)
		cg.base[CG_GROUP] = make_base(cg.v2root, "cgroup2");
	choose(CG_MEMORY);
	choose(CG_PIDS);
	choose(CG_CPU);
	/* the v2 group's cpu.stat counts usage without any controller */
	if (cg.base[CG_GROUP] == NULL && cg.kind[CG_CPU] != CGK_V2)
		choose(CG_CPUACCT);
	if (cg.base[CG_GROUP] != NULL) {
		kill = path_join(cg.base[CG_GROUP], "cgroup.kill");
		cg.have_kill = access(kill, F_OK) == 0;
		free(kill);
	}
	log_choice(CG_MEMORY, "memory");
	log_choice(CG_CPU, "cpu");
	log_choice(CG_PIDS, "pids");
	if (cg.have_kill)
		log_info("cgroups: workers are killed as a whole through "
		    "cgroup.kill (%s)", cg.base[CG_GROUP]);
	else if (cgroup_enabled())
		log_info("cgroups: no cgroup.kill; workers are killed by "
		    "signalling every process of their cgroup");
	else
		log_warnx("cgroups: none usable; a worker's processes are "
		    "only tied together by bwrap");
	return 0;
}

static const char *
kind_name(enum cg_kind k)
{
	return k == CGK_V2 ? "cgroup v2" : k == CGK_V1 ? "cgroup v1" : "none";
}

json_t *
cgroup_status(void)
{
	return json_pack("{s:s,s:s,s:s,s:b}",
	    "memory", kind_name(cg.kind[CG_MEMORY]),
	    "cpu", kind_name(cg.kind[CG_CPU]),
	    "pids", kind_name(cg.kind[CG_PIDS]),
	    "cgroup_kill", cg.have_kill);
}

static void
cg_reset(void)
{
	int	 i;

	free(cg.v2root);
	for (i = 0; i < CG_NRES; i++) {
		free(cg.v1root[i]);
		free(cg.base[i]);
	}
	memset(&cg, 0, sizeof(cg));
}

/* ---- killing whole groups -------------------------------------------- */

/* Signal every process listed in dir/cgroup.procs; how many there were. */
static int
signal_procs(const char *dir, int sig, pid_t except)
{
	char	 path[PATH_MAX];
	FILE	*f;
	long	 pid;
	int	 n = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fscanf(f, "%ld", &pid) == 1) {
		if (pid > 0 && pid != except) {
			kill((pid_t)pid, sig);
			n++;
		}
	}
	fclose(f);
	return n;
}

/* Kill everything in dir and remove it, waiting up to about 2 s. */
static int
kill_dir(const char *dir)
{
	int	 i;

	for (i = 0; i < 100; i++) {
		if (write_file(dir, "cgroup.kill", "1") == -1)
			signal_procs(dir, SIGKILL, 0);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	log_warn("cgroups: cannot remove %s", dir);
	return -1;
}

/*
 * A worker cgroup still in one of our bases belongs to a previous run
 * (byspawn has started none yet): kill its processes and remove it.
 */
void
cgroup_cleanup_orphans(void)
{
	DIR		*d;
	struct dirent	*de;
	char		*dir;
	int		 i, j, dup, n = 0;

	for (i = 0; i < CG_NRES; i++) {
		if (cg.base[i] == NULL)
			continue;
		for (dup = 0, j = 0; j < i; j++)
			if (cg.base[j] != NULL &&
			    strcmp(cg.base[j], cg.base[i]) == 0)
				dup = 1;
		if (dup || (d = opendir(cg.base[i])) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			dir = path_join(cg.base[i], de->d_name);
			if (kill_dir(dir) == 0)
				n++;
			free(dir);
		}
		closedir(d);
	}
	if (n > 0)
		log_warnx("cgroups: killed and removed %d worker cgroup "
		    "director%s left by a previous run", n,
		    n == 1 ? "y" : "ies");
}

/* Remove our base directories: at an orderly exit, and in tests. */
void
cgroup_remove_base(void)
{
	int	 i;

	cgroup_cleanup_orphans();
	for (i = 0; i < CG_NRES; i++)
		if (cg.base[i] != NULL && rmdir(cg.base[i]) == -1 &&
		    errno != ENOENT)
			log_warn("cgroups: rmdir %s", cg.base[i]);
	cg_reset();
}

/* ---- per worker ------------------------------------------------------ */

static const char *
set_memory(const struct worker *w)
{
	const char	*dir = w->cg.dir[CG_MEMORY];
	char		 v[64];

	if (w->memory_limit == 0 || cg.kind[CG_MEMORY] == CGK_NONE)
		return NULL;
	snprintf(v, sizeof(v), "%" PRIu64, w->memory_limit);
	if (cg.kind[CG_MEMORY] == CGK_V2) {
		if (write_file(dir, "memory.max", v) == -1)
			return "memory.max";
		/* as memsw in v1: the limit is not dodged into swap */
		if (write_file(dir, "memory.swap.max", "0") == -1 &&
		    errno != ENOENT)
			return "memory.swap.max";
		return NULL;
	}
	if (write_file(dir, "memory.limit_in_bytes", v) == -1)
		return "memory.limit_in_bytes";
	if (write_file(dir, "memory.memsw.limit_in_bytes", v) == -1 &&
	    errno != ENOENT)
		return "memory.memsw.limit_in_bytes";
	return NULL;
}

static const char *
set_pids(const struct worker *w)
{
	char	 v[64];

	if (cg.kind[CG_PIDS] == CGK_NONE)
		return NULL;
	snprintf(v, sizeof(v), "%d", w->pids_max);
	if (write_file(w->cg.dir[CG_PIDS], "pids.max", v) == -1)
		return "pids.max";
	return NULL;
}

static const char *
set_cpu(const struct worker *w)
{
	const char	*dir = w->cg.dir[CG_CPU];
	char		 v[64];
	long		 quota;

	if (w->cpu_limit <= 0 || cg.kind[CG_CPU] == CGK_NONE)
		return NULL;
	if ((quota = (long)(w->cpu_limit * CPU_PERIOD_US)) < 1000)
		quota = 1000;	/* the kernel's minimum */
	if (cg.kind[CG_CPU] == CGK_V2) {
		snprintf(v, sizeof(v), "%ld %d", quota, CPU_PERIOD_US);
		return write_file(dir, "cpu.max", v) == -1 ? "cpu.max" : NULL;
	}
	snprintf(v, sizeof(v), "%d", CPU_PERIOD_US);
	if (write_file(dir, "cpu.cfs_period_us", v) == -1)
		return "cpu.cfs_period_us";
	snprintf(v, sizeof(v), "%ld", quota);
	if (write_file(dir, "cpu.cfs_quota_us", v) == -1)
		return "cpu.cfs_quota_us";
	return NULL;
}

static int
set_limits(const struct worker *w, char *err, size_t errlen)
{
	const char	*what;

	if ((what = set_memory(w)) == NULL && (what = set_pids(w)) == NULL &&
	    (what = set_cpu(w)) == NULL)
		return 0;
	snprintf(err, errlen, "cgroup %s: %s", what, strerror(errno));
	return -1;
}

static void
oom_event(evutil_socket_t fd, short ev, void *arg)
{
	struct worker	*w = arg;
	uint64_t	 n;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	if (!w->exit.oom)
		log_warnx("worker %s: out of memory (limit %" PRIu64
		    " bytes)", w->id, w->memory_limit);
	w->exit.oom = 1;
}

/* v1 tells about OOM through an eventfd registered on memory.oom_control. */
static void
oom_watch(struct worker *w)
{
	char	 v[64], path[PATH_MAX];
	int	 ofd;

	if (cg.kind[CG_MEMORY] != CGK_V1 || proc_base == NULL)
		return;
	snprintf(path, sizeof(path), "%s/memory.oom_control",
	    w->cg.dir[CG_MEMORY]);
	if ((ofd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	if ((w->cg.oom_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		close(ofd);
		return;
	}
	snprintf(v, sizeof(v), "%d %d", w->cg.oom_efd, ofd);
	if (write_file(w->cg.dir[CG_MEMORY], "cgroup.event_control", v) ==
	    -1 || (w->cg.oom_ev = event_new(proc_base, w->cg.oom_efd,
	    EV_READ | EV_PERSIST, oom_event, w)) == NULL ||
	    event_add(w->cg.oom_ev, NULL) == -1) {
		log_debug("worker %s: no OOM notification", w->id);
		if (w->cg.oom_ev != NULL)
			event_free(w->cg.oom_ev);
		w->cg.oom_ev = NULL;
		close(w->cg.oom_efd);
		w->cg.oom_efd = -1;
	}
	close(ofd);
}

static int
same_dir_before(const struct worker *w, int r)
{
	int	 i;

	for (i = 0; i < r; i++)
		if (w->cg.dir[i] != NULL && strcmp(w->cg.dir[i],
		    w->cg.dir[r]) == 0)
			return 1;
	return 0;
}

/*
 * Make the worker's directories, set its limits, and open the
 * cgroup.procs files that the child writes itself into before exec.
 */
int
cgroup_create(struct worker *w, char *err, size_t errlen)
{
	char	 path[PATH_MAX];
	int	 r;

	for (r = 0; r < CG_NRES; r++) {
		w->cg.procs_fd[r] = -1;
		if (cg.base[r] != NULL)
			w->cg.dir[r] = path_join(cg.base[r], w->id);
	}
	w->cg.oom_efd = -1;
	for (r = 0; r < CG_NRES; r++) {
		if (w->cg.dir[r] == NULL || same_dir_before(w, r))
			continue;
		/* a stale group of the same name: left by a crash */
		if (access(w->cg.dir[r], F_OK) == 0)
			kill_dir(w->cg.dir[r]);
		if (mkdir(w->cg.dir[r], 0755) == -1) {
			snprintf(err, errlen, "cgroup %s: %s", w->cg.dir[r],
			    strerror(errno));
			return -1;
		}
		snprintf(path, sizeof(path), "%s/cgroup.procs", w->cg.dir[r]);
		if ((w->cg.procs_fd[r] = open(path, O_WRONLY |
		    O_CLOEXEC)) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (set_limits(w, err, errlen) == -1)
		return -1;
	oom_watch(w);
	return 0;
}

/*
 * In the forked child, before exec: move ourselves into every group.
 * "0" means the writing process; no allocation, no stdio.
 */
int
cgroup_enter(const struct worker *w)
{
	int	 r;

	for (r = 0; r < CG_NRES; r++)
		if (w->cg.procs_fd[r] != -1 &&
		    write(w->cg.procs_fd[r], "0", 1) != 1)
			return -1;
	return 0;
}

void
cgroup_close_procs(struct worker *w)
{
	int	 r;

	for (r = 0; r < CG_NRES; r++) {
		if (w->cg.procs_fd[r] != -1)
			close(w->cg.procs_fd[r]);
		w->cg.procs_fd[r] = -1;
	}
}

/* The directory whose cgroup.procs lists the worker's processes. */
static const char *
procs_dir(const struct worker *w)
{
	int	 r;

	for (r = 0; r < CG_NRES; r++)
		if (w->cg.dir[r] != NULL)
			return w->cg.dir[r];
	return NULL;
}

/* Signal the worker's processes but except; how many there were. */
int
cgroup_signal(const struct worker *w, int sig, pid_t except)
{
	const char	*dir;

	if ((dir = procs_dir(w)) == NULL)
		return 0;
	return signal_procs(dir, sig, except);
}

void
cgroup_kill(const struct worker *w)
{
	const char	*dir;

	if (cg.have_kill && w->cg.dir[CG_GROUP] != NULL &&
	    write_file(w->cg.dir[CG_GROUP], "cgroup.kill", "1") == 0)
		return;
	if ((dir = procs_dir(w)) != NULL)
		signal_procs(dir, SIGKILL, 0);
}

uint64_t
cgroup_oom_kills(const struct worker *w)
{
	uint64_t	 n = 0;

	if (cg.kind[CG_MEMORY] == CGK_V1)
		cgroup_read_key(w->cg.dir[CG_MEMORY], "memory.oom_control",
		    "oom_kill", &n);
	else if (cg.kind[CG_MEMORY] == CGK_V2)
		cgroup_read_key(w->cg.dir[CG_MEMORY], "memory.events",
		    "oom_kill", &n);
	return n;
}

static void
oom_unwatch(struct worker *w)
{
	if (w->cg.oom_ev != NULL)
		event_free(w->cg.oom_ev);
	w->cg.oom_ev = NULL;
	if (w->cg.oom_efd != -1)
		close(w->cg.oom_efd);
	w->cg.oom_efd = -1;
}

/*
 * Remove the worker's directories once they are empty: 0 when all are
 * gone, -1 while a process (or its exit) still holds one.
 */
int
cgroup_remove(struct worker *w)
{
	int	 r, busy = 0;

	/* the eventfd fires when its group goes: stop listening first */
	oom_unwatch(w);
	cgroup_close_procs(w);
	for (r = CG_NRES - 1; r >= 0; r--) {
		if (w->cg.dir[r] == NULL)
			continue;
		if (rmdir(w->cg.dir[r]) == -1 && errno != ENOENT) {
			if (errno != EBUSY)
				log_warn("cgroups: rmdir %s", w->cg.dir[r]);
			busy = 1;
			continue;
		}
		free(w->cg.dir[r]);
		w->cg.dir[r] = NULL;
	}
	return busy ? -1 : 0;
}

void
cgroup_free(struct worker *w)
{
	int	 r;

	oom_unwatch(w);
	cgroup_close_procs(w);
	for (r = 0; r < CG_NRES; r++) {
		free(w->cg.dir[r]);
		w->cg.dir[r] = NULL;
	}
}

/*
 * Our directory name in each hierarchy.  A second byd on the same host
 * (another control socket) gets its own, so that its start-up cleanup
 * leaves the first one's workers alone.
 */
void
workers_cgroup_name(const struct config *conf, char *buf, size_t len)
{
	const char	*s = conf->server.control_socket;
	uint32_t	 h = 2166136261U;	/* FNV-1a */

	if (s == NULL || strcmp(s, "/run/blockyard/byd.sock") == 0) {
		strlcpy(buf, WORKER_CGROUP_NAME, len);
		return;
	}
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619U;
	snprintf(buf, len, "%s-%08x", WORKER_CGROUP_NAME, h);
}
