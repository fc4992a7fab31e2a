"""Rollback to an earlier bundle, an app's sessions list and the view
counts of the runtime answer, end to end on SQLite and PostgreSQL.

Session rows come from byproxy's app proxy, which opens and ends them;
until it proxies, these tests write the rows directly (Byd.sql) and
check what the API makes of them.
"""

import unittest

from test_api_apps import ApiCase, APP_KEYS, NOT_FOUND, TIME_RE
from test_api_bundles import APP_R, targz

SESSION_KEYS = ["id", "app_id", "worker_id", "user_sub", "started_at",
                "ended_at", "status"]


class Rollback(ApiCase):
    """alice owns the apps, bob collaborates, carol has a viewer grant,
    dave is a signed-in stranger."""

    audit = True

    def upload(self, app, n, who="alice"):
        """n bundles for app, oldest first: their ids."""
        ids = []
        for i in range(n):
            st, _, out = self.api(
                "POST", "/api/v1/apps/%s/bundles" % app,
                raw=targz([("app.R", APP_R + b"# %d\n" % i)]), who=who,
                headers={"Content-Type": "application/gzip"})
            self.assertEqual(st, 202, out)
            ids.append(out["bundle_id"])
        return ids

    def grant(self, app):
        for who, role in (("bob", "collaborator"), ("carol", "viewer")):
            self.ok("POST", "/api/v1/apps/%s/access" % app,
                    {"principal": who, "kind": "user", "role": role},
                    "alice", 204)

    def rollback(self, app, bundle, who="alice", status=200,
                 message=None):
        path = "/api/v1/apps/%s/rollback" % app
        body = {"bundle_id": bundle} if bundle is not None else {}
        if status == 200:
            return self.ok("POST", path, body, who)
        return self.err("POST", path, body, who, status, message)

    def last_audit(self, action):
        lines = [l for l in self.audit_lines() if l["action"] == action]
        return lines[-1] if lines else None

    def test_rollback(self):
        app = self.create("rb")
        b1, b2 = self.upload("rb", 2)
        self.assertEqual(self.get("rb")["active_bundle"], b2)

        out = self.rollback("rb", b1)
        self.assertEqual(list(out), APP_KEYS)
        self.assertEqual(out["id"], app["id"])
        self.assertEqual(out["active_bundle"], b1)
        self.assertEqual(self.get("rb")["active_bundle"], b1)
        rows = self.db_rows("SELECT deployed_by, deployed_at FROM bundles "
                            "WHERE id = ?", b1)
        self.assertEqual(rows[0][0], "alice")
        self.assertRegex(rows[0][1], TIME_RE)
        line = self.last_audit("app.rollback")
        self.assertEqual((line["actor"], line["target"], line["detail"]),
                         ("alice", app["id"],
                          {"bundle_id": b1, "previous_bundle_id": b2}))

        # the list of bundles is unchanged, the stamp shows in it
        lst = self.ok("GET", "/api/v1/apps/rb/bundles")["bundles"]
        self.assertEqual([b["id"] for b in lst], [b2, b1])
        self.assertEqual(lst[1]["deployed_by"], "alice")

        # and forward again, by a collaborator, through the UUID
        self.grant("rb")
        out = self.rollback(app["id"], b2, who="bob")
        self.assertEqual(out["active_bundle"], b2)
        self.assertEqual(self.db_rows(
            "SELECT deployed_by FROM bundles WHERE id = ?", b2),
            [("bob",)])
        line = self.last_audit("app.rollback")
        self.assertEqual((line["actor"], line["detail"]),
                         ("bob", {"bundle_id": b2, "previous_bundle_id": b1}))

    def test_refusals(self):
        app = self.create("rbx")
        other = self.create("rbx-other")
        b1, b2 = self.upload("rbx", 2)
        (ob,) = self.upload("rbx-other", 1)
        self.grant("rbx")
        n = len(self.audit_lines())

        self.rollback("rbx", b2, status=400,
                      message="bundle is already active")
        self.rollback("rbx", ob, status=404, message="bundle not found")
        self.rollback("rbx", "no-such-bundle", status=404,
                      message="bundle not found")
        self.db_exec("UPDATE bundles SET status = 'failed' WHERE id = ?", b1)
        self.rollback("rbx", b1, status=400,
                      message="bundle is not ready (status: failed)")
        self.db_exec("UPDATE bundles SET status = 'building' WHERE id = ?",
                     b1)
        self.rollback("rbx", b1, status=400,
                      message="bundle is not ready (status: building)")
        self.db_exec("UPDATE bundles SET status = 'ready' WHERE id = ?", b1)

        # the body first, even where there is no app to see
        for ref in ("rbx", "no-such-app"):
            self.rollback(ref, None, status=400,
                          message="bundle_id is required")
            self.rollback(ref, "", status=400,
                          message="bundle_id is required")
            self.err("POST", "/api/v1/apps/%s/rollback" % ref,
                     raw=b"{nope", status=400, message="invalid JSON body")
            self.err("POST", "/api/v1/apps/%s/rollback" % ref,
                     raw=b"[]", status=400, message="invalid JSON body")
            self.err("POST", "/api/v1/apps/%s/rollback" % ref,
                     {"bundle_id": 7}, status=400,
                     message="invalid JSON body: bundle_id must be a string")
        self.rollback("no-such-app", b1, status=404, message="app not found")

        # who may: collaborator or better; the others do not see the app
        for who in ("carol", "dave"):
            out = self.rollback("rbx", b1, who=who, status=404)
            self.assertEqual(out, NOT_FOUND)
        out = self.err("POST", "/api/v1/apps/rbx/rollback",
                       {"bundle_id": b1}, who=None, status=401)
        self.assertEqual(out["message"], "authentication required")
        self.assertEqual(self.get("rbx")["active_bundle"], b2)
        self.assertEqual(self.db_rows(
            "SELECT deployed_by FROM bundles WHERE id = ?", ob),
            [("alice",)])
        # refusals leave no audit line
        self.assertNotIn("app.rollback",
                         [l["action"] for l in self.audit_lines()[n:]])

        # an admin may; a deleted app is gone
        self.assertEqual(self.rollback("rbx", b1, who="root")
                         ["active_bundle"], b1)
        self.ok("DELETE", "/api/v1/apps/rbx", status=204)
        self.rollback("rbx", b2, status=404, message="app not found")
        self.rollback(app["id"], b2, who="root", status=404,
                      message="app not found")
        self.assertEqual(other["name"], "rbx-other")


class Sessions(ApiCase):

    def add(self, sid, app_id, worker, sub, started, status="active",
            ended=None):
        self.db_exec("INSERT INTO sessions (id, app_id, worker_id, user_sub, "
                     "started_at, ended_at, status) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?)", sid, app_id, worker, sub,
                     started, ended, status)

    def ids(self, path, who="alice"):
        out = self.ok("GET", path, who=who)
        self.assertEqual(list(out), ["sessions"])
        return [s["id"] for s in out["sessions"]]

    def test_empty_and_permissions(self):
        app = self.create("sess")
        self.ok("POST", "/api/v1/apps/sess/access",
                {"principal": "bob", "kind": "user", "role": "collaborator"},
                "alice", 204)
        self.ok("POST", "/api/v1/apps/sess/access",
                {"principal": "carol", "kind": "user", "role": "viewer"},
                "alice", 204)
        for who in ("alice", "bob", "root"):
            out = self.ok("GET", "/api/v1/apps/sess/sessions", who=who)
            self.assertEqual(out, {"sessions": []})
        self.assertEqual(self.ok("GET", "/api/v1/apps/%s/sessions" %
                                 app["id"]), {"sessions": []})
        # a public app's sessions are still no viewer's business
        self.ok("PATCH", "/api/v1/apps/sess", {"access_type": "public"})
        for who in ("carol", "dave"):
            out = self.err("GET", "/api/v1/apps/sess/sessions", who=who,
                           status=404)
            self.assertEqual(out, NOT_FOUND)
        out = self.err("GET", "/api/v1/apps/sess/sessions", who=None,
                       status=401)
        self.assertEqual(out["message"], "authentication required")
        self.err("GET", "/api/v1/apps/nothing/sessions", status=404,
                 message="app not found")

    def test_rows_filters_limit(self):
        app = self.create("sess-rows")
        other = self.create("sess-other")
        aid = app["id"]
        self.add("s1", aid, "w1", "alice", "2026-01-01T00:00:01Z", "ended",
                 "2026-01-01T00:10:00Z")
        self.add("s2", aid, "w1", None, "2026-01-01T00:00:02Z", "crashed",
                 "2026-01-01T00:11:00Z")
        self.add("s3", aid, "w2", "bob", "2026-01-01T00:00:03Z")
        self.add("s4", aid, "w2", "alice", "2026-01-01T00:00:04Z")
        self.add("s9", other["id"], "w3", "alice", "2026-01-01T00:00:09Z")

        out = self.ok("GET", "/api/v1/apps/sess-rows/sessions")
        self.assertEqual([s["id"] for s in out["sessions"]],
                         ["s4", "s3", "s2", "s1"])
        for s in out["sessions"]:
            self.assertEqual(list(s), SESSION_KEYS)
        self.assertEqual(out["sessions"][3], {
            "id": "s1", "app_id": aid, "worker_id": "w1",
            "user_sub": "alice", "started_at": "2026-01-01T00:00:01Z",
            "ended_at": "2026-01-01T00:10:00Z", "status": "ended"})
        self.assertIsNone(out["sessions"][2]["user_sub"])
        self.assertIsNone(out["sessions"][0]["ended_at"])

        base = "/api/v1/apps/sess-rows/sessions"
        self.assertEqual(self.ids(base + "?user=alice"), ["s4", "s1"])
        self.assertEqual(self.ids(base + "?status=active"), ["s4", "s3"])
        self.assertEqual(self.ids(base + "?status=crashed&user="),
                         ["s2"])
        self.assertEqual(self.ids(base + "?status=ended&user=alice"),
                         ["s1"])
        self.assertEqual(self.ids(base + "?status=bogus"), [])
        self.assertEqual(self.ids(base + "?user=%ff"), [])
        self.assertEqual(self.ids(base + "?limit=2"), ["s4", "s3"])
        self.assertEqual(self.ids(base + "?limit=0"), ["s4"])
        self.assertEqual(self.ids(base + "?limit=-5"), ["s4"])
        self.assertEqual(self.ids(base + "?limit=999"),
                         ["s4", "s3", "s2", "s1"])
        self.assertEqual(self.ids(base + "?limit=two"),
                         ["s4", "s3", "s2", "s1"])

    def test_limit_default_and_cap(self):
        app = self.create("sess-many")
        # 260 rows in one statement: more than the cap, fast on both
        values = ", ".join(
            "('m%03d', '%s', 'w', NULL, '2026-01-01T00:%02d:%02dZ', "
            "'active')" % (i, app["id"], i // 60, i % 60)
            for i in range(260))
        self.db_exec("INSERT INTO sessions (id, app_id, worker_id, "
                     "user_sub, started_at, status) VALUES " + values)
        base = "/api/v1/apps/sess-many/sessions"
        ids = self.ids(base)
        self.assertEqual(len(ids), 50)
        self.assertEqual(ids[0], "m259")
        self.assertEqual(len(self.ids(base + "?limit=1000")), 200)
        self.assertEqual(len(self.ids(base + "?limit=200")), 200)
        self.assertEqual(self.ids(base + "?limit=3"),
                         ["m259", "m258", "m257"])

    def test_runtime_views(self):
        app = self.create("sess-views")
        aid = app["id"]
        rt = self.ok("GET", "/api/v1/apps/sess-views/runtime")
        self.assertEqual((rt["total_views"], rt["recent_views"],
                          rt["unique_visitors"], rt["last_deployed_at"]),
                         (0, 0, 0, None))
        self.assertEqual(rt["workers"], [])
        self.add("v1", aid, "w1", "alice", "2020-01-01T00:00:00Z", "ended",
                 "2020-01-01T01:00:00Z")
        self.add("v2", aid, "w1", "alice", "2099-01-01T00:00:00Z")
        self.add("v3", aid, "w1", None, "2099-01-01T00:00:00Z")
        self.add("v4", aid, "w1", "bob", "2099-01-01T00:00:00Z")
        st, _, out = self.api("POST", "/api/v1/apps/sess-views/bundles",
                              raw=targz([("app.R", APP_R)]), who="alice",
                              headers={"Content-Type": "application/gzip"})
        self.assertEqual(st, 202, out)
        deployed = self.db_rows("SELECT deployed_at FROM bundles WHERE "
                                "id = ?", out["bundle_id"])[0][0]
        rt = self.ok("GET", "/api/v1/apps/sess-views/runtime")
        self.assertEqual((rt["total_views"], rt["recent_views"],
                          rt["unique_visitors"], rt["last_deployed_at"]),
                         (4, 3, 2, deployed))
        self.assertEqual(rt["active_sessions"], 0)

    def test_startup_ends_active_rows(self):
        app = self.create("sess-restart")
        aid = app["id"]
        self.add("r1", aid, "w1", "alice", "2026-01-01T00:00:01Z")
        self.add("r2", aid, "w1", None, "2026-01-01T00:00:02Z")
        self.add("r3", aid, "w2", None, "2026-01-01T00:00:03Z", "crashed",
                 "2026-01-01T00:05:00Z")
        (active,), = self.db_rows(
            "SELECT COUNT(*) FROM sessions WHERE status = 'active'")
        self.restart()
        rows = dict((r[0], r[1:]) for r in self.db_rows(
            "SELECT id, status, ended_at FROM sessions WHERE app_id = ?",
            aid))
        self.assertEqual(rows["r1"][0], "ended")
        self.assertEqual(rows["r2"][0], "ended")
        self.assertRegex(rows["r1"][1], TIME_RE)
        self.assertEqual(rows["r3"], ("crashed", "2026-01-01T00:05:00Z"))
        self.assertIn("sessions: %d left active by the previous run "
                      "marked ended" % active, self.byd.logtext())
        self.assertEqual(self.db_rows(
            "SELECT COUNT(*) FROM sessions WHERE status = 'active'"),
            [(0,)])
        self.assertEqual(self.ids("/api/v1/apps/sess-restart/sessions"
                                  "?status=active"), [])


if __name__ == "__main__":
    unittest.main()
