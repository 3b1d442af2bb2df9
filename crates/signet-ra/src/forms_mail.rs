//! The paper forms' trip by mail: which files the applicant prints, the carrier and tracking
//! number they tell us they mailed them with, and an operator's finding that something is wrong
//! with what arrived (a missing notary seal, a missing page). Both records are audit events on
//! the application and nothing else — they change no lifecycle state — so [`FormsTrail`] reads
//! them back from the application's history.

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::application::{Actor, Application, ApplicationId, ApplicationState};
use crate::audit::{AuditAction, AuditEvent, AuditRecord};
use crate::vetting::Tracking;

/// One of the PDF files the applicant downloads, prints and mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaperForm {
    /// The Organization Officer Verification.
    Officer,
    /// The Identity Verification, signed before the notary or registrar.
    Identity,
    /// The citizenship page, for applicants with a second citizenship.
    Citizenship,
}

impl PaperForm {
    /// Every form, in the order they are printed.
    pub const ALL: [Self; 3] = [Self::Officer, Self::Identity, Self::Citizenship];

    /// The title printed on the form.
    pub fn title(self) -> &'static str {
        match self {
            Self::Officer => "Organization Officer Verification",
            Self::Identity => "Identity Verification",
            Self::Citizenship => "Citizenship",
        }
    }

    /// The last segment of its download address.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Officer => "officer-verification.pdf",
            Self::Identity => "identity-verification.pdf",
            Self::Citizenship => "citizenship.pdf",
        }
    }

    /// The form a download address names.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.slug() == slug)
    }

    /// The name the downloaded file is saved under: the application reference keeps the
    /// printed pages of two applications apart.
    pub fn file_name(self, id: &ApplicationId) -> String {
        format!("{id}-{}", self.slug())
    }

    /// The forms this applicant mails: the citizenship page only with a second citizenship.
    pub fn needed_by(app: &Application) -> Vec<Self> {
        let dual = app.form().applicant.second_citizenship.is_some();
        Self::ALL.into_iter().filter(|f| *f != Self::Citizenship || dual).collect()
    }
}

/// What the applicant says they mailed, and when they said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormsMailed {
    /// Carrier and tracking number.
    pub tracking: Tracking,
    /// When the applicant recorded it.
    pub at: OffsetDateTime,
}

impl FormsMailed {
    /// The audit event recording it on application `id`.
    pub fn event(&self, id: &ApplicationId) -> AuditEvent {
        AuditEvent::new(
            self.at,
            &Actor::Applicant.audit_name(),
            AuditAction::FormsMailed,
            id.as_str(),
            json!({ "tracking": self.tracking }),
        )
    }
}

/// A problem an operator finds with the mailed forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FormProblem {
    /// The notary's official seal is not on the identity form.
    NotarySealMissing,
    /// The notary did not sign.
    NotarySignatureMissing,
    /// A form that is needed did not arrive.
    PageMissing,
    /// A form arrived with fields left empty.
    PageIncomplete,
    /// Something on the forms cannot be read.
    Illegible,
    /// The name on the forms is not the name on the application.
    NameMismatch,
    /// Something else, which the operator's note explains.
    Other,
}

impl FormProblem {
    /// Every problem, in the order the console lists them.
    pub const ALL: [Self; 7] = [
        Self::NotarySealMissing,
        Self::NotarySignatureMissing,
        Self::PageMissing,
        Self::PageIncomplete,
        Self::Illegible,
        Self::NameMismatch,
        Self::Other,
    ];

    /// The form value and stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotarySealMissing => "notary-seal-missing",
            Self::NotarySignatureMissing => "notary-signature-missing",
            Self::PageMissing => "page-missing",
            Self::PageIncomplete => "page-incomplete",
            Self::Illegible => "illegible",
            Self::NameMismatch => "name-mismatch",
            Self::Other => "other",
        }
    }

    /// The problem a form value names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The operator's checkbox label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotarySealMissing => "Notary seal missing",
            Self::NotarySignatureMissing => "Notary signature missing",
            Self::PageMissing => "A page is missing",
            Self::PageIncomplete => "A page is incomplete",
            Self::Illegible => "Illegible",
            Self::NameMismatch => "Name does not match the application",
            Self::Other => "Other (say what in the note)",
        }
    }

    /// What the applicant reads: the problem and what to do about it.
    pub fn to_applicant(self) -> &'static str {
        match self {
            Self::NotarySealMissing => {
                "The notary's official seal is not on the Identity Verification form. Have it notarized again, \
                 with the seal stamped on the page."
            }
            Self::NotarySignatureMissing => {
                "The notary did not sign the Identity Verification form. Have it notarized again and make sure the \
                 notary signs."
            }
            Self::PageMissing => "A form is missing from your envelope. Print it from your status page and mail it.",
            Self::PageIncomplete => {
                "A form has empty fields. Fill in every field (your Organization Officer completes their column) and \
                 mail it again."
            }
            Self::Illegible => {
                "Part of your forms cannot be read. Print them again and write clearly in blue or black ink."
            }
            Self::NameMismatch => {
                "The name on your forms is not the name on your application. Use your name exactly as you applied, \
                 or contact us to correct the application."
            }
            Self::Other => "Something else needs fixing: see the note from our staff.",
        }
    }
}

/// Why a deficiency finding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeficiencyError {
    /// No problem was ticked.
    #[error("Tick at least one problem.")]
    NoProblem,
    /// "Other" was ticked without a note saying what.
    #[error("Say in the note what the other problem is.")]
    OtherNeedsNote,
    /// The note is too long or has control characters other than line breaks.
    #[error("Write a note of at most {max} characters.", max = Deficiency::NOTE_MAX)]
    Note,
}

/// An operator's finding that the mailed forms must be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deficiency {
    /// What is wrong, each once, in [`FormProblem::ALL`]'s order.
    pub problems: Vec<FormProblem>,
    /// The operator's words to the applicant, if any.
    pub note: Option<String>,
    /// When it was found.
    pub at: OffsetDateTime,
}

impl Deficiency {
    /// The longest note, in characters.
    pub const NOTE_MAX: usize = 1000;

    /// Checks a finding: at least one problem, and a note when one of them is "other".
    pub fn new(problems: &[FormProblem], note: &str, at: OffsetDateTime) -> Result<Self, DeficiencyError> {
        let note = note.trim();
        if note.chars().count() > Self::NOTE_MAX || note.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r')) {
            return Err(DeficiencyError::Note);
        }
        let problems: Vec<FormProblem> = FormProblem::ALL.into_iter().filter(|p| problems.contains(p)).collect();
        if problems.is_empty() {
            return Err(DeficiencyError::NoProblem);
        }
        if problems.contains(&FormProblem::Other) && note.is_empty() {
            return Err(DeficiencyError::OtherNeedsNote);
        }
        Ok(Self { problems, note: (!note.is_empty()).then(|| note.to_owned()), at })
    }

    /// Whether an application in `state` can have its forms found deficient: once the email is
    /// confirmed (the forms may be in the envelope just opened) and until it is approved.
    pub fn may_be_found(state: &ApplicationState) -> bool {
        matches!(
            state.state_name(),
            "email-verified" | "forms-received" | "officer-confirmed" | "identity-verified" | "first-approved"
        )
    }

    /// The audit event recording it on application `id`, by `actor`.
    pub fn event(&self, id: &ApplicationId, actor: &Actor) -> AuditEvent {
        AuditEvent::new(
            self.at,
            &actor.audit_name(),
            AuditAction::FormsDeficient,
            id.as_str(),
            json!({ "problems": self.problems, "note": self.note }),
        )
    }
}

/// The mailing and deficiency records of one application, read from its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormsTrail {
    /// The latest mailing the applicant recorded.
    pub mailed: Option<FormsMailed>,
    /// The latest deficiency finding, unless the applicant has recorded a mailing since.
    pub deficiency: Option<Deficiency>,
}

impl FormsTrail {
    /// Reads an application's audit rows, oldest first. A row whose details cannot be read is
    /// skipped: the trail is what the pages show, and the chain itself is checked elsewhere.
    pub fn of(history: &[AuditRecord]) -> Self {
        #[derive(Deserialize)]
        struct Mailed {
            tracking: Tracking,
        }
        #[derive(Deserialize)]
        struct Found {
            problems: Vec<FormProblem>,
            note: Option<String>,
        }
        let mut trail = Self::default();
        for r in history {
            let Ok(at) = OffsetDateTime::from_unix_timestamp(r.at) else { continue };
            if r.action == AuditAction::FormsMailed.name() {
                if let Ok(m) = serde_json::from_str::<Mailed>(&r.details) {
                    trail.mailed = Some(FormsMailed { tracking: m.tracking, at });
                    trail.deficiency = None;
                }
            } else if r.action == AuditAction::FormsDeficient.name()
                && let Ok(f) = serde_json::from_str::<Found>(&r.details)
            {
                trail.deficiency = Some(Deficiency { problems: f.problems, note: f.note, at });
            }
        }
        trail
    }

    /// Whether the applicant may record a mailing now: the application is open and its forms
    /// have not arrived yet, or have to be sent again.
    pub fn expects_mailing(&self, app: &Application) -> bool {
        let state = app.state();
        state.is_open() && (state.forms().is_none() || self.deficiency.is_some())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::audit::AuditRecord;
    use crate::vetting::{Carrier, TrackingNumber};

    const T: OffsetDateTime = datetime!(2026-11-05 10:00 UTC);

    fn record(seq: i64, e: &AuditEvent) -> AuditRecord {
        AuditRecord {
            seq,
            at: e.at.unix_timestamp(),
            actor: e.actor.clone(),
            action: e.action.name().to_owned(),
            subject: e.subject.clone(),
            details: e.details.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
            request_id: None,
            lane: String::new(),
            lane_seq: 0,
        }
    }

    #[test]
    fn a_finding_needs_a_problem_and_a_note_for_other() {
        use FormProblem as P;
        assert_eq!(Deficiency::new(&[], "", T), Err(DeficiencyError::NoProblem));
        assert_eq!(Deficiency::new(&[P::Other], "  ", T), Err(DeficiencyError::OtherNeedsNote));
        assert_eq!(Deficiency::new(&[P::Illegible], &"x".repeat(1001), T), Err(DeficiencyError::Note));
        assert_eq!(Deficiency::new(&[P::Illegible], "bell \u{7}", T), Err(DeficiencyError::Note));
        let d = Deficiency::new(&[P::PageMissing, P::NotarySealMissing, P::PageMissing], "", T).unwrap();
        assert_eq!(d.problems, [P::NotarySealMissing, P::PageMissing], "each once, in list order");
        assert_eq!(d.note, None);
        for p in FormProblem::ALL {
            assert_eq!(FormProblem::parse(p.name()), Some(p));
        }
    }

    #[test]
    fn the_trail_reads_back_and_a_new_mailing_answers_a_finding() {
        let id = ApplicationId::new("7K2M9Q4T8V1W").unwrap();
        let ups = Tracking {
            carrier: Carrier::Ups,
            number: TrackingNumber::new(Carrier::Ups, "1Z999AA10123456784").unwrap(),
        };
        let mailed = FormsMailed { tracking: ups.clone(), at: T };
        let found =
            Deficiency::new(&[FormProblem::NotarySealMissing], "Seal faint.", T + time::Duration::days(2)).unwrap();
        let by = Actor::Operator(crate::application::OperatorId::new("alice").unwrap());
        let rows = [record(1, &mailed.event(&id)), record(2, &found.event(&id, &by))];
        let trail = FormsTrail::of(&rows);
        assert_eq!(trail.mailed, Some(mailed.clone()));
        assert_eq!(trail.deficiency, Some(found));
        let again = FormsMailed { tracking: ups, at: T + time::Duration::days(3) };
        let trail = FormsTrail::of(&[rows[0].clone(), rows[1].clone(), record(3, &again.event(&id))]);
        assert_eq!((trail.mailed, trail.deficiency), (Some(again), None));
        assert_eq!(rows[0].actor, "applicant");
    }

    #[test]
    fn form_slugs_round_trip() {
        for f in PaperForm::ALL {
            assert_eq!(PaperForm::from_slug(f.slug()), Some(f));
        }
        let id = ApplicationId::new("7K2M9Q4T8V1W").unwrap();
        assert_eq!(PaperForm::Identity.file_name(&id), "7K2M9Q4T8V1W-identity-verification.pdf");
    }
}
