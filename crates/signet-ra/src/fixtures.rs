//! Sample data for tests of the layers above the domain (store, server), so every suite
//! builds its applications the same way. Compiled only for tests or with the `fixtures`
//! feature; never part of a production build.

use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, Email, OrganizationName};

use crate::application::{
    ApplicationForm, CertificateChoice, Payment, PersonalInfo, PhoneNumber, PoNumber, PriceTable, Residency, UsAddress,
};
use crate::wizard::AgencyCatalog;

/// A complete application by Jane Q. Doe of Acme, Inc., from the Integrate partner link,
/// for `cert_type` (a catalog type id such as `medium-token`), two years, paid by PO.
pub fn sample_form(cert_type: &str) -> ApplicationForm {
    let catalog = Catalog::default_eca();
    let agencies = AgencyCatalog::default_catalog(&catalog);
    ApplicationForm {
        program: agencies.program("Integrate").unwrap(),
        agencies: vec!["integrate-il4".into()],
        residency: Residency::UnitedStates,
        certificate: CertificateChoice::new(&catalog, &PriceTable::default(), cert_type, 2).unwrap(),
        organization: OrganizationName::new("Acme, Inc.").unwrap(),
        applicant: PersonalInfo {
            name: CommonName::new("Jane Q. Doe").unwrap(),
            email: Email::new("jane.doe@acme.example").unwrap(),
            phone: PhoneNumber::new("(206) 555-0142").unwrap(),
            shipping: UsAddress::new("1 Main St", "Suite 200", "Seattle", "wa", "98101-1234").unwrap(),
            second_citizenship: None,
        },
        payment: Payment::PurchaseOrder { po: PoNumber::new("PO-2025/0042").unwrap() },
    }
}

/// The commands that take a `cert_type` application submitted on `submitted_on` with email
/// token `token` to certificates-ready, each with the time to wait before giving it: notarized
/// the day of submission (Medium Hardware: proofed in person by alice, DESIGN §2), received
/// three days later, one call-back, a passport, approvals by alice and bob, shipped,
/// activation code four days after shipping.
pub fn vetting_plan(
    token: crate::application::VerificationToken,
    submitted_on: time::Date,
    cert_type: &str,
) -> Vec<(crate::application::Actor, crate::application::Command, time::Duration)> {
    use crate::application::{Actor, Command, OperatorId};
    use crate::vetting::{
        Attestation, CallOutcome, Carrier, FormPages, FormsReceipt, IdentityDocument, OfficerCallback, Tracking,
        TrackingNumber,
    };
    use time::Duration;
    let day = Duration::days(1);
    let op = |name: &str| Actor::Operator(OperatorId::new(name).unwrap());
    let ups = |n: &str| Tracking { carrier: Carrier::Ups, number: TrackingNumber::new(Carrier::Ups, n).unwrap() };
    let received = submitted_on + day * 3;
    let forms = FormsReceipt {
        received_on: received,
        tracking: ups("1Z999AA10123456784"),
        pages: FormPages { officer_verification: true, identity_verification: true, citizenship: None },
        attestation: if cert_type == "medium-hardware" {
            Attestation::InPerson { registrar: OperatorId::new("alice").unwrap(), attested_on: submitted_on }
        } else {
            Attestation::Notarized { notary_name: "Pat Notary".into(), seal_present: true, notarized_on: submitted_on }
        },
    };
    let callback = OfficerCallback {
        officer_name: CommonName::new("Sam Officer").unwrap(),
        phone: crate::application::PhoneNumber::new("+1 206 555 0199").unwrap(),
        called_by: OperatorId::new("alice").unwrap(),
        // The start of the day the forms came: never after the moment the plan records the
        // call, whatever the time of day the plan starts at.
        called_at: received.midnight().assume_utc(),
        outcome: CallOutcome::Confirmed,
    };
    let passport =
        vec![IdentityDocument::new("us-passport", "A12345678", Some(time::macros::date!(2030 - 01 - 01))).unwrap()];
    vec![
        (Actor::Applicant, Command::VerifyEmail(token), Duration::ZERO),
        (op("alice"), Command::RecordForms(forms), day * 3),
        (op("alice"), Command::RecordCallback(callback), Duration::hours(2)),
        (op("alice"), Command::VerifyIdentity(passport), Duration::hours(1)),
        (op("alice"), Command::Approve, Duration::hours(1)),
        (op("bob"), Command::Approve, Duration::hours(1)),
        (op("bob"), Command::ShipToken(ups("1Z999AA10123456785")), day),
        (Actor::System, Command::IssueActivationCode, day * 4),
    ]
}
