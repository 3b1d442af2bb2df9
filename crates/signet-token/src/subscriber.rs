//! The subscriber's side of certificate retrieval (DESIGN §2 "Retrieval"): what the
//! applicant's own token needs, on any OS with a PKCS#11 module (OpenSC, SoftHSM2, a YubiKey).
//!
//! [`readiness`] answers the seed retrieval guide's "Please Check if my System is Ready" without
//! changing anything. [`SubscriberToken`] picks the token; a blank one is initialized with the
//! applicant's PIN and a random unlock code (the SO PIN, shown once). Logged in, a
//! [`TokenSession`] generates the identity key pair on the token (sensitive, never extractable,
//! sign-only), signs the PKCS#10 request with it (the proof of possession the CA checks), and
//! writes the issued certificate and its CA chain beside the key under the key's `CKA_ID`.
//! The encryption key, which the server generates and escrows, arrives wrapped for a
//! transport key and is unwrapped inside the token beside its certificate.
//!
//! A token shipped from the RA's stock ([`crate::stock`]) arrives with transport PINs:
//! [`SubscriberToken::personalize`] replaces them by the subscriber's PIN and a new unlock
//! code, and [`TokenSession::shipment_sign`] proves to the server that the keys are on the
//! token it shipped. A retrieval whose answer was lost finds its key pair
//! ([`TokenSession::uncertified_identity_key`]) and transport key
//! ([`TokenSession::transport_key`]) again. On a YubiKey (ykcs11) the identity key goes to
//! PIV slot 9a and [`TokenSession::piv_attestation`] reads the chain that attests it.
//! [`SubscriberToken::change_pin`], [`SubscriberToken::unblock_pin`] and
//! [`SubscriberToken::certificates`] serve `signet token pin` and `signet token status`.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{AnyRef, BitStringRef, Null, ObjectIdentifier, SetOfVec, Utf8StringRef};
use der::{Decode, Encode, Sequence, ValueOrd};
use signet_pki::{KeyAlgorithm, Signer};

use crate::config::Pkcs11KeyConfig;
use crate::encoding::AlgorithmIdentifier;
use crate::error::{TokenError, describe, device};
use crate::signer::{
    KeyUsage, Pkcs11Signer, discard, ecdsa_p256_sign, generate_key_pair, public_key_info, random_id, rsa_oaep_sha1,
};
use crate::stock::SHIPMENT_KEY_LABEL;
use crate::token::{Token, load};

/// The key types a subscriber token is asked to generate (DESIGN §2: RSA-2048 minimum, P-256
/// allowed); the ones every PKCS#11 smart card and USB token implements.
pub const SUBSCRIBER_KEYS: [KeyAlgorithm; 2] = [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256];

/// The label of transport keys, so that a listing in the session shows what they are.
const TRANSPORT_LABEL: &str = "signet transport key";

/// What ykcs11 (Yubico's PIV module) reports as `manufacturerID` in `C_GetInfo`.
const YKCS11_MANUFACTURER: &str = "Yubico";
/// ykcs11's `CKA_ID` for PIV slot 9a (PIV Authentication).
const PIV_AUTHENTICATION_ID: u8 = 1;
/// ykcs11's `CKA_ID` of the F9 device attestation certificate.
const PIV_F9_ID: u8 = 0x19;
/// ykcs11's label of the F9 certificate; a slot's attestation adds ` <slot>`.
const PIV_ATTESTATION_LABEL: &str = "X.509 Certificate for PIV Attestation";
/// ykcs11's `CKA_ID` of each PIV key slot (yubico-piv-tool, `ykcs11/objects.c`).
const PIV_SLOTS: [(u8, &str); 24] = [
    (1, "9a"),
    (2, "9c"),
    (3, "9d"),
    (4, "9e"),
    (5, "82"),
    (6, "83"),
    (7, "84"),
    (8, "85"),
    (9, "86"),
    (10, "87"),
    (11, "88"),
    (12, "89"),
    (13, "8a"),
    (14, "8b"),
    (15, "8c"),
    (16, "8d"),
    (17, "8e"),
    (18, "8f"),
    (19, "90"),
    (20, "91"),
    (21, "92"),
    (22, "93"),
    (23, "94"),
    (24, "95"),
];

fn piv_slot_name(id: u8) -> Option<&'static str> {
    PIV_SLOTS.iter().find(|(i, _)| *i == id).map(|(_, name)| *name)
}

// ---------------------------------------------------------------------------------------------
// Readiness

/// What `C_GetInfo` says about the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `libraryDescription`.
    pub description: String,
    /// The PKCS#11 version it implements.
    pub cryptoki_version: String,
    /// Its own version.
    pub library_version: String,
}

/// One slot (a reader, or a USB token's own slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReport {
    /// The slot number (`--slot`).
    pub id: u64,
    /// `slotDescription`.
    pub description: String,
    /// The token in it, if one is inserted.
    pub token: Option<TokenReport>,
}

/// A token as `C_GetTokenInfo` and `C_GetMechanismList` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// The token label (empty while blank).
    pub label: String,
    /// Serial number.
    pub serial: String,
    /// Model.
    pub model: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Whether it has been initialized (has an SO PIN and a label).
    pub initialized: bool,
    /// Whether the user PIN has been set.
    pub user_pin_initialized: bool,
    /// Whether the user PIN is locked after too many wrong tries.
    pub user_pin_locked: bool,
    /// Whether the next wrong user PIN locks it.
    pub user_pin_final_try: bool,
    /// Whether the unlock code (SO PIN) is locked too.
    pub so_pin_locked: bool,
    /// Whether the token refuses writes.
    pub write_protected: bool,
    /// Free public memory in bytes, if the token reports it.
    pub free_public_memory: Option<usize>,
    /// Free private memory in bytes, if the token reports it.
    pub free_private_memory: Option<usize>,
    /// The PIN lengths the token accepts.
    pub pin_length: (usize, usize),
    /// Which of [`SUBSCRIBER_KEYS`] it can generate on the token.
    pub key_generation: Vec<KeyAlgorithm>,
}

/// Whether this machine can retrieve certificates onto a token through one PKCS#11 module,
/// and if not, what is missing. Made by [`readiness`]; `Display` is the report for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The module checked.
    pub module: PathBuf,
    /// The module, if it loaded.
    pub library: Option<ModuleInfo>,
    /// Every slot the module reports.
    pub slots: Vec<SlotReport>,
    /// What stands in the way, in words the applicant can act on; empty when ready.
    pub missing: Vec<String>,
}

impl Readiness {
    /// Whether nothing is missing.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Checks the module, its slots and tokens, and lists what is missing for a retrieval. Never
/// fails and changes nothing: every problem, the module's included, is in
/// [`Readiness::missing`].
pub fn readiness(module: &Path) -> Readiness {
    let mut report = Readiness { module: module.to_owned(), library: None, slots: Vec::new(), missing: Vec::new() };
    let pkcs11 = match open_module(module) {
        Ok(p) => p,
        Err(e) => {
            report.missing.push(e.to_string());
            return report;
        }
    };
    match pkcs11.get_library_info() {
        Ok(info) => {
            report.library = Some(ModuleInfo {
                manufacturer: info.manufacturer_id().to_owned(),
                description: info.library_description().to_owned(),
                cryptoki_version: info.cryptoki_version().to_string(),
                library_version: info.library_version().to_string(),
            })
        }
        Err(e) => report.missing.push(format!("the module does not answer C_GetInfo: {}", describe(&e))),
    }
    let slots = match pkcs11.get_all_slots() {
        Ok(s) => s,
        Err(e) => {
            report.missing.push(format!("the module cannot list its slots: {}", describe(&e)));
            return report;
        }
    };
    for slot in slots {
        match slot_report(&pkcs11, slot) {
            Ok(s) => report.slots.push(s),
            Err(e) => report.missing.push(format!("slot {}: {}", slot.id(), describe(&e))),
        }
    }
    let tokens: Vec<&TokenReport> = report.slots.iter().filter_map(|s| s.token.as_ref()).collect();
    if report.slots.is_empty() {
        report.missing.push("the module reports no slots: connect the token or its reader".to_owned());
    } else if tokens.is_empty() {
        report.missing.push(TokenError::NoToken { slots: report.slots.len() }.to_string());
    }
    let mut problems = Vec::new();
    for token in tokens {
        let name = if token.initialized {
            format!("token {:?} (serial {})", token.label, token.serial)
        } else {
            format!("the blank token (serial {})", token.serial)
        };
        if token.user_pin_locked {
            problems.push(format!("{name}: the PIN is locked; unlock it with the unlock code (SO PIN)"));
        }
        if token.initialized && token.so_pin_locked {
            problems.push(format!("{name}: the unlock code (SO PIN) is locked; the token must be replaced"));
        }
        if token.write_protected {
            problems.push(format!("{name}: the token is write-protected"));
        }
        if token.key_generation.is_empty() {
            problems.push(format!("{name}: cannot generate RSA-2048 or P-256 key pairs on the token"));
        }
    }
    report.missing.extend(problems);
    report
}

fn slot_report(pkcs11: &Pkcs11, slot: Slot) -> Result<SlotReport, CkError> {
    let info = pkcs11.get_slot_info(slot)?;
    let token = if info.token_present() {
        let t = pkcs11.get_token_info(slot)?;
        Some(TokenReport {
            label: t.label().to_owned(),
            serial: t.serial_number().trim().to_owned(),
            model: t.model().trim().to_owned(),
            manufacturer: t.manufacturer_id().trim().to_owned(),
            initialized: t.token_initialized(),
            user_pin_initialized: t.user_pin_initialized(),
            user_pin_locked: t.user_pin_locked(),
            user_pin_final_try: t.user_pin_final_try(),
            so_pin_locked: t.so_pin_locked(),
            write_protected: t.write_protected(),
            free_public_memory: t.free_public_memory(),
            free_private_memory: t.free_private_memory(),
            pin_length: (t.min_pin_length(), t.max_pin_length()),
            key_generation: key_generation(pkcs11, slot)?,
        })
    } else {
        None
    };
    Ok(SlotReport { id: slot.id(), description: info.slot_description().to_owned(), token })
}

/// Which of [`SUBSCRIBER_KEYS`] the token generates: it describes the mechanism and its key
/// size range covers the size (`ulMinKeySize`/`ulMaxKeySize` are bits for both RSA and EC).
///
/// Each mechanism is asked about by itself (`C_GetMechanismInfo`), not looked up in
/// `C_GetMechanismList`: cryptoki logs an error for every vendor mechanism in the list it
/// does not know, which would read as a fault in a report that should say "ready".
fn key_generation(pkcs11: &Pkcs11, slot: Slot) -> Result<Vec<KeyAlgorithm>, CkError> {
    let mut out = Vec::new();
    for (algorithm, mechanism, bits) in [
        (KeyAlgorithm::Rsa2048, MechanismType::RSA_PKCS_KEY_PAIR_GEN, 2048),
        (KeyAlgorithm::P256, MechanismType::ECC_KEY_PAIR_GEN, 256),
    ] {
        let info = match pkcs11.get_mechanism_info(slot, mechanism) {
            Ok(info) => info,
            Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => continue,
            Err(e) => return Err(e),
        };
        if info.generate_key_pair() && (info.min_key_size()..=info.max_key_size()).contains(&bits) {
            out.push(algorithm);
        }
    }
    Ok(out)
}

/// How a token is named among several: `--slot N for serial S ("label")`, or `(blank)`.
fn slot_choice(id: u64, serial: &str, label: Option<&str>) -> String {
    let serial = if serial.is_empty() { String::new() } else { format!(" for serial {serial}") };
    match label {
        Some(label) => format!("--slot {id}{serial} ({label:?})"),
        None => format!("--slot {id}{serial} (blank)"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PKCS#11 module {}: ", self.module.display())?;
        match &self.library {
            Some(m) => writeln!(
                f,
                "loaded ({} {}, version {}, PKCS#11 {})",
                m.manufacturer, m.description, m.library_version, m.cryptoki_version
            )?,
            None => writeln!(f, "not usable")?,
        }
        for slot in &self.slots {
            writeln!(f, "slot {}: {}", slot.id, slot.description)?;
            let Some(t) = &slot.token else {
                writeln!(f, "  no token inserted")?;
                continue;
            };
            let serial = if t.serial.is_empty() { String::new() } else { format!(", serial {}", t.serial) };
            if t.initialized {
                writeln!(f, "  token {:?}: {} {}{serial}", t.label, t.manufacturer, t.model)?;
            } else {
                writeln!(f, "  blank token: {} {}{serial} (retrieval initializes it)", t.manufacturer, t.model)?;
            }
            writeln!(
                f,
                "  initialized: {}, PIN set: {}, PIN locked: {}{}, write-protected: {}",
                yes_no(t.initialized),
                yes_no(t.user_pin_initialized),
                yes_no(t.user_pin_locked),
                if t.user_pin_final_try { " (one try left)" } else { "" },
                yes_no(t.write_protected),
            )?;
            writeln!(f, "  PIN length: {} to {} characters", t.pin_length.0, t.pin_length.1)?;
            let memory = |m: Option<usize>| m.map_or_else(|| "not reported".to_owned(), |b| format!("{b} bytes"));
            writeln!(
                f,
                "  free space: public {}, private {}",
                memory(t.free_public_memory),
                memory(t.free_private_memory)
            )?;
            let algorithms: Vec<&str> = t.key_generation.iter().map(|a| a.name()).collect();
            writeln!(
                f,
                "  key generation on the token: {}",
                if algorithms.is_empty() { "none".into() } else { algorithms.join(", ") }
            )?;
        }
        let tokens: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| s.token.as_ref().map(|t| (s.id, t)))
            .map(|(id, t)| slot_choice(id, &t.serial, t.initialized.then_some(t.label.as_str())))
            .collect();
        if tokens.len() > 1 {
            writeln!(f, "{} tokens are inserted: name the one to use with {}", tokens.len(), tokens.join(", "))?;
        }
        if self.is_ready() && tokens.len() > 1 {
            write!(f, "ready: nothing is missing; say which token with --slot")
        } else if self.is_ready() {
            write!(f, "ready: nothing is missing")
        } else {
            writeln!(f, "not ready; missing:")?;
            for (i, m) in self.missing.iter().enumerate() {
                if i > 0 {
                    writeln!(f)?;
                }
                write!(f, "  - {m}")?;
            }
            Ok(())
        }
    }
}

/// Loads a module, telling a missing file apart from one that does not load.
fn open_module(module: &Path) -> Result<Pkcs11, TokenError> {
    // A bare file name is searched for by the dynamic loader, so only paths are checked here.
    if module.components().count() > 1 && !module.exists() {
        return Err(TokenError::ModuleNotFound { module: module.to_owned() });
    }
    load(module)
}

// ---------------------------------------------------------------------------------------------
// Choosing, initializing and logging in to the token

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

fn personalized_marker() -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(PERSONALIZED_LABEL.as_bytes().to_vec()),
    ]
}

/// The certificate objects `template` finds, with their label, `CKA_ID` and value.
fn read_certificates(session: &Session, template: &[Attribute]) -> Result<Vec<TokenCertificate>, TokenError> {
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

fn write_personalized_marker(session: &Session) -> Result<(), TokenError> {
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

// ---------------------------------------------------------------------------------------------
// Keys, requests and certificates on the token

/// A logged-in read-write session on the subscriber's token.
pub struct TokenSession {
    /// The token as [`Pkcs11Signer`] finds it; the key label is filled in per key.
    config: Pkcs11KeyConfig,
    session: Session,
    /// Whether the module is Yubico's ykcs11, which maps `CKA_ID` to PIV slots.
    piv: bool,
}

impl fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSession").field("token", &self.config.token_label).finish_non_exhaustive()
    }
}

/// An RSA-2048 key pair on the token whose private half can only unwrap (sensitive, not
/// extractable, `CKA_UNWRAP` true, `CKA_DECRYPT` false): what the server wraps a generated
/// encryption key for. Either session-only ([`TokenSession::generate_transport_key`]) or kept
/// on the token until the encryption key is installed ([`TokenSession::transport_key`]);
/// [`TokenSession::install_encryption_key`] destroys it.
pub struct TransportKey {
    public: Option<ObjectHandle>,
    private: ObjectHandle,
    spki: Vec<u8>,
    /// A token object, kept when installing fails so that the server's next answer unwraps.
    persistent: bool,
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportKey").finish_non_exhaustive()
    }
}

impl TransportKey {
    /// The public key as a DER SubjectPublicKeyInfo, to send to the server.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
}

/// An identity key pair on the token: its label and `CKA_ID`, and a signer for it.
pub struct IdentityKey {
    signer: Pkcs11Signer,
    id: Vec<u8>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("label", &self.signer.key_label())
            .field("id", &hex::encode(&self.id))
            .field("algorithm", &self.signer.algorithm())
            .finish()
    }
}

impl IdentityKey {
    /// The `CKA_ID` the private key, the public key and the certificate share.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The `CKA_LABEL`.
    pub fn label(&self) -> &str {
        self.signer.key_label()
    }

    /// The key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.signer.algorithm()
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self) -> &[u8] {
        self.signer.public_key_spki()
    }

    /// A PKCS#10 request for this key, signed on the token: the CA's proof that the
    /// applicant holds the private key. The subject is `CN=<label>`; the CA ignores it and
    /// writes the vetted subject.
    pub fn certificate_request(&self) -> Result<Vec<u8>, TokenError> {
        certification_request(&self.signer, self.label())
    }

    /// Signs `message` with the key on the token (RSA PKCS#1 v1.5 or ECDSA, SHA-256 for
    /// RSA-2048 and P-256), as a renewal's proof of holding the key being replaced.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.signer.sign(message).map_err(|e| TokenError::Device(e.to_string()))
    }
}

impl TokenSession {
    /// Generates an identity (signature and authentication) key pair on the token, labelled
    /// `label` with a random 16-byte `CKA_ID`: private, sensitive, never extractable, and
    /// allowed to sign only (DESIGN §2: signing keys are never escrowed, so they are born on
    /// the token and never leave it). The new key signs a self-test before it is returned.
    ///
    /// A key pair labelled `label` left without a certificate by an interrupted retrieval is
    /// removed first; one that has its certificate is kept and refused as
    /// [`TokenError::KeyExists`].
    pub fn generate_identity_key(&self, algorithm: KeyAlgorithm, label: &str) -> Result<IdentityKey, TokenError> {
        if !SUBSCRIBER_KEYS.contains(&algorithm) {
            return Err(TokenError::UnsupportedKey(format!("{algorithm} (use rsa-2048 or p-256)")));
        }
        self.remove_unfinished(label)?;
        let config = Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() };
        // ykcs11 puts the key in the PIV slot its CKA_ID names (ignoring the label): 9a, PIV
        // Authentication, is the one for an identity key, and the one it attests.
        let id = if self.piv { vec![PIV_AUTHENTICATION_ID] } else { random_id()? };
        let signer = Pkcs11Signer::generate_with_id(&config, algorithm, id.clone())?;
        Ok(IdentityKey { signer, id })
    }

    /// The identity key pair labelled `label` that has no certificate yet, left by a
    /// retrieval whose answer was lost, so the retry asks for a certificate for the same key.
    /// `None` if there is none (or only certified ones, or only keys not generated on this
    /// token: `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE` and `CKA_NEVER_EXTRACTABLE` must be true).
    pub fn uncertified_identity_key(&self, label: &str) -> Result<Option<IdentityKey>, TokenError> {
        let template = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label.as_bytes().to_vec())];
        for private in self.find(&template)? {
            let id = self.id_of(private)?;
            if !self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?.is_empty() {
                continue;
            }
            // Only a key born on this token and never out of it may be certified as one: a key
            // imported under the same label must not ride on the token's proof.
            let born_here = [
                Attribute::Local(true),
                Attribute::AlwaysSensitive(true),
                Attribute::NeverExtractable(true),
                Attribute::Extractable(false),
            ];
            let wanted = [
                AttributeType::Local,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Extractable,
            ];
            let found = self.session.get_attributes(private, &wanted).map_err(device)?;
            if !born_here.iter().all(|a| found.contains(a)) {
                continue;
            }
            let public = self.find(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id.clone())])?;
            let config = Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() };
            let signer = Pkcs11Signer::for_key(&config, private, public.first().copied())?;
            return Ok(Some(IdentityKey { signer, id }));
        }
        Ok(None)
    }

    /// Signs `message` with the shipment key the RA put on the token before shipping it
    /// ([`crate::stock::provision`]): ECDSA P-256 with SHA-256, DER-encoded, which verifies
    /// under the shipment public key the RA recorded. [`TokenError::NoShipmentKey`] if the
    /// token has none (it is not from the RA's stock).
    pub fn shipment_sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(SHIPMENT_KEY_LABEL.as_bytes().to_vec()),
        ];
        match self.find(&template)?.as_slice() {
            [key] => ecdsa_p256_sign(&self.session, *key, message),
            [] => Err(TokenError::NoShipmentKey { token: self.config.token_label.clone() }),
            many => Err(TokenError::AmbiguousKey {
                token: self.config.token_label.clone(),
                key: SHIPMENT_KEY_LABEL.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// The YubiKey PIV attestation of `key`, as ykcs11 exposes it: the attestation certificate
    /// of the key's PIV slot (labelled `X.509 Certificate for PIV Attestation 9a` and so on)
    /// and the F9 device attestation certificate (labelled `X.509 Certificate for PIV
    /// Attestation`, `CKA_ID` 0x19), DER, in that order: what
    /// `signet_pki::attestation::verify` takes. `None` if the module exposes no attestation,
    /// or none whose public key is `key`'s.
    pub fn piv_attestation(&self, key: &IdentityKey) -> Result<Option<Vec<Vec<u8>>>, TokenError> {
        let certificate = |label: &str| {
            let template = [Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Label(label.as_bytes().to_vec())];
            read_certificates(&self.session, &template)
        };
        let device_certificate =
            certificate(PIV_ATTESTATION_LABEL)?.into_iter().find(|c| c.id == [PIV_F9_ID]).map(|c| c.der);
        let Some(f9) = device_certificate else { return Ok(None) };
        // The key's own slot first (ykcs11 gives the key that slot's one-byte CKA_ID); then any
        // slot, since the public key decides.
        let own_slot = match key.id() {
            [id] => piv_slot_name(*id),
            _ => None,
        };
        let slots = own_slot.into_iter().chain(PIV_SLOTS.iter().map(|(_, name)| *name));
        for slot in slots {
            for attestation in certificate(&format!("{PIV_ATTESTATION_LABEL} {slot}"))? {
                let attested = CertificateParts::parse(&attestation.der).map(|c| c.spki).unwrap_or_default();
                if attested == key.public_key_spki() {
                    return Ok(Some(vec![attestation.der, f9]));
                }
            }
        }
        Ok(None)
    }

    /// Deletes a key pair and its certificate, if it has one: a key that did not get its
    /// certificate (the server refused, or the connection failed), so the token holds no key
    /// without a purpose, or the key a renewal replaced.
    pub fn discard(&self, key: IdentityKey) -> Result<(), TokenError> {
        let IdentityKey { signer, id } = key;
        drop(signer);
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY, ObjectClass::CERTIFICATE] {
            for object in self.find(&[Attribute::Class(class), Attribute::Id(id.clone())])? {
                self.session.destroy_object(object).map_err(device)?;
            }
        }
        Ok(())
    }

    /// Deletes a transport key whose encryption key will never come (the server refused).
    pub fn discard_transport_key(&self, key: TransportKey) -> Result<(), TokenError> {
        for object in [Some(key.private), key.public].into_iter().flatten() {
            self.session.destroy_object(object).map_err(device)?;
        }
        Ok(())
    }

    /// The identity key labelled `label` and its certificate (DER): what a renewal replaces.
    /// [`TokenError::KeyNotFound`] if there is no such key, or if it has no certificate.
    pub fn certified_key(&self, label: &str) -> Result<(IdentityKey, Vec<u8>), TokenError> {
        let private = self.one_object(ObjectClass::PRIVATE_KEY, label)?;
        let id = self.id_of(private)?;
        let not_found = || TokenError::KeyNotFound { token: self.config.token_label.clone(), key: label.to_owned() };
        let certificate = match self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?[..]
        {
            [one] => match self.session.get_attributes(one, &[AttributeType::Value]).map_err(device)?.as_slice() {
                [Attribute::Value(der)] => der.clone(),
                _ => return Err(not_found()),
            },
            _ => return Err(not_found()),
        };
        let signer = Pkcs11Signer::open(&Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() })?;
        Ok((IdentityKey { signer, id }, certificate))
    }

    /// Finishes a renewal once `new` has its certificate: gives the new key pair and
    /// certificate the label `label` of the ones they replace, then deletes `old` and its
    /// certificate, so applications find one identity under the usual label.
    pub fn replace(&self, old: IdentityKey, new: IdentityKey, label: &str) -> Result<(), TokenError> {
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY, ObjectClass::CERTIFICATE] {
            for object in self.find(&[Attribute::Class(class), Attribute::Id(new.id.clone())])? {
                self.session
                    .update_attributes(object, &[Attribute::Label(label.as_bytes().to_vec())])
                    .map_err(device)?;
            }
        }
        self.discard(old)
    }

    /// Writes the issued certificate under the key's label and `CKA_ID`, then each CA
    /// certificate of `chain` (issuing CA first) not already on the token, labelled with its
    /// common name. Refuses a certificate for another key: written, it would pair a
    /// certificate with a private key that cannot sign for it.
    pub fn store_certificates(
        &self,
        key: &IdentityKey,
        certificate: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<(), TokenError> {
        let leaf = CertificateParts::parse(certificate)?;
        if leaf.spki != key.public_key_spki() {
            return Err(TokenError::Certificate("it certifies another public key than the one on the token".into()));
        }
        let cas = chain.iter().map(|der| CertificateParts::parse(der)).collect::<Result<Vec<_>, _>>()?;
        self.create_certificate(&leaf, key.label(), key.id())?;
        for ca in &cas {
            let present = self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Value(ca.der.clone())])?;
            if present.is_empty() {
                self.create_certificate(ca, &ca.common_name, &[])?;
            }
        }
        Ok(())
    }

    /// Generates the RSA-2048 transport key a server-generated encryption key is wrapped for
    /// ([`signet_pki::escrow::EncryptionKey::wrap_for_transport`]): session objects only, so
    /// the pair never outlives this session, and a private half that may only unwrap.
    pub fn generate_transport_key(&self) -> Result<TransportKey, TokenError> {
        let pair = generate_key_pair(&self.session, KeyAlgorithm::Rsa2048, KeyUsage::Unwrap, false, TRANSPORT_LABEL)?;
        Ok(TransportKey { public: Some(pair.public), private: pair.private, spki: pair.spki, persistent: false })
    }

    /// The persistent transport key labelled `label`, made if there is none: a token object
    /// (RSA-2048, private, sensitive, never extractable, unwrap only), so that if the server's
    /// answer is lost, the encryption key it sends again next time still unwraps.
    /// [`Self::install_encryption_key`] deletes it once the encryption key is installed.
    pub fn transport_key(&self, label: &str) -> Result<TransportKey, TokenError> {
        let by_label = |class| {
            self.find(&[Attribute::Class(class), Attribute::Token(true), Attribute::Label(label.as_bytes().to_vec())])
        };
        for private in by_label(ObjectClass::PRIVATE_KEY)? {
            let usable = self
                .session
                .get_attributes(
                    private,
                    &[
                        AttributeType::KeyType,
                        AttributeType::Unwrap,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                    ],
                )
                .map_err(device)?;
            let wanted = [
                Attribute::KeyType(KeyType::RSA),
                Attribute::Unwrap(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ];
            if !wanted.iter().all(|w| usable.contains(w)) {
                continue;
            }
            let id = self.id_of(private)?;
            let public = self.find(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id)])?.first().copied();
            // An RSA private key object carries its modulus and public exponent.
            let (_, spki) = public_key_info(&self.session, public.unwrap_or(private), label)?;
            return Ok(TransportKey { public, private, spki, persistent: true });
        }
        let pair = generate_key_pair(&self.session, KeyAlgorithm::Rsa2048, KeyUsage::Unwrap, true, label)?;
        Ok(TransportKey { public: Some(pair.public), private: pair.private, spki: pair.spki, persistent: true })
    }

    /// Installs the escrowed encryption key the server generated and wrapped for `transport`
    /// (DESIGN §2: encryption keys may be escrowed, so, unlike identity keys, they are born
    /// off the token). The AES-256 key is unwrapped with `CKM_RSA_PKCS_OAEP` (SHA-1,
    /// MGF1-SHA-1, no label) as a session key, and the PKCS#8 RSA private key with
    /// `CKM_AES_KEY_WRAP_PAD` (RFC 5649) as a token key labelled `label` with a fresh random
    /// `CKA_ID`: private, sensitive, not extractable, allowed to decrypt and unwrap only.
    /// Its certificate and public key are written beside it under the same label and
    /// `CKA_ID`, which is returned.
    ///
    /// A certificate for another key is [`TokenError::Certificate`], a wrapped key that does
    /// not unwrap is [`TokenError::Unwrap`]; either way nothing is left on the token. The AES
    /// key is destroyed whatever happens; the transport key pair once the key is installed (a
    /// session-only one whatever happens; a persistent one stays for a retry when installing
    /// fails).
    ///
    /// Older encryption keys under the same label are kept: mail encrypted to them must stay
    /// readable after a renewal.
    pub fn install_encryption_key(
        &self,
        transport: TransportKey,
        wrapped_key: &[u8],
        wrapped_private_key: &[u8],
        certificate_der: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, TokenError> {
        let installed = self.install_unwrapped(&transport, wrapped_key, wrapped_private_key, certificate_der, label);
        if installed.is_ok() || !transport.persistent {
            discard(&self.session, [Some(transport.private), transport.public].into_iter().flatten());
        }
        installed
    }

    fn install_unwrapped(
        &self,
        transport: &TransportKey,
        wrapped_key: &[u8],
        wrapped_private_key: &[u8],
        certificate_der: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, TokenError> {
        let certificate = CertificateParts::parse(certificate_der)?;
        let unwrap_error = |e: CkError| TokenError::Unwrap(describe(&e));
        let aes_template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
        ];
        let aes = self
            .session
            .unwrap_key(&rsa_oaep_sha1(), transport.private, wrapped_key, &aes_template)
            .map_err(unwrap_error)?;

        let id = random_id()?;
        let private_template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Unwrap(true),
            Attribute::Sign(false),
            Attribute::SignRecover(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = self.session.unwrap_key(&Mechanism::AesKeyWrapPad, aes, wrapped_private_key, &private_template);
        // The AES key has done its one job.
        discard(&self.session, [aes]);
        let private = private.map_err(unwrap_error)?;

        let written = self.certify_unwrapped(private, &certificate, label, &id);
        if written.is_err() {
            // The fresh CKA_ID names only what this call made.
            discard(&self.session, self.find(&[Attribute::Id(id.clone())]).unwrap_or_else(|_| vec![private]));
        }
        written.map(|()| id)
    }

    /// Checks that `certificate` certifies the unwrapped `private` key, then writes it and
    /// the public key object beside the key, as retrieval does for identity keys.
    fn certify_unwrapped(
        &self,
        private: ObjectHandle,
        certificate: &CertificateParts,
        label: &str,
        id: &[u8],
    ) -> Result<(), TokenError> {
        // An RSA private key object carries its modulus and public exponent.
        let (_, spki) = public_key_info(&self.session, private, label)?;
        if spki != certificate.spki {
            return Err(TokenError::Certificate("it certifies another public key than the one unwrapped".into()));
        }
        let public = self
            .session
            .get_attributes(private, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(device)?;
        let mut template = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        template.extend(public);
        self.session.create_object(&template).map_err(device)?;
        self.create_certificate(certificate, label, id)?;
        Ok(())
    }

    fn create_certificate(&self, cert: &CertificateParts, label: &str, id: &[u8]) -> Result<ObjectHandle, TokenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            // Certificates are public: applications read them before the PIN is asked.
            Attribute::Private(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(cert.subject.clone()),
            Attribute::Issuer(cert.issuer.clone()),
            Attribute::SerialNumber(cert.serial.clone()),
            Attribute::Value(cert.der.clone()),
        ];
        if !id.is_empty() {
            template.push(Attribute::Id(id.to_vec()));
        }
        self.session.create_object(&template).map_err(device)
    }

    /// Removes key pairs labelled `label` that no certificate shares a `CKA_ID` with;
    /// [`TokenError::KeyExists`] if one has its certificate.
    fn remove_unfinished(&self, label: &str) -> Result<(), TokenError> {
        let by_label = |class| self.find(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())]);
        for private in by_label(ObjectClass::PRIVATE_KEY)? {
            let id = self.id_of(private)?;
            let certified =
                !self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?.is_empty();
            if certified {
                return Err(TokenError::KeyExists { token: self.config.token_label.clone(), key: label.to_owned() });
            }
            self.session.destroy_object(private).map_err(device)?;
        }
        for public in by_label(ObjectClass::PUBLIC_KEY)? {
            self.session.destroy_object(public).map_err(device)?;
        }
        Ok(())
    }

    fn find(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>, TokenError> {
        self.session.find_objects(template).map_err(device)
    }

    fn one_object(&self, class: ObjectClass, label: &str) -> Result<ObjectHandle, TokenError> {
        match self.find(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])?.as_slice() {
            [one] => Ok(*one),
            [] => Err(TokenError::KeyNotFound { token: self.config.token_label.clone(), key: label.to_owned() }),
            many => Err(TokenError::AmbiguousKey {
                token: self.config.token_label.clone(),
                key: label.to_owned(),
                count: many.len(),
            }),
        }
    }

    fn id_of(&self, object: ObjectHandle) -> Result<Vec<u8>, TokenError> {
        match self.session.get_attributes(object, &[AttributeType::Id]).map_err(device)?.as_slice() {
            [Attribute::Id(id)] => Ok(id.clone()),
            _ => Err(TokenError::Device("a key on the token has no CKA_ID".into())),
        }
    }
}

/// What a certificate object's attributes hold, from the certificate itself.
struct CertificateParts {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    /// The DER INTEGER, as PKCS#11 §4.6.3 wants `CKA_SERIAL_NUMBER`.
    serial: Vec<u8>,
    spki: Vec<u8>,
    common_name: String,
}

impl CertificateParts {
    fn parse(der: &[u8]) -> Result<Self, TokenError> {
        let bad = |e: der::Error| TokenError::Certificate(format!("not an X.509 certificate: {e}"));
        let cert = x509_cert::Certificate::from_der(der).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let common_name = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == COMMON_NAME)
            .find_map(|atv| std::str::from_utf8(atv.value.value()).ok())
            .map_or_else(|| tbs.subject.to_string(), str::to_owned);
        Ok(Self {
            der: der.to_vec(),
            subject: tbs.subject.to_der().map_err(bad)?,
            issuer: tbs.issuer.to_der().map_err(bad)?,
            serial: tbs.serial_number.to_der().map_err(bad)?,
            spki: tbs.subject_public_key_info.to_der().map_err(bad)?,
            common_name,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PKCS#10

/// id-at-commonName (RFC 4519 §2.3).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// sha256WithRSAEncryption (RFC 4055 §5).
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758 §3.2).
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// RFC 5280 §4.1.2.4: one AttributeTypeAndValue of a Name.
#[derive(Sequence, ValueOrd)]
struct AttributeTypeAndValue<'a> {
    oid: ObjectIdentifier,
    value: Utf8StringRef<'a>,
}

/// RFC 2986 §4.1: CertificationRequestInfo.
#[derive(Sequence)]
struct CertificationRequestInfo<'a> {
    version: u8,
    subject: AnyRef<'a>,
    subject_pk_info: AnyRef<'a>,
    /// `[0] IMPLICIT SET OF Attribute`, here empty: extensions come from the CA's profile.
    attributes: AnyRef<'a>,
}

/// RFC 2986 §4.2: CertificationRequest.
#[derive(Sequence)]
struct CertificationRequest<'a> {
    info: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifier<'a>,
    signature: BitStringRef<'a>,
}

/// A DER PKCS#10 request for `signer`'s key with subject `CN=<common_name>`, signed by it.
/// Any [`Signer`] works; retrieval passes the token key's.
pub fn certification_request(signer: &dyn Signer, common_name: &str) -> Result<Vec<u8>, TokenError> {
    let encoding = |e: der::Error| TokenError::Device(format!("cannot encode the certificate request: {e}"));
    let atv = AttributeTypeAndValue { oid: COMMON_NAME, value: Utf8StringRef::new(common_name).map_err(encoding)? };
    let subject = vec![SetOfVec::try_from(vec![atv]).map_err(encoding)?].to_der().map_err(encoding)?;
    let info = CertificationRequestInfo {
        version: 0,
        subject: AnyRef::from_der(&subject).map_err(encoding)?,
        subject_pk_info: AnyRef::from_der(signer.public_key_spki()).map_err(encoding)?,
        attributes: AnyRef::from_der(&[0xa0, 0x00]).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)?;
    let signature = signer.sign(&info).map_err(|e| TokenError::Device(e.to_string()))?;
    let null = Null.into();
    let signature_algorithm = match signer.algorithm() {
        // RFC 4055 §5: the parameters are NULL for the RSA PKCS#1 v1.5 signatures.
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
            AlgorithmIdentifier { algorithm: SHA256_WITH_RSA, parameters: Some(null) }
        }
        // RFC 5758 §3.2: and absent for ECDSA.
        KeyAlgorithm::P256 => AlgorithmIdentifier { algorithm: ECDSA_WITH_SHA256, parameters: None },
        KeyAlgorithm::P384 => AlgorithmIdentifier { algorithm: ECDSA_WITH_SHA384, parameters: None },
    };
    CertificationRequest {
        info: AnyRef::from_der(&info).map_err(encoding)?,
        signature_algorithm,
        signature: BitStringRef::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

#[cfg(test)]
mod tests {
    use signet_pki::SoftwareSigner;
    use signet_pki::csr::{SubscriberKey, VerifiedCsr};

    use super::*;

    #[test]
    fn requests_pass_the_cas_proof_of_possession_check() {
        for (alg, expected) in [
            (KeyAlgorithm::Rsa2048, SubscriberKey::Rsa { bits: 2048 }),
            (KeyAlgorithm::P256, SubscriberKey::P256),
            (KeyAlgorithm::P384, SubscriberKey::P384),
        ] {
            let signer = SoftwareSigner::generate(alg).unwrap();
            let der = certification_request(&signer, "ECA identity 0123456789AB").unwrap();
            let csr = VerifiedCsr::parse(&der).unwrap();
            assert_eq!(csr.key(), expected, "{alg}");
            assert_eq!(csr.spki(), signer.public_key_spki(), "{alg}");
        }
    }

    #[test]
    fn a_request_signed_by_another_key_fails_proof_of_possession() {
        let signer = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let other = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let mut der = certification_request(&signer, "x").unwrap();
        // P-256 SPKIs have one length: swap in the other key's public key.
        let (mine, theirs) = (signer.public_key_spki(), other.public_key_spki());
        let at = der.windows(mine.len()).position(|w| w == mine).unwrap();
        der[at..at + mine.len()].copy_from_slice(theirs);
        assert_eq!(VerifiedCsr::parse(&der).unwrap_err(), signet_pki::csr::CsrError::BadSignature);
    }

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
