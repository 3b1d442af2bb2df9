//! Refused forms' pages kept for visitors who have no stored session yet, so the redirect's GET
//! (Post/Redirect/Get) shows the message beside the field without a stranger's post costing disk.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// How many bytes of pages [`UnstoredPages`] holds at most, whoever posts.
const UNSTORED_PAGES_BYTES: usize = 8 * 1024 * 1024;

/// Pages kept for visitors without a stored session, until their GET: in memory, bounded in
/// bytes, oldest out first. Another node or a restart forgets them; the reload then shows the
/// form afresh, without its message — never an error.
#[derive(Default)]
pub(crate) struct UnstoredPages(Mutex<VecDeque<(String, KeptPage)>>);

impl UnstoredPages {
    pub(crate) fn put(&self, id_hash: String, page: KeptPage) {
        let mut pages = self.0.lock().expect("kept pages poisoned");
        pages.retain(|(h, _)| *h != id_hash);
        pages.push_back((id_hash, page));
        let mut total: usize = pages.iter().map(|(_, p)| p.html.len()).sum();
        while total > UNSTORED_PAGES_BYTES
            && let Some((_, old)) = pages.pop_front()
        {
            total -= old.html.len();
        }
    }

    pub(crate) fn take(&self, id_hash: &str, at: &str) -> Option<KeptPage> {
        let mut pages = self.0.lock().expect("kept pages poisoned");
        let i = pages.iter().position(|(h, p)| h == id_hash && p.at == at)?;
        pages.remove(i).map(|(_, p)| p)
    }
}

/// A page a post answered, kept for the GET of `at` that follows.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeptPage {
    pub(crate) at: String,
    pub(crate) status: u16,
    pub(crate) html: String,
}

impl IntoResponse for KeptPage {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        (status, Html(self.html)).into_response()
    }
}
