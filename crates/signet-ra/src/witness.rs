//! In-person witnessed key generation: for hardware-key certificate types the key must be made
//! on the token. A YubiKey proves that with its PIV attestation; other tokens cannot, so an RA
//! operator watches the key being generated and records it, with a note saying where and on
//! which token. One record per application: a second witness would make the first ambiguous.
//!
//! Not here: HTTP and SQL. The store implements [`WitnessStore`].

use std::future::Future;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::{ApplicationId, OperatorId};
use crate::issuance::StoreError;
use crate::token_stock::TokenSerial;

/// The longest note, in characters.
const MAX_NOTE: usize = 500;

/// An operator's record of having watched an application's key being generated on its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedGeneration {
    /// The application whose key was generated.
    pub application: ApplicationId,
    /// The witnessing operator.
    pub operator: OperatorId,
    /// When.
    pub witnessed_at: OffsetDateTime,
    /// The serial number of the token the key was generated on; retrieval checks it. `None`
    /// only for records made before serials were recorded, which no retrieval accepts.
    pub token: Option<TokenSerial>,
    /// The place, anything a later reviewer needs (trimmed).
    pub note: String,
}

impl WitnessedGeneration {
    /// `operator`'s record for `application` at `now`; the note is trimmed and must be 1 to 500
    /// characters.
    pub fn record(
        application: ApplicationId,
        operator: OperatorId,
        token: &str,
        note: &str,
        now: OffsetDateTime,
    ) -> Result<Self, WitnessRefused> {
        let token = TokenSerial::new(token).map_err(|_| WitnessRefused::Token)?;
        let note = note.trim();
        if note.is_empty() || note.chars().count() > MAX_NOTE {
            return Err(WitnessRefused::Note);
        }
        Ok(Self { application, operator, witnessed_at: now, token: Some(token), note: note.to_owned() })
    }

    /// The audit event of the record.
    pub fn event(&self) -> AuditEvent {
        AuditEvent::new(
            self.witnessed_at,
            &format!("operator:{}", self.operator),
            AuditAction::KeyGenerationWitnessed,
            self.application.as_str(),
            json!({ "note": self.note, "token_serial": self.token.as_ref().map(TokenSerial::as_str) }),
        )
    }
}

/// Why a witnessed generation was not recorded. Messages are for the operator who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessRefused {
    /// The note is empty or longer than 500 characters.
    #[error(
        "describe the witnessed generation, e.g. where it took place and how the applicant was identified (1 to 500 characters)"
    )]
    Note,
    /// The token serial is missing or malformed.
    #[error("enter the serial number printed on the token the key was generated on (letters, digits, dashes)")]
    Token,
}

/// The storage witnessed key generation needs; `signet-store` implements it.
pub trait WitnessStore {
    /// Stores the record with its audit event, in one transaction ([`StoreError::Conflict`] if
    /// the application already has one).
    fn record_witness(
        &self,
        w: &WitnessedGeneration,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The application's record, if its key generation was witnessed.
    fn witness(
        &self,
        application: &ApplicationId,
    ) -> impl Future<Output = Result<Option<WitnessedGeneration>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

    fn record(note: &str) -> Result<WitnessedGeneration, WitnessRefused> {
        WitnessedGeneration::record(
            ApplicationId::new("ABCDEFGHJKMN").unwrap(),
            OperatorId::new("alice").unwrap(),
            "0012345",
            note,
            NOW,
        )
    }

    #[test]
    fn the_note_is_trimmed_and_required() {
        assert_eq!(record("  token 0012345, RA office  ").unwrap().note, "token 0012345, RA office");
        for bad in ["", " \n ", &"x".repeat(MAX_NOTE + 1)] {
            assert_eq!(record(bad), Err(WitnessRefused::Note));
        }
        assert!(record(&"ü".repeat(MAX_NOTE)).is_ok(), "characters, not bytes");
        assert!(WitnessRefused::Token.to_string().contains("serial number"));
        let no_serial = WitnessedGeneration::record(
            ApplicationId::new("ABCDEFGHJKMN").unwrap(),
            OperatorId::new("alice").unwrap(),
            " ",
            "x",
            NOW,
        );
        assert_eq!(no_serial, Err(WitnessRefused::Token));
    }

    #[test]
    fn the_event_names_the_operator_and_the_application() {
        let w = record("token 0012345").unwrap();
        let event = w.event();
        assert_eq!(
            (event.action, event.actor.as_str(), event.subject.as_str(), event.at),
            (AuditAction::KeyGenerationWitnessed, "operator:alice", "ABCDEFGHJKMN", NOW)
        );
        assert_eq!(event.details, json!({ "note": "token 0012345", "token_serial": "0012345" }));
    }
}
