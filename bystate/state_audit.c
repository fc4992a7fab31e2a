/*
 * The audit log ([audit] path): one JSON object per line, appended with
 * one write(2) each before the API call that caused it is answered, and
 * fsync'd at most a second later (and at shutdown), so an acknowledged
 * action is never lost to a clean stop and costs no fsync per request.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

static int		 audit_fd = -1;
static int		 audit_dirty;
static struct event	*audit_ev;

/* Root, before the privilege drop: the directory must be ours to write. */
int
audit_prepare(const char *path, uid_t uid, gid_t gid, int root, char *err,
    size_t errlen)
{
	char		 tmp[PATH_MAX], *dir;
	struct stat	 st;

	if (path == NULL)
		return 0;
	strlcpy(tmp, path, sizeof(tmp));
	dir = dirname(tmp);
	if (stat(dir, &st) == -1) {
		if (errno != ENOENT || mkdir(dir, 0700) == -1) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		if (root && chown(dir, uid, gid) == -1) {
			snprintf(err, errlen, "chown %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	/* an existing log stays where it is but must become ours */
	if (root && lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "%s: not a regular file", path);
			return -1;
		}
		if (chown(path, uid, gid) == -1 || chmod(path, 0600) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void
audit_sync(evutil_socket_t fd, short what, void *arg)
{
	if (audit_fd != -1 && audit_dirty) {
		if (fsync(audit_fd) == -1)
			log_warn("audit log: fsync");
		audit_dirty = 0;
	}
}

int
audit_open(const char *path, char *err, size_t errlen)
{
	struct timeval	 tv = { 1, 0 };

	if (path == NULL)
		return 0;
	audit_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (audit_fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	audit_ev = event_new(proc_base, -1, EV_PERSIST, audit_sync, NULL);
	event_add(audit_ev, &tv);
	return 0;
}

void
audit_close(void)
{
	audit_sync(-1, 0, NULL);
	if (audit_ev != NULL)
		event_free(audit_ev);
	audit_ev = NULL;
	if (audit_fd != -1)
		close(audit_fd);
	audit_fd = -1;
}

int
audit_enabled(void)
{
	return audit_fd != -1;
}

/* RFC 3339 with nanoseconds, UTC, as the reference writes "ts". */
static void
audit_ts(char *buf, size_t len)
{
	struct timespec	 ts;
	struct tm	 tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

void
audit_log(struct api_ctx *ctx, const char *action, const char *target,
    json_t *detail)
{
	json_t	*o;
	char	 ts[64], *s;
	size_t	 len;
	ssize_t	 w;

	if (audit_fd == -1) {
		json_decref(detail);
		return;
	}
	audit_ts(ts, sizeof(ts));
	o = json_pack("{s:s s:s s:s}", "ts", ts, "action", action, "actor",
	    ctx != NULL && ctx->caller.authenticated ? ctx->caller.sub :
	    "anonymous");
	if (target != NULL && target[0] != '\0')
		json_object_set_new(o, "target", json_string(target));
	if (detail != NULL && json_object_size(detail) > 0)
		json_object_set(o, "detail", detail);
	json_decref(detail);
	if (ctx != NULL && ctx->remote[0] != '\0')
		json_object_set_new(o, "source_ip", json_string(ctx->remote));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return;
	len = strlen(s);
	s[len++] = '\n';	/* json_dumps left room: the NUL */
	do {
		w = write(audit_fd, s, len);
	} while (w == -1 && errno == EINTR);
	if (w != (ssize_t)len)
		log_warn("audit log: write");
	audit_dirty = 1;
	free(s);
}
