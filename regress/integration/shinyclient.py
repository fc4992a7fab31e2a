"""Talk to a Shiny app (shiny 1.7.x) the way shiny.js does, without a
browser.  Standard library only.

    c = ShinyClient("127.0.0.1", port, "/app/hello/")
    c.load()                        # the page; follows byd's loading page
    c.connect({"n": 200})           # WebSocket + init with the inputs
    c.wait_outputs(["summary", "hist"])
    c.values["summary"]             # 'n = 200, mean = ...'
    c.update({"n": 500}, wait=["summary"])
    c.close()

What shiny.js does, and this client copies (shiny.js 1.7.4):
  * the WebSocket URL is the page's path, with a '/' added if it does
    not end in one, plus "websocket/": /app/hello/ -> /app/hello/websocket/
    (ws: for http:, same host and port as the page);
  * on open it sends {"method":"init","data":{...}}: every bound input
    as "<id>" or "<id>:<type>" (numericInput "shiny.number", actionButton
    "shiny.action", a numeric sliderInput has no type), plus the
    .clientdata_* values (output sizes for plot/image outputs,
    output_<id>_hidden for every output, pixel ratio, the URL parts,
    singletons);
  * later input changes go as {"method":"update","data":{...}};
  * the server answers with JSON messages: {"config":{"sessionId":..}},
    {"busy":"busy"}, {"recalculating":{..}}, {"busy":"idle"}, then
    {"errors":{..},"values":{..},"inputMessages":[..]}; a plot's value
    is {"src":"data:image/png;base64,...", "width":..., ...}.
"""

import http.client
import json
import re
import time

from wsclient import WebSocket, OP_TEXT

SHINY_MARKERS = (b"application/shiny-singletons", b"shiny.min.js",
                 b"shiny.js")


class ShinyError(Exception):
    pass


def parse_set_cookie(values, name="blockyard_route"):
    """The value and attributes of cookie name from Set-Cookie header
    values: (value, {attr-lower: value or True}) or (None, {})."""
    for v in values:
        parts = [p.strip() for p in v.split(";")]
        k, _, val = parts[0].partition("=")
        if k.strip() != name:
            continue
        attrs = {}
        for p in parts[1:]:
            if not p:
                continue
            ak, eq, av = p.partition("=")
            attrs[ak.strip().lower()] = av.strip() if eq else True
        return val.strip(), attrs
    return None, {}


def output_ids(html):
    """{id: kind} of the Shiny outputs on a page (kind: plot, image,
    text, html, ...), from class="shiny-<kind>-output" elements."""
    out = {}
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    for m in re.finditer(r"<[a-zA-Z]+\b([^>]*)>", html):
        attrs = m.group(1)
        cls = re.search(r'\bclass="([^"]*)"', attrs)
        ident = re.search(r'\bid="([^"]*)"', attrs)
        if not cls or not ident:
            continue
        for c in cls.group(1).split():
            k = re.match(r"shiny-(\w+)-output$", c)
            if k:
                out[ident.group(1)] = k.group(1)
            elif c == "shiny-html-output":
                out[ident.group(1)] = "html"
    return out


def is_shiny_page(body):
    return any(m in body for m in SHINY_MARKERS)


class ShinyClient:
    """One browser tab's worth of Shiny session.

    host, port: the server (byd's main listener, or a bare app);
    path: the app's page, e.g. "/app/hello/" (or "/" for a bare app);
    cookie: a blockyard_route value to present (a returning tab);
    origin: the Origin header of the WebSocket (default: same origin,
    as a browser sends it; False: none)."""

    def __init__(self, host, port, path="/", cookie=None, origin=None,
                 timeout=60, headers=None):
        self.host = host
        self.port = port
        self.path = path
        self.cookie = cookie
        self.cookie_attrs = {}
        self.origin = ("http://%s:%d" % (host, port) if origin is None
                       else origin)
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.html = None
        self.outputs = {}
        self.ws = None
        self.values = {}
        self.errors = {}
        self.messages = []      # every message received, parsed
        self.config = None
        self.loading_pages = 0  # how many times byd's loading page came

    # -- HTTP ----------------------------------------------------------

    def http(self, method, path, headers=None, body=None, timeout=None):
        """(status, {lower-name: value}, set-cookie values, body); the
        client's cookie goes along."""
        h = dict(self.headers)
        h.update(headers or {})
        if self.cookie and "Cookie" not in h:
            h["Cookie"] = "blockyard_route=" + self.cookie
        c = http.client.HTTPConnection(self.host, self.port,
                                       timeout=timeout or self.timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            cookies = [v for k, v in r.getheaders()
                       if k.lower() == "set-cookie"]
            return (r.status, dict((k.lower(), v) for k, v in
                                   r.getheaders()), cookies, data)
        finally:
            c.close()

    def load(self, follow_loading=True):
        """GET the page as a browser would (Accept: text/html).  byd's
        loading page (no Shiny on it, no cookie) is followed like its
        script does: poll __blockyard/ready, then load again.  Keeps
        the blockyard_route cookie.  Returns the page's body."""
        deadline = time.time() + self.timeout
        while True:
            st, hdr, cookies, body = self.http(
                "GET", self.path, {"Accept": "text/html,application/"
                                   "xhtml+xml,*/*;q=0.8"})
            self.page_status, self.page_headers = st, hdr
            val, attrs = parse_set_cookie(cookies)
            if val is not None:
                self.cookie, self.cookie_attrs = val, attrs
            if st != 200:
                raise ShinyError("GET %s: %d %r" % (self.path, st,
                                                    body[:300]))
            if is_shiny_page(body) or not follow_loading:
                break
            self.loading_pages += 1
            self.wait_ready(deadline)
        self.html = body
        self.outputs = output_ids(body)
        return body

    def ready_path(self):
        p = self.path if self.path.endswith("/") else self.path + "/"
        return p + "__blockyard/ready"

    def wait_ready(self, deadline):
        """Poll the ready endpoint as the loading page does."""
        while time.time() < deadline:
            st, _, _, body = self.http("GET", self.ready_path(),
                                       {"Accept": "application/json"})
            if st == 200:
                try:
                    if json.loads(body).get("ready") is True:
                        return
                except ValueError:
                    pass
            time.sleep(0.2)
        raise ShinyError("app not ready before the deadline")

    # -- WebSocket -----------------------------------------------------

    def ws_path(self):
        p = self.path.split("?", 1)[0]
        if not p.endswith("/"):
            p += "/"
        return p + "websocket/"

    def open_ws(self):
        h = dict(self.headers)  # extra headers go along (spoofing tests)
        if self.cookie:
            h["Cookie"] = "blockyard_route=" + self.cookie
        if self.origin:
            h["Origin"] = self.origin
        h.setdefault("User-Agent", "shinyclient.py")
        ws = WebSocket(self.host, self.port, self.ws_path(), headers=h,
                       timeout=self.timeout)
        # a new session may come with the upgrade (a stale cookie)
        sc = ws.response_headers.get("set-cookie")
        if sc:
            val, attrs = parse_set_cookie([sc])
            if val is not None:
                self.cookie, self.cookie_attrs = val, attrs
        return ws

    def clientdata(self, extra=None):
        """The .clientdata_* values shiny.js sends with init."""
        cd = {}
        for oid, kind in sorted(self.outputs.items()):
            if kind in ("plot", "image"):
                cd[".clientdata_output_%s_width" % oid] = 600
                cd[".clientdata_output_%s_height" % oid] = 400
                cd[".clientdata_output_%s_bg" % oid] = "rgb(255, 255, 255)"
                cd[".clientdata_output_%s_fg" % oid] = "rgb(51, 51, 51)"
                cd[".clientdata_output_%s_accent" % oid] = \
                    "rgb(51, 122, 183)"
                cd[".clientdata_output_%s_font" % oid] = {
                    "families": ["Helvetica Neue", "Helvetica", "Arial",
                                 "sans-serif"], "size": "14px"}
            cd[".clientdata_output_%s_hidden" % oid] = False
        p, _, q = self.path.partition("?")
        cd.update({
            ".clientdata_pixelratio": 1,
            ".clientdata_url_protocol": "http:",
            ".clientdata_url_hostname": self.host,
            ".clientdata_url_port": str(self.port),
            ".clientdata_url_pathname": p,
            ".clientdata_url_search": "?" + q if q else "",
            ".clientdata_url_hash_initial": "",
            ".clientdata_url_hash": "",
            ".clientdata_singletons": "",
        })
        cd.update(extra or {})
        return cd

    def connect(self, inputs=None, init=True, outputs=None):
        """Open the WebSocket; with init, send the init message with the
        inputs and the client data, and wait for the session's config
        message (and for outputs' values, when given).  Without init
        (a reconnect to a session that lives on) only the socket."""
        if self.html is None and init:
            self.load()
        self.ws = self.open_ws()
        if init:
            data = dict(inputs or {})
            data.update(self.clientdata())
            self.send({"method": "init", "data": data})
            self.wait_for(lambda c: c.config is not None,
                          what="config message")
            if outputs:
                self.wait_outputs(outputs)
        return self

    def send(self, msg):
        self.ws.send_text(json.dumps(msg))

    def receive(self, timeout=None):
        """One message from the server, parsed and applied (values,
        errors, config).  None for a binary message."""
        op, data = self.ws.recv(timeout=timeout)
        if op != OP_TEXT:
            return None
        msg = json.loads(data)
        self.messages.append(msg)
        if isinstance(msg.get("config"), dict):
            self.config = msg["config"]
        for k, v in (msg.get("values") or {}).items():
            self.values[k] = v
            self.errors.pop(k, None)
        for k, v in (msg.get("errors") or {}).items():
            self.errors[k] = v
            self.values.pop(k, None)
        return msg

    def wait_for(self, pred, timeout=None, what="condition"):
        """Read messages until pred(self) holds."""
        deadline = time.time() + (timeout or self.timeout)
        while not pred(self):
            left = deadline - time.time()
            if left <= 0:
                raise ShinyError("timed out waiting for %s; values %r, "
                                 "errors %r" % (what, self.brief(),
                                                self.errors))
            try:
                self.receive(timeout=left)
            except OSError as e:  # socket.timeout included
                if "timed out" in str(e):
                    continue
                raise
        return self

    def wait_outputs(self, names, timeout=None):
        """Wait until every output in names has a value (or an error:
        raises with it).  Returns {name: value}."""
        def done(c):
            bad = [n for n in names if n in c.errors]
            if bad:
                raise ShinyError("output errors: %r" %
                                 dict((n, c.errors[n]) for n in bad))
            return all(n in c.values for n in names)
        self.wait_for(done, timeout, "outputs %s" % ", ".join(names))
        return dict((n, self.values[n]) for n in names)

    def update(self, inputs, wait=None, timeout=None):
        """Send input changes; with wait (output names), forget those
        outputs' values and wait for new ones."""
        for n in wait or ():
            self.values.pop(n, None)
            self.errors.pop(n, None)
        self.send({"method": "update", "data": inputs})
        if wait:
            return self.wait_outputs(wait, timeout)
        return None

    def brief(self):
        """values with data URIs shortened, for messages."""
        out = {}
        for k, v in self.values.items():
            if isinstance(v, dict) and "src" in v:
                out[k] = dict(v, src=v["src"][:40] + "...")
            else:
                out[k] = v
        return out

    def close(self):
        if self.ws is not None and not self.ws.closed:
            self.ws.close()

    def abort(self, rst=False):
        if self.ws is not None:
            self.ws.abort(rst)


def plot_png(value):
    """The PNG bytes of a renderPlot value (a data URI)."""
    import base64
    src = value["src"] if isinstance(value, dict) else value
    head, _, data = src.partition(",")
    if not head.startswith("data:image/png;base64"):
        raise ShinyError("not a PNG data URI: %r" % src[:60])
    return base64.b64decode(data)
