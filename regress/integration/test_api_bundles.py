"""Bundle upload: streamed to disk, unpacked by byspawn as an unprivileged
uid, hostile archives rejected with nothing left behind."""

import gzip
import io
import os
import tarfile
import time

from harness import BydTestCase

APP_R = b"library(shiny)\nshinyApp(fluidPage('hi'), function(i, o) {})\n"


def targz(entries, compress=True):
    """entries: (name, bytes) for files, or a ready TarInfo with data."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                t.addfile(e)
                continue
            name, data = e
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw) if compress else raw


_FULL = targz([("app.R", APP_R), ("blob", os.urandom(20000))])
TRUNCATED = _FULL[:len(_FULL) // 2]


def special(name, kind, target=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = target
    return ti


class Bundles(BydTestCase):

    def config_storage(self):
        return os.path.join(self.byd.dir, "bundles")

    def upload(self, data, token, app="hello"):
        return self.byd.api("POST", "/api/v1/apps/%s/bundles" % app,
                            raw=data, token=token,
                            headers={"Content-Type": "application/gzip"})

    def app_files(self, app_id):
        d = os.path.join(self.config_storage(), app_id)
        out = []
        for root, dirs, files in os.walk(d):
            out += [os.path.join(root, f) for f in files + dirs]
        return out

    def test_upload_and_hostile_archives(self):
        b = self.byd
        pub = b.token("pat", "publisher")
        viewer = b.token("vic", "viewer")
        st, _, app = b.api("POST", "/api/v1/apps", {"name": "hello"},
                           token=pub)
        self.assertEqual(st, 201)
        aid = app["id"]

        # a valid bundle: 202, row ready and active, files root-owned
        st, _, out = self.upload(targz([("app.R", APP_R),
                                        ("www/style.css", b"p {}")]), pub)
        self.assertEqual(st, 202, out)
        self.assertEqual(sorted(out), ["bundle_id", "task_id"])
        bid = out["bundle_id"]
        tid = out["task_id"]
        st, _, task = b.api("GET", "/api/v1/tasks/" + tid, token=pub)
        self.assertEqual(st, 200, task)
        self.assertEqual(sorted(task), ["created_at", "id", "status"])
        self.assertEqual((task["id"], task["status"]), (tid, "completed"))
        st, hdr, log = b.request("GET", "/api/v1/tasks/%s/logs" % tid,
                                 headers={"Authorization": "Bearer " + pub})
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/plain"))
        self.assertIn(b"unpacked 2 files", log)
        st, _, out2 = b.api("GET", "/api/v1/tasks/" + tid, token=viewer)
        self.assertEqual(st, 404)
        st, _, out2 = b.api("GET", "/api/v1/tasks/" + tid)
        self.assertEqual(st, 401)
        st, _, out2 = b.api("GET", "/api/v1/tasks/nope", token=pub)
        self.assertEqual((st, out2["message"]), (404, "task nope not found"))
        st, _, lst = b.api("GET", "/api/v1/apps/hello/bundles", token=pub)
        self.assertEqual(st, 200)
        self.assertEqual([x["id"] for x in lst["bundles"]], [bid])
        self.assertEqual(lst["bundles"][0]["status"], "ready")
        st, _, got = b.api("GET", "/api/v1/apps/hello", token=pub)
        self.assertEqual(got["active_bundle"], bid)
        top = os.path.join(self.config_storage(), aid, bid)
        st_app = os.stat(os.path.join(top, "app.R"))
        self.assertEqual((st_app.st_uid, st_app.st_mode & 0o777),
                         (0, 0o644))
        with open(os.path.join(top, "app.R"), "rb") as f:
            self.assertEqual(f.read(), APP_R)
        self.assertTrue(os.path.exists(os.path.join(
            self.config_storage(), aid, bid + ".tar.gz")))
        before = sorted(self.app_files(aid))

        # ui.R + server.R is an entrypoint too
        st, _, out = self.upload(targz([("ui.R", b"1"),
                                        ("server.R", b"2")]), pub)
        self.assertEqual(st, 202, out)
        before = sorted(self.app_files(aid))

        hostile = {
            "traversal": targz([("app.R", APP_R), ("../evil", b"x")]),
            "absolute": targz([("app.R", APP_R), ("/etc/evil", b"x")]),
            "symlink": targz([("app.R", APP_R),
                              special("link", tarfile.SYMTYPE,
                                      "/etc/shadow")]),
            "hardlink": targz([("app.R", APP_R),
                               special("hl", tarfile.LNKTYPE, "app.R")]),
            "device": targz([("app.R", APP_R),
                             special("dev", tarfile.CHRTYPE)]),
            "not gzip": targz([("app.R", APP_R)], compress=False),
            "truncated": TRUNCATED,
            "missing app.R": targz([("main.R", APP_R)]),
            "garbage": os.urandom(2000),
        }
        for what, data in hostile.items():
            st, _, out = self.upload(data, pub)
            self.assertEqual(st, 400, "%s: %s" % (what, out))
            self.assertEqual(out["error"], "bad_request", what)
            self.assertTrue(out["message"], what)
            self.assertEqual(sorted(self.app_files(aid)), before, what)
        self.assertIn("entrypoint", self.upload(
            hostile["missing app.R"], pub)[2]["message"])
        self.assertFalse(os.path.exists("/etc/evil"))

        # the rows: still exactly the two good bundles
        st, _, lst = b.api("GET", "/api/v1/apps/hello/bundles", token=pub)
        self.assertEqual(len(lst["bundles"]), 2)
        n = b.sql("SELECT COUNT(*) FROM bundles")
        self.assertEqual(int(n[0][0]), 2)

        # who may upload: a viewer sees nothing, anonymous must log in
        st, _, out = self.upload(targz([("app.R", APP_R)]), viewer)
        self.assertEqual(st, 404)
        st, _, out = self.upload(targz([("app.R", APP_R)]), None)
        self.assertEqual(st, 401)
        st, _, out = self.upload(targz([("app.R", APP_R)]), pub,
                                 app="nope")
        self.assertEqual(st, 404)
        self.assertEqual(sorted(self.app_files(aid)), before)


class BundleSizeLimit(BydTestCase):

    def test_over_max_bundle_size(self):
        b = self.byd
        b.stop()
        text = b.config_text().replace(
            "[storage]\n", "[storage]\nmax_bundle_size = 50000\n")
        b.write_config(text=text)
        b.start()
        pub = b.token("pat", "publisher")
        st, _, app = b.api("POST", "/api/v1/apps", {"name": "big"},
                           token=pub)
        big = targz([("app.R", APP_R), ("blob", os.urandom(200000))])
        st, _, out = b.api("POST", "/api/v1/apps/big/bundles", raw=big,
                           token=pub)
        self.assertEqual(st, 413)
        self.assertEqual(out["error"], "payload_too_large")
        self.assertEqual(out["message"], "bundle exceeds max_bundle_size")
        # the core answers 413 at once; byspawn removes the partial
        # file as soon as byproxy tells it (one message later)
        d = os.path.join(b.dir, "bundles", app["id"])
        left = None
        for _ in range(100):
            left = os.listdir(d) if os.path.exists(d) else []
            if not left:
                break
            time.sleep(0.02)
        self.assertEqual(left, [])
        small = targz([("app.R", APP_R)])
        st, _, out = b.api("POST", "/api/v1/apps/big/bundles", raw=small,
                           token=pub)
        self.assertEqual(st, 202, out)


class Retention(BydTestCase):

    def test_bundle_retention_prunes_oldest(self):
        b = self.byd
        b.stop()
        b.write_config(text=b.config_text().replace(
            "[storage]\n", "[storage]\nbundle_retention = 1\n"))
        b.start()
        pub = b.token("pat", "publisher")
        st, _, app = b.api("POST", "/api/v1/apps", {"name": "r"}, token=pub)
        ids = []
        for i in range(3):
            st, _, out = b.api("POST", "/api/v1/apps/r/bundles",
                               raw=targz([("app.R", APP_R + b"#%d" % i)]),
                               token=pub)
            self.assertEqual(st, 202, out)
            self.assertEqual(sorted(out), ["bundle_id", "task_id"])
            ids.append(out["bundle_id"])
        st, _, lst = b.api("GET", "/api/v1/apps/r/bundles", token=pub)
        self.assertEqual([x["id"] for x in lst["bundles"]],
                         [ids[2], ids[1]])
        d = os.path.join(b.dir, "bundles", app["id"])
        gone = False
        for _ in range(100):
            left = os.listdir(d)
            if ids[0] not in left and ids[0] + ".tar.gz" not in left:
                gone = True
                break
            time.sleep(0.02)
        self.assertTrue(gone, left)
        self.assertIn(ids[1], os.listdir(d))
        self.assertIn(ids[2], os.listdir(d))
