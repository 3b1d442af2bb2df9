//! The checks over recorded evidence: the form packet, an officer call-back, identity documents.

use time::{Date, OffsetDateTime};

use super::{
    Attestation, Charset, DocumentKind, DocumentList, Finding, FormsReceipt, IdentityDocument, OfficerCallback,
    ProofingRule, proofing_rule,
};
use crate::application_form::ApplicationForm;
use crate::deadline::{DeadlinePolicy, retrieval_deadline};

/// Checks a received form packet: pages complete, seal present, the right kind of witness for
/// the type, and dates that make sense (not in the future, not before the application existed,
/// not so old that the 30-day retrieval window has closed).
pub fn check_forms(
    form: &ApplicationForm,
    submitted_on: Date,
    receipt: &FormsReceipt,
    today: Date,
    policy: &DeadlinePolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !receipt.pages.officer_verification {
        out.push(Finding::blocking(
            "officer-page-incomplete",
            "Page 2 (Organization Officer Verification) is unsigned or has empty fields on the officer's side.",
        ));
    }
    if !receipt.pages.identity_verification {
        out.push(Finding::blocking(
            "identity-page-incomplete",
            "Page 4 (Identity Verification) has an incomplete identification section.",
        ));
    }
    match (&form.applicant.second_citizenship, receipt.pages.citizenship) {
        (Some(c), None) => out.push(Finding::blocking(
            "citizenship-page-missing",
            format!("The applicant declared a second citizenship ({c}) but page 5 is not enclosed."),
        )),
        (Some(_), Some(false)) => {
            out.push(Finding::blocking("citizenship-page-incomplete", "Page 5 (second citizenship) is incomplete."))
        }
        (None, Some(_)) => out.push(Finding::warning(
            "citizenship-page-unexpected",
            "Page 5 (second citizenship) is enclosed but the application declares none; update the application.",
        )),
        _ => {}
    }
    match &receipt.attestation {
        Attestation::Notarized { notary_name, seal_present, .. } => {
            if !seal_present {
                out.push(Finding::blocking(
                    "notary-seal-missing",
                    "The notary's official seal is missing: the applicant must have the forms notarized again.",
                ));
            }
            if notary_name.trim().is_empty() {
                out.push(Finding::blocking("notary-name-missing", "Record the notary's name as on the seal."));
            }
            if proofing_rule(form.certificate.cert_type()) == ProofingRule::InPersonRegistrar {
                out.push(Finding::blocking(
                    "in-person-proofing-required",
                    format!(
                        "{} requires identity proofing in person by a registrar or Trusted Agent; a notary \
                         cannot proof it.",
                        form.certificate.cert_type()
                    ),
                ));
            }
        }
        Attestation::InPerson { .. } => {}
    }
    let signed = receipt.attestation.signed_on();
    if signed > today {
        out.push(Finding::blocking("signed-in-future", format!("The signature date {signed} is in the future.")));
    }
    if signed < submitted_on {
        // The forms are generated from the submitted application, so they cannot predate it.
        out.push(Finding::blocking(
            "signed-before-application",
            format!("The signature date {signed} is before the application was submitted ({submitted_on})."),
        ));
    }
    let window = retrieval_deadline(signed, policy);
    if window.passed(today) {
        out.push(Finding::blocking(
            "signed-too-long-ago",
            format!(
                "Signed on {signed}: the {}-day window to retrieve certificates ended on {}. The applicant must \
                 sign and be proofed again.",
                policy.retrieval_days, window.last_day
            ),
        ));
    } else if window.days_left(today) < 7 {
        out.push(Finding::warning(
            "little-time-left",
            format!("Only {} days remain to ship the token and retrieve.", window.days_left(today)),
        ));
    }
    if receipt.received_on > today {
        out.push(Finding::blocking("received-in-future", "The date received is in the future."));
    }
    if receipt.received_on < signed {
        out.push(Finding::blocking("received-before-signed", "The forms cannot arrive before they were signed."));
    }
    out
}

/// Checks a call-back record.
pub fn check_callback(form: &ApplicationForm, call: &OfficerCallback, now: OffsetDateTime) -> Vec<Finding> {
    let mut out = Vec::new();
    if call.called_at > now {
        out.push(Finding::blocking("call-in-future", "The call time is in the future."));
    }
    // The officer must be someone who can vouch for the applicant's employment (seed guide:
    // "your CEO, manager, or someone above you"), so calling the applicant proves nothing.
    if call.phone == form.applicant.phone {
        out.push(Finding::warning(
            "officer-phone-is-applicant",
            "The number called is the applicant's own; confirm the officer's number independently.",
        ));
    }
    if call.officer_name.as_str().eq_ignore_ascii_case(form.applicant.name.as_str()) {
        out.push(Finding::warning("officer-is-applicant", "The officer named is the applicant."));
    }
    out
}

/// Checks identity documents: each number in its type's format, none expired, and the list
/// rule — one List A document, or two different List B documents of which one has a photo.
pub fn check_identity(documents: &[IdentityDocument], today: Date) -> Vec<Finding> {
    let mut out = Vec::new();
    if documents.is_empty() {
        out.push(Finding::blocking("no-documents", "Record at least one identity document."));
        return out;
    }
    for d in documents {
        let f = d.kind().number;
        let n = d.number().as_str();
        let chars_ok = match f.charset {
            Charset::Digits => n.bytes().all(|b| b.is_ascii_digit()),
            Charset::Alphanumeric => true,
        };
        if !(f.min..=f.max).contains(&n.len()) || !chars_ok {
            out.push(Finding::blocking(
                "document-number-format",
                format!("{} numbers are {}; {} is not.", d.kind().name, f.hint, d.number().masked()),
            ));
        }
        if d.expires_on().is_some_and(|e| e < today) {
            out.push(Finding::blocking("document-expired", format!("The {} has expired.", d.kind().name)));
        }
    }
    let has_a = documents.iter().any(|d| d.kind().list == DocumentList::A);
    let mut b_kinds: Vec<&DocumentKind> =
        documents.iter().filter(|d| d.kind().list == DocumentList::B).map(|d| d.kind()).collect();
    b_kinds.dedup_by_key(|k| k.id);
    let b_ok = b_kinds.len() >= 2 && b_kinds.iter().any(|k| k.photo);
    if !has_a && !b_ok {
        out.push(Finding::blocking(
            "document-combination",
            "Identity needs one federal government photo ID (List A), or two different non-federal government \
             IDs (List B) of which one has a photo.",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::date;

    use super::*;
    use crate::application::testing::{T0, callback, form, notarized_forms};
    use crate::evidence::CallOutcome;
    use crate::input::InputError;

    fn doc(kind: &str, number: &str) -> IdentityDocument {
        IdentityDocument::new(kind, number, None).unwrap()
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn form_checks() {
        let f = form("medium");
        let p = DeadlinePolicy::default();
        let d = T0.date();
        assert!(check_forms(&f, d, &notarized_forms(d, d + Duration::days(3)), d + Duration::days(3), &p).is_empty());

        let mut bad = notarized_forms(d + Duration::days(5), d + Duration::days(2));
        bad.pages.officer_verification = false;
        bad.pages.citizenship = Some(true);
        bad.attestation = Attestation::Notarized {
            notary_name: " ".into(),
            seal_present: false,
            notarized_on: d + Duration::days(5),
        };
        let found = check_forms(&f, d, &bad, d + Duration::days(1), &p);
        assert_eq!(
            codes(&found),
            [
                "officer-page-incomplete",
                "citizenship-page-unexpected",
                "notary-seal-missing",
                "notary-name-missing",
                "signed-in-future",
                "received-in-future",
                "received-before-signed",
            ]
        );
        assert!(!found[1].is_blocking());
        assert!(found[2].message.contains("notarized again"));

        let before = notarized_forms(d - Duration::days(1), d);
        assert_eq!(codes(&check_forms(&f, d, &before, d, &p)), ["signed-before-application"]);

        // Day 30 of the window is the last; on Day 31 the forms are too old to accept.
        let forms = notarized_forms(d, d);
        assert_eq!(codes(&check_forms(&f, d, &forms, d + Duration::days(25), &p)), ["little-time-left"]);
        assert_eq!(codes(&check_forms(&f, d, &forms, d + Duration::days(30), &p)), ["signed-too-long-ago"]);

        let mut dual = form("medium");
        dual.applicant.second_citizenship = Some("Canada".into());
        assert_eq!(codes(&check_forms(&dual, d, &forms, d, &p)), ["citizenship-page-missing"]);

        assert_eq!(codes(&check_forms(&form("medium-hardware"), d, &forms, d, &p)), ["in-person-proofing-required"]);
    }

    #[test]
    fn callback_checks() {
        let f = form("medium");
        assert!(check_callback(&f, &callback(CallOutcome::Confirmed, T0), T0).is_empty());
        let mut own = callback(CallOutcome::Confirmed, T0 + Duration::hours(1));
        own.phone = f.applicant.phone.clone();
        own.officer_name = f.applicant.name.clone();
        assert_eq!(
            codes(&check_callback(&f, &own, T0)),
            ["call-in-future", "officer-phone-is-applicant", "officer-is-applicant"]
        );
    }

    #[test]
    fn identity_checks() {
        let today = date!(2025 - 03 - 06);
        assert!(check_identity(&[doc("us-passport", "A1234 5678")], today).is_empty());
        assert!(
            check_identity(&[doc("drivers-license", "WDL123456"), doc("birth-certificate", "1234567")], today)
                .is_empty()
        );
        assert_eq!(codes(&check_identity(&[], today)), ["no-documents"]);
        assert_eq!(codes(&check_identity(&[doc("drivers-license", "WDL123456")], today)), ["document-combination"]);
        // Two List B documents without a photo, or the same one twice, do not do.
        let no_photo = [doc("birth-certificate", "1234567"), doc("voter-registration-card", "V12345")];
        assert_eq!(codes(&check_identity(&no_photo, today)), ["document-combination"]);
        let twice = [doc("drivers-license", "WDL123456"), doc("drivers-license", "WDL123456")];
        assert_eq!(codes(&check_identity(&twice, today)), ["document-combination"]);
        let short = check_identity(&[doc("us-passport", "12345")], today);
        assert_eq!(codes(&short), ["document-number-format"]);
        assert!(short[0].message.contains("U.S. passport numbers are 9 characters"), "{}", short[0].message);
        assert_eq!(codes(&check_identity(&[doc("military-id", "12345678AB")], today)), ["document-number-format"]);
        let expired = IdentityDocument::new("us-passport", "A12345678", Some(date!(2025 - 03 - 05))).unwrap();
        assert_eq!(codes(&check_identity(&[expired], today)), ["document-expired"]);
        assert_eq!(
            IdentityDocument::new("library-card", "1", None).unwrap_err(),
            InputError::DocumentType("library-card".into())
        );
        assert_eq!(format!("{:?}", doc("us-passport", "A12345678").number()), "DocumentNumber(*****5678)");
        let json = serde_json::to_string(&doc("us-passport", "A12345678")).unwrap();
        assert_eq!(serde_json::from_str::<IdentityDocument>(&json).unwrap(), doc("us-passport", "A12345678"));
        assert!(serde_json::from_str::<IdentityDocument>(&json.replace("us-passport", "nope")).is_err());
    }
}
