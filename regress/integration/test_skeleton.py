"""The privilege-separated skeleton, end to end: processes and their users,
health and readiness, byctl, reload, drain, helper death, shutdown."""

import json
import os
import signal
import subprocess
import time
import unittest

from harness import (BYCTL, BYD, HELPERDIR, USER, Byd, BydTestCase, alive,
                     proc_cmdline, proc_user)


class Processes(BydTestCase):

    def test_four_processes_with_the_right_users(self):
        h = self.byd.helpers()
        self.assertEqual(sorted(h), ["byproxy", "byspawn", "bystate"])
        self.assertEqual(proc_user(self.byd.proc.pid), "root")
        self.assertEqual(proc_user(h["byproxy"]), USER)
        self.assertEqual(proc_user(h["bystate"]), USER)
        self.assertEqual(proc_user(h["byspawn"]), "root")

    def test_process_titles_show_roles(self):
        h = self.byd.helpers()
        self.assertIn("http", proc_cmdline(h["byproxy"]))
        self.assertIn("state", proc_cmdline(h["bystate"]))
        self.assertIn("spawner", proc_cmdline(h["byspawn"]))
        self.assertIn("monitor", proc_cmdline(self.byd.proc.pid))

    def test_byproxy_is_chrooted_and_cannot_regain_privileges(self):
        pid = self.byd.helpers()["byproxy"]
        root = os.readlink("/proc/%d/root" % pid)
        self.assertTrue(root.endswith("/run/empty"), root)
        with open("/proc/%d/status" % pid) as f:
            st = f.read()
        self.assertIn("NoNewPrivs:\t1", st)
        capeff = [l for l in st.splitlines() if l.startswith("CapEff:")][0]
        self.assertEqual(int(capeff.split()[1], 16), 0)

    def test_bystate_drops_groups(self):
        pid = self.byd.helpers()["bystate"]
        with open("/proc/%d/status" % pid) as f:
            st = f.read()
        groups = [l for l in st.splitlines() if l.startswith("Groups:")][0]
        gid = [l for l in st.splitlines() if l.startswith("Gid:")][0]
        self.assertNotIn(" 0 ", " " + groups.split(":", 1)[1] + " ")
        self.assertNotEqual(gid.split()[1], "0")

    def test_database_created_in_wal_mode(self):
        db = os.path.join(self.byd.dir, "db", "blockyard.db")
        self.assertTrue(os.path.exists(db))
        out = subprocess.run(["sqlite3", db, "PRAGMA journal_mode;"],
                             capture_output=True, text=True).stdout.strip()
        self.assertEqual(out, "wal")


class Health(BydTestCase):

    def test_healthz(self):
        st, hdr, body = self.byd.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(body, b"ok")

    def test_readyz(self):
        st, hdr, body = self.byd.request("GET", "/readyz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"status": "ready"})

    def test_security_and_version_headers(self):
        st, hdr, body = self.byd.request("GET", "/healthz")
        self.assertEqual(hdr["x-content-type-options"], "nosniff")
        self.assertEqual(hdr["x-frame-options"], "DENY")
        self.assertEqual(hdr["referrer-policy"],
                         "strict-origin-when-cross-origin")
        self.assertIn("x-blockyard-version", hdr)
        self.assertNotIn("strict-transport-security", hdr)

    def test_unknown_route_is_json_404(self):
        st, hdr, body = self.byd.request("GET", "/nope")
        self.assertEqual(st, 404)
        self.assertTrue(hdr["content-type"].startswith("application/json"))
        j = json.loads(body)
        self.assertEqual(j["error"], "not_found")
        self.assertIn("message", j)

    def test_api_paths_get_csp_and_no_store(self):
        st, hdr, body = self.byd.request("GET", "/api/v1/nothing-here")
        self.assertEqual(st, 404)
        self.assertEqual(hdr["cache-control"], "no-store")
        self.assertIn("default-src 'none'", hdr["content-security-policy"])

    def test_smuggling_attempt_rejected(self):
        out = self.byd.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 4\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n"
                           b"0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:80])

    def test_keepalive_and_pipelining(self):
        out = self.byd.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /readyz HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200"), 2, out)
        self.assertLess(out.index(b"\r\n\r\nok"),
                        out.index(b'"status"'))

    def test_sigusr1_drains(self):
        self.byd.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + 10
        st = None
        while time.time() < deadline:
            st, _, body = self.byd.request("GET", "/healthz")
            if st == 503:
                break
            time.sleep(0.05)
        self.assertEqual(st, 503)
        self.assertEqual(body, b"draining")
        st, _, body = self.byd.request("GET", "/readyz")
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(body)["status"], "draining")
        j = json.loads(self.byd.byctl("--json", "status").stdout)
        self.assertTrue(j["draining"])


class Management(BydTestCase):
    management = True

    def test_health_only_on_management_listener(self):
        st, _, body = self.byd.request("GET", "/healthz", port=self.byd.mport)
        self.assertEqual((st, body), (200, b"ok"))
        st, _, _ = self.byd.request("GET", "/readyz", port=self.byd.mport)
        self.assertEqual(st, 200)
        st, _, _ = self.byd.request("GET", "/healthz")
        self.assertEqual(st, 404)


class Control(BydTestCase):

    def test_status_lists_every_process(self):
        out = self.byd.byctl("status").stdout
        for name in ("byd", "byproxy", "byspawn", "bystate"):
            self.assertIn(name, out)
        self.assertIn(self.byd.conf, out)
        j = json.loads(self.byd.byctl("--json", "status").stdout)
        procs = {p["name"]: p for p in j["processes"]}
        self.assertEqual(sorted(procs),
                         ["byd", "byproxy", "byspawn", "bystate"])
        self.assertEqual(procs["byproxy"]["user"], USER)
        self.assertEqual(procs["bystate"]["user"], USER)
        self.assertEqual(procs["byspawn"]["user"], "root")
        self.assertEqual(procs["byproxy"]["pid"],
                         self.byd.helpers()["byproxy"])
        for p in procs.values():
            self.assertEqual(p["state"], "running")
            self.assertGreaterEqual(p["uptime"], 0)
        self.assertEqual(j["config_file"], self.byd.conf)
        self.assertEqual(j["schema_version"], 2)

    def test_socket_mode_and_group(self):
        st = os.stat(self.byd.sock)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        import grp
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, USER)

    def test_unknown_command_prints_usage(self):
        r = self.byd.byctl("frobnicate", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("usage", r.stderr)

    def test_log_level(self):
        r = self.byd.byctl("log", "level", "trace")
        self.assertIn("trace", r.stdout)
        r = self.byd.byctl("log", "level", "loud", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown log level", r.stderr)
        # every process takes the change and says so
        r = self.byd.byctl("log", "level", "warn")
        self.byd.request("GET", "/nope")
        deadline = time.time() + 5
        while time.time() < deadline:
            procs = {l.get("proc") for l in self.byd.loglines()
                     if "log level set to warn" in l.get("msg", "")}
            if {"byd", "byproxy", "byspawn", "bystate"} <= procs:
                break
            time.sleep(0.05)
        self.assertEqual(procs, {"byd", "byproxy", "byspawn", "bystate"})

    def test_non_member_gets_permission_error(self):
        r = self.byd.byctl("status", user="nobody", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("permission denied", r.stderr.lower())

    def test_group_member_allowed(self):
        r = self.byd.byctl("status", user=USER, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_reload(self):
        r = self.byd.byctl("reload")
        self.assertIn("reloaded", r.stdout)

    def test_sighup_with_broken_file_keeps_serving(self):
        self.byd.write_config(text="[server]\nbind = 12\n")
        self.byd.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline:
            if "reload failed" in self.byd.logtext():
                break
            time.sleep(0.05)
        self.assertIn("reload failed", self.byd.logtext())
        self.assertIn(":2:", self.byd.logtext())
        st, _, _ = self.byd.request("GET", "/healthz")
        self.assertEqual(st, 200)
        r = self.byd.byctl("reload", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bind", r.stderr)
        self.assertEqual(len(self.byd.helpers()), 3)


class Lifecycle(unittest.TestCase):

    def setUp(self):
        self.byd = Byd().start()

    def tearDown(self):
        self.byd.cleanup()

    def test_sigterm_stops_everything(self):
        pids = list(self.byd.helpers().values()) + [self.byd.proc.pid]
        self.byd.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.byd.wait_exit(), 0)
        time.sleep(0.2)
        for pid in pids:
            self.assertFalse(alive(pid), "pid %d still alive" % pid)
        self.assertFalse(os.path.exists(self.byd.sock))

    def test_killing_byproxy_stops_byd_nonzero(self):
        h = self.byd.helpers()
        os.kill(h["byproxy"], signal.SIGKILL)
        rc = self.byd.wait_exit()
        self.assertNotEqual(rc, 0)
        time.sleep(0.2)
        for pid in h.values():
            self.assertFalse(alive(pid), "pid %d still alive" % pid)
        self.assertIn("lost child", self.byd.logtext())

    def test_killing_bystate_stops_byd_nonzero(self):
        h = self.byd.helpers()
        os.kill(h["bystate"], signal.SIGKILL)
        self.assertNotEqual(self.byd.wait_exit(), 0)
        time.sleep(0.2)
        for pid in h.values():
            self.assertFalse(alive(pid))

    def test_second_byd_on_same_socket_refused(self):
        r = subprocess.run([BYD, "-d", "-f", self.byd.conf, "-X", HELPERDIR],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        st, _, _ = self.byd.request("GET", "/healthz")
        self.assertEqual(st, 200)


class Startup(unittest.TestCase):

    def setUp(self):
        self.byd = Byd()

    def tearDown(self):
        self.byd.cleanup()

    def test_check_mode_ok(self):
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stderr)

    def test_check_mode_long_option(self):
        r = subprocess.run([BYD, "-n", "--config", self.byd.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_mode_names_file_line_key(self):
        self.byd.write_config(text='[server]\nbind = "x:1"\n'
                              'shutdown_timeout = 30\n')
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.byd.conf + ":3:", r.stderr)
        self.assertIn("shutdown_timeout", r.stderr)

    def test_missing_file(self):
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf + ".nope"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(".nope", r.stderr)

    def test_not_built_feature_refused_by_name(self):
        self.byd.write_config(text=self.byd.config_text() +
                              '\n[oidc]\nissuer_url = "https://x"\n')
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("issuer_url", r.stderr)

    def test_env_override(self):
        env = dict(os.environ, BLOCKYARD_SERVER_SHUTDOWN_TIMEOUT="soon")
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("BLOCKYARD_SERVER_SHUTDOWN_TIMEOUT", r.stderr)

    def test_helper_run_by_hand_refuses(self):
        for h in ("byproxy", "byspawn", "bystate"):
            r = subprocess.run([os.path.join(HELPERDIR, h)],
                               capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 1)
            self.assertIn("started by byd", r.stderr)

    def test_bad_bwrap_path_fails_startup(self):
        self.byd.write_config(text=self.byd.config_text() +
                              '\n[process]\nbwrap_path = "/nonexistent/bwrap"\n')
        self.byd.start(wait=False)
        rc = self.byd.wait_exit()
        self.assertNotEqual(rc, 0)
        self.assertIn("bwrap_path", self.byd.logtext())

    def test_port_in_use_fails_clearly(self):
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.byd.port))
        s.listen(1)
        try:
            self.byd.start(wait=False)
            self.assertNotEqual(self.byd.wait_exit(), 0)
            self.assertIn("bind", self.byd.logtext())
        finally:
            s.close()


class NonRoot(unittest.TestCase):
    """byd started by an ordinary user: everything runs as that user."""

    def test_runs_as_invoking_user_with_warning(self):
        import pwd
        import shutil
        import tempfile
        from harness import free_port, proc_children, proc_user
        pw = pwd.getpwnam(USER)
        d = tempfile.mkdtemp(prefix="byd-nr-")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        port = free_port()
        conf = os.path.join(d, "b.toml")
        with open(conf, "w") as f:
            f.write('[server]\nbind = "127.0.0.1:%d"\n'
                    'control_socket = "%s/run/byd.sock"\n'
                    '[database]\npath = "%s/db/b.db"\n'
                    '[storage]\nbundle_server_path = "%s/bundles"\n'
                    % (port, d, d, d))
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        log = open(os.path.join(d, "log"), "wb")
        p = subprocess.Popen(
            ["setpriv", "--reuid=" + USER, "--regid=%d" % pw.pw_gid,
             "--clear-groups", BYD, "-d", "-f", conf, "-X", HELPERDIR],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            import http.client
            deadline = time.time() + 20
            st = None
            while time.time() < deadline and st != 200:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port,
                                                   timeout=2)
                    c.request("GET", "/readyz")
                    st = c.getresponse().status
                    c.close()
                except OSError:
                    time.sleep(0.05)
            self.assertEqual(st, 200)
            kids = proc_children(p.pid)
            self.assertEqual(len(kids), 3)
            for pid in kids + [p.pid]:
                self.assertEqual(proc_user(pid), USER)
            with open(os.path.join(d, "log")) as f:
                self.assertIn("not started as root", f.read())
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(20), 0)
            log.close()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
