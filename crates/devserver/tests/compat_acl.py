# ACL flows through a real Consul client library (py-consul), run by tests/acl_compat.rs.
#
# Environment: CONSUL_HOST, CONSUL_PORT (the dev server, ACLs on, default deny, not bootstrapped),
# JWT_PUBKEY (PEM), JWT_GOOD (a JWT for service "web" in group "ops"), JWT_WRONG_KEY (signed by another
# key), JWT_EXPIRED. Prints "ok" and exits 0 when every step behaves as Consul does.
import json
import os
import sys

import consul
from consul.exceptions import ACLDisabled, ACLPermissionDenied, BadRequest

host, port = os.environ["CONSUL_HOST"], int(os.environ["CONSUL_PORT"])
anon = consul.Consul(host=host, port=port)


def expect(exc, fn, contains=""):
    try:
        fn()
    except exc as e:
        if contains and contains not in str(e):
            sys.exit(f"expected {exc.__name__} containing {contains!r}, got {e!r}")
        return str(e)
    sys.exit(f"expected {exc.__name__} from {fn}")


# Bootstrap once.
boot = anon.acl.bootstrap()
mgmt = boot["SecretID"]
assert boot["Policies"][0]["Name"] == "global-management", boot
expect(ACLPermissionDenied, anon.acl.bootstrap, "ACL bootstrap no longer allowed")
admin = consul.Consul(host=host, port=port, token=mgmt)

# A policy and a token that may write only "web". py-consul sends rules as JSON (Consul's rule
# language accepts the JSON form of its HCL).
rules = {"service": {"web": {"policy": "write"}}, "node_prefix": {"": {"policy": "read"}}}
policy = admin.acl.policy.create(name="web-write", rules=rules, description="web only")
assert json.loads(admin.acl.policy.read(policy["ID"])["Rules"]) == rules
expect(BadRequest, lambda: admin.acl.policy.create(name="broken", rules={"service": {"x": {"policy": "maybe"}}}), "Invalid service policy")
tok = admin.acl.token.create(policies_id=[policy["ID"]], description="web token")
web = consul.Consul(host=host, port=port, token=tok["SecretID"])

# Token self, and the listing with the policy filter.
me = web.acl.token.read_self()
assert me["AccessorID"] == tok["AccessorID"] and me["Policies"][0]["Name"] == "web-write", me
listed = admin.acl.token.list(policy=policy["ID"])
assert [t["AccessorID"] for t in listed] == [tok["AccessorID"]], listed

# The node exists (registered by the admin); web may register web and not db.
assert admin.catalog.register("n1", "10.0.0.1")
assert web.catalog.register("n1", "10.0.0.1", service={"Service": "web", "Port": 80}, skip_node_update=True)
msg = expect(ACLPermissionDenied, lambda: web.catalog.register("n1", "10.0.0.1", service={"Service": "db", "Port": 5432}, skip_node_update=True))
assert f"token with AccessorID '{tok['AccessorID']}' lacks permission 'service:write' on \"db\"" in msg, msg
expect(ACLPermissionDenied, lambda: web.acl.token.list(), "acl:read")
expect(ACLPermissionDenied, lambda: consul.Consul(host=host, port=port, token="00000000-dead-beef-0000-000000000000").acl.token.read_self(), "ACL not found")

# Login and logout with a JWT auth method.
admin.acl.auth_method.create(
    name="jwt",
    method_type="jwt",
    config={
        "JWTValidationPubKeys": [os.environ["JWT_PUBKEY"]],
        "JWTSupportedAlgs": ["ES256"],
        "BoundIssuer": "https://issuer.example",
        "BoundAudiences": ["consul"],
        "ClaimMappings": {"service": "service"},
        "ListClaimMappings": {"groups": "groups"},
    },
)
admin.acl.binding_rule.create("jwt", "service", "${value.service}", selector="ops in list.groups")
assert [r["BindName"] for r in admin.acl.binding_rule.list(auth_method="jwt")] == ["${value.service}"]
login = anon.acl.login("jwt", os.environ["JWT_GOOD"], meta={"consul.hashicorp.com/task-id": "t-1"})
assert login["AuthMethod"] == "jwt", login
assert login["ServiceIdentities"] == [{"ServiceName": "web"}], login
assert login["Description"] == 'token created via login: {"consul.hashicorp.com/task-id":"t-1"}', login
logged_in = consul.Consul(host=host, port=port, token=login["SecretID"])
assert logged_in.acl.token.read_self()["AccessorID"] == login["AccessorID"]
assert logged_in.catalog.register("n1", "10.0.0.1", service={"Service": "web", "ID": "web-2", "Port": 81}, skip_node_update=True)
expect(ACLPermissionDenied, lambda: anon.acl.login("jwt", os.environ["JWT_WRONG_KEY"]), "Permission denied")
expect(ACLPermissionDenied, lambda: anon.acl.login("jwt", os.environ["JWT_EXPIRED"]), "expired")
expect(ACLPermissionDenied, lambda: anon.acl.logout(mgmt), "Permission denied")
assert anon.acl.logout(login["SecretID"])
expect(ACLPermissionDenied, logged_in.acl.token.read_self, "ACL not found")
print("ok")
