//! Rate limits and lockouts on every secret a person types: passwords, TOTP codes, activation
//! codes, password-reset links (DESIGN §2 "lockout after repeated failures with an unlock path").
//!
//! A [`LockoutPolicy`] is data: after `max_failures` consecutive failures the subject is locked
//! for `base_delay`, doubling with each further failure up to `max_delay` (or, for a policy that
//! asks for it, until an administrator unlocks it; no shipped scope does). Deciding is pure
//! ([`LockoutPolicy::record`], [`FailureRecord::state`]); counting lives behind
//! [`AttemptStore`], in the database, so a lockout holds across every server node.
//!
//! Counting never asks whether the subject exists: a made-up operator id is counted and locked
//! exactly like a real one, so neither refusals nor lockouts tell a guesser which accounts exist.
//! The web layer shows [`REFUSED`] for any wrong credential and [`Until::message`] for a lock.
//!
//! Since anyone can type a wrong secret against anyone's subject, every shipped lock runs out by
//! itself: a stranger can slow the owner down, never shut them out. An administrator can lift
//! any lock at once, and the applicant can lift the lock on their own retrieval
//! ([`clear_own_retrieval`]) by signing in with their password.

use std::fmt;
use std::future::Future;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::{Actor, ApplicationId};
use crate::issuance::StoreError;

/// What the user is told for any wrong credential: it names no field, so it says nothing about
/// which part was wrong or whether the account exists.
pub const REFUSED: &str = "The sign-in details are not correct.";

/// Which secret the failures were typed into. A sign-in counts all its parts in one scope, so
/// no lock says which part was wrong; secrets typed later, by someone already signed in (a
/// step-up code, recovery answers), count in their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptScope {
    /// An RA operator's console sign-in, password and TOTP code counted together; the subject
    /// is the operator id. (Named for its older meaning, which the stored rows keep.)
    OperatorPassword,
    /// An applicant's account password on the enrollment portal; the subject is the application
    /// reference.
    ApplicantPassword,
    /// The single-use activation code for certificate retrieval (DESIGN §2 "Retrieval"); the
    /// subject is the application reference. A wrong password at retrieval counts here too.
    /// Its lock is longer than a sign-in's, 15 minutes doubling to a day, and its owner can
    /// lift it ([`clear_own_retrieval`]): see [`AttemptScope::default_policy`].
    ActivationCode,
    /// A subscriber's Certificate Management Center password; the subject is the account.
    SubscriberPassword,
    /// A subscriber's soft-token TOTP code; the subject is the account.
    SubscriberTotp,
    /// A password-reset link's one-time token; the subject is the account it resets.
    PasswordReset,
    /// Answers to a subscriber's recovery questions (the path back from a lost soft token);
    /// the subject is the account.
    SubscriberRecovery,
}

impl AttemptScope {
    /// Every scope, in the order the store's CHECK lists them.
    pub const ALL: [Self; 7] = [
        Self::OperatorPassword,
        Self::ApplicantPassword,
        Self::ActivationCode,
        Self::SubscriberPassword,
        Self::SubscriberTotp,
        Self::PasswordReset,
        Self::SubscriberRecovery,
    ];

    /// The stored and typed name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OperatorPassword => "operator-password",
            Self::ApplicantPassword => "applicant-password",
            Self::ActivationCode => "activation-code",
            Self::SubscriberPassword => "subscriber-password",
            Self::SubscriberTotp => "subscriber-totp",
            Self::PasswordReset => "password-reset",
            Self::SubscriberRecovery => "subscriber-recovery",
        }
    }

    /// The shipped policy for the scope. Passwords and codes: 5 tries, then 1 minute doubling to
    /// an hour — slow enough that a 6-digit code or a password list cannot be walked, short
    /// enough that a fumbling user recovers alone. Reset links: 15 minutes up to a day, since a
    /// person needs to retry one rarely.
    ///
    /// Activation codes: 5 tries, then 15 minutes doubling to a day. The code is 16 base32
    /// characters (80 bits) and the account password must be right as well: a stranger gets
    /// about one try a day once the cap is reached, and even a guesser who knew the password,
    /// and so could lift the lock as the applicant, would at a thousand tries a second need some
    /// 38 billion years. A longer lock adds no safety. It used to last until an administrator
    /// unlocked it, which let five anonymous requests with made-up passwords shut the owner out
    /// of their certificates until the RA answered the phone.
    pub fn default_policy(self) -> LockoutPolicy {
        let escalating = |base: i64, max: i64| LockoutPolicy {
            max_failures: 5,
            lock: LockLength::Escalating { base_delay: Duration::minutes(base), max_delay: Duration::minutes(max) },
        };
        match self {
            Self::ActivationCode | Self::PasswordReset => escalating(15, 24 * 60),
            Self::OperatorPassword
            | Self::ApplicantPassword
            | Self::SubscriberPassword
            | Self::SubscriberTotp
            | Self::SubscriberRecovery => escalating(1, 60),
        }
    }
}

impl fmt::Display for AttemptScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a scope name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Not one of [`AttemptScope::ALL`]'s names.
    #[error(
        "{0:?} is not an attempt scope (operator-password, applicant-password, activation-code, subscriber-password, subscriber-totp, password-reset, subscriber-recovery)"
    )]
    Unknown(String),
}

impl std::str::FromStr for AttemptScope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        Self::ALL.into_iter().find(|scope| scope.name() == s).ok_or_else(|| ScopeError::Unknown(s.to_owned()))
    }
}

/// How long a lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockLength {
    /// `base_delay` at the `max_failures`-th failure, doubled at each one after, capped at
    /// `max_delay`.
    Escalating {
        /// The first lock's length.
        base_delay: Duration,
        /// The longest lock.
        max_delay: Duration,
    },
    /// Until an administrator unlocks it.
    UntilUnlocked,
}

/// When failures lock a subject, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures allowed before the lock; the lock starts with this one (0 acts as 1).
    pub max_failures: u32,
    /// The lock's length.
    pub lock: LockLength,
}

impl LockoutPolicy {
    /// The record after the `failures`-th consecutive failure, at `now`.
    pub fn record(&self, failures: u32, now: OffsetDateTime) -> FailureRecord {
        let over = failures.checked_sub(self.max_failures.max(1));
        let locked_until = over.map(|over| match self.lock {
            LockLength::UntilUnlocked => Until::AdministratorUnlocks,
            LockLength::Escalating { base_delay, max_delay } => {
                // 2^over overflows past 62 doublings; any cap is reached long before.
                let delay = 1i32
                    .checked_shl(over)
                    .filter(|factor| *factor > 0)
                    .and_then(|factor| base_delay.checked_mul(factor))
                    .map_or(max_delay, |d| d.min(max_delay));
                Until::Time(now + delay)
            }
        });
        FailureRecord { failures, locked_until, last_failure: now }
    }
}

/// When a lock ends. Ordered: any time comes before an administrator's unlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    /// At this moment.
    Time(OffsetDateTime),
    /// When an administrator unlocks it.
    AdministratorUnlocks,
}

/// A moment as messages and pages show it: the date and time in UTC, which reads the same
/// wherever the reader is (`2025-03-03 15:04:05 UTC`).
pub fn utc_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02}:{:02} UTC", t.date(), t.hour(), t.minute(), t.second())
}

/// A wait as a person says it, rounded up: "in a minute", "in 14 minutes", "in 3 hours".
fn in_words(wait: Duration) -> String {
    let minutes = (wait.whole_seconds() + 59).max(0) / 60;
    match minutes {
        0..=1 => "in a minute".to_owned(),
        2..=90 => format!("in {minutes} minutes"),
        m => format!("in {} hours", (m + 59) / 60),
    }
}

impl Until {
    /// What the user is told at `now`: how long to wait in words, and the moment itself. The
    /// same for existing and made-up accounts, which lock alike.
    pub fn message(&self, now: OffsetDateTime) -> String {
        match self {
            Self::Time(t) => {
                format!("Too many failed attempts. Try again {} (after {}).", in_words(*t - now), utc_text(*t))
            }
            Self::AdministratorUnlocks => {
                "Too many failed attempts. Contact the registration authority to unlock it.".to_owned()
            }
        }
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Time(t) => write!(f, "locked until {t}"),
            Self::AdministratorUnlocks => f.write_str("locked until an administrator unlocks it"),
        }
    }
}

/// Whether a subject may try now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// It may.
    Open,
    /// It may not, until then.
    Locked(Until),
}

impl LockState {
    /// The stricter of two states (a sign-in checks several scopes).
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Locked(a), Self::Locked(b)) => Self::Locked(a.max(b)),
            (Self::Locked(u), Self::Open) | (Self::Open, Self::Locked(u)) => Self::Locked(u),
            (Self::Open, Self::Open) => Self::Open,
        }
    }
}

/// The failures stored for one (scope, subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecord {
    /// Consecutive failures since the last success or unlock.
    pub failures: u32,
    /// The lock those failures earned, if any (it may have run out).
    pub locked_until: Option<Until>,
    /// The latest failure.
    pub last_failure: OffsetDateTime,
}

impl FailureRecord {
    /// The state at `now`: a timed lock is over once its moment has come.
    pub fn state(&self, now: OffsetDateTime) -> LockState {
        match self.locked_until {
            Some(Until::Time(t)) if now < t => LockState::Locked(Until::Time(t)),
            Some(Until::AdministratorUnlocks) => LockState::Locked(Until::AdministratorUnlocks),
            Some(Until::Time(_)) | None => LockState::Open,
        }
    }
}

/// The audit subject of a (scope, subject) pair.
fn audit_subject(scope: AttemptScope, subject: &str) -> String {
    format!("{scope}:{subject}")
}

/// The audit event of one failed attempt. The actor is unknown: whoever typed it has not
/// proved who they are.
pub fn failure_event(scope: AttemptScope, subject: &str, now: OffsetDateTime) -> AuditEvent {
    AuditEvent::new(now, "unauthenticated", AuditAction::AuthenticationFailed, audit_subject(scope, subject), json!({}))
}

/// The audit event of an unlock by `actor`: an administrator, or the owner ([`clear_own_retrieval`]).
pub fn unlock_event(scope: AttemptScope, subject: &str, actor: &str, now: OffsetDateTime) -> AuditEvent {
    AuditEvent::new(now, actor, AuditAction::LockoutCleared, audit_subject(scope, subject), json!({}))
}

/// Where failures are counted; `signet-store` implements it in the shared database.
pub trait AttemptStore: Send + Sync {
    /// The state of `subject` in `scope` at `now` ([`LockState::Open`] if nothing is recorded).
    fn check(
        &self,
        scope: AttemptScope,
        subject: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<LockState, StoreError>> + Send;

    /// Counts one failure with [`failure_event`] in the same transaction and stores the lock
    /// `policy` assigns ([`LockoutPolicy::record`]); returns the state after it. The count is
    /// one atomic increment in the database, so failures arriving at several nodes at once
    /// are all counted.
    fn record_failure(
        &self,
        scope: AttemptScope,
        subject: &str,
        policy: &LockoutPolicy,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<LockState, StoreError>> + Send;

    /// Forgets the failures after a success. Not audited on its own: the success it follows
    /// is (an operator's sign-in advances the TOTP step in an audited write).
    fn clear(&self, scope: AttemptScope, subject: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An unlock by `actor` (an administrator, or the owner where [`clear_own_retrieval`] allows
    /// it): forgets the failures, with [`unlock_event`] in the same transaction. `NotFound` if no
    /// failure was recorded (and nothing is audited).
    fn unlock(
        &self,
        scope: AttemptScope,
        subject: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The applicant lifts the lock on their own retrieval: failed retrievals are counted against
/// the application whoever typed them, so the person who proved the account by signing in to
/// it with its password may forget them. Audited as the applicant (`applicant:<reference>`).
/// `false` if there was nothing to forget.
pub async fn clear_own_retrieval<S: AttemptStore>(
    store: &S,
    application: &ApplicationId,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let actor = format!("{}:{application}", Actor::Applicant.audit_name());
    match store.unlock(AttemptScope::ActivationCode, application.as_str(), &actor, now).await {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);

    fn minutes_locked(policy: &LockoutPolicy, failures: u32) -> Option<i64> {
        match policy.record(failures, T0).locked_until {
            Some(Until::Time(t)) => Some((t - T0).whole_minutes()),
            Some(Until::AdministratorUnlocks) => Some(i64::MAX),
            None => None,
        }
    }

    #[test]
    fn escalates_from_the_max_failures_th_failure_and_caps() {
        let p = LockoutPolicy {
            max_failures: 3,
            lock: LockLength::Escalating { base_delay: Duration::minutes(5), max_delay: Duration::minutes(30) },
        };
        let locks: Vec<_> = (1..=7).map(|n| minutes_locked(&p, n)).collect();
        assert_eq!(locks, [None, None, Some(5), Some(10), Some(20), Some(30), Some(30)]);
        // Far past any sensible count the doubling would overflow; the cap still holds.
        assert_eq!(minutes_locked(&p, 40), Some(30));
        assert_eq!(minutes_locked(&p, u32::MAX), Some(30));
    }

    #[test]
    fn activation_codes_lock_for_a_while_never_for_good() {
        let p = AttemptScope::ActivationCode.default_policy();
        assert_eq!(p.record(4, T0).state(T0), LockState::Open);
        let locks: Vec<_> = (5..=14).map(|n| minutes_locked(&p, n)).collect();
        let day = 24 * 60;
        assert_eq!(locks, [15, 30, 60, 120, 240, 480, 960, day, day, day].map(Some));
        // Whoever kept failing, the lock runs out by itself.
        let r = p.record(u32::MAX, T0);
        assert_eq!(r.state(T0 + Duration::days(1)), LockState::Open);
        assert!(matches!(r.state(T0), LockState::Locked(Until::Time(_))));
    }

    #[test]
    fn no_shipped_scope_locks_until_an_administrator_unlocks() {
        for scope in AttemptScope::ALL {
            let r = scope.default_policy().record(1000, T0);
            assert!(matches!(r.locked_until, Some(Until::Time(_))), "{scope}");
        }
    }

    #[test]
    fn a_permanent_policy_locks_until_unlocked() {
        let p = LockoutPolicy { max_failures: 5, lock: LockLength::UntilUnlocked };
        assert_eq!(p.record(4, T0).state(T0), LockState::Open);
        let r = p.record(5, T0);
        assert_eq!(r.state(T0 + Duration::days(3650)), LockState::Locked(Until::AdministratorUnlocks));
    }

    #[test]
    fn a_timed_lock_ends_at_its_moment() {
        let p = AttemptScope::OperatorPassword.default_policy();
        let r = p.record(5, T0);
        let end = T0 + Duration::minutes(1);
        assert_eq!(r.state(T0), LockState::Locked(Until::Time(end)));
        assert_eq!(r.state(end - Duration::seconds(1)), LockState::Locked(Until::Time(end)));
        assert_eq!(r.state(end), LockState::Open);
        assert_eq!(p.record(4, T0).state(T0), LockState::Open);
    }

    #[test]
    fn zero_max_failures_locks_at_the_first() {
        let p = LockoutPolicy { max_failures: 0, lock: LockLength::UntilUnlocked };
        assert_eq!(p.record(1, T0).state(T0), LockState::Locked(Until::AdministratorUnlocks));
    }

    #[test]
    fn the_stricter_state_wins() {
        let soon = LockState::Locked(Until::Time(T0));
        let later = LockState::Locked(Until::Time(T0 + Duration::hours(1)));
        let forever = LockState::Locked(Until::AdministratorUnlocks);
        assert_eq!(LockState::Open.and(LockState::Open), LockState::Open);
        assert_eq!(LockState::Open.and(soon), soon);
        assert_eq!(later.and(soon), later);
        assert_eq!(soon.and(forever), forever);
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in AttemptScope::ALL {
            assert_eq!(scope.name().parse(), Ok(scope));
        }
        assert_eq!("operator".parse::<AttemptScope>(), Err(ScopeError::Unknown("operator".into())));
    }

    #[test]
    fn messages_name_no_account() {
        let until = Until::Time(datetime!(2025-03-03 15:04:05 UTC));
        assert_eq!(
            until.message(datetime!(2025-03-03 14:50:00 UTC)),
            "Too many failed attempts. Try again in 15 minutes (after 2025-03-03 15:04:05 UTC)."
        );
        assert!(until.message(datetime!(2025-03-03 15:04:00 UTC)).contains("Try again in a minute"));
        assert!(until.message(datetime!(2025-03-02 16:00:00 UTC)).contains("Try again in 24 hours"));
        assert!(!REFUSED.contains("password") && !REFUSED.contains("exist"));
    }

    #[test]
    fn events_name_scope_and_subject() {
        let e = failure_event(AttemptScope::OperatorPassword, "alice", T0);
        assert_eq!(
            (e.action, e.subject.as_str(), e.actor.as_str()),
            (AuditAction::AuthenticationFailed, "operator-password:alice", "unauthenticated")
        );
        let e = unlock_event(AttemptScope::ActivationCode, "7K2M9Q4T8V1W", "operator:root", T0);
        assert_eq!((e.action, e.subject.as_str()), (AuditAction::LockoutCleared, "activation-code:7K2M9Q4T8V1W"));
    }
}
