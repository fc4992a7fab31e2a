"""Start a real byd on loopback with a temporary configuration and talk to
it like a client would.  Standard library only (run with /usr/bin/python3).

The database is SQLite in the byd's directory, or with BYD_DB=postgres a
fresh database on a throwaway PostgreSQL server (pgserver.py) for every
Byd.  Byd.sql() reads and writes it either way.
"""

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("BUILD", os.path.abspath("build"))
BYD = os.path.join(BUILD, "sbin", "byd")
BYCTL = os.path.join(BUILD, "sbin", "byctl")
HELPERDIR = os.path.join(BUILD, "libexec", "blockyard")
USER = "blockyard"
DB = os.environ.get("BYD_DB", "sqlite")
if DB not in ("sqlite", "postgres"):
    raise RuntimeError("BYD_DB must be sqlite or postgres, not %r" % DB)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_children(pid):
    """Direct children of pid, from /proc."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if ppid == pid:
            kids.append(int(d))
    return kids


def proc_user(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return pwd.getpwuid(int(line.split()[2])).pw_name
    return None


def proc_cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def proc_exe(pid):
    return os.path.basename(os.readlink("/proc/%d/exe" % pid))


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2] != "Z"
    except OSError:
        return False


class Byd:
    """One byd suite in a temporary directory.

    pg: a pgserver.PgServer to use instead of BYD_DB's choice."""

    def __init__(self, extra="", management=False, pg=None):
        self.dir = tempfile.mkdtemp(prefix="byd-it-")
        os.chmod(self.dir, 0o755)  # the blockyard user must reach the db
        self.port = free_port()
        self.mport = free_port() if management else None
        self.sock = os.path.join(self.dir, "run", "byd.sock")
        self.conf = os.path.join(self.dir, "blockyard.toml")
        self.log = os.path.join(self.dir, "byd.log")
        self.db = "postgres" if pg is not None else DB
        self.dbpath = os.path.join(self.dir, "db", "blockyard.db")
        self.pg = self.dbname = self.dburl = None
        if self.db == "postgres":
            if pg is None:
                import pgserver
                pg = pgserver.shared()
            self.pg = pg
            self.dbname = pg.createdb()
            self.dburl = pg.url(self.dbname)
        self.write_config(extra)
        self.proc = None

    def config_text(self, extra=""):
        mgmt = ('management_bind = "127.0.0.1:%d"\n' % self.mport
                if self.mport else "")
        return (
            "[server]\n"
            'bind = "127.0.0.1:%d"\n' % self.port + mgmt +
            'control_socket = "%s"\n' % self.sock +
            'shutdown_timeout = "10s"\n'
            'log_level = "debug"\n'
            "\n[storage]\n"
            'bundle_server_path = "%s/bundles"\n' % self.dir +
            "\n[database]\n" + self.database_conf() + extra)

    def database_conf(self):
        """The [database] keys (without the header)."""
        if self.db == "postgres":
            return 'driver = "postgres"\nurl = "%s"\n' % self.dburl
        return 'path = "%s"\n' % self.dbpath

    def sql(self, query, *args):
        """Run one statement on this byd's database, directly; the rows
        as tuples of Python values (int, float, str, None; BYTEA comes as
        "\\x..." text).  Placeholders are '?'; on PostgreSQL the arguments
        are quoted as literals (str, int, float, None)."""
        if self.db == "sqlite":
            c = sqlite3.connect(self.dbpath, timeout=10)
            try:
                rows = c.execute(query, args).fetchall()
                c.commit()
                return [tuple(r) for r in rows]
            finally:
                c.close()
        parts = query.split("?")
        if len(parts) != len(args) + 1:
            raise ValueError("%d placeholders, %d arguments" %
                             (len(parts) - 1, len(args)))
        out = parts[0]
        for a, rest in zip(args, parts[1:]):
            if a is None:
                lit = "NULL"
            elif isinstance(a, bool):
                lit = str(int(a))
            elif isinstance(a, (int, float)):
                lit = repr(a)
            else:
                lit = "'" + str(a).replace("'", "''") + "'"
            out += lit + rest
        # rows come back typed through JSON, in column order
        words = out.lstrip().split(None, 1)
        first = words[0].upper() if words else ""
        if first in ("SELECT", "WITH", "VALUES", "TABLE"):
            wrapped = ("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" %
                       out)
        elif re.search(r"\bRETURNING\b", out, re.I):
            wrapped = ("WITH q AS (%s) SELECT coalesce(json_agg(q), '[]') "
                       "FROM q" % out)
        else:
            self.pg.psql(self.dbname, out)
            return []
        rows = json.loads(self.pg.psql(self.dbname, wrapped, raw=True))
        return [tuple(r.values()) for r in rows]

    def write_config(self, extra="", text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text(extra))

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        env = dict(os.environ)
        # LeakSanitizer cannot stop the world inside byproxy's chroot
        # (no /proc there); leaks are covered by the unit tests.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.proc = subprocess.Popen(
            [BYD, "-d", "-f", self.conf, "-X", HELPERDIR],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("byd exited with %d:\n%s" %
                                     (self.proc.returncode, self.logtext()))
            try:
                st, _, _ = self.request("GET", "/healthz", port=self.mport)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("byd not ready:\n" + self.logtext())

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def loglines(self):
        out = []
        for line in self.logtext().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def request(self, method, path, body=None, headers=None, port=None):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port,
                                       timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in
                                  r.getheaders()), data
        finally:
            c.close()

    def raw(self, data, port=None, timeout=5):
        """Send raw bytes, return everything until the server closes."""
        s = socket.create_connection(("127.0.0.1", port or self.port),
                                     timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                out += b
            return out
        finally:
            s.close()

    def byctl(self, *args, user=None, check=True):
        cmd = [BYCTL, "-s", self.sock] + list(args)
        if user:
            cmd = ["setpriv", "--reuid=" + user,
                   "--regid=" + str(pwd.getpwnam(user).pw_gid),
                   "--init-groups"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError("byctl %s failed (%d): %s" %
                                 (args, r.returncode, r.stderr))
        return r

    def token(self, user, role="viewer", *extra):
        """Mint a personal access token with byctl (creating the user)."""
        r = self.byctl("token", "create", user, "--role", role, *extra)
        return r.stdout.strip().splitlines()[-1]

    def api(self, method, path, body=None, token=None, headers=None,
            raw=None, wait=True):
        """A JSON API call: (status, headers, parsed body or bytes).
        An accepted bundle upload waits (unless wait=False) until its
        task, the dependency build, has ended, as `by deploy --wait`."""
        st, hdr, out = self._api(method, path, body, token, headers, raw)
        if (wait and method == "POST" and path.endswith("/bundles") and
                st == 202 and isinstance(out, dict) and
                out.get("task_id")):
            self.wait_task(out["task_id"], token)
        return st, hdr, out

    def wait_task(self, task_id, token, timeout=180, pause_max=0.5):
        """Poll GET /api/v1/tasks/ID until it is no longer running; the
        task object."""
        deadline = time.time() + timeout
        pause = 0.02
        while time.time() < deadline:
            st, _, t = self._api("GET", "/api/v1/tasks/" + task_id, None,
                                 token, None, None)
            if st == 429:
                time.sleep(1)
                continue
            if st != 200 or t.get("status") != "running":
                return t
            time.sleep(pause)
            pause = min(pause_max, pause * 2)
        raise AssertionError("task %s still running after %d s:\n%s" %
                             (task_id, timeout, self.logtext()[-4000:]))

    def _api(self, method, path, body, token, headers, raw):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        st, hdr, out = self.request(method, path, body=data, headers=h)
        try:
            out = json.loads(out) if out else None
        except ValueError:
            pass
        return st, hdr, out

    def helpers(self):
        """{name: pid} of byd's helper processes."""
        out = {}
        for pid in proc_children(self.proc.pid):
            try:
                out[proc_exe(pid)] = pid
            except OSError:
                pass
        return out

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("byd did not exit:\n" + self.logtext())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()

    def cleanup(self):
        self.stop()
        if self.pg is not None and self.dbname is not None:
            try:
                self.pg.dropdb(self.dbname)
            except RuntimeError:
                pass
            self.dbname = None
        shutil.rmtree(self.dir, ignore_errors=True)


class BydTestCase(unittest.TestCase):
    """A fresh byd for each test."""

    extra = ""
    management = False

    def setUp(self):
        self.byd = Byd(self.extra, self.management)
        self.byd.start()

    def tearDown(self):
        if self._outcome_failed():
            print("\n--- byd log ---\n" + self.byd.logtext()[-6000:])
        self.byd.cleanup()

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        return outcome is not None and not getattr(outcome, "success", True)
