/*
 * Dependency manifests of an unpacked bundle and the R installations
 * that can build it (spawn_manifest.c).  To be merged into byspawn.h.
 */

#ifndef SPAWN_MANIFEST_H
#define SPAWN_MANIFEST_H

#include <limits.h>
#include <stddef.h>

#include <jansson.h>

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

#endif /* SPAWN_MANIFEST_H */
