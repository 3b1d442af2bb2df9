//! The form packet the applicant downloads after submitting (DESIGN §2
//! "Application"; seed onboarding guide Part 2): the Organization Officer Verification, the
//! Identity Verification and the citizenship page, as PDF 1.7 files pre-filled from the
//! [`Application`]. Each page carries the application reference, so the mailed originals find
//! their application, and the attestation block its certificate type's proofing rule asks for:
//! a notary's acknowledgement, or for Medium Hardware an in-person registrar's verification.
//!
//! The writer is hand-made and small — the pages are text, lines and boxes — so it needs no PDF
//! dependency: base-14 Helvetica (nothing embedded), WinAnsiEncoding, uncompressed content
//! streams, no creation date (the same application renders the same bytes). Applicant text is
//! only ever written inside escaped string literals, so no name can break out of the page
//! content; characters WinAnsi lacks print without their accents (Dvořák → Dvorak) or as `?`,
//! and the field then asks for the value by hand.

mod file;
mod layout;
mod text;
mod wording;

use std::fmt::Write as _;

use signet_pki::profile::Catalog;
use signet_ra::application::{Application, Residency};
use signet_ra::contact::RaContact;
use signet_ra::forms_mail::PaperForm;
use signet_ra::vetting::{self, ACCEPTED_DOCUMENTS, DeadlineKind, DeadlinePolicy, DocumentList, ProofingRule};
use signet_ra::wizard::AgencyCatalog;
use time::Date;
use unicode_normalization::UnicodeNormalization;

/// What the forms print that is the deployment's, not the application's: where the status page
/// is, whom to mail, the names in the RA's catalogs and its deadline policy.
#[derive(Clone, Copy)]
pub struct Deployment<'a> {
    /// The portal's base URL.
    pub base_url: &'a str,
    /// The RA's mailing address and support line.
    pub contact: &'a RaContact,
    /// Certificate type names.
    pub catalog: &'a Catalog,
    /// Program names.
    pub agencies: &'a AgencyCatalog,
    /// The deadlines the forms state.
    pub deadlines: &'a DeadlinePolicy,
}

/// One form as a one-page PDF: the Organization Officer Verification (the applicant's details
/// pre-filled on the left, the officer's on the right — seed guide: "The left side is
/// pre-populated with your information"), the Identity Verification (the documents the applicant
/// shows, and the notary or in-person registrar block), or the citizenship page (needed when the
/// applicant holds a second citizenship). Each says where to mail it, from the deployment's
/// contact.
pub fn form(app: &Application, form: PaperForm, deployment: &Deployment<'_>) -> Vec<u8> {
    packet(app, deployment, &[form])
}

/// The three forms as one three-page PDF, to print in one go.
pub fn all_forms(app: &Application, deployment: &Deployment<'_>) -> Vec<u8> {
    packet(app, deployment, &PaperForm::ALL)
}

fn packet(app: &Application, deployment: &Deployment<'_>, forms: &[PaperForm]) -> Vec<u8> {
    let facts = Facts::of(app, deployment);
    let pages: Vec<String> = forms
        .iter()
        .enumerate()
        .map(|(i, &form)| {
            let mut page = Page::default();
            let mut col = page.header(&facts, form);
            match form {
                PaperForm::Officer => officer_body(&mut page, &mut col, &facts),
                PaperForm::Identity => identity_body(&mut page, &mut col, &facts),
                PaperForm::Citizenship => citizenship_body(&mut page, &mut col, &facts),
            }
            page.attestation(&mut col, &facts);
            page.deadlines(&mut col, &facts);
            page.mail_to(&mut col, &facts);
            page.footer(&facts, form, i + 1, forms.len());
            page.ops
        })
        .collect();
    write_pdf(&format!("ECA application forms {}", facts.reference), &pages)
}

use file::*;
use layout::*;
use text::*;
use wording::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_strings_escape_delimiters_and_stay_ascii() {
        let (bytes, exact) = encode("Zoë O'Brien (Jr.) \\");
        assert!(exact, "ë is in WinAnsi");
        assert_eq!(literal(&bytes), r"(Zo\353 O'Brien \(Jr.\) \\)");
        // A name crafted to close the string and inject operators stays one string.
        let (bytes, _) = encode(") Tj ET BT (x");
        assert_eq!(literal(&bytes), r"(\) Tj ET BT \(x)");
        assert_eq!(literal(&encode("a\nb").0), r"(a?b)", "control characters never reach the stream");
    }

    #[test]
    fn characters_outside_winansi_lose_accents_or_become_question_marks() {
        assert_eq!(encode("Dvořák"), (b"Dvor\xe1k".to_vec(), false));
        assert_eq!(encode("Łukasz Nguyễn").0, b"Lukasz Nguyen");
        assert_eq!(encode("李 — €5").0, b"? \x97 \x805");
        assert!(encode("Søren “Ash” Müller").1, "Latin-1 and cp1252 quotes print as they are");
    }

    #[test]
    fn wrapping_respects_the_width() {
        let text = encode("Ask an officer of your organization to complete and sign the right-hand column.").0;
        let lines = wrap(&text, Font::Regular, 10.0, 150.0);
        assert!(lines.len() > 2);
        assert!(lines.iter().all(|l| text_width(l, Font::Regular, 10.0) <= 150.0));
        assert_eq!(lines.join(&b' '), text, "only spaces are lost at breaks");
        // "W" is 944/1000 wide: 40 of them at 10 pt need several lines, split inside the word.
        let long = wrap(&[b'W'; 40], Font::Regular, 10.0, 100.0);
        assert_eq!(long.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 10, 10]);
        assert_eq!(wrap(b"", Font::Regular, 10.0, 100.0), [Vec::<u8>::new()]);
    }

    #[test]
    fn cross_reference_offsets_point_at_their_objects() {
        let pdf = write_pdf("t", &["BT /F1 9 Tf 1 1 Td (a) Tj ET".to_owned(), String::new()]);
        // Byte for byte, so offsets keep their meaning past the binary comment.
        let text: String = pdf.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '?' }).collect();
        let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(text[xref..].starts_with("xref\n0 10\n"));
        for (n, entry) in text[xref..].lines().skip(3).take(9).enumerate() {
            let offset: usize = entry[..10].parse().unwrap();
            assert!(text[offset..].starts_with(&format!("{} 0 obj\n", n + 1)), "object {}", n + 1);
            assert_eq!(entry.len() + 1, 20, "xref entries are 20 bytes");
        }
        assert!(text.contains("/Count 2"));
    }
}
