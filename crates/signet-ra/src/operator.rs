//! RA operator accounts for the operator console: who they are, what their role lets them do,
//! and how they sign in — Argon2id password plus TOTP ([`crate::totp`]), both behind lockouts
//! ([`crate::lockout`]) kept in the shared database so they hold across server nodes.
//!
//! Roles: an RA operator vets and approves applications (two different operators approve,
//! [`crate::application`]); an RA administrator also manages operators and unlocks lockouts.
//! The console asks [`Role::may`] what to show and the functions here check it again.

use std::future::Future;
use std::sync::OnceLock;

use serde_json::json;
use signet_pki::subject::{CommonName, Email};
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::OperatorId;
use crate::issuance::StoreError;
use crate::lockout::{AttemptScope, AttemptStore, LockState, LockoutPolicy, Until};
use crate::passkey::{PasskeyOwner, PasskeyStore, SecondFactor};
use crate::password::{HashingBusy, NewPassword, PasswordChecker, PasswordHash, WeakPassword};
use crate::totp::{Totp, TotpSecret};

/// What an operator is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Vets and approves applications.
    RaOperator,
    /// An RA operator who also manages operator accounts and unlocks lockouts.
    RaAdministrator,
}

impl Role {
    /// Both roles.
    pub const ALL: [Self; 2] = [Self::RaOperator, Self::RaAdministrator];

    /// The stored name (the same names API keys use).
    pub fn name(self) -> &'static str {
        match self {
            Self::RaOperator => "ra-operator",
            Self::RaAdministrator => "ra-administrator",
        }
    }

    /// Whether the role allows `permission`.
    pub fn may(self, permission: Permission) -> bool {
        match permission {
            Permission::VetApplications | Permission::ApproveApplications => true,
            Permission::ManageOperators | Permission::UnlockLockouts => self == Self::RaAdministrator,
        }
    }

    /// Everything the role allows, for the console's menu.
    pub fn permissions(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.may(*p))
    }
}

impl std::str::FromStr for Role {
    type Err = OperatorError;
    fn from_str(s: &str) -> Result<Self, OperatorError> {
        Self::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| OperatorError::Role(s.to_owned()))
    }
}

/// A console action a role may or may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Record vetting evidence: forms received, officer call-back, identity documents.
    VetApplications,
    /// Give one of the two approvals, reject.
    ApproveApplications,
    /// Create, disable and re-enable operator accounts.
    ManageOperators,
    /// Unlock a subject locked out by failed attempts.
    UnlockLockouts,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 4] =
        [Self::VetApplications, Self::ApproveApplications, Self::ManageOperators, Self::UnlockLockouts];
}

/// Why an operator value or action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// Not a role name.
    #[error("{0:?} is not a role (ra-operator or ra-administrator)")]
    Role(String),
    /// The acting operator's role does not allow the action.
    #[error("your role does not allow this")]
    Forbidden,
}

/// An RA operator account. Debug prints neither the password hash nor the TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The login name.
    pub id: OperatorId,
    /// The name shown in the console and on approvals.
    pub display_name: CommonName,
    /// What the operator may do.
    pub role: Role,
    /// The console password.
    pub password: PasswordHash,
    /// The second factor.
    pub totp: Totp,
    /// The last TOTP step accepted; codes at or before it are refused.
    pub last_totp_step: Option<u64>,
    /// A disabled operator cannot sign in.
    pub disabled: bool,
}

impl Operator {
    /// A new, enabled operator that has never signed in.
    pub fn new(id: OperatorId, display_name: CommonName, role: Role, password: PasswordHash, totp: Totp) -> Self {
        Self { id, display_name, role, password, totp, last_totp_step: None, disabled: false }
    }

    /// `Forbidden` unless the role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), OperatorError> {
        if self.role.may(permission) { Ok(()) } else { Err(OperatorError::Forbidden) }
    }

    /// The audit actor name of this operator, as [`crate::application::Actor`] writes it.
    pub fn audit_name(&self) -> String {
        format!("operator:{}", self.id)
    }

    /// The audit event of the account's creation by `actor`. Names the TOTP settings, never
    /// the secret.
    pub fn created_event(&self, actor: &str, now: OffsetDateTime) -> AuditEvent {
        AuditEvent::new(
            now,
            actor,
            AuditAction::OperatorCreated,
            self.id.as_str(),
            json!({
                "display_name": self.display_name.as_str(),
                "role": self.role.name(),
                "totp": { "algorithm": self.totp.algorithm().name(), "digits": self.totp.digits().count() },
            }),
        )
    }
}

/// Checks an operator's new password with the applicant rules ([`NewPassword`]); the operator
/// id stands in for the email name, so the password must not contain the id's words either.
pub fn operator_password(password: &str, id: &OperatorId) -> Result<NewPassword, WeakPassword> {
    // '.', '@' become '-' so every id makes a valid local part ("jane.doe@ra" → "jane-doe-ra")
    // whose words the rule still finds.
    let local: String = id.as_str().chars().map(|c| if matches!(c, '.' | '@') { '-' } else { c }).collect();
    let email = Email::new(&format!("{local}@operator.invalid")).expect("an operator id makes a valid local part");
    NewPassword::new(password, &email)
}

/// The audit event of an operator being disabled (or enabled again) by `actor`.
pub fn disabled_event(id: &OperatorId, disabled: bool, actor: &str, now: OffsetDateTime) -> AuditEvent {
    let action = if disabled { AuditAction::OperatorDisabled } else { AuditAction::OperatorEnabled };
    AuditEvent::new(now, actor, action, id.as_str(), json!({}))
}

/// The operator accounts; `signet-store` implements it.
pub trait OperatorStore: Send + Sync {
    /// Stores a new operator with its creation event. `Conflict("operator id")` if taken.
    fn create_operator(
        &self,
        operator: &Operator,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The operator with that id, if any.
    fn operator_by_id(&self, id: &OperatorId) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;

    /// Every operator, by id.
    fn list_operators(&self) -> impl Future<Output = Result<Vec<Operator>, StoreError>> + Send;

    /// Records `step` as the last accepted TOTP step, with `audit`, only if it is later than
    /// the stored one — a compare-and-set in one statement, so a code accepted on one node is
    /// refused on every other. `Conflict("totp step")` if the stored step is `step` or later,
    /// `NotFound` if there is no such operator.
    fn set_last_totp_step(
        &self,
        id: &OperatorId,
        step: u64,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Disables or re-enables an operator, with `audit` ([`disabled_event`]). `NotFound` if
    /// there is no such operator.
    fn set_operator_disabled(
        &self,
        id: &OperatorId,
        disabled: bool,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a sign-in failed. Deliberately coarse: a wrong id, password or code, a replayed code
/// and a disabled account all read the same, so the answer helps no guesser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Any wrong credential. Show [`crate::lockout::REFUSED`].
    #[error("the operator id, password or code is not correct")]
    Refused,
    /// Too many failures; no credential is checked until then. Show [`Until::message`].
    #[error("too many failed attempts: {until}")]
    Locked {
        /// When the lock ends.
        until: Until,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many password checks were running; nothing was counted. Ask to retry shortly.
    #[error(transparent)]
    Busy(#[from] HashingBusy),
}

/// An Argon2id hash of a random password, verified against when the operator does not exist,
/// so an unknown id costs the same time as a known one with a wrong password.
fn decoy_hash() -> &'static PasswordHash {
    static DECOY: OnceLock<PasswordHash> = OnceLock::new();
    DECOY.get_or_init(|| {
        let id = OperatorId::new("decoy").expect("a valid id");
        let password = operator_password(&TotpSecret::generate().to_base32(), &id).expect("random base32 is strong");
        PasswordHash::new(&password).expect("Argon2id hashes with its default parameters")
    })
}

/// Counts a failed sign-in and returns the error to show: `Locked` if this one locked it.
async fn refuse<S: AttemptStore>(
    store: &S,
    id: &OperatorId,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> LoginError {
    match store.record_failure(SIGN_IN_SCOPE, id.as_str(), policy, now).await {
        Ok(LockState::Locked(until)) => LoginError::Locked { until },
        Ok(LockState::Open) => LoginError::Refused,
        Err(e) => LoginError::Store(e),
    }
}

/// The one counter of failed console sign-ins. Password and code count together: with a
/// counter each, the lock that came first would tell a guesser which part was right.
pub const SIGN_IN_SCOPE: AttemptScope = AttemptScope::OperatorPassword;

/// Signs an operator in with password and TOTP code at `now`, the password checked through
/// `verifier`.
///
/// Refuses at once, checking nothing, while [`SIGN_IN_SCOPE`] is locked for `id`. Otherwise the
/// password is hashed (against a decoy for ids that do not exist) and the code checked whatever
/// the password said, and any wrong part — or a disabled account — is one failure in
/// [`SIGN_IN_SCOPE`] with one answer, [`LoginError::Refused`]. The accepted step is stored with
/// a compare-and-set before success is returned, so the same code cannot sign in twice, on any
/// node. Success clears the counter and is audited as the step is stored.
pub async fn authenticate<S: OperatorStore + AttemptStore, V: PasswordChecker>(
    store: &S,
    verifier: &V,
    id: &OperatorId,
    password: &str,
    code: &str,
    now: OffsetDateTime,
    policy: &LockoutPolicy,
) -> Result<Operator, LoginError> {
    if let LockState::Locked(until) = store.check(SIGN_IN_SCOPE, id.as_str(), now).await? {
        return Err(LoginError::Locked { until });
    }
    let operator = store.operator_by_id(id).await?;
    let password_ok = password_matches(verifier, operator.as_ref(), password).await?;
    with_code(store, id, operator, password_ok, code, now, policy).await
}

/// Signs an operator in at the console with the password and a code or a passkey. Where
/// passkeys are `required`, a code no longer signs in an operator who has one (the console
/// sends one who has none yet to register one before anything else). Every wrong part is one
/// failure with one answer, as in [`authenticate`].
#[allow(clippy::too_many_arguments)]
pub async fn sign_in<S: OperatorStore + AttemptStore + PasskeyStore, V: PasswordChecker>(
    store: &S,
    verifier: &V,
    id: &OperatorId,
    password: &str,
    second: SecondFactor<'_>,
    required: bool,
    now: OffsetDateTime,
    policy: &LockoutPolicy,
) -> Result<Operator, LoginError> {
    if let LockState::Locked(until) = store.check(SIGN_IN_SCOPE, id.as_str(), now).await? {
        return Err(LoginError::Locked { until });
    }
    let operator = store.operator_by_id(id).await?;
    let password_ok = password_matches(verifier, operator.as_ref(), password).await?;
    let owner = PasskeyOwner::Operator(id.as_str().to_owned());
    match second {
        SecondFactor::Code(code) => {
            if required && operator.is_some() && !store.passkeys(&owner).await?.is_empty() {
                return Err(refuse(store, id, policy, now).await);
            }
            with_code(store, id, operator, password_ok, code, now, policy).await
        }
        SecondFactor::Passkey { rp, state, answer } => {
            let Some(operator) = operator.filter(|op| password_ok && !op.disabled) else {
                return Err(refuse(store, id, policy, now).await);
            };
            let event = AuditEvent::new(
                now,
                &operator.audit_name(),
                AuditAction::OperatorSignedIn,
                id.as_str(),
                json!({ "factor": "passkey" }),
            );
            if crate::passkey::confirm(store, rp, &owner, state, answer, now, event).await?.is_err() {
                return Err(refuse(store, id, policy, now).await);
            }
            store.clear(SIGN_IN_SCOPE, id.as_str()).await?;
            Ok(operator)
        }
    }
}

/// Whether `password` is the operator's; an unknown operator costs the same time.
async fn password_matches<V: PasswordChecker>(
    verifier: &V,
    operator: Option<&Operator>,
    password: &str,
) -> Result<bool, LoginError> {
    // The decoy never matches; it is verified only for its time.
    let hash = operator.map_or_else(|| decoy_hash().clone(), |op| op.password.clone());
    Ok(verifier.verify(hash, password.to_owned()).await? && operator.is_some())
}

/// The code half of a sign-in, once the password was checked.
async fn with_code<S: OperatorStore + AttemptStore>(
    store: &S,
    id: &OperatorId,
    operator: Option<Operator>,
    password_ok: bool,
    code: &str,
    now: OffsetDateTime,
    policy: &LockoutPolicy,
) -> Result<Operator, LoginError> {
    let step = operator.as_ref().and_then(|op| op.totp.verify(code, now, op.last_totp_step).ok());
    let (Some(mut operator), true, Some(step)) = (operator, password_ok, step) else {
        return Err(refuse(store, id, policy, now).await);
    };
    if operator.disabled {
        return Err(refuse(store, id, policy, now).await);
    }
    let event = AuditEvent::new(now, &operator.audit_name(), AuditAction::OperatorSignedIn, id.as_str(), json!({}));
    match store.set_last_totp_step(id, step, event).await {
        Ok(()) => {}
        // Another node accepted this step (or a later one) since the operator was read.
        Err(StoreError::Conflict(_)) => return Err(refuse(store, id, policy, now).await),
        Err(e) => return Err(e.into()),
    }
    store.clear(SIGN_IN_SCOPE, id.as_str()).await?;
    operator.last_totp_step = Some(step);
    Ok(operator)
}

/// Confirms a change to the signed-in `operator`'s own sign-in (a passkey added or removed)
/// with a fresh code or passkey; `action` names it in the audit log. A wrong one counts like a
/// failed sign-in, so step-up is no way around the lock.
pub async fn step_up<S: OperatorStore + AttemptStore + PasskeyStore>(
    store: &S,
    operator: &Operator,
    second: SecondFactor<'_>,
    action: &str,
    now: OffsetDateTime,
    policy: &LockoutPolicy,
) -> Result<(), LoginError> {
    let id = &operator.id;
    if let LockState::Locked(until) = store.check(SIGN_IN_SCOPE, id.as_str(), now).await? {
        return Err(LoginError::Locked { until });
    }
    let event = AuditEvent::new(
        now,
        &operator.audit_name(),
        AuditAction::StepUpConfirmed,
        id.as_str(),
        json!({ "action": action }),
    );
    let confirmed = match second {
        SecondFactor::Code(code) => match operator.totp.verify(code, now, operator.last_totp_step) {
            Ok(step) => match store.set_last_totp_step(id, step, event).await {
                Ok(()) => true,
                Err(StoreError::Conflict(_)) => false,
                Err(e) => return Err(e.into()),
            },
            Err(_) => false,
        },
        SecondFactor::Passkey { rp, state, answer } => {
            let owner = PasskeyOwner::Operator(id.as_str().to_owned());
            crate::passkey::confirm(store, rp, &owner, state, answer, now, event).await?.is_ok()
        }
    };
    if !confirmed {
        return Err(refuse(store, id, policy, now).await);
    }
    store.clear(SIGN_IN_SCOPE, id.as_str()).await?;
    Ok(())
}

/// An administrator disables (or re-enables) an operator. `Forbidden` for an RA operator.
pub async fn set_disabled<S: OperatorStore>(
    store: &S,
    admin: &Operator,
    id: &OperatorId,
    disabled: bool,
    now: OffsetDateTime,
) -> Result<(), AdminError> {
    admin.require(Permission::ManageOperators)?;
    store.set_operator_disabled(id, disabled, disabled_event(id, disabled, &admin.audit_name(), now)).await?;
    Ok(())
}

/// An administrator unlocks a subject. `Forbidden` for an RA operator.
pub async fn unlock<S: AttemptStore>(
    store: &S,
    admin: &Operator,
    scope: AttemptScope,
    subject: &str,
    now: OffsetDateTime,
) -> Result<(), AdminError> {
    admin.require(Permission::UnlockLockouts)?;
    store.unlock(scope, subject, &admin.audit_name(), now).await?;
    Ok(())
}

/// Why an administrator's action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The role does not allow it.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// The store refused or failed (`NotFound`: no such operator, or nothing to unlock).
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::{Digits, TotpAlgorithm};

    #[test]
    fn administrators_may_everything_operators_only_vetting() {
        let op: Vec<_> = Role::RaOperator.permissions().collect();
        assert_eq!(op, [Permission::VetApplications, Permission::ApproveApplications]);
        assert_eq!(Role::RaAdministrator.permissions().collect::<Vec<_>>(), Permission::ALL);
        assert!(!Role::RaOperator.may(Permission::UnlockLockouts));
        assert!(Role::RaAdministrator.may(Permission::ManageOperators));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.name().parse(), Ok(r));
        }
        assert_eq!("root".parse::<Role>(), Err(OperatorError::Role("root".into())));
    }

    #[test]
    fn operator_passwords_follow_the_applicant_rules_and_avoid_the_id() {
        let id = OperatorId::new("marguerite.operator@ra.example").unwrap();
        assert!(operator_password("Sable-Orchid-Vector-27", &id).is_ok());
        assert!(operator_password("short", &id).is_err());
        assert!(operator_password("Marguerite-2025-winter", &id).is_err(), "contains a word of the id");
        assert!(operator_password("anything-long-enough-9", &OperatorId::new(".-_").unwrap()).is_ok());
    }

    #[test]
    fn creation_event_names_settings_not_secrets() {
        let secret = TotpSecret::generate();
        let b32 = secret.to_base32();
        let id = OperatorId::new("amy").unwrap();
        let op = Operator::new(
            id.clone(),
            CommonName::new("Amy Vetter").unwrap(),
            Role::RaOperator,
            decoy_hash().clone(),
            Totp::new(secret, TotpAlgorithm::Sha256, Digits::Eight),
        );
        let e = op.created_event("cli:root", time::OffsetDateTime::UNIX_EPOCH);
        let details = e.details.to_string();
        assert!(details.contains("SHA256") && details.contains("ra-operator"), "{details}");
        assert!(!details.contains(&b32) && !details.contains("argon2"), "{details}");
        let debug = format!("{op:?}");
        assert!(!debug.contains(&b32) && !debug.contains(op.password.as_phc()), "{debug}");
        assert_eq!(op.require(Permission::ManageOperators), Err(OperatorError::Forbidden));
    }
}
