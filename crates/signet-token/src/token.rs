//! Loading a PKCS#11 module once per process, finding a token by label, and opening
//! logged-in sessions on it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::config::Pkcs11KeyConfig;
use crate::error::{TokenError, describe, device};

/// Modules loaded and initialized by this process, kept for its lifetime.
///
/// PKCS#11 §5.4: `C_Initialize` may be called once per process (until `C_Finalize`), and
/// `C_Finalize` would invalidate every other session on the module. So each module is
/// initialized on first use and never finalized; a CA loads one or two.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

/// Loads and initializes `path`, or returns the context already made for it.
pub(crate) fn load(path: &Path) -> Result<Pkcs11, TokenError> {
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, pkcs11)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(pkcs11.clone());
    }
    let load_error = |reason: String| TokenError::ModuleLoad { module: path.to_owned(), reason };
    let pkcs11 = Pkcs11::new(path).map_err(|e| match e {
        // dlopen's message starts with the path, which ours already names.
        CkError::LibraryLoading(e) => {
            let reason = e.to_string();
            let prefix = format!("{}: ", path.display());
            load_error(reason.strip_prefix(&prefix).unwrap_or(&reason).to_owned())
        }
        other => load_error(describe(&other)),
    })?;
    // OS locking: the signer is used from several threads, each with its own session.
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in this process (another library) initialized it: share it.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_error(describe(&e))),
    }
    modules.push((path.to_owned(), pkcs11.clone()));
    Ok(pkcs11)
}

/// A token found by label on a loaded module, with the user PIN to log in to it.
pub(crate) struct Token {
    pkcs11: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
}

impl Token {
    /// Loads the module, finds the one initialized token with the configured label and
    /// checks that its user PIN is not locked (so a locked token is reported as such
    /// without spending a try).
    pub(crate) fn connect(cfg: &Pkcs11KeyConfig) -> Result<Self, TokenError> {
        let pkcs11 = load(&cfg.module)?;
        let slot = find_token(&pkcs11, &cfg.token_label)?;
        Self::in_slot(pkcs11, slot, cfg.token_label.clone(), AuthPin::from(cfg.pin.as_str()))
    }

    /// The token in `slot`, labelled `label`, checked not to have a locked user PIN.
    pub(crate) fn in_slot(pkcs11: Pkcs11, slot: Slot, label: String, pin: AuthPin) -> Result<Self, TokenError> {
        if pkcs11.get_token_info(slot).map_err(device)?.user_pin_locked() {
            return Err(TokenError::PinLocked { token: label });
        }
        Ok(Self { pkcs11, slot, label, pin })
    }

    /// The token's label.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Opens a session (read-write to create objects) and logs the user in.
    ///
    /// PKCS#11 login state belongs to the application, not the session, so "already
    /// logged in" (through another session of this process) is success; the PIN is then
    /// not re-checked. That also makes this the way back in if every session was lost.
    pub(crate) fn open_session(&self, read_write: bool) -> Result<Session, TokenError> {
        let session =
            if read_write { self.pkcs11.open_rw_session(self.slot) } else { self.pkcs11.open_ro_session(self.slot) }
                .map_err(device)?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            // A PIN of an impossible length cannot be the right one either.
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid, _)) => {
                Err(TokenError::WrongPin { token: self.label.clone() })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(TokenError::PinLocked { token: self.label.clone() }),
            Err(e) => Err(device(e)),
        }
    }
}

/// The slot of the one initialized token labelled `label`.
fn find_token(pkcs11: &Pkcs11, label: &str) -> Result<Slot, TokenError> {
    let mut available = Vec::new();
    let mut matching = Vec::new();
    for slot in pkcs11.get_slots_with_token().map_err(device)? {
        let info = pkcs11.get_token_info(slot).map_err(device)?;
        if !info.token_initialized() {
            continue;
        }
        if info.label() == label {
            matching.push(slot);
        }
        available.push(info.label().to_owned());
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(TokenError::TokenNotFound { label: label.to_owned(), available }),
        many => Err(TokenError::AmbiguousToken { label: label.to_owned(), count: many.len() }),
    }
}
