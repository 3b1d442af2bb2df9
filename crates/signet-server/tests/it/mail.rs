//! The mail relay and the background jobs, against a real SMTP server (aiosmtpd),
//! real SQLite and PostgreSQL, and messages read back by Python's `email` package: mail
//! delivery, SMTP outages with backoff, the deadline job, activation-code redaction, leases and
//! two nodes sharing one database.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use signet_authority::jobs::{Job, JobRunner, Outcome};
use signet_authority::mail::{MailConfig, Mailer};
use signet_authority::{ServerConfig, Settings};
use signet_pki::profile::Catalog;
use signet_pki::subject::Email;
use signet_ra::application::{
    ActivationCode, Actor, Application, ApplicationId, ApplicationStore, Command, IssuedSecret, NewPassword,
    PasswordHash, Transition,
};
use signet_ra::notify::Notifier;
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::{Clock, FakeClock};
use signet_server::AppState;
use signet_store::Store;
use signet_testkit::{BACKENDS, TestDb};
use sqlx::Row;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::mail_common::{SmtpSink, free_port, read_messages, test_tls};

const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);
const BASE: &str = "https://ra.example.test";
const FROM: &str = "Signet RA <ra@example.test>";

/// One `signet serve` node's state and job runner, without the HTTP listener.
struct Node {
    state: AppState,
    runner: JobRunner,
    settings: Settings,
}

fn settings(db: &TestDb, data_dir: &Path, mail: MailConfig) -> Settings {
    ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_owned()),
        database_url: Some(db.url.clone()),
        mail,
        ..Default::default()
    }
    .into_settings()
    .unwrap()
}

fn smtp(port: u16) -> MailConfig {
    MailConfig { smtp: Some(format!("smtp://127.0.0.1:{port}")), from: Some(FROM.into()), ..Default::default() }
}

async fn node(settings: Settings, clock: Arc<FakeClock>) -> Node {
    let state = signet_server::build_state(&settings, BASE, clock).await.unwrap();
    let runner = JobRunner::new(state.core(), Mailer::new(&settings.mail).unwrap());
    Node { state, runner, settings }
}

impl Node {
    fn store(&self) -> &Store {
        self.state.store()
    }

    async fn run(&self, job: Job) -> Outcome {
        self.runner.run_once(job).await.unwrap()
    }
}

fn notifier() -> Notifier {
    Notifier::new(BASE, &Catalog::default_eca(), DeadlinePolicy::default())
}

/// Argon2id is deliberately slow: hash once per test binary.
fn password() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let email = Email::new("jane.doe@acme.example").unwrap();
        PasswordHash::new(&NewPassword::new("plover-quartz-meander-41", &email).unwrap()).unwrap()
    })
}

/// Submits an application as the portal does: stored with its verification email queued.
async fn submit(store: &Store, now: OffsetDateTime) -> Transition {
    let t = Application::submit(ApplicationId::generate(), signet_ra::fixtures::sample_form("medium-token"), now);
    store.create(&t, password(), &notifier().outbox_for(&t)).await.unwrap();
    t
}

/// The delivery columns of the outbox row with this dedup key:
/// (attempts, next_attempt_at, last_error, sent_at, body_text).
async fn delivery(store: &Store, dedup_key: &str) -> (i64, Option<i64>, Option<String>, Option<i64>, String) {
    let r = sqlx::query(
        "SELECT attempts, next_attempt_at, last_error, sent_at, body_text FROM outbox WHERE dedup_key = $1",
    )
    .bind(dedup_key)
    .fetch_one(store.pool())
    .await
    .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

fn verification_token(t: &Transition) -> String {
    let Some(IssuedSecret::EmailVerification(token)) = &t.secret else { panic!("no verification token") };
    token.expose().to_owned()
}

signet_testkit::backend_test!(outbox_job_mails_the_verification_link, outbox_job_mails_the_verification_link);

async fn outbox_job_mails_the_verification_link(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let n = node(settings(&db, dir.path(), smtp(sink.port())), Arc::new(FakeClock::at(T0))).await;
    let t = submit(n.store(), T0).await;
    let id = t.application.id().clone();

    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 }, "{backend}");
    let mail = sink.messages();
    assert_eq!(mail.len(), 1, "{backend}");
    let m = &mail[0];
    assert_eq!(m.to, "jane.doe@acme.example");
    assert!(m.rcpt_to.contains("jane.doe@acme.example"), "envelope: {}", m.rcpt_to);
    assert!(m.from.contains("ra@example.test"), "{}", m.from);
    assert_eq!(m.subject, "Verify your email for your ECA application");
    let link = format!("{BASE}/verify-email?application={id}&token={}", verification_token(&t));
    assert!(m.body.contains(&link), "{backend}: no {link} in\n{}", m.body);
    assert!(m.message_id.ends_with("@example.test>"), "{}", m.message_id);
    assert!(m.date.contains("3 Mar 2025"), "dated by the injected clock: {}", m.date);

    // Delivered: marked sent, body (with the link's token) gone; a rerun sends nothing.
    let (attempts, _, error, sent_at, body) = delivery(n.store(), &format!("email-verification:{id}")).await;
    assert_eq!((attempts, error, sent_at, body.as_str()), (1, None, Some(T0.unix_timestamp()), ""));
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 0, failed: 0 });
    assert_eq!(sink.messages().len(), 1);
}

signet_testkit::backend_test!(
    smtp_down_keeps_mail_queued_then_sends_it_once,
    smtp_down_keeps_mail_queued_then_sends_it_once
);

async fn smtp_down_keeps_mail_queued_then_sends_it_once(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let clock = Arc::new(FakeClock::at(T0));
    let n = node(settings(&db, dir.path(), smtp(port)), clock.clone()).await;
    let first = submit(n.store(), T0).await;
    let second = submit(n.store(), T0).await;
    let key = |t: &Transition| format!("email-verification:{}", t.application.id());

    // Nothing listens: the first message fails and is backed off; the relay being down,
    // the second is not even tried.
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 0, failed: 1 }, "{backend}");
    let (attempts, next, error, sent_at, body) = delivery(n.store(), &key(&first)).await;
    assert_eq!((attempts, next, sent_at), (1, Some((T0 + Duration::minutes(1)).unix_timestamp()), None));
    assert!(error.as_deref().is_some_and(|e| e.contains("SMTP")), "{error:?}");
    assert!(body.contains(&verification_token(&first)), "the queued body is kept until delivery");
    assert_eq!(delivery(n.store(), &key(&second)).await.0, 0);

    // The relay comes back. Before the backoff passes only the untried message goes.
    let sink = SmtpSink::start(port).await;
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    assert_eq!(delivery(n.store(), &key(&first)).await.3, None, "still waiting out its backoff");
    clock.advance(Duration::seconds(61));
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 0, failed: 0 });

    let (attempts, _, _, sent_at, _) = delivery(n.store(), &key(&first)).await;
    assert_eq!((attempts, sent_at), (2, Some((T0 + Duration::seconds(61)).unix_timestamp())));
    let mail = sink.messages();
    assert_eq!(mail.len(), 2, "{backend}: each message exactly once");
    for t in [&first, &second] {
        let token = verification_token(t);
        assert_eq!(mail.iter().filter(|m| m.body.contains(&token)).count(), 1);
    }
}

signet_testkit::backend_test!(
    deadline_job_reminds_then_expires_and_mails_the_notice,
    deadline_job_reminds_then_expires_and_mails_the_notice
);

async fn deadline_job_reminds_then_expires_and_mails_the_notice(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let clock = Arc::new(FakeClock::at(T0));
    let n = node(settings(&db, dir.path(), smtp(sink.port())), clock.clone()).await;
    let id = submit(n.store(), T0).await.application.id().clone();
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 0, expired: 0 });

    // Open 45 days from 2025-03-03: the last day is 2025-04-16. On day 40, 5 days are left
    // (under the 7-day reminder); running twice still reminds once.
    clock.advance(Duration::days(39));
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 1, expired: 0 }, "{backend}");
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 1, expired: 0 });
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 2, failed: 0 });
    let reminder = sink.messages().into_iter().find(|m| m.subject.contains("left")).expect("reminder");
    assert_eq!(reminder.subject, "5 days are left: ECA application deadline 2025-04-16");

    // 46 days in: past the deadline, the job expires it as the system and mails the notice.
    clock.advance(Duration::days(7));
    let audit_before = n.store().audit_records().await.unwrap().len();
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 0, expired: 1 }, "{backend}");
    let app = n.store().load(&id).await.unwrap().unwrap();
    assert_eq!(app.state().state_name(), "expired");
    let audit = n.store().audit_records().await.unwrap();
    assert_eq!(audit.len(), audit_before + 1);
    let last = audit.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.action.as_str(), last.subject.as_str()),
        ("system", "application-expired", id.as_str())
    );
    assert_eq!(n.store().verify_audit().await.unwrap(), Ok(audit.len()));

    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    let mail = sink.messages();
    assert_eq!(mail.len(), 3);
    let notice = mail.iter().find(|m| m.subject == "Your ECA application has expired").expect("expiry notice");
    assert!(notice.body.contains("2025-04-16") && notice.body.contains(id.as_str()), "{}", notice.body);
    assert_eq!(notice.to, "jane.doe@acme.example");
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 0, expired: 0 }, "closed now");
}

// The mails that ask for the forms name the PDF files to print, give the RA's mailing address
// from `[ra]`, and end with its support contact.
signet_testkit::backend_test!(
    forms_mails_name_the_files_the_mailing_address_and_the_contact,
    forms_mails_name_the_files_the_mailing_address_and_the_contact
);

async fn forms_mails_name_the_files_the_mailing_address_and_the_contact(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let clock = Arc::new(FakeClock::at(T0));
    let mut settings = settings(&db, dir.path(), smtp(sink.port()));
    settings.ra = signet_ra::contact::RaContact::new(
        "Acme Registration Authority",
        &["Acme Registration Authority", "PO Box 4417", "Reston, VA 20195"],
        "help@acme-ra.example",
        "571-555-0199",
    )
    .unwrap();
    let n = node(settings, clock.clone()).await;
    let submitted = submit(n.store(), T0).await;
    let id = submitted.application.id().clone();
    let Some(IssuedSecret::EmailVerification(token)) = submitted.secret.clone() else { panic!("no link") };
    let verified = submitted
        .application
        .apply(&Actor::Applicant, Command::VerifyEmail(token), T0, &DeadlinePolicy::default())
        .unwrap();
    n.store().save_transition(&verified, &[]).await.unwrap();

    // Five days before the forms' deadline the server's own notifier reminds the applicant.
    clock.advance(Duration::days(39));
    assert_eq!(n.run(Job::Deadlines).await, Outcome::Deadlines { reminders: 1, expired: 0 }, "{backend}");
    n.run(Job::Outbox).await;
    let reminder = sink.messages().into_iter().find(|m| m.subject.contains("left")).expect("reminder");
    let body = reminder.body.replace("\r\n", "\n");
    for file in ["officer-verification.pdf", "identity-verification.pdf"] {
        assert!(body.contains(&format!("{id}-{file}")), "{backend}: no {file} in\n{body}");
    }
    assert!(!body.contains("pages 2"), "{body}");
    assert!(
        body.contains(
            "Mail the signed originals to:\n   Acme Registration Authority\n   PO Box 4417\n   Reston, VA 20195"
        ),
        "{body}"
    );
    assert!(
        body.trim_end()
            .ends_with("Acme Registration Authority\nQuestions? Email help@acme-ra.example or call (571) 555-0199."),
        "{body}"
    );
}

/// Vets, approves and ships a submitted application, then issues its activation code: the
/// transitions an operator console and the system make, saved with their notices.
async fn walk_to_certificates_ready(store: &Store, submitted: &Transition, clock: &FakeClock) -> Application {
    let plan = signet_ra::fixtures::vetting_plan(
        signet_ra::application::VerificationToken::new(&verification_token(submitted)).unwrap(),
        T0.date(),
        submitted.application.form().certificate.cert_type(),
    );
    let mut app = submitted.application.clone();
    for (actor, command, wait) in plan {
        clock.advance(wait);
        let t = app.apply(&actor, command, clock.now(), &DeadlinePolicy::default()).unwrap();
        store.save_transition(&t, &notifier().outbox_for(&t)).await.unwrap();
        app = t.application;
    }
    app
}

signet_testkit::backend_test!(
    activation_code_is_mailed_and_then_gone_from_the_database,
    activation_code_is_mailed_and_then_gone_from_the_database
);

async fn activation_code_is_mailed_and_then_gone_from_the_database(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let clock = Arc::new(FakeClock::at(T0));
    let n = node(settings(&db, dir.path(), smtp(sink.port())), clock.clone()).await;
    let submitted = submit(n.store(), T0).await;
    let ready = walk_to_certificates_ready(n.store(), &submitted, &clock).await;
    let key = format!("activation-code:{}", ready.id());
    assert!(delivery(n.store(), &key).await.4.contains("Activation code: "), "queued with the code");

    // Verification, forms received, approved, shipped, activation code.
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 5, failed: 0 }, "{backend}");
    let mail = sink.messages();
    let activation = mail.iter().find(|m| m.subject.starts_with("Your ECA certificates are ready")).unwrap();
    let code = activation.body.lines().find_map(|l| l.strip_prefix("Activation code: ")).expect("code line");
    assert!(
        activation.body.contains(&format!("{BASE}/retrieve?application={}", ready.id())),
        "the mail leads to the retrieval guide for this application: {}",
        activation.body
    );
    // Every link in every mail of the walk opens a page.
    let links: Vec<&str> = mail
        .iter()
        .flat_map(|m| m.body.split_whitespace())
        .filter_map(|w| w.strip_prefix(BASE))
        .map(|path| path.trim_end_matches(['.', ',', ';', ')']))
        .collect();
    assert!(links.len() >= 3, "{links:?}");
    for path in links {
        let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let answer = tower::ServiceExt::oneshot(signet_server::app(n.state.clone()), request).await.unwrap();
        assert_eq!(answer.status(), axum::http::StatusCode::OK, "{path}");
    }

    // The row that carried the code is blanked; no outbox row holds it any more.
    let (_, _, _, sent_at, body) = delivery(n.store(), &key).await;
    assert_eq!((sent_at.is_some(), body.as_str()), (true, ""));
    let bodies: Vec<String> = sqlx::query("SELECT body_text FROM outbox")
        .fetch_all(n.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(bodies.iter().all(|b| !b.contains(code)), "{backend}");

    // The mailed code is the one the application accepts.
    clock.advance(Duration::days(1));
    let code = ActivationCode::new(code).unwrap();
    let t = ready.apply(&Actor::Applicant, Command::Retrieve(code), clock.now(), &DeadlinePolicy::default());
    assert_eq!(t.unwrap().application.state().state_name(), "retrieved");
}

#[tokio::test]
async fn starttls_relay_is_trusted_only_through_the_configured_ca() {
    let db = TestDb::new("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    let tls = test_tls(dir.path());
    // aiosmtpd refuses MAIL FROM before STARTTLS, so whatever it received came over TLS.
    let sink = SmtpSink::start_starttls(free_port(), &tls).await;
    let starttls = |tls_ca| MailConfig { starttls: Some(true), tls_ca, ..smtp(sink.port()) };
    let clock = Arc::new(FakeClock::at(T0));
    let data = dir.path().join("data");

    // The system trust store does not know the test CA: the handshake fails, nothing is sent.
    let untrusting = node(settings(&db, &data, starttls(None)), clock.clone()).await;
    let t = submit(untrusting.store(), T0).await;
    assert_eq!(untrusting.run(Job::Outbox).await, Outcome::Outbox { sent: 0, failed: 1 });
    let key = format!("email-verification:{}", t.application.id());
    let error = delivery(untrusting.store(), &key).await.2.unwrap();
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");

    let trusting = node(settings(&db, &data, starttls(Some(tls.ca.clone()))), clock.clone()).await;
    clock.advance(Duration::seconds(61));
    assert_eq!(trusting.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    let mail = sink.messages();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].body.contains(&verification_token(&t)));
}

signet_testkit::backend_test!(
    leases_are_held_renewed_taken_over_and_released,
    leases_are_held_renewed_taken_over_and_released
);

async fn leases_are_held_renewed_taken_over_and_released(backend: &str) {
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let ttl = Duration::seconds(60);
    assert!(store.try_acquire_lease("outbox", "node-a", ttl, T0).await.unwrap(), "{backend}");
    assert!(!store.try_acquire_lease("outbox", "node-b", ttl, T0 + Duration::seconds(30)).await.unwrap());
    assert!(store.try_acquire_lease("deadlines", "node-b", ttl, T0).await.unwrap(), "leases are per job");
    // A renews at +50 s, so B still cannot take it at +100 s; at +110 s A's lease has run out.
    assert!(store.try_acquire_lease("outbox", "node-a", ttl, T0 + Duration::seconds(50)).await.unwrap());
    assert!(!store.try_acquire_lease("outbox", "node-b", ttl, T0 + Duration::seconds(100)).await.unwrap());
    assert!(store.try_acquire_lease("outbox", "node-b", ttl, T0 + Duration::seconds(110)).await.unwrap());
    assert!(!store.try_acquire_lease("outbox", "node-a", ttl, T0 + Duration::seconds(111)).await.unwrap());
    // Only the holder can release; then anyone may take it at once.
    store.release_lease("outbox", "node-a").await.unwrap();
    assert!(!store.try_acquire_lease("outbox", "node-a", ttl, T0 + Duration::seconds(112)).await.unwrap());
    store.release_lease("outbox", "node-b").await.unwrap();
    assert!(store.try_acquire_lease("outbox", "node-a", ttl, T0 + Duration::seconds(113)).await.unwrap());

    // Many contenders at the same instant: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.try_acquire_lease("race", &format!("node-{i}"), ttl, T0).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.unwrap());
    }
    assert_eq!(wins, 1, "{backend}");
    store.close().await;
}

signet_testkit::backend_test!(
    two_nodes_on_one_database_send_each_message_once,
    two_nodes_on_one_database_send_each_message_once
);

async fn two_nodes_on_one_database_send_each_message_once(backend: &str) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let clock = Arc::new(FakeClock::at(T0));
    // Two nodes: same database and CA folder, separate connection pools and runners.
    let a = node(settings(&db, dir.path(), smtp(sink.port())), clock.clone()).await;
    let b = node(settings(&db, dir.path(), smtp(sink.port())), clock.clone()).await;
    assert_ne!(a.runner.holder(), b.runner.holder());
    for _ in 0..5 {
        submit(a.store(), T0).await;
    }

    let (ra, rb) = tokio::join!(a.run(Job::Outbox), b.run(Job::Outbox));
    let mut outcomes = [ra, rb];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::NotLeader, Outcome::Outbox { sent: 5, failed: 0 }], "{backend}");
    let leader = if ra == Outcome::NotLeader { &b } else { &a };
    let follower = if ra == Outcome::NotLeader { &a } else { &b };

    // The leader keeps its lease while it runs; the follower takes over once it lapses.
    submit(b.store(), T0).await;
    assert_eq!(follower.run(Job::Outbox).await, Outcome::NotLeader);
    assert_eq!(leader.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    clock.advance(Duration::seconds(61));
    submit(b.store(), clock.now()).await;
    assert_eq!(follower.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    assert_eq!(leader.run(Job::Outbox).await, Outcome::NotLeader);

    // The OCSP refresher works on each node's own cache: every node runs it, leader or not.
    for n in [leader, follower] {
        assert!(matches!(n.run(Job::OcspRefresh).await, Outcome::OcspRefresh { .. }));
    }

    let mail = sink.messages();
    assert_eq!(mail.len(), 7, "{backend}");
    let mut ids: Vec<&str> = mail.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "no message twice");

    // Should two senders ever overlap (a lease lapsing mid-run), the per-message claim
    // still lets only one of them have a message.
    let t = submit(a.store(), clock.now()).await;
    let now = clock.now();
    let queued = a.store().pending_outbox(now, 10).await.unwrap();
    let mine = queued.iter().find(|q| q.message.dedup_key.ends_with(t.application.id().as_str())).unwrap().id;
    let until = now + Duration::minutes(5);
    let (ca, cb) = tokio::join!(a.store().claim_outbox(mine, now, until), b.store().claim_outbox(mine, now, until));
    let mut claims = [ca.unwrap(), cb.unwrap()];
    claims.sort();
    assert_eq!(claims, [None, Some(1)], "{backend}");
    assert!(a.store().pending_outbox(now, 10).await.unwrap().is_empty(), "a claimed message is not due");
}

#[tokio::test]
async fn dev_folder_gets_one_eml_file_per_message() {
    let db = TestDb::new("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    // No [mail] table: the default is <data_dir>/mail.
    let n = node(settings(&db, dir.path(), MailConfig::default()), Arc::new(FakeClock::at(T0))).await;
    let t = submit(n.store(), T0).await;
    assert_eq!(n.run(Job::Outbox).await, Outcome::Outbox { sent: 1, failed: 0 });
    let folder = dir.path().join("mail");
    let mail = read_messages(&folder);
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, "jane.doe@acme.example");
    assert!(mail[0].body.contains(&verification_token(&t)));

    // A resend of the same message (a crash between the relay's acceptance and mark_sent)
    // lands on the same file.
    let message = notifier().outbox_for(&t).remove(0);
    Mailer::new(&n.settings.mail).unwrap().send(&message, T0).await.unwrap();
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
}

#[tokio::test]
async fn serve_sends_queued_mail_in_the_background_and_hands_leases_over_on_stop() {
    let db = TestDb::new("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(free_port()).await;
    let settings = settings(&db, dir.path(), smtp(sink.port()));
    // Queued before the node starts, as after a restart: the first outbox run picks it up.
    let store = Store::connect(&db.url).await.unwrap();
    submit(&store, OffsetDateTime::now_utc()).await;

    let running = signet_server::spawn(&settings, Arc::new(FakeClock::at(OffsetDateTime::now_utc()))).await.unwrap();
    let mail = sink.wait_for(1, StdDuration::from_secs(30)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].subject, "Verify your email for your ECA application");
    let holders = || async {
        sqlx::query("SELECT holder FROM job_leases")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect::<Vec<_>>()
    };
    assert!(!holders().await.is_empty(), "the node holds its leases while it runs");
    running.jobs.stop().await;
    assert!(holders().await.is_empty(), "stopping releases them");
}

/// Every link in every kind of mail opens a page for its reader, who is usually signed out: the
/// page itself (200), or a sign-in that leads there. The password-reset link is left to the
/// browser walk, which opens a real one (it needs a link the store issued).
#[tokio::test]
async fn every_link_in_every_kind_of_mail_opens_a_page() {
    use signet_pki::{RevocationReason, Serial};
    use signet_ra::application::Reason;
    use signet_ra::forms_mail::{Deficiency, FormProblem};
    use signet_ra::renewal::ExpiryReminder;
    use signet_ra::vetting::DeadlineAction;
    // Which backend holds the application does not change a mail's text: one is enough.
    let db = TestDb::new(BACKENDS[0]).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let n = node(settings(&db, dir.path(), MailConfig::default()), clock.clone()).await;
    let policy = DeadlinePolicy::default();

    // Verification, forms received, approved, shipped and activation code, as the walk queues them.
    let submitted = submit(n.store(), T0).await;
    let ready = walk_to_certificates_ready(n.store(), &submitted, &clock).await;
    let mut mails: Vec<(String, String)> = sqlx::query("SELECT kind, body_text FROM outbox")
        .fetch_all(n.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    let notifier = notifier();
    let other = submit(n.store(), T0).await.application;
    let serial = Serial::from_hex("0a1b2c3d4e5f").unwrap();
    let later = Serial::from_hex("0a1b2c3d4e60").unwrap();
    let expires = (T0 + Duration::days(30)).date();
    let built = [
        notifier.reminder(&other, DeadlineAction::Remind { days_left: 5, threshold: 5 }).unwrap(),
        notifier.forms_deficient(&other, &Deficiency::new(&[FormProblem::NotarySealMissing], "", T0).unwrap()),
        notifier.certificate_revoked(
            &ready,
            "Medium Token Assurance (identity)",
            &serial,
            RevocationReason::KeyCompromise,
        ),
        notifier.certificate_renewed(&ready, "Medium Token Assurance (identity)", &serial, &later, expires),
        notifier.certificate_expiring(
            &ready,
            "Medium Token Assurance (identity)",
            &serial,
            "medium-token-identity",
            expires,
            ExpiryReminder { days_left: 30, threshold: 30 },
        ),
    ];
    mails.extend(built.into_iter().map(|m| (m.kind.name().to_owned(), m.body_text)));
    let operator = Actor::Operator(signet_ra::application::OperatorId::new("alice").unwrap());
    let closings = [
        other.clone().apply(
            &operator,
            Command::Reject(Reason::new("The officer did not confirm.").unwrap()),
            T0,
            &policy,
        ),
        other.apply(&Actor::System, Command::Expire, T0 + Duration::days(60), &policy),
    ];
    for t in closings {
        mails.extend(notifier.outbox_for(&t.unwrap()).into_iter().map(|m| (m.kind.name().to_owned(), m.body_text)));
    }

    let mut kinds: Vec<&str> = mails.iter().map(|(k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "activation-code",
            "approved",
            "certificate-expiring",
            "certificate-renewed",
            "certificate-revoked",
            "deadline-reminder",
            "email-verification",
            "expired",
            "forms-deficient",
            "forms-received",
            "rejected",
            "token-shipped",
        ]
    );
    let mut opened = 0;
    for (kind, body) in &mails {
        let links = body
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(BASE))
            .map(|path| path.trim_end_matches(['.', ',', ';', ')']));
        for link in links {
            let mut path = link.to_owned();
            // A signed-out reader is sent to a sign-in first: follow it as a browser would.
            for _ in 0..3 {
                let request = axum::http::Request::get(&path).body(axum::body::Body::empty()).unwrap();
                let answer = tower::ServiceExt::oneshot(signet_server::app(n.state.clone()), request).await.unwrap();
                if !answer.status().is_redirection() {
                    assert_eq!(answer.status(), axum::http::StatusCode::OK, "{kind}: {link} (at {path})");
                    break;
                }
                path = answer.headers()["location"].to_str().unwrap().to_owned();
            }
            opened += 1;
        }
    }
    assert!(opened >= mails.len(), "each mail leads somewhere ({opened} links in {} mails)", mails.len());
}
