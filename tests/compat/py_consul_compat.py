"""Drives a Consul-compatible server through py-consul, a real Consul client library.

Run by the Rust end-to-end suite (tests/scenarios/devserver_compat.rs) against a dev server it started:

    CONSUL_HTTP_ADDR=127.0.0.1:PORT python3 py_consul_compat.py [phase]

The phase `all` (default) runs every check; `persist-write` and `persist-read` split a restart test into the
writes made before the server restarts and the reads made after it. Exit status 0 means every check passed.
"""

import datetime
import os
import sys
import threading
import time
import unittest

import consul
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

NODE = "arn:aws:ecs:us-east-1:123456789012:cluster/compat"


def client():
    return consul.Consul()


def register_web(c, sid="web-1", port=8080, status="passing", tags=None):
    c.catalog.register(
        NODE,
        "198.18.0.10",
        service={"ID": sid, "Service": "web", "Port": port, "Tags": tags or ["v1"], "Meta": {"team": "a"}},
        check={"CheckID": f"{sid}-app", "Name": "app", "Status": status, "ServiceID": sid},
    )


class Agent(unittest.TestCase):
    def test_self_and_leader(self):
        c = client()
        me = c.agent.self()
        self.assertEqual(me["Config"]["Datacenter"], "dc1")
        self.assertTrue(c.status.leader())
        self.assertEqual(len(c.status.peers()), 1)
        self.assertIn("dc1", c.catalog.datacenters())


class Catalog(unittest.TestCase):
    def tearDown(self):
        client().catalog.deregister(NODE)

    def test_register_lookup_deregister(self):
        c = client()
        register_web(c)
        _, services = c.catalog.services()
        self.assertEqual(services["web"], ["v1"])
        _, nodes = c.catalog.service("web")
        self.assertEqual(len(nodes), 1)
        self.assertEqual(nodes[0]["ServiceID"], "web-1")
        self.assertEqual(nodes[0]["ServicePort"], 8080)
        self.assertEqual(nodes[0]["ServiceMeta"], {"team": "a"})
        self.assertEqual(nodes[0]["Node"], NODE)
        c.catalog.deregister(NODE, service_id="web-1")
        _, nodes = c.catalog.service("web")
        self.assertEqual(nodes, [])

    def test_health_passing_tag_and_filter(self):
        c = client()
        register_web(c, "web-1", 8080, "passing", ["v1"])
        register_web(c, "web-2", 8081, "critical", ["v2"])
        _, all_ = c.health.service("web")
        self.assertEqual(sorted(e["Service"]["ID"] for e in all_), ["web-1", "web-2"])
        _, passing = c.health.service("web", passing=True)
        self.assertEqual([e["Service"]["ID"] for e in passing], ["web-1"])
        _, tagged = c.health.service("web", tag="v2")
        self.assertEqual([e["Service"]["ID"] for e in tagged], ["web-2"])
        _, filtered = c.catalog.service("web", filter_expr='ServicePort == 8081 and "v2" in ServiceTags')
        self.assertEqual([e["ServiceID"] for e in filtered], ["web-2"])
        _, critical = c.health.state("critical")
        self.assertIn("web-2-app", [chk["CheckID"] for chk in critical])

    def test_blocking_query_wakes_on_change_and_times_out(self):
        c = client()
        register_web(c)
        index, _ = c.health.service("web")
        # Nothing changes: the query waits out its `wait` and returns the same index.
        start = time.monotonic()
        index2, _ = c.health.service("web", index=index, wait="1s")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertEqual(index2, index)
        # A change to the watched service wakes the query well before its wait.
        threading.Timer(0.3, lambda: register_web(client(), "web-1", 8080, "critical")).start()
        start = time.monotonic()
        index3, entries = c.health.service("web", index=index, wait="30s")
        self.assertLess(time.monotonic() - start, 10)
        self.assertGreater(int(index3), int(index))
        self.assertEqual(entries[0]["Checks"][-1]["Status"], "critical")


class KV(unittest.TestCase):
    def test_put_get_cas_recurse_delete(self):
        c = client()
        self.assertTrue(c.kv.put("compat/a", "1"))
        self.assertTrue(c.kv.put("compat/b/c", "2", flags=42))
        _, item = c.kv.get("compat/a")
        self.assertEqual(item["Value"], b"1")
        _, item = c.kv.get("compat/b/c")
        self.assertEqual(item["Flags"], 42)
        # cas with a stale index fails and changes nothing.
        self.assertFalse(c.kv.put("compat/a", "x", cas=item["ModifyIndex"] + 1000))
        _, a = c.kv.get("compat/a")
        self.assertTrue(c.kv.put("compat/a", "3", cas=a["ModifyIndex"]))
        _, keys = c.kv.get("compat/", keys=True)
        self.assertEqual(keys, ["compat/a", "compat/b/c"])
        _, items = c.kv.get("compat/", recurse=True)
        self.assertEqual([i["Value"] for i in items], [b"3", b"2"])
        self.assertTrue(c.kv.delete("compat/", recurse=True))
        _, gone = c.kv.get("compat/a")
        self.assertIsNone(gone)


class ConfigEntries(unittest.TestCase):
    def test_set_get_list_cas_delete(self):
        c = client()
        self.assertTrue(c.config.set("service-defaults", "web", {"Protocol": "http"}))
        entry = c.config.get("service-defaults", "web")
        self.assertEqual(entry["Protocol"], "http")
        self.assertFalse(c.config.set("service-defaults", "web", {"Protocol": "tcp"}, cas=entry["ModifyIndex"] + 99))
        self.assertTrue(c.config.set("service-defaults", "web", {"Protocol": "tcp"}, cas=entry["ModifyIndex"]))
        names = [e["Name"] for e in c.config.list("service-defaults")]
        self.assertIn("web", names)
        self.assertTrue(c.config.delete("service-defaults", "web"))
        # py-consul answers a 404 with None.
        self.assertIsNone(c.config.get("service-defaults", "web"))

    def test_unknown_kind_is_rejected(self):
        with self.assertRaises(consul.ConsulException):
            client().config.set("no-such-kind", "x", {})


class Intentions(unittest.TestCase):
    def tearDown(self):
        c = client()
        for src in ("web", "*"):
            try:
                c.connect.intentions.delete(src, "db")
            except consul.ConsulException:
                pass

    def test_exact_match_check_and_precedence(self):
        c = client()
        self.assertTrue(c.connect.intentions.upsert("*", "db", action="deny"))
        self.assertTrue(c.connect.intentions.upsert("web", "db", action="allow"))
        self.assertEqual(c.connect.intentions.read("web", "db")["Action"], "allow")
        matched = c.connect.intentions.match("destination", "db")["db"]
        # The exact source outranks the wildcard.
        self.assertEqual([i["SourceName"] for i in matched], ["web", "*"])
        self.assertTrue(c.connect.intentions.check("web", "db"))
        self.assertFalse(c.connect.intentions.check("api", "db"))


class ConnectCA(unittest.TestCase):
    def test_roots_and_leaf_verify(self):
        c = client()
        roots = c.connect.ca.roots()
        trust_domain = roots["TrustDomain"]
        self.assertTrue(trust_domain.endswith(".consul"))
        active = [r for r in roots["Roots"] if r["Active"]]
        self.assertEqual(len(active), 1)
        root = x509.load_pem_x509_certificate(active[0]["RootCert"].encode())
        leaf_json = c.agent.connect.ca.leaf("web")
        leaf = x509.load_pem_x509_certificate(leaf_json["CertPEM"].encode())
        # Signed by the active root.
        root.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        self.assertEqual(leaf.issuer, root.subject)
        uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        self.assertEqual(uris, [f"spiffe://{trust_domain}/ns/default/dc/dc1/svc/web"])
        self.assertEqual(leaf_json["ServiceURI"], uris[0])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(leaf.not_valid_before_utc, now)
        self.assertGreater(leaf.not_valid_after_utc, now)
        # The same service gets the cached leaf back until it nears expiry.
        self.assertEqual(c.agent.connect.ca.leaf("web")["SerialNumber"], leaf_json["SerialNumber"])


class PersistWrite(unittest.TestCase):
    def test_write(self):
        c = client()
        register_web(c, "persist-1", 9000)
        c.kv.put("persist/key", "kept")
        c.config.set("service-defaults", "persisted", {"Protocol": "grpc"})


class PersistRead(unittest.TestCase):
    def test_read(self):
        c = client()
        _, nodes = c.catalog.service("web")
        self.assertEqual([n["ServiceID"] for n in nodes], ["persist-1"])
        _, item = c.kv.get("persist/key")
        self.assertEqual(item["Value"], b"kept")
        self.assertEqual(c.config.get("service-defaults", "persisted")["Protocol"], "grpc")


PHASES = {
    "all": [Agent, Catalog, KV, ConfigEntries, Intentions, ConnectCA],
    "persist-write": [PersistWrite],
    "persist-read": [PersistRead],
}

if __name__ == "__main__":
    phase = sys.argv[1] if len(sys.argv) > 1 else "all"
    if "CONSUL_HTTP_ADDR" not in os.environ:
        sys.exit("CONSUL_HTTP_ADDR must name the server under test")
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(t) for t in PHASES[phase])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
