//! Key escrow and key recovery: the private key of an encryption certificate is escrowed to
//! the key recovery key before the certificate is issued, and is handed out again only after
//! two different key recovery agents approved a recovery request.
//!
//! ```text
//! pending (no approval) → pending (one approval) → approved (two agents) → exported
//! ```
//!
//! Agents are RA operators designated as such ([`AgentDesignation`]); an [`Agent`] is made only
//! from a stored designation, so every transition is taken by someone the store knows as an
//! agent. The requesting agent may approve: the control is two approvals by two different
//! agents, and the export by one of them. A request exports its key once; recovering it again
//! takes a new request and two new approvals. Every transition bumps the request's version,
//! which the store compares and sets, so two agents approving at once cannot both count.
//!
//! The escrow envelope (`signet_pki::escrow`'s CMS EnvelopedData to the key recovery key) is
//! opaque here: it is never logged, printed or put in an audit event.
//!
//! Not here: HTTP, SQL and the cryptography. The store implements [`KeyRecoveryStore`].

use std::fmt;
use std::future::Future;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::{ApplicationId, OperatorId};
use crate::input::{crockford_normalize, random_base32, string_display};
use crate::issuance::StoreError;

/// The longest recovery reason, in characters.
const MAX_REASON: usize = 500;

/// An escrowed encryption key as stored. Debug shows the envelope's length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct EscrowedKey {
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo DER, as `certificates.spki_sha256`.
    pub spki_sha256: String,
    /// The application the key was generated for.
    pub application: ApplicationId,
    /// Hex key id of the key recovery key the envelope is encrypted to.
    pub krk_id: String,
    /// `signet_pki::escrow`'s CMS EnvelopedData DER.
    pub envelope: Vec<u8>,
    /// When it was escrowed.
    pub created_at: OffsetDateTime,
}

impl EscrowedKey {
    /// The audit event of escrowing it, taken by `actor` (the envelope is not in it).
    pub fn escrowed_event(&self, actor: &str) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            actor,
            AuditAction::KeyEscrowed,
            self.application.as_str(),
            json!({ "spki_sha256": self.spki_sha256, "krk_id": self.krk_id }),
        )
    }

    /// The audit event of removing this escrow because its certificate was never issued.
    pub fn discarded_event(&self, actor: &str, at: OffsetDateTime) -> AuditEvent {
        AuditEvent::new(
            at,
            actor,
            AuditAction::EscrowDiscarded,
            self.application.as_str(),
            json!({ "spki_sha256": self.spki_sha256, "reason": "its certificate was never issued" }),
        )
    }
}

impl fmt::Debug for EscrowedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowedKey")
            .field("spki_sha256", &self.spki_sha256)
            .field("application", &self.application)
            .field("krk_id", &self.krk_id)
            .field("envelope", &format_args!("<{} bytes>", self.envelope.len()))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An operator designated as key recovery agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDesignation {
    /// The agent.
    pub operator: OperatorId,
    /// Who designated them, as the audit log names actors.
    pub designated_by: String,
    /// When.
    pub designated_at: OffsetDateTime,
}

impl AgentDesignation {
    /// `operator` designated by `by` at `now`.
    pub fn new(operator: OperatorId, by: &str, now: OffsetDateTime) -> Self {
        Self { operator, designated_by: by.to_owned(), designated_at: now }
    }

    /// The audit event of the designation.
    pub fn designated_event(&self) -> AuditEvent {
        AuditEvent::new(
            self.designated_at,
            &self.designated_by,
            AuditAction::KeyRecoveryAgentDesignated,
            self.operator.as_str(),
            json!({}),
        )
    }
}

/// Proof that an operator is a designated key recovery agent: only made from a designation,
/// which the caller loads from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent(OperatorId);

impl Agent {
    /// The agent a designation names.
    pub fn from_designation(d: &AgentDesignation) -> Self {
        Self(d.operator.clone())
    }

    /// The agent's operator id.
    pub fn id(&self) -> &OperatorId {
        &self.0
    }

    /// The audit log's actor string, `operator:<id>`.
    pub fn audit_name(&self) -> String {
        format!("operator:{}", self.0)
    }
}

/// A recovery request's reference: 12 Crockford base32 characters (60 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecoveryRequestId(String);

impl RecoveryRequestId {
    /// A fresh random reference; the store's primary key catches the improbable clash.
    pub fn generate() -> Self {
        Self(random_base32(12))
    }

    /// A reference as typed or linked (any case, dashes ignored); `None` if it cannot be one.
    pub fn parse(s: &str) -> Option<Self> {
        crockford_normalize(s.trim()).filter(|v| v.len() == 12).map(Self)
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_display!(RecoveryRequestId);

/// Where a recovery request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryState {
    /// Waiting for approvals: none yet, or the first.
    Pending {
        /// The agent who approved first, if one did.
        first_approver: Option<OperatorId>,
    },
    /// Two different agents approved; one of them may export the key.
    Approved {
        /// The first and second approvers, in order.
        approvers: [OperatorId; 2],
    },
    /// The key was exported. Final: a further recovery is a new request.
    Exported {
        /// The first and second approvers, in order.
        approvers: [OperatorId; 2],
        /// The approver who exported it.
        exported_by: OperatorId,
        /// When.
        exported_at: OffsetDateTime,
    },
}

impl RecoveryState {
    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Approved { .. } => "approved",
            Self::Exported { .. } => "exported",
        }
    }
}

/// A request to recover the escrowed key of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// Reference.
    pub id: RecoveryRequestId,
    /// The certificate's serial, lowercase hex as `signet_pki::Serial::to_hex`.
    pub serial: String,
    /// The escrowed key's [`EscrowedKey::spki_sha256`].
    pub spki_sha256: String,
    /// The application the key was generated for.
    pub application: ApplicationId,
    /// Why the key is recovered, as the requesting agent wrote it (trimmed).
    pub reason: String,
    /// The requesting agent.
    pub requested_by: OperatorId,
    /// When.
    pub requested_at: OffsetDateTime,
    /// Where it stands.
    pub state: RecoveryState,
    /// 0 when opened, one more after each transition; the store's compare-and-set counter.
    pub version: i64,
}

impl RecoveryRequest {
    /// Opens a request for the key escrowed as `escrow`, certified under `serial`.
    pub fn open(
        escrow: &EscrowedKey,
        serial: &str,
        reason: &str,
        agent: &Agent,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), RecoveryRefused> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(RecoveryRefused::Reason);
        }
        let request = Self {
            id: RecoveryRequestId::generate(),
            serial: serial.to_owned(),
            spki_sha256: escrow.spki_sha256.clone(),
            application: escrow.application.clone(),
            reason: reason.to_owned(),
            requested_by: agent.id().clone(),
            requested_at: now,
            state: RecoveryState::Pending { first_approver: None },
            version: 0,
        };
        let event = request.event(
            agent,
            now,
            AuditAction::KeyRecoveryRequested,
            json!({ "serial": request.serial, "spki_sha256": request.spki_sha256, "reason": request.reason }),
        );
        Ok((request, event))
    }

    /// Records `agent`'s approval: the first, or the second by a different agent.
    pub fn approve(self, agent: &Agent, now: OffsetDateTime) -> Result<(Self, AuditEvent), RecoveryRefused> {
        let (state, approval) = match &self.state {
            RecoveryState::Pending { first_approver: None } => {
                (RecoveryState::Pending { first_approver: Some(agent.id().clone()) }, 1)
            }
            RecoveryState::Pending { first_approver: Some(first) } if first == agent.id() => {
                return Err(RecoveryRefused::SameAgent);
            }
            RecoveryState::Pending { first_approver: Some(first) } => {
                (RecoveryState::Approved { approvers: [first.clone(), agent.id().clone()] }, 2)
            }
            RecoveryState::Approved { .. } | RecoveryState::Exported { .. } => {
                return Err(RecoveryRefused::NotPending);
            }
        };
        Ok(self.step(state, agent, now, AuditAction::KeyRecoveryApproved, json!({ "approval": approval })))
    }

    /// Hands the key out to `agent`, one of the two approvers; once per request.
    pub fn export(self, agent: &Agent, now: OffsetDateTime) -> Result<(Self, AuditEvent), RecoveryRefused> {
        let approvers = match &self.state {
            RecoveryState::Pending { .. } => return Err(RecoveryRefused::NeedsTwoApprovals),
            RecoveryState::Exported { .. } => return Err(RecoveryRefused::AlreadyExported),
            RecoveryState::Approved { approvers } if !approvers.contains(agent.id()) => {
                return Err(RecoveryRefused::NotAnApprover);
            }
            RecoveryState::Approved { approvers } => approvers.clone(),
        };
        let details = json!({
            "serial": self.serial,
            "spki_sha256": self.spki_sha256,
            "approvers": [approvers[0].as_str(), approvers[1].as_str()],
        });
        let state = RecoveryState::Exported { approvers, exported_by: agent.id().clone(), exported_at: now };
        Ok(self.step(state, agent, now, AuditAction::KeyRecovered, details))
    }

    fn step(
        self,
        state: RecoveryState,
        agent: &Agent,
        now: OffsetDateTime,
        action: AuditAction,
        details: serde_json::Value,
    ) -> (Self, AuditEvent) {
        let next = Self { state, version: self.version + 1, ..self };
        let event = next.event(agent, now, action, details);
        (next, event)
    }

    /// Events name the application, whose history this is; the request is in the details.
    fn event(
        &self,
        agent: &Agent,
        now: OffsetDateTime,
        action: AuditAction,
        mut details: serde_json::Value,
    ) -> AuditEvent {
        details["request"] = json!(self.id.as_str());
        AuditEvent::new(now, &agent.audit_name(), action, self.application.as_str(), details)
    }
}

/// Why a recovery request or transition was refused. Messages are for the agent who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryRefused {
    /// The reason is empty or longer than 500 characters.
    #[error("give the reason for recovering this key (1 to 500 characters)")]
    Reason,
    /// The agent who gave the first approval tried to give the second.
    #[error("you already approved this recovery; the second approval must come from a different key recovery agent")]
    SameAgent,
    /// The request is already approved or exported.
    #[error("this recovery request is no longer waiting for approval")]
    NotPending,
    /// Export before two agents approved.
    #[error("the key can be exported only after two different key recovery agents approved the request")]
    NeedsTwoApprovals,
    /// The request's key was already exported.
    #[error("the key was already exported for this request; open a new request to recover it again")]
    AlreadyExported,
    /// Export by an agent who did not approve the request.
    #[error("only one of the two agents who approved this request may export the key")]
    NotAnApprover,
}

/// The storage key escrow and recovery need; `signet-store` implements it.
pub trait KeyRecoveryStore {
    /// Stores an escrowed key with its audit event, in one transaction
    /// ([`StoreError::Conflict`] if the key is already escrowed).
    fn save_escrow(&self, key: &EscrowedKey, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The key escrowed for the issued certificate with this serial (lowercase hex); `None` if
    /// no such certificate was issued or its key was not escrowed.
    fn escrow_of_serial(&self, serial: &str) -> impl Future<Output = Result<Option<EscrowedKey>, StoreError>> + Send;

    /// Removes escrows created before `before` whose certificate was never issued (issuance
    /// failed after the escrow was written), each with its audit event; returns how many. Such
    /// an escrow names no certificate, so no recovery could ever reach it.
    fn discard_orphan_escrows(
        &self,
        before: OffsetDateTime,
        actor: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Stores a designation with its audit event, in one transaction ([`StoreError::Conflict`]
    /// if the operator is already an agent or does not exist).
    fn designate_agent(
        &self,
        d: &AgentDesignation,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The operator's designation, if they are an agent.
    fn agent(&self, operator: &OperatorId)
    -> impl Future<Output = Result<Option<AgentDesignation>, StoreError>> + Send;

    /// Every designation, by operator id.
    fn agents(&self) -> impl Future<Output = Result<Vec<AgentDesignation>, StoreError>> + Send;

    /// Stores a new request (version 0) with its audit event, in one transaction.
    fn create_request(
        &self,
        r: &RecoveryRequest,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A request by reference.
    fn request(
        &self,
        id: &RecoveryRequestId,
    ) -> impl Future<Output = Result<Option<RecoveryRequest>, StoreError>> + Send;

    /// Every request, newest first.
    fn requests(&self) -> impl Future<Output = Result<Vec<RecoveryRequest>, StoreError>> + Send;

    /// Stores a transition with its audit event, in one transaction — only if the stored
    /// request is still at `r.version - 1` ([`StoreError::Conflict`] otherwise, and nothing is
    /// written; [`StoreError::NotFound`] if there is no such request).
    fn update_request(
        &self,
        r: &RecoveryRequest,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);
    const ENVELOPE: [u8; 6] = [0x30, 0x04, 0xde, 0xad, 0xbe, 0xef];

    fn escrow() -> EscrowedKey {
        EscrowedKey {
            spki_sha256: "ab".repeat(32),
            application: ApplicationId::new("ABCDEFGHJKMN").unwrap(),
            krk_id: "0123456789abcdef0123456789abcdef01234567".into(),
            envelope: ENVELOPE.to_vec(),
            created_at: NOW,
        }
    }

    fn agent(name: &str) -> Agent {
        Agent::from_designation(&AgentDesignation::new(OperatorId::new(name).unwrap(), "cli:root", NOW))
    }

    fn opened() -> RecoveryRequest {
        RecoveryRequest::open(&escrow(), "0aff", "  employee left; mail archive  ", &agent("alice"), NOW).unwrap().0
    }

    fn approved() -> RecoveryRequest {
        let r = opened().approve(&agent("alice"), NOW).unwrap().0;
        r.approve(&agent("bob"), NOW).unwrap().0
    }

    #[test]
    fn escrowed_keys_never_show_the_envelope() {
        let key = escrow();
        let debug = format!("{key:?}");
        assert!(debug.contains("<6 bytes>"), "{debug}");
        assert!(!debug.contains("222, 173") && !debug.contains("deadbeef"), "{debug}");
        let event = key.escrowed_event("system");
        assert_eq!(
            (event.action, event.actor.as_str(), event.subject.as_str()),
            (AuditAction::KeyEscrowed, "system", "ABCDEFGHJKMN")
        );
        assert_eq!(event.details, json!({ "spki_sha256": key.spki_sha256, "krk_id": key.krk_id }));
    }

    #[test]
    fn agents_are_named_as_operators() {
        let d = AgentDesignation::new(OperatorId::new("carol").unwrap(), "operator:root", NOW);
        let agent = Agent::from_designation(&d);
        assert_eq!((agent.id().as_str(), agent.audit_name()), ("carol", "operator:carol".to_owned()));
        let event = d.designated_event();
        assert_eq!(
            (event.action, event.actor.as_str(), event.subject.as_str(), event.at),
            (AuditAction::KeyRecoveryAgentDesignated, "operator:root", "carol", NOW)
        );
    }

    #[test]
    fn request_ids_are_random_and_parse_back() {
        let id = RecoveryRequestId::generate();
        assert_eq!(id.as_str().len(), 12);
        assert_eq!(RecoveryRequestId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(RecoveryRequestId::parse(&id.as_str().to_lowercase()), Some(id.clone()));
        assert_eq!(RecoveryRequestId::parse("abcd-efgh-jkmn").unwrap().as_str(), "ABCDEFGHJKMN");
        assert_eq!(RecoveryRequestId::parse("ABCDEFGHJKM"), None);
        assert_eq!(RecoveryRequestId::parse("ABCDEFGHJKMU"), None, "U is not Crockford base32");
        assert_ne!(RecoveryRequestId::generate(), id);
        assert_eq!(id.to_string(), id.as_str());
    }

    #[test]
    fn a_request_needs_a_reason() {
        let (escrow, alice) = (escrow(), agent("alice"));
        for bad in ["", "   \n\t", &"x".repeat(MAX_REASON + 1)] {
            assert_eq!(RecoveryRequest::open(&escrow, "0aff", bad, &alice, NOW).unwrap_err(), RecoveryRefused::Reason);
        }
        let longest = "é".repeat(MAX_REASON);
        assert!(RecoveryRequest::open(&escrow, "0aff", &longest, &alice, NOW).is_ok(), "characters, not bytes");
    }

    #[test]
    fn opening_records_who_why_and_which_key() {
        let (r, event) =
            RecoveryRequest::open(&escrow(), "0aff", "  employee left; mail archive  ", &agent("alice"), NOW).unwrap();
        assert_eq!(r.reason, "employee left; mail archive");
        assert_eq!((r.serial.as_str(), r.spki_sha256.as_str()), ("0aff", escrow().spki_sha256.as_str()));
        assert_eq!((r.application.as_str(), r.requested_by.as_str(), r.requested_at), ("ABCDEFGHJKMN", "alice", NOW));
        assert_eq!((r.state.clone(), r.version), (RecoveryState::Pending { first_approver: None }, 0));
        assert_eq!(r.state.name(), "pending");
        assert_eq!(
            (event.action, event.actor.as_str(), event.subject.as_str()),
            (AuditAction::KeyRecoveryRequested, "operator:alice", "ABCDEFGHJKMN")
        );
        assert_eq!(event.details["request"], r.id.as_str());
        assert_eq!(event.details["reason"], "employee left; mail archive");
    }

    #[test]
    fn two_different_agents_approve_and_the_requester_may_be_one() {
        let later = NOW + time::Duration::hours(1);
        let (r, first) = opened().approve(&agent("alice"), NOW).unwrap();
        assert_eq!(r.state, RecoveryState::Pending { first_approver: Some(OperatorId::new("alice").unwrap()) });
        assert_eq!(
            (r.version, first.action, first.details["approval"].as_i64()),
            (1, AuditAction::KeyRecoveryApproved, Some(1))
        );
        let (r, second) = r.approve(&agent("bob"), later).unwrap();
        let approvers = [OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap()];
        assert_eq!(r.state, RecoveryState::Approved { approvers });
        assert_eq!((r.state.name(), r.version), ("approved", 2));
        assert_eq!(
            (second.actor.as_str(), second.at, second.details["approval"].as_i64()),
            ("operator:bob", later, Some(2))
        );
        assert_eq!(second.details["request"], r.id.as_str());
    }

    #[test]
    fn the_same_agent_cannot_approve_twice() {
        let r = opened().approve(&agent("bob"), NOW).unwrap().0;
        assert_eq!(r.approve(&agent("bob"), NOW).unwrap_err(), RecoveryRefused::SameAgent);
        assert!(RecoveryRefused::SameAgent.to_string().contains("different key recovery agent"));
    }

    #[test]
    fn approvals_end_once_two_were_given() {
        assert_eq!(approved().approve(&agent("carol"), NOW).unwrap_err(), RecoveryRefused::NotPending);
        let exported = approved().export(&agent("alice"), NOW).unwrap().0;
        assert_eq!(exported.approve(&agent("carol"), NOW).unwrap_err(), RecoveryRefused::NotPending);
    }

    #[test]
    fn export_needs_two_approvals() {
        assert_eq!(opened().export(&agent("alice"), NOW).unwrap_err(), RecoveryRefused::NeedsTwoApprovals);
        let once = opened().approve(&agent("alice"), NOW).unwrap().0;
        assert_eq!(once.export(&agent("alice"), NOW).unwrap_err(), RecoveryRefused::NeedsTwoApprovals);
    }

    #[test]
    fn only_an_approver_exports_and_only_once() {
        assert_eq!(approved().export(&agent("carol"), NOW).unwrap_err(), RecoveryRefused::NotAnApprover);
        let later = NOW + time::Duration::minutes(5);
        let (r, event) = approved().export(&agent("bob"), later).unwrap();
        let approvers = [OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap()];
        assert_eq!(
            r.state,
            RecoveryState::Exported { approvers, exported_by: OperatorId::new("bob").unwrap(), exported_at: later }
        );
        assert_eq!((r.state.name(), r.version), ("exported", 3));
        assert_eq!(
            (event.action, event.actor.as_str(), event.subject.as_str()),
            (AuditAction::KeyRecovered, "operator:bob", "ABCDEFGHJKMN")
        );
        assert_eq!(event.details["approvers"], json!(["alice", "bob"]));
        assert_eq!(r.clone().export(&agent("bob"), later).unwrap_err(), RecoveryRefused::AlreadyExported);
        assert_eq!(r.export(&agent("alice"), later).unwrap_err(), RecoveryRefused::AlreadyExported);
    }

    #[test]
    fn no_event_carries_the_envelope() {
        let key = escrow();
        let (r, requested) = RecoveryRequest::open(&key, "0aff", "audit", &agent("alice"), NOW).unwrap();
        let (r, first) = r.approve(&agent("alice"), NOW).unwrap();
        let (r, second) = r.approve(&agent("bob"), NOW).unwrap();
        let (_, recovered) = r.export(&agent("alice"), NOW).unwrap();
        let hex = hex::encode(ENVELOPE);
        for event in [key.escrowed_event("system"), requested, first, second, recovered] {
            let text = event.details.to_string();
            assert!(!text.contains(&hex) && !text.contains("envelope"), "{:?}: {text}", event.action);
        }
    }
}
