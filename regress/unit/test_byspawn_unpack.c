/*
 * Bundle unpacking: a valid bundle lands root's with fixed modes; every
 * hostile archive is refused with its class and reason and leaves
 * nothing behind.  The archives are built here with libarchive's write
 * API, so no tool or fixture file is needed.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include <archive.h>
#include <archive_entry.h>
#include <check.h>

#include "byspawn.h"
#include "log.h"

#define NOBODY		65534	/* nobody:nogroup on Debian */

static char		 tmp[64];		/* 0700, root's */
static char		 apps[128];		/* the parent of dest */
static char		 dest[256];
static char		 arpath[256];		/* the upload, 0600 */
static struct unpack_limits lim;
static struct unpack_result res;
static char		 err[512];
static int		 ar_fd = -1;		/* the archive being written */

static void
setup(void)
{
	strlcpy(tmp, "/tmp/test-unpack.XXXXXX", sizeof(tmp));
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(apps, sizeof(apps), "%s/apps", tmp);
	ck_assert_int_eq(mkdir(apps, 0755), 0);
	snprintf(dest, sizeof(dest), "%s/b1", apps);
	snprintf(arpath, sizeof(arpath), "%s/b1.tar.gz", tmp);
	unpack_limits_default(&lim);
	memset(&res, 0, sizeof(res));
	err[0] = '\0';
}

static void
teardown(void)
{
	int	 fd;

	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	unpack_remove_tree(fd, tmp + strlen("/tmp/"));
	close(fd);
}

/* ---- building archives ---- */

static struct archive *
ar_new_fmt(int format, int gzip)
{
	struct archive	*a;

	ar_fd = open(arpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(ar_fd, 0);
	ck_assert_ptr_nonnull(a = archive_write_new());
	ck_assert_int_eq(archive_write_set_format(a, format), ARCHIVE_OK);
	if (gzip)
		ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	/* archive_write_open_fd does not take the fd: ar_end closes it */
	ck_assert_int_eq(archive_write_open_fd(a, ar_fd), ARCHIVE_OK);
	return a;
}

static struct archive *
ar_new(void)
{
	return ar_new_fmt(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 1);
}

static struct archive_entry *
ar_entry(const char *name, mode_t type, mode_t perm, int64_t size)
{
	struct archive_entry	*e;

	ck_assert_ptr_nonnull(e = archive_entry_new());
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, size);
	archive_entry_set_uid(e, 1234);
	archive_entry_set_gid(e, 1234);
	archive_entry_set_mtime(e, 1700000000, 0);
	return e;
}

static void
ar_put(struct archive *a, struct archive_entry *e, const void *data,
    size_t len)
{
	ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
	if (len > 0)
		ck_assert_int_eq(archive_write_data(a, data, len),
		    (la_ssize_t)len);
	archive_entry_free(e);
}

static void
ar_file(struct archive *a, const char *name, mode_t perm, const char *text)
{
	ar_put(a, ar_entry(name, AE_IFREG, perm, strlen(text)), text,
	    strlen(text));
}

static void
ar_dir(struct archive *a, const char *name, mode_t perm)
{
	ar_put(a, ar_entry(name, AE_IFDIR, perm, 0), NULL, 0);
}

static void
ar_bytes(struct archive *a, const char *name, size_t size, int random)
{
	static char		 buf[65536];
	struct archive_entry	*e;
	size_t			 n, i;

	e = ar_entry(name, AE_IFREG, 0644, size);
	ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
	archive_entry_free(e);
	for (; size > 0; size -= n) {
		n = size < sizeof(buf) ? size : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = random ? (char)arc4random() : 0;
		ck_assert_int_eq(archive_write_data(a, buf, n), (la_ssize_t)n);
	}
}

static void
ar_end(struct archive *a)
{
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	if (ar_fd != -1)
		close(ar_fd);
	ar_fd = -1;
}

static void
ar_app(struct archive *a)
{
	ar_file(a, "app.R", 0644, "library(shiny)\nshinyApp(ui, server)\n");
}

static void
write_raw(const void *buf, size_t len)
{
	int	 fd;

	fd = open(arpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* gzip arbitrary bytes into the upload */
static void
write_gz(const void *buf, size_t len)
{
	struct archive	*a;

	ck_assert_ptr_nonnull(a = archive_write_new());
	ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_set_format_raw(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, arpath), ARCHIVE_OK);
	ar_put(a, ar_entry("raw", AE_IFREG, 0644, len), buf, len);
	ar_end(a);
}

/* One ustar header, by hand, for what libarchive will not write. */
static void
tar_hdr(char *blk, const char *name, char type, unsigned size)
{
	unsigned	 sum = 0;
	size_t		 i;

	ck_assert_uint_le(strlen(name), 100);
	memset(blk, 0, 512);
	memcpy(blk, name, strlen(name));
	snprintf(blk + 100, 8, "%07o", 0644u);
	snprintf(blk + 108, 8, "%07o", 0u);
	snprintf(blk + 116, 8, "%07o", 0u);
	snprintf(blk + 124, 12, "%011o", size);
	snprintf(blk + 136, 12, "%011o", 0u);
	memset(blk + 148, ' ', 8);
	blk[156] = type;
	memcpy(blk + 257, "ustar", 6);
	memcpy(blk + 263, "00", 2);
	for (i = 0; i < 512; i++)
		sum += (unsigned char)blk[i];
	snprintf(blk + 148, 7, "%06o", sum & 0777777u);
}

/* ---- running and checking ---- */

static int
unpack(void)
{
	int	 fd, rc;

	ck_assert_int_ge(fd = open(arpath, O_RDONLY | O_CLOEXEC), 0);
	rc = bundle_unpack(fd, dest, &lim, NOBODY, NOBODY, &res, err,
	    sizeof(err));
	close(fd);
	return rc;
}

static int
entries_in(const char *dir)
{
	struct dirent	*de;
	DIR		*d;
	int		 n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
expect_reject(int want, const char *reason)
{
	int	 rc;

	rc = unpack();
	ck_assert_msg(rc == want, "got %s (%s), want %s",
	    unpack_status_name(rc), err, unpack_status_name(want));
	ck_assert_msg(strstr(err, reason) != NULL, "reason \"%s\", want \"%s\"",
	    err, reason);
	/* no dest, no staging directory: apps/ is as empty as before */
	ck_assert_int_eq(entries_in(apps), 0);
}

static void
expect_ok(void)
{
	int	 rc;

	rc = unpack();
	ck_assert_msg(rc == UNPACK_OK, "got %s: %s", unpack_status_name(rc),
	    err);
	/* dest only, the staging directory is gone */
	ck_assert_int_eq(entries_in(apps), 1);
}

/* mode and owner of dest/rel */
static void
expect_node(const char *rel, mode_t type, mode_t perm)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	snprintf(path, sizeof(path), "%s/%s", dest, rel);
	ck_assert_msg(lstat(path, &st) == 0, "%s: %s", rel, strerror(errno));
	ck_assert_msg((st.st_mode & S_IFMT) == type, "%s: type %o", rel,
	    st.st_mode & S_IFMT);
	ck_assert_msg((st.st_mode & 07777) == perm, "%s: mode %o, want %o",
	    rel, st.st_mode & 07777, perm);
	if (geteuid() == 0) {
		ck_assert_uint_eq(st.st_uid, 0);
		ck_assert_uint_eq(st.st_gid, 0);
	}
}

static void
expect_content(const char *rel, const char *text)
{
	char	 path[PATH_MAX], buf[256];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "%s/%s", dest, rel);
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, text);
}

/* the staging directory of the running unpack, in apps/ */
static void
find_stage(char *path, size_t len)
{
	struct dirent	*de;
	DIR		*d;

	path[0] = '\0';
	ck_assert_ptr_nonnull(d = opendir(apps));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "b1.unpack-", 10) == 0)
			snprintf(path, len, "%s/%s", apps, de->d_name);
	closedir(d);
	ck_assert_msg(path[0] != '\0', "no staging directory");
}

static uid_t
child_uid(void)
{
	return geteuid() == 0 ? NOBODY : geteuid();
}

/* ---- valid bundles ---- */

START_TEST(t_valid)
{
	struct archive	*a = ar_new();
	struct stat	 st;

	ar_app(a);
	ar_dir(a, "www", 0700);
	ar_file(a, "www/style.css", 0600, "body {}\n");
	ar_file(a, "www/js/app.js", 0644, "1;\n");	/* js/ implicit */
	ar_file(a, "www/..hidden", 0644, "dots in a name are fine\n");
	ar_file(a, "run.sh", 0700, "#!/bin/sh\n");
	ar_file(a, "bin/tool", 04777, "setuid and o+w\n");
	ar_file(a, "data/x.csv", 0666, "a,b\n");
	ar_dir(a, "data", 0777);	/* explicit after implicit */
	ar_file(a, "empty", 0644, "");
	ar_end(a);

	/* the upload is root's alone: the child reads the inherited fd */
	ck_assert_int_eq(stat(arpath, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);

	expect_ok();
	ck_assert_uint_eq(res.files, 8);
	ck_assert_uint_eq(res.dirs, 4);
	ck_assert_uint_eq(res.bytes, 36 + 8 + 3 + 24 + 10 + 15 + 4);
	ck_assert_int_eq(res.entrypoint, UNPACK_ENTRY_APP);
	ck_assert_uint_eq(res.child_uid, child_uid());
	if (geteuid() == 0)
		ck_assert_uint_eq(res.child_gid, NOBODY);

	expect_node(".", S_IFDIR, 0755);
	expect_node("app.R", S_IFREG, 0644);
	expect_node("www", S_IFDIR, 0755);
	expect_node("www/js", S_IFDIR, 0755);
	expect_node("www/style.css", S_IFREG, 0644);
	expect_node("www/js/app.js", S_IFREG, 0644);
	expect_node("www/..hidden", S_IFREG, 0644);
	expect_node("run.sh", S_IFREG, 0755);
	expect_node("bin", S_IFDIR, 0755);
	expect_node("bin/tool", S_IFREG, 0755);
	expect_node("data", S_IFDIR, 0755);
	expect_node("data/x.csv", S_IFREG, 0644);
	expect_node("empty", S_IFREG, 0644);
	expect_content("app.R", "library(shiny)\nshinyApp(ui, server)\n");
	expect_content("www/js/app.js", "1;\n");
	expect_content("bin/tool", "setuid and o+w\n");
}
END_TEST

/* what "tar -C dir -czf b.tar.gz ." makes, in GNU format */
START_TEST(t_valid_dot_prefix_gnu)
{
	struct archive	*a = ar_new_fmt(ARCHIVE_FORMAT_TAR_GNUTAR, 1);
	char		 longname[300];

	ar_dir(a, "./", 0755);
	ar_file(a, "./app.R", 0644, "x\n");
	ar_dir(a, "./www/", 0755);
	ar_file(a, "./www//a.js", 0644, "y\n");
	/* a GNU long name */
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "./www/", 6);
	longname[250] = '\0';
	ar_file(a, longname, 0644, "z\n");
	ar_end(a);

	expect_ok();
	ck_assert_uint_eq(res.files, 3);
	ck_assert_uint_eq(res.dirs, 1);
	expect_content("www/a.js", "y\n");
	expect_content(longname + 2, "z\n");
}
END_TEST

START_TEST(t_valid_ui_server)
{
	struct archive	*a = ar_new_fmt(ARCHIVE_FORMAT_TAR_USTAR, 1);

	ar_file(a, "ui.R", 0644, "fluidPage()\n");
	ar_file(a, "server.R", 0644, "function(input, output) {}\n");
	ar_end(a);

	expect_ok();
	ck_assert_int_eq(res.entrypoint, UNPACK_ENTRY_UI_SERVER);
	expect_node("ui.R", S_IFREG, 0644);
}
END_TEST

/* pax carries UTF-8 names; the unpacker must not choke on them */
START_TEST(t_valid_utf8_name)
{
	struct archive	*a = ar_new();


	/*
	 * libarchive's pax writer needs a UTF-8 locale for this name;
	 * byspawn itself stays in the C locale, as the unpack below does.
	 */
	ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
	ar_app(a);
	ar_file(a, "www/donn\xc3\xa9""es.csv", 0644, "1\n");
	ar_end(a);
	setlocale(LC_CTYPE, "C");

	expect_ok();
	expect_content("www/donn\xc3\xa9""es.csv", "1\n");
}
END_TEST

/* The two-step API, as an event loop would drive it. */
START_TEST(t_job_api)
{
	struct archive		*a = ar_new();
	struct unpack_job	*j;
	struct pollfd		 pfd;
	int			 fd;

	ar_app(a);
	ar_end(a);
	ck_assert_int_ge(fd = open(arpath, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(unpack_start(&j, fd, dest, &lim, NOBODY, NOBODY,
	    err, sizeof(err)), UNPACK_OK);
	close(fd);
	pfd.fd = unpack_job_fd(j);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(unpack_finish(j, &res, err, sizeof(err)), UNPACK_OK);
	ck_assert_uint_eq(res.files, 1);
	expect_node("app.R", S_IFREG, 0644);

	/* an aborted job leaves nothing */
	snprintf(dest, sizeof(dest), "%s/b2", apps);
	ck_assert_int_ge(fd = open(arpath, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(unpack_start(&j, fd, dest, &lim, NOBODY, NOBODY,
	    err, sizeof(err)), UNPACK_OK);
	close(fd);
	unpack_abort(j);
	ck_assert_int_eq(entries_in(apps), 1);
}
END_TEST

/* /proc/pid/<file> into buf; 0 when the process is gone */
static int
proc_read(pid_t pid, const char *file, char *buf, size_t len)
{
	char	 path[64];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((fd = open(path, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0;
}

static int
proc_fds(pid_t pid)
{
	char	 path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return entries_in(path);
}

/*
 * The child as it waits for its first byte (the upload is a pipe here
 * that stays empty): dropped, no groups, no new privileges, its
 * rlimits, and only stdin, stdout, stderr open.
 */
START_TEST(t_child_confined)
{
	struct unpack_job	*j;
	struct archive		*a;
	char			 st[4096], lims[4096], want[PATH_MAX], *g;
	off_t			 size;
	ssize_t			 n;
	pid_t			 pid;
	int			 p[2], i, fd;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(unpack_start(&j, p[0], dest, &lim, NOBODY, NOBODY,
	    err, sizeof(err)), UNPACK_OK);
	close(p[0]);
	pid = unpack_job_pid(j);
	for (i = 0; i < 500; i++) {
		ck_assert(proc_read(pid, "status", st, sizeof(st)));
		if (strstr(st, "\nState:\tS") != NULL &&
		    strstr(st, "\nNoNewPrivs:\t1\n") != NULL)
			break;
		usleep(10000);
	}
	snprintf(want, sizeof(want), "\nUid:\t%u\t%u\t%u\t%u\n",
	    child_uid(), child_uid(), child_uid(), child_uid());
	ck_assert_msg(strstr(st, want) != NULL, "%s", st);
	if (geteuid() == 0) {
		ck_assert_ptr_nonnull(strstr(st, "\nGid:\t65534\t65534\t"));
		ck_assert_ptr_nonnull(g = strstr(st, "\nGroups:\t"));
		g += strlen("\nGroups:\t");
		ck_assert_msg(g[strspn(g, " ")] == '\n', "groups: %s", g);
		ck_assert_ptr_nonnull(strstr(st,
		    "\nCapEff:\t0000000000000000"));
	}
	ck_assert_ptr_nonnull(strstr(st, "\nNoNewPrivs:\t1\n"));
	ck_assert(proc_read(pid, "limits", lims, sizeof(lims)));
	ck_assert_msg(strstr(lims, "Max open files            16") != NULL,
	    "%s", lims);
	ck_assert_ptr_nonnull(strstr(lims, "Max processes             0"));
	ck_assert_ptr_nonnull(strstr(lims,
	    "Max file size             2147483648"));
	/* the child is not dumpable: only root may look into it */
	if (geteuid() == 0) {
		ck_assert_int_eq(proc_fds(pid), 3);
		/* chrooted into its staging directory, own net namespace */
		find_stage(want, sizeof(want));
		snprintf(st, sizeof(st), "/proc/%d/root", (int)pid);
		ck_assert_int_gt(n = readlink(st, lims, sizeof(lims) - 1), 0);
		lims[n] = '\0';
		ck_assert_str_eq(lims, want);
		snprintf(st, sizeof(st), "/proc/%d/ns/net", (int)pid);
		ck_assert_int_gt(n = readlink(st, lims, sizeof(lims) - 1), 0);
		lims[n] = '\0';
		ck_assert_int_gt(n = readlink("/proc/self/ns/net", want,
		    sizeof(want) - 1), 0);
		want[n] = '\0';
		ck_assert_str_ne(lims, want);
	}

	/* now feed it a bundle through the pipe */
	a = ar_new();
	ar_app(a);
	ar_end(a);
	ck_assert_int_ge(fd = open(arpath, O_RDONLY), 0);
	while ((size = read(fd, st, sizeof(st))) > 0)
		ck_assert_int_eq(write(p[1], st, size), size);
	close(fd);
	close(p[1]);
	ck_assert_int_eq(unpack_finish(j, &res, err, sizeof(err)), UNPACK_OK);
	expect_node("app.R", S_IFREG, 0644);
}
END_TEST

/*
 * What a compromised child could leave in the staging directory (here
 * planted by the test while the child waits on its pipe): root's walk
 * refuses it, removes it without following it, and touches nothing
 * outside.
 */
enum { PLANT_SYMLINK, PLANT_HARDLINK, PLANT_FOREIGN, PLANT_N };

START_TEST(t_parent_distrusts)
{
	struct unpack_job	*j;
	struct archive		*a;
	struct stat		 before, after;
	char			 stage[PATH_MAX], victim[256], buf[4096];
	char			 plant[PATH_MAX + 16];
	ssize_t			 n;
	int			 p[2], fd, rc;

	if (_i == PLANT_FOREIGN && geteuid() != 0)
		return;
	/* a file the unpack uid owns outside the tree */
	snprintf(victim, sizeof(victim), "%s/victim", tmp);
	ck_assert_int_ge(fd = open(victim, O_WRONLY | O_CREAT, 0600), 0);
	close(fd);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(victim, NOBODY, NOBODY), 0);
	ck_assert_int_eq(lstat(victim, &before), 0);

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(unpack_start(&j, p[0], dest, &lim, NOBODY, NOBODY,
	    err, sizeof(err)), UNPACK_OK);
	close(p[0]);
	find_stage(stage, sizeof(stage));
	snprintf(plant, sizeof(plant), "%s/planted", stage);
	switch (_i) {
	case PLANT_SYMLINK:
		ck_assert_int_eq(symlink(victim, plant), 0);
		break;
	case PLANT_HARDLINK:
		ck_assert_int_eq(link(victim, plant), 0);
		break;
	case PLANT_FOREIGN:
		ck_assert_int_ge(fd = open(plant, O_WRONLY | O_CREAT, 0600), 0);
		close(fd);
		break;
	}

	a = ar_new();
	ar_app(a);
	ar_end(a);
	ck_assert_int_ge(fd = open(arpath, O_RDONLY), 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(p[1], buf, n), n);
	close(fd);
	close(p[1]);
	rc = unpack_finish(j, &res, err, sizeof(err));
	ck_assert_msg(rc == UNPACK_INTERNAL, "got %s: %s",
	    unpack_status_name(rc), err);
	ck_assert_ptr_nonnull(strstr(err, _i == PLANT_SYMLINK ?
	    "special file: planted" : "foreign file: planted"));
	ck_assert_int_eq(entries_in(apps), 0);
	ck_assert_int_eq(lstat(victim, &after), 0);
	ck_assert_uint_eq(after.st_uid, before.st_uid);
	ck_assert_uint_eq(after.st_mode, before.st_mode);
	ck_assert_uint_eq(after.st_nlink, 1);
}
END_TEST

/* ---- hostile bundles: one builder per case ---- */

static void
h_dotdot(struct archive *a)
{
	ar_app(a);
	ar_file(a, "../evil", 0644, "x");
}

static void
h_dotdot_inner(struct archive *a)
{
	ar_app(a);
	ar_file(a, "a/../../evil", 0644, "x");
}

static void
h_dotdot_dir(struct archive *a)
{
	ar_app(a);
	ar_dir(a, "www/..", 0755);
}

static void
h_absolute(struct archive *a)
{
	ar_app(a);
	ar_file(a, "/etc/evil", 0644, "x");
}

/* a pax "path" record longer than ustar's 100 bytes, hiding ".." */
static void
h_pax_long_dotdot(struct archive *a)
{
	char	 name[400];

	memset(name, 'p', sizeof(name));
	memcpy(name + 150, "/../../../../evil", 17);
	name[300] = '\0';
	ar_app(a);
	ar_file(a, name, 0644, "x");
}

static void
h_symlink(struct archive *a)
{
	struct archive_entry	*e;

	ar_app(a);
	e = ar_entry("www", AE_IFLNK, 0777, 0);
	archive_entry_set_symlink(e, "/etc");
	ar_put(a, e, NULL, 0);
	ar_file(a, "www/evil", 0644, "x");
}

static void
h_hardlink(struct archive *a)
{
	struct archive_entry	*e;

	ar_app(a);
	e = ar_entry("passwd", AE_IFREG, 0644, 0);
	archive_entry_set_hardlink(e, "/etc/passwd");
	ar_put(a, e, NULL, 0);
}

static void
h_chardev(struct archive *a)
{
	struct archive_entry	*e;

	ar_app(a);
	e = ar_entry("mem", AE_IFCHR, 0666, 0);
	archive_entry_set_rdev(e, makedev(1, 1));
	ar_put(a, e, NULL, 0);
}

static void
h_blockdev(struct archive *a)
{
	struct archive_entry	*e;

	ar_app(a);
	e = ar_entry("disk", AE_IFBLK, 0666, 0);
	archive_entry_set_rdev(e, makedev(8, 0));
	ar_put(a, e, NULL, 0);
}

static void
h_fifo(struct archive *a)
{
	ar_app(a);
	ar_put(a, ar_entry("pipe", AE_IFIFO, 0644, 0), NULL, 0);
}

static void
h_duplicate(struct archive *a)
{
	ar_app(a);
	ar_file(a, "app.R", 0644, "again");
}

static void
h_duplicate_dir(struct archive *a)
{
	ar_app(a);
	ar_dir(a, "www", 0755);
	ar_dir(a, "www/", 0755);
}

static void
h_file_under_file(struct archive *a)
{
	ar_app(a);
	ar_file(a, "app.R/x", 0644, "x");
}

static void
h_file_over_dir(struct archive *a)
{
	ar_app(a);
	ar_dir(a, "www", 0755);
	ar_file(a, "www", 0644, "x");
}

static void
h_control_char(struct archive *a)
{
	ar_app(a);
	ar_file(a, "bad\nname", 0644, "x");
}

static void
h_component_too_long(struct archive *a)
{
	char	 name[300];

	memset(name, 'c', sizeof(name));
	name[NAME_MAX + 1] = '\0';
	ar_app(a);
	ar_file(a, name, 0644, "x");
}

static void
h_too_deep(struct archive *a)
{
	char	 name[UNPACK_MAX_DEPTH * 2 + 8];
	int	 i;

	for (i = 0; i <= UNPACK_MAX_DEPTH; i++)
		memcpy(name + 2 * i, "d/", 2);
	memcpy(name + 2 * i, "f", 2);
	ar_app(a);
	ar_file(a, name, 0644, "x");
}

/* 3 MiB of zeros, about 3 KiB packed, against a 1 MiB cap */
static void
h_zip_bomb(struct archive *a)
{
	lim.max_total = 1 << 20;
	ar_app(a);
	ar_bytes(a, "bomb", 3 << 20, 0);
}

/* the same spread over files that each pass the per-file cap */
static void
h_zip_bomb_spread(struct archive *a)
{
	char	 name[32];
	int	 i;

	lim.max_total = 1 << 20;
	lim.max_file = 1 << 20;
	ar_app(a);
	for (i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "part%d", i);
		ar_bytes(a, name, 200 << 10, 0);
	}
}

static void
h_file_over_cap(struct archive *a)
{
	lim.max_total = 10 << 20;
	lim.max_file = 1 << 20;
	ar_app(a);
	ar_bytes(a, "big", 2 << 20, 0);
}

static void
h_many_files(struct archive *a)
{
	char	 name[32];
	int	 i;

	lim.max_entries = 50;
	ar_app(a);
	for (i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ar_file(a, name, 0644, "");
	}
}

/* implicit directories count as well */
static void
h_many_dirs(struct archive *a)
{
	char	 name[UNPACK_MAX_DEPTH * 4];
	int	 i;

	lim.max_entries = 50;
	ar_app(a);
	name[0] = '\0';
	for (i = 0; i < 60; i++)
		strlcat(name, "d/", sizeof(name));
	strlcat(name, "f", sizeof(name));
	ar_file(a, name, 0644, "");
}

static void
h_missing_app(struct archive *a)
{
	ar_file(a, "server.R", 0644, "x");
	ar_file(a, "www/app.R", 0644, "x");
}

static void
h_app_is_dir(struct archive *a)
{
	ar_dir(a, "app.R", 0755);
}

static void
h_empty_archive(struct archive *a)
{
	(void)a;
}

struct hostile {
	const char	*what;
	void		(*build)(struct archive *);
	int		 want;
	const char	*reason;
} hostile[] = {
	{ "../", h_dotdot, UNPACK_FORBIDDEN_ENTRY, "'..' in path: ../evil" },
	{ "a/../..", h_dotdot_inner, UNPACK_FORBIDDEN_ENTRY, "'..' in path" },
	{ "dir ..", h_dotdot_dir, UNPACK_FORBIDDEN_ENTRY, "'..' in path" },
	{ "absolute", h_absolute, UNPACK_FORBIDDEN_ENTRY,
	    "absolute path: /etc/evil" },
	{ "pax ..", h_pax_long_dotdot, UNPACK_FORBIDDEN_ENTRY, "'..' in path" },
	{ "symlink", h_symlink, UNPACK_FORBIDDEN_ENTRY, "symbolic link: www" },
	{ "hardlink", h_hardlink, UNPACK_FORBIDDEN_ENTRY, "hard link: passwd" },
	{ "chardev", h_chardev, UNPACK_FORBIDDEN_ENTRY,
	    "character device: mem" },
	{ "blockdev", h_blockdev, UNPACK_FORBIDDEN_ENTRY, "block device" },
	{ "fifo", h_fifo, UNPACK_FORBIDDEN_ENTRY, "fifo: pipe" },
	{ "duplicate", h_duplicate, UNPACK_FORBIDDEN_ENTRY,
	    "duplicate entry: app.R" },
	{ "duplicate dir", h_duplicate_dir, UNPACK_FORBIDDEN_ENTRY,
	    "duplicate entry: www/" },
	{ "file under file", h_file_under_file, UNPACK_FORBIDDEN_ENTRY,
	    "path conflicts with an earlier entry" },
	{ "file over dir", h_file_over_dir, UNPACK_FORBIDDEN_ENTRY,
	    "path conflicts with an earlier entry" },
	{ "control char", h_control_char, UNPACK_FORBIDDEN_ENTRY,
	    "control character in name: bad?name" },
	{ "long component", h_component_too_long, UNPACK_FORBIDDEN_ENTRY,
	    "name component too long" },
	{ "too deep", h_too_deep, UNPACK_FORBIDDEN_ENTRY, "path too deep" },
	{ "zip bomb", h_zip_bomb, UNPACK_TOO_BIG,
	    "unpacked size over 1048576 bytes" },
	{ "spread bomb", h_zip_bomb_spread, UNPACK_TOO_BIG,
	    "unpacked size over 1048576 bytes" },
	{ "file cap", h_file_over_cap, UNPACK_TOO_BIG,
	    "file larger than 1048576 bytes: big" },
	{ "many files", h_many_files, UNPACK_TOO_BIG,
	    "more than 50 files and directories" },
	{ "many dirs", h_many_dirs, UNPACK_TOO_BIG,
	    "more than 50 files and directories" },
	{ "missing app.R", h_missing_app, UNPACK_NO_ENTRYPOINT,
	    "missing entrypoint: app.R (or ui.R and server.R)" },
	{ "app.R a dir", h_app_is_dir, UNPACK_NO_ENTRYPOINT,
	    "missing entrypoint" },
	{ "empty archive", h_empty_archive, UNPACK_NO_ENTRYPOINT,
	    "missing entrypoint" },
};

START_TEST(t_hostile)
{
	struct archive	*a = ar_new();
	struct stat	 st;

	hostile[_i].build(a);
	ar_end(a);
	expect_reject(hostile[_i].want, hostile[_i].reason);
	/* nothing escaped next to the bundle or into /etc */
	ck_assert_int_eq(lstat("/etc/evil", &st), -1);
	ck_assert_int_eq(entries_in(tmp), 2);	/* apps/ and the upload */
}
END_TEST

/* ---- archives that are not (whole) gzip'd tar files ---- */

START_TEST(t_not_gzip)
{
	char	 buf[4096];

	arc4random_buf(buf, sizeof(buf));
	write_raw(buf, sizeof(buf));
	expect_reject(UNPACK_BAD_ARCHIVE, "not a gzip-compressed");
}
END_TEST

START_TEST(t_empty_file)
{
	write_raw("", 0);
	expect_reject(UNPACK_BAD_ARCHIVE, "");
}
END_TEST

START_TEST(t_plain_tar)
{
	struct archive	*a = ar_new_fmt(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 0);

	ar_app(a);
	ar_end(a);
	expect_reject(UNPACK_BAD_ARCHIVE, "not a gzip-compressed archive");
}
END_TEST

/* gzip'd, but not a tar file inside */
START_TEST(t_gzip_not_tar)
{
	struct archive	*a;
	char		 text[2048];

	memset(text, 'x', sizeof(text));
	ck_assert_ptr_nonnull(a = archive_write_new());
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	ck_assert_int_eq(archive_write_open_filename(a, arpath), ARCHIVE_OK);
	ar_put(a, ar_entry("x", AE_IFREG, 0644, sizeof(text)), text,
	    sizeof(text));
	ar_end(a);
	expect_reject(UNPACK_BAD_ARCHIVE, "");
}
END_TEST

/* a valid archive, incompressible so that half of it is half the data */
static off_t
build_random_bundle(void)
{
	struct archive	*a = ar_new();
	struct stat	 st;

	ar_app(a);
	ar_bytes(a, "www/noise.bin", 256 << 10, 1);
	ar_end(a);
	ck_assert_int_eq(stat(arpath, &st), 0);
	return st.st_size;
}

START_TEST(t_truncated)
{
	off_t	 size = build_random_bundle();

	ck_assert_int_eq(truncate(arpath, size / 2), 0);
	expect_reject(UNPACK_BAD_ARCHIVE, "");
}
END_TEST

START_TEST(t_corrupt)
{
	off_t	 size = build_random_bundle();
	char	 junk[512];
	int	 fd;

	memset(junk, 0x5a, sizeof(junk));
	ck_assert_int_ge(fd = open(arpath, O_WRONLY), 0);
	ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), size / 2),
	    (ssize_t)sizeof(junk));
	close(fd);
	expect_reject(UNPACK_BAD_ARCHIVE, "");
}
END_TEST

/* a name that is empty on the wire */
START_TEST(t_empty_name)
{
	char	 tar[512 * 6];

	memset(tar, 0, sizeof(tar));
	tar_hdr(tar, "app.R", '0', 2);
	memcpy(tar + 512, "x\n", 2);
	tar_hdr(tar + 1024, "", '0', 2);
	memcpy(tar + 1536, "y\n", 2);
	write_gz(tar, sizeof(tar));
	expect_reject(UNPACK_FORBIDDEN_ENTRY, "empty name");
	ck_assert_str_eq(err, "empty name");
}
END_TEST

/* the same by hand is a valid bundle: the crafting is right */
START_TEST(t_handmade_valid)
{
	char	 tar[512 * 6];

	memset(tar, 0, sizeof(tar));
	tar_hdr(tar, "app.R", '0', 2);
	memcpy(tar + 512, "x\n", 2);
	tar_hdr(tar + 1024, "ui.R", '0', 2);
	memcpy(tar + 1536, "y\n", 2);
	write_gz(tar, sizeof(tar));
	expect_ok();
	expect_content("ui.R", "y\n");
}
END_TEST

/* ---- the rest ---- */

START_TEST(t_dest_exists)
{
	struct archive	*a = ar_new();
	char		 marker[PATH_MAX];	/* dest + "/keep" */
	int		 fd;

	ar_app(a);
	ar_end(a);
	ck_assert_int_eq(mkdir(dest, 0755), 0);
	snprintf(marker, sizeof(marker), "%s/keep", dest);
	ck_assert_int_ge(fd = open(marker, O_WRONLY | O_CREAT, 0644), 0);
	close(fd);

	ck_assert_int_eq(unpack(), UNPACK_INTERNAL);
	ck_assert_ptr_nonnull(strstr(err, "exists"));
	ck_assert_int_eq(entries_in(apps), 1);
	ck_assert_int_eq(entries_in(dest), 1);
	ck_assert_int_eq(access(marker, F_OK), 0);
}
END_TEST

/* a wall-clock timeout kills the child and cleans up */
START_TEST(t_timeout)
{
	struct archive	*a = ar_new();

	ar_app(a);
	ar_bytes(a, "zeros", 64 << 20, 0);
	ar_end(a);
	lim.timeout_ms = 1;
	expect_reject(UNPACK_TOO_BIG, "took too long");
}
END_TEST

START_TEST(t_refuse_root)
{
	struct archive	*a;
	int		 fd;

	if (geteuid() != 0)
		return;
	a = ar_new();
	ar_app(a);
	ar_end(a);
	ck_assert_int_ge(fd = open(arpath, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(bundle_unpack(fd, dest, &lim, 0, 0, &res, err,
	    sizeof(err)), UNPACK_INTERNAL);
	close(fd);
	ck_assert_int_eq(entries_in(apps), 0);
}
END_TEST

/* removal unlinks links and never follows them */
START_TEST(t_remove_tree_no_follow)
{
	char	 outside[256], tree[256], p[PATH_MAX];
	int	 fd;

	snprintf(outside, sizeof(outside), "%s/outside", tmp);
	snprintf(tree, sizeof(tree), "%s/tree", tmp);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	snprintf(p, sizeof(p), "%s/precious", outside);
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_CREAT, 0644), 0);
	close(fd);
	ck_assert_int_eq(mkdir(tree, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub", tree);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/link", tree);
	ck_assert_int_eq(symlink(outside, p), 0);
	/* a directory we cannot write to: removal must still get in */
	snprintf(p, sizeof(p), "%s/sub", tree);
	ck_assert_int_eq(chmod(p, 0500), 0);
	snprintf(p, sizeof(p), "%s/fifo", tree);
	ck_assert_int_eq(mkfifo(p, 0600), 0);

	ck_assert_int_ge(fd = open(tmp, O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_eq(unpack_remove_tree(fd, "tree"), 0);
	ck_assert_int_eq(unpack_remove_tree(fd, "tree"), 0);	/* gone: ok */
	close(fd);
	ck_assert_int_eq(access(tree, F_OK), -1);
	snprintf(p, sizeof(p), "%s/precious", outside);
	ck_assert_int_eq(access(p, F_OK), 0);
}
END_TEST

START_TEST(t_status_map)
{
	ck_assert_int_eq(unpack_http_status(UNPACK_OK), 200);
	ck_assert_int_eq(unpack_http_status(UNPACK_BAD_ARCHIVE), 400);
	ck_assert_int_eq(unpack_http_status(UNPACK_FORBIDDEN_ENTRY), 400);
	ck_assert_int_eq(unpack_http_status(UNPACK_TOO_BIG), 400);
	ck_assert_int_eq(unpack_http_status(UNPACK_NO_ENTRYPOINT), 400);
	ck_assert_int_eq(unpack_http_status(UNPACK_INTERNAL), 500);
	ck_assert_str_eq(unpack_status_name(UNPACK_TOO_BIG), "too_big");
}
END_TEST

static Suite *
unpack_suite(void)
{
	Suite	*s = suite_create("byspawn_unpack");
	TCase	*tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_valid);
	tcase_add_test(tc, t_valid_dot_prefix_gnu);
	tcase_add_test(tc, t_valid_ui_server);
	tcase_add_test(tc, t_valid_utf8_name);
	tcase_add_test(tc, t_job_api);
	tcase_add_test(tc, t_child_confined);
	tcase_add_loop_test(tc, t_parent_distrusts, 0, PLANT_N);
	tcase_add_loop_test(tc, t_hostile, 0,
	    sizeof(hostile) / sizeof(hostile[0]));
	tcase_add_test(tc, t_empty_name);
	tcase_add_test(tc, t_handmade_valid);
	tcase_add_test(tc, t_not_gzip);
	tcase_add_test(tc, t_empty_file);
	tcase_add_test(tc, t_plain_tar);
	tcase_add_test(tc, t_gzip_not_tar);
	tcase_add_test(tc, t_truncated);
	tcase_add_test(tc, t_corrupt);
	tcase_add_test(tc, t_dest_exists);
	tcase_add_test(tc, t_timeout);
	tcase_add_test(tc, t_refuse_root);
	tcase_add_test(tc, t_remove_tree_no_follow);
	tcase_add_test(tc, t_status_map);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(unpack_suite());
	int	 failed;

	log_setlevel(LOG_LVL_ERROR);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
