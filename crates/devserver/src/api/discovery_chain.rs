//! `GET`/`POST /v1/discovery-chain/:service`: the compiled discovery chain of a service (blocking).
//!
//! What is compiled: the protocol (`service-defaults`, else `proxy-defaults` `Config.protocol`, else
//! `tcp`); for HTTP-like protocols a `service-router` (its routes plus the catch-all `/` route) and a
//! `service-splitter`; and the resolver of each target, from `service-resolver` (`ConnectTimeout`,
//! default 5s; `DefaultSubset` and `Subsets`; `Redirect`, followed with loop detection; `Failover` by
//! subset or `*`, with `Targets`, `Datacenters` or `Service`). Targets are named
//! `[<subset>.]<service>.<namespace>.<partition>.<datacenter>` and carry the SNI the sidecar sends
//! (`service-defaults` `ExternalSNI` overrides it), the mesh gateway mode (override, else
//! `service-defaults`, else `proxy-defaults`) and the subset filter. A `POST` body may set
//! `OverrideConnectTimeout`, `OverrideProtocol` and `OverrideMeshGateway`; `?compile-dc=` compiles for
//! another datacenter.
//!
//! Not compiled: nested splitters are not flattened (a split to a service with its own splitter goes to
//! that service's resolver), peer targets carry no SNI (this server knows no peer trust domains), and
//! virtual IPs are always `null`.
//!
//! ```text
//! curl -s http://127.0.0.1:8500/v1/discovery-chain/web | jq .Chain.StartNode
//! ```

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use connect::TrustDomain;
use connect::sni::service_sni;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::acl::{Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, query_reply};
use crate::duration::{format_go, parse_go};
use crate::state::{Tables, Topic, ca};

/// Connect timeout of a resolver that does not set one.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT: &str = "default";
const KINDS: &[&str] = &[
    "service-resolver",
    "service-router",
    "service-splitter",
    "service-defaults",
    "proxy-defaults",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/discovery-chain/{service}", get(read).post(read_post))
}

/// The `POST` body.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
struct Overrides {
    override_connect_timeout: Value,
    override_protocol: String,
    override_mesh_gateway: Map<String, Value>,
}

async fn read(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    path: Path<String>,
) -> Result<Response, ApiError> {
    compile_reply(state, authz, q, path, Overrides::default()).await
}

async fn read_post(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    path: Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let overrides = if body.iter().all(u8::is_ascii_whitespace) {
        Overrides::default()
    } else {
        crate::decode::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?
    };
    compile_reply(state, authz, q, path, overrides).await
}

async fn compile_reply(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(service): Path<String>,
    overrides: Overrides,
) -> Result<Response, ApiError> {
    authz.require(Resource::Service, &service, Access::Read)?;
    let dc = match q.params.get("compile-dc") {
        Some(dc) if !dc.is_empty() => dc.to_owned(),
        _ => state.datacenter().to_owned(),
    };
    let override_timeout = match &overrides.override_connect_timeout {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(parse_go(s).map_err(|e| {
            ApiError::bad_request(format!(
                "Request decode failed: OverrideConnectTimeout: {e}"
            ))
        })?),
        Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(Duration::from_nanos),
        other => {
            return Err(ApiError::bad_request(format!(
                "Request decode failed: OverrideConnectTimeout: {other} is not a duration"
            )));
        }
    };
    let topics: Vec<Topic> = KINDS
        .iter()
        .map(|k| Topic::ConfigKind((*k).to_owned()))
        .collect();
    let (index, chain) = blocking(&state, &q, topics.clone(), |t| {
        let td = trust_domain(t)?;
        let mut c = Compiler {
            t,
            dc: dc.clone(),
            td,
            protocol: String::new(),
            override_timeout,
            override_mgw: overrides
                .override_mesh_gateway
                .get("Mode")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            nodes: Map::new(),
            targets: Map::new(),
            used_entries: false,
        };
        let mut chain = c
            .compile(&service, &overrides.override_protocol)
            .map_err(ApiError::internal)?;
        if overrides != Overrides::default()
            && let Value::Object(m) = &mut chain
        {
            let digest = Sha256::digest(format!("{overrides:?}").as_bytes());
            let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            m.insert("CustomizationHash".into(), hash.into());
        }
        let index = topics.iter().map(|tp| t.topic_index(tp)).max().unwrap_or(1);
        Ok((index, chain))
    })
    .await?;
    query_reply(&q, index, &json!({"Chain": chain}))
}

fn trust_domain(t: &Tables) -> Result<TrustDomain, ApiError> {
    let roots =
        ca::roots(t)?.ok_or_else(|| ApiError::internal("the Connect CA is not initialised"))?;
    TrustDomain::new(&roots.trust_domain)
        .map_err(|e| ApiError::internal(format!("stored trust domain is invalid: {e}")))
}

/// Where a target points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetOpts {
    service: String,
    subset: String,
    namespace: String,
    partition: String,
    datacenter: String,
    peer: String,
}

impl TargetOpts {
    /// Consul's chain ID, shaped like an SNI.
    fn id(&self) -> String {
        if !self.peer.is_empty() {
            format!(
                "{}.{}.{}.external.{}",
                self.service, self.namespace, self.partition, self.peer
            )
        } else if self.subset.is_empty() {
            format!(
                "{}.{}.{}.{}",
                self.service, self.namespace, self.partition, self.datacenter
            )
        } else {
            format!(
                "{}.{}.{}.{}.{}",
                self.subset, self.service, self.namespace, self.partition, self.datacenter
            )
        }
    }

    /// Applies the set fields of a redirect, failover target or split. Naming another service drops
    /// the subset unless one is named too.
    fn overlaid(&self, m: &Map<String, Value>) -> TargetOpts {
        let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let mut out = self.clone();
        if let Some(s) = text("Service")
            && s != self.service
        {
            out.service = s.to_owned();
            out.subset = String::new();
        }
        if let Some(s) = text("ServiceSubset") {
            out.subset = s.to_owned();
        }
        if let Some(s) = text("Namespace") {
            out.namespace = s.to_owned();
        }
        if let Some(s) = text("Partition") {
            out.partition = s.to_owned();
        }
        if let Some(s) = text("Datacenter") {
            out.datacenter = s.to_owned();
        }
        if let Some(s) = text("Peer") {
            out.peer = s.to_owned();
        }
        out
    }
}

struct Compiler<'a> {
    t: &'a Tables,
    dc: String,
    td: TrustDomain,
    protocol: String,
    override_timeout: Option<Duration>,
    override_mgw: String,
    nodes: Map<String, Value>,
    targets: Map<String, Value>,
    used_entries: bool,
}

fn duration_value(v: Option<&Value>) -> Option<Duration> {
    match v? {
        Value::String(s) => parse_go(s).ok().filter(|d| !d.is_zero()),
        Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(Duration::from_nanos),
        _ => None,
    }
}

impl Compiler<'_> {
    fn entry(&self, kind: &str, name: &str) -> Option<&Map<String, Value>> {
        self.t
            .config
            .get(&(kind.to_owned(), name.to_owned()))
            .map(|e| &e.body)
    }

    fn l7(&self) -> bool {
        matches!(self.protocol.as_str(), "http" | "http2" | "grpc")
    }

    fn protocol_of(&self, service: &str) -> String {
        let sd = self
            .entry("service-defaults", service)
            .and_then(|m| m.get("Protocol"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        let pd = self
            .entry("proxy-defaults", "global")
            .and_then(|m| m.get("Config"))
            .and_then(|c| c.get("protocol"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        sd.or(pd).unwrap_or("tcp").to_ascii_lowercase()
    }

    fn default_opts(&self, service: &str) -> TargetOpts {
        TargetOpts {
            service: service.to_owned(),
            subset: String::new(),
            namespace: DEFAULT.to_owned(),
            partition: DEFAULT.to_owned(),
            datacenter: self.dc.clone(),
            peer: String::new(),
        }
    }

    fn compile(&mut self, service: &str, override_protocol: &str) -> Result<Value, String> {
        self.protocol = if override_protocol.is_empty() {
            self.protocol_of(service)
        } else {
            override_protocol.to_ascii_lowercase()
        };
        let start = self.route_node(service)?;
        let mut chain = Map::new();
        chain.insert("ServiceName".into(), service.into());
        chain.insert("Namespace".into(), DEFAULT.into());
        chain.insert("Partition".into(), DEFAULT.into());
        chain.insert("Datacenter".into(), self.dc.clone().into());
        if !self.used_entries {
            chain.insert("Default".into(), true.into());
        }
        chain.insert("Protocol".into(), self.protocol.clone().into());
        if let Some(meta) = self
            .entry("service-defaults", service)
            .and_then(|m| m.get("Meta"))
            .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
        {
            chain.insert("ServiceMeta".into(), meta.clone());
        }
        chain.insert("StartNode".into(), start.into());
        chain.insert(
            "Nodes".into(),
            Value::Object(std::mem::take(&mut self.nodes)),
        );
        chain.insert(
            "Targets".into(),
            Value::Object(std::mem::take(&mut self.targets)),
        );
        chain.insert("AutoVirtualIPs".into(), Value::Null);
        chain.insert("ManualVirtualIPs".into(), Value::Null);
        Ok(Value::Object(chain))
    }

    /// The first node for a service: its router, else its splitter, else its resolver.
    fn route_node(&mut self, service: &str) -> Result<String, String> {
        if self.l7()
            && let Some(router) = self.entry("service-router", service).cloned()
        {
            self.used_entries = true;
            return self.router_node(service, &router);
        }
        self.split_or_resolve(service)
    }

    fn split_or_resolve(&mut self, service: &str) -> Result<String, String> {
        if self.l7()
            && let Some(splitter) = self.entry("service-splitter", service).cloned()
        {
            self.used_entries = true;
            return self.splitter_node(service, &splitter);
        }
        self.resolver_node(self.default_opts(service), &mut Vec::new())
    }

    fn router_node(
        &mut self,
        service: &str,
        router: &Map<String, Value>,
    ) -> Result<String, String> {
        let key = format!("router:{service}");
        if self.nodes.contains_key(&key) {
            return Ok(key);
        }
        let mut routes = Vec::new();
        let defined = router
            .get("Routes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for route in defined {
            let dest = route
                .get("Destination")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let opts = self.default_opts(service).overlaid(&dest);
            let next = if opts.subset.is_empty() && opts.service != service {
                self.split_or_resolve(&opts.service)?
            } else if opts.subset.is_empty() {
                self.split_or_resolve(service)?
            } else {
                self.resolver_node(opts, &mut Vec::new())?
            };
            let mut definition = route.as_object().cloned().unwrap_or_default();
            definition
                .entry("Destination")
                .or_insert_with(|| json!({"Service": service}));
            routes.push(json!({"Definition": definition, "NextNode": next}));
        }
        let next = self.split_or_resolve(service)?;
        routes.push(json!({
            "Definition": {"Match": {"HTTP": {"PathPrefix": "/"}}, "Destination": {"Service": service}},
            "NextNode": next
        }));
        self.nodes.insert(
            key.clone(),
            json!({"Type": "router", "Name": service, "Routes": routes}),
        );
        Ok(key)
    }

    fn splitter_node(
        &mut self,
        service: &str,
        splitter: &Map<String, Value>,
    ) -> Result<String, String> {
        let key = format!("splitter:{service}");
        if self.nodes.contains_key(&key) {
            return Ok(key);
        }
        let mut splits = Vec::new();
        let defined = splitter
            .get("Splits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for split in defined {
            let def = split.as_object().cloned().unwrap_or_default();
            let opts = self.default_opts(service).overlaid(&def);
            let next = self.resolver_node(opts, &mut Vec::new())?;
            let weight = def.get("Weight").cloned().unwrap_or(Value::from(0));
            splits.push(json!({"Definition": def, "Weight": weight, "NextNode": next}));
        }
        self.nodes.insert(
            key.clone(),
            json!({"Type": "splitter", "Name": service, "Splits": splits}),
        );
        Ok(key)
    }

    fn connect_timeout(&self, resolver: Option<&Map<String, Value>>) -> Duration {
        self.override_timeout
            .or_else(|| duration_value(resolver.and_then(|r| r.get("ConnectTimeout"))))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// The resolver node of a target, following redirects; returns its key.
    fn resolver_node(
        &mut self,
        mut opts: TargetOpts,
        visited: &mut Vec<String>,
    ) -> Result<String, String> {
        let resolver = self.entry("service-resolver", &opts.service).cloned();
        if resolver.is_some() {
            self.used_entries = true;
        }
        if let Some(redirect) = resolver
            .as_ref()
            .and_then(|r| r.get("Redirect"))
            .and_then(Value::as_object)
        {
            let next = opts.overlaid(redirect);
            if next != opts {
                if visited.contains(&next.id()) {
                    return Err(format!(
                        "detected circular resolver redirect: [{}]",
                        visited.join(" -> ")
                    ));
                }
                visited.push(opts.id());
                visited.push(next.id());
                return self.resolver_node(next, visited);
            }
        }
        let subsets = resolver
            .as_ref()
            .and_then(|r| r.get("Subsets"))
            .and_then(Value::as_object);
        if opts.subset.is_empty()
            && let Some(default) = resolver
                .as_ref()
                .and_then(|r| r.get("DefaultSubset"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        {
            opts.subset = default.to_owned();
        }
        let subset_def = if opts.subset.is_empty() {
            None
        } else {
            match subsets.and_then(|s| s.get(&opts.subset)) {
                Some(def) => Some(def.clone()),
                None => {
                    return Err(format!(
                        "service {:?} does not have a subset named {:?}",
                        opts.service, opts.subset
                    ));
                }
            }
        };
        let id = opts.id();
        let key = format!("resolver:{id}");
        if self.nodes.contains_key(&key) {
            return Ok(key);
        }
        let timeout = self.connect_timeout(resolver.as_ref());
        self.add_target(&opts, subset_def.as_ref(), timeout);

        let mut node = Map::new();
        node.insert("ConnectTimeout".into(), format_go(timeout).into());
        if resolver.is_none() {
            node.insert("Default".into(), true.into());
        }
        if let Some(rt) = duration_value(resolver.as_ref().and_then(|r| r.get("RequestTimeout"))) {
            node.insert(
                "RequestTimeout".into(),
                u64::try_from(rt.as_nanos()).unwrap_or(u64::MAX).into(),
            );
        }
        node.insert("Target".into(), id.clone().into());
        let failover = resolver
            .as_ref()
            .and_then(|r| r.get("Failover"))
            .and_then(Value::as_object)
            .and_then(|f| f.get(&opts.subset).or_else(|| f.get("*")))
            .and_then(Value::as_object)
            .cloned();
        if let Some(fo) = failover {
            let mut ids = Vec::new();
            for target in self.failover_targets(&opts, &fo) {
                let tid = target.id();
                if tid == id || ids.contains(&tid) {
                    continue;
                }
                let their = self.entry("service-resolver", &target.service).cloned();
                let sub = their
                    .as_ref()
                    .and_then(|r| r.get("Subsets"))
                    .and_then(|s| s.get(&target.subset))
                    .cloned();
                let timeout = self.connect_timeout(their.as_ref());
                self.add_target(&target, sub.as_ref(), timeout);
                ids.push(tid);
            }
            if !ids.is_empty() {
                let mut f = Map::new();
                f.insert("Targets".into(), ids.into());
                if let Some(p) = fo.get("Policy").filter(|p| !p.is_null()) {
                    f.insert("Policy".into(), p.clone());
                }
                node.insert("Failover".into(), Value::Object(f));
            }
        }
        self.nodes.insert(
            key.clone(),
            json!({"Type": "resolver", "Name": id, "Resolver": node}),
        );
        Ok(key)
    }

    fn failover_targets(&self, opts: &TargetOpts, fo: &Map<String, Value>) -> Vec<TargetOpts> {
        if let Some(list) = fo
            .get("Targets")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        {
            return list
                .iter()
                .filter_map(Value::as_object)
                .map(|t| opts.overlaid(t))
                .collect();
        }
        let base = opts.overlaid(fo);
        match fo
            .get("Datacenters")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        {
            Some(dcs) => dcs
                .iter()
                .filter_map(Value::as_str)
                .map(|dc| TargetOpts {
                    datacenter: dc.to_owned(),
                    ..base.clone()
                })
                .collect(),
            None => vec![base],
        }
    }

    fn add_target(&mut self, opts: &TargetOpts, subset: Option<&Value>, timeout: Duration) {
        let id = opts.id();
        if self.targets.contains_key(&id) {
            return;
        }
        let sd = self.entry("service-defaults", &opts.service);
        let sd_mgw = sd
            .and_then(|m| m.get("MeshGateway"))
            .and_then(|g| g.get("Mode"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty());
        let pd_mgw = self
            .entry("proxy-defaults", "global")
            .and_then(|m| m.get("MeshGateway"))
            .and_then(|g| g.get("Mode"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty());
        let mgw = Some(self.override_mgw.as_str())
            .filter(|m| !m.is_empty())
            .or(sd_mgw)
            .or(pd_mgw);
        let external_sni = sd
            .and_then(|m| m.get("ExternalSNI"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let dialed_directly = sd
            .and_then(|m| m.get("TransparentProxy"))
            .and_then(|t| t.get("DialedDirectly"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut t = Map::new();
        t.insert("ConnectTimeout".into(), format_go(timeout).into());
        t.insert("ID".into(), id.clone().into());
        t.insert("Service".into(), opts.service.clone().into());
        if !opts.subset.is_empty() {
            t.insert("ServiceSubset".into(), opts.subset.clone().into());
        }
        t.insert("Namespace".into(), opts.namespace.clone().into());
        t.insert("Partition".into(), opts.partition.clone().into());
        if opts.peer.is_empty() {
            t.insert("Datacenter".into(), opts.datacenter.clone().into());
        } else {
            t.insert("Peer".into(), opts.peer.clone().into());
        }
        t.insert(
            "MeshGateway".into(),
            mgw.map_or_else(|| json!({}), |m| json!({"Mode": m})),
        );
        let mut sub = Map::new();
        if let Some(def) = subset {
            if let Some(f) = def
                .get("Filter")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
            {
                sub.insert("Filter".into(), f.into());
            }
            if def.get("OnlyPassing").and_then(Value::as_bool) == Some(true) {
                sub.insert("OnlyPassing".into(), true.into());
            }
        }
        t.insert("Subset".into(), Value::Object(sub));
        t.insert(
            "TransparentProxy".into(),
            if dialed_directly {
                json!({"DialedDirectly": true})
            } else {
                json!({})
            },
        );
        if opts.peer.is_empty() {
            let name = service_sni(
                &opts.service,
                &opts.subset,
                &opts.namespace,
                &opts.partition,
                &opts.datacenter,
                &self.td,
            );
            match external_sni {
                Some(sni) => {
                    t.insert("External".into(), true.into());
                    t.insert("SNI".into(), sni.into());
                }
                None => {
                    t.insert("SNI".into(), name.clone().into());
                }
            }
            t.insert("Name".into(), name.into());
        } else {
            t.insert("Name".into(), id.clone().into());
        }
        self.targets.insert(id, Value::Object(t));
    }
}
