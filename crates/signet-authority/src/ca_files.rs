//! The CA on disk: `<data>/ca/ca.toml` names the certificates and where the issuing key
//! lives — an Argon2id/AES-GCM encrypted file, or a PKCS#11 token (DESIGN §3). Creating a
//! hierarchy (`signet ca init`, or the dev CA on first start) and loading it for serving.
//!
//! `[key_recovery]` names the key recovery key (KRK) that escrows subscribers' encryption keys:
//! its public key, which is all the server reads, and where its private half lives (a file
//! beside the CA keys, or a PKCS#11 token), which only `signet admin key-recovery export`
//! opens. `sealing.key` beside it seals secrets the server must read back (stock tokens'
//! transport PINs, TOTP seeds); it is made on first use. A CA without it issues no encryption certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signet_pki::ca::{HierarchyNames, create_hierarchy};
use signet_pki::escrow::{EscrowError, RecoveryKey, RecoveryKeyPublic, SoftwareRecoveryKey};
use signet_pki::profile::Catalog;
use signet_pki::signer::EncryptedKey;
use signet_pki::{CaError, CaUrls, CertificateAuthority, KeyAlgorithm, SignError, Signer, SoftwareSigner};
use signet_token::{Pkcs11KeyConfig, Pkcs11RecoveryKey, Pkcs11Signer};
use time::OffsetDateTime;

/// Why the CA could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaSetupError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ca.toml` is invalid.
    #[error("{path}: {message}")]
    Config {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A CA already exists where one was to be created.
    #[error("a CA already exists in {0}; refusing to overwrite it")]
    Exists(PathBuf),
    /// An environment variable holding a secret is not set.
    #[error("environment variable {0} (the key's passphrase or PIN) is not set")]
    MissingSecret(String),
    /// The key failed.
    #[error(transparent)]
    Key(#[from] SignError),
    /// The PKCS#11 token failed.
    #[error(transparent)]
    Token(#[from] signet_token::TokenError),
    /// The CA certificate and key do not make a usable CA.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The key recovery key failed or is unusable.
    #[error("key recovery key: {0}")]
    RecoveryKey(#[from] EscrowError),
    /// `ca.toml` has no `[key_recovery]`, so there is no escrow to open.
    #[error("this CA has no key recovery key ([key_recovery] in ca.toml)")]
    NoRecoveryKey,
}

/// Where the issuing (and root) key lives, as written in `ca.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeySource {
    /// Encrypted key files; the passphrase comes from an environment variable or, for the
    /// dev CA only, a file beside them.
    File {
        /// Issuing key file, relative to the CA folder.
        issuing_key: PathBuf,
        /// Root key file.
        root_key: PathBuf,
        /// Environment variable with the passphrase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase_env: Option<String>,
        /// File with the passphrase (dev CA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase_file: Option<PathBuf>,
    },
    /// Keys on a PKCS#11 token; the PIN comes from an environment variable.
    Pkcs11 {
        /// PKCS#11 module path.
        module: PathBuf,
        /// Token label.
        token_label: String,
        /// Issuing key label.
        issuing_key_label: String,
        /// Root key label.
        root_key_label: String,
        /// Environment variable with the user PIN.
        pin_env: String,
    },
}

/// Where the key recovery key's private half lives, as written in `ca.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RecoveryKeySource {
    /// An encrypted key file, like the CA's file keys.
    File {
        /// Key file, relative to the CA folder.
        key: PathBuf,
        /// Environment variable with the passphrase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase_env: Option<String>,
        /// File with the passphrase (dev CA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase_file: Option<PathBuf>,
    },
    /// A decrypt-only key on a PKCS#11 token.
    Pkcs11 {
        /// PKCS#11 module path.
        module: PathBuf,
        /// Token label.
        token_label: String,
        /// Key label.
        key_label: String,
        /// Environment variable with the user PIN.
        pin_env: String,
    },
}

/// `[key_recovery]` in `ca.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecoveryConfig {
    /// The KRK's SubjectPublicKeyInfo (DER), relative to the CA folder: what escrows are sealed to.
    pub public_key: PathBuf,
    /// The private half, opened only to recover a key.
    pub key: RecoveryKeySource,
}

/// `ca.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaFileConfig {
    /// The CA vendor's OU in subscriber DNs (DESIGN §2).
    pub vendor: String,
    /// Root certificate (DER), relative to the CA folder.
    pub root_cert: PathBuf,
    /// Issuing CA certificate (DER).
    pub issuing_cert: PathBuf,
    /// The keys.
    pub key: KeySource,
    /// The key recovery key; without it no encryption certificate is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_recovery: Option<KeyRecoveryConfig>,
}

/// What `ca init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The CA folder (`<data>/ca`).
    pub dir: PathBuf,
    /// Vendor OU.
    pub vendor: String,
    /// Key type of both CA keys.
    pub algorithm: KeyAlgorithm,
    /// CA names.
    pub names: HierarchyNames,
    /// Where the keys go.
    pub key: KeySource,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaSetupError + '_ {
    move |source| CaSetupError::Io { path: path.to_owned(), source }
}

fn secret_from_env(var: &str) -> Result<String, CaSetupError> {
    std::env::var(var).map_err(|_| CaSetupError::MissingSecret(var.to_owned()))
}

fn passphrase(dir: &Path, env: &Option<String>, file: &Option<PathBuf>) -> Result<String, CaSetupError> {
    match (env, file) {
        (Some(var), _) => secret_from_env(var),
        (None, Some(f)) => {
            let p = dir.join(f);
            Ok(std::fs::read_to_string(&p).map_err(io(&p))?.trim().to_owned())
        }
        (None, None) => Err(CaSetupError::Config {
            path: dir.join("ca.toml"),
            message: "file keys need passphrase_env or passphrase_file".into(),
        }),
    }
}

fn pkcs11(module: &Path, token_label: &str, key_label: &str, pin_env: &str) -> Result<Pkcs11KeyConfig, CaSetupError> {
    Ok(Pkcs11KeyConfig {
        module: module.to_owned(),
        token_label: token_label.to_owned(),
        pin: secret_from_env(pin_env)?,
        key_label: key_label.to_owned(),
    })
}

/// Creates a file readable by its owner only (keys, passphrases, exported keys), refusing to
/// overwrite one, and flushes it to disk.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CaSetupError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(io(path))
}

/// Writes an encrypted key file (JSON) as `dir/file`.
fn write_sealed(dir: &Path, file: &Path, sealed: &EncryptedKey) -> Result<(), CaSetupError> {
    let json = serde_json::to_vec_pretty(sealed)
        .map_err(|e| CaSetupError::Config { path: file.to_owned(), message: e.to_string() })?;
    write_private(&dir.join(file), &json)
}

/// Reads the encrypted key file `dir/file`.
fn read_sealed(dir: &Path, file: &Path) -> Result<EncryptedKey, CaSetupError> {
    let p = dir.join(file);
    serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)
        .map_err(|e| CaSetupError::Config { path: p, message: e.to_string() })
}

/// Creates root and issuing CA keys and certificates in `opts.dir` and writes `ca.toml`.
/// Refuses to touch an existing CA.
pub fn init_ca(opts: &InitOptions, catalog: &Catalog, now: OffsetDateTime) -> Result<CaFileConfig, CaSetupError> {
    let config_path = opts.dir.join("ca.toml");
    if config_path.exists() {
        return Err(CaSetupError::Exists(opts.dir.clone()));
    }
    std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
    let (root, issuing): (Arc<dyn Signer>, Arc<dyn Signer>) = match &opts.key {
        KeySource::File { issuing_key, root_key, passphrase_env, passphrase_file } => {
            let pass = passphrase(&opts.dir, passphrase_env, passphrase_file)?;
            let root = SoftwareSigner::generate(opts.algorithm)?;
            let issuing = SoftwareSigner::generate(opts.algorithm)?;
            for (signer, file) in [(&root, root_key), (&issuing, issuing_key)] {
                write_sealed(&opts.dir, file, &signer.to_encrypted(&pass)?)?;
            }
            (Arc::new(root), Arc::new(issuing))
        }
        KeySource::Pkcs11 { module, token_label, issuing_key_label, root_key_label, pin_env } => {
            let root = Pkcs11Signer::generate(&pkcs11(module, token_label, root_key_label, pin_env)?, opts.algorithm)?;
            let issuing =
                Pkcs11Signer::generate(&pkcs11(module, token_label, issuing_key_label, pin_env)?, opts.algorithm)?;
            (Arc::new(root), Arc::new(issuing))
        }
    };
    let (root_der, issuing_der) = create_hierarchy(root, issuing, &opts.names, catalog, now)?;
    let cfg = CaFileConfig {
        vendor: opts.vendor.clone(),
        root_cert: "root.crt".into(),
        issuing_cert: "issuing.crt".into(),
        key: opts.key.clone(),
        key_recovery: Some(init_recovery_key(&opts.dir, &opts.key)?),
    };
    for (file, der) in [(&cfg.root_cert, &root_der), (&cfg.issuing_cert, &issuing_der)] {
        let p = opts.dir.join(file);
        std::fs::write(&p, der).map_err(io(&p))?;
    }
    let text = toml::to_string_pretty(&cfg)
        .map_err(|e| CaSetupError::Config { path: config_path.clone(), message: e.to_string() })?;
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    Ok(cfg)
}

/// Creates the key recovery key where the CA keys go (same passphrase, or same token), and
/// writes its public key beside the certificates.
fn init_recovery_key(dir: &Path, ca_key: &KeySource) -> Result<KeyRecoveryConfig, CaSetupError> {
    let (key, spki) = match ca_key {
        KeySource::File { passphrase_env, passphrase_file, .. } => {
            let krk = SoftwareRecoveryKey::generate()?;
            let file = PathBuf::from("key-recovery.key.json");
            write_sealed(dir, &file, &krk.to_encrypted(&passphrase(dir, passphrase_env, passphrase_file)?)?)?;
            let source = RecoveryKeySource::File {
                key: file,
                passphrase_env: passphrase_env.clone(),
                passphrase_file: passphrase_file.clone(),
            };
            (source, krk.public_key_spki().to_vec())
        }
        KeySource::Pkcs11 { module, token_label, pin_env, .. } => {
            let key_label = "signet-key-recovery".to_owned();
            let krk = Pkcs11RecoveryKey::generate(module, token_label, &key_label, &secret_from_env(pin_env)?)?;
            let source = RecoveryKeySource::Pkcs11 {
                module: module.clone(),
                token_label: token_label.clone(),
                key_label,
                pin_env: pin_env.clone(),
            };
            (source, krk.public_key_spki().to_vec())
        }
    };
    let public_key = PathBuf::from("key-recovery.spki.der");
    let p = dir.join(&public_key);
    std::fs::write(&p, spki).map_err(io(&p))?;
    Ok(KeyRecoveryConfig { public_key, key })
}

/// Creates a dev CA (file keys of `algorithm`, passphrase in a 0600 file beside them) if
/// `dir` has none. Returns whether one was created. `signet serve` uses RSA-2048.
pub fn ensure_dev_ca(
    dir: &Path,
    algorithm: KeyAlgorithm,
    catalog: &Catalog,
    now: OffsetDateTime,
) -> Result<bool, CaSetupError> {
    if dir.join("ca.toml").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut pass = [0u8; 24];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut pass)
        .map_err(|_| SignError::KeyGeneration)?;
    write_private(&dir.join("passphrase"), hex::encode(pass).as_bytes())?;
    let opts = InitOptions {
        dir: dir.to_owned(),
        vendor: "Signet Dev".into(),
        algorithm,
        names: HierarchyNames { root_cn: "Signet Dev Root CA".into(), issuing_cn: "Signet Dev ECA 1".into() },
        key: KeySource::File {
            issuing_key: "issuing.key.json".into(),
            root_key: "root.key.json".into(),
            passphrase_env: None,
            passphrase_file: Some("passphrase".into()),
        },
    };
    init_ca(&opts, catalog, now)?;
    Ok(true)
}

/// A CA loaded for serving.
pub struct LoadedCa {
    /// The issuing CA.
    pub ca: CertificateAuthority,
    /// The root certificate (DER).
    pub root_der: Vec<u8>,
    /// The key recovery key's public half, if the CA has one.
    pub recovery_key: Option<RecoveryKeyPublic>,
    /// The key sealing secrets at rest.
    pub sealing: signet_pki::seal::SealingKey,
}

fn read_config(dir: &Path) -> Result<CaFileConfig, CaSetupError> {
    let config_path = dir.join("ca.toml");
    let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    toml::from_str(&text).map_err(|e| CaSetupError::Config { path: config_path.clone(), message: e.to_string() })
}

/// The file beside `ca.toml` holding the key that seals secrets the server reads back (the
/// stock tokens' transport PINs, operators' and soft tokens' TOTP seeds). Several nodes share
/// it with the rest of the CA folder.
pub const SEALING_KEY_FILE: &str = "sealing.key";

/// Opens the sealing key of the CA in `dir`, creating it (32 random bytes, 0600) on first use.
pub fn sealing_key(dir: &Path) -> Result<signet_pki::seal::SealingKey, CaSetupError> {
    use signet_pki::seal::SealingKey;
    let p = dir.join(SEALING_KEY_FILE);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let fresh = SealingKey::generate().map_err(|_| SignError::KeyGeneration)?;
            match write_private(&p, &fresh) {
                Ok(()) => fresh.to_vec(),
                // Another process made it first: use theirs.
                Err(CaSetupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read(&p).map_err(io(&p))?
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(CaSetupError::Io { path: p, source: e }),
    };
    SealingKey::from_bytes(&bytes).map_err(|e| CaSetupError::Config { path: p, message: e.to_string() })
}

/// Reads `ca.toml`, opens the issuing key and checks it against its certificate.
pub fn load_ca(dir: &Path, urls: CaUrls) -> Result<LoadedCa, CaSetupError> {
    let cfg = read_config(dir)?;
    let read = |f: &Path| {
        let p = dir.join(f);
        std::fs::read(&p).map_err(io(&p))
    };
    let signer: Arc<dyn Signer> = match &cfg.key {
        KeySource::File { issuing_key, passphrase_env, passphrase_file, .. } => {
            let sealed = read_sealed(dir, issuing_key)?;
            Arc::new(SoftwareSigner::from_encrypted(&sealed, &passphrase(dir, passphrase_env, passphrase_file)?)?)
        }
        KeySource::Pkcs11 { module, token_label, issuing_key_label, pin_env, .. } => {
            Arc::new(Pkcs11Signer::open(&pkcs11(module, token_label, issuing_key_label, pin_env)?)?)
        }
    };
    let ca = CertificateAuthority::new(read(&cfg.issuing_cert)?, signer, urls, &cfg.vendor)?;
    let recovery_key = match &cfg.key_recovery {
        Some(k) => Some(RecoveryKeyPublic::from_spki(&read(&k.public_key)?)?),
        None => None,
    };
    Ok(LoadedCa { ca, root_der: read(&cfg.root_cert)?, recovery_key, sealing: sealing_key(dir)? })
}

/// Opens the key recovery key's private half, for recovering an escrowed key; checks that it
/// matches the public key escrows were sealed to.
pub fn open_recovery_key(dir: &Path) -> Result<Box<dyn RecoveryKey>, CaSetupError> {
    let cfg = read_config(dir)?.key_recovery.ok_or(CaSetupError::NoRecoveryKey)?;
    let key: Box<dyn RecoveryKey> = match &cfg.key {
        RecoveryKeySource::File { key, passphrase_env, passphrase_file } => {
            let sealed = read_sealed(dir, key)?;
            Box::new(SoftwareRecoveryKey::from_encrypted(&sealed, &passphrase(dir, passphrase_env, passphrase_file)?)?)
        }
        RecoveryKeySource::Pkcs11 { module, token_label, key_label, pin_env } => {
            Box::new(Pkcs11RecoveryKey::open(module, token_label, key_label, &secret_from_env(pin_env)?)?)
        }
    };
    let p = dir.join(&cfg.public_key);
    if std::fs::read(&p).map_err(io(&p))? != key.public_key_spki() {
        return Err(CaSetupError::Config {
            path: p,
            message: "the key recovery key does not match this public key".into(),
        });
    }
    Ok(key)
}
