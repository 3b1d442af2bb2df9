//! The connection loop: HTTP/1.1 over the bound listener, plain or inside TLS, with the limits
//! no client may pass whoever it is — a cap on open connections (shared by every listener of
//! the server), a deadline for the TLS handshake and for each request's headers (which also
//! closes idle keep-alive connections), and a deadline for the rest of the request. Each
//! request carries its peer address for the per-client limits and whether it came over TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use signet_authority::limits::Limits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::https::OverTls;

/// Serves `router` on `listener` until the task is dropped, inside TLS when `tls` is given;
/// each connection holds one of `open`'s permits while it lasts.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    open: Arc<Semaphore>,
) -> std::io::Result<()> {
    loop {
        // At the cap, new clients wait in the kernel's accept queue rather than in our memory.
        let slot = open.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let (limits, tls) = (limits.clone(), tls.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match tls {
                None => connection(tcp, peer, router, &limits, false).await,
                // The handshake counts against the header deadline: a client that connects and
                // never finishes it holds a slot no longer than one that never sends headers.
                Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => connection(stream, peer, router, &limits, true).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
            drop(slot);
        });
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes.
async fn connection<I>(io: I, peer: SocketAddr, router: Router, limits: &Limits, over_tls: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(OverTls(over_tls));
        let router = router.clone();
        async move {
            let handled = tokio::time::timeout(request_timeout, router.oneshot(request.map(Body::new))).await;
            handled.unwrap_or_else(|_| Ok::<_, Infallible>(timed_out()))
        }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = served.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The answer to a request that did not finish in time (a body trickled in, or a handler
/// stuck on a dependency); the connection closes after it.
fn timed_out() -> Response {
    let mut r = (StatusCode::REQUEST_TIMEOUT, "the request took too long; send it again").into_response();
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r
}
