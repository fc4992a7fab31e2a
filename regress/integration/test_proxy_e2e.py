"""The app proxy end to end: routing and its plain-text errors, the
cold-start loading page and its ready endpoint, a Shiny session over the
proxied WebSocket (init, outputs, an input change), one worker per
session, header hygiene, and the WebSocket origin check.

Also the helpers the other test_proxy_* suites share (ProxyCase)."""

import html
import http.client
import json
import os
import re
import time

from harness import BydTestCase
from test_api_bundles import targz
from shinyclient import ShinyClient, parse_set_cookie, is_shiny_page, \
    plot_png
from wsclient import WebSocket, HandshakeError

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(TOP, "regress", "fixtures")
HELLO = os.path.join(TOP, "examples", "hello")      # slider and plot
COUNTER = os.path.join(FIXTURES, "counter")
HEADERS = os.path.join(FIXTURES, "headers")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{4}-[0-9a-f]{12}$")
HTML_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"


def dir_bundle(d, replace=None):
    """A .tar.gz of the files of directory d; replace maps a file name
    to a function of its bytes (to make a second version)."""
    files = []
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            data = fh.read()
        if replace and f in replace:
            data = replace[f](data)
        files.append((f, data))
    return targz(files)


def wait_until(fn, timeout=60, interval=0.25, what="condition"):
    """Call fn until it returns something true; that value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" %
                         (what, last))


class Resp:
    """One HTTP answer: status, headers (lower-case names; the last of a
    repeated name), every Set-Cookie, body."""

    def __init__(self, status, headers, cookies, body):
        self.status = status
        self.headers = headers
        self.cookies = cookies
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def route_cookie(self):
        return parse_set_cookie(self.cookies)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:200])


class ProxyCase(BydTestCase):
    """A fresh byd per test with [proxy] settings from the class's
    `proxy` dict (TOML values as text) and [server] additions from
    `server`; apps deployed through the API by a publisher."""

    proxy = {}
    server = {}

    def setUp(self):
        from harness import Byd
        extra = ""
        if self.proxy:
            extra = "\n[proxy]\n" + "".join(
                "%s = %s\n" % kv for kv in sorted(self.proxy.items()))
        self.byd = Byd(extra, self.management)
        if self.server:
            text = self.byd.config_text(extra).replace(
                "[server]\n", "[server]\n" + "".join(
                    "%s = %s\n" % kv for kv in sorted(self.server.items())),
                1)
            self.byd.write_config(text=text)
        # cleaned up even when the rest of setUp fails (tearDown would
        # not run then); cleanup twice is harmless
        self.addCleanup(self.byd.cleanup)
        self.byd.start()
        try:
            self.pub = self.byd.token("pat", "publisher")
            self.prepare()
        except BaseException:
            print("\n--- byd log ---\n" + self.byd.logtext()[-6000:])
            raise

    def prepare(self):
        """More set-up for a class's tests (after byd started)."""

    # -- API -------------------------------------------------------------

    def api(self, method, path, body=None, raw=None, headers=None):
        """byd.api as the publisher; waits out the API rate limit (120
        a minute per client) instead of failing on it."""
        for _ in range(5):
            st, hdr, out = self.byd.api(method, path, body, token=self.pub,
                                        raw=raw, headers=headers)
            if st != 429:
                return st, hdr, out
            time.sleep(min(61, int(hdr.get("retry-after", "5")) + 1))
        return st, hdr, out

    def deploy(self, name, src=HELLO, fields=None, replace=None):
        """Create app name, PATCH fields, upload src as its bundle and
        wait for the task; the app object."""
        st, _, app = self.api("POST", "/api/v1/apps", {"name": name})
        self.assertEqual(st, 201, app)
        if fields:
            st, _, app = self.api("PATCH", "/api/v1/apps/" + name, fields)
            self.assertEqual(st, 200, app)
        self.upload(name, src, replace)
        st, _, app = self.api("GET", "/api/v1/apps/" + name)
        self.assertEqual(st, 200, app)
        self.assertIsNotNone(app["active_bundle"])
        return app

    def upload(self, name, src, replace=None):
        st, _, out = self.api("POST", "/api/v1/apps/%s/bundles" % name,
                              raw=dir_bundle(src, replace),
                              headers={"Content-Type": "application/gzip"})
        self.assertEqual(st, 202, out)

        def done():
            st, _, t = self.api("GET", "/api/v1/tasks/" + out["task_id"])
            self.assertEqual(st, 200, t)
            self.assertNotEqual(t["status"], "failed", t)
            return t["status"] == "completed"
        wait_until(done, 60, 0.2, "bundle task")
        return out["bundle_id"]

    def runtime(self, app):
        st, _, rt = self.api("GET", "/api/v1/apps/%s/runtime" % app)
        self.assertEqual(st, 200, rt)
        return rt

    def workers(self, app, live=True):
        """The app's worker records; live: only those not ended."""
        ws = self.runtime(app)["workers"]
        if live:
            ws = [w for w in ws if w.get("status") != "ended" and
                  w.get("state") != "exited"]
        return ws

    def sessions(self, app):
        st, _, out = self.api("GET", "/api/v1/apps/%s/sessions" % app)
        self.assertEqual(st, 200, out)
        return out["sessions"]

    def session(self, app, sid):
        for s in self.sessions(app):
            if s["id"] == sid:
                return s
        return None

    def worker_of(self, app, sid):
        """The id of the worker whose runtime record lists session sid."""
        for w in self.workers(app):
            if sid in [s.get("id") for s in w.get("sessions") or []]:
                return w["id"]
        return None

    def worker_log(self, app, wid):
        st, _, text = self.byd.request(
            "GET", "/api/v1/apps/%s/logs?stream=false&worker_id=%s" %
            (app, wid), headers={"Authorization": "Bearer " + self.pub})
        return text.decode("utf-8", "replace") if st == 200 else ""

    def all_worker_logs(self, app):
        return "\n".join(self.worker_log(app, w["id"])
                         for w in self.workers(app, live=False))

    # -- the proxy -------------------------------------------------------

    def get(self, path, headers=None, cookie=None, method="GET", body=None,
            timeout=90):
        """A request on the main listener: a Resp."""
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = "blockyard_route=" + cookie
        c = http.client.HTTPConnection("127.0.0.1", self.byd.port,
                                       timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, dict((k.lower(), v) for k, v in
                                       r.getheaders()),
                        [v for k, v in r.getheaders()
                         if k.lower() == "set-cookie"], data)
        finally:
            c.close()

    def assertPlain(self, r, status, text):
        """A plain-text error answer."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.text.strip(), text, r)
        self.assertTrue(r.headers.get("content-type", "").startswith(
            "text/plain"), r.headers)

    def client(self, app, **kw):
        c = ShinyClient("127.0.0.1", self.byd.port, "/app/%s/" % app, **kw)
        self.addCleanup(c.abort)        # whatever happens to the test
        return c

    def ready(self, app):
        r = self.get("/app/%s/__blockyard/ready" % app,
                     {"Accept": "application/json"})
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)["ready"]

    def wait_ready(self, app, timeout=90):
        wait_until(lambda: self.ready(app), timeout, 0.25, "app ready")

    def origin(self):
        return "http://127.0.0.1:%d" % self.byd.port

    def ws(self, app, cookie=None, origin=True, extra=None):
        """A WebSocket to the app's Shiny endpoint (HandshakeError when
        refused)."""
        h = dict(extra or {})
        if cookie:
            h["Cookie"] = "blockyard_route=" + cookie
        if origin is True:
            h["Origin"] = self.origin()
        elif origin:
            h["Origin"] = origin
        return WebSocket("127.0.0.1", self.byd.port,
                         "/app/%s/websocket/" % app, headers=h, timeout=60)


class Routing(ProxyCase):

    def test_routing_and_errors(self):
        st, _, app = self.api("POST", "/api/v1/apps", {"name": "hello"})
        self.assertEqual(st, 201)

        # /app/<name> without the slash: 301 to the slash
        r = self.get("/app/hello")
        self.assertEqual(r.status, 301, r)
        self.assertEqual(r.headers["location"], "/app/hello/")
        r = self.get("/app/hello?x=1", method="GET")
        self.assertEqual(r.status, 301, r)
        self.assertTrue(r.headers["location"].startswith("/app/hello/"))

        # unknown apps, every method
        for m in ("GET", "POST", "PUT", "DELETE"):
            self.assertPlain(self.get("/app/nope/", method=m, body=b""),
                             404, "app not found")
        self.assertPlain(self.get("/app/nope/deep/path?x=1"), 404,
                         "app not found")

        # known but nothing to run, by name and by id; no cookie handed out
        for ref in ("hello", app["id"]):
            r = self.get("/app/%s/" % ref)
            self.assertPlain(r, 503, "app has no active bundle")
            self.assertEqual(r.route_cookie(), (None, {}))
        self.assertPlain(self.get("/app/hello/", {"Accept": HTML_ACCEPT}),
                         503, "app has no active bundle")

        self.upload("hello", HELLO)
        st, _, _ = self.api("POST", "/api/v1/apps/hello/disable")
        self.assertEqual(st, 200)
        for path in ("/app/hello/", "/app/hello/x?y=1",
                     "/app/%s/" % app["id"]):
            self.assertPlain(self.get(path), 503, "app is disabled")
        self.assertPlain(self.get("/app/hello/", {"Accept": HTML_ACCEPT}),
                         503, "app is disabled")
        self.assertPlain(self.get("/app/hello/__blockyard/ready"), 503,
                         "app is disabled")
        self.assertEqual(self.workers("hello"), [])

        # enabled again, a request without text/html waits for the
        # worker and gets the app's page with a session cookie
        st, _, _ = self.api("POST", "/api/v1/apps/hello/enable")
        self.assertEqual(st, 200)
        r = self.get("/app/hello/", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(is_shiny_page(r.body), r)
        sid, attrs = r.route_cookie()
        self.assertRegex(sid or "", UUID_RE)
        self.assertEqual(attrs.get("path"), "/app/hello/")
        self.assertIs(attrs.get("httponly"), True)
        self.assertEqual(str(attrs.get("samesite")).lower(), "lax")
        self.assertNotIn("max-age", attrs)      # session_idle_ttl = 0
        self.assertNotIn("secure", attrs)       # no https external_url
        # the same session: no new cookie, same worker
        r2 = self.get("/app/hello/", {"Accept": HTML_ACCEPT}, cookie=sid)
        self.assertEqual(r2.status, 200, r2)
        self.assertTrue(is_shiny_page(r2.body))
        self.assertIn(r2.route_cookie()[0], (None, sid))
        # a static asset through the same session
        m = re.search(rb'src="(shiny-javascript-[^"]+/shiny\.min\.js)"',
                      r.body)
        self.assertIsNotNone(m, r.body[:800])
        r3 = self.get("/app/hello/" + m.group(1).decode(), cookie=sid)
        self.assertEqual(r3.status, 200, r3)
        self.assertIn(b"Shiny", r3.body)
        # a stale cookie is a new session (on a second worker: one
        # session per worker by default)
        stale = "00000000-0000-4000-8000-000000000000"
        r4 = self.get("/app/hello/", {"Accept": "*/*"}, cookie=stale)
        self.assertEqual(r4.status, 200, r4)
        self.assertRegex(r4.route_cookie()[0] or "", UUID_RE)
        self.assertNotIn(r4.route_cookie()[0], (stale, sid))
        self.assertEqual(len(self.workers("hello")), 2)

    def test_alias_redirect(self):
        self.deploy("first", HELLO)
        st, _, app = self.api("PATCH", "/api/v1/apps/first",
                              {"name": "second"})
        self.assertEqual(st, 200, app)
        # "first" ages into its redirect phase
        self.byd.sql("UPDATE app_aliases SET phase = 'redirect' "
                     "WHERE name = 'first'")
        st, _, app = self.api("PATCH", "/api/v1/apps/second",
                              {"name": "third"})
        self.assertEqual(st, 200, app)
        # "second" is a plain alias: it resolves (a cold start here)
        r = self.get("/app/second/", {"Accept": HTML_ACCEPT})
        self.assertEqual(r.status, 200, r)
        # "first" redirects to the app's name now, with the rest
        r = self.get("/app/first/some/where?x=1")
        self.assertEqual(r.status, 301, r)
        self.assertTrue(r.headers["location"].startswith(
            "/app/third/some/where"), r.headers)
        self.assertPlain(self.get("/app/fourth/"), 404, "app not found")


class ColdStart(ProxyCase):

    proxy = {"session_idle_ttl": '"1h"', "health_interval": '"1s"'}

    def test_loading_page_then_app(self):
        self.deploy("hello", HELLO)
        # nothing runs yet (asking may start one)
        r = self.get("/app/hello/__blockyard/ready")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body), {"ready": False})
        self.assertIn("no-store", r.headers.get("cache-control", ""))

        # a browser's first visit: the loading page, no cookie; it polls
        # the ready endpoint; a worker starts behind it
        r = self.get("/app/hello/", {"Accept": HTML_ACCEPT})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertIn("no-store", r.headers.get("cache-control", ""))
        self.assertEqual(r.route_cookie(), (None, {}))
        self.assertFalse(is_shiny_page(r.body), r.body[:500])
        self.assertIn(b"__blockyard", r.body)   # it polls .../ready
        self.wait_ready("hello")
        self.assertEqual(len(self.workers("hello")), 1)
        # other __blockyard paths are not the app's
        r = self.get("/app/hello/__blockyard/nope")
        self.assertEqual(r.status, 404, r)

        # the reload: the app's page and a session cookie with Max-Age
        r = self.get("/app/hello/", {"Accept": HTML_ACCEPT})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(is_shiny_page(r.body), r.body[:300])
        sid, attrs = r.route_cookie()
        self.assertRegex(sid or "", UUID_RE)
        self.assertEqual(attrs.get("path"), "/app/hello/")
        self.assertEqual(attrs.get("max-age"), "3600")
        self.assertEqual(len(self.workers("hello")), 1)
        self.assertEqual(self.worker_of("hello", sid),
                         self.workers("hello")[0]["id"])
        s = self.session("hello", sid)
        self.assertIsNotNone(s)
        self.assertEqual(s["status"], "active")


class Shiny(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def test_shiny_through_the_proxy(self):
        self.deploy("hello", HELLO)
        c1 = self.client("hello")
        c1.load()
        self.assertEqual(c1.loading_pages, 1)   # first visit: cold start
        self.assertRegex(c1.cookie or "", UUID_RE)
        self.assertEqual(c1.outputs, {"hist": "plot", "summary": "text"})
        # shiny.js's path: the page's path + "websocket/"
        self.assertEqual(c1.ws_path(), "/app/hello/websocket/")
        c1.connect({"n": 200}, outputs=["summary", "hist"])
        self.assertRegex(c1.values["summary"], r"^n = 200, mean = -?\d")
        png1 = plot_png(c1.values["hist"])
        self.assertTrue(png1.startswith(b"\x89PNG\r\n\x1a\n"))
        c1.update({"n": 500}, wait=["summary", "hist"])
        self.assertRegex(c1.values["summary"], r"^n = 500, mean = -?\d")
        self.assertNotEqual(plot_png(c1.values["hist"]), png1)

        # a second visitor: another session, on a second worker running
        # as another uid (max_sessions_per_worker is 1)
        c2 = self.client("hello")
        c2.load()
        self.assertNotEqual(c2.cookie, c1.cookie)
        c2.connect({"n": 50}, outputs=["summary"])
        self.assertRegex(c2.values["summary"], r"^n = 50, mean")
        ws = self.workers("hello")
        self.assertEqual(len(ws), 2, ws)
        self.assertNotEqual(ws[0]["uid"], ws[1]["uid"])
        for w in ws:
            self.assertGreaterEqual(w["uid"], 60000)
            # byspawn saw the app answer HTTP (byctl shows the same)
            self.assertEqual(w["state"], "running", w)
        w1 = self.worker_of("hello", c1.cookie)
        w2 = self.worker_of("hello", c2.cookie)
        self.assertIsNotNone(w1)
        self.assertIsNotNone(w2)
        self.assertNotEqual(w1, w2)
        # both sessions still answer
        c1.update({"n": 20}, wait=["summary"])
        self.assertRegex(c1.values["summary"], r"^n = 20, mean")
        c2.update({"n": 30}, wait=["summary"])
        self.assertRegex(c2.values["summary"], r"^n = 30, mean")
        for s in (c1.cookie, c2.cookie):
            self.assertEqual(self.session("hello", s)["status"], "active")
        rt = self.runtime("hello")
        self.assertEqual(rt["active_sessions"], 2)
        c1.close()
        c2.close()


class Headers(ProxyCase):

    def spoofed(self):
        return {
            "X-Shiny-User": "mallory",
            "X_Shiny_Groups": "admins",
            "x-shiny-access": "owner",
            "X-BLOCKYARD-SESSION-TOKEN": "stolen",
            "X_Blockyard_Vault_Token": "stolen",
            "X-Blockyard-Pg-Role": "postgres",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X_Forwarded_Proto": "https",
            "X-Real-IP": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
        }

    def check(self, seen):
        bad = dict((k, v) for k, v in seen.items()
                   if k.startswith("HTTP_X_BLOCKYARD") or
                   (k.startswith("HTTP_X_SHINY") and
                    k != "HTTP_X_SHINY_ACCESS") or
                   k in ("HTTP_X_REAL_IP", "HTTP_FORWARDED"))
        self.assertEqual(bad, {}, seen)
        self.assertEqual(seen.get("HTTP_X_SHINY_ACCESS"), "anonymous", seen)
        self.assertNotIn("6.6.6.6", seen.get("HTTP_X_FORWARDED_FOR", ""))
        self.assertEqual(seen.get("HTTP_X_FORWARDED_FOR"), "127.0.0.1",
                         seen)
        self.assertEqual(seen.get("HTTP_X_FORWARDED_HOST"),
                         "127.0.0.1:%d" % self.byd.port, seen)
        self.assertEqual(seen.get("HTTP_X_FORWARDED_PROTO"), "http", seen)

    def test_forwarding_and_header_hygiene(self):
        self.deploy("headers", HEADERS, {"max_sessions_per_worker": 5})
        r = self.get("/app/headers/some/where?q=1&r=two",
                     dict(self.spoofed(), Accept="*/*"))
        self.assertEqual(r.status, 200, r)
        sid = r.route_cookie()[0]
        self.assertRegex(sid or "", UUID_RE)
        seen = json.loads(r.body)
        # /app/<name> stripped, the query kept
        self.assertEqual(seen["PATH_INFO"], "/some/where")
        self.assertEqual(seen["QUERY_STRING"], "?q=1&r=two")
        self.assertEqual(seen["REQUEST_METHOD"], "GET")
        self.check(seen)

        # other methods, a body
        r = self.get("/app/headers/post", dict(self.spoofed(),
                     **{"Content-Type": "text/plain"}), cookie=sid,
                     method="POST", body=b"x" * 1000)
        self.assertEqual(r.status, 200, r)
        seen = json.loads(r.body)
        self.assertEqual(seen["REQUEST_METHOD"], "POST")
        self.check(seen)

        # the page and the WebSocket handshake the session sees
        c = self.client("headers", cookie=sid, headers=self.spoofed())
        c.load()
        m = re.search(r'<pre id="http">(.*?)</pre>', c.html.decode(), re.S)
        self.check(json.loads(html.unescape(m.group(1))))
        c.connect({}, outputs=["ws"])
        seen = json.loads(c.values["ws"])
        self.check(seen)
        self.assertEqual(seen["PATH_INFO"], "/websocket/")
        c.close()

    def test_cross_origin_websocket_refused(self):
        self.deploy("headers", HEADERS, {"max_sessions_per_worker": 5})
        r = self.get("/app/headers/", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
        sid = r.route_cookie()[0]
        for origin in ("http://evil.example", "null",
                       "http://127.0.0.1:%d.evil.example" % self.byd.port,
                       "http://127.0.0.1:1"):
            with self.assertRaises(HandshakeError) as cm:
                self.ws("headers", sid, origin=origin)
            self.assertEqual(cm.exception.status, 403, origin)
        # same origin: fine
        w = self.ws("headers", sid)
        self.assertEqual(w.status, 101)
        w.close()


class ExternalUrl(ProxyCase):

    server = {"external_url": '"https://apps.example.com"'}

    def test_external_origin_and_secure_cookie(self):
        self.deploy("headers", HEADERS, {"max_sessions_per_worker": 5})
        r = self.get("/app/headers/x", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
        sid, attrs = r.route_cookie()
        self.assertIs(attrs.get("secure"), True, r.cookies)
        self.assertEqual(json.loads(r.body)["HTTP_X_FORWARDED_PROTO"],
                         "https")
        for origin in ("https://apps.example.com", self.origin()):
            w = self.ws("headers", sid, origin=origin)
            self.assertEqual(w.status, 101, origin)
            w.close()
        for origin in ("http://apps.example.com",
                       "https://apps.example.com:8443",
                       "https://evil.example.com"):
            with self.assertRaises(HandshakeError) as cm:
                self.ws("headers", sid, origin=origin)
            self.assertEqual(cm.exception.status, 403, origin)
