//! The public repository over HTTP, through `app(state)` with a fake clock: an encryption
//! certificate found by its exact address as a page and as JSON, its `.p7c` read by
//! `openssl pkcs7` and its chain verified by `openssl verify`; near misses, revoked and expired
//! certificates finding nothing; identity certificates only after the subscriber's choice in
//! the CMC (audited); malformed and oversized input refused beside the field; 429 past the
//! per-client budget; and found and not-found answered in the same time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use signet_authority::ServerConfig;
use signet_pki::RevocationReason;
use signet_ra::{Clock, FakeClock};
use signet_server::{app, build_state};
use signet_testkit::TestDb;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

use crate::cmc::{Cmc, another, cmc, enrolled, run};

/// The sample subscriber's address, as the application form has it.
const JANE: &str = "jane.doe@acme.example";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).map_or("", |v| v.to_str().unwrap())
    }
}

/// A GET of `path` with `Accept: accept` if given, from `peer` if given (as the connection
/// layer of a listening server records the client).
async fn get(app: &Router, path: &str, accept: Option<&str>, peer: Option<&str>) -> Answer {
    let mut req = Request::get(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(p) = peer {
        req.extensions_mut().insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec();
    Answer { status, headers, body }
}

fn lookup_path(email: &str, extra: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("email", email).finish();
    format!("/repository?{query}{extra}")
}

/// The JSON lookup's certificates' serials.
async fn published_serials(c: &Cmc, email: &str) -> Vec<String> {
    let a = get(&c.app, &lookup_path(email, ""), Some("application/json"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["certificates"].as_array().unwrap().iter().map(|c| c["serial"].as_str().unwrap().to_owned()).collect()
}

fn pem(der: &[u8]) -> String {
    signet_pki::to_pem("CERTIFICATE", der)
}

#[tokio::test]
async fn an_encryption_certificate_is_found_with_its_chain_and_downloads_openssl_reads() {
    let c = cmc("sqlite").await;
    let encryption = another(&c, "medium-token-encryption", "encryption").await;

    // The page: the encryption certificate, not the identity certificate nobody chose to publish.
    let page = get(&c.app, &lookup_path(JANE, ""), Some("text/html,application/xhtml+xml,*/*;q=0.8"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header(header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!((page.header(header::CACHE_CONTROL), page.header(header::VARY)), ("no-store", "Accept"));
    let body = page.text();
    assert!(body.contains(&format!("id=\"cert-{encryption}\"")), "{body}");
    assert!(!body.contains(&c.serial), "identity certificate published without a choice: {body}");
    assert!(body.contains("1 certificate published for jane.doe@acme.example"), "{body}");
    assert!(body.contains("CN=Jane Q. Doe") && body.contains("Medium Token Assurance (encryption)"), "{body}");
    for ca in [&c.state.certificates.issuing, &c.state.certificates.root] {
        let subject = x509_parser::parse_x509_certificate(ca).unwrap().1.subject().to_string();
        assert!(body.contains(&subject), "{subject} not in the chain shown: {body}");
    }
    let p7c_path = format!("/repository/certificates/{encryption}/certificate.p7c");
    let pem_path = format!("/repository/certificates/{encryption}/certificate.pem");
    assert!(body.contains(&format!("href=\"{p7c_path}\"")) && body.contains(&format!("href=\"{pem_path}\"")));

    // JSON, asked for by Accept or by format=json, with absolute download URLs.
    for (path, accept) in [(lookup_path(JANE, ""), Some("application/json")), (lookup_path(JANE, "&format=json"), None)]
    {
        let a = get(&c.app, &path, accept, None).await;
        assert_eq!((a.status, a.header(header::CONTENT_TYPE)), (StatusCode::OK, "application/json"), "{}", a.text());
        let json = a.json();
        assert_eq!(json["email"], JANE);
        let found = json["certificates"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{json}");
        let f = &found[0];
        assert_eq!(
            (f["serial"].as_str(), f["usage"].as_str(), f["status"].as_str()),
            (Some(encryption.as_str()), Some("encryption"), Some("good"))
        );
        assert!(f["subject"].as_str().unwrap().contains("OU=ECA") && f["email"] == JANE, "{f}");
        assert_eq!(f["issuers"].as_array().unwrap().len(), 2, "{f}");
        assert_eq!(f["chain"].as_str().unwrap(), c.state.certificates.chain_pem());
        assert_eq!(f["downloads"]["p7c"].as_str().unwrap(), format!("https://ra.example.test{p7c_path}"));
        assert!(
            OffsetDateTime::parse(f["not_after"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .is_ok()
        );
    }

    // The .p7c: a certificates-only PKCS#7 that OpenSSL reads, holding the certificate and its chain.
    let p7c = get(&c.app, &p7c_path, None, None).await;
    assert_eq!(p7c.status, StatusCode::OK);
    assert!(p7c.header(header::CONTENT_TYPE).starts_with("application/pkcs7-mime"), "{:?}", p7c.headers);
    assert!(p7c.header(header::CONTENT_DISPOSITION).contains(&format!("{encryption}.p7c")));
    let dir = c.dir.path();
    std::fs::write(dir.join("bundle.p7c"), &p7c.body).unwrap();
    let printed =
        run("openssl", &["pkcs7", "-inform", "DER", "-in", dir.join("bundle.p7c").to_str().unwrap(), "-print_certs"]);
    assert_eq!(printed.matches("-----BEGIN CERTIFICATE-----").count(), 3, "{printed}");
    let leaf = run(
        "openssl",
        &["pkcs7", "-inform", "DER", "-in", dir.join("bundle.p7c").to_str().unwrap(), "-print_certs", "-noout"],
    );
    assert!(leaf.contains("subject=C = US, O = U.S. Government, OU = ECA"), "{leaf}");
    // The subscriber's certificate among them verifies up to the root through the issuing CA.
    let certs: Vec<String> = printed
        .split("-----END CERTIFICATE-----")
        .filter_map(|b| {
            b.find("-----BEGIN CERTIFICATE-----").map(|at| format!("{}-----END CERTIFICATE-----\n", &b[at..]))
        })
        .collect();
    let leaf_pem = pem(&c
        .state
        .store()
        .certificate(&signet_pki::Serial::from_hex(&encryption).unwrap())
        .await
        .unwrap()
        .unwrap()
        .der);
    assert!(certs.contains(&leaf_pem), "{printed}");
    assert!(certs.contains(&pem(&c.state.certificates.issuing)) && certs.contains(&pem(&c.state.certificates.root)));
    let (root, issuing, leaf) = (dir.join("root.pem"), dir.join("issuing.pem"), dir.join("leaf.pem"));
    std::fs::write(&root, pem(&c.state.certificates.root)).unwrap();
    std::fs::write(&issuing, certs.iter().find(|p| **p == pem(&c.state.certificates.issuing)).unwrap()).unwrap();
    std::fs::write(&leaf, &leaf_pem).unwrap();
    let at = c.clock.now().unix_timestamp().to_string();
    let verified = run(
        "openssl",
        &[
            "verify",
            "-attime",
            &at,
            "-purpose",
            "smimeencrypt",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            issuing.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");

    // The PEM: the certificate first, then the chain.
    let download = get(&c.app, &pem_path, None, None).await;
    assert_eq!(download.header(header::CONTENT_TYPE), "application/pem-certificate-chain");
    assert_eq!(download.text(), leaf_pem + &c.state.certificates.chain_pem());
    // A serial that is not published is not found, whether it exists or not.
    for serial in [c.serial.as_str(), "0aff"] {
        let a = get(&c.app, &format!("/repository/certificates/{serial}/certificate.p7c"), None, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{serial}");
    }
}

#[tokio::test]
async fn only_the_exact_address_finds_and_revoked_or_expired_certificates_are_gone() {
    let c = cmc("sqlite").await;
    let first = another(&c, "medium-token-encryption", "first").await;
    assert_eq!(published_serials(&c, JANE).await, [first.as_str()]);
    // The domain is case-insensitive (certificates store it lowercased); nothing else is.
    assert_eq!(published_serials(&c, "jane.doe@ACME.Example").await, [first.as_str()]);
    for miss in [
        "Jane.Doe@acme.example",
        "jane.doe@acme.example.com",
        "jane.do@acme.example",
        "ane.doe@acme.example",
        "doe@acme.example",
        "jane.doe@example",
        "%@acme.example",
        "*@acme.example",
    ] {
        let a = get(&c.app, &lookup_path(miss, "&format=json"), None, None).await;
        if a.status == StatusCode::OK {
            assert_eq!(a.json()["certificates"], serde_json::json!([]), "{miss}");
        } else {
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{miss}");
        }
        let page = get(&c.app, &lookup_path(miss, ""), None, None).await;
        assert!(!page.text().contains(&first), "{miss}");
    }
    let none = get(&c.app, &lookup_path("nobody@acme.example", ""), None, None).await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.text().contains("No certificate is published for nobody@acme.example"), "{}", none.text());

    // Revoked: gone from the lookup and from the downloads.
    c.state.revoke("test", &signet_pki::Serial::from_hex(&first).unwrap(), RevocationReason::Superseded).await.unwrap();
    assert!(published_serials(&c, JANE).await.is_empty());
    let a = get(&c.app, &format!("/repository/certificates/{first}/certificate.pem"), None, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Expired: the two-year certificate is found until its last second, then no longer.
    let second = another(&c, "medium-token-encryption", "second").await;
    assert_eq!(published_serials(&c, JANE).await, [second.as_str()]);
    let not_after =
        c.state.store().certificate(&signet_pki::Serial::from_hex(&second).unwrap()).await.unwrap().unwrap();
    let expires = x509_parser::parse_x509_certificate(&not_after.der).unwrap().1.validity().not_after.timestamp();
    let expires = OffsetDateTime::from_unix_timestamp(expires).unwrap();
    c.clock.advance(expires - Duration::seconds(1) - c.clock.now());
    assert_eq!(published_serials(&c, JANE).await, [second.as_str()]);
    c.clock.advance(Duration::seconds(2));
    assert!(published_serials(&c, JANE).await.is_empty());
}

#[tokio::test]
async fn identity_certificates_are_published_only_by_the_subscribers_choice() {
    let c = cmc("sqlite").await;
    let encryption = another(&c, "medium-token-encryption", "encryption").await;
    let (mut b, _token) = enrolled(&c).await;
    let home = b.get("/cmc").await;
    assert!(home.body.contains("href=\"/cmc/published\""), "{}", home.body);

    let p = b.get("/cmc/published").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let url = "https://ra.example.test/repository?email=jane.doe%40acme.example";
    assert!(p.body.contains(&format!("href=\"{url}\"")), "{}", p.body);
    let row = |body: &str, serial: &str| {
        let at = body.find(&format!("id=\"row-{serial}\"")).unwrap_or_else(|| panic!("{serial}: {body}"));
        body[at..at + body[at..].find("</section>").unwrap()].to_owned()
    };
    assert!(row(&p.body, &encryption).contains("<strong>Published.</strong>"), "{}", p.body);
    assert!(row(&p.body, &encryption).contains(&format!("/repository/certificates/{encryption}/certificate.p7c")));
    assert!(
        row(&p.body, &c.serial).contains("Not published: you have not chosen to publish your identity certificates")
    );
    assert!(p.body.contains("value=\"withhold\" checked"), "the default is not to publish");
    assert_eq!(published_serials(&c, JANE).await, [encryption.as_str()]);

    let p = b.post("/cmc/published", &[("identity", "publish")]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Your valid identity certificates are now published"), "{}", p.body);
    assert!(row(&p.body, &c.serial).contains("<strong>Published.</strong>"), "{}", p.body);
    let mut found = published_serials(&c, JANE).await;
    found.sort();
    let mut expected = vec![encryption.clone(), c.serial.clone()];
    expected.sort();
    assert_eq!(found, expected);

    let p = b.post("/cmc/published", &[("identity", "withhold")]).await;
    assert!(p.body.contains("no longer published"), "{}", p.body);
    assert_eq!(published_serials(&c, JANE).await, [encryption.as_str()]);
    let p = b.post("/cmc/published", &[("identity", "everything")]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);

    let records = c.state.store().audit_records().await.unwrap();
    let choices: Vec<&str> =
        records.iter().filter(|r| r.action == "identity-publication-changed").map(|r| r.details.as_str()).collect();
    assert_eq!(choices, [r#"{"published":true}"#, r#"{"published":false}"#]);
    assert!(
        records
            .iter()
            .filter(|r| r.action == "identity-publication-changed")
            .all(|r| r.actor == format!("subscriber:{}", c.account))
    );
    assert!(signet_ra::audit::verify_chain(&records).is_ok());
    // Signed out, the page is not shown.
    let stranger = get(&c.app, "/cmc/published", None, None).await;
    assert_eq!((stranger.status, stranger.header(header::LOCATION)), (StatusCode::SEE_OTHER, "/cmc/sign-in"));
}

#[tokio::test]
async fn malformed_and_oversized_addresses_are_refused_beside_the_field() {
    let c = cmc("sqlite").await;
    let form = get(&c.app, "/repository", None, None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains("<input type=\"email\" id=\"email\" name=\"email\" value=\"\""), "{}", form.text());
    assert!(!form.text().contains("field-error"));

    let long = format!("{}@{}.example", "a".repeat(64), "b".repeat(300));
    for (typed, message, kind) in [
        ("Jane <jane.doe@acme.example>", "That is not an email address", "bad-email"),
        ("jane.doe@", "That is not an email address", "bad-email"),
        ("", "Enter the email address of the person", "bad-email"),
        (long.as_str(), "An email address is at most 254 characters", "bad-email"),
    ] {
        let page = get(&c.app, &lookup_path(typed, ""), None, None).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{typed}");
        let body = page.text();
        assert!(body.contains("aria-describedby=\"email-error\""), "{body}");
        assert!(
            body.contains(&format!("<span class=\"field-error\" role=\"alert\" id=\"email-error\">{message}")),
            "{typed}: {body}"
        );
        let json = get(&c.app, &lookup_path(typed, ""), Some("application/json"), None).await;
        assert_eq!(
            (json.status, json.header(header::CONTENT_TYPE)),
            (StatusCode::BAD_REQUEST, "application/problem+json")
        );
        assert_eq!(json.json()["type"], format!("urn:signet:problem:{kind}"));
    }
    // What was typed comes back escaped, and no longer than an address can be.
    let page = get(&c.app, &lookup_path("<script>@x", ""), None, None).await.text();
    assert!(page.contains("value=\"&#60;script&#62;@x\"") || page.contains("value=\"&lt;script&gt;@x\""), "{page}");
    let page = get(&c.app, &lookup_path(&long, ""), None, None).await.text();
    assert!(!page.contains(&long) && page.contains(&long[..254]));

    // One address at a time: a second one is refused, not ignored.
    let two = format!("{}&email=nobody%40acme.example", lookup_path(JANE, ""));
    let page = get(&c.app, &two, None, None).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text().contains(">Look up one address at a time.</span>"), "{}", page.text());
    assert_eq!(get(&c.app, &format!("{two}&format=json"), None, None).await.status, StatusCode::BAD_REQUEST);

    for format in ["&format=xml", "&format=json&format=html"] {
        let bad_format = get(&c.app, &lookup_path(JANE, format), None, None).await;
        assert_eq!(
            (bad_format.status, bad_format.header(header::CONTENT_TYPE)),
            (StatusCode::BAD_REQUEST, "application/problem+json"),
            "{format}"
        );
    }
    let bad_format = get(&c.app, &lookup_path(JANE, "&format=xml"), None, None).await;
    assert_eq!(
        (bad_format.status, bad_format.header(header::CONTENT_TYPE)),
        (StatusCode::BAD_REQUEST, "application/problem+json")
    );
    let no_email = get(&c.app, "/repository?format=json", None, None).await;
    assert_eq!(no_email.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_email.json()["type"], "urn:signet:problem:missing-email");
}

#[tokio::test]
async fn each_client_gets_its_budget_then_429_with_retry_after() {
    let db = TestDb::new("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(db.url.clone()),
        ..Default::default()
    }
    .into_settings()
    .unwrap();
    settings.limits.repository_requests_per_minute = 3;
    let state = build_state(&settings, "https://ra.example.test", Arc::new(FakeClock::at(OffsetDateTime::now_utc())))
        .await
        .unwrap();
    let app = app(state);
    let (one, two) = (Some("192.0.2.10:40000"), Some("192.0.2.11:40000"));
    // The form alone is not a lookup; lookups and downloads count.
    get(&app, "/repository", None, one).await;
    for path in [
        lookup_path(JANE, ""),
        lookup_path("x@acme.example", ""),
        "/repository/certificates/0aff/certificate.p7c".into(),
    ] {
        assert_ne!(get(&app, &path, None, one).await.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    let page = get(&app, &lookup_path(JANE, ""), None, one).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = page.header(header::RETRY_AFTER).parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(page.text().contains("Too many requests from your network. Wait"), "{}", page.text());
    let json = get(&app, &lookup_path(JANE, ""), Some("application/json"), one).await;
    assert_eq!(
        (json.status, json.header(header::CONTENT_TYPE)),
        (StatusCode::TOO_MANY_REQUESTS, "application/problem+json")
    );
    assert!(!json.header(header::RETRY_AFTER).is_empty());
    assert_eq!(json.json()["type"], "urn:signet:problem:too-many-attempts");
    let download = get(&app, "/repository/certificates/0aff/certificate.pem", None, one).await;
    assert_eq!(download.status, StatusCode::TOO_MANY_REQUESTS);
    // Another client has its own budget.
    assert_eq!(get(&app, &lookup_path(JANE, ""), None, two).await.status, StatusCode::OK);
}

#[tokio::test]
async fn found_and_not_found_are_answered_in_the_same_time() {
    let c = cmc("sqlite").await;
    another(&c, "medium-token-encryption", "encryption").await;
    let timed = |email: &'static str| {
        let app = c.app.clone();
        async move {
            let mut fastest = StdDuration::MAX;
            let mut certificates = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let a = get(&app, &lookup_path(email, ""), Some("application/json"), None).await;
                fastest = fastest.min(started.elapsed());
                certificates = a.json()["certificates"].as_array().unwrap().len();
            }
            (fastest, certificates)
        }
    };
    let (found, n) = timed(JANE).await;
    let (missing, none) = timed("nobody@acme.example").await;
    assert_eq!((n, none), (1, 0));
    let floor = StdDuration::from_millis(250);
    assert!(found >= floor && missing >= floor, "found {found:?}, not found {missing:?}");
    let apart = found.abs_diff(missing);
    assert!(apart < StdDuration::from_millis(50), "found {found:?}, not found {missing:?}");
}
