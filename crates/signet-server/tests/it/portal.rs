//! The applicant portal over HTTP, through `app(state)` with a real SQLite store: the wizard
//! from a partner link to submission, email verification, the status page and forms, and bad
//! input on every step (readable message, values kept, nothing stored).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use signet_authority::ServerConfig;
use signet_ra::FakeClock;
use signet_server::{app, build_state};
use sqlx::Row;
use time::Duration;
use time::macros::datetime;

use crate::browser::Browser;

struct Portal {
    app: Router,
    settings: signet_authority::Settings,
    state: signet_server::AppState,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

async fn portal() -> Portal {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let settings = config.into_settings().unwrap();
    let clock = Arc::new(FakeClock::at(datetime!(2026-11-02 14:00 UTC)));
    let state = build_state(&settings, "https://ra.example.test", clock.clone()).await.unwrap();
    Portal { app: app(state.clone()), settings, state, clock, _dir: dir }
}

const PERSONAL: &[(&str, &str)] = &[
    ("name", "Jane Q. Doe"),
    ("email", "jane.doe@acme.example"),
    ("phone", "(206) 555-0142"),
    ("line1", "1 Main St"),
    ("line2", "Suite 200"),
    ("city", "Seattle"),
    ("state", "WA"),
    ("zip", "98101"),
];
const PASSWORD: &str = "correct horse battery 9";

/// Walks the wizard from the partner link to submission; returns the application reference.
async fn apply(b: &mut Browser, organization: &str) -> String {
    let p = b.get("/apply?program=Integrate").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("value=\"Integrate\" selected"), "partner link pre-fills the program");
    let p = b.post("/apply", &[("program", "Integrate"), ("residency", "united-states")]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/agencies"));

    let p = b.get("/apply/agencies").await;
    assert!(p.body.contains("value=\"integrate-il4\" checked"), "the program pre-selects its agencies");
    let p = b.post_raw("/apply/agencies", agencies_body(b, &["canes", "integrate-il4", "jpas"])).await;
    assert_eq!(p.location.as_deref(), Some("/apply/certificate"), "{}", p.body);

    let p = b.get("/apply/certificate").await;
    assert!(p.body.contains("you can use Medium Token Assurance"), "{}", p.body);
    assert!(p.body.contains("JPAS requires the private key on a hardware token"), "the reason is shown");
    assert!(p.body.contains("$279.00"), "prices are shown");
    assert!(!p.body.contains("value=\"medium\""), "Medium is not offered to JPAS users");
    let p = b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "2")]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/organization"));

    b.get("/apply/organization").await;
    let p = b.post("/apply/organization", &[("new_name", organization)]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/personal"), "{}", p.body);

    b.get("/apply/personal").await;
    let p = b.post("/apply/personal", PERSONAL).await;
    assert_eq!(p.location.as_deref(), Some("/apply/account"), "{}", p.body);

    b.get("/apply/account").await;
    let p = b.post("/apply/account", &[("password", PASSWORD), ("confirm", PASSWORD)]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/payment"), "{}", p.body);

    let p = b.get("/apply/payment").await;
    assert!(p.body.contains("$279.00"));
    let p = b.post("/apply/payment", &[("method", "purchase-order"), ("po", "PO-2026/0042")]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/review"));

    let p = b.get("/apply/review").await;
    assert!(p.body.contains("Medium Token Assurance, 2 year(s), $279.00"), "{}", p.body);
    assert!(p.body.contains("Invoice against purchase order PO-2026/0042"), "the PO number is shown: {}", p.body);
    let p = b.post("/apply/review", &[("agree", "yes")]).await;
    let location = p.location.expect("submission redirects to the status page");
    location.trim_start_matches("/applications/").trim_end_matches("?submitted=1").to_owned()
}

fn agencies_body(b: &Browser, agencies: &[&str]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("_csrf", b.csrf.as_deref().unwrap());
    for a in agencies {
        form.append_pair("agency", a);
    }
    form.finish()
}

/// What an RA operator does on the console's organizations page, done through the store.
async fn confirm_organization(state: &signet_server::AppState, name: &str) {
    use signet_pki::subject::OrganizationName;
    use signet_ra::application::OrganizationKey;
    let key = OrganizationKey::of(&OrganizationName::new(name).unwrap());
    let pending = state.store().registered_organization(&key).await.unwrap().expect("registered at submission");
    let decision = pending.confirm("operator:test", state.clock().now()).unwrap();
    state.store().save_organization_decision(&decision).await.unwrap();
}

async fn verification_link(state: &signet_server::AppState) -> String {
    let pending = state.store().pending_outbox(state.clock().now(), 10).await.unwrap();
    let mail = pending
        .iter()
        .find(|m| m.message.subject.contains("Verify your email"))
        .expect("a verification email is queued");
    let body = &mail.message.body_text;
    let start = body.find("https://ra.example.test/verify-email?").unwrap();
    body[start..].split_whitespace().next().unwrap().trim_start_matches("https://ra.example.test").to_owned()
}

#[tokio::test]
async fn the_whole_wizard_then_email_verification_status_and_forms() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    let id = apply(&mut b, "Acme, Inc.").await;

    let status = b.get(&format!("/applications/{id}?submitted=1")).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(status.body.contains("Your application is submitted"));
    assert!(status.body.contains("Status: <strong id=\"state\">Submitted</strong>"));
    assert!(status.body.contains("Your forms must arrive by 2026-12-16 (44 days left)"), "{}", status.body);

    // The emailed link opens a confirmation page; the POST verifies.
    let link = verification_link(&p.state).await;
    let mut mail_reader = Browser::new(&p.app);
    let page = mail_reader.get(&link).await;
    assert!(page.body.contains("Confirm my email address"));
    let done = mail_reader
        .post("/verify-email", &[("application", &id), ("token", link.split("token=").nth(1).unwrap())])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Your email address is confirmed"));
    // A second use of the link is refused with a readable message.
    let again = mail_reader
        .post("/verify-email", &[("application", &id), ("token", link.split("token=").nth(1).unwrap())])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("This link is not valid any more"));

    let status = b.get(&format!("/applications/{id}")).await;
    assert!(status.body.contains("Email confirmed"));
    let pdf = b.get(&format!("/applications/{id}/forms/identity-verification.pdf")).await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.body.starts_with("%PDF-"));

    // The mail reader's session is not signed in: it gets the sign-in form, not the status,
    // and no PDF.
    let other = mail_reader.get(&format!("/applications/{id}")).await;
    assert!(other.body.contains("Sign in to your application") && !other.body.contains("Jane Q. Doe"));
    let denied = mail_reader.get(&format!("/applications/{id}/forms/identity-verification.pdf")).await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);

    // Sign-in: one message for a wrong password and for an unknown reference.
    let wrong = mail_reader.post("/applications/sign-in", &[("reference", &id), ("password", "nope")]).await;
    let unknown =
        mail_reader.post("/applications/sign-in", &[("reference", "ZZZZ-ZZZZ"), ("password", PASSWORD)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let message = "The application reference or password is not correct.";
    assert!(wrong.body.contains(message) && unknown.body.contains(message));
    let ok = mail_reader.post("/applications/sign-in", &[("reference", &id), ("password", PASSWORD)]).await;
    assert_eq!(ok.location, Some(format!("/applications/{id}")));
    assert!(mail_reader.get(&format!("/applications/{id}")).await.body.contains("Email confirmed"));

    // Every change is in the audit chain: organization, submission, verification.
    let actions: Vec<String> = p.state.store().audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    assert!(actions.contains(&"organization-created".to_owned()), "{actions:?}");
    assert!(actions.contains(&"application-submitted".to_owned()), "{actions:?}");
    assert!(actions.contains(&"email-verified".to_owned()), "{actions:?}");
}

#[tokio::test]
async fn bad_input_keeps_what_was_typed_and_stores_nothing() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);

    // Skipping ahead sends the visitor to the first unfinished step.
    let skip = b.get("/apply/payment").await;
    assert_eq!(skip.location.as_deref(), Some("/apply"));

    // A form posted without the session's CSRF token is refused, readably.
    let forged = b.post_raw("/apply", "program=Integrate&residency=abroad".into()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("This form has expired"));

    // An unknown partner program is explained and the list offered.
    let unknown = b.get("/apply?program=Nope").await;
    assert!(unknown.body.contains("Choose your program from the list"), "{}", unknown.body);
    let missing = b.post("/apply", &[("program", ""), ("residency", "")]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.body.contains("Choose the federal program") && missing.body.contains("live in the United States"));
    b.post("/apply", &[("program", "PIEE"), ("residency", "united-states")]).await;

    // No agency accepts every type: the wizard says so and keeps the choices.
    b.get("/apply/agencies").await;
    let conflict = b.post_raw("/apply/agencies", agencies_body(&b, &["canes", "nope", "piee"])).await;
    assert_eq!(conflict.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(conflict.body.contains("Choose agencies from the list only."), "{}", conflict.body);
    let none = b.post_raw("/apply/agencies", agencies_body(&b, &["canes", "integrate-il4", "jpas", "piee"])).await;
    assert_eq!(none.location.as_deref(), Some("/apply/certificate"), "CANES ∩ IL4 ∩ JPAS = Medium Token");
    b.get("/apply/certificate").await;
    let wrong_type = b.post("/apply/certificate", &[("cert_type", "medium"), ("years", "2")]).await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong_type.body.contains("Choose one of the certificate types your agencies accept"));
    let bad_years = b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "5")]).await;
    assert_eq!(bad_years.status, StatusCode::UNPROCESSABLE_ENTITY);
    b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "1")]).await;

    // Duplicate organization: "ACME Inc" folds to the registered "Acme, Inc.", which is offered
    // once the RA has confirmed it.
    let mut colleague = Browser::new(&p.app);
    apply(&mut colleague, "Acme, Inc.").await;
    confirm_organization(&p.state, "Acme, Inc.").await;
    b.get("/apply/organization").await;
    let dup = b.post("/apply/organization", &[("new_name", "ACME Inc")]).await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(dup.body.contains("Acme, Inc. is already registered"), "{}", dup.body);
    assert!(dup.body.contains("value=\"ACME Inc\""), "what was typed is kept");
    let found = b.get("/apply/organization?q=acme").await;
    assert!(found.body.contains("value=\"Acme, Inc.\""), "the next applicant finds it by search");
    let chosen = b.post("/apply/organization", &[("choose", "Acme, Inc.")]).await;
    assert_eq!(chosen.location.as_deref(), Some("/apply/personal"));

    // Personal details: every wrong field named, every value kept.
    b.get("/apply/personal").await;
    let bad = b
        .post(
            "/apply/personal",
            &[
                ("name", ""),
                ("email", "jane.doe-at-acme"),
                ("phone", "12"),
                ("line1", "1 Main St"),
                ("city", "Seattle"),
                ("state", "XX"),
                ("zip", "9810"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for expected in [
        "Enter your full name as it appears on your identity documents.",
        "Enter an email address such as jane@example.com.",
        "Enter a 10-digit U.S. phone number such as (206) 555-0142",
        "Choose your state, territory or military address (AA, AE, AP) from the list.",
        "A ZIP code is 5 digits",
        "value=\"jane.doe-at-acme\"",
        "value=\"1 Main St\"",
        "value=\"9810\"",
        "Nothing you entered was lost",
    ] {
        assert!(bad.body.contains(expected), "missing {expected:?} in {}", bad.body);
    }
    b.post("/apply/personal", PERSONAL).await;

    // Weak and mismatched passwords; the password is never echoed.
    b.get("/apply/account").await;
    let weak = b.post("/apply/account", &[("password", "janedoe"), ("confirm", "janedoe")]).await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.body.contains("Choose a stronger password") && !weak.body.contains("value=\"janedoe\""));
    let differ = b.post("/apply/account", &[("password", PASSWORD), ("confirm", "something else 12")]).await;
    assert!(differ.body.contains("The two passwords differ"));
    b.post("/apply/account", &[("password", PASSWORD), ("confirm", PASSWORD)]).await;

    // The declining test card and a bad PO number.
    b.get("/apply/payment").await;
    let declined = b.post("/apply/payment", &[("method", "card"), ("card", "4000000000000002")]).await;
    assert!(declined.body.contains("The card was declined"), "{}", declined.body);
    assert!(!declined.body.contains("4000000000000002"), "the card number is never echoed");
    let no_method = b.post("/apply/payment", &[]).await;
    assert!(no_method.body.contains("Choose how to pay"));

    // Nothing of this applicant is stored: one application (the colleague's), one organization.
    let count = |table: &'static str| {
        let pool = p.state.store().pool().clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    assert_eq!(count("applications").await, 1);
    assert_eq!(count("organizations").await, 1);
}

#[tokio::test]
async fn an_expired_link_is_explained() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    let id = apply(&mut b, "Initech LLC").await;
    let link = verification_link(&p.state).await;
    // The application is open 45 days; the link is used on day 47.
    p.clock.advance(Duration::days(46));
    let mut reader = Browser::new(&p.app);
    reader.get(&link).await;
    let late =
        reader.post("/verify-email", &[("application", &id), ("token", link.split("token=").nth(1).unwrap())]).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.body.contains("the application has expired"), "{}", late.body);
    let damaged = reader.post("/verify-email", &[("application", &id), ("token", "x")]).await;
    assert!(damaged.body.contains("This link is damaged"));
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_reference_for_a_while() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    let id = apply(&mut b, "Globex Corporation").await;
    let mut guesser = Browser::new(&p.app);
    guesser.get("/").await;
    for _ in 0..4 {
        let wrong = guesser.post("/applications/sign-in", &[("reference", &id), ("password", "guess guess 123")]).await;
        assert!(wrong.body.contains("The application reference or password is not correct."));
    }
    let fifth = guesser.post("/applications/sign-in", &[("reference", &id), ("password", "guess guess 123")]).await;
    assert!(fifth.body.contains("Too many failed attempts"), "{}", fifth.body);
    // Locked: even the right password is refused until the lock runs out.
    let right = guesser.post("/applications/sign-in", &[("reference", &id), ("password", PASSWORD)]).await;
    assert!(right.body.contains("Too many failed attempts"), "{}", right.body);
    assert_ne!(right.location, Some(format!("/applications/{id}")), "not signed in");
    // A made-up reference locks the same way, so a lock reveals nothing.
    for _ in 0..5 {
        guesser.post("/applications/sign-in", &[("reference", "NOPE-NOPE"), ("password", "x")]).await;
    }
    let made_up = guesser.post("/applications/sign-in", &[("reference", "NOPE-NOPE"), ("password", "x")]).await;
    assert!(made_up.body.contains("Too many failed attempts"));
    p.clock.advance(Duration::minutes(2));
    let later = guesser.post("/applications/sign-in", &[("reference", &id), ("password", PASSWORD)]).await;
    assert_eq!(later.location, Some(format!("/applications/{id}")), "{}", later.body);
}

#[tokio::test]
async fn the_applicant_sees_until_when_retrieval_is_paused_and_allows_it_again() {
    use signet_ra::Clock;
    use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
    let p = portal().await;
    let mut owner = Browser::new(&p.app);
    let id = apply(&mut owner, "Umbrella Corp").await;
    let store = p.state.store();
    let scope = AttemptScope::ActivationCode;
    for _ in 0..5 {
        store.record_failure(scope, &id, &scope.default_policy(), p.clock.now()).await.unwrap();
    }
    let page = format!("/applications/{id}/retrieval");

    // Nobody but the signed-in applicant sees the page or lifts the pause.
    let mut stranger = Browser::new(&p.app);
    let away = stranger.get(&page).await;
    assert_eq!(away.location, Some(format!("/applications/{id}")), "the status page asks for the password");
    let mut other = Browser::new(&p.app);
    let theirs = apply(&mut other, "Soylent Corp").await;
    other.get(&format!("/applications/{theirs}")).await;
    let refused = other.post(&page, &[]).await;
    assert_eq!(refused.location, Some(format!("/applications/{id}")));
    let forged = stranger.post_raw(&page, String::new()).await;
    assert!(forged.status.is_client_error(), "no post without the page's form token");
    assert!(matches!(store.check(scope, &id, p.clock.now()).await.unwrap(), LockState::Locked(_)));

    // The status page of an application not yet ready has nothing to retrieve, so no link.
    let status = owner.get(&format!("/applications/{id}")).await;
    assert!(!status.body.contains("retrieval-help"), "{}", status.body);
    let paused = owner.get(&page).await;
    assert_eq!(paused.status, StatusCode::OK);
    assert!(
        paused.body.contains("Retrieval is paused until <strong id=\"paused-until\">2026-11-02 14:15:00 UTC</strong>")
    );
    assert!(paused.body.contains("entered a wrong activation code or password too many times"), "{}", paused.body);
    let allowed = owner.post(&page, &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert!(allowed.body.contains("id=\"retrieval-cleared\""), "{}", allowed.body);
    assert_eq!(store.check(scope, &id, p.clock.now()).await.unwrap(), LockState::Open);
    let records = store.audit_records().await.unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str(), last.subject.clone()),
        ("lockout-cleared", format!("applicant:{id}").as_str(), format!("activation-code:{id}"))
    );
    // Nothing left to allow: the page says so and records nothing.
    let again = owner.post(&page, &[]).await;
    assert!(again.body.contains("id=\"retrieval-open\""), "{}", again.body);
    assert_eq!(store.audit_records().await.unwrap().len(), records.len());
}

#[tokio::test]
async fn lapsed_sessions_are_purged_by_their_job() {
    use signet_authority::jobs::{Job, JobRunner, Outcome};
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    b.get("/apply?program=Integrate").await;
    b.post("/apply", &[("program", "Integrate"), ("residency", "united-states")]).await;
    let runner = JobRunner::new(p.state.core(), signet_authority::mail::Mailer::new(&p.settings.mail).unwrap());
    assert_eq!(runner.run_once(Job::Sessions).await.unwrap(), Outcome::Sessions { purged: 0 }, "a live draft stays");
    // An unfinished application's session lasts a day.
    p.clock.advance(Duration::hours(25));
    assert_eq!(runner.run_once(Job::Sessions).await.unwrap(), Outcome::Sessions { purged: 1 });
    let again = b.get("/apply/agencies").await;
    assert_eq!(again.location.as_deref(), Some("/apply"), "the lapsed draft is gone");
}

/// Reload and Back after a refused form: the refusal comes by Post/Redirect/Get, is shown once,
/// and is kept sealed; an address that only takes posts sends a GET to the page of its form.
#[tokio::test]
async fn refused_forms_come_by_redirect_and_reload_shows_the_form_again() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    b.get("/apply?program=Integrate").await;
    let body = format!("_csrf={}&program=Integrate&residency=mars-rover-7", b.csrf.clone().unwrap());
    let post = Request::post("/apply")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, b.cookie.clone().unwrap())
        .body(Body::from(body))
        .unwrap();
    let posted = b.send(post).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    assert_eq!(posted.location.as_deref(), Some("/apply"));

    // The kept page is sealed at rest: what was typed is not in the database in clear.
    let kept: Vec<String> = sqlx::query("SELECT flash FROM web_sessions WHERE flash IS NOT NULL")
        .fetch_all(p.state.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].starts_with("sealed:v1:") && !kept[0].contains("mars-rover-7"), "{}", kept[0]);

    let shown = b.get("/apply").await;
    assert_eq!(shown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(shown.body.contains("Say whether you live in the United States."), "{}", shown.body);
    let reloaded = b.get("/apply").await;
    assert_eq!(reloaded.status, StatusCode::OK, "shown once: a reload asks the page afresh");
    assert!(!reloaded.body.contains("Say whether you live in the United States."));
    assert!(reloaded.body.contains("name=\"residency\""), "the form again");

    // Back to (or reload of) an address that only takes posts: its form's page, never a 405.
    for (address, page) in [
        ("/applications/sign-in", "/"),
        ("/sign-out", "/"),
        ("/console/applications/ABCD-EFGH/approve", "/console/applications/ABCD-EFGH"),
        ("/console/tokens/1234/lost", "/console/tokens"),
        ("/cmc/certificates/01AB/revoke", "/cmc"),
        ("/cmc/soft-token/register", "/cmc/soft-token"),
    ] {
        let back = b.get(address).await;
        assert_eq!((back.status, back.location.as_deref()), (StatusCode::SEE_OTHER, Some(page)), "{address}");
    }

    // An error page (here an expired form token) holds no form: it is sent as it is.
    let stale = b.post_raw("/apply", "_csrf=stale&residency=united-states".into()).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
}

/// The status page says where to mail the forms and whom to ask; the applicant records the
/// carrier and tracking number (refused with a plain message beside the field when it cannot be
/// one); an operator's deficiency finding shows as what to re-send, and the form comes back.
#[tokio::test]
async fn the_applicant_records_the_tracking_number_and_sees_what_to_re_send() {
    use signet_ra::Clock;
    use signet_ra::application::{Actor, ApplicationId, ApplicationStore, OperatorId};
    use signet_ra::forms_mail::{Deficiency, FormProblem};
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    let id = apply(&mut b, "Initech").await;
    let status = format!("/applications/{id}");
    let mailing = format!("{status}/mailing");

    let page = b.get(&status).await;
    assert!(page.body.contains(&format!("saved as {id}-identity-verification.pdf")), "{}", page.body);
    assert!(page.body.contains("Where to mail your forms"), "{}", page.body);
    assert!(
        page.body.contains("Attn: ECA Forms<br>100 Example Way, Suite 300<br>Arlington, VA 22201"),
        "{}",
        page.body
    );
    assert!(page.body.contains("support@ra.example") && page.body.contains("(703) 555-0100"), "{}", page.body);
    assert!(page.body.contains("id=\"mailing-form\""));

    let before = p.state.store().audit_records().await.unwrap().len();
    let empty = b.post(&mailing, &[("carrier", ""), ("tracking", "")]).await;
    assert_eq!((empty.status, empty.location.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some(mailing.as_str())));
    assert!(empty.body.contains("Choose the company you mailed the forms with."), "{}", empty.body);
    assert!(empty.body.contains("Enter the tracking number from your mailing receipt."), "{}", empty.body);
    let wrong = b.post(&mailing, &[("carrier", "ups"), ("tracking", "12345")]).await;
    assert!(
        wrong.body.contains(
            "This does not look like a UPS tracking number. A UPS tracking number has 18 letters and \
                             digits and starts with 1Z."
        ),
        "{}",
        wrong.body
    );
    assert!(wrong.body.contains("value=\"12345\" aria-describedby=\"tracking-error\""), "typed value kept");
    assert!(wrong.body.contains("<option value=\"ups\" selected>"), "carrier kept");
    let long = "1".repeat(200);
    let long = b.post(&mailing, &[("carrier", "other"), ("tracking", &long)]).await;
    assert!(long.body.contains("A tracking number is at most 60 characters."), "{}", long.body);
    assert_eq!(p.state.store().audit_records().await.unwrap().len(), before, "nothing recorded");

    let saved = b.post(&mailing, &[("carrier", "ups"), ("tracking", "1z999aa1 0123456784")]).await;
    assert_eq!((saved.status, saved.location.clone()), (StatusCode::SEE_OTHER, Some(format!("{status}?mailed=1"))));
    let page = b.get(&format!("{status}?mailed=1")).await;
    assert!(page.body.contains("We noted the tracking number"), "{}", page.body);
    assert!(page.body.contains("you mailed your forms with UPS, tracking number 1Z999AA10123456784."), "{}", page.body);
    let records = p.state.store().audit_records().await.unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str(), last.subject.as_str()),
        ("forms-mailed", "applicant", id.as_str())
    );

    // Another applicant cannot record a mailing on this application.
    let mut other = Browser::new(&p.app);
    other.get("/").await;
    let refused = other.post(&mailing, &[("carrier", "ups"), ("tracking", "1Z999AA10123456784")]).await;
    assert_eq!(refused.location.as_deref(), Some(status.as_str()));
    assert_eq!(p.state.store().audit_records().await.unwrap().len(), records.len());

    // An operator finds the notary seal missing: the page says what to re-send.
    let reference = ApplicationId::new(&id).unwrap();
    let app = p.state.store().load(&reference).await.unwrap().unwrap();
    let finding = Deficiency::new(&[FormProblem::NotarySealMissing], "", p.clock.now()).unwrap();
    let by = Actor::Operator(OperatorId::new("alice").unwrap());
    p.state.store().audit_with_notices(&finding.event(app.id(), &by), &[]).await.unwrap();
    let page = b.get(&status).await;
    assert!(page.body.contains("We need you to re-send some forms"), "{}", page.body);
    assert!(page.body.contains("official seal is not on the Identity Verification form"), "{}", page.body);
    assert!(page.body.contains("id=\"mailing-form\""), "the new tracking number can be recorded");
    b.post(&mailing, &[("carrier", "usps"), ("tracking", "9400 1000 0000 0000 0000 00")]).await;
    let page = b.get(&status).await;
    assert!(!page.body.contains("We need you to re-send some forms"), "answered by the new mailing");
    assert!(page.body.contains("with USPS, tracking number 9400100000000000000000."), "{}", page.body);
}

/// Walks a new wizard through program, agencies and certificate to the organization page.
async fn to_organization_step(b: &mut Browser) {
    b.get("/apply?program=Integrate").await;
    b.post("/apply", &[("program", "Integrate"), ("residency", "united-states")]).await;
    b.get("/apply/agencies").await;
    b.post_raw("/apply/agencies", agencies_body(b, &["canes", "integrate-il4", "jpas"])).await;
    b.get("/apply/certificate").await;
    b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "2")]).await;
    b.get("/apply/organization").await;
}

/// Organization names that would show one thing and be another are refused with the
/// character named; a name typed decomposed (e + U+0301) is stored, and found, composed.
#[tokio::test]
async fn organization_names_are_visible_and_stored_nfc() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    to_organization_step(&mut b).await;

    let lie = b.post("/apply/organization", &[("new_name", "\u{202e}evil\u{1F600}")]).await;
    assert_eq!(lie.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(lie.body.contains("This contains a bidirectional control (U+202E)"), "{}", lie.body);

    let chosen = b.post("/apply/organization", &[("new_name", "Cafe\u{301} Ltd")]).await;
    assert_eq!(chosen.location.as_deref(), Some("/apply/personal"), "{}", chosen.body);
    let back = b.get("/apply/organization").await;
    assert!(back.body.contains("Chosen: <strong>Caf\u{e9} Ltd</strong>"), "kept composed: {}", back.body);
    assert!(!back.body.contains("Cafe\u{301}"), "never kept decomposed");
    // Posting the page back as shown keeps the draft's own new organization.
    let again = b.post("/apply/organization", &[("choose", "Caf\u{e9} Ltd")]).await;
    assert_eq!(again.location.as_deref(), Some("/apply/personal"), "{}", again.body);

    // Until the application is submitted, nobody else is offered the name it typed.
    let mut other = Browser::new(&p.app);
    to_organization_step(&mut other).await;
    let search = other.get("/apply/organization?q=caf").await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(!search.body.contains("Caf\u{e9} Ltd"), "an unfinished draft's organization is private: {}", search.body);
    let pool = p.state.store().pool().clone();
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM organizations").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(rows, 0);
}

/// The retrieval guide the "certificates ready" mail links to: the commands with this server
/// and the reference filled in, each system's driver paths, and the client for download.
#[tokio::test]
async fn the_retrieval_guide_fills_in_the_commands_for_each_system() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    let linux = b.get("/retrieve?application=7K2M9Q4T8V1W").await;
    assert_eq!(linux.status, StatusCode::OK);
    for expected in [
        "signet token retrieve --server https://ra.example.test --module \"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\" \
         --application 7K2M9Q4T8V1W",
        "signet token readiness --module",
        "/usr/lib/libeTPkcs11.so",
        "libykcs11.so",
        "href=\"/retrieve?application=7K2M9Q4T8V1W&amp;os=windows\"",
        "href=\"/applications/7K2M9Q4T8V1W/retrieval\"",
        "href=\"/password-reset\"",
        "This server does not offer the client",
    ] {
        assert!(linux.body.contains(expected), "missing {expected:?} in {}", linux.body);
    }
    let windows = b.get("/retrieve?application=7K2M9Q4T8V1W&os=windows").await;
    assert!(windows.body.contains("signet.exe token retrieve --server https://ra.example.test"), "{}", windows.body);
    assert!(windows.body.contains(r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll"));
    let mac = b.get("/retrieve?os=macos").await;
    assert!(mac.body.contains("/Library/OpenSC/lib/opensc-pkcs11.so"));
    assert!(mac.body.contains("--application &#60;your application reference&#62;"), "a placeholder: {}", mac.body);
    assert_eq!(b.get("/retrieve/signet").await.status, StatusCode::NOT_FOUND, "no client configured");

    // With a client to offer, Linux visitors get the download, streamed as the file is.
    let client = p._dir.path().join("signet-client");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&client, &bytes).unwrap();
    let settings = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(p._dir.path().join("other")),
        client_download: Some(client),
        ..Default::default()
    }
    .into_settings()
    .unwrap();
    let state = build_state(&settings, "https://ra.example.test", p.clock.clone()).await.unwrap();
    let offering = app(state);
    let mut b = Browser::new(&offering);
    let page = b.get("/retrieve?os=linux").await;
    if cfg!(target_os = "linux") {
        assert!(page.body.contains("href=\"/retrieve/signet\""), "{}", page.body);
    }
    let request = axum::http::Request::get("/retrieve/signet").body(axum::body::Body::empty()).unwrap();
    let answer = tower::ServiceExt::oneshot(offering, request).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-length"], "200000");
    let got = axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
}

/// A partner link's program keeps its agency: unticking it alone is refused with the reason,
/// and only "I will not use Integrate" lets it go; then a type Integrate does not accept is
/// explained, and sold only with its own box ticked.
#[tokio::test]
async fn the_partner_link_holds_unless_the_applicant_says_otherwise() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    b.get("/apply?program=Integrate").await;
    b.post("/apply", &[("program", "Integrate"), ("residency", "united-states")]).await;
    let page = b.get("/apply/agencies").await;
    assert!(page.body.contains("You came from the Integrate link"), "{}", page.body);
    assert!(page.body.contains("I will not use Integrate"), "{}", page.body);

    let dropped = b.post_raw("/apply/agencies", agencies_body(&b, &["canes"])).await;
    assert_eq!(dropped.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(dropped.body.contains("Integrate users need Integrate IL4 (Platform One)"), "{}", dropped.body);
    assert!(dropped.body.contains("aria-describedby=\"drop_program-hint drop_program-error\""), "{}", dropped.body);
    assert!(dropped.body.contains("value=\"canes\" checked"), "the choice is kept");
    assert_eq!(b.get("/apply/certificate").await.location.as_deref(), Some("/apply/agencies"), "not past it");

    let said = format!("{}&drop_program=yes", agencies_body(&b, &["canes"]));
    let ok = b.post_raw("/apply/agencies", said).await;
    assert_eq!(ok.location.as_deref(), Some("/apply/certificate"), "{}", ok.body);
    let cert = b.get("/apply/certificate").await;
    assert!(cert.body.contains("Integrate does not accept every type offered here"), "{}", cert.body);
    assert!(cert.body.contains("IL4 systems require the private key on a hardware token"), "{}", cert.body);

    // Nothing chosen: type and validity are flagged together.
    let empty = b.post("/apply/certificate", &[]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("Choose a certificate type.") && empty.body.contains("1, 2 or 3"), "{}", empty.body);
    let unticked = b.post("/apply/certificate", &[("cert_type", "medium"), ("years", "1")]).await;
    assert_eq!(unticked.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unticked.body.contains("tick the box to say you will not use this certificate"), "{}", unticked.body);
    let token = b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "1")]).await;
    assert_eq!(token.location.as_deref(), Some("/apply/organization"), "a type Integrate accepts needs no box");
    b.get("/apply/certificate").await;
    let medium =
        b.post("/apply/certificate", &[("cert_type", "medium"), ("years", "1"), ("outside_program", "yes")]).await;
    assert_eq!(medium.location.as_deref(), Some("/apply/organization"), "{}", medium.body);
    assert!(b.get("/apply/certificate").await.body.contains("name=\"outside_program\" value=\"yes\" checked"));

    // Ticking Integrate IL4 again makes Medium unavailable: the type is chosen again.
    b.get("/apply/agencies").await;
    b.post_raw("/apply/agencies", agencies_body(&b, &["canes", "integrate-il4"])).await;
    assert_eq!(b.get("/apply/organization").await.location.as_deref(), Some("/apply/certificate"));
}

/// The details step: limits and formats said before typing, a list of states (and a name
/// typed for one accepted), every wrong field flagged at once in plain words, each tied to its
/// field; the review shows what was entered.
#[tokio::test]
async fn the_details_step_forgives_and_the_review_shows_everything() {
    let p = portal().await;
    let mut b = Browser::new(&p.app);
    to_organization_step(&mut b).await;
    let org = b.post("/apply/organization", &[("new_name", "Initech LLC")]).await;
    assert_eq!(org.location.as_deref(), Some("/apply/personal"));
    let page = b.get("/apply/personal").await;
    for expected in [
        "<select id=\"state\" name=\"state\"",
        "<option value=\"VA\">Virginia</option>",
        "<option value=\"AE\">Armed Forces Europe, Middle East, Africa and Canada (AE)</option>",
        "maxlength=\"64\"",
        "use initials for middle names",
        "aria-describedby=\"name-hint\"",
    ] {
        assert!(page.body.contains(expected), "missing {expected:?} in {}", page.body);
    }

    let empty = b.post("/apply/personal", &[]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    for expected in [
        "Enter your full name as it appears on your identity documents.",
        "Enter your email address",
        "Enter a daytime phone number, such as (206) 555-0142.",
        "Enter the street address the token ships to.",
        "Enter the city, or APO, FPO or DPO for a military address.",
        "Choose your state, territory or military address (AA, AE, AP) from the list.",
        "Enter the ZIP code, such as 22150 or 22150-1234.",
        "aria-describedby=\"name-hint name-error\"",
        "aria-describedby=\"state-error\"",
        "id=\"zip-error\"",
    ] {
        assert!(empty.body.contains(expected), "missing {expected:?} in {}", empty.body);
    }
    for code_words in ["must be 1 to", "&quot;&quot;", "&#34;&#34;", "is not a phone number", "common name"] {
        assert!(!empty.body.contains(code_words), "{code_words:?} in {}", empty.body);
    }

    let long = b
        .post(
            "/apply/personal",
            &[("name", "Jane Quintessa Philippa Marguerite Ottoline Anastasia Doe-Montgomery"), ("state", "VA")],
        )
        .await;
    assert!(long.body.contains("Your name has 68 characters; a certificate holds at most 64."), "{}", long.body);
    assert!(long.body.contains("<option value=\"VA\" selected>Virginia</option>"), "the state is kept");

    let virginia = [
        ("name", "Jane Q. Doe"),
        ("email", "jane.doe@initech.example"),
        ("phone", "(804) 555-0142"),
        ("line1", "1 Main St"),
        ("city", "Richmond"),
        ("state", "Virginia"),
        ("zip", "23219"),
    ];
    let ok = b.post("/apply/personal", &virginia).await;
    assert_eq!(ok.location.as_deref(), Some("/apply/account"), "a state's name is taken: {}", ok.body);
    b.get("/apply/account").await;
    b.post("/apply/account", &[("password", PASSWORD), ("confirm", PASSWORD)]).await;
    b.get("/apply/payment").await;
    let bad_po = b.post("/apply/payment", &[("method", "purchase-order"), ("po", "")]).await;
    assert!(bad_po.body.contains("Enter the purchase-order number from your organization"), "{}", bad_po.body);
    b.post("/apply/payment", &[("method", "purchase-order"), ("po", "PO-77/B")]).await;
    let review = b.get("/apply/review").await;
    for expected in ["Richmond, VA 23219", "Invoice against purchase order PO-77/B", "Initech LLC", "Jane Q. Doe"] {
        assert!(review.body.contains(expected), "missing {expected:?} in {}", review.body);
    }
}

/// An organization a submitted application registers waits for the RA: other applicants are
/// not offered it (nor told it exists) until it is confirmed.
#[tokio::test]
async fn a_registered_organization_is_offered_only_once_confirmed() {
    let p = portal().await;
    let mut first = Browser::new(&p.app);
    apply(&mut first, "Initech LLC").await;

    let mut next = Browser::new(&p.app);
    to_organization_step(&mut next).await;
    let search = next.get("/apply/organization?q=initech").await;
    assert!(search.body.contains("No registered organization matches"), "{}", search.body);
    assert!(!search.body.contains("Initech LLC"), "pending is not offered: {}", search.body);
    let typed = next.post("/apply/organization", &[("new_name", "INITECH, L.L.C.")]).await;
    assert_eq!(typed.location.as_deref(), Some("/apply/personal"), "nothing unconfirmed is revealed: {}", typed.body);

    confirm_organization(&p.state, "Initech LLC").await;
    let mut later = Browser::new(&p.app);
    to_organization_step(&mut later).await;
    let search = later.get("/apply/organization?q=initech").await;
    assert!(search.body.contains("value=\"Initech LLC\""), "{}", search.body);
    let dup = later.post("/apply/organization", &[("new_name", "INITECH, L.L.C.")]).await;
    assert!(dup.body.contains("Initech LLC is already registered"), "{}", dup.body);
}

/// An RA that configured its own agency catalog, prices, deadline policy and verification mail
/// sees each reach the applicant: only its agencies in the wizard, its price on the type and
/// review pages, its window on the status page and its wording in the mail.
#[tokio::test]
async fn an_operators_catalog_prices_deadlines_and_wording_reach_the_applicant() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    std::fs::write(
        files.join("agencies.toml"),
        "[[program]]\nid = \"integrate\"\nname = \"Integrate\"\nagencies = [\"integrate-il4\"]\n\n\
         [[agency]]\nid = \"integrate-il4\"\nname = \"Integrate IL4 (Platform One)\"\naccepts = [\"medium-token\"]\n\n\
         [[agency]]\nid = \"acme-portal\"\nname = \"Acme Supplier Portal\"\naccepts = [\"medium\", \"medium-token\"]\n",
    )
    .unwrap();
    std::fs::write(
        files.join("prices.toml"),
        "[[price]]\ntype = \"medium\"\nyears = 1\nusd = \"89\"\n\n[[price]]\ntype = \"medium-token\"\nyears = 1\nusd = \"150.00\"\n\n\
         [[price]]\ntype = \"medium-hardware\"\nyears = 1\nusd = \"250.00\"\n",
    )
    .unwrap();
    std::fs::create_dir(files.join("mail")).unwrap();
    std::fs::write(
        files.join("mail/email-verification.txt"),
        "Subject: Acme RA: confirm your address for your {type} certificate\n\n\
         Welcome to Acme RA. Confirm your address here:\n   {verify_link}\n\n{deadline_rule}\n",
    )
    .unwrap();
    let config: ServerConfig = toml::from_str(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n\n[ra]\nagencies = \"{d}/agencies.toml\"\nprices = \"{d}/prices.toml\"\n\
         mail_templates = \"{d}/mail\"\n\n[deadlines]\nopen_days = 60\n",
        d = files.display()
    ))
    .unwrap();
    let settings = config.into_settings().unwrap();
    let clock = Arc::new(FakeClock::at(datetime!(2026-11-02 14:00 UTC)));
    let state = build_state(&settings, "https://ra.example.test", clock).await.unwrap();
    let app = app(state.clone());
    let mut b = Browser::new(&app);

    b.get("/apply?program=Integrate").await;
    b.post("/apply", &[("program", "Integrate"), ("residency", "united-states")]).await;
    let p = b.get("/apply/agencies").await;
    assert!(
        p.body.contains("Acme Supplier Portal") && p.body.contains("value=\"integrate-il4\" checked"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("CANES") && !p.body.contains("JPAS"), "only the RA's agencies: {}", p.body);
    let p = b.post_raw("/apply/agencies", agencies_body(&b, &["integrate-il4"])).await;
    assert_eq!(p.location.as_deref(), Some("/apply/certificate"), "{}", p.body);
    let p = b.get("/apply/certificate").await;
    assert!(p.body.contains("$150.00") && !p.body.contains("$179.00"), "the RA's price: {}", p.body);
    let p = b.post("/apply/certificate", &[("cert_type", "medium-token"), ("years", "1")]).await;
    assert_eq!(p.location.as_deref(), Some("/apply/organization"), "{}", p.body);
    b.get("/apply/organization").await;
    b.post("/apply/organization", &[("new_name", "Acme, Inc.")]).await;
    b.get("/apply/personal").await;
    b.post("/apply/personal", PERSONAL).await;
    b.get("/apply/account").await;
    b.post("/apply/account", &[("password", PASSWORD), ("confirm", PASSWORD)]).await;
    b.get("/apply/payment").await;
    b.post("/apply/payment", &[("method", "purchase-order"), ("po", "PO-2026/0042")]).await;
    let p = b.get("/apply/review").await;
    assert!(p.body.contains("Medium Token Assurance, 1 year(s), $150.00"), "{}", p.body);
    let p = b.post("/apply/review", &[("agree", "yes")]).await;
    let status = b.get(p.location.as_deref().expect("submitted")).await;
    assert!(status.body.contains("Your forms must arrive by 2026-12-31 (59 days left)"), "{}", status.body);

    let pending = state.store().pending_outbox(state.clock().now(), 10).await.unwrap();
    let mail = &pending.iter().find(|m| m.message.subject.starts_with("Acme RA")).expect("the RA's wording").message;
    assert_eq!(mail.subject, "Acme RA: confirm your address for your Medium Token Assurance certificate");
    assert!(
        mail.body_text
            .contains("Welcome to Acme RA. Confirm your address here:\n   https://ra.example.test/verify-email?")
    );
    assert!(mail.body_text.contains("An application stays open 60 days."), "{}", mail.body_text);
}
