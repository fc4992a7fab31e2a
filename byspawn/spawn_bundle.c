/*
 * byspawn's side of a bundle upload (see byproxy/api_bundles.c):
 *
 *	MSG_BUNDLE_OPEN		create <bsp>/<app>/<bundle>.tar.gz, answer
 *				MSG_BUNDLE_FD with a write descriptor
 *	MSG_BUNDLE_UNPACK	unpack it to <bsp>/<app>/<bundle>/ as an
 *				unprivileged uid, answer MSG_BUNDLE_RESULT
 *	MSG_BUNDLE_DISCARD	remove whatever the upload left
 *
 * byproxy is not trusted with paths: it names bundles by ids, which are
 * checked to be UUIDs before they touch the file system.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "byspawn.h"

#define UNPACK_TIMEOUT_SEC	600	/* wall clock for one unpack */

struct unpacking {
	TAILQ_ENTRY(unpacking)	 entry;
	struct msgchan		*chan;
	uint32_t		 reqid;
	struct msg_bundle	 ids;
	struct unpack_job	*job;
	struct event		*done_ev;	/* child exit, or timeout */
	int			 uid;		/* slot held meanwhile, or -1 */
	struct task		*task;
};

static TAILQ_HEAD(, unpacking) unpackings = TAILQ_HEAD_INITIALIZER(unpackings);

static int
bundle_ids(struct msg *m, struct msg_bundle *ids)
{
	if (m->datalen != sizeof(*ids))
		return -1;
	memcpy(ids, m->data, sizeof(*ids));
	ids->app_id[MSG_ID_LEN - 1] = ids->bundle_id[MSG_ID_LEN - 1] = '\0';
	if (!msg_id_valid(ids->app_id) || !msg_id_valid(ids->bundle_id))
		return -1;
	return 0;
}

static void
bundle_path(const struct msg_bundle *ids, const char *suffix, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s/%s/%s%s", proc_conf->storage.bundle_server_path,
	    ids->app_id, ids->bundle_id, suffix);
}

static void
bundle_answer(struct msgchan *c, uint32_t type, uint32_t reqid, int status,
    const char *message, int fd)
{
	struct msg_bundle_result	 r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	strlcpy(r.message, message, sizeof(r.message));
	if (msgchan_send(c, type, reqid, fd, &r, sizeof(r)) == -1)
		log_warn("%s: %s", c->name, msg_type_name(type));
}

/* mkdir that accepts an existing directory. */
static int
mkdir_exist(const char *path, mode_t mode)
{
	struct stat	 st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return -1;
}

/* Storage for bundles: root-owned and readable, so workers can read. */
int
bundle_storage_init(char *err, size_t errlen)
{
	const char	*bsp = proc_conf->storage.bundle_server_path;
	char		 tmp[PATH_MAX], *p;

	strlcpy(tmp, bsp, sizeof(tmp));
	for (p = tmp + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir_exist(tmp, 0755) == -1)
			goto fail;
		*p = '/';
	}
	if (mkdir_exist(bsp, 0755) == -1)
		goto fail;
	return 0;
 fail:
	snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
	return -1;
}

static void
bundle_open(struct msgchan *c, struct msg *m)
{
	struct msg_bundle	 ids;
	char			 dir[PATH_MAX], path[PATH_MAX];
	int			 fd;

	if (bundle_ids(m, &ids) == -1)
		fatalx("%s: bad bundle open", c->name);
	snprintf(dir, sizeof(dir), "%s/%s",
	    proc_conf->storage.bundle_server_path, ids.app_id);
	bundle_path(&ids, ".tar.gz", path, sizeof(path));
	if (mkdir_exist(dir, 0755) == -1 ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		log_warn("bundle %s: %s", ids.bundle_id, path);
		bundle_answer(c, MSG_BUNDLE_FD, m->hdr.peerid, 500,
		    "cannot store the bundle", -1);
		return;
	}
	log_debug("bundle %s: receiving into %s", ids.bundle_id, path);
	/* the message layer closes our copy once it is sent */
	bundle_answer(c, MSG_BUNDLE_FD, m->hdr.peerid, 0, "", fd);
}

/*
 * Remove every file of a bundle: <bundle>.tar.gz, the tree <bundle>/,
 * and whatever <bundle>.* a build made (manifest, libraries, work
 * directories); then the app directory if it is now empty.
 */
void
bundle_remove(const struct msg_bundle *ids)
{
	char		 dir[PATH_MAX], pfx[MSG_ID_LEN + 1];
	DIR		*d;
	struct dirent	*de;
	int		 dfd;

	snprintf(dir, sizeof(dir), "%s/%s",
	    proc_conf->storage.bundle_server_path, ids->app_id);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return;
	if (unpack_remove_tree(dfd, ids->bundle_id) == -1 && errno != ENOENT)
		log_warn("remove %s/%s", dir, ids->bundle_id);
	snprintf(pfx, sizeof(pfx), "%s.", ids->bundle_id);
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, pfx, strlen(pfx)) == 0 &&
		    unpack_remove_tree(dirfd(d), de->d_name) == -1 &&
		    errno != ENOENT)
			log_warn("remove %s/%s", dir, de->d_name);
	closedir(d);
	/* fails while other bundles of the app are there: fine */
	rmdir(dir);
}

static void
bundle_discard(struct msgchan *c, struct msg *m)
{
	struct msg_bundle	 ids;

	if (bundle_ids(m, &ids) == -1)
		fatalx("%s: bad bundle discard", c->name);
	log_debug("bundle %s: discarded", ids.bundle_id);
	task_fail_bundle(ids.bundle_id, "bundle discarded: the upload was "
	    "not recorded");
	bundle_remove(&ids);
}

static void
unpacking_free(struct unpacking *u)
{
	TAILQ_REMOVE(&unpackings, u, entry);
	if (u->done_ev != NULL)
		event_free(u->done_ev);
	if (u->uid != -1)
		slot_uid_release(u->uid);
	free(u);
}

/*
 * The unpacked bundle's dependencies: its manifest.json, renv.lock or
 * DESCRIPTION made into the reference's manifest (or a manifest that
 * has the build scan the scripts), and an R that fits its r_version.
 * Written next to the bundle as <bundle>.manifest.json, with our own
 * "blockyard" object saying which R and which form.  An invalid
 * manifest or an R we lack is the bundle's fault: 400.
 */
static int
bundle_manifest(struct unpacking *u, int32_t *pinned, char *err,
    size_t errlen)
{
	struct manifest_result	 mr;
	char			 dir[PATH_MAX], path[PATH_MAX], rpath[PATH_MAX];
	int			 rv;

	memset(&mr, 0, sizeof(mr));
	bundle_path(&u->ids, "", dir, sizeof(dir));
	if ((rv = manifest_resolve(dir, &mr, err, errlen)) != 0 ||
	    bundle_r_pick(mr.r_version, rpath, sizeof(rpath), err,
	    errlen) == -1) {
		manifest_result_free(&mr);
		if (rv == -2) {
			log_warnx("bundle %s: manifest: %s", u->ids.bundle_id,
			    err);
			task_log(u->task, "bundle rejected: internal server "
			    "error");
			task_done(u->task, 0);
			return UNPACK_INTERNAL;
		}
		log_info("bundle %s rejected: %s", u->ids.bundle_id, err);
		task_log(u->task, "bundle rejected: %s", err);
		task_done(u->task, 0);
		return UNPACK_BAD_ARCHIVE;
	}
	json_object_set_new(mr.manifest, "blockyard", json_pack("{s:s s:s}",
	    "r_path", rpath, "form", manifest_form_name(mr.form)));
	bundle_path(&u->ids, ".manifest.json", path, sizeof(path));
	if (manifest_write(mr.manifest, path, err, errlen) == -1) {
		log_warnx("bundle %s: %s", u->ids.bundle_id, err);
		manifest_result_free(&mr);
		task_log(u->task, "bundle rejected: internal server error");
		task_done(u->task, 0);
		return UNPACK_INTERNAL;
	}
	task_log(u->task, "dependencies from %s (%s)",
	    manifest_form_name(mr.form), mr.pinned ? "pinned" : "unpinned");
	*pinned = mr.pinned;
	manifest_result_free(&mr);
	return UNPACK_OK;
}

static void
unpack_done(evutil_socket_t fd, short what, void *arg)
{
	struct unpacking	*u = arg;
	struct unpack_result	 res;
	struct msg_bundle_result r;
	char			 err[512];
	int			 st;

	memset(&res, 0, sizeof(res));
	if (what & EV_TIMEOUT) {
		unpack_abort(u->job);
		st = UNPACK_TOO_BIG;
		strlcpy(err, "unpacking took too long", sizeof(err));
	} else
		st = unpack_finish(u->job, &res, err, sizeof(err));
	u->job = NULL;
	memset(&r, 0, sizeof(r));
	strlcpy(r.task_id, task_id(u->task), sizeof(r.task_id));
	if (st != UNPACK_OK) {
		task_log(u->task, "bundle rejected: %s", st == UNPACK_INTERNAL ?
		    "internal server error" : err);
		task_done(u->task, 0);
		log_info("bundle %s rejected (%s): %s", u->ids.bundle_id,
		    unpack_status_name(st), err);
		bundle_remove(&u->ids);
		r.status = unpack_http_status(st);
		/* internal errors name server paths: not for the client */
		strlcpy(r.message, st == UNPACK_INTERNAL ?
		    "internal server error" : err, sizeof(r.message));
	} else {
		task_log(u->task, "unpacked %llu files, %llu bytes",
		    (unsigned long long)res.files,
		    (unsigned long long)res.bytes);
		if ((st = bundle_manifest(u, &r.pinned, err,
		    sizeof(err))) != UNPACK_OK) {
			/* bundle_manifest said why in the task and the log */
			bundle_remove(&u->ids);
			r.status = unpack_http_status(st);
			strlcpy(r.message, st == UNPACK_INTERNAL ?
			    "internal server error" : err, sizeof(r.message));
		} else {
			r.files = (int64_t)res.files;
			r.bytes = (int64_t)res.bytes;
			/* the build carries the task on */
			task_set_bundle(u->task, u->ids.bundle_id);
		}
	}
	if (msgchan_send(u->chan, MSG_BUNDLE_RESULT, u->reqid, -1, &r,
	    sizeof(r)) == -1)
		log_warn("%s: bundle result", u->chan->name);
	unpacking_free(u);
}

static void
bundle_unpack_msg(struct msgchan *c, struct msg *m)
{
	struct unpacking	*u;
	struct unpack_limits	 lim;
	struct timeval		 tv = { UNPACK_TIMEOUT_SEC, 0 };
	char			 path[PATH_MAX], dest[PATH_MAX], err[PATH_MAX + 256];
	int			 fd, uid = -1;
	uid_t			 ruid = getuid();
	gid_t			 rgid = getgid();

	if ((u = calloc(1, sizeof(*u))) == NULL)
		fatal("calloc");
	if (bundle_ids(m, &u->ids) == -1)
		fatalx("%s: bad bundle unpack", c->name);
	u->chan = c;
	u->reqid = m->hdr.peerid;
	u->uid = -1;
	u->task = task_new(u->ids.app_id);
	task_log(u->task, "unpacking bundle %s", u->ids.bundle_id);
	TAILQ_INSERT_TAIL(&unpackings, u, entry);
	bundle_path(&u->ids, ".tar.gz", path, sizeof(path));
	bundle_path(&u->ids, "", dest, sizeof(dest));
	if (geteuid() == 0) {
		/* a uid nobody else holds meanwhile: a worker slot */
		if (slot_uid_alloc(&uid, err, sizeof(err)) == -1)
			goto fail;
		u->uid = uid;
		ruid = (uid_t)uid;
		rgid = (gid_t)proc_conf->process.worker_gid;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	unpack_limits_default(&lim);
	if (unpack_start(&u->job, fd, dest, &lim, ruid, rgid, err,
	    sizeof(err)) != UNPACK_OK) {
		close(fd);
		goto fail;
	}
	close(fd);
	u->done_ev = event_new(proc_base, unpack_job_fd(u->job), EV_READ,
	    unpack_done, u);
	event_add(u->done_ev, &tv);
	return;
 fail:
	log_warnx("bundle %s: %s", u->ids.bundle_id, err);
	task_log(u->task, "bundle rejected: internal server error");
	task_done(u->task, 0);
	bundle_remove(&u->ids);
	bundle_answer(c, MSG_BUNDLE_RESULT, u->reqid, 500,
	    "internal server error", -1);
	unpacking_free(u);
}

/* Shutdown: give up on unpacks in progress. */
void
bundle_shutdown(void)
{
	struct unpacking	*u;

	while ((u = TAILQ_FIRST(&unpackings)) != NULL) {
		if (u->job != NULL)
			unpack_abort(u->job);
		bundle_remove(&u->ids);
		unpacking_free(u);
	}
}

void
spawn_bundle_dispatch(struct msgchan *c, struct msg *m)
{
	switch (m->hdr.type) {
	case MSG_BUNDLE_OPEN:
		bundle_open(c, m);
		break;
	case MSG_BUNDLE_UNPACK:
		bundle_unpack_msg(c, m);
		break;
	case MSG_BUNDLE_DISCARD:
		bundle_discard(c, m);
		break;
	}
}
