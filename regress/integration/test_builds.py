"""Dependency builds, offline: a local CRAN-like repository of tiny
packages (regress/fixtures/rpkgs, laid out by regress/mkrepo) served on
loopback; bundles with manifest.json, renv.lock, DESCRIPTION or bare
scripts get exactly their packages, through the package store, and
their workers load them; refresh and rollback; hostile builds."""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from harness import BydTestCase
from test_api_bundles import targz
from test_api_workers import get_page

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RPKGS = os.path.join(TOP, "regress", "fixtures", "rpkgs")
MKREPO = os.path.join(TOP, "regress", "mkrepo")


def mkrepo(out, *pkgs, target=None):
    env = dict(os.environ)
    if target:
        env["EVIL_TARGET"] = target
    subprocess.run([MKREPO, out] + [os.path.join(RPKGS, p) for p in pkgs],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def app_r(*pkgs):
    """An app that shows each package's version on its page."""
    libs = "".join("library(%s)\n" % p for p in pkgs)
    shown = ", ".join('paste("%s", packageVersion("%s"))' % (p, p)
                      for p in pkgs)
    return ("library(shiny)\n%sui <- fluidPage(%s)\n"
            "shinyApp(ui, function(input, output) {})\n" %
            (libs, shown)).encode()


def manifest(packages=None, description=None, repos=None, r_version=None):
    m = {"version": 1, "metadata": {"appmode": "shiny",
                                    "entrypoint": "app.R"},
         "repositories": repos or [], "files": {}}
    if packages is not None:
        m["packages"] = packages
    if description is not None:
        m["description"] = description
    if r_version is not None:
        m["r_version"] = r_version
    return json.dumps(m).encode()


def pin(name, version):
    return {"Package": name, "Version": version, "Source": "Repository",
            "Repository": "LOCAL"}


class Builds(BydTestCase):

    @classmethod
    def setUpClass(cls):
        # one web root: /main (byA 1.0 and 1.1, byB, byC, the hostile
        # ones) and, per test, more repositories next to it
        cls.root = tempfile.mkdtemp(prefix="byd-repo-")
        os.chmod(cls.root, 0o755)
        mkrepo(os.path.join(cls.root, "main"), "byA_1.0", "byA_1.1",
               "byB_1.0", "byC_1.0", "byEvilWrite_1.0")
        handler = functools.partial(_Quiet, directory=cls.root)
        cls.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                   handler)
        threading.Thread(target=cls.http.serve_forever,
                         daemon=True).start()
        cls.url = "http://127.0.0.1:%d" % cls.http.server_address[1]
        cls.main = cls.url + "/main"
        cls.extra = ('\n[process]\nrepositories = ["LOCAL=%s"]\n'
                     'build_timeout = "5m"\n' % cls.main)

    @classmethod
    def tearDownClass(cls):
        cls.http.shutdown()
        cls.http.server_close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.pub = self.byd.token("pat", "publisher")

    # -- helpers ---------------------------------------------------------

    def deploy(self, app, files, create=True):
        """Upload files as app's bundle, wait for its build: (bundle id,
        task object, task log)."""
        if create:
            st, _, out = self.byd.api("POST", "/api/v1/apps",
                                      {"name": app}, token=self.pub)
            self.assertEqual(st, 201, out)
        st, _, out = self.byd.api("POST", "/api/v1/apps/%s/bundles" % app,
                                  raw=targz(files), token=self.pub)
        self.assertEqual(st, 202, out)
        task = self.byd.wait_task(out["task_id"], self.pub)
        return out["bundle_id"], task, self.tasklog(out["task_id"])

    def tasklog(self, task_id):
        st, _, text = self.byd.request(
            "GET", "/api/v1/tasks/%s/logs" % task_id,
            headers={"Authorization": "Bearer " + self.pub})
        self.assertEqual(st, 200)
        return text.decode()

    def app(self, name):
        st, _, a = self.byd.api("GET", "/api/v1/apps/" + name,
                                token=self.pub)
        self.assertEqual(st, 200, a)
        return a

    def library(self, name, bundle, link=".lib"):
        """{package: version} of the bundle's library."""
        d = os.path.join(self.byd.dir, "bundles", self.app(name)["id"],
                         bundle + link)
        out = {}
        for p in sorted(os.listdir(d)):
            if p.startswith("."):
                continue
            with open(os.path.join(d, p, "DESCRIPTION")) as f:
                out[p] = re.search(r"^Version: (\S+)", f.read(), re.M)[1]
        return out

    def page(self, name):
        """The text of a fresh worker's page."""
        st, _, w = self.byd.api("POST", "/api/v1/apps/%s/start" % name,
                                token=self.pub)
        self.assertEqual(st, 200, w)
        status, body = get_page(w["port"])
        self.assertEqual(status, 200, self.byd.logtext()[-3000:])
        self.byd.byctl("worker", "stop", w["worker_id"])
        return body.decode()

    def store(self):
        """(package, key) of every entry of the package store."""
        root = os.path.join(self.byd.dir, "bundles", ".pkg-store")
        out = []
        for plat in os.listdir(root):
            for pkg in os.listdir(os.path.join(root, plat)):
                for key in os.listdir(os.path.join(root, plat, pkg)):
                    out.append((pkg, key))
        return sorted(out)

    def assert_completed(self, task, log):
        self.assertEqual(task["status"], "completed", log)

    # -- the four forms --------------------------------------------------

    def test_four_forms(self):
        # manifest.json, pinned: byA 1.0 although the repository's
        # current byA is 1.1 (1.0 is in its Archive)
        bid, task, log = self.deploy("pinned", [
            ("app.R", app_r("byA")),
            ("manifest.json", manifest(packages={"byA": pin("byA", "1.0")},
                                       repos=[{"Name": "LOCAL",
                                               "URL": self.main}]))])
        self.assert_completed(task, log)
        self.assertEqual(self.library("pinned", bid), {"byA": "1.0"})
        self.assertIn("byA 1.0", self.page("pinned"))

        # renv.lock, pinned: byB and its dependency byA 1.1
        lock = {"R": {"Version": "4.2.2", "Repositories": [
            {"Name": "LOCAL", "URL": self.main}]},
            "Packages": {"byB": pin("byB", "1.0"),
                         "byA": pin("byA", "1.1")}}
        bid, task, log = self.deploy("renv", [
            ("app.R", app_r("byB", "byA")),
            ("renv.lock", json.dumps(lock).encode())])
        self.assert_completed(task, log)
        self.assertEqual(self.library("renv", bid),
                         {"byA": "1.1", "byB": "1.0"})
        text = self.page("renv")
        self.assertIn("byB 1.0", text)
        self.assertIn("byA 1.1", text)

        # DESCRIPTION, unpinned, with its own repository: newest byA
        desc = ("Package: descapp\nVersion: 0.1\nImports: byB,\n"
                "    shiny\nAdditional_repositories: %s\n" % self.main)
        bid, task, log = self.deploy("desc", [
            ("app.R", app_r("byB")), ("DESCRIPTION", desc.encode())])
        self.assert_completed(task, log)
        self.assertEqual(self.library("desc", bid),
                         {"byA": "1.1", "byB": "1.0"})
        self.assertIn("shiny 1.7.4 from the host library", log)
        self.assertIn("byB 1.0", self.page("desc"))

        # bare scripts: found by R's parser, from [process] repositories;
        # a name in a string or a comment is not a dependency
        src = (b"library(shiny)\n# library(notapkg)\n"
               b"x <- 'library(alsonot)'\n"
               b"ui <- fluidPage(byC::byC_hello(), x)\n"
               b"shinyApp(ui, function(input, output) {})\n")
        bid, task, log = self.deploy("scripts", [("app.R", src)])
        self.assert_completed(task, log)
        self.assertEqual(self.library("scripts", bid), {"byC": "1.0"})
        self.assertIn("hello from byC", self.page("scripts"))
        # the resolved manifest is kept next to the bundle
        aid = self.app("scripts")["id"]
        with open(os.path.join(self.byd.dir, "bundles", aid,
                               bid + ".manifest.json")) as f:
            m = json.load(f)
        self.assertEqual(m["version"], 1)
        self.assertIn("app.R", m["files"])

        # ready, and the only bundle
        bundles = self.byd.api("GET", "/api/v1/apps/scripts/bundles",
                               token=self.pub)[2]["bundles"]
        self.assertEqual([(b["id"], b["status"]) for b in bundles],
                         [(bid, "ready")])

    def test_task_log_follows_the_build(self):
        """GET .../logs right after the 202 streams the build's lines as
        they come and ends when the task has."""
        self.byd.api("POST", "/api/v1/apps", {"name": "follow"},
                     token=self.pub)
        st, _, out = self.byd.api(
            "POST", "/api/v1/apps/follow/bundles", token=self.pub,
            wait=False, raw=targz([
                ("app.R", app_r("byC")),
                ("DESCRIPTION", b"Package: f\nVersion: 1\nImports: byC\n")]))
        self.assertEqual(st, 202, out)
        st, _, t = self.byd.api("GET", "/api/v1/tasks/" + out["task_id"],
                                token=self.pub)
        self.assertEqual(t["status"], "running", t)
        log = self.tasklog(out["task_id"])
        self.assertIn("installing byC 1.0", log)
        self.assertTrue(log.endswith("Bundle activated.\n"), log)
        st, _, t = self.byd.api("GET", "/api/v1/tasks/" + out["task_id"],
                                token=self.pub)
        self.assertEqual(t["status"], "completed", t)

    # -- failures ----------------------------------------------------------

    def test_unknown_package_keeps_previous_bundle(self):
        good, task, log = self.deploy("keep", [("app.R", app_r())])
        self.assert_completed(task, log)
        bad, task, log = self.deploy("keep", [
            ("app.R", app_r()),
            ("DESCRIPTION", b"Package: x\nVersion: 1\nImports: byC, "
             b"nosuchpkg\n")], create=False)
        self.assertEqual(task["status"], "failed", log)
        self.assertIn("ERROR: package 'nosuchpkg' is not available", log)
        self.assertIn("keeps its previous bundle", log)
        self.assertEqual(self.app("keep")["active_bundle"], good)
        bundles = self.byd.api("GET", "/api/v1/apps/keep/bundles",
                               token=self.pub)[2]["bundles"]
        self.assertEqual([(b["id"], b["status"]) for b in bundles],
                         [(bad, "failed"), (good, "ready")])
        d = os.path.join(self.byd.dir, "bundles", self.app("keep")["id"])
        self.assertEqual([f for f in os.listdir(d)
                          if f.startswith(bad + ".lib") or
                          f.startswith(bad + ".build")], [])

    def test_bad_manifests_are_rejected(self):
        self.byd.api("POST", "/api/v1/apps", {"name": "bad"},
                     token=self.pub)
        cases = [
            (manifest(packages={}, description={"Imports": "x"}),
             "invalid manifest.json"),
            (json.dumps({"version": 2}).encode(), "invalid manifest.json"),
            (manifest(packages={"byA": {"Package": "byA",
                                        "Source": "Repository"}}),
             "invalid manifest.json"),
            (manifest(description={"Imports": "byA"}, r_version="9.9.1"),
             "bundle requires R 9.9 which is not installed; "
             "available: 4.2.2"),
        ]
        for data, msg in cases:
            st, _, out = self.byd.api(
                "POST", "/api/v1/apps/bad/bundles", token=self.pub,
                raw=targz([("app.R", app_r()), ("manifest.json", data)]))
            self.assertEqual(st, 400, out)
            self.assertTrue(out["message"].startswith(msg), out)
        # nothing on disk, no rows
        d = os.path.join(self.byd.dir, "bundles", self.app("bad")["id"])
        self.assertFalse(os.path.exists(d) and os.listdir(d))
        self.assertEqual(self.byd.api("GET", "/api/v1/apps/bad/bundles",
                                      token=self.pub)[2]["bundles"], [])

    # -- the package store --------------------------------------------------

    def test_redeploy_hits_the_store(self):
        files = [("app.R", app_r("byB", "byC")),
                 ("DESCRIPTION", b"Package: s\nVersion: 1\n"
                  b"Imports: byB, byC\n")]
        b1, task, log1 = self.deploy("store", files)
        self.assert_completed(task, log1)
        self.assertIn("store: byA 1.1 added to the package store", log1)
        self.assertIn("store: byB 1.0 added to the package store", log1)
        self.assertIn("store: byC 1.0 added to the package store", log1)
        entries = self.store()
        self.assertEqual([p for p, _ in entries], ["byA", "byB", "byC"])

        b2, task, log2 = self.deploy("store", files, create=False)
        self.assert_completed(task, log2)
        self.assertNotIn("installing", log2)
        self.assertIn("store: byA 1.1 linked from the package store", log2)
        self.assertIn("store: byB 1.0 linked from the package store", log2)
        self.assertIn("store: byC 1.0 linked from the package store", log2)
        self.assertIn("dependencies: 3 from the package store, 0 installed",
                      log2)
        self.assertEqual(self.store(), entries)
        self.assertEqual(self.app("store")["active_bundle"], b2)
        # the same files, hard-linked
        aid = self.app("store")["id"]
        f1 = os.path.join(self.byd.dir, "bundles", aid, b1 + ".lib", "byB",
                          "DESCRIPTION")
        f2 = os.path.join(self.byd.dir, "bundles", aid, b2 + ".lib", "byB",
                          "DESCRIPTION")
        self.assertEqual(os.stat(f1).st_ino, os.stat(f2).st_ino)
        st = os.stat(f2)
        self.assertEqual((st.st_uid, st.st_mode & 0o022), (0, 0))
        self.assertIn("byB 1.0", self.page("store"))

        # at least five times faster than the first build
        def secs(log):
            return float(re.search(r"^dependencies: .*\(([0-9.]+) s\)$",
                                   log, re.M)[1])
        self.assertGreaterEqual(secs(log1), 5 * secs(log2),
                                (secs(log1), secs(log2)))

    # -- refresh and rollback -------------------------------------------------

    def test_refresh_and_rollback(self):
        repo = os.path.join(self.root, "refresh-%d" % os.getpid())
        shutil.rmtree(repo, ignore_errors=True)
        mkrepo(repo, "byA_1.0")
        url = self.url + "/" + os.path.basename(repo)
        desc = ("Package: r\nVersion: 1\nImports: byA\n"
                "Additional_repositories: %s\n" % url).encode()
        bid, task, log = self.deploy("fresh", [("app.R", app_r("byA")),
                                               ("DESCRIPTION", desc)])
        self.assert_completed(task, log)
        self.assertEqual(self.library("fresh", bid), {"byA": "1.0"})

        # nothing new: nothing changes
        st, _, out = self.byd.api("POST", "/api/v1/apps/fresh/refresh",
                                  token=self.pub)
        self.assertEqual(st, 202, out)
        self.assertEqual(out["message"], "refresh started")
        task = self.byd.wait_task(out["task_id"], self.pub)
        log = self.tasklog(out["task_id"])
        self.assert_completed(task, log)
        self.assertIn("Dependencies unchanged", log)

        # no previous library yet
        st, _, out = self.byd.api("POST",
                                  "/api/v1/apps/fresh/refresh/rollback",
                                  token=self.pub)
        self.assertEqual(st, 409, out)

        mkrepo(repo, "byA_1.1")
        st, _, out = self.byd.api("POST", "/api/v1/apps/fresh/refresh",
                                  token=self.pub)
        self.assertEqual(st, 202, out)
        task = self.byd.wait_task(out["task_id"], self.pub)
        log = self.tasklog(out["task_id"])
        self.assert_completed(task, log)
        self.assertIn("Dependencies updated", log)
        self.assertEqual(self.library("fresh", bid), {"byA": "1.1"})
        self.assertEqual(self.library("fresh", bid, ".lib.prev"),
                         {"byA": "1.0"})
        self.assertIn("byA 1.1", self.page("fresh"))

        st, _, out = self.byd.api("POST",
                                  "/api/v1/apps/fresh/refresh/rollback",
                                  token=self.pub)
        self.assertEqual(st, 202, out)
        self.assertEqual(out["message"], "rollback started")
        self.assertEqual(self.library("fresh", bid), {"byA": "1.0"})
        self.assertIn("byA 1.0", self.page("fresh"))

        # pinned bundles are refreshed by redeploying
        self.deploy("pinned2", [
            ("app.R", app_r("byA")),
            ("manifest.json", manifest(packages={"byA": pin("byA", "1.0")},
                                       repos=[{"Name": "LOCAL",
                                               "URL": self.main}]))])
        for path in ("refresh", "refresh/rollback"):
            st, _, out = self.byd.api("POST", "/api/v1/apps/pinned2/" + path,
                                      token=self.pub)
            self.assertEqual(st, 409, out)
            self.assertEqual(out["message"], "App was deployed with pinned "
                             "dependencies. Redeploy to update.")
        # viewers and strangers do not see the app
        viewer = self.byd.token("vic", "viewer")
        st, _, _ = self.byd.api("POST", "/api/v1/apps/fresh/refresh",
                                token=viewer)
        self.assertEqual(st, 404)

    # -- the sandbox ------------------------------------------------------------

    def test_hostile_builds_fail(self):
        other, task, log = self.deploy("victim", [("app.R", app_r())])
        self.assert_completed(task, log)
        vid = self.app("victim")["id"]
        target = os.path.join(self.byd.dir, "bundles", vid, other, "app.R")
        self.assertTrue(os.path.exists(target))

        # install-time code that writes into the bundle and /usr
        bid, task, log = self.deploy("evilw", [
            ("app.R", app_r()),
            ("DESCRIPTION", b"Package: e\nVersion: 1\n"
             b"Imports: byEvilWrite\n")])
        self.assertEqual(task["status"], "failed", log)
        self.assertIn("installing byEvilWrite", log)
        aid = self.app("evilw")["id"]
        self.assertFalse(os.path.exists(os.path.join(
            self.byd.dir, "bundles", aid, bid, "pwned")))
        self.assertFalse(os.path.exists("/usr/pwned"))
        self.assertIsNone(self.app("evilw")["active_bundle"])

        # install-time code that reads another app's bundle
        repo = os.path.join(self.root, "evil-%d" % os.getpid())
        shutil.rmtree(repo, ignore_errors=True)
        mkrepo(repo, "byEvilRead_1.0", target=target)
        url = self.url + "/" + os.path.basename(repo)
        bid, task, log = self.deploy("evilr", [
            ("app.R", app_r()),
            ("DESCRIPTION", ("Package: e\nVersion: 1\nImports: byEvilRead\n"
                             "Additional_repositories: %s\n" %
                             url).encode())])
        self.assertEqual(task["status"], "failed", log)
        self.assertIn("installing byEvilRead", log)
        self.assertIn("cannot open", log)
        self.assertIsNone(self.app("evilr")["active_bundle"])


class _Quiet(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass
