//! Certificate Management Center accounts (DESIGN §2 "CMC / soft token"): the
//! subscriber's soft token, sign-in with the account password and the token, step-up before
//! secure actions, and the recovery path with security questions.
//!
//! The account is the application: its reference and the account password chosen when
//! applying (the same password retrieval asks for). Everything typed here is counted per
//! account — not per token — in the lockout scopes [`AttemptScope::SubscriberPassword`],
//! [`AttemptScope::SubscriberTotp`] and [`AttemptScope::SubscriberRecovery`], so enrolling a
//! fresh token does not reset a guesser's budget.
//!
//! Enrollment follows Entrust's soft-token guide in two steps: the portal shows a serial number
//! and an activation code (and the same secret as an `otpauth://` QR code for authenticator
//! apps); the app then shows a registration code — its current TOTP code — which the subscriber
//! types back, and only then is the token active. An active token stays in force while a
//! replacement is pending, so a half-finished change of phone never locks anyone out.
//!
//! No HTTP and no SQL here: storage is [`SoftTokenStore`]; the password itself is checked by
//! the caller (Argon2id off the async workers) and handed in as a yes/no.

use std::fmt;
use std::future::Future;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::ApplicationId;
use crate::issuance::StoreError;
use crate::lockout::{AttemptScope, AttemptStore, LockState, Until};
pub use crate::passkey::SecondFactor;
use crate::passkey::{PasskeyOwner, PasskeyStore};
use crate::password::{PasswordHash, PasswordHashError};
use crate::totp::{CodeRejected, Digits, Totp, TotpAlgorithm, TotpSecret};

/// Shortest and longest optional token PIN, in digits (the Entrust guide's 4–8).
const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=8;
/// Shortest accepted recovery answer after normalizing: shorter ones are guessable from the
/// question alone.
const MIN_ANSWER_CHARS: usize = 3;
/// How many recovery questions a subscriber answers.
pub const RECOVERY_QUESTION_COUNT: usize = 2;

/// The questions offered for the recovery path. Answers are facts a person remembers and a
/// stranger cannot look up on a badge or a business card.
pub const RECOVERY_QUESTIONS: [&str; 6] = [
    "What was the name of your first school?",
    "In what city did your parents meet?",
    "What was the make of your first car?",
    "What was the name of your childhood best friend?",
    "What street did you live on when you were ten?",
    "What was the first concert you attended?",
];

/// Why an enrollment or recovery input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmcInputError {
    /// The PIN is not 4 to 8 digits.
    #[error("the token PIN must be 4 to 8 digits")]
    Pin,
    /// The PIN and its confirmation differ.
    #[error("the two PINs are not the same")]
    PinMismatch,
    /// A question index not in [`RECOVERY_QUESTIONS`].
    #[error("choose a question from the list")]
    UnknownQuestion,
    /// The same question was chosen twice.
    #[error("choose two different questions")]
    RepeatedQuestion,
    /// An answer shorter than three characters.
    #[error("each answer needs at least 3 characters")]
    ShortAnswer,
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] PasswordHashError),
}

/// A soft token's serial number: ten digits in two groups of five, as the Entrust app asks
/// for it. Unique across all tokens (the store's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SoftTokenSerial(String);

impl SoftTokenSerial {
    /// A fresh random serial; the store's uniqueness constraint catches the improbable clash.
    pub fn generate() -> Self {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).expect("the system RNG works");
        let n = u64::from_be_bytes(b) % 10_000_000_000;
        Self(format!("{:05}-{:05}", n / 100_000, n % 100_000))
    }

    /// Parses a serial as typed (spaces and dashes ignored).
    pub fn new(s: &str) -> Option<Self> {
        let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(format!("{}-{}", &digits[..5], &digits[5..])))
    }

    /// The serial, `12345-67890`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SoftTokenSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a soft token is in its life. Persisted as the closed list `pending`, `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftTokenState {
    /// Created and shown; waiting for the registration code.
    Pending,
    /// Registered; `last_step` is the newest TOTP step accepted, so no code works twice.
    Active {
        /// The newest accepted step.
        last_step: u64,
    },
}

impl SoftTokenState {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active { .. } => "active",
        }
    }
}

/// A subscriber's soft token: the TOTP secret and settings, the optional PIN and the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftToken {
    /// The account (application reference) it belongs to.
    pub account: ApplicationId,
    /// Its serial number.
    pub serial: SoftTokenSerial,
    /// The TOTP generator-verifier.
    pub totp: Totp,
    /// The optional PIN, typed before the code (`<PIN><code>`), as an Argon2id hash.
    pub pin: Option<PasswordHash>,
    /// Pending or active.
    pub state: SoftTokenState,
    /// When the token was created.
    pub created_at: OffsetDateTime,
}

/// Why a registration code or a second factor was refused. The pages show one generic message
/// for all of them; the variants exist for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecondFactorRefused {
    /// The token is not in the state the check needs (registering an active token, or signing
    /// in with a pending one).
    #[error("the soft token is not {0}")]
    WrongState(&'static str),
    /// A PIN is set and the typed value did not start with it.
    #[error("the token PIN is not correct")]
    Pin,
    /// The TOTP code was malformed, wrong or replayed.
    #[error(transparent)]
    Code(#[from] CodeRejected),
}

impl SoftToken {
    /// Step one of enrollment: a new pending token with a fresh secret. `pin` is optional.
    pub fn enroll(
        account: ApplicationId,
        algorithm: TotpAlgorithm,
        digits: Digits,
        pin: Option<(&str, &str)>,
        now: OffsetDateTime,
    ) -> Result<Self, CmcInputError> {
        let pin = pin
            .map(|(pin, again)| {
                if !PIN_DIGITS.contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CmcInputError::Pin);
                }
                if pin != again {
                    return Err(CmcInputError::PinMismatch);
                }
                Ok(PasswordHash::of_secret(pin)?)
            })
            .transpose()?;
        Ok(Self {
            account,
            serial: SoftTokenSerial::generate(),
            totp: Totp::new(TotpSecret::generate(), algorithm, digits),
            pin,
            state: SoftTokenState::Pending,
            created_at: now,
        })
    }

    /// The activation code the subscriber types into the app with the serial: the base32
    /// secret in groups of four, the form authenticator apps accept for manual entry.
    pub fn activation_code(&self) -> String {
        let secret = self.totp.secret().to_base32();
        secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
    }

    /// Step two of enrollment: the app's registration code (its current code, without the PIN)
    /// activates a pending token. Consumes the pending token; the active one records the step,
    /// so the registration code cannot also sign in.
    pub fn register(self, registration_code: &str, now: OffsetDateTime) -> Result<Self, SecondFactorRefused> {
        if self.state != SoftTokenState::Pending {
            return Err(SecondFactorRefused::WrongState("pending"));
        }
        let last_step = self.totp.verify(registration_code, now, None)?;
        Ok(Self { state: SoftTokenState::Active { last_step }, ..self })
    }

    /// Checks a second factor typed at sign-in or step-up: `<PIN><code>` when a PIN is set, the
    /// code alone otherwise. Returns the step to store (with a compare-and-set). The PIN is
    /// Argon2id-verified, so call this off the async workers.
    pub fn check(&self, typed: &str, now: OffsetDateTime) -> Result<u64, SecondFactorRefused> {
        let SoftTokenState::Active { last_step } = self.state else {
            return Err(SecondFactorRefused::WrongState("active"));
        };
        let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        let code_len = self.totp.digits().count() as usize;
        let (pin, code) = typed.split_at(typed.len().saturating_sub(code_len));
        // Both parts are checked whatever the other gave, so timing tells neither apart.
        let pin_ok = match &self.pin {
            Some(hash) => hash.verify(pin),
            None => pin.is_empty(),
        };
        let step = self.totp.verify(code, now, Some(last_step));
        match (pin_ok, step) {
            (false, _) => Err(SecondFactorRefused::Pin),
            (true, step) => Ok(step?),
        }
    }
}

/// One recovery question with the Argon2id hash of its normalized answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryQuestion {
    /// Index into [`RECOVERY_QUESTIONS`].
    pub question: usize,
    /// The answer, normalized ([`normalize_answer`]) and hashed like a password.
    pub answer: PasswordHash,
}

impl RecoveryQuestion {
    /// The question's text.
    pub fn text(&self) -> &'static str {
        RECOVERY_QUESTIONS.get(self.question).copied().unwrap_or("(a question no longer offered)")
    }
}

/// Case, spacing and surrounding punctuation do not matter in an answer typed months later.
pub fn normalize_answer(answer: &str) -> String {
    answer
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks and hashes the subscriber's chosen questions and answers. Slow (Argon2id per answer).
pub fn recovery_questions(chosen: &[(usize, &str)]) -> Result<Vec<RecoveryQuestion>, CmcInputError> {
    let mut out: Vec<RecoveryQuestion> = Vec::with_capacity(chosen.len());
    for &(question, answer) in chosen {
        if question >= RECOVERY_QUESTIONS.len() {
            return Err(CmcInputError::UnknownQuestion);
        }
        if out.iter().any(|q| q.question == question) {
            return Err(CmcInputError::RepeatedQuestion);
        }
        let answer = normalize_answer(answer);
        if answer.chars().count() < MIN_ANSWER_CHARS {
            return Err(CmcInputError::ShortAnswer);
        }
        out.push(RecoveryQuestion { question, answer: PasswordHash::of_secret(&answer)? });
    }
    Ok(out)
}

/// Whether every stored question is answered correctly (in the stored order). Every answer is
/// verified even after a wrong one, so timing does not tell which was wrong. Slow.
pub fn answers_match(stored: &[RecoveryQuestion], answers: &[String]) -> bool {
    if stored.is_empty() || stored.len() != answers.len() {
        return false;
    }
    stored.iter().zip(answers).fold(true, |all, (q, a)| q.answer.verify(&normalize_answer(a)) & all)
}

/// Where soft tokens and recovery questions live; `signet-store` implements it. Each write
/// carries its audit event into the same transaction.
pub trait SoftTokenStore: Send + Sync {
    /// The account's token in `state` (`pending` or `active`), if any.
    fn soft_token(
        &self,
        account: &ApplicationId,
        state: &'static str,
    ) -> impl Future<Output = Result<Option<SoftToken>, StoreError>> + Send;

    /// Stores a new pending token, replacing an earlier pending one of the account (an active
    /// one stays until the new one registers).
    fn save_pending(&self, token: &SoftToken, audit: AuditEvent)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the registered `token` the account's active one: deletes the active token it
    /// replaces and activates the pending row — only if it is still pending with this serial,
    /// else `Conflict`.
    fn activate(&self, token: &SoftToken, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Advances the active token's last accepted step, only forward (`Conflict` if another
    /// request used this step or a later one first).
    fn advance_step(
        &self,
        serial: &SoftTokenSerial,
        step: u64,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes every token and passkey of the account (the recovery path), so it enrolls
    /// afresh.
    fn remove_second_factors(
        &self,
        account: &ApplicationId,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the account's active soft token, only while the account has a passkey to sign
    /// in with (`Conflict` otherwise, `NotFound` without an active token).
    fn remove_active_soft_token(
        &self,
        account: &ApplicationId,
        audit: AuditEvent,
        notice: Option<&crate::notify::OutboxMessage>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The account's recovery questions, in the order they were set (empty if none).
    fn recovery_questions(
        &self,
        account: &ApplicationId,
    ) -> impl Future<Output = Result<Vec<RecoveryQuestion>, StoreError>> + Send;

    /// Replaces the account's recovery questions.
    fn set_recovery_questions(
        &self,
        account: &ApplicationId,
        questions: &[RecoveryQuestion],
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a sign-in, step-up or recovery failed. Deliberately coarse, like the operator console's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmcAuthError {
    /// Any wrong reference, password, code, PIN or answer. Show [`crate::lockout::REFUSED`].
    #[error("the sign-in details are not correct")]
    Refused,
    /// Too many failures; nothing is checked until then. Show [`Until::message`].
    #[error("too many failed attempts: {until}")]
    Locked {
        /// When the lock ends.
        until: Until,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a correct reference and password lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// Password and second factor were right: the full Certificate Management Center.
    Complete,
    /// The account has no active soft token yet: the session may only enroll one.
    MustEnroll,
}

/// The audit actor of a subscriber.
pub fn actor(account: &ApplicationId) -> String {
    format!("subscriber:{account}")
}

/// The account a certificate belongs to, from who requested it: the applicant retrieving onto
/// the token (`applicant:<reference>`) or the subscriber in the Certificate Management Center
/// ([`actor`]). `None` for certificates an operator or an ACME account asked for.
pub fn account_of(requested_by: &str) -> Option<ApplicationId> {
    let reference = requested_by.strip_prefix("applicant:").or_else(|| requested_by.strip_prefix("subscriber:"))?;
    ApplicationId::new(reference).ok()
}

async fn fail<S: AttemptStore>(store: &S, scope: AttemptScope, subject: &str, now: OffsetDateTime) -> CmcAuthError {
    match store.record_failure(scope, subject, &scope.default_policy(), now).await {
        Ok(LockState::Locked(until)) => CmcAuthError::Locked { until },
        Ok(LockState::Open) => CmcAuthError::Refused,
        Err(e) => CmcAuthError::Store(e),
    }
}

async fn locked<S: AttemptStore>(
    store: &S,
    subject: &str,
    scopes: &[AttemptScope],
    now: OffsetDateTime,
) -> Result<(), CmcAuthError> {
    let mut state = LockState::Open;
    for &scope in scopes {
        state = state.and(store.check(scope, subject, now).await?);
    }
    match state {
        LockState::Locked(until) => Err(CmcAuthError::Locked { until }),
        LockState::Open => Ok(()),
    }
}

/// Checks the second factor — a code against the account's active token (off the async
/// workers), or a passkey registered to the account — and stores what it used up (the TOTP
/// step, the passkey's counter) with `audit`. A wrong or replayed factor (also one another node
/// accepted first) counts against `scope`.
async fn second_factor<S: SoftTokenStore + PasskeyStore + AttemptStore>(
    store: &S,
    scope: AttemptScope,
    account: &ApplicationId,
    second: SecondFactor<'_>,
    now: OffsetDateTime,
    audit: AuditEvent,
) -> Result<(), CmcAuthError> {
    let subject = account.as_str();
    let used = match second {
        SecondFactor::Code(typed) => code_factor(store, account, typed, now, audit).await?,
        SecondFactor::Passkey { rp, state, answer } => {
            let owner = PasskeyOwner::Subscriber(account.clone());
            crate::passkey::confirm(store, rp, &owner, state, answer, now, audit).await?.is_ok()
        }
    };
    if !used {
        return Err(fail(store, scope, subject, now).await);
    }
    store.clear(scope, subject).await?;
    Ok(())
}

/// Whether `typed` is a fresh code of the account's active token; stores its step if so.
async fn code_factor<S: SoftTokenStore>(
    store: &S,
    account: &ApplicationId,
    typed: &str,
    now: OffsetDateTime,
    audit: AuditEvent,
) -> Result<bool, StoreError> {
    let Some(token) = store.soft_token(account, "active").await? else { return Ok(false) };
    let typed = typed.to_owned();
    let (token, checked) = tokio::task::spawn_blocking(move || {
        let r = token.check(&typed, now);
        (token, r)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("second-factor check panicked: {e}")))?;
    let Ok(step) = checked else { return Ok(false) };
    match store.advance_step(&token.serial, step, audit).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Signs a subscriber in. `subject` is the reference as typed (counted even when it names no
/// account, so a lock says nothing about existence); `account` is it parsed, when it parses;
/// `password_ok` is the caller's Argon2id check (false for unknown accounts).
///
/// Locked scopes refuse at once. A wrong password and a wrong second factor are one failure
/// each in [`AttemptScope::SubscriberPassword`], answered alike, so neither the answer nor the
/// lock says which part was wrong. With a right password, an account with neither an active
/// token nor a passkey may only enroll a token ([`SignedIn::MustEnroll`]).
pub async fn sign_in<S: SoftTokenStore + PasskeyStore + AttemptStore>(
    store: &S,
    subject: &str,
    account: Option<&ApplicationId>,
    password_ok: bool,
    second: SecondFactor<'_>,
    now: OffsetDateTime,
) -> Result<SignedIn, CmcAuthError> {
    const SCOPE: AttemptScope = AttemptScope::SubscriberPassword;
    locked(store, subject, &[SCOPE, AttemptScope::SubscriberTotp], now).await?;
    let Some(account) = account.filter(|_| password_ok) else {
        return Err(fail(store, SCOPE, subject, now).await);
    };
    if store.soft_token(account, "active").await?.is_none()
        && store.passkeys(&PasskeyOwner::Subscriber(account.clone())).await?.is_empty()
    {
        store.clear(SCOPE, subject).await?;
        return Ok(SignedIn::MustEnroll);
    }
    let event = AuditEvent::new(now, &actor(account), AuditAction::SubscriberSignedIn, account.as_str(), json!({}));
    second_factor(store, SCOPE, account, second, now, event).await?;
    Ok(SignedIn::Complete)
}

/// Step-up: a fresh second factor before a secure action, even inside a signed-in session.
/// `action` names it in the audit log.
pub async fn step_up<S: SoftTokenStore + PasskeyStore + AttemptStore>(
    store: &S,
    account: &ApplicationId,
    second: SecondFactor<'_>,
    action: &str,
    now: OffsetDateTime,
) -> Result<(), CmcAuthError> {
    locked(store, account.as_str(), &[AttemptScope::SubscriberTotp], now).await?;
    let event = AuditEvent::new(
        now,
        &actor(account),
        AuditAction::StepUpConfirmed,
        account.as_str(),
        json!({ "action": action, "factor": match second { SecondFactor::Code(_) => "soft-token", SecondFactor::Passkey { .. } => "passkey" } }),
    );
    second_factor(store, AttemptScope::SubscriberTotp, account, second, now, event).await
}

/// Registers a pending token with the app's registration code (step two of enrollment).
/// Wrong codes count against the TOTP scope, as any typed code does.
pub async fn register<S: SoftTokenStore + AttemptStore>(
    store: &S,
    account: &ApplicationId,
    registration_code: &str,
    now: OffsetDateTime,
) -> Result<SoftToken, CmcAuthError> {
    locked(store, account.as_str(), &[AttemptScope::SubscriberTotp], now).await?;
    let Some(pending) = store.soft_token(account, "pending").await? else {
        return Err(fail(store, AttemptScope::SubscriberTotp, account.as_str(), now).await);
    };
    let Ok(active) = pending.register(registration_code, now) else {
        return Err(fail(store, AttemptScope::SubscriberTotp, account.as_str(), now).await);
    };
    let event = AuditEvent::new(
        now,
        &actor(account),
        AuditAction::SoftTokenActivated,
        account.as_str(),
        json!({ "serial": active.serial.as_str(), "algorithm": active.totp.algorithm().name(), "digits": active.totp.digits().count(), "pin": active.pin.is_some() }),
    );
    store.activate(&active, event).await?;
    store.clear(AttemptScope::SubscriberTotp, account.as_str()).await?;
    Ok(active)
}

/// Step one of the recovery path for a lost or locked soft token: the account password,
/// counted like a sign-in's, unlocks the account's recovery questions (empty if it set none —
/// the caller answers that like a wrong password, and an administrator unlocks instead).
pub async fn check_recovery_password<S: SoftTokenStore + AttemptStore>(
    store: &S,
    subject: &str,
    account: Option<&ApplicationId>,
    password_ok: bool,
    now: OffsetDateTime,
) -> Result<Vec<RecoveryQuestion>, CmcAuthError> {
    locked(store, subject, &[AttemptScope::SubscriberPassword, AttemptScope::SubscriberRecovery], now).await?;
    let Some(account) = account.filter(|_| password_ok) else {
        return Err(fail(store, AttemptScope::SubscriberPassword, subject, now).await);
    };
    store.clear(AttemptScope::SubscriberPassword, subject).await?;
    Ok(store.recovery_questions(account).await?)
}

/// Step two: the answers to the recovery questions remove every soft token and passkey of the
/// account and clear its TOTP lock, so the subscriber enrolls a new token. Wrong answers count against
/// [`AttemptScope::SubscriberRecovery`].
pub async fn recover<S: SoftTokenStore + AttemptStore>(
    store: &S,
    account: &ApplicationId,
    answers: Vec<String>,
    now: OffsetDateTime,
) -> Result<(), CmcAuthError> {
    let subject = account.as_str();
    locked(store, subject, &[AttemptScope::SubscriberRecovery], now).await?;
    let stored = store.recovery_questions(account).await?;
    let matched = tokio::task::spawn_blocking(move || answers_match(&stored, &answers))
        .await
        .map_err(|e| StoreError::Backend(format!("answer check panicked: {e}")))?;
    if !matched {
        return Err(fail(store, AttemptScope::SubscriberRecovery, subject, now).await);
    }
    let event = AuditEvent::new(now, &actor(account), AuditAction::SoftTokenRecovered, subject, json!({}));
    store.remove_second_factors(account, event).await?;
    for scope in [AttemptScope::SubscriberTotp, AttemptScope::SubscriberRecovery] {
        store.clear(scope, subject).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00:00 UTC);

    fn account() -> ApplicationId {
        ApplicationId::new("ABCDEFGHJKMN").expect("a valid reference")
    }

    fn active(pin: Option<(&str, &str)>) -> SoftToken {
        let token = SoftToken::enroll(account(), TotpAlgorithm::Sha256, Digits::Eight, pin, NOW).expect("valid");
        let code = token.totp.code(NOW - time::Duration::seconds(30));
        token.register(&code, NOW).expect("the previous step's code registers")
    }

    #[test]
    fn the_account_of_a_certificate_is_its_applicant_or_subscriber() {
        assert_eq!(account_of("applicant:ABCDEFGHJKMN"), Some(account()));
        assert_eq!(account_of(&actor(&account())), Some(account()));
        for other in ["operator:alice", "acme:7", "applicant:not a reference", "ABCDEFGHJKMN"] {
            assert_eq!(account_of(other), None, "{other}");
        }
    }

    #[test]
    fn serials_are_ten_digits_and_parse_as_typed() {
        let s = SoftTokenSerial::generate();
        assert_eq!(s.as_str().len(), 11);
        assert_eq!(SoftTokenSerial::new(&s.as_str().replace('-', " ")), Some(s));
        assert_eq!(SoftTokenSerial::new("12345 6789"), None);
        assert_eq!(SoftTokenSerial::new("12345-6789x"), None);
    }

    #[test]
    fn the_activation_code_is_the_secret_in_groups() {
        let token = SoftToken::enroll(account(), TotpAlgorithm::Sha1, Digits::Six, None, NOW).expect("valid");
        let code = token.activation_code();
        assert_eq!(code.split(' ').count(), 8);
        assert_eq!(TotpSecret::from_base32(&code).expect("parses back"), *token.totp.secret());
    }

    #[test]
    fn registration_activates_once_and_its_code_cannot_sign_in() {
        let token = SoftToken::enroll(account(), TotpAlgorithm::Sha1, Digits::Six, None, NOW).expect("valid");
        assert!(matches!(token.clone().register("000000x", NOW), Err(SecondFactorRefused::Code(_))));
        let code = token.totp.code(NOW);
        let active = token.register(&code, NOW).expect("registers");
        assert_eq!(active.state, SoftTokenState::Active { last_step: Totp::step_at(NOW) });
        assert_eq!(active.check(&code, NOW), Err(SecondFactorRefused::Code(CodeRejected::Replayed)));
        assert_eq!(active.clone().register(&code, NOW), Err(SecondFactorRefused::WrongState("pending")));
        let next = NOW + time::Duration::seconds(30);
        assert_eq!(active.check(&active.totp.code(next), next), Ok(Totp::step_at(next)));
    }

    #[test]
    fn a_pin_comes_before_the_code() {
        let token = active(Some(("4821", "4821")));
        let code = token.totp.code(NOW);
        assert_eq!(token.check(&format!("4821{code}"), NOW), Ok(Totp::step_at(NOW)));
        assert_eq!(token.check(&format!("4822{code}"), NOW), Err(SecondFactorRefused::Pin));
        assert_eq!(token.check(&code, NOW), Err(SecondFactorRefused::Pin));
        let plain = active(None);
        assert_eq!(plain.check(&format!("4821{}", plain.totp.code(NOW)), NOW), Err(SecondFactorRefused::Pin));
    }

    #[test]
    fn bad_pins_are_refused_at_enrollment() {
        let enroll = |p, q| SoftToken::enroll(account(), TotpAlgorithm::Sha1, Digits::Six, Some((p, q)), NOW).err();
        assert_eq!(enroll("123", "123"), Some(CmcInputError::Pin));
        assert_eq!(enroll("123456789", "123456789"), Some(CmcInputError::Pin));
        assert_eq!(enroll("12a4", "12a4"), Some(CmcInputError::Pin));
        assert_eq!(enroll("1234", "1243"), Some(CmcInputError::PinMismatch));
    }

    #[test]
    fn answers_are_normalized_and_all_must_match() {
        let qs = recovery_questions(&[(0, "  Lincoln   Elementary! "), (2, "Ford")]).expect("valid");
        assert!(answers_match(&qs, &["lincoln elementary".into(), "FORD".into()]));
        assert!(!answers_match(&qs, &["lincoln elementary".into(), "Chevrolet".into()]));
        assert!(!answers_match(&qs, &["lincoln elementary".into()]));
        assert!(!answers_match(&[], &[]));
        assert_eq!(recovery_questions(&[(0, "a"), (1, "Ford")]).err(), Some(CmcInputError::ShortAnswer));
        assert_eq!(recovery_questions(&[(1, "Paris"), (1, "Ford")]).err(), Some(CmcInputError::RepeatedQuestion));
        assert_eq!(recovery_questions(&[(99, "Paris")]).err(), Some(CmcInputError::UnknownQuestion));
    }
}
