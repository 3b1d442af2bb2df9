//! Escrow records and exported keys checked by OpenSSL: `openssl cms -decrypt` opens an escrow
//! with the key recovery key, and `openssl pkey` reads an exported key with its passphrase —
//! both yielding the generated encryption key.

use std::path::{Path, PathBuf};
use std::process::Command;

use signet_pki::escrow::{EncryptionKey, RecoveryKey, RecoveryKeyPublic, SoftwareRecoveryKey, open};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("escrow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be on PATH");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The public key OpenSSL derives from a private key file, DER.
fn public_of(dir: &Path, key: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["pkey", "-in", key, "-pubout", "-outform", "DER"];
    args.extend_from_slice(extra);
    openssl(dir, &args)
}

#[test]
fn openssl_opens_the_escrow_with_the_recovery_key() {
    let dir = scratch("cms");
    let krk = SoftwareRecoveryKey::generate().unwrap();
    std::fs::write(dir.join("krk.pem"), signet_pki::to_pem("PRIVATE KEY", krk.to_pkcs8())).unwrap();
    let key = EncryptionKey::generate().unwrap();
    let escrow = key.escrow(&RecoveryKeyPublic::from_spki(krk.public_key_spki()).unwrap()).unwrap();
    std::fs::write(dir.join("escrow.der"), &escrow).unwrap();

    openssl(&dir, &["cms", "-decrypt", "-inform", "DER", "-in", "escrow.der", "-inkey", "krk.pem", "-out", "key.der"]);
    let recovered = public_of(&dir, "key.der", &["-inform", "DER"]);
    assert_eq!(recovered, key.spki(), "OpenSSL's plaintext is the generated key");
    let text =
        String::from_utf8(openssl(&dir, &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "escrow.der"])).unwrap();
    assert!(text.contains("rsaesOaep") && text.contains("aes-256-cbc"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_exported_key_opens_with_its_passphrase_only() {
    let dir = scratch("export");
    let krk = SoftwareRecoveryKey::generate().unwrap();
    let key = EncryptionKey::generate().unwrap();
    let escrow = key.escrow(&RecoveryKeyPublic::from_spki(krk.public_key_spki()).unwrap()).unwrap();
    let recovered = open(&escrow, &krk).unwrap();
    std::fs::write(dir.join("export.pem"), recovered.to_encrypted_pem("correct horse battery").unwrap()).unwrap();

    let public = public_of(&dir, "export.pem", &["-passin", "pass:correct horse battery"]);
    assert_eq!(public, key.spki());
    let wrong = Command::new("openssl")
        .args(["pkey", "-in", "export.pem", "-passin", "pass:wrong", "-noout"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong passphrase must not open the export");
    std::fs::remove_dir_all(dir).unwrap();
}
