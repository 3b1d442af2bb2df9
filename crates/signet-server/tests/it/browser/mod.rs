//! A browser without JavaScript for page tests: drives `app(state)` in process, keeps the
//! session cookie, and posts each form with the CSRF token of the last page it loaded.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

/// A browser without JavaScript: keeps the session cookie and posts each form with the CSRF
/// token of the last page it loaded.
pub struct Browser {
    app: Router,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub content_type: String,
}

impl Browser {
    pub fn new(app: &Router) -> Self {
        Self { app: app.clone(), cookie: None, csrf: None }
    }

    pub async fn send(&mut self, req: Request<Body>) -> Page {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        if let Some(c) = resp.headers().get(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "session cookie flags: {c}");
            self.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        let status = resp.status();
        let location = resp.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let content_type =
            resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20).await.unwrap();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(token) = body.split("name=\"_csrf\" value=\"").nth(1) {
            self.csrf = Some(token.split('"').next().unwrap().to_owned());
        }
        Page { status, location, body, content_type }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut req = Request::get(path);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// Posts a form. A page answered to a post comes by Post/Redirect/Get: a redirect to the
    /// post's own address, which this follows as a browser does, returning the page the GET
    /// shows (with the redirect's `location`).
    pub async fn post_raw(&mut self, path: &str, body: String) -> Page {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        let posted = self.send(req.body(Body::from(body)).unwrap()).await;
        if posted.status != StatusCode::SEE_OTHER || posted.location.as_deref() != Some(path) {
            return posted;
        }
        let shown = self.get(path).await;
        Page { location: posted.location, ..shown }
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("_csrf", self.csrf.as_deref().expect("load the page before posting its form"));
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        self.post_raw(path, form.finish()).await
    }
}
