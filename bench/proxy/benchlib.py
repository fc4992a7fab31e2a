"""Shared pieces of the proxy benchmarks (bench/proxy, bench/ws,
bench/coldstart): a byd started with the integration harness, apps
deployed over the API, nginx as the reference proxy, wrk, and per-process
CPU and memory from /proc.  Python 3 standard library; run as root from
the top directory after make."""

import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "..", ".."))
os.environ.setdefault("BUILD", os.path.join(TOP, "build"))
if not os.path.isabs(os.environ["BUILD"]):
    os.environ["BUILD"] = os.path.join(TOP, os.environ["BUILD"])
sys.path.insert(0, os.path.join(TOP, "regress", "integration"))

import harness                                  # noqa: E402
import test_api_bundles                         # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def need_root():
    if os.geteuid() != 0:
        sys.exit("%s: run as root (byd starts as root)" % sys.argv[0])
    if not os.access(harness.BYD, os.X_OK):
        sys.exit("%s: no %s: run make first" % (sys.argv[0], harness.BYD))


def ensure_pkgs(*pkgs):
    """Install missing Debian packages, as bench/http-core does."""
    missing = []
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                           capture_output=True, text=True)
        if "ok installed" not in r.stdout:
            missing.append(p)
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q",
                        "--no-install-recommends"] + missing, check=True,
                       stdout=subprocess.DEVNULL,
                       env=dict(os.environ,
                                DEBIAN_FRONTEND="noninteractive"))


def targz(entries):
    """A .tar.gz bundle of (name, bytes) entries (the tests' helper)."""
    return test_api_bundles.targz(entries)


def dir_files(d, prefix=""):
    """(name, bytes) of every file under d, for targz."""
    out = []
    for root, _, files in os.walk(d):
        for f in sorted(files):
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out.append((prefix + os.path.relpath(p, d), fh.read()))
    return out


class Suite:
    """A byd for a benchmark: quiet logs, the given [proxy] keys, a
    publisher token."""

    def __init__(self, proxy=None):
        extra = ""
        if proxy:
            extra = "\n[proxy]\n" + "".join(
                "%s = %s\n" % kv for kv in sorted(proxy.items()))
        self.byd = harness.Byd(extra)
        self.byd.write_config(text=self.byd.config_text(extra).replace(
            'log_level = "debug"', 'log_level = "warn"'))
        self.byd.start()
        self.token = self.byd.token("bench", "publisher")

    def api(self, method, path, body=None, raw=None):
        for _ in range(5):
            st, hdr, out = self.byd.api(method, path, body,
                                        token=self.token, raw=raw)
            if st != 429:
                return st, out
            time.sleep(int(hdr.get("retry-after", "5")) + 1)
        return st, out

    def deploy(self, name, bundle, fields=None):
        st, out = self.api("POST", "/api/v1/apps", {"name": name})
        if st != 201:
            raise RuntimeError("create %s: %s %r" % (name, st, out))
        if fields:
            st, out = self.api("PATCH", "/api/v1/apps/" + name, fields)
            if st != 200:
                raise RuntimeError("patch %s: %s %r" % (name, st, out))
        st, out = self.api("POST", "/api/v1/apps/%s/bundles" % name,
                           raw=bundle)
        if st != 202:
            raise RuntimeError("upload %s: %s %r" % (name, st, out))
        deadline = time.time() + 60
        while time.time() < deadline:
            st, t = self.api("GET", "/api/v1/tasks/" + out["task_id"])
            if t.get("status") == "completed":
                return
            if t.get("status") == "failed":
                raise RuntimeError("bundle of %s failed" % name)
            time.sleep(0.2)
        raise RuntimeError("bundle of %s: no answer" % name)

    def workers(self, name):
        st, rt = self.api("GET", "/api/v1/apps/%s/runtime" % name)
        if st != 200:
            raise RuntimeError("runtime %s: %s %r" % (name, st, rt))
        return [w for w in rt["workers"] if w.get("status") != "ended" and
                w.get("state") != "exited"]

    def start_worker(self, name, timeout=60):
        """Start a worker with the API (not through the proxy) and wait
        until its port answers; the port."""
        st, w = self.api("POST", "/api/v1/apps/%s/start" % name)
        if st != 200:
            raise RuntimeError("start %s: %s %r" % (name, st, w))
        wait_port(w["port"], timeout)
        return w["port"]

    def session(self, name, path="/", accept="*/*", timeout=120):
        """A first request through the proxy (waits for the worker):
        (status, blockyard_route cookie, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.byd.port,
                                       timeout=timeout)
        try:
            c.request("GET", "/app/%s%s" % (name, path),
                      headers={"Accept": accept})
            r = c.getresponse()
            body = r.read()
            sid = None
            for k, v in r.getheaders():
                m = re.match(r"\s*blockyard_route=([^;]*)", v)
                if k.lower() == "set-cookie" and m:
                    sid = m.group(1)
            return r.status, sid, body
        finally:
            c.close()

    def byproxy_pid(self):
        return self.byd.helpers()["byproxy"]

    def close(self):
        self.byd.cleanup()


class Nginx:
    """Debian's nginx with a configuration of ours (as root, one worker
    process, as machine-facts 9 measured it)."""

    def __init__(self, http_block, workers=1):
        self.dir = tempfile.mkdtemp(prefix="byd-bench-nginx-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("worker_processes %d;\npid %s/nginx.pid;\n"
                    "error_log %s/error.log;\n"
                    "events { worker_connections 8192; }\n"
                    "http {\n\taccess_log off;\n%s\n}\n" %
                    (workers, self.dir, self.dir, http_block))
        subprocess.run(["nginx", "-c", self.conf], check=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with open(os.path.join(self.dir, "nginx.pid")) as f:
                    self.master = int(f.read())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        time.sleep(0.2)

    def workers(self):
        return harness.proc_children(self.master)

    def close(self):
        try:
            os.kill(self.master, signal.SIGQUIT)
            deadline = time.time() + 10
            while time.time() < deadline and harness.alive(self.master):
                time.sleep(0.05)
        except (OSError, AttributeError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port, timeout=60, path="/"):
    """Wait until an HTTP server on 127.0.0.1:port answers path."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing answers on port %d" % port)


def proc_cpu(pids):
    """utime + stime of pids, in seconds."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        t += int(fields[11]) + int(fields[12])
    return t / float(CLK_TCK)


def proc_mem(pid):
    """(RSS, PSS) of pid in KiB."""
    rss = pss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url, secs, conns, headers=None, cpu_pids=None):
    """One wrk run (-t1 --latency): requests/s, p50 and p99 in ms, the
    request count, non-2xx count, and the CPU seconds cpu_pids spent
    meanwhile (a function returning pids, or a list)."""
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd.append(url)
    pids = cpu_pids() if callable(cpu_pids) else (cpu_pids or [])
    c0 = proc_cpu(pids)
    out = subprocess.run(cmd, capture_output=True, text=True,
                         check=True).stdout
    c1 = proc_cpu(pids)
    r = {"cpu": c1 - c0, "non2xx": 0, "errors": 0}
    for line in out.splitlines():
        s = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(s[1])
        elif re.match(r"\s+50%\s", line):
            r["p50"] = _ms(s[1])
        elif re.match(r"\s+99%\s", line):
            r["p99"] = _ms(s[1])
        elif "requests in" in line:
            r["requests"] = int(s[0])
        elif "Non-2xx or 3xx responses" in line:
            r["non2xx"] = int(s[-1])
        elif "Socket errors" in line:
            r["errors"] = sum(int(x) for x in re.findall(r"\d+", line))
    if "rps" not in r:
        raise RuntimeError("wrk said:\n" + out)
    return r


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(xs):
    return statistics.median(xs)


def table(headers, rows):
    """Print rows as an aligned text table."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                        for i, c in enumerate(r)))
        if n == 0:
            print("  ".join("-" * x for x in w))


def ratio(a, b):
    try:
        return "%.2f" % (a / b)
    except (TypeError, ZeroDivisionError):
        return "-"


def dumps(obj):
    return json.dumps(obj, sort_keys=True)
