"""byctl's data commands: token create/list/revoke and user list/set,
their output, their errors and who may run them."""

import json
import os
import re
import unittest

from harness import USER, Byd, BydTestCase


class ByctlData(BydTestCase):

    def setUp(self):
        self.byd = Byd()
        self.byd.write_config(text=self.byd.config_text(
            '\n[audit]\npath = "%s/audit/audit.jsonl"\n' % self.byd.dir))
        self.byd.start()

    def ctl(self, *args, **kw):
        return self.byd.byctl(*args, check=False, **kw)

    def fails(self, args, msg):
        r = self.ctl(*args)
        self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
        self.assertIn(msg, r.stderr, args)
        return r

    def test_token_create(self):
        r = self.ctl("token", "create", "alice", "--role", "publisher",
                     "--name", "ci deploy")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the token alone on standard output; the notes on standard error
        self.assertRegex(r.stdout, r"^by_[0-9A-Za-z]{40,44}\n$")
        self.assertIn("created user alice with role publisher", r.stderr)
        self.assertIn("shown only this once", r.stderr)
        tok = r.stdout.strip()
        st, _, me = self.byd.api("GET", "/api/v1/users/me", token=tok)
        self.assertEqual((st, me["role"]), (200, "publisher"))

        r = self.ctl("--json", "token", "create", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(set(j), {"id", "name", "token", "created_at",
                                  "expires_at", "user"})
        self.assertEqual((j["name"], j["user"], j["expires_at"]),
                         ("byctl", "alice", None))
        # no --role: an existing user keeps its role
        st, _, me = self.byd.api("GET", "/api/v1/users/me",
                                 token=j["token"])
        self.assertEqual(me["role"], "publisher")
        # --role on an existing user sets it, and says so
        r = self.ctl("token", "create", "alice", "--role", "admin")
        self.assertIn("changed the role of alice from publisher to admin",
                      r.stderr)
        self.assertEqual(self.byd.api("GET", "/api/v1/users/me",
                                      token=tok)[2]["role"], "admin")
        # a new user without --role is a viewer; options may come first
        r = self.ctl("token", "create", "--name", "x", "bob")
        self.assertIn("created user bob with role viewer", r.stderr)

        with open(os.path.join(self.byd.dir, "audit",
                               "audit.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual([(l["action"], l["actor"]) for l in lines],
                         [("token.create", "byctl")] * 2 +
                         [("user.update", "byctl")] +
                         [("token.create", "byctl")] * 2)
        self.assertEqual(lines[2]["detail"], {"role": "admin"})
        self.assertEqual(lines[0]["detail"], {"name": "ci deploy",
                                              "user": "alice"})

    def test_token_create_errors(self):
        self.fails(("token", "create"), "usage: byctl token create")
        self.fails(("token", "create", "a", "b"), "usage")
        self.fails(("token", "create", "a", "--bogus"), "usage")
        self.fails(("token", "create", "a", "--role", "owner"),
                   "invalid role 'owner', must be one of: admin, "
                   "publisher, viewer")
        self.fails(("token", "create", ""), "invalid user name")
        self.fails(("token", "create", "a\tb"), "invalid user name")
        self.fails(("token", "create", "a", "--name", ""), "token name")
        self.fails(("token", "create", "a", "--expires", "1d",
                    "--expires-at", "2099-01-01T00:00:00Z"), "not both")
        self.ctl("token", "create", "dora")
        self.ctl("user", "set", "dora", "--active", "false")
        self.fails(("token", "create", "dora"), "user dora is deactivated")
        # nothing was created by the failures
        r = self.ctl("--json", "user", "list")
        self.assertEqual([u["sub"] for u in json.loads(r.stdout)], ["dora"])

    def test_token_list_and_revoke(self):
        a = json.loads(self.ctl("--json", "token", "create", "alice",
                                "--expires", "1d").stdout)
        b = json.loads(self.ctl("--json", "token", "create", "bob").stdout)
        r = self.ctl("token", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "USER", "NAME", "CREATED",
                                            "EXPIRES", "LAST", "USED",
                                            "STATE"])
        self.assertEqual(len(lines), 3)
        self.assertIn(a["id"], r.stdout)
        self.assertIn(a["expires_at"], r.stdout)
        # never a secret or a hash
        self.assertNotIn(a["token"], r.stdout)
        self.assertIsNone(re.search(r"[0-9a-f]{64}", r.stdout))
        r = self.ctl("--json", "token", "list", "alice")
        rows = json.loads(r.stdout)
        self.assertEqual([t["id"] for t in rows], [a["id"]])
        self.assertEqual(set(rows[0]), {"id", "user_sub", "name",
                                        "created_at", "expires_at",
                                        "last_used_at", "revoked"})
        self.fails(("token", "list", "nobody"), "user not found")
        self.fails(("token", "list", "a", "b"), "usage")

        r = self.ctl("token", "revoke", b["id"])
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "token %s revoked" % b["id"]))
        self.assertEqual(self.byd.api("GET", "/api/v1/users/me",
                                      token=b["token"])[0], 401)
        self.assertNotIn(b["id"], self.ctl("token", "list").stdout)
        r = self.ctl("token", "list", "--all")
        row = [l for l in r.stdout.splitlines() if b["id"] in l][0]
        self.assertTrue(row.endswith("revoked"), row)
        self.fails(("token", "revoke", "no-such-id"), "token not found")
        self.fails(("token", "revoke"), "usage")
        r = self.ctl("--json", "token", "revoke", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["status"], 404)

    def test_user_list_and_set(self):
        self.ctl("token", "create", "zed", "--role", "admin")
        self.ctl("token", "create", "amy")
        r = self.ctl("user", "list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["SUB", "ROLE", "ACTIVE", "LAST",
                                            "LOGIN"])
        rows = {l.split()[0]: l.split()[1:] for l in lines[1:]}
        self.assertEqual(rows["zed"][:2], ["admin", "yes"])
        self.assertEqual(rows["amy"][:2], ["viewer", "yes"])

        r = self.ctl("user", "set", "amy", "--role", "publisher",
                     "--active", "false")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(),
                         "amy: role publisher, active no")
        r = self.ctl("--json", "user", "list")
        amy = [u for u in json.loads(r.stdout) if u["sub"] == "amy"][0]
        self.assertEqual((amy["role"], amy["active"]), ("publisher", False))

        self.fails(("user", "set", "ghost", "--role", "viewer"),
                   "user not found")
        self.fails(("user", "set", "amy"), "usage: byctl user set")
        self.fails(("user", "set", "amy", "--active", "maybe"), "usage")
        self.fails(("user", "set", "amy", "--role", "root"),
                   "invalid role 'root'")
        self.fails(("user", "list", "x"), "usage")

    def test_who_may(self):
        # not root and not in byd's group: refused before anything happens
        r = self.ctl("token", "create", "mallory", "--role", "admin",
                     user="nobody")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission denied", r.stderr.lower())
        self.assertEqual(r.stdout, "")
        r = self.ctl("user", "list", user="nobody")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(self.ctl("--json", "user",
                                             "list").stdout), [])
        # byd's own group may
        r = self.ctl("token", "create", "ops", user=USER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r"^by_")


if __name__ == "__main__":
    unittest.main()
