"""Capacity: max_sessions_per_worker and max_workers_per_app (app fields)
and [proxy] max_workers.  A session holds a slot of its worker from its
first request; when no worker has a free slot and no other may start,
503 "app at capacity" (per app) or "server at capacity" (global)."""

import threading

from test_proxy_e2e import ProxyCase, HELLO, UUID_RE, wait_until
from wsclient import HandshakeError

PARALLEL = 50


class PerApp(ProxyCase):

    proxy = {"health_interval": '"1s"', "worker_start_timeout": '"60s"'}

    def test_fifty_first_requests_two_workers(self):
        self.deploy("hello", HELLO, {"max_workers_per_app": 2})
        barrier = threading.Barrier(PARALLEL)
        results = [None] * PARALLEL

        def one(i):
            try:
                barrier.wait(30)
                # no cookie, no text/html: each asks for a session and
                # waits for a worker if it gets one
                results[i] = self.get("/app/hello/", {"Accept": "*/*"},
                                      timeout=120)
            except Exception as e:  # noqa: the thread reports, not raises
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        errors = [r for r in results if isinstance(r, Exception) or
                  r is None]
        self.assertEqual(errors, [])
        ok = [r for r in results if r.status == 200]
        refused = [r for r in results if r.status != 200]
        for r in refused:
            self.assertPlain(r, 503, "app at capacity")
            self.assertEqual(r.route_cookie(), (None, {}))
        self.assertGreaterEqual(len(ok), 1)
        self.assertLessEqual(len(ok), 2)
        cookies = set(r.route_cookie()[0] for r in ok)
        self.assertEqual(len(cookies), len(ok))
        for c in cookies:
            self.assertRegex(c or "", UUID_RE)
        # at most two workers were ever started, ended ones included
        started = self.workers("hello", live=False)
        self.assertLessEqual(len(started), 2, started)
        self.assertGreaterEqual(len(started), 1)
        self.assertEqual(len(self.workers("hello")), len(ok))
        # and the sessions that got in keep working
        for c in cookies:
            r = self.get("/app/hello/", {"Accept": "*/*"}, cookie=c)
            self.assertEqual(r.status, 200, r)
        # a newcomer still finds no room
        self.assertPlain(self.get("/app/hello/", {"Accept": "*/*"}), 503,
                         "app at capacity")
        self.assertPlain(self.get("/app/hello/",
                                  {"Accept": "text/html"}), 503,
                         "app at capacity")

    def test_one_websocket_per_slot(self):
        self.deploy("hello", HELLO, {"max_workers_per_app": 1})
        c = self.client("hello")
        c.load()
        c.connect({"n": 100}, outputs=["summary"])
        # the worker's only slot is taken: a second WebSocket, even with
        # the same cookie, and a second visitor are refused
        with self.assertRaises(HandshakeError) as cm:
            self.ws("hello", c.cookie)
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(cm.exception.body.strip(), b"app at capacity")
        self.assertPlain(self.get("/app/hello/", {"Accept": "*/*"}), 503,
                         "app at capacity")
        with self.assertRaises(HandshakeError) as cm:
            self.ws("hello")
        self.assertEqual(cm.exception.status, 503)
        # the first session is unharmed
        c.update({"n": 300}, wait=["summary"])
        self.assertRegex(c.values["summary"], r"^n = 300, mean")
        c.close()

    def test_sessions_per_worker(self):
        """max_sessions_per_worker = 3: three sessions share one worker,
        the fourth needs a second one."""
        self.deploy("hello", HELLO, {"max_sessions_per_worker": 3,
                                     "max_workers_per_app": 2})
        clients = []
        for i in range(3):
            c = self.client("hello")
            c.load()
            c.connect({"n": 10 + i}, outputs=["summary"])
            clients.append(c)
        ws = self.workers("hello")
        self.assertEqual(len(ws), 1, ws)
        self.assertEqual(sorted(s["id"] for s in ws[0]["sessions"]),
                         sorted(c.cookie for c in clients))
        d = self.client("hello")
        d.load()
        d.connect({"n": 99}, outputs=["summary"])
        self.assertEqual(len(self.workers("hello")), 2)
        self.assertNotEqual(self.worker_of("hello", d.cookie),
                            ws[0]["id"])
        for c in clients + [d]:
            c.close()


class Global(ProxyCase):

    proxy = {"max_workers": "1", "health_interval": '"1s"'}

    def test_server_at_capacity(self):
        self.deploy("one", HELLO)
        self.deploy("two", HELLO)
        r = self.get("/app/one/", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
        sid = r.route_cookie()[0]
        self.assertRegex(sid or "", UUID_RE)
        # the one worker the server may run is taken
        self.assertPlain(self.get("/app/two/", {"Accept": "*/*"}), 503,
                         "server at capacity")
        # another session of the same app would need a second worker
        self.assertPlain(self.get("/app/one/", {"Accept": "*/*"}), 503,
                         "server at capacity")
        self.assertEqual(self.workers("two"), [])
        self.assertEqual(len(self.workers("one")), 1)
        # the session that has the worker keeps it
        r = self.get("/app/one/", {"Accept": "*/*"}, cookie=sid)
        self.assertEqual(r.status, 200, r)

        # the worker goes: the slot comes back
        wid = self.workers("one")[0]["id"]
        self.byd.byctl("worker", "stop", wid)
        wait_until(lambda: self.workers("one") == [], 30, 1,
                   "worker gone")
        r = self.get("/app/two/", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
