//! The request an audit row is written for. The server runs each request's handling inside
//! [`scope`] with the id it gave the request (echoed to the client as `X-Request-Id` and
//! written on every log line of the request); every audit row appended meanwhile carries it,
//! so an operator goes from a row to the request's log lines and back.
//!
//! A task-local rather than a parameter: audit rows are appended by every writing method of
//! the store, deep under the domain's workflows, which know nothing of requests. Work a
//! request hands to another task (`tokio::spawn`) runs outside the scope, and its rows carry
//! no id, as do those of the background jobs and the command line.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` with `id` as the request id of every audit row it appends.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request being handled, if any.
pub(crate) fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
