//! A bare HTTP/1.1 client connection: one TCP connection per [`Conn`], requests sent one at a time with
//! keep-alive, so each scenario controls exactly how many connections a server sees.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Runs `fut` for at most `limit`; on timeout the error names `what`.
pub(crate) async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow!("{what}: no answer within {limit:?}"))?
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: StatusCode,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// Fails unless the status is 200, quoting the start of the body.
    pub(crate) fn ok(self, what: &str) -> anyhow::Result<Reply> {
        if self.status != StatusCode::OK {
            let text = String::from_utf8_lossy(&self.body);
            bail!(
                "{what}: HTTP {} {}",
                self.status,
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(self)
    }

    /// The body as JSON.
    pub(crate) fn json(&self, what: &str) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("{what}: body is not JSON"))
    }

    /// A header parsed as an unsigned integer.
    pub(crate) fn header_u64(&self, name: &str) -> anyhow::Result<u64> {
        self.headers
            .get(name)
            .ok_or_else(|| anyhow!("no {name} header"))?
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{name} header is not a number"))
    }
}

/// One client connection.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    driver: JoinHandle<()>,
}

impl Conn {
    /// Opens a connection to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        let driver = tokio::spawn(async move {
            // The connection ends when the peer closes it or the sender is dropped; either way the
            // request that was in flight reports it.
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
            driver,
        })
    }

    /// Sends a request and returns the response as soon as its head arrives.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        self.sender
            .ready()
            .await
            .context("connection closed before the request")?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.host);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .with_context(|| format!("building {method} {path}"))?;
        self.sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {path}"))
    }

    /// Sends a request and reads the whole response.
    pub(crate) async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let resp = self.send(method.clone(), path, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .with_context(|| format!("reading the body of {method} {path}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Splits a streamed response body into newline-terminated lines (blank lines skipped).
pub(crate) struct Lines {
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    /// Reads lines from `body`.
    pub(crate) fn new(body: Incoming) -> Lines {
        Lines {
            body,
            buf: Vec::new(),
        }
    }

    /// The next non-blank line, without its newline; `None` at the end of the body.
    pub(crate) async fn next_line(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = take_line(&mut self.buf) {
                return Ok(Some(line));
            }
            match self.body.frame().await {
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    let rest = rest.trim_ascii();
                    return Ok((!rest.is_empty()).then(|| rest.to_vec()));
                }
                Some(frame) => {
                    if let Ok(data) = frame.context("reading a streamed body")?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Removes and returns the first non-blank complete line of `buf`, if there is one.
fn take_line(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=pos).collect();
        let line = line.trim_ascii();
        if !line.is_empty() {
            return Some(line.to_vec());
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_blank_ones_skipped() {
        let mut buf = b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\"".to_vec();
        assert_eq!(take_line(&mut buf).unwrap(), b"{\"a\":1}");
        assert_eq!(take_line(&mut buf).unwrap(), b"{\"b\":2}");
        assert_eq!(take_line(&mut buf), None);
        assert_eq!(buf, b"{\"c\"");
    }
}
