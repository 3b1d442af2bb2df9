//! The RA operator console over HTTP, through `app(state)` on SQLite and PostgreSQL: operators
//! sign in with a password and a TOTP code computed by `oathtool` (an independent RFC 6238
//! implementation) at the fake clock's time; lockouts and their clearing by an administrator;
//! roles; an application vetted from email-verified to token shipped by two different
//! approvers; bad input on every form (422, values kept, nothing stored); notes and history;
//! the queue's filters and pages; and the audit chain intact at the end. Also witnessed key
//! generation on the application page (hardware key types, once the token is shipped; a note
//! and the token's serial are required; the serial must be the shipped stock token's; one
//! record per application); shipping a hardware type, which binds a token from the stock; the
//! token stock page (report lost revokes for key compromise, retire); and the key recovery
//! page (only designated agents request and approve, each action signs the agent in again with
//! password and a fresh code, two different agents must approve, forged forms are refused with
//! nothing stored).

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::StatusCode;
use signet_authority::ServerConfig;
use signet_pki::RevocationReason;
use signet_pki::escrow::{EncryptionKey, RecoveryKey, RecoveryKeyPublic, SoftwareRecoveryKey};
use signet_pki::issue::CertificateOrder;
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, DnsName, OrganizationName, Subject};
use signet_ra::application::{
    Actor, Application, ApplicationForm, ApplicationId, ApplicationStore, CertificateChoice, Command, IssuedSecret,
    OperatorId, PasswordHash, PriceTable,
};
use signet_ra::audit::verify_chain;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::fixtures::{sample_form, vetting_plan};
use signet_ra::issuance::StoredStatus;
use signet_ra::key_recovery::{AgentDesignation, EscrowedKey, KeyRecoveryStore, RecoveryRequest, RecoveryState};
use signet_ra::lockout::REFUSED;
use signet_ra::operator::{Operator, OperatorStore, Role, operator_password};
use signet_ra::passkey::{Aaguid, Passkey, PasskeyName, PasskeyOwner, PasskeyStore};
use signet_ra::token_stock::{StockState, TokenSerial, TokenStockStore};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::witness::WitnessStore;
use signet_ra::wizard::AgencyCatalog;
use signet_ra::{Clock, FakeClock};
use signet_server::{AppState, app, build_state};
use signet_testkit::TestDb;
use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime};

use crate::browser::{Browser, Page};
use crate::stock_common::in_stock;

const T0: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);
const PASSWORD: &str = "Quill-Harbor-Sextant-58";
const RECOVERY_PAGE: &str = "/console/key-recovery";

struct Console {
    app: Router,
    state: AppState,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

async fn console(backend: &str) -> Console {
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
    Console { app: app(state.clone()), state, clock, _dir: dir, _db: db }
}

/// Argon2id is slow by design: one hash of [`PASSWORD`] per test binary, for every operator
/// and applicant account.
fn password_hash() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        PasswordHash::new(&operator_password(PASSWORD, &OperatorId::new("any").unwrap()).unwrap()).unwrap()
    })
}

/// Creates an operator (SHA-1, 6 digits: oathtool's defaults); returns its base32 secret.
async fn create_operator(state: &AppState, id: &str, name: &str, role: Role) -> String {
    let secret = TotpSecret::generate();
    let b32 = secret.to_base32();
    let op = Operator::new(
        OperatorId::new(id).unwrap(),
        CommonName::new(name).unwrap(),
        role,
        password_hash().clone(),
        Totp::new(secret, TotpAlgorithm::Sha1, Digits::Six),
    );
    state.store().create_operator(&op, op.created_event("cli:test", T0)).await.unwrap();
    b32
}

/// The code `oathtool` computes for `secret` at `at`.
fn oathtool(secret: &str, at: OffsetDateTime) -> String {
    let now = at.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).unwrap();
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", "--now", &now, secret])
        .output()
        .expect("oathtool is installed (scripts/test.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A code that is certainly wrong: the right one with its last digit changed.
fn wrong(code: &str) -> String {
    let last = code.chars().last().unwrap().to_digit(10).unwrap();
    format!("{}{}", &code[..code.len() - 1], (last + 1) % 10)
}

async fn sign_in(b: &mut Browser, id: &str, password: &str, code: &str) -> Page {
    b.get("/console/sign-in").await;
    b.post("/console/sign-in", &[("operator", id), ("password", password), ("code", code)]).await
}

/// Signs in and loads the queue (the sign-in rotates the form token).
async fn signed_in(c: &Console, id: &str, secret: &str) -> Browser {
    let mut b = Browser::new(&c.app);
    let p = sign_in(&mut b, id, PASSWORD, &oathtool(secret, c.clock.now())).await;
    assert_eq!(p.location.as_deref(), Some("/console"), "{id}: {}", p.body);
    assert_eq!(b.get("/console").await.status, StatusCode::OK);
    b
}

/// Stores an application submitted `age` ago and, if `verify`, email-verified now.
async fn application(c: &Console, form: ApplicationForm, age: Duration, verify: bool) -> ApplicationId {
    let now = c.clock.now();
    let t = Application::submit(ApplicationId::generate(), form, now - age);
    c.state.store().create(&t, password_hash(), &[]).await.unwrap();
    let id = t.application.id().clone();
    if verify {
        let Some(IssuedSecret::EmailVerification(token)) = t.secret else { panic!("submission issues a token") };
        let verified = t
            .application
            .apply(&Actor::Applicant, Command::VerifyEmail(token), now, &DeadlinePolicy::default())
            .unwrap();
        c.state.store().save_transition(&verified, &[]).await.unwrap();
    }
    id
}

/// The revision and audit row count: what a refused form must leave alone.
async fn stored(c: &Console, id: &ApplicationId) -> (u32, usize) {
    let app = c.state.store().load(id).await.unwrap().unwrap();
    (app.revision(), c.state.store().audit_records().await.unwrap().len())
}

async fn state_of(c: &Console, id: &ApplicationId) -> &'static str {
    c.state.store().load(id).await.unwrap().unwrap().state().state_name()
}

/// Posts a form that must be refused: 422, every `expected` text on the page, and nothing
/// stored.
async fn refused(
    c: &Console,
    b: &mut Browser,
    id: &ApplicationId,
    form: &str,
    fields: &[(&str, &str)],
    expected: &[&str],
) {
    let before = stored(c, id).await;
    let p = b.post(&format!("/console/applications/{id}/{form}"), fields).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {}", p.body);
    for e in expected {
        assert!(p.body.contains(e), "{form}: missing {e:?} in {}", p.body);
    }
    assert_eq!(stored(c, id).await, before, "{form}: a refused form changed nothing");
}

/// Posts a form that must be accepted; returns the page it leads to.
async fn accepted(b: &mut Browser, id: &ApplicationId, form: &str, fields: &[(&str, &str)]) -> Page {
    let p = b.post(&format!("/console/applications/{id}/{form}"), fields).await;
    assert_eq!(p.location, Some(format!("/console/applications/{id}?done={form}")), "{form}: {}", p.body);
    b.get(p.location.as_deref().unwrap()).await
}

/// The text of each cell in the rows of the table with `id`, tags stripped.
fn table(body: &str, id: &str) -> Vec<Vec<String>> {
    let start = body.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no table {id}"));
    let html = &body[start..start + body[start..].find("</table>").unwrap()];
    html.split("<tr").skip(2).map(|row| row.split("<td").skip(1).map(strip_tags).collect()).collect()
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = true; // the cell starts inside its <td …> tag
    for ch in html.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

const NOTARIZED: &[(&str, &str)] = &[
    ("received_on", "2026-11-02"),
    ("carrier", "ups"),
    ("tracking", "1Z999AA10123456784"),
    ("officer_page", "yes"),
    ("identity_page", "yes"),
    ("citizenship", "none"),
    ("attestation", "notarized"),
    ("notary_name", "Pat Notary"),
    ("seal", "yes"),
    ("notarized_on", "2026-11-02"),
];

/// `NOTARIZED` with some fields replaced.
fn notarized(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    NOTARIZED.iter().map(|(k, v)| changes.iter().find(|(ck, _)| ck == k).map_or((*k, *v), |c| *c)).collect()
}

signet_testkit::backend_test!(sign_in_lockout_roles_and_vetting_to_token_shipped, vetting_run);

async fn vetting_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let bob = create_operator(&c.state, "bob", "Bob Checker", Role::RaOperator).await;
    let root = create_operator(&c.state, "root", "Rita Admin", Role::RaAdministrator).await;

    // Without an operator session every console page sends the visitor to sign in.
    let mut anonymous = Browser::new(&c.app);
    for path in ["/console", "/console/operators", "/console/applications/7K2M9Q4T8V1W"] {
        assert_eq!(anonymous.get(path).await.location.as_deref(), Some("/console/sign-in"), "{path}");
    }

    // Alice signs in; the same code is refused to a second browser (single use).
    let code = oathtool(&alice, T0);
    let mut a = Browser::new(&c.app);
    let p = sign_in(&mut a, "alice", PASSWORD, &code).await;
    assert_eq!(p.location.as_deref(), Some("/console"), "{}", p.body);
    assert!(a.get("/console").await.body.contains("Alice Vetter (alice)"));
    let mut thief = Browser::new(&c.app);
    let replay = sign_in(&mut thief, "alice", PASSWORD, &code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.body.contains(REFUSED), "{}", replay.body);

    // A wrong password and a wrong code read the same, and the id typed is kept.
    let mut b = Browser::new(&c.app);
    let bad_password = sign_in(&mut b, "bob", "Quill-Harbor-Sextant-00", &oathtool(&bob, T0)).await;
    let bad_code = sign_in(&mut b, "bob", PASSWORD, &wrong(&oathtool(&bob, T0))).await;
    let unknown = sign_in(&mut b, "nobody", PASSWORD, "123456").await;
    for p in [&bad_password, &bad_code, &unknown] {
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert!(p.body.contains(REFUSED), "{}", p.body);
    }
    assert!(bad_code.body.contains("value=\"bob\""));

    // Three more wrong passwords lock bob out: five failures in the one sign-in counter, the
    // wrong code among them. The lock is explained, and even the right credentials are
    // refused until it ends.
    for n in 0..3 {
        let p = sign_in(&mut b, "bob", "Quill-Harbor-Sextant-00", "000000").await;
        assert_eq!(p.status, if n < 2 { StatusCode::UNAUTHORIZED } else { StatusCode::LOCKED }, "{}", p.body);
    }
    let lock = "Too many failed attempts. Try again in a minute (after 2026-11-02 14:01:00 UTC).";
    let locked = sign_in(&mut b, "bob", PASSWORD, &oathtool(&bob, T0)).await;
    assert_eq!(locked.status, StatusCode::LOCKED);
    assert!(locked.body.contains(lock) && !locked.body.contains(REFUSED), "{}", locked.body);

    // An RA operator may not manage operators: a readable 403.
    let forbidden = a.get("/console/operators").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(forbidden.body.contains("Your role does not allow this page"), "{}", forbidden.body);
    let forbidden = a.post("/console/operators/bob/unlock", &[("scope", "operator-password")]).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(!a.get("/console").await.body.contains("href=\"/console/operators\""), "no admin link for an operator");

    // The administrator sees the lock and clears it; bob signs in.
    let mut r = signed_in(&c, "root", &root).await;
    let ops = r.get("/console/operators").await;
    assert_eq!(ops.status, StatusCode::OK);
    let rows = table(&ops.body, "operators");
    let bob_row = rows.iter().find(|row| row[0].contains("bob")).unwrap();
    assert_eq!(bob_row[1], "RA operator");
    assert!(bob_row[3].contains("operator-password: locked until 2026-11-02 14:01 UTC"), "{bob_row:?}");
    let cleared = r.post("/console/operators/bob/unlock", &[("scope", "operator-password")]).await;
    assert_eq!(cleared.location.as_deref(), Some("/console/operators"));
    let again = r.post("/console/operators/bob/unlock", &[("scope", "operator-password")]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "nothing left to clear");
    let rows = table(&r.get("/console/operators").await.body, "operators");
    assert_eq!(rows.iter().find(|row| row[0].contains("bob")).unwrap()[3], "none");
    let mut b = signed_in(&c, "bob", &bob).await;

    // A disabled operator's open session ends at the next request and cannot sign in again;
    // enabled again, the account works. The administrator cannot disable themself.
    assert_eq!(r.post("/console/operators/alice/disable", &[]).await.location.as_deref(), Some("/console/operators"));
    assert_eq!(a.get("/console").await.location.as_deref(), Some("/console/sign-in"));
    c.clock.advance(Duration::seconds(30));
    let disabled = sign_in(&mut a, "alice", PASSWORD, &oathtool(&alice, c.clock.now())).await;
    assert_eq!(disabled.status, StatusCode::UNAUTHORIZED);
    assert!(disabled.body.contains(REFUSED));
    r.get("/console/operators").await;
    let own = r.post("/console/operators/root/disable", &[]).await;
    assert!(own.body.contains("You cannot disable your own account"), "{}", own.body);
    r.post("/console/operators/alice/enable", &[]).await;
    let mut a = signed_in(&c, "alice", &alice).await;

    // An application is waiting for its forms.
    let id = application(&c, sample_form("medium-token"), Duration::ZERO, true).await;
    let page = a.get(&format!("/console/applications/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "<strong id=\"state\">email-verified</strong>",
        "The forms must arrive by 2026-12-16 (44 days left).",
        "Jane Q. Doe",
        "jane.doe@acme.example",
        "Acme, Inc.",
        "Medium Token Assurance, 2 year(s), $279.00",
        "Invoice against purchase order PO-2025/0042",
        "Record the forms received by mail",
    ] {
        assert!(page.body.contains(expected), "missing {expected:?} in {}", page.body);
    }
    assert!(!page.body.contains("/approve\""), "approval is not offered before vetting");

    // Forms: missing tracking, a tracking number not in the carrier's format, an unknown
    // document type later on — each 422 with the typed values, and nothing stored.
    refused(
        &c,
        &mut a,
        &id,
        "forms",
        &notarized(&[("tracking", "")]),
        &["Enter the tracking number.", "value=\"Pat Notary\"", "Nothing was recorded"],
    )
    .await;
    refused(
        &c,
        &mut a,
        &id,
        "forms",
        &notarized(&[("tracking", "12345")]),
        &["&#34;12345&#34; is not a UPS tracking number", "value=\"12345\""],
    )
    .await;
    // The domain's own check: a missing notary seal refuses the step, with its reason.
    refused(
        &c,
        &mut a,
        &id,
        "forms",
        &notarized(&[("seal", "no")]),
        &[
            "Not recorded: vetting found problems: The notary&#39;s official seal is missing",
            "value=\"1Z999AA10123456784\"",
        ],
    )
    .await;
    let page = accepted(&mut a, &id, "forms", NOTARIZED).await;
    for expected in [
        "The forms receipt is recorded.",
        "<strong id=\"state\">forms-received</strong>",
        "UPS 1Z999AA10123456784",
        "<dt>Notary seal present</dt><dd>yes</dd>",
        "<dt>Notarized on</dt><dd>2026-11-02</dd>",
        "The certificates must be retrieved by 2026-12-01 (29 days left).",
        "Record the organization officer call-back",
    ] {
        assert!(page.body.contains(expected), "missing {expected:?} in {}", page.body);
    }

    // Officer call-back.
    refused(
        &c,
        &mut a,
        &id,
        "callback",
        &[("officer_name", "Sam Officer"), ("phone", "12"), ("outcome", "confirmed")],
        &["is not a phone number", "value=\"Sam Officer\""],
    )
    .await;
    // An unanswered call keeps the application waiting; the confirming call went to the
    // applicant's own number, which the checks flag as a warning (not blocking).
    let page = accepted(
        &mut a,
        &id,
        "callback",
        &[("officer_name", "Sam Officer"), ("phone", "+1 206 555 0199"), ("outcome", "no-answer")],
    )
    .await;
    assert!(page.body.contains("Sam Officer at +12065550199: no-answer"), "{}", page.body);
    assert!(page.body.contains("<strong id=\"state\">forms-received</strong>"));
    let page = accepted(
        &mut a,
        &id,
        "callback",
        &[("officer_name", "Sam Officer"), ("phone", "(206) 555-0142"), ("outcome", "confirmed")],
    )
    .await;
    assert!(page.body.contains("Sam Officer at +12065550142: confirmed"), "{}", page.body);
    let warning = "<li class=\"finding-warning\">Warning: The number called is the applicant&#39;s own";
    assert!(page.body.contains(warning) && !page.body.contains("id=\"blocking\""), "{}", page.body);

    // Identity documents: an unknown type is refused; numbers are shown masked.
    let passport = [("type", "us-passport"), ("number", "A12345678"), ("expires", "2031-01-01")];
    refused(
        &c,
        &mut a,
        &id,
        "identity",
        &[("type", "library-card"), ("number", "LIB-0042"), ("expires", "")],
        &["&#34;library-card&#34; is not an accepted identity document type", "value=\"LIB-0042\""],
    )
    .await;
    let page = accepted(&mut a, &id, "identity", &passport).await;
    assert!(page.body.contains("<dt>U.S. passport</dt><dd>*****5678, expires 2031-01-01</dd>"), "{}", page.body);
    assert!(!page.body.contains("A12345678"), "the full document number is never shown");
    assert!(page.body.contains(warning) && !page.body.contains("id=\"blocking\""), "{}", page.body);

    // Two different operators approve; the same one twice is refused with the domain's words.
    accepted(&mut a, &id, "approve", &[]).await;
    refused(
        &c,
        &mut a,
        &id,
        "approve",
        &[],
        &["Not recorded: alice already approved this application; a different operator must give the second approval"],
    )
    .await;
    b.get(&format!("/console/applications/{id}")).await;
    let page = accepted(&mut b, &id, "approve", &[]).await;
    assert!(page.body.contains("<dt>First approval</dt><dd>alice at 2026-11-02 14:00 UTC</dd>"), "{}", page.body);
    assert!(page.body.contains("<dt>Second approval</dt><dd>bob at 2026-11-02 14:00 UTC</dd>"), "{}", page.body);

    // Ship the token; a blank reject reason is refused on the way.
    a.get(&format!("/console/applications/{id}")).await;
    refused(&c, &mut a, &id, "ship", &[("carrier", "fedex"), ("tracking", "")], &["Enter the tracking number."]).await;
    refused(
        &c,
        &mut a,
        &id,
        "ship",
        &[("carrier", "fedex"), ("tracking", "1Z999AA10123456784")],
        &["is not a FedEx tracking number", "value=\"1Z999AA10123456784\""],
    )
    .await;
    refused(&c, &mut a, &id, "reject", &[("reason", "   ")], &["Write the reason the applicant will read."]).await;
    in_stock(&c.state, "VT-0001").await;
    let page = accepted(
        &mut a,
        &id,
        "ship",
        &[("carrier", "fedex"), ("tracking", "1234 5678 9012"), ("token_serial", "VT-0001")],
    )
    .await;
    assert!(page.body.contains("<dt>Token shipped</dt><dd>FedEx 123456789012</dd>"), "{}", page.body);
    assert_eq!(state_of(&c, &id).await, "token-shipped");

    // A note, then the activation code; the history lists everything in order with who did it.
    refused(&c, &mut a, &id, "note", &[("note", "")], &["Write a note of 1 to 2000 characters."]).await;
    accepted(&mut a, &id, "note", &[("note", "Applicant called: <token> arrives Friday.")]).await;
    let page = accepted(&mut a, &id, "activation", &[]).await;
    assert!(page.body.contains("Activation code issued"), "{}", page.body);
    let history = table(&page.body, "history");
    let actions: Vec<&str> = history.iter().map(|row| row[2].as_str()).collect();
    assert_eq!(
        actions,
        [
            "application-submitted",
            "email-verified",
            "forms-received",
            "officer-call-attempted",
            "officer-confirmed",
            "identity-verified",
            "application-first-approval",
            "application-approved",
            "token-shipped",
            "note-added",
            "certificates-ready",
        ]
    );
    let note = &history[9];
    assert_eq!(
        (note[1].as_str(), note[3].as_str()),
        ("operator:alice", "Applicant called: &#60;token&#62; arrives Friday.")
    );
    assert_eq!(history[7][1], "operator:bob");
    let outbox = c.state.store().pending_outbox(c.clock.now(), 50).await.unwrap();
    assert!(
        outbox
            .iter()
            .any(|m| m.message.kind.name() == "activation-code" && m.message.to.as_str() == "jane.doe@acme.example")
    );

    // Reject and withdraw, each after its own refusal.
    let second = application(&c, sample_form("medium"), Duration::ZERO, true).await;
    a.get(&format!("/console/applications/{second}")).await;
    accepted(&mut a, &second, "reject", &[("reason", "The organization is not eligible.")]).await;
    assert_eq!(state_of(&c, &second).await, "rejected");
    let third = application(&c, sample_form("medium"), Duration::ZERO, false).await;
    a.get(&format!("/console/applications/{third}")).await;
    refused(&c, &mut a, &third, "withdraw", &[], &["Confirm that the applicant asked to withdraw."]).await;
    let page = accepted(&mut a, &third, "withdraw", &[("confirm", "yes")]).await;
    assert!(page.body.contains("<dt>Withdrawn</dt><dd>2026-11-02 14:00 UTC (was submitted)</dd>"), "{}", page.body);
    assert!(!page.body.contains("/withdraw\""), "a closed application offers no commands");

    // Signing out ends the session.
    let out = a.post("/console/sign-out", &[]).await;
    assert_eq!(out.location.as_deref(), Some("/console/sign-in"));
    assert_eq!(a.get("/console").await.location.as_deref(), Some("/console/sign-in"));

    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(verify_chain(&records), Ok(records.len()), "{backend}: the audit chain is intact");
}

signet_testkit::backend_test!(a_deficiency_finding_mails_the_applicant_and_shows_on_their_page, deficiency_run);

async fn deficiency_run(backend: &str) {
    use signet_ra::forms_mail::FormsMailed;
    use signet_ra::notify::MessageKind;
    use signet_ra::vetting::{Carrier, Tracking, TrackingNumber};
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let mut a = signed_in(&c, "alice", &alice).await;
    let id = application(&c, sample_form("medium-token"), Duration::days(3), true).await;
    let number = TrackingNumber::new(Carrier::Ups, "1Z999AA10123456784").unwrap();
    let mailed = FormsMailed { tracking: Tracking { carrier: Carrier::Ups, number }, at: c.clock.now() };
    c.state.store().audit(&mailed.event(&id)).await.unwrap();

    // The applicant's tracking number is shown and starts the receipt form.
    let page = a.get(&format!("/console/applications/{id}")).await;
    has(&page, &["Forms mailed (as the applicant told us)", "UPS 1Z999AA10123456784", "id=\"deficiency-form\""]);
    assert!(page.body.contains("<option value=\"ups\" selected>UPS</option>"), "{backend}: {}", page.body);
    assert!(page.body.contains("name=\"tracking\" value=\"1Z999AA10123456784\""), "{backend}: {}", page.body);

    refused(&c, &mut a, &id, "deficiency", &[("note", "")], &["Tick at least one problem."]).await;
    refused(&c, &mut a, &id, "deficiency", &[("problem", "other")], &["Say in the note what the other problem is."])
        .await;
    refused(&c, &mut a, &id, "deficiency", &[("problem", "coffee-stain")], &["Tick problems from the list."]).await;
    let outbox_before = c.state.store().pending_outbox(c.clock.now(), 50).await.unwrap().len();

    let page = accepted(
        &mut a,
        &id,
        "deficiency",
        &[("problem", "notary-seal-missing"), ("problem", "page-incomplete"), ("note", "Page 2 has no officer phone.")],
    )
    .await;
    has(&page, &["emailed what to re-send", "Forms to be re-sent", "Notary seal missing", "A page is incomplete"]);
    let last = c.state.store().audit_records().await.unwrap().pop().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("forms-deficient", "operator:alice"), "{backend}");
    let pending = c.state.store().pending_outbox(c.clock.now(), 50).await.unwrap();
    assert_eq!(pending.len(), outbox_before + 1, "{backend}: one mail, queued with the finding");
    let mail = &pending.last().unwrap().message;
    assert_eq!((mail.kind, mail.to.as_str()), (MessageKind::FormsDeficient, "jane.doe@acme.example"));
    let file = format!("{id}-identity-verification.pdf");
    for expected in [
        "official seal is not on the Identity Verification form",
        "A form has empty fields",
        "A note from our staff: Page 2 has no officer phone.",
        "100 Example Way, Suite 300",
        file.as_str(),
    ] {
        assert!(mail.body_text.contains(expected), "{backend}: {expected:?} missing from\n{}", mail.body_text);
    }

    // The applicant signs in and reads what to re-send.
    let mut applicant = Browser::new(&c.app);
    applicant.get("/").await;
    let signed = applicant.post("/applications/sign-in", &[("reference", id.as_str()), ("password", PASSWORD)]).await;
    assert_eq!(signed.location, Some(format!("/applications/{id}")), "{}", signed.body);
    let status = applicant.get(&format!("/applications/{id}")).await;
    has(
        &status,
        &[
            "We need you to re-send some forms",
            "A form has empty fields",
            "Page 2 has no officer phone.",
            "id=\"mailing-form\"",
        ],
    );
}

signet_testkit::backend_test!(queue_filters_flags_and_pages, queue_run);

async fn queue_run(backend: &str) {
    let c = console(backend).await;
    let secret = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let catalog = Catalog::default_eca();
    let agencies = AgencyCatalog::default_catalog(&catalog);
    let person = |name: &str, email: &str, organization: &str, cert_type: &str, program: &str| {
        let mut form = sample_form(cert_type);
        form.applicant.name = CommonName::new(name).unwrap();
        form.applicant.email = signet_pki::subject::Email::new(email).unwrap();
        form.organization = OrganizationName::new(organization).unwrap();
        form.certificate = CertificateChoice::new(&catalog, &PriceTable::default(), cert_type, 1).unwrap();
        form.program = agencies.program(program).unwrap();
        form
    };
    // Raj applied 40 days ago and has 4 days left: flagged, and first (oldest first).
    let raj = application(
        &c,
        person("Raj Patel", "raj@initech.example", "Initech LLC", "medium-hardware", "PIEE"),
        Duration::days(40),
        false,
    )
    .await;
    let jane = application(&c, sample_form("medium-token"), Duration::days(2), true).await;
    let li = application(
        &c,
        person("Li Wei", "li@globex.example", "100% Globex", "medium", "Integrate"),
        Duration::days(1),
        true,
    )
    .await;
    let now = c.clock.now();
    let closed = c.state.store().load(&li).await.unwrap().unwrap().apply(
        &Actor::Operator(OperatorId::new("alice").unwrap()),
        Command::Withdraw,
        now,
        &DeadlinePolicy::default(),
    );
    c.state.store().save_transition(&closed.unwrap(), &[]).await.unwrap();

    let mut a = signed_in(&c, "alice", &secret).await;
    let refs = |page: &Page| -> Vec<String> {
        if page.body.contains("id=\"empty\"") {
            Vec::new()
        } else {
            table(&page.body, "queue").into_iter().map(|r| r[0].clone()).collect()
        }
    };
    let open = a.get("/console").await;
    assert_eq!(refs(&open), [raj.as_str(), jane.as_str()]);
    let rows = table(&open.body, "queue");
    assert_eq!(
        rows[0][1..],
        ["Raj Patel raj@initech.example", "Initech LLC", "Medium Hardware Assurance", "submitted", "&#9873; 4 days"]
    );
    assert!(open.body.contains("<tr class=\"flagged\">"));
    assert_eq!(rows[1][4..], ["email-verified", "42 days"], "not flagged");

    for (query, expected) in [
        ("state=closed", vec![li.as_str()]),
        ("state=all", vec![raj.as_str(), jane.as_str(), li.as_str()]),
        ("state=submitted", vec![raj.as_str()]),
        ("type=medium-hardware", vec![raj.as_str()]),
        ("program=piee", vec![raj.as_str()]),
        ("program=integrate&state=all", vec![jane.as_str(), li.as_str()]),
        ("q=INITECH", vec![raj.as_str()]),
        ("q=jane.doe%40acme", vec![jane.as_str()]),
        ("q=acme", vec![jane.as_str()]),
        ("q=patel", vec![raj.as_str()]),
        ("state=all&q=100%25", vec![li.as_str()]),
        // '%' and '_' are literal characters in the search, not wildcards.
        ("state=all&q=0_%25", vec![]),
    ] {
        let page = a.get(&format!("/console?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert_eq!(refs(&page), expected, "{backend}: {query}");
    }
    let by_reference = a.get(&format!("/console?q={}", jane.as_str().to_lowercase())).await;
    assert_eq!(refs(&by_reference), [jane.as_str()]);
    assert!(by_reference.body.contains(&format!("value=\"{}\"", jane.as_str().to_lowercase())), "the search is kept");
    assert_eq!(a.get("/console?state=nonsense").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.get("/console?page=0").await.status, StatusCode::BAD_REQUEST);

    // Pages of 25: jane's 26 medium-token applications make two pages, with links that keep
    // the filter.
    for _ in 0..25 {
        application(&c, sample_form("medium-token"), Duration::ZERO, true).await;
    }
    let first = a.get("/console?type=medium-token&q=jane").await;
    assert_eq!(refs(&first).len(), 25);
    let next = first.body.split("id=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap().replace("&#38;", "&");
    let next = next.trim_end_matches("\" ");
    assert_eq!(next, "/console?state=&program=&type=medium-token&q=jane&page=2");
    let second = a.get(next).await;
    assert_eq!(refs(&second).len(), 1);
    assert!(second.body.contains("id=\"previous\"") && !second.body.contains("id=\"next\""));
    let all_open = a.get("/console?page=2").await;
    assert_eq!(refs(&all_open).len(), 2, "27 open applications");

    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(verify_chain(&records), Ok(records.len()));
}

/// Designates `id` as key recovery agent, as `signet admin key-recovery designate` does.
async fn designate(state: &AppState, id: &str) {
    let d = AgentDesignation::new(OperatorId::new(id).unwrap(), "cli:root", T0);
    state.store().designate_agent(&d, d.designated_event()).await.unwrap();
}

/// Stores a `cert_type` application submitted nine days ago and walks the first `steps` of
/// [`vetting_plan`] (email, forms, call-back, identity, two approvals, token shipped,
/// certificates ready: 8 in all).
async fn walked(c: &Console, cert_type: &str, steps: usize) -> ApplicationId {
    let mut at = c.clock.now() - Duration::days(9);
    let submitted = Application::submit(ApplicationId::generate(), sample_form(cert_type), at);
    c.state.store().create(&submitted, password_hash(), &[]).await.unwrap();
    let Some(IssuedSecret::EmailVerification(token)) = submitted.secret.clone() else { panic!("no email token") };
    let mut app = submitted.application;
    for (actor, command, wait) in vetting_plan(token, at.date(), cert_type).into_iter().take(steps) {
        at += wait;
        let t = app.apply(&actor, command, at, &DeadlinePolicy::default()).unwrap();
        c.state.store().save_transition(&t, &[]).await.unwrap();
        app = t.application;
    }
    app.id().clone()
}

fn serial(s: &str) -> TokenSerial {
    TokenSerial::new(s).unwrap()
}

/// Where the stock token `serial` is.
async fn token_state(c: &Console, s: &str) -> StockState {
    c.state.store().stock_token(&serial(s)).await.unwrap().expect("in the stock").state
}

/// The audit rows with `action`.
async fn audited(c: &Console, action: &str) -> Vec<signet_ra::audit::AuditRecord> {
    c.state.store().audit_records().await.unwrap().into_iter().filter(|r| r.action == action).collect()
}

async fn audit_len(c: &Console) -> usize {
    c.state.store().audit_records().await.unwrap().len()
}

fn has(page: &Page, expected: &[&str]) {
    for e in expected {
        assert!(page.body.contains(e), "missing {e:?} in {}", page.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Witnessed key generation

signet_testkit::backend_test!(witnessed_key_generation_on_the_application_page, witness_run);

async fn witness_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let bob = create_operator(&c.state, "bob", "Bob Checker", Role::RaOperator).await;
    let mut a = signed_in(&c, "alice", &alice).await;
    let mut b = signed_in(&c, "bob", &bob).await;

    // A hardware type before the token ships: not offered, and a post is refused.
    let approved = walked(&c, "medium-token", 6).await;
    assert_eq!(state_of(&c, &approved).await, "approved");
    let page = a.get(&format!("/console/applications/{approved}")).await;
    assert!(!page.body.contains("id=\"witness-form\""), "{backend}: not before the token ships");
    let early = a.post(&format!("/console/applications/{approved}/witness"), &[("note", "YubiKey 5 #0012345")]).await;
    assert_eq!(early.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", early.body);
    assert!(early.body.contains("only for hardware-key types, once the token is shipped"), "{}", early.body);
    assert_eq!(c.state.store().witness(&approved).await.unwrap(), None);

    // Medium Hardware with its token shipped: offered.
    let shipped = walked(&c, "medium-hardware", 7).await;
    assert_eq!(state_of(&c, &shipped).await, "token-shipped");
    let page = a.get(&format!("/console/applications/{shipped}")).await;
    assert!(page.body.contains("id=\"witness-form\""), "{backend}: offered once shipped: {}", page.body);

    // Medium Token, certificates ready: offered, nothing witnessed yet. (Walked through the
    // domain, so no stock token is bound: any well-formed serial is taken.)
    let id = walked(&c, "medium-token", 8).await;
    assert_eq!(state_of(&c, &id).await, "certificates-ready");
    let path = format!("/console/applications/{id}");
    let witness = format!("{path}/witness");
    let page = a.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    has(
        &page,
        &[
            "id=\"witness-form\"",
            &format!("action=\"{witness}\""),
            "<label for=\"witness-token\">Serial number printed on the token</label>",
            "name=\"token_serial\"",
            "name=\"note\"",
        ],
    );
    assert!(!page.body.contains("id=\"witnessed\""));

    // The serial is required: blank or malformed, the field says so and nothing is stored.
    for bad in ["", "  ", "0012 345", "x;y"] {
        let before = audit_len(&c).await;
        let p = a.post(&witness, &[("token_serial", bad), ("note", "RA office Seattle")]).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend} {bad:?}: {}", p.body);
        has(
            &p,
            &[
                "Please correct the fields marked below. Nothing was recorded.",
                "enter the serial number printed on the token the key was generated on",
                ">RA office Seattle</textarea>",
            ],
        );
        assert_eq!(c.state.store().witness(&id).await.unwrap(), None, "{backend}: nothing stored");
        assert_eq!(audit_len(&c).await, before, "{backend}: nothing audited");
    }

    // An empty or blank note: 422, the field explained, nothing stored.
    for blank in ["", "   \n  "] {
        let before = audit_len(&c).await;
        let p = a.post(&witness, &[("token_serial", "0012345"), ("note", blank)]).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
        has(
            &p,
            &[
                "Please correct the fields marked below. Nothing was recorded.",
                "describe the witnessed generation, e.g. where it took place",
                "id=\"witness-form\"",
                "value=\"0012345\"",
            ],
        );
        assert_eq!(c.state.store().witness(&id).await.unwrap(), None, "{backend}: nothing stored");
        assert_eq!(audit_len(&c).await, before, "{backend}: nothing audited");
    }
    // Too long (501 characters): refused too, and what was typed is kept.
    let long = "x".repeat(501);
    let p = a.post(&witness, &[("token_serial", "0012345"), ("note", &long)]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains(&long), "the typed note is kept");
    assert_eq!(c.state.store().witness(&id).await.unwrap(), None);

    // A proper record is kept (trimmed), shown with the operator and the token, and the form
    // goes away.
    let note = "YubiKey 5 NFC <PIV>, RA office Seattle";
    let p = a.post(&witness, &[("token_serial", " 0012345 "), ("note", &format!("  {note}\n"))]).await;
    assert_eq!(p.location, Some(format!("{path}?done=witness")), "{backend}: {}", p.body);
    let page = a.get(p.location.as_deref().unwrap()).await;
    has(
        &page,
        &[
            "The witnessed key generation is recorded.",
            "<p id=\"witnessed\">Key generation witnessed in person by alice on 2026-11-02 14:00 UTC, on token \
             0012345: YubiKey 5 NFC &#60;PIV&#62;, RA office Seattle</p>",
        ],
    );
    assert!(!page.body.contains("id=\"witness-form\""), "{backend}: recorded once, no longer offered");
    assert!(!page.body.contains("<PIV>"), "the note is escaped");
    let stored = c.state.store().witness(&id).await.unwrap().expect("recorded");
    assert_eq!((stored.operator.as_str(), stored.note.as_str(), stored.witnessed_at), ("alice", note, T0));
    assert_eq!(stored.token, Some(serial("0012345")));
    let rows = audited(&c, "key-generation-witnessed").await;
    assert_eq!(rows.len(), 1, "{backend}");
    assert_eq!((rows[0].actor.as_str(), rows[0].subject.as_str()), ("operator:alice", id.as_str()));
    let details: serde_json::Value = serde_json::from_str(&rows[0].details).unwrap();
    assert_eq!(details, serde_json::json!({ "note": note, "token_serial": "0012345" }));
    assert_eq!(state_of(&c, &id).await, "certificates-ready", "the application itself does not move");

    // A second record, by another operator, is refused: 409, the first one stands.
    let page = b.get(&path).await;
    assert!(page.body.contains("id=\"witnessed\"") && !page.body.contains("id=\"witness-form\""));
    let before = audit_len(&c).await;
    let again = b.post(&witness, &[("token_serial", "0012345"), ("note", "Another token")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{backend}: {}", again.body);
    assert!(again.body.contains("by alice on"), "the page still shows the recorded witness");
    assert!(again.body.contains("Not recorded: a witnessed key generation is already recorded"), "{}", again.body);
    assert_eq!(c.state.store().witness(&id).await.unwrap().unwrap().note, note);
    assert_eq!(audit_len(&c).await, before);

    // Shipped through the console with a stock token: the witness must name that token.
    let bound = walked(&c, "medium-hardware", 6).await;
    in_stock(&c.state, "WT-0042").await;
    a.get(&format!("/console/applications/{bound}")).await;
    accepted(
        &mut a,
        &bound,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "WT-0042")],
    )
    .await;
    refused(
        &c,
        &mut a,
        &bound,
        "witness",
        &[("token_serial", "WT-0043"), ("note", "RA office Seattle")],
        &[
            "The token shipped for this application has serial WT-0042; witness the generation on that token.",
            "value=\"WT-0043\"",
        ],
    )
    .await;
    assert_eq!(c.state.store().witness(&bound).await.unwrap(), None, "{backend}: another token is not witnessed");
    accepted(&mut a, &bound, "witness", &[("token_serial", "WT-0042"), ("note", "RA office Seattle")]).await;
    assert_eq!(c.state.store().witness(&bound).await.unwrap().unwrap().token, Some(serial("WT-0042")));

    // A software type (Medium), even with certificates ready: never offered, a post is refused.
    let software = walked(&c, "medium", 8).await;
    assert_eq!(state_of(&c, &software).await, "certificates-ready");
    let page = a.get(&format!("/console/applications/{software}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"witness-form\"") && !page.body.contains("id=\"witnessed\""));
    let before = audit_len(&c).await;
    let p = a
        .post(&format!("/console/applications/{software}/witness"), &[("token_serial", "0099"), ("note", "YubiKey 5")])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    assert_eq!(c.state.store().witness(&software).await.unwrap(), None);
    assert_eq!(audit_len(&c).await, before);

    // Forged (no CSRF token) and anonymous posts are refused; an unknown application is 404.
    let forged = a.post_raw(&witness, "note=forged".into()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("This form has expired"), "{}", forged.body);
    let mut anonymous = Browser::new(&c.app);
    anonymous.get("/console/sign-in").await;
    let p = anonymous.post(&format!("/console/applications/{shipped}/witness"), &[("note", "anonymous")]).await;
    assert_eq!(p.location.as_deref(), Some("/console/sign-in"));
    assert_eq!(c.state.store().witness(&shipped).await.unwrap(), None);
    let missing = a.post("/console/applications/7K2M9Q4T8V1W/witness", &[("note", "nobody")]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    assert!(c.state.store().verify_audit().await.unwrap().is_ok(), "{backend}: the audit chain is intact");
}

// ---------------------------------------------------------------------------------------------
// Token stock: the shipment binds a stock token; the stock page

signet_testkit::backend_test!(shipping_a_hardware_type_binds_a_stock_token, ship_run);

async fn ship_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let mut a = signed_in(&c, "alice", &alice).await;
    in_stock(&c.state, "ST-0001").await;
    in_stock(&c.state, "ST-0002").await;
    let id = walked(&c, "medium-token", 6).await;
    let page = a.get(&format!("/console/applications/{id}")).await;
    has(&page, &["<label for=\"ship-token\">", "name=\"token_serial\""]);
    let fedex = |tracking: &'static str, token: &'static str| {
        [("carrier", "fedex"), ("tracking", tracking), ("token_serial", token)]
    };

    // No serial for a hardware type: the field says why, beside the tracking number's own
    // error when that is wrong too; nothing is stored.
    let required = "A Medium Token Assurance certificate ships on a token from the stock: enter the serial number printed on \
         the token.";
    refused(&c, &mut a, &id, "ship", &fedex("1234 5678 9012", ""), &[required, "id=\"token-serial-error\""]).await;
    refused(
        &c,
        &mut a,
        &id,
        "ship",
        &fedex("", ""),
        &["Enter the tracking number.", required, "aria-describedby=\"token-serial-error\""],
    )
    .await;
    refused(
        &c,
        &mut a,
        &id,
        "ship",
        &fedex("1234", "x;y"),
        &["is not a FedEx tracking number", "a token serial is 1 to 32"],
    )
    .await;
    // A serial the stock does not know.
    refused(
        &c,
        &mut a,
        &id,
        "ship",
        &fedex("1234 5678 9012", "ST-9999"),
        &["token ST-9999 is not in the stock: provision it first", "value=\"ST-9999\""],
    )
    .await;
    assert_eq!(c.state.store().token_of(&id).await.unwrap(), None);

    // The right one ships, bound to the application in the same step.
    let page = accepted(&mut a, &id, "ship", &fedex("1234 5678 9012", " ST-0001 ")).await;
    assert!(page.body.contains("<dt>Token shipped</dt><dd>FedEx 123456789012</dd>"), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "<dt>Token</dt><dd>ST-0001 (SoftHSM project SoftHSM v2): shipped for application {id}</dd>"
        )),
        "{}",
        page.body
    );
    assert_eq!(state_of(&c, &id).await, "token-shipped");
    let bound = c.state.store().token_of(&id).await.unwrap().expect("a token is bound");
    assert_eq!((bound.serial.as_str(), bound.state), ("ST-0001", StockState::Shipped(id.clone())));
    let shipped = audited(&c, "token-shipped").await;
    assert_eq!(shipped.len(), 1, "{backend}: one event, the application's");
    assert_eq!((shipped[0].actor.as_str(), shipped[0].subject.as_str()), ("operator:alice", id.as_str()));
    let details: serde_json::Value = serde_json::from_str(&shipped[0].details).unwrap();
    assert_eq!(details["token_serial"], "ST-0001", "{details}");

    // The same token for another application is refused with where it is.
    let other = walked(&c, "medium-hardware", 6).await;
    a.get(&format!("/console/applications/{other}")).await;
    refused(
        &c,
        &mut a,
        &other,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784")],
        &["A Medium Hardware Assurance certificate ships on a token from the stock"],
    )
    .await;
    refused(
        &c,
        &mut a,
        &other,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "ST-0001")],
        &[&format!("token ST-0001 is shipped for application {id}, so it cannot be shipped")],
    )
    .await;
    assert_eq!(token_state(&c, "ST-0001").await, StockState::Shipped(id.clone()), "{backend}: still the first's");
    assert_eq!(c.state.store().token_of(&other).await.unwrap(), None);
    accepted(
        &mut a,
        &other,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "ST-0002")],
    )
    .await;
    assert_eq!(token_state(&c, "ST-0002").await, StockState::Shipped(other.clone()));

    // Medium keeps its software key: it ships without a serial, and no token is bound.
    let software = walked(&c, "medium", 6).await;
    a.get(&format!("/console/applications/{software}")).await;
    accepted(&mut a, &software, "ship", &fedex("1234 5678 9012", "")).await;
    assert_eq!(state_of(&c, &software).await, "token-shipped");
    assert_eq!(c.state.store().token_of(&software).await.unwrap(), None);

    assert!(c.state.store().verify_audit().await.unwrap().is_ok(), "{backend}: the audit chain is intact");
}

/// Issues a `medium-token-identity` certificate for `app` through the server's CA service, as
/// retrieval does (actor `applicant:<reference>`); returns its serial (lowercase hex).
async fn identity_certificate(c: &Console, app: &ApplicationId) -> String {
    let key = EncryptionKey::generate().unwrap();
    let application = c.state.store().load(app).await.unwrap().unwrap();
    let order = application.form().person_order("medium-token-identity".into());
    let actor = format!("{}:{app}", Actor::Applicant.audit_name());
    c.state.issue(&actor, &order, &key.csr().unwrap()).await.unwrap().serial.to_hex()
}

/// Issues a `device-tls` certificate as the subscriber of `app` creates one in the CMC (actor
/// `subscriber:<reference>`): its key is on a server, not on the token.
async fn device_certificate(c: &Console, app: &ApplicationId) -> String {
    let key = EncryptionKey::generate().unwrap();
    let application = c.state.store().load(app).await.unwrap().unwrap();
    let order = CertificateOrder {
        profile: "device-tls".into(),
        subject: Subject::Device {
            organization: application.form().organization.clone(),
            dns_names: vec![DnsName::new("app.acme.example").unwrap()],
        },
        validity_years: 1,
    };
    let actor = signet_ra::cmc::actor(app);
    c.state.issue(&actor, &order, &key.csr().unwrap()).await.unwrap().serial.to_hex()
}

/// The stored status of each of `app`'s certificates, by serial.
async fn statuses(c: &Console, app: &ApplicationId) -> Vec<(String, StoredStatus)> {
    let certs = c.state.store().account_certificates(app).await.unwrap();
    certs.into_iter().map(|c| (c.serial.to_hex(), c.status)).collect()
}

signet_testkit::backend_test!(token_stock_page_reports_lost_and_retires, stock_page_run);

async fn stock_page_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let mut a = signed_in(&c, "alice", &alice).await;
    let mut anonymous = Browser::new(&c.app);
    assert_eq!(anonymous.get("/console/tokens").await.location.as_deref(), Some("/console/sign-in"));

    // Empty at first; the nav links it.
    let page = a.get("/console/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    has(&page, &["<a href=\"/console/tokens\">Tokens</a>", "No token has been provisioned yet."]);

    in_stock(&c.state, "LS-0001").await;
    in_stock(&c.state, "LS-0002").await;
    in_stock(&c.state, "LS-0003").await;
    let id = walked(&c, "medium-token", 6).await;
    a.get(&format!("/console/applications/{id}")).await;
    accepted(
        &mut a,
        &id,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "LS-0001")],
    )
    .await;
    let identity = identity_certificate(&c, &id).await;
    let encryption = escrowed_certificate(&c, &id).await;
    let device = device_certificate(&c, &id).await;

    // Every token with its serial, make, state in words (the application linked) and the date
    // it was provisioned, readable.
    let page = a.get("/console/tokens").await;
    let rows = table(&page.body, "tokens");
    assert_eq!(rows.len(), 3, "{backend}: {rows:?}");
    let row_of = |rows: &[Vec<String>], s: &str| rows.iter().find(|r| r[0] == s).cloned().unwrap();
    assert_eq!(
        row_of(&rows, "LS-0001")[..4],
        [
            "LS-0001".to_owned(),
            "SoftHSM project SoftHSM v2".into(),
            format!("shipped for application {id}"),
            "2 November 2026 by cli:ra".into()
        ]
    );
    assert_eq!(row_of(&rows, "LS-0002")[2], "in stock");
    has(
        &page,
        &[
            &format!("<a href=\"/console/applications/{id}\">{id}</a>"),
            "action=\"/console/tokens/LS-0001/lost\"",
            "action=\"/console/tokens/LS-0002/retire\"",
            "<label><input type=\"checkbox\" name=\"confirm\" value=\"yes\"> Token LS-0001 is lost or stolen",
        ],
    );
    assert!(!page.body.contains("action=\"/console/tokens/LS-0001/retire\""), "a shipped token is not retired");
    assert!(!page.body.contains(&T0.unix_timestamp().to_string()), "no epochs on the page");

    // Without the confirmation, or without the form token: refused, nothing changes.
    let before = audit_len(&c).await;
    let p = a.post("/console/tokens/LS-0001/lost", &[]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    has(&p, &["Not recorded: tick the box to confirm that token LS-0001 is lost", "id=\"error-LS-0001\""]);
    let forged = a.post_raw("/console/tokens/LS-0001/lost", "confirm=yes".into()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("This form has expired"), "{}", forged.body);
    let forged = a.post_raw("/console/tokens/LS-0002/retire", String::new()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(token_state(&c, "LS-0001").await, StockState::Shipped(id.clone()));
    assert_eq!(token_state(&c, "LS-0002").await, StockState::InStock);
    assert!(statuses(&c, &id).await.iter().all(|(_, s)| *s == StoredStatus::Good));
    assert_eq!(audit_len(&c).await, before, "{backend}: nothing audited");
    // Anonymous posts go to sign-in; an unknown token is 404.
    anonymous.get("/console/sign-in").await;
    let p = anonymous.post("/console/tokens/LS-0001/lost", &[("confirm", "yes")]).await;
    assert_eq!(p.location.as_deref(), Some("/console/sign-in"));
    a.get("/console/tokens").await;
    assert_eq!(a.post("/console/tokens/LS-9999/lost", &[("confirm", "yes")]).await.status, StatusCode::NOT_FOUND);

    // Confirmed: the application's certificates are revoked for key compromise, the notice
    // names them, and the token is lost.
    let p = a.post("/console/tokens/LS-0001/lost", &[("confirm", "yes")]).await;
    assert_eq!(p.location.as_deref(), Some("/console/tokens?lost=LS-0001"), "{backend}: {}", p.body);
    let page = a.get(p.location.as_deref().unwrap()).await;
    let listed: Vec<String> =
        statuses(&c, &id).await.into_iter().map(|(serial, _)| serial).filter(|s| *s != device).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&identity) && listed.contains(&encryption), "{backend}: {listed:?}");
    let notice = format!(
        "Token LS-0001 is reported lost. Revoked for key compromise (application {id}): {}.",
        listed.join(", ")
    );
    has(&page, &[&notice]);
    let rows = table(&page.body, "tokens");
    assert_eq!(row_of(&rows, "LS-0001")[2], format!("lost; was shipped for application {id}"));
    assert!(!page.body.contains("action=\"/console/tokens/LS-0001/lost\""), "lost once");
    for (serial, status) in statuses(&c, &id).await {
        if serial == device {
            assert_eq!(status, StoredStatus::Good, "{backend}: a device certificate's key is not on the token");
            continue;
        }
        assert!(
            matches!(status, StoredStatus::Revoked { reason: RevocationReason::KeyCompromise, at } if at == T0),
            "{backend}: {serial} {status:?}"
        );
    }
    assert_eq!(token_state(&c, "LS-0001").await, StockState::Lost(Some(id.clone())));
    let lost = audited(&c, "token-lost").await;
    assert_eq!((lost.len(), lost[0].actor.as_str(), lost[0].subject.as_str()), (1, "operator:alice", "token:LS-0001"));
    let revoked = audited(&c, "certificate-revoked").await;
    assert_eq!(revoked.len(), 2, "{backend}");
    assert!(revoked.iter().all(|r| r.actor == "operator:alice"));
    // Again: refused with where it is.
    let again = a.post("/console/tokens/LS-0001/lost", &[("confirm", "yes")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    has(&again, &[&format!("token LS-0001 is lost (was application {id}&#39;s), so it cannot be reported lost")]);

    // A lost token never ships.
    let next = walked(&c, "medium-token", 6).await;
    a.get(&format!("/console/applications/{next}")).await;
    refused(
        &c,
        &mut a,
        &next,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "LS-0001")],
        &["token LS-0001 is lost (was application"],
    )
    .await;

    // An unshipped token is retired; then it neither ships nor retires again.
    a.get("/console/tokens").await;
    let p = a.post("/console/tokens/LS-0002/retire", &[]).await;
    assert_eq!(p.location.as_deref(), Some("/console/tokens?retired=LS-0002"), "{backend}: {}", p.body);
    let page = a.get(p.location.as_deref().unwrap()).await;
    has(&page, &["Token LS-0002 is retired; it will not be shipped."]);
    assert_eq!(row_of(&table(&page.body, "tokens"), "LS-0002")[2], "retired");
    assert_eq!(token_state(&c, "LS-0002").await, StockState::Retired);
    let again = a.post("/console/tokens/LS-0002/retire", &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    has(&again, &["Not recorded: token LS-0002 is retired, so it cannot be retired"]);
    a.get(&format!("/console/applications/{next}")).await;
    refused(
        &c,
        &mut a,
        &next,
        "ship",
        &[("carrier", "ups"), ("tracking", "1Z999AA10123456784"), ("token_serial", "LS-0002")],
        &["token LS-0002 is retired, so it cannot be shipped"],
    )
    .await;

    // A token lost on the shelf: nothing to revoke, and the notice says so.
    a.get("/console/tokens").await;
    let p = a.post("/console/tokens/LS-0003/lost", &[("confirm", "yes")]).await;
    let page = a.get(p.location.as_deref().unwrap()).await;
    has(&page, &["Token LS-0003 is reported lost. It had not been shipped, so no certificate was on it."]);
    assert_eq!(token_state(&c, "LS-0003").await, StockState::Lost(None));
    // A crafted notice link claims nothing the store does not say.
    let page = a.get("/console/tokens?lost=LS-0002&retired=LS-0001").await;
    assert!(!page.body.contains("id=\"notice\""), "{}", page.body);

    let records = c.state.store().audit_records().await.unwrap();
    assert_eq!(verify_chain(&records), Ok(records.len()), "{backend}: the audit chain is intact");
}

// ---------------------------------------------------------------------------------------------
// Key recovery

/// Issues a real `medium-token-encryption` certificate for `app` through the server's CA service
/// with its key escrowed first, as retrieval does (`retrieval.rs::issue_encryption`); returns its
/// serial (lowercase hex).
async fn escrowed_certificate(c: &Console, app: &ApplicationId) -> String {
    let krk = SoftwareRecoveryKey::generate().unwrap();
    let krk = RecoveryKeyPublic::from_spki(krk.public_key_spki()).unwrap();
    let key = EncryptionKey::generate().unwrap();
    let escrow = EscrowedKey {
        spki_sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.spki())),
        application: app.clone(),
        krk_id: krk.key_id_hex(),
        envelope: key.escrow(&krk).unwrap(),
        created_at: c.clock.now(),
    };
    let actor = format!("{}:{app}", Actor::Applicant.audit_name());
    c.state.store().save_escrow(&escrow, escrow.escrowed_event(&actor)).await.unwrap();
    let application = c.state.store().load(app).await.unwrap().unwrap();
    let order = application.form().person_order("medium-token-encryption".into());
    let cert = c.state.issue(&actor, &order, &key.csr().unwrap()).await.unwrap();
    let serial = cert.serial.to_hex();
    let found = c.state.store().escrow_of_serial(&serial).await.unwrap().expect("the escrow is found by serial");
    assert_eq!(found.spki_sha256, escrow.spki_sha256);
    serial
}

async fn requests(c: &Console) -> Vec<RecoveryRequest> {
    c.state.store().requests().await.unwrap()
}

/// The text of the request row `id`, tags stripped.
fn row(body: &str, id: &str) -> String {
    let start = body.find(&format!("<tr id=\"request-{id}\">")).unwrap_or_else(|| panic!("no row {id}: {body}"));
    strip_tags(&body[start..start + body[start..].find("</tr>").unwrap()])
}

signet_testkit::backend_test!(key_recovery_requests_and_two_agent_approval, recovery_run);

async fn recovery_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Agent", Role::RaOperator).await;
    let bob = create_operator(&c.state, "bob", "Bob Agent", Role::RaOperator).await;
    let carol = create_operator(&c.state, "carol", "Carol Vetter", Role::RaOperator).await;
    designate(&c.state, "alice").await;
    designate(&c.state, "bob").await;
    let app = walked(&c, "medium-token", 8).await;
    let serial = escrowed_certificate(&c, &app).await;
    let request_form = |serial: &str, reason: &str, code: &str| {
        vec![
            ("serial", serial.to_owned()),
            ("reason", reason.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("code", code.to_owned()),
        ]
    };
    async fn post(b: &mut Browser, path: &str, fields: &[(&'static str, String)]) -> Page {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post(path, &pairs).await
    }

    // Each operator signs in at T0 (their first TOTP step); every later action of the same
    // operator takes a code of a later step, so the clock moves 30 s between them.
    let mut a = signed_in(&c, "alice", &alice).await;
    let mut b = signed_in(&c, "bob", &bob).await;
    let mut k = signed_in(&c, "carol", &carol).await;
    let next = |c: &Console| c.clock.advance(Duration::seconds(30));

    // The page is linked from the console's navigation.
    assert!(k.get("/console").await.body.contains("href=\"/console/key-recovery\""));

    // Carol is not an agent: told so, no request form, and a post is refused even with the
    // right password and a fresh code.
    let page = k.get(RECOVERY_PAGE).await;
    assert_eq!(page.status, StatusCode::OK);
    has(&page, &["id=\"not-agent\"", "No requests."]);
    assert!(!page.body.contains("id=\"request-form\""));
    next(&c);
    let reason = "Employee left; the legal hold needs the mail archive.";
    let p =
        post(&mut k, "/console/key-recovery/request", &request_form(&serial, reason, &oathtool(&carol, c.clock.now())))
            .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{backend}: {}", p.body);
    has(&p, &["Not recorded: only designated key recovery agents may request or approve a recovery"]);
    assert!(requests(&c).await.is_empty(), "{backend}: nothing stored");
    assert!(audited(&c, "key-recovery-requested").await.is_empty());

    // Alice is an agent: the request form is offered.
    let page = a.get(RECOVERY_PAGE).await;
    assert!(page.body.contains("id=\"request-form\"") && !page.body.contains("id=\"not-agent\""), "{}", page.body);

    // A wrong code (or a wrong password) is refused, 401, the typed serial and reason kept.
    let code = oathtool(&alice, c.clock.now());
    let p = post(&mut a, "/console/key-recovery/request", &request_form(&serial, reason, &wrong(&code))).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: {}", p.body);
    has(&p, &[REFUSED, &format!("value=\"{serial}\""), "Employee left; the legal hold"]);
    let mut bad_password = request_form(&serial, reason, &code);
    bad_password[2].1 = "Quill-Harbor-Sextant-00".into();
    let p = post(&mut a, "/console/key-recovery/request", &bad_password).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: {}", p.body);
    assert!(requests(&c).await.is_empty(), "{backend}: nothing stored");
    assert!(audited(&c, "key-recovery-requested").await.is_empty());

    // The right code opens the request; the serial may be typed in capitals with spaces.
    let p = post(
        &mut a,
        "/console/key-recovery/request",
        &request_form(&format!("  {}  ", serial.to_uppercase()), &format!("  {reason} "), &code),
    )
    .await;
    assert_eq!(p.location.as_deref(), Some("/console/key-recovery?done=request"), "{backend}: {}", p.body);
    let stored = requests(&c).await;
    assert_eq!(stored.len(), 1);
    let r = &stored[0];
    let id = r.id.to_string();
    assert_eq!(
        (r.serial.as_str(), &r.application, r.reason.as_str(), r.requested_by.as_str()),
        (serial.as_str(), &app, reason, "alice")
    );
    assert_eq!(r.state, RecoveryState::Pending { first_approver: None });
    let page = a.get(p.location.as_deref().unwrap()).await;
    has(&page, &["The request is open; it needs the approval of two different agents."]);
    assert_eq!(
        row(&page.body, &id),
        format!(
            "{id} {serial} {app} {reason} alice on 2026-11-02 14:00 UTC waiting for two approvals Password Code Approve"
        )
    );
    let requested = audited(&c, "key-recovery-requested").await;
    assert_eq!(requested.len(), 1, "{backend}");
    assert_eq!((requested[0].actor.as_str(), requested[0].subject.as_str()), ("operator:alice", app.as_str()));
    let details: serde_json::Value = serde_json::from_str(&requested[0].details).unwrap();
    assert_eq!((details["serial"].as_str(), details["request"].as_str()), (Some(serial.as_str()), Some(id.as_str())));
    let approve = format!("/console/key-recovery/{id}/approve");
    let approval = |code: &str| vec![("password", PASSWORD.to_owned()), ("code", code.to_owned())];

    // The same code cannot be used again, even for the next action.
    let p = post(&mut a, &approve, &approval(&code)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{backend}: a code works once: {}", p.body);

    // Alice (the requester) may give the first approval; it counts once.
    next(&c);
    let p = post(&mut a, &approve, &approval(&oathtool(&alice, c.clock.now()))).await;
    assert_eq!(p.location.as_deref(), Some("/console/key-recovery?done=approve"), "{backend}: {}", p.body);
    let page = a.get(p.location.as_deref().unwrap()).await;
    has(&page, &["Your approval is recorded."]);
    assert!(
        row(&page.body, &id).ends_with("approved by alice; waiting for a second agent"),
        "{}",
        row(&page.body, &id)
    );
    assert!(!page.body.contains(&format!("action=\"{approve}\"")), "not offered to the first approver again");
    next(&c);
    let p = post(&mut a, &approve, &approval(&oathtool(&alice, c.clock.now()))).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    has(
        &p,
        &[
            "Not recorded: you already approved this recovery; the second approval must come from a different key recovery agent",
        ],
    );
    let r = c.state.store().request(&stored[0].id).await.unwrap().unwrap();
    assert_eq!(r.state, RecoveryState::Pending { first_approver: Some(OperatorId::new("alice").unwrap()) });
    assert_eq!(r.version, 1);
    assert_eq!(audited(&c, "key-recovery-approved").await.len(), 1, "{backend}");

    // A serial without an escrowed key, and an empty reason: readable refusals, nothing stored.
    next(&c);
    let p =
        post(&mut a, "/console/key-recovery/request", &request_form("0AFF", reason, &oathtool(&alice, c.clock.now())))
            .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    has(
        &p,
        &["Not recorded: certificate 0aff has no escrowed key (only encryption keys are escrowed)", "value=\"0AFF\""],
    );
    next(&c);
    let p =
        post(&mut a, "/console/key-recovery/request", &request_form(&serial, "  ", &oathtool(&alice, c.clock.now())))
            .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    has(&p, &["Not recorded: give the reason for recovering this key (1 to 500 characters)"]);
    assert_eq!(requests(&c).await.len(), 1, "{backend}: nothing stored");
    assert_eq!(audited(&c, "key-recovery-requested").await.len(), 1);

    // Forms posted without the session's CSRF token, or with another session's, are refused.
    let page = b.get(RECOVERY_PAGE).await;
    assert!(page.body.contains(&format!("action=\"{approve}\"")), "offered to the second agent: {}", page.body);
    let before = audit_len(&c).await;
    let bob_code = oathtool(&bob, c.clock.now());
    let body = |extra: &str| format!("password={PASSWORD}&code={bob_code}{extra}");
    for forged in [body(""), body(&format!("&_csrf={}", a.csrf.clone().unwrap()))] {
        let p = b.post_raw(&approve, forged).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{backend}: {}", p.body);
        assert!(p.body.contains("This form has expired"), "{}", p.body);
    }
    let p = b.post_raw("/console/key-recovery/request", format!("serial={serial}&reason=x&{}", body(""))).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(audit_len(&c).await, before, "{backend}: a forged form changes nothing");
    assert_eq!(c.state.store().request(&stored[0].id).await.unwrap().unwrap().version, 1);

    // Carol cannot approve; an unknown request is 404.
    let p = post(&mut k, &approve, &approval(&oathtool(&carol, c.clock.now()))).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{backend}: {}", p.body);
    let p = post(&mut b, "/console/key-recovery/ABCDEFGHJKMN/approve", &approval(&bob_code)).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{backend}: {}", p.body);
    has(&p, &["Not recorded: no key recovery request ABCDEFGHJKMN"]);
    let p = post(&mut b, "/console/key-recovery/not-a-reference/approve", &approval(&bob_code)).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    // Bob, a different agent, gives the second approval (bob's code was spent on the unknown
    // request above, so a fresh step).
    next(&c);
    b.get(RECOVERY_PAGE).await;
    let p = post(&mut b, &approve, &approval(&oathtool(&bob, c.clock.now()))).await;
    assert_eq!(p.location.as_deref(), Some("/console/key-recovery?done=approve"), "{backend}: {}", p.body);
    let page = b.get(p.location.as_deref().unwrap()).await;
    assert!(
        row(&page.body, &id).ends_with("approved by alice and bob; an approver may export it on the CA host"),
        "{}",
        row(&page.body, &id)
    );
    assert!(!page.body.contains(&format!("action=\"{approve}\"")), "nothing left to approve");
    let r = c.state.store().request(&stored[0].id).await.unwrap().unwrap();
    let approvers = [OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap()];
    assert_eq!((r.state, r.version), (RecoveryState::Approved { approvers }, 2));
    let approved = audited(&c, "key-recovery-approved").await;
    assert_eq!(
        approved.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>(),
        ["operator:alice", "operator:bob"],
        "{backend}"
    );

    // Approved means no more approvals, even by an agent.
    next(&c);
    let p = post(&mut a, &approve, &approval(&oathtool(&alice, c.clock.now()))).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}: {}", p.body);
    has(&p, &["Not recorded: this recovery request is no longer waiting for approval"]);

    // Carol's page lists the request too, without any form.
    let page = k.get(RECOVERY_PAGE).await;
    assert!(row(&page.body, &id).contains("approved by alice and bob"));
    assert!(!page.body.contains(&format!("action=\"{approve}\"")));

    let chain = c.state.store().verify_audit().await.unwrap();
    assert!(chain.is_ok(), "{backend}: the audit chain is intact: {chain:?}");
}

signet_testkit::backend_test!(organizations_page_confirms_merges_and_rejects, organizations_run);

/// Registers `name` as a submitted application does: pending.
async fn registered(c: &Console, name: &str) -> signet_ra::application::Organization {
    let org = signet_ra::application::Organization::new(OrganizationName::new(name).unwrap());
    c.state.store().create_organization(&org, org.created_event(T0, &Actor::Applicant)).await.unwrap();
    org
}

async fn status_of(c: &Console, org: &signet_ra::application::Organization) -> &'static str {
    c.state.store().registered_organization(&org.key).await.unwrap().unwrap().status.name()
}

async fn organizations_run(backend: &str) {
    let c = console(backend).await;
    let alice = create_operator(&c.state, "alice", "Alice Vetter", Role::RaOperator).await;
    let initech = registered(&c, "Initech LLC").await;
    let software = registered(&c, "Initech Software").await;
    let shady = registered(&c, "Totally Real Org").await;
    let mut a = signed_in(&c, "alice", &alice).await;

    let page = a.get("/console/organizations").await;
    assert_eq!(page.status, StatusCode::OK, "{backend}");
    assert!(page.body.contains("href=\"/console/organizations\""), "the console links it");
    let pending = table(&page.body, "pending");
    assert_eq!(pending.len(), 3, "three waiting: {pending:?}");
    assert!(c.state.store().search_organizations("initech", 10).await.unwrap().is_empty());

    // A forged form changes nothing.
    let forged = a.post_raw("/console/organizations", format!("organization={}&decision=confirm", initech.key)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&c, &initech).await, "pending");

    let done =
        a.post("/console/organizations", &[("organization", initech.key.as_str()), ("decision", "confirm")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let shown = a.get(done.location.as_deref().unwrap()).await;
    assert!(shown.body.contains("Initech LLC is confirmed: applicants are now offered it."), "{}", shown.body);
    assert_eq!(c.state.store().search_organizations("initech", 10).await.unwrap(), vec![initech.clone()]);

    // A merge needs its target; the refusal is shown beside the organization, nothing stored.
    let no_target =
        a.post("/console/organizations", &[("organization", software.key.as_str()), ("decision", "merge")]).await;
    assert_eq!(no_target.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", no_target.body);
    assert!(no_target.body.contains("choose the confirmed organization to merge Initech Software into"));
    assert_eq!(status_of(&c, &software).await, "pending");
    let merged = a
        .post(
            "/console/organizations",
            &[("organization", software.key.as_str()), ("decision", "merge"), ("into", initech.key.as_str())],
        )
        .await;
    let shown = a.get(merged.location.as_deref().unwrap()).await;
    assert!(shown.body.contains("Initech Software is merged into Initech LLC"), "{}", shown.body);
    assert_eq!(c.state.store().find_organizations(&software.key).await.unwrap(), vec![initech.clone()]);

    let rejected =
        a.post("/console/organizations", &[("organization", shady.key.as_str()), ("decision", "reject")]).await;
    let shown = a.get(rejected.location.as_deref().unwrap()).await;
    assert!(shown.body.contains("Totally Real Org is rejected"), "{}", shown.body);
    assert!(shown.body.contains("No organization is waiting."));
    assert!(shown.body.contains("Initech Software: merged into Initech LLC"), "{}", shown.body);

    // A decision is taken once: a second one (say, from an old page) is refused and stores nothing.
    let before = audit_len(&c).await;
    let again =
        a.post("/console/organizations", &[("organization", shady.key.as_str()), ("decision", "confirm")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("Totally Real Org was already rejected"), "{}", again.body);
    assert_eq!((status_of(&c, &shady).await, audit_len(&c).await), ("rejected", before));
    let unknown = a.post("/console/organizations", &[("organization", "no such org"), ("decision", "confirm")]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    for action in ["organization-confirmed", "organization-merged", "organization-rejected"] {
        let records = audited(&c, action).await;
        assert_eq!(records.len(), 1, "{backend} {action}");
        assert_eq!(records[0].actor, "operator:alice");
    }
    assert!(c.state.store().verify_audit().await.unwrap().is_ok());
}

/// A console whose RA requires operators to sign in with passkeys.
async fn console_requiring_passkeys(backend: &str) -> Console {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("operator-aaguids.txt");
    std::fs::write(&allowed, "# the RA's security keys\nee882879-721c-4913-9775-3dfcce97072a\n").unwrap();
    let config = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(db.url.clone()),
        passkeys: signet_authority::config::PasskeysConfig {
            operators: Some("required".into()),
            operator_authenticators: Some(allowed),
        },
        ..Default::default()
    };
    let settings = config.into_settings().unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let state = build_state(&settings, "https://ra.example.test", clock.clone()).await.unwrap();
    Console { app: app(state.clone()), state, clock, _dir: dir, _db: db }
}

/// Where passkeys are required: an operator without one signs in with a code and is held on
/// the passkey page; once they have one, a code alone no longer signs them in, a passkey answer
/// that does not check out is refused like any wrong sign-in, and the last passkey stays. (The
/// passkey itself — registration and signature with a real authenticator — is the browser
/// walk's; here it is a stored credential.)
async fn required_passkeys_run(backend: &str) {
    let c = console_requiring_passkeys(backend).await;
    let secret = create_operator(&c.state, "alice", "Alice Adams", Role::RaOperator).await;
    let mut b = Browser::new(&c.app);
    let p = sign_in(&mut b, "alice", PASSWORD, &oathtool(&secret, c.clock.now())).await;
    assert_eq!(p.location.as_deref(), Some("/console"), "{}", p.body);
    for page in ["/console", "/console/tokens", "/console/organizations"] {
        assert_eq!(b.get(page).await.location.as_deref(), Some("/console/passkeys"), "{page} waits for a passkey");
    }
    let p = b.get("/console/passkeys").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"passkey-required\"") && p.body.contains("data-passkey=\"create\""), "{}", p.body);
    // A registration without the browser's answer is refused readably, nothing stored.
    let p = b.post("/console/passkeys", &[("name", "YubiKey"), ("code", "")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("Create passkey"), "{}", p.body);

    let owner = PasskeyOwner::Operator("alice".into());
    let key = Passkey {
        credential_id: vec![9; 16],
        owner: owner.clone(),
        user_handle: [1; 16],
        name: PasskeyName::new("YubiKey").unwrap(),
        aaguid: Aaguid::parse("ee882879-721c-4913-9775-3dfcce97072a").unwrap(),
        static_state: vec![0; 8],
        dynamic_state: [0; 7],
        created_at: T0,
        last_used_at: None,
    };
    let event = AuditEvent::new(T0, "operator:alice", AuditAction::PasskeyRegistered, "alice", serde_json::json!({}));
    c.state.store().add_passkey(&key, event, None).await.unwrap();
    assert_eq!(b.get("/console").await.status, StatusCode::OK, "with a passkey the console opens");
    let p = b.get("/console/passkeys").await;
    assert!(p.body.contains("YubiKey") && p.body.contains("ee882879-721c-4913-9775-3dfcce97072a"), "{}", p.body);
    let p = b.post(&format!("/console/passkeys/{}/remove", key.id_text()), &[("code", "")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("add another passkey before you remove your last one"), "{}", p.body);
    assert_eq!(c.state.store().passkeys(&owner).await.unwrap().len(), 1);

    // Now the right password and a fresh code are refused like any wrong sign-in…
    c.clock.advance(Duration::seconds(30));
    let mut b = Browser::new(&c.app);
    let p = sign_in(&mut b, "alice", PASSWORD, &oathtool(&secret, c.clock.now())).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    assert!(p.body.contains(REFUSED));
    // …and so is a passkey answer that is not one, or whose challenge state was forged.
    let p = b
        .post(
            "/console/sign-in",
            &[("operator", "alice"), ("password", PASSWORD), ("passkey", "{}"), ("passkey_state", "AAAA")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    assert!(p.body.contains(REFUSED));
}

signet_testkit::backend_test!(operators_required_to_use_passkeys, required_passkeys_run);

#[test]
fn passkey_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let with = |operators: &str, list: Option<&str>| {
        let file = list.map(|text| {
            let p = dir.path().join("aaguids.txt");
            std::fs::write(&p, text).unwrap();
            p
        });
        ServerConfig {
            passkeys: signet_authority::config::PasskeysConfig {
                operators: Some(operators.into()),
                operator_authenticators: file,
            },
            ..Default::default()
        }
        .into_settings()
        .map(|s| s.operator_passkeys.required)
        .map_err(|e| e.to_string())
    };
    assert_eq!(with("required", None), Ok(true));
    assert_eq!(with("optional", None), Ok(false));
    assert!(with("sometimes", None).unwrap_err().contains("neither \"required\" nor \"optional\""));
    assert!(with("required", Some("# none yet\n")).unwrap_err().contains("no AAGUID"));
    assert!(with("required", Some("cb69481e-8ff7\n")).unwrap_err().contains("line 1"));
}
