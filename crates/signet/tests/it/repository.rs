//! The public repository end to end: a subscriber retrieves onto a SoftHSM2 token with
//! `signet token retrieve`; a sender looks the address up over HTTP (curl), downloads the
//! `.p7c`, takes the recipient's certificate out of it with `openssl pkcs7` and encrypts an
//! S/MIME message to it with `openssl cms -encrypt`; the subscriber's token opens it.
//!
//! The tests have no PKCS#11 provider for OpenSSL, so the token's part of the decryption is
//! done as a mail client's PKCS#11 layer does it: the RSA key on the token (`pkcs11-tool
//! --decrypt -m RSA-PKCS`, OpenSSL's default key transport for RSA recipients) unwraps the
//! content-encryption key from the message's KeyTransRecipientInfo, and `openssl enc` decrypts
//! the content with it. The private key never leaves the token.

use std::path::Path;

use crate::common::must;
use crate::retrieval::{PIN, World, field, file, logged};

/// rsaEncryption (PKCS#1 v1.5 key transport), DER.
const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-aes256-CBC, DER.
const AES256_CBC: &[u8] = &[0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// One DER element of `der`: (tag byte, contents, the element whole, what follows).
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
    let (tag, first) = (der[0], der[1]);
    let (len, head) = match first {
        0x80 => panic!("indefinite length: the message is BER, not DER"),
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let k = usize::from(n & 0x7f);
            (der[2..2 + k].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), 2 + k)
        }
    };
    (tag, &der[head..head + len], &der[..head + len], &der[head + len..])
}

/// The elements inside a constructed element's contents.
fn children(mut contents: &[u8]) -> Vec<(u8, &[u8], &[u8])> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (tag, inner, whole, rest) = tlv(contents);
        out.push((tag, inner, whole));
        contents = rest;
    }
    out
}

/// What a recipient needs from an EnvelopedData with one RSA recipient: the encrypted
/// content-encryption key, the AES-256-CBC IV and the ciphertext.
fn envelope(der: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (_, content_info, _, _) = tlv(der);
    let info = children(content_info);
    let (_, explicit, _) = info[1];
    let (_, enveloped, _, _) = tlv(explicit);
    let fields = children(enveloped);
    let recipients = fields.iter().find(|f| f.0 == 0x31).expect("recipientInfos");
    let recipients = children(recipients.1);
    assert_eq!(recipients.len(), 1, "one recipient");
    let ktri = children(recipients[0].1);
    let key_algorithm = children(ktri[2].1);
    assert_eq!(key_algorithm[0].2, RSA_ENCRYPTION, "PKCS#1 v1.5 key transport");
    let encrypted_key = ktri[3].1.to_vec();
    let eci = fields.iter().rev().find(|f| f.0 == 0x30).expect("encryptedContentInfo");
    let eci = children(eci.1);
    let content_algorithm = children(eci[1].1);
    assert_eq!(content_algorithm[0].2, AES256_CBC, "AES-256-CBC content");
    let iv = content_algorithm[1].1.to_vec();
    let ciphertext = match eci[2] {
        (0x80, octets, _) => octets.to_vec(),
        (0xa0, chunks, _) => children(chunks).iter().flat_map(|c| c.1.to_vec()).collect(),
        (tag, ..) => panic!("encryptedContent tag {tag:#x}"),
    };
    (encrypted_key, iv, ciphertext)
}

fn curl(args: &[&str]) -> String {
    must("curl", &[&["-sf"][..], args].concat(), &[])
}

/// The certificates of a PEM text, each as its own PEM.
fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----END CERTIFICATE-----")
        .filter_map(|b| {
            b.find("-----BEGIN CERTIFICATE-----").map(|at| format!("{}-----END CERTIFICATE-----\n", &b[at..]))
        })
        .collect()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> &str {
    std::fs::write(path, bytes).unwrap();
    file(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_encrypted_to_the_certificate_from_the_repository_opens_on_the_subscribers_token() {
    let w = World::start().await;
    let (app, code) = w.ready_application("medium-token", 10).await;
    let (ok, out, err) = w.retrieve(&app, &code, &["--key-type", "rsa-2048"], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");
    let token_label = format!("ECA {app}");

    // The sender: the address, looked up over HTTP, finds the encryption certificate only.
    let base = &w.server.base_url;
    let found = curl(&["-H", "Accept: application/json", &format!("{base}/repository?email=jane.doe%40acme.example")]);
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    let certificates = found["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1, "{found}");
    assert_eq!(certificates[0]["usage"], "encryption", "{found}");
    let serial = certificates[0]["serial"].as_str().unwrap();
    let p7c_url = certificates[0]["downloads"]["p7c"].as_str().unwrap();
    assert!(p7c_url.starts_with(base.as_str()), "{p7c_url}");

    let bundle = w.path("jane.p7c");
    curl(&["-o", file(&bundle), p7c_url]);
    let printed = must("openssl", &["pkcs7", "-inform", "DER", "-in", file(&bundle), "-print_certs"], &[]);
    let recipient = pem_blocks(&printed)
        .into_iter()
        .find(|pem| {
            let path = w.path("candidate.pem");
            let shown = must("openssl", &["x509", "-noout", "-serial", "-in", write(&path, pem)], &[]);
            shown.trim().trim_start_matches("serial=").eq_ignore_ascii_case(serial)
        })
        .unwrap_or_else(|| panic!("serial {serial} not in the bundle:\n{printed}"));
    let recipient_path = w.path("recipient.pem");
    write(&recipient_path, &recipient);

    // An S/MIME message encrypted to it, as a mail client sends it.
    let message = b"Meet at the usual place at noon.\nBring the signed contract.\n";
    let (plain, mail, der) = (w.path("message.txt"), w.path("message.eml"), w.path("message.der"));
    write(&plain, message);
    must(
        "openssl",
        &["cms", "-encrypt", "-aes256", "-binary", "-in", file(&plain), "-out", file(&mail), file(&recipient_path)],
        &[],
    );
    let sent = std::fs::read_to_string(&mail).unwrap();
    assert!(sent.contains("application/pkcs7-mime") && sent.contains("enveloped-data"), "{sent}");
    must(
        "openssl",
        &["cms", "-cmsout", "-inform", "SMIME", "-in", file(&mail), "-outform", "DER", "-out", file(&der)],
        &[],
    );

    // The subscriber: the token's encryption key unwraps the content key; the content opens.
    let (encrypted_key, iv, ciphertext) = envelope(&std::fs::read(&der).unwrap());
    let objects = w.objects(&token_label);
    let key = objects
        .iter()
        .find(|o| o.starts_with("Private Key Object") && field(o, "label") == format!("ECA encryption {app}"))
        .unwrap_or_else(|| panic!("{objects:#?}"));
    let access = field(key, "Access");
    assert!(access.starts_with("sensitive") && !access.contains(" extractable"), "the key cannot leave: {key}");
    let (wrapped, content_key) = (w.path("key.enc"), w.path("key.bin"));
    write(&wrapped, &encrypted_key);
    w.pkcs11_tool(
        &token_label,
        &["--decrypt", "--id", field(key, "ID"), "-m", "RSA-PKCS", "-i", file(&wrapped), "-o", file(&content_key)],
    );
    let content_key = std::fs::read(&content_key).unwrap();
    assert_eq!(content_key.len(), 32, "an AES-256 key");
    let (sealed, opened) = (w.path("content.enc"), w.path("content.txt"));
    write(&sealed, &ciphertext);
    let (k, iv) = (hex::encode(&content_key), hex::encode(&iv));
    must(
        "openssl",
        &["enc", "-d", "-aes-256-cbc", "-K", &k, "-iv", &iv, "-in", file(&sealed), "-out", file(&opened)],
        &[],
    );
    assert_eq!(std::fs::read(&opened).unwrap(), message);

    // The lookup's log lines name the path only, never the address.
    let log = logged();
    let lookups: Vec<&str> = log.lines().filter(|l| l.contains("/repository")).collect();
    assert!(!lookups.is_empty(), "the lookup is logged by its path");
    assert!(lookups.iter().all(|l| !l.contains("jane.doe") && !l.contains("%40")), "{lookups:#?}");
}
