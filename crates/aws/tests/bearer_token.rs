//! Bearer tokens: what the builder produces (against a fake STS on a real socket), that
//! `parse_bearer_token` reads it back, that it rejects malformed tokens with errors naming the field
//! at fault and never panics, endpoint resolution, and that secrets stay out of `Debug`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use consul_ecs_aws::arn::{IamPrincipal, PrincipalKind};
use consul_ecs_aws::bearer_token::{
    EntityAction, GET_CALLER_IDENTITY_BODY, TokenError, TokenRules, canonical_header_name,
    parse_bearer_token, parse_bearer_token_with,
};
use consul_ecs_aws::iam_login::{
    Credentials, Endpoints, LoginError, LoginOptions, bearer_token_with_credentials,
};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

fn creds() -> Credentials {
    Credentials::new(
        "ASIAEXAMPLEACCESSKEY",
        SECRET,
        Some(SESSION.to_owned()),
        None,
        "test",
    )
}

/// A fake STS that answers GetCallerIdentity with `arn` (or an error), recording request bodies.
async fn fake_sts(arn: &'static str, status: StatusCode) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} | {auth}", String::from_utf8_lossy(&body)));
                if status != StatusCode::OK {
                    return (
                        status,
                        "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
                         <Message>The security token included in the request is invalid.</Message>\
                         </Error></ErrorResponse>"
                            .to_owned(),
                    );
                }
                (
                    StatusCode::OK,
                    format!(
                        "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{arn}</Arn>\
                         <UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>\
                         </GetCallerIdentityResult></GetCallerIdentityResponse>"
                    ),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn options(sts: &str) -> LoginOptions {
    let mut options = LoginOptions::new("us-east-1");
    options.sts_endpoint = Some(sts.to_owned());
    options
}

#[tokio::test]
async fn token_without_entity_round_trips() {
    let mut opts = options("https://sts.us-east-1.amazonaws.com");
    opts.include_entity = false;
    opts.server_id_header_value = Some("consul.example.com".to_owned());
    let token = bearer_token_with_credentials(&opts, &creds())
        .await
        .unwrap();

    // The wire format: four sorted keys, standard padded base64.
    let raw: serde_json::Value = serde_json::from_str(token.expose()).unwrap();
    let keys: Vec<&String> = raw.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "iam_http_request_method",
            "iam_request_body",
            "iam_request_headers",
            "iam_request_url"
        ]
    );
    assert!(
        token
            .expose()
            .starts_with("{\"iam_http_request_method\":\"POST\",\"iam_request_body\":")
    );
    let url = B64
        .decode(raw["iam_request_url"].as_str().unwrap())
        .unwrap();
    assert_eq!(url, b"https://sts.us-east-1.amazonaws.com/");
    let body = B64
        .decode(raw["iam_request_body"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, GET_CALLER_IDENTITY_BODY.as_bytes());

    let login = parse_bearer_token(token.expose()).unwrap();
    assert_eq!(login.sts.method, "POST");
    assert_eq!(login.sts.url, "https://sts.us-east-1.amazonaws.com/");
    assert_eq!(
        login.sts.body,
        "Action=GetCallerIdentity&Version=2011-06-15"
    );
    assert!(login.entity.is_none());
    assert_eq!(login.server_id.as_deref(), Some("consul.example.com"));
    // Go-canonical header names, as Consul's http.Header lookups need.
    let names: Vec<&str> = login.sts.headers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Authorization",
            "Content-Type",
            "User-Agent",
            "X-Amz-Date",
            "X-Amz-Security-Token",
            "X-Consul-Iam-Serverid"
        ]
    );
    let auth = login.sts.header_values("authorization")[0];
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEACCESSKEY/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
    assert!(
        auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-consul-iam-serverid,"
        ),
        "{auth}"
    );
    assert_eq!(login.sts.header_values("X-Amz-Security-Token"), [SESSION]);
}

#[tokio::test]
async fn token_with_entity_embeds_a_signed_get_role() {
    let (addr, seen) = fake_sts(
        "arn:aws:sts::123456789012:assumed-role/consul-ecs-app/task-session",
        StatusCode::OK,
    )
    .await;
    let sts = format!("http://{addr}");
    let mut opts = options(&sts);
    opts.server_id_header_value = Some("server-1".to_owned());
    let token = bearer_token_with_credentials(&opts, &creds())
        .await
        .unwrap();

    // Exactly one real call: the signed GetCallerIdentity that names the caller.
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].starts_with("Action=GetCallerIdentity&Version=2011-06-15 | AWS4-HMAC-SHA256 ")
    );

    // Default rules reject a non-AWS STS host; the auth method's STSEndpoint setting allows it.
    assert_eq!(
        parse_bearer_token(token.expose()).unwrap_err(),
        TokenError::StsHost("127.0.0.1".to_owned())
    );
    let rules = TokenRules {
        sts_endpoint: Some(sts.clone()),
        require_entity: true,
        server_id_header_value: Some("server-1".to_owned()),
        ..TokenRules::default()
    };
    let login = parse_bearer_token_with(token.expose(), &rules).unwrap();
    assert_eq!(login.sts.url, format!("{sts}/"));
    let entity = login.entity.unwrap();
    assert_eq!(entity.action, EntityAction::GetRole);
    assert_eq!(entity.name, "consul-ecs-app");
    assert_eq!(entity.request.method, "POST");
    assert_eq!(entity.request.url, "https://iam.amazonaws.com/");
    assert_eq!(
        entity.request.body,
        "Action=GetRole&RoleName=consul-ecs-app&Version=2010-05-08"
    );
    let iam_auth = entity.request.header_values("Authorization")[0];
    assert!(
        iam_auth.contains("/us-east-1/iam/aws4_request"),
        "{iam_auth}"
    );
    assert!(iam_auth.contains("x-consul-iam-serverid"), "{iam_auth}");
    assert_eq!(
        entity.request.header_values("X-Consul-IAM-ServerID"),
        ["server-1"]
    );
    // The STS signature covers the embedded request.
    let sts_auth = login.sts.header_values("Authorization")[0];
    assert!(
        sts_auth.contains(
            "x-consul-iam-getentity-body;x-consul-iam-getentity-headers;\
             x-consul-iam-getentity-method;x-consul-iam-getentity-url;x-consul-iam-serverid"
        ),
        "{sts_auth}"
    );

    // A wrong server ID is refused.
    let wrong = TokenRules {
        server_id_header_value: Some("server-2".to_owned()),
        ..rules
    };
    assert_eq!(
        parse_bearer_token_with(token.expose(), &wrong).unwrap_err(),
        TokenError::ServerId
    );
}

#[tokio::test]
async fn users_get_get_user_and_other_principals_are_refused() {
    let (addr, _) = fake_sts("arn:aws:iam::123456789012:user/ops/alice", StatusCode::OK).await;
    let sts = format!("http://{addr}");
    let token = bearer_token_with_credentials(&options(&sts), &creds())
        .await
        .unwrap();
    let rules = TokenRules {
        sts_endpoint: Some(sts),
        ..TokenRules::default()
    };
    let entity = parse_bearer_token_with(token.expose(), &rules)
        .unwrap()
        .entity
        .unwrap();
    assert_eq!(entity.action, EntityAction::GetUser);
    assert_eq!(entity.name, "alice");
    assert_eq!(
        entity.request.body,
        "Action=GetUser&UserName=alice&Version=2010-05-08"
    );

    let (addr, _) = fake_sts(
        "arn:aws:sts::123456789012:federated-user/bob",
        StatusCode::OK,
    )
    .await;
    let err = bearer_token_with_credentials(&options(&format!("http://{addr}")), &creds())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Principal(_)), "{err:?}");
}

#[tokio::test]
async fn sts_errors_carry_the_aws_code() {
    let (addr, _) = fake_sts("unused", StatusCode::FORBIDDEN).await;
    let err = bearer_token_with_credentials(&options(&format!("http://{addr}")), &creds())
        .await
        .unwrap_err();
    match err {
        LoginError::Aws { status, code, .. } => {
            assert_eq!((status, code.as_str()), (403, "InvalidClientTokenId"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Nothing listening: a transport error naming the URL.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let err = bearer_token_with_credentials(&options(&url), &creds())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Http { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    // An endpoint that is not a URL is refused before anything is signed or sent.
    let err = bearer_token_with_credentials(&options("sts.example"), &creds())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Endpoint { .. }), "{err:?}");
}

#[test]
fn endpoint_resolution_follows_options_then_sdk_environment() {
    let none = |_: &str| None::<String>;
    let resolve = |opts: &LoginOptions, env: &[(&str, &str)]| {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Endpoints::resolve(opts, move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    };
    let plain = LoginOptions::new("eu-west-1");
    assert_eq!(
        Endpoints::resolve(&plain, none),
        Endpoints {
            sts: "https://sts.eu-west-1.amazonaws.com/".into(),
            iam: "https://iam.amazonaws.com/".into(),
            iam_region: "us-east-1".into(),
        }
    );
    let cn = Endpoints::resolve(&LoginOptions::new("cn-north-1"), none);
    assert_eq!(cn.sts, "https://sts.cn-north-1.amazonaws.com.cn/");
    assert_eq!(cn.iam, "https://iam.cn-north-1.amazonaws.com.cn/");
    assert_eq!(cn.iam_region, "cn-north-1");
    let gov = Endpoints::resolve(&LoginOptions::new("us-gov-east-1"), none);
    assert_eq!(gov.iam, "https://iam.us-gov.amazonaws.com/");
    assert_eq!(gov.iam_region, "us-gov-west-1");

    let env = [
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
        ("AWS_ENDPOINT_URL_IAM", "http://iam.local:5000"),
    ];
    let e = resolve(&plain, &env);
    assert_eq!(e.sts, "http://localhost:4566/");
    assert_eq!(e.iam, "http://iam.local:5000/");
    let e = resolve(&plain, &[("AWS_ENDPOINT_URL_STS", "http://sts.local/path")]);
    assert_eq!(e.sts, "http://sts.local/path/");
    assert_eq!(e.iam, "https://iam.amazonaws.com/");
    // Configured endpoints beat the environment; the SDK's opt-out switch ignores it.
    let mut configured = plain.clone();
    configured.sts_endpoint = Some("http://configured:1/".into());
    assert_eq!(resolve(&configured, &env).sts, "http://configured:1/");
    let ignored = [
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
    ];
    assert_eq!(resolve(&plain, &ignored), Endpoints::resolve(&plain, none));
}

/// Builds token text from decoded parts.
fn token(method: &str, url: &str, headers: &str, body: &str) -> String {
    serde_json::json!({
        "iam_http_request_method": method,
        "iam_request_body": B64.encode(body),
        "iam_request_headers": B64.encode(headers),
        "iam_request_url": B64.encode(url),
    })
    .to_string()
}

const STS_URL: &str = "https://sts.us-east-1.amazonaws.com/";
const OK_HEADERS: &str =
    r#"{"Authorization":["AWS4-HMAC-SHA256 x"],"X-Amz-Date":["20240101T000000Z"]}"#;

fn entity_headers(method: &str, url: &str, headers: &str, body: &str) -> String {
    serde_json::json!({
        "Authorization": ["AWS4-HMAC-SHA256 x"],
        "X-Consul-Iam-Getentity-Method": [method],
        "X-Consul-Iam-Getentity-Url": [url],
        "X-Consul-Iam-Getentity-Headers": [headers],
        "X-Consul-Iam-Getentity-Body": [body],
    })
    .to_string()
}

#[test]
fn malformed_tokens_are_rejected_naming_the_field() {
    let role_body = "Action=GetRole&RoleName=r&Version=2010-05-08";
    let iam = "https://iam.amazonaws.com/";
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not a JSON object"),
        ("[]".into(), "the top level is not an object"),
        ("{}".into(), "missing field \"iam_http_request_method\""),
        (
            r#"{"iam_http_request_method":"POST"}"#.into(),
            "missing field \"iam_request_url\"",
        ),
        (
            r#"{"iam_http_request_method":1,"iam_request_url":"","iam_request_headers":"","iam_request_body":""}"#.into(),
            "field \"iam_http_request_method\" must be a string",
        ),
        (
            r#"{"iam_http_request_method":"POST","iam_request_url":"%%%","iam_request_headers":"","iam_request_body":""}"#.into(),
            "field \"iam_request_url\" is not valid base64",
        ),
        (
            r#"{"iam_http_request_method":"POST","iam_request_url":"/w==","iam_request_headers":"e30=","iam_request_body":""}"#.into(),
            "iam_request_url is not UTF-8",
        ),
        (token("POST", STS_URL, "", GET_CALLER_IDENTITY_BODY), "iam_request_headers is not a JSON object"),
        (token("POST", STS_URL, "[1]", GET_CALLER_IDENTITY_BODY), "iam_request_headers is not a JSON object"),
        (token("POST", STS_URL, r#"{"A":"b"}"#, GET_CALLER_IDENTITY_BODY), "header \"A\" is not a list"),
        (token("POST", STS_URL, r#"{"A":[1]}"#, GET_CALLER_IDENTITY_BODY), "a value of header \"A\" is not a string"),
        (token("GET", STS_URL, OK_HEADERS, GET_CALLER_IDENTITY_BODY), "iam_http_request_method must be POST"),
        (token("POST", "sts.amazonaws.com/", OK_HEADERS, GET_CALLER_IDENTITY_BODY), "iam_request_url is not a valid URL"),
        (token("POST", "ftp://sts.amazonaws.com/", OK_HEADERS, GET_CALLER_IDENTITY_BODY), "the scheme must be http or https"),
        (token("POST", "https://evil.example.com/", OK_HEADERS, GET_CALLER_IDENTITY_BODY), "invalid STS hostname: \"evil.example.com\""),
        (token("POST", "https://sts.amazonaws.com.evil.io/", OK_HEADERS, GET_CALLER_IDENTITY_BODY), "invalid STS hostname"),
        (token("POST", STS_URL, OK_HEADERS, ""), "iam_request_body error: missing field \"Action\""),
        (token("POST", STS_URL, OK_HEADERS, "Action=AssumeRole&Version=2011-06-15"), "unexpected value Action=\"AssumeRole\""),
        (token("POST", STS_URL, OK_HEADERS, "Action=GetCallerIdentity&Extra=1"), "unexpected field \"Extra\""),
        (token("POST", STS_URL, OK_HEADERS, "Action=GetCallerIdentity&Action=GetCallerIdentity"), "field \"Action\" appears more than once"),
        (token("POST", STS_URL, OK_HEADERS, "Action=GetCallerIdentity%zz"), "invalid percent-encoding at byte 24"),
        (token("POST", STS_URL, r#"{"X-Amz-Target":["x"]}"#, GET_CALLER_IDENTITY_BODY), "invalid request header: X-Amz-Target"),
        (
            token("POST", STS_URL, r#"{"X-Consul-IAM-ServerID":["a","b"]}"#, GET_CALLER_IDENTITY_BODY),
            "invalid value for header \"X-Consul-IAM-ServerID\" (expected 1 item)",
        ),
        (
            token("POST", STS_URL, r#"{"X-Consul-Iam-Getentity-Method":["POST"]}"#, GET_CALLER_IDENTITY_BODY),
            "missing header \"X-Consul-IAM-GetEntity-URL\"",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", iam, "{", role_body), GET_CALLER_IDENTITY_BODY),
            "iam_request_headers[X-Consul-IAM-GetEntity-Headers] is not a JSON object",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", "https://iam.evil.com/", "{}", role_body), GET_CALLER_IDENTITY_BODY),
            "invalid IAM hostname: \"iam.evil.com\"",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", "nope", "{}", role_body), GET_CALLER_IDENTITY_BODY),
            "iam_request_headers[X-Consul-IAM-GetEntity-URL] is not a valid URL",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", iam, "{}", "Action=GetRole&UserName=u"), GET_CALLER_IDENTITY_BODY),
            "iam_request_headers[X-Consul-IAM-GetEntity-Body] error: invalid request body",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", iam, "{}", "Action=DeleteRole&RoleName=r"), GET_CALLER_IDENTITY_BODY),
            "unexpected value Action=\"DeleteRole\"",
        ),
        (
            token("POST", STS_URL, &entity_headers("POST", iam, "{}", "Action=GetRole&RoleName=r&Policy=x"), GET_CALLER_IDENTITY_BODY),
            "unexpected field \"Policy\"",
        ),
    ];
    for (input, expected) in cases {
        let err = parse_bearer_token(&input).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "input {input:?}\n  error {err:?}\n  wanted {expected:?}"
        );
    }

    // The same entity headers with a valid body parse, so the cases above fail for their stated reason.
    let good = token(
        "POST",
        STS_URL,
        &entity_headers("POST", iam, r#"{"Authorization":["x"]}"#, role_body),
        "Action=GetCallerIdentity",
    );
    let login = parse_bearer_token(&good).unwrap();
    assert_eq!(login.entity.unwrap().name, "r");
}

#[test]
fn rules_mirror_the_auth_method_settings() {
    let plain = token("POST", STS_URL, OK_HEADERS, GET_CALLER_IDENTITY_BODY);
    let require = TokenRules {
        require_entity: true,
        ..TokenRules::default()
    };
    assert_eq!(
        parse_bearer_token_with(&plain, &require).unwrap_err(),
        TokenError::MissingHeader("X-Consul-IAM-GetEntity-Method")
    );
    let needs_id = TokenRules {
        server_id_header_value: Some("x".into()),
        ..TokenRules::default()
    };
    assert_eq!(
        parse_bearer_token_with(&plain, &needs_id).unwrap_err(),
        TokenError::ServerId
    );
    let extra = token(
        "POST",
        STS_URL,
        r#"{"x-amz-user-agent":["a"]}"#,
        GET_CALLER_IDENTITY_BODY,
    );
    assert!(parse_bearer_token(&extra).is_err());
    let allowing = TokenRules {
        allowed_sts_header_values: vec!["X-Amz-User-Agent".into()],
        ..TokenRules::default()
    };
    assert!(parse_bearer_token_with(&extra, &allowing).is_ok());
    for host in [
        "https://sts.amazonaws.com/",
        "https://sts-fips.us-east-2.amazonaws.com/",
        "https://STS.EU-WEST-1.AMAZONAWS.COM/",
    ] {
        let t = token("POST", host, OK_HEADERS, GET_CALLER_IDENTITY_BODY);
        assert!(parse_bearer_token(&t).is_ok(), "{host}");
    }
}

/// A small deterministic generator, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let valid = token(
        "POST",
        STS_URL,
        &entity_headers(
            "POST",
            "https://iam.amazonaws.com/",
            r#"{"Authorization":["x"]}"#,
            "Action=GetRole&RoleName=r",
        ),
        GET_CALLER_IDENTITY_BODY,
    );
    assert!(parse_bearer_token(&valid).is_ok());
    let alphabet = b"{}[]\":,=&%/\\ azAZ09+-_.\x00\xff\xc3\xa9";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut rejected = 0;
    for round in 0..20_000 {
        let mut bytes = valid.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            if bytes.is_empty() {
                bytes.push(b'{');
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => bytes.truncate(at),
                2 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if parse_bearer_token(&text).is_err() {
            rejected += 1;
        }
        // Structured garbage: valid JSON and base64 around random inner parts.
        let pick = |rng: &mut XorShift| -> String {
            let len = rng.below(40);
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() - 3)] as char)
                .collect()
        };
        let inner = token(
            &pick(&mut rng),
            &pick(&mut rng),
            &pick(&mut rng),
            &pick(&mut rng),
        );
        let _ = parse_bearer_token_with(
            &inner,
            &TokenRules {
                require_entity: round % 2 == 0,
                ..TokenRules::default()
            },
        );
    }
    assert!(
        rejected > 10_000,
        "mutations should mostly be rejected ({rejected})"
    );
}

#[test]
fn canonical_header_names_match_go() {
    for (input, expected) in [
        ("x-amz-date", "X-Amz-Date"),
        (
            "X-Consul-IAM-GetEntity-Method",
            "X-Consul-Iam-Getentity-Method",
        ),
        ("AUTHORIZATION", "Authorization"),
        ("content-type", "Content-Type"),
        ("-x-", "-X-"),
        ("has space", "has space"),
        ("ümlaut", "ümlaut"),
    ] {
        assert_eq!(canonical_header_name(input), expected, "{input}");
    }
}

#[test]
fn iam_principals_parse() {
    let p =
        IamPrincipal::parse("arn:aws:sts::123:assumed-role/my-role/session/with/slash").unwrap();
    assert_eq!(p.kind, PrincipalKind::AssumedRole);
    assert_eq!(p.name, "my-role");
    assert_eq!(p.session.as_deref(), Some("session/with/slash"));
    let p = IamPrincipal::parse("arn:aws:iam::123:role/consul-ecs/nested/web").unwrap();
    assert_eq!(
        (p.kind, p.path.as_str(), p.name.as_str()),
        (PrincipalKind::Role, "consul-ecs/nested", "web")
    );
    let p = IamPrincipal::parse("arn:aws-cn:iam::9:user/bob").unwrap();
    assert_eq!(
        (p.kind, p.path.as_str(), p.partition.as_str()),
        (PrincipalKind::User, "", "aws-cn")
    );
    for bad in [
        "",
        "arn:aws:iam::123:group/devs",
        "arn:aws:sts::123:assumed-role/only-role",
        "arn:aws:iam::123:role/",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123",
    ] {
        assert!(IamPrincipal::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let mut opts = options("https://sts.us-east-1.amazonaws.com");
    opts.include_entity = false;
    let token = bearer_token_with_credentials(&opts, &creds())
        .await
        .unwrap();
    let login = parse_bearer_token(token.expose()).unwrap();
    let signature = login.sts.header_values("Authorization")[0]
        .rsplit_once("Signature=")
        .unwrap()
        .1
        .to_owned();
    for shown in [
        format!("{token:?}"),
        format!("{login:?}"),
        format!("{:?}", login.sts),
        format!("{:?}", creds()),
        format!("{opts:?}"),
    ] {
        for secret in [SECRET, SESSION, signature.as_str(), token.expose()] {
            assert!(!shown.contains(secret), "{shown} shows a secret");
        }
    }
    // What is safe to show still is.
    assert!(format!("{:?}", login.sts).contains("sts.us-east-1.amazonaws.com"));
}

#[tokio::test]
async fn replaying_unsendable_requests_is_an_error_not_a_panic() {
    use consul_ecs_aws::HttpError;
    use consul_ecs_aws::bearer_token::SignedRequest;
    use consul_ecs_aws::iam_login::send_signed_request;
    use std::time::Duration;

    let base = SignedRequest {
        method: "POST".into(),
        url: "http://127.0.0.1:9/".into(),
        headers: Default::default(),
        body: String::new(),
    };
    let mut bad_header = base.clone();
    bad_header
        .headers
        .insert("Bad Name".into(), vec!["x".into()]);
    let mut bad_value = base.clone();
    bad_value
        .headers
        .insert("X-Ok".into(), vec!["line\nbreak".into()]);
    let mut bad_method = base.clone();
    bad_method.method = "PO ST".into();
    for request in [bad_header, bad_value, bad_method] {
        let result = send_signed_request(&request, None, Duration::from_secs(5)).await;
        assert!(
            matches!(result, Err(HttpError::InvalidRequest(_))),
            "{result:?}"
        );
    }
    let mut bad_url = base;
    bad_url.url = "no scheme".into();
    let result = send_signed_request(&bad_url, None, Duration::from_secs(5)).await;
    assert!(
        matches!(result, Err(HttpError::InvalidUrl { .. })),
        "{result:?}"
    );
}
