//! OCSP against independent implementations: requests made by the `openssl ocsp` CLI are
//! parsed, answered with responses signed by a `SoftwareSigner`, and the responses are
//! verified by `openssl ocsp` and linted by pkilint (`lint_ocsp_response`).
//!
//! Both tools must be on PATH; a missing tool fails the test rather than skipping it, since
//! a skipped interop test proves nothing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose, PublicKeyData, SigningKey};
use signet_pki::ocsp::{self, CertStatus, ErrorStatus, OcspIssuer, OcspRequest, SingleStatus};
use signet_pki::{KeyAlgorithm, RevocationReason, Serial, Signer, SoftwareSigner};
use time::{Duration, OffsetDateTime};

/// Lets rcgen sign certificates with a Signet signer, as the CA will in production.
struct RcgenKey<'a> {
    signer: &'a SoftwareSigner,
    key_bits: Vec<u8>,
}

impl<'a> RcgenKey<'a> {
    fn new(signer: &'a SoftwareSigner) -> Self {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(signer.public_key_spki()).unwrap();
        let key_bits = spki.subject_public_key.data.to_vec();
        Self { signer, key_bits }
    }
}

impl PublicKeyData for RcgenKey<'_> {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.signer.public_key_spki().to_vec()
    }

    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.signer.algorithm() {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A CA with two leaves on disk (`ca.pem`, `leaf1.pem`, `leaf2.pem`), leaf2 revoked.
struct Pki {
    dir: PathBuf,
    signer: SoftwareSigner,
    issuer: OcspIssuer,
    leaf1: Serial,
    leaf2: Serial,
    revoked_at: OffsetDateTime,
}

// Keep the files of a failed test for inspection; tidy up after a passing one.
impl Drop for Pki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn pki(name: &str, alg: KeyAlgorithm) -> Pki {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ocsp-interop-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // OpenSSL checks certificate and response times against its own clock.
    let now = OffsetDateTime::now_utc();

    let signer = SoftwareSigner::generate(alg).unwrap();
    let key = RcgenKey::new(&signer);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CountryName, "US");
    params.distinguished_name.push(DnType::OrganizationName, "Signet Test");
    params.distinguished_name.push(DnType::CommonName, format!("Signet OCSP Test CA {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    let ca = params.self_signed(&key).unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let issuer = OcspIssuer::new(ca.der()).unwrap();
    let rcgen_issuer = rcgen::Issuer::new(params, &key);

    let leaf = |file: &str| {
        let serial = Serial::random();
        let mut params = CertificateParams::new(vec![format!("{file}.example")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        params.use_authority_key_identifier_extension = true;
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&leaf_key, &rcgen_issuer).unwrap();
        fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        serial
    };
    let leaf1 = leaf("leaf1");
    let leaf2 = leaf("leaf2");
    drop(rcgen_issuer);
    Pki { dir, signer, issuer, leaf1, leaf2, revoked_at: now - Duration::hours(1) }
}

/// Runs `openssl` in the PKI directory; returns whether it succeeded and stdout+stderr.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI must be installed for the OCSP interop tests");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Lints a response with pkilint; fails on any finding at WARNING or above (the exit code
/// is the number of findings).
fn pkilint(dir: &Path, file: &str) {
    let out = Command::new("lint_ocsp_response")
        .args(["lint", "-s", "WARNING", "--document-format", "DER", file])
        .current_dir(dir)
        .output()
        .expect("pkilint (lint_ocsp_response) must be installed for the OCSP interop tests");
    assert!(
        out.status.success(),
        "pkilint findings for {file}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the CA's records would say: leaf2 revoked for key compromise, leaf1 good, any
/// other serial unknown.
fn answer(pki: &Pki, request: &OcspRequest) -> Vec<SingleStatus> {
    let records: HashMap<&Serial, CertStatus> = HashMap::from([
        (&pki.leaf1, CertStatus::Good),
        (&pki.leaf2, CertStatus::Revoked { at: pki.revoked_at, reason: Some(RevocationReason::KeyCompromise) }),
    ]);
    request
        .cert_ids
        .iter()
        .map(|id| {
            assert!(pki.issuer.issued(id), "openssl's CertID must match the issuer");
            let status = records.get(&id.serial).copied().unwrap_or(CertStatus::Unknown);
            SingleStatus { cert_id: id.clone(), status }
        })
        .collect()
}

/// One exchange: `openssl ocsp` makes a request for `cert_args`, we parse and answer it,
/// and `openssl ocsp` verifies the answer twice — against the request file (`-resp_text`,
/// nonce check) and by looking its own CertIDs up in the response (per-certificate summary).
/// Returns both outputs.
fn exchange(pki: &Pki, tag: &str, cert_args: &[&str], nonce: bool) -> (String, String) {
    let (req_file, resp_file) = (format!("{tag}-req.der"), format!("{tag}-resp.der"));
    let mut args = vec!["ocsp", "-issuer", "ca.pem"];
    args.extend_from_slice(cert_args);
    args.extend(["-reqout", &req_file]);
    if !nonce {
        args.push("-no_nonce");
    }
    let (ok, out) = openssl(&pki.dir, &args);
    assert!(ok, "openssl could not make the request:\n{out}");

    let request = ocsp::parse_request(&fs::read(pki.dir.join(&req_file)).unwrap()).unwrap();
    assert_eq!(request.nonce.is_some(), nonce, "{tag}");
    let now = OffsetDateTime::now_utc();
    let response = ocsp::sign_response(
        &pki.issuer,
        &pki.signer,
        &answer(pki, &request),
        now,
        now - Duration::minutes(1),
        now + Duration::days(1),
        request.nonce.as_deref(),
    )
    .unwrap();
    fs::write(pki.dir.join(&resp_file), response).unwrap();

    let (ok, text) = openssl(
        &pki.dir,
        &["ocsp", "-reqin", &req_file, "-respin", &resp_file, "-issuer", "ca.pem", "-CAfile", "ca.pem", "-resp_text"],
    );
    assert!(ok && text.contains("Response verify OK"), "{tag}:\n{text}");
    assert!(!text.contains("WARNING: no nonce"), "{tag}:\n{text}");
    assert!(!text.contains("Nonce Verify error"), "{tag}:\n{text}");
    assert_eq!(text.contains("OCSP Nonce"), nonce, "{tag}:\n{text}");
    assert!(text.contains("Responder Id: "), "{tag}:\n{text}");

    let mut args = vec!["ocsp", "-issuer", "ca.pem"];
    args.extend_from_slice(cert_args);
    args.extend(["-no_nonce", "-respin", &resp_file, "-CAfile", "ca.pem"]);
    let (ok, summary) = openssl(&pki.dir, &args);
    assert!(ok && summary.contains("Response verify OK"), "{tag}:\n{summary}");

    pkilint(&pki.dir, &resp_file);
    (text, summary)
}

fn cert_statuses(resp_text: &str) -> Vec<&str> {
    resp_text.lines().filter_map(|l| l.trim().strip_prefix("Cert Status: ")).collect()
}

fn interop(name: &str, alg: KeyAlgorithm) {
    let pki = pki(name, alg);

    let (text, summary) = exchange(&pki, "good", &["-cert", "leaf1.pem"], true);
    assert_eq!(cert_statuses(&text), ["good"], "{text}");
    assert!(summary.contains("leaf1.pem: good"), "{summary}");

    let (text, summary) = exchange(&pki, "revoked", &["-cert", "leaf2.pem"], false);
    assert_eq!(cert_statuses(&text), ["revoked"], "{text}");
    assert!(text.contains("Revocation Reason: keyCompromise"), "{text}");
    assert!(summary.contains("leaf2.pem: revoked"), "{summary}");
    assert!(summary.contains("Reason: keyCompromise"), "{summary}");

    let unknown = "0x7E57AB1E";
    let multi = ["-cert", "leaf1.pem", "-cert", "leaf2.pem", "-serial", unknown];
    let (text, summary) = exchange(&pki, "multi", &multi, true);
    assert_eq!(cert_statuses(&text), ["good", "revoked", "unknown"], "{text}");
    assert!(summary.contains("leaf1.pem: good"), "{summary}");
    assert!(summary.contains("leaf2.pem: revoked"), "{summary}");
    assert!(summary.contains(&format!("{unknown}: unknown")), "{summary}");

    // -sha256 applies to the CertIDs of the -cert arguments after it.
    let sha256 = ["-sha256", "-cert", "leaf1.pem", "-cert", "leaf2.pem"];
    let (text, summary) = exchange(&pki, "sha256", &sha256, true);
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert_eq!(cert_statuses(&text), ["good", "revoked"], "{text}");
    assert!(summary.contains("leaf1.pem: good"), "{summary}");
    assert!(summary.contains("leaf2.pem: revoked"), "{summary}");
}

#[test]
fn rsa_2048_ca_answers_openssl() {
    interop("rsa2048", KeyAlgorithm::Rsa2048);
}

#[test]
fn p256_ca_answers_openssl() {
    interop("p256", KeyAlgorithm::P256);
}

#[test]
fn p384_ca_answers_openssl() {
    interop("p384", KeyAlgorithm::P384);
}

#[test]
fn garbage_gets_malformed_request() {
    let pki = pki("garbage", KeyAlgorithm::P256);
    for garbage in [&b""[..], b"\x30\x03\x02\x01\x00", b"POST /ocsp HTTP/1.1\r\n\r\n", &[0xff; 300]] {
        let err = ocsp::parse_request(garbage).unwrap_err();
        assert_eq!(err.error_status(), ErrorStatus::MalformedRequest, "{err}");
    }
    fs::write(pki.dir.join("malformed.der"), ocsp::error_response(ErrorStatus::MalformedRequest)).unwrap();
    let (_, text) = openssl(&pki.dir, &["ocsp", "-respin", "malformed.der", "-resp_text"]);
    assert!(text.contains("malformedrequest"), "{text}");
    pkilint(&pki.dir, "malformed.der");
}

#[test]
fn other_issuers_get_unauthorized() {
    let ours = pki("ours", KeyAlgorithm::P256);
    let theirs = pki("theirs", KeyAlgorithm::P256);
    let req = theirs.dir.join("req.der");
    let req = req.to_str().unwrap();
    let (ok, out) = openssl(&theirs.dir, &["ocsp", "-issuer", "ca.pem", "-cert", "leaf1.pem", "-reqout", req]);
    assert!(ok, "{out}");
    let request = ocsp::parse_request(&fs::read(req).unwrap()).unwrap();
    assert!(!ours.issuer.issued(&request.cert_ids[0]));
    assert!(theirs.issuer.issued(&request.cert_ids[0]));

    fs::write(ours.dir.join("unauthorized.der"), ocsp::error_response(ErrorStatus::Unauthorized)).unwrap();
    let (_, text) = openssl(&ours.dir, &["ocsp", "-respin", "unauthorized.der", "-resp_text"]);
    assert!(text.contains("unauthorized"), "{text}");
}
