"""Workers' lives behind the proxy: idle workers are stopped after
proxy.idle_worker_timeout (busy ones are not); a worker whose R process
is killed is evicted by the health check and its sessions end as
`crashed`; a new bundle drains the old workers while their sessions go
on; disabling an app drains it; pre_warmed_sessions keeps a worker ready
ahead of demand."""

import os
import signal
import time

from harness import alive, proc_exe
from test_proxy_e2e import ProxyCase, HELLO, COUNTER, wait_until
from wsclient import Closed

COUNTER_INPUTS = {"inc:shiny.number": 0, "go:shiny.action": 0}


def pids_of_uid(uid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[2]) == uid:
                            out.append(int(d))
                        break
        except OSError:
            pass
    return out


def r_pid(uid):
    """The worker's R process: the one running as its uid whose
    executable is R (bwrap's processes run as the uid too)."""
    for p in pids_of_uid(uid):
        try:
            if proc_exe(p) == "R":
                return p
        except OSError:
            pass
    return None


class IdleReap(ProxyCase):

    IDLE = 3
    proxy = {"idle_worker_timeout": '"%ds"' % IDLE,
             "health_interval": '"1s"'}

    def test_idle_worker_stopped_busy_kept(self):
        self.deploy("hello", HELLO)
        c = self.client("hello")
        c.load()
        c.connect({"n": 100}, outputs=["summary"])
        [w] = self.workers("hello")
        # an open WebSocket keeps it, well past the idle timeout
        time.sleep(self.IDLE * 2 + 2)
        self.assertEqual([x["id"] for x in self.workers("hello")],
                         [w["id"]])
        c.update({"n": 200}, wait=["summary"])
        self.assertRegex(c.values["summary"], r"^n = 200, mean")
        # no WebSocket, no requests: stopped, its processes gone
        c.close()
        wait_until(lambda: self.workers("hello") == [], 60, 1,
                   "idle worker stopped")
        wait_until(lambda: pids_of_uid(w["uid"]) == [], 20, 0.2,
                   "worker processes gone")
        wait_until(lambda: self.session("hello", c.cookie)["status"] ==
                   "ended", 20, 0.5, "session ended")
        # the next visitor starts a new one
        d = self.client("hello")
        d.load()
        d.connect({"n": 300}, outputs=["summary"])
        [w2] = self.workers("hello")
        self.assertNotEqual(w2["id"], w["id"])
        d.close()


class Crash(ProxyCase):

    proxy = {"health_interval": '"1s"', "worker_start_timeout": '"20s"'}

    def test_killed_worker_evicted_sessions_crashed(self):
        self.deploy("hello", HELLO)
        c = self.client("hello")
        c.load()
        c.connect({"n": 100}, outputs=["summary"])
        [w] = self.workers("hello")
        self.assertEqual(self.session("hello", c.cookie)["status"],
                         "active")
        pid = r_pid(w["uid"])
        self.assertIsNotNone(pid, pids_of_uid(w["uid"]))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 10, 0.1, "R gone")

        wait_until(lambda: self.workers("hello") == [], 60, 1,
                   "dead worker evicted")
        wait_until(lambda: self.session("hello", c.cookie)["status"] ==
                   "crashed", 30, 0.5, "session crashed")
        self.assertIsNotNone(self.session("hello", c.cookie).get(
            "ended_at"))
        # the browser's WebSocket ends too
        with self.assertRaises(Closed):
            for _ in range(100):
                c.receive(timeout=30)
        # the app is not broken: a new session gets a new worker
        d = self.client("hello")
        d.load()
        d.connect({"n": 300}, outputs=["summary"])
        [w2] = self.workers("hello")
        self.assertNotEqual(w2["id"], w["id"])
        self.assertEqual(self.session("hello", d.cookie)["status"],
                         "active")
        d.close()


class BundleSwitch(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def test_new_bundle_drains_old_workers(self):
        app = self.deploy("counter", COUNTER)
        old_bundle = app["active_bundle"]
        a = self.client("counter")
        a.load()
        self.assertIn(b"<h2>counter</h2>", a.html)
        a.connect(COUNTER_INPUTS, outputs=["count"])
        a.update({"inc:shiny.number": 1}, wait=["count"])
        self.assertEqual(a.values["count"], "1")
        [old] = self.workers("counter")
        self.assertEqual(old["bundle_id"], old_bundle)

        new_bundle = self.upload("counter", COUNTER, {
            "app.R": lambda s: s.replace(b'titlePanel("counter")',
                                         b'titlePanel("counter v2")')})
        self.assertNotEqual(new_bundle, old_bundle)

        # the open session goes on, on the old worker, old bundle
        a.update({"inc:shiny.number": 2}, wait=["count"])
        self.assertEqual(a.values["count"], "2")
        st, _, _, body = a.http("GET", a.path, {"Accept": "*/*"})
        self.assertEqual(st, 200)
        self.assertIn(b"<h2>counter</h2>", body)

        # a new visitor gets the new bundle, on a new worker
        b = self.client("counter")
        b.load()
        self.assertIn(b"<h2>counter v2</h2>", b.html)
        b.connect(COUNTER_INPUTS, outputs=["count"])
        ws = dict((w["id"], w) for w in self.workers("counter"))
        self.assertEqual(len(ws), 2, ws)
        self.assertEqual(ws[old["id"]]["status"], "draining")
        self.assertEqual(self.worker_of("counter", a.cookie), old["id"])
        nw = self.worker_of("counter", b.cookie)
        self.assertNotEqual(nw, old["id"])
        self.assertEqual(ws[nw]["bundle_id"], new_bundle)
        self.assertEqual(ws[nw]["status"], "active")

        # the old session leaves: the drained worker goes
        a.close()
        wait_until(lambda: old["id"] not in
                   [w["id"] for w in self.workers("counter")], 60, 1,
                   "old worker gone")
        self.assertEqual([w["id"] for w in self.workers("counter")], [nw])
        b.update({"inc:shiny.number": 1}, wait=["count"])
        self.assertEqual(b.values["count"], "1")
        b.close()


class Disable(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def test_disable_drains(self):
        self.deploy("hello", HELLO)
        c = self.client("hello")
        c.load()
        c.connect({"n": 100}, outputs=["summary"])
        [w] = self.workers("hello")
        st, _, app = self.api("POST", "/api/v1/apps/hello/disable")
        self.assertEqual(st, 200, app)
        self.assertFalse(app["enabled"])
        # nobody new gets in, the old cookie neither
        self.assertPlain(self.get("/app/hello/", {"Accept": "*/*"}), 503,
                         "app is disabled")
        self.assertPlain(self.get("/app/hello/", {"Accept": "*/*"},
                                  cookie=c.cookie), 503, "app is disabled")
        # the worker drains and goes once its WebSocket has
        c.close()
        wait_until(lambda: self.workers("hello") == [], 60, 1,
                   "workers drained")
        wait_until(lambda: pids_of_uid(w["uid"]) == [], 20, 0.2,
                   "worker processes gone")
        self.assertEqual(self.session("hello", c.cookie)["status"], "ended")
        self.assertEqual(self.runtime("hello")["active_sessions"], 0)


class PreWarm(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def test_pre_warmed_worker_waits(self):
        self.deploy("hello", HELLO)
        self.assertEqual(self.workers("hello"), [])
        st, _, app = self.api("PATCH", "/api/v1/apps/hello",
                              {"pre_warmed_sessions": 1})
        self.assertEqual(st, 200, app)
        # a worker starts with no visitor at all
        [w] = wait_until(lambda: self.workers("hello"), 90, 1,
                         "pre-warmed worker")
        self.wait_ready("hello")
        self.assertEqual(w["sessions"], [])
        # the first visitor gets it straight away: no loading page
        c = self.client("hello")
        c.load()
        self.assertEqual(c.loading_pages, 0)
        self.assertEqual(self.worker_of("hello", c.cookie), w["id"])
        c.connect({"n": 100}, outputs=["summary"])
        # and the pool is refilled behind it
        wait_until(lambda: len(self.workers("hello")) == 2, 60, 1,
                   "pool refilled")
        fresh = [x for x in self.workers("hello") if x["id"] != w["id"]]
        self.assertEqual(fresh[0]["sessions"], [])
        c.close()
