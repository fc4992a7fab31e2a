"""Drive Debian's chromium headless over the DevTools protocol, with
wsclient.  Standard library only.

    with Browser() as b:               # None of it if chromium is absent:
        page = b.new_page()            #   see chromium_path()
        page.goto("http://127.0.0.1:8080/app/hello/")
        page.wait_for("document.querySelector('#summary').innerText")
        page.evaluate("1 + 1")         # 2
        page.screenshot("/tmp/shot.png")

chromium runs as `chromium --headless=new --no-sandbox
--remote-debugging-port=0 --user-data-dir=<tmp>`; the port and the
browser's WebSocket path come from <tmp>/DevToolsActivePort.  Pages are
targets attached in flat mode (one WebSocket, commands carry the
sessionId).
"""

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from wsclient import WebSocket, Closed

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path():
    """The chromium binary, or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for c in CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


class CDPError(Exception):
    pass


class Browser:

    def __init__(self, binary=None, timeout=30, extra_args=()):
        self.binary = binary or chromium_path()
        if self.binary is None:
            raise CDPError("chromium not found")
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="byd-cdp-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        args = [self.binary, "--headless=new", "--no-sandbox",
                "--remote-debugging-port=0",
                "--user-data-dir=" + os.path.join(self.dir, "profile"),
                "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--metrics-recording-only", "--mute-audio",
                "--window-size=1200,900"] + list(extra_args) + \
            ["about:blank"]
        # its own process group: close() ends chromium and its helpers
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.ids = itertools.count(1)
        self.events = []
        try:
            port, path = self._active_port()
            self.ws = WebSocket("127.0.0.1", port, path, timeout=timeout)
        except Exception:
            self.close()
            raise

    def _active_port(self):
        f = os.path.join(self.dir, "profile", "DevToolsActivePort")
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CDPError("chromium exited with %d:\n%s" %
                               (self.proc.returncode, self.logtext()))
            try:
                with open(f) as fh:
                    lines = fh.read().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1]:
                    return int(lines[0]), lines[1].strip()
            except OSError:
                pass
            time.sleep(0.05)
        raise CDPError("no DevToolsActivePort:\n" + self.logtext())

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def send(self, method, params=None, session=None, timeout=None):
        """One command; its result (raises CDPError on an error answer).
        Events that arrive meanwhile are kept in self.events."""
        mid = next(self.ids)
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send_text(json.dumps(msg))
        deadline = time.time() + (timeout or self.timeout)
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise CDPError("%s: no answer" % method)
            try:
                _, data = self.ws.recv(timeout=left)
            except OSError as e:
                if "timed out" in str(e):
                    continue
                raise
            m = json.loads(data)
            if m.get("id") == mid:
                if "error" in m:
                    raise CDPError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def new_page(self, url="about:blank"):
        t = self.send("Target.createTarget", {"url": url})
        s = self.send("Target.attachToTarget",
                      {"targetId": t["targetId"], "flatten": True})
        page = Page(self, t["targetId"], s["sessionId"])
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page

    def close(self):
        try:
            if getattr(self, "ws", None) is not None and not self.ws.closed:
                try:
                    self.send("Browser.close", timeout=5)
                except (CDPError, Closed, OSError):
                    pass
                self.ws.abort()
        finally:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    self.proc.wait()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:

    def __init__(self, browser, target, session):
        self.browser = browser
        self.target = target
        self.session = session

    def send(self, method, params=None, timeout=None):
        return self.browser.send(method, params, self.session, timeout)

    def goto(self, url, wait_load=True, timeout=None):
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError("navigate %s: %s" % (url, r["errorText"]))
        if wait_load:
            self.wait_for("document.readyState === 'complete' && "
                          "location.href !== 'about:blank'", timeout)
        return r

    def evaluate(self, expr, await_promise=False, timeout=None):
        """The value of a JS expression (JSON-able values come back as
        Python values)."""
        r = self.send("Runtime.evaluate",
                      {"expression": expr, "returnByValue": True,
                       "awaitPromise": await_promise}, timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError("JS exception: %s" % (
                d.get("exception", {}).get("description") or d.get("text")))
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout=None, interval=0.1):
        """Poll until a JS expression is truthy (exceptions count as
        not yet); returns its value."""
        deadline = time.time() + (timeout or self.browser.timeout)
        last = None
        while time.time() < deadline:
            try:
                v = self.evaluate(expr)
                if v:
                    return v
                last = v
            except CDPError as e:
                last = e
            time.sleep(interval)
        raise CDPError("timed out waiting for %s (last: %r)" % (expr, last))

    def wait_text(self, selector, pattern=None, timeout=None):
        """Wait until the element's innerText is non-empty (and contains
        pattern); returns the text."""
        js = "(function(){var e=document.querySelector(%s);" \
             "return e ? e.innerText : null})()" % json.dumps(selector)
        cond = js if pattern is None else \
            "(function(){var t=%s; return t && t.indexOf(%s) >= 0 ? t : " \
            "null})()" % (js, json.dumps(pattern))
        return self.wait_for(cond, timeout)

    def url(self):
        return self.evaluate("location.href")

    def screenshot(self, path):
        r = self.send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return path
