"""A throwaway PostgreSQL server for the integration tests.

initdb into a temporary directory, pg_ctl start listening only on a Unix
socket in that directory (mode 0755, so bystate, running as the
blockyard user, reaches it), trust authentication for the role "test".
As root, initdb and pg_ctl run as the postgres user: initdb refuses root.

shared() is the one server of a test run, started on first use and
stopped at exit.  Each Byd gets its own database on it (createdb).  A
test that stops the server makes its own PgServer instead.

A guardian shell waits on a pipe from this process; when the pipe
closes, which happens however Python ends, it stops the server and
removes the directory.  Standard library only.
"""

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile

PORT = 5432         # socket only, in our own directory: no clashes
ROLE = "test"


def pgbin():
    """$BYSTATE_PGBIN, or the newest /usr/lib/postgresql/N/bin."""
    if os.environ.get("BYSTATE_PGBIN"):
        return os.environ["BYSTATE_PGBIN"]
    found = []
    for p in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        m = re.match(r"/usr/lib/postgresql/(\d+)", p)
        if m:
            found.append((int(m.group(1)), os.path.dirname(p)))
    if not found:
        raise RuntimeError("no PostgreSQL server programs in "
                           "/usr/lib/postgresql/*/bin: run "
                           "etc/install-deps (package postgresql)")
    return max(found)[1]


class PgServer:
    """One cluster in a temporary directory."""

    def __init__(self):
        self.bin = pgbin()
        self.dir = tempfile.mkdtemp(prefix="byd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = PORT
        self.as_pg = []
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_pg = ["setpriv", "--reuid=postgres",
                          "--regid=postgres", "--init-groups"]
        stop = " ".join(self.as_pg + [
            os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m",
            "immediate", "-w", "stop"])
        self.guardian = subprocess.Popen(
            ["/bin/sh", "-c", "cat >/dev/null; %s >/dev/null 2>&1; "
             "rm -rf '%s'" % (stop, self.dir)],
            stdin=subprocess.PIPE, start_new_session=True)
        self.running = False
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", ROLE,
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self.start()

    def _run(self, prog, *args):
        r = subprocess.run(self.as_pg + [os.path.join(self.bin, prog)] +
                           list(args), capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (
                prog, r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l",
                  os.path.join(self.dir, "server.log"), "-o",
                  "-c listen_addresses= -p %d -k %s -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off"
                  % (self.port, self.dir), "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
        self.running = False

    def url(self, db):
        return "postgresql:///%s?host=%s&port=%d&user=%s" % (
            db, self.dir, self.port, ROLE)

    def psql(self, db, sql, raw=False):
        """Run SQL in database db; the rows, each a list of strings (NULL
        and '' both as ''), or with raw the output as it is."""
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t",
             "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p",
             str(self.port), "-U", ROLE, "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("psql %s: %s" % (sql, r.stderr.strip()))
        if raw:
            return r.stdout
        return [line.split("\t") for line in r.stdout.splitlines()]

    def createdb(self):
        """A new, empty database; its name."""
        name = "byd_" + secrets.token_hex(6)
        self.psql("postgres", "CREATE DATABASE %s" % name)
        return name

    def dropdb(self, name):
        if self.running:
            self.psql("postgres",
                      "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.guardian is None:
            return
        try:
            if self.running:
                self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.guardian.stdin.close()
        self.guardian.wait(60)
        self.guardian = None
        shutil.rmtree(self.dir, ignore_errors=True)


_shared = None


def shared():
    """The run's server, started on first use."""
    global _shared
    if _shared is None:
        _shared = PgServer()
        atexit.register(_shared.close)
    return _shared
