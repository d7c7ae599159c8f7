//! Client configuration: address, scheme, TLS material, token, tenancy and timeouts, plus the
//! `CONSUL_*` environment fallbacks that Consul's own Go client honours.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// `CONSUL_HTTP_ADDR`: `host:port`, optionally prefixed with `http://` or `https://`.
pub const ENV_HTTP_ADDR: &str = "CONSUL_HTTP_ADDR";
/// `CONSUL_HTTP_TOKEN`: the ACL token sent as `X-Consul-Token`.
pub const ENV_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// `CONSUL_HTTP_TOKEN_FILE`: a file holding the ACL token; wins over `CONSUL_HTTP_TOKEN`.
pub const ENV_HTTP_TOKEN_FILE: &str = "CONSUL_HTTP_TOKEN_FILE";
/// `CONSUL_HTTP_AUTH`: HTTP basic auth as `user:password`.
pub const ENV_HTTP_AUTH: &str = "CONSUL_HTTP_AUTH";
/// `CONSUL_HTTP_SSL`: `true` selects HTTPS.
pub const ENV_HTTP_SSL: &str = "CONSUL_HTTP_SSL";
/// `CONSUL_HTTP_SSL_VERIFY`: `false` turns off server certificate verification.
pub const ENV_HTTP_SSL_VERIFY: &str = "CONSUL_HTTP_SSL_VERIFY";
/// `CONSUL_CACERT`: a PEM file of CA certificates to trust.
pub const ENV_CACERT: &str = "CONSUL_CACERT";
/// `CONSUL_CAPATH`: a directory of PEM files of CA certificates to trust.
pub const ENV_CAPATH: &str = "CONSUL_CAPATH";
/// `CONSUL_CLIENT_CERT`: a PEM client certificate for mutual TLS.
pub const ENV_CLIENT_CERT: &str = "CONSUL_CLIENT_CERT";
/// `CONSUL_CLIENT_KEY`: the PEM private key of the client certificate.
pub const ENV_CLIENT_KEY: &str = "CONSUL_CLIENT_KEY";
/// `CONSUL_TLS_SERVER_NAME`: the name to verify the server certificate against (and send as SNI).
pub const ENV_TLS_SERVER_NAME: &str = "CONSUL_TLS_SERVER_NAME";
/// `CONSUL_NAMESPACE`: the default namespace (Consul Enterprise).
pub const ENV_NAMESPACE: &str = "CONSUL_NAMESPACE";
/// `CONSUL_PARTITION`: the default admin partition (Consul Enterprise).
pub const ENV_PARTITION: &str = "CONSUL_PARTITION";

/// Address used when none is configured, as in Consul's Go client.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";
/// Time allowed to open a TCP connection (and finish the TLS handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one request that is not a blocking query; blocking queries get their wait on top.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A secret string (ACL token, bearer token, private key PEM) that never shows in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it must be sent or written.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// URL scheme used to reach Consul.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (Consul's port 8500).
    #[default]
    Http,
    /// HTTP over TLS (Consul's port 8501).
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where the CA certificates that verify Consul's server certificate come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file with one or more certificates.
    File(PathBuf),
    /// A directory whose every file is a PEM file of certificates.
    Directory(PathBuf),
    /// PEM text given directly (for example from `CONSUL_HTTPS_CACERT_PEM`).
    Pem(String),
}

/// Where a PEM certificate or key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A file holding PEM text.
    File(PathBuf),
    /// PEM text given directly; redacted in `Debug` output because it may hold a private key.
    Pem(Secret),
}

/// A client certificate and its private key, for Consul servers that verify clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate chain in PEM.
    pub cert: PemSource,
    /// The private key in PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PemSource,
}

/// TLS settings; used only when the scheme is HTTPS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates to trust; the operating system's roots when unset.
    pub ca: Option<CaSource>,
    /// Name to verify the server certificate against and send as SNI; the address's host when unset.
    pub server_name: Option<String>,
    /// Client certificate for mutual TLS.
    pub client_cert: Option<ClientCertificate>,
    /// Skip verification of the server certificate (`CONSUL_HTTP_SSL_VERIFY=false`). Unsafe.
    pub insecure_skip_verify: bool,
}

/// HTTP basic authentication, for a Consul behind a proxy that asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password, redacted in `Debug` output.
    pub password: Secret,
}

/// Everything needed to build a [`crate::Client`].
///
/// Fields left unset are filled by [`ClientConfig::fill_from_env`] the way Consul's Go client merges
/// its environment defaults, so a component can set what its own configuration says and let the
/// `CONSUL_*` variables supply the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// `host:port` of the Consul HTTP API; may carry an `http://` or `https://` prefix and a path
    /// prefix. Empty means [`DEFAULT_ADDRESS`].
    pub address: String,
    /// URL scheme; `None` means HTTP unless the address says `https://`.
    pub scheme: Option<Scheme>,
    /// TLS settings for HTTPS.
    pub tls: TlsConfig,
    /// ACL token sent as `X-Consul-Token` on every request unless a call overrides it.
    pub token: Option<Secret>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// Default namespace, sent as `?ns=` on every request (Consul Enterprise).
    pub namespace: Option<String>,
    /// Default admin partition, sent as `?partition=` on every request (Consul Enterprise).
    pub partition: Option<String>,
    /// Default datacenter, sent as `?dc=` on every request.
    pub datacenter: Option<String>,
    /// Time allowed to connect and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Time allowed for a request; blocking queries get their wait time on top of it.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A configuration for `address` (`host:port`) over HTTP with default timeouts and nothing else set.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            scheme: None,
            tls: TlsConfig::default(),
            token: None,
            basic_auth: None,
            namespace: None,
            partition: None,
            datacenter: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// A configuration built only from the `CONSUL_*` environment variables.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ClientConfig::from_env`], reading variables through `lookup` (handy in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut config = Self::new("");
        config.fill_from_lookup(lookup)?;
        Ok(config)
    }

    /// Fills every unset field from the `CONSUL_*` environment variables.
    pub fn fill_from_env(&mut self) -> Result<(), Error> {
        self.fill_from_lookup(|name| std::env::var(name).ok())
    }

    /// Fills every unset field from variables read through `lookup`.
    ///
    /// Precedence follows Consul's Go client: a token already set wins; otherwise the file named by
    /// `CONSUL_HTTP_TOKEN_FILE` (when it holds a non-empty token) wins over `CONSUL_HTTP_TOKEN`.
    pub fn fill_from_lookup(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());

        if self.address.is_empty()
            && let Some(addr) = get(ENV_HTTP_ADDR)
        {
            self.address = addr;
        }
        if self.scheme.is_none()
            && let Some(text) = get(ENV_HTTP_SSL)
            && parse_bool(ENV_HTTP_SSL, &text)?
        {
            self.scheme = Some(Scheme::Https);
        }
        if self.token.is_none()
            && let Some(path) = get(ENV_HTTP_TOKEN_FILE)
        {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
                field: ENV_HTTP_TOKEN_FILE.to_string(),
                message: format!("cannot read token file {path}: {e}"),
            })?;
            let token = text.trim();
            if !token.is_empty() {
                self.token = Some(Secret::new(token));
            }
        }
        if self.token.is_none()
            && let Some(token) = get(ENV_HTTP_TOKEN)
        {
            self.token = Some(Secret::new(token));
        }
        if self.basic_auth.is_none()
            && let Some(auth) = get(ENV_HTTP_AUTH)
        {
            let (user, pass) = auth.split_once(':').unwrap_or((auth.as_str(), ""));
            self.basic_auth = Some(BasicAuth {
                username: user.to_string(),
                password: Secret::new(pass),
            });
        }
        if self.tls.server_name.is_none()
            && let Some(name) = get(ENV_TLS_SERVER_NAME)
        {
            self.tls.server_name = Some(name);
        }
        if self.tls.ca.is_none() {
            if let Some(file) = get(ENV_CACERT) {
                self.tls.ca = Some(CaSource::File(file.into()));
            } else if let Some(dir) = get(ENV_CAPATH) {
                self.tls.ca = Some(CaSource::Directory(dir.into()));
            }
        }
        if self.tls.client_cert.is_none() {
            match (get(ENV_CLIENT_CERT), get(ENV_CLIENT_KEY)) {
                (Some(cert), Some(key)) => {
                    self.tls.client_cert = Some(ClientCertificate {
                        cert: PemSource::File(cert.into()),
                        key: PemSource::File(key.into()),
                    });
                }
                (None, None) => {}
                (Some(_), None) | (None, Some(_)) => {
                    return Err(Error::Config {
                        field: format!("{ENV_CLIENT_CERT}/{ENV_CLIENT_KEY}"),
                        message: "both the client certificate and its key must be set".to_string(),
                    });
                }
            }
        }
        if !self.tls.insecure_skip_verify
            && let Some(text) = get(ENV_HTTP_SSL_VERIFY)
        {
            self.tls.insecure_skip_verify = !parse_bool(ENV_HTTP_SSL_VERIFY, &text)?;
        }
        if self.namespace.is_none() {
            self.namespace = get(ENV_NAMESPACE);
        }
        if self.partition.is_none() {
            self.partition = get(ENV_PARTITION);
        }
        Ok(())
    }
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
fn parse_bool(field: &str, text: &str) -> Result<bool, Error> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(Error::Config {
            field: field.to_string(),
            message: format!("expected a boolean (true/false/1/0), got {other:?}"),
        }),
    }
}

/// The parts of a configured address after its scheme and path prefix are split off.
#[derive(Debug)]
pub(crate) struct ParsedAddress {
    pub(crate) scheme: Scheme,
    pub(crate) authority: http::uri::Authority,
    pub(crate) path_prefix: String,
}

/// Splits `[scheme://]host[:port][/prefix]`, applying the Go client's rule that an `https://`
/// prefix forces HTTPS and an `http://` prefix never downgrades a configured HTTPS.
pub(crate) fn parse_address(address: &str, scheme: Option<Scheme>) -> Result<ParsedAddress, Error> {
    let address = if address.is_empty() {
        DEFAULT_ADDRESS
    } else {
        address
    };
    let bad = |message: String| Error::Config {
        field: "address".to_string(),
        message,
    };
    let mut scheme = scheme.unwrap_or_default();
    let rest = match address.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", rest)) => {
            scheme = Scheme::Https;
            rest
        }
        Some(("unix", _)) => {
            return Err(bad(format!(
                "unix sockets are not supported, got {address:?}"
            )));
        }
        Some((other, _)) => return Err(bad(format!("unknown protocol scheme {other:?}"))),
        None => address,
    };
    let (host_port, prefix) = match rest.split_once('/') {
        Some((host_port, prefix)) => (host_port, format!("/{}", prefix.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let authority = host_port
        .parse::<http::uri::Authority>()
        .map_err(|e| bad(format!("{host_port:?} is not a valid host:port: {e}")))?;
    if authority.host().is_empty() || host_port.contains('@') {
        return Err(bad(format!("{host_port:?} is not a valid host:port")));
    }
    let path_prefix = if prefix == "/" { String::new() } else { prefix };
    Ok(ParsedAddress {
        scheme,
        authority,
        path_prefix,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_fills_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::from_lookup(lookup(&[
            (ENV_HTTP_ADDR, "consul.example:8501"),
            (ENV_HTTP_TOKEN, "from-env"),
            (ENV_HTTP_SSL, "true"),
            (ENV_CACERT, "/etc/consul/ca.pem"),
            (ENV_TLS_SERVER_NAME, "server.dc1.consul"),
            (ENV_HTTP_SSL_VERIFY, "false"),
            (ENV_CLIENT_CERT, "/c.pem"),
            (ENV_CLIENT_KEY, "/k.pem"),
            (ENV_NAMESPACE, "team"),
            (ENV_PARTITION, "part"),
            (ENV_HTTP_AUTH, "user:pa:ss"),
            (ENV_CAPATH, dir.path().to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(config.address, "consul.example:8501");
        assert_eq!(config.scheme, Some(Scheme::Https));
        assert_eq!(config.token.as_ref().map(Secret::expose), Some("from-env"));
        assert_eq!(
            config.tls.ca,
            Some(CaSource::File("/etc/consul/ca.pem".into()))
        );
        assert_eq!(config.tls.server_name.as_deref(), Some("server.dc1.consul"));
        assert!(config.tls.insecure_skip_verify);
        assert_eq!(
            config.tls.client_cert,
            Some(ClientCertificate {
                cert: PemSource::File("/c.pem".into()),
                key: PemSource::File("/k.pem".into()),
            })
        );
        assert_eq!(config.namespace.as_deref(), Some("team"));
        assert_eq!(config.partition.as_deref(), Some("part"));
        let auth = config.basic_auth.unwrap();
        assert_eq!(auth.username, "user");
        assert_eq!(auth.password.expose(), "pa:ss");
    }

    #[test]
    fn token_file_wins_over_token_but_not_over_configured_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let vars = [
            (ENV_HTTP_TOKEN, "from-env"),
            (ENV_HTTP_TOKEN_FILE, file.to_str().unwrap()),
        ];
        let config = ClientConfig::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(config.token.as_ref().map(Secret::expose), Some("from-file"));

        let mut configured = ClientConfig::new("127.0.0.1:8500");
        configured.token = Some(Secret::new("configured"));
        configured.fill_from_lookup(lookup(&vars)).unwrap();
        assert_eq!(
            configured.token.as_ref().map(Secret::expose),
            Some("configured")
        );

        // An empty token file falls back to the token variable.
        std::fs::write(&file, "\n").unwrap();
        let config = ClientConfig::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(config.token.as_ref().map(Secret::expose), Some("from-env"));
    }

    #[test]
    fn env_never_overrides_configured_values() {
        let mut config = ClientConfig::new("10.0.0.1:8500");
        config.scheme = Some(Scheme::Http);
        config.namespace = Some("mine".into());
        config
            .fill_from_lookup(lookup(&[
                (ENV_HTTP_ADDR, "other:1"),
                (ENV_HTTP_SSL, "true"),
                (ENV_NAMESPACE, "theirs"),
            ]))
            .unwrap();
        assert_eq!(config.address, "10.0.0.1:8500");
        assert_eq!(config.scheme, Some(Scheme::Http));
        assert_eq!(config.namespace.as_deref(), Some("mine"));
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = ClientConfig::from_lookup(lookup(&[(ENV_HTTP_SSL, "yes please")])).unwrap_err();
        assert!(err.to_string().contains(ENV_HTTP_SSL), "{err}");
        let err = ClientConfig::from_lookup(lookup(&[(ENV_CLIENT_CERT, "/c.pem")])).unwrap_err();
        assert!(err.to_string().contains(ENV_CLIENT_KEY), "{err}");
        let err = ClientConfig::from_lookup(lookup(&[(ENV_HTTP_TOKEN_FILE, "/no/such/file")]))
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/file"), "{err}");
    }

    #[test]
    fn addresses_carry_scheme_and_prefix() {
        let p = parse_address("https://consul.example:8501/api/", None).unwrap();
        assert_eq!(p.scheme, Scheme::Https);
        assert_eq!(p.authority.as_str(), "consul.example:8501");
        assert_eq!(p.path_prefix, "/api");
        let p = parse_address("http://10.0.0.1:8501", Some(Scheme::Https)).unwrap();
        assert_eq!(p.scheme, Scheme::Https, "http:// never downgrades https");
        let p = parse_address("", None).unwrap();
        assert_eq!(p.authority.as_str(), DEFAULT_ADDRESS);
        assert_eq!(p.scheme, Scheme::Http);
        let p = parse_address("[::1]:8500", None).unwrap();
        assert_eq!(p.authority.host(), "[::1]");
        for bad in [
            "unix:///tmp/consul.sock",
            "ftp://x:1",
            "a b:1",
            "user@host:1",
        ] {
            let err = parse_address(bad, None).unwrap_err();
            assert!(err.to_string().contains("address"), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut config = ClientConfig::new("127.0.0.1:8500");
        config.token = Some(Secret::new("s3cr3t-token"));
        config.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: Secret::new("hunter2"),
        });
        config.tls.client_cert = Some(ClientCertificate {
            cert: PemSource::File("/c.pem".into()),
            key: PemSource::Pem(Secret::new("-----BEGIN PRIVATE KEY-----abc")),
        });
        let text = format!("{config:?}");
        for secret in ["s3cr3t-token", "hunter2", "BEGIN PRIVATE KEY"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}
