//! Reaching Consul's HTTP API: find the servers from `consulServers.hosts`, pick the first that answers
//! with a leader, and log in when the credentials say so.
//!
//! The client follows upstream's HTTP settings: the scheme is `https` exactly when
//! `consulServers.http.https` is true; the CA is `CONSUL_HTTPS_CACERT_PEM` if set, else the HTTP CA file;
//! the TLS server name is the configured one, else `hosts` unless it is an `exec=` command; namespace and
//! partition come from the service (or gateway) and go on every request. Anything left unset falls back
//! to the `CONSUL_*` variables (`CONSUL_CACERT`, `CONSUL_TLS_SERVER_NAME`, ...) as Consul's Go client does.
//! Upstream connects over gRPC first; we have no gRPC, so "connected" means a server answered
//! `GET /v1/status/leader` with a leader.

use std::net::SocketAddr;
use std::time::Duration;

use consul_client::{CaSource, Client, ClientConfig, Scheme, Secret};
use consul_ecs_config::Config;

use crate::environment::ENV_HTTPS_CACERT_PEM;
use crate::login::{Credentials, login, logout};
use crate::{Environment, Error, discovery, retry};

/// How long one server gets to answer the leader probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A Consul server that answered, the client that talks to it, and the token in use.
#[derive(Debug)]
pub struct Connection {
    client: Client,
    server: SocketAddr,
    login_token: Option<Secret>,
    login_datacenter: String,
}

impl Connection {
    /// Finds a server and logs in if `credentials` asks for it, retrying failures that may pass within
    /// the environment's budget. SIGTERM interrupts it.
    pub async fn open(
        config: &Config,
        env: &Environment,
        credentials: &Credentials,
    ) -> Result<Connection, Error> {
        let static_token = credentials.static_token();
        let (client, server) = retry::retry(env, "connecting to Consul", || {
            find_server(config, env, static_token.clone())
        })
        .await?;
        tracing::info!(server = %server, "connected to Consul server");
        let mut connection = Connection {
            client,
            server,
            login_token: None,
            login_datacenter: String::new(),
        };
        if let Credentials::Login(params) = credentials {
            let secret = retry::retry(env, "logging in to Consul", || {
                login(&connection.client, params)
            })
            .await?;
            connection.client = connection.client.with_token(Some(secret.clone()));
            connection.login_token = Some(secret);
            connection.login_datacenter.clone_from(&params.datacenter);
        }
        Ok(connection)
    }

    /// The client for the current server, sending the token in use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The current server's HTTP address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Whether the token in use came from a login (and so must be logged out).
    pub fn logged_in(&self) -> bool {
        self.login_token.is_some()
    }

    /// One attempt to find a server again (after the current one failed), keeping the token.
    pub async fn rediscover(&mut self, config: &Config, env: &Environment) -> Result<(), Error> {
        // Without a login token the new client takes the static token from the environment again.
        let (client, server) = find_server(config, env, self.login_token.clone()).await?;
        if server != self.server {
            tracing::info!(server = %server, "Switching to Consul server");
        }
        self.client = client;
        self.server = server;
        Ok(())
    }

    /// Logs out the token obtained by login; does nothing when there was no login.
    pub async fn logout(&mut self) -> Result<(), Error> {
        match self.login_token.take() {
            Some(token) => logout(&self.client, &token, &self.login_datacenter).await,
            None => Ok(()),
        }
    }
}

/// The HTTP client settings for one server address.
pub fn client_config(
    config: &Config,
    env: &Environment,
    server: SocketAddr,
    token: Option<Secret>,
) -> Result<ClientConfig, Error> {
    let servers = &config.consul_servers;
    let mut client = ClientConfig::new(server.to_string());
    if servers.http.https {
        let tls = servers.http_tls();
        client.scheme = Some(Scheme::Https);
        client.tls.ca = match env.var(ENV_HTTPS_CACERT_PEM) {
            Some(pem) => Some(CaSource::Pem(pem.to_owned())),
            None => tls.ca_cert_file.clone().map(|f| CaSource::File(f.into())),
        };
        client.tls.server_name = servers.server_name(&tls);
    } else {
        client.scheme = Some(Scheme::Http);
    }
    client.namespace = non_empty(config.namespace());
    client.partition = non_empty(config.partition());
    client.token = token;
    client.request_timeout = env.request_timeout;
    client
        .fill_from_lookup(|name| env.var(name).map(str::to_owned))
        .map_err(|e| Error::consul("configuring the Consul client", e))?;
    Ok(client)
}

/// Resolves `hosts` and returns the first server that answers with a leader.
async fn find_server(
    config: &Config,
    env: &Environment,
    token: Option<Secret>,
) -> Result<(Client, SocketAddr), Error> {
    let port = config.consul_servers.http.port;
    let addrs = discovery::resolve(&config.consul_servers.hosts).await?;
    let mut last = None;
    for ip in addrs {
        let server = SocketAddr::new(ip, port);
        let client = Client::new(client_config(config, env, server, token.clone())?)
            .map_err(|e| Error::consul("configuring the Consul client", e))?;
        match probe(&client, server).await {
            Ok(()) => return Ok((client, server)),
            Err(err) => {
                tracing::debug!(server = %server, error = %err, "Consul server did not answer");
                last = Some(err);
            }
        }
    }
    Err(last.unwrap_or(Error::NoLeader(config.consul_servers.hosts.clone())))
}

async fn probe(client: &Client, server: SocketAddr) -> Result<(), Error> {
    let leader = tokio::time::timeout(PROBE_TIMEOUT, client.status().leader())
        .await
        .map_err(|_| Error::NoLeader(format!("{server} did not answer within {PROBE_TIMEOUT:?}")))?
        .map_err(|e| Error::consul(format!("asking {server} for its leader"), e))?;
    if leader.is_empty() {
        return Err(Error::NoLeader(format!("{server} has no leader")));
    }
    Ok(())
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}
