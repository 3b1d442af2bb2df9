//! PKCS#11 for Signet.
//!
//! What it does: puts a key held on a PKCS#11 token (an HSM, a smart card, SoftHSM2)
//! behind [`signet_pki::Signer`], so the CA issues certificates, CRLs and OCSP responses
//! with an HSM-held key exactly as with a software one. [`Pkcs11Signer::generate`] makes a
//! non-extractable signing-only key pair on the token; [`Pkcs11Signer::open`] finds an
//! existing one by label. Either way the key signs a test message before it is handed out.
//!
//! For certificate retrieval ([`subscriber`]) it also works the applicant's own token:
//! a readiness report, initializing a blank token (user PIN and a random unlock code), an
//! identity key pair generated on the token, a PKCS#10 request signed by it, and writing the
//! issued certificate and its chain back under the key's `CKA_ID`.
//!
//! What it does not do: it never exports, imports, wraps or backs up keys; it initializes
//! only blank subscriber tokens (CA tokens: use the vendor's tool, or `softhsm2-util`);
//! it does not change or unblock PINs; and it knows nothing of CA policy,
//! which lives in `signet-pki`. Keys are RSA-2048/3072 (PKCS#1 v1.5, SHA-256) and ECDSA
//! P-256/P-384 only (DESIGN §2). It does not recover from a token being removed or reset
//! under a running signer: signatures then fail with [`TokenError::Device`], and the
//! signer must be opened again.

mod config;
mod encoding;
mod error;
mod signer;
pub mod subscriber;
mod token;

pub use config::Pkcs11KeyConfig;
pub use error::TokenError;
pub use signer::Pkcs11Signer;
