/*
 * The dependency manifest of an unpacked bundle.  The bundle says what
 * it needs in one of manifest.json, renv.lock or DESCRIPTION at its top
 * level (in that priority), or in nothing but its scripts; this turns
 * whichever it has into one manifest in the reference's format for the
 * build script, with the checksum of every file.
 *
 * The bundle is root's by now but its content is still the uploader's:
 * files are opened below a directory descriptor without following
 * links, read only when regular and small, and every value that goes
 * into the manifest is checked.
 *
 * Also here: the R installations on this machine and the choice of one
 * for a bundle's r_version.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include <jansson.h>
#include <sha2.h>

#include "byspawn.h"
#include "log.h"

#define R_VERSION_TIMEOUT_MS	10000
#define R_SCAN_MAX		256	/* optroot entries looked at */
#define HASH_BUF		65536

static int	 fail(char *, size_t, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

const char *
manifest_form_name(enum manifest_form f)
{
	switch (f) {
	case MANIFEST_JSON:
		return "manifest.json";
	case MANIFEST_RENV:
		return "renv.lock";
	case MANIFEST_DESCRIPTION:
		return "DESCRIPTION";
	case MANIFEST_SCRIPTS:
	default:
		return "scripts";
	}
}

void
manifest_result_free(struct manifest_result *res)
{
	if (res == NULL)
		return;
	json_decref(res->manifest);
	res->manifest = NULL;
}

/* Strict UTF-8: no overlong forms, surrogates or code points > U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t		 i = 0, n, k;
	uint32_t	 cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * Read name at the bundle's top level: 1 with *buf (NUL-terminated,
 * free it) and *len, 0 when there is no such entry, -1 when it is not
 * a regular file or too large, -2 on a system error.
 */
static int
read_top(int dfd, const char *name, char **buf, size_t *len, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*b;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	*buf = NULL;
	*len = 0;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			return fail(err, errlen, -1, "%s is not a regular file",
			    name);
		return fail(err, errlen, -2, "open %s: %s", name,
		    strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		close(fd);
		return fail(err, errlen, -2, "fstat %s: %s", name,
		    strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -1, "%s is not a regular file", name);
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > MANIFEST_FILE_MAX) {
		close(fd);
		return fail(err, errlen, -1, "%s is too large", name);
	}
	if ((b = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return fail(err, errlen, -2, "out of memory");
	}
	/* read what is there, up to the size seen and no further */
	while (off < (size_t)st.st_size) {
		n = read(fd, b + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(b);
			close(fd);
			return fail(err, errlen, -2, "read %s: %s", name,
			    strerror(errno));
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	b[off] = '\0';
	*buf = b;
	*len = off;
	return 1;
}

static int
top_is_file(int dfd, const char *name)
{
	struct stat	 st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

/* ---- validation shared by manifest.json and renv.lock ---- */

static const char *const pkg_fields[] = {
	"Package", "Version", "Source", "Repository", "RemoteType",
	"RemoteHost", "RemoteUsername", "RemoteRepo", "RemoteRef",
	"RemoteSha", "RemoteSubdir", "RemoteUrl",
};
#define NPKG_FIELDS	(sizeof(pkg_fields) / sizeof(pkg_fields[0]))

/* A non-empty string field of obj, or NULL. */
static const char *
str_field(const json_t *obj, const char *key)
{
	const char	*s;

	s = json_string_value(json_object_get(obj, key));
	return s != NULL && *s != '\0' ? s : NULL;
}

static int
package_check(const char *file, const char *key, const json_t *pkg,
    char *err, size_t errlen)
{
	static const char *const remote[] = {
		"RemoteUsername", "RemoteRepo", "RemoteSha"
	};
	const json_t	*v;
	const char	*src;
	size_t		 i;

	if (!json_is_object(pkg))
		return fail(err, errlen, -1, "invalid %s: package \"%s\" "
		    "must be an object", file, key);
	for (i = 0; i < NPKG_FIELDS; i++) {
		v = json_object_get(pkg, pkg_fields[i]);
		if (v != NULL && !json_is_string(v))
			return fail(err, errlen, -1, "invalid %s: package "
			    "\"%s\": %s must be a string", file, key,
			    pkg_fields[i]);
	}
	if (str_field(pkg, "Package") == NULL)
		return fail(err, errlen, -1, "invalid %s: package \"%s\": "
		    "Package is missing", file, key);
	if ((src = str_field(pkg, "Source")) == NULL)
		return fail(err, errlen, -1, "invalid %s: package \"%s\": "
		    "Source is missing", file, key);
	if (strcmp(src, "Repository") == 0 ||
	    strcmp(src, "Bioconductor") == 0) {
		if (str_field(pkg, "Version") == NULL)
			return fail(err, errlen, -1, "invalid %s: package "
			    "\"%s\": Source \"%s\" needs Version", file, key,
			    src);
	} else if (strcmp(src, "GitHub") == 0 || strcmp(src, "GitLab") == 0 ||
	    strcmp(src, "Bitbucket") == 0) {
		for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
			if (str_field(pkg, remote[i]) == NULL)
				return fail(err, errlen, -1, "invalid %s: "
				    "package \"%s\": Source \"%s\" needs %s",
				    file, key, src, remote[i]);
	} else if (strcmp(src, "git") == 0) {
		if (str_field(pkg, "RemoteUrl") == NULL)
			return fail(err, errlen, -1, "invalid %s: package "
			    "\"%s\": Source \"git\" needs RemoteUrl", file,
			    key);
	} else
		return fail(err, errlen, -1, "invalid %s: package \"%s\": "
		    "Source \"%s\" is not supported", file, key, src);
	return 0;
}

/* what names the array in messages: "repositories", "R.Repositories" */
static int
repos_check(const char *file, const char *what, const json_t *repos,
    char *err, size_t errlen)
{
	const json_t	*r;
	size_t		 i;

	if (!json_is_array(repos))
		return fail(err, errlen, -1, "invalid %s: %s must be an array",
		    file, what);
	json_array_foreach(repos, i, r) {
		if (!json_is_object(r) ||
		    !json_is_string(json_object_get(r, "Name")) ||
		    str_field(r, "URL") == NULL)
			return fail(err, errlen, -1, "invalid %s: %s[%zu] needs "
			    "Name and URL strings", file, what, i);
	}
	return 0;
}

static int
rversion_check(const char *file, const char *what, const json_t *v,
    char *rv, size_t rvlen, char *err, size_t errlen)
{
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return fail(err, errlen, -1, "invalid %s: %s must be a string",
		    file, what);
	if (strlcpy(rv, json_string_value(v), rvlen) >= rvlen) {
		rv[0] = '\0';
		return fail(err, errlen, -1, "invalid %s: %s is too long",
		    file, what);
	}
	return 0;
}

static int
load_json(const char *file, const char *buf, size_t len, json_t **out,
    char *err, size_t errlen)
{
	json_error_t	 je;
	json_t		*j;

	*out = NULL;
	if ((j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return fail(err, errlen, -1, "invalid %s: line %d: %s", file,
		    je.line, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(err, errlen, -1, "invalid %s: not a JSON object",
		    file);
	}
	*out = j;
	return 0;
}

/* ---- manifest.json ---- */

static int
from_manifest_json(const char *buf, size_t len, struct manifest_result *res,
    char *err, size_t errlen)
{
	static const char *const desc_fields[] = {
		"Depends", "Imports", "LinkingTo", "Remotes"
	};
	const char	*file = "manifest.json", *key;
	json_t		*m, *v, *md, *pkgs, *desc, *p;
	size_t		 i;
	int		 rc;

	if ((rc = load_json(file, buf, len, &m, err, errlen)) != 0)
		return rc;
	v = json_object_get(m, "version");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		rc = fail(err, errlen, -1, "invalid %s: version must be 1",
		    file);
		goto out;
	}
	pkgs = json_object_get(m, "packages");
	desc = json_object_get(m, "description");
	if (pkgs != NULL && desc != NULL) {
		rc = fail(err, errlen, -1, "invalid %s: packages and "
		    "description are mutually exclusive", file);
		goto out;
	}
	md = json_object_get(m, "metadata");
	if (md != NULL && !json_is_object(md)) {
		rc = fail(err, errlen, -1, "invalid %s: metadata must be an "
		    "object", file);
		goto out;
	}
	if (md == NULL || str_field(md, "entrypoint") == NULL) {
		rc = fail(err, errlen, -1, "invalid %s: metadata.entrypoint "
		    "must be a non-empty string", file);
		goto out;
	}
	v = json_object_get(md, "appmode");
	if (v != NULL && !json_is_string(v)) {
		rc = fail(err, errlen, -1, "invalid %s: metadata.appmode must "
		    "be a string", file);
		goto out;
	}
	if (pkgs != NULL) {
		if (!json_is_object(pkgs)) {
			rc = fail(err, errlen, -1, "invalid %s: packages must "
			    "be an object", file);
			goto out;
		}
		json_object_foreach(pkgs, key, p)
			if ((rc = package_check(file, key, p, err,
			    errlen)) != 0)
				goto out;
	}
	if (desc != NULL) {
		if (!json_is_object(desc)) {
			rc = fail(err, errlen, -1, "invalid %s: description "
			    "must be an object", file);
			goto out;
		}
		for (i = 0; i < sizeof(desc_fields) / sizeof(desc_fields[0]);
		    i++) {
			v = json_object_get(desc, desc_fields[i]);
			if (v != NULL && !json_is_string(v)) {
				rc = fail(err, errlen, -1, "invalid %s: "
				    "description.%s must be a string", file,
				    desc_fields[i]);
				goto out;
			}
		}
	}
	v = json_object_get(m, "repositories");
	if (v != NULL && (rc = repos_check(file, "repositories", v, err,
	    errlen)) != 0)
		goto out;
	if ((rc = rversion_check(file, "r_version",
	    json_object_get(m, "r_version"), res->r_version,
	    sizeof(res->r_version), err, errlen)) != 0)
		goto out;

	/* complete it */
	if (v == NULL && json_object_set_new(m, "repositories",
	    json_array()) == -1)
		goto nomem;
	if (json_object_get(md, "appmode") == NULL &&
	    json_object_set_new(md, "appmode", json_string("shiny")) == -1)
		goto nomem;
	if (pkgs != NULL && json_object_size(pkgs) == 0)
		json_object_del(m, "packages");
	res->manifest = m;
	return 0;
 nomem:
	rc = fail(err, errlen, -2, "out of memory");
 out:
	res->r_version[0] = '\0';
	json_decref(m);
	return rc;
}

/* ---- renv.lock ---- */

static int
renv_package(const char *key, const json_t *in, json_t **out, char *err,
    size_t errlen)
{
	const char	*file = "renv.lock";
	const json_t	*v;
	json_t		*p;
	size_t		 i;
	int		 cran = 0;

	*out = NULL;
	if (!json_is_object(in))
		return fail(err, errlen, -1, "invalid %s: package \"%s\" "
		    "must be an object", file, key);
	if ((p = json_object()) == NULL)
		return fail(err, errlen, -2, "out of memory");
	for (i = 0; i < NPKG_FIELDS; i++) {
		if ((v = json_object_get(in, pkg_fields[i])) == NULL)
			continue;
		if (!json_is_string(v)) {
			json_decref(p);
			return fail(err, errlen, -1, "invalid %s: package "
			    "\"%s\": %s must be a string", file, key,
			    pkg_fields[i]);
		}
		if (strcmp(pkg_fields[i], "Source") == 0 &&
		    strcmp(json_string_value(v), "CRAN") == 0) {
			cran = 1;
			v = NULL;
		}
		if (json_object_set_new(p, pkg_fields[i], v != NULL ?
		    json_copy((json_t *)v) : json_string("Repository")) == -1)
			goto nomem;
	}
	if (cran && json_object_get(p, "Repository") == NULL &&
	    json_object_set_new(p, "Repository", json_string("CRAN")) == -1)
		goto nomem;
	if (package_check(file, key, p, err, errlen) != 0) {
		json_decref(p);
		return -1;
	}
	*out = p;
	return 0;
 nomem:
	json_decref(p);
	return fail(err, errlen, -2, "out of memory");
}

static int
from_renv(int dfd, const char *buf, size_t len, struct manifest_result *res,
    char *err, size_t errlen)
{
	const char	*file = "renv.lock", *key;
	json_t		*lock, *r, *v, *pkgs, *p, *m = NULL, *outp = NULL;
	json_t		*repos = NULL;
	int		 rc;

	if ((rc = load_json(file, buf, len, &lock, err, errlen)) != 0)
		return rc;
	r = json_object_get(lock, "R");
	if (r != NULL && !json_is_object(r)) {
		rc = fail(err, errlen, -1, "invalid %s: R must be an object",
		    file);
		goto out;
	}
	if ((rc = rversion_check(file, "R.Version",
	    json_object_get(r, "Version"), res->r_version,
	    sizeof(res->r_version), err, errlen)) != 0)
		goto out;
	if ((v = json_object_get(r, "Repositories")) != NULL) {
		if ((rc = repos_check(file, "R.Repositories", v, err,
		    errlen)) != 0)
			goto out;
		repos = json_deep_copy(v);
	} else
		repos = json_array();
	if (repos == NULL)
		goto nomem;

	pkgs = json_object_get(lock, "Packages");
	if (pkgs != NULL && !json_is_object(pkgs)) {
		rc = fail(err, errlen, -1, "invalid %s: Packages must be an "
		    "object", file);
		goto out;
	}
	if ((outp = json_object()) == NULL)
		goto nomem;
	json_object_foreach(pkgs, key, v) {
		if ((rc = renv_package(key, v, &p, err, errlen)) != 0)
			goto out;
		if (json_object_set_new(outp, key, p) == -1)
			goto nomem;
	}

	m = json_pack("{s:i, s:{s:s, s:s}}", "version", 1, "metadata",
	    "appmode", "shiny", "entrypoint",
	    top_is_file(dfd, "app.R") ? "app.R" : "server.R");
	if (m == NULL)
		goto nomem;
	if (res->r_version[0] != '\0' && json_object_set_new(m, "r_version",
	    json_string(res->r_version)) == -1)
		goto nomem;
	if (json_object_set(m, "repositories", repos) == -1)
		goto nomem;
	if (json_object_size(outp) > 0 &&
	    json_object_set(m, "packages", outp) == -1)
		goto nomem;
	res->manifest = m;
	m = NULL;
	rc = 0;
	goto done;
 nomem:
	rc = fail(err, errlen, -2, "out of memory");
 out:
	res->r_version[0] = '\0';
 done:
	json_decref(m);
	json_decref(outp);
	json_decref(repos);
	json_decref(lock);
	return rc;
}

/* ---- DESCRIPTION (DCF) ---- */

struct dcf_field {
	char	*name;
	char	*val;
	size_t	 len;
	int	 line;
};

struct dcf {
	struct dcf_field	*f;
	size_t			 n, cap;
};

static void
dcf_free(struct dcf *d)
{
	size_t	 i;

	for (i = 0; i < d->n; i++) {
		free(d->f[i].name);
		free(d->f[i].val);
	}
	free(d->f);
	memset(d, 0, sizeof(*d));
}

static const struct dcf_field *
dcf_get(const struct dcf *d, const char *name)
{
	size_t	 i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->f[i].name, name) == 0)
			return &d->f[i];
	return NULL;
}

/*
 * The first record of buf: "Field: value" lines, continuation lines
 * (leading blank) joined with "\n" as they are, up to a blank line.
 */
static int
dcf_parse(const char *buf, size_t len, struct dcf *d, char *err,
    size_t errlen)
{
	const char		*p = buf, *end = buf + len, *nl, *c, *v;
	struct dcf_field	*f, *nf;
	size_t			 ll, nlen, i;
	char			*nv;
	int			 line = 0;

	memset(d, 0, sizeof(*d));
	if (memchr(buf, '\0', len) != NULL)
		return fail(err, errlen, -1, "invalid DESCRIPTION: contains "
		    "a NUL byte");
	while (p < end) {
		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		ll = (size_t)(nl - p);
		while (ll > 0 && (p[ll - 1] == '\r' || p[ll - 1] == ' ' ||
		    p[ll - 1] == '\t'))
			ll--;
		if (ll == 0) {
			if (d->n > 0)
				break;		/* end of the first record */
			p = nl + 1;
			continue;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			if (d->n == 0)
				return fail(err, errlen, -1, "invalid "
				    "DESCRIPTION: line %d: continuation line "
				    "without a field", line);
			f = &d->f[d->n - 1];
			if ((nv = realloc(f->val, f->len + 1 + ll + 1)) == NULL)
				return fail(err, errlen, -2, "out of memory");
			nv[f->len] = '\n';
			memcpy(nv + f->len + 1, p, ll);
			f->len += 1 + ll;
			nv[f->len] = '\0';
			f->val = nv;
			p = nl + 1;
			continue;
		}
		if ((c = memchr(p, ':', ll)) == NULL || c == p)
			goto bad;
		nlen = (size_t)(c - p);
		for (i = 0; i < nlen; i++)
			if ((unsigned char)p[i] <= ' ' ||
			    (unsigned char)p[i] >= 0x7f)
				goto bad;
		for (i = 0; i < d->n; i++)
			if (strlen(d->f[i].name) == nlen &&
			    memcmp(d->f[i].name, p, nlen) == 0)
				return fail(err, errlen, -1, "invalid "
				    "DESCRIPTION: line %d: duplicate field "
				    "\"%.*s\"", line, (int)nlen, p);
		if (d->n == d->cap) {
			nf = reallocarray(d->f, d->cap ? d->cap * 2 : 16,
			    sizeof(*nf));
			if (nf == NULL)
				return fail(err, errlen, -2, "out of memory");
			d->f = nf;
			d->cap = d->cap ? d->cap * 2 : 16;
		}
		f = &d->f[d->n];
		for (v = c + 1; v < p + ll && (*v == ' ' || *v == '\t'); v++)
			;
		f->len = (size_t)(p + ll - v);
		f->line = line;
		f->name = strndup(p, nlen);
		f->val = strndup(v, f->len);
		if (f->name == NULL || f->val == NULL) {
			free(f->name);
			free(f->val);
			return fail(err, errlen, -2, "out of memory");
		}
		d->n++;
		p = nl + 1;
	}
	return 0;
 bad:
	return fail(err, errlen, -1, "invalid DESCRIPTION: line %d: not a "
	    "\"Field: value\" line", line);
}

static json_t *
dcf_string(const struct dcf_field *f, char *err, size_t errlen, int *rc)
{
	json_t	*s;

	if (!utf8_valid((const unsigned char *)f->val, f->len)) {
		*rc = fail(err, errlen, -1, "invalid DESCRIPTION: not UTF-8");
		return NULL;
	}
	if ((s = json_stringn(f->val, f->len)) == NULL)
		*rc = fail(err, errlen, -2, "out of memory");
	return s;
}

static int
from_description(int dfd, const char *buf, size_t len,
    struct manifest_result *res, char *err, size_t errlen)
{
	static const char *const keep[] = {
		"Depends", "Imports", "LinkingTo", "Remotes"
	};
	const struct dcf_field	*f;
	struct dcf		 d;
	json_t			*m = NULL, *desc, *repos, *s;
	char			*tok, *cp = NULL, *next, name[32];
	size_t			 i;
	int			 rc, nrepo = 0;

	if ((rc = dcf_parse(buf, len, &d, err, errlen)) != 0) {
		dcf_free(&d);
		return rc;
	}
	m = json_pack("{s:i, s:{s:s, s:s}, s:[], s:{}}", "version", 1,
	    "metadata", "appmode", "shiny", "entrypoint",
	    top_is_file(dfd, "app.R") ? "app.R" : "server.R",
	    "repositories", "description");
	if (m == NULL)
		goto nomem;
	desc = json_object_get(m, "description");
	repos = json_object_get(m, "repositories");
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		if ((f = dcf_get(&d, keep[i])) == NULL)
			continue;
		if ((s = dcf_string(f, err, errlen, &rc)) == NULL)
			goto out;
		if (json_object_set_new(desc, keep[i], s) == -1)
			goto nomem;
	}
	if ((f = dcf_get(&d, "Additional_repositories")) != NULL) {
		if (!utf8_valid((const unsigned char *)f->val, f->len)) {
			rc = fail(err, errlen, -1, "invalid DESCRIPTION: not "
			    "UTF-8");
			goto out;
		}
		if ((cp = strdup(f->val)) == NULL)
			goto nomem;
		next = cp;
		while ((tok = strsep(&next, ", \t\r\n")) != NULL) {
			if (*tok == '\0')
				continue;
			snprintf(name, sizeof(name), "repo%d", ++nrepo);
			if (json_array_append_new(repos, json_pack("{s:s, s:s}",
			    "Name", name, "URL", tok)) == -1)
				goto nomem;
		}
	}
	res->manifest = m;
	m = NULL;
	rc = 0;
	goto out;
 nomem:
	rc = fail(err, errlen, -2, "out of memory");
 out:
	free(cp);
	json_decref(m);
	dcf_free(&d);
	return rc;
}

/* ---- files ---- */

static int
hash_file(int fd, char hex[SHA256_DIGEST_STRING_LENGTH])
{
	SHA2_CTX	 ctx;
	uint8_t		*buf;
	ssize_t		 n;

	if ((buf = malloc(HASH_BUF)) == NULL)
		return -1;
	SHA256Init(&ctx);
	for (;;) {
		n = read(fd, buf, HASH_BUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		SHA256Update(&ctx, buf, (size_t)n);
	}
	free(buf);
	SHA256End(&ctx, hex);
	return 0;
}

/*
 * Every regular file below dfd (which this takes over) into files,
 * named prefix/name; entries here have depth path components.
 */
static int
walk(int dfd, const char *prefix, int depth, json_t *files, char *err,
    size_t errlen)
{
	char		 rel[PATH_MAX], hex[SHA256_DIGEST_STRING_LENGTH];
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 fd, rc = 0;

	if ((d = fdopendir(dfd)) == NULL) {
		rc = fail(err, errlen, -2, "fdopendir %s: %s",
		    *prefix ? prefix : ".", strerror(errno));
		close(dfd);
		return rc;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				rc = fail(err, errlen, -2, "readdir %s: %s",
				    *prefix ? prefix : ".", strerror(errno));
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			rc = fail(err, errlen, -2, "stat %s/%s: %s", prefix,
			    de->d_name, strerror(errno));
			break;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			continue;	/* links and the like: never followed */
		if (depth > MANIFEST_WALK_DEPTH) {
			rc = fail(err, errlen, -1, "bundle is nested deeper "
			    "than %d levels", MANIFEST_WALK_DEPTH);
			break;
		}
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix,
		    *prefix ? "/" : "", de->d_name) >= sizeof(rel)) {
			rc = fail(err, errlen, -1, "bundle has a path longer "
			    "than %d bytes", PATH_MAX - 1);
			break;
		}
		if (!utf8_valid((const unsigned char *)rel, strlen(rel))) {
			rc = fail(err, errlen, -1, "bundle has a file name that "
			    "is not UTF-8");
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1) {
				rc = fail(err, errlen, -2, "open %s: %s", rel,
				    strerror(errno));
				break;
			}
			if ((rc = walk(fd, rel, depth + 1, files, err,
			    errlen)) != 0)
				break;
			continue;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd == -1) {
			rc = fail(err, errlen, -2, "open %s: %s", rel,
			    strerror(errno));
			break;
		}
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			close(fd);	/* swapped under us: not ours to hash */
			continue;
		}
		if (hash_file(fd, hex) == -1) {
			rc = fail(err, errlen, -2, "read %s: %s", rel,
			    strerror(errno));
			close(fd);
			break;
		}
		close(fd);
		if (json_object_set_new(files, rel, json_pack("{s:s}",
		    "checksum", hex)) == -1) {
			rc = fail(err, errlen, -2, "out of memory");
			break;
		}
	}
	closedir(d);
	return rc;
}

/* ---- resolve ---- */

int
manifest_resolve(const char *bundle_dir, struct manifest_result *res,
    char *err, size_t errlen)
{
	static const struct {
		const char		*name;
		enum manifest_form	 form;
	} order[] = {
		{ "manifest.json",	MANIFEST_JSON },
		{ "renv.lock",		MANIFEST_RENV },
		{ "DESCRIPTION",	MANIFEST_DESCRIPTION },
	};
	json_t		*files;
	char		*buf = NULL;
	size_t		 len, i;
	int		 dfd, fd, rc = 0, found = 0;

	memset(res, 0, sizeof(*res));
	res->form = MANIFEST_SCRIPTS;
	if ((dfd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return fail(err, errlen, -2, "open %s: %s", bundle_dir,
		    strerror(errno));
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if ((found = read_top(dfd, order[i].name, &buf, &len, err,
		    errlen)) < 0) {
			rc = found;
			goto out;
		}
		if (found) {
			res->form = order[i].form;
			break;
		}
	}
	switch (res->form) {
	case MANIFEST_JSON:
		rc = from_manifest_json(buf, len, res, err, errlen);
		break;
	case MANIFEST_RENV:
		rc = from_renv(dfd, buf, len, res, err, errlen);
		break;
	case MANIFEST_DESCRIPTION:
		rc = from_description(dfd, buf, len, res, err, errlen);
		break;
	case MANIFEST_SCRIPTS:
		res->manifest = json_pack("{s:i, s:{s:s, s:s}, s:[]}",
		    "version", 1, "metadata", "appmode", "shiny",
		    "entrypoint",
		    top_is_file(dfd, "app.R") ? "app.R" : "server.R",
		    "repositories");
		if (res->manifest == NULL)
			rc = fail(err, errlen, -2, "out of memory");
		break;
	}
	if (rc != 0)
		goto out;

	if ((files = json_object()) == NULL ||
	    json_object_set_new(res->manifest, "files", files) == -1) {
		rc = fail(err, errlen, -2, "out of memory");
		goto out;
	}
	if ((fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		rc = fail(err, errlen, -2, "dup: %s", strerror(errno));
		goto out;
	}
	if ((rc = walk(fd, "", 1, files, err, errlen)) != 0)
		goto out;
	res->pinned = json_object_get(res->manifest, "packages") != NULL;
 out:
	free(buf);
	close(dfd);
	if (rc != 0) {
		manifest_result_free(res);
		res->r_version[0] = '\0';
		res->pinned = 0;
	}
	return rc;
}

int
manifest_write(const json_t *manifest, const char *path, char *err,
    size_t errlen)
{
	char	 tmp[PATH_MAX];
	int	 fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
	    sizeof(tmp))
		return fail(err, errlen, -1, "%s: path too long", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return fail(err, errlen, -1, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, 0644) == -1)
		goto bad;
	errno = 0;
	if (json_dumpfd(manifest, fd, JSON_INDENT(2) | JSON_SORT_KEYS) == -1) {
		if (errno == 0)
			errno = EIO;
		goto bad;
	}
	if (write(fd, "\n", 1) != 1) {
		if (errno == 0)
			errno = EIO;
		goto bad;
	}
	if (fsync(fd) == -1)
		goto bad;
	if (close(fd) == -1) {
		fd = -1;
		goto bad;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto bad;
	return 0;
 bad:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return fail(err, errlen, -1, "%s: %s", path, strerror(saved));
}

/* ---- R installations ---- */

/* X.Y or X.Y.Z, digits only: 1 with the parts (*pat -1 for X.Y), else 0. */
static int
version_parse(const char *s, long *maj, long *min, long *pat)
{
	long	 v[3] = { -1, -1, -1 };
	char	*ep;
	int	 i;

	for (i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return 0;
		errno = 0;
		v[i] = strtol(s, &ep, 10);
		if (errno != 0 || ep - s > 6)
			return 0;
		s = ep;
		if (*s == '\0')
			break;
		if (*s != '.' || i == 2)
			return 0;
		s++;
	}
	if (i == 0)
		return 0;
	*maj = v[0];
	*min = v[1];
	*pat = v[2];
	return 1;
}

static int
version_cmp(const char *a, const char *b)
{
	long	 a1, a2, a3, b1, b2, b3;

	if (!version_parse(a, &a1, &a2, &a3) ||
	    !version_parse(b, &b1, &b2, &b3))
		return strcmp(a, b);
	if (a1 != b1)
		return a1 < b1 ? -1 : 1;
	if (a2 != b2)
		return a2 < b2 ? -1 : 1;
	if (a3 != b3)
		return a3 < b3 ? -1 : 1;
	return 0;
}

/*
 * "<path> --version": "R version X.Y.Z ..." on the first line.  0 with
 * the version, -1 when it did not run, took too long or said something
 * else.
 */
static int
r_version_of(const char *path, char *ver, size_t verlen)
{
	char	*argv[] = { (char *)path, "--version", NULL };
	char	 out[512], *v, *e;
	long	 maj, min, pat;
	int	 status;

	if (spawn_run_capture(argv, out, sizeof(out), &status,
	    R_VERSION_TIMEOUT_MS) == -1) {
		log_warnx("%s --version: %s", path, errno == ETIMEDOUT ?
		    "no answer in time" : strerror(errno));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	out[strcspn(out, "\n")] = '\0';
	if (strncmp(out, "R version ", 10) != 0)
		return -1;
	v = out + 10;
	if ((e = strchr(v, ' ')) != NULL)
		*e = '\0';
	if (!version_parse(v, &maj, &min, &pat) ||
	    strlcpy(ver, v, verlen) >= verlen)
		return -1;
	return 0;
}

static int
install_cmp(const void *a, const void *b)
{
	const struct r_install	*x = a, *y = b;

	return version_cmp(x->version, y->version);
}

static int
have_version(const struct r_install *list, int n, const char *v)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i].version, v) == 0)
			return 1;
	return 0;
}

int
r_installs_scan(const char *r_path, const char *optroot,
    struct r_install *list, int max)
{
	struct r_install	*cand = NULL, *nc;
	struct dirent		*de;
	struct stat		 st;
	DIR			*d;
	long			 a, b, c;
	size_t			 nc_n = 0, nc_cap = 0, i;
	char			 bin[PATH_MAX];
	int			 n = 0;

	if (max <= 0)
		return 0;
	if (r_path != NULL && *r_path != '\0') {
		if (r_version_of(r_path, list[0].version,
		    sizeof(list[0].version)) == 0 &&
		    strlcpy(list[0].path, r_path, sizeof(list[0].path)) <
		    sizeof(list[0].path))
			n = 1;
		else
			log_warnx("%s: cannot tell its R version", r_path);
	}
	if (optroot == NULL || (d = opendir(optroot)) == NULL)
		return n;
	while ((de = readdir(d)) != NULL && nc_n < R_SCAN_MAX) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
			continue;	/* rig's "current" is a link */
		if ((size_t)snprintf(bin, sizeof(bin), "%s/%s/bin/R", optroot,
		    de->d_name) >= sizeof(bin))
			continue;
		if (stat(bin, &st) == -1 || !S_ISREG(st.st_mode) ||
		    access(bin, X_OK) == -1)
			continue;
		if (nc_n == nc_cap) {
			nc = reallocarray(cand, nc_cap ? nc_cap * 2 : 8,
			    sizeof(*cand));
			if (nc == NULL)
				break;
			cand = nc;
			nc_cap = nc_cap ? nc_cap * 2 : 8;
		}
		strlcpy(cand[nc_n].path, bin, sizeof(cand[nc_n].path));
		if (strlen(de->d_name) < sizeof(cand[nc_n].version) &&
		    version_parse(de->d_name, &a, &b, &c))
			strlcpy(cand[nc_n].version, de->d_name,
			    sizeof(cand[nc_n].version));
		else if (r_version_of(bin, cand[nc_n].version,
		    sizeof(cand[nc_n].version)) == -1) {
			log_warnx("%s: cannot tell its R version", bin);
			continue;
		}
		nc_n++;
	}
	closedir(d);
	if (nc_n > 0)
		qsort(cand, nc_n, sizeof(*cand), install_cmp);
	for (i = 0; i < nc_n && n < max; i++) {
		if (have_version(list, n, cand[i].version))
			continue;
		list[n++] = cand[i];
	}
	free(cand);
	return n;
}

int
r_install_pick(const struct r_install *list, int n, const char *want,
    const struct r_install **out, char *err, size_t errlen)
{
	const struct r_install	*best = NULL;
	long			 wa, wb, wc, a, b, c, bc = -2;
	char			 avail[1024], mm[64];
	int			 i;

	*out = NULL;
	if (want == NULL || *want == '\0') {
		if (n <= 0)
			return fail(err, errlen, -1, "no R installation is "
			    "available");
		*out = &list[0];
		return 0;
	}
	for (i = 0; i < n; i++)
		if (strcmp(list[i].version, want) == 0) {
			*out = &list[i];
			return 0;
		}
	if (version_parse(want, &wa, &wb, &wc)) {
		for (i = 0; i < n; i++) {
			if (!version_parse(list[i].version, &a, &b, &c) ||
			    a != wa || b != wb)
				continue;
			if (best == NULL || c > bc) {
				best = &list[i];
				bc = c;
			}
		}
		if (best != NULL) {
			*out = best;
			return 0;
		}
		snprintf(mm, sizeof(mm), "%ld.%ld", wa, wb);
	} else
		strlcpy(mm, want, sizeof(mm));
	avail[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strlcat(avail, ", ", sizeof(avail));
		strlcat(avail, list[i].version, sizeof(avail));
	}
	return fail(err, errlen, -1, "bundle requires R %s which is not "
	    "installed; available: %s", mm, n > 0 ? avail : "none");
}
