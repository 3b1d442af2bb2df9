//! JSON Web Signatures as ACME uses them (RFC 8555 §6.2): flattened JSON serialization
//! (RFC 7515 §7.2.2), everything in the protected header, RS256 / ES256 / ES384 verified with
//! aws-lc-rs, the account key as a `jwk` (RFC 7517) or a `kid`, and the External Account
//! Binding's inner HMAC JWS (RFC 8555 §7.3.4). Pure: no storage, no HTTP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::acme::{AcmeProblem, EabAlgorithm, EabHmacKey, EabKeyId, KeyThumbprint, ProblemKind};

/// The JWS algorithms accepted for account keys, for `badSignatureAlgorithm` answers.
pub const ALGORITHMS: [&str; 3] = ["RS256", "ES256", "ES384"];

fn malformed(detail: impl Into<String>) -> AcmeProblem {
    AcmeProblem::new(ProblemKind::Malformed, detail)
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, AcmeProblem> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| malformed(format!("{field} is not base64url without padding")))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..]
}

/// An elliptic curve an account key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

/// An account public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// RSA: modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ECDSA: the affine coordinates, fixed length for the curve.
    Ec { curve: Curve, x: Vec<u8>, y: Vec<u8> },
}

impl Jwk {
    /// Reads a JWK object; only the members that define the key count (RFC 7638 §3.2).
    pub fn from_json(v: &Value) -> Result<Self, AcmeProblem> {
        let bad = |d: &str| AcmeProblem::new(ProblemKind::BadPublicKey, d);
        let field = |name: &str| v.get(name).and_then(Value::as_str).ok_or_else(|| bad(&format!("jwk has no {name}")));
        match field("kty")? {
            "RSA" => {
                let n = strip_zeros(&b64("jwk n", field("n")?)?).to_vec();
                let e = strip_zeros(&b64("jwk e", field("e")?)?).to_vec();
                if !(256..=1024).contains(&n.len()) {
                    return Err(bad("RSA account keys have 2048 to 8192 bits"));
                }
                if e.is_empty() || e.len() > 4 || e[e.len() - 1].is_multiple_of(2) {
                    return Err(bad("the RSA public exponent is not acceptable"));
                }
                Ok(Self::Rsa { n, e })
            }
            "EC" => {
                let curve = match field("crv")? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    other => return Err(bad(&format!("curve {other} is not supported (P-256, P-384)"))),
                };
                let x = b64("jwk x", field("x")?)?;
                let y = b64("jwk y", field("y")?)?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(bad("EC coordinates have the wrong length for the curve"));
                }
                let key = Self::Ec { curve, x, y };
                // aws-lc-rs checks that the point is on the curve.
                aws_lc_rs::signature::ParsedPublicKey::new(key.ecdsa_algorithm(), key.ec_point())
                    .map_err(|_| bad("the EC point is not on the curve"))?;
                Ok(key)
            }
            other => Err(bad(&format!("key type {other} is not supported (RSA, EC)"))),
        }
    }

    /// The public key of a certificate's SubjectPublicKeyInfo (DER), if it is one Signet
    /// accepts as an account key: used to let a certificate's key holder revoke it.
    pub fn from_spki(spki: &[u8]) -> Option<Self> {
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
        match info.parsed().ok()? {
            PublicKey::RSA(rsa) => {
                Some(Self::Rsa { n: strip_zeros(rsa.modulus).to_vec(), e: strip_zeros(rsa.exponent).to_vec() })
            }
            PublicKey::EC(point) => {
                let curve = match info.algorithm.parameters.as_ref()?.as_oid().ok()?.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => Curve::P256,
                    "1.3.132.0.34" => Curve::P384,
                    _ => return None,
                };
                let data = point.data();
                let len = curve.coordinate_len();
                (data.len() == 1 + 2 * len && data[0] == 4).then(|| Self::Ec {
                    curve,
                    x: data[1..=len].to_vec(),
                    y: data[1 + len..].to_vec(),
                })
            }
            _ => None,
        }
    }

    /// The RFC 7638 form: required members only, in lexicographic order, no whitespace. Also
    /// what the store keeps.
    pub fn canonical_json(&self) -> String {
        // Written by hand: the order is fixed by the RFC, and base64url needs no escaping.
        match self {
            Self::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, URL_SAFE_NO_PAD.encode(e), URL_SAFE_NO_PAD.encode(n))
            }
            Self::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.name(),
                URL_SAFE_NO_PAD.encode(x),
                URL_SAFE_NO_PAD.encode(y)
            ),
        }
    }

    /// The RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> KeyThumbprint {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.canonical_json().as_bytes());
        KeyThumbprint::new(&URL_SAFE_NO_PAD.encode(digest.as_ref())).expect("a SHA-256 is 43 base64url characters")
    }

    fn ecdsa_algorithm(&self) -> &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm {
        match self {
            Self::Ec { curve: Curve::P384, .. } => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
            _ => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        }
    }

    fn ec_point(&self) -> Vec<u8> {
        match self {
            Self::Ec { x, y, .. } => [&[4u8][..], x, y].concat(),
            Self::Rsa { .. } => Vec::new(),
        }
    }

    /// Verifies `signature` over `message` with this key under JWS algorithm `alg`, which must
    /// fit the key (RS256 for RSA, ES256 for P-256, ES384 for P-384).
    fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), AcmeProblem> {
        let ok = match (alg, self) {
            ("RS256", Self::Rsa { n, e }) => aws_lc_rs::signature::RsaPublicKeyComponents { n, e }
                .verify(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            ("ES256", Self::Ec { curve: Curve::P256, .. }) | ("ES384", Self::Ec { curve: Curve::P384, .. }) => {
                aws_lc_rs::signature::UnparsedPublicKey::new(self.ecdsa_algorithm(), self.ec_point())
                    .verify(message, signature)
                    .is_ok()
            }
            (alg, _) if ALGORITHMS.contains(&alg) => {
                return Err(AcmeProblem::new(
                    ProblemKind::BadSignatureAlgorithm,
                    format!("{alg} does not fit the account key"),
                ));
            }
            (alg, _) => {
                return Err(AcmeProblem::new(
                    ProblemKind::BadSignatureAlgorithm,
                    format!("JWS algorithm {alg:?} is not supported ({})", ALGORITHMS.join(", ")),
                ));
            }
        };
        if ok { Ok(()) } else { Err(malformed("the JWS signature does not verify")) }
    }
}

/// Which key signed a request.
#[derive(Debug, Clone)]
pub enum KeyRef {
    /// The key itself (new-account, and revoke-cert by the certificate's key).
    Jwk(Jwk),
    /// An account URL.
    Kid(String),
}

/// A parsed, not yet verified, ACME request body.
#[derive(Debug)]
pub struct Jws {
    /// The JWS algorithm.
    alg: String,
    /// The `nonce` header.
    pub nonce: String,
    /// The `url` header.
    pub url: String,
    /// The signing key.
    pub key: KeyRef,
    /// The decoded payload; empty for POST-as-GET.
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// The members of a flattened JWS, no others (an unprotected `header` is refused, RFC 8555 §6.2).
fn flattened(v: &Value) -> Result<(&str, &str, &str), AcmeProblem> {
    let obj = v.as_object().ok_or_else(|| malformed("the request body is not a JSON object"))?;
    if obj.keys().any(|k| !matches!(k.as_str(), "protected" | "payload" | "signature")) {
        return Err(malformed("a flattened JWS has only protected, payload and signature"));
    }
    let field =
        |name: &str| obj.get(name).and_then(Value::as_str).ok_or_else(|| malformed(format!("JWS has no {name}")));
    Ok((field("protected")?, field("payload")?, field("signature")?))
}

fn header_object(protected_b64: &str) -> Result<Map<String, Value>, AcmeProblem> {
    match serde_json::from_slice(&b64("protected header", protected_b64)?) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed("the protected header is not a JSON object")),
    }
}

impl Jws {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, AcmeProblem> {
        let v: Value = serde_json::from_slice(body).map_err(|_| malformed("the request body is not JSON"))?;
        let (protected_b64, payload_b64, signature_b64) = flattened(&v)?;
        let header = header_object(protected_b64)?;
        let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_owned);
        let alg = text("alg").ok_or_else(|| malformed("the protected header has no alg"))?;
        let key = match (header.get("jwk"), text("kid")) {
            (Some(jwk), None) => KeyRef::Jwk(Jwk::from_json(jwk)?),
            (None, Some(kid)) => KeyRef::Kid(kid),
            _ => return Err(malformed("the protected header needs exactly one of jwk and kid")),
        };
        let nonce = text("nonce").ok_or_else(|| AcmeProblem::new(ProblemKind::BadNonce, "the request has no nonce"))?;
        let url = text("url").ok_or_else(|| malformed("the protected header has no url"))?;
        Ok(Self {
            alg,
            nonce,
            url,
            key,
            payload: b64("payload", payload_b64)?,
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            signature: b64("signature", signature_b64)?,
        })
    }

    /// Verifies the signature with `key` (the header's `jwk`, or the `kid` account's key).
    pub fn verify(&self, key: &Jwk) -> Result<(), AcmeProblem> {
        key.verify(&self.alg, &self.signing_input, &self.signature)
    }

    /// The payload as a JSON object; POST-as-GET (empty payload) is refused here.
    pub fn payload_object(&self) -> Result<Map<String, Value>, AcmeProblem> {
        match serde_json::from_slice(&self.payload) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(malformed("the payload is not a JSON object")),
        }
    }
}

/// The inner JWS of an External Account Binding, checked against the outer request: its
/// MAC remains to be verified with the key [`ExternalBinding::key_id`] names.
#[derive(Debug)]
pub struct ExternalBinding {
    key_id: EabKeyId,
    alg: EabAlgorithm,
    signing_input: Vec<u8>,
    tag: Vec<u8>,
}

impl ExternalBinding {
    /// Checks the binding's shape: an HS256/384/512 JWS whose `kid` is an EAB key id, whose
    /// `url` is the new-account URL and whose payload is the account key being registered.
    pub fn parse(v: &Value, url: &str, account_key: &Jwk) -> Result<Self, AcmeProblem> {
        let (protected_b64, payload_b64, signature_b64) = flattened(v)?;
        let header = header_object(protected_b64)?;
        let text = |name: &str| header.get(name).and_then(Value::as_str);
        let alg = text("alg")
            .and_then(EabAlgorithm::from_name)
            .ok_or_else(|| malformed("the external account binding must use HS256, HS384 or HS512"))?;
        if header.contains_key("nonce") {
            return Err(malformed("the external account binding must not carry a nonce"));
        }
        if text("url") != Some(url) {
            return Err(malformed("the external account binding's url is not the new-account URL"));
        }
        let key_id = EabKeyId::parse(text("kid").unwrap_or_default())
            .map_err(|_| AcmeProblem::new(ProblemKind::Unauthorized, "unknown external account binding key"))?;
        let payload: Value = serde_json::from_slice(&b64("binding payload", payload_b64)?)
            .map_err(|_| malformed("the external account binding's payload is not a JWK"))?;
        if &Jwk::from_json(&payload)? != account_key {
            return Err(malformed("the external account binding is for a different account key"));
        }
        Ok(Self {
            key_id,
            alg,
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            tag: b64("binding signature", signature_b64)?,
        })
    }

    /// The EAB key the binding names.
    pub fn key_id(&self) -> &EabKeyId {
        &self.key_id
    }

    /// Whether the MAC verifies under `key` (constant-time comparison).
    pub fn verify(&self, key: &EabHmacKey) -> bool {
        key.verify(self.alg, &self.signing_input, &self.tag)
    }
}

/// ACME clients for tests: account keys that sign requests the way certbot does.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;

    use super::*;

    /// A client key that signs ACME requests the way certbot does.
    pub enum ClientKey {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
    }

    impl ClientKey {
        pub fn p256() -> Self {
            let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            Self::Ec(EcdsaKeyPair::generate(alg).unwrap())
        }

        pub fn rsa() -> Self {
            Self::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
        }

        pub fn jwk(&self) -> Value {
            match self {
                Self::Rsa(k) => json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(k.public_key().modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(k.public_key().exponent().big_endian_without_leading_zero()),
                }),
                Self::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({
                        "kty": "EC", "crv": "P-256",
                        "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
                    })
                }
            }
        }

        fn alg(&self) -> &'static str {
            match self {
                Self::Rsa(_) => "RS256",
                Self::Ec(_) => "ES256",
            }
        }

        fn sign(&self, input: &[u8]) -> Vec<u8> {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            match self {
                Self::Rsa(k) => {
                    let mut sig = vec![0; k.public_modulus_len()];
                    k.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input, &mut sig).unwrap();
                    sig
                }
                Self::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            }
        }

        /// A flattened JWS with `jwk` (kid = None) or `kid`.
        pub fn request(&self, url: &str, nonce: &str, kid: Option<&str>, payload: &[u8]) -> Vec<u8> {
            let mut header = json!({ "alg": self.alg(), "nonce": nonce, "url": url });
            match kid {
                Some(kid) => header["kid"] = json!(kid),
                None => header["jwk"] = self.jwk(),
            }
            let protected = URL_SAFE_NO_PAD.encode(header.to_string());
            let payload = URL_SAFE_NO_PAD.encode(payload);
            let sig = self.sign(format!("{protected}.{payload}").as_bytes());
            json!({ "protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(sig) })
                .to_string()
                .into_bytes()
        }
    }

    /// The inner EAB JWS for `account`'s key, MACed with `hmac`.
    pub fn eab(kid: &str, hmac: &[u8], url: &str, account: &ClientKey) -> Value {
        let protected = URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "kid": kid, "url": url }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(account.jwk().to_string());
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac);
        let tag = aws_lc_rs::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        json!({ "protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(tag.as_ref()) })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use aws_lc_rs::signature::KeyPair;
    use serde_json::json;

    use super::*;

    fn tamper(body: &[u8], field: &str) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(body).unwrap();
        let s = v[field].as_str().unwrap().to_owned();
        let mut bytes = URL_SAFE_NO_PAD.decode(&s).unwrap();
        bytes[0] ^= 1;
        v[field] = json!(URL_SAFE_NO_PAD.encode(bytes));
        v.to_string().into_bytes()
    }

    const URL: &str = "http://127.0.0.1:1/acme/new-account";

    #[test]
    fn rs256_and_es256_verify_and_a_changed_byte_does_not() {
        for key in [ClientKey::rsa(), ClientKey::p256()] {
            let body = key.request(URL, "n1", None, b"{}");
            let jws = Jws::parse(&body).unwrap();
            let KeyRef::Jwk(jwk) = &jws.key else { panic!("jwk request") };
            jws.verify(jwk).unwrap();
            assert_eq!((jws.url.as_str(), jws.nonce.as_str()), (URL, "n1"));
            for field in ["signature", "payload"] {
                let bad = Jws::parse(&tamper(&body, field)).unwrap();
                let err = bad.verify(jwk).unwrap_err();
                assert_eq!(err.kind, ProblemKind::Malformed, "{field}: {err:?}");
            }
            // Another key's signature does not verify under this key.
            let other = ClientKey::p256();
            let theirs = Jws::parse(&other.request(URL, "n1", Some("k"), b"{}")).unwrap();
            assert!(theirs.verify(jwk).is_err());
        }
    }

    /// Requests signed by josepy (certbot's JOSE library), kept as the fuzz seed corpus.
    #[test]
    fn josepy_requests_and_bindings_verify() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/acme_jws");
        let hmac = EabHmacKey::from_bytes(vec![7; 32]).unwrap();
        for alg in ["es256", "es384", "rs256"] {
            let body = std::fs::read(dir.join(format!("new-account-{alg}.json"))).unwrap();
            let jws = Jws::parse(&body).unwrap();
            let KeyRef::Jwk(key) = &jws.key else { panic!("{alg}: a new account carries its jwk") };
            assert_eq!(jws.verify(key), Ok(()), "{alg}");
            let payload = jws.payload_object().unwrap();
            let binding = ExternalBinding::parse(&payload["externalAccountBinding"], &jws.url, key).unwrap();
            assert!(binding.verify(&hmac), "{alg}");
            assert!(!binding.verify(&EabHmacKey::from_bytes(vec![8; 32]).unwrap()), "{alg}");
        }
        let tampered = Jws::parse(&std::fs::read(dir.join("bad-signature.json")).unwrap()).unwrap();
        let KeyRef::Jwk(key) = &tampered.key else { panic!() };
        assert!(tampered.verify(key).is_err());
    }

    #[test]
    fn algorithms_must_fit_the_key() {
        let ec = ClientKey::p256();
        let body = ec.request(URL, "n", None, b"{}");
        let jws = Jws::parse(&body).unwrap();
        let KeyRef::Jwk(jwk) = &jws.key else { panic!() };
        assert_eq!(jwk.verify("RS256", b"x", b"y").unwrap_err().kind, ProblemKind::BadSignatureAlgorithm);
        assert_eq!(jwk.verify("none", b"x", b"").unwrap_err().kind, ProblemKind::BadSignatureAlgorithm);
        assert_eq!(jwk.verify("HS256", b"x", b"").unwrap_err().kind, ProblemKind::BadSignatureAlgorithm);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let key = ClientKey::p256();
        let good: Value = serde_json::from_slice(&key.request(URL, "n", None, b"{}")).unwrap();
        let mut with_header = good.clone();
        with_header["header"] = json!({ "alg": "none" });
        assert!(Jws::parse(with_header.to_string().as_bytes()).is_err(), "unprotected header");
        assert!(Jws::parse(b"not json").is_err());
        let both = json!({ "alg": "ES256", "nonce": "n", "url": URL, "kid": "k", "jwk": key.jwk() });
        let body = json!({ "protected": URL_SAFE_NO_PAD.encode(both.to_string()), "payload": "", "signature": "" });
        assert!(Jws::parse(body.to_string().as_bytes()).is_err(), "jwk and kid together");
        let no_nonce = json!({ "alg": "ES256", "url": URL, "kid": "k" });
        let body = json!({ "protected": URL_SAFE_NO_PAD.encode(no_nonce.to_string()), "payload": "", "signature": "" });
        assert_eq!(Jws::parse(body.to_string().as_bytes()).unwrap_err().kind, ProblemKind::BadNonce);
        let small = json!({ "kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc5; 128]), "e": "AQAB" });
        assert_eq!(Jwk::from_json(&small).unwrap_err().kind, ProblemKind::BadPublicKey, "RSA-1024");
        let off_curve = json!({ "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1; 32]), "y": URL_SAFE_NO_PAD.encode([2; 32]) });
        assert_eq!(Jwk::from_json(&off_curve).unwrap_err().kind, ProblemKind::BadPublicKey);
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        });
        let key = Jwk::from_json(&jwk).unwrap();
        assert_eq!(key.thumbprint().as_str(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn certificate_keys_map_to_jwks() {
        let key = ClientKey::p256();
        let ClientKey::Ec(pair) = &key else { panic!() };
        let der = rcgen_free_spki(pair.public_key().as_ref());
        assert_eq!(Jwk::from_spki(&der), Some(Jwk::from_json(&key.jwk()).unwrap()));
        assert_eq!(Jwk::from_spki(b"junk"), None);
    }

    /// A P-256 SubjectPublicKeyInfo around an uncompressed point.
    fn rcgen_free_spki(point: &[u8]) -> Vec<u8> {
        let prefix = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        [prefix, point.to_vec()].concat()
    }

    #[test]
    fn external_account_binding_is_checked_against_the_request() {
        let account = ClientKey::p256();
        let jwk = Jwk::from_json(&account.jwk()).unwrap();
        let secret = EabHmacKey::generate();
        let kid = EabKeyId::generate();
        let binding = eab(kid.as_str(), secret.as_bytes(), URL, &account);
        let parsed = ExternalBinding::parse(&binding, URL, &jwk).unwrap();
        assert_eq!(parsed.key_id(), &kid);
        assert!(parsed.verify(&secret));
        assert!(!parsed.verify(&EabHmacKey::generate()), "another organization's key");
        let wrong_url = ExternalBinding::parse(&binding, "http://127.0.0.1:1/acme/new-order", &jwk).unwrap_err();
        assert_eq!(wrong_url.kind, ProblemKind::Malformed);
        let other = Jwk::from_json(&ClientKey::p256().jwk()).unwrap();
        assert!(ExternalBinding::parse(&binding, URL, &other).is_err(), "binding made for another key");
        let tampered: Value = serde_json::from_slice(&tamper(binding.to_string().as_bytes(), "signature")).unwrap();
        assert!(!ExternalBinding::parse(&tampered, URL, &jwk).unwrap().verify(&secret));
    }
}
