//! The OpenAPI 3.1 description of the JSON API, served at `/api/v1/openapi.json`: the RA's
//! certificates (issue, read, revoke), the profiles, token retrieval and renewal, the public
//! repository's lookup, with every
//! problem+json answer each can give. It is a checked-in document rather than one generated
//! from the handlers, and tests keep it true: `openapi-spec-validator` accepts it and
//! `schemathesis` finds no answer of a live server that it does not describe (signet `cli`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

/// The document.
const DOCUMENT: &str = include_str!("openapi.json");

/// Routes: `GET /api/v1/openapi.json`.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(|| async { document() }))
}

fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json_naming_every_api_path() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/api/v1/profiles",
            "/api/v1/certificates",
            "/api/v1/certificates/{serial}",
            "/api/v1/certificates/{serial}/revoke",
            "/api/v1/retrieval",
            "/api/v1/retrieval/begin",
            "/api/v1/retrieval/check-token",
            "/api/v1/renewal",
            "/repository",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is not described");
        }
    }
}
