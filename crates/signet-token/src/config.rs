//! Where a PKCS#11 key lives, as read from the CA's TOML configuration.

use std::path::PathBuf;

use serde::Deserialize;

/// Names one key on one token: the module to load, the token (by label), the user PIN
/// and the key (by `CKA_LABEL`).
///
/// ```toml
/// module = "/usr/lib/softhsm/libsofthsm2.so"
/// token_label = "signet-root"
/// pin = "…"
/// key_label = "root-2026"
/// ```
///
/// `Debug` prints everything but the PIN.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11KeyConfig {
    /// Path of the PKCS#11 module (shared library), e.g. SoftHSM2's or OpenSC's.
    pub module: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, as `pkcs11-tool -L` shows it).
    pub token_label: String,
    /// The user PIN.
    pub pin: String,
    /// The key's `CKA_LABEL`; the private and the public key share it.
    pub key_label: String,
}

impl std::fmt::Debug for Pkcs11KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11KeyConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<elided>")
            .field("key_label", &self.key_label)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_pin() {
        let cfg = Pkcs11KeyConfig {
            module: "/m.so".into(),
            token_label: "ca".into(),
            pin: "s3cr3t-pin".into(),
            key_label: "root".into(),
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("s3cr3t-pin"), "{shown}");
        assert!(shown.contains("root") && shown.contains("/m.so"), "{shown}");
    }

    #[test]
    fn reads_from_toml_and_rejects_unknown_keys() {
        let text = r#"
            module = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "signet-root"
            pin = "1234"
            key_label = "root-2026"
        "#;
        let cfg: Pkcs11KeyConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.module, std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!((cfg.token_label.as_str(), cfg.key_label.as_str()), ("signet-root", "root-2026"));
        assert_eq!(cfg.pin, "1234");
        // A misspelt key is an error, not a silently ignored setting.
        let typo = text.replace("key_label", "keylabel");
        assert!(toml::from_str::<Pkcs11KeyConfig>(&typo).is_err());
    }
}
