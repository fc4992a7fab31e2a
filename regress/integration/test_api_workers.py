"""Workers through the API: start one for the active bundle, see it in the
runtime and in byctl, reach it on its port, stop it."""

import http.client
import json
import os
import time

from harness import BydTestCase
from test_api_bundles import targz

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "fixtures")


def fixture_bundle(name):
    d = os.path.join(FIXTURES, name)
    files = []
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            files.append((f, fh.read()))
    return targz(files)


def get_page(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        except OSError:
            time.sleep(0.1)
    return None, b""


class Workers(BydTestCase):

    def test_start_runtime_stop(self):
        b = self.byd
        pub = b.token("pat", "publisher")
        viewer = b.token("vic", "viewer")
        b.api("POST", "/api/v1/apps", {"name": "hello"}, token=pub)

        # no bundle yet
        st, _, out = b.api("POST", "/api/v1/apps/hello/start", token=pub)
        self.assertEqual(st, 409, out)
        self.assertEqual(out["message"], "app has no active bundle")

        st, _, out = b.api("POST", "/api/v1/apps/hello/bundles",
                           raw=fixture_bundle("hello"), token=pub)
        self.assertEqual(st, 202, out)

        # only collaborators or better; others do not see the app
        st, _, _ = b.api("POST", "/api/v1/apps/hello/start", token=viewer)
        self.assertEqual(st, 404)
        st, _, _ = b.api("GET", "/api/v1/apps/hello/runtime", token=viewer)
        self.assertEqual(st, 404)

        st, _, w = b.api("POST", "/api/v1/apps/hello/start", token=pub)
        self.assertEqual(st, 200, w)
        self.assertEqual(sorted(w), ["port", "status", "worker_id"])
        port = w["port"]
        self.assertTrue(10000 <= port <= 10999)

        # the R worker answers on its port from the host
        status, body = get_page(port)
        self.assertEqual(status, 200, b.logtext()[-3000:])
        self.assertIn(b"<html", body.lower())

        st, _, rt = b.api("GET", "/api/v1/apps/hello/runtime", token=pub)
        self.assertEqual(st, 200)
        ids = [x["id"] for x in rt["workers"]]
        self.assertEqual(ids, [w["worker_id"]])
        self.assertGreaterEqual(rt["workers"][0]["uid"], 60000)
        rw = rt["workers"][0]
        self.assertEqual(rw["status"], "active")
        self.assertEqual(rw["sessions"], [])
        self.assertGreater(rw["stats"]["memory_usage_bytes"], 0)
        self.assertEqual(rt["active_sessions"], 0)

        out = b.byctl("show", "workers").stdout
        self.assertIn(w["worker_id"], out)
        js = json.loads(b.byctl("--json", "show", "workers").stdout)
        self.assertEqual([x["id"] for x in js], [w["worker_id"]])

        # logs: the ring so far, then (following) until the worker exits
        base = "/api/v1/apps/hello/logs"
        st, _, out = b.api("GET", base, token=pub)
        self.assertEqual((st, out["message"]),
                         (400, "worker_id query parameter is required"))
        st, _, out = b.api("GET", base + "?worker_id=nope", token=pub)
        self.assertEqual((st, out["message"]),
                         (404, "worker not found for app"))
        st, _, _ = b.api("GET", base + "?worker_id=" + w["worker_id"],
                         token=viewer)
        self.assertEqual(st, 404)
        deadline = time.time() + 20
        text = ""
        while time.time() < deadline and "hello from stderr" not in text:
            st, hdr, text = b.request(
                "GET", base + "?stream=false&worker_id=" + w["worker_id"],
                headers={"Authorization": "Bearer " + pub})
            text = text.decode()
            time.sleep(0.1)
        self.assertEqual(st, 200)
        self.assertTrue(hdr["content-type"].startswith("text/plain"))
        self.assertIn("hello from stdout\n", text)
        self.assertIn("hello from stderr\n", text)
        follow = http.client.HTTPConnection("127.0.0.1", b.port, timeout=30)
        follow.request("GET", base + "?worker_id=" + w["worker_id"],
                       headers={"Authorization": "Bearer " + pub})
        fr = follow.getresponse()
        self.assertEqual(fr.status, 200)
        # a follower that leaves early costs nothing and breaks nothing
        gone = http.client.HTTPConnection("127.0.0.1", b.port, timeout=30)
        gone.request("GET", base + "?worker_id=" + w["worker_id"],
                     headers={"Authorization": "Bearer " + pub})
        self.assertEqual(gone.getresponse().status, 200)
        gone.close()
        self.assertEqual(b.request("GET", "/healthz")[0], 200)
        self.assertEqual(fr.getheader("Transfer-Encoding"), "chunked")

        b.byctl("worker", "stop", w["worker_id"])
        # the followed stream ends when the worker does
        body = fr.read().decode()
        follow.close()
        self.assertIn("hello from stdout", body)
        deadline = time.time() + 20
        state = None
        while time.time() < deadline:
            st, _, rt = b.api("GET", "/api/v1/apps/hello/runtime", token=pub)
            state = rt["workers"][0]["state"] if rt["workers"] else "gone"
            if state in ("exited", "gone"):
                if rt["workers"]:
                    self.assertEqual(rt["workers"][0]["status"], "ended")
                break
            time.sleep(0.1)
        self.assertIn(state, ("exited", "gone"))
        r = b.byctl("worker", "stop", "nope", check=False)
        self.assertNotEqual(r.returncode, 0)

        # disabled apps start nothing
        b.api("POST", "/api/v1/apps/hello/disable", token=pub)
        st, _, out = b.api("POST", "/api/v1/apps/hello/start", token=pub)
        self.assertEqual(st, 503)
        self.assertEqual(out["message"], "app is disabled")


def worker_uid_pids(lo=60000, hi=60999):
    """Processes running as a worker uid, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if lo <= int(line.split()[2]) <= hi:
                            out.append(int(d))
                        break
        except OSError:
            pass
    return out


class Restart(BydTestCase):

    def test_killed_byd_leaves_no_worker_behind(self):
        import signal
        b = self.byd
        pub = b.token("pat", "publisher")
        b.api("POST", "/api/v1/apps", {"name": "hello"}, token=pub)
        st, _, out = b.api("POST", "/api/v1/apps/hello/bundles",
                           raw=fixture_bundle("hello"), token=pub)
        self.assertEqual(st, 202, out)
        st, _, w = b.api("POST", "/api/v1/apps/hello/start", token=pub)
        self.assertEqual(st, 200, w)
        self.assertEqual(get_page(w["port"])[0], 200)
        self.assertTrue(worker_uid_pids())

        # byd dies without a word: its helpers and their workers follow
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        b.logf.close()
        deadline = time.time() + 15
        while time.time() < deadline and worker_uid_pids():
            time.sleep(0.1)
        self.assertEqual(worker_uid_pids(), [])

        # a new byd on the same files starts clean and can start again
        b.start()
        st, _, rt = b.api("GET", "/api/v1/apps/hello/runtime", token=pub)
        self.assertEqual((st, rt["workers"]), (200, []))
        st, _, w2 = b.api("POST", "/api/v1/apps/hello/start", token=pub)
        self.assertEqual(st, 200, w2)
        self.assertEqual(get_page(w2["port"])[0], 200)
