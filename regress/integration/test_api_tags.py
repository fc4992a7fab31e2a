"""Tags: the admin-managed vocabulary (list, create, rename, delete) and
tagging apps (list, add, remove), with their errors and permissions."""

import unittest

from test_api_apps import NOT_FOUND, TIME_RE, UUID_RE, ApiCase

TAG_NOT_FOUND = {"error": "not_found", "message": "not found"}


class Tags(ApiCase):

    WHO = ["root", "alice", "bob", "carol", "dave", None]

    def tag(self, name):
        return self.ok("POST", "/api/v1/tags", {"name": name}, "root", 201)

    def test_create_and_list(self):
        t = self.tag("zeta")
        self.assertEqual(list(t), ["id", "name", "created_at"])
        self.assertRegex(t["id"], UUID_RE)
        self.assertRegex(t["created_at"], TIME_RE)
        self.assertEqual(t["name"], "zeta")
        self.tag("beta")
        out = self.ok("GET", "/api/v1/tags", who="dave")
        self.assertIsInstance(out, list)
        names = [x["name"] for x in out]
        self.assertEqual(names, sorted(names))
        self.assertIn("zeta", names)
        self.assertIn(t, out)
        self.err("GET", "/api/v1/tags", None, None, 401)
        # tag management is admin only, and hidden (404) from others
        for who in ("alice", "carol"):
            out = self.err("POST", "/api/v1/tags", {"name": "nope"}, who,
                           404)
            self.assertEqual(out, TAG_NOT_FOUND)
            self.err("POST", "/api/v1/tags", None, who, 404, raw=b"{")
        self.err("POST", "/api/v1/tags", {"name": "nope"}, None, 401)
        self.err("POST", "/api/v1/tags", {"name": "zeta"}, "root", 409,
                 'tag "zeta" already exists')
        for raw in (b"", b"{", b"[]"):
            self.err("POST", "/api/v1/tags", None, "root", 400,
                     "invalid JSON body", raw=raw)
        self.err("POST", "/api/v1/tags", {"name": 3}, "root", 400,
                 "invalid JSON body: name must be a string")
        for name, msg in [
                ("", "tag name must be 1-63 characters"),
                ("t" * 64, "tag name must be 1-63 characters"),
                ("Big", "tag name must contain only lowercase letters, "
                 "digits, and hyphens"),
                ("a b", "tag name must contain only lowercase letters, "
                 "digits, and hyphens"),
                ("'; DROP TABLE tags; --", "tag name must contain only "
                 "lowercase letters, digits, and hyphens"),
                ("9lives", "tag name must start with a lowercase letter"),
                ("end-", "tag name must not end with a hyphen")]:
            self.err("POST", "/api/v1/tags", {"name": name}, "root", 400,
                     msg)
        self.assertNotIn("nope", [x["name"] for x in
                                  self.ok("GET", "/api/v1/tags")])

    def test_rename_and_delete(self):
        t = self.tag("old-tag")
        other = self.tag("taken")
        path = "/api/v1/tags/" + t["id"]
        for who in ("alice", "carol"):
            self.assertEqual(self.err("PATCH", path, {"name": "x"}, who,
                                      404), TAG_NOT_FOUND)
            self.assertEqual(self.err("DELETE", path, None, who, 404),
                             TAG_NOT_FOUND)
        self.err("PATCH", path, {"name": "x"}, None, 401)
        self.err("PATCH", "/api/v1/tags/nope", {"name": "x"}, "root", 404,
                 "tag not found")
        self.err("PATCH", "/api/v1/tags/nope", None, "root", 404,
                 "tag not found", raw=b"{")
        for raw in (b"", b"{", b"[]"):
            self.err("PATCH", path, None, "root", 400, "invalid JSON body",
                     raw=raw)
        self.err("PATCH", path, {"name": ""}, "root", 400,
                 "name must be 1-63 characters")
        self.err("PATCH", path, {}, "root", 400,
                 "name must be 1-63 characters")
        self.err("PATCH", path, {"name": "n" * 64}, "root", 400,
                 "name must be 1-63 characters")
        # the reference's conflict body, exactly
        st, _, out = self.api("PATCH", path, {"name": "taken"}, "root")
        self.assertEqual((st, out), (409, {"error": "tag name already exists",
                                           "message": ""}))
        out = self.ok("PATCH", path, {"name": "new-tag"}, "root")
        self.assertEqual(out, {"id": t["id"], "name": "new-tag",
                               "created_at": t["created_at"]})
        # only the length is checked on rename, as in the reference
        out = self.ok("PATCH", path, {"name": "Mixed Case '%_"}, "root")
        self.assertEqual(out["name"], "Mixed Case '%_")
        self.assertIn("Mixed Case '%_", [x["name"] for x in
                                         self.ok("GET", "/api/v1/tags")])
        self.ok("DELETE", path, who="root", status=204)
        self.err("DELETE", path, None, "root", 404, "tag not found")
        self.err("DELETE", path, None, None, 401)
        self.assertNotIn(t["id"], [x["id"] for x in
                                   self.ok("GET", "/api/v1/tags")])
        self.assertIn(other, self.ok("GET", "/api/v1/tags"))

    def test_app_tags(self):
        a = self.tag("app-a")
        b = self.tag("app-b")
        self.create("tagme")
        self.ok("POST", "/api/v1/apps/tagme/access",
                {"principal": "bob", "kind": "user", "role": "collaborator"},
                "alice", 204)
        self.ok("POST", "/api/v1/apps/tagme/access",
                {"principal": "carol", "kind": "user", "role": "viewer"},
                "alice", 204)
        path = "/api/v1/apps/tagme/tags"
        self.assertEqual(self.ok("GET", path), {"tags": []})
        self.ok("POST", path, {"tag_id": b["id"]}, "bob", 204)
        self.ok("POST", path, {"tag_id": a["id"]}, "alice", 204)
        self.ok("POST", path, {"tag_id": a["id"]}, "root", 204)  # again
        out = self.ok("GET", path, who="carol")
        self.assertEqual(out, {"tags": [a, b]})
        self.assertEqual(self.get("tagme")["tags"], ["app-a", "app-b"])
        # errors, after the permission check
        self.err("POST", path, {"tag_id": a["id"]}, "carol", 404,
                 "app not found")
        self.err("POST", path, None, "carol", 404, "app not found",
                 raw=b"{")
        self.err("POST", path, {"tag_id": a["id"]}, None, 401)
        for raw in (b"", b"{", b"[]"):
            self.err("POST", path, None, "alice", 400, "invalid JSON body",
                     raw=raw)
        self.err("POST", path, {}, "alice", 400, "tag_id is required")
        self.err("POST", path, {"tag_id": ""}, "alice", 400,
                 "tag_id is required")
        self.err("POST", path, {"tag_id": 1}, "alice", 400,
                 "invalid JSON body: tag_id must be a string")
        self.err("POST", path, {"tag_id": "nope"}, "alice", 404,
                 "tag not found")
        self.err("POST", path, {"tag_id": "app-a"}, "alice", 404,
                 "tag not found")   # an id, not a name
        self.err("GET", path, None, "dave", 404, "app not found")
        self.err("GET", "/api/v1/apps/ghost/tags", None, "alice", 404,
                 "app not found")
        # removing
        rm = "/api/v1/apps/tagme/tags/"
        self.err("DELETE", rm + a["id"], None, "carol", 404, "app not found")
        self.err("DELETE", rm + a["id"], None, None, 401)
        self.ok("DELETE", rm + a["id"], who="bob", status=204)
        self.err("DELETE", rm + a["id"], None, "alice", 404,
                 "tag association not found")
        self.err("DELETE", rm + "nope", None, "alice", 404,
                 "tag association not found")
        self.assertEqual(self.ok("GET", path), {"tags": [b]})
        # deleting a tag removes it from every app
        self.ok("DELETE", "/api/v1/tags/" + b["id"], who="root", status=204)
        self.assertEqual(self.ok("GET", path), {"tags": []})
        self.assertEqual(self.get("tagme")["tags"], [])

    def test_matrix(self):
        t = self.tag("mx")
        self.create("mx-app")
        self.ok("POST", "/api/v1/apps/mx-app/access",
                {"principal": "bob", "kind": "user", "role": "collaborator"},
                "alice", 204)
        self.ok("POST", "/api/v1/apps/mx-app/access",
                {"principal": "carol", "kind": "user", "role": "viewer"},
                "alice", 204)
        path = "/api/v1/apps/mx-app/tags"
        for who, get, add in zip(self.WHO, [200, 200, 200, 200, 404, 401],
                                 [204, 204, 204, 404, 404, 401]):
            st, _, out = self.api("GET", path, who=who)
            self.assertEqual(st, get, who)
            if get == 404:
                self.assertEqual(out, NOT_FOUND)
            st, _, _ = self.api("POST", path, {"tag_id": t["id"]}, who)
            self.assertEqual(st, add, who)
            st, _, _ = self.api("DELETE", path + "/" + t["id"], who=who)
            self.assertEqual(st, add, who)


if __name__ == "__main__":
    unittest.main()
