//! The Certificate Management Center over HTTP, through `app(state)` with a fake clock: soft-token
//! enrollment in two steps (the QR code decoded by `zbarimg`, codes computed by `oathtool` — both
//! independent implementations), sign-in and replay, lockout and an administrator's unlock,
//! step-up before every secure action, revocation checked with `openssl ocsp`, renewal inside
//! and outside the 90-day window checked with `openssl verify` (Medium, from a pasted request;
//! the token types only with the new key proven by the shipped token's shipment key, a pasted
//! or software key refused on both backends), device certificates limited to the
//! organization's registered domains, the recovery path, and the audit chain at the end.

use std::path::Path;
use std::process::Command as Process;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::EcdsaKeyPair;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use signet_authority::ServerConfig;
use signet_authority::jobs::{Job, JobRunner, Outcome};
use signet_authority::mail::{MailConfig, Mailer};
use signet_authority::stock;
use signet_pki::issue::CertificateOrder;
use signet_pki::subject::{DnsName, Subject};
use signet_ra::acme::{AcmeStore, DomainScope, EabKey};
use signet_ra::application::{
    Application, ApplicationForm, ApplicationId, ApplicationStore, NewPassword, OrganizationKey, PasswordHash,
};
use signet_ra::audit::{AuditAction, AuditEvent, verify_chain};
use signet_ra::enterprise::{EnterpriseStore, EnterpriseUser};
use signet_ra::fixtures::sample_form;
use signet_ra::issuance::StoredStatus;
use signet_ra::lockout::{AttemptScope, AttemptStore, REFUSED};
use signet_ra::passkey::{Aaguid, Passkey, PasskeyName, PasskeyOwner, PasskeyStore};
use signet_ra::token_stock::{Delivery, StockToken, TokenSerial, TokenStockStore, renewal_message};
use signet_ra::{Clock, FakeClock};
use signet_server::{AppState, app, build_state};
use signet_testkit::TestDb;
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

use crate::browser::{Browser, Page};
use crate::mail_common::{SmtpSink, free_port};
use crate::stock_common::in_stock;

const T0: OffsetDateTime = datetime!(2026-11-23 14:00 UTC);
const PASSWORD: &str = "Quill-Harbor-Sextant-58";
/// What a refused step-up code says (unlike a refused sign-in, it may name the code).
const STEP_UP_REFUSED: &str = "That code from your authenticator app was not accepted.";
/// medium-token identity certificates: the policy their renewals must still assert.
const MEDIUM_TOKEN_OID: &str = "2.16.840.1.101.3.2.1.12.5";
/// id-eca-medium-sha256: Medium (software key) certificates.
const MEDIUM_OID: &str = "2.16.840.1.101.3.2.1.12.4";

pub(crate) struct Cmc {
    pub(crate) app: Router,
    pub(crate) state: AppState,
    pub(crate) clock: Arc<FakeClock>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) account: ApplicationId,
    pub(crate) serial: String,
    _db: TestDb,
}

fn password_hash() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let email = sample_form("medium-token").applicant.email;
        PasswordHash::new(&NewPassword::new(PASSWORD, &email).unwrap()).unwrap()
    })
}

pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = Process::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The issuing CA certificate, PEM.
fn issuing_pem(c: &Cmc) -> String {
    signet_pki::to_pem("CERTIFICATE", c.state.certificates.issuing.as_slice())
}

/// `openssl verify` of the certificate in file `leaf` (in the test's folder) at the fake
/// clock's time, up to the root through the `untrusted` PEM certificates, with `checks` (policy,
/// purpose, host name); asserts it is OK.
fn verify_at_clock(c: &Cmc, leaf: &str, untrusted: &str, checks: &[&str]) {
    let dir = c.dir.path();
    let (root, chain) = (dir.join("root.pem"), dir.join("untrusted.pem"));
    std::fs::write(&root, signet_pki::to_pem("CERTIFICATE", c.state.certificates.root.as_slice())).unwrap();
    std::fs::write(&chain, untrusted).unwrap();
    let at = c.clock.now().unix_timestamp().to_string();
    let mut args = vec!["verify", "-attime", &at];
    args.extend_from_slice(checks);
    let files = [root.to_str().unwrap(), chain.to_str().unwrap(), dir.join(leaf).to_str().unwrap()].map(str::to_owned);
    args.extend(["-CAfile", &files[0], "-untrusted", &files[1], &files[2]]);
    let verified = run("openssl", &args);
    assert!(verified.contains(": OK"), "{verified}");
}

/// A new RSA key and its certificate request, made by OpenSSL; returns the CSR PEM.
fn csr(dir: &Path, name: &str) -> String {
    let (key, req) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.csr")));
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=ignored",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            req.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(req).unwrap()
}

/// A server with one subscriber account holding a medium-token identity certificate, issued as
/// retrieval issues it.
pub(crate) async fn cmc(backend: &str) -> Cmc {
    cmc_of(backend, "medium-token").await
}

/// A server with one subscriber account of `cert_type` holding its identity certificate.
async fn cmc_of(backend: &str, cert_type: &str) -> Cmc {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(db.url.clone()),
        ..Default::default()
    };
    let settings = config.into_settings().unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let state = build_state(&settings, "https://ra.example.test", clock.clone()).await.unwrap();
    let (account, serial) = subscriber(&state, dir.path(), sample_form(cert_type), true).await;
    Cmc { app: app(state.clone()), state, clock, dir, account, serial, _db: db }
}

/// An applied account for `form`; with `certified`, holding a two-year identity certificate of
/// the form's type for a key made by OpenSSL in `dir` (`identity.key`, the latest one made) as
/// retrieval issues it. Returns the reference and the serial (empty without a certificate).
async fn subscriber(state: &AppState, dir: &Path, form: ApplicationForm, certified: bool) -> (ApplicationId, String) {
    let t = Application::submit(ApplicationId::generate(), form.clone(), T0 - Duration::days(20));
    state.store().create(&t, password_hash(), &[]).await.unwrap();
    let account = t.application.id().clone();
    if !certified {
        return (account, String::new());
    }
    let mut order = form.person_order(format!("{}-identity", form.certificate.cert_type()));
    order.validity_years = 2;
    let req = csr(dir, "identity");
    let cert = state.issue(&format!("applicant:{account}"), &order, req.as_bytes()).await.unwrap();
    (account, cert.serial.to_hex())
}

/// Makes `account` a user of its organization's enterprise account, as the RA's
/// `signet admin enterprise add-user` does.
async fn ra_adds_user(c: &Cmc, account: &ApplicationId) {
    let organization = OrganizationKey::of(&sample_form("medium-token").organization);
    let user =
        EnterpriseUser { organization, account: account.clone(), added_by: "cli:ra".into(), added_at: c.clock.now() };
    c.state.store().add_enterprise_user(&user, user.added_event()).await.unwrap();
}

/// The code `oathtool` computes for `secret` at `at`.
fn oathtool(secret: &str, algorithm: &str, digits: u32, at: OffsetDateTime) -> String {
    let now = at.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).unwrap();
    run("oathtool", &[&format!("--totp={algorithm}"), "-d", &digits.to_string(), "-b", "--now", &now, secret])
        .trim()
        .to_owned()
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).unwrap_or_else(|| panic!("{start:?} not in page:\n{body}")) + start.len();
    &body[from..from + body[from..].find(end).unwrap()]
}

/// A soft token as the subscriber's app holds it.
pub(crate) struct App {
    secret: String,
    algorithm: &'static str,
    digits: u32,
}

impl App {
    fn code(&self, at: OffsetDateTime) -> String {
        oathtool(&self.secret, self.algorithm, self.digits, at)
    }
}

async fn sign_in(b: &mut Browser, account: &ApplicationId, password: &str, code: &str) -> Page {
    b.get("/cmc/sign-in").await;
    b.post("/cmc/sign-in", &[("reference", account.as_str()), ("password", password), ("code", code)]).await
}

/// Step one of enrollment and the page that shows the token; the app reads the QR code.
async fn create_token(c: &Cmc, b: &mut Browser, algorithm: &'static str, digits: u32, extra: &[(&str, &str)]) -> App {
    b.get("/cmc/soft-token").await;
    let digits_text = digits.to_string();
    let mut fields = vec![("algorithm", algorithm), ("digits", digits_text.as_str())];
    fields.extend_from_slice(extra);
    let p = b.post("/cmc/soft-token", &fields).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/soft-token"), "{}", p.body);
    let page = b.get("/cmc/soft-token").await;
    let serial = between(&page.body, "<dd id=\"serial\">", "<");
    assert_eq!(serial.len(), 11, "serial {serial}");
    // The QR code, decoded by zbar from the SVG rendered by librsvg, is the Key URI on the page.
    let data = between(&page.body, "src=\"data:image/svg+xml;base64,", "\"");
    let svg = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    let (svg_path, png_path) = (c.dir.path().join("qr.svg"), c.dir.path().join("qr.png"));
    std::fs::write(&svg_path, svg).unwrap();
    run("rsvg-convert", &["-o", png_path.to_str().unwrap(), svg_path.to_str().unwrap()]);
    let uri = run("zbarimg", &["--quiet", "--raw", png_path.to_str().unwrap()]).trim().to_owned();
    let shown = between(&page.body, "<code id=\"otpauth\">", "<").replace("&#38;", "&").replace("&amp;", "&");
    assert_eq!(uri, shown);
    let secret = between(&uri, "secret=", "&").to_owned();
    assert!(uri.contains(&format!("algorithm={algorithm}")) && uri.contains(&format!("digits={digits}")), "{uri}");
    let activation = between(&page.body, "<dd id=\"activation-code\"><code>", "<").replace(' ', "");
    assert_eq!(activation, secret, "the activation code is the secret for manual entry");
    App { secret, algorithm, digits }
}

/// A signed-in subscriber with an active SHA-256, 8-digit token; the clock is one step past
/// the registration, so the next code is fresh.
pub(crate) async fn enrolled(c: &Cmc) -> (Browser, App) {
    let mut b = Browser::new(&c.app);
    let p = sign_in(&mut b, &c.account, PASSWORD, "").await;
    assert_eq!(p.location.as_deref(), Some("/cmc/soft-token"), "first sign-in goes to enrollment: {}", p.body);
    let token = create_token(c, &mut b, "SHA256", 8, &[]).await;
    let p = b.post("/cmc/soft-token/register", &[("registration_code", &token.code(c.clock.now()))]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/recovery-questions"), "{}", p.body);
    c.clock.advance(Duration::seconds(30));
    (b, token)
}

fn fresh(c: &Cmc, token: &App) -> String {
    c.clock.advance(Duration::seconds(30));
    token.code(c.clock.now())
}

async fn audit_intact(c: &Cmc) {
    let records = c.state.store().audit_records().await.unwrap();
    assert!(verify_chain(&records).is_ok(), "audit chain broken");
}

fn actions(records: &[signet_ra::audit::AuditRecord], action: &str) -> usize {
    records.iter().filter(|r| r.action == action).count()
}

signet_testkit::backend_test!(enrollment_sign_in_and_replay, enrollment_sign_in_and_replay);

async fn enrollment_sign_in_and_replay(backend: &str) {
    let c = cmc(backend).await;
    let mut b = Browser::new(&c.app);
    // Password only: enrollment is all the session may do.
    let p = sign_in(&mut b, &c.account, PASSWORD, "").await;
    assert_eq!(p.location.as_deref(), Some("/cmc/soft-token"), "{backend}");
    assert_eq!(b.get("/cmc").await.location.as_deref(), Some("/cmc/sign-in"), "{backend}: no CMC before 2FA");
    let token = create_token(&c, &mut b, "SHA256", 8, &[]).await;
    // A wrong registration code leaves the token pending.
    let wrong = format!("{:08}", (token.code(c.clock.now()).parse::<u64>().unwrap() + 1) % 100_000_000);
    let p = b.post("/cmc/soft-token/register", &[("registration_code", &wrong)]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}");
    assert!(p.body.contains(REFUSED), "{backend}: {}", p.body);
    let registration = token.code(c.clock.now());
    let p = b.post("/cmc/soft-token/register", &[("registration_code", &registration)]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/recovery-questions"), "{backend}: {}", p.body);
    let home = b.get("/cmc").await;
    assert_eq!(home.status, StatusCode::OK, "{backend}");
    assert!(home.body.contains(&c.serial) && home.body.contains("Valid"), "{backend}: {}", home.body);

    // Sign-in needs the second factor now; the registration code is spent.
    let mut other = Browser::new(&c.app);
    let p = sign_in(&mut other, &c.account, PASSWORD, "").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: no code, no entry");
    let p = sign_in(&mut other, &c.account, PASSWORD, &registration).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: the registration code is not replayable");
    let p = sign_in(&mut other, &c.account, "Wrong-Password-99", &fresh(&c, &token)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}");
    assert!(p.body.contains(REFUSED), "{backend}");
    let code = fresh(&c, &token);
    let p = sign_in(&mut other, &c.account, PASSWORD, &code).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"), "{backend}: {}", p.body);
    // The same code a second time, on another session: refused.
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &code).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: replay");

    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(actions(&records, "soft-token-enrolled"), 1, "{backend}");
    assert_eq!(actions(&records, "soft-token-activated"), 1, "{backend}");
    assert_eq!(actions(&records, "subscriber-signed-in"), 1, "{backend}");
    audit_intact(&c).await;
}

#[tokio::test]
async fn a_pin_comes_before_the_code_and_sha1_six_digits_work() {
    let c = cmc("sqlite").await;
    let mut b = Browser::new(&c.app);
    sign_in(&mut b, &c.account, PASSWORD, "").await;
    // Bad PINs are refused with the reason, and nothing is created.
    b.get("/cmc/soft-token").await;
    let p =
        b.post("/cmc/soft-token", &[("algorithm", "SHA1"), ("digits", "6"), ("pin", "12"), ("pin_again", "12")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("4 to 8 digits"), "{}", p.body);
    let p = b
        .post("/cmc/soft-token", &[("algorithm", "SHA1"), ("digits", "6"), ("pin", "4821"), ("pin_again", "4812")])
        .await;
    assert!(p.body.contains("not the same"), "{}", p.body);
    let p = b.post("/cmc/soft-token", &[("algorithm", "MD5"), ("digits", "6")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    let token = create_token(&c, &mut b, "SHA1", 6, &[("pin", "4821"), ("pin_again", "4821")]).await;
    let p = b.post("/cmc/soft-token/register", &[("registration_code", &token.code(c.clock.now()))]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/recovery-questions"), "{}", p.body);
    let code = fresh(&c, &token);
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &code).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "the code without the PIN is refused");
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &format!("4821{}", fresh(&c, &token))).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"), "{}", p.body);
}

#[tokio::test]
async fn lockout_escalates_per_account_and_an_administrator_unlocks() {
    let c = cmc("sqlite").await;
    let (_, token) = enrolled(&c).await;
    for _ in 0..4 {
        let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, "00000000").await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    }
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, "00000000").await;
    assert_eq!(p.status, StatusCode::LOCKED, "the fifth failure locks: {}", p.body);
    // While locked, even the right code is not checked.
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &token)).await;
    assert_eq!(p.status, StatusCode::LOCKED);
    // The lock ends after a minute; the next failure locks again, for twice as long.
    c.clock.advance(Duration::seconds(61));
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, "00000000").await;
    assert_eq!(p.status, StatusCode::LOCKED);
    c.clock.advance(Duration::seconds(61));
    assert_eq!(
        sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &token)).await.status,
        StatusCode::LOCKED
    );
    // A wrong code after the right password counted in the sign-in's one counter; an
    // administrator's unlock (what `signet admin unlock --scope subscriber-password` calls)
    // clears it.
    c.state
        .store()
        .unlock(AttemptScope::SubscriberPassword, c.account.as_str(), "cli:admin", c.clock.now())
        .await
        .unwrap();
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &token)).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"), "{}", p.body);
    let records = c.state.store().audit_records().await.unwrap();
    assert!(actions(&records, "authentication-failed") >= 6 && actions(&records, "lockout-cleared") == 1);
    audit_intact(&c).await;
}

/// POSTs an OCSP request made by `openssl ocsp -reqout` and returns the `openssl ocsp -respin`
/// verdict line for the serial, verified against the root.
async fn ocsp_status(c: &Cmc, serial: &str) -> String {
    let dir = c.dir.path();
    let (issuer, root, req, resp) =
        (dir.join("issuing.pem"), dir.join("root.pem"), dir.join("req.der"), dir.join("resp.der"));
    std::fs::write(&issuer, signet_pki::to_pem("CERTIFICATE", c.state.certificates.issuing.as_slice())).unwrap();
    std::fs::write(&root, signet_pki::to_pem("CERTIFICATE", c.state.certificates.root.as_slice())).unwrap();
    run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-serial",
            &format!("0x{serial}"),
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ],
    );
    let resp_der = c
        .app
        .clone()
        .oneshot(
            Request::post("/ocsp")
                .header(header::CONTENT_TYPE, "application/ocsp-request")
                .body(Body::from(std::fs::read(&req).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp_der.status(), StatusCode::OK);
    std::fs::write(&resp, axum::body::to_bytes(resp_der.into_body(), 1 << 20).await.unwrap()).unwrap();
    let skew = (OffsetDateTime::now_utc() - c.clock.now()).whole_seconds().abs() + 3600;
    let out = run(
        "openssl",
        &[
            "ocsp",
            "-respin",
            resp.to_str().unwrap(),
            "-issuer",
            issuer.to_str().unwrap(),
            "-CAfile",
            root.to_str().unwrap(),
            "-verify_other",
            issuer.to_str().unwrap(),
            "-serial",
            &format!("0x{serial}"),
            // OpenSSL checks thisUpdate/nextUpdate against the real clock; the server's is fake.
            "-validity_period",
            &skew.to_string(),
        ],
    );
    out.lines()
        .find(|l| l.starts_with(&format!("0x{serial}")))
        .unwrap_or_else(|| panic!("no status line: {out}"))
        .to_owned()
}

/// The answer to a post that succeeded: a redirect to the new certificate's page (so reload
/// repeats nothing), followed; the page shows the certificate.
async fn certificate_shown(b: &mut Browser, posted: Page, done: &str) -> Page {
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let to = posted.location.clone().unwrap();
    assert!(to.starts_with("/cmc/certificates/") && to.ends_with(&format!("?done={done}")), "{to}");
    let shown = b.get(&to).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    Page { location: Some(to), ..shown }
}

/// The queued mails of `kind`, oldest first.
async fn queued(c: &Cmc, kind: &str) -> Vec<signet_ra::notify::OutboxMessage> {
    let all = c.state.store().pending_outbox(c.clock.now() + Duration::days(1), 1000).await.unwrap();
    all.into_iter().filter(|q| q.message.kind.name() == kind).map(|q| q.message).collect()
}

#[tokio::test]
async fn revocation_needs_step_up_and_shows_in_ocsp() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    b.get("/cmc").await;
    let path = format!("/cmc/certificates/{}/revoke", c.serial);
    // No code, or a wrong one: refused beside the certificate, nothing revoked.
    let p = b.post(&path, &[("reason", "1"), ("code", "")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains(&format!("id=\"error-{}\"", c.serial)), "{}", p.body);
    // The step-up says it was the code; only the sign-in form keeps every refusal alike.
    let p = b.post(&path, &[("reason", "1"), ("code", "00000000")]).await;
    assert!(p.body.contains(STEP_UP_REFUSED) && !p.body.contains(REFUSED), "{}", p.body);
    let p = b.post(&path, &[("reason", ""), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("Choose why"), "{}", p.body);
    // A reason that is the CA's, not the subscriber's (cACompromise).
    let p = b.post(&path, &[("reason", "2"), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("Choose why"), "{}", p.body);
    assert!(ocsp_status(&c, &c.serial).await.ends_with(": good"));
    // Someone else's serial is not found.
    let p = b.post("/cmc/certificates/0123456789abcdef/revoke", &[("reason", "1"), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    let p = b.post(&path, &[("reason", "1"), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("is revoked because the key was compromised."), "{}", p.body);
    assert!(!p.body.contains("keyCompromise"), "no RFC 5280 names on the page");
    assert!(!p.body.contains("id=\"compromise\""), "no other certificate to offer: {}", p.body);
    let mail = queued(&c, "certificate-revoked").await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].to.as_str(), sample_form("medium-token").applicant.email.as_str());
    assert!(
        mail[0].body_text.contains(&c.serial) && mail[0].body_text.contains("because the key was compromised"),
        "{}",
        mail[0].body_text
    );
    assert!(ocsp_status(&c, &c.serial).await.ends_with(": revoked"), "OCSP says revoked at once");
    // The CRL served next lists it.
    let crl = c.app.clone().oneshot(Request::get("/crl/issuing.crl").body(Body::empty()).unwrap()).await.unwrap();
    let crl_path = c.dir.path().join("issuing.crl");
    std::fs::write(&crl_path, axum::body::to_bytes(crl.into_body(), 1 << 20).await.unwrap()).unwrap();
    let text = run("openssl", &["crl", "-inform", "DER", "-in", crl_path.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.to_lowercase().contains(&c.serial.trim_start_matches('0').to_lowercase()), "{text}");
    let records = c.state.store().audit_records().await.unwrap();
    assert!(records.iter().any(|r| r.action == "step-up-confirmed" && r.details.contains("revoke")));
    audit_intact(&c).await;
}

#[tokio::test]
async fn renewal_opens_90_days_before_expiry() {
    // Medium (software keys) renews from a pasted request; the token types are refused below.
    let c = cmc_of("sqlite", "medium").await;
    let (mut b, token) = enrolled(&c).await;
    let path = format!("/cmc/certificates/{}/renew", c.serial);
    let new_csr = csr(c.dir.path(), "renewal");
    b.get("/cmc").await;
    let p = b.post(&path, &[("csr", &new_csr), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("renewal opens"), "too early is refused with the date: {}", p.body);
    // 91 days before the two-year certificate expires: still too early; 89 days: open.
    let record = c.state.store().account_certificates(&c.account).await.unwrap().remove(0);
    c.clock.advance(record.not_after - Duration::days(91) - c.clock.now());
    // Sessions lapse after 30 minutes: sign in again at each new time.
    let mut b = Browser::new(&c.app);
    assert_eq!(
        sign_in(&mut b, &c.account, PASSWORD, &token.code(c.clock.now())).await.location.as_deref(),
        Some("/cmc")
    );
    b.get("/cmc").await;
    let p = b.post(&path, &[("csr", &new_csr), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("renewal opens"), "{}", p.body);
    c.clock.advance(record.not_after - Duration::days(89) - c.clock.now());
    let mut b = Browser::new(&c.app);
    assert_eq!(
        sign_in(&mut b, &c.account, PASSWORD, &token.code(c.clock.now())).await.location.as_deref(),
        Some("/cmc")
    );
    b.get("/cmc").await;
    let p = b.post(&path, &[("csr", "not a request"), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    let p = b.post(&path, &[("csr", &new_csr), ("code", &fresh(&c, &token))]).await;
    let p = certificate_shown(&mut b, p, "renewed").await;
    assert!(p.body.contains("Your certificate is renewed") && p.body.contains("Valid"), "{}", p.body);
    // Reloading the certificate's page repeats nothing.
    assert_eq!(b.get(p.location.as_deref().unwrap()).await.status, StatusCode::OK);
    let pem = between(&p.body, "<textarea id=\"certificate\" rows=\"12\" readonly>", "</textarea>").to_owned();
    let dir = c.dir.path();
    std::fs::write(dir.join("renewed.pem"), &pem).unwrap();
    verify_at_clock(&c, "renewed.pem", &issuing_pem(&c), &["-policy", MEDIUM_OID, "-explicit_policy"]);
    // Same subject, the new key.
    let subject = |p: &str| run("openssl", &["x509", "-in", p, "-noout", "-subject", "-nameopt", "RFC2253"]);
    let old = dir.join("old.pem");
    std::fs::write(&old, signet_pki::to_pem("CERTIFICATE", &record.der)).unwrap();
    assert_eq!(subject(old.to_str().unwrap()), subject(dir.join("renewed.pem").to_str().unwrap()));
    let modulus = |args: &[&str]| run("openssl", args);
    assert_eq!(
        modulus(&["x509", "-in", dir.join("renewed.pem").to_str().unwrap(), "-noout", "-modulus"]),
        modulus(&["req", "-in", dir.join("renewal.csr").to_str().unwrap(), "-noout", "-modulus"])
    );
    let all = c.state.store().account_certificates(&c.account).await.unwrap();
    assert_eq!(all.len(), 2);
    // The subscriber is mailed the renewal, naming both certificates.
    let mail = queued(&c, "certificate-renewed").await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].to.as_str(), sample_form("medium").applicant.email.as_str());
    assert!(
        mail[0].body_text.contains(&all[1].serial.to_hex()) && mail[0].body_text.contains(&c.serial),
        "{:?}",
        mail[0]
    );
    // One renewal per certificate: the old one is now replaced.
    b.get("/cmc").await;
    let p = b.post(&path, &[("csr", &csr(dir, "again")), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("already renewed"), "{}", p.body);
    audit_intact(&c).await;
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `POST /api/v1/renewal` as `signet token renew` calls it, with the proof made by OpenSSL.
async fn renewal_api(c: &Cmc, certificate: &str, csr_der: &[u8], proof: &[u8]) -> (StatusCode, serde_json::Value) {
    renewal_api_with(c, certificate, csr_der, proof, serde_json::json!({})).await
}

/// [`renewal_api`] with `extra` fields in the request (the new key's hardware proof).
async fn renewal_api_with(
    c: &Cmc,
    certificate: &str,
    csr_der: &[u8],
    proof: &[u8],
    extra: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut body = serde_json::json!({ "certificate": certificate, "csr": b64(csr_der), "proof": b64(proof) });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let resp = c
        .app
        .clone()
        .oneshot(
            Request::post("/api/v1/renewal")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn renewal_by_the_current_key_over_the_api() {
    let c = cmc_of("sqlite", "medium").await;
    let dir = c.dir.path();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    csr(dir, "renewal");
    run("openssl", &["req", "-in", &file("renewal.csr"), "-outform", "DER", "-out", &file("renewal.der")]);
    let new_csr = std::fs::read(dir.join("renewal.der")).unwrap();
    std::fs::write(dir.join("message.bin"), signet_ra::renewal::proof_message(&new_csr)).unwrap();
    // OpenSSL signs the renewal message with a key: the current one, or the new one.
    let proof_by = |key: &str| {
        run("openssl", &["dgst", "-sha256", "-sign", &file(key), "-out", &file("proof.bin"), &file("message.bin")]);
        std::fs::read(dir.join("proof.bin")).unwrap()
    };
    let record = c.state.store().account_certificates(&c.account).await.unwrap().remove(0);
    let current = signet_pki::to_pem("CERTIFICATE", &record.der);

    let (status, problem) = renewal_api(&c, &current, &new_csr, &proof_by("renewal.key")).await;
    assert_eq!((status, problem["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:signet:problem:bad-proof")));
    let proof = proof_by("identity.key");
    let (status, problem) = renewal_api(&c, &current, &new_csr, &proof).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().starts_with("renewal opens on"), "{problem}");
    // A certificate of another CA, and one that is not a certificate.
    run(
        "openssl",
        &["req", "-x509", "-key", &file("identity.key"), "-subj", "/CN=self", "-days", "30", "-out", &file("self.pem")],
    );
    let (status, problem) =
        renewal_api(&c, &std::fs::read_to_string(dir.join("self.pem")).unwrap(), &new_csr, &proof).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("urn:signet:problem:unknown-certificate"))
    );
    let (status, problem) = renewal_api(&c, "not a certificate", &new_csr, &proof).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("urn:signet:problem:bad-certificate"))
    );

    c.clock.advance(record.not_after - Duration::days(30) - c.clock.now());
    let (status, renewed) = renewal_api(&c, &current, &new_csr, &proof).await;
    assert_eq!(status, StatusCode::CREATED, "{renewed}");
    assert_eq!(renewed["replaces"].as_str(), Some(c.serial.as_str()));
    std::fs::write(dir.join("renewed.pem"), renewed["certificate"].as_str().unwrap()).unwrap();
    let chain = renewed["chain"].as_str().unwrap();
    verify_at_clock(&c, "renewed.pem", chain, &["-policy", MEDIUM_OID, "-explicit_policy"]);
    let modulus = |args: &[&str]| run("openssl", args);
    assert_eq!(
        modulus(&["x509", "-in", &file("renewed.pem"), "-noout", "-modulus"]),
        modulus(&["req", "-in", &file("renewal.csr"), "-noout", "-modulus"])
    );
    // The same proof again: the certificate is replaced now.
    let (status, problem) = renewal_api(&c, &current, &new_csr, &proof).await;
    assert_eq!((status, problem["type"].as_str()), (StatusCode::CONFLICT, Some("urn:signet:problem:already-renewed")));
    let records = c.state.store().audit_records().await.unwrap();
    let issued: Vec<_> = records.iter().filter(|r| r.action == "certificate-issued").map(|r| r.actor.clone()).collect();
    assert_eq!(issued.last().map(String::as_str), Some(format!("subscriber:{}", c.account).as_str()));
    audit_intact(&c).await;
}

/// A new OpenSSL key `name.key` and its request in DER, and the current key's (`identity.key`)
/// proof over it, as `signet token renew` sends them.
fn request_and_proof(c: &Cmc, name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = c.dir.path();
    let file = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    csr(dir, name);
    let der = file(&format!("{name}.der"));
    run("openssl", &["req", "-in", &file(&format!("{name}.csr")), "-outform", "DER", "-out", &der]);
    let csr_der = std::fs::read(&der).unwrap();
    std::fs::write(dir.join("message.bin"), signet_ra::renewal::proof_message(&csr_der)).unwrap();
    run(
        "openssl",
        &["dgst", "-sha256", "-sign", &file("identity.key"), "-out", &file("proof.bin"), &file("message.bin")],
    );
    (csr_der, std::fs::read(dir.join("proof.bin")).unwrap())
}

/// The account's certificates and every `certificate-issued` audit row: what a refused
/// renewal must leave as it was.
async fn issued(c: &Cmc) -> (usize, usize) {
    let records = c.state.store().audit_records().await.unwrap();
    (c.state.store().account_certificates(&c.account).await.unwrap().len(), actions(&records, "certificate-issued"))
}

signet_testkit::backend_test!(
    token_types_are_not_renewed_onto_a_software_key,
    token_types_are_not_renewed_onto_a_software_key
);

async fn token_types_are_not_renewed_onto_a_software_key(backend: &str) {
    for cert_type in ["medium-token", "medium-hardware"] {
        software_renewal_refused(backend, cert_type).await;
    }
}

async fn software_renewal_refused(backend: &str, cert_type: &str) {
    let c = cmc_of(backend, cert_type).await;
    // Inside the renewal window, so only the key's provenance stands in the way.
    let record = c.state.store().account_certificates(&c.account).await.unwrap().remove(0);
    c.clock.advance(record.not_after - Duration::days(30) - c.clock.now());
    let (mut b, token) = enrolled(&c).await;
    let before = issued(&c).await;

    // The Certificate Management Center offers no paste-a-request renewal for a token type but
    // says how to renew; a post all the same is refused before the code is spent.
    let renew_on_token = "certificate is renewed on your token: insert it and run `signet token renew`";
    let page = b.get("/cmc").await;
    assert!(page.body.contains(renew_on_token), "{backend} {cert_type}: {}", page.body);
    let action = format!("/cmc/certificates/{}/renew", c.serial);
    assert!(!page.body.contains(&format!("action=\"{action}\"")), "{backend} {cert_type}: no renew form");
    let pasted = csr(c.dir.path(), "pasted");
    let code = fresh(&c, &token);
    let p = b.post(&action, &[("csr", &pasted), ("code", &code)]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend} {cert_type}: {}", p.body);
    assert!(p.body.contains(renew_on_token), "{backend} {cert_type}: {}", p.body);
    assert!(!p.body.contains("BEGIN CERTIFICATE"), "nothing issued");
    let records = c.state.store().audit_records().await.unwrap();
    assert!(!records.iter().any(|r| r.action == "step-up-confirmed" && r.details.contains("renew")), "code kept");

    // The API, with the current key's proof but nothing about where the new key is.
    let current = signet_pki::to_pem("CERTIFICATE", &record.der);
    let (csr_der, proof) = request_and_proof(&c, "renewal");
    let (status, problem) = renewal_api(&c, &current, &csr_der, &proof).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::CONFLICT, Some("urn:signet:problem:hardware-key-unproven")),
        "{backend} {cert_type}: {problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("signet token renew"), "{problem}");
    // A serial with no shipment signature proves nothing either.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, serde_json::json!({ "token_serial": "NO-SUCH" })).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::CONFLICT, Some("urn:signet:problem:hardware-key-unproven"))
    );

    assert_eq!(issued(&c).await, before, "{backend} {cert_type}: nothing issued");
    audit_intact(&c).await;
}

/// Moves the stock token `serial` on through `step` (ship, then retrieve), as the console's
/// shipment and the retrieval do.
async fn moved(c: &Cmc, serial: &str, step: impl FnOnce(StockToken) -> StockToken) {
    let t = stock::find(&c.state, &TokenSerial::new(serial).unwrap()).await.unwrap();
    let from = t.state.name();
    let next = step(t);
    c.state.store().move_stock_token(&next, from, next.event("operator:alice", c.clock.now())).await.unwrap();
}

signet_testkit::backend_test!(renewal_proven_by_the_shipped_tokens_shipment_key, shipment_proof_run);

async fn shipment_proof_run(backend: &str) {
    let c = cmc_of(backend, "medium-token").await;
    let dir = c.dir.path();
    let account = c.account.clone();
    let mine = in_stock(&c.state, "RN-0001").await;
    let shelf = in_stock(&c.state, "RN-0002").await;
    let theirs = in_stock(&c.state, "RN-0003").await;
    let (other, _) = subscriber(&c.state, dir, sample_form("medium-token"), false).await;
    moved(&c, "RN-0001", |t| t.ship(account.clone()).unwrap()).await;
    moved(&c, "RN-0003", |t| t.ship(other.clone()).unwrap()).await;
    let record = c.state.store().account_certificates(&c.account).await.unwrap().remove(0);
    let current = signet_pki::to_pem("CERTIFICATE", &record.der);
    c.clock.advance(record.not_after - Duration::days(30) - c.clock.now());
    let (csr_der, proof) = request_and_proof(&c, "renewal");
    let rng = SystemRandom::new();
    let sign = |key: &EcdsaKeyPair, serial: &str, csr: &[u8]| {
        let message = renewal_message(&TokenSerial::new(serial).unwrap(), csr);
        b64(key.sign(&rng, &message).unwrap().as_ref())
    };
    let with = |serial: &str, signature: String| serde_json::json!({ "token_serial": serial, "shipment_signature": signature });
    let unproven = |status: StatusCode, problem: &serde_json::Value, detail: &str| {
        assert_eq!(
            (status, problem["type"].as_str()),
            (StatusCode::CONFLICT, Some("urn:signet:problem:hardware-key-unproven")),
            "{backend}: {problem}"
        );
        assert!(problem["detail"].as_str().unwrap().contains(detail), "{backend}: {problem}");
    };
    let before = issued(&c).await;

    // Shipped but not yet retrieved onto: the token has not certified anything to renew.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", sign(&mine, "RN-0001", &csr_der))).await;
    unproven(status, &problem, "token RN-0001 is shipped for application");
    moved(&c, "RN-0001", |t| {
        t.retrieved(Delivery { identity_serial: record.serial.to_hex(), encryption: None }).unwrap()
    })
    .await;

    // Another key's signature, or the shipment key's over another request.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", sign(&shelf, "RN-0001", &csr_der))).await;
    unproven(status, &problem, "the shipment key of token RN-0001 did not sign this renewal request");
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", sign(&mine, "RN-0001", b"another request")))
            .await;
    unproven(status, &problem, "did not sign this renewal request");
    // Tokens that are not this account's, each signing for itself: one still on the shelf, one
    // shipped to someone else.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0002", sign(&shelf, "RN-0002", &csr_der))).await;
    unproven(status, &problem, "token RN-0002 is not the token the RA shipped for this account");
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0003", sign(&theirs, "RN-0003", &csr_der))).await;
    unproven(status, &problem, "token RN-0003 is not the token the RA shipped for this account");
    // A signature that is not base64, and a serial that cannot be one.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", "not base64!".into())).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("urn:signet:problem:bad-shipment-signature"))
    );
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("x;y", sign(&mine, "RN-0001", &csr_der))).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("urn:signet:problem:bad-token-serial"))
    );
    assert_eq!(issued(&c).await, before, "{backend}: nothing issued by a refused proof");
    audit_intact(&c).await;

    // The shipped token's shipment key, over this request: renewed, still Medium Token.
    let (status, renewed) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", sign(&mine, "RN-0001", &csr_der))).await;
    assert_eq!(status, StatusCode::CREATED, "{backend}: {renewed}");
    assert_eq!(renewed["replaces"].as_str(), Some(c.serial.as_str()));
    std::fs::write(dir.join("renewed.pem"), renewed["certificate"].as_str().unwrap()).unwrap();
    verify_at_clock(
        &c,
        "renewed.pem",
        renewed["chain"].as_str().unwrap(),
        &["-policy", MEDIUM_TOKEN_OID, "-explicit_policy"],
    );
    assert_eq!(issued(&c).await, (before.0 + 1, before.1 + 1));
    // The same proof again: the certificate is replaced now.
    let (status, problem) =
        renewal_api_with(&c, &current, &csr_der, &proof, with("RN-0001", sign(&mine, "RN-0001", &csr_der))).await;
    assert_eq!((status, problem["type"].as_str()), (StatusCode::CONFLICT, Some("urn:signet:problem:already-renewed")));
    audit_intact(&c).await;
}

#[tokio::test]
async fn device_certificates_only_under_registered_domains() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    let device_csr = csr(c.dir.path(), "device");
    // Only the enterprise account's users manage devices; the RA adds the first.
    let p = b.get("/cmc/devices").await;
    assert!(p.body.contains("id=\"not-a-user\"") && !p.body.contains("action=\"/cmc/devices\""), "{}", p.body);
    let p = b
        .post("/cmc/devices", &[("names", "www.acme.example"), ("csr", &device_csr), ("code", &fresh(&c, &token))])
        .await;
    assert!(p.body.contains("Only users of your organization"), "{}", p.body);
    ra_adds_user(&c, &c.account).await;
    b.get("/cmc/devices").await;
    let p = b
        .post("/cmc/devices", &[("names", "www.acme.example"), ("csr", &device_csr), ("code", &fresh(&c, &token))])
        .await;
    assert!(p.body.contains("no registered domains"), "{}", p.body);
    let p = b.post("/cmc/acme-keys", &[("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("no registered domains") && !p.body.contains("Create ACME key"), "{}", p.body);
    let org = sample_form("medium-token").organization;
    let key = EabKey::generate(org, DomainScope::parse("acme.example").unwrap(), c.clock.now());
    c.state.store().create_eab_key(&key, key.created_event("cli:ra")).await.unwrap();
    let p = b
        .post("/cmc/devices", &[("names", "www.evilacme.example"), ("csr", &device_csr), ("code", &fresh(&c, &token))])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("not under a domain registered"), "{}", p.body);
    assert!(p.body.contains("www.evilacme.example"), "the names typed are kept: {}", p.body);
    let p = b
        .post(
            "/cmc/devices",
            &[("names", "www.acme.example api.acme.example"), ("csr", &device_csr), ("code", "12345678")],
        )
        .await;
    assert!(p.body.contains(STEP_UP_REFUSED), "step-up: {}", p.body);
    let p = b
        .post(
            "/cmc/devices",
            &[("names", "www.acme.example api.acme.example"), ("csr", &device_csr), ("code", &fresh(&c, &token))],
        )
        .await;
    let p = certificate_shown(&mut b, p, "created").await;
    assert!(p.body.contains("Your device certificate is created"), "{}", p.body);
    let pem = between(&p.body, "<textarea id=\"certificate\" rows=\"12\" readonly>", "</textarea>").to_owned();
    let dir = c.dir.path();
    std::fs::write(dir.join("device.pem"), &pem).unwrap();
    let checks = [
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "api.acme.example",
        "-policy",
        "2.16.840.1.101.3.2.1.12.9",
        "-explicit_policy",
    ];
    verify_at_clock(&c, "device.pem", &issuing_pem(&c), &checks);
    let subject = run("openssl", &["x509", "-in", dir.join("device.pem").to_str().unwrap(), "-noout", "-subject"]);
    assert!(subject.contains("Acme, Inc.") && subject.contains("www.acme.example"), "organization-scoped: {subject}");
    let home = b.get("/cmc").await;
    assert!(home.body.contains("Device"), "{}", home.body);

    // An ACME key for the organization's clients, created here with step-up, for the domains the
    // RA registered; its HMAC key is shown once and is the stored one.
    let p = b.get("/cmc/devices").await;
    assert!(p.body.contains("Create ACME key"), "{}", p.body);
    let p = b.post("/cmc/acme-keys", &[("code", "12345678")]).await;
    assert!(p.body.contains(STEP_UP_REFUSED), "step-up: {}", p.body);
    let p = b.post("/cmc/acme-keys", &[("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let kid = between(&p.body, "id=\"kid\" value=\"", "\"").to_owned();
    let hmac = between(&p.body, "id=\"hmac-key\" value=\"", "\"").to_owned();
    let stored = c.state.store().eab_key(&signet_ra::acme::EabKeyId::parse(&kid).unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.organization, sample_form("medium-token").organization);
    assert_eq!(stored.scope, DomainScope::parse("acme.example").unwrap());
    let signet_ra::acme::EabBinding::Unbound(secret) = &stored.binding else { panic!("a new key is unbound") };
    assert_eq!(secret.to_base64url(), hmac);
    let records = c.state.store().audit_records().await.unwrap();
    let created: Vec<&str> =
        records.iter().filter(|r| r.action == "acme-eab-key-created").map(|r| r.actor.as_str()).collect();
    assert_eq!(created, ["cli:ra".to_owned(), format!("subscriber:{}", c.account)]);
    audit_intact(&c).await;
}

#[tokio::test]
async fn recovery_questions_replace_a_lost_token() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    // Without questions, the recovery path refuses like a wrong password.
    let mut r = Browser::new(&c.app);
    r.get("/cmc/recover").await;
    let p = r.post("/cmc/recover", &[("reference", c.account.as_str()), ("password", PASSWORD)]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    // Setting them is a secure action.
    b.get("/cmc/recovery-questions").await;
    let answers = [("question_0", "0"), ("answer_0", "Lincoln Elementary"), ("question_1", "2"), ("answer_1", "Ford")];
    let p = b.post("/cmc/recovery-questions", &[&answers[..], &[("code", "00000000")]].concat()).await;
    assert!(p.body.contains(STEP_UP_REFUSED), "{}", p.body);
    let p = b
        .post(
            "/cmc/recovery-questions",
            &[
                ("question_0", "1"),
                ("answer_0", "Paris"),
                ("question_1", "1"),
                ("answer_1", "Rome"),
                ("code", &fresh(&c, &token)),
            ],
        )
        .await;
    assert!(p.body.contains("two different questions"), "{}", p.body);
    let code = fresh(&c, &token);
    let p = b.post("/cmc/recovery-questions", &[&answers[..], &[("code", code.as_str())]].concat()).await;
    assert!(p.body.contains("recovery questions are saved"), "{}", p.body);

    // The phone is lost: password, then the answers (case and spacing do not matter).
    let mut r = Browser::new(&c.app);
    r.get("/cmc/recover").await;
    let p = r.post("/cmc/recover", &[("reference", c.account.as_str()), ("password", "Not-The-Password-1")]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let p = r.post("/cmc/recover", &[("reference", c.account.as_str()), ("password", PASSWORD)]).await;
    assert!(p.body.contains("What was the make of your first car?"), "{}", p.body);
    let p = r.post("/cmc/recover/answers", &[("answer_0", "lincoln elementary"), ("answer_1", "Chevrolet")]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    let p = r.post("/cmc/recover/answers", &[("answer_0", "  LINCOLN   elementary "), ("answer_1", "ford")]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/soft-token"), "{}", p.body);
    // The old token no longer signs in; a new one is enrolled.
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &token)).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/soft-token"), "no active token: enroll again");
    let new = create_token(&c, &mut r, "SHA1", 6, &[]).await;
    let p = r.post("/cmc/soft-token/register", &[("registration_code", &new.code(c.clock.now()))]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc/recovery-questions"), "{}", p.body);
    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(actions(&records, "soft-token-recovered"), 1);
    assert_eq!(actions(&records, "recovery-questions-set"), 1);
    audit_intact(&c).await;
}

#[tokio::test]
async fn replacing_the_token_needs_the_current_one() {
    let c = cmc("sqlite").await;
    let (mut b, old) = enrolled(&c).await;
    b.get("/cmc/soft-token").await;
    let p = b.post("/cmc/soft-token", &[("algorithm", "SHA1"), ("digits", "6"), ("code", "00000000")]).await;
    assert!(p.body.contains(STEP_UP_REFUSED), "{}", p.body);
    let new = create_token(&c, &mut b, "SHA1", 6, &[("code", &fresh(&c, &old))]).await;
    // Until the new token registers, the old one still signs in.
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &old)).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"));
    let p = b.post("/cmc/soft-token/register", &[("registration_code", &new.code(c.clock.now()))]).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"), "{}", p.body);
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &old)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "the replaced token is gone");
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &new)).await;
    assert_eq!(p.location.as_deref(), Some("/cmc"));
}

#[tokio::test]
async fn users_add_vetted_colleagues_with_step_up() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    let p = b.get("/cmc/users").await;
    assert!(p.body.contains("No users yet") && !p.body.contains("Add a user"), "{}", p.body);

    // Colleagues: one vetted, one still in vetting, and a vetted subscriber of another company.
    let dir = c.dir.path();
    let (vetted, _) = subscriber(&c.state, dir, sample_form("medium-token"), true).await;
    let (unvetted, _) = subscriber(&c.state, dir, sample_form("medium-token"), false).await;
    let mut globex = sample_form("medium-token");
    globex.organization = signet_pki::subject::OrganizationName::new("Globex Corporation").unwrap();
    let (outsider, _) = subscriber(&c.state, dir, globex, true).await;

    // Not a user yet: cannot add anyone.
    let p = b.post("/cmc/users", &[("reference", vetted.as_str()), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("Only users of your organization"), "{}", p.body);

    ra_adds_user(&c, &c.account).await;
    let p = b.get("/cmc/users").await;
    assert!(p.body.contains(c.account.as_str()) && p.body.contains("cli:ra") && p.body.contains("Add a user"));
    for (reference, message) in [
        (unvetted.as_str(), "holds no valid ECA identity certificate yet"),
        (outsider.as_str(), "No subscriber of your organization has that application reference."),
        ("not-a-reference", "No subscriber of your organization has that application reference."),
        (c.account.as_str(), "already a user"),
    ] {
        let p = b.post("/cmc/users", &[("reference", reference), ("code", &fresh(&c, &token))]).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{reference}");
        assert!(p.body.contains(message), "{reference}: {}", p.body);
        assert!(p.body.contains(&format!("value=\"{reference}\"")), "the reference typed is kept");
    }
    let p = b.post("/cmc/users", &[("reference", vetted.as_str()), ("code", "12345678")]).await;
    assert!(p.body.contains(STEP_UP_REFUSED), "step-up: {}", p.body);
    let p = b.post("/cmc/users", &[("reference", vetted.as_str()), ("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains(&format!("{vetted} is now a user")), "{}", p.body);
    let organization = OrganizationKey::of(&sample_form("medium-token").organization);
    let users: Vec<ApplicationId> =
        c.state.store().enterprise_users(&organization).await.unwrap().into_iter().map(|u| u.account).collect();
    assert_eq!(users, [c.account.clone(), vetted.clone()]);
    let records = c.state.store().audit_records().await.unwrap();
    let added: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.action == "enterprise-user-added")
        .map(|r| (r.actor.as_str(), r.subject.as_str()))
        .collect();
    let me = format!("subscriber:{}", c.account);
    assert_eq!(added, [("cli:ra", c.account.as_str()), (me.as_str(), vetted.as_str())]);
    assert!(records.iter().any(|r| r.action == "step-up-confirmed" && r.details.contains("add-enterprise-user")));

    // A user whose identity certificate is revoked no longer manages devices.
    let p = b.get("/cmc/devices").await;
    assert!(!p.body.contains("id=\"not-a-user\""), "{}", p.body);
    let serial = signet_pki::Serial::from_hex(&c.serial).unwrap();
    c.state
        .authority
        .revoke(signet_authority::RevokeRequest {
            actor: "cli:ra".to_owned(),
            serial: serial.clone(),
            reason: signet_pki::RevocationReason::AffiliationChanged,
            notices: Vec::new(),
        })
        .await
        .unwrap();
    let p = b.get("/cmc/devices").await;
    assert!(p.body.contains("id=\"not-a-user\""), "{}", p.body);
    audit_intact(&c).await;
}

#[tokio::test]
async fn the_soft_token_page_explains_the_app_and_a_lost_phone() {
    let c = cmc("sqlite").await;
    let mut b = Browser::new(&c.app);
    sign_in(&mut b, &c.account, PASSWORD, "").await;
    let p = b.get("/cmc/soft-token").await;
    assert_eq!(p.status, StatusCode::OK);
    let explained = between(&p.body, "<section id=\"what-is-a-soft-token\">", "</section>");
    for said in [
        "authenticator app on your phone",
        "Google Authenticator",
        "Microsoft Authenticator",
        "FreeOTP",
        "1Password",
        "If you lose your phone",
        "answer your recovery questions",
    ] {
        assert!(explained.contains(said), "{said:?} not in {explained}");
    }
}

/// Issues a certificate of `profile` for `account`'s vetted subject as retrieval does, for a
/// new OpenSSL key named `name`; returns its serial.
pub(crate) async fn another(c: &Cmc, profile: &str, name: &str) -> String {
    let mut order = sample_form("medium-token").person_order(profile.to_owned());
    order.validity_years = 2;
    let req = csr(c.dir.path(), name);
    let actor = format!("applicant:{}", c.account);
    c.state.issue(&actor, &order, req.as_bytes()).await.unwrap().serial.to_hex()
}

async fn status_of(c: &Cmc, serial: &str) -> StoredStatus {
    c.state.store().certificate(&signet_pki::Serial::from_hex(serial).unwrap()).await.unwrap().unwrap().status
}

#[tokio::test]
async fn key_compromise_offers_to_revoke_the_other_certificates() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    let encryption = another(&c, "medium-token-encryption", "encryption").await;
    // A device certificate's key is on the organization's server, not the subscriber's token.
    let device_order = CertificateOrder {
        profile: "device-tls".into(),
        subject: Subject::Device {
            organization: sample_form("medium-token").organization,
            dns_names: vec![DnsName::new("www.acme.example").unwrap()],
        },
        validity_years: 1,
    };
    let req = csr(c.dir.path(), "device");
    let device = c
        .state
        .issue(&format!("subscriber:{}", c.account), &device_order, req.as_bytes())
        .await
        .unwrap()
        .serial
        .to_hex();

    b.get("/cmc").await;
    let p = b
        .post(&format!("/cmc/certificates/{}/revoke", c.serial), &[("reason", "1"), ("code", &fresh(&c, &token))])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let offer = between(&p.body, "<section class=\"warning\" id=\"compromise\">", "</section>").to_owned();
    assert!(offer.contains(&encryption) && offer.contains("Medium Token Assurance (encryption)"), "{offer}");
    assert!(!offer.contains(&device), "device certificates are not offered: {offer}");
    let others = format!("/cmc/certificates/{}/revoke-others", c.serial);
    assert!(offer.contains(&format!("action=\"{others}\"")), "{offer}");

    // Confirmed with a code like any revocation; a wrong one is refused beside the offer.
    let p = b.post(&others, &[("code", "00000000")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"compromise-error\"") && p.body.contains(STEP_UP_REFUSED), "{}", p.body);
    assert_eq!(status_of(&c, &encryption).await, StoredStatus::Good);

    let p = b.post(&others, &[("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains(&format!("Also revoked because the key was compromised: {encryption}.")), "{}", p.body);
    assert!(matches!(
        status_of(&c, &encryption).await,
        StoredStatus::Revoked { reason: signet_pki::RevocationReason::KeyCompromise, .. }
    ));
    assert_eq!(status_of(&c, &device).await, StoredStatus::Good);
    let mail = queued(&c, "certificate-revoked").await;
    assert_eq!(mail.len(), 2, "one mail per revocation: {mail:?}");
    assert!(mail[1].body_text.contains(&encryption) && mail[1].subject.contains("encryption"), "{:?}", mail[1]);

    // Only a certificate revoked for key compromise opens the offer.
    let p = b.post(&format!("/cmc/certificates/{device}/revoke-others"), &[("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let p =
        b.post(&format!("/cmc/certificates/{device}/revoke"), &[("reason", "5"), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("is revoked because it is no longer needed") && !p.body.contains("id=\"compromise\""));
    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(actions(&records, "certificate-revoked"), 3);
    audit_intact(&c).await;
}

#[tokio::test]
async fn expiry_reminders_at_60_30_and_7_days_lead_to_a_public_renewal_page() {
    let c = cmc("sqlite").await;
    // A second subscriber who has renewed already gets no reminder.
    let (renewed, _) = subscriber(&c.state, c.dir.path(), sample_form("medium"), true).await;
    c.clock.advance(Duration::days(200));
    let mut order = sample_form("medium").person_order("medium-identity".into());
    order.validity_years = 2;
    let req = csr(c.dir.path(), "replacement");
    c.state.issue(&format!("applicant:{renewed}"), &order, req.as_bytes()).await.unwrap();

    let sink = SmtpSink::start(free_port()).await;
    let mail = MailConfig {
        smtp: Some(format!("smtp://127.0.0.1:{}", sink.port())),
        from: Some("Signet RA <ra@example.test>".into()),
        ..Default::default()
    }
    .into_settings(c.dir.path(), |_| None)
    .unwrap();
    let runner = JobRunner::new(c.state.core(), Mailer::new(&mail).unwrap());
    let not_after = c.state.store().account_certificates(&c.account).await.unwrap()[0].not_after;
    for (days, due, mailed) in
        [(61, 0, 0), (60, 1, 1), (45, 1, 0), (30, 1, 1), (29, 1, 0), (7, 1, 1), (1, 1, 0), (0, 0, 0)]
    {
        c.clock.advance(not_after - Duration::days(days) - c.clock.now());
        let run = runner.run_once(Job::ExpiryReminders).await.unwrap();
        assert_eq!(run, Outcome::ExpiryReminders { reminders: due }, "{days} days before");
        assert_eq!(runner.run_once(Job::Outbox).await.unwrap(), Outcome::Outbox { sent: mailed, failed: 0 }, "{days}");
    }
    let sent = sink.messages();
    assert_eq!(sent.len(), 3, "one mail per threshold");
    let day = not_after.date();
    for days in [60, 30, 7] {
        let m =
            sent.iter().find(|m| m.body.contains(&format!("expires in {days} days, on {day}"))).expect("a reminder");
        assert_eq!(m.to, sample_form("medium-token").applicant.email.as_str());
        assert_eq!(m.subject, format!("Your ECA Medium Token Assurance (identity) certificate expires on {day}"));
        assert!(m.body.contains(&c.serial), "{}", m.body);
    }

    // The link works for a reader who is not signed in, and says how this type is renewed.
    let link = between(&sent[0].body, "https://ra.example.test", "\n").trim().to_owned();
    assert_eq!(link, "/cmc/renewal?profile=medium-token-identity");
    let mut anonymous = Browser::new(&c.app);
    let p = anonymous.get(&link).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains("Medium Token Assurance (identity)") && p.body.contains("signet token renew"),
        "{}",
        p.body
    );
    assert!(p.body.contains("href=\"/cmc/sign-in\"") || p.body.contains("href=\"/retrieve\""), "{}", p.body);
    let p = anonymous.get("/cmc/renewal?profile=medium-identity").await;
    assert!(p.body.contains("Renew") && p.body.contains("href=\"/cmc/sign-in\""), "{}", p.body);
    let p = anonymous.get("/cmc/renewal?profile=no-such-thing").await;
    assert_eq!(p.status, StatusCode::OK);
}

/// A passkey as registration stores it, for tests that manage passkeys without a browser (the
/// ceremonies themselves are the browser walk's, with Chromium's virtual authenticator).
async fn stored_passkey(c: &Cmc, id: u8, name: &str) -> Passkey {
    let owner = PasskeyOwner::Subscriber(c.account.clone());
    let passkey = Passkey {
        credential_id: vec![id; 16],
        owner: owner.clone(),
        user_handle: [3; 16],
        name: PasskeyName::new(name).unwrap(),
        aaguid: Aaguid::from_bytes([0xab; 16]),
        static_state: vec![0; 8],
        dynamic_state: [0; 7],
        created_at: c.clock.now(),
        last_used_at: None,
    };
    let event = AuditEvent::new(
        c.clock.now(),
        &owner.stored(),
        AuditAction::PasskeyRegistered,
        c.account.as_str(),
        serde_json::json!({}),
    );
    c.state.store().add_passkey(&passkey, event, None).await.unwrap();
    passkey
}

#[tokio::test]
async fn passkeys_are_renamed_and_removed_with_step_up_and_never_the_last_way_in() {
    let c = cmc("sqlite").await;
    let (mut b, token) = enrolled(&c).await;
    let p = b.get("/cmc/passkeys").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"no-passkeys\"") && !p.body.contains("Remove the soft token"), "{}", p.body);
    // Without a passkey, the soft token is the only way in and stays.
    let p = b.post("/cmc/passkeys/remove-soft-token", &[("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("You cannot remove your only way to sign in"), "{}", p.body);
    // A name that is not one, and a registration without the browser's answer, are refused
    // beside the form with the name kept.
    let p = b.post("/cmc/passkeys", &[("name", "  "), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("id=\"add-error\"") && p.body.contains("give the passkey a name"), "{}", p.body);
    let p = b.post("/cmc/passkeys", &[("name", "Work laptop"), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("needs JavaScript") && p.body.contains("value=\"Work laptop\""), "{}", p.body);

    let laptop = stored_passkey(&c, 1, "Work laptop").await;
    let phone = stored_passkey(&c, 2, "Phone").await;
    let rename = format!("/cmc/passkeys/{}/rename", laptop.id_text());
    b.get("/cmc/passkeys").await;
    let p = b.post(&rename, &[("name", "Home laptop"), ("code", "00000000")]).await;
    assert!(
        p.body.contains(STEP_UP_REFUSED) && p.body.contains(&format!("id=\"error-{}\"", laptop.id_text())),
        "{}",
        p.body
    );
    let p = b.post(&rename, &[("name", "Home laptop"), ("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("The passkey is now called “Home laptop”."), "{}", p.body);
    // Another account's passkey, or one that does not exist, is not found.
    let p = b.post("/cmc/passkeys/AAAAAAAAAAAAAAAAAAAAAA/remove", &[("code", &fresh(&c, &token))]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    let p = b.post(&format!("/cmc/passkeys/{}/remove", laptop.id_text()), &[("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("“Home laptop” is removed"), "{}", p.body);
    let p = b.post("/cmc/passkeys/remove-soft-token", &[("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains("The soft token is removed") && p.body.contains("id=\"no-soft-token\""), "{}", p.body);
    // Now the phone's passkey is the only way in: it stays, and codes no longer sign in.
    let p = b.post(&format!("/cmc/passkeys/{}/remove", phone.id_text()), &[("code", &fresh(&c, &token))]).await;
    assert!(p.body.contains(STEP_UP_REFUSED), "no soft token: a code confirms nothing: {}", p.body);
    let p = sign_in(&mut Browser::new(&c.app), &c.account, PASSWORD, &fresh(&c, &token)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    let owner = PasskeyOwner::Subscriber(c.account.clone());
    assert_eq!(c.state.store().passkeys(&owner).await.unwrap().len(), 1);

    // Each change is audited and mailed to the account, naming what changed.
    let mails: Vec<String> = queued(&c, "sign-in-changed").await.into_iter().map(|m| m.body_text).collect();
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(mails[0].contains("Your passkey “Work laptop” was renamed “Home laptop”."), "{}", mails[0]);
    assert!(mails[1].contains("“Home laptop” was removed"), "{}", mails[1]);
    assert!(mails[2].contains("soft token (authenticator app) was removed"), "{}", mails[2]);
    assert!(mails.iter().all(|m| m.contains("https://ra.example.test/cmc/recover")), "{mails:?}");
    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(
        (
            actions(&records, "passkey-renamed"),
            actions(&records, "passkey-removed"),
            actions(&records, "soft-token-removed")
        ),
        (1, 1, 1)
    );
    audit_intact(&c).await;
}
