//! Status endpoints (`/v1/status`): the Raft leader and peers.

use http::Method;

use crate::client::Call;
use crate::{Client, Error};

/// Status endpoints; see [`Client::status`].
#[derive(Clone, Copy, Debug)]
pub struct Status<'a> {
    client: &'a Client,
}

impl<'a> Status<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `GET /v1/status/leader`: the leader's `ip:port`, or an empty string when there is none.
    pub async fn leader(self) -> Result<String, Error> {
        self.client
            .call_json(Call::new(Method::GET, "/v1/status/leader"))
            .await
    }

    /// `GET /v1/status/peers`: the `ip:port` of every Raft peer.
    pub async fn peers(self) -> Result<Vec<String>, Error> {
        let peers: Option<Vec<String>> = self
            .client
            .call_json(Call::new(Method::GET, "/v1/status/peers"))
            .await?;
        Ok(peers.unwrap_or_default())
    }
}
