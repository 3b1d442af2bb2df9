//! The application forms (PDF): what the forms say.

use super::*;

/// Everything the pages print about the application, worded once.
pub(super) struct Facts {
    pub(super) reference: String,
    pub(super) name: String,
    organization: String,
    email: String,
    phone: String,
    address: Vec<String>,
    pub(super) type_name: String,
    certificate: String,
    program: String,
    resident: &'static str,
    second_citizenship: Option<String>,
    pub(super) rule: ProofingRule,
    pub(super) policy: DeadlinePolicy,
    pub(super) due: Option<String>,
    pub(super) status_url: String,
    pub(super) mail_to: Vec<String>,
    pub(super) support: String,
}

impl Facts {
    pub(super) fn of(app: &Application, deployment: &Deployment<'_>) -> Self {
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

pub(super) fn long_date(d: Date) -> String {
    format!("{} {}, {}", d.month(), d.day(), d.year())
}

pub(super) fn officer_body(page: &mut Page, col: &mut Col, f: &Facts) {
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

pub(super) fn identity_body(page: &mut Page, col: &mut Col, f: &Facts) {
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

pub(super) fn citizenship_body(page: &mut Page, col: &mut Col, f: &Facts) {
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
