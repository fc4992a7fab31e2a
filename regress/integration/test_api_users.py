"""The users API: /users/me, the caller's own tokens and the admin's
/users endpoints, with their errors and audit lines."""

import json
import os
import unittest

from harness import Byd, BydTestCase

USER_KEYS = {"sub", "email", "name", "role", "active", "last_login"}
TOKEN_KEYS = {"id", "user_sub", "name", "created_at", "expires_at",
              "last_used_at", "revoked"}


class Users(BydTestCase):

    def setUp(self):
        self.byd = Byd()
        self.byd.write_config(text=self.byd.config_text(
            '\n[audit]\npath = "%s/audit/audit.jsonl"\n' % self.byd.dir))
        self.byd.start()
        self.admin = self.byd.token("root@example.org", "admin")
        self.viewer = self.byd.token("vic", "viewer")

    def api(self, method, path, body=None, token=None, raw=None):
        return self.byd.api(method, path, body=body, token=token, raw=raw)

    def audit(self, action):
        with open(os.path.join(self.byd.dir, "audit", "audit.jsonl")) as f:
            return [a for a in map(json.loads, f) if a["action"] == action]

    def test_me(self):
        st, hdr, body = self.api("GET", "/api/v1/users/me",
                                 token=self.viewer)
        self.assertEqual(st, 200)
        self.assertEqual(body, {"sub": "vic", "email": "", "name": "",
                                "role": "viewer"})
        self.assertEqual(hdr["cache-control"], "no-store")
        st, _, body = self.api("GET", "/api/v1/users/me")
        self.assertEqual((st, body["message"]), (401,
                                                 "authentication required"))

    def test_list_and_get_users(self):
        self.byd.token("a@b.org", "publisher")
        st, _, body = self.api("GET", "/api/v1/users", token=self.admin)
        self.assertEqual(st, 200)
        self.assertEqual({u["sub"] for u in body},
                         {"root@example.org", "vic", "a@b.org"})
        for u in body:
            self.assertEqual(set(u), USER_KEYS)
            self.assertIs(u["active"], True)
        logins = [u["last_login"] for u in body]
        self.assertEqual(logins, sorted(logins, reverse=True))

        # {sub} is percent-decoded
        st, _, body = self.api("GET", "/api/v1/users/a%40b.org",
                               token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual((body["sub"], body["role"]), ("a@b.org",
                                                       "publisher"))
        st, _, body = self.api("GET", "/api/v1/users/nobody",
                               token=self.admin)
        self.assertEqual((st, body), (404, {"error": "not_found",
                                            "message": "user not found"}))

        for path in ("/api/v1/users", "/api/v1/users/vic"):
            st, _, body = self.api("GET", path, token=self.viewer)
            self.assertEqual((st, body), (403, {"error": "forbidden",
                                                "message": "admin only"}))
            st, _, body = self.api("GET", path)
            self.assertEqual(st, 401)

    def test_patch_user(self):
        # yourself: refused before the body is even read
        st, _, body = self.api("PATCH", "/api/v1/users/root@example.org",
                               raw=b"{garbage", token=self.admin)
        self.assertEqual((st, body["message"]), (
            400, "cannot modify your own account"))
        st, _, body = self.api("PATCH", "/api/v1/users/vic",
                               {"role": "admin"}, token=self.viewer)
        self.assertEqual((st, body["message"]), (403, "admin only"))
        self.assertEqual(self.api("PATCH", "/api/v1/users/vic",
                                  {"active": False})[0], 401)

        cases = [
            (None, b"", "invalid request body"),
            (None, b"{nope", "invalid request body"),
            (None, b"[]", "invalid request body"),
            ({}, None, "nothing to update"),
            ({"role": None, "active": None}, None, "nothing to update"),
            ({"role": "owner"}, None, "invalid role 'owner', must be one "
             "of: admin, publisher, viewer"),
            ({"role": 5}, None, "invalid request body"),
            ({"active": "no"}, None, "invalid request body"),
            ({"active": 0}, None, "invalid request body"),
        ]
        for body, raw, msg in cases:
            st, _, out = self.api("PATCH", "/api/v1/users/vic", body,
                                  token=self.admin, raw=raw)
            self.assertEqual((st, out["message"]), (400, msg),
                             (body, raw))
        st, _, out = self.api("PATCH", "/api/v1/users/ghost",
                              {"role": "viewer"}, token=self.admin)
        self.assertEqual((st, out["message"]), (404, "user not found"))
        # SQL in a path segment is a name like any other
        evil = "x'%3B%20DROP%20TABLE%20users%3B--"
        st, _, out = self.api("PATCH", "/api/v1/users/" + evil,
                              {"role": "admin"}, token=self.admin)
        self.assertEqual(st, 404)
        st, _, out = self.api("GET", "/api/v1/users/" + evil,
                              token=self.admin)
        self.assertEqual(st, 404)

        st, _, out = self.api("PATCH", "/api/v1/users/vic",
                              {"role": "publisher", "unknown": 1},
                              token=self.admin)
        self.assertEqual(st, 200, out)
        self.assertEqual(set(out), USER_KEYS)
        self.assertEqual((out["role"], out["active"]), ("publisher", True))
        st, _, out = self.api("PATCH", "/api/v1/users/vic",
                              {"active": False}, token=self.admin)
        self.assertEqual((out["role"], out["active"]), ("publisher", False))
        self.assertEqual(self.api("GET", "/api/v1/users/me",
                                  token=self.viewer)[0], 401)

        lines = self.audit("user.update")
        self.assertEqual([(a["actor"], a["target"], a["detail"])
                          for a in lines],
                         [("root@example.org", "vic", {"role": "publisher"}),
                          ("root@example.org", "vic", {"active": False})])
        self.assertEqual(lines[0]["source_ip"], "127.0.0.1")
        self.assertEqual(self.byd.sql("SELECT COUNT(*) FROM users"),
                         [(2,)])

    def test_own_tokens(self):
        t2 = self.byd.token("vic", "viewer", "--name", "second")
        self.byd.token("vic", "viewer", "--name", "third")
        st, _, body = self.api("GET", "/api/v1/users/me/tokens",
                               token=self.viewer)
        self.assertEqual(st, 200)
        self.assertEqual(len(body), 3)
        for t in body:
            self.assertEqual(set(t), TOKEN_KEYS)
            self.assertEqual(t["user_sub"], "vic")
            self.assertIs(t["revoked"], False)
        self.assertEqual({t["name"] for t in body},
                         {"byctl", "second", "third"})
        stamps = [t["created_at"] for t in body]
        self.assertEqual(stamps, sorted(stamps, reverse=True))
        # an admin sees only its own tokens here too
        st, _, body2 = self.api("GET", "/api/v1/users/me/tokens",
                                token=self.admin)
        self.assertEqual([t["user_sub"] for t in body2],
                         ["root@example.org"])

        second = [t["id"] for t in body if t["name"] == "second"][0]
        st, _, _ = self.api("DELETE", "/api/v1/users/me/tokens/" + second,
                            token=self.viewer)
        self.assertEqual(st, 204)
        st, _, body = self.api("GET", "/api/v1/users/me/tokens",
                               token=self.viewer)
        self.assertEqual(len(body), 2)
        self.assertEqual(self.api("GET", "/api/v1/users/me", token=t2)[0],
                         401)
        # an admin cannot revoke someone else's token here either
        st, _, out = self.api("DELETE", "/api/v1/users/me/tokens/" +
                              body[0]["id"], token=self.admin)
        self.assertEqual((st, out["message"]), (404, "token not found"))
        st, _, out = self.api("DELETE",
                              "/api/v1/users/me/tokens/bootstrap-redeemed",
                              token=self.admin)
        self.assertEqual(st, 404)

        # creating one needs a browser session
        st, _, out = self.api("POST", "/api/v1/users/me/tokens",
                              {"name": "x"}, token=self.viewer)
        self.assertEqual((st, out), (403, {
            "error": "forbidden",
            "message": "tokens can only be created via browser session"}))
        st, _, out = self.api("POST", "/api/v1/users/me/tokens",
                              {"name": "x"})
        self.assertEqual((st, out["message"]), (401,
                                                "authentication required"))
        for m, p in (("GET", "/api/v1/users/me/tokens"),
                     ("DELETE", "/api/v1/users/me/tokens"),
                     ("DELETE", "/api/v1/users/me/tokens/x")):
            self.assertEqual(self.api(m, p)[0], 401, (m, p))

        st, _, _ = self.api("DELETE", "/api/v1/users/me/tokens",
                            token=self.viewer)
        self.assertEqual(st, 204)
        self.assertEqual(self.api("GET", "/api/v1/users/me",
                                  token=self.viewer)[0], 401)
        self.assertEqual(self.api("GET", "/api/v1/users/me",
                                  token=self.admin)[0], 200)
        self.assertEqual([a["detail"] for a in
                          self.audit("token.revoke_all")], [{"count": 2}])
        self.assertEqual([a["target"] for a in self.audit("token.revoke")],
                         [second])


if __name__ == "__main__":
    unittest.main()
