/*
 * The package store: every R package a build installed, kept once per
 * (package, version, source, R version, platform) under
 *
 *	<bsp>/.pkg-store/<R version>-<platform>/<package>/<key>/<package>/
 *
 * and hard-linked into the libraries of the bundles that use it, so a
 * redeploy whose dependencies did not change installs nothing.  The key
 * is a SHA-256 over the package's source (name, version, origin,
 * checksum or commit) and the keys of the packages it links to.
 *
 * Everything here runs as root on trees that an unprivileged build
 * step wrote: every call works relative to directory descriptors and
 * never follows a symbolic link, and ingested trees are made root's
 * and read-only before they enter the store, so no later build (whose
 * uid may be the same slot) can change what other bundles link to.
 * The entry directory's mtime is its last use, for store_retention.
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
#include <time.h>
#include <unistd.h>

#include <sha2.h>

#include <bsd/string.h>

#include "log.h"
#include "byspawn.h"

#define STORE_DIR	".pkg-store"
#define STORE_DEPTH	64		/* directories below a package */

static void
store_root(char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", proc_conf->storage.bundle_server_path,
	    STORE_DIR);
}

/* R package names: a letter, then letters, digits and dots. */
int
store_name_ok(const char *s)
{
	size_t	 n = strlen(s);

	if (n < 1 || n > 64 || !((*s >= 'A' && *s <= 'Z') ||
	    (*s >= 'a' && *s <= 'z')))
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789.") == n && s[n - 1] != '.';
}

/* Versions, R versions and platforms: a safe path component. */
int
store_word_ok(const char *s)
{
	size_t	 n = strlen(s);

	return n > 0 && n < 64 && s[0] != '.' && s[0] != '-' &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == n;
}

void
store_key(const char *const fields[], size_t n, char out[65])
{
	SHA2_CTX	 ctx;
	size_t		 i;

	SHA256Init(&ctx);
	for (i = 0; i < n; i++)
		SHA256Update(&ctx, (const uint8_t *)(fields[i] ? fields[i] :
		    ""), strlen(fields[i] ? fields[i] : "") + 1);
	SHA256End(&ctx, out);
}

/* mkdir -p, for the store's own (root's) directories, mode exact */
static int
mkdir_p(const char *path, mode_t mode)
{
	char		 tmp[PATH_MAX], *p;
	struct stat	 st;

	if (strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; p != NULL; ) {
		if ((p = strchr(p, '/')) != NULL)
			*p = '\0';
		/* bundle_server_path may lead through links: follow */
		if (mkdir(tmp, mode) == -1 && (errno != EEXIST ||
		    stat(tmp, &st) == -1 || !S_ISDIR(st.st_mode)))
			return -1;
		if (p != NULL)
			*p++ = '/';
	}
	return 0;
}

/* <store>/<rplat>/<pkg>/<key> */
static int
entry_path(const struct store_pkg *p, char *buf, size_t len)
{
	char	 root[PATH_MAX];

	store_root(root, sizeof(root));
	if (snprintf(buf, len, "%s/%s/%s/%s", root, p->rplat, p->name,
	    p->key) >= (int)len)
		return -1;
	return 0;
}

/*
 * Hard-link the tree src (a directory under sfd) to a new dst under
 * dfd: directories are made root's 0755, files are linked, symbolic
 * links copied as links.  Nothing is followed.
 */
static int
link_tree(int sfd, const char *src, int dfd, const char *dst, int depth)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 target[PATH_MAX];
	ssize_t		 n;
	int		 s, t, rv = -1;

	if (depth > STORE_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	if ((s = openat(sfd, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	if (mkdirat(dfd, dst, 0755) == -1 || (t = openat(dfd, dst,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		close(s);
		return -1;
	}
	/* whatever the umask: workers read libraries as other users */
	if (fchmod(t, 0755) == -1) {
		close(s);
		close(t);
		return -1;
	}
	if ((d = fdopendir(s)) == NULL) {
		close(s);
		close(t);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(s, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			goto out;
		if (S_ISDIR(st.st_mode)) {
			if (link_tree(s, de->d_name, t, de->d_name,
			    depth + 1) == -1)
				goto out;
		} else if (S_ISREG(st.st_mode)) {
			if (linkat(s, de->d_name, t, de->d_name, 0) == -1)
				goto out;
		} else if (S_ISLNK(st.st_mode)) {
			if ((n = readlinkat(s, de->d_name, target,
			    sizeof(target) - 1)) == -1)
				goto out;
			target[n] = '\0';
			if (symlinkat(target, t, de->d_name) == -1)
				goto out;
		}
		/* anything else was refused when the entry was made */
	}
	rv = 0;
 out:
	closedir(d);
	close(t);
	return rv;
}

/*
 * A regular file of the tree, through its own descriptor so that
 * nothing can be swapped in between: root's, 0644 or 0755, and no
 * other name may share it (a hard link to something else).
 */
static int
seal_file(int dfd, const char *name, char *err, size_t errlen)
{
	struct stat	 st;
	int		 fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snprintf(err, errlen, "%s: %s", name, S_ISREG(st.st_mode) ?
		    "has other links" : "changed while sealed");
		close(fd);
		return -1;
	}
	if (fchown(fd, 0, 0) == -1 || fchmod(fd, (st.st_mode & 0100) ?
	    0755 : 0644) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Make a tree a build step wrote fit for the store: root's, nobody
 * else may write, no set-id bits, only directories, regular files and
 * symbolic links.
 */
static int
seal_tree(int pfd, const char *name, int depth, char *err, size_t errlen)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	int		 fd, rv = -1;

	if (depth > STORE_DEPTH) {
		snprintf(err, errlen, "%s: too deep", name);
		return -1;
	}
	if ((fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (fchown(fd, 0, 0) == -1 || fchmod(fd, 0755) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			snprintf(err, errlen, "%s: %s", de->d_name,
			    strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			if (seal_tree(fd, de->d_name, depth + 1, err,
			    errlen) == -1)
				goto out;
		} else if (S_ISREG(st.st_mode)) {
			if (seal_file(fd, de->d_name, err, errlen) == -1)
				goto out;
		} else if (S_ISLNK(st.st_mode)) {
			if (fchownat(fd, de->d_name, 0, 0,
			    AT_SYMLINK_NOFOLLOW) == -1) {
				snprintf(err, errlen, "%s: %s", de->d_name,
				    strerror(errno));
				goto out;
			}
		} else {
			snprintf(err, errlen, "%s: not a file or directory",
			    de->d_name);
			goto out;
		}
	}
	rv = 0;
 out:
	closedir(d);
	return rv;
}

/* Remove a directory of ours and what is left in it. */
static void
remove_dir(const char *path)
{
	char	 parent[PATH_MAX], *slash;
	int	 fd;

	strlcpy(parent, path, sizeof(parent));
	if ((slash = strrchr(parent, '/')) == NULL)
		return;
	*slash = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if (unpack_remove_tree(fd, slash + 1) == -1 && errno != ENOENT)
		log_warn("remove %s", path);
	close(fd);
}

/* Is the package in the store? */
int
store_has(const struct store_pkg *p)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	if (entry_path(p, path, sizeof(path)) == -1)
		return 0;
	strlcat(path, "/", sizeof(path));
	strlcat(path, p->name, sizeof(path));
	if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode))
		return 0;
	return 1;
}

/* Link the stored package into the library directory libfd. */
int
store_link(const struct store_pkg *p, int libfd, char *err, size_t errlen)
{
	char	 path[PATH_MAX];
	int	 efd, rv;

	if (entry_path(p, path, sizeof(path)) == -1 ||
	    (efd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "store entry of %s: %s", p->name,
		    strerror(errno));
		return -1;
	}
	/* last use, for store_retention */
	futimens(efd, NULL);
	if (unpack_remove_tree(libfd, p->name) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", p->name, strerror(errno));
		close(efd);
		return -1;
	}
	if ((rv = link_tree(efd, p->name, libfd, p->name, 0)) == -1)
		snprintf(err, errlen, "linking %s: %s", p->name,
		    strerror(errno));
	close(efd);
	return rv;
}

/*
 * A build step installed the package into the directory stagefd: seal
 * it and move it into the store (unless an equal build got there
 * first), then link it into the library.
 */
int
store_ingest(const struct store_pkg *p, int stagefd, int libfd, char *err,
    size_t errlen)
{
	char		 root[PATH_MAX / 2], tmp[PATH_MAX], path[PATH_MAX];
	struct stat	 st;
	int		 tfd = -1, efd = -1, rv = -1;

	if (fstatat(stagefd, p->name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not an installed package", p->name);
		return -1;
	}
	/*
	 * First out of the step's reach: into a directory of root's in
	 * the store, where nothing can be swapped while it is sealed.
	 */
	store_root(root, sizeof(root));
	snprintf(tmp, sizeof(tmp), "%s/.staging/%s.XXXXXX", root, p->key);
	snprintf(path, sizeof(path), "%s/.staging", root);
	if (mkdir_p(path, 0700) == -1 || mkdtemp(tmp) == NULL ||
	    (tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "store: %s", strerror(errno));
		goto done;
	}
	if (renameat(stagefd, p->name, tfd, p->name) == -1) {
		snprintf(err, errlen, "%s: %s", p->name, strerror(errno));
		goto done;
	}
	if (seal_tree(tfd, p->name, 0, err, errlen) == -1)
		goto done;
	/* an equal build may have got there first: keep its entry */
	if (!store_has(p)) {
		if (entry_path(p, path, sizeof(path)) == -1 ||
		    mkdir_p(path, 0755) == -1 ||
		    (efd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1 ||
		    renameat(tfd, p->name, efd, p->name) == -1) {
			snprintf(err, errlen, "store: %s", strerror(errno));
			goto done;
		}
	}
	rv = store_link(p, libfd, err, errlen);
 done:
	if (efd != -1)
		close(efd);
	if (tfd != -1) {
		close(tfd);
		remove_dir(tmp);
	}
	snprintf(path, sizeof(path), "%s/.staging", root);
	rmdir(path);		/* when empty */
	return rv;
}

/* Remove a directory's children older than cutoff, then itself if empty. */
static int
sweep_level(int pfd, const char *name, int level, time_t cutoff)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	int		 fd, removed = 0;

	if ((fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (level < 2) {
			removed += sweep_level(fd, de->d_name, level + 1,
			    cutoff);
			continue;
		}
		/* level 2: <key> entries */
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode) && st.st_mtime < cutoff &&
		    unpack_remove_tree(fd, de->d_name) == 0)
			removed++;
	}
	closedir(d);
	if (level > 0)
		unlinkat(pfd, name, AT_REMOVEDIR);	/* if empty */
	return removed;
}

/*
 * [storage] store_retention: entries nobody linked for that long go.
 * Libraries that use them keep their files (hard links).
 */
/* Start-up: ingests a crash interrupted. */
void
store_clean_staging(void)
{
	char	 root[PATH_MAX / 2], path[PATH_MAX];

	store_root(root, sizeof(root));
	snprintf(path, sizeof(path), "%s/.staging", root);
	remove_dir(path);
}

int
store_sweep(int64_t retention_ms)
{
	char	 root[PATH_MAX];
	time_t	 cutoff;
	int	 n;

	if (retention_ms <= 0)
		return 0;
	store_root(root, sizeof(root));
	cutoff = time(NULL) - (time_t)(retention_ms / 1000);
	n = sweep_level(AT_FDCWD, root, 0, cutoff);
	if (n > 0)
		log_info("store: %d unused package%s evicted", n,
		    n == 1 ? "" : "s");
	return n;
}
