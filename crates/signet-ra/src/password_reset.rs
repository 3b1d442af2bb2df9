//! Password reset by an emailed single-use link: the account password of an application (what
//! the portal, retrieval and the Certificate Management Center check).
//!
//! Asking for a reset changes nothing about the account: the current password keeps working
//! until a link is used (some CAs disable sign-in "until you reset", which locks out anyone
//! whose mailbox was the target of a stranger's request). A request never says whether the
//! address has an account; each account under the address gets its own link. A link works
//! once, for [`LINK_VALIDITY`], and using one spends every other link of the account. At most
//! [`REQUESTS_PER_HOUR`] links are sent per account an hour, so the form cannot be used to
//! flood a mailbox. The link's token is 160 random bits, stored only as its SHA-256 digest.
//! A used link also lifts the account's lockouts that a password ends ([`LIFTED_LOCKOUTS`]).
//!
//! Not here: HTTP and SQL. The store implements [`PasswordResetStore`].

use std::fmt;
use std::future::Future;

use signet_pki::subject::Email;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::ApplicationId;
use crate::input::{CROCKFORD, random_base32};
use crate::issuance::StoreError;
use crate::lockout::AttemptScope;
use crate::outbox::OutboxMessage;
use crate::password::{NewPassword, PasswordHash};

/// How long a reset link works.
pub const LINK_VALIDITY: Duration = Duration::hours(1);

/// How many links one account is sent per hour; further requests are answered the same way
/// and send nothing.
pub const REQUESTS_PER_HOUR: usize = 3;

/// The lockouts of the account a used link lifts. Whoever holds the mailbox chose the new
/// password, so the failures typed before it no longer say anything: sign-ins to the portal and
/// to the Certificate Management Center, and retrievals, which count a wrong password too (the
/// activation code they also need went to the same mailbox). TOTP and recovery-answer locks
/// stay: a password reset proves nothing about the soft token.
pub const LIFTED_LOCKOUTS: [AttemptScope; 3] =
    [AttemptScope::ApplicantPassword, AttemptScope::SubscriberPassword, AttemptScope::ActivationCode];

/// The token in a reset link: 32 Crockford base32 characters (160 bits). Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetToken(String);

impl ResetToken {
    fn generate() -> Self {
        Self(random_base32(32))
    }

    /// The token from a link, as typed or clicked; `None` if it cannot be one.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 32 && s.bytes().all(|b| CROCKFORD.contains(&b))).then(|| Self(s.to_owned()))
    }

    /// The token, for building the link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: the hex SHA-256 of the token, so a copy of the database opens no
    /// account.
    pub fn digest(&self) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes()))
    }
}

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetToken(<redacted>)")
    }
}

/// A reset link as stored: whose, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetLink {
    /// The account (application reference) it resets.
    pub account: ApplicationId,
    /// The account's email address.
    pub email: Email,
    /// [`ResetToken::digest`].
    pub digest: String,
    /// When it was sent.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, if it was.
    pub used_at: Option<OffsetDateTime>,
}

impl ResetLink {
    /// A new link for `account`, and its token for the email.
    pub fn issue(account: ApplicationId, email: Email, now: OffsetDateTime) -> (Self, ResetToken) {
        let token = ResetToken::generate();
        let link = Self {
            account,
            email,
            digest: token.digest(),
            created_at: now,
            expires_at: now + LINK_VALIDITY,
            used_at: None,
        };
        (link, token)
    }

    /// Whether the link still opens the form at `now`.
    pub fn check(&self, now: OffsetDateTime) -> Result<(), LinkRefused> {
        if self.used_at.is_some() {
            Err(LinkRefused::Used)
        } else if now >= self.expires_at {
            Err(LinkRefused::Expired)
        } else {
            Ok(())
        }
    }

    /// The audit event of sending it (never the token).
    pub fn requested_event(&self) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            "system",
            AuditAction::PasswordResetRequested,
            self.account.as_str(),
            serde_json::json!({ "expires_at": self.expires_at.unix_timestamp() }),
        )
    }

    /// The audit event of the password changed through it.
    pub fn changed_event(&self, now: OffsetDateTime) -> AuditEvent {
        AuditEvent::new(
            now,
            &format!("applicant:{}", self.account),
            AuditAction::PasswordChanged,
            self.account.as_str(),
            serde_json::json!({
                "by": "reset-link",
                "lockouts_lifted": LIFTED_LOCKOUTS.map(AttemptScope::name),
            }),
        )
    }
}

/// Why a link no longer opens the form. Both read the same to the person holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkRefused {
    /// Unknown, or already used (by this person or by a newer link of the account).
    #[error("this password reset link was already used or is not valid; ask for a new one")]
    Used,
    /// Older than [`LINK_VALIDITY`].
    #[error("this password reset link has expired (links work for one hour); ask for a new one")]
    Expired,
}

/// Whether another link may be sent to an account that was sent `recent` links in the past hour.
pub fn may_send(recent: usize) -> bool {
    recent < REQUESTS_PER_HOUR
}

/// Checks the new password (strength, and that both typings agree) for the link's account.
pub fn new_password(link: &ResetLink, password: &str, again: &str) -> Result<NewPassword, Vec<String>> {
    const DIFFER: &str = "The two passwords differ.";
    match (NewPassword::new(password, &link.email), password == again) {
        (Ok(p), true) => Ok(p),
        (Ok(_), false) => Err(vec![DIFFER.to_owned()]),
        (Err(weak), same) => {
            let mut problems: Vec<String> = weak.0.iter().map(|p| format!("Please {p}.")).collect();
            if !same {
                problems.push(DIFFER.to_owned());
            }
            Err(problems)
        }
    }
}

/// The storage password reset needs; `signet-store` implements it.
pub trait PasswordResetStore {
    /// The accounts (application references) whose applicant email is `email`, compared
    /// without case, with the address as stored.
    fn accounts_with_email(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Vec<(ApplicationId, Email)>, StoreError>> + Send;

    /// How many links `account` was sent since `since`.
    fn links_sent_since(
        &self,
        account: &ApplicationId,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Stores a new link with its email and audit event, in one transaction.
    fn create_link(
        &self,
        link: &ResetLink,
        message: &OutboxMessage,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The link whose token has this digest.
    fn link(&self, digest: &str) -> impl Future<Output = Result<Option<ResetLink>, StoreError>> + Send;

    /// Sets the account's password, spends every unused link of the account and forgets the
    /// account's failures in [`LIFTED_LOCKOUTS`], with the audit event, in one transaction —
    /// only if this link is still unused and unexpired at `now` ([`StoreError::Conflict`]
    /// otherwise, and nothing is written).
    fn use_link(
        &self,
        link: &ResetLink,
        password: &PasswordHash,
        audit: AuditEvent,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

    fn link() -> (ResetLink, ResetToken) {
        let email = Email::new("jane.doe@acme.example").unwrap();
        ResetLink::issue(ApplicationId::new("ABCDEFGHJKMN").unwrap(), email, NOW)
    }

    #[test]
    fn tokens_are_random_parse_back_and_are_stored_as_digests() {
        let (link, token) = link();
        assert_eq!(token.expose().len(), 32);
        assert_eq!(ResetToken::parse(token.expose()), Some(token.clone()));
        assert_eq!(ResetToken::parse("too-short"), None);
        assert_eq!(ResetToken::parse(&"U".repeat(32)), None, "U is not Crockford base32");
        assert_eq!(link.digest, token.digest());
        assert_eq!(link.digest.len(), 64);
        assert!(!link.digest.contains(token.expose()));
        assert_ne!(ResetLink::issue(link.account.clone(), link.email.clone(), NOW).1, token);
        assert_eq!(format!("{token:?}"), "ResetToken(<redacted>)");
    }

    #[test]
    fn a_link_works_once_for_an_hour() {
        let (mut link, _) = link();
        assert_eq!(link.check(NOW), Ok(()));
        assert_eq!(link.check(NOW + LINK_VALIDITY - Duration::seconds(1)), Ok(()));
        assert_eq!(link.check(NOW + LINK_VALIDITY), Err(LinkRefused::Expired));
        link.used_at = Some(NOW);
        assert_eq!(link.check(NOW), Err(LinkRefused::Used));
    }

    #[test]
    fn three_links_an_hour() {
        assert!((0..REQUESTS_PER_HOUR).all(may_send));
        assert!(!may_send(REQUESTS_PER_HOUR));
    }

    #[test]
    fn the_new_password_is_checked_and_typed_twice() {
        let (link, _) = link();
        assert!(new_password(&link, "Quill-Harbor-Sextant-58", "Quill-Harbor-Sextant-58").is_ok());
        assert_eq!(
            new_password(&link, "Quill-Harbor-Sextant-58", "Quill-Harbor-Sextant-59").unwrap_err(),
            ["The two passwords differ."]
        );
        let weak = new_password(&link, "short", "other").unwrap_err();
        assert!(weak.len() >= 2 && weak.last().unwrap() == "The two passwords differ.", "{weak:?}");
    }

    #[test]
    fn audit_events_name_the_account_never_the_token() {
        let (link, token) = link();
        let requested = link.requested_event();
        assert_eq!(
            (requested.action, requested.subject.as_str()),
            (AuditAction::PasswordResetRequested, "ABCDEFGHJKMN")
        );
        assert!(!requested.details.to_string().contains(token.expose()));
        let changed = link.changed_event(NOW);
        assert_eq!((changed.action, changed.actor.as_str()), (AuditAction::PasswordChanged, "applicant:ABCDEFGHJKMN"));
    }
}
