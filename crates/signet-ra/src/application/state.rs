//! Where an application is ([`ApplicationState`]), with the evidence and approvals gathered so
//! far, and how a state is stored as a name and JSON data and read back.

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::deadline::Deadline;
use crate::evidence::{FormsReceipt, IdentityDocument, OfficerCallback, Tracking};
use crate::ids::OperatorId;
use crate::input::{InputError, string_display, string_serde, text};
use crate::secrets::SecretDigest;

/// Free text an operator writes for the applicant (rejection reasons): 1–500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    /// Checks a reason.
    pub fn new(s: &str) -> Result<Self, InputError> {
        text("reason", 500, s).map(Self)
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_serde!(Reason);
string_display!(Reason);

/// An operator's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The two approvals DESIGN §1 requires for this sensitive step, by different operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualApproval {
    /// The first approval.
    pub first: Approval,
    /// The second, by someone else.
    pub second: Approval,
}

/// Identity documents as an operator verified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The documents (type and number; never images).
    pub documents: Vec<IdentityDocument>,
    /// Who verified.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Everything vetting established, carried by every state after identity verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vetting {
    /// The mailed forms.
    pub forms: FormsReceipt,
    /// Earlier call-back attempts that reached no one.
    pub call_attempts: Vec<OfficerCallback>,
    /// The call-back that confirmed employment.
    pub officer: OfficerCallback,
    /// The identity documents.
    pub identity: IdentityRecord,
}

/// The token shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Carrier and tracking number.
    pub tracking: Tracking,
    /// Who shipped.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An issued activation code, as stored: its digest only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    /// SHA-256 of the code.
    pub digest: SecretDigest,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// Where an application is, with the evidence gathered so far. Closed: the store keeps
/// [`ApplicationState::state_name`] under a CHECK constraint over [`ALL_STATE_NAMES`] and the
/// rest as JSON ([`ApplicationState::to_stored`] / [`ApplicationState::from_stored`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "data", rename_all = "kebab-case")]
pub enum ApplicationState {
    /// Submitted and paid; waiting for the email link to be followed.
    Submitted {
        /// Digest of the verification link's token.
        email_token: SecretDigest,
    },
    /// Email verified; waiting for the notarized forms by mail.
    EmailVerified {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
    },
    /// Forms received; waiting for the organization officer call-back.
    FormsReceived {
        /// The forms.
        forms: FormsReceipt,
        /// Call-backs that reached no one yet (seed guide: "If missed, they can call back").
        call_attempts: Vec<OfficerCallback>,
    },
    /// The officer confirmed employment; waiting for identity verification.
    OfficerConfirmed {
        /// The forms.
        forms: FormsReceipt,
        /// Unanswered attempts before the confirmation.
        call_attempts: Vec<OfficerCallback>,
        /// The confirming call.
        officer: OfficerCallback,
    },
    /// Vetted; waiting for the first approval.
    IdentityVerified {
        /// The vetting record.
        vetting: Vetting,
    },
    /// One operator approved; waiting for a different one.
    FirstApproved {
        /// The vetting record.
        vetting: Vetting,
        /// The first approval.
        first: Approval,
    },
    /// Approved by two operators; waiting for the token to ship.
    Approved {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
    },
    /// Token shipped; waiting for the activation code to be issued.
    TokenShipped {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
    },
    /// Activation code emailed; waiting for the applicant to retrieve.
    CertificatesReady {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
        /// The code's digest.
        activation: ActivationRecord,
    },
    /// Certificates retrieved onto the token; the activation code is spent.
    Retrieved {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        retrieved_at: OffsetDateTime,
    },
    /// Refused by an operator, or the officer denied the applicant's employment.
    Rejected {
        /// The state it was rejected from.
        from: String,
        /// Who.
        by: OperatorId,
        /// Why, as shown to the applicant.
        reason: Reason,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A deadline passed (DESIGN §2: 45 days open; 30 days from the notary signature).
    Expired {
        /// The state it expired in.
        from: String,
        /// The deadline that passed.
        deadline: Deadline,
        /// When the job expired it.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Withdrawn by the applicant (or by an operator on the applicant's request).
    Withdrawn {
        /// The state it was withdrawn from.
        from: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// Every state's stored name, in lifecycle order: the store's CHECK constraint list.
pub const ALL_STATE_NAMES: [&str; 13] = [
    "submitted",
    "email-verified",
    "forms-received",
    "officer-confirmed",
    "identity-verified",
    "first-approved",
    "approved",
    "token-shipped",
    "certificates-ready",
    "retrieved",
    "rejected",
    "expired",
    "withdrawn",
];

/// Why a stored state could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredStateError {
    /// The name is not one of [`ALL_STATE_NAMES`].
    #[error("unknown application state {0:?}")]
    UnknownState(String),
    /// The data does not fit the state.
    #[error("application state {state} has malformed data: {error}")]
    Data {
        /// The state name.
        state: String,
        /// The decoding error.
        error: String,
    },
}

impl ApplicationState {
    /// The stored name.
    pub fn state_name(&self) -> &'static str {
        ALL_STATE_NAMES[self.position()]
    }

    fn position(&self) -> usize {
        match self {
            Self::Submitted { .. } => 0,
            Self::EmailVerified { .. } => 1,
            Self::FormsReceived { .. } => 2,
            Self::OfficerConfirmed { .. } => 3,
            Self::IdentityVerified { .. } => 4,
            Self::FirstApproved { .. } => 5,
            Self::Approved { .. } => 6,
            Self::TokenShipped { .. } => 7,
            Self::CertificatesReady { .. } => 8,
            Self::Retrieved { .. } => 9,
            Self::Rejected { .. } => 10,
            Self::Expired { .. } => 11,
            Self::Withdrawn { .. } => 12,
        }
    }

    /// How far along the happy path the application got: 0 (submitted) to 9 (retrieved);
    /// `None` for rejected, expired and withdrawn.
    pub fn progress(&self) -> Option<u8> {
        let p = self.position();
        (p <= 9).then_some(p as u8)
    }

    /// Whether the application can still move (everything but retrieved and the three ends).
    pub fn is_open(&self) -> bool {
        self.position() < 9
    }

    /// The mailed forms, once received.
    pub fn forms(&self) -> Option<&FormsReceipt> {
        match self {
            Self::FormsReceived { forms, .. } | Self::OfficerConfirmed { forms, .. } => Some(forms),
            Self::IdentityVerified { vetting }
            | Self::FirstApproved { vetting, .. }
            | Self::Approved { vetting, .. }
            | Self::TokenShipped { vetting, .. }
            | Self::CertificatesReady { vetting, .. }
            | Self::Retrieved { vetting, .. } => Some(&vetting.forms),
            _ => None,
        }
    }

    /// The token shipment, once shipped.
    pub fn shipment(&self) -> Option<&Shipment> {
        match self {
            Self::TokenShipped { shipment, .. }
            | Self::CertificatesReady { shipment, .. }
            | Self::Retrieved { shipment, .. } => Some(shipment),
            _ => None,
        }
    }

    /// The state's name and its data as JSON text, for the store.
    pub fn to_stored(&self) -> (&'static str, String) {
        let value = serde_json::to_value(self).expect("application states serialize");
        (self.state_name(), value["data"].to_string())
    }

    /// Reads a state back from its stored name and JSON data.
    pub fn from_stored(name: &str, data: &str) -> Result<Self, StoredStateError> {
        if !ALL_STATE_NAMES.contains(&name) {
            return Err(StoredStateError::UnknownState(name.to_owned()));
        }
        let bad = |e: serde_json::Error| StoredStateError::Data { state: name.to_owned(), error: e.to_string() };
        let data: serde_json::Value = serde_json::from_str(data).map_err(bad)?;
        serde_json::from_value(json!({ "state": name, "data": data })).map_err(bad)
    }
}
#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::application::testing::{T0, terminal, walk};
    use crate::application::{Application, ApplicationForm, Command};
    use crate::deadline::DeadlinePolicy;
    use crate::ids::Actor;

    #[test]
    fn states_round_trip_through_storage() {
        let mut all: Vec<Application> = ALL_STATE_NAMES[..10].iter().map(|s| walk("medium-token", s).0).collect();
        all.push(terminal("rejected"));
        let (app, _, _) = walk("medium", "submitted");
        let expired = app.apply(&Actor::System, Command::Expire, T0 + Duration::days(60), &DeadlinePolicy::default());
        all.push(expired.unwrap().application);
        all.push(terminal("withdrawn"));
        let mut seen: Vec<&str> = Vec::new();
        for app in &all {
            let (name, data) = app.state().to_stored();
            assert_eq!(ApplicationState::from_stored(name, &data).unwrap(), *app.state(), "{name}");
            let form_json = serde_json::to_string(app.form()).unwrap();
            assert_eq!(serde_json::from_str::<ApplicationForm>(&form_json).unwrap(), *app.form());
            seen.push(name);
        }
        assert_eq!(seen, ALL_STATE_NAMES, "every state is reachable and named in lifecycle order");
        assert_eq!(
            ApplicationState::from_stored("approved-ish", "{}"),
            Err(StoredStateError::UnknownState("approved-ish".into()))
        );
        assert!(matches!(ApplicationState::from_stored("approved", "{}"), Err(StoredStateError::Data { .. })));
    }
}
