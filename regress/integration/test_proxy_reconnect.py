"""The WebSocket reconnection cache (proxy.ws_cache_ttl): when a client's
TCP connection drops without a clean close, byproxy parks the worker
side; a reconnect with the same blockyard_route cookie within the TTL
continues the same Shiny session (the counter fixture keeps a count in
the R session: it goes on from where it was).  After the TTL, or after
a clean close, a reconnect is a new Shiny session."""

import time

from test_proxy_e2e import ProxyCase, COUNTER

TTL = 6     # seconds; ws_cache_ttl below

INPUTS = {"inc:shiny.number": 0, "go:shiny.action": 0}


class Reconnect(ProxyCase):

    proxy = {"ws_cache_ttl": '"%ds"' % TTL, "health_interval": '"1s"'}

    def bump(self, c, value):
        """Change "inc" (the app counts every change); the new count."""
        c.update({"inc:shiny.number": value}, wait=["count"])
        return c.values["count"]

    def resume(self, c):
        """Reconnect like a tab coming back: same cookie, new socket, no
        init (the session on the other side is still initialised).  A
        moment first, as shiny.js waits before it reconnects, so that
        byproxy has seen the old connection end."""
        time.sleep(1)
        cookie = c.cookie
        c.ws = c.open_ws()
        self.assertEqual(c.cookie, cookie)
        self.assertEqual(c.ws.status, 101)

    def test_resume_within_ttl_fresh_after(self):
        self.deploy("counter", COUNTER)
        c = self.client("counter")
        c.load()
        c.connect(INPUTS, outputs=["count", "token"])
        self.assertEqual(c.values["count"], "0")
        token = c.values["token"]
        for i in (1, 2, 3):
            self.assertEqual(self.bump(c, i), str(i))

        # the network goes away (FIN, no close frame); back at once
        c.abort()
        self.resume(c)
        self.assertEqual(self.bump(c, 4), "4")
        # a reset, and back after a while, still within the TTL
        c.abort(rst=True)
        time.sleep(TTL / 2.0)
        self.resume(c)
        self.assertEqual(self.bump(c, 5), "5")
        # nothing asked for a second worker
        self.assertEqual(len(self.workers("counter")), 1)
        self.assertEqual(self.session("counter", c.cookie)["status"],
                         "active")

        # gone for longer than the TTL: the parked connection is closed,
        # the reconnect is a new Shiny session (shiny.js sends init)
        c.abort()
        time.sleep(TTL + 3)
        c.values.clear()
        c.config = None
        c.connect(INPUTS, outputs=["count", "token"])
        self.assertEqual(c.values["count"], "0")
        self.assertNotEqual(c.values["token"], token)
        self.assertEqual(self.bump(c, 1), "1")
        c.close()

    def test_clean_close_is_not_parked(self):
        self.deploy("counter", COUNTER)
        c = self.client("counter")
        c.load()
        c.connect(INPUTS, outputs=["count", "token"])
        token = c.values["token"]
        self.assertEqual(self.bump(c, 1), "1")
        self.assertEqual(self.bump(c, 2), "2")
        self.assertEqual(c.ws.close(), 1000)
        # same cookie, soon after: a new Shiny session, not the old one
        time.sleep(1)
        c.values.clear()
        c.config = None
        c.connect(INPUTS, outputs=["count", "token"])
        self.assertNotEqual(c.values["token"], token)
        self.assertEqual(c.values["count"], "0")
        self.assertEqual(self.bump(c, 1), "1")
        c.close()

    def test_parked_session_is_not_anyone_elses(self):
        """A parked session goes only to its own cookie: a new visitor
        gets a Shiny session of their own."""
        self.deploy("counter", COUNTER, {"max_sessions_per_worker": 5})
        a = self.client("counter")
        a.load()
        a.connect(INPUTS, outputs=["count", "token"])
        self.assertEqual(self.bump(a, 1), "1")
        a.abort()
        b = self.client("counter")
        b.load()
        self.assertNotEqual(b.cookie, a.cookie)
        b.connect(INPUTS, outputs=["count", "token"])
        self.assertEqual(b.values["count"], "0")
        self.assertNotEqual(b.values["token"], a.values["token"])
        # and a still has its own
        self.resume(a)
        self.assertEqual(self.bump(a, 2), "2")
        a.close()
        b.close()
