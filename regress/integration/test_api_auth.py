"""Authentication end to end: personal access tokens minted with byctl
(use, revoke, expire, deactivation, role changes), the bootstrap
exchange, per-client rate limits and trusted proxies."""

import datetime
import hashlib
import json
import os
import threading
import time
import unittest

from harness import Byd, BydTestCase



def server_conf(byd, lines, extra=""):
    """Rewrite byd's configuration with more [server] keys."""
    byd.write_config(text=byd.config_text(extra).replace(
        "[server]\n", "[server]\n" + lines, 1))


class ServerConfCase(BydTestCase):
    """A BydTestCase whose [server] section gets `server` lines."""

    server = ""

    def setUp(self):
        self.byd = Byd(self.extra, self.management)
        if self.server:
            server_conf(self.byd, self.server, self.extra)
        self.byd.start()

    def audit(self):
        try:
            with open(os.path.join(self.byd.dir, "audit", "audit.jsonl")) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def me(self, token, headers=None):
        return self.byd.api("GET", "/api/v1/users/me", token=token,
                            headers=headers)


def utc(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def token_id(byd, user, token):
    st, _, body = byd.api("GET", "/api/v1/users/me/tokens", token=token)
    assert st == 200, body
    return body[0]["id"]


class Tokens(ServerConfCase):

    def setUp(self):
        # the audit path is absolute, in the test's own directory
        self.byd = Byd()
        self.byd.write_config(text=self.byd.config_text(
            '\n[audit]\npath = "%s/audit/audit.jsonl"\n' % self.byd.dir))
        self.byd.start()

    def test_token_lifecycle(self):
        tok = self.byd.token("alice", "publisher")
        self.assertRegex(tok, r"^by_[0-9A-Za-z]{40,44}$")
        st, hdr, body = self.me(tok)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["sub"], "alice")
        self.assertEqual(body["role"], "publisher")

        # only the SHA-256 is stored, never the token itself
        tid = token_id(self.byd, "alice", tok)
        self.assertRegex(tid, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                         r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        hexsql = ("lower(hex(token_hash))" if self.byd.db == "sqlite"
                  else "encode(token_hash, 'hex')")
        (h,), = self.byd.sql("SELECT %s FROM personal_access_tokens "
                             "WHERE id = ?" % hexsql, tid)
        self.assertEqual(h, hashlib.sha256(tok.encode()).hexdigest())
        if self.byd.db == "sqlite":
            dbdir = os.path.dirname(self.byd.dbpath)
            for name in os.listdir(dbdir):
                with open(os.path.join(dbdir, name), "rb") as f:
                    self.assertNotIn(tok.encode(), f.read(), name)

        # revoked by the operator: the next request fails
        self.byd.byctl("token", "revoke", tid)
        st, _, body = self.me(tok)
        self.assertEqual(st, 401)
        self.assertEqual(body, {"error": "unauthorized",
                                "message": "invalid or expired token"})

        # revoked by its owner over the API
        tok2 = self.byd.token("alice", "publisher")
        tid2 = token_id(self.byd, "alice", tok2)
        bob = self.byd.token("bob", "viewer")
        bob_id = token_id(self.byd, "bob", bob)
        st, _, body = self.byd.api(
            "DELETE", "/api/v1/users/me/tokens/" + bob_id, token=tok2)
        self.assertEqual((st, body), (404, {"error": "not_found",
                                            "message": "token not found"}))
        self.assertEqual(self.me(bob)[0], 200)
        st, _, body = self.byd.api(
            "DELETE", "/api/v1/users/me/tokens/" + tid2, token=tok2)
        self.assertEqual(st, 204)
        self.assertIsNone(body)
        self.assertEqual(self.me(tok2)[0], 401)

        # revoke all: every live token of the caller, no one else's
        toks = [self.byd.token("carol", "viewer") for _ in range(3)]
        st, _, _ = self.byd.api("DELETE", "/api/v1/users/me/tokens",
                                token=toks[0])
        self.assertEqual(st, 204)
        for t in toks:
            self.assertEqual(self.me(t)[0], 401)
        self.assertEqual(self.me(bob)[0], 200)

        acts = [(a["action"], a.get("target"), a.get("detail"),
                 a.get("actor")) for a in self.audit()]
        self.assertIn(("token.revoke", tid, None, "byctl"), acts)
        self.assertIn(("token.revoke", tid2, None, "alice"), acts)
        self.assertIn(("token.revoke_all", "carol", {"count": 3}, "carol"),
                      acts)
        creates = [a for a in acts if a[0] == "token.create"]
        self.assertEqual(len(creates), 6)
        self.assertEqual(creates[0][2], {"name": "byctl", "user": "alice"})
        for a in self.audit():
            if a["actor"] != "byctl":
                self.assertEqual(a["source_ip"], "127.0.0.1")

    def test_expiry(self):
        # a time a few seconds ahead: valid now, refused once it passed
        at = int(time.time()) + 2
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        r = self.byd.byctl("--json", "token", "create", "dave",
                           "--expires-at", stamp)
        tok = json.loads(r.stdout)
        self.assertEqual(tok["expires_at"], stamp)
        self.assertEqual(self.me(tok["token"])[0], 200)

        # the duration forms, checked on what is stored
        for arg, secs in (("90d", 90 * 86400), ("24h", 86400), ("30m", 1800)):
            r = self.byd.byctl("--json", "token", "create", "dave",
                               "--expires", arg)
            exp = json.loads(r.stdout)["expires_at"]
            self.assertAlmostEqual(utc(exp), time.time() + secs, delta=5)
        st, _, body = self.byd.api("GET", "/api/v1/users/me/tokens",
                                   token=tok["token"])
        self.assertEqual(len(body), 4)
        self.assertIn(stamp, [t["expires_at"] for t in body])
        for bad in ("90", "1w", "-1d", "d", "1.5h", "99999999999999d"):
            r = self.byd.byctl("token", "create", "dave", "--expires", bad,
                               check=False)
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn("invalid expiry", r.stderr)
        r = self.byd.byctl("token", "create", "dave", "--expires-at",
                           "2001-01-01T00:00:00Z", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not in the future", r.stderr)
        r = self.byd.byctl("token", "create", "dave", "--expires-at",
                           "tomorrow", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("RFC 3339", r.stderr)

        while time.time() < at + 1.2:
            time.sleep(0.2)
        st, _, body = self.me(tok["token"])
        self.assertEqual(st, 401)
        self.assertEqual(body["message"], "invalid or expired token")

    def test_deactivation_and_role_change_take_effect_at_once(self):
        admin = self.byd.token("root", "admin")
        eve = self.byd.token("eve", "viewer")
        self.assertEqual(self.me(eve)[0], 200)
        t0 = time.time()
        st, _, body = self.byd.api("PATCH", "/api/v1/users/eve",
                                   {"active": False}, token=admin)
        self.assertEqual(st, 200, body)
        self.assertFalse(body["active"])
        st, _, body = self.me(eve)
        self.assertLess(time.time() - t0, 1.0)
        self.assertEqual(st, 401)
        self.assertEqual(body["message"], "invalid or expired token")
        # back again: the token was never revoked
        self.byd.byctl("user", "set", "eve", "--active", "true")
        self.assertEqual(self.me(eve)[0], 200)
        self.byd.byctl("user", "set", "eve", "--active", "false")
        self.assertEqual(self.me(eve)[0], 401)
        self.byd.byctl("user", "set", "eve", "--active", "true")

        # the role is the owner's current one, on every request
        st, _, body = self.byd.api("GET", "/api/v1/users", token=eve)
        self.assertEqual((st, body["message"]), (403, "admin only"))
        self.byd.byctl("user", "set", "eve", "--role", "admin")
        self.assertEqual(self.byd.api("GET", "/api/v1/users",
                                      token=eve)[0], 200)
        self.assertEqual(self.me(eve)[2]["role"], "admin")
        st, _, body = self.byd.api("PATCH", "/api/v1/users/eve",
                                   {"role": "publisher"}, token=admin)
        self.assertEqual(body["role"], "publisher")
        self.assertEqual(self.me(eve)[2]["role"], "publisher")
        self.assertEqual(self.byd.api("GET", "/api/v1/users",
                                      token=eve)[0], 403)

    def test_missing_and_malformed_credentials(self):
        st, _, body = self.byd.api("GET", "/api/v1/users/me")
        self.assertEqual((st, body), (401, {
            "error": "unauthorized", "message": "authentication required"}))
        for h in ("Bearer by_nope", "Bearer not-a-pat", "Bearer "):
            st, _, body = self.byd.api("GET", "/api/v1/users/me",
                                       headers={"Authorization": h})
            self.assertEqual(st, 401, h)
            self.assertEqual(body["message"], "invalid or expired token", h)
        st, _, body = self.byd.api("GET", "/api/v1/users/me",
                                   headers={"Authorization": "Basic YTpi"})
        self.assertEqual((st, body["error"]), (401, "unauthorized"))


class Bootstrap(ServerConfCase):

    server = 'bootstrap_token = "s3cret-bootstrap"\n'
    AUTH = {"Authorization": "Bearer s3cret-bootstrap"}

    def exchange(self, body=None, headers=None, raw=None):
        return self.byd.api("POST", "/api/v1/bootstrap", body=body,
                            headers=self.AUTH if headers is None else headers,
                            raw=raw)

    def test_exchange_once_for_good(self):
        st, hdr, body = self.exchange({}, headers={})
        self.assertEqual((st, body["message"]), (401, "bearer token required"))
        st, hdr, body = self.exchange(
            {}, headers={"Authorization": "Bearer s3cret-bootstrap2"})
        self.assertEqual((st, body), (401, {
            "error": "unauthorized", "message": "invalid bootstrap token"}))
        st, _, body = self.exchange({}, headers={"Authorization": "Bearer "})
        self.assertEqual((st, body["message"]), (401, "bearer token required"))
        st, _, body = self.exchange(raw=b"{nope")
        self.assertEqual((st, body["message"]), (400, "invalid request body"))
        st, _, body = self.exchange(raw=b"")
        self.assertEqual(st, 400)
        st, _, body = self.exchange({"name": 5})
        self.assertEqual((st, body["message"]), (400, "invalid request body"))
        st, _, body = self.exchange({"expires_in": "1w"})
        self.assertEqual((st, body["message"]), (
            400, "invalid expires_in format, use e.g. '90d', '24h'"))

        st, hdr, body = self.exchange({"name": "ci", "expires_in": "1d"})
        self.assertEqual(st, 201, body)
        self.assertEqual(set(body), {"id", "name", "token", "created_at",
                                     "expires_at"})
        self.assertEqual(body["name"], "ci")
        self.assertAlmostEqual(utc(body["expires_at"]), time.time() + 86400,
                               delta=5)
        self.assertNotIn("x-ratelimit-limit", hdr)
        tok = body["token"]
        st, _, me = self.me(tok)
        self.assertEqual((st, me["sub"], me["role"]), (200, "admin", "admin"))
        self.assertEqual(me["email"], "bootstrap@blockyard.local")

        st, _, body = self.exchange({})
        self.assertEqual((st, body["error"]), (410, "gone"))
        # the wrong token learns nothing more after the exchange either
        st, _, body = self.exchange(
            {}, headers={"Authorization": "Bearer wrong"})
        self.assertEqual(st, 401)

        # burned for good: across a restart too
        self.byd.stop()
        self.byd.start()
        st, _, body = self.exchange({})
        self.assertEqual((st, body["error"]), (410, "gone"))
        self.assertEqual(self.me(tok)[0], 200)
        self.assertEqual(self.byd.sql(
            "SELECT COUNT(*) FROM personal_access_tokens "
            "WHERE revoked = 0"), [(1,)])
        # the sentinel is no token anybody sees
        st, _, body = self.byd.api("GET", "/api/v1/users/me/tokens",
                                   token=tok)
        self.assertEqual([t["name"] for t in body], ["ci"])
        r = self.byd.byctl("token", "list", "--all")
        self.assertNotIn("bootstrap-redeemed", r.stdout)

    def test_concurrent_exchanges_mint_one_token(self):
        results = []

        def go():
            results.append(self.exchange({})[0])
        threads = [threading.Thread(target=go) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), [201] + [410] * 5)


class BootstrapInitialAdmin(ServerConfCase):

    server = 'bootstrap_token = "tok"\n'
    extra = '\n[oidc]\ninitial_admin = "alice@example.org"\n'

    def test_mints_for_initial_admin_and_keeps_existing_row(self):
        # alice exists already (as publisher, no email): left as she is
        self.byd.token("alice@example.org", "publisher")
        st, _, body = self.byd.api("POST", "/api/v1/bootstrap", body={},
                                   headers={"Authorization": "Bearer tok"})
        self.assertEqual(st, 201, body)
        self.assertEqual(body["name"], "bootstrap")
        self.assertIsNone(body["expires_at"])
        st, _, me = self.me(body["token"])
        self.assertEqual(me, {"sub": "alice@example.org", "email": "",
                              "name": "", "role": "publisher"})

    def test_creates_initial_admin(self):
        st, _, body = self.byd.api("POST", "/api/v1/bootstrap", body={},
                                   headers={"Authorization": "Bearer tok"})
        self.assertEqual(st, 201, body)
        st, _, me = self.me(body["token"])
        self.assertEqual(me, {"sub": "alice@example.org",
                              "email": "bootstrap@blockyard.local",
                              "name": "Bootstrap User", "role": "admin"})


class BootstrapNotConfigured(BydTestCase):

    def test_404(self):
        st, _, body = self.byd.api("POST", "/api/v1/bootstrap", body={},
                                   headers={"Authorization": "Bearer x"})
        self.assertEqual((st, body), (404, {
            "error": "not_found", "message": "bootstrap not available"}))


def avoid_minute_edge():
    """The windows are wall-clock minutes: start well inside one."""
    if time.time() % 60 > 55:
        time.sleep(60.2 - time.time() % 60)


class RateLimits(BydTestCase):

    def test_users_me_and_api_groups(self):
        tok = self.byd.token("alice", "admin")
        avoid_minute_edge()
        seen = []
        for i in range(21):
            st, hdr, body = self.byd.api("GET", "/api/v1/users/me/tokens",
                                         token=tok)
            seen.append(st)
            self.assertEqual(hdr["x-ratelimit-limit"], "20")
            self.assertIn("x-ratelimit-reset", hdr)
            if i < 20:
                self.assertEqual(hdr["x-ratelimit-remaining"], str(19 - i))
        self.assertEqual(seen, [200] * 20 + [429])
        self.assertEqual(body, {"error": "too_many_requests",
                                "message": "rate limit exceeded"})
        self.assertEqual(hdr["retry-after"], "60")
        self.assertEqual(hdr["x-ratelimit-remaining"], "0")
        self.assertTrue(hdr["content-type"].startswith("application/json"))
        reset = int(hdr["x-ratelimit-reset"])
        self.assertEqual(reset % 60, 0)
        self.assertTrue(time.time() < reset <= time.time() + 60)
        # the whole /users/me group shares the count, with or without auth
        self.assertEqual(self.byd.api("GET", "/api/v1/users/me")[0], 429)
        self.assertEqual(self.byd.api("DELETE", "/api/v1/users/me/tokens/x",
                                      token=tok)[0], 429)

        # the /api/v1 group counts on its own: 120 a minute
        seen = [self.byd.api("GET", "/api/v1/users", token=tok)[0]
                for _ in range(121)]
        self.assertEqual(seen, [200] * 120 + [429])
        # unknown API paths are counted too (no probing around the limit)
        self.assertEqual(self.byd.api("GET", "/api/v1/nothing")[0], 429)

        # never limited
        for path in ("/healthz", "/readyz"):
            st, hdr, _ = self.byd.request("GET", path)
            self.assertEqual(st, 200)
            self.assertNotIn("x-ratelimit-limit", hdr)
        st, hdr, _ = self.byd.api("POST", "/api/v1/bootstrap", body={})
        self.assertEqual(st, 404)
        self.assertNotIn("x-ratelimit-limit", hdr)

    def test_forwarded_headers_ignored_without_trusted_proxies(self):
        avoid_minute_edge()
        for i in range(20):
            self.byd.api("GET", "/api/v1/users/me",
                         headers={"X-Forwarded-For": "203.0.113.%d" % i})
        st, _, _ = self.byd.api("GET", "/api/v1/users/me",
                                headers={"X-Forwarded-For": "198.51.100.1",
                                         "X-Real-IP": "198.51.100.2"})
        self.assertEqual(st, 429)


class TrustedProxies(ServerConfCase):

    server = 'trusted_proxies = ["127.0.0.0/8"]\n'

    def setUp(self):
        self.byd = Byd()
        server_conf(self.byd, self.server,
                    '\n[audit]\npath = "%s/audit/audit.jsonl"\n' % self.byd.dir)
        self.byd.start()

    def calls(self, headers, n=1):
        return [self.byd.api("GET", "/api/v1/users/me", headers=headers)[0]
                for _ in range(n)]

    def test_client_address_from_trusted_peer(self):
        avoid_minute_edge()
        c7 = {"X-Forwarded-For": "203.0.113.7"}
        self.assertEqual(self.calls(c7, 20), [401] * 20)
        self.assertEqual(self.calls(c7), [429])
        # another client behind the same proxy has its own count
        self.assertEqual(self.calls({"X-Forwarded-For": "203.0.113.8"}),
                         [401])
        # right to left: the first untrusted hop is the client ...
        self.assertEqual(self.calls(
            {"X-Forwarded-For": "198.51.100.9, 203.0.113.7, 127.0.0.5"}),
            [429])
        # ... and what a client wrote itself further left counts for nothing
        self.assertEqual(self.calls(
            {"X-Forwarded-For": "203.0.113.7, 198.51.100.9"}), [401])
        self.assertEqual(self.calls({"X-Forwarded-For": "203.0.113.7",
                                     "X-Real-IP": "198.51.100.3"}), [429])
        self.assertEqual(self.calls({"X-Real-IP": "203.0.113.7"}), [429])
        self.assertEqual(self.calls({}), [401])

        # the audit's source_ip is the client, not the proxy
        tok = self.byd.token("alice", "viewer")
        tid = token_id(self.byd, "alice", tok)
        st, _, _ = self.byd.api(
            "DELETE", "/api/v1/users/me/tokens/" + tid, token=tok,
            headers={"X-Forwarded-For": "192.0.2.44, 127.0.0.9"})
        self.assertEqual(st, 204)
        with open(os.path.join(self.byd.dir, "audit", "audit.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        rev = [l for l in lines if l["action"] == "token.revoke"]
        self.assertEqual(rev[0]["source_ip"], "192.0.2.44")

    def test_untrusted_peer_cannot_claim(self):
        self.byd.stop()
        server_conf(self.byd, 'trusted_proxies = ["10.0.0.0/8"]\n')
        self.byd.start()
        avoid_minute_edge()
        for i in range(20):
            self.calls({"X-Forwarded-For": "203.0.113.%d" % i})
        self.assertEqual(self.calls({"X-Forwarded-For": "198.51.100.1"}),
                         [429])


if __name__ == "__main__":
    unittest.main()
