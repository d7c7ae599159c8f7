//! The bearer token of Consul's `aws-iam` auth method: its wire format, encoding and validated
//! decoding.
//!
//! A token is a JSON object with sorted keys holding a signed but unsent `sts:GetCallerIdentity`
//! request: `iam_http_request_method` (plain text, `POST`) and base64 (standard, padded) of
//! `iam_request_url`, `iam_request_headers` (JSON: header name → list of values) and
//! `iam_request_body`. The STS request may carry a second signed request, `iam:GetRole` or
//! `iam:GetUser`, in its `X-Consul-IAM-GetEntity-*` headers, and a server ID in
//! `X-Consul-IAM-ServerID`. Header names are written the way Go canonicalises them
//! (`X-Consul-Iam-Getentity-Method`), because Consul looks them up through Go's `http.Header`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

/// Header carrying the server ID value (`serverIdHeaderValue`), covered by the signatures.
pub const SERVER_ID_HEADER: &str = "X-Consul-IAM-ServerID";
/// Header carrying the embedded IAM request's method.
pub const GET_ENTITY_METHOD_HEADER: &str = "X-Consul-IAM-GetEntity-Method";
/// Header carrying the embedded IAM request's URL.
pub const GET_ENTITY_URL_HEADER: &str = "X-Consul-IAM-GetEntity-URL";
/// Header carrying the embedded IAM request's headers as JSON.
pub const GET_ENTITY_HEADERS_HEADER: &str = "X-Consul-IAM-GetEntity-Headers";
/// Header carrying the embedded IAM request's body.
pub const GET_ENTITY_BODY_HEADER: &str = "X-Consul-IAM-GetEntity-Body";

/// The only STS action a token may carry.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// `X-Amz-*` headers an STS request in a token may carry (others need `allowed_sts_header_values`).
const ALLOWED_AMZ_HEADERS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Content-Sha256",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-Signedheaders",
];

/// Header values that carry no secret and may be shown in `Debug` output.
const SHOWN_HEADERS: [&str; 8] = [
    "Content-Type",
    "Host",
    "User-Agent",
    "X-Amz-Date",
    "X-Consul-Iam-Getentity-Method",
    "X-Consul-Iam-Getentity-Url",
    "X-Consul-Iam-Getentity-Body",
    "X-Consul-Iam-Serverid",
];

/// A signed HTTP request captured without sending it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The HTTP method.
    pub method: String,
    /// The absolute URL the request was signed for.
    pub url: String,
    /// Header name (Go-canonical form) → values, sorted by name. `Host` is implied by the URL.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The request body.
    pub body: String,
}

impl SignedRequest {
    /// All values of a header, matching the name case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, values)| values.iter().map(String::as_str))
            .collect()
    }

    /// The header map as JSON text (sorted keys), as embedded in tokens.
    pub fn headers_json(&self) -> String {
        headers_to_json(&self.headers)
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a BTreeMap<String, Vec<String>>);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut map = f.debug_map();
                for (name, values) in self.0 {
                    let canonical = canonical_header_name(name);
                    if SHOWN_HEADERS.contains(&canonical.as_str()) {
                        map.entry(name, values);
                    } else {
                        map.entry(name, &"<redacted>");
                    }
                }
                map.finish()
            }
        }
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &Headers(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

/// A bearer token. It is a replayable credential for about 15 minutes, so it is never shown by
/// `Debug`; use [`BearerToken::expose`] to send or store it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps token text.
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token text, for the login request or the dataplane's config file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token text, consuming the wrapper.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<redacted, {} bytes>)", self.0.len())
    }
}

/// Encodes a signed `sts:GetCallerIdentity` request as a bearer token.
pub fn encode_bearer_token(sts: &SignedRequest) -> BearerToken {
    // Insert in sorted order so the output is sorted whether or not serde_json keeps insertion order.
    let mut object = Map::new();
    object.insert(
        "iam_http_request_method".to_owned(),
        Value::String(sts.method.clone()),
    );
    object.insert(
        "iam_request_body".to_owned(),
        Value::String(BASE64.encode(sts.body.as_bytes())),
    );
    object.insert(
        "iam_request_headers".to_owned(),
        Value::String(BASE64.encode(sts.headers_json().as_bytes())),
    );
    object.insert(
        "iam_request_url".to_owned(),
        Value::String(BASE64.encode(sts.url.as_bytes())),
    );
    BearerToken(Value::Object(object).to_string())
}

fn headers_to_json(headers: &BTreeMap<String, Vec<String>>) -> String {
    let mut object = Map::new();
    for (name, values) in headers {
        object.insert(
            name.clone(),
            Value::Array(values.iter().cloned().map(Value::String).collect()),
        );
    }
    Value::Object(object).to_string()
}

/// Go's canonical form of a header name: the first letter and each letter after a `-` upper case,
/// the rest lower case (`x-amz-date` → `X-Amz-Date`). Names with bytes outside the HTTP token
/// alphabet are returned unchanged, as Go does.
pub fn canonical_header_name(name: &str) -> String {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(is_token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The IAM call embedded in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityAction {
    /// `iam:GetRole` with `RoleName`.
    GetRole,
    /// `iam:GetUser` with `UserName`.
    GetUser,
}

/// The embedded `iam:GetRole`/`iam:GetUser` request of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRequest {
    /// The signed request.
    pub request: SignedRequest,
    /// Which call it is.
    pub action: EntityAction,
    /// The role or user name it asks for.
    pub name: String,
}

/// A decoded and validated bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// The signed `sts:GetCallerIdentity` request.
    pub sts: SignedRequest,
    /// The embedded IAM request, when the token carries one.
    pub entity: Option<EntityRequest>,
    /// The `X-Consul-IAM-ServerID` value, when present.
    pub server_id: Option<String>,
}

/// What a token must satisfy, mirroring the auth method's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRules {
    /// The auth method's `STSEndpoint`. When set, the STS URL's host is not checked, because the
    /// request is replayed to this endpoint instead; otherwise it must be an AWS STS host.
    pub sts_endpoint: Option<String>,
    /// The auth method's `IAMEndpoint`, with the same effect on the IAM URL.
    pub iam_endpoint: Option<String>,
    /// `EnableIAMEntityDetails`: the token must carry the embedded IAM request.
    pub require_entity: bool,
    /// `ServerIDHeaderValue`: the token's `X-Consul-IAM-ServerID` must equal it.
    pub server_id_header_value: Option<String>,
    /// `AllowedSTSHeaderValues`: further `X-Amz-*` headers the STS request may carry.
    pub allowed_sts_header_values: Vec<String>,
}

/// Why a bearer token was rejected. Messages name the field or header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not a JSON object.
    #[error("invalid token: not a JSON object: {0}")]
    Json(String),
    /// A required field is missing.
    #[error("invalid token: missing field {0:?}")]
    MissingField(&'static str),
    /// A field is not a string.
    #[error("invalid token: field {0:?} must be a string")]
    NotString(&'static str),
    /// A field is not valid standard base64.
    #[error("invalid token: field {field:?} is not valid base64: {reason}")]
    Base64 {
        /// The field.
        field: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A decoded field is not UTF-8 text.
    #[error("invalid token: {0} is not UTF-8 text")]
    NotUtf8(String),
    /// A URL is not absolute http(s) with a host.
    #[error("invalid token: {field} is not a valid URL: {reason}")]
    Url {
        /// The field or header.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The STS request is not a POST.
    #[error("iam_http_request_method must be POST, got {0:?}")]
    Method(String),
    /// The STS URL does not point at AWS STS.
    #[error("invalid STS hostname: {0:?}")]
    StsHost(String),
    /// The IAM URL does not point at AWS IAM.
    #[error("invalid IAM hostname: {0:?}")]
    IamHost(String),
    /// A header map is not a JSON object of names to lists of strings.
    #[error("{field} is not a JSON object of header names to lists of strings: {reason}")]
    Headers {
        /// The field or header.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A request body is not the expected form.
    #[error("{field} error: {reason}")]
    Body {
        /// The field or header.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A required header is missing from the STS request.
    #[error("missing header {0:?}")]
    MissingHeader(&'static str),
    /// A header has more than one value.
    #[error("invalid value for header {0:?} (expected 1 item)")]
    HeaderCount(&'static str),
    /// The STS request carries an `X-Amz-*` header that is not allowed.
    #[error("invalid request header: {0}")]
    DisallowedHeader(String),
    /// The server ID header does not match the configured value.
    #[error("header {SERVER_ID_HEADER} does not match the configured server ID")]
    ServerId,
}

/// Decodes and validates a token with default rules: the STS (and IAM) URL must be an AWS host,
/// the embedded IAM request is optional, and no server ID is required.
pub fn parse_bearer_token(token: &str) -> Result<LoginRequest, TokenError> {
    parse_bearer_token_with(token, &TokenRules::default())
}

/// Decodes and validates a token against the given rules. Never panics, whatever the input.
///
/// The embedded IAM request is decoded and validated when the token carries it (or when
/// `rules.require_entity` demands it). The STS body must be `Action=GetCallerIdentity` with an
/// optional `Version` and nothing else, as Consul requires.
pub fn parse_bearer_token_with(
    token: &str,
    rules: &TokenRules,
) -> Result<LoginRequest, TokenError> {
    let value: Value = serde_json::from_str(token).map_err(|e| TokenError::Json(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(TokenError::Json(
            "the top level is not an object".to_owned(),
        ));
    };
    let field = |name: &'static str| -> Result<&str, TokenError> {
        match object.get(name) {
            None => Err(TokenError::MissingField(name)),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(TokenError::NotString(name)),
        }
    };
    let decoded = |name: &'static str| -> Result<String, TokenError> {
        let bytes = BASE64
            .decode(field(name)?.as_bytes())
            .map_err(|e| TokenError::Base64 {
                field: name,
                reason: e.to_string(),
            })?;
        String::from_utf8(bytes).map_err(|_| TokenError::NotUtf8(name.to_owned()))
    };

    let method = field("iam_http_request_method")?.to_owned();
    let url = decoded("iam_request_url")?;
    let headers = parse_headers(&decoded("iam_request_headers")?, "iam_request_headers")?;
    let body = decoded("iam_request_body")?;

    if method != "POST" {
        return Err(TokenError::Method(method.chars().take(32).collect()));
    }
    let host = url_host(&url, "iam_request_url")?;
    if rules.sts_endpoint.is_none() && !is_aws_host(&host, "sts") {
        return Err(TokenError::StsHost(host));
    }
    validate_sts_body(&body)?;
    for name in headers.keys() {
        let canonical = canonical_header_name(name);
        if canonical.starts_with("X-Amz-")
            && !ALLOWED_AMZ_HEADERS.contains(&canonical.as_str())
            && !rules
                .allowed_sts_header_values
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&canonical))
        {
            return Err(TokenError::DisallowedHeader(canonical));
        }
    }
    let sts = SignedRequest {
        method,
        url,
        headers,
        body,
    };

    let server_id = optional_header(&sts, SERVER_ID_HEADER)?.map(str::to_owned);
    if let Some(expected) = &rules.server_id_header_value
        && server_id.as_deref() != Some(expected.as_str())
    {
        return Err(TokenError::ServerId);
    }

    let carries_entity = !sts.header_values(GET_ENTITY_METHOD_HEADER).is_empty();
    let entity = if rules.require_entity || carries_entity {
        Some(parse_entity(&sts, rules)?)
    } else {
        None
    };
    Ok(LoginRequest {
        sts,
        entity,
        server_id,
    })
}

fn parse_entity(sts: &SignedRequest, rules: &TokenRules) -> Result<EntityRequest, TokenError> {
    let method = required_header(sts, GET_ENTITY_METHOD_HEADER)?.to_owned();
    let url = required_header(sts, GET_ENTITY_URL_HEADER)?.to_owned();
    let headers_field = format!("iam_request_headers[{GET_ENTITY_HEADERS_HEADER}]");
    let headers = parse_headers(
        required_header(sts, GET_ENTITY_HEADERS_HEADER)?,
        &headers_field,
    )?;
    let body = required_header(sts, GET_ENTITY_BODY_HEADER)?.to_owned();

    let host = url_host(
        &url,
        &format!("iam_request_headers[{GET_ENTITY_URL_HEADER}]"),
    )?;
    if rules.iam_endpoint.is_none() && !is_aws_host(&host, "iam") {
        return Err(TokenError::IamHost(host));
    }
    let (action, name) = validate_entity_body(&body)?;
    Ok(EntityRequest {
        request: SignedRequest {
            method,
            url,
            headers,
            body,
        },
        action,
        name,
    })
}

fn required_header<'a>(sts: &'a SignedRequest, name: &'static str) -> Result<&'a str, TokenError> {
    optional_header(sts, name)?.ok_or(TokenError::MissingHeader(name))
}

fn optional_header<'a>(
    sts: &'a SignedRequest,
    name: &'static str,
) -> Result<Option<&'a str>, TokenError> {
    match sts.header_values(name).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(TokenError::HeaderCount(name)),
    }
}

fn parse_headers(json: &str, field: &str) -> Result<BTreeMap<String, Vec<String>>, TokenError> {
    let error = |reason: String| TokenError::Headers {
        field: field.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_str(json).map_err(|e| error(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(error("not an object".to_owned()));
    };
    let mut headers = BTreeMap::new();
    for (name, values) in object {
        let values = match values {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(error(format!("a value of header {name:?} is not a string"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(error(format!("header {name:?} is not a list"))),
        };
        headers.insert(name, values);
    }
    Ok(headers)
}

/// The host of an absolute http(s) URL.
fn url_host(url: &str, field: &str) -> Result<String, TokenError> {
    let error = |reason: String| TokenError::Url {
        field: field.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|e| error(format!("{url:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(error(format!("{url:?}: the scheme must be http or https"))),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(host.to_owned()),
        _ => Err(error(format!("{url:?}: missing host"))),
    }
}

/// `<service>.…amazonaws.com` or `<service>-fips.…amazonaws.com`, the hosts Consul accepts.
fn is_aws_host(host: &str, service: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host.ends_with(".amazonaws.com")
        && (host.starts_with(&format!("{service}."))
            || host.starts_with(&format!("{service}-fips.")))
}

/// Parses a form body, rejecting malformed percent escapes and repeated keys.
fn parse_form(body: &str, field: &str) -> Result<BTreeMap<String, String>, TokenError> {
    let error = |reason: String| TokenError::Body {
        field: field.to_owned(),
        reason,
    };
    let bytes = body.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let valid = bytes
                .get(i + 1..i + 3)
                .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return Err(error(format!("invalid percent-encoding at byte {i}")));
            }
        }
    }
    let mut fields = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            return Err(error(format!("field {key:?} appears more than once")));
        }
    }
    Ok(fields)
}

fn validate_sts_body(body: &str) -> Result<(), TokenError> {
    let field = "iam_request_body";
    let fields = parse_form(body, field)?;
    let error = |reason: String| TokenError::Body {
        field: field.to_owned(),
        reason,
    };
    match fields.get("Action").map(String::as_str) {
        None | Some("") => return Err(error("missing field \"Action\"".to_owned())),
        Some("GetCallerIdentity") => {}
        Some(other) => return Err(error(format!("unexpected value Action={other:?}"))),
    }
    if let Some(key) = fields.keys().find(|k| *k != "Action" && *k != "Version") {
        return Err(error(format!("unexpected field {key:?}")));
    }
    Ok(())
}

fn validate_entity_body(body: &str) -> Result<(EntityAction, String), TokenError> {
    let field = format!("iam_request_headers[{GET_ENTITY_BODY_HEADER}]");
    let fields = parse_form(body, &field)?;
    let error = |reason: String| TokenError::Body {
        field: field.clone(),
        reason,
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "Action" | "RoleName" | "UserName" | "Version"))
    {
        return Err(error(format!("unexpected field {key:?}")));
    }
    let role = fields.get("RoleName");
    let user = fields.get("UserName");
    match (fields.get("Action").map(String::as_str), role, user) {
        (None | Some(""), _, _) => Err(error("missing field \"Action\"".to_owned())),
        (Some("GetRole"), Some(name), None) if !name.is_empty() => {
            Ok((EntityAction::GetRole, name.clone()))
        }
        (Some("GetUser"), None, Some(name)) if !name.is_empty() => {
            Ok((EntityAction::GetUser, name.clone()))
        }
        (Some("GetRole" | "GetUser"), _, _) => Err(error(format!("invalid request body {body:?}"))),
        (Some(other), _, _) => Err(error(format!("unexpected value Action={other:?}"))),
    }
}
