//! The subscriber's token: readiness.

use super::*;

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

pub(super) fn slot_report(pkcs11: &Pkcs11, slot: Slot) -> Result<SlotReport, CkError> {
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
pub(super) fn key_generation(pkcs11: &Pkcs11, slot: Slot) -> Result<Vec<KeyAlgorithm>, CkError> {
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
pub(super) fn slot_choice(id: u64, serial: &str, label: Option<&str>) -> String {
    let serial = if serial.is_empty() { String::new() } else { format!(" for serial {serial}") };
    match label {
        Some(label) => format!("--slot {id}{serial} ({label:?})"),
        None => format!("--slot {id}{serial} (blank)"),
    }
}

pub(super) fn yes_no(b: bool) -> &'static str {
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
pub(super) fn open_module(module: &Path) -> Result<Pkcs11, TokenError> {
    // A bare file name is searched for by the dynamic loader, so only paths are checked here.
    if module.components().count() > 1 && !module.exists() {
        return Err(TokenError::ModuleNotFound { module: module.to_owned() });
    }
    load(module)
}
