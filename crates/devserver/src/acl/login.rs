//! Auth methods and login: checking an auth method's `Config`, verifying a bearer token into an
//! identity (`aws-iam`: replaying the signed STS and IAM requests; `jwt`: signature and claims), and
//! turning the identity into a token's grants through binding rules.
//!
//! An identity has selectable fields (what binding rule selectors see, in the `?filter` language) and
//! variables (what `${...}` in a rule's `BindName` may use):
//!
//! | Type | Fields and variables |
//! | --- | --- |
//! | `aws-iam` | `entity_name`, `entity_id`, `account_id`; with `EnableIAMEntityDetails` also `entity_path` and `entity_tags.<tag>` for each of `IAMEntityTags` (selectors write `entity_tags["<tag>"]`) |
//! | `jwt` | `value.<name>` for each `ClaimMappings` entry; selectors also see `list.<name>` for `ListClaimMappings` |

use std::collections::BTreeMap;
use std::time::Duration;

use consul_ecs_aws::arn::{IamPrincipal, PrincipalKind};
use consul_ecs_aws::aws_xml;
use consul_ecs_aws::bearer_token::{TokenRules, parse_bearer_token_with};
use consul_ecs_aws::iam_login::{AwsResponse, send_signed_request};
use serde_json::{Map, Value, json};

use super::records::{
    BindingRule, Grants, Link, NodeIdentity, ServiceIdentity, TemplateVariables, TemplatedPolicy,
};
use crate::filter::Filter;
use crate::state::Tables;

/// How long one replayed AWS request may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(15);

/// A checked auth method configuration.
#[derive(Debug, Clone)]
pub(crate) enum MethodConfig {
    /// `aws-iam`.
    AwsIam(AwsIam),
    /// `jwt`.
    Jwt(Jwt),
}

/// The `aws-iam` settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsIam {
    bound_arns: Vec<String>,
    entity_details: bool,
    entity_tags: Vec<String>,
    server_id: Option<String>,
    max_retries: u32,
    iam_endpoint: Option<String>,
    sts_endpoint: Option<String>,
    allowed_sts_headers: Vec<String>,
}

/// The `jwt` settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jwt {
    pub_keys: Vec<String>,
    algs: Vec<jsonwebtoken::Algorithm>,
    audiences: Vec<String>,
    issuer: Option<String>,
    claim_mappings: BTreeMap<String, String>,
    list_claim_mappings: BTreeMap<String, String>,
    clock_skew: u64,
    expiration_leeway: u64,
    not_before_leeway: u64,
}

/// A verified login: what selectors see and what bind names may use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verified {
    /// The selectable fields as JSON.
    pub(crate) fields: Value,
    /// The bind name variables.
    pub(crate) vars: BTreeMap<String, String>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginFailure {
    /// The bearer token cannot be read: 400.
    BadToken(String),
    /// The identity is refused: 403 `Permission denied: ...`.
    Denied(String),
}

fn strings(config: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{key} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{key} must be a list of strings")),
    }
}

fn string(config: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn boolean(config: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key} must be a boolean")),
    }
}

fn string_map(config: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| format!("{key} must map strings to strings"))
            })
            .collect(),
        Some(_) => Err(format!("{key} must map strings to strings")),
    }
}

/// A duration in seconds: a Go duration string or a number of seconds.
fn seconds(config: &Map<String, Value>, key: &str, default: u64) -> Result<u64, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{key} must not be negative")),
        Some(Value::String(s)) => crate::duration::parse_go(s)
            .map(|d| d.as_secs())
            .map_err(|e| format!("{key}: {e}")),
        Some(_) => Err(format!("{key} must be a duration")),
    }
}

fn refuse_unknown(config: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match config.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key {k:?}")),
        None => Ok(()),
    }
}

/// Checks an auth method's type and `Config` (Consul's validation and messages where it has them).
pub(crate) fn check_config(
    kind: &str,
    config: &Map<String, Value>,
) -> Result<MethodConfig, String> {
    match kind {
        "aws-iam" => {
            refuse_unknown(
                config,
                &[
                    "BoundIAMPrincipalARNs",
                    "EnableIAMEntityDetails",
                    "IAMEntityTags",
                    "ServerIDHeaderValue",
                    "MaxRetries",
                    "IAMEndpoint",
                    "STSEndpoint",
                    "STSRegion",
                    "AllowedSTSHeaderValues",
                ],
            )?;
            let c = AwsIam {
                bound_arns: strings(config, "BoundIAMPrincipalARNs")?,
                entity_details: boolean(config, "EnableIAMEntityDetails")?,
                entity_tags: strings(config, "IAMEntityTags")?,
                server_id: string(config, "ServerIDHeaderValue")?,
                max_retries: match config.get("MaxRetries") {
                    None | Some(Value::Null) => 0,
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n <= 20)
                        .ok_or("MaxRetries must be a whole number from 0 to 20")?,
                },
                iam_endpoint: string(config, "IAMEndpoint")?,
                sts_endpoint: string(config, "STSEndpoint")?,
                allowed_sts_headers: strings(config, "AllowedSTSHeaderValues")?,
            };
            string(config, "STSRegion")?;
            if c.bound_arns.is_empty() {
                return Err(
                    "BoundIAMPrincipalARNs is required and must have at least 1 entry".into(),
                );
            }
            for arn in &c.bound_arns {
                if let Some(star) = arn.find('*') {
                    if !c.entity_details {
                        return Err("Must set EnableIAMEntityDetails=true to use wildcards in BoundIAMPrincipalARNs".into());
                    }
                    if star != arn.len() - 1 {
                        return Err(format!(
                            "Only one wildcard is allowed at the end of the bound IAM principal ARN: {arn:?}"
                        ));
                    }
                }
            }
            if !c.entity_tags.is_empty() && !c.entity_details {
                return Err("Must set EnableIAMEntityDetails=true to use IAMEntityTags".into());
            }
            for (key, url) in [
                ("IAMEndpoint", &c.iam_endpoint),
                ("STSEndpoint", &c.sts_endpoint),
            ] {
                if let Some(u) = url
                    && !(u.starts_with("http://") || u.starts_with("https://"))
                {
                    return Err(format!(
                        "{key} must be an http:// or https:// URL, got {u:?}"
                    ));
                }
            }
            Ok(MethodConfig::AwsIam(c))
        }
        "jwt" => {
            refuse_unknown(
                config,
                &[
                    "JWTValidationPubKeys",
                    "JWKSURL",
                    "JWKSCACert",
                    "OIDCDiscoveryURL",
                    "OIDCDiscoveryCACert",
                    "BoundAudiences",
                    "BoundIssuer",
                    "ClaimMappings",
                    "ListClaimMappings",
                    "ClockSkewLeeway",
                    "ExpirationLeeway",
                    "NotBeforeLeeway",
                    "JWTSupportedAlgs",
                ],
            )?;
            let keys = strings(config, "JWTValidationPubKeys")?;
            let jwks = string(config, "JWKSURL")?;
            let oidc = string(config, "OIDCDiscoveryURL")?;
            let set = usize::from(!keys.is_empty())
                + usize::from(jwks.is_some())
                + usize::from(oidc.is_some());
            if set != 1 {
                return Err("exactly one of 'JWTValidationPubKeys', 'JWKSURL', or 'OIDCDiscoveryURL' must be set for 'jwt'".into());
            }
            if jwks.is_some() || oidc.is_some() {
                return Err("this dev server verifies JWTs only with JWTValidationPubKeys (JWKSURL and OIDCDiscoveryURL are not supported)".into());
            }
            for (i, pem) in keys.iter().enumerate() {
                if decoding_keys(pem).is_empty() {
                    return Err(format!(
                        "error parsing public key JWTValidationPubKeys[{i}]: not an RSA, EC or Ed25519 public key in PEM"
                    ));
                }
            }
            let mut algs = Vec::new();
            for a in strings(config, "JWTSupportedAlgs")? {
                let alg: jsonwebtoken::Algorithm = a
                    .parse()
                    .map_err(|_| format!("Invalid supported algorithm: {a}"))?;
                if matches!(
                    alg,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                ) {
                    return Err(format!("Invalid supported algorithm: {a}"));
                }
                algs.push(alg);
            }
            if algs.is_empty() {
                algs.push(jsonwebtoken::Algorithm::RS256);
            }
            let claim_mappings = string_map(config, "ClaimMappings")?;
            let list_claim_mappings = string_map(config, "ListClaimMappings")?;
            Ok(MethodConfig::Jwt(Jwt {
                pub_keys: keys,
                algs,
                audiences: strings(config, "BoundAudiences")?,
                issuer: string(config, "BoundIssuer")?,
                claim_mappings,
                list_claim_mappings,
                clock_skew: seconds(config, "ClockSkewLeeway", 60)?,
                expiration_leeway: seconds(config, "ExpirationLeeway", 0)?,
                not_before_leeway: seconds(config, "NotBeforeLeeway", 0)?,
            }))
        }
        other => Err(format!(
            "Invalid Auth Method: Type should be one of: [aws-iam jwt] (got {other:?}; kubernetes, oidc and others are not supported by this dev server)"
        )),
    }
}

impl MethodConfig {
    /// The variables a bind name may use, and the selectable top-level fields.
    pub(crate) fn var_names(&self) -> Vec<String> {
        match self {
            MethodConfig::AwsIam(c) => {
                let mut v: Vec<String> = ["entity_name", "entity_id", "account_id"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                if c.entity_details {
                    v.push("entity_path".into());
                    v.extend(c.entity_tags.iter().map(|t| format!("entity_tags.{t}")));
                }
                v
            }
            MethodConfig::Jwt(c) => c
                .claim_mappings
                .values()
                .map(|a| format!("value.{a}"))
                .collect(),
        }
    }

    /// Verifies a bearer token.
    pub(crate) async fn verify(&self, bearer: &str) -> Result<Verified, LoginFailure> {
        match self {
            MethodConfig::AwsIam(c) => verify_aws(c, bearer).await,
            MethodConfig::Jwt(c) => verify_jwt(c, bearer),
        }
    }
}

async fn replay(
    request: &consul_ecs_aws::bearer_token::SignedRequest,
    endpoint: Option<&str>,
    retries: u32,
    what: &str,
) -> Result<AwsResponse, LoginFailure> {
    let mut attempt = 0;
    loop {
        match send_signed_request(request, endpoint, REPLAY_TIMEOUT).await {
            Ok(r) if r.status >= 500 && attempt < retries => {}
            Ok(r) => return Ok(r),
            Err(e) if attempt >= retries => {
                return Err(LoginFailure::Denied(format!(
                    "error making request to {what}: {e}"
                )));
            }
            Err(_) => {}
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
}

fn aws_refusal(what: &str, r: &AwsResponse) -> LoginFailure {
    let detail = match aws_xml::parse_error(&r.body) {
        Some(e) => format!("{}: {}", e.code, e.message),
        None => r.body.chars().take(300).collect(),
    };
    LoginFailure::Denied(format!(
        "received error code {} from {what}: {detail}",
        r.status
    ))
}

fn arn_matches(pattern: &str, arn: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => arn.starts_with(prefix),
        None => pattern == arn,
    }
}

async fn verify_aws(c: &AwsIam, bearer: &str) -> Result<Verified, LoginFailure> {
    let rules = TokenRules {
        sts_endpoint: c.sts_endpoint.clone(),
        iam_endpoint: c.iam_endpoint.clone(),
        require_entity: c.entity_details,
        server_id_header_value: c.server_id.clone(),
        allowed_sts_header_values: c.allowed_sts_headers.clone(),
    };
    let login = parse_bearer_token_with(bearer, &rules).map_err(|e| match e {
        consul_ecs_aws::TokenError::ServerId => LoginFailure::Denied(e.to_string()),
        other => LoginFailure::BadToken(other.to_string()),
    })?;
    let r = replay(&login.sts, c.sts_endpoint.as_deref(), c.max_retries, "STS").await?;
    if r.status != 200 {
        return Err(aws_refusal("STS", &r));
    }
    let caller = aws_xml::parse_get_caller_identity(&r.body)
        .map_err(|e| LoginFailure::Denied(e.to_string()))?;
    let principal = IamPrincipal::parse(&caller.arn)
        .map_err(|e| LoginFailure::Denied(format!("unsupported caller: {e}")))?;
    let kind = match principal.kind {
        PrincipalKind::Role | PrincipalKind::AssumedRole => "role",
        PrincipalKind::User => "user",
    };
    let canonical = format!(
        "arn:{}:iam::{}:{kind}/{}",
        principal.partition, principal.account, principal.name
    );
    let mut vars = BTreeMap::new();
    vars.insert("entity_name".to_owned(), principal.name.clone());
    vars.insert(
        "entity_id".to_owned(),
        caller
            .user_id
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned(),
    );
    vars.insert("account_id".to_owned(), principal.account.clone());
    let mut tags = Map::new();
    let mut full_arn = canonical.clone();
    if c.entity_details {
        let entity = login.entity.as_ref().ok_or_else(|| {
            LoginFailure::BadToken("the bearer token carries no IAM entity request".into())
        })?;
        if entity.name != principal.name {
            return Err(LoginFailure::Denied(format!(
                "entity details for {:?} do not match the caller {:?}",
                entity.name, principal.name
            )));
        }
        let r = replay(
            &entity.request,
            c.iam_endpoint.as_deref(),
            c.max_retries,
            "IAM",
        )
        .await?;
        if r.status != 200 {
            return Err(aws_refusal("IAM", &r));
        }
        let found =
            aws_xml::parse_get_entity(&r.body).map_err(|e| LoginFailure::Denied(e.to_string()))?;
        if found.name != principal.name {
            return Err(LoginFailure::Denied(format!(
                "entity details for {:?} do not match the caller {:?}",
                found.name, principal.name
            )));
        }
        full_arn = found.arn.clone();
        vars.insert("entity_id".to_owned(), found.id.clone());
        vars.insert("entity_path".to_owned(), found.path.clone());
        for tag in &c.entity_tags {
            let value = found.tags.get(tag).cloned().unwrap_or_default();
            vars.insert(format!("entity_tags.{tag}"), value.clone());
            tags.insert(tag.clone(), Value::String(value));
        }
    }
    if !c
        .bound_arns
        .iter()
        .any(|p| arn_matches(p, &full_arn) || arn_matches(p, &canonical))
    {
        return Err(LoginFailure::Denied(format!(
            "IAM principal {full_arn} is not trusted"
        )));
    }
    let mut fields = Map::new();
    for (k, v) in &vars {
        if !k.starts_with("entity_tags.") {
            fields.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if c.entity_details {
        fields.insert("entity_tags".into(), Value::Object(tags));
    }
    Ok(Verified {
        fields: Value::Object(fields),
        vars,
    })
}

fn decoding_keys(pem: &str) -> Vec<jsonwebtoken::DecodingKey> {
    let b = pem.as_bytes();
    [
        jsonwebtoken::DecodingKey::from_rsa_pem(b),
        jsonwebtoken::DecodingKey::from_ec_pem(b),
        jsonwebtoken::DecodingKey::from_ed_pem(b),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect()
}

fn claim<'a>(claims: &'a Value, selector: &str) -> Option<&'a Value> {
    if selector.starts_with('/') {
        claims.pointer(selector)
    } else {
        claims.get(selector)
    }
}

fn claim_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn verify_jwt(c: &Jwt, bearer: &str) -> Result<Verified, LoginFailure> {
    let denied = |m: String| LoginFailure::Denied(m);
    let header = jsonwebtoken::decode_header(bearer)
        .map_err(|e| LoginFailure::BadToken(format!("error parsing JWT: {e}")))?;
    if !c.algs.contains(&header.alg) {
        return Err(denied(format!(
            "unsupported signing algorithm: {:?}",
            header.alg
        )));
    }
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut claims = None;
    for pem in &c.pub_keys {
        for key in decoding_keys(pem) {
            if let Ok(data) = jsonwebtoken::decode::<Value>(bearer, &key, &validation) {
                claims = Some(data.claims);
            }
        }
    }
    let claims = claims.ok_or_else(|| denied("failed to verify id token signature".into()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64)
        && now > exp.saturating_add(c.clock_skew + c.expiration_leeway)
    {
        return Err(denied("token is expired (exp)".into()));
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_u64)
        && now.saturating_add(c.clock_skew + c.not_before_leeway) < nbf
    {
        return Err(denied("token is not yet valid (nbf)".into()));
    }
    if let Some(iss) = &c.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(iss.as_str())
    {
        return Err(denied(
            "validation failed, invalid issuer claim (iss)".into(),
        ));
    }
    if !c.audiences.is_empty() {
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !aud.iter().any(|a| c.audiences.iter().any(|b| b == a)) {
            return Err(denied(
                "validation failed, invalid audience claim (aud)".into(),
            ));
        }
    }
    let mut vars = BTreeMap::new();
    let mut values = Map::new();
    for (sel, attr) in &c.claim_mappings {
        let v = match claim(&claims, sel) {
            None => String::new(),
            Some(v) => claim_string(v)
                .ok_or_else(|| denied(format!("error converting claim '{sel}' to string")))?,
        };
        vars.insert(format!("value.{attr}"), v.clone());
        values.insert(attr.clone(), Value::String(v));
    }
    let mut lists = Map::new();
    for (sel, attr) in &c.list_claim_mappings {
        let items: Vec<Value> = match claim(&claims, sel) {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(claim_string)
                .map(Value::String)
                .collect(),
            Some(v) => claim_string(v).map(Value::String).into_iter().collect(),
        };
        lists.insert(attr.clone(), Value::Array(items));
    }
    Ok(Verified {
        fields: json!({"value": values, "list": lists}),
        vars,
    })
}

/// Replaces `${name}` with the variable's value. An unknown variable is an error naming it.
pub(crate) fn interpolate(
    template: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {template:?}"))?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown variable accessed: {name}"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a `BindName` template against the variables an auth method provides.
pub(crate) fn check_bind_name(template: &str, names: &[String]) -> Result<(), String> {
    let vars: BTreeMap<String, String> =
        names.iter().map(|n| (n.clone(), "x".to_owned())).collect();
    interpolate(template, &vars).map(|_| ())
}

/// Whether `name` is a valid service identity name (lower-case DNS-like label).
pub(crate) fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `name` is a valid node identity name.
pub(crate) fn valid_node_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `name` is a valid policy or role name.
pub(crate) fn valid_object_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Applies the method's binding rules to a verified identity. `Ok(None)`: no rule bound anything.
pub(crate) fn bind(
    t: &Tables,
    rules: &[BindingRule],
    verified: &Verified,
    dc: &str,
) -> Result<Option<(Grants, Vec<Link>)>, String> {
    let mut grants = Grants::default();
    let mut roles = Vec::new();
    let mut any = false;
    for rule in rules {
        if !rule.selector.trim().is_empty() {
            let f = Filter::parse(&rule.selector)
                .map_err(|e| format!("binding rule {} has an invalid selector: {e}", rule.id))?;
            if !f.matches(&verified.fields) {
                continue;
            }
        }
        let name = interpolate(&rule.bind_name, &verified.vars).map_err(|e| {
            format!(
                "cannot compute {:?} bind name for bind target: {e}",
                rule.bind_type
            )
        })?;
        let invalid = || {
            format!(
                "computed {:?} bind name for bind target is invalid: {name:?}",
                rule.bind_type
            )
        };
        match rule.bind_type.as_str() {
            "service" => {
                if !valid_service_name(&name) {
                    return Err(invalid());
                }
                grants.service_identities.push(ServiceIdentity {
                    service_name: name,
                    datacenters: Vec::new(),
                });
                any = true;
            }
            "node" => {
                if !valid_node_name(&name) {
                    return Err(invalid());
                }
                grants.node_identities.push(NodeIdentity {
                    node_name: name,
                    datacenter: dc.to_owned(),
                });
                any = true;
            }
            "role" => {
                if let Some(role) = super::records::role_by_name(t, &name) {
                    roles.push(Link {
                        id: role.id,
                        name: role.name,
                    });
                    any = true;
                }
            }
            "policy" => {
                if let Some(p) = super::records::policy_by_name(t, &name) {
                    grants.policies.push(Link {
                        id: p.id,
                        name: p.name,
                    });
                    any = true;
                }
            }
            "templated-policy" => {
                let var = match &rule.bind_vars {
                    Some(v) => Some(TemplateVariables {
                        name: interpolate(&v.name, &verified.vars).map_err(|e| {
                            format!("cannot compute bind vars for bind target: {e}")
                        })?,
                    }),
                    None => None,
                };
                if super::template_rules(&name, var.as_ref().map(|v| v.name.as_str())).is_none() {
                    return Err(invalid());
                }
                grants.templated_policies.push(TemplatedPolicy {
                    template_name: name,
                    template_variables: var,
                    datacenters: Vec::new(),
                });
                any = true;
            }
            other => return Err(format!("unknown bind type {other:?}")),
        }
    }
    Ok(any.then_some((grants, roles)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_uses_known_variables_only() {
        let vars: BTreeMap<String, String> = [
            ("entity_name".to_owned(), "app".to_owned()),
            (
                "entity_tags.consul.hashicorp.com.service-name".to_owned(),
                "web".to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            interpolate("${entity_tags.consul.hashicorp.com.service-name}", &vars).unwrap(),
            "web"
        );
        assert_eq!(interpolate("x-${entity_name}-y", &vars).unwrap(), "x-app-y");
        assert!(interpolate("${nope}", &vars).unwrap_err().contains("nope"));
        assert!(interpolate("${entity_name", &vars).is_err());
    }

    #[test]
    fn aws_config_follows_consuls_rules() {
        let cfg = |v: Value| check_config("aws-iam", v.as_object().unwrap());
        assert!(
            cfg(json!({}))
                .unwrap_err()
                .contains("BoundIAMPrincipalARNs is required")
        );
        assert!(
            cfg(json!({"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/x/*"]}))
                .unwrap_err()
                .contains("EnableIAMEntityDetails=true")
        );
        assert!(
            cfg(json!({"BoundIAMPrincipalARNs": ["a"], "IAMEntityTags": ["t"]}))
                .unwrap_err()
                .contains("IAMEntityTags")
        );
        assert!(
            cfg(json!({"BoundIAMPrincipalARNs": ["a"], "Bogus": 1}))
                .unwrap_err()
                .contains("Bogus")
        );
        let ok = cfg(json!({"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/x/*"], "EnableIAMEntityDetails": true, "IAMEntityTags": ["t"]})).unwrap();
        assert_eq!(
            ok.var_names(),
            vec![
                "entity_name",
                "entity_id",
                "account_id",
                "entity_path",
                "entity_tags.t"
            ]
        );
        assert!(check_config("kubernetes", &Map::new()).is_err());
    }

    #[test]
    fn arn_patterns() {
        assert!(arn_matches(
            "arn:aws:iam::1:role/consul-ecs/*",
            "arn:aws:iam::1:role/consul-ecs/app"
        ));
        assert!(!arn_matches(
            "arn:aws:iam::1:role/consul-ecs/*",
            "arn:aws:iam::1:role/other/app"
        ));
        assert!(arn_matches(
            "arn:aws:iam::1:role/app",
            "arn:aws:iam::1:role/app"
        ));
    }

    #[test]
    fn names() {
        assert!(valid_service_name("web-1"));
        assert!(!valid_service_name("Web"));
        assert!(!valid_service_name(""));
        assert!(!valid_service_name("-web"));
        assert!(valid_node_name("Node-1"));
        assert!(valid_object_name("my_policy-1", 128));
        assert!(!valid_object_name("my policy", 128));
    }
}
