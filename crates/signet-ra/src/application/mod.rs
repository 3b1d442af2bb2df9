//! The enrollment application (DESIGN §2 "Application"): what an applicant submitted and the
//! lifecycle it then goes through, as a closed enum whose transitions consume the application
//! and return the next one, an audit event, and any one-time secret to email.
//!
//! ```text
//! submitted → email-verified → forms-received → officer-confirmed → identity-verified
//!   → first-approved → approved → token-shipped → certificates-ready → retrieved
//! any open state → rejected | expired | withdrawn
//! ```
//!
//! Here: where an application is and what it carries ([`ApplicationState`]), the commands and
//! the transitions they make ([`Application::apply`]), and the [`ApplicationStore`] this domain
//! consumes. Vetting evidence and the deadline engine live in `vetting`.
//!
//! Also reachable here, though each lives in a leaf module of its own so that vetting, notices
//! and password resets can use it without the lifecycle: identifiers and actors, the submitted
//! form (payment by invoice, purchase order or card with the processor behind a trait), the
//! account password (strength rules and Argon2id hashing) and the one-time secrets.

mod lifecycle;
mod state;
mod store;
#[cfg(test)]
pub(crate) mod testing;

pub use lifecycle::{Application, Command, Transition, TransitionError};
pub use state::{
    ALL_STATE_NAMES, ActivationRecord, ApplicationState, Approval, DualApproval, IdentityRecord, Reason, Shipment,
    StoredStateError, Vetting,
};
pub use store::ApplicationStore;

pub use crate::application_form::{
    AddressLine, ApplicationForm, CardAuthorization, CardNumber, CertificateChoice, FederalProgram, Organization,
    OrganizationKey, Payment, PaymentError, PaymentProcessor, PersonalInfo, PhoneNumber, PoNumber, Residency,
    StateCode, TestCardProcessor, US_STATES, UsAddress, ZipCode,
};
pub use crate::ids::{Actor, ApplicationId, OperatorId};
pub use crate::input::InputError;
pub use crate::password::{
    HashMemory, HashingBusy, MIN_PASSWORD_LENGTH, NewPassword, PasswordChecker, PasswordHash, PasswordHashError,
    PasswordProblem, UnboundedChecker, WeakPassword,
};
pub use crate::prices::{Cents, PriceTable};
pub use crate::secrets::{ActivationCode, IssuedSecret, SecretDigest, VerificationToken};
