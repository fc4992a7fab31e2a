"""byspawn/build.R, the dependency build script, run directly (no sandbox,
no byd) against a file:// repository that regress/mkrepo builds once from
regress/fixtures/rpkgs: resolve (pinned, renv.lock-shaped, description,
scripts, host satisfaction, offline, errors) and install (order, store
skips, failures)."""

import hashlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD_R = os.path.join(ROOT, "byspawn", "build.R")
MKREPO = os.path.join(ROOT, "regress", "mkrepo")
RPKGS = os.path.join(ROOT, "regress", "fixtures", "rpkgs")
RSCRIPT = "/usr/bin/Rscript"
HOST_LIBS = ["/usr/local/lib/R/site-library", "/usr/lib/R/site-library",
             "/usr/lib/R/library"]
UNREACHABLE = "http://127.0.0.1:9/"

# A package generated here, not a fixture: its name sorts before the one
# it imports, so install order must come from the dependencies.
BYAA = {
    "DESCRIPTION": "Package: byAA\nVersion: 1.0\nTitle: Imports byC\n"
                   "Description: Sorts before its dependency byC.\n"
                   "Author: Blockyard tests\n"
                   "Maintainer: Blockyard tests <tests@example.invalid>\n"
                   "License: GPL-2\nImports: byC\n",
    "NAMESPACE": "export(byAA_hello)\nimportFrom(byC, byC_version)\n",
    "R/byAA.R": 'byAA_hello <- function() paste("byAA on byC", '
                'byC_version())\n',
}

# A stand-in for remotes: install_github() records how it was called (in
# the library) and installs $FAKE_REMOTES_TARBALL.
FAKE_REMOTES = {
    "DESCRIPTION": "Package: remotes\nVersion: 0.0.1\nTitle: Fake\n"
                   "Description: Records install_github calls.\n"
                   "Author: t\nMaintainer: t <t@example.invalid>\n"
                   "License: GPL-2\n",
    "NAMESPACE": "export(install_github, install_bitbucket)\n",
    "R/fake.R": """record <- function(call, lib) {
  writeLines(jsonlite::toJSON(call, auto_unbox = TRUE),
             file.path(lib, "remotes-call.json"))
  utils::install.packages(Sys.getenv("FAKE_REMOTES_TARBALL"), lib = lib,
                          repos = NULL, type = "source")
}
install_github <- function(repo, ref = "HEAD", subdir = NULL,
                           upgrade = "ask", dependencies = NA, lib,
                           force = FALSE, ...) {
  record(list(fn = "install_github", repo = repo, ref = ref,
              upgrade = upgrade, dependencies = dependencies, lib = lib),
         lib)
}
install_bitbucket <- function(repo, ref = "HEAD", subdir = NULL,
                              upgrade = "ask", dependencies = NA, lib,
                              force = FALSE, ...) {
  record(list(fn = "install_bitbucket", repo = repo, ref = ref,
              upgrade = upgrade, dependencies = dependencies, lib = lib),
         lib)
}
""",
}

# A stand-in for pak: pkg_install() appends how it was called to
# pak-calls.json in the library, then installs the tarball the reference
# names (local::<path>, url::<url>) or, for a remote reference,
# $FAKE_PAK_TARBALL.  With $FAKE_PAK_FAIL set it fails as pak does, with an
# error.
FAKE_PAK = {
    "DESCRIPTION": "Package: pak\nVersion: 0.0.1\nTitle: Fake\n"
                   "Description: Records pkg_install calls.\n"
                   "Author: t\nMaintainer: t <t@example.invalid>\n"
                   "License: GPL-2\n",
    "NAMESPACE": "export(pkg_install)\n",
    "R/fake.R": """pkg_install <- function(pkg, lib = .libPaths()[[1L]],
                        upgrade = FALSE, ask = interactive(),
                        dependencies = NA) {
  if (nzchar(Sys.getenv("FAKE_PAK_FAIL")))
    stop("! Failed to build source package ", pkg, ": ",
         Sys.getenv("FAKE_PAK_FAIL"), call. = FALSE)
  record <- file.path(lib, "pak-calls.json")
  calls <- if (file.exists(record))
    jsonlite::fromJSON(record, simplifyVector = FALSE) else list()
  calls[[length(calls) + 1]] <- list(pkg = pkg, lib = lib, upgrade = upgrade,
                                     ask = ask, dependencies = dependencies)
  writeLines(jsonlite::toJSON(calls, auto_unbox = TRUE), record)
  if (startsWith(pkg, "local::")) {
    path <- sub("^local::", "", pkg)
  } else if (startsWith(pkg, "url::")) {
    url <- sub("^url::", "", pkg)
    path <- file.path(tempfile("fakepak"), basename(url))
    dir.create(dirname(path))
    utils::download.file(url, path, mode = "wb", quiet = TRUE)
  } else {
    path <- Sys.getenv("FAKE_PAK_TARBALL")
  }
  utils::install.packages(path, lib = lib, repos = NULL, type = "source")
  invisible()
}
""",
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture repository without logging each request."""

    def log_message(self, *args):
        pass


def host_version(pkg):
    """The version R loads from the host libraries (first one wins)."""
    for lib in HOST_LIBS:
        desc = os.path.join(lib, pkg, "DESCRIPTION")
        if os.path.exists(desc):
            return dcf_field(desc, "Version")
    return None


def dcf_field(path, field):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def write_files(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


class BuildScript(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bybuild.")
        cls.repo_dir = os.path.join(cls.tmp, "repo")
        cls.repo = "file://" + cls.repo_dir
        cls.contrib = os.path.join(cls.repo_dir, "src", "contrib")
        byaa = os.path.join(cls.tmp, "pkgs", "byAA")
        write_files(byaa, BYAA)
        # two runs: the second adds byA 1.1, which moves 1.0 to Archive/
        for pkgs in (["byA_1.0", "byC_1.0"], ["byA_1.1", "byB_1.0"]):
            dirs = [os.path.join(RPKGS, p) for p in pkgs]
            if pkgs[0] == "byA_1.1":
                dirs.append(byaa)
            subprocess.run([MKREPO, cls.repo_dir] + dirs, check=True,
                           capture_output=True)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        BuildScript.n += 1
        self.dir = os.path.join(self.tmp, "case%d" % self.n)
        self.app = os.path.join(self.dir, "app")
        self.lib = os.path.join(self.dir, "lib")
        self.rtmp = os.path.join(self.dir, "tmp")
        for d in (self.app, self.lib, self.rtmp):
            os.makedirs(d)
        self.manifest_path = os.path.join(self.dir, "manifest.json")
        self.plan_path = os.path.join(self.lib, ".blockyard", "plan.json")

    # -- helpers ----------------------------------------------------------

    def env(self, repos):
        return {
            "PATH": "/usr/bin:/bin", "HOME": self.rtmp,
            "TMPDIR": self.rtmp, "LANG": "C.UTF-8", "TZ": "UTC",
            "R_LIBS": ":".join([self.lib] + HOST_LIBS[:2]),
            "BLOCKYARD_APP": self.app,
            "BLOCKYARD_MANIFEST": self.manifest_path,
            "BLOCKYARD_LIB": self.lib,
            "BLOCKYARD_HOST_LIBS": ":".join(HOST_LIBS),
            "BLOCKYARD_REPOS": "CRAN=%s\n" % repos,
            "BLOCKYARD_REFRESH": "0",
        }

    def manifest(self, **fields):
        m = {"version": 1, "r_version": "4.2.2",
             "metadata": {"appmode": "shiny", "entrypoint": "app.R"},
             "repositories": [], "files": {}}
        m.update(fields)
        with open(self.manifest_path, "w") as f:
            json.dump(m, f)

    def build(self, mode, repos=None, ok=True, **extra):
        env = self.env(repos or self.repo)
        env.update(extra)
        p = subprocess.run([RSCRIPT, "--vanilla", BUILD_R, mode], env=env,
                           capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(p.returncode, 0,
                             "build.R %s failed:\n%s\n%s"
                             % (mode, p.stdout, p.stderr))
        else:
            self.assertEqual(p.returncode, 1,
                             "build.R %s should have failed:\n%s\n%s"
                             % (mode, p.stdout, p.stderr))
        return p.stdout

    def resolve(self, **kw):
        out = self.build("resolve", **kw)
        with open(self.plan_path) as f:
            return json.load(f), out

    def lib_version(self, pkg):
        desc = os.path.join(self.lib, pkg, "DESCRIPTION")
        return dcf_field(desc, "Version") if os.path.exists(desc) else None

    def r(self, expr):
        env = self.env(self.repo)
        return subprocess.run([RSCRIPT, "--vanilla", "-e", expr], env=env,
                              capture_output=True, text=True,
                              check=True).stdout

    def fake_lib(self, *packages):
        """A library with stand-in packages (name -> files), R CMD
        INSTALL'ed, to put first on R_LIBS: the host may have the real
        ones."""
        fakelib = os.path.join(self.dir, "fakelib")
        os.makedirs(fakelib)
        for name, files in packages:
            src = os.path.join(self.dir, "fake", name)
            write_files(src, files)
            subprocess.run(["/usr/bin/R", "CMD", "INSTALL", "-l", fakelib,
                            src], check=True, capture_output=True,
                           env=self.env(self.repo))
        return fakelib

    def first_on_r_libs(self, lib):
        return ":".join([lib, self.lib] + HOST_LIBS[:2])

    def pak_calls(self):
        path = os.path.join(self.lib, "pak-calls.json")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return json.load(f)

    def pak_call(self, ref):
        """What build.R should pass to pak::pkg_install for ref."""
        return {"pkg": ref, "lib": self.lib, "upgrade": False, "ask": False,
                "dependencies": False}

    def names(self, entries):
        return [e["package"] for e in entries]

    def assert_deps_first(self, plan):
        done = set()
        for e in plan["packages"]:
            for d in e["depends"]:
                self.assertIn(d, done, "%s before its dependency %s"
                              % (e["package"], d))
            done.add(e["package"])

    # -- the fixture repository ------------------------------------------

    def test_mkrepo_layout(self):
        self.assertTrue(os.path.exists(os.path.join(
            self.contrib, "Archive", "byA", "byA_1.0.tar.gz")))
        self.assertTrue(os.path.exists(os.path.join(
            self.contrib, "byA_1.1.tar.gz")))
        self.assertFalse(os.path.exists(os.path.join(
            self.contrib, "byA_1.0.tar.gz")))
        with open(os.path.join(self.contrib, "PACKAGES")) as f:
            index = f.read()
        for pv in ("byA 1.1", "byB 1.0", "byC 1.0", "byAA 1.0"):
            p, v = pv.split()
            self.assertIn("Package: %s\nVersion: %s\n" % (p, v), index)
        self.assertNotIn(md5(os.path.join(self.contrib, "Archive", "byA",
                                          "byA_1.0.tar.gz")), index)
        self.assertEqual(index.count("MD5sum: "), 4)

    # -- pinned ----------------------------------------------------------

    def test_pinned_old_version_from_the_archive(self):
        self.manifest(packages={"byA": {
            "Package": "byA", "Version": "1.0", "Source": "Repository",
            "Repository": "CRAN"}})
        plan, out = self.resolve()
        self.assertEqual(plan["form"], "pinned")
        self.assertEqual(plan["r_version"], "4.2.2")
        self.assertTrue(plan["platform"])
        self.assertEqual(plan["requested"], ["byA"])
        self.assertEqual(plan["host"], [])
        [a] = plan["packages"]
        self.assertEqual((a["package"], a["version"], a["source"]),
                         ("byA", "1.0", "Repository"))
        self.assertEqual(a["repository"], self.repo)
        self.assertEqual(a["url"], self.repo
                         + "/src/contrib/Archive/byA/byA_1.0.tar.gz")
        self.assertEqual(a["checksum"], "")
        self.assertEqual((a["remote_sha"], a["depends"], a["linking_to"]),
                         ("", [], []))
        self.assertIn("resolve: byA 1.0 from %s" % self.repo, out)

        out = self.build("install")
        if host_version("pak"):
            self.assertIn("install: using pak ", out)
        else:
            self.assertIn("install: using base R install.packages\n", out)
        self.assertIn("installing byA 1.0 from %s" % a["url"], out)
        self.assertIn("installed byA 1.0", out)
        self.assertEqual(self.lib_version("byA"), "1.0")
        self.assertEqual(self.r('cat(byA::byA_version())'), "1.0")

    def test_renv_lock_shaped_manifest(self):
        # renv.lock entries under "packages"; the manifest's repositories
        # win over BLOCKYARD_REPOS (unreachable here)
        shiny = host_version("shiny")
        lock = {
            "byAA": {"Package": "byAA", "Version": "1.0",
                     "Source": "Repository", "Repository": "CRAN",
                     "Hash": "0123456789abcdef0123456789abcdef",
                     "Requirements": ["byC"]},
            "byC": {"Package": "byC", "Version": "1.0",
                    "Source": "Repository", "Repository": "CRAN",
                    "Hash": "fedcba9876543210fedcba9876543210"},
            "shiny": {"Package": "shiny", "Version": shiny,
                      "Source": "Repository", "Repository": "CRAN"},
        }
        self.manifest(packages=lock,
                      repositories=[{"Name": "CRAN", "URL": self.repo}])
        plan, out = self.resolve(repos=UNREACHABLE)
        self.assertEqual(plan["requested"], ["byAA", "byC", "shiny"])
        self.assertEqual(plan["host"],
                         [{"package": "shiny", "version": shiny}])
        self.assertEqual(self.names(plan["packages"]), ["byC", "byAA"])
        c, aa = plan["packages"]
        self.assertEqual(aa["depends"], ["byC"])
        self.assertEqual(c["url"], self.repo + "/src/contrib/byC_1.0.tar.gz")
        self.assertEqual(c["checksum"],
                         md5(os.path.join(self.contrib, "byC_1.0.tar.gz")))
        self.assertEqual(aa["checksum"],
                         md5(os.path.join(self.contrib, "byAA_1.0.tar.gz")))
        self.assertIn("resolve: shiny %s from the host library" % shiny, out)

        out = self.build("install", repos=UNREACHABLE)
        self.assertLess(out.index("installed byC 1.0"),
                        out.index("installing byAA 1.0"))
        self.assertEqual(self.r('cat(byAA::byAA_hello())'), "byAA on byC 1.0")

    def test_pinned_missing_version(self):
        self.manifest(packages={"byA": {"Package": "byA", "Version": "0.9",
                                        "Source": "Repository"}})
        out = self.build("resolve", ok=False)
        self.assertIn("ERROR: package 'byA' version '0.9' is not available "
                      "from the repositories (%s)" % self.repo, out)
        self.assertFalse(os.path.exists(self.plan_path))

    def test_pinned_host_version_or_exact_only(self):
        shiny = host_version("shiny")
        self.manifest(packages={"shiny": {"Package": "shiny",
                                          "Version": shiny}})
        plan, _ = self.resolve(repos=UNREACHABLE)
        self.assertEqual(plan["host"],
                         [{"package": "shiny", "version": shiny}])
        self.assertEqual(plan["packages"], [])
        # another version of a host package is not the host's
        self.manifest(packages={"shiny": {"Package": "shiny",
                                          "Version": "0.0.1"}})
        out = self.build("resolve", ok=False)
        self.assertIn("ERROR: package 'shiny' version '0.0.1' is not "
                      "available from the repositories", out)

    def test_pinned_github_needs_remotes(self):
        self.manifest(packages={"byGh": {
            "Package": "byGh", "Version": "0.1", "Source": "GitHub",
            "RemoteType": "github", "RemoteHost": "api.github.com",
            "RemoteUsername": "someone", "RemoteRepo": "byGh",
            "RemoteRef": "main", "RemoteSha": "0123abcd"}})
        plan, _ = self.resolve(repos=UNREACHABLE)
        [g] = plan["packages"]
        self.assertEqual((g["package"], g["version"], g["source"], g["url"],
                          g["remote_sha"]),
                         ("byGh", "0.1", "GitHub", "", "0123abcd"))
        if host_version("remotes"):
            self.skipTest("remotes is installed on this host")
        out = self.build("install", ok=False, BLOCKYARD_NO_PAK="1")
        self.assertIn("ERROR: package 'byGh' needs the R package remotes "
                      "for a GitHub source", out)

    def test_pinned_github_through_remotes(self):
        # a stand-in remotes package that records its arguments and
        # installs byC from the fixture repository
        fakelib = self.fake_lib(("remotes", FAKE_REMOTES))
        self.manifest(packages={"byC": {
            "Package": "byC", "Version": "1.0", "Source": "GitHub",
            "RemoteType": "github", "RemoteUsername": "someone",
            "RemoteRepo": "byC", "RemoteRef": "main",
            "RemoteSha": "0123abcd"}})
        plan, _ = self.resolve(repos=UNREACHABLE)
        self.assertEqual(plan["packages"][0]["source"], "GitHub")
        env = self.env(UNREACHABLE)
        # first: the host may have the real remotes (etc/install-deps)
        env["R_LIBS"] = fakelib + ":" + env["R_LIBS"]
        env["FAKE_REMOTES_TARBALL"] = os.path.join(self.contrib,
                                                   "byC_1.0.tar.gz")
        env["BLOCKYARD_NO_PAK"] = "1"  # the host may have pak
        p = subprocess.run([RSCRIPT, "--vanilla", BUILD_R, "install"],
                           env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("installing byC 1.0 from GitHub someone/byC@0123abcd",
                      p.stdout)
        self.assertIn("installed byC 1.0", p.stdout)
        with open(os.path.join(self.lib, "remotes-call.json")) as f:
            call = json.load(f)
        self.assertEqual(call, {"fn": "install_github", "repo": "someone/byC",
                                "ref": "0123abcd", "upgrade": "never",
                                "dependencies": False, "lib": self.lib})

    # -- pak -------------------------------------------------------------

    def test_install_through_pak(self):
        # a stand-in pak, first on R_LIBS: a repository package (file://,
        # so local::<path>) and a GitHub one, both through pak_install()
        fakelib = self.fake_lib(("pak", FAKE_PAK))
        self.manifest(packages={
            "byA": {"Package": "byA", "Version": "1.1",
                    "Source": "Repository", "Repository": "CRAN"},
            "byC": {"Package": "byC", "Version": "1.0", "Source": "GitHub",
                    "RemoteType": "github", "RemoteHost": "api.github.com",
                    "RemoteUsername": "someone", "RemoteRepo": "byC",
                    "RemoteRef": "main", "RemoteSha": "0123abcd"}})
        plan, _ = self.resolve()
        self.assertEqual(self.names(plan["packages"]), ["byA", "byC"])
        byc = os.path.join(self.contrib, "byC_1.0.tar.gz")
        out = self.build("install", R_LIBS=self.first_on_r_libs(fakelib),
                         FAKE_PAK_TARBALL=byc)
        self.assertTrue(out.startswith("install: using pak 0.0.1\n"), out)
        self.assertNotIn("install: using base R", out)
        self.assertIn("installing byA 1.1 from %s/src/contrib/byA_1.1.tar.gz"
                      % self.repo, out)
        self.assertIn("installed byA 1.1", out)
        self.assertIn("installing byC 1.0 from GitHub someone/byC@0123abcd",
                      out)
        self.assertIn("installed byC 1.0", out)
        self.assertEqual(self.pak_calls(), [
            self.pak_call("local::" + os.path.join(self.contrib,
                                                   "byA_1.1.tar.gz")),
            self.pak_call("someone/byC@0123abcd")])
        self.assertFalse(os.path.exists(os.path.join(self.lib,
                                                     "remotes-call.json")))
        self.assertEqual(self.lib_version("byA"), "1.1")
        self.assertEqual(self.lib_version("byC"), "1.0")
        self.assertEqual(self.r('cat(byA::byA_version())'), "1.1")

    def test_install_through_pak_over_http(self):
        # an http repository: an archived version (no checksum) goes to pak
        # as url::<url>; one with a checksum is downloaded and checked
        # first, then given to pak as local::<the download>
        handler = functools.partial(_QuietHandler, directory=self.repo_dir)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        repo = "http://127.0.0.1:%d" % server.server_address[1]
        fakelib = self.fake_lib(("pak", FAKE_PAK))
        self.manifest(packages={
            "byA": {"Package": "byA", "Version": "1.0"},
            "byC": {"Package": "byC", "Version": "1.0"}})
        plan, _ = self.resolve(repos=repo)
        a, c = plan["packages"]
        self.assertEqual(a["checksum"], "")
        self.assertNotEqual(c["checksum"], "")
        out = self.build("install", repos=repo,
                         R_LIBS=self.first_on_r_libs(fakelib))
        self.assertIn("install: using pak 0.0.1\n", out)
        calls = self.pak_calls()
        self.assertEqual(calls[0], self.pak_call(
            "url::%s/src/contrib/Archive/byA/byA_1.0.tar.gz" % repo))
        self.assertEqual(len(calls), 2)
        self.assertTrue(calls[1]["pkg"].startswith("local::" + self.rtmp))
        self.assertTrue(calls[1]["pkg"].endswith("/byC_1.0.tar.gz"))
        self.assertEqual(calls[1], self.pak_call(calls[1]["pkg"]))
        self.assertEqual(self.lib_version("byA"), "1.0")
        self.assertEqual(self.lib_version("byC"), "1.0")
        # a checksum that does not match never reaches pak
        with open(self.plan_path, "w") as f:
            json.dump(dict(plan, packages=[dict(c, checksum="0" * 32)]), f)
        shutil.rmtree(os.path.join(self.lib, "byC"))
        os.remove(os.path.join(self.lib, "pak-calls.json"))
        out = self.build("install", repos=repo, ok=False,
                         R_LIBS=self.first_on_r_libs(fakelib))
        self.assertIn("ERROR: installing byC 1.0 failed: checksum mismatch",
                      out)
        self.assertEqual(self.pak_calls(), [])

    def test_pak_refs_for_remote_sources(self):
        # GitLab (subdir after /-/), git, a package named unlike its
        # repository; Bitbucket, which pak has no reference for, and a
        # GitHub Enterprise host still go through remotes
        fakelib = self.fake_lib(("pak", FAKE_PAK),
                                ("remotes", FAKE_REMOTES))
        byc = os.path.join(self.contrib, "byC_1.0.tar.gz")
        base = {"Package": "byC", "Version": "1.0", "RemoteSha": "abc123",
                "RemoteRef": "main", "RemoteUsername": "someone",
                "RemoteRepo": "byC"}
        cases = [
            ({"Source": "GitLab", "RemoteHost": "gitlab.com",
              "RemoteSubdir": "pkg"}, "gitlab::someone/byC/-/pkg@abc123"),
            ({"Source": "git", "RemoteUrl": "https://git.example.com/byC.git"},
             "git::https://git.example.com/byC.git@abc123"),
            ({"Source": "GitHub", "RemoteRepo": "byC-r", "RemoteSha": "",
              "RemoteSubdir": "sub"}, "byC=someone/byC-r/sub@main"),
            ({"Source": "Bitbucket"}, None),
            ({"Source": "GitHub", "RemoteHost": "ghe.example.com/api/v3"},
             None),
        ]
        for change, ref in cases:
            with self.subTest(source=change["Source"], ref=ref):
                shutil.rmtree(self.lib)
                os.makedirs(self.lib)
                self.manifest(packages={"byC": dict(base, **change)})
                self.resolve(repos=UNREACHABLE)
                out = self.build("install", repos=UNREACHABLE,
                                 R_LIBS=self.first_on_r_libs(fakelib),
                                 FAKE_PAK_TARBALL=byc,
                                 FAKE_REMOTES_TARBALL=byc)
                self.assertIn("install: using pak 0.0.1\n", out)
                self.assertIn("installed byC 1.0", out)
                remotes_call = os.path.join(self.lib, "remotes-call.json")
                if ref is None:
                    self.assertEqual(self.pak_calls(), [])
                    with open(remotes_call) as f:
                        self.assertEqual(json.load(f)["fn"], "install_"
                                         + change["Source"].lower())
                else:
                    self.assertEqual(self.pak_calls(), [self.pak_call(ref)])
                    self.assertFalse(os.path.exists(remotes_call))

    def test_pak_failure(self):
        fakelib = self.fake_lib(("pak", FAKE_PAK))
        self.manifest(packages={"byC": {"Package": "byC", "Version": "1.0"}})
        self.resolve()
        out = self.build("install", ok=False,
                         R_LIBS=self.first_on_r_libs(fakelib),
                         FAKE_PAK_FAIL="no compiler\n  here")
        self.assertIn("install: using pak 0.0.1\n", out)
        self.assertIn("installing byC 1.0 from %s" % self.repo, out)
        self.assertIn("ERROR: installing byC 1.0 failed: ! Failed to build "
                      "source package local::%s: no compiler here\n"
                      % os.path.join(self.contrib, "byC_1.0.tar.gz"), out)
        self.assertNotIn("installed byC", out)
        self.assertIsNone(self.lib_version("byC"))

    def test_no_pak_forces_base_r(self):
        fakelib = self.fake_lib(("pak", FAKE_PAK))
        self.manifest(packages={"byC": {"Package": "byC", "Version": "1.0"}})
        self.resolve()
        out = self.build("install", R_LIBS=self.first_on_r_libs(fakelib),
                         BLOCKYARD_NO_PAK="1")
        self.assertTrue(out.startswith(
            "install: using base R install.packages\n"), out)
        self.assertNotIn("using pak", out)
        self.assertIn("installed byC 1.0", out)
        self.assertEqual(self.pak_calls(), [])
        self.assertEqual(self.lib_version("byC"), "1.0")

    # -- description -----------------------------------------------------

    def test_description_closure_newest_and_order(self):
        shiny = host_version("shiny")
        self.manifest(description={
            "Depends": "R (>= 3.5.0)",
            "Imports": "byB,\n    byAA (>= 1.0),\n    shiny, utils"})
        plan, out = self.resolve()
        self.assertEqual(plan["form"], "description")
        self.assertEqual(plan["requested"], ["byAA", "byB", "shiny"])
        # shiny's own dependencies are the host's business
        self.assertEqual(plan["host"],
                         [{"package": "shiny", "version": shiny}])
        pk = {e["package"]: e for e in plan["packages"]}
        self.assertEqual(sorted(pk), ["byA", "byAA", "byB", "byC"])
        self.assertEqual(pk["byA"]["version"], "1.1")
        self.assertEqual(pk["byA"]["url"],
                         self.repo + "/src/contrib/byA_1.1.tar.gz")
        self.assertEqual(pk["byB"]["depends"], ["byA"])
        self.assertEqual(pk["byAA"]["depends"], ["byC"])
        self.assert_deps_first(plan)
        self.assertLess(self.names(plan["packages"]).index("byC"),
                        self.names(plan["packages"]).index("byAA"))
        # deterministic: the same plan, byte for byte
        with open(self.plan_path, "rb") as f:
            first = f.read()
        self.build("resolve")
        with open(self.plan_path, "rb") as f:
            self.assertEqual(f.read(), first)

        out = self.build("install")
        for e in plan["packages"]:
            self.assertIn("installed %s %s" % (e["package"], e["version"]),
                          out)
            self.assertEqual(self.lib_version(e["package"]), e["version"])
        self.assertEqual(self.r('cat(byB::byB_hello())'),
                         "hello from byB, byA 1.1")

    def test_description_constraints_are_honoured(self):
        self.manifest(description={"Imports": "byA (>= 2.0)"})
        out = self.build("resolve", ok=False)
        self.assertIn("ERROR: package 'byA' (>= 2.0", out)
        self.assertIn("is not available from the repositories (%s)"
                      % self.repo, out)
        # a host package too old for a constraint is not the host's
        self.manifest(description={"Imports": "shiny (>= 99.0)"})
        out = self.build("resolve", ok=False)
        self.assertIn("resolve: shiny %s on the host does not meet (>= 99.0)"
                      % host_version("shiny"), out)
        self.assertIn("ERROR: package 'shiny' is not available", out)

    def test_description_remotes(self):
        self.manifest(description={"Imports": "byRem, byC",
                                   "Remotes": "someone/byRem@v1"})
        plan, _ = self.resolve()
        pk = {e["package"]: e for e in plan["packages"]}
        self.assertEqual(sorted(pk), ["byC", "byRem"])
        self.assertEqual(pk["byRem"]["source"], "GitHub")
        self.assertEqual(pk["byRem"]["url"], "")
        self.assertEqual(pk["byC"]["source"], "Repository")

    def test_unknown_package(self):
        self.manifest(description={"Imports": "byC, notapkg"})
        out = self.build("resolve", ok=False)
        self.assertIn("ERROR: package 'notapkg' is not available from the "
                      "repositories (%s)\n" % self.repo, out)
        self.assertFalse(os.path.exists(self.plan_path))

    # -- scripts ---------------------------------------------------------

    def test_scripts_scan_with_the_parser(self):
        write_files(self.app, {
            "app.R": "library(shiny)\n"
                     "byB::byB_hello()\n"
                     "if (!requireNamespace(\"byC\", quietly = TRUE))\n"
                     "  stop(\"no byC\")\n"
                     "x <- \"library(notapkg)\"\n"
                     "# library(notapkg2); notapkg2b::f()\n"
                     "pkg <- \"notapkg3\"\n"
                     "library(pkg, character.only = TRUE)\n"
                     "f <- function(a = base::require(jsonlite)) a\n"
                     "shinyApp(fluidPage(), function(input, output) {})\n",
            "broken.R": "library(\n",
            "docs/report.Rmd": "---\ntitle: r\n---\n\n"
                               "Text mentioning library(notapkg4).\n\n"
                               "```{r setup}\nlibrary(byAA)\n```\n",
            ".hidden/x.R": "library(notapkg5)\n",
        })
        self.manifest()
        plan, out = self.resolve()
        self.assertEqual(plan["form"], "scripts")
        self.assertEqual(plan["requested"],
                         ["byAA", "byB", "byC", "jsonlite", "shiny"])
        self.assertEqual(self.names(plan["host"]), ["jsonlite", "shiny"])
        self.assertNotIn("shiny", self.names(plan["packages"]))
        self.assertEqual(sorted(self.names(plan["packages"])),
                         ["byA", "byAA", "byB", "byC"])
        self.assert_deps_first(plan)
        self.assertIn("resolve: warning: cannot parse broken.R", out)
        self.assertNotIn("notapkg", out)

    # -- host, offline ---------------------------------------------------

    def test_offline_when_the_host_satisfies_everything(self):
        write_files(self.app, {"app.R": "library(shiny)\n"
                                        "jsonlite::toJSON(1)\n"})
        self.manifest()
        plan, out = self.resolve(repos=UNREACHABLE)
        self.assertEqual(plan["requested"], ["jsonlite", "shiny"])
        self.assertEqual(self.names(plan["host"]), ["jsonlite", "shiny"])
        self.assertEqual(plan["packages"], [])
        self.assertNotIn("warning", out)
        out = self.build("install", repos=UNREACHABLE)
        self.assertNotIn("installing", out)
        # the control: that repository really is unreachable
        write_files(self.app, {"more.R": "library(byC)\n"})
        out = self.build("resolve", repos=UNREACHABLE, ok=False)
        self.assertIn("ERROR: package 'byC' is not available from the "
                      "repositories (http://127.0.0.1:9", out)

    # -- install ---------------------------------------------------------

    def test_install_skips_what_the_library_has(self):
        self.manifest(packages={
            "byA": {"Package": "byA", "Version": "1.1"},
            "byC": {"Package": "byC", "Version": "1.0"}})
        self.resolve()
        # as if byspawn linked byC 1.0 from its store; byA 0.5 is stale
        write_files(self.lib, {
            "byC/DESCRIPTION": "Package: byC\nVersion: 1.0\n",
            "byA/DESCRIPTION": "Package: byA\nVersion: 0.5\n"})
        out = self.build("install")
        self.assertIn("store: byC 1.0 already in the library", out)
        self.assertNotIn("installing byC", out)
        self.assertIn("installing byA 1.1", out)
        self.assertEqual(self.lib_version("byA"), "1.1")
        self.assertFalse(os.path.exists(os.path.join(self.lib, "byC", "R")))

    def test_install_one_package_plans(self):
        # byspawn's way: one install step per package, from a one-package
        # plan (BLOCKYARD_PLAN) into an empty directory (BLOCKYARD_LIB),
        # with the bundle library holding the dependencies on R_LIBS
        self.manifest(description={"Imports": "byB"})
        plan, _ = self.resolve()
        self.assertEqual(self.names(plan["packages"]), ["byA", "byB"])
        for e in plan["packages"]:
            self.assertEqual(e["remote_subdir"], "")
        outs = []
        for i, e in enumerate(plan["packages"]):
            one = os.path.join(self.dir, "plan.%d.json" % i)
            with open(one, "w") as f:
                json.dump(dict(plan, packages=[e], host=[]), f)
            out = os.path.join(self.dir, "out%d" % i)
            os.makedirs(out)
            r_libs = ":".join([out] + outs + HOST_LIBS[:2])
            log = self.build("install", BLOCKYARD_PLAN=one,
                             BLOCKYARD_LIB=out, R_LIBS=r_libs)
            self.assertIn("installed %s %s" % (e["package"], e["version"]),
                          log)
            self.assertEqual(sorted(x for x in os.listdir(out)
                                    if not x.startswith(".")),
                             [e["package"]])
            outs.append(out)

    def test_install_failures(self):
        self.manifest(packages={"byC": {"Package": "byC", "Version": "1.0"}})
        plan, _ = self.resolve()
        good = plan["packages"][0]

        def install_with(**change):
            entry = dict(good, **change)
            with open(self.plan_path, "w") as f:
                json.dump(dict(plan, packages=[entry]), f)
            return self.build("install", ok=False)

        out = install_with(checksum="0" * 32)
        self.assertIn("ERROR: installing byC 1.0 failed: checksum mismatch",
                      out)
        out = install_with(url=self.repo + "/src/contrib/nothere_1.0.tar.gz")
        self.assertIn("ERROR: installing byC 1.0 failed: ", out)
        self.assertIsNone(self.lib_version("byC"))
        # a tarball that does not install (byC's, claimed to be 9.9)
        out = install_with(version="9.9", checksum="")
        self.assertIn("ERROR: installing byC 9.9 failed: ", out)

    def test_install_without_a_plan(self):
        self.manifest()
        out = self.build("install", ok=False)
        self.assertIn("ERROR: no plan at", out)


if __name__ == "__main__":
    unittest.main()
