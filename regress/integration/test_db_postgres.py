"""byd on PostgreSQL: bystate migrates a database on a real server,
status and readiness say so, a server restart is survived, passwords
stay out of the log.

These tests run in either pass of run-integration: they bring their own
server (they stop and start it), not BYD_DB's.
"""

import json
import os
import time
import unittest

import pgserver
from harness import USER, Byd, proc_user

TABLES = ["app_access", "app_aliases", "app_data_mounts", "app_tags",
          "apps", "blockyard_ports", "blockyard_sessions",
          "blockyard_uids", "blockyard_workers", "bundle_logs", "bundles",
          "personal_access_tokens", "schema_migrations", "sessions",
          "tags", "users"]


class OnPostgres(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pg = pgserver.PgServer()

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def setUp(self):
        if not self.pg.running:
            self.pg.start()
        self.byd = Byd(pg=self.pg)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            print("\n--- byd log ---\n" + self.byd.logtext()[-6000:])
            print("\n--- postgres log ---\n" + self.pg.log()[-3000:])
        if not self.pg.running:
            self.pg.start()
        self.byd.cleanup()

    def wait_readyz(self, status, timeout=10):
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st, _, body = self.byd.request("GET", "/readyz")
            if st == status:
                return body
            time.sleep(0.05)
        self.fail("/readyz stayed %s, wanted %d" % (st, status))

    def test_config_names_postgres(self):
        with open(self.byd.conf) as f:
            conf = f.read()
        self.assertIn('driver = "postgres"', conf)
        self.assertIn('url = "%s"' % self.byd.dburl, conf)

    def test_status_shows_driver_and_schema_version(self):
        self.byd.start()
        out = self.byd.byctl("status").stdout
        self.assertIn("schema version: 2\n", out)
        self.assertIn("database:       postgres\n", out)
        j = json.loads(self.byd.byctl("--json", "status").stdout)
        self.assertEqual(j["schema_version"], 2)
        self.assertEqual(j["database"], "postgres")

    def test_tables_are_in_the_postgres_database(self):
        self.byd.start()
        rows = self.byd.sql("SELECT tablename FROM pg_tables WHERE "
                            "schemaname = 'public' ORDER BY 1")
        self.assertEqual([r[0] for r in rows], TABLES)
        self.assertEqual(self.byd.sql("SELECT version, name FROM "
                                      "schema_migrations ORDER BY 1"),
                         [(1, "001_initial"), (2, "002_bundle_seq")])
        self.assertEqual(self.byd.sql(
            "SELECT data_type FROM information_schema.columns WHERE "
            "table_name = 'personal_access_tokens' AND column_name = "
            "'token_hash'"), [("bytea",)])
        # and no SQLite file on the side
        self.assertFalse(os.path.exists(self.byd.dbpath))
        self.assertFalse(os.path.exists(os.path.dirname(self.byd.dbpath)))

    def test_bystate_connects_as_blockyard_over_the_socket(self):
        self.byd.start()
        self.assertEqual(proc_user(self.byd.helpers()["bystate"]), USER)
        rows = self.pg.psql("postgres", "SELECT count(*), min(usename) "
                            "FROM pg_stat_activity WHERE datname = '%s' "
                            "AND application_name = 'bystate'" %
                            self.byd.dbname)
        self.assertEqual(rows, [["1", "test"]])
        self.assertIn("database ready (postgres postgresql:///%s" %
                      self.byd.dbname, self.byd.logtext())

    def test_readyz_follows_the_server(self):
        self.byd.start()
        self.assertEqual(json.loads(self.wait_readyz(200)),
                         {"status": "ready"})
        token = self.byd.token("alice", "admin")
        self.pg.stop()
        self.wait_readyz(503)
        self.assertIn("database not answering", self.byd.logtext())
        # the suite stays up while the database is away
        st, _, _ = self.byd.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.pg.start()
        self.wait_readyz(200)
        self.assertIn("connected again", self.byd.logtext())
        # the data is still there, through the new connection
        st, _, body = self.byd.api("GET", "/api/v1/users/me", token=token)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["sub"], "alice")
        self.assertEqual(self.byd.byctl("status").returncode, 0)

    def test_restart_keeps_the_schema(self):
        self.byd.start()
        self.byd.token("bob", "viewer")
        self.byd.stop()
        self.byd.start()
        self.assertIn("schema version 2, up to date", self.byd.logtext())
        self.assertEqual(self.byd.sql("SELECT count(*) FROM "
                                      "schema_migrations"), [(2,)])
        self.assertEqual(self.byd.sql("SELECT sub FROM users"), [("bob",)])

    def test_password_stays_out_of_the_log(self):
        # trust authentication ignores the password; messages must too
        self.byd.dburl = ("postgresql://%s:pg-s3cret@/%s?host=%s&port=%d" %
                          (pgserver.ROLE, self.byd.dbname, self.pg.dir,
                           self.pg.port))
        self.byd.write_config()
        self.byd.start()
        self.pg.stop()
        self.wait_readyz(503)
        self.pg.start()
        self.wait_readyz(200)
        self.byd.stop()
        log = self.byd.logtext()
        self.assertIn("pg-s3cret", open(self.byd.conf).read())
        self.assertNotIn("pg-s3cret", log)
        self.assertIn("%s:xxxxx@" % pgserver.ROLE, log)

    def test_unreachable_database_fails_start_clearly(self):
        self.byd.dburl = ("postgresql://%s:pg-s3cret@/nosuchdb?host=%s&"
                          "port=%d" % (pgserver.ROLE, self.pg.dir,
                                       self.pg.port))
        self.byd.write_config()
        self.byd.start(wait=False)
        self.assertNotEqual(self.byd.wait_exit(), 0)
        errors = [l["msg"] for l in self.byd.loglines()
                  if l.get("proc") == "bystate" and l["level"] == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn('database "nosuchdb" does not exist', errors[0])
        self.assertIn("%s:xxxxx@" % pgserver.ROLE, errors[0])
        self.assertNotIn("pg-s3cret", self.byd.logtext())

    def test_check_mode_accepts_postgres(self):
        import subprocess
        from harness import BYD
        r = subprocess.run([BYD, "-n", "-f", self.byd.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
