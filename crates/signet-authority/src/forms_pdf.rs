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

// ---------------------------------------------------------------------------------------------
// What the forms say

/// Everything the pages print about the application, worded once.
struct Facts {
    reference: String,
    name: String,
    organization: String,
    email: String,
    phone: String,
    address: Vec<String>,
    type_name: String,
    certificate: String,
    program: String,
    resident: &'static str,
    second_citizenship: Option<String>,
    rule: ProofingRule,
    policy: DeadlinePolicy,
    due: Option<String>,
    status_url: String,
    mail_to: Vec<String>,
    support: String,
}

impl Facts {
    fn of(app: &Application, deployment: &Deployment<'_>) -> Self {
        let Deployment { base_url, contact, catalog, agencies, deadlines } = *deployment;
        let form = app.form();
        let who = &form.applicant;
        let type_id = form.certificate.cert_type();
        let type_name = catalog.types().iter().find(|t| t.id == type_id).map_or(type_id, |t| t.name.as_str());
        let years = form.certificate.years();
        let policy = deadlines.clone();
        let rule = app.proofing_rule();
        let due = vetting::deadline(app, &policy).map(|d| match d.kind {
            DeadlineKind::Open => format!(
                "Your {} forms must reach us by {} ({} days from your application), or the application expires.",
                match rule {
                    ProofingRule::NotaryOrRegistrar => "notarized",
                    ProofingRule::InPersonRegistrar => "completed",
                },
                long_date(d.last_day),
                policy.open_days
            ),
            DeadlineKind::Retrieval => {
                format!("Your certificates must be retrieved by {}.", long_date(d.last_day))
            }
        });
        let mut address = vec![who.shipping.line1.to_string()];
        address.extend(who.shipping.line2.as_ref().map(ToString::to_string));
        address.push(format!("{}, {} {}", who.shipping.city, who.shipping.state, who.shipping.zip));
        Self {
            reference: app.id().to_string(),
            name: who.name.as_str().to_owned(),
            organization: form.organization.as_str().to_owned(),
            email: who.email.as_str().to_owned(),
            phone: who.phone.display(),
            address,
            type_name: type_name.to_owned(),
            certificate: format!("{type_name}, {years} year{}", if years == 1 { "" } else { "s" }),
            program: agencies.program_name(&form.program),
            resident: match form.residency {
                Residency::UnitedStates => "Yes",
                Residency::Abroad => "No",
            },
            second_citizenship: who.second_citizenship.clone(),
            rule,
            policy,
            due,
            status_url: format!("{}/applications/{}", base_url.trim_end_matches('/'), app.id()),
            mail_to: contact.mailing_address.lines().map(str::to_owned).collect(),
            support: contact.support_line(),
        }
    }

    /// Who witnesses the signatures, in the running text.
    fn witness(&self) -> &'static str {
        match self.rule {
            ProofingRule::NotaryOrRegistrar => "a notary public",
            ProofingRule::InPersonRegistrar => "a Signet registrar or Trusted Agent, in person",
        }
    }
}

fn long_date(d: Date) -> String {
    format!("{} {}, {}", d.month(), d.day(), d.year())
}

fn officer_body(page: &mut Page, col: &mut Col, f: &Facts) {
    page.para(
        col,
        Font::Regular,
        BODY,
        "Ask an officer of your organization - your CEO, a manager, or someone above you who can confirm your \
         employment - to complete and sign the right-hand column, typed or in blue or black ink. We will call the \
         officer at the phone number written there. You may name yourself as the main contact if you are the one \
         filling out the application.",
    );
    col.y -= 6.0;
    let (mut left, mut right) = col.split(0.5);
    page.section(&mut left, "APPLICANT (pre-filled)");
    page.field(&mut left, "Full name", &[&f.name]);
    page.field(&mut left, "Organization", &[&f.organization]);
    page.field(&mut left, "Email", &[&f.email]);
    page.field(&mut left, "Daytime phone", &[&f.phone]);
    let address: Vec<&str> = f.address.iter().map(String::as_str).collect();
    page.field(&mut left, "Shipping address (your token ships here)", &address);
    page.field(&mut left, "Certificate", &[&f.certificate]);
    page.field(&mut left, "Federal program", &[&f.program]);

    page.section(&mut right, "ORGANIZATION OFFICER");
    page.field(&mut right, "Officer's full name", &[]);
    page.field(&mut right, "Title", &[]);
    page.field(&mut right, "Organization", &[]);
    page.field(&mut right, "Phone (we call this number to confirm)", &[]);
    page.field(&mut right, "Email", &[]);
    page.para(
        &mut right,
        Font::Regular,
        SMALL,
        "I confirm that the applicant named at left works for, or is affiliated with, this organization and needs \
         this certificate for the federal program shown.",
    );
    right.y -= 4.0;
    page.row(&mut right, &[("Officer's signature", 0.65), ("Date", 0.35)]);
    col.y = left.y.min(right.y);
}

fn identity_body(page: &mut Page, col: &mut Col, f: &Facts) {
    page.para(
        col,
        Font::Regular,
        BODY,
        &format!(
            "Bring the original documents and this page to {}. Choose one document from List A, or two from List \
             B of which at least one has a photo; tick each one and write its number, issuer and expiry date.",
            f.witness()
        ),
    );
    col.y -= 4.0;
    page.filled_row(col, &[("Full name", &f.name), ("Organization", &f.organization)]);
    page.filled_row(col, &[("Email", &f.email), ("Daytime phone", &f.phone)]);
    let columns = [("Document", 0.0), ("Number", 0.45), ("Issued by (state or agency)", 0.66), ("Expires", 0.86)];
    for (list, heading) in [
        (DocumentList::A, "LIST A - federal government photo ID (one is enough)"),
        (DocumentList::B, "LIST B - other government ID (two, at least one with a photo)"),
    ] {
        page.section(col, heading);
        page.set_gray(0.35);
        for (label, at) in columns {
            page.text(
                col.x + at * col.w + if at == 0.0 { 14.0 } else { 0.0 },
                col.y - 7.0,
                Font::Regular,
                LABEL,
                label,
            );
        }
        page.set_gray(0.0);
        col.y -= 10.0;
        for doc in ACCEPTED_DOCUMENTS.iter().filter(|d| d.list == list) {
            let base = col.y - 14.0;
            page.rect(col.x, base - 1.0, 9.0, 9.0);
            let name = if doc.photo { format!("{} (photo)", doc.name) } else { doc.name.to_owned() };
            page.text(col.x + 14.0, base, Font::Regular, BODY, &name);
            for (i, &(_, at)) in columns.iter().enumerate().skip(1) {
                let end = columns.get(i + 1).map_or(1.0, |c| c.1);
                page.line(col.x + at * col.w, base - 3.0, col.x + end * col.w - 8.0, base - 3.0);
            }
            col.y -= 17.0;
        }
    }
    col.y -= 4.0;
    page.para(
        col,
        Font::Regular,
        SMALL,
        "I declare that the information on this form is true and correct and that the documents listed are mine.",
    );
    page.row(col, &[("Applicant's signature", 0.65), ("Date", 0.35)]);
}

fn citizenship_body(page: &mut Page, col: &mut Col, f: &Facts) {
    let intro = match &f.second_citizenship {
        Some(country) => format!(
            "You told us you are also a citizen of {country}: this page is required. Complete it, sign it before \
             {}, and mail it with the other forms.",
            f.witness()
        ),
        None => "You told us you hold no citizenship other than U.S.: you do not need to mail this page. If that \
                 has changed, complete it and mail it with the other forms."
            .to_owned(),
    };
    page.para(col, Font::Regular, BODY, &intro);
    col.y -= 4.0;
    page.filled_row(col, &[("Full name", &f.name), ("U.S. resident", f.resident)]);
    page.section(col, "OTHER CITIZENSHIP");
    let country: Vec<&str> = f.second_citizenship.iter().map(String::as_str).collect();
    let (mut left, mut right) = col.split(0.5);
    page.field(&mut left, "Country of citizenship (other than U.S.)", &country);
    page.field(&mut right, "How acquired (birth, naturalization, descent)", &[]);
    col.y = left.y.min(right.y);
    page.row(col, &[("Passport or national ID number", 0.4), ("Issued by", 0.3), ("Expires", 0.3)]);
    page.row(col, &[("Date acquired", 0.4), ("Do you hold that country's passport? (yes / no)", 0.6)]);
    page.para(
        col,
        Font::Regular,
        SMALL,
        "I declare that the information on this page is true and complete, and that I hold no citizenship other \
         than those listed here and U.S.",
    );
    page.row(col, &[("Applicant's signature", 0.65), ("Date", 0.35)]);
}

// ---------------------------------------------------------------------------------------------
// Page layout

const PAGE_W: f32 = 612.0;
const PAGE_H: f32 = 792.0;
const MARGIN: f32 = 50.0;
const TITLE: f32 = 17.0;
const SECTION: f32 = 9.5;
const BODY: f32 = 9.5;
const VALUE: f32 = 10.5;
const SMALL: f32 = 8.5;
const LABEL: f32 = 7.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Self::Regular => "/F1",
            Self::Bold => "/F2",
        }
    }
}

/// A column of the page; `y` is where the next thing goes, moving down.
#[derive(Debug, Clone, Copy)]
struct Col {
    x: f32,
    w: f32,
    y: f32,
}

impl Col {
    /// Two columns side by side, the left one `share` of the width, with a gutter.
    fn split(&self, share: f32) -> (Col, Col) {
        const GUTTER: f32 = 18.0;
        let left = (self.w - GUTTER) * share;
        (Col { w: left, ..*self }, Col { x: self.x + left + GUTTER, w: self.w - left - GUTTER, y: self.y })
    }
}

/// One page's content stream. Everything written goes through [`encode`] and [`literal`],
/// so the stream is ASCII and no text can end a string early.
#[derive(Default)]
struct Page {
    ops: String,
}

impl Page {
    fn text(&mut self, x: f32, y: f32, font: Font, size: f32, s: &str) {
        self.text_bytes(x, y, font, size, &encode(s).0);
    }

    fn text_bytes(&mut self, x: f32, y: f32, font: Font, size: f32, bytes: &[u8]) {
        let _ = writeln!(self.ops, "BT {} {size:.1} Tf {x:.2} {y:.2} Td {} Tj ET", font.resource(), literal(bytes));
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        let _ = writeln!(self.ops, "{x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S");
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32) {
        let _ = writeln!(self.ops, "{x:.2} {y:.2} {w:.2} {h:.2} re S");
    }

    fn set_gray(&mut self, level: f32) {
        let _ = writeln!(self.ops, "{level:.2} g");
    }

    /// Wrapped text at the column's cursor.
    fn para(&mut self, col: &mut Col, font: Font, size: f32, s: &str) {
        let leading = size * 1.3;
        for line in wrap(&encode(s).0, font, size, col.w) {
            col.y -= leading;
            self.text_bytes(col.x, col.y, font, size, &line);
        }
        col.y -= size * 0.5;
    }

    fn section(&mut self, col: &mut Col, title: &str) {
        col.y -= 8.0;
        self.para(col, Font::Bold, SECTION, title);
    }

    /// A labelled field: the values printed on their own lines, or an empty line to fill in.
    fn field(&mut self, col: &mut Col, label: &str, values: &[&str]) {
        self.set_gray(0.35);
        self.text(col.x, col.y - LABEL, Font::Regular, LABEL, label);
        self.set_gray(0.0);
        let mut y = col.y - LABEL;
        let mut lossy = false;
        for value in values {
            let (bytes, exact) = encode(value);
            lossy |= !exact;
            for line in wrap(&bytes, Font::Regular, VALUE, col.w) {
                y -= VALUE + 3.0;
                self.text_bytes(col.x, y, Font::Regular, VALUE, &line);
            }
        }
        if values.is_empty() {
            // Room to write by hand.
            y -= 20.0;
        }
        self.line(col.x, y - 3.0, col.x + col.w, y - 3.0);
        if lossy {
            y -= LABEL + 4.0;
            self.set_gray(0.35);
            self.text(
                col.x,
                y,
                Font::Regular,
                LABEL,
                "Some characters cannot be printed here: write it above by hand.",
            );
            self.set_gray(0.0);
        }
        col.y = y - 10.0;
    }

    /// Empty fields side by side, each taking its share of the width.
    fn row(&mut self, col: &mut Col, cells: &[(&str, f32)]) {
        let cells: Vec<(&str, &[&str], f32)> = cells.iter().map(|&(label, share)| (label, &[][..], share)).collect();
        self.cells(col, &cells);
    }

    /// Pre-filled fields side by side, sharing the width equally.
    fn filled_row(&mut self, col: &mut Col, cells: &[(&str, &str)]) {
        let share = 1.0 / cells.len() as f32;
        let values: Vec<[&str; 1]> = cells.iter().map(|&(_, v)| [v]).collect();
        let cells: Vec<(&str, &[&str], f32)> =
            cells.iter().zip(&values).map(|(&(label, _), v)| (label, &v[..], share)).collect();
        self.cells(col, &cells);
    }

    fn cells(&mut self, col: &mut Col, cells: &[(&str, &[&str], f32)]) {
        const GAP: f32 = 14.0;
        let mut x = col.x;
        let mut bottom = col.y;
        for (i, &(label, values, share)) in cells.iter().enumerate() {
            let gap = if i + 1 == cells.len() { 0.0 } else { GAP };
            let mut cell = Col { x, w: col.w * share - gap, y: col.y };
            self.field(&mut cell, label, values);
            bottom = bottom.min(cell.y);
            x += col.w * share;
        }
        col.y = bottom;
    }

    /// The reference and title every page starts with; returns the body column.
    fn header(&mut self, f: &Facts, form: PaperForm) -> Col {
        let top = PAGE_H - MARGIN;
        self.set_gray(0.35);
        self.text(MARGIN, top, Font::Regular, SMALL, "Signet ECA certificate application");
        self.set_gray(0.0);
        let reference = format!("Reference {}", f.reference);
        let w = text_width(&encode(&reference).0, Font::Bold, 12.0);
        self.text(PAGE_W - MARGIN - w, top - 2.0, Font::Bold, 12.0, &reference);
        self.text(MARGIN, top - 26.0, Font::Bold, TITLE, form.title());
        let _ = writeln!(self.ops, "1.5 w");
        self.line(MARGIN, top - 34.0, PAGE_W - MARGIN, top - 34.0);
        let _ = writeln!(self.ops, "0.6 w");
        Col { x: MARGIN, w: PAGE_W - 2.0 * MARGIN, y: top - 38.0 }
    }

    /// The notary's acknowledgement, or the in-person registrar's verification for types a
    /// notary may not proof (DESIGN §2: Medium Hardware is proofed in person, not by a notary).
    fn attestation(&mut self, col: &mut Col, f: &Facts) {
        col.y -= 10.0;
        let _ = writeln!(self.ops, "1.2 w");
        self.line(col.x, col.y, col.x + col.w, col.y);
        let _ = writeln!(self.ops, "0.6 w");
        match f.rule {
            ProofingRule::NotaryOrRegistrar => {
                self.section(col, "NOTARY ACKNOWLEDGEMENT");
                let top = col.y;
                let seal = 130.0;
                let mut body = Col { w: col.w - seal - 16.0, ..*col };
                self.row(&mut body, &[("State", 0.5), ("County", 0.5)]);
                self.para(
                    &mut body,
                    Font::Regular,
                    SMALL,
                    &format!(
                        "Subscribed and sworn to (or affirmed) before me on the date below by {}, proved to me on \
                         the basis of satisfactory evidence to be the person who appeared before me.",
                        f.name
                    ),
                );
                self.row(&mut body, &[("Notary's signature", 0.65), ("Date", 0.35)]);
                self.row(&mut body, &[("Notary's printed name", 0.6), ("Commission expires", 0.4)]);
                let bottom = body.y;
                let x = col.x + col.w - seal;
                self.rect(x, bottom + 6.0, seal, top - bottom - 12.0);
                self.set_gray(0.35);
                self.text(x + 8.0, top - 20.0, Font::Regular, SMALL, "Notary seal (required)");
                self.set_gray(0.0);
                col.y = bottom;
                self.para(
                    col,
                    Font::Bold,
                    SMALL,
                    "Make sure the notary's official seal is on this page: without it the forms are returned and \
                     must be notarized again.",
                );
            }
            ProofingRule::InPersonRegistrar => {
                self.section(col, "IN-PERSON REGISTRAR VERIFICATION");
                self.para(
                    col,
                    Font::Regular,
                    SMALL,
                    &format!(
                        "{} requires proofing in person before a Signet registrar or Trusted Agent; a notary may \
                         not complete this block. I verified in person that {} is the person named on this form, \
                         against the original documents listed.",
                        f.type_name, f.name
                    ),
                );
                self.row(col, &[("Registrar's printed name", 0.5), ("Registrar or Trusted Agent ID", 0.5)]);
                self.row(col, &[("Registrar's signature", 0.65), ("Date", 0.35)]);
            }
        }
    }

    /// The 30-day rule (DESIGN §2: retrieve within 30 days of the notary signature) and the
    /// date the application's open window ends.
    fn deadlines(&mut self, col: &mut Col, f: &Facts) {
        let signer = match f.rule {
            ProofingRule::NotaryOrRegistrar => "the notary signs",
            ProofingRule::InPersonRegistrar => "the registrar verifies you in person",
        };
        col.y -= 6.0;
        self.section(col, "DEADLINES");
        let mut text = format!(
            "Day 1 is the day {signer}. Mail the originals the same day with a tracking number and keep copies. \
             Your certificates must be retrieved within {days} days of that date (by Day {days}), or the \
             application expires and you must start over: retrieve them as soon as your token arrives (about \
             Day 10).",
            days = f.policy.retrieval_days
        );
        if let Some(due) = &f.due {
            text.push(' ');
            text.push_str(due);
        }
        self.para(col, Font::Regular, SMALL, &text);
    }

    /// Where the signed originals go and whom to ask: the applicant holding the printed page
    /// needs nothing else to send it.
    fn mail_to(&mut self, col: &mut Col, f: &Facts) {
        col.y -= 2.0;
        self.section(col, "MAIL THE SIGNED ORIGINALS TO");
        // One run of text, not an envelope block: the pages have room for two lines here.
        self.para(col, Font::Bold, SMALL, &f.mail_to.join(", "));
        self.para(col, Font::Regular, SMALL, &f.support);
    }

    fn footer(&mut self, f: &Facts, form: PaperForm, n: usize, of: usize) {
        let y = MARGIN - 22.0;
        self.set_gray(0.35);
        let left = format!("Application {} - {} - page {n} of {of}", f.reference, form.title());
        self.text(MARGIN, y, Font::Regular, LABEL, &left);
        let right = format!("Status: {}", f.status_url);
        let w = text_width(&encode(&right).0, Font::Regular, LABEL);
        self.text(PAGE_W - MARGIN - w, y, Font::Regular, LABEL, &right);
        self.set_gray(0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// The WinAnsiEncoding code of `c` (PDF 32000-1:2008 Annex D.2), if it has one.
fn win_ansi(c: char) -> Option<u8> {
    Some(match c {
        ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(c).ok()?,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => return None,
    })
}

/// `s` in WinAnsi, and whether every character printed as it is. Others lose their accents
/// (the canonical decomposition's encodable part), or, for letters with a stroke that do not
/// decompose, become their base letter, or else `?`.
fn encode(s: &str) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(s.len());
    let mut exact = true;
    for c in s.chars() {
        if let Some(b) = win_ansi(c) {
            out.push(b);
            continue;
        }
        exact = false;
        let base: Vec<u8> = std::iter::once(c).nfd().filter_map(win_ansi).collect();
        if !base.is_empty() {
            out.extend(base);
            continue;
        }
        out.push(match c {
            'Ł' => b'L',
            'ł' => b'l',
            'Đ' => b'D',
            'đ' => b'd',
            'Ħ' => b'H',
            'ħ' => b'h',
            'ı' => b'i',
            'Ŧ' => b'T',
            'ŧ' => b't',
            _ => b'?',
        });
    }
    (out, exact)
}

/// A PDF literal string (PDF 32000-1 §7.3.4.2): `(`, `)` and `\` escaped, and every byte
/// outside printable ASCII written as an octal escape, so the stream stays ASCII.
fn literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// Helvetica's advance widths for 0x20–0x7E in WinAnsiEncoding (Adobe's AFM; 0x27 is
/// quotesingle and 0x60 grave there), in thousandths of the font size.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The width of encoded text. Past ASCII and for bold it errs wide, so wrapped lines never
/// run past the margin.
fn text_width(bytes: &[u8], font: Font, size: f32) -> f32 {
    let units: u32 = bytes
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => u32::from(HELVETICA[usize::from(b - 0x20)]),
            0x85 | 0x89 | 0x8c | 0x97 | 0x99 | 0x9c | 0xc6 | 0xe6 => 1000,
            _ => 722,
        })
        .sum();
    let bold = if font == Font::Bold { 1.1 } else { 1.0 };
    units as f32 * size * bold / 1000.0
}

/// Breaks encoded text into lines no wider than `width`, at spaces, or inside a word too long
/// for a line of its own.
fn wrap(bytes: &[u8], font: Font, size: f32, width: f32) -> Vec<Vec<u8>> {
    let fits = |line: &[u8]| text_width(line, font, size) <= width;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut candidate = line.clone();
        if !candidate.is_empty() {
            candidate.push(b' ');
        }
        candidate.extend_from_slice(word);
        if fits(&candidate) {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for &b in word {
            line.push(b);
            if !fits(&line) {
                let last = line.pop().expect("just pushed");
                lines.push(std::mem::replace(&mut line, vec![last]));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// File structure

/// A PDF 1.7 file (PDF 32000-1 §7.5): catalog, page tree, the two fonts, the document
/// information, one page object and content stream per page, the cross-reference table and
/// the trailer. The file identifier is a digest of the content.
fn write_pdf(title: &str, pages: &[String]) -> Vec<u8> {
    const FIRST_PAGE: usize = 6;
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", FIRST_PAGE + 2 * i)).collect();
    let font = |name: &str| format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>");
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).into_bytes(),
        font("Helvetica").into_bytes(),
        font("Helvetica-Bold").into_bytes(),
        format!("<< /Title {} /Producer (Signet) >>", literal(&encode(title).0)).into_bytes(),
    ];
    for (i, content) in pages.iter().enumerate() {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources << /Font << /F1 3 0 R \
                 /F2 4 0 R >> >> /Contents {} 0 R >>",
                FIRST_PAGE + 2 * i + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }

    // The binary comment line marks the file as binary for transfer tools (§7.5.2).
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &out);
    let id = hex::encode(&digest.as_ref()[..16]);
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

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
