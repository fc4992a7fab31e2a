"""A small RFC 6455 WebSocket client for the tests and benchmarks.
Standard library only, plain TCP (no TLS).

    ws = WebSocket("127.0.0.1", port, "/app/hello/websocket/",
                   headers={"Cookie": "blockyard_route=...",
                            "Origin": "http://127.0.0.1:%d" % port})
    ws.send_text('{"method":"init","data":{}}')
    op, data = ws.recv()          # one whole message (text: str)
    ws.close()                    # clean close: 1000, wait for the echo
    ws.abort()                    # drop the TCP connection, no close frame

A handshake the server refuses raises HandshakeError with the status,
headers and body of its answer.  recv() answers pings with pongs by
itself, joins fragmented messages, and raises Closed when the server
closes (after echoing its close frame).
"""

import base64
import hashlib
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class HandshakeError(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status, headers, body):
        Exception.__init__(self, "WebSocket handshake refused: %s %r" %
                           (status, body[:200]))
        self.status = status
        self.headers = headers
        self.body = body


class Closed(Exception):
    """The connection ended: code and reason of the server's close frame
    (code None when the TCP connection just ended)."""

    def __init__(self, code=None, reason=""):
        Exception.__init__(self, "WebSocket closed: %s %s" % (code, reason))
        self.code = code
        self.reason = reason


class ProtocolError(Exception):
    pass


def accept_key(key):
    return base64.b64encode(hashlib.sha1(
        (key + GUID).encode()).digest()).decode()


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0):
    """One frame on the wire (client frames are masked)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_bytes(key, payload)


def mask_bytes(key, data):
    if not data:
        return b""
    # XOR with the key repeated: one big-integer operation, not a loop
    k = (key * (len(data) // 4 + 1))[:len(data)]
    n = int.from_bytes(data, "big") ^ int.from_bytes(k, "big")
    return n.to_bytes(len(data), "big")


class WebSocket:

    def __init__(self, host, port, path="/", headers=None, timeout=10,
                 connect=True, subprotocols=None):
        self.host = host
        self.port = port
        self.path = path
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.subprotocols = subprotocols
        self.sock = None
        self.buf = b""
        self.status = None
        self.response_headers = {}
        self.closed = False
        self.close_code = None
        self.close_reason = ""
        self.pongs = []
        self._partial = (None, [])
        if connect:
            self.connect()

    # -- connection ----------------------------------------------------

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port),
                                             timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        hostport = self.host if self.port == 80 else "%s:%d" % (self.host,
                                                               self.port)
        lines = ["GET %s HTTP/1.1" % self.path]
        hdrs = [("Host", hostport), ("Upgrade", "websocket"),
                ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13")]
        if self.subprotocols:
            hdrs.append(("Sec-WebSocket-Protocol",
                         ", ".join(self.subprotocols)))
        given = set(k.lower() for k in self.headers)
        hdrs = [(k, v) for k, v in hdrs if k.lower() not in given]
        hdrs += list(self.headers.items())
        lines += ["%s: %s" % (k, v) for k, v in hdrs]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_head()
        status_line, _, rest = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.sock.close()
            raise ProtocolError("bad status line %r" % status_line)
        self.response_headers = {}
        for line in rest.split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                self.response_headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            body = self._read_body()
            self.sock.close()
            self.closed = True
            raise HandshakeError(self.status, self.response_headers, body)
        got = self.response_headers.get("sec-websocket-accept")
        if got != accept_key(key):
            self.sock.close()
            raise ProtocolError("bad Sec-WebSocket-Accept %r" % got)
        return self

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            b = self.sock.recv(65536)
            if not b:
                raise Closed(None, "connection closed during handshake")
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head.decode("latin-1")

    def _read_body(self):
        """The body of a refused handshake: Content-Length, chunked, or
        until the server closes (a short wait at most)."""
        n = self.response_headers.get("content-length")
        te = self.response_headers.get("transfer-encoding", "").lower()
        try:
            if n is not None:
                n = int(n)
                while len(self.buf) < n:
                    b = self.sock.recv(65536)
                    if not b:
                        break
                    self.buf += b
                return self.buf[:n]
            if "chunked" in te:
                out = b""
                while True:
                    while b"\r\n" not in self.buf:
                        b = self.sock.recv(65536)
                        if not b:
                            return out
                        self.buf += b
                    line, _, self.buf = self.buf.partition(b"\r\n")
                    size = int(line.split(b";")[0], 16)
                    while len(self.buf) < size + 2:
                        b = self.sock.recv(65536)
                        if not b:
                            return out + self.buf
                        self.buf += b
                    if size == 0:
                        return out
                    out += self.buf[:size]
                    self.buf = self.buf[size + 2:]
            self.sock.settimeout(2)
            while True:
                b = self.sock.recv(65536)
                if not b:
                    break
                self.buf += b
        except (socket.timeout, OSError, ValueError):
            pass
        return self.buf

    def _fill(self, n):
        """Read until the buffer holds n bytes.  A timeout leaves what
        was read in the buffer, so a later call starts where this one
        stopped."""
        while len(self.buf) < n:
            try:
                b = self.sock.recv(max(65536, n - len(self.buf)))
            except ConnectionResetError:
                b = b""
            if not b:
                self.closed = True
                raise Closed(None, "connection closed")
            self.buf += b

    # -- frames --------------------------------------------------------

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(encode_frame(opcode, payload, fin, mask, rsv))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode())

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send(self, data):
        if isinstance(data, str):
            self.send_text(data)
        else:
            self.send_binary(data)

    def ping(self, data=b""):
        self.send_frame(OP_PING, data)

    def recv_frame(self):
        """One frame: (fin, opcode, payload bytes).  Consumes nothing
        until the whole frame has arrived."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b0 & 0x70:
            raise ProtocolError("reserved bits set: %#x" % b0)
        if b1 & 0x80:
            raise ProtocolError("masked frame from the server")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._fill(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._fill(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, timeout=None):
        """One whole message: (OP_TEXT, str) or (OP_BINARY, bytes).
        Pings are answered, pongs recorded in self.pongs.  A close frame
        from the server is echoed and raises Closed(code, reason).
        socket.timeout when nothing whole arrives within timeout."""
        if self.closed:
            raise Closed(self.close_code, self.close_reason)
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        # a fragmented message survives a timeout between its frames
        msg_op, parts = self._partial
        while True:
            fin, op, payload = self.recv_frame()
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                code = None
                reason = ""
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    reason = payload[2:].decode("utf-8", "replace")
                self.close_code, self.close_reason = code, reason
                try:
                    self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                self._shutdown()
                raise Closed(code, reason)
            if op == OP_CONT:
                if msg_op is None:
                    raise ProtocolError("continuation without a start")
            elif op in (OP_TEXT, OP_BINARY):
                if msg_op is not None:
                    raise ProtocolError("new message inside a fragmented "
                                        "one")
                msg_op = op
            else:
                raise ProtocolError("unknown opcode %#x" % op)
            parts.append(payload)
            self._partial = (msg_op, parts)
            if fin:
                self._partial = (None, [])
                data = b"".join(parts)
                if msg_op == OP_TEXT:
                    return OP_TEXT, data.decode("utf-8")
                return OP_BINARY, data

    def recv_text(self, timeout=None):
        op, data = self.recv(timeout)
        if op != OP_TEXT:
            raise ProtocolError("expected a text message, got binary")
        return data

    # -- ending --------------------------------------------------------

    def close(self, code=1000, reason="", timeout=5):
        """Clean close: send a close frame, read until the server's close
        frame comes back (or timeout), then close the socket.  The
        server's code (None if it just hung up)."""
        if self.closed:
            return self.close_code
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) +
                            reason.encode())
        except OSError:
            self._shutdown()
            return None
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.time()))
                fin, op, payload = self.recv_frame()
                if op == OP_CLOSE:
                    if len(payload) >= 2:
                        self.close_code = struct.unpack("!H",
                                                        payload[:2])[0]
                    break
        except (Closed, OSError, ProtocolError):
            pass
        self._shutdown()
        return self.close_code

    def abort(self, rst=False):
        """Drop the TCP connection without a close frame, as when a
        laptop lid closes or a network goes away.  rst: reset the
        connection (SO_LINGER 0) instead of an orderly FIN."""
        if self.sock is None:
            return
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        self._shutdown()

    def _shutdown(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.closed:
            self.close()
