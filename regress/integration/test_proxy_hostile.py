"""Hostile clients against /app/: request smuggling (ambiguous framing is
refused with 400 and nothing reaches the worker), a refused WebSocket
upgrade that must not turn into a raw tunnel, oversized heads (431), and
a slowloris client (cut off by the header timeout while others are
served).

The headers fixture logs every request it receives ("REQ <method>
<path> <query>") and the worker's log is read back over the API: the
requests that must never reach the worker carry "smuggled" in their
paths (a smuggled inner request, or an outer one refused at its head),
and no line of the log may."""

import re
import socket
import threading
import time

from test_proxy_e2e import ProxyCase, HEADERS, UUID_RE, wait_until

# status lines; a pipelined answer may follow a body directly
STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def statuses(raw):
    return [int(s) for s in STATUS_RE.findall(raw)]


class Smuggling(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def prepare(self):
        self.deploy("headers", HEADERS, {"max_sessions_per_worker": 10})
        r = self.get("/app/headers/warm", {"Accept": "*/*"})
        self.assertEqual(r.status, 200, r)
        self.sid = r.route_cookie()[0]
        self.assertRegex(self.sid or "", UUID_RE)
        [w] = self.workers("headers")
        self.wid = w["id"]

    def head(self, method, path, extra=b""):
        return (b"%s /app/headers/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Cookie: blockyard_route=%s\r\n" %
                (method, path, self.byd.port, self.sid.encode())) + extra

    def worker_saw(self):
        return self.worker_log("headers", self.wid)

    def test_ambiguous_framing_refused(self):
        # the inner requests' paths are outside /app/: if byproxy framed
        # them itself they would be its own 404s, so only a desync with
        # the worker can make one reach it
        inner = (b"GET /smuggled-inner HTTP/1.1\r\nHost: x\r\n\r\n")
        cases = {
            "CL+TE": self.head(b"POST", b"smuggled-clte",
                               b"Content-Length: %d\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n"
                               b"0\r\n\r\n" % (5 + len(inner))) + inner,
            "TE+CL": self.head(b"POST", b"smuggled-tecl",
                               b"Transfer-Encoding: chunked\r\n"
                               b"Content-Length: 3\r\n\r\n"
                               b"%x\r\n" % len(inner) + inner +
                               b"\r\n0\r\n\r\n"),
            "double CL": self.head(b"POST", b"smuggled-dcl",
                                   b"Content-Length: 0\r\n"
                                   b"Content-Length: %d\r\n\r\n" %
                                   len(inner)) + inner,
            "CL list": self.head(b"POST", b"smuggled-cllist",
                                 b"Content-Length: 0, %d\r\n\r\n" %
                                 len(inner)) + inner,
            "bare LF": (b"GET /app/headers/smuggled-lf HTTP/1.1\n"
                        b"Host: 127.0.0.1\nCookie: blockyard_route=" +
                        self.sid.encode() + b"\n\n"),
            "bare LF in a header": self.head(
                b"GET", b"smuggled-lf2", b"X-A: 1\nX-B: 2\r\n\r\n"),
            "TE xchunked": self.head(b"POST", b"smuggled-tex",
                                     b"Transfer-Encoding: xchunked\r\n"
                                     b"\r\n0\r\n\r\n") + inner,
            "TE list": self.head(b"POST", b"smuggled-tel",
                                 b"Transfer-Encoding: chunked, identity"
                                 b"\r\n\r\n0\r\n\r\n") + inner,
            "TE twice": self.head(b"POST", b"smuggled-te2",
                                  b"Transfer-Encoding: chunked\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n"
                                  b"0\r\n\r\n") + inner,
            "space before colon": self.head(
                b"POST", b"smuggled-sp", b"Transfer-Encoding : chunked"
                b"\r\nContent-Length: %d\r\n\r\n0\r\n\r\n" %
                (5 + len(inner))) + inner,
            "folded header": self.head(b"GET", b"smuggled-fold",
                                       b"X-A: 1\r\n Transfer-Encoding: "
                                       b"chunked\r\n\r\n"),
            # the head is fine here, the body is not: the worker may see
            # the start of this one, never what follows
            "bad chunk size": self.head(b"POST", b"hostile-chunk",
                                        b"Transfer-Encoding: chunked\r\n"
                                        b"\r\nzz\r\n0\r\n\r\n") + inner,
            "negative CL": self.head(b"POST", b"smuggled-neg",
                                     b"Content-Length: -1\r\n\r\n") + inner,
            "TE in HTTP/1.0": (b"POST /app/headers/smuggled-10 HTTP/1.0\r\n"
                               b"Host: x\r\nTransfer-Encoding: chunked\r\n"
                               b"\r\n0\r\n\r\n") + inner,
            "NUL in a header": self.head(b"GET", b"smuggled-nul",
                                         b"X-A: a\x00b\r\n\r\n"),
            "two Hosts": (b"GET /app/headers/smuggled-host HTTP/1.1\r\n"
                          b"Host: a\r\nHost: b\r\n\r\n"),
        }
        for what, data in cases.items():
            out = self.byd.raw(data, timeout=5)
            self.assertEqual(statuses(out)[:1], [400], "%s: %r" %
                             (what, out[:300]))
            self.assertEqual(len(statuses(out)), 1, "%s: %r" % (what, out))

        # a positive control: the log is read, pipelining is fine
        out = self.byd.raw(self.head(b"GET", b"after-1", b"\r\n") +
                           self.head(b"GET", b"after-2",
                                     b"Connection: close\r\n\r\n"))
        self.assertEqual(statuses(out), [200, 200], out[:500])
        wait_until(lambda: "/after-2" in self.worker_saw(), 20, 0.5,
                   "the worker's log")
        log = self.worker_saw()
        self.assertIn("REQ GET /after-1", log)
        self.assertNotIn("smuggled", log)

    def test_refused_upgrade_is_no_tunnel(self):
        inner = b"GET /smuggled-ws-inner HTTP/1.1\r\nHost: x\r\n\r\n"
        cases = {
            "bad version": self.head(b"GET", b"websocket/",
                                     b"Upgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\n"
                                     b"Sec-WebSocket-Key: "
                                     b"dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     b"Sec-WebSocket-Version: 1337\r\n"
                                     b"\r\n"),
            "no key": self.head(b"GET", b"websocket/",
                                b"Upgrade: websocket\r\n"
                                b"Connection: Upgrade\r\n"
                                b"Sec-WebSocket-Version: 13\r\n\r\n"),
            # not ours to switch to: a plain request at most
            "h2c": self.head(b"GET", b"hostile-h2c",
                             b"Upgrade: h2c\r\nConnection: Upgrade, "
                             b"HTTP2-Settings\r\nHTTP2-Settings: AAMAAABk"
                             b"\r\n\r\n"),
        }
        for what, data in cases.items():
            s = socket.create_connection(("127.0.0.1", self.byd.port),
                                         timeout=5)
            try:
                s.sendall(data)
                first = b""
                while b"\r\n\r\n" not in first:
                    b = s.recv(65536)
                    if not b:
                        break
                    first += b
                # whatever the answer, it is not a switch to a raw pipe
                self.assertNotIn(101, statuses(first), "%s: %r" %
                                 (what, first))
                try:
                    s.sendall(inner)
                    s.settimeout(2)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
            finally:
                s.close()
        out = self.byd.raw(self.head(b"GET", b"after-ws",
                                     b"Connection: close\r\n\r\n"))
        self.assertEqual(statuses(out), [200])
        wait_until(lambda: "/after-ws" in self.worker_saw(), 20, 0.5,
                   "the worker's log")
        self.assertNotIn("smuggled-ws-inner", self.worker_saw())

    def test_oversized_heads(self):
        big = self.head(b"GET", b"smuggled-big", b"X-Big: " +
                        b"a" * (70 * 1024) + b"\r\n\r\n")
        out = self.byd.raw(big)
        self.assertEqual(statuses(out), [431], out[:300])
        many = self.head(b"GET", b"smuggled-many", b"".join(
            b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n")
        out = self.byd.raw(many)
        self.assertEqual(statuses(out), [431], out[:300])
        long_line = (b"GET /app/headers/smuggled-" + b"a" * (16 * 1024) +
                     b" HTTP/1.1\r\nHost: x\r\n\r\n")
        out = self.byd.raw(long_line)
        self.assertIn(statuses(out)[:1], ([414], [431], [400]), out[:300])
        # a big cookie alone is a big head too
        out = self.byd.raw(
            b"GET /app/headers/smuggled-cookie HTTP/1.1\r\nHost: x\r\n"
            b"Cookie: blockyard_route=%s; junk=%s\r\n\r\n" %
            (self.sid.encode(), b"j" * (70 * 1024)))
        self.assertEqual(statuses(out), [431], out[:300])
        # and normal requests still pass
        r = self.get("/app/headers/after-big", cookie=self.sid)
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: "/after-big" in self.worker_saw(), 20, 0.5,
                   "the worker's log")
        self.assertNotIn("smuggled", self.worker_saw())

    def test_slowloris(self):
        s = socket.create_connection(("127.0.0.1", self.byd.port),
                                     timeout=5)
        head = self.head(b"GET", b"smuggled-slow",
                         b"X-Slow: " + b"s" * 60 + b"\r\n\r\n")
        cut = {"at": None, "got": b""}

        def dribble():
            # one byte a second, for longer than any header timeout;
            # cut["at"]: the byte after which the server answered or
            # closed
            i = 0
            try:
                for i, ch in enumerate(head):
                    s.sendall(bytes([ch]))
                    s.settimeout(1)
                    try:
                        b = s.recv(65536)
                    except socket.timeout:
                        continue
                    cut["got"] += b
                    cut["at"] = i
                    return
            except OSError:
                cut["at"] = i

        t = threading.Thread(target=dribble)
        t.start()
        try:
            # meanwhile, others are served
            time.sleep(2)
            for i in range(3):
                r = self.get("/app/headers/during-%d" % i, cookie=self.sid,
                             timeout=10)
                self.assertEqual(r.status, 200, r)
            t.join(len(head) + 30)
            self.assertFalse(t.is_alive())
            # the server gave up on the head before it was complete
            self.assertIsNotNone(cut["at"])
            self.assertLess(cut["at"], len(head) - 1)
            self.assertIn(statuses(cut["got"])[:1], ([], [408]),
                          cut["got"])
        finally:
            s.close()
            t.join(5)
        wait_until(lambda: "/during-2" in self.worker_saw(), 20, 0.5,
                   "the worker's log")
        self.assertNotIn("smuggled", self.worker_saw())
