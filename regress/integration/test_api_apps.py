"""The apps API end to end: create, list (search, tags, pagination,
deleted), get by id, name and alias, update and its validation, rename
with aliases, soft delete, restore, purge, enable/disable, the
permission matrix, the audit lines, and malformed input.

Each class shares one byd (ApiCase); tests in a class use their own app
names.  test_api_access.py and test_api_tags.py import ApiCase.
"""

import itertools
import json
import os
import re
import sqlite3
import stat
import subprocess
import time
import unittest

from harness import Byd

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

APP_KEYS = ["id", "name", "owner", "access_type", "active_bundle",
            "max_workers_per_app", "max_sessions_per_worker", "memory_limit",
            "cpu_limit", "title", "description", "pre_warmed_sessions",
            "enabled", "refresh_schedule", "image", "runtime", "created_at",
            "updated_at", "status", "tags"]
ITEM_KEYS = ["id", "name", "owner", "access_type", "active_bundle", "title",
             "description", "enabled", "status", "relation", "tags",
             "created_at", "updated_at"]

# who: (user, role).  In the permission tests alice owns, bob collaborates,
# carol has a viewer grant, dave is a signed-in stranger.
USERS = {"root": "admin", "alice": "publisher", "bob": "publisher",
         "carol": "viewer", "dave": "viewer", "erin": "publisher"}

NOT_FOUND = {"error": "not_found", "message": "app not found"}

_xff = itertools.count(1)


class ApiCase(unittest.TestCase):
    """One byd per class, tokens for USERS, and an api() that names the
    caller.  Every request comes from its own address behind a trusted
    proxy, so the per-address rate limit (120/min) stays out of the way
    of tests that are not about it."""

    soft_delete = None      # storage.soft_delete_retention
    audit = False           # [audit] path in the byd's directory
    users = USERS

    @classmethod
    def setUpClass(cls):
        cls.byd = Byd()
        text = cls.byd.config_text()
        text = text.replace(
            "[server]\n",
            '[server]\ntrusted_proxies = ["127.0.0.1/32", "::1/128"]\n', 1)
        if cls.soft_delete:
            text = text.replace(
                "[storage]\n",
                '[storage]\nsoft_delete_retention = "%s"\n' %
                cls.soft_delete, 1)
        cls.audit_path = os.path.join(cls.byd.dir, "audit", "audit.log")
        if cls.audit:
            text += '\n[audit]\npath = "%s"\n' % cls.audit_path
        cls.byd.write_config(text=text)
        try:
            cls.byd.start()
            cls.tok = {u: cls.byd.token(u, r) for u, r in cls.users.items()}
        except Exception:
            print(cls.byd.logtext()[-4000:])
            cls.byd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.byd.cleanup()

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            print("\n--- byd log ---\n" + self.byd.logtext()[-6000:])

    # ---- helpers ----

    def api(self, method, path, body=None, who=None, raw=None,
            headers=None):
        h = {"X-Forwarded-For": "10.%d.%d.%d" % divmod_ip(next(_xff))}
        h.update(headers or {})
        token = self.tok[who] if who else None
        return self.byd.api(method, path, body=body, token=token, raw=raw,
                            headers=h)

    def ok(self, method, path, body=None, who="alice", status=200,
           raw=None):
        st, hdr, out = self.api(method, path, body, who, raw)
        self.assertEqual(st, status, "%s %s as %s: %r" %
                         (method, path, who, out))
        return out

    def err(self, method, path, body=None, who="alice", status=400,
            message=None, code=None, raw=None):
        st, hdr, out = self.api(method, path, body, who, raw)
        self.assertEqual(st, status, "%s %s as %s: %r" %
                         (method, path, who, out))
        self.assertIsInstance(out, dict, out)
        if code is None:
            code = {400: "bad_request", 401: "unauthorized",
                    403: "forbidden", 404: "not_found",
                    409: "conflict"}.get(status)
        if code is not None:
            self.assertEqual(out.get("error"), code, out)
        if message is not None:
            self.assertEqual(out.get("message"), message, out)
        self.assertTrue(hdr["content-type"].startswith("application/json"))
        return out

    def create(self, name, who="alice", **patch):
        app = self.ok("POST", "/api/v1/apps", {"name": name}, who, 201)
        if patch:
            app = self.ok("PATCH", "/api/v1/apps/" + app["id"], patch, who)
        return app

    def get(self, ref, who="alice"):
        return self.ok("GET", "/api/v1/apps/" + ref, who=who)

    def names(self, query="", who="alice"):
        out = self.ok("GET", "/api/v1/apps" + query, who=who)
        return [a["name"] for a in out["apps"]]

    def db_url(self):
        """("sqlite", path) or ("postgres", url) from the configuration."""
        with open(self.byd.conf) as f:
            conf = f.read()
        if re.search(r'driver\s*=\s*"postgres"', conf):
            m = re.search(r'^url\s*=\s*"([^"]*)"', conf, re.M)
            return ("postgres", m.group(1)) if m else (None, None)
        path = os.path.join(self.byd.dir, "db", "blockyard.db")
        return ("sqlite", path) if os.path.exists(path) else (None, None)

    def sqlite(self):
        """The SQLite file, or None when the suite runs on PostgreSQL."""
        kind, where = self.db_url()
        return where if kind == "sqlite" else None

    def db_rows(self, sql, *args, write=False):
        """Run SQL ('?' placeholders) on the suite's database directly:
        the harness's Byd.sql where it has one, else SQLite through the
        sqlite3 module and PostgreSQL through psql (the arguments there
        are UUIDs or simple words, checked below)."""
        if hasattr(self.byd, "sql"):
            return self.byd.sql(sql, *args)
        kind, where = self.db_url()
        if kind == "sqlite":
            c = sqlite3.connect(where, timeout=10)
            try:
                rows = c.execute(sql, args).fetchall()
                c.commit()
                return rows
            finally:
                c.close()
        if kind != "postgres":
            return None
        for a in args:
            self.assertRegex(str(a), r"^[A-Za-z0-9_.:-]*$")
            sql = sql.replace("?", "'%s'" % a, 1)
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-d", where,
                            "-c", sql],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = []
        for line in r.stdout.splitlines():
            rows.append(tuple(int(v) if re.match(r"^-?\d+$", v) else v
                              for v in line.split("\t")))
        return rows

    def db_exec(self, sql, *args):
        self.db_rows(sql, *args, write=True)

    def restart(self):
        self.byd.stop()
        self.byd.start()

    def audit_lines(self):
        try:
            with open(self.audit_path) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []


def divmod_ip(n):
    return (n >> 16) & 255, (n >> 8) & 255, n & 255


class Create(ApiCase):

    def test_create_shape(self):
        app = self.ok("POST", "/api/v1/apps", {"name": "shape"}, "alice",
                      201)
        self.assertEqual(list(app), APP_KEYS)
        self.assertRegex(app["id"], UUID_RE)
        self.assertRegex(app["created_at"], TIME_RE)
        self.assertEqual(app["updated_at"], app["created_at"])
        self.assertEqual(
            {k: v for k, v in app.items()
             if k not in ("id", "created_at", "updated_at")},
            {"name": "shape", "owner": "alice", "access_type": "acl",
             "active_bundle": None, "max_workers_per_app": None,
             "max_sessions_per_worker": 1, "memory_limit": None,
             "cpu_limit": None, "title": None, "description": None,
             "pre_warmed_sessions": 0, "enabled": True,
             "refresh_schedule": "", "image": "", "runtime": "",
             "status": "stopped", "tags": []})
        # admins and publishers create; unknown fields are ignored
        self.ok("POST", "/api/v1/apps", {"name": "by-admin"}, "root", 201)
        a = self.ok("POST", "/api/v1/apps",
                    {"name": "extra-field", "bogus": [1], "title": "t"},
                    "erin", 201)
        self.assertEqual(a["owner"], "erin")
        self.assertIsNone(a["title"])    # create takes only the name

    def test_create_errors(self):
        path = "/api/v1/apps"
        self.err("POST", path, {"name": "x"}, None, 401,
                 "authentication required", "unauthorized")
        st, _, out = self.byd.api("POST", path, {"name": "x"},
                                  token="by_nonsense")
        self.assertEqual((st, out["message"]),
                         (401, "invalid or expired token"))
        self.err("POST", path, {"name": "x"}, "dave", 403,
                 "insufficient permissions")
        # the reference's order: 401 and 403 before the body is read
        self.err("POST", path, None, None, 401, raw=b"{nope")
        self.err("POST", path, None, "carol", 403, raw=b"{nope")
        for raw in (b"", b"{nope", b"[]", b'"name"', b"null",
                    b'{"name":"a","name":"b"}', b'{"name":"a"} trailing'):
            self.err("POST", path, None, "alice", 400, "invalid JSON body",
                     raw=raw)
        out = self.err("POST", path, {"name": 5})
        self.assertEqual(out["message"],
                         "invalid JSON body: name must be a string")
        for name, msg in [
                ("", "name must be 1-63 characters"),
                (None, "name must be 1-63 characters"),
                ("a" * 64, "name must be 1-63 characters"),
                ("Caps", "name must contain only lowercase letters, "
                 "digits, and hyphens"),
                ("a_b", "name must contain only lowercase letters, "
                 "digits, and hyphens"),
                ("caf\u00e9", "name must contain only lowercase letters, "
                 "digits, and hyphens"),
                ("1abc", "name must start with a lowercase letter"),
                ("-abc", "name must start with a lowercase letter"),
                ("abc-", "name must not end with a hyphen")]:
            self.err("POST", path, {"name": name}, "alice", 400, msg)
        self.err("POST", path, {}, "alice", 400,
                 "name must be 1-63 characters")
        self.ok("POST", path, {"name": "a" * 63}, "alice", 201)
        self.ok("POST", path, {"name": "dup"}, "alice", 201)
        self.err("POST", path, {"name": "dup"}, "bob", 409,
                 'app name "dup" already exists')
        # none of the failures created anything
        names = self.names(who="root")
        self.assertEqual(names.count("dup"), 1)
        for n in ("x", "caps", "a_b", "1abc", "abc-", "-abc"):
            self.assertNotIn(n, names)

    def test_get_by_id_name_and_unknown(self):
        app = self.create("lookup", title="T")
        by_id = self.get(app["id"])
        by_name = self.get("lookup")
        self.assertEqual(by_id, by_name)
        self.assertEqual(list(by_id), APP_KEYS + ["relation", "data_mounts"])
        self.assertEqual(by_id["relation"], "owner")
        self.assertEqual(by_id["data_mounts"], [])
        self.assertEqual(by_id["title"], "T")
        for ref in ("nope", "00000000-0000-4000-8000-000000000000",
                    "%27%3B%20DROP%20TABLE%20apps%3B%20--", "%C3%28"):
            out = self.err("GET", "/api/v1/apps/" + ref, who="alice",
                           status=404)
            self.assertEqual(out, NOT_FOUND)
        self.err("GET", "/api/v1/apps/lookup", who=None, status=401)

    def test_headers(self):
        st, hdr, _ = self.api("GET", "/api/v1/apps", who="alice")
        self.assertEqual(st, 200)
        self.assertEqual(hdr["cache-control"], "no-store")
        self.assertEqual(hdr["content-security-policy"],
                         "default-src 'none'; frame-ancestors 'none'")
        self.assertIn("x-blockyard-version", hdr)

    def test_oversized_bodies(self):
        # beyond 1 MiB the HTTP core refuses the body
        big = b'{"name":"' + b"a" * (1024 * 1024) + b'"}'
        st, _, out = self.api("POST", "/api/v1/apps", raw=big, who="alice")
        self.assertEqual(st, 413)
        self.assertEqual(out["error"], "payload_too_large")
        # just below it, the whole body reaches bystate (one message
        # carries any body the HTTP core accepts)
        mid = json.dumps({"title": "x" * (1000 * 1024)}).encode()
        st, _, out = self.api("PATCH", "/api/v1/apps/nothing", raw=mid,
                              who="alice")
        self.assertEqual(st, 404)
        # a large field that fits is stored whole
        app = self.create("big-title")
        t = "\u00e9" * 50000
        self.assertEqual(self.ok("PATCH", "/api/v1/apps/big-title",
                                 {"title": t})["title"], t)
        self.assertEqual(self.get(app["id"])["title"], t)


class ListApps(ApiCase):
    """Pagination, ordering, search and the tag filter, with a user (erin)
    whose list holds only her own apps."""

    def setUp(self):
        if getattr(type(self), "made", False):
            return
        type(self).made = True
        for i in range(7):
            self.create("page-%d" % i, who="erin")

    def page(self, query):
        return self.ok("GET", "/api/v1/apps" + query, who="erin")

    def test_pagination(self):
        out = self.page("")
        self.assertEqual((out["total"], out["page"], out["per_page"]),
                         (7, 1, 25))
        self.assertEqual(len(out["apps"]), 7)
        self.assertEqual(list(out), ["apps", "total", "page", "per_page"])
        self.assertEqual(list(out["apps"][0]), ITEM_KEYS)
        seen = []
        for p in (1, 2, 3, 4):
            out = self.page("?per_page=2&page=%d" % p)
            self.assertEqual((out["total"], out["page"], out["per_page"]),
                             (7, p, 2))
            seen += [a["name"] for a in out["apps"]]
        self.assertEqual(len(seen), 7)
        self.assertEqual(sorted(seen), ["page-%d" % i for i in range(7)])
        first = [a["name"] for a in self.page("?per_page=2")["apps"]]
        # a page below 1 is the first page, echoed as sent
        for raw, echo in (("0", 0), ("-1", -1), ("-99999", -99999)):
            out = self.page("?per_page=2&page=" + raw)
            self.assertEqual(out["page"], echo)
            self.assertEqual([a["name"] for a in out["apps"]], first)
        for raw in ("abc", "", "1.5", "99999999999999999999", "0x10",
                    "%20"):
            out = self.page("?per_page=2&page=" + raw)
            self.assertEqual(out["page"], 1, raw)
        for raw in ("1000000", "9223372036854775807"):
            out = self.page("?per_page=100&page=" + raw)
            self.assertEqual((out["apps"], out["total"]), ([], 7))
        for raw, pp in (("0", 1), ("-5", 1), ("1", 1), ("101", 100),
                        ("100", 100), ("abc", 25), ("", 25),
                        ("99999999999999999999", 25)):
            out = self.page("?per_page=" + raw)
            self.assertEqual(out["per_page"], pp, raw)
            self.assertEqual(len(out["apps"]), min(pp, 7))

    def test_order_updated_desc(self):
        time.sleep(1.1)
        self.ok("PATCH", "/api/v1/apps/page-3", {"title": "touched"},
                who="erin")
        names = [a["name"] for a in self.page("")["apps"]]
        self.assertEqual(names[0], "page-3")
        # ties (same second) in name order
        self.assertEqual(names[1:], sorted(names[1:]))

    def test_search(self):
        self.create("srch-one", who="erin", title="Sales Dashboard")
        self.create("srch-two", who="erin",
                    description="quarterly SALES report")
        self.create("srch-pct", who="erin", title="100% done_ok")
        self.create("srch-meta", who="erin",
                    title="'; DROP TABLE apps; --",
                    description="back\\slash")

        def names(q):
            return sorted(a["name"] for a in self.page(q)["apps"])

        self.assertEqual(names("?search=sales"), ["srch-one", "srch-two"])
        self.assertEqual(names("?search=SaLeS"), ["srch-one", "srch-two"])
        self.assertEqual(names("?search=srch-o"), ["srch-one"])
        # LIKE metacharacters are literal
        self.assertEqual(names("?search=%25"), ["srch-pct"])
        self.assertEqual(names("?search=_"), ["srch-pct"])
        self.assertEqual(names("?search=0%25+d"), ["srch-pct"])
        self.assertEqual(names("?search=page_"), [])
        self.assertEqual(names("?search=%5C"), ["srch-meta"])
        self.assertEqual(names("?search=%27%3B+DROP+TABLE+apps%3B+--"),
                         ["srch-meta"])
        self.assertEqual(names("?search=%FF"), [])      # not UTF-8
        self.assertEqual(names("?search=nothing-like-it"), [])
        out = self.page("?search=srch&per_page=1")
        self.assertEqual((out["total"], len(out["apps"])), (4, 1))
        # stored verbatim, the table still there
        app = self.get("srch-meta", who="erin")
        self.assertEqual(app["title"], "'; DROP TABLE apps; --")
        self.assertEqual(app["description"], "back\\slash")
        if self.db_url()[0]:
            self.assertEqual(self.db_rows(
                "SELECT title FROM apps WHERE name = 'srch-meta'"),
                [("'; DROP TABLE apps; --",)])

    def test_tag_filter_and_items(self):
        tag = self.ok("POST", "/api/v1/tags", {"name": "finance"}, "root",
                      201)
        other = self.ok("POST", "/api/v1/tags", {"name": "alpha"}, "root",
                        201)
        self.create("tagged", who="erin")
        for t in (tag, other):
            self.ok("POST", "/api/v1/apps/tagged/tags", {"tag_id": t["id"]},
                    "erin", 204)
        out = self.page("?tag=finance")
        self.assertEqual([a["name"] for a in out["apps"]], ["tagged"])
        self.assertEqual(out["total"], 1)
        self.assertEqual(out["apps"][0]["tags"], ["alpha", "finance"])
        self.assertEqual(out["apps"][0]["relation"], "owner")
        self.assertEqual(self.page("?tag=fin")["apps"], [])
        self.assertEqual(self.page("?tag=finance&search=nomatch")["total"],
                         0)


class Visibility(ApiCase):

    def test_list_visibility_and_relations(self):
        self.create("vis-acl")
        self.create("vis-grant-c")
        self.create("vis-grant-v")
        self.create("vis-logged", access_type="logged_in")
        self.create("vis-public", access_type="public")
        self.ok("POST", "/api/v1/apps/vis-grant-c/access",
                {"principal": "bob", "kind": "user",
                 "role": "collaborator"}, "alice", 204)
        self.ok("POST", "/api/v1/apps/vis-grant-v/access",
                {"principal": "bob", "kind": "user", "role": "viewer"},
                "alice", 204)

        def rel(who):
            out = self.ok("GET", "/api/v1/apps", who=who)
            return {a["name"]: a["relation"] for a in out["apps"]}

        self.assertEqual(rel("alice"), {
            "vis-acl": "owner", "vis-grant-c": "owner",
            "vis-grant-v": "owner", "vis-logged": "owner",
            "vis-public": "owner"})
        self.assertEqual(rel("bob"), {
            "vis-grant-c": "collaborator", "vis-grant-v": "viewer",
            "vis-logged": "viewer", "vis-public": "viewer"})
        self.assertEqual(rel("dave"), {"vis-logged": "viewer",
                                       "vis-public": "viewer"})
        self.assertEqual(set(rel("root").values()), {"admin"})
        self.assertEqual(len(rel("root")), 5)
        self.assertEqual(self.get("vis-public", "dave")["relation"],
                         "viewer")
        self.assertEqual(self.get("vis-grant-c", "bob")["relation"],
                         "collaborator")
        self.assertEqual(self.get("vis-acl", "root")["relation"], "admin")
        self.err("GET", "/api/v1/apps/vis-acl", who="dave", status=404,
                 message="app not found")

    def test_deleted_listing_is_admin_only(self):
        self.err("GET", "/api/v1/apps?deleted=true", who="alice",
                 status=403, message="admin only")
        out = self.ok("GET", "/api/v1/apps?deleted=true", who="root")
        self.assertEqual(out, [])
        # anything but "true" is the normal list
        out = self.ok("GET", "/api/v1/apps?deleted=1", who="alice")
        self.assertIn("apps", out)


class Permissions(ApiCase):
    """Every per-app endpoint against admin, owner, collaborator, viewer
    grant, a signed-in stranger and no credentials."""

    WHO = ["root", "alice", "bob", "carol", "dave", None]

    def setUp(self):
        if getattr(type(self), "made", False):
            return
        type(self).made = True
        self.create("perm")
        self.ok("POST", "/api/v1/apps/perm/access",
                {"principal": "bob", "kind": "user", "role": "collaborator"},
                "alice", 204)
        self.ok("POST", "/api/v1/apps/perm/access",
                {"principal": "carol", "kind": "user", "role": "viewer"},
                "alice", 204)
        type(self).tag = self.ok("POST", "/api/v1/tags", {"name": "ptag"},
                                 "root", 201)

    def matrix(self, method, path, body, expect):
        """expect: statuses for WHO, in order."""
        for who, want in zip(self.WHO, expect):
            st, _, out = self.api(method, path, body, who)
            self.assertEqual(st, want, "%s %s as %s: %r" %
                             (method, path, who, out))
            if want == 404:
                self.assertEqual(out, NOT_FOUND)
            if want == 401:
                self.assertEqual(out["error"], "unauthorized")

    def test_read_endpoints(self):
        self.matrix("GET", "/api/v1/apps/perm", None,
                    [200, 200, 200, 200, 404, 401])
        for who, rel in (("root", "admin"), ("alice", "owner"),
                         ("bob", "collaborator"), ("carol", "viewer")):
            self.assertEqual(self.get("perm", who)["relation"], rel)
        self.matrix("GET", "/api/v1/apps/perm/tags", None,
                    [200, 200, 200, 200, 404, 401])
        self.matrix("GET", "/api/v1/apps/perm/access", None,
                    [200, 200, 404, 404, 404, 401])
        self.matrix("GET", "/api/v1/apps", None,
                    [200, 200, 200, 200, 200, 401])
        self.matrix("GET", "/api/v1/tags", None,
                    [200, 200, 200, 200, 200, 401])

    def test_collaborator_endpoints(self):
        self.matrix("PATCH", "/api/v1/apps/perm", {"title": "x"},
                    [200, 200, 200, 404, 404, 401])
        self.matrix("POST", "/api/v1/apps/perm/disable", None,
                    [200, 200, 200, 404, 404, 401])
        self.matrix("POST", "/api/v1/apps/perm/enable", None,
                    [200, 200, 200, 404, 404, 401])
        tid = self.tag["id"]
        self.matrix("POST", "/api/v1/apps/perm/tags", {"tag_id": tid},
                    [204, 204, 204, 404, 404, 401])
        for who, want in zip(self.WHO, [204, 204, 204, 404, 404, 401]):
            if want == 204:
                self.ok("POST", "/api/v1/apps/perm/tags", {"tag_id": tid},
                        "alice", 204)
            st, _, out = self.api("DELETE", "/api/v1/apps/perm/tags/" + tid,
                                  who=who)
            self.assertEqual(st, want, (who, out))

    def test_owner_endpoints(self):
        self.matrix("PATCH", "/api/v1/apps/perm", {"access_type": "acl"},
                    [200, 200, 404, 404, 404, 401])
        # a rename needs the owner; the same name is no rename
        self.matrix("PATCH", "/api/v1/apps/perm", {"name": "perm"},
                    [200, 200, 200, 404, 404, 401])
        for who, want in (("bob", 404), ("carol", 404), ("dave", 404)):
            self.err("PATCH", "/api/v1/apps/perm", {"name": "perm-x"}, who,
                     want, "app not found")
        self.ok("PATCH", "/api/v1/apps/perm", {"name": "perm-x"}, "alice")
        self.ok("PATCH", "/api/v1/apps/perm-x", {"name": "perm"}, "root")
        self.matrix("POST", "/api/v1/apps/perm/access",
                    {"principal": "zed", "kind": "user", "role": "viewer"},
                    [204, 204, 404, 404, 404, 401])
        for who, want in zip(self.WHO, [204, 204, 404, 404, 404, 401]):
            if want == 204:
                self.ok("POST", "/api/v1/apps/perm/access",
                        {"principal": "zed", "kind": "user",
                         "role": "viewer"}, "alice", 204)
            st, _, _ = self.api("DELETE", "/api/v1/apps/perm/access/user/zed",
                                who=who)
            self.assertEqual(st, want, who)
        # runtime: admin only, 403 (the one per-app 403 besides purge)
        self.err("PATCH", "/api/v1/apps/perm", {"runtime": "runsc"},
                 "alice", 403, "runtime requires admin")
        self.err("PATCH", "/api/v1/apps/perm", {"runtime": "runsc"},
                 "bob", 403, "runtime requires admin")
        self.err("PATCH", "/api/v1/apps/perm", {"runtime": "runsc"},
                 "carol", 404, "app not found")
        self.assertEqual(self.ok("PATCH", "/api/v1/apps/perm",
                                 {"runtime": "runsc"}, "root")["runtime"],
                         "runsc")

    def test_zz_delete_endpoints(self):
        # restore and purge: see SoftDelete
        self.matrix("DELETE", "/api/v1/apps/perm?purge=true", None,
                    [409, 403, 403, 403, 403, 401])
        for who in ("bob", "carol", "dave"):
            self.err("DELETE", "/api/v1/apps/perm", who=who, status=404,
                     message="app not found")
        self.err("DELETE", "/api/v1/apps/perm", who=None, status=401)
        self.ok("DELETE", "/api/v1/apps/perm", who="alice", status=204)
        self.create("perm-admin")
        self.ok("DELETE", "/api/v1/apps/perm-admin", who="root", status=204)

    def test_public_and_logged_in(self):
        self.create("perm-pub", access_type="public")
        self.create("perm-li", access_type="logged_in")
        for name in ("perm-pub", "perm-li"):
            self.assertEqual(self.get(name, "dave")["relation"], "viewer")
            self.err("PATCH", "/api/v1/apps/" + name, {"title": "x"}, "dave",
                     404, "app not found")
            self.err("POST", "/api/v1/apps/%s/disable" % name, None, "dave",
                     404, "app not found")
            self.err("GET", "/api/v1/apps/%s/access" % name, None, "dave",
                     404, "app not found")
            self.err("GET", "/api/v1/apps/" + name, None, None, 401)
        self.ok("PATCH", "/api/v1/apps/perm-pub", {"access_type": "acl"})
        self.err("GET", "/api/v1/apps/perm-pub", None, "dave", 404)


class Update(ApiCase):

    def test_update_fields(self):
        app = self.create("upd")
        body = {"max_workers_per_app": 3, "max_sessions_per_worker": 2,
                "memory_limit": "512m", "cpu_limit": 1.5,
                "title": "Title", "description": "Desc",
                "pre_warmed_sessions": 10, "refresh_schedule": "*/5 * * * 1-5",
                "image": "ghcr.io/x/y:1", "access_type": "logged_in",
                "data_mounts": []}
        st, hdr, out = self.api("PATCH", "/api/v1/apps/upd", body, "alice")
        self.assertEqual(st, 200, out)
        self.assertEqual(list(out), APP_KEYS + ["data_mounts"])
        for k, v in body.items():
            self.assertEqual(out[k], v, k)
        self.assertNotIn("x-blockyard-warning", hdr)  # limits are enforced
        self.assertGreaterEqual(out["updated_at"], app["updated_at"])
        # absent and null leave fields alone; "" clears a memory limit
        out = self.ok("PATCH", "/api/v1/apps/upd",
                      {"title": None, "memory_limit": ""})
        self.assertEqual((out["title"], out["memory_limit"]), ("Title", ""))
        for mem in ("1024", "1k", "1KB", "2g", "2Gb", "0", "512M", "64mb"):
            self.assertEqual(self.ok("PATCH", "/api/v1/apps/upd",
                                     {"memory_limit": mem})["memory_limit"],
                             mem)
        for cpu in (0, 16, 16.0, 0.25):
            self.assertEqual(self.ok("PATCH", "/api/v1/apps/upd",
                                     {"cpu_limit": cpu})["cpu_limit"], cpu)
        for cron in ("", "0 3 * * *", "0,30 8-18/2 1-15 JAN-jun MON-FRI",
                     "? * * * ?", "59 23 31 12 6"):
            self.ok("PATCH", "/api/v1/apps/upd", {"refresh_schedule": cron})
        self.ok("PATCH", "/api/v1/apps/upd", {})
        got = self.get("upd")
        self.assertEqual(got["pre_warmed_sessions"], 10)
        self.assertEqual(got["access_type"], "logged_in")

    def test_update_errors(self):
        self.create("bad")
        before = self.get("bad")
        path = "/api/v1/apps/bad"
        for raw in (b"", b"{", b"[1]", b"42", b'{"a":1,"a":2}'):
            self.err("PATCH", path, None, "alice", 400, "invalid JSON body",
                     raw=raw)
        for body, msg in [
                ({"name": 1}, "invalid JSON body: name must be a string"),
                ({"title": ["x"]},
                 "invalid JSON body: title must be a string"),
                ({"max_workers_per_app": "3"},
                 "invalid JSON body: max_workers_per_app must be an "
                 "integer"),
                ({"max_sessions_per_worker": 1.5},
                 "invalid JSON body: max_sessions_per_worker must be an "
                 "integer"),
                ({"cpu_limit": "1"},
                 "invalid JSON body: cpu_limit must be a number"),
                ({"enabled": False, "pre_warmed_sessions": True},
                 "invalid JSON body: pre_warmed_sessions must be an "
                 "integer"),
                ({"data_mounts": {}}, None),
                ({"data_mounts": [1]}, None),
                ({"max_sessions_per_worker": 0},
                 "max_sessions_per_worker must be >= 1"),
                ({"max_workers_per_app": 0},
                 "max_workers_per_app must be >= 1"),
                ({"max_workers_per_app": -3},
                 "max_workers_per_app must be >= 1"),
                ({"memory_limit": "lots"},
                 'invalid memory_limit format: use e.g. "256m", "1g", '
                 '"512mb"'),
                ({"memory_limit": "1t"},
                 'invalid memory_limit format: use e.g. "256m", "1g", '
                 '"512mb"'),
                ({"memory_limit": "-1m"},
                 'invalid memory_limit format: use e.g. "256m", "1g", '
                 '"512mb"'),
                ({"memory_limit": "1 g"},
                 'invalid memory_limit format: use e.g. "256m", "1g", '
                 '"512mb"'),
                ({"cpu_limit": -0.5}, "cpu_limit must be non-negative"),
                ({"cpu_limit": 16.5}, "cpu_limit must not exceed 16.0"),
                ({"pre_warmed_sessions": -1},
                 "pre_warmed_sessions must be non-negative"),
                ({"pre_warmed_sessions": 11},
                 "pre_warmed_sessions must not exceed 10"),
                ({"access_type": "everyone"},
                 "access_type must be 'acl', 'logged_in', or 'public'"),
                ({"refresh_schedule": "daily"},
                 "invalid refresh_schedule cron expression"),
                ({"refresh_schedule": "* * * *"},
                 "invalid refresh_schedule cron expression"),
                ({"refresh_schedule": "60 * * * *"},
                 "invalid refresh_schedule cron expression"),
                ({"refresh_schedule": "* * * * * *"},
                 "invalid refresh_schedule cron expression"),
                ({"refresh_schedule": "*/0 * * * *"},
                 "invalid refresh_schedule cron expression"),
                ({"image": "a b"}, "image must not contain whitespace"),
                ({"image": "a\tb"}, "image must not contain whitespace"),
                ({"data_mounts": [{"source": "models", "target": "/data"}]},
                 'data_mounts: mount[0]: unknown source "models"'),
                ({"name": "Bad Name"},
                 "name must contain only lowercase letters, digits, and "
                 "hyphens"),
                ({"name": ""}, "name must be 1-63 characters"),
                ({"title": "ok", "cpu_limit": 99},
                 "cpu_limit must not exceed 16.0")]:
            out = self.err("PATCH", path, body, "alice", 400, msg)
            if msg is None:
                self.assertTrue(out["message"].startswith(
                    "invalid JSON body"), out)
        # nothing changed
        after = self.get("bad")
        self.assertEqual(after, before)
        # checks that need no app come before the 404 (reference order)
        self.err("PATCH", path, {"max_sessions_per_worker": 0}, "dave", 400,
                 "max_sessions_per_worker must be >= 1")
        self.err("PATCH", "/api/v1/apps/ghost", {"cpu_limit": -1}, "alice",
                 400, "cpu_limit must be non-negative")
        self.err("PATCH", path, {"access_type": "everyone"}, "dave", 404,
                 "app not found")
        self.err("PATCH", path, {"image": "a b"}, "dave", 404,
                 "app not found")
        self.err("PATCH", path, None, None, 401, raw=b"{")
        self.err("PATCH", "/api/v1/apps/ghost", {"title": "x"}, "alice",
                 404, "app not found")

    def test_enable_disable(self):
        self.create("toggle")
        out = self.ok("POST", "/api/v1/apps/toggle/disable", who="alice")
        self.assertEqual(list(out), APP_KEYS)
        self.assertFalse(out["enabled"])
        self.assertFalse(self.get("toggle")["enabled"])
        self.assertFalse(self.ok("POST", "/api/v1/apps/toggle/disable")
                         ["enabled"])
        self.assertTrue(self.ok("POST", "/api/v1/apps/toggle/enable")
                        ["enabled"])
        self.err("POST", "/api/v1/apps/ghost/enable", None, "alice", 404,
                 "app not found")


class Rename(ApiCase):

    def test_rename_and_aliases(self):
        app = self.create("old-name")
        out = self.ok("PATCH", "/api/v1/apps/old-name", {"name": "new-name",
                                                         "title": "T"})
        self.assertEqual((out["id"], out["name"], out["title"]),
                         (app["id"], "new-name", "T"))
        # the old name resolves to the app, for every per-app endpoint
        self.assertEqual(self.get("old-name")["id"], app["id"])
        self.assertEqual(self.get("old-name")["name"], "new-name")
        self.ok("GET", "/api/v1/apps/old-name/access")
        self.ok("POST", "/api/v1/apps/old-name/disable")
        self.assertIn("new-name", self.names())
        self.assertNotIn("old-name", self.names())
        # the old name is free for a new app, whose live name wins
        other = self.create("old-name", who="erin")
        self.assertEqual(self.get("old-name", "erin")["id"], other["id"])
        self.err("GET", "/api/v1/apps/old-name", who="alice", status=404)
        # chained renames: every old name stays an alias
        self.ok("PATCH", "/api/v1/apps/new-name", {"name": "third"})
        self.assertEqual(self.get("new-name")["id"], app["id"])
        self.assertEqual(self.get("third")["id"], app["id"])
        # renaming back to one of its own aliases takes it back
        self.ok("PATCH", "/api/v1/apps/third", {"name": "new-name"})
        self.assertEqual(self.get("third")["name"], "new-name")
        if self.db_url()[0]:
            rows = self.db_rows("SELECT name, phase FROM app_aliases WHERE "
                                "app_id = ? ORDER BY name", app["id"])
            self.assertEqual(rows, [("old-name", "alias"),
                                    ("third", "alias")])
            exp = self.db_rows("SELECT expires_at FROM app_aliases")[0][0]
            self.assertRegex(exp, TIME_RE)

    def test_rename_conflicts(self):
        self.create("ren-a")
        self.create("ren-b")
        # the reference answered 500 here (11.4.3): 409 with a reason
        self.err("PATCH", "/api/v1/apps/ren-a", {"name": "ren-b"}, "alice",
                 409, 'app name "ren-b" already exists')
        self.ok("PATCH", "/api/v1/apps/ren-b", {"name": "ren-c"})
        # ren-b is now ren-c's alias: taken while that alias lives
        self.err("PATCH", "/api/v1/apps/ren-a", {"name": "ren-b"}, "alice",
                 409, 'app name "ren-b" is still an alias of another app')
        # a failed rename changes nothing, not even the other fields
        self.err("PATCH", "/api/v1/apps/ren-a",
                 {"name": "ren-c", "title": "changed"}, "alice", 409)
        got = self.get("ren-a")
        self.assertEqual((got["name"], got["title"]), ("ren-a", None))
        # a soft-deleted app's name does not block (hard delete here)
        self.create("ren-gone")
        self.ok("DELETE", "/api/v1/apps/ren-gone", status=204)
        self.ok("PATCH", "/api/v1/apps/ren-a", {"name": "ren-gone"})

    def test_z_alias_phases(self):
        """The sweep moves expired aliases to redirect (still resolved by
        the API), then drops them.  Rows are aged by hand, byd stopped."""
        if self.db_url()[0] is None:
            self.skipTest("no direct access to the database")
        app = self.create("phase-a")
        self.ok("PATCH", "/api/v1/apps/phase-a", {"name": "phase-b"})
        self.byd.stop()
        self.db_exec("UPDATE app_aliases SET expires_at = "
                     "'2000-01-01T00:00:00Z' WHERE name = 'phase-a'")
        self.byd.start()
        self.assertEqual(self.get("phase-a")["id"], app["id"])
        phase, exp = self.db_rows("SELECT phase, expires_at FROM "
                                  "app_aliases WHERE name = 'phase-a'")[0]
        self.assertEqual(phase, "redirect")
        self.assertGreater(exp, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(time.time() +
                                                          6 * 86400)))
        self.byd.stop()
        self.db_exec("UPDATE app_aliases SET expires_at = "
                     "'2000-01-01T00:00:00Z' WHERE name = 'phase-a'")
        self.byd.start()
        self.err("GET", "/api/v1/apps/phase-a", who="alice", status=404)
        self.assertEqual(self.db_rows("SELECT COUNT(*) FROM app_aliases "
                                      "WHERE name = 'phase-a'"), [(0,)])


class SoftDelete(ApiCase):
    soft_delete = "720h"

    def test_soft_delete_restore_purge(self):
        app = self.create("sd", title="kept")
        self.ok("POST", "/api/v1/apps/sd/access",
                {"principal": "bob", "kind": "user",
                 "role": "collaborator"}, "alice", 204)
        self.ok("DELETE", "/api/v1/apps/sd", who="alice", status=204)
        self.err("GET", "/api/v1/apps/sd", who="alice", status=404)
        self.err("GET", "/api/v1/apps/" + app["id"], who="root", status=404)
        self.assertNotIn("sd", self.names(who="root"))
        deleted = self.ok("GET", "/api/v1/apps?deleted=true", who="root")
        self.assertIsInstance(deleted, list)
        deleted = [a for a in deleted if a["id"] == app["id"]]
        self.assertEqual(len(deleted), 1)
        self.assertEqual(list(deleted[0]), APP_KEYS)
        self.assertEqual(deleted[0]["title"], "kept")
        # only the original owner or an admin restores; others: 404
        for who in ("bob", "carol", "dave"):
            self.err("POST", "/api/v1/apps/sd/restore", who=who, status=404,
                     message="deleted app not found")
        self.err("POST", "/api/v1/apps/sd/restore", who=None, status=401)
        out = self.ok("POST", "/api/v1/apps/sd/restore", who="alice")
        self.assertEqual(list(out), APP_KEYS)
        self.assertEqual((out["id"], out["title"]), (app["id"], "kept"))
        # grants survived the soft delete
        self.assertEqual(self.get("sd", "bob")["relation"], "collaborator")
        # restoring a live app: 404 as the code does (the docs said 409)
        self.err("POST", "/api/v1/apps/sd/restore", who="alice", status=404,
                 message="deleted app not found")
        self.err("POST", "/api/v1/apps/never/restore", who="root",
                 status=404, message="deleted app not found")
        # by id, by admin
        self.ok("DELETE", "/api/v1/apps/" + app["id"], who="root",
                status=204)
        self.ok("POST", "/api/v1/apps/%s/restore" % app["id"], who="root")

    def test_restore_conflict(self):
        first = self.create("reuse")
        self.ok("DELETE", "/api/v1/apps/reuse", status=204)
        second = self.create("reuse", who="erin")
        self.assertNotEqual(first["id"], second["id"])
        for ref in (first["id"], "reuse"):
            self.err("POST", "/api/v1/apps/%s/restore" % ref, who="alice",
                     status=409,
                     message="another app already uses the name reuse")
        self.ok("DELETE", "/api/v1/apps/reuse", who="erin", status=204)
        # both deleted now: the name restores one (the most recently
        # deleted), and then the other conflicts
        out = self.ok("POST", "/api/v1/apps/reuse/restore", who="root")
        ids = {first["id"], second["id"]}
        self.assertIn(out["id"], ids)
        (rest,) = ids - {out["id"]}
        self.err("POST", "/api/v1/apps/%s/restore" % rest, who="root",
                 status=409)

    def test_purge(self):
        app = self.create("pg")
        self.err("DELETE", "/api/v1/apps/pg?purge=true", who="alice",
                 status=403, message="admin only")
        self.err("DELETE", "/api/v1/apps/pg?purge=true", who="root",
                 status=409,
                 message="app must be soft-deleted before purging")
        self.ok("DELETE", "/api/v1/apps/pg", status=204)
        self.err("DELETE", "/api/v1/apps/pg?purge=true", who="alice",
                 status=403, message="admin only")
        self.err("DELETE", "/api/v1/apps/nope?purge=true", who="root",
                 status=404, message="app not found")
        self.ok("DELETE", "/api/v1/apps/pg?purge=true", who="root",
                status=204)
        self.err("POST", "/api/v1/apps/%s/restore" % app["id"], who="root",
                 status=404, message="deleted app not found")
        self.assertNotIn("pg", [a["name"] for a in self.ok(
            "GET", "/api/v1/apps?deleted=true", who="root")])
        if self.db_url()[0]:
            for t in ("apps", "app_access", "app_tags", "app_aliases"):
                col = "id" if t == "apps" else "app_id"
                self.assertEqual(self.db_rows(
                    "SELECT COUNT(*) FROM %s WHERE %s = ?" % (t, col),
                    app["id"]), [(0,)], t)

    def test_z_retention_sweep(self):
        if self.db_url()[0] is None:
            self.skipTest("no direct access to the database")
        old = self.create("sweep-old")
        self.create("sweep-new")
        self.ok("DELETE", "/api/v1/apps/sweep-old", status=204)
        self.ok("DELETE", "/api/v1/apps/sweep-new", status=204)
        self.byd.stop()
        self.db_exec("UPDATE apps SET deleted_at = '2000-01-01T00:00:00Z' "
                     "WHERE id = ?", old["id"])
        self.byd.start()
        deleted = [a["name"] for a in self.ok(
            "GET", "/api/v1/apps?deleted=true", who="root")]
        self.assertIn("sweep-new", deleted)
        self.assertNotIn("sweep-old", deleted)
        self.assertEqual(self.db_rows("SELECT COUNT(*) FROM apps WHERE "
                                      "id = ?", old["id"]), [(0,)])


class HardDelete(ApiCase):

    def test_hard_delete(self):
        app = self.create("hd")
        tag = self.ok("POST", "/api/v1/tags", {"name": "hd-tag"}, "root", 201)
        self.ok("POST", "/api/v1/apps/hd/tags", {"tag_id": tag["id"]},
                "alice", 204)
        self.ok("PATCH", "/api/v1/apps/hd", {"name": "hd2"})
        self.ok("DELETE", "/api/v1/apps/hd", status=204)   # by alias
        self.err("GET", "/api/v1/apps/" + app["id"], who="root", status=404)
        self.assertEqual(self.ok("GET", "/api/v1/apps?deleted=true",
                                 who="root"), [])
        self.err("POST", "/api/v1/apps/hd2/restore", who="root", status=404,
                 message="deleted app not found")
        self.err("DELETE", "/api/v1/apps/hd2?purge=true", who="root",
                 status=404)
        self.create("hd2")
        self.create("hd")
        # the tag outlives the app
        self.assertEqual([t["name"] for t in self.ok(
            "GET", "/api/v1/tags", who="dave")], ["hd-tag"])
        if self.db_url()[0]:
            for t in ("app_tags", "app_aliases", "app_access"):
                self.assertEqual(self.db_rows(
                    "SELECT COUNT(*) FROM %s WHERE app_id = ?" % t,
                    app["id"]), [(0,)], t)


class Audit(ApiCase):
    soft_delete = "720h"
    audit = True

    def last(self, action):
        lines = [l for l in self.audit_lines() if l["action"] == action]
        self.assertTrue(lines, "no %s line" % action)
        return lines[-1]

    def test_audit_lines(self):
        app = self.create("aud")
        aid = app["id"]
        line = self.last("app.create")
        self.assertEqual((line["actor"], line["target"], line["detail"]),
                         ("alice", aid, {"name": "aud"}))
        self.assertRegex(line["source_ip"], r"^10\.\d+\.\d+\.\d+$")
        self.assertRegex(line["ts"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        self.ok("PATCH", "/api/v1/apps/aud", {"title": "t"})
        line = self.last("app.update")
        self.assertEqual((line["target"], line.get("detail")), (aid, None))
        n = len(self.audit_lines())
        self.ok("PATCH", "/api/v1/apps/aud", {"name": "aud2"})
        tail = self.audit_lines()[n:]
        self.assertEqual([l["action"] for l in tail],
                         ["app.rename", "app.update"])
        self.assertEqual(tail[0]["detail"],
                         {"old_name": "aud", "new_name": "aud2"})
        self.ok("POST", "/api/v1/apps/aud2/access",
                {"principal": "bob", "kind": "user", "role": "viewer"},
                "alice", 204)
        line = self.last("access.grant")
        self.assertEqual((line["target"], line["detail"]),
                         (aid, {"principal": "bob", "role": "viewer"}))
        # revoke through the old name: works, and names the app's id
        self.ok("DELETE", "/api/v1/apps/aud/access/user/bob", status=204)
        line = self.last("access.revoke")
        self.assertEqual((line["target"], line["detail"]),
                         (aid, {"principal": "bob"}))
        self.ok("DELETE", "/api/v1/apps/aud2", who="root", status=204)
        line = self.last("app.delete")
        self.assertEqual((line["actor"], line["target"], line["detail"]),
                         ("root", aid, {"name": "aud2"}))
        self.ok("POST", "/api/v1/apps/aud2/restore", who="alice")
        line = self.last("app.restore")
        self.assertEqual((line["target"], line["detail"]),
                         (aid, {"name": "aud2"}))
        # not audited: failures, enable/disable, purge
        n = len(self.audit_lines())
        self.err("PATCH", "/api/v1/apps/aud2", {"cpu_limit": -1})
        self.err("POST", "/api/v1/apps", {"name": "aud2"}, "alice", 409)
        self.ok("POST", "/api/v1/apps/aud2/disable")
        self.ok("DELETE", "/api/v1/apps/aud2", status=204)
        self.ok("DELETE", "/api/v1/apps/aud2?purge=true", who="root",
                status=204)
        self.assertEqual([l["action"] for l in self.audit_lines()[n:]],
                         ["app.delete"])
        self.assertEqual(stat.S_IMODE(os.stat(self.audit_path).st_mode),
                         0o600)


if __name__ == "__main__":
    unittest.main()
