/*
 * byspawn: the only process that starts programs.  It stays root so it
 * can put workers into their own uid, cgroup and bubblewrap sandbox.
 */

#ifndef BYSPAWN_H
#define BYSPAWN_H

#include <sys/queue.h>
#include <sys/types.h>

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "msg.h"
#include "proc.h"

/* spawn_preflight.c */
int	 preflight_bwrap(const char *bwrap_path, char *version, size_t len,
	    char *err, size_t errlen);
int	 spawn_run_capture(char *const argv[], char *out, size_t outlen,
	    int *status, int timeout_ms);

/* workers */

/*
 * A worker is one R process serving one app bundle on 127.0.0.1:port,
 * inside bwrap, as a uid of its own, in per-worker cgroups.  Everything
 * runs on proc_base: spawn returns at once, exits and log lines arrive
 * through the callbacks in the spec.
 */

#define WORKER_ID_MAX		64	/* [A-Za-z0-9_-], also a cgroup name */
#define WORKER_LOG_LINES	10000	/* ring of stdout+stderr lines */
#define WORKER_LINE_MAX		8192	/* longer lines are split */
#define WORKER_PIDS_DEFAULT	256	/* R/httpuv: 4 threads, + 2 bwrap */
#define WORKER_TMP_SIZE		(256ULL << 20)	/* tmpfs /tmp cap */
#define WORKER_SHM_SIZE		(64ULL << 20)	/* tmpfs /dev/shm cap */
#define WORKER_LIB_PATH		"/blockyard-lib"
#define BUILD_DIR_PATH		"/blockyard-build"
#define BUILD_OUT_PATH		"/blockyard-out"
#define BUILD_TMP_SIZE		(1ULL << 30)	/* a build's tmpfs /tmp */
#define WORKER_CGROUP_NAME	"blockyard"	/* in every hierarchy */

enum worker_state {
	WORKER_STARTING,	/* spawned, not yet seen answering HTTP */
	WORKER_RUNNING,		/* a readiness probe succeeded */
	WORKER_STOPPING,	/* worker_stop sent SIGTERM */
	WORKER_EXITED,		/* reaped, slots released; logs kept */
};

struct worker;
struct worker_logline;

struct worker_spec {
	const char	*id;
	const char	*app_id;
	const char	*bundle_id;
	const char	*bundle_dir;	/* ro at bundle_worker_path */
	const char	*library_dir;	/* ro at /blockyard-lib, or NULL */
	uint64_t	 memory_limit;	/* bytes, 0 = none */
	double		 cpu_limit;	/* cores, 0 = none */
	int		 pids_max;	/* 0 = WORKER_PIDS_DEFAULT */
	const struct strmap *env;	/* extra variables after worker_env */
	const char	*r_path;	/* NULL: [process] r_path */

	/*
	 * A dependency build step (spawn_build.c) instead of the app: no
	 * port, no Shiny; Rscript runs build_dir/build.R with build_args,
	 * out_dir is bound writable at BUILD_OUT_PATH and chowned to the
	 * step's uid first, library_dir (if any) is read-only as for
	 * workers, and ro_paths are bound read-only at their own paths
	 * (file:// repositories).
	 */
	int		 build;
	const char	*build_dir;	/* ro at BUILD_DIR_PATH */
	const char	*out_dir;	/* rw at BUILD_OUT_PATH */
	const char	*build_args;	/* the script's argument */
	const struct strlist *ro_paths;

	/* called on proc_base; NULL when not wanted */
	void		(*on_exit)(struct worker *, void *);
	void		(*on_log)(struct worker *,
			    const struct worker_logline *, void *);
	void		*cb_arg;
};

struct worker_exit {
	int		 status;	/* raw wait status of bwrap */
	int		 code;		/* exit code; -1: bwrap was killed */
	/*
	 * The signal that ended the app: bwrap's own, or the one bwrap
	 * relays as exit code 128+N when the process inside was killed.
	 */
	int		 signal;
	int		 oom;		/* the cgroup's OOM killer fired */
	int		 stopped;	/* worker_stop asked for it */
};

struct worker_logline {
	uint64_t	 seq;		/* 1, 2, ... per worker */
	int64_t		 time_ms;	/* wall clock, ms since the epoch */
	char		*text;		/* valid UTF-8, no newline */
};

struct worker_usage {
	int		 have_memory, have_cpu, have_pids, have_throttle;
	uint64_t	 memory_bytes;	/* charged to the memory cgroup */
	uint64_t	 cpu_usec;	/* user + system since start */
	uint64_t	 pids;		/* tasks, threads included */
	uint64_t	 pids_refused;	/* forks refused at the ceiling */
	uint64_t	 nr_throttled;	/* CFS periods throttled by the quota */
	uint64_t	 oom_kills;
};

/* Private to spawn_*.c: the per-worker cgroup directories and files. */
enum cg_res {
	CG_GROUP,		/* v2 group: cgroup.kill, cpu.stat */
	CG_MEMORY,
	CG_PIDS,
	CG_CPU,
	CG_CPUACCT,		/* v1 usage counter when there is no v2 group */
	CG_NRES
};

struct worker_cgroups {
	char		*dir[CG_NRES];	/* NULL: not used; may repeat (v2) */
	int		 procs_fd[CG_NRES];	/* for the child, -1 */
	int		 oom_efd;	/* v1 memory.oom_control eventfd */
	struct event	*oom_ev;
};

struct worker_log {
	struct worker_logline	*lines;
	size_t			 cap, head, count;
	uint64_t		 next_seq;
	struct evbuffer		*partial;
	struct event		*ev;
	int			 fd;	/* read end of stdout+stderr */
};

struct worker_probe;

struct worker {
	TAILQ_ENTRY(worker)	 entry;
	char			 id[WORKER_ID_MAX + 1];
	char			*app_id;
	char			*bundle_id;
	int			 build;		/* a dependency build step */
	enum worker_state	 state;
	pid_t			 pid;		/* the outer bwrap */
	uid_t			 uid;		/* as seen on the host */
	gid_t			 gid;
	int			 uid_slot;	/* held slot, -1 none */
	int			 port;		/* on 127.0.0.1; -1 none */
	uint64_t		 memory_limit;
	double			 cpu_limit;
	int			 pids_max;
	struct timespec		 started;	/* CLOCK_REALTIME */
	struct timespec		 exited;
	struct worker_exit	 exit;

	/* private: spawn_*.c */
	void			(*on_exit)(struct worker *, void *);
	void			(*on_log)(struct worker *,
				    const struct worker_logline *, void *);
	void			*cb_arg;
	int			 reaped;
	int			 forgotten;	/* off the list, freed soon */
	int			 cg_removed;
	int			 cleanup_tries;
	struct worker_cgroups	 cg;
	struct worker_log	 log;
	struct event		*stop_ev;	/* grace period, then SIGKILL */
	struct event		*cleanup_ev;	/* cgroup rmdir retries */
	struct event		*retain_ev;	/* forget after log_retention */
	TAILQ_HEAD(, worker_probe) probes;
};

TAILQ_HEAD(worker_list, worker);
extern struct worker_list workers;

/*
 * Start-up, as root: find the cgroup hierarchies and say per limit which
 * mechanism enforces it, make our cgroup directories, kill what a
 * crashed previous run left (its cgroups and any process running as a
 * worker uid), check [process] seccomp_profile.  cgroup_name is
 * workers_cgroup_name() except in tests.  -1 with err when workers
 * cannot run as configured.
 */
int	 workers_init(const char *cgroup_name, char *err, size_t errlen);
/* "blockyard", or "blockyard-<hash of control_socket>" if not default */
void	 workers_cgroup_name(const struct config *, char *, size_t);
/* The limit mechanisms and counts, for MSG_READY and status output. */
json_t	*workers_status(void);
/*
 * Stop every worker (SIGTERM, SIGKILL after grace_ms), then call done
 * once all are reaped and their cgroups removed.
 */
void	 workers_shutdown(int grace_ms, void (*done)(void *), void *arg);
/* Free every record and event (after shutdown; tests). */
void	 workers_free(void);

/*
 * Start a worker.  Allocates its uid and port, makes its cgroups, forks
 * and execs bwrap; returns once bwrap runs (or failed to start, with
 * the reason in err).  The worker is then WORKER_STARTING.
 */
int	 worker_spawn(const struct worker_spec *, struct worker **,
	    char *err, size_t errlen);
/* SIGTERM the app, SIGKILL its whole cgroup after grace_ms. */
void	 worker_stop(struct worker *, int grace_ms);
struct worker *worker_find(const char *id);
/*
 * Drop an exited worker's record and logs before log_retention ends.
 * It leaves worker_find at once and is freed from the loop, so a
 * callback may call this on its own worker.
 */
void	 worker_forget(struct worker *);
const char *worker_state_name(enum worker_state);
json_t	*worker_to_json(const struct worker *);

/*
 * Health.  A probe connects to the worker's port: WORKER_PROBE_TCP is
 * done once the connection is accepted, WORKER_PROBE_HTTP sends
 * GET / and is done at the status line (any status).  cb gets ok 1 or
 * 0 and the HTTP status (0 for TCP).  A probe of a worker that exits
 * or is forgotten ends with ok 0.
 */
enum worker_probe_kind {
	WORKER_PROBE_TCP,
	WORKER_PROBE_HTTP,
};
typedef void	(*worker_probe_cb)(struct worker *, int ok, int http_status,
		    void *);
int	 worker_probe(struct worker *, enum worker_probe_kind, int timeout_ms,
	    worker_probe_cb, void *);
/*
 * Probe HTTP every 100 ms until the app answers (the worker becomes
 * WORKER_RUNNING, cb ok 1), it exits, or timeout_ms pass (cb ok 0).
 */
int	 worker_await_ready(struct worker *, int timeout_ms, worker_probe_cb,
	    void *);

/* Log ring: lines with seq >= from, oldest first; returns the count. */
size_t	 worker_log_read(const struct worker *, uint64_t from,
	    void (*fn)(const struct worker_logline *, void *), void *);

/* Memory, CPU and pids counters from the worker's cgroups. */
void	 worker_usage(const struct worker *, struct worker_usage *);

/* ---- internal to the spawn_*.c files ---- */

/* spawn_cgroup.c */
int	 cgroup_init(const char *name);
void	 cgroup_cleanup_orphans(void);
void	 cgroup_remove_base(void);	/* at exit, once no worker runs */
json_t	*cgroup_status(void);
int	 cgroup_create(struct worker *, char *err, size_t errlen);
int	 cgroup_enter(const struct worker *);	/* child, async-signal-safe */
void	 cgroup_close_procs(struct worker *);
int	 cgroup_signal(const struct worker *, int sig, pid_t except);
void	 cgroup_kill(const struct worker *);
int	 cgroup_remove(struct worker *);	/* -1 while busy */
void	 cgroup_free(struct worker *);
uint64_t cgroup_oom_kills(const struct worker *);
int	 cgroup_read_key(const char *dir, const char *file, const char *key,
	    uint64_t *val);
int	 cgroup_enabled(void);

/* spawn_slots.c */
int	 slot_uid_alloc(int *uid, char *err, size_t errlen);
int	 slot_port_alloc(int *port, char *err, size_t errlen);
void	 slot_uid_release(int uid);
void	 slot_port_release(int port);
int	 slot_uid_held(int uid);
int	 slot_port_held(int port);
int	 slot_port_bindable(int port);
void	 slots_kill_strays(void);
void	 slots_free(void);

/* spawn_sandbox.c */
struct argv {
	char		**v;
	size_t		  n, cap;
};
int	 sandbox_argv(const struct worker *, const struct worker_spec *,
	    int seccomp_fd, struct argv *, char *err, size_t errlen);
void	 argv_free(struct argv *);
pid_t	 sandbox_exec(const struct worker *, struct argv *, int out_fd,
	    int seccomp_fd, char *err, size_t errlen);
int	 sandbox_open_seccomp(char *err, size_t errlen);

/* spawn_logs.c */
int	 worker_log_start(struct worker *, int fd);
void	 worker_log_free(struct worker *);
int	 worker_log_eof(const struct worker *);

/* spawn_worker.c */
void	 worker_log_closed(struct worker *);

/* spawn_probe.c */
void	 worker_probes_cancel(struct worker *);

/* bundles */

/*
 * Unpacking an uploaded bundle (spawn_unpack.c).  A child chroots into
 * a private staging directory "<dest_dir>.unpack-XXXXXX" next to
 * dest_dir, takes a network and IPC namespace of its own, drops to
 * unpack_uid:unpack_gid (setgroups(0), setresgid, setresuid, verified;
 * no new privileges; rlimits on file size, descriptors, CPU, processes
 * and address space), and only then reads the .tar.gz from the
 * inherited archive_fd with libarchive (gzip + tar only), making only
 * regular files and directories.  The first bad entry stops it.
 * byspawn then checks the entrypoint, walks the staged tree without
 * following links, makes it root:root with directories 0755 and files
 * 0644 (0755 when the archive gave the owner execute), and renames it
 * to dest_dir, which must not exist.  On any failure the staging
 * directory is removed: nothing is left on disk.
 *
 * unpack_uid must not be 0 and should own nothing of value (not a
 * worker slot uid).  Run as a plain user (development) there is no
 * uid switch, chroot, namespace or chown; everything else is the same.
 * archive_fd may be a file (read from offset 0; the shared offset
 * moves) or a pipe.  Blocks for up to the wall-clock limit.
 */

#define UNPACK_MAX_TOTAL	(2ULL << 30)	/* unpacked bytes, default */
#define UNPACK_MAX_ENTRIES	100000	/* files + directories, default */
#define UNPACK_MAX_DEPTH	64	/* path components of an entry */

/*
 * Outcome classes.  Every class but UNPACK_INTERNAL is the bundle's
 * fault: answer 400 with the err text as the reason (the issue's rule
 * overrides the reference's 500 for invalid archives).  For
 * UNPACK_INTERNAL, err holds server paths: log it, answer a plain 500.
 */
enum unpack_status {
	UNPACK_OK,
	UNPACK_BAD_ARCHIVE,	/* not gzip, not tar, corrupt, truncated */
	UNPACK_FORBIDDEN_ENTRY,	/* link, device, fifo, absolute, "..",
				   bad or duplicate name, path conflict */
	UNPACK_TOO_BIG,		/* a cap, or the time limit, exceeded */
	UNPACK_NO_ENTRYPOINT,	/* no app.R, nor ui.R and server.R */
	UNPACK_INTERNAL,	/* the server's side failed */
};

enum unpack_entrypoint {
	UNPACK_ENTRY_NONE,
	UNPACK_ENTRY_APP,	/* app.R */
	UNPACK_ENTRY_UI_SERVER,	/* ui.R and server.R */
};

/* A 0 field takes its default. */
struct unpack_limits {
	uint64_t	 max_total;	/* bytes of all files together */
	uint64_t	 max_file;	/* bytes of one file; default max_total */
	uint64_t	 max_entries;	/* files and directories made */
	int		 cpu_sec;	/* child's RLIMIT_CPU; 0: derived */
	int		 timeout_ms;	/* wall clock; 0: derived (3x CPU) */
};

struct unpack_result {
	uint64_t	 files;		/* regular files */
	uint64_t	 dirs;		/* directories below the top */
	uint64_t	 bytes;		/* their total size */
	enum unpack_entrypoint entrypoint;
	uid_t		 child_uid;	/* what the reading child ran as */
	gid_t		 child_gid;
};

/* A running unpack, for callers on an event loop (spawn_unpack.c). */
struct unpack_job;

/* max_total = max_file = UNPACK_MAX_TOTAL, UNPACK_MAX_ENTRIES */
void	 unpack_limits_default(struct unpack_limits *);
/*
 * The whole unpack, blocking until done or timed out: UNPACK_OK with
 * res filled, or a class with the reason in err.
 */
int	 bundle_unpack(int archive_fd, const char *dest_dir,
	    const struct unpack_limits *, uid_t unpack_uid, gid_t unpack_gid,
	    struct unpack_result *res, char *err, size_t errlen);
/*
 * The same in two steps: start forks the child and returns at once;
 * finish waits for it until the deadline and does the root side.  On
 * an event loop, call finish once unpack_job_fd turns readable (the
 * child has exited) so that it does not block on the child; arm a
 * timer of your own and abort to give up early.  Every started job
 * ends in exactly one finish or abort, which free it.
 */
int	 unpack_start(struct unpack_job **, int archive_fd,
	    const char *dest_dir, const struct unpack_limits *,
	    uid_t unpack_uid, gid_t unpack_gid, char *err, size_t errlen);
int	 unpack_job_fd(const struct unpack_job *);
pid_t	 unpack_job_pid(const struct unpack_job *);	/* the child */
int	 unpack_finish(struct unpack_job *, struct unpack_result *, char *err,
	    size_t errlen);
void	 unpack_abort(struct unpack_job *);
/* "bad_archive", ..., "internal": for logs and JSON error codes */
const char *unpack_status_name(int);
int	 unpack_http_status(int);
/*
 * Remove name under dirfd and all below it without following links
 * (stale staging directories, pruned bundles).  0, or -1 with errno.
 */
int	 unpack_remove_tree(int dirfd, const char *name);

/* spawn_bundle.c: the upload messages from byproxy */
int	 bundle_storage_init(char *err, size_t errlen);
/* Remove a bundle's files: archive, tree, manifest, libraries. */
void	 bundle_remove(const struct msg_bundle *);
void	 bundle_shutdown(void);
void	 spawn_bundle_dispatch(struct msgchan *, struct msg *);

/* spawn_api.c: MSG_SPAWN_CALL from byproxy and (for byctl) byd */
void	 spawn_call(struct msgchan *, struct msg *);
json_t	*spawn_ok(int status, json_t *data);
json_t	*spawn_fail(int status, const char *code, const char *message);

/* spawn_manifest.c: a bundle's dependencies and the R to build them */

#define MANIFEST_FILE_MAX	(8UL << 20)	/* manifest.json etc. */
#define MANIFEST_WALK_DEPTH	64		/* path components */

/* Where the dependencies came from, in priority order. */
enum manifest_form {
	MANIFEST_JSON,		/* the bundle's manifest.json */
	MANIFEST_RENV,		/* renv.lock: pinned */
	MANIFEST_DESCRIPTION,	/* DESCRIPTION: unpinned */
	MANIFEST_SCRIPTS,	/* none: the build scans the scripts */
};

struct manifest_result {
	json_t			*manifest;	/* resolved, reference format */
	enum manifest_form	 form;
	int			 pinned;	/* it has "packages" */
	char			 r_version[32];	/* "" if none */
};

/*
 * Resolve the manifest of the unpacked bundle at bundle_dir: the first
 * of manifest.json, renv.lock, DESCRIPTION at its top level, else bare
 * scripts; always with "version", "metadata", "repositories" and the
 * SHA-256 "files" of every regular file (hidden names skipped).  An
 * empty "packages" is dropped, so pinned <=> "packages" is present.
 * 0 ok; -1 the bundle's fault: err is the reason for a 400 (no server
 * paths); -2 internal: err is for the log.  res->manifest is NULL
 * unless 0.
 */
int	 manifest_resolve(const char *bundle_dir, struct manifest_result *res,
	    char *err, size_t errlen);
void	 manifest_result_free(struct manifest_result *);
/* "manifest.json", "renv.lock", "DESCRIPTION", "scripts" */
const char *manifest_form_name(enum manifest_form);
/*
 * Write the manifest as pretty JSON (sorted keys) to path atomically
 * (a temporary file next to it, then rename), mode 0644.  0, or -1
 * with err.
 */
int	 manifest_write(const json_t *manifest, const char *path, char *err,
	    size_t errlen);

/* R installations: [process] r_path plus rig-style /opt/R/<v>/bin/R. */
struct r_install {
	char	 version[32];		/* "4.3.1" */
	char	 path[PATH_MAX];	/* the R binary */
};

/*
 * r_path first (its version from "<r_path> --version", run without a
 * shell, 10 s at most), then every optroot/<dir>/bin/R in version
 * order (the version is <dir> when it reads X.Y.Z or X.Y, else the
 * binary is asked).  Symlinked directories (rig's "current") and a
 * version already listed are skipped, and so is a binary whose version
 * cannot be found.  optroot is "/opt/R" in production.  Returns the
 * count, 0..max.
 */
int	 r_installs_scan(const char *r_path, const char *optroot,
	    struct r_install *list, int max);
/*
 * The install for a wanted version: "" takes the first (r_path); else
 * the exact version, else the newest of the same major.minor.  -1 when
 * none, with err "bundle requires R 4.4 which is not installed;
 * available: 4.2.2, 4.3.1".
 */
int	 r_install_pick(const struct r_install *list, int n, const char *want,
	    const struct r_install **out, char *err, size_t errlen);

/* spawn_state.c: byspawn's own calls to bystate */
typedef void	(*spawn_state_fn)(json_t *res, void *arg);
int	 spawn_state_call(const char *op, json_t *args, spawn_state_fn,
	    void *);
void	 spawn_state_result(struct msgchan *, struct msg *);
void	 spawn_state_free(void);

/* spawn_store.c: the package store */
struct store_pkg {
	char	 name[65];
	char	 version[64];
	char	 rplat[160];	/* "<R version>-<platform>" */
	char	 key[65];	/* SHA-256 hex */
};
int	 store_name_ok(const char *);
int	 store_word_ok(const char *);
void	 store_key(const char *const fields[], size_t n, char out[65]);
int	 store_has(const struct store_pkg *);
int	 store_link(const struct store_pkg *, int libfd, char *err,
	    size_t errlen);
int	 store_ingest(const struct store_pkg *, int stagefd, int libfd,
	    char *err, size_t errlen);
int	 store_sweep(int64_t retention_ms);
void	 store_clean_staging(void);

/* spawn_build.c: dependency builds */
void	 builds_init(void);
void	 builds_reload(void);
void	 builds_shutdown(void);
void	 builds_free(void);
void	 r_installs_init(void);
int	 bundle_r_pick(const char *want, char *path, size_t len, char *err,
	    size_t errlen);
json_t	*manifest_load(const char *path, char *err, size_t errlen);
int	 bundle_r_path(const json_t *manifest, char *buf, size_t len,
	    char *err, size_t errlen);
const char *bundle_library(const char *app, const char *bundle, char *buf,
	    size_t len);
json_t	*build_op_start(json_t *args);
json_t	*build_op_refresh(json_t *args);
json_t	*build_op_rollback(json_t *args);

/* spawn_logsub.c: following worker logs for byproxy */
void	 logsub_dispatch(struct msgchan *, struct msg *);
void	 logsub_line(struct worker *, const struct worker_logline *, void *);
void	 logsub_worker_exited(struct worker *);
void	 logsub_free(void);

/* spawn_tasks.c: what byspawn did for a deploy, with its log */
enum task_state {
	TASK_RUNNING,
	TASK_COMPLETED,
	TASK_FAILED,
};
struct task;
struct task	*task_new(const char *app_id);
struct task	*task_find(const char *id);
void		 task_set_bundle(struct task *, const char *bundle_id);
void		 task_fail_bundle(const char *bundle_id, const char *why);
const char	*task_id(const struct task *);
void		 task_log(struct task *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 task_done(struct task *, int ok);
json_t		*task_to_json(const char *id, int with_lines, size_t from);
void		 tasks_free(void);

#endif /* BYSPAWN_H */
