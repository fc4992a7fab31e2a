"""Per-app access grants: grant (upsert), list, revoke by id, name and
alias, their effect on what a user may do, every documented error and
the permission matrix."""

import unittest

from test_api_apps import NOT_FOUND, TIME_RE, ApiCase


def grant(principal, role="viewer", kind="user"):
    return {"principal": principal, "kind": kind, "role": role}


class Access(ApiCase):

    WHO = ["root", "alice", "bob", "carol", "dave", None]

    def test_grant_list_regrant(self):
        self.create("acc")
        self.assertEqual(self.ok("GET", "/api/v1/apps/acc/access"), [])
        self.ok("POST", "/api/v1/apps/acc/access", grant("carol"), "alice",
                204)
        self.ok("POST", "/api/v1/apps/acc/access", grant("bob",
                "collaborator"), "root", 204)
        out = self.ok("GET", "/api/v1/apps/acc/access")
        self.assertIsInstance(out, list)
        got = sorted(out, key=lambda g: g["principal"])
        self.assertEqual(
            [{k: v for k, v in g.items() if k != "granted_at"} for g in got],
            [{"principal": "bob", "kind": "user", "role": "collaborator",
              "granted_by": "root"},
             {"principal": "carol", "kind": "user", "role": "viewer",
              "granted_by": "alice"}])
        for g in out:
            self.assertEqual(list(g), ["principal", "kind", "role",
                                       "granted_by", "granted_at"])
            self.assertRegex(g["granted_at"], TIME_RE)
        # what the grants allow
        self.assertEqual(self.get("acc", "carol")["relation"], "viewer")
        self.err("PATCH", "/api/v1/apps/acc", {"title": "x"}, "carol", 404,
                 "app not found")
        self.assertEqual(self.get("acc", "bob")["relation"], "collaborator")
        self.ok("PATCH", "/api/v1/apps/acc", {"title": "x"}, "bob")
        # a grant is no ownership
        self.err("GET", "/api/v1/apps/acc/access", None, "bob", 404)
        # re-granting changes the role (one row per principal)
        self.ok("POST", "/api/v1/apps/acc/access",
                grant("carol", "collaborator"), "alice", 204)
        self.ok("PATCH", "/api/v1/apps/acc", {"title": "y"}, "carol")
        roles = {g["principal"]: g["role"] for g in
                 self.ok("GET", "/api/v1/apps/acc/access")}
        self.assertEqual(roles, {"bob": "collaborator",
                                 "carol": "collaborator"})
        # a principal need not exist; odd characters are data
        for p in ("someone@example.com", "'; DROP TABLE app_access; --",
                  "%_\\", "\u00fc\u00f1\u00ee"):
            self.ok("POST", "/api/v1/apps/acc/access", grant(p), "alice",
                    204)
        principals = [g["principal"] for g in
                      self.ok("GET", "/api/v1/apps/acc/access")]
        self.assertIn("'; DROP TABLE app_access; --", principals)
        self.assertIn("%_\\", principals)
        self.assertEqual(len(principals), 6)

    def test_grant_errors(self):
        self.create("acc-err")
        path = "/api/v1/apps/acc-err/access"
        for raw in (b"", b"{", b"[]", b'{"kind":"user","kind":"user"}'):
            self.err("POST", path, None, "alice", 400,
                     "invalid request body", raw=raw)
        for body, msg in [
                (grant("bob", kind="group"), "kind must be 'user'"),
                ({"principal": "bob", "role": "viewer"},
                 "kind must be 'user'"),
                (grant("bob", role="owner"),
                 "role must be 'viewer' or 'collaborator'"),
                (grant("bob", role="Viewer"),
                 "role must be 'viewer' or 'collaborator'"),
                (grant(""), "principal must not be empty"),
                ({"kind": "user", "role": "viewer"},
                 "principal must not be empty"),
                (grant("alice"), "cannot grant access to yourself"),
                ({"principal": 7, "kind": "user", "role": "viewer"},
                 "invalid request body: principal must be a string"),
                ({"principal": "bob", "kind": ["user"], "role": "viewer"},
                 "invalid request body: kind must be a string")]:
            self.err("POST", path, body, "alice", 400, msg)
        self.assertEqual(self.ok("GET", path), [])
        # permission comes first: 401, then 404 for those who may not
        self.err("POST", path, None, None, 401, raw=b"{")
        self.err("POST", path, grant("x", kind="group"), "dave", 404,
                 "app not found")
        self.err("POST", "/api/v1/apps/ghost/access", grant("x"), "root",
                 404, "app not found")
        # an admin may grant to the owner; the owner never to itself
        self.ok("POST", path, grant("alice"), "root", 204)

    def test_permissions(self):
        self.create("acc-perm")
        self.ok("POST", "/api/v1/apps/acc-perm/access",
                grant("bob", "collaborator"), "alice", 204)
        self.ok("POST", "/api/v1/apps/acc-perm/access", grant("carol"),
                "alice", 204)
        expect = [200, 200, 404, 404, 404, 401]
        for who, want in zip(self.WHO, expect):
            st, _, out = self.api("GET", "/api/v1/apps/acc-perm/access",
                                  who=who)
            self.assertEqual(st, want, who)
            if want == 404:
                self.assertEqual(out, NOT_FOUND)
        for who, want in zip(self.WHO, [204, 204, 404, 404, 404, 401]):
            st, _, _ = self.api("POST", "/api/v1/apps/acc-perm/access",
                                grant("zed"), who)
            self.assertEqual(st, want, who)
            st, _, _ = self.api("DELETE",
                                "/api/v1/apps/acc-perm/access/user/zed",
                                who=who)
            self.assertEqual(st, want, who)

    def test_revoke(self):
        app = self.create("rev")
        for p in ("bob", "carol", "dave", "user@example.com"):
            self.ok("POST", "/api/v1/apps/rev/access", grant(p), "alice",
                    204)
        # by id
        self.ok("DELETE", "/api/v1/apps/%s/access/user/bob" % app["id"],
                status=204)
        # by name: the reference's bug (11.4.1) is not copied
        self.ok("DELETE", "/api/v1/apps/rev/access/user/carol", status=204)
        # percent-decoded principal
        self.ok("DELETE", "/api/v1/apps/rev/access/user/user%40example.com",
                status=204)
        # by an old name
        self.ok("PATCH", "/api/v1/apps/rev", {"name": "rev2"})
        self.ok("DELETE", "/api/v1/apps/rev/access/user/dave", status=204)
        self.assertEqual(self.ok("GET", "/api/v1/apps/rev2/access"), [])
        self.err("GET", "/api/v1/apps/rev2", None, "carol", 404)
        for path in ("/api/v1/apps/rev2/access/user/bob",
                     "/api/v1/apps/rev2/access/group/bob",
                     "/api/v1/apps/rev2/access/user/nobody"):
            self.err("DELETE", path, None, "alice", 404, "grant not found")
        self.err("DELETE", "/api/v1/apps/ghost/access/user/bob", None,
                 "alice", 404, "app not found")
        self.err("DELETE", "/api/v1/apps/rev2/access/user/bob", None, None,
                 401)


if __name__ == "__main__":
    unittest.main()
