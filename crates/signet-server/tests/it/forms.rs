//! The pre-filled PDF forms and the timeline picture, checked by independent tools: poppler's
//! `pdftotext`/`pdfinfo` read the PDFs back, `qpdf --check` validates their structure, and
//! librsvg's `rsvg-convert` renders the SVG. A rendered PDF page and timeline are left in
//! `target/screenshots/` for a human to look at.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::LazyLock;

use signet_authority::forms_pdf;
use signet_authority::timeline_svg::timeline_svg;
use signet_pki::profile::Catalog;
use signet_pki::subject::CommonName;
use signet_ra::application::{Actor, Application, ApplicationForm, ApplicationId, Command, IssuedSecret, OperatorId};
use signet_ra::contact::RaContact;
use signet_ra::fixtures::sample_form;
use signet_ra::forms_mail::PaperForm;
use signet_ra::vetting::{
    self, Attestation, Carrier, DeadlinePolicy, FormPages, FormsReceipt, Milestone, MilestoneStatus, Timeline,
    Tracking, TrackingNumber,
};
use signet_ra::wizard::AgencyCatalog;
use signet_ra::{Clock, FakeClock};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const BASE_URL: &str = "https://ra.example.gov/";
const TRICKY_NAME: &str = "Zoë O'Brien (Jr.) \\";
const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);

/// The RA the forms send the applicant to.
fn contact() -> RaContact {
    RaContact::new(
        "Acme Registration Authority",
        &["Acme Registration Authority", "Attn: ECA Forms", "PO Box 4417", "Reston, VA 20195"],
        "help@acme-ra.example",
        "571-555-0199",
    )
    .unwrap()
}

/// The deployment the forms are printed for: the shipped catalogs and deadlines, [`contact`].
struct Ra {
    contact: RaContact,
    catalog: Catalog,
    agencies: AgencyCatalog,
    deadlines: DeadlinePolicy,
}

static RA: LazyLock<Ra> = LazyLock::new(|| {
    let catalog = Catalog::default_eca();
    let agencies = AgencyCatalog::default_catalog(&catalog);
    Ra { contact: contact(), catalog, agencies, deadlines: DeadlinePolicy::default() }
});

impl Ra {
    fn deployment(&self) -> forms_pdf::Deployment<'_> {
        forms_pdf::Deployment {
            base_url: BASE_URL,
            contact: &self.contact,
            catalog: &self.catalog,
            agencies: &self.agencies,
            deadlines: &self.deadlines,
        }
    }
}

fn submitted(form: ApplicationForm, clock: &FakeClock) -> (Application, Option<IssuedSecret>) {
    let t = Application::submit(ApplicationId::generate(), form, clock.now());
    (t.application, t.secret)
}

fn form_named(cert_type: &str, name: &str) -> ApplicationForm {
    let mut form = sample_form(cert_type);
    form.applicant.name = CommonName::new(name).unwrap();
    form
}

/// Submitted at T0 and the email verified: waiting for the forms.
fn waiting_for_forms(clock: &FakeClock) -> Application {
    let (app, secret) = submitted(sample_form("medium-token"), clock);
    let Some(IssuedSecret::EmailVerification(token)) = secret else { panic!("submission sends the email link") };
    let p = DeadlinePolicy::default();
    app.apply(&Actor::Applicant, Command::VerifyEmail(token), clock.now(), &p).unwrap().application
}

/// Notarized two days after T0, received three days later.
fn forms_received(clock: &FakeClock) -> Application {
    let app = waiting_for_forms(clock);
    let notarized_on = (T0 + Duration::days(2)).date();
    clock.advance(Duration::days(5));
    let forms = FormsReceipt {
        received_on: clock.now().date(),
        tracking: Tracking {
            carrier: Carrier::Ups,
            number: TrackingNumber::new(Carrier::Ups, "1Z999AA10123456784").unwrap(),
        },
        pages: FormPages { officer_verification: true, identity_verification: true, citizenship: None },
        attestation: Attestation::Notarized { notary_name: "Pat Notary".into(), seal_present: true, notarized_on },
    };
    let operator = Actor::Operator(OperatorId::new("alice").unwrap());
    app.apply(&operator, Command::RecordForms(forms), clock.now(), &DeadlinePolicy::default()).unwrap().application
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Process::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the PDF, has qpdf check it and pdfinfo count its pages, and returns its text as
/// pdftotext reads it.
fn checked_text(pdf: &[u8], dir: &Path, name: &str, pages: usize) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pdf).unwrap();
    let path = path.to_str().unwrap();
    let check = run("qpdf", &["--check", path]);
    assert!(check.contains("No syntax or stream encoding errors found"), "{check}");
    let info = run("pdfinfo", &[path]);
    let field = |name: &str, value: &str| info.lines().any(|l| l.split(':').map(str::trim).eq([name, value]));
    assert!(field("PDF version", "1.7") && field("Pages", &pages.to_string()), "{info}");
    run("pdftotext", &["-enc", "UTF-8", path, "-"])
}

#[test]
fn the_packet_is_pre_filled_and_survives_a_hostile_name() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at(T0);
    let (app, _) = submitted(form_named("medium", TRICKY_NAME), &clock);
    let pdf = forms_pdf::all_forms(&app, &RA.deployment());
    let text = checked_text(&pdf, dir.path(), "packet.pdf", 3);

    let reference = format!("Reference {}", app.id());
    for expected in [
        TRICKY_NAME,
        reference.as_str(),
        "Acme, Inc.",
        "jane.doe@acme.example",
        "(206) 555-0142",
        "Seattle, WA 98101-1234",
        "Medium Assurance, 2 years",
        "Integrate",
        "Organization Officer Verification",
        "Identity Verification",
        "Citizenship",
        "U.S. passport (photo)",
        "Voter registration card",
        "NOTARY ACKNOWLEDGEMENT",
        "Notary seal (required)",
        "within 30 days",
        // Submitted 2025-03-03 (Day 1 of the open window): Day 45 is April 16.
        "April 16, 2025",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    assert!(!text.contains("IN-PERSON REGISTRAR"), "a notary may proof Medium Assurance");
    assert!(!text.contains("Some characters cannot be printed"), "every character of the name is in WinAnsi");
    let status = format!("Status: https://ra.example.gov/applications/{}", app.id());
    assert_eq!(text.matches(&status).count(), 3, "each page says where to follow the application");
    // Each page says where the signed original goes, line by line, and whom to ask.
    let address =
        "MAIL THE SIGNED ORIGINALS TO\nAcme Registration Authority, Attn: ECA Forms, PO Box 4417, Reston, VA 20195\n";
    assert_eq!(text.matches(address).count(), 3, "{text}");
    // The block ends above the footer: each footer still reads as one line.
    for (n, title) in ["Organization Officer Verification", "Identity Verification", "Citizenship"].iter().enumerate() {
        let footer = format!("Application {} - {title} - page {} of 3", app.id(), n + 1);
        assert!(text.contains(&footer), "{footer:?} broken in:\n{text}");
    }
    let support = "Questions? Email help@acme-ra.example or call (571) 555-0199.";
    assert_eq!(text.matches(support).count(), 3, "{text}");

    let prefix = screenshots().join("forms-page");
    let pdf_path = dir.path().join("packet.pdf");
    run("pdftoppm", &["-png", "-r", "80", pdf_path.to_str().unwrap(), prefix.to_str().unwrap()]);
    assert!(screenshots().join("forms-page-1.png").exists());
}

#[test]
fn medium_hardware_forms_ask_for_an_in_person_registrar_not_a_notary() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = submitted(sample_form("medium-hardware"), &FakeClock::at(T0));
    let text = checked_text(&forms_pdf::form(&app, PaperForm::Identity, &RA.deployment()), dir.path(), "id.pdf", 1);
    assert!(text.contains("IN-PERSON REGISTRAR VERIFICATION"), "{text}");
    assert!(text.contains("Medium Hardware Assurance requires proofing in person"), "{text}");
    assert!(text.contains("Day 1 is the day the registrar verifies you in person"), "{text}");
    assert!(text.contains("Your completed forms must reach us by April 16, 2025"), "{text}");
    assert!(!text.contains("NOTARY ACKNOWLEDGEMENT") && !text.contains("Notary seal"), "{text}");
    assert!(!text.contains("Organization Officer Verification"), "one form only");

    let pdf_path = dir.path().join("id.pdf");
    let png = screenshots().join("forms-hardware-identity");
    run("pdftoppm", &["-png", "-r", "80", "-singlefile", pdf_path.to_str().unwrap(), png.to_str().unwrap()]);
}

#[test]
fn each_form_downloads_alone_and_the_citizenship_page_follows_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at(T0);
    let mut form = sample_form("medium-token");
    form.applicant.second_citizenship = Some("Canada".into());
    let (dual, _) = submitted(form, &clock);
    let text =
        checked_text(&forms_pdf::form(&dual, PaperForm::Citizenship, &RA.deployment()), dir.path(), "dual.pdf", 1);
    assert!(text.contains("also a citizen of Canada: this page is required"), "{text}");
    assert!(text.contains("Canada\n") || text.contains("Canada "), "pre-filled country: {text}");

    let (single, _) = submitted(sample_form("medium-token"), &clock);
    let text =
        checked_text(&forms_pdf::form(&single, PaperForm::Citizenship, &RA.deployment()), dir.path(), "single.pdf", 1);
    assert!(text.contains("you do not need to mail this page"), "{text}");

    let text =
        checked_text(&forms_pdf::form(&single, PaperForm::Officer, &RA.deployment()), dir.path(), "officer.pdf", 1);
    assert!(text.contains("ORGANIZATION OFFICER") && text.contains("Officer's signature"), "{text}");
    assert!(text.contains("Medium Token Assurance, 2 years") && text.contains("Jane Q. Doe"), "{text}");
}

#[test]
fn names_outside_the_fonts_print_transliterated_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = submitted(form_named("medium", "Łukasz Dvořák 李"), &FakeClock::at(T0));
    let text = checked_text(&forms_pdf::form(&app, PaperForm::Officer, &RA.deployment()), dir.path(), "names.pdf", 1);
    assert!(text.contains("Lukasz Dvorák ?"), "{text}");
    assert!(text.contains("Some characters cannot be printed here: write it above by hand."), "{text}");
}

/// Renders the SVG with librsvg and returns the PNG's path.
fn rendered(svg: &str, name: &str) -> PathBuf {
    let svg_path = screenshots().join(format!("{name}.svg"));
    let png_path = screenshots().join(format!("{name}.png"));
    std::fs::write(&svg_path, svg).unwrap();
    run("rsvg-convert", &["-o", png_path.to_str().unwrap(), svg_path.to_str().unwrap()]);
    let png = std::fs::read(&png_path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "rsvg-convert wrote a PNG");
    png_path
}

fn desc(svg: &str) -> &str {
    let start = svg.find(r#"<desc id="signet-timeline-desc">"#).expect("a desc") + 32;
    &svg[start..start + svg[start..].find("</desc>").unwrap()]
}

/// The current milestone's diamond, as drawn on the axis and in the list.
const NEXT_MARKER: &str = r#"<path d="M0 -13 l13 13 l-13 13 l-13 -13 z""#;

#[test]
fn the_timeline_shows_the_day_the_next_step_and_the_days_left() {
    let clock = FakeClock::at(T0);
    let app = forms_received(&clock);
    let t = vetting::timeline(&app, clock.now(), &DeadlinePolicy::default()).unwrap();
    let svg = timeline_svg(&t);
    rendered(&svg, "timeline");

    assert!(svg.starts_with("<svg ") && svg.contains(r#"role="img""#), "{svg}");
    assert!(svg.contains(r#"<title id="signet-timeline-title">Your application timeline</title>"#));
    // Notarized 2025-03-05 (Day 1); on 2025-03-08 it is Day 4 and Day 30 is 2025-04-03.
    let d = desc(&svg);
    assert!(
        d.starts_with("Day 4 of 30: 26 days remain to retrieve your certificates (last day April 3, 2025)."),
        "{d}"
    );
    assert!(d.contains("Next: Token shipped (around Day 5, expected March 9, 2025)."), "{d}");
    assert!(d.contains("Done: Forms notarized and mailed (Day 1, March 5, 2025)"), "{d}");
    assert_eq!(svg.matches(NEXT_MARKER).count(), 2, "one current milestone, on the axis and in the list");
    assert!(svg.contains(">Next step, expected March 9, 2025</text>"), "the status in words");
    assert!(svg.contains(">Today: Day 4</text>") && svg.contains(">Day 30 deadline</text>"));
}

#[test]
fn before_the_forms_arrive_the_open_window_counts_down() {
    let clock = FakeClock::at(T0);
    let app = waiting_for_forms(&clock);
    clock.advance(Duration::days(1));
    let t = vetting::timeline(&app, clock.now(), &DeadlinePolicy::default()).unwrap();
    let svg = timeline_svg(&t);
    rendered(&svg, "timeline-open");
    let d = desc(&svg);
    assert!(d.starts_with("43 days remain for your signed forms to reach us (last day April 16, 2025)."), "{d}");
    assert!(d.contains("from then you have 30 days to retrieve"), "{d}");
    assert!(d.contains("Next: Forms notarized and mailed (Day 1)."), "{d}");
    assert!(svg.contains(">Before Day 1: your application is open</text>"));
    assert!(svg.contains(">Forms must reach us by April 16, 2025 (43 days remain)</text>"));
    assert!(!svg.contains(">Today: Day"), "no Day 1 yet");
}

#[test]
fn timeline_text_is_escaped() {
    let milestone = |label: &'static str, day, status| Milestone { day, approximate: false, label, date: None, status };
    let t = Timeline {
        milestones: vec![
            milestone("Tom & Jerry's <b>\"step\"</b>", 1, MilestoneStatus::Current),
            milestone("Deadline", 30, MilestoneStatus::Upcoming),
        ],
        today: Some(1),
        deadline: None,
        days_remaining: None,
    };
    let svg = timeline_svg(&t);
    rendered(&svg, "timeline-escaped");
    assert!(svg.contains("Tom &amp; Jerry&apos;s &lt;b&gt;&quot;step&quot;&lt;/b&gt;"), "{svg}");
    assert!(!svg.contains("<b>"));
}
