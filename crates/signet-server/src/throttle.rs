//! Per-client limits on typed secrets, as middleware. The lockouts count per account, which stops a guesser
//! walking one account's passwords but not one client trying one password on every account;
//! this counts per client address, across accounts, and answers 429 with Retry-After.
//!
//! The count lives in this process's memory: each node limits on its own, which is enough to
//! make guessing from one address slow, and a restart forgets it. The table is bounded, so a
//! flood of addresses cannot grow it without end.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client_limiter::ClientLimiter;
use crate::error::{ApiError, PageError};
use crate::state::AppState;

/// The posts that check a typed secret: sign-ins, retrieval, codes, reset links, recovery
/// answers.
const SECRET_POSTS: [&str; 11] = [
    "/applications/sign-in",
    "/verify-email",
    "/console/sign-in",
    "/cmc/sign-in",
    "/cmc/soft-token/register",
    "/cmc/recover",
    "/cmc/recover/answers",
    "/password-reset/new",
    "/api/v1/retrieval",
    "/api/v1/retrieval/begin",
    "/api/v1/retrieval/check-token",
];

/// The middleware: counts posts to [`SECRET_POSTS`] per client and refuses past the budget.
pub(crate) async fn limit_secret_posts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST
        && SECRET_POSTS.contains(&request.uri().path())
        && let Err(wait) = spend(&state, &state.client_limiter, &request)
    {
        return if request.uri().path().starts_with("/api/") {
            ApiError::TooManyRequests { retry_after: wait }.into_response()
        } else {
            PageError::TooManyRequests { retry_after: wait }.into_response()
        };
    }
    next.run(request).await
}

/// Spends one of the requesting client's attempts on `limiter`: `Err(seconds to wait)` past
/// its budget, counted and logged (the path only: a query may hold what was looked up).
pub(crate) fn spend(state: &AppState, limiter: &ClientLimiter, request: &Request) -> Result<(), u64> {
    // Only a server built without the connection layer (in-process tests) has no peer.
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else { return Ok(()) };
    let client = limiter.client(peer.ip(), request.headers());
    limiter.spend(client, Instant::now()).inspect_err(|_| {
        state.metrics.rate_limited();
        tracing::info!(%client, path = request.uri().path(), "requests over the per-client limit");
    })
}
