/*
 * Bundle unpacking.  An uploaded .tar.gz is hostile input both for
 * libarchive and for the filesystem, so it is read by a child that has
 * dropped to an unprivileged uid, with tight rlimits, inside a private
 * staging directory next to the destination.  The child makes only
 * regular files and directories and stops at the first entry it does
 * not like.  The root parent then trusts nothing the child made: it
 * walks the staged tree without following links, hands it to root with
 * fixed modes, checks the caps again and renames it into place.  Any
 * failure removes the staging directory, so a rejected bundle leaves
 * nothing behind.
 */

#include <sys/types.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include <archive.h>
#include <archive_entry.h>

#include "byspawn.h"
#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNPACK_SANITIZED	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNPACK_SANITIZED	1
#endif
#endif

#define STAGE_SUFFIX	".unpack-"
#define CHILD_NOFILE	16		/* 0-2, a few directories, one file */
#define CHILD_AS	(1ULL << 30)	/* libarchive needs a few MiB */
#define CHILD_BUF	65536
#define LINE_MAX_LEN	1024		/* the child's one-line report */
#define RM_MAX_DEPTH	256

struct unpack_job {
	pid_t			 pid;
	int			 pidfd;		/* readable at the exit */
	int			 pipe_fd;	/* the child's report */
	int			 parent_fd;
	int			 stage_fd;
	int			 drop;		/* root: switch uid, chown */
	uid_t			 uid;
	gid_t			 gid;
	struct unpack_limits	 lim;
	struct timespec		 deadline;	/* CLOCK_MONOTONIC */
	char			 parent[PATH_MAX];
	char			 base[NAME_MAX + 1];
	char			 stage[NAME_MAX + 1];
};

/* What the child keeps after fork: all it needs, nothing else. */
struct child_ctx {
	int				 archive_fd;
	int				 stage_fd;
	int				 report_fd;
	uid_t				 uid;
	gid_t				 gid;
	pid_t				 ppid;
	int				 drop;
	const struct unpack_limits	*lim;
	struct archive			*a;
	uint64_t			 made;	/* files and directories */
	uint64_t			 bytes;
};

static void	 child_main(struct child_ctx *) __attribute__((noreturn));
static void	 child_fail(enum unpack_status, const char *, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));

/* ---- helpers shared by both sides ---- */

void
unpack_limits_default(struct unpack_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_total = UNPACK_MAX_TOTAL;
	lim->max_file = UNPACK_MAX_TOTAL;
	lim->max_entries = UNPACK_MAX_ENTRIES;
}

static void
limits_fill(struct unpack_limits *lim)
{
	if (lim->max_total == 0)
		lim->max_total = UNPACK_MAX_TOTAL;
	if (lim->max_file == 0)
		lim->max_file = lim->max_total;
	if (lim->max_entries == 0)
		lim->max_entries = UNPACK_MAX_ENTRIES;
}

const char *
unpack_status_name(int st)
{
	switch (st) {
	case UNPACK_OK:
		return "ok";
	case UNPACK_BAD_ARCHIVE:
		return "bad_archive";
	case UNPACK_FORBIDDEN_ENTRY:
		return "forbidden_entry";
	case UNPACK_TOO_BIG:
		return "too_big";
	case UNPACK_NO_ENTRYPOINT:
		return "no_entrypoint";
	default:
		return "internal";
	}
}

int
unpack_http_status(int st)
{
	switch (st) {
	case UNPACK_OK:
		return 200;
	case UNPACK_BAD_ARCHIVE:
	case UNPACK_FORBIDDEN_ENTRY:
	case UNPACK_TOO_BIG:
	case UNPACK_NO_ENTRYPOINT:
		return 400;
	default:
		return 500;
	}
}

/*
 * The derived time limits scale with the unpacked cap: inflating and
 * writing 1 GiB takes a few CPU seconds, so 8 s per GiB is generous,
 * and the wall clock allows three times that for a slow disk.
 */
static int
limit_cpu_sec(const struct unpack_limits *lim)
{
	uint64_t	 sec;

	if (lim->cpu_sec > 0)
		return lim->cpu_sec;
	sec = 10 + lim->max_total / (128ULL << 20);
	return sec > 3600 ? 3600 : (int)sec;
}

static int
limit_timeout_ms(const struct unpack_limits *lim)
{
	if (lim->timeout_ms > 0)
		return lim->timeout_ms;
	return 3 * 1000 * limit_cpu_sec(lim);
}

/*
 * An entry name as it may appear in a message: printable ASCII only,
 * so that a report stays one line and valid UTF-8 in a JSON error.
 */
static const char *
shown(const char *name, char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; name[i] != '\0' && i + 4 < len; i++)
		buf[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
	if (name[i] != '\0' && len >= 4) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static int
is_dots(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' ||
	    (name[1] == '.' && name[2] == '\0'));
}

/* One pass over an open directory; the caller retries on ENOTEMPTY. */
static int	 rm_at(int, const char *, int);

static int
rm_contents(DIR *d, int depth)
{
	struct dirent	*de;

	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (is_dots(de->d_name))
			continue;
		if (rm_at(dirfd(d), de->d_name, depth + 1) == -1)
			return -1;
	}
	return 0;
}

/*
 * Remove name under dfd and everything below it, never following a
 * link: a symlink is unlinked, a directory is entered only through
 * O_NOFOLLOW.  The staged tree may be anything a compromised child made.
 */
static int
rm_at(int dfd, const char *name, int depth)
{
	DIR	*d;
	int	 fd, pass, saved;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth > RM_MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return -1;
	/* as a plain user we may need to re-open a directory made 0500 */
	(void)fchmod(fd, 0700);
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (pass = 0; pass < 3; pass++) {
		if (rm_contents(d, depth) == -1)
			break;
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0) {
			closedir(d);
			return 0;
		}
		if (errno != ENOTEMPTY && errno != EEXIST)
			break;
	}
	saved = errno;
	closedir(d);
	errno = saved;
	return -1;
}

int
unpack_remove_tree(int dirfd, const char *name)
{
	return rm_at(dirfd, name, 0);
}

/* ---- the child: reads the archive as the unprivileged uid ---- */

static void
child_fail(enum unpack_status st, const char *fmt, ...)
{
	char	 line[LINE_MAX_LEN];
	va_list	 ap;
	int	 n;

	n = snprintf(line, sizeof(line), "%d ", (int)st);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	/* one line: the parent reads up to the first newline */
	line[strcspn(line, "\n")] = '\0';
	strlcat(line, "\n", sizeof(line));
	(void)write(STDOUT_FILENO, line, strlen(line));
	_exit(1);
}

/*
 * Byspawn's own signal handling must not run in the child; SIGXFSZ is
 * ignored so that RLIMIT_FSIZE shows up as EFBIG, not as a kill.
 */
static void
child_signals(void)
{
	sigset_t	 none;
	int		 sig;

	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	(void)signal(SIGXFSZ, SIG_IGN);
	(void)signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * The archive becomes stdin, the report pipe stdout, and the staging
 * directory the working directory; every other descriptor byspawn had
 * (channels, sockets, other bundles) is closed before the drop.
 */
static void
child_fds(struct child_ctx *c)
{
	int	 a, r, null;

	if ((a = fcntl(c->archive_fd, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (r = fcntl(c->report_fd, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    dup2(r, STDOUT_FILENO) == -1 || dup2(a, STDIN_FILENO) == -1)
		_exit(2);
	if (fchdir(c->stage_fd) == -1)
		child_fail(UNPACK_INTERNAL, "fchdir staging: %s",
		    strerror(errno));
#ifndef UNPACK_SANITIZED
	/* sanitizer builds keep stderr so that reports from here show */
	if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1 ||
	    dup2(null, STDERR_FILENO) == -1)
		child_fail(UNPACK_INTERNAL, "/dev/null: %s", strerror(errno));
#else
	(void)null;
#endif
	if (close_range(3, ~0U, 0) == -1)
		child_fail(UNPACK_INTERNAL, "close_range: %s", strerror(errno));
	/* read the upload from its start, wherever byspawn left the offset */
	(void)lseek(STDIN_FILENO, 0, SEEK_SET);
}

/*
 * As root still: the staging directory becomes the root directory (no
 * other bundle, no config, no database to read should libarchive be
 * exploited), and a network and IPC namespace of its own keeps it from
 * the host's loopback services.  Dropping root afterwards makes both
 * stick: no CAP_SYS_CHROOT to break out, no descriptor outside.
 */
static void
child_isolate(struct child_ctx *c)
{
	if (!c->drop)
		return;
	if (unshare(CLONE_NEWNET | CLONE_NEWIPC) == -1)
		child_fail(UNPACK_INTERNAL, "unshare: %s", strerror(errno));
	if (chroot(".") == -1 || chdir("/") == -1)
		child_fail(UNPACK_INTERNAL, "chroot staging: %s",
		    strerror(errno));
}

static void
child_drop(struct child_ctx *c)
{
	uid_t	 ru, eu, su;
	gid_t	 rg, eg, sg;

	if (!c->drop)
		return;
	if (setgroups(0, NULL) == -1 ||
	    setresgid(c->gid, c->gid, c->gid) == -1 ||
	    setresuid(c->uid, c->uid, c->uid) == -1)
		child_fail(UNPACK_INTERNAL, "drop to %u:%u: %s",
		    (unsigned)c->uid, (unsigned)c->gid, strerror(errno));
	if (getresuid(&ru, &eu, &su) == -1 ||
	    getresgid(&rg, &eg, &sg) == -1 ||
	    ru != c->uid || eu != c->uid || su != c->uid ||
	    rg != c->gid || eg != c->gid || sg != c->gid ||
	    getgroups(0, NULL) != 0 || setresuid(0, 0, 0) != -1)
		child_fail(UNPACK_INTERNAL, "drop to %u:%u did not hold",
		    (unsigned)c->uid, (unsigned)c->gid);
}

static void
child_rlimit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit	 rl;

	rl.rlim_cur = soft;
	rl.rlim_max = hard;
	if (setrlimit(res, &rl) == -1)
		child_fail(UNPACK_INTERNAL, "setrlimit %d: %s", res,
		    strerror(errno));
}

static void
child_confine(struct child_ctx *c)
{
	rlim_t	 cpu = (rlim_t)limit_cpu_sec(c->lim);

	/* the uid change cleared any death signal: set it afterwards */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != c->ppid)
		_exit(3);
	if (prctl(PR_SET_DUMPABLE, 0) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		child_fail(UNPACK_INTERNAL, "prctl: %s", strerror(errno));
	child_rlimit(RLIMIT_FSIZE, c->lim->max_file, c->lim->max_file);
	child_rlimit(RLIMIT_NOFILE, CHILD_NOFILE, CHILD_NOFILE);
	child_rlimit(RLIMIT_CPU, cpu, cpu + 1);
	child_rlimit(RLIMIT_CORE, 0, 0);
	/* no helpers, no threads: nothing can outlive the child */
	child_rlimit(RLIMIT_NPROC, 0, 0);
#ifndef UNPACK_SANITIZED
	/* ASan reserves terabytes of shadow; only real builds can cap */
	child_rlimit(RLIMIT_AS, CHILD_AS, CHILD_AS);
#endif
	umask(0);
}

/*
 * Turn an entry name into a relative path of plain components:
 * "./a//b/" becomes "a/b", "./" becomes "".  Returns NULL when the
 * name is fine, else why it is not.
 */
static const char *
name_clean(const char *name, char *out)
{
	const char	*p, *q;
	size_t		 len, o = 0;
	int		 depth = 0;

	if (name[0] == '\0')
		return "empty name";
	if (strlen(name) >= PATH_MAX)
		return "name too long";
	for (p = name; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "control character in name";
	if (name[0] == '/')
		return "absolute path";
	for (p = name; *p != '\0'; p = q) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		q = strchrnul(p, '/');
		len = q - p;
		if (len == 1 && p[0] == '.')
			continue;
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return "'..' in path";
		if (len > NAME_MAX)
			return "name component too long";
		if (++depth > UNPACK_MAX_DEPTH)
			return "path too deep";
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, p, len);
		o += len;
	}
	out[o] = '\0';
	return NULL;
}

static void
child_count(struct child_ctx *c)
{
	if (++c->made > c->lim->max_entries)
		child_fail(UNPACK_TOO_BIG,
		    "more than %llu files and directories",
		    (unsigned long long)c->lim->max_entries);
}

/*
 * Open the directory that holds path's last component, making missing
 * ones on the way.  Those are made 0700 so that a later explicit entry
 * for the same directory can tell it apart from a duplicate (0755).
 * O_NOFOLLOW although this child never makes a link: belt and braces.
 */
static int
child_parent(struct child_ctx *c, char *path, const char **leaf,
    const char *shown_name)
{
	char	*p, *slash;
	int	 dfd, nfd;

	if ((dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		child_fail(UNPACK_INTERNAL, "open staging: %s",
		    strerror(errno));
	for (p = path; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		if (mkdirat(dfd, p, 0700) == 0)
			child_count(c);
		else if (errno != EEXIST)
			child_fail(UNPACK_INTERNAL, "mkdir %s: %s", shown_name,
			    strerror(errno));
		nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		*slash = '/';
		if (nfd == -1 && (errno == ENOTDIR || errno == ELOOP))
			child_fail(UNPACK_FORBIDDEN_ENTRY,
			    "path conflicts with an earlier entry: %s",
			    shown_name);
		if (nfd == -1)
			child_fail(UNPACK_INTERNAL, "open %s: %s", shown_name,
			    strerror(errno));
		close(dfd);
		dfd = nfd;
	}
	*leaf = p;
	return dfd;
}

static void
child_dir(struct child_ctx *c, char *path, const char *sn)
{
	struct stat	 st;
	const char	*leaf;
	int		 dfd;

	if (path[0] == '\0')
		return;		/* "./": the staging directory itself */
	dfd = child_parent(c, path, &leaf, sn);
	if (mkdirat(dfd, leaf, 0755) == 0) {
		child_count(c);
		close(dfd);
		return;
	}
	if (errno != EEXIST)
		child_fail(UNPACK_INTERNAL, "mkdir %s: %s", sn,
		    strerror(errno));
	if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == -1)
		child_fail(UNPACK_INTERNAL, "stat %s: %s", sn, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		child_fail(UNPACK_FORBIDDEN_ENTRY,
		    "path conflicts with an earlier entry: %s", sn);
	if ((st.st_mode & 07777) == 0755)
		child_fail(UNPACK_FORBIDDEN_ENTRY, "duplicate entry: %s", sn);
	if (fchmodat(dfd, leaf, 0755, 0) == -1)
		child_fail(UNPACK_INTERNAL, "chmod %s: %s", sn,
		    strerror(errno));
	close(dfd);
}

static void
child_write(int fd, const char *buf, size_t len, const char *sn)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EFBIG)
			child_fail(UNPACK_TOO_BIG, "file too large: %s", sn);
		if (n == -1)
			child_fail(UNPACK_INTERNAL, "write %s: %s", sn,
			    strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Copy the entry's data, holding both caps before every write. */
static void
child_copy(struct child_ctx *c, int fd, const char *sn)
{
	static char	 buf[CHILD_BUF];
	uint64_t	 size = 0;
	la_ssize_t	 n;

	for (;;) {
		n = archive_read_data(c->a, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0)
			child_fail(UNPACK_BAD_ARCHIVE, "%s: %s", sn,
			    archive_error_string(c->a));
		size += (uint64_t)n;
		c->bytes += (uint64_t)n;
		if (size > c->lim->max_file)
			child_fail(UNPACK_TOO_BIG,
			    "file larger than %llu bytes: %s",
			    (unsigned long long)c->lim->max_file, sn);
		if (c->bytes > c->lim->max_total)
			child_fail(UNPACK_TOO_BIG,
			    "unpacked size over %llu bytes",
			    (unsigned long long)c->lim->max_total);
		child_write(fd, buf, (size_t)n, sn);
	}
}

static void
child_file(struct child_ctx *c, struct archive_entry *e, char *path,
    const char *sn)
{
	struct stat	 st;
	const char	*leaf;
	mode_t		 mode;
	int		 dfd, fd;

	if (path[0] == '\0')
		child_fail(UNPACK_FORBIDDEN_ENTRY, "empty name");
	/* refuse on the declared size before a byte is written */
	if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0) {
		if ((uint64_t)archive_entry_size(e) > c->lim->max_file)
			child_fail(UNPACK_TOO_BIG,
			    "file larger than %llu bytes: %s",
			    (unsigned long long)c->lim->max_file, sn);
		if (c->bytes + (uint64_t)archive_entry_size(e) >
		    c->lim->max_total)
			child_fail(UNPACK_TOO_BIG,
			    "unpacked size over %llu bytes",
			    (unsigned long long)c->lim->max_total);
	}
	/* only the owner's execute bit survives, as rwxr-xr-x */
	mode = (archive_entry_perm(e) & S_IXUSR) ? 0755 : 0644;
	dfd = child_parent(c, path, &leaf, sn);
	fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (fd == -1 && errno == EEXIST) {
		if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			child_fail(UNPACK_FORBIDDEN_ENTRY,
			    "path conflicts with an earlier entry: %s", sn);
		child_fail(UNPACK_FORBIDDEN_ENTRY, "duplicate entry: %s", sn);
	}
	if (fd == -1)
		child_fail(UNPACK_INTERNAL, "create %s: %s", sn,
		    strerror(errno));
	close(dfd);
	child_count(c);
	child_copy(c, fd, sn);
	if (close(fd) == -1)
		child_fail(UNPACK_INTERNAL, "close %s: %s", sn,
		    strerror(errno));
}

static const char *
entry_kind(struct archive_entry *e)
{
	if (archive_entry_hardlink(e) != NULL)
		return "hard link";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
	case AE_IFDIR:
		return NULL;
	case AE_IFLNK:
		return "symbolic link";
	case AE_IFCHR:
		return "character device";
	case AE_IFBLK:
		return "block device";
	case AE_IFIFO:
		return "fifo";
	case AE_IFSOCK:
		return "socket";
	default:
		return "unsupported entry type";
	}
}

static void
child_entry(struct child_ctx *c, struct archive_entry *e)
{
	char		 path[PATH_MAX], sn[128];
	const char	*name, *why;

	if ((name = archive_entry_pathname(e)) == NULL)
		child_fail(UNPACK_FORBIDDEN_ENTRY, "entry without a name");
	shown(name, sn, sizeof(sn));
	if ((why = entry_kind(e)) != NULL)
		child_fail(UNPACK_FORBIDDEN_ENTRY, "%s: %s", why, sn);
	if ((why = name_clean(name, path)) != NULL)
		child_fail(UNPACK_FORBIDDEN_ENTRY, "%s%s%s", why,
		    sn[0] != '\0' ? ": " : "", sn);
	if (archive_entry_filetype(e) == AE_IFDIR)
		child_dir(c, path, sn);
	else
		child_file(c, e, path, sn);
}

/* gzip through zlib, never an external program; tar formats only */
static void
child_open(struct child_ctx *c)
{
	if ((c->a = archive_read_new()) == NULL)
		child_fail(UNPACK_INTERNAL, "archive_read_new failed");
	if (archive_read_support_filter_gzip(c->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(c->a) != ARCHIVE_OK)
		child_fail(UNPACK_INTERNAL, "libarchive without zlib or tar");
	if (archive_read_open_fd(c->a, STDIN_FILENO, CHILD_BUF) != ARCHIVE_OK)
		child_fail(UNPACK_BAD_ARCHIVE, "not a gzip-compressed tar "
		    "archive: %s", archive_error_string(c->a));
	/* the filter bid ran at open: exactly gzip over the raw bytes */
	if (archive_filter_count(c->a) != 2 ||
	    archive_filter_code(c->a, 0) != ARCHIVE_FILTER_GZIP)
		child_fail(UNPACK_BAD_ARCHIVE, "not a gzip-compressed archive");
}

static void
child_main(struct child_ctx *c)
{
	struct archive_entry	*e;
	char			 line[64];
	int			 r;

	child_signals();
	child_fds(c);
	/* pax names are UTF-8; a C locale would fail to convert them */
	(void)setlocale(LC_CTYPE, "C.UTF-8");
	child_isolate(c);
	child_drop(c);
	child_confine(c);

	child_open(c);
	while ((r = archive_read_next_header(c->a, &e)) != ARCHIVE_EOF) {
		/* ARCHIVE_RETRY ("damaged") is as fatal here as FATAL */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			child_fail(UNPACK_BAD_ARCHIVE, "%s",
			    archive_error_string(c->a));
		child_entry(c, e);
	}
	if (archive_read_close(c->a) != ARCHIVE_OK)
		child_fail(UNPACK_BAD_ARCHIVE, "%s",
		    archive_error_string(c->a));
	snprintf(line, sizeof(line), "0 %u %u\n", (unsigned)getuid(),
	    (unsigned)getgid());
	(void)write(STDOUT_FILENO, line, strlen(line));
	_exit(0);
}

/* ---- the parent (root) ---- */

static int
fail(char *err, size_t errlen, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int st, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return st;
}

static void
job_close(struct unpack_job *j)
{
	if (j == NULL)
		return;
	if (j->pipe_fd != -1)
		close(j->pipe_fd);
	if (j->pidfd != -1)
		close(j->pidfd);
	if (j->stage_fd != -1)
		close(j->stage_fd);
	if (j->parent_fd != -1)
		close(j->parent_fd);
	free(j);
}

/*
 * The child goes first, then the staging directory; the destination
 * was never touched.
 */
static void
job_discard(struct unpack_job *j)
{
	int	 status;

	if (j == NULL)
		return;
	if (j->pid > 0) {
		(void)kill(j->pid, SIGKILL);
		while (waitpid(j->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	if (j->parent_fd != -1 && j->stage[0] != '\0' &&
	    unpack_remove_tree(j->parent_fd, j->stage) == -1)
		log_warn("unpack: remove %s/%s", j->parent, j->stage);
	job_close(j);
}

static int
split_dest(struct unpack_job *j, const char *dest, char *err, size_t errlen)
{
	const char	*slash, *base;
	size_t		 plen;

	if ((slash = strrchr(dest, '/')) == NULL) {
		base = dest;
		plen = strlcpy(j->parent, ".", sizeof(j->parent));
	} else {
		base = slash + 1;
		plen = slash == dest ? 1 : (size_t)(slash - dest);
		if (plen < sizeof(j->parent)) {
			memcpy(j->parent, dest, plen);
			j->parent[plen] = '\0';
		}
	}
	if (plen >= sizeof(j->parent) || base[0] == '\0' || is_dots(base) ||
	    strlen(base) + strlen(STAGE_SUFFIX) + 6 > NAME_MAX ||
	    strlcpy(j->base, base, sizeof(j->base)) >= sizeof(j->base))
		return fail(err, errlen, UNPACK_INTERNAL,
		    "bad destination: %s", dest);
	return UNPACK_OK;
}

/*
 * mkdtemp relative to the parent's descriptor: "<base>.unpack-XXXXXX",
 * root's and 0700 while it is made, then given to the unpack uid.
 */
static int
stage_create(struct unpack_job *j, char *err, size_t errlen)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t		 n, i;
	int		 tries;

	for (tries = 0; tries < 100; tries++) {
		n = (size_t)snprintf(j->stage, sizeof(j->stage), "%s%s",
		    j->base, STAGE_SUFFIX);
		for (i = 0; i < 6; i++)
			j->stage[n + i] = chars[arc4random_uniform(
			    sizeof(chars) - 1)];
		j->stage[n + i] = '\0';
		if (mkdirat(j->parent_fd, j->stage, 0700) == 0)
			break;
		if (errno != EEXIST) {
			j->stage[0] = '\0';
			return fail(err, errlen, UNPACK_INTERNAL,
			    "mkdir in %s: %s", j->parent, strerror(errno));
		}
	}
	if (tries == 100) {
		j->stage[0] = '\0';
		return fail(err, errlen, UNPACK_INTERNAL,
		    "no staging name free in %s", j->parent);
	}
	j->stage_fd = openat(j->parent_fd, j->stage, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (j->stage_fd == -1 || (j->drop &&
	    fchown(j->stage_fd, j->uid, j->gid) == -1))
		return fail(err, errlen, UNPACK_INTERNAL, "staging %s/%s: %s",
		    j->parent, j->stage, strerror(errno));
	return UNPACK_OK;
}

static int
job_fork(struct unpack_job *j, int archive_fd, char *err, size_t errlen)
{
	struct child_ctx	 c;
	int			 p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return fail(err, errlen, UNPACK_INTERNAL, "pipe: %s",
		    strerror(errno));
	memset(&c, 0, sizeof(c));
	c.archive_fd = archive_fd;
	c.stage_fd = j->stage_fd;
	c.report_fd = p[1];
	c.uid = j->uid;
	c.gid = j->gid;
	c.ppid = getpid();
	c.drop = j->drop;
	c.lim = &j->lim;
	if ((j->pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return fail(err, errlen, UNPACK_INTERNAL, "fork: %s",
		    strerror(errno));
	}
	if (j->pid == 0)
		child_main(&c);
	close(p[1]);
	j->pipe_fd = p[0];
	/* a pidfd tells the exit apart from a child that shut its pipe */
	if ((j->pidfd = pidfd_open(j->pid, 0)) == -1)
		log_debug("unpack: pidfd_open: %s; polling", strerror(errno));
	return UNPACK_OK;
}

int
unpack_start(struct unpack_job **jp, int archive_fd, const char *dest_dir,
    const struct unpack_limits *lim, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct unpack_job	*j;
	struct stat		 st;
	int			 rc, ms;

	*jp = NULL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return fail(err, errlen, UNPACK_INTERNAL, "calloc: %s",
		    strerror(errno));
	j->pid = -1;
	j->pipe_fd = j->pidfd = j->stage_fd = j->parent_fd = -1;
	j->lim = *lim;
	limits_fill(&j->lim);
	j->drop = geteuid() == 0;
	j->uid = j->drop ? uid : geteuid();
	j->gid = j->drop ? gid : getegid();
	if (j->drop && (uid == 0 || gid == 0)) {
		rc = fail(err, errlen, UNPACK_INTERNAL,
		    "refusing to unpack as root");
		goto bad;
	}
	if ((rc = split_dest(j, dest_dir, err, errlen)) != UNPACK_OK)
		goto bad;
	j->parent_fd = open(j->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->parent_fd == -1) {
		rc = fail(err, errlen, UNPACK_INTERNAL, "%s: %s", j->parent,
		    strerror(errno));
		goto bad;
	}
	if (fstatat(j->parent_fd, j->base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = fail(err, errlen, UNPACK_INTERNAL, "%s: exists", dest_dir);
		goto bad;
	}
	if (errno != ENOENT) {
		rc = fail(err, errlen, UNPACK_INTERNAL, "%s: %s", dest_dir,
		    strerror(errno));
		goto bad;
	}
	if ((rc = stage_create(j, err, errlen)) != UNPACK_OK ||
	    (rc = job_fork(j, archive_fd, err, errlen)) != UNPACK_OK)
		goto bad;
	ms = limit_timeout_ms(&j->lim);
	clock_gettime(CLOCK_MONOTONIC, &j->deadline);
	j->deadline.tv_sec += ms / 1000;
	j->deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (j->deadline.tv_nsec >= 1000000000) {
		j->deadline.tv_sec++;
		j->deadline.tv_nsec -= 1000000000;
	}
	*jp = j;
	return UNPACK_OK;
 bad:
	job_discard(j);
	return rc;
}

int
unpack_job_fd(const struct unpack_job *j)
{
	/* without a pidfd, the report pipe ends when the child does */
	return j->pidfd != -1 ? j->pidfd : j->pipe_fd;
}

pid_t
unpack_job_pid(const struct unpack_job *j)
{
	return j->pid;
}

static int
ms_left(const struct timespec *deadline)
{
	struct timespec	 now;
	long long	 ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * Wait for the child until the deadline; a child past it is killed.
 * 1 when it exited by itself, 0 when it was killed, -1 on error.
 */
static int
job_wait(struct unpack_job *j, int *status)
{
	struct pollfd	 pfd;
	pid_t		 r;
	int		 ms;

	for (;;) {
		if ((r = waitpid(j->pid, status, WNOHANG)) == j->pid)
			return 1;
		if (r == -1 && errno != EINTR)
			return -1;
		if ((ms = ms_left(&j->deadline)) == 0)
			break;
		pfd.fd = j->pidfd;
		pfd.events = POLLIN;
		if (j->pidfd != -1)
			(void)poll(&pfd, 1, ms);
		else
			(void)poll(NULL, 0, ms < 10 ? ms : 10);
	}
	(void)kill(j->pid, SIGKILL);
	while (waitpid(j->pid, status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* The report is one short line written just before exit. */
static void
job_report(struct unpack_job *j, char *line, size_t len)
{
	size_t	 off = 0;
	ssize_t	 n;

	(void)fcntl(j->pipe_fd, F_SETFL, O_NONBLOCK);
	while (off + 1 < len) {
		n = read(j->pipe_fd, line + off, len - off - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	line[off] = '\0';
	line[strcspn(line, "\n")] = '\0';
}

static int
job_outcome(struct unpack_job *j, struct unpack_result *res, char *err,
    size_t errlen)
{
	char		 line[LINE_MAX_LEN], reason[LINE_MAX_LEN];
	unsigned	 u, g;
	int		 status, w, st;

	w = job_wait(j, &status);
	/* reaped, or (ECHILD) reaped by someone else: never signal it again */
	j->pid = -1;
	if (w == -1)
		return fail(err, errlen, UNPACK_INTERNAL, "waitpid: %s",
		    strerror(errno));
	if (w == 0 || (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU ||
	    WTERMSIG(status) == SIGKILL)))
		return fail(err, errlen, UNPACK_TOO_BIG,
		    "bundle took too long to unpack");
	job_report(j, line, sizeof(line));
	if (WIFSIGNALED(status))
		return fail(err, errlen, UNPACK_INTERNAL,
		    "unpacker killed by signal %d", WTERMSIG(status));
	st = line[0] - '0';
	if (line[0] == '\0' || line[1] != ' ' || st < UNPACK_OK ||
	    st > UNPACK_INTERNAL || (st == UNPACK_OK) !=
	    (WEXITSTATUS(status) == 0))
		return fail(err, errlen, UNPACK_INTERNAL,
		    "unpacker exited %d without a report", WEXITSTATUS(status));
	/* the reason goes to the client: printable ASCII, whoever wrote it */
	if (st != UNPACK_OK)
		return fail(err, errlen, st, "%s",
		    shown(line + 2, reason, sizeof(reason)));
	if (sscanf(line + 2, "%u %u", &u, &g) != 2)
		return fail(err, errlen, UNPACK_INTERNAL, "bad report: %s",
		    line);
	res->child_uid = u;
	res->child_gid = g;
	return UNPACK_OK;
}

static int
is_regular_at(int dfd, const char *name)
{
	struct stat	 st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

static int
entrypoint(struct unpack_job *j, struct unpack_result *res, char *err,
    size_t errlen)
{
	if (is_regular_at(j->stage_fd, "app.R"))
		res->entrypoint = UNPACK_ENTRY_APP;
	else if (is_regular_at(j->stage_fd, "ui.R") &&
	    is_regular_at(j->stage_fd, "server.R"))
		res->entrypoint = UNPACK_ENTRY_UI_SERVER;
	else
		return fail(err, errlen, UNPACK_NO_ENTRYPOINT,
		    "missing entrypoint: app.R (or ui.R and server.R)");
	return UNPACK_OK;
}

/* The root parent's walk over what the child made. */
struct adopt {
	struct unpack_job	*j;
	struct unpack_result	*res;
	char			*err;
	size_t			 errlen;
};

static int	 adopt_dir(struct adopt *, int, int);

static int
adopt_check(struct adopt *ad, const struct stat *st, const char *name)
{
	const struct unpack_limits *lim = &ad->j->lim;
	char	 sn[128];

	shown(name, sn, sizeof(sn));
	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL,
		    "staged tree holds a special file: %s", sn);
	if (st->st_uid != ad->j->uid ||
	    (S_ISREG(st->st_mode) && st->st_nlink != 1))
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL,
		    "staged tree holds a foreign file: %s", sn);
	if (S_ISREG(st->st_mode)) {
		ad->res->files++;
		ad->res->bytes += (uint64_t)st->st_size;
	} else
		ad->res->dirs++;
	/* a compromised child is not trusted with the caps either */
	if (ad->res->files + ad->res->dirs > lim->max_entries ||
	    ad->res->bytes > lim->max_total ||
	    (uint64_t)st->st_size > lim->max_file)
		return fail(ad->err, ad->errlen, UNPACK_TOO_BIG,
		    "staged tree over the caps");
	return UNPACK_OK;
}

/*
 * Hand one node to root.  It is opened with O_NOFOLLOW and must be the
 * inode fstatat saw, so chown and chmod can only ever touch the file
 * the child made (a hard link to a foreign file was refused above).
 */
static int
adopt_node(struct adopt *ad, int dfd, const char *name, int depth)
{
	struct stat	 st, fst;
	mode_t		 mode;
	int		 fd, rc;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL, "stat: %s",
		    strerror(errno));
	if ((rc = adopt_check(ad, &st, name)) != UNPACK_OK)
		return rc;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd == -1 || fstat(fd, &fst) == -1 || fst.st_ino != st.st_ino ||
	    fst.st_dev != st.st_dev || fst.st_mode != st.st_mode) {
		if (fd != -1)
			close(fd);
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL,
		    "staged tree changed under us");
	}
	if (S_ISDIR(st.st_mode))
		mode = 0755;
	else
		mode = (st.st_mode & S_IXUSR) ? 0755 : 0644;
	if ((ad->j->drop && fchown(fd, 0, 0) == -1) ||
	    fchmod(fd, mode) == -1) {
		close(fd);
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL,
		    "chown/chmod: %s", strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return adopt_dir(ad, fd, depth + 1);
	close(fd);
	return UNPACK_OK;
}

/* Walk the directory open at fd (consumed). */
static int
adopt_dir(struct adopt *ad, int fd, int depth)
{
	struct dirent	*de;
	DIR		*d;
	int		 rc = UNPACK_OK;

	if (depth > UNPACK_MAX_DEPTH + 1) {
		close(fd);
		return fail(ad->err, ad->errlen, UNPACK_TOO_BIG,
		    "staged tree too deep");
	}
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return fail(ad->err, ad->errlen, UNPACK_INTERNAL,
		    "fdopendir: %s", strerror(errno));
	}
	errno = 0;
	while (rc == UNPACK_OK && (de = readdir(d)) != NULL) {
		if (!is_dots(de->d_name))
			rc = adopt_node(ad, dirfd(d), de->d_name, depth);
		errno = 0;
	}
	if (rc == UNPACK_OK && errno != 0)
		rc = fail(ad->err, ad->errlen, UNPACK_INTERNAL, "readdir: %s",
		    strerror(errno));
	closedir(d);
	return rc;
}

/*
 * Lock the child's leftovers out first (root's, 0700), then fix the
 * tree, and open the top for workers only once all of it is root's.
 */
static int
stage_adopt(struct unpack_job *j, struct unpack_result *res, char *err,
    size_t errlen)
{
	struct adopt	 ad = { j, res, err, errlen };
	struct stat	 st;
	int		 fd, rc;

	if (fstat(j->stage_fd, &st) == -1 || st.st_uid != j->uid)
		return fail(err, errlen, UNPACK_INTERNAL,
		    "staging directory changed owner");
	if ((j->drop && fchown(j->stage_fd, 0, 0) == -1) ||
	    fchmod(j->stage_fd, 0700) == -1)
		return fail(err, errlen, UNPACK_INTERNAL, "chown staging: %s",
		    strerror(errno));
	if ((fd = openat(j->stage_fd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return fail(err, errlen, UNPACK_INTERNAL, "open staging: %s",
		    strerror(errno));
	res->files = res->dirs = res->bytes = 0;
	if ((rc = adopt_dir(&ad, fd, 1)) != UNPACK_OK)
		return rc;
	if (fchmod(j->stage_fd, 0755) == -1)
		return fail(err, errlen, UNPACK_INTERNAL, "chmod staging: %s",
		    strerror(errno));
	return UNPACK_OK;
}

/*
 * For a filesystem without RENAME_NOREPLACE: check, then rename.  The
 * window only matters if something else makes the same bundle id.
 */
static int
stage_rename_racy(struct unpack_job *j)
{
	struct stat	 st;

	if (fstatat(j->parent_fd, j->base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return renameat(j->parent_fd, j->stage, j->parent_fd, j->base);
}

int
unpack_finish(struct unpack_job *j, struct unpack_result *res, char *err,
    size_t errlen)
{
	int	 rc;

	memset(res, 0, sizeof(*res));
	if ((rc = job_outcome(j, res, err, errlen)) != UNPACK_OK ||
	    (rc = entrypoint(j, res, err, errlen)) != UNPACK_OK ||
	    (rc = stage_adopt(j, res, err, errlen)) != UNPACK_OK)
		goto bad;
	/* NOREPLACE: the destination must still not exist, atomically */
	if (renameat2(j->parent_fd, j->stage, j->parent_fd, j->base,
	    RENAME_NOREPLACE) == -1 && (errno != EINVAL ||
	    stage_rename_racy(j) == -1)) {
		rc = fail(err, errlen, UNPACK_INTERNAL, "rename to %s/%s: %s",
		    j->parent, j->base, strerror(errno));
		goto bad;
	}
	job_close(j);
	return UNPACK_OK;
 bad:
	job_discard(j);
	return rc;
}

void
unpack_abort(struct unpack_job *j)
{
	job_discard(j);
}

int
bundle_unpack(int archive_fd, const char *dest_dir,
    const struct unpack_limits *lim, uid_t uid, gid_t gid,
    struct unpack_result *res, char *err, size_t errlen)
{
	struct unpack_job	*j;
	int			 rc;

	memset(res, 0, sizeof(*res));
	if (errlen > 0)
		err[0] = '\0';
	if ((rc = unpack_start(&j, archive_fd, dest_dir, lim, uid, gid, err,
	    errlen)) != UNPACK_OK)
		return rc;
	return unpack_finish(j, res, err, errlen);
}
