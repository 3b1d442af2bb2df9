//! Vetting evidence (DESIGN §2 "Vetting"; seed onboarding guide Part 2): what an RA operator
//! records — mailed forms with their tracking number and notary seal, the organization officer
//! call-back, identity documents by type and number — and the checks over it, which return
//! readable [`Finding`]s rather than booleans so the operator console can say what to fix.
//!
//! The lifecycle stores this evidence and refuses a step its checks block, so it sits below the
//! application; `vetting` re-exports it next to the findings and deadlines of one application.

mod checks;
mod documents;
mod mail;

pub use checks::{check_callback, check_forms, check_identity};
pub use documents::{
    ACCEPTED_DOCUMENTS, Charset, DocumentKind, DocumentList, DocumentNumber, IdentityDocument, NumberFormat,
    PROOFING_RULES, ProofingRule, proofing_rule,
};
pub use mail::{Attestation, CallOutcome, Carrier, FormPages, FormsReceipt, OfficerCallback, Tracking, TrackingNumber};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The step cannot be recorded until this is fixed.
    Blocking,
    /// Worth the operator's attention; does not stop the step.
    Warning,
}

/// One readable result of a vetting check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable machine code, e.g. `notary-seal-missing`.
    pub code: &'static str,
    /// Blocking or warning.
    pub severity: Severity,
    /// What is wrong and what to do, for the operator.
    pub message: String,
}

impl Finding {
    fn blocking(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, severity: Severity::Blocking, message: message.into() }
    }
    fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, severity: Severity::Warning, message: message.into() }
    }
    /// Whether it stops the step.
    pub fn is_blocking(&self) -> bool {
        self.severity == Severity::Blocking
    }
}
