/*
 * Manifest resolution: each form (manifest.json, renv.lock, DESCRIPTION,
 * bare scripts) from a bundle directory written here, their priority,
 * every validation rule with its message, file checksums, files that
 * are links or too large; and the R installations: a scan of a fake
 * /opt/R next to the real /usr/bin/R, and the choice of one.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include <check.h>
#include <jansson.h>

#include "byspawn.h"
#include "log.h"

#define SHA_ABC		"ba7816bf8f01cfea414140de5dae2223" \
			"b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY	"e3b0c44298fc1c149afbf4c8996fb924" \
			"27ae41e4649b934ca495991b7852b855"

static char			 tmp[64];	/* the test's own directory */
static char			 bdir[128];	/* the bundle */
static struct manifest_result	 res;
static char			 err[1024];

static void
setup(void)
{
	strlcpy(tmp, "/tmp/test-manifest.XXXXXX", sizeof(tmp));
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(bdir, sizeof(bdir), "%s/bundle", tmp);
	ck_assert_int_eq(mkdir(bdir, 0755), 0);
	memset(&res, 0, sizeof(res));
	err[0] = '\0';
}

static void
teardown(void)
{
	int	 fd;

	manifest_result_free(&res);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	unpack_remove_tree(fd, tmp + strlen("/tmp/"));
	close(fd);
}

/* ---- fixtures ---- */

static void
put_bytes(const char *rel, const void *data, size_t len, mode_t mode)
{
	char	 path[PATH_MAX], dir[PATH_MAX], *s;
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", bdir, rel);
	/* make the parents */
	strlcpy(dir, path, sizeof(dir));
	for (s = dir + strlen(bdir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(dir, 0755) == -1)
			ck_assert_int_eq(errno, EEXIST);
		*s = '/';
	}
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	if (len > 0)
		ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void
put(const char *rel, const char *text)
{
	put_bytes(rel, text, strlen(text), 0644);
}

static void
del(const char *rel)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", bdir, rel);
	ck_assert_int_eq(unlink(path), 0);
}

static int
resolve(void)
{
	manifest_result_free(&res);
	err[0] = '\0';
	return manifest_resolve(bdir, &res, err, sizeof(err));
}

/* manifest_resolve must fail with rc and exactly msg, leaving nothing */
static void
resolve_fails(int rc, const char *msg)
{
	ck_assert_int_eq(resolve(), rc);
	ck_assert_str_eq(err, msg);
	ck_assert_ptr_null(res.manifest);
	ck_assert_str_eq(res.r_version, "");
}

static const char *
jstr(const json_t *j, const char *path)
{
	char		 buf[256], *p, *k;
	const json_t	*v = j;

	strlcpy(buf, path, sizeof(buf));
	for (p = buf; (k = strsep(&p, ".")) != NULL; )
		v = json_object_get(v, k);
	return json_string_value(v);
}

static const char *
checksum(const char *file)
{
	return json_string_value(json_object_get(json_object_get(
	    json_object_get(res.manifest, "files"), file), "checksum"));
}

static const char *
manifest_v1(const char *rest)
{
	static char	 buf[8192];

	snprintf(buf, sizeof(buf), "{\"version\": 1, \"metadata\": "
	    "{\"appmode\": \"shiny\", \"entrypoint\": \"app.R\"}%s%s}",
	    *rest ? ", " : "", rest);
	return buf;
}

/* ---- bare scripts and files ---- */

START_TEST(t_scripts)
{
	const json_t	*m, *files;
	char		 p[PATH_MAX];

	put("app.R", "abc");
	put("empty.R", "");
	put("sub/dir/x.R", "abc");
	put(".hidden", "secret");
	put(".git/config", "secret");
	put("sub/.secret", "secret");
	put("sub/.dir/y.R", "secret");
	snprintf(p, sizeof(p), "%s/link.R", bdir);
	ck_assert_int_eq(symlink("app.R", p), 0);
	snprintf(p, sizeof(p), "%s/linkdir", bdir);
	ck_assert_int_eq(symlink("/etc", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", bdir);
	ck_assert_int_eq(mkfifo(p, 0644), 0);

	ck_assert_int_eq(resolve(), 0);
	m = res.manifest;
	ck_assert_int_eq(res.form, MANIFEST_SCRIPTS);
	ck_assert_int_eq(res.pinned, 0);
	ck_assert_str_eq(res.r_version, "");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "version")), 1);
	ck_assert_str_eq(jstr(m, "metadata.appmode"), "shiny");
	ck_assert_str_eq(jstr(m, "metadata.entrypoint"), "app.R");
	ck_assert(json_is_array(json_object_get(m, "repositories")));
	ck_assert_uint_eq(json_array_size(json_object_get(m, "repositories")),
	    0);
	ck_assert_ptr_null(json_object_get(m, "packages"));
	ck_assert_ptr_null(json_object_get(m, "description"));
	ck_assert_ptr_null(json_object_get(m, "r_version"));

	files = json_object_get(m, "files");
	ck_assert_uint_eq(json_object_size(files), 3);
	ck_assert_str_eq(checksum("app.R"), SHA_ABC);
	ck_assert_str_eq(checksum("empty.R"), SHA_EMPTY);
	ck_assert_str_eq(checksum("sub/dir/x.R"), SHA_ABC);
	ck_assert_ptr_null(json_object_get(files, ".hidden"));
	ck_assert_ptr_null(json_object_get(files, "link.R"));
	ck_assert_ptr_null(json_object_get(files, "fifo"));
	ck_assert_str_eq(manifest_form_name(res.form), "scripts");
}
END_TEST

START_TEST(t_scripts_server_entry)
{
	put("ui.R", "1");
	put("server.R", "2");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_str_eq(jstr(res.manifest, "metadata.entrypoint"),
	    "server.R");
	ck_assert_uint_eq(json_object_size(json_object_get(res.manifest,
	    "files")), 2);
}
END_TEST

START_TEST(t_files_depth)
{
	char	 rel[PATH_MAX];
	size_t	 off = 0;
	int	 i;

	put("app.R", "abc");
	/* 63 directories + the file: 64 components, the limit */
	for (i = 0; i < 63; i++)
		off += (size_t)snprintf(rel + off, sizeof(rel) - off, "d/");
	snprintf(rel + off, sizeof(rel) - off, "f");
	put(rel, "abc");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_str_eq(checksum(rel), SHA_ABC);

	/* one more */
	snprintf(rel + off, sizeof(rel) - off, "d/f");
	put(rel, "abc");
	resolve_fails(-1, "bundle is nested deeper than 64 levels");
}
END_TEST

START_TEST(t_files_not_utf8)
{
	put("app.R", "abc");
	put("caf\xe9.R", "abc");
	resolve_fails(-1, "bundle has a file name that is not UTF-8");
}
END_TEST

START_TEST(t_no_bundle_dir)
{
	char	 p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/nonexistent", tmp);
	ck_assert_int_eq(manifest_resolve(p, &res, err, sizeof(err)), -2);
	ck_assert_ptr_null(res.manifest);
	/* a link to a bundle is not followed either */
	snprintf(p, sizeof(p), "%s/link", tmp);
	ck_assert_int_eq(symlink(bdir, p), 0);
	ck_assert_int_eq(manifest_resolve(p, &res, err, sizeof(err)), -2);
}
END_TEST

/* ---- manifest.json ---- */

START_TEST(t_json_pinned)
{
	const json_t	*m, *pk;

	put("app.R", "abc");
	put("manifest.json", "{\"version\": 1, \"r_version\": \"4.3.1\", "
	    "\"metadata\": {\"entrypoint\": \"app.R\", \"extra\": 1}, "
	    "\"repositories\": [{\"Name\": \"CRAN\", \"URL\": "
	    "\"https://cran.example\"}], "
	    "\"packages\": {"
	    "\"shiny\": {\"Package\": \"shiny\", \"Version\": \"1.8.0\", "
	    "\"Source\": \"Repository\", \"Repository\": \"CRAN\", "
	    "\"RemoteType\": \"\"}, "
	    "\"limma\": {\"Package\": \"limma\", \"Version\": \"3.0\", "
	    "\"Source\": \"Bioconductor\"}, "
	    "\"gh\": {\"Package\": \"gh\", \"Source\": \"GitHub\", "
	    "\"RemoteUsername\": \"u\", \"RemoteRepo\": \"r\", "
	    "\"RemoteSha\": \"abc\"}, "
	    "\"gl\": {\"Package\": \"gl\", \"Source\": \"GitLab\", "
	    "\"RemoteUsername\": \"u\", \"RemoteRepo\": \"r\", "
	    "\"RemoteSha\": \"abc\"}, "
	    "\"bb\": {\"Package\": \"bb\", \"Source\": \"Bitbucket\", "
	    "\"RemoteUsername\": \"u\", \"RemoteRepo\": \"r\", "
	    "\"RemoteSha\": \"abc\"}, "
	    "\"g\": {\"Package\": \"g\", \"Source\": \"git\", "
	    "\"RemoteUrl\": \"https://git.example/g.git\", \"Hash\": \"x\"}}, "
	    "\"files\": {\"bogus\": {\"checksum\": \"0\"}}, "
	    "\"other\": true}");
	ck_assert_int_eq(resolve(), 0);
	m = res.manifest;
	ck_assert_int_eq(res.form, MANIFEST_JSON);
	ck_assert_str_eq(manifest_form_name(res.form), "manifest.json");
	ck_assert_int_eq(res.pinned, 1);
	ck_assert_str_eq(res.r_version, "4.3.1");
	ck_assert_str_eq(jstr(m, "r_version"), "4.3.1");
	/* the bundle's own values are kept, appmode filled in */
	ck_assert_str_eq(jstr(m, "metadata.appmode"), "shiny");
	ck_assert_str_eq(jstr(m, "metadata.entrypoint"), "app.R");
	ck_assert_int_eq(json_integer_value(json_object_get(
	    json_object_get(m, "metadata"), "extra")), 1);
	ck_assert(json_is_true(json_object_get(m, "other")));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(m, "repositories"), 0), "URL")),
	    "https://cran.example");
	pk = json_object_get(m, "packages");
	ck_assert_uint_eq(json_object_size(pk), 6);
	ck_assert_str_eq(jstr(pk, "shiny.Version"), "1.8.0");
	ck_assert_str_eq(jstr(pk, "g.Hash"), "x");
	/* files are the server's, never the bundle's */
	ck_assert_ptr_null(json_object_get(json_object_get(m, "files"),
	    "bogus"));
	ck_assert_str_eq(checksum("app.R"), SHA_ABC);
	ck_assert_ptr_nonnull(checksum("manifest.json"));
	ck_assert_uint_eq(json_object_size(json_object_get(m, "files")), 2);
}
END_TEST

START_TEST(t_json_unpinned)
{
	const json_t	*m;

	put("app.R", "abc");
	put("manifest.json", "{\"version\": 1, \"metadata\": {\"appmode\": "
	    "\"shiny\", \"entrypoint\": \"main.R\"}, \"description\": "
	    "{\"Imports\": \"shiny\"}}");
	ck_assert_int_eq(resolve(), 0);
	m = res.manifest;
	ck_assert_int_eq(res.form, MANIFEST_JSON);
	ck_assert_int_eq(res.pinned, 0);
	ck_assert_str_eq(res.r_version, "");
	ck_assert_str_eq(jstr(m, "metadata.entrypoint"), "main.R");
	ck_assert_str_eq(jstr(m, "description.Imports"), "shiny");
	ck_assert_uint_eq(json_array_size(json_object_get(m,
	    "repositories")), 0);
	ck_assert(json_is_array(json_object_get(m, "repositories")));

	/* an empty "packages" is not pinned, and dropped */
	put("manifest.json", manifest_v1("\"packages\": {}"));
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.pinned, 0);
	ck_assert_ptr_null(json_object_get(res.manifest, "packages"));
}
END_TEST

struct bad_case {
	const char	*text;
	const char	*msg;
};

#define P(x)	"\"packages\": {\"x\": {" x "}}"

static const struct bad_case json_bad[] = {
	{ "{\"version\": 1,", "invalid manifest.json: line 1: string or '}' "
	    "expected near end of file" },
	{ "[1]", "invalid manifest.json: not a JSON object" },
	{ "{\"version\": 1, \"version\": 1}", "invalid manifest.json: line 1: "
	    "duplicate object key near '\"version\"'" },
	{ "{\"version\": 2, \"metadata\": {\"entrypoint\": \"app.R\"}}",
	    "invalid manifest.json: version must be 1" },
	{ "{\"version\": \"1\", \"metadata\": {\"entrypoint\": \"app.R\"}}",
	    "invalid manifest.json: version must be 1" },
	{ "{\"version\": 1.0, \"metadata\": {\"entrypoint\": \"app.R\"}}",
	    "invalid manifest.json: version must be 1" },
	{ "{\"metadata\": {\"entrypoint\": \"app.R\"}}",
	    "invalid manifest.json: version must be 1" },
	{ "{\"version\": 1}", "invalid manifest.json: metadata.entrypoint "
	    "must be a non-empty string" },
	{ "{\"version\": 1, \"metadata\": {\"entrypoint\": \"\"}}",
	    "invalid manifest.json: metadata.entrypoint must be a non-empty "
	    "string" },
	{ "{\"version\": 1, \"metadata\": {\"entrypoint\": 1}}",
	    "invalid manifest.json: metadata.entrypoint must be a non-empty "
	    "string" },
	{ "{\"version\": 1, \"metadata\": []}",
	    "invalid manifest.json: metadata must be an object" },
	{ "{\"version\": 1, \"metadata\": {\"entrypoint\": \"app.R\", "
	    "\"appmode\": 3}}",
	    "invalid manifest.json: metadata.appmode must be a string" },
	{ NULL, "invalid manifest.json: packages and description are "
	    "mutually exclusive" },
	{ NULL, "invalid manifest.json: packages must be an object" },
	{ NULL, "invalid manifest.json: package \"x\" must be an object" },
	{ NULL, "invalid manifest.json: package \"x\": Package is missing" },
	{ NULL, "invalid manifest.json: package \"x\": Source is missing" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"CRAN\" is "
	    "not supported" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"Repository\" "
	    "needs Version" },
	{ NULL, "invalid manifest.json: package \"x\": Source "
	    "\"Bioconductor\" needs Version" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"GitHub\" "
	    "needs RemoteUsername" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"GitLab\" "
	    "needs RemoteRepo" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"Bitbucket\" "
	    "needs RemoteSha" },
	{ NULL, "invalid manifest.json: package \"x\": Source \"git\" needs "
	    "RemoteUrl" },
	{ NULL, "invalid manifest.json: package \"x\": Version must be a "
	    "string" },
	{ NULL, "invalid manifest.json: repositories must be an array" },
	{ NULL, "invalid manifest.json: repositories[1] needs Name and URL "
	    "strings" },
	{ NULL, "invalid manifest.json: repositories[0] needs Name and URL "
	    "strings" },
	{ NULL, "invalid manifest.json: r_version must be a string" },
	{ NULL, "invalid manifest.json: r_version is too long" },
	{ NULL, "invalid manifest.json: description must be an object" },
	{ NULL, "invalid manifest.json: description.Imports must be a "
	    "string" },
};

/* the second half: text built with manifest_v1 */
static const char *const json_bad_rest[] = {
	"\"packages\": {}, \"description\": {}",
	"\"packages\": []",
	"\"packages\": {\"x\": \"shiny\"}",
	P("\"Source\": \"Repository\", \"Version\": \"1\""),
	P("\"Package\": \"x\", \"Version\": \"1\""),
	P("\"Package\": \"x\", \"Source\": \"CRAN\", \"Version\": \"1\""),
	P("\"Package\": \"x\", \"Source\": \"Repository\", \"Version\": \"\""),
	P("\"Package\": \"x\", \"Source\": \"Bioconductor\""),
	P("\"Package\": \"x\", \"Source\": \"GitHub\", \"RemoteRepo\": \"r\", "
	    "\"RemoteSha\": \"s\""),
	P("\"Package\": \"x\", \"Source\": \"GitLab\", \"RemoteUsername\": "
	    "\"u\", \"RemoteSha\": \"s\""),
	P("\"Package\": \"x\", \"Source\": \"Bitbucket\", \"RemoteUsername\": "
	    "\"u\", \"RemoteRepo\": \"r\""),
	P("\"Package\": \"x\", \"Source\": \"git\", \"RemoteSha\": \"s\""),
	P("\"Package\": \"x\", \"Source\": \"Repository\", \"Version\": 1"),
	"\"repositories\": {}",
	("\"repositories\": [{\"Name\": \"A\", \"URL\": \"u\"}, "
	    "{\"Name\": \"B\"}]"),
	"\"repositories\": [{\"Name\": 1, \"URL\": \"u\"}]",
	"\"r_version\": 4.3",
	"\"r_version\": \"4.3.1-and-a-very-long-suffix-beyond\"",
	"\"description\": \"shiny\"",
	"\"description\": {\"Imports\": [\"shiny\"]}",
};

START_TEST(t_json_invalid)
{
	size_t	 nfirst = sizeof(json_bad) / sizeof(json_bad[0]) -
		    sizeof(json_bad_rest) / sizeof(json_bad_rest[0]);
	const char *text;

	ck_assert(json_bad[nfirst].text == NULL &&
	    json_bad[nfirst - 1].text != NULL);
	put("app.R", "abc");
	text = json_bad[_i].text;
	if (text == NULL)
		text = manifest_v1(json_bad_rest[_i - nfirst]);
	put("manifest.json", text);
	/* a valid renv.lock below does not rescue it */
	put("renv.lock", "{}");
	resolve_fails(-1, json_bad[_i].msg);
}
END_TEST

START_TEST(t_json_not_regular)
{
	char	 p[PATH_MAX];

	put("app.R", "abc");
	put("real.json", manifest_v1(""));
	put("renv.lock", "{}");
	snprintf(p, sizeof(p), "%s/manifest.json", bdir);
	ck_assert_int_eq(symlink("real.json", p), 0);
	resolve_fails(-1, "manifest.json is not a regular file");

	/* a link to outside the bundle, or a dangling one, the same */
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	resolve_fails(-1, "manifest.json is not a regular file");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink("/nonexistent", p), 0);
	resolve_fails(-1, "manifest.json is not a regular file");

	/* a directory or a fifo (which must not block the open) */
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	resolve_fails(-1, "manifest.json is not a regular file");
	ck_assert_int_eq(rmdir(p), 0);
	ck_assert_int_eq(mkfifo(p, 0644), 0);
	resolve_fails(-1, "manifest.json is not a regular file");
}
END_TEST

START_TEST(t_too_large)
{
	static const char *const names[] = {
		"manifest.json", "renv.lock", "DESCRIPTION"
	};
	char		 p[PATH_MAX], msg[64];
	const char	*name = names[_i];
	int		 fd;

	put("app.R", "abc");
	snprintf(p, sizeof(p), "%s/%s", bdir, name);
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_CREAT, 0644), 0);
	ck_assert_int_eq(ftruncate(fd, (8 << 20) + 1), 0);
	close(fd);
	snprintf(msg, sizeof(msg), "%s is too large", name);
	resolve_fails(-1, msg);

	/* exactly 8 MiB is read (and then refused for its content) */
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_TRUNC), 0);
	ck_assert_int_eq(ftruncate(fd, 8 << 20), 0);
	close(fd);
	ck_assert_int_eq(resolve(), -1);
	ck_assert_ptr_null(strstr(err, "too large"));
}
END_TEST

/* ---- renv.lock ---- */

static const char renv_ok[] =
	"{\n"
	"  \"R\": {\n"
	"    \"Version\": \"4.3.1\",\n"
	"    \"Repositories\": [{\"Name\": \"CRAN\", "
	"\"URL\": \"https://cloud.r-project.org\"}]\n"
	"  },\n"
	"  \"Packages\": {\n"
	"    \"shiny\": {\"Package\": \"shiny\", \"Version\": \"1.8.0\", "
	"\"Source\": \"Repository\", \"Repository\": \"CRAN\", "
	"\"Hash\": \"abc\", \"Requirements\": [\"httpuv\"]},\n"
	"    \"R6\": {\"Package\": \"R6\", \"Version\": \"2.5.1\", "
	"\"Source\": \"CRAN\"},\n"
	"    \"gh\": {\"Package\": \"gh\", \"Version\": \"0.1\", "
	"\"Source\": \"GitHub\", \"RemoteType\": \"github\", "
	"\"RemoteHost\": \"api.github.com\", \"RemoteUsername\": \"u\", "
	"\"RemoteRepo\": \"gh\", \"RemoteRef\": \"main\", "
	"\"RemoteSha\": \"0123abcd\", \"RemoteSubdir\": \"pkg\"},\n"
	"    \"limma\": {\"Package\": \"limma\", \"Version\": \"3.58\", "
	"\"Source\": \"Bioconductor\"}\n"
	"  }\n"
	"}\n";

START_TEST(t_renv)
{
	const json_t	*m, *pk;

	put("app.R", "abc");
	put("renv.lock", renv_ok);
	put("DESCRIPTION", "Imports: other\n");
	ck_assert_int_eq(resolve(), 0);
	m = res.manifest;
	ck_assert_int_eq(res.form, MANIFEST_RENV);
	ck_assert_str_eq(manifest_form_name(res.form), "renv.lock");
	ck_assert_int_eq(res.pinned, 1);
	ck_assert_str_eq(res.r_version, "4.3.1");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "version")), 1);
	ck_assert_str_eq(jstr(m, "r_version"), "4.3.1");
	ck_assert_str_eq(jstr(m, "metadata.appmode"), "shiny");
	ck_assert_str_eq(jstr(m, "metadata.entrypoint"), "app.R");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(m, "repositories"), 0), "URL")),
	    "https://cloud.r-project.org");
	ck_assert_ptr_null(json_object_get(m, "description"));
	pk = json_object_get(m, "packages");
	ck_assert_uint_eq(json_object_size(pk), 4);
	ck_assert_str_eq(jstr(pk, "shiny.Package"), "shiny");
	ck_assert_str_eq(jstr(pk, "shiny.Version"), "1.8.0");
	ck_assert_str_eq(jstr(pk, "shiny.Source"), "Repository");
	ck_assert_str_eq(jstr(pk, "shiny.Repository"), "CRAN");
	/* renv's own fields are dropped */
	ck_assert_ptr_null(json_object_get(json_object_get(pk, "shiny"),
	    "Hash"));
	ck_assert_ptr_null(json_object_get(json_object_get(pk, "shiny"),
	    "Requirements"));
	/* "CRAN" is a repository source */
	ck_assert_str_eq(jstr(pk, "R6.Source"), "Repository");
	ck_assert_str_eq(jstr(pk, "R6.Repository"), "CRAN");
	ck_assert_str_eq(jstr(pk, "gh.Source"), "GitHub");
	ck_assert_str_eq(jstr(pk, "gh.RemoteSha"), "0123abcd");
	ck_assert_str_eq(jstr(pk, "gh.RemoteSubdir"), "pkg");
	ck_assert_str_eq(jstr(pk, "gh.RemoteHost"), "api.github.com");
	ck_assert_str_eq(jstr(pk, "limma.Source"), "Bioconductor");
	ck_assert_uint_eq(strlen(checksum("renv.lock")), 64);
	ck_assert_str_eq(checksum("app.R"), SHA_ABC);
	ck_assert_ptr_nonnull(checksum("DESCRIPTION"));
}
END_TEST

START_TEST(t_renv_minimal)
{
	/* no R, no packages, no app.R: unpinned, server.R */
	put("server.R", "abc");
	put("renv.lock", "{\"Packages\": {}}");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_RENV);
	ck_assert_int_eq(res.pinned, 0);
	ck_assert_str_eq(res.r_version, "");
	ck_assert_ptr_null(json_object_get(res.manifest, "packages"));
	ck_assert_ptr_null(json_object_get(res.manifest, "r_version"));
	ck_assert_str_eq(jstr(res.manifest, "metadata.entrypoint"),
	    "server.R");
	ck_assert_uint_eq(json_array_size(json_object_get(res.manifest,
	    "repositories")), 0);
}
END_TEST

static const struct bad_case renv_bad[] = {
	{ "{\"R\": ", "invalid renv.lock: line 1: unexpected token near end "
	    "of file" },
	{ "\"x\"", "invalid renv.lock: line 1: '[' or '{' expected near "
	    "'\"x\"'" },
	{ "[]", "invalid renv.lock: not a JSON object" },
	{ "{\"R\": []}", "invalid renv.lock: R must be an object" },
	{ "{\"R\": {\"Version\": 4}}", "invalid renv.lock: R.Version must be "
	    "a string" },
	{ "{\"R\": {\"Repositories\": {}}}", "invalid renv.lock: "
	    "R.Repositories must be an array" },
	{ "{\"R\": {\"Repositories\": [{\"Name\": \"CRAN\"}]}}",
	    "invalid renv.lock: R.Repositories[0] needs Name and URL "
	    "strings" },
	{ "{\"Packages\": []}", "invalid renv.lock: Packages must be an "
	    "object" },
	{ "{\"Packages\": {\"x\": 1}}", "invalid renv.lock: package \"x\" "
	    "must be an object" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Version\": \"1\", "
	    "\"Source\": \"Local\"}}}", "invalid renv.lock: package \"x\": "
	    "Source \"Local\" is not supported" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Source\": "
	    "\"CRAN\"}}}", "invalid renv.lock: package \"x\": Source "
	    "\"Repository\" needs Version" },
	{ "{\"Packages\": {\"x\": {\"Version\": \"1\", \"Source\": "
	    "\"Repository\"}}}", "invalid renv.lock: package \"x\": Package "
	    "is missing" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Version\": \"1\"}}}",
	    "invalid renv.lock: package \"x\": Source is missing" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Source\": "
	    "\"GitHub\", \"RemoteUsername\": \"u\", \"RemoteRepo\": \"r\"}}}",
	    "invalid renv.lock: package \"x\": Source \"GitHub\" needs "
	    "RemoteSha" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Source\": \"git\"}}}",
	    "invalid renv.lock: package \"x\": Source \"git\" needs "
	    "RemoteUrl" },
	{ "{\"Packages\": {\"x\": {\"Package\": \"x\", \"Source\": "
	    "\"Repository\", \"Version\": [\"1\"]}}}", "invalid renv.lock: "
	    "package \"x\": Version must be a string" },
};

START_TEST(t_renv_invalid)
{
	put("app.R", "abc");
	put("renv.lock", renv_bad[_i].text);
	put("DESCRIPTION", "Imports: shiny\n");
	resolve_fails(-1, renv_bad[_i].msg);
}
END_TEST

/* ---- DESCRIPTION ---- */

START_TEST(t_description)
{
	const json_t	*m, *d, *r;

	put("app.R", "abc");
	put("DESCRIPTION",
	    "\n"
	    "Package: myapp\n"
	    "Title: An app\n"
	    "Author: Ren\xe9 (latin-1, not kept, so no matter)\n"
	    "Depends: R (>= 4.1)\n"
	    "Imports: shiny (>= 1.7),\r\n"
	    "    pkgB,\n"
	    "\tpkgC   \n"
	    "LinkingTo: Rcpp\n"
	    "Remotes: user/repo@v1\n"
	    "Additional_repositories: https://a.example/r,\n"
	    "  file:///srv/repo   https://c.example\n"
	    "\n"
	    "Suggests: testthat\n"
	    "this line is in the second record: not even read\n");
	ck_assert_int_eq(resolve(), 0);
	m = res.manifest;
	ck_assert_int_eq(res.form, MANIFEST_DESCRIPTION);
	ck_assert_str_eq(manifest_form_name(res.form), "DESCRIPTION");
	ck_assert_int_eq(res.pinned, 0);
	ck_assert_str_eq(res.r_version, "");
	ck_assert_ptr_null(json_object_get(m, "packages"));
	ck_assert_str_eq(jstr(m, "metadata.entrypoint"), "app.R");
	d = json_object_get(m, "description");
	ck_assert_uint_eq(json_object_size(d), 4);
	ck_assert_str_eq(jstr(d, "Depends"), "R (>= 4.1)");
	ck_assert_str_eq(jstr(d, "Imports"),
	    "shiny (>= 1.7),\n    pkgB,\n\tpkgC");
	ck_assert_str_eq(jstr(d, "LinkingTo"), "Rcpp");
	ck_assert_str_eq(jstr(d, "Remotes"), "user/repo@v1");
	ck_assert_ptr_null(json_object_get(d, "Suggests"));
	ck_assert_ptr_null(json_object_get(d, "Title"));

	r = json_object_get(m, "repositories");
	ck_assert_uint_eq(json_array_size(r), 3);
	ck_assert_str_eq(jstr(json_array_get(r, 0), "Name"), "repo1");
	ck_assert_str_eq(jstr(json_array_get(r, 0), "URL"),
	    "https://a.example/r");
	ck_assert_str_eq(jstr(json_array_get(r, 1), "Name"), "repo2");
	ck_assert_str_eq(jstr(json_array_get(r, 1), "URL"),
	    "file:///srv/repo");
	ck_assert_str_eq(jstr(json_array_get(r, 2), "Name"), "repo3");
	ck_assert_str_eq(jstr(json_array_get(r, 2), "URL"),
	    "https://c.example");
}
END_TEST

START_TEST(t_description_minimal)
{
	put("server.R", "abc");
	put("DESCRIPTION", "Package: x\nImports:\n  shiny\n");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_str_eq(jstr(res.manifest, "metadata.entrypoint"),
	    "server.R");
	ck_assert_str_eq(jstr(res.manifest, "description.Imports"),
	    "\n  shiny");
	ck_assert_uint_eq(json_object_size(json_object_get(res.manifest,
	    "description")), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(res.manifest,
	    "repositories")), 0);

	/* no field at all: an empty description, still that form */
	put("DESCRIPTION", "");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_DESCRIPTION);
	ck_assert_uint_eq(json_object_size(json_object_get(res.manifest,
	    "description")), 0);
}
END_TEST

static const struct bad_case desc_bad[] = {
	{ "Package: x\nImports shiny\n", "invalid DESCRIPTION: line 2: not "
	    "a \"Field: value\" line" },
	{ "Package: x\n: shiny\n", "invalid DESCRIPTION: line 2: not "
	    "a \"Field: value\" line" },
	{ "\n\nPackage: x\nMy Field: y\n", "invalid DESCRIPTION: line 4: not "
	    "a \"Field: value\" line" },
	{ "  Imports: shiny\n", "invalid DESCRIPTION: line 1: continuation "
	    "line without a field" },
	{ "Imports: a\nImports: b\n", "invalid DESCRIPTION: line 2: "
	    "duplicate field \"Imports\"" },
	{ "Imports: caf\xe9\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Imports: a,\n  \xff\xfe\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Depends: \xed\xa0\x80\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Remotes: \xc0\xaf\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Remotes: \xe0\x80\xaf\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Remotes: \xf0\x82\x82\xac\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Remotes: \xf4\x90\x80\x80\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Remotes: \xe2\x82\n", "invalid DESCRIPTION: not UTF-8" },
	{ "Additional_repositories: http://\xe9\n",
	    "invalid DESCRIPTION: not UTF-8" },
};

START_TEST(t_description_invalid)
{
	put("app.R", "abc");
	put("DESCRIPTION", desc_bad[_i].text);
	resolve_fails(-1, desc_bad[_i].msg);
}
END_TEST

START_TEST(t_description_nul)
{
	put("app.R", "abc");
	put_bytes("DESCRIPTION", "Imports: a\0b\n", 13, 0644);
	resolve_fails(-1, "invalid DESCRIPTION: contains a NUL byte");
}
END_TEST

/* ---- priority ---- */

START_TEST(t_priority)
{
	put("app.R", "abc");
	put("manifest.json", manifest_v1("\"r_version\": \"4.4.0\""));
	put("renv.lock", renv_ok);
	put("DESCRIPTION", "Imports: shiny\n");

	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_JSON);
	ck_assert_str_eq(res.r_version, "4.4.0");
	ck_assert_int_eq(res.pinned, 0);

	del("manifest.json");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_RENV);
	ck_assert_str_eq(res.r_version, "4.3.1");
	ck_assert_int_eq(res.pinned, 1);

	del("renv.lock");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_DESCRIPTION);
	ck_assert_str_eq(jstr(res.manifest, "description.Imports"), "shiny");

	del("DESCRIPTION");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_SCRIPTS);

	/* only the top level counts */
	put("sub/manifest.json", manifest_v1(""));
	put("sub/renv.lock", renv_ok);
	put("sub/DESCRIPTION", "Imports: shiny\n");
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_SCRIPTS);
	/* nor a hidden one */
	put(".manifest.json", manifest_v1(""));
	ck_assert_int_eq(resolve(), 0);
	ck_assert_int_eq(res.form, MANIFEST_SCRIPTS);
}
END_TEST

/* ---- manifest_write ---- */

START_TEST(t_write)
{
	char		 path[PATH_MAX], buf[8192], cmd[256];
	json_t		*back;
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	put("app.R", "abc");
	put("renv.lock", renv_ok);
	ck_assert_int_eq(resolve(), 0);
	snprintf(path, sizeof(path), "%s/manifest.json", tmp);
	/* replaces what is there */
	ck_assert_int_eq(symlink("/nonexistent", path), 0);
	ck_assert_int_eq(manifest_write(res.manifest, path, err, sizeof(err)),
	    0);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	ck_assert_ptr_nonnull(back = json_load_file(path, 0, NULL));
	ck_assert(json_equal(back, res.manifest));
	json_decref(back);
	/* pretty: indented, one field a line */
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	ck_assert_int_gt(n = read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "\n  \"version\": 1"));
	ck_assert_int_eq(buf[n - 1], '\n');

	/* no temporary file left behind, also on failure */
	snprintf(path, sizeof(path), "%s/nodir/manifest.json", tmp);
	ck_assert_int_eq(manifest_write(res.manifest, path, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "nodir"));
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 2", tmp);
	ck_assert_int_eq(system(cmd), 0);	/* bundle, manifest.json */
}
END_TEST

/* ---- R installations ---- */

static void
fake_r(const char *optroot, const char *dir, const char *script)
{
	char	 p[PATH_MAX];
	FILE	*f;

	snprintf(p, sizeof(p), "%s/%s", optroot, dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s/bin", optroot, dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	if (script == NULL)
		return;
	snprintf(p, sizeof(p), "%s/%s/bin/R", optroot, dir);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs(script, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(p, 0755), 0);
}

#define NOT_RUN	"#!/bin/sh\necho never run >&2\nexit 1\n"

START_TEST(t_scan)
{
	struct r_install	 list[16];
	char			 opt[256], p[PATH_MAX];
	int			 n;

	snprintf(opt, sizeof(opt), "%s/opt-R", tmp);
	ck_assert_int_eq(mkdir(opt, 0755), 0);
	fake_r(opt, "4.3.1", NOT_RUN);
	fake_r(opt, "4.1", NOT_RUN);
	fake_r(opt, "4.10.0", NOT_RUN);
	fake_r(opt, "4.2.2", NOT_RUN);		/* r_path's version again */
	fake_r(opt, "3.6.3", NULL);		/* no bin/R */
	fake_r(opt, "devel", "#!/bin/sh\n[ \"$1\" = --version ] || exit 2\n"
	    "echo 'R version 4.5.0 (2025-04-11) -- \"How About a Twenty-Six\"'"
	    "\necho 'Copyright (C) 2025'\n");
	fake_r(opt, "broken", "#!/bin/sh\necho 'R Under development'\n");
	fake_r(opt, "failing", "#!/bin/sh\necho 'R version 4.6.0'\nexit 1\n");
	fake_r(opt, ".hidden", NOT_RUN);
	/* rig's "current" link, and a linked directory: not followed */
	snprintf(p, sizeof(p), "%s/current", opt);
	ck_assert_int_eq(symlink("4.3.1", p), 0);
	snprintf(p, sizeof(p), "%s/elsewhere", tmp);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	fake_r(p, "4.7.0", "#!/bin/sh\necho 'R version 4.7.0'\n");
	snprintf(p, sizeof(p), "%s/linked", opt);
	ck_assert_int_eq(symlink("../elsewhere/4.7.0", p), 0);
	/* not executable */
	fake_r(opt, "4.0.0", NOT_RUN);
	snprintf(p, sizeof(p), "%s/4.0.0/bin/R", opt);
	ck_assert_int_eq(chmod(p, 0644), 0);

	n = r_installs_scan("/usr/bin/R", opt, list, 16);
	ck_assert_int_eq(n, 5);
	ck_assert_str_eq(list[0].version, "4.2.2");
	ck_assert_str_eq(list[0].path, "/usr/bin/R");
	ck_assert_str_eq(list[1].version, "4.1");
	ck_assert_str_eq(list[2].version, "4.3.1");
	snprintf(p, sizeof(p), "%s/4.3.1/bin/R", opt);
	ck_assert_str_eq(list[2].path, p);
	ck_assert_str_eq(list[3].version, "4.5.0");
	snprintf(p, sizeof(p), "%s/devel/bin/R", opt);
	ck_assert_str_eq(list[3].path, p);
	ck_assert_str_eq(list[4].version, "4.10.0");

	/* max */
	ck_assert_int_eq(r_installs_scan("/usr/bin/R", opt, list, 2), 2);
	ck_assert_str_eq(list[1].version, "4.1");
	ck_assert_int_eq(r_installs_scan("/usr/bin/R", opt, list, 0), 0);

	/* no r_path, a bad one, no optroot */
	n = r_installs_scan(NULL, opt, list, 16);
	ck_assert_int_eq(n, 5);
	ck_assert_str_eq(list[0].version, "4.1");
	ck_assert_str_eq(list[1].version, "4.2.2");
	snprintf(p, sizeof(p), "%s/broken/bin/R", opt);
	ck_assert_int_eq(r_installs_scan(p, opt, list, 16), 5);
	ck_assert_int_eq(r_installs_scan("/nonexistent/R", NULL, list, 16), 0);
	snprintf(p, sizeof(p), "%s/nonexistent", tmp);
	n = r_installs_scan("/usr/bin/R", p, list, 16);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(list[0].version, "4.2.2");
}
END_TEST

/* 1 when pid is gone or a zombie (its parent was killed) */
static int
gone(pid_t pid)
{
	char	 p[64], st[256], *s;
	FILE	*f;
	int	 ok;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if ((f = fopen(p, "r")) == NULL)
		return 1;
	ok = fgets(st, sizeof(st), f) != NULL &&
	    (s = strrchr(st, ')')) != NULL && s[1] == ' ' && s[2] == 'Z';
	fclose(f);
	return ok;
}

START_TEST(t_scan_timeout)
{
	struct r_install	 list[4];
	char			 opt[256], p[PATH_MAX];
	struct timespec		 t0, t1;
	double			 secs;
	FILE			*f;
	int			 bg = 0, i;

	snprintf(opt, sizeof(opt), "%s/opt-R", tmp);
	ck_assert_int_eq(mkdir(opt, 0755), 0);
	/* a grandchild keeps stdout open; the script never exits */
	fake_r(opt, "hang", "#!/bin/sh\necho 'R version 4.9.9'\n"
	    "sleep 60 &\necho $! > \"$0.bg\"\nsleep 60\n");
	fake_r(opt, "4.3.1", NOT_RUN);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(r_installs_scan(NULL, opt, list, 4), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_str_eq(list[0].version, "4.3.1");
	ck_assert(secs >= 9.5 && secs < 15);
	/* the script is gone ([h]: not to match the shell running pgrep) */
	snprintf(p, sizeof(p), "! pgrep -f '%s/[h]ang/bin/R' >/dev/null", opt);
	ck_assert_int_eq(system(p), 0);
	/* and so is its background child: the whole group was killed */
	snprintf(p, sizeof(p), "%s/hang/bin/R.bg", opt);
	ck_assert_ptr_nonnull(f = fopen(p, "r"));
	ck_assert_int_eq(fscanf(f, "%d", &bg), 1);
	fclose(f);
	ck_assert_int_gt(bg, 1);
	for (i = 0; i < 100 && !gone(bg); i++)
		usleep(10000);
	ck_assert_msg(gone(bg), "background child %d still runs", bg);
}
END_TEST

static struct r_install	 avail[4];
static int		 navail;

static void
pick_setup(void)
{
	static const char *const v[] = { "4.2.2", "4.3.1", "4.3.3", "4.1" };
	int	 i;

	for (i = 0; i < 4; i++) {
		strlcpy(avail[i].version, v[i], sizeof(avail[i].version));
		snprintf(avail[i].path, sizeof(avail[i].path),
		    "/opt/R/%s/bin/R", v[i]);
	}
	navail = 4;
}

START_TEST(t_pick)
{
	const struct r_install	*r;

	pick_setup();
	/* "" takes the first: r_path */
	ck_assert_int_eq(r_install_pick(avail, navail, "", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[0]);
	ck_assert_int_eq(r_install_pick(avail, navail, NULL, &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[0]);
	/* exact */
	ck_assert_int_eq(r_install_pick(avail, navail, "4.3.1", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[1]);
	ck_assert_int_eq(r_install_pick(avail, navail, "4.1", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[3]);
	/* same minor: the newest patch */
	ck_assert_int_eq(r_install_pick(avail, navail, "4.3.0", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[2]);
	ck_assert_int_eq(r_install_pick(avail, navail, "4.3", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[2]);
	ck_assert_int_eq(r_install_pick(avail, navail, "4.2.0", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[0]);
	ck_assert_int_eq(r_install_pick(avail, navail, "4.1.3", &r, err,
	    sizeof(err)), 0);
	ck_assert_ptr_eq(r, &avail[3]);
	/* none */
	ck_assert_int_eq(r_install_pick(avail, 2, "4.4.3", &r, err,
	    sizeof(err)), -1);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(err, "bundle requires R 4.4 which is not installed; "
	    "available: 4.2.2, 4.3.1");
	ck_assert_int_eq(r_install_pick(avail, navail, "3.6", &r, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bundle requires R 3.6 which is not installed; "
	    "available: 4.2.2, 4.3.1, 4.3.3, 4.1");
	/* "4.31" is not "4.3" */
	ck_assert_int_eq(r_install_pick(avail, navail, "4.31.1", &r, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bundle requires R 4.31 which is not installed; "
	    "available: 4.2.2, 4.3.1, 4.3.3, 4.1");
	ck_assert_int_eq(r_install_pick(avail, navail, "devel", &r, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bundle requires R devel which is not "
	    "installed; available: 4.2.2, 4.3.1, 4.3.3, 4.1");
	ck_assert_int_eq(r_install_pick(avail, 0, "4.3.1", &r, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bundle requires R 4.3 which is not installed; "
	    "available: none");
	ck_assert_int_eq(r_install_pick(avail, 0, "", &r, err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, "no R installation is available");
}
END_TEST

/* scan and pick together, on the real R */
START_TEST(t_scan_pick_real)
{
	struct r_install	 list[8];
	const struct r_install	*r;
	char			 opt[256];
	int			 n;

	snprintf(opt, sizeof(opt), "%s/opt-R", tmp);
	ck_assert_int_eq(mkdir(opt, 0755), 0);
	fake_r(opt, "4.3.1", NOT_RUN);
	n = r_installs_scan("/usr/bin/R", opt, list, 8);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(r_install_pick(list, n, "4.2.1", &r, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(r->path, "/usr/bin/R");
	ck_assert_int_eq(r_install_pick(list, n, "4.3.2", &r, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(r->version, "4.3.1");
	ck_assert_int_eq(r_install_pick(list, n, "4.4.3", &r, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bundle requires R 4.4 which is not installed; "
	    "available: 4.2.2, 4.3.1");
}
END_TEST

static Suite *
manifest_suite(void)
{
	Suite	*s = suite_create("byspawn_manifest");
	TCase	*tc = tcase_create("core");
	TCase	*slow = tcase_create("slow");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_scripts);
	tcase_add_test(tc, t_scripts_server_entry);
	tcase_add_test(tc, t_files_depth);
	tcase_add_test(tc, t_files_not_utf8);
	tcase_add_test(tc, t_no_bundle_dir);
	tcase_add_test(tc, t_json_pinned);
	tcase_add_test(tc, t_json_unpinned);
	tcase_add_loop_test(tc, t_json_invalid, 0,
	    sizeof(json_bad) / sizeof(json_bad[0]));
	tcase_add_test(tc, t_json_not_regular);
	tcase_add_loop_test(tc, t_too_large, 0, 3);
	tcase_add_test(tc, t_renv);
	tcase_add_test(tc, t_renv_minimal);
	tcase_add_loop_test(tc, t_renv_invalid, 0,
	    sizeof(renv_bad) / sizeof(renv_bad[0]));
	tcase_add_test(tc, t_description);
	tcase_add_test(tc, t_description_minimal);
	tcase_add_loop_test(tc, t_description_invalid, 0,
	    sizeof(desc_bad) / sizeof(desc_bad[0]));
	tcase_add_test(tc, t_description_nul);
	tcase_add_test(tc, t_priority);
	tcase_add_test(tc, t_write);
	tcase_add_test(tc, t_scan);
	tcase_add_test(tc, t_pick);
	tcase_add_test(tc, t_scan_pick_real);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(slow, setup, teardown);
	tcase_set_timeout(slow, 40);
	tcase_add_test(slow, t_scan_timeout);
	suite_add_tcase(s, slow);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(manifest_suite());
	int	 failed;

	log_setlevel(LOG_LVL_ERROR);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
