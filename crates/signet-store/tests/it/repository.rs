//! The public repository's storage (`RepositoryStore`) on both SQLite and PostgreSQL:
//! certificates found by the exact subject email the issuance stored (a near miss finds
//! nothing), each with its account's choice to publish identity certificates, the choice
//! audited with the write, and the domain's lookup on top returning only what is published.

use signet_pki::issue::IssuedCertificate;
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, DnsName, Email, OrganizationName, Subject};
use signet_pki::{RevocationReason, Serial};
use signet_ra::application::ApplicationId;
use signet_ra::audit::AuditAction;
use signet_ra::issuance::{CaStore, IssuanceIntent, StoredStatus};
use signet_ra::repository::{self, LookupAddress, RepositoryStore};
use signet_store::Store;
use time::Duration;

use crate::common::backend_test;
use crate::store::{event, now};

const JANE: &str = "Jane.Doe@acme.example";

fn person(email: &str) -> Subject {
    Subject::Person {
        common_name: CommonName::new("Jane Q. Doe").unwrap(),
        organization: OrganizationName::new("Acme, Inc.").unwrap(),
        email: Email::new(email).unwrap(),
    }
}

/// Stores a certificate of `profile` for `subject`, requested by `requested_by`, valid from
/// `now()` for a year; `issued: false` leaves it an intent.
async fn store_certificate(
    store: &Store,
    profile: &str,
    subject: &Subject,
    requested_by: &str,
    issued: bool,
) -> Serial {
    let serial = Serial::random();
    let intent = IssuanceIntent {
        serial: serial.clone(),
        profile: profile.into(),
        subject_json: serde_json::to_string(subject).unwrap(),
        spki_sha256: serial.to_hex(),
        requested_by: requested_by.into(),
        at: now(),
    };
    store.record_intent(&intent, event(AuditAction::IssuanceIntent, &serial.to_hex()), None).await.unwrap();
    if issued {
        let cert = IssuedCertificate {
            der: vec![0x30, 0x00],
            serial: serial.clone(),
            not_before: now(),
            not_after: now() + Duration::days(365),
        };
        store.complete_issuance(&cert, event(AuditAction::CertificateIssued, &serial.to_hex()), None).await.unwrap();
    }
    serial
}

fn address(s: &str) -> LookupAddress {
    LookupAddress::parse(s).unwrap()
}

fn serials(found: &[repository::RepositoryCertificate]) -> Vec<String> {
    let mut s: Vec<String> = found.iter().map(|c| c.serial.to_hex()).collect();
    s.sort();
    s
}

fn sorted(serials: &[&Serial]) -> Vec<String> {
    let mut s: Vec<String> = serials.iter().map(|c| c.to_hex()).collect();
    s.sort();
    s
}

backend_test!(certificates_are_found_by_the_exact_subject_email, |store| async move {
    let account = ApplicationId::new("ABCDEFGHJKMN").unwrap();
    let jane = person(JANE);
    let encryption =
        store_certificate(&store, "medium-token-encryption", &jane, &format!("applicant:{account}"), true).await;
    let identity =
        store_certificate(&store, "medium-token-identity", &jane, &format!("subscriber:{account}"), true).await;
    // Only issued certificates: an intent is not one.
    store_certificate(&store, "medium-token-encryption", &jane, "applicant:ABCDEFGHJKMP", false).await;
    for other in ["jane.doe@acme.example", "Jane.Doe@acme.example.com", "Doe@acme.example", "Jane.Doe@acme.exampl"] {
        store_certificate(&store, "medium-encryption", &person(other), "operator:ra1", true).await;
    }
    let device = Subject::Device {
        organization: OrganizationName::new("Acme, Inc.").unwrap(),
        dns_names: vec![DnsName::new("acme.example").unwrap()],
    };
    store_certificate(&store, "device-tls", &device, "acme:1", true).await;

    let found = store.certificates_for_address(&address(JANE)).await.unwrap();
    assert_eq!(serials(&found), sorted(&[&encryption, &identity]));
    assert!(found.iter().all(|c| !c.identity_chosen), "nobody chose to publish");
    // The domain is stored lowercased, so a lookup with another case of it finds the same.
    let again = store.certificates_for_address(&address("Jane.Doe@ACME.example")).await.unwrap();
    assert_eq!(serials(&again), serials(&found));
    for miss in [
        "jane.doe@acme.example.org",
        "Jane.Do@acme.example",
        "ane.Doe@acme.example",
        "%@acme.example",
        "*@acme.example",
    ] {
        assert!(store.certificates_for_address(&address(miss)).await.unwrap().is_empty(), "{miss}");
    }
    let one = store.repository_certificate(&encryption).await.unwrap().unwrap();
    assert_eq!((one.profile.as_str(), one.status.clone()), ("medium-token-encryption", StoredStatus::Good));
    assert!(store.repository_certificate(&Serial::random()).await.unwrap().is_none());
});

backend_test!(the_identity_choice_is_audited_and_joins_both_ways_of_requesting, |store| async move {
    let account = ApplicationId::new("ABCDEFGHJKMN").unwrap();
    let other = ApplicationId::new("ABCDEFGHJKMP").unwrap();
    let jane = person(JANE);
    let retrieved =
        store_certificate(&store, "medium-token-identity", &jane, &format!("applicant:{account}"), true).await;
    let renewed = store_certificate(&store, "medium-identity", &jane, &format!("subscriber:{account}"), true).await;
    let strangers = store_certificate(&store, "medium-identity", &jane, &format!("applicant:{other}"), true).await;
    let encryption =
        store_certificate(&store, "medium-token-encryption", &jane, &format!("applicant:{account}"), true).await;
    let catalog = Catalog::default_eca();
    let published = |store: Store| {
        let catalog = catalog.clone();
        async move { serials(&repository::lookup(&store, &catalog, &address(JANE), now()).await.unwrap()) }
    };
    assert_eq!(published(store.clone()).await, sorted(&[&encryption]), "identity certificates are not published");

    assert!(!store.identity_published(&account).await.unwrap());
    assert!(repository::choose_identity_publication(&store, &account, true, now()).await.unwrap());
    assert!(store.identity_published(&account).await.unwrap());
    assert!(!repository::choose_identity_publication(&store, &account, true, now()).await.unwrap(), "no change");
    assert_eq!(published(store.clone()).await, sorted(&[&encryption, &retrieved, &renewed]));
    let found = store.certificates_for_address(&address(JANE)).await.unwrap();
    let chosen = |s: &Serial| found.iter().find(|c| &c.serial == s).unwrap().identity_chosen;
    assert!(chosen(&retrieved) && chosen(&renewed) && !chosen(&strangers));

    // Revoked and expired certificates stay stored but leave the repository.
    store
        .revoke(&renewed, RevocationReason::Superseded, now(), event(AuditAction::CertificateRevoked, "r"), &[])
        .await
        .unwrap();
    assert_eq!(published(store.clone()).await, sorted(&[&encryption, &retrieved]));
    let later = repository::lookup(&store, &catalog, &address(JANE), now() + Duration::days(365)).await.unwrap();
    assert!(later.is_empty(), "{later:?}");

    assert!(repository::choose_identity_publication(&store, &account, false, now()).await.unwrap());
    assert!(!store.identity_published(&account).await.unwrap());
    assert_eq!(published(store.clone()).await, sorted(&[&encryption]));

    let records = store.audit_records().await.unwrap();
    let choices: Vec<(&str, &str, &str)> = records
        .iter()
        .filter(|r| r.action == "identity-publication-changed")
        .map(|r| (r.actor.as_str(), r.subject.as_str(), r.details.as_str()))
        .collect();
    let actor = format!("subscriber:{account}");
    assert_eq!(
        choices,
        [
            (actor.as_str(), account.as_str(), r#"{"published":true}"#),
            (actor.as_str(), account.as_str(), r#"{"published":false}"#)
        ]
    );
    assert!(store.verify_audit().await.unwrap().is_ok());
});
