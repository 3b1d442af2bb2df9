//! Password reset by emailed link, on SQLite and PostgreSQL: the pages through
//! `app(state)`, the link delivered by the real mail relay to a real SMTP server (aiosmtpd) and
//! read back by Python's `email` package, then followed like a person would.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use signet_authority::ServerConfig;
use signet_authority::jobs::{Job, JobRunner};
use signet_authority::mail::{MailConfig, Mailer};
use signet_pki::profile::Catalog;
use signet_pki::subject::Email;
use signet_ra::Clock;
use signet_ra::FakeClock;
use signet_ra::application::{Application, ApplicationId, ApplicationStore, NewPassword, PasswordHash};
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::notify::Notifier;
use signet_ra::vetting::DeadlinePolicy;
use signet_server::{app, build_state};
use signet_testkit::TestDb;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::browser::{Browser, Page};
use crate::mail_common::{Received, SmtpSink, free_port};

const T0: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);
const BASE: &str = "https://ra.example.test";
const OLD: &str = "plover-quartz-meander-41";
const NEW: &str = "Lantern-Fjord-Pivot-73";

fn old_hash() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let email = Email::new("jane.doe@acme.example").unwrap();
        PasswordHash::new(&NewPassword::new(OLD, &email).unwrap()).unwrap()
    })
}

async fn sign_in(app: &axum::Router, id: &ApplicationId, password: &str) -> bool {
    let mut b = Browser::new(app);
    b.get("/").await;
    let p = b.post("/applications/sign-in", &[("reference", id.as_str()), ("password", password)]).await;
    p.location.as_deref() == Some(&format!("/applications/{id}"))
}

/// The reset mails among those received, oldest first.
fn reset_mails(sink: &SmtpSink) -> Vec<Received> {
    sink.messages().into_iter().filter(|m| m.subject.starts_with("Reset your ECA account password")).collect()
}

/// The path and query of the link in a reset mail.
fn link_in(mail: &Received) -> String {
    let start = mail.body.find(&format!("{BASE}/password-reset/new?token=")).unwrap_or_else(|| panic!("{}", mail.body));
    mail.body[start + BASE.len()..].split_whitespace().next().unwrap().to_owned()
}

/// The "sent" notice with the echoed address taken out: what tells one address from another.
fn notice(p: &Page, email: &str) -> String {
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let at = p.body.find("id=\"reset-sent\"").unwrap_or_else(|| panic!("{}", p.body));
    p.body[at..].split("</p>").next().unwrap().replace(email, "<address>")
}

signet_testkit::backend_test!(a_mailed_link_resets_the_password_once, a_mailed_link_resets_the_password_once);

async fn a_mailed_link_resets_the_password_once(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let settings = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        database_url: Some(db.url.clone()),
        mail: MailConfig {
            smtp: Some(format!("smtp://127.0.0.1:{}", sink.port())),
            from: Some("Signet RA <ra@example.test>".into()),
            ..Default::default()
        },
        ..Default::default()
    }
    .into_settings()
    .unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let state = build_state(&settings, BASE, clock.clone()).await.unwrap();
    let runner = JobRunner::new(state.core(), Mailer::new(&settings.mail).unwrap());
    let app = app(state.clone());
    let store = state.store();
    let notifier = Notifier::new(BASE, &Catalog::default_eca(), DeadlinePolicy::default());
    // Two applications under one address: each is an account with its own password.
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let t = Application::submit(ApplicationId::generate(), signet_ra::fixtures::sample_form("medium-token"), T0);
        store.create(&t, old_hash(), &notifier.outbox_for(&t)).await.unwrap();
        accounts.push(t.application.id().clone());
    }

    let mut b = Browser::new(&app);
    let home = b.get("/").await;
    assert!(home.body.contains("href=\"/password-reset\""), "the sign-in form links the reset");
    let p = b.get("/password-reset").await;
    assert_eq!(p.status, StatusCode::OK);
    let p = b.post("/password-reset", &[("email", "jane.doe at acme")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}");
    assert!(p.body.contains("Enter the email address you applied with") && p.body.contains("jane.doe at acme"));

    // An address without accounts and one with two read the same.
    let unknown = b.post("/password-reset", &[("email", "nobody@acme.example")]).await;
    let known = b.post("/password-reset", &[("email", "Jane.Doe@ACME.example")]).await;
    let known_notice = notice(&known, "Jane.Doe@ACME.example");
    assert_eq!(notice(&unknown, "nobody@acme.example"), known_notice, "{backend}");

    runner.run_once(Job::Outbox).await.unwrap();
    let mails = reset_mails(&sink);
    assert_eq!(mails.len(), 2, "{backend}: one link per account, none to the unknown address");
    assert!(mails.iter().all(|m| m.to == "jane.doe@acme.example"));
    let link_for = |id: &ApplicationId| {
        link_in(mails.iter().find(|m| m.subject.contains(id.as_str())).unwrap_or_else(|| panic!("no mail for {id}")))
    };
    let (first, second) = (&accounts[0], &accounts[1]);
    let link = link_for(first);

    // Asking changed nothing: the current password still signs in.
    assert!(sign_in(&app, first, OLD).await, "{backend}");

    // A guesser locks the sign-in; the reset clears the lock with the old password.
    for _ in 0..5 {
        assert!(!sign_in(&app, first, "Wrong-Guess-Password-1").await);
    }
    assert!(!sign_in(&app, first, OLD).await, "{backend}: locked, even with the right password");
    // Wrong passwords at retrieval pause it too; a soft token's codes are another matter.
    for scope in [AttemptScope::ActivationCode, AttemptScope::SubscriberTotp] {
        for _ in 0..5 {
            store.record_failure(scope, first.as_str(), &scope.default_policy(), clock.now()).await.unwrap();
        }
    }

    let p = b.get(&link).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains(first.as_str()));
    let p = b.post("/password-reset/new", &[("token", &token(&link)), ("password", "short"), ("again", "short")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("Please use at least 12 characters"), "{}", p.body);
    let p = b.post("/password-reset/new", &[("token", &token(&link)), ("password", NEW), ("again", OLD)]).await;
    assert!(p.body.contains("The two passwords differ."), "{}", p.body);
    let p = b.post("/password-reset/new", &[("token", &token(&link)), ("password", NEW), ("again", NEW)]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("id=\"reset-done\""), "{}", p.body);

    let lock = |scope| store.check(scope, first.as_str(), clock.now());
    assert_eq!(lock(AttemptScope::ActivationCode).await.unwrap(), LockState::Open, "{backend}");
    assert!(matches!(lock(AttemptScope::SubscriberTotp).await.unwrap(), LockState::Locked(_)), "{backend}");
    assert!(!sign_in(&app, first, OLD).await, "{backend}: the old password is gone");
    assert!(sign_in(&app, first, NEW).await, "{backend}");
    assert!(sign_in(&app, second, OLD).await, "{backend}: the other account is untouched");

    // The link works once; so does the other account's link, which was not used.
    let p = b.get(&link).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(p.body.contains("already used"), "{}", p.body);
    let p = b.post("/password-reset/new", &[("token", &token(&link)), ("password", NEW), ("again", NEW)]).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert_eq!(b.get(&link_for(second)).await.status, StatusCode::OK);
    assert_eq!(b.get("/password-reset/new?token=not-a-token").await.status, StatusCode::GONE);

    // Three links an hour per account: the fourth request in the hour sends nothing, and
    // still reads the same.
    for _ in 0..3 {
        let p = b.post("/password-reset", &[("email", "jane.doe@acme.example")]).await;
        assert_eq!(notice(&p, "jane.doe@acme.example"), known_notice);
    }
    runner.run_once(Job::Outbox).await.unwrap();
    let per_account =
        |id: &ApplicationId| reset_mails(&sink).iter().filter(|m| m.subject.contains(id.as_str())).count();
    assert_eq!((per_account(first), per_account(second)), (3, 3), "{backend}");

    // A link older than an hour has expired.
    let latest = link_in(reset_mails(&sink).iter().rev().find(|m| m.subject.contains(second.as_str())).unwrap());
    clock.advance(Duration::minutes(61));
    let p = b.get(&latest).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(p.body.contains("expired"), "{}", p.body);
    assert!(sign_in(&app, second, OLD).await);

    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions.iter().filter(|a| *a == "password-reset-requested").count(), 6, "{backend}");
    assert_eq!(actions.iter().filter(|a| *a == "password-changed").count(), 1, "{backend}");
    assert!(store.verify_audit().await.unwrap().is_ok());
    // Sent reset mails keep no token in the outbox.
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body_text FROM outbox WHERE kind = 'password-reset'")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(bodies.iter().all(String::is_empty), "{bodies:?}");
}

fn token(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}
