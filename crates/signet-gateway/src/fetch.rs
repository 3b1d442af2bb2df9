//! Plain-HTTP fetching for OCSP, CRLs and AIA caIssuers (CAs publish these over http://,
//! RFC 5280 §4.2.1.13 and RFC 6960 appendix A), with a timeout and a size cap.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest body accepted (a big CRL fits; anything larger is refused).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Only http:// URLs are fetched.
    #[error("{0}: only http:// URLs are fetched")]
    Scheme(String),
    /// The URL does not parse.
    #[error("{0}: bad URL")]
    Url(String),
    /// Connecting or transferring failed.
    #[error("{url}: {message}")]
    Transport {
        /// Where.
        url: String,
        /// What happened.
        message: String,
    },
    /// No answer within the timeout.
    #[error("{0}: timed out")]
    Timeout(String),
    /// A status other than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// Where.
        url: String,
        /// The status.
        status: u16,
    },
}

/// A pooled HTTP/1.1 client.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    /// A client whose every fetch gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Self { client, timeout }
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        self.send(Method::GET, url, None).await
    }

    /// POST `body` with `content_type` to `url`.
    pub async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> Result<Bytes, FetchError> {
        self.send(Method::POST, url, Some((content_type, body))).await
    }

    async fn send(&self, method: Method, url: &str, body: Option<(&str, Vec<u8>)>) -> Result<Bytes, FetchError> {
        if !url.starts_with("http://") {
            return Err(FetchError::Scheme(url.to_owned()));
        }
        let uri: hyper::Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let mut builder = Request::builder().method(method).uri(uri);
        let payload = match body {
            Some((ct, bytes)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, ct);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = builder.body(Full::new(payload)).map_err(|_| FetchError::Url(url.to_owned()))?;
        let transport =
            |e: &dyn std::fmt::Display| FetchError::Transport { url: url.to_owned(), message: e.to_string() };
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| transport(&e))?;
            if resp.status() != hyper::StatusCode::OK {
                return Err(FetchError::Status { url: url.to_owned(), status: resp.status().as_u16() });
            }
            let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| transport(&e))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| FetchError::Timeout(url.to_owned()))?
    }
}
