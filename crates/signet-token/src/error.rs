//! What can go wrong between Signet and a PKCS#11 module, in words an operator can act on.

use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// Why a PKCS#11 key could not be made, found or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The PKCS#11 module (shared library) could not be loaded or initialized.
    #[error("cannot load the PKCS#11 module {}: {reason}", module.display())]
    ModuleLoad {
        /// The path from the configuration.
        module: PathBuf,
        /// What the loader or `C_Initialize` said.
        reason: String,
    },
    /// No slot holds an initialized token with the configured label.
    #[error("no token labelled {label:?} (tokens present: {})", list(available))]
    TokenNotFound {
        /// The label that was asked for.
        label: String,
        /// The labels of the tokens that are present, to spot a typo.
        available: Vec<String>,
    },
    /// Several tokens carry the configured label, so the key's home is ambiguous.
    #[error("{count} tokens are labelled {label:?}; relabel all but one")]
    AmbiguousToken {
        /// The label that was asked for.
        label: String,
        /// How many tokens carry it.
        count: usize,
    },
    /// The token rejected the user PIN (`CKR_PIN_INCORRECT`).
    #[error("wrong PIN for token {token:?}")]
    WrongPin {
        /// The token's label.
        token: String,
    },
    /// The user PIN is locked after too many wrong tries (`CKR_PIN_LOCKED`).
    #[error("the user PIN of token {token:?} is locked; unlock it with the SO PIN (PUK)")]
    PinLocked {
        /// The token's label.
        token: String,
    },
    /// No private key with the configured label is on the token.
    #[error("no private key labelled {key:?} on token {token:?}")]
    KeyNotFound {
        /// The token's label.
        token: String,
        /// The key label that was asked for.
        key: String,
    },
    /// Several private keys carry the configured label.
    #[error("{count} private keys are labelled {key:?} on token {token:?}; relabel all but one")]
    AmbiguousKey {
        /// The token's label.
        token: String,
        /// The key label that was asked for.
        key: String,
        /// How many private keys carry it.
        count: usize,
    },
    /// Generation was asked for a label that a key on the token already has; nothing was
    /// generated, and the existing key is untouched.
    #[error("a key labelled {key:?} already exists on token {token:?}; choose another label")]
    KeyExists {
        /// The token's label.
        token: String,
        /// The key label that was asked for.
        key: String,
    },
    /// The key is of a type or size Signet does not sign with (DESIGN §2: RSA-2048,
    /// RSA-3072, P-256, P-384).
    #[error("unsupported key type: {0}")]
    UnsupportedKey(String),
    /// The key can leave the token in clear (`CKA_SENSITIVE` false or `CKA_EXTRACTABLE`
    /// true), which a CA key must not.
    #[error("private key {key:?} on token {token:?} is not protected: {reason}")]
    KeyNotProtected {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
        /// Which attribute is wrong.
        reason: &'static str,
    },
    /// The public key found for the private key is malformed, or missing.
    #[error("bad public key for {key:?}: {reason}")]
    PublicKey {
        /// The key's label.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A test signature made with the private key did not verify under the public key
    /// found beside it, so the pair does not match.
    #[error("self-test failed: a signature by private key {key:?} does not verify under its public key")]
    SelfTest {
        /// The key's label.
        key: String,
    },
    /// No file is at the module path (a path with no folder is left to the loader's search).
    #[error(
        "no PKCS#11 module at {}: install OpenSC (opensc-pkcs11.so) or your token vendor's module, and give its path",
        module.display()
    )]
    ModuleNotFound {
        /// The path that was given.
        module: PathBuf,
    },
    /// No slot of the module holds a token (the token or card is not inserted).
    #[error("no token is inserted (the module has {slots} slot(s), all empty); insert your token and try again")]
    NoToken {
        /// How many slots the module reports.
        slots: usize,
    },
    /// The slot asked for does not exist.
    #[error("there is no slot {slot} (slots: {})", list_ids(available))]
    SlotNotFound {
        /// The slot number asked for.
        slot: u64,
        /// The slots the module reports.
        available: Vec<u64>,
    },
    /// Several tokens are inserted and none was chosen.
    #[error("several tokens are inserted; name the one to use with {}", tokens.join(", "))]
    SeveralTokens {
        /// Each token as `--slot N for serial S ("label")` or `--slot N for serial S (blank)`.
        tokens: Vec<String>,
    },
    /// Initialization was asked for a token that is already initialized: `C_InitToken`
    /// would erase every key and certificate on it.
    #[error("token {token:?} is already initialized; initializing it again would erase it")]
    NotBlank {
        /// The token's label.
        token: String,
    },
    /// The PIN's length is outside what the token accepts.
    #[error("the PIN must be {min} to {max} characters long for this token")]
    PinLength {
        /// The token's minimum.
        min: usize,
        /// The token's maximum.
        max: usize,
    },
    /// The certificate to write is not X.509 DER, or does not certify the key it is written for.
    #[error("cannot write the certificate to the token: {0}")]
    Certificate(String),
    /// The encryption key the server wrapped for this token's transport key did not unwrap:
    /// it was damaged, wrapped for another transport key, or is not an RSA PKCS#8 key, or the
    /// token lacks `CKM_RSA_PKCS_OAEP` or `CKM_AES_KEY_WRAP_PAD` unwrapping.
    #[error("the server's wrapped encryption key does not unwrap on the token: {0}")]
    Unwrap(String),
    /// A test message encrypted to the key recovery key's public key did not decrypt to
    /// itself on the token, so the private key does not match or does not work.
    #[error("self-test failed: key recovery key {key:?} does not decrypt what its public key encrypts")]
    DecryptSelfTest {
        /// The key's label.
        key: String,
    },
    /// Provisioning was asked for a token that is not blank: tokens enter the stock fresh
    /// from the vendor (or reset with the vendor's tool), so that nothing on them predates
    /// the shipment key.
    #[error(
        "token serial {serial} is not blank (it is initialized as {label:?}): only blank tokens go into stock; \
         reset it with the vendor's tool (this erases it) or take another token"
    )]
    StockNotBlank {
        /// The token's serial number.
        serial: String,
        /// The token's label.
        label: String,
    },
    /// The token carries no shipment key, so it did not come from the RA's stock (or was
    /// reset since).
    #[error(
        "token {token:?} has no shipment key: it is not a token the RA shipped; use the token that came in the mail"
    )]
    NoShipmentKey {
        /// The token's label.
        token: String,
    },
    /// The subscriber already set their own PIN and unlock code on this token.
    #[error("token {token:?} is already personalized: log in with your own PIN")]
    AlreadyPersonalized {
        /// The token's label.
        token: String,
    },
    /// The token refused the unlock code (SO PIN) (`CKR_PIN_INCORRECT`).
    #[error("wrong unlock code (SO PIN) for token {token:?}")]
    WrongUnlockCode {
        /// The token's label.
        token: String,
    },
    /// The unlock code (SO PIN) is locked after too many wrong tries: the PIN can no longer
    /// be unblocked.
    #[error("the unlock code (SO PIN) of token {token:?} is locked; the token must be replaced")]
    UnlockCodeLocked {
        /// The token's label.
        token: String,
    },
    /// The transport unlock code (SO PIN) does not open the token while the transport PIN
    /// does: someone changed the unlock code, or the transport codes are for another token.
    #[error(
        "token {token:?} refuses the transport unlock code (SO PIN) but takes the transport PIN: its unlock code \
         was changed by someone else, or the codes are for another token; do not use it, and call the RA"
    )]
    UnlockCodeChanged {
        /// The token's label.
        token: String,
    },
    /// The transport unlock code no longer opens the token, and the PIN is already the one
    /// chosen: an earlier personalization stopped after changing the unlock code and before
    /// marking the token personalized.
    #[error(
        "token {token:?}: an earlier personalization already set your PIN and a new unlock code, then stopped \
         before finishing; if the unlock code was shown, keep it and log in with your PIN; if not, call the RA"
    )]
    PersonalizationInterrupted {
        /// The token's label.
        token: String,
    },
    /// Any other refusal by the module, with the PKCS#11 function and return code.
    #[error("PKCS#11 {0}")]
    Device(String),
}

fn list(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ")
    }
}

fn list_ids(ids: &[u64]) -> String {
    if ids.is_empty() { "none".to_owned() } else { ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ") }
}

impl From<TokenError> for signet_pki::SignError {
    fn from(e: TokenError) -> Self {
        signet_pki::SignError::Device(e.to_string())
    }
}

/// Describes a cryptoki failure as `C_Function: CKR_CODE`-like text, without the
/// paragraph of specification prose that cryptoki's `Display` carries.
pub(crate) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{}: {}", c_name(*function), rv_name(*rv)),
        other => other.to_string(),
    }
}

/// Maps any cryptoki failure without a more specific meaning to [`TokenError::Device`].
pub(crate) fn device(e: CkError) -> TokenError {
    TokenError::Device(describe(&e))
}

fn c_name(function: Function) -> String {
    format!("C_{function:?}")
}

/// The specification's CKR_ name for the codes an operator is likely to meet; cryptoki's
/// variant name otherwise.
fn rv_name(rv: RvError) -> String {
    let name = match rv {
        RvError::DeviceError => "CKR_DEVICE_ERROR",
        RvError::DeviceRemoved => "CKR_DEVICE_REMOVED",
        RvError::DeviceMemory => "CKR_DEVICE_MEMORY",
        RvError::TokenNotPresent => "CKR_TOKEN_NOT_PRESENT",
        RvError::TokenWriteProtected => "CKR_TOKEN_WRITE_PROTECTED",
        RvError::SessionHandleInvalid => "CKR_SESSION_HANDLE_INVALID",
        RvError::SessionClosed => "CKR_SESSION_CLOSED",
        RvError::UserNotLoggedIn => "CKR_USER_NOT_LOGGED_IN",
        RvError::KeyHandleInvalid => "CKR_KEY_HANDLE_INVALID",
        RvError::KeyFunctionNotPermitted => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        RvError::MechanismInvalid => "CKR_MECHANISM_INVALID",
        RvError::TemplateInconsistent => "CKR_TEMPLATE_INCONSISTENT",
        RvError::TemplateIncomplete => "CKR_TEMPLATE_INCOMPLETE",
        RvError::AttributeValueInvalid => "CKR_ATTRIBUTE_VALUE_INVALID",
        RvError::GeneralError => "CKR_GENERAL_ERROR",
        RvError::FunctionFailed => "CKR_FUNCTION_FAILED",
        RvError::WrappedKeyInvalid => "CKR_WRAPPED_KEY_INVALID",
        RvError::WrappedKeyLenRange => "CKR_WRAPPED_KEY_LEN_RANGE",
        RvError::EncryptedDataInvalid => "CKR_ENCRYPTED_DATA_INVALID",
        RvError::EncryptedDataLenRange => "CKR_ENCRYPTED_DATA_LEN_RANGE",
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_are_short_and_name_the_function() {
        let e = device(CkError::Pkcs11(RvError::DeviceError, Function::Sign));
        assert_eq!(e.to_string(), "PKCS#11 C_Sign: CKR_DEVICE_ERROR");
    }

    #[test]
    fn token_not_found_lists_what_is_present() {
        let e = TokenError::TokenNotFound { label: "CA".into(), available: vec!["ca".into(), "x".into()] };
        assert_eq!(e.to_string(), r#"no token labelled "CA" (tokens present: "ca", "x")"#);
        let e = TokenError::TokenNotFound { label: "CA".into(), available: vec![] };
        assert_eq!(e.to_string(), r#"no token labelled "CA" (tokens present: none)"#);
    }

    #[test]
    fn converts_to_a_sign_error_for_question_mark() {
        let e: signet_pki::SignError = TokenError::WrongPin { token: "CA".into() }.into();
        assert!(matches!(e, signet_pki::SignError::Device(m) if m == r#"wrong PIN for token "CA""#));
    }
}
