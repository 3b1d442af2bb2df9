//! The subscriber's token: choosing, initializing and logging in to the token.

use super::*;

/// The unlock code (PUK, the token's SO PIN): it unlocks a PIN locked by wrong tries. Made
/// when Signet initializes a blank token and shown to the applicant once; Signet keeps no
/// copy. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockCode(String);

impl UnlockCode {
    /// Random decimal digits, as long as the token allows up to 16 (53 bits): digits, because
    /// some tokens take the unlock code on a PIN pad.
    fn generate(min: usize, max: usize) -> Result<Self, TokenError> {
        let len = 16.clamp(min, max.max(min));
        let rng = SystemRandom::new();
        let mut code = String::with_capacity(len);
        let mut byte = [0u8; 1];
        while code.len() < len {
            rng.fill(&mut byte).map_err(|_| TokenError::Device("no randomness for the unlock code".into()))?;
            // 250 is the largest multiple of 10 in a byte: rejecting above it keeps digits uniform.
            if byte[0] < 250 {
                code.push(char::from(b'0' + byte[0] % 10));
            }
        }
        Ok(Self(code))
    }

    /// The code, to show to the applicant once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UnlockCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockCode(<redacted>)")
    }
}

/// The `CKA_LABEL` of the public data object that marks a token whose PIN and unlock code the
/// subscriber set (rather than the RA's transport PINs).
pub const PERSONALIZED_LABEL: &str = "signet personalized";

pub(super) fn personalized_marker() -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(PERSONALIZED_LABEL.as_bytes().to_vec()),
    ]
}

/// The certificate objects `template` finds, with their label, `CKA_ID` and value.
pub(super) fn read_certificates(
    session: &Session,
    template: &[Attribute],
) -> Result<Vec<TokenCertificate>, TokenError> {
    let mut out = Vec::new();
    for object in session.find_objects(template).map_err(device)? {
        let wanted = [AttributeType::Label, AttributeType::Id, AttributeType::Value];
        let mut certificate = TokenCertificate { label: String::new(), id: Vec::new(), der: Vec::new() };
        for attribute in session.get_attributes(object, &wanted).map_err(device)? {
            match attribute {
                Attribute::Label(l) => certificate.label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(id) => certificate.id = id,
                Attribute::Value(der) => certificate.der = der,
                _ => {}
            }
        }
        out.push(certificate);
    }
    Ok(out)
}

pub(super) fn write_personalized_marker(session: &Session) -> Result<(), TokenError> {
    if !session.find_objects(&personalized_marker()).map_err(device)?.is_empty() {
        return Ok(());
    }
    let mut template = personalized_marker().to_vec();
    template.extend([
        // Public, so that the state shows before the PIN is asked.
        Attribute::Private(false),
        Attribute::Application(b"signet".to_vec()),
        Attribute::Value(b"PIN and unlock code set by the subscriber".to_vec()),
    ]);
    session.create_object(&template).map(drop).map_err(device)
}

/// An X.509 certificate object on the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCertificate {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID` (the key's, for a subscriber certificate; empty for CA certificates).
    pub id: Vec<u8>,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The token in one slot of a loaded module, chosen for a retrieval.
pub struct SubscriberToken {
    module: PathBuf,
    pkcs11: Pkcs11,
    slot: Slot,
    label: String,
    serial: String,
    initialized: bool,
    pin_length: (usize, usize),
}

impl fmt::Debug for SubscriberToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberToken")
            .field("module", &self.module)
            .field("slot", &self.slot.id())
            .field("label", &self.label)
            .field("serial", &self.serial)
            .field("initialized", &self.initialized)
            .finish_non_exhaustive()
    }
}

impl SubscriberToken {
    /// Loads `module` and takes the token in slot `slot`, or, if `None`, the only token
    /// inserted. Several tokens without a slot is [`TokenError::SeveralTokens`]: guessing
    /// could put keys on the wrong one.
    pub fn find(module: &Path, slot: Option<u64>) -> Result<Self, TokenError> {
        let pkcs11 = open_module(module)?;
        let all = pkcs11.get_all_slots().map_err(device)?;
        let present = pkcs11.get_slots_with_token().map_err(device)?;
        let slot = match slot {
            Some(id) => {
                let slot = *all.iter().find(|s| s.id() == id).ok_or_else(|| TokenError::SlotNotFound {
                    slot: id,
                    available: all.iter().map(|s| s.id()).collect(),
                })?;
                if !present.contains(&slot) {
                    return Err(TokenError::NoToken { slots: all.len() });
                }
                slot
            }
            None => match present.as_slice() {
                [one] => *one,
                [] => return Err(TokenError::NoToken { slots: all.len() }),
                many => {
                    let mut tokens = Vec::new();
                    for s in many {
                        let info = pkcs11.get_token_info(*s).map_err(device)?;
                        let label = info.token_initialized().then(|| info.label());
                        tokens.push(slot_choice(s.id(), info.serial_number().trim(), label));
                    }
                    return Err(TokenError::SeveralTokens { tokens });
                }
            },
        };
        let mut token = Self {
            module: module.to_owned(),
            pkcs11,
            slot,
            label: String::new(),
            serial: String::new(),
            initialized: false,
            pin_length: (0, 0),
        };
        token.refresh()?;
        Ok(token)
    }

    /// Like [`Self::find`], for work on a token that has a PIN already (PIN care, status):
    /// without `slot`, blank tokens are not counted, so a reader's or SoftHSM2's empty token
    /// does not make the subscriber's one ambiguous. With no initialized token, this is
    /// [`Self::find`]'s answer.
    pub fn find_initialized(module: &Path, slot: Option<u64>) -> Result<Self, TokenError> {
        if slot.is_some() {
            return Self::find(module, slot);
        }
        let pkcs11 = open_module(module)?;
        let mut initialized = Vec::new();
        for s in pkcs11.get_slots_with_token().map_err(device)? {
            let info = pkcs11.get_token_info(s).map_err(device)?;
            if info.token_initialized() {
                initialized.push((s, slot_choice(s.id(), info.serial_number().trim(), Some(info.label()))));
            }
        }
        match initialized.as_slice() {
            [(one, _)] => Self::find(module, Some(one.id())),
            [] => Self::find(module, None),
            many => Err(TokenError::SeveralTokens { tokens: many.iter().map(|(_, t)| t.clone()).collect() }),
        }
    }

    fn refresh(&mut self) -> Result<(), TokenError> {
        let info = self.pkcs11.get_token_info(self.slot).map_err(device)?;
        self.label = info.label().to_owned();
        self.serial = info.serial_number().trim().to_owned();
        self.initialized = info.token_initialized();
        self.pin_length = (info.min_pin_length(), info.max_pin_length());
        Ok(())
    }

    /// The slot number.
    pub fn slot_id(&self) -> u64 {
        self.slot.id()
    }

    /// The token's label (empty while blank).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The token's serial number (`C_GetTokenInfo`, trimmed): what the RA recorded when it
    /// shipped the token.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The loaded module.
    pub(crate) fn pkcs11(&self) -> Pkcs11 {
        self.pkcs11.clone()
    }

    /// The token's slot.
    pub(crate) fn slot(&self) -> Slot {
        self.slot
    }

    /// Whether the token has been initialized; a blank one needs [`Self::initialize`].
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// The shortest and longest PIN the token accepts.
    pub fn pin_length(&self) -> (usize, usize) {
        self.pin_length
    }

    fn check_pin_length(&self, pin: &str) -> Result<(), TokenError> {
        let (min, max) = self.pin_length;
        if (min..=max).contains(&pin.len()) { Ok(()) } else { Err(TokenError::PinLength { min, max }) }
    }

    /// Initializes a blank token: labels it `label`, sets a random unlock code (SO PIN) and
    /// the applicant's `user_pin`, and returns the unlock code — the only time it exists
    /// outside the token. Refuses a token that is not blank ([`TokenError::NotBlank`]), since
    /// `C_InitToken` would erase it.
    pub fn initialize(&mut self, label: &str, user_pin: &str) -> Result<UnlockCode, TokenError> {
        if self.initialized {
            return Err(TokenError::NotBlank { token: self.label.clone() });
        }
        self.check_pin_length(user_pin)?;
        let (min, max) = self.pin_length;
        let unlock = UnlockCode::generate(min, max)?;
        let so_pin = AuthPin::from(unlock.expose());
        self.pkcs11.init_token(self.slot, &so_pin, label).map_err(device)?;
        let session = self.pkcs11.open_rw_session(self.slot).map_err(device)?;
        session.login(UserType::So, Some(&so_pin)).map_err(device)?;
        session.init_pin(&AuthPin::from(user_pin)).map_err(|e| match e {
            CkError::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => TokenError::PinLength { min, max },
            other => device(other),
        })?;
        session.logout().map_err(device)?;
        self.refresh()?;
        // The applicant chose the PIN and got the unlock code: the token is theirs.
        self.log_in_as(&session, UserType::User, user_pin)?;
        let marked = write_personalized_marker(&session);
        let _ = session.logout();
        marked?;
        Ok(unlock)
    }

    /// Whether the subscriber already set their own PIN and unlock code (the public
    /// [`PERSONALIZED_LABEL`] data object is on the token, readable without logging in). A
    /// token from the RA's stock is not personalized until [`Self::personalize`].
    pub fn is_personalized(&self) -> Result<bool, TokenError> {
        let session = self.pkcs11.open_ro_session(self.slot).map_err(device)?;
        let found = session.find_objects(&personalized_marker()).map_err(device)?;
        Ok(!found.is_empty())
    }

    /// Whether the token came from the RA's stock: its shipment public key (a public object,
    /// seen without logging in) is on it.
    pub fn is_from_stock(&self) -> Result<bool, TokenError> {
        let session = self.pkcs11.open_ro_session(self.slot).map_err(device)?;
        let template =
            [Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Label(SHIPMENT_KEY_LABEL.as_bytes().to_vec())];
        Ok(!session.find_objects(&template).map_err(device)?.is_empty())
    }

    /// Takes a token shipped from the RA's stock over: replaces the transport user PIN by the
    /// subscriber's `new_pin` and the transport SO PIN by a fresh random unlock code, marks
    /// the token personalized, and returns the unlock code (the only time it exists outside
    /// the token).
    ///
    /// Nothing changes unless the transport SO PIN still opens the token. The PIN is set
    /// before the unlock code, so a run that stopped half way is finished by running it again
    /// with the same `new_pin`. If the unlock code was changed but the PIN was not, the token
    /// was tampered with: [`TokenError::UnlockCodeChanged`]; if both were changed but the token
    /// is not marked, an earlier run stopped at the very end:
    /// [`TokenError::PersonalizationInterrupted`]. A token already personalized is
    /// [`TokenError::AlreadyPersonalized`].
    pub fn personalize(
        &self,
        transport_user_pin: &str,
        transport_so_pin: &str,
        new_pin: &str,
    ) -> Result<UnlockCode, TokenError> {
        self.check_pin_length(new_pin)?;
        if self.is_personalized()? {
            return Err(TokenError::AlreadyPersonalized { token: self.label.clone() });
        }
        let session = self.pkcs11.open_rw_session(self.slot).map_err(device)?;
        // Login state belongs to the application: start from none.
        let _ = session.logout();
        let token = || self.label.clone();

        match self.log_in_as(&session, UserType::So, transport_so_pin) {
            Ok(()) => session.logout().map_err(device)?,
            Err(TokenError::WrongUnlockCode { .. }) => {
                // Tell an interrupted run from tampering; each check costs a wrong try at most once.
                if self.log_in_as(&session, UserType::User, transport_user_pin).is_ok() {
                    let _ = session.logout();
                    return Err(TokenError::UnlockCodeChanged { token: token() });
                }
                if self.log_in_as(&session, UserType::User, new_pin).is_ok() {
                    let _ = session.logout();
                    return Err(TokenError::PersonalizationInterrupted { token: token() });
                }
                return Err(TokenError::WrongUnlockCode { token: token() });
            }
            Err(e) => return Err(e),
        }

        match self.log_in_as(&session, UserType::User, transport_user_pin) {
            Ok(()) => {
                let set = session.set_pin(&AuthPin::from(transport_user_pin), &AuthPin::from(new_pin));
                let _ = session.logout();
                set.map_err(|e| self.pin_error(e))?;
            }
            // An earlier run set the PIN already, and stopped before the unlock code.
            Err(TokenError::WrongPin { .. }) => {
                self.log_in_as(&session, UserType::User, new_pin)?;
                session.logout().map_err(device)?;
            }
            Err(e) => return Err(e),
        }

        let (min, max) = self.pin_length;
        let unlock = UnlockCode::generate(min, max)?;
        self.log_in_as(&session, UserType::So, transport_so_pin)?;
        let set = session.set_pin(&AuthPin::from(transport_so_pin), &AuthPin::from(unlock.expose()));
        let _ = session.logout();
        set.map_err(|e| self.pin_error(e))?;

        self.log_in_as(&session, UserType::User, new_pin)?;
        let marked = write_personalized_marker(&session);
        let _ = session.logout();
        marked?;
        Ok(unlock)
    }

    /// Changes the user PIN from `old` to `new` (`C_SetPIN`).
    pub fn change_pin(&self, old: &str, new: &str) -> Result<(), TokenError> {
        self.check_pin_length(new)?;
        let session = self.pkcs11.open_rw_session(self.slot).map_err(device)?;
        let _ = session.logout();
        self.log_in_as(&session, UserType::User, old)?;
        let set = session.set_pin(&AuthPin::from(old), &AuthPin::from(new));
        let _ = session.logout();
        set.map_err(|e| self.pin_error(e))
    }

    /// Unblocks a PIN locked by wrong tries (or forgotten): logs in with the unlock code (the
    /// SO PIN) and sets `new_pin` (`C_InitPIN`), which also resets the try counter.
    pub fn unblock_pin(&self, unlock_code: &str, new_pin: &str) -> Result<(), TokenError> {
        self.check_pin_length(new_pin)?;
        let session = self.pkcs11.open_rw_session(self.slot).map_err(device)?;
        let _ = session.logout();
        self.log_in_as(&session, UserType::So, unlock_code)?;
        let set = session.init_pin(&AuthPin::from(new_pin));
        let _ = session.logout();
        set.map_err(|e| self.pin_error(e))
    }

    /// The X.509 certificates on the token (public objects: no PIN needed), in the token's order.
    pub fn certificates(&self) -> Result<Vec<TokenCertificate>, TokenError> {
        let session = self.pkcs11.open_ro_session(self.slot).map_err(device)?;
        let template = [Attribute::Class(ObjectClass::CERTIFICATE), Attribute::CertificateType(CertificateType::X_509)];
        read_certificates(&session, &template)
    }

    /// Logs `session` in as `user` with `pin`, in words for a subscriber when it fails.
    fn log_in_as(&self, session: &Session, user: UserType, pin: &str) -> Result<(), TokenError> {
        let token = self.label.clone();
        let so = matches!(user, UserType::So);
        match session.login(user, Some(&AuthPin::from(pin))) {
            Ok(()) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid, _)) => {
                Err(if so { TokenError::WrongUnlockCode { token } } else { TokenError::WrongPin { token } })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                Err(if so { TokenError::UnlockCodeLocked { token } } else { TokenError::PinLocked { token } })
            }
            Err(e) => Err(device(e)),
        }
    }

    /// A refused new PIN, in words.
    fn pin_error(&self, e: CkError) -> TokenError {
        let (min, max) = self.pin_length;
        match e {
            CkError::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => TokenError::PinLength { min, max },
            other => device(other),
        }
    }

    /// Logs in with the user PIN and returns a read-write session. A locked PIN is reported
    /// before a try is spent; a wrong one is [`TokenError::WrongPin`].
    pub fn login(&self, pin: &str) -> Result<TokenSession, TokenError> {
        let token = Token::in_slot(self.pkcs11.clone(), self.slot, self.label.clone(), AuthPin::from(pin))?;
        let session = token.open_session(true)?;
        let piv = self.pkcs11.get_library_info().is_ok_and(|i| i.manufacturer_id().starts_with(YKCS11_MANUFACTURER));
        Ok(TokenSession {
            piv,
            config: Pkcs11KeyConfig {
                module: self.module.clone(),
                token_label: self.label.clone(),
                pin: pin.to_owned(),
                key_label: String::new(),
            },
            session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_codes_are_digits_within_the_tokens_limits() {
        assert_eq!(UnlockCode::generate(4, 255).unwrap().expose().len(), 16);
        // A YubiKey PUK is at most 8 characters.
        let puk = UnlockCode::generate(6, 8).unwrap();
        assert_eq!(puk.expose().len(), 8);
        assert!(puk.expose().bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(UnlockCode::generate(4, 255).unwrap(), UnlockCode::generate(4, 255).unwrap());
        assert_eq!(format!("{puk:?}"), "UnlockCode(<redacted>)");
    }
}
