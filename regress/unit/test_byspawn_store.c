/*
 * The R package store: names and words it accepts, its keys, and what
 * it does as root with a tree an unprivileged build step staged:
 * sealed (root's, no write for others, no set-id bits, nothing but
 * directories, files and symbolic links, no outside hard links) before
 * it enters the store, hard-linked into libraries, never followed
 * through a link, and swept once unused for store_retention.
 *
 * Each test lives in its own directory under /tmp/test-store.XXXXXX,
 * which main removes at the end; the "build step" is played by files
 * chowned to nobody.  Nothing here points the store at a host path:
 * the one test that plants stage/<pkg> -> /etc runs in a child with
 * its own mount namespace and a tmpfs /etc.  The store tests need
 * root (chown); as another user only the names and keys are tested.
 */

#include <sys/types.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include <check.h>

#include "byspawn.h"
#include "config.h"
#include "log.h"

#define NOBODY		65534	/* nobody:nogroup on Debian */
#define RPLAT		"4.4.1-x86_64-pc-linux-gnu"
#define RPLAT2		"4.3.3-x86_64-pc-linux-gnu"
#define DAY_MS		(24LL * 60 * 60 * 1000)
#define HEX		"0123456789abcdef"

static char	 topdir[64];		/* main's, for all tests */
static char	 tmp[96];		/* the test's, 0755, root's */
static char	 bsp[128];		/* storage.bundle_server_path */
static char	 storedir[160];		/* <bsp>/.pkg-store */
static char	 stage[128];		/* nobody's, 0777 */
static char	 lib[128], lib2[128];	/* two bundles' libraries */
static char	 decoy[128];		/* nobody's: must never change */
static char	 err[512];
static int	 stagefd = -1, libfd = -1, lib2fd = -1;
static struct stat decoy_st, decoy_file_st;

/* ---- set-up ---------------------------------------------------------- */

/* snprintf that must fit: every path and message here is short */
static void
pathf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && (size_t)n < len, "too long: %s", buf);
}

static const char *
noenv(const char *name, void *arg)
{
	return NULL;
}

static void
load_conf(const char *path)
{
	char	 text[1024], cerr[512];

	config_free(proc_conf);
	pathf(text, sizeof(text), "[storage]\n"
	    "bundle_server_path = \"%s\"\n", path);
	proc_conf = config_load_string(text, "test.toml", noenv, NULL, cerr,
	    sizeof(cerr));
	ck_assert_msg(proc_conf != NULL, "config: %s", cerr);
	pathf(storedir, sizeof(storedir), "%s/.pkg-store", path);
}

static int
xopendir(const char *path)
{
	int	 fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	return fd;
}

/* A file of the "build step": nobody's, with mode set after chown. */
static void
nobody_file(const char *path, mode_t mode, const char *text)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchown(fd, NOBODY, NOBODY), 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void
nobody_dir(const char *path, mode_t mode)
{
	ck_assert_msg(mkdir(path, 0700) == 0, "%s: %s", path,
	    strerror(errno));
	ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void
nobody_link(const char *target, const char *path)
{
	ck_assert_msg(symlink(target, path) == 0, "%s: %s", path,
	    strerror(errno));
	ck_assert_int_eq(lchown(path, NOBODY, NOBODY), 0);
}

/*
 * The test's directory, in one made by main: a failed test's child
 * exits at once, and what it leaves goes with main's at the end.
 */
static void
remove_tree(const char *path)
{
	char	 parent[PATH_MAX], *slash;
	int	 fd;

	strlcpy(parent, path, sizeof(parent));
	if ((slash = strrchr(parent, '/')) == NULL || slash == parent)
		return;
	*slash = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	unpack_remove_tree(fd, slash + 1);
	close(fd);
}

static void
setup(void)
{
	char	 path[256];

	umask(022);
	pathf(tmp, sizeof(tmp), "%s/t.XXXXXX", topdir);
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	pathf(bsp, sizeof(bsp), "%s/bundles", tmp);
	ck_assert_int_eq(mkdir(bsp, 0755), 0);
	pathf(stage, sizeof(stage), "%s/stage", tmp);
	nobody_dir(stage, 0777);
	pathf(lib, sizeof(lib), "%s/lib", tmp);
	ck_assert_int_eq(mkdir(lib, 0755), 0);
	pathf(lib2, sizeof(lib2), "%s/lib2", tmp);
	ck_assert_int_eq(mkdir(lib2, 0755), 0);
	pathf(decoy, sizeof(decoy), "%s/decoy", tmp);
	nobody_dir(decoy, 0777);
	pathf(path, sizeof(path), "%s/f", decoy);
	nobody_file(path, 0666, "not the store's\n");
	ck_assert_int_eq(lstat(decoy, &decoy_st), 0);
	ck_assert_int_eq(lstat(path, &decoy_file_st), 0);

	load_conf(bsp);
	stagefd = xopendir(stage);
	libfd = xopendir(lib);
	lib2fd = xopendir(lib2);
	err[0] = '\0';
}

static void
teardown(void)
{
	if (stagefd != -1)
		close(stagefd);
	if (libfd != -1)
		close(libfd);
	if (lib2fd != -1)
		close(lib2fd);
	stagefd = libfd = lib2fd = -1;
	config_free(proc_conf);
	proc_conf = NULL;
	remove_tree(tmp);
}

/* ---- packages -------------------------------------------------------- */

static void
pkg_init(struct store_pkg *p, const char *name, const char *rplat,
    const char *seed)
{
	const char	*f[4];

	memset(p, 0, sizeof(*p));
	strlcpy(p->name, name, sizeof(p->name));
	strlcpy(p->version, "1.0", sizeof(p->version));
	strlcpy(p->rplat, rplat, sizeof(p->rplat));
	f[0] = name;
	f[1] = p->version;
	f[2] = seed;
	f[3] = rplat;
	store_key(f, 4, p->key);
}

/* <store>/<rplat>/<pkg>/<key>[/<pkg>[/rel]] */
static void
entry_dir(const struct store_pkg *p, char *buf, size_t len)
{
	pathf(buf, len, "%s/%s/%s/%s", storedir, p->rplat, p->name,
	    p->key);
}

static void
in_store(const struct store_pkg *p, const char *rel, char *buf, size_t len)
{
	pathf(buf, len, "%s/%s/%s/%s/%s%s%s", storedir, p->rplat, p->name,
	    p->key, p->name, *rel ? "/" : "", rel);
}

static void
in_dir(const char *dir, const char *name, const char *rel, char *buf,
    size_t len)
{
	pathf(buf, len, "%s/%s%s%s", dir, name, *rel ? "/" : "", rel);
}

/*
 * What an install step leaves: every mode a hostile or careless step
 * could set, a nested directory, links inside and out of the package.
 */
static void
stage_pkg(const char *name)
{
	char	 p[512], text[256];

	in_dir(stage, name, "", p, sizeof(p));
	nobody_dir(p, 02777);
	in_dir(stage, name, "DESCRIPTION", p, sizeof(p));
	pathf(text, sizeof(text), "Package: %s\nVersion: 1.0\n", name);
	nobody_file(p, 0666, text);
	in_dir(stage, name, "R", p, sizeof(p));
	nobody_dir(p, 0777);
	in_dir(stage, name, "R/x.R", p, sizeof(p));
	nobody_file(p, 04777, "x <- 1\n");
	in_dir(stage, name, "R/link.R", p, sizeof(p));
	nobody_link("x.R", p);
	in_dir(stage, name, "exec", p, sizeof(p));
	nobody_file(p, 06775, "#!/bin/sh\nexit 0\n");
	in_dir(stage, name, "libs", p, sizeof(p));
	nobody_dir(p, 03777);
	in_dir(stage, name, "libs/sub", p, sizeof(p));
	nobody_dir(p, 0700);
	in_dir(stage, name, "libs/sub/data.txt", p, sizeof(p));
	nobody_file(p, 02646, "data\n");
	in_dir(stage, name, "libs/sub/private", p, sizeof(p));
	nobody_file(p, 0600, "private\n");
	in_dir(stage, name, "doc", p, sizeof(p));
	nobody_link(decoy, p);
}

/* rel, type, mode after sealing (0 for symbolic links) */
static const struct {
	const char	*rel;
	mode_t		 type;
	mode_t		 mode;
} layout[] = {
	{ "",			S_IFDIR, 0755 },
	{ "DESCRIPTION",	S_IFREG, 0644 },
	{ "R",			S_IFDIR, 0755 },
	{ "R/x.R",		S_IFREG, 0755 },
	{ "R/link.R",		S_IFLNK, 0 },
	{ "exec",		S_IFREG, 0755 },
	{ "libs",		S_IFDIR, 0755 },
	{ "libs/sub",		S_IFDIR, 0755 },
	{ "libs/sub/data.txt",	S_IFREG, 0644 },
	{ "libs/sub/private",	S_IFREG, 0644 },
	{ "doc",		S_IFLNK, 0 },
};
#define NLAYOUT	(sizeof(layout) / sizeof(layout[0]))

/* The decoy a staged link points to is exactly as it was. */
static void
decoy_untouched(void)
{
	char		 path[256];
	struct stat	 st;

	ck_assert_int_eq(lstat(decoy, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_uid, NOBODY);
	ck_assert_int_eq(st.st_gid, NOBODY);
	ck_assert_int_eq(st.st_mode & 07777, 0777);
	ck_assert_int_eq(st.st_ctim.tv_sec, decoy_st.st_ctim.tv_sec);
	ck_assert_int_eq(st.st_ctim.tv_nsec, decoy_st.st_ctim.tv_nsec);
	pathf(path, sizeof(path), "%s/f", decoy);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_uid, NOBODY);
	ck_assert_int_eq(st.st_mode & 07777, 0666);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_int_eq(st.st_ctim.tv_sec, decoy_file_st.st_ctim.tv_sec);
	ck_assert_int_eq(st.st_ctim.tv_nsec, decoy_file_st.st_ctim.tv_nsec);
}

static int
exists_at(int dfd, const char *name)
{
	struct stat	 st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
exists(const char *path)
{
	struct stat	 st;

	return lstat(path, &st) == 0;
}

/* ---- walking trees --------------------------------------------------- */

static int	 walk_n, walk_bad;
static char	 walk_why[512];
static const char *walk_other;		/* the tree to compare with */
static size_t	 walk_skip;		/* strlen of the walked root */

/* Sealed: root's, 0755 or 0644, only directories, files and links. */
static int
walk_sealed(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	mode_t	 m = st->st_mode & 07777;

	walk_n++;
	if (st->st_uid != 0 || st->st_gid != 0) {
		pathf(walk_why, sizeof(walk_why), "%s: owned by %u:%u",
		    path, (unsigned)st->st_uid, (unsigned)st->st_gid);
		walk_bad++;
	} else if (S_ISDIR(st->st_mode) ? m != 0755 : S_ISREG(st->st_mode) ?
	    m != 0755 && m != 0644 : !S_ISLNK(st->st_mode)) {
		pathf(walk_why, sizeof(walk_why), "%s: mode %o", path,
		    (unsigned)st->st_mode);
		walk_bad++;
	}
	return 0;
}

static void
assert_sealed(const char *root)
{
	walk_n = walk_bad = 0;
	walk_why[0] = '\0';
	ck_assert_int_eq(nftw(root, walk_sealed, 16, FTW_PHYS), 0);
	ck_assert_msg(walk_bad == 0, "%s", walk_why);
	ck_assert_int_gt(walk_n, 1);
}

static int
walk_count(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	walk_n++;
	return 0;
}

static int
count_tree(const char *root)
{
	walk_n = 0;
	ck_assert_int_eq(nftw(root, walk_count, 16, FTW_PHYS), 0);
	return walk_n;
}

/*
 * The tree at walk_other mirrors the walked one: the same names and
 * types, regular files the same inodes, directories their own, links
 * with the same target.
 */
static int
walk_mirror(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	char		 other[PATH_MAX], t1[PATH_MAX], t2[PATH_MAX];
	struct stat	 ost;
	ssize_t		 n1, n2;

	walk_n++;
	pathf(other, sizeof(other), "%s%s", walk_other, path + walk_skip);
	if (lstat(other, &ost) == -1) {
		pathf(walk_why, sizeof(walk_why), "%s: %s", other,
		    strerror(errno));
		walk_bad++;
	} else if ((st->st_mode & S_IFMT) != (ost.st_mode & S_IFMT)) {
		pathf(walk_why, sizeof(walk_why), "%s: type %o, not %o",
		    other, (unsigned)ost.st_mode, (unsigned)st->st_mode);
		walk_bad++;
	} else if (S_ISREG(st->st_mode) && (st->st_ino != ost.st_ino ||
	    st->st_dev != ost.st_dev)) {
		pathf(walk_why, sizeof(walk_why), "%s: not a hard link",
		    other);
		walk_bad++;
	} else if (S_ISDIR(st->st_mode) && st->st_ino == ost.st_ino) {
		pathf(walk_why, sizeof(walk_why), "%s: the same directory",
		    other);
		walk_bad++;
	} else if (S_ISLNK(st->st_mode)) {
		n1 = readlink(path, t1, sizeof(t1) - 1);
		n2 = readlink(other, t2, sizeof(t2) - 1);
		if (n1 < 0 || n2 != n1 || memcmp(t1, t2, n1) != 0) {
			pathf(walk_why, sizeof(walk_why),
			    "%s: another target", other);
			walk_bad++;
		}
	}
	return 0;
}

static void
assert_mirror(const char *root, const char *other)
{
	walk_n = walk_bad = 0;
	walk_why[0] = '\0';
	walk_other = other;
	walk_skip = strlen(root);
	ck_assert_int_eq(nftw(root, walk_mirror, 16, FTW_PHYS), 0);
	ck_assert_msg(walk_bad == 0, "%s", walk_why);
	ck_assert_int_eq(count_tree(other), count_tree(root));
}

/* What a library holds of p after a link: the store's own files. */
static void
assert_linked(const struct store_pkg *p, const char *libdir)
{
	char	 sp[PATH_MAX], lp[PATH_MAX];

	in_store(p, "", sp, sizeof(sp));
	in_dir(libdir, p->name, "", lp, sizeof(lp));
	assert_mirror(sp, lp);
}

static void
read_text(const char *path, char *buf, size_t len)
{
	ssize_t	 n;
	int	 fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	n = read(fd, buf, len - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
}

static void
ingest_ok(const struct store_pkg *p)
{
	err[0] = '\0';
	ck_assert_msg(store_ingest(p, stagefd, libfd, err, sizeof(err)) == 0,
	    "ingest %s: %s", p->name, err);
}

static void
ingest_refused(const struct store_pkg *p)
{
	char	 path[PATH_MAX];

	err[0] = '\0';
	ck_assert_int_eq(store_ingest(p, stagefd, libfd, err, sizeof(err)),
	    -1);
	ck_assert_msg(err[0] != '\0', "refused without a reason");
	ck_assert(!store_has(p));
	entry_dir(p, path, sizeof(path));
	ck_assert_msg(!exists(path), "%s was made", path);
	ck_assert(!exists_at(libfd, p->name));
}

/* ---- names and keys -------------------------------------------------- */

START_TEST(t_name_ok)
{
	static const char *const good[] = {
		"R6", "BH", "ggplot2", "data.table", "Rcpp", "a1.b2.c3",
		"z", "A.b.C", "x1234567890",
	};
	static const char *const bad[] = {
		"", "1abc", ".abc", "abc.", "a-b", "a_b", "a b", "a/b", "..",
		".", "../etc", "a\nb", "ab\t", "\xc3\xa4pkg", "p\xc3\xa4",
		"-x", "a:b", "a\\b", "/etc",
	};
	char	 s[80];
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(store_name_ok(good[i]), "refused %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!store_name_ok(bad[i]), "accepted \"%s\"",
		    bad[i]);

	/* up to 64 characters: what struct store_pkg's name holds */
	memset(s, 'a', sizeof(s));
	s[64] = '\0';
	ck_assert(store_name_ok(s));
	ck_assert_uint_lt(strlen(s), sizeof(((struct store_pkg *)0)->name));
	s[63] = '.';
	ck_assert(!store_name_ok(s));
	s[63] = '9';
	ck_assert(store_name_ok(s));
	s[63] = 'a';
	s[64] = 'a';
	s[65] = '\0';
	ck_assert(!store_name_ok(s));
}
END_TEST

START_TEST(t_word_ok)
{
	static const char *const good[] = {
		"1.0", "4.4.1", "1.0-2", "0.9.8.1", "x86_64-pc-linux-gnu",
		"aarch64-apple-darwin20", "a_b", "0", "v", "a..b", "a.",
		"_x", RPLAT,
	};
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "-rf", "--", "a/b", "/", "../x",
		"x/..", "a b", "a\nb", "a\tb", "\xc3\xa4", "a*", "$HOME",
		"a;b", "a\\b",
	};
	char	 s[80];
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(store_word_ok(good[i]), "refused %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!store_word_ok(bad[i]), "accepted \"%s\"",
		    bad[i]);

	/* up to 63 characters: what struct store_pkg's version holds */
	memset(s, '1', sizeof(s));
	s[63] = '\0';
	ck_assert(store_word_ok(s));
	ck_assert_uint_lt(strlen(s),
	    sizeof(((struct store_pkg *)0)->version));
	s[63] = '1';
	s[64] = '\0';
	ck_assert(!store_word_ok(s));
}
END_TEST

static int
is_hex64(const char *k)
{
	return strlen(k) == 64 && strspn(k, HEX) == 64;
}

START_TEST(t_key)
{
	const char	*base[] = { "pkg", "1.0", "CRAN", "abc123", RPLAT };
	const char	*f[5];
	const char	*ab_c[] = { "ab", "c" }, *a_bc[] = { "a", "bc" };
	const char	*abc[] = { "abc" }, *ab_empty_c[] = { "ab", "", "c" };
	const char	*a[] = { "a" }, *a_empty[] = { "a", "" };
	char		 k1[65], k2[65], k3[65];
	size_t		 i;

	memset(k1, 'x', sizeof(k1));
	store_key(base, 5, k1);
	ck_assert(is_hex64(k1));
	store_key(base, 5, k2);
	ck_assert_str_eq(k1, k2);

	/* any one field changed, or dropped, changes the key */
	for (i = 0; i < 5; i++) {
		memcpy(f, base, sizeof(f));
		f[i] = "other";
		store_key(f, 5, k2);
		ck_assert(is_hex64(k2));
		ck_assert_msg(strcmp(k1, k2) != 0, "field %zu ignored", i);
		f[i] = "";
		store_key(f, 5, k2);
		ck_assert_msg(strcmp(k1, k2) != 0, "field %zu ignored", i);
	}
	store_key(base, 4, k2);
	ck_assert_str_ne(k1, k2);

	/* where one field ends and the next begins is part of the key */
	store_key(ab_c, 2, k1);
	store_key(a_bc, 2, k2);
	ck_assert_str_ne(k1, k2);
	store_key(abc, 1, k3);
	ck_assert_str_ne(k1, k3);
	ck_assert_str_ne(k2, k3);
	store_key(ab_empty_c, 3, k3);
	ck_assert_str_ne(k1, k3);
	store_key(a, 1, k1);
	store_key(a_empty, 2, k2);
	ck_assert_str_ne(k1, k2);

	/*
	 * Stable across versions of byd, or every store is orphaned:
	 * SHA-256 of the fields, each with its terminating NUL.
	 */
	store_key(ab_c, 2, k1);
	ck_assert_str_eq(k1, "629c2f14f654f026086f2aefe1855533"
	    "d0897f49df86a19073be17b237361b09");
	store_key(a_bc, 2, k1);
	ck_assert_str_eq(k1, "aa795aa4bbb6117911ef062e271bcb05"
	    "ccfd58ea439da7d46a44e3a3fcefa790");
	store_key(NULL, 0, k1);
	ck_assert_str_eq(k1, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");

	/* a missing field (no checksum, no remote) is allowed */
	memcpy(f, base, sizeof(f));
	f[3] = NULL;
	store_key(f, 5, k1);
	ck_assert(is_hex64(k1));
}
END_TEST

/* ---- ingesting ------------------------------------------------------- */

START_TEST(t_ingest)
{
	struct store_pkg p;
	char		 sp[PATH_MAX], lp[PATH_MAX], t[PATH_MAX], text[256];
	struct stat	 st, lst;
	size_t		 i;
	ssize_t		 n;

	pkg_init(&p, "pkg.one", RPLAT, "src");
	ck_assert(!store_has(&p));
	stage_pkg(p.name);
	ingest_ok(&p);
	ck_assert(store_has(&p));

	/* the stage no longer holds it; the store and the library do */
	ck_assert(!exists_at(stagefd, p.name));
	for (i = 0; i < NLAYOUT; i++) {
		in_store(&p, layout[i].rel, sp, sizeof(sp));
		ck_assert_msg(lstat(sp, &st) == 0, "%s: %s", sp,
		    strerror(errno));
		ck_assert_msg((st.st_mode & S_IFMT) == layout[i].type,
		    "%s: type %o", sp, (unsigned)st.st_mode);
		ck_assert_msg(st.st_uid == 0 && st.st_gid == 0,
		    "%s: owned by %u:%u", sp, (unsigned)st.st_uid,
		    (unsigned)st.st_gid);
		if (layout[i].type != S_IFLNK)
			ck_assert_msg((st.st_mode & 07777) == layout[i].mode,
			    "%s: mode %o, not %o", sp,
			    (unsigned)(st.st_mode & 07777),
			    (unsigned)layout[i].mode);
		in_dir(lib, p.name, layout[i].rel, lp, sizeof(lp));
		ck_assert_msg(lstat(lp, &lst) == 0, "%s: %s", lp,
		    strerror(errno));
		ck_assert((lst.st_mode & S_IFMT) == layout[i].type);
		if (layout[i].type == S_IFREG) {
			ck_assert_msg(lst.st_ino == st.st_ino, "%s: a copy",
			    lp);
			ck_assert_int_eq(st.st_nlink, 2);
		}
		if (layout[i].type == S_IFDIR) {
			ck_assert_int_ne(lst.st_ino, st.st_ino);
			ck_assert_int_eq(lst.st_uid, 0);
			ck_assert_int_eq(lst.st_mode & 07777, 0755);
		}
	}
	in_store(&p, "", sp, sizeof(sp));
	assert_sealed(sp);
	assert_linked(&p, lib);

	/* links stay links, with their targets, and were not followed */
	in_store(&p, "doc", sp, sizeof(sp));
	n = readlink(sp, t, sizeof(t) - 1);
	ck_assert_int_gt(n, 0);
	t[n] = '\0';
	ck_assert_str_eq(t, decoy);
	in_dir(lib, p.name, "R/link.R", lp, sizeof(lp));
	n = readlink(lp, t, sizeof(t) - 1);
	ck_assert_int_gt(n, 0);
	t[n] = '\0';
	ck_assert_str_eq(t, "x.R");
	decoy_untouched();

	/* the content made it */
	in_dir(lib, p.name, "DESCRIPTION", lp, sizeof(lp));
	read_text(lp, text, sizeof(text));
	ck_assert_str_eq(text, "Package: pkg.one\nVersion: 1.0\n");
	in_dir(lib, p.name, "libs/sub/private", lp, sizeof(lp));
	read_text(lp, text, sizeof(text));
	ck_assert_str_eq(text, "private\n");

	/* laid out as documented */
	pathf(sp, sizeof(sp), "%s/%s/pkg.one/%s/pkg.one/DESCRIPTION",
	    storedir, RPLAT, p.key);
	ck_assert(exists(sp));
	in_store(&p, "..", sp, sizeof(sp));
	ck_assert_int_eq(lstat(sp, &st), 0);
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(st.st_mode & 022, 0);
}
END_TEST

/* An equal build got there first: the store keeps its copy. */
START_TEST(t_ingest_twice)
{
	struct store_pkg p;
	char		 sp[PATH_MAX], lp[PATH_MAX];
	struct stat	 st, lst;

	pkg_init(&p, "twice", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);
	in_store(&p, "DESCRIPTION", sp, sizeof(sp));
	ck_assert_int_eq(lstat(sp, &st), 0);

	stage_pkg(p.name);
	err[0] = '\0';
	ck_assert_msg(store_ingest(&p, stagefd, lib2fd, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(lstat(sp, &lst), 0);
	ck_assert_int_eq(lst.st_ino, st.st_ino);
	in_dir(lib2, p.name, "DESCRIPTION", lp, sizeof(lp));
	ck_assert_int_eq(lstat(lp, &lst), 0);
	ck_assert_int_eq(lst.st_ino, st.st_ino);
	assert_linked(&p, lib);
	assert_linked(&p, lib2);
	in_store(&p, "", sp, sizeof(sp));
	assert_sealed(sp);
	/* what is left in the stage is sealed too: no one can use it */
	in_dir(stage, p.name, "", lp, sizeof(lp));
	if (exists(lp))
		assert_sealed(lp);
}
END_TEST

/* Special files anywhere in the tree are refused. */
static void
plant_fifo(const char *dir)
{
	char	 p[512];

	pathf(p, sizeof(p), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(p, 0666), 0);
	ck_assert_int_eq(lchown(p, NOBODY, NOBODY), 0);
}

static void
plant_socket(const char *dir)
{
	struct sockaddr_un	 sun;
	int			 s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	pathf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", dir);
	ck_assert_int_ge(s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
	    0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(s);
}

START_TEST(t_refuse_special)
{
	struct store_pkg p;
	char		 dir[512];

	pkg_init(&p, "special", RPLAT, "src");
	stage_pkg(p.name);
	/* 0: a FIFO at the top, 1: deep down, 2: a socket */
	in_dir(stage, p.name, _i == 1 ? "libs/sub" : "", dir, sizeof(dir));
	if (_i == 2)
		plant_socket(dir);
	else
		plant_fifo(dir);
	ingest_refused(&p);
	decoy_untouched();
}
END_TEST

/* A file with a second name: inside the package, or outside it. */
START_TEST(t_refuse_hard_link)
{
	struct store_pkg p;
	char		 src[512], dst[512];
	struct stat	 st;

	pkg_init(&p, "linked", RPLAT, "src");
	stage_pkg(p.name);
	in_dir(stage, p.name, "libs/sub/data.txt", src, sizeof(src));
	if (_i == 0)
		pathf(dst, sizeof(dst), "%s/outside", stage);
	else
		in_dir(stage, p.name, "R/again.R", dst, sizeof(dst));
	ck_assert_int_eq(link(src, dst), 0);
	ck_assert_int_eq(lstat(src, &st), 0);
	ck_assert_int_eq(st.st_nlink, 2);
	ingest_refused(&p);
	/*
	 * The shared inode was left alone (the refused package itself is
	 * removed, so only the outside name is still there to look at).
	 */
	if (_i == 0) {
		ck_assert_int_eq(lstat(dst, &st), 0);
		ck_assert_int_eq(st.st_uid, NOBODY);
		ck_assert_int_eq(st.st_mode & 07777, 02646);
	}
}
END_TEST

/* A hard link to a file that is not the step's at all. */
START_TEST(t_refuse_hard_link_foreign)
{
	struct store_pkg p;
	char		 src[512], dst[512];
	struct stat	 st, st2;

	pkg_init(&p, "foreign", RPLAT, "src");
	stage_pkg(p.name);
	pathf(src, sizeof(src), "%s/secret", tmp);
	nobody_file(src, 0600, "secret\n");
	ck_assert_int_eq(chown(src, 1234, 1234), 0);
	ck_assert_int_eq(chmod(src, 0600), 0);
	in_dir(stage, p.name, "R/secret.R", dst, sizeof(dst));
	ck_assert_int_eq(link(src, dst), 0);
	ck_assert_int_eq(lstat(src, &st), 0);
	ingest_refused(&p);
	ck_assert_int_eq(lstat(src, &st2), 0);
	ck_assert_int_eq(st2.st_uid, 1234);
	ck_assert_int_eq(st2.st_mode & 07777, 0600);
	/* (its ctime moves: the refused package's name for it is gone) */
}
END_TEST

/* What is at stage/<pkg> must be the package directory itself. */
START_TEST(t_refuse_planted_link)
{
	struct store_pkg p;
	struct stat	 st;
	char		 path[512];

	pkg_init(&p, "planted", RPLAT, "src");
	in_dir(stage, p.name, "", path, sizeof(path));
	if (_i == 0)
		nobody_link(decoy, path);
	else
		nobody_file(path, 0666, "not a directory\n");
	ingest_refused(&p);
	decoy_untouched();
	/* the planted thing is still just that */
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_uid, NOBODY);
	ck_assert(_i == 1 ? S_ISREG(st.st_mode) : S_ISLNK(st.st_mode));
}
END_TEST

/*
 * stage/<pkg> -> /etc.  Never against the host's /etc: should the
 * store follow the link it would chown and chmod all of it.  A child
 * in its own mount namespace gets a tmpfs /etc to be (not) harmed.
 */
static const struct {
	const char	*path;
	mode_t		 mode;		/* 0: a directory, 0700 */
	uid_t		 uid;
	gid_t		 gid;
} fake_etc[] = {
	{ "/etc/passwd",	0644, 0, 0 },
	{ "/etc/shadow",	0640, 0, 42 },
	{ "/etc/private",	0, NOBODY, NOBODY },
	{ "/etc/private/key",	0600, NOBODY, NOBODY },
	{ "/etc/run.sh",	0700, 1234, 1234 },
};
#define NFAKE_ETC	(sizeof(fake_etc) / sizeof(fake_etc[0]))

#define ETC_SKIP	77

static int
etc_child(const struct store_pkg *p)
{
	struct stat	 before[NFAKE_ETC], st;
	char		 lerr[512];
	size_t		 i;
	int		 fd;

	/* private first: the tmpfs must not propagate to the host */
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount("tmpfs", "/etc", "tmpfs", MS_NOSUID | MS_NODEV,
	    "mode=0755,size=1m") == -1)
		return ETC_SKIP;
	for (i = 0; i < NFAKE_ETC; i++) {
		if (fake_etc[i].mode == 0) {
			if (mkdir(fake_etc[i].path, 0700) == -1)
				return 10;
		} else {
			if ((fd = open(fake_etc[i].path, O_WRONLY | O_CREAT |
			    O_EXCL, 0600)) == -1 || write(fd, "x\n", 2) != 2)
				return 11;
			close(fd);
		}
		if (chown(fake_etc[i].path, fake_etc[i].uid,
		    fake_etc[i].gid) == -1 || chmod(fake_etc[i].path,
		    fake_etc[i].mode ? fake_etc[i].mode : 0700) == -1)
			return 12;
	}
	for (i = 0; i < NFAKE_ETC; i++)
		if (lstat(fake_etc[i].path, &before[i]) == -1)
			return 13;
	lerr[0] = '\0';
	if (store_ingest(p, stagefd, libfd, lerr, sizeof(lerr)) != -1)
		return 1;
	if (lerr[0] == '\0')
		return 2;
	if (store_has(p))
		return 3;
	for (i = 0; i < NFAKE_ETC; i++)
		if (lstat(fake_etc[i].path, &st) == -1 ||
		    st.st_uid != before[i].st_uid ||
		    st.st_gid != before[i].st_gid ||
		    st.st_mode != before[i].st_mode ||
		    st.st_ctim.tv_sec != before[i].st_ctim.tv_sec ||
		    st.st_ctim.tv_nsec != before[i].st_ctim.tv_nsec)
			return 20 + (int)i;
	return 0;
}

START_TEST(t_refuse_planted_etc)
{
	struct store_pkg p;
	struct stat	 st;
	char		 path[512];
	pid_t		 pid;
	int		 status;

	pkg_init(&p, "planted", RPLAT, "src");
	in_dir(stage, p.name, "", path, sizeof(path));
	nobody_link("/etc", path);
	fflush(NULL);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0)
		_exit(etc_child(&p));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == ETC_SKIP) {
		fprintf(stderr, "t_refuse_planted_etc: no mount namespace: "
		    "not run\n");
		return;
	}
	ck_assert_msg(WEXITSTATUS(status) == 0, "%d: %s", WEXITSTATUS(status),
	    WEXITSTATUS(status) == 1 ? "stage/<pkg> -> /etc was ingested" :
	    WEXITSTATUS(status) == 2 ? "refused without a reason" :
	    WEXITSTATUS(status) == 3 ? "the store has it" :
	    WEXITSTATUS(status) >= 20 ? "/etc was changed" : "set-up failed");
	ck_assert(!store_has(&p));
	ck_assert(!exists_at(libfd, p.name));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
}
END_TEST

/* A directory inside the package planted as a link is kept a link. */
START_TEST(t_nested_link_not_followed)
{
	struct store_pkg p;
	char		 path[512], t[PATH_MAX];
	ssize_t		 n;

	pkg_init(&p, "nested", RPLAT, "src");
	stage_pkg(p.name);
	in_dir(stage, p.name, "libs/sub/up", path, sizeof(path));
	nobody_link("../../../../decoy", path);
	in_dir(stage, p.name, "libs/abs", path, sizeof(path));
	nobody_link(decoy, path);
	ingest_ok(&p);
	decoy_untouched();
	in_store(&p, "libs/sub/up", path, sizeof(path));
	n = readlink(path, t, sizeof(t) - 1);
	ck_assert_int_gt(n, 0);
	t[n] = '\0';
	ck_assert_str_eq(t, "../../../../decoy");
	in_dir(lib, p.name, "libs/abs", path, sizeof(path));
	n = readlink(path, t, sizeof(t) - 1);
	ck_assert_int_gt(n, 0);
	t[n] = '\0';
	ck_assert_str_eq(t, decoy);
	in_store(&p, "", path, sizeof(path));
	assert_sealed(path);
	assert_linked(&p, lib);
}
END_TEST

/* 64 levels of directories below the package are stored, 65 not. */
START_TEST(t_depth)
{
	struct store_pkg p;
	char		 path[PATH_MAX], deep[512];
	int		 fd, nfd, i, levels = _i == 0 ? 63 : 64;

	pkg_init(&p, "deep", RPLAT, "src");
	in_dir(stage, p.name, "", path, sizeof(path));
	nobody_dir(path, 0755);
	fd = xopendir(path);
	for (i = 0; i < levels; i++) {
		ck_assert_int_eq(mkdirat(fd, "d", 0755), 0);
		ck_assert_int_eq(fchownat(fd, "d", NOBODY, NOBODY, 0), 0);
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(nfd, 0);
		close(fd);
		fd = nfd;
	}
	ck_assert_int_eq(mkdirat(fd, "last", 0777), 0);
	close(fd);
	if (_i == 0) {
		ingest_ok(&p);
		in_store(&p, "", path, sizeof(path));
		assert_sealed(path);
		assert_linked(&p, lib);
		deep[0] = '\0';
		for (i = 0; i < levels; i++)
			strlcat(deep, "d/", sizeof(deep));
		strlcat(deep, "last", sizeof(deep));
		in_dir(lib, p.name, deep, path, sizeof(path));
		ck_assert(exists(path));
	} else
		ingest_refused(&p);
}
END_TEST

/* ---- linking --------------------------------------------------------- */

START_TEST(t_link_second_library)
{
	struct store_pkg p;
	char		 a[PATH_MAX], b[PATH_MAX], s[PATH_MAX];
	struct stat	 sa, sb, ss;

	pkg_init(&p, "shared", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);
	err[0] = '\0';
	ck_assert_msg(store_link(&p, lib2fd, err, sizeof(err)) == 0, "%s",
	    err);
	assert_linked(&p, lib);
	assert_linked(&p, lib2);
	in_dir(lib, p.name, "R/x.R", a, sizeof(a));
	in_dir(lib2, p.name, "R/x.R", b, sizeof(b));
	in_store(&p, "R/x.R", s, sizeof(s));
	ck_assert_int_eq(lstat(a, &sa), 0);
	ck_assert_int_eq(lstat(b, &sb), 0);
	ck_assert_int_eq(lstat(s, &ss), 0);
	ck_assert_int_eq(sa.st_ino, sb.st_ino);
	ck_assert_int_eq(sa.st_ino, ss.st_ino);
	ck_assert_int_eq(ss.st_nlink, 3);

	/* the library's directories are 0755 whatever the umask */
	umask(0);
	ck_assert_msg(store_link(&p, lib2fd, err, sizeof(err)) == 0, "%s",
	    err);
	umask(022);
	in_dir(lib2, p.name, "", a, sizeof(a));
	assert_sealed(a);

	/* again, over itself: still one set of links, no more */
	ck_assert_msg(store_link(&p, lib2fd, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(lstat(s, &ss), 0);
	ck_assert_int_eq(ss.st_nlink, 3);
	assert_linked(&p, lib2);
}
END_TEST

/* Whatever the library had under <pkg> is replaced. */
START_TEST(t_link_replaces)
{
	struct store_pkg p;
	char		 path[PATH_MAX], text[64];

	pkg_init(&p, "replaced", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);

	in_dir(lib2, p.name, "", path, sizeof(path));
	switch (_i) {
	case 0:		/* an older install: a tree */
		ck_assert_int_eq(mkdir(path, 0700), 0);
		in_dir(lib2, p.name, "DESCRIPTION", path, sizeof(path));
		nobody_file(path, 0444, "Package: replaced\nVersion: 0.1\n");
		in_dir(lib2, p.name, "stale", path, sizeof(path));
		ck_assert_int_eq(mkdir(path, 0500), 0);
		in_dir(lib2, p.name, "stale/old.R", path, sizeof(path));
		nobody_file(path, 0600, "old\n");
		break;
	case 1:		/* a link: removed, never followed */
		nobody_link(decoy, path);
		break;
	case 2:		/* a file */
		nobody_file(path, 0644, "junk\n");
		break;
	}
	err[0] = '\0';
	ck_assert_msg(store_link(&p, lib2fd, err, sizeof(err)) == 0, "%s",
	    err);
	assert_linked(&p, lib2);
	in_dir(lib2, p.name, "stale", path, sizeof(path));
	ck_assert(!exists(path));
	in_dir(lib2, p.name, "DESCRIPTION", path, sizeof(path));
	read_text(path, text, sizeof(text));
	ck_assert_str_eq(text, "Package: replaced\nVersion: 1.0\n");
	decoy_untouched();
}
END_TEST

START_TEST(t_link_missing)
{
	struct store_pkg p;
	char		 path[PATH_MAX];

	pkg_init(&p, "absent", RPLAT, "src");
	ck_assert(!store_has(&p));
	err[0] = '\0';
	ck_assert_int_eq(store_link(&p, libfd, err, sizeof(err)), -1);
	ck_assert(err[0] != '\0');
	ck_assert(!exists_at(libfd, p.name));

	/* an entry is a directory: not a file, not a link to one */
	ck_assert_int_eq(mkdir(storedir, 0755), 0);
	pathf(path, sizeof(path), "%s/%s", storedir, p.rplat);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	pathf(path, sizeof(path), "%s/%s/%s", storedir, p.rplat, p.name);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	entry_dir(&p, path, sizeof(path));
	ck_assert_int_eq(mkdir(path, 0755), 0);
	in_store(&p, "", path, sizeof(path));
	nobody_file(path, 0644, "not a package\n");
	ck_assert(!store_has(&p));
	ck_assert_int_eq(unlink(path), 0);
	nobody_link(decoy, path);
	ck_assert(!store_has(&p));
	ck_assert_int_eq(store_link(&p, libfd, err, sizeof(err)), -1);
	ck_assert(!exists_at(libfd, p.name));
	decoy_untouched();
}
END_TEST

/* A link is a use: the entry directory's mtime moves on. */
START_TEST(t_link_touches)
{
	struct store_pkg p;
	struct timespec	 old[2];
	struct stat	 st;
	char		 path[PATH_MAX];
	time_t		 now;

	pkg_init(&p, "touched", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);
	entry_dir(&p, path, sizeof(path));
	old[0].tv_sec = old[1].tv_sec = 1000000000;	/* 2001 */
	old[0].tv_nsec = old[1].tv_nsec = 0;
	ck_assert_int_eq(utimensat(AT_FDCWD, path, old, AT_SYMLINK_NOFOLLOW),
	    0);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mtime, 1000000000);

	now = time(NULL);
	ck_assert_msg(store_link(&p, lib2fd, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_ge(st.st_mtime, now - 1);
	ck_assert_int_le(st.st_mtime, time(NULL) + 1);
	/* and so the entry survives a sweep */
	ck_assert_int_eq(store_sweep(DAY_MS), 0);
	ck_assert(store_has(&p));
}
END_TEST

/* ---- sweeping -------------------------------------------------------- */

static void
age(const struct store_pkg *p, time_t ago)
{
	struct timespec	 ts[2];
	char		 path[PATH_MAX];

	entry_dir(p, path, sizeof(path));
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - ago;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW),
	    0);
}

START_TEST(t_sweep)
{
	struct store_pkg old, old2, recent;
	char		 path[PATH_MAX], text[64];
	struct stat	 st;

	/* old alone in its <rplat>; old2 next to recent under one <pkg> */
	pkg_init(&old, "oldpkg", RPLAT2, "src");
	pkg_init(&recent, "newpkg", RPLAT, "src");
	pkg_init(&old2, "newpkg", RPLAT, "other src");
	ck_assert_str_ne(recent.key, old2.key);
	stage_pkg(old.name);
	ingest_ok(&old);
	stage_pkg(recent.name);
	ingest_ok(&recent);
	stage_pkg(old2.name);
	err[0] = '\0';
	ck_assert_msg(store_ingest(&old2, stagefd, lib2fd, err,
	    sizeof(err)) == 0, "%s", err);
	age(&old, 3 * 24 * 60 * 60);
	age(&old2, 2 * 24 * 60 * 60);
	age(&recent, 60 * 60);

	/* no retention: nothing goes */
	ck_assert_int_eq(store_sweep(0), 0);
	ck_assert_int_eq(store_sweep(-1), 0);
	ck_assert(store_has(&old));
	ck_assert(store_has(&old2));
	ck_assert(store_has(&recent));

	/* longer than anything is old: nothing goes */
	ck_assert_int_eq(store_sweep(7 * DAY_MS), 0);
	ck_assert(store_has(&old));
	ck_assert(store_has(&old2));

	ck_assert_int_eq(store_sweep(DAY_MS), 2);
	ck_assert(!store_has(&old));
	ck_assert(!store_has(&old2));
	ck_assert(store_has(&recent));
	entry_dir(&old, path, sizeof(path));
	ck_assert(!exists(path));
	/* and the directories it leaves empty */
	pathf(path, sizeof(path), "%s/%s/%s", storedir, RPLAT2, old.name);
	ck_assert(!exists(path));
	pathf(path, sizeof(path), "%s/%s", storedir, RPLAT2);
	ck_assert(!exists(path));
	entry_dir(&old2, path, sizeof(path));
	ck_assert(!exists(path));
	/* but not those still in use, nor the store */
	pathf(path, sizeof(path), "%s/%s/%s", storedir, RPLAT,
	    recent.name);
	ck_assert(exists(path));
	ck_assert_int_eq(lstat(storedir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	in_store(&recent, "", path, sizeof(path));
	assert_sealed(path);
	assert_linked(&recent, lib);

	/* libraries that linked the evicted entries keep their files */
	in_dir(lib, old.name, "DESCRIPTION", path, sizeof(path));
	read_text(path, text, sizeof(text));
	ck_assert_str_eq(text, "Package: oldpkg\nVersion: 1.0\n");
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_nlink, 1);
	in_dir(lib2, old2.name, "R/x.R", path, sizeof(path));
	read_text(path, text, sizeof(text));
	ck_assert_str_eq(text, "x <- 1\n");
	in_dir(lib2, old2.name, "R/link.R", path, sizeof(path));
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));

	/* an evicted package comes back on the next ingest */
	stage_pkg(old.name);
	ingest_ok(&old);
	ck_assert(store_has(&old));

	/* the last entry goes too once old enough, the store stays */
	age(&recent, 2 * 24 * 60 * 60);
	age(&old, 2 * 24 * 60 * 60);
	ck_assert_int_eq(store_sweep(DAY_MS), 2);
	ck_assert_int_eq(count_tree(storedir), 1);
}
END_TEST

/* Sweeping never follows a link planted in the store. */
START_TEST(t_sweep_no_follow)
{
	struct store_pkg p;
	struct timespec	 ts[2];
	char		 path[PATH_MAX];

	pkg_init(&p, "kept", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);
	age(&p, 3 * 24 * 60 * 60);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - 3 * 24 * 60 * 60;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	ck_assert_int_eq(utimensat(AT_FDCWD, decoy, ts, AT_SYMLINK_NOFOLLOW),
	    0);
	ck_assert_int_eq(lstat(decoy, &decoy_st), 0);
	/* as an <rplat>, a <pkg> and a <key> */
	pathf(path, sizeof(path), "%s/link-rplat", storedir);
	ck_assert_int_eq(symlink(tmp, path), 0);
	pathf(path, sizeof(path), "%s/%s/linkpkg", storedir, RPLAT);
	ck_assert_int_eq(symlink(tmp, path), 0);
	pathf(path, sizeof(path), "%s/%s/%s/linkkey", storedir, RPLAT,
	    p.name);
	ck_assert_int_eq(symlink(decoy, path), 0);
	ck_assert_int_eq(store_sweep(DAY_MS), 1);
	ck_assert(!store_has(&p));
	decoy_untouched();
	ck_assert(exists(stage));
	ck_assert(exists(lib));
	in_dir(lib, p.name, "DESCRIPTION", path, sizeof(path));
	ck_assert(exists(path));
}
END_TEST

/* No store yet: nothing to do, nothing made. */
START_TEST(t_sweep_empty)
{
	ck_assert_int_eq(store_sweep(DAY_MS), 0);
	ck_assert(!exists(storedir));
}
END_TEST

/*
 * bundle_server_path is the operator's: reached through a symbolic
 * link (a data volume mounted elsewhere, /var/lib -> /srv/...) the
 * store still works.
 */
START_TEST(t_root_through_link)
{
	struct store_pkg p;
	char		 real[256], via[256], path[PATH_MAX];

	pathf(real, sizeof(real), "%s/volume", tmp);
	ck_assert_int_eq(mkdir(real, 0755), 0);
	pathf(via, sizeof(via), "%s/data", tmp);
	ck_assert_int_eq(symlink(real, via), 0);
	pathf(path, sizeof(path), "%s/bundles", via);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	load_conf(path);

	pkg_init(&p, "vialink", RPLAT, "src");
	stage_pkg(p.name);
	ingest_ok(&p);
	ck_assert(store_has(&p));
	pathf(path, sizeof(path), "%s/bundles/.pkg-store/%s/%s/%s/%s/"
	    "DESCRIPTION", real, RPLAT, p.name, p.key, p.name);
	ck_assert(exists(path));
	assert_linked(&p, lib);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite	*s = suite_create("byspawn_store");
	TCase	*tc;

	tc = tcase_create("names");
	tcase_add_test(tc, t_name_ok);
	tcase_add_test(tc, t_word_ok);
	tcase_add_test(tc, t_key);
	suite_add_tcase(s, tc);

	if (geteuid() != 0) {
		fprintf(stderr, "test_byspawn_store: not root: only names "
		    "and keys are tested\n");
		return s;
	}
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_ingest);
	tcase_add_test(tc, t_ingest_twice);
	tcase_add_loop_test(tc, t_refuse_special, 0, 3);
	tcase_add_loop_test(tc, t_refuse_hard_link, 0, 2);
	tcase_add_test(tc, t_refuse_hard_link_foreign);
	tcase_add_loop_test(tc, t_refuse_planted_link, 0, 2);
	tcase_add_test(tc, t_refuse_planted_etc);
	tcase_add_test(tc, t_nested_link_not_followed);
	tcase_add_loop_test(tc, t_depth, 0, 2);
	tcase_add_test(tc, t_link_second_library);
	tcase_add_loop_test(tc, t_link_replaces, 0, 3);
	tcase_add_test(tc, t_link_missing);
	tcase_add_test(tc, t_link_touches);
	tcase_add_test(tc, t_sweep);
	tcase_add_test(tc, t_sweep_no_follow);
	tcase_add_test(tc, t_sweep_empty);
	tcase_add_test(tc, t_root_through_link);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(store_suite());
	int	 failed;

	log_setlevel(LOG_LVL_ERROR);
	strlcpy(topdir, "/tmp/test-store.XXXXXX", sizeof(topdir));
	if (mkdtemp(topdir) == NULL || chmod(topdir, 0755) == -1) {
		perror(topdir);
		return 1;
	}
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(topdir);
	return failed ? 1 : 0;
}
