//! The connection loop: HTTP/1.1 over the bound listener, with the limits no client may pass
//! whoever it is — a cap on open connections, a deadline for each request's headers (which
//! also closes idle keep-alive connections), and a deadline for the rest of the request.
//! Each request carries its peer address for the per-client limits.

use std::convert::Infallible;
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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::limits::Limits;

/// Serves `router` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, router: Router, limits: Limits) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
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
        let (request_timeout, header_timeout) = (limits.request_timeout, limits.header_timeout);
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    let handled = tokio::time::timeout(request_timeout, router.oneshot(request.map(Body::new))).await;
                    handled.unwrap_or_else(|_| Ok::<_, Infallible>(timed_out()))
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// The answer to a request that did not finish in time (a body trickled in, or a handler
/// stuck on a dependency); the connection closes after it.
fn timed_out() -> Response {
    let mut r = (StatusCode::REQUEST_TIMEOUT, "the request took too long; send it again").into_response();
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r
}
