//! Enrollment storage (`ApplicationStore`), run against both SQLite and PostgreSQL: applications
//! driven through the real domain lifecycle, optimistic concurrency, the outbox and organizations.

use std::sync::OnceLock;

use signet_pki::profile::Catalog;
use signet_pki::subject::{Email, OrganizationName};
use signet_ra::application::{
    Actor, Application, ApplicationForm, ApplicationId, ApplicationStore, Command, IssuedSecret, NewPassword,
    OperatorId, Organization, OrganizationKey, PasswordHash, Transition,
};
use signet_ra::issuance::StoreError;
use signet_ra::notify::{MessageKind, Notifier, OutboxMessage};
use signet_ra::organization::OrganizationStatus;
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::{Clock, FakeClock};
use signet_store::Store;
use sqlx::Row;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::common::backend_test;

const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);

fn form() -> ApplicationForm {
    signet_ra::fixtures::sample_form("medium-token")
}

fn notifier() -> Notifier {
    Notifier::new("https://ra.example.gov", &Catalog::default_eca(), DeadlinePolicy::default())
}

/// Argon2id is deliberately slow: hash once per test binary.
fn password() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let email = Email::new("jane.doe@acme.example").unwrap();
        PasswordHash::new(&NewPassword::new("plover-quartz-meander-41", &email).unwrap()).unwrap()
    })
}

fn op(name: &str) -> Actor {
    Actor::Operator(OperatorId::new(name).unwrap())
}

fn step(app: Application, actor: &Actor, command: Command, clock: &FakeClock) -> Transition {
    app.apply(actor, command, clock.now(), &DeadlinePolicy::default()).unwrap()
}

/// Submits a new application and stores it with its outbox; returns the submission.
async fn submit(store: &Store, clock: &FakeClock) -> Transition {
    let t = Application::submit(ApplicationId::generate(), form(), clock.now());
    store.create(&t, password(), &notifier().outbox_for(&t)).await.unwrap();
    t
}

async fn audit_rows(store: &Store) -> usize {
    store.audit_records().await.unwrap().len()
}

async fn outbox_rows(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(store.pool()).await.unwrap().get(0)
}

fn message(key: &str) -> OutboxMessage {
    OutboxMessage {
        to: Email::new("jane.doe@acme.example").unwrap(),
        subject: "3 days are left".into(),
        body_text: "Hello".into(),
        kind: MessageKind::DeadlineReminder,
        dedup_key: key.into(),
    }
}

backend_test!(create_and_load_round_trip, |store| async move {
    let clock = FakeClock::at(T0);
    let t = submit(&store, &clock).await;
    let app = &t.application;
    assert_eq!(store.load(app.id()).await.unwrap().as_ref(), Some(app));
    assert_eq!(store.load(&ApplicationId::generate()).await.unwrap(), None);

    // The same reference again: refused, and nothing (not even the audit row) is written.
    let before = audit_rows(&store).await;
    let again = store.create(&t, password(), &[]).await;
    assert!(matches!(again, Err(StoreError::Conflict("id"))), "{again:?}");
    assert_eq!(audit_rows(&store).await, before);

    // No secret in clear: the password as its PHC string, the email token as a digest.
    let row = sqlx::query("SELECT password_phc, state_data FROM applications WHERE id = $1")
        .bind(app.id().as_str())
        .fetch_one(store.pool())
        .await
        .unwrap();
    let phc: String = row.get(0);
    let state_data: String = row.get(1);
    assert!(PasswordHash::from_phc(&phc).unwrap().verify("plover-quartz-meander-41"));
    let Some(IssuedSecret::EmailVerification(token)) = &t.secret else { panic!("no email token") };
    assert!(!state_data.contains(token.expose()));

    // The verification email was queued with the application.
    let pending = store.pending_outbox(clock.now(), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message.kind, MessageKind::EmailVerification);
    assert_eq!(pending[0].message.to.as_str(), "jane.doe@acme.example");
    assert!(pending[0].message.body_text.contains(token.expose()));
    assert_eq!(store.verify_audit().await.unwrap(), Ok(1));
});

backend_test!(happy_path_through_the_domain, |store| async move {
    let clock = FakeClock::at(T0);
    let notifier = notifier();
    let submitted = submit(&store, &clock).await;
    let Some(IssuedSecret::EmailVerification(token)) = submitted.secret.clone() else { panic!("no token") };
    let id = submitted.application.id().clone();
    let plan =
        signet_ra::fixtures::vetting_plan(token, T0.date(), submitted.application.form().certificate.cert_type());
    for (actor, command, wait) in plan {
        clock.advance(wait);
        // Each step starts from what the store holds, as a web request would.
        let app = store.load(&id).await.unwrap().unwrap();
        let t = step(app, &actor, command, &clock);
        store.save_transition(&t, &notifier.outbox_for(&t)).await.unwrap();
        assert_eq!(store.load(&id).await.unwrap().as_ref(), Some(&t.application), "{}", t.audit.action.name());
        if let Some(IssuedSecret::Activation(code)) = &t.secret {
            // Only the digest is stored; the code travels in the outbox message alone.
            let data: String = sqlx::query("SELECT state_data FROM applications WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get(0);
            assert!(!data.contains(&code.expose()));
            clock.advance(Duration::days(1));
            let t = step(t.application, &Actor::Applicant, Command::Retrieve(code.clone()), &clock);
            store.save_transition(&t, &notifier.outbox_for(&t)).await.unwrap();
        }
    }
    let app = store.load(&id).await.unwrap().unwrap();
    assert_eq!((app.state().state_name(), app.revision()), ("retrieved", 9));
    // Submission plus nine transitions, one chained audit row each.
    assert_eq!(store.verify_audit().await.unwrap(), Ok(10));
    assert!(store.open_applications(None, 10).await.unwrap().is_empty(), "retrieved is closed");

    let pending = store.pending_outbox(clock.now(), 100).await.unwrap();
    let kinds: Vec<MessageKind> = pending.iter().map(|m| m.message.kind).collect();
    assert_eq!(
        kinds,
        [
            MessageKind::EmailVerification,
            MessageKind::FormsReceived,
            MessageKind::Approved,
            MessageKind::TokenShipped,
            MessageKind::ActivationCode,
        ]
    );
    // Delivery blanks the body that carried the activation code.
    let activation = &pending[4];
    store.mark_sent(activation.id, clock.now()).await.unwrap();
    assert_eq!(store.pending_outbox(clock.now(), 100).await.unwrap().len(), 4);
    let body: String = sqlx::query("SELECT body_text FROM outbox WHERE id = $1")
        .bind(activation.id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, "");
    assert!(matches!(store.mark_sent(activation.id, clock.now()).await, Err(StoreError::NotFound)));
});

backend_test!(stale_revision_is_a_conflict_and_writes_nothing, |store| async move {
    let clock = FakeClock::at(T0);
    let submitted = submit(&store, &clock).await;
    let Some(IssuedSecret::EmailVerification(token)) = submitted.secret.clone() else { panic!("no token") };
    let original = submitted.application;

    // Two actors start from revision 0; the applicant saves first.
    let verified = step(original.clone(), &Actor::Applicant, Command::VerifyEmail(token), &clock);
    store.save_transition(&verified, &[]).await.unwrap();
    let rejected = step(
        original.clone(),
        &op("carol"),
        Command::Reject(signet_ra::application::Reason::new("duplicate").unwrap()),
        &clock,
    );
    let (audit_before, outbox_before) = (audit_rows(&store).await, outbox_rows(&store).await);
    let outcome = store.save_transition(&rejected, &notifier().outbox_for(&rejected)).await;
    assert!(matches!(outcome, Err(StoreError::Conflict("revision"))), "{outcome:?}");
    assert_eq!(audit_rows(&store).await, audit_before, "the audit row rolled back");
    assert_eq!(outbox_rows(&store).await, outbox_before, "the rejection notice rolled back");
    assert_eq!(store.load(original.id()).await.unwrap().unwrap(), verified.application);

    // A transition of an application that was never stored.
    let stray = Application::submit(ApplicationId::generate(), form(), clock.now()).application;
    let t = step(stray, &Actor::Applicant, Command::Withdraw, &clock);
    assert!(matches!(store.save_transition(&t, &[]).await, Err(StoreError::NotFound)));
    assert_eq!(audit_rows(&store).await, audit_before);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(audit_before));
});

backend_test!(outbox_skips_duplicate_dedup_keys, |store| async move {
    let clock = FakeClock::at(T0);
    let submitted = submit(&store, &clock).await;
    let queued = store.pending_outbox(clock.now(), 10).await.unwrap();
    assert_eq!(queued.len(), 1);

    // Within one batch, across batches, and against a key queued by `create`.
    let r = message("deadline-reminder:X:open:7:2025-04-17");
    store.enqueue(&[r.clone(), r.clone()]).await.unwrap();
    store.enqueue(std::slice::from_ref(&r)).await.unwrap();
    store.enqueue(&notifier().outbox_for(&submitted)).await.unwrap();
    let pending = store.pending_outbox(clock.now(), 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].message, r);

    // A sent message's key still suppresses a repeat.
    store.mark_sent(pending[1].id, clock.now()).await.unwrap();
    store.enqueue(&[r, message("deadline-reminder:X:open:3:2025-04-17")]).await.unwrap();
    let pending = store.pending_outbox(clock.now(), 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].message.dedup_key, "deadline-reminder:X:open:3:2025-04-17");
    assert_eq!(store.pending_outbox(clock.now(), 1).await.unwrap().len(), 1, "limit is honored");
    // Queuing changes no application, so it chains nothing.
    assert_eq!(store.verify_audit().await.unwrap(), Ok(1));
});

// An operator's finding on the mailed forms and the mail asking to re-send them are written
// together; the applicant's mailing record and the finding read back from the history.
backend_test!(a_forms_finding_is_audited_with_its_notice_and_reads_back, |store| async move {
    use signet_ra::forms_mail::{Deficiency, FormProblem, FormsMailed, FormsTrail};
    use signet_ra::vetting::{Carrier, Tracking, TrackingNumber};
    let clock = FakeClock::at(T0);
    let app = submit(&store, &clock).await.application;
    let id = app.id();
    let number = TrackingNumber::new(Carrier::Usps, "9400 1000 0000 0000 0000 00").unwrap();
    let mailed = FormsMailed { tracking: Tracking { carrier: Carrier::Usps, number }, at: clock.now() };
    store.audit(&mailed.event(id)).await.unwrap();
    clock.advance(Duration::days(4));
    let finding = Deficiency::new(&[FormProblem::PageIncomplete], "Page 2 has no officer phone.", clock.now()).unwrap();
    let notice = notifier().forms_deficient(&app, &finding);
    store.audit_with_notices(&finding.event(id, &op("alice")), std::slice::from_ref(&notice)).await.unwrap();

    let pending = store.pending_outbox(clock.now(), 10).await.unwrap();
    let kinds: Vec<MessageKind> = pending.iter().map(|m| m.message.kind).collect();
    assert_eq!(kinds, [MessageKind::EmailVerification, MessageKind::FormsDeficient]);
    assert_eq!(pending[1].message, notice);
    let trail = FormsTrail::of(&store.application_history(id).await.unwrap());
    assert_eq!((trail.mailed, trail.deficiency), (Some(mailed), Some(finding)));
    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["application-submitted", "forms-mailed", "forms-deficient"]);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(3));
});

/// Registers `name` as an applicant's submission does (pending), then has the RA confirm it.
async fn confirmed(store: &Store, name: &str) -> Organization {
    let org = Organization::new(OrganizationName::new(name).unwrap());
    store.create_organization(&org, org.created_event(T0, &Actor::Applicant)).await.unwrap();
    let pending = store.registered_organization(&org.key).await.unwrap().unwrap();
    store.save_organization_decision(&pending.confirm("operator:ra1", T0).unwrap()).await.unwrap();
    org
}

backend_test!(organizations_are_unique_by_key_and_searchable, |store| async move {
    let acme = confirmed(&store, "Acme, Inc.").await;
    let other = confirmed(&store, "Globex Corporation").await;

    // "ACME Inc" is the same organization: refused, and its audit event rolled back.
    let dup = Organization::new(OrganizationName::new("ACME Inc").unwrap());
    let before = audit_rows(&store).await;
    let refused = store.create_organization(&dup, dup.created_event(T0, &Actor::Applicant)).await;
    assert!(matches!(refused, Err(StoreError::Conflict("organization"))), "{refused:?}");
    assert_eq!(audit_rows(&store).await, before);

    // The "did you mean" lookup finds the first spelling under the second's key.
    let key = OrganizationKey::of(&OrganizationName::new("ACME Inc").unwrap());
    assert_eq!(store.find_organizations(&key).await.unwrap(), vec![acme.clone()]);
    assert!(
        store
            .find_organizations(&OrganizationKey::of(&OrganizationName::new("Initech").unwrap()))
            .await
            .unwrap()
            .is_empty()
    );

    // Search: by key prefix ("ACME Inc" → "acme inc"), or name substring in any case.
    assert_eq!(store.search_organizations("ACME Inc", 10).await.unwrap(), vec![acme.clone()]);
    assert_eq!(store.search_organizations("me, IN", 10).await.unwrap(), vec![acme.clone()]);
    assert_eq!(store.search_organizations("globex corp", 10).await.unwrap(), vec![other.clone()]);
    assert_eq!(store.search_organizations("", 10).await.unwrap(), vec![acme, other]);
    assert_eq!(store.search_organizations("", 1).await.unwrap().len(), 1);
    assert!(store.search_organizations("%", 10).await.unwrap().is_empty(), "LIKE wildcards are literal");
    assert_eq!(store.verify_audit().await.unwrap(), Ok(4));
});

// A registered organization is offered to nobody until the RA decides; a decision is stored
// with its audit event, once, and a merged spelling leads to the organization it was merged into.
backend_test!(registered_organizations_wait_for_the_ra, |store| async move {
    let initech = Organization::new(OrganizationName::new("Initech LLC").unwrap());
    store.create_organization(&initech, initech.created_event(T0, &Actor::Applicant)).await.unwrap();
    let pending = store.registered_organization(&initech.key).await.unwrap().unwrap();
    assert_eq!((pending.status.clone(), pending.registered_at), (OrganizationStatus::Pending, T0));
    assert!(store.search_organizations("initech", 10).await.unwrap().is_empty(), "pending is not offered");
    assert!(store.find_organizations(&initech.key).await.unwrap().is_empty());

    // Two operators decide at once: the first decision stands, the second writes nothing.
    let confirm = pending.clone().confirm("operator:ra1", T0).unwrap();
    let reject = pending.reject("operator:ra2", T0).unwrap();
    store.save_organization_decision(&confirm).await.unwrap();
    let before = audit_rows(&store).await;
    let late = store.save_organization_decision(&reject).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(audit_rows(&store).await, before, "the refused decision's audit event is rolled back");
    assert_eq!(store.search_organizations("initech", 10).await.unwrap(), vec![initech.clone()]);

    // Another spelling, merged into the confirmed one, leads applicants there.
    let software = Organization::new(OrganizationName::new("Initech Software").unwrap());
    store.create_organization(&software, software.created_event(T0, &Actor::Applicant)).await.unwrap();
    let target = store.registered_organization(&initech.key).await.unwrap().unwrap();
    let merge = store
        .registered_organization(&software.key)
        .await
        .unwrap()
        .unwrap()
        .merge_into(&target, "operator:ra1", T0)
        .unwrap();
    store.save_organization_decision(&merge).await.unwrap();
    assert_eq!(store.find_organizations(&software.key).await.unwrap(), vec![initech.clone()]);
    assert_eq!(store.search_organizations("software", 10).await.unwrap(), Vec::<Organization>::new());
    let merged = store.registered_organization(&software.key).await.unwrap().unwrap();
    assert_eq!(merged.status, OrganizationStatus::Merged(initech.key.clone()));

    // A rejected one stays out of reach; the console lists pending first, then the rest.
    let shady = Organization::new(OrganizationName::new("Totally Real Org").unwrap());
    store.create_organization(&shady, shady.created_event(T0, &Actor::Applicant)).await.unwrap();
    let waiting = Organization::new(OrganizationName::new("Zeta Labs").unwrap());
    store.create_organization(&waiting, waiting.created_event(T0, &Actor::Applicant)).await.unwrap();
    let reject = store.registered_organization(&shady.key).await.unwrap().unwrap().reject("operator:ra1", T0).unwrap();
    store.save_organization_decision(&reject).await.unwrap();
    assert!(store.find_organizations(&shady.key).await.unwrap().is_empty());
    let listed: Vec<(String, &str)> = store
        .registered_organizations()
        .await
        .unwrap()
        .iter()
        .map(|o| (o.organization.name.to_string(), o.status.name()))
        .collect();
    assert_eq!(
        listed,
        [
            ("Zeta Labs".to_owned(), "pending"),
            ("Initech LLC".to_owned(), "confirmed"),
            ("Initech Software".to_owned(), "merged"),
            ("Totally Real Org".to_owned(), "rejected"),
        ]
    );
    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    for action in ["organization-confirmed", "organization-merged", "organization-rejected"] {
        assert_eq!(actions.iter().filter(|a| *a == action).count(), 1, "{action}: {actions:?}");
    }
    assert!(store.verify_audit().await.unwrap().is_ok());

    // The database refuses a merge without its target, whatever the code does.
    let stray = sqlx::query("UPDATE organizations SET status = 'merged' WHERE org_key = $1")
        .bind(waiting.key.as_str().to_owned())
        .execute(store.pool())
        .await;
    assert!(stray.is_err(), "merged needs merged_into");
});

backend_test!(open_applications_page_in_reference_order, |store| async move {
    let clock = FakeClock::at(T0);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(submit(&store, &clock).await.application);
    }
    // Withdraw one: closed applications are not paged.
    let gone = open.remove(2);
    let t = step(gone, &Actor::Applicant, Command::Withdraw, &clock);
    store.save_transition(&t, &[]).await.unwrap();
    open.sort_by(|a, b| a.id().cmp(b.id()));

    let mut seen = Vec::new();
    let mut after: Option<ApplicationId> = None;
    loop {
        let page = store.open_applications(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id().clone());
        seen.extend(page);
    }
    assert_eq!(seen, open);
});

backend_test!(concurrent_transitions_from_one_revision_have_one_winner, |store| async move {
    let clock = FakeClock::at(T0);
    let original = submit(&store, &clock).await.application;
    // Two operators act on the same revision at the same moment.
    let reject = |who: &str| {
        let reason = signet_ra::application::Reason::new(&format!("rejected by {who}")).unwrap();
        step(original.clone(), &op(who), Command::Reject(reason), &clock)
    };
    let (a, b) = (reject("alice"), reject("bob"));
    let (ra, rb) = tokio::join!(store.save_transition(&a, &[]), store.save_transition(&b, &[]));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    assert!(matches!(if ra.is_ok() { rb } else { ra }, Err(StoreError::Conflict("revision"))));
    assert_eq!(store.verify_audit().await.unwrap(), Ok(2));
});

backend_test!(reset_links_change_the_password_once_and_only_in_time, |store| async move {
    use signet_ra::password_reset::{PasswordResetStore, ResetLink};
    let clock = FakeClock::at(T0);
    let first = submit(&store, &clock).await.application.id().clone();
    clock.advance(Duration::minutes(1));
    let second = submit(&store, &clock).await.application.id().clone();
    // Found by address without regard to case, oldest account first, with the stored spelling.
    let found = store.accounts_with_email(&Email::new("Jane.Doe@ACME.example").unwrap()).await.unwrap();
    let ids: Vec<&ApplicationId> = found.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [&first, &second]);
    assert_eq!(found[0].1.as_str(), "jane.doe@acme.example");
    assert!(store.accounts_with_email(&Email::new("nobody@acme.example").unwrap()).await.unwrap().is_empty());

    let (link, token) = ResetLink::issue(first.clone(), found[0].1.clone(), clock.now());
    let mail = notifier().password_reset(&link, &token);
    store.create_link(&link, &mail, link.requested_event()).await.unwrap();
    assert_eq!(store.links_sent_since(&first, clock.now() - Duration::hours(1)).await.unwrap(), 1);
    assert_eq!(store.links_sent_since(&second, clock.now() - Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(store.link(&token.digest()).await.unwrap().as_ref(), Some(&link));
    assert_eq!(store.link(&"0".repeat(64)).await.unwrap(), None);
    let stored: String =
        sqlx::query("SELECT token_digest FROM password_resets").fetch_one(store.pool()).await.unwrap().get(0);
    assert!(!stored.contains(token.expose()), "only the digest is kept");
    let queued = store.pending_outbox(clock.now(), 10).await.unwrap();
    assert!(queued.iter().any(|q| q.message.kind == MessageKind::PasswordReset));

    // A second link for the same account, then the first is used: both are spent.
    let (other, other_token) = ResetLink::issue(first.clone(), found[0].1.clone(), clock.now());
    store.create_link(&other, &notifier().password_reset(&other, &other_token), other.requested_event()).await.unwrap();
    let email = Email::new("jane.doe@acme.example").unwrap();
    let new = PasswordHash::new(&NewPassword::new("Lantern-Fjord-Pivot-73", &email).unwrap()).unwrap();
    clock.advance(Duration::minutes(10));
    let before = audit_rows(&store).await;
    store.use_link(&link, &new, link.changed_event(clock.now()), clock.now()).await.unwrap();
    assert_eq!(audit_rows(&store).await, before + 1);
    assert!(store.application_password(&first).await.unwrap().unwrap().verify("Lantern-Fjord-Pivot-73"));
    assert!(store.application_password(&second).await.unwrap().unwrap().verify("plover-quartz-meander-41"));
    for spent in [&link, &other] {
        let again = store.use_link(spent, password(), spent.changed_event(clock.now()), clock.now()).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }
    assert_eq!(audit_rows(&store).await, before + 1, "a refused use writes nothing");
    assert!(store.link(&other_token.digest()).await.unwrap().unwrap().used_at.is_some());

    // An expired link changes nothing.
    let (late, _) = ResetLink::issue(second.clone(), found[1].1.clone(), clock.now());
    store.create_link(&late, &message(&format!("late:{}", late.digest)), late.requested_event()).await.unwrap();
    clock.advance(Duration::hours(1));
    let again = store.use_link(&late, &new, late.changed_event(clock.now()), clock.now()).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(store.application_password(&second).await.unwrap().unwrap().verify("plover-quartz-meander-41"));
    assert!(store.verify_audit().await.unwrap().is_ok());
});
