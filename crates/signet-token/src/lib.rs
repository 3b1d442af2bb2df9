//! PKCS#11 for Signet.
//!
//! What it does: puts a key held on a PKCS#11 token (an HSM, a smart card, SoftHSM2)
//! behind [`signet_pki::Signer`], so the CA issues certificates, CRLs and OCSP responses
//! with an HSM-held key exactly as with a software one. [`Pkcs11Signer::generate`] makes a
//! non-extractable signing-only key pair on the token; [`Pkcs11Signer::open`] finds an
//! existing one by label. Either way the key signs a test message before it is handed out.
//!
//! For the RA's token stock ([`stock`]) it provisions a blank token before it ships: random
//! transport PINs and a never-extractable P-256 shipment key, whose public key the RA records.
//!
//! For certificate retrieval ([`subscriber`]) it also works the applicant's own token:
//! a readiness report, initializing a blank token (user PIN and a random unlock code) or
//! taking over a shipped one (replacing the transport PINs by the subscriber's PIN and a new
//! unlock code), a signature by the shipment key that proves it is the shipped token, an
//! identity key pair generated on the token (in PIV slot 9a on a YubiKey, whose attestation
//! it reads), a PKCS#10 request signed by it, and writing the issued certificate and its chain
//! back under the key's `CKA_ID`. For the subscriber's care of the token it changes the PIN,
//! unblocks it with the unlock code, and lists the certificates on the token.
//!
//! For key escrow it takes a server-generated encryption key onto the subscriber's token,
//! wrapped for a transport key made there
//! ([`subscriber::TokenSession::install_encryption_key`]), and holds the key recovery key that
//! opens escrows on an HSM ([`Pkcs11RecoveryKey`]).
//!
//! What it does not do: it never exports, wraps or backs up keys, and imports only that
//! escrowed encryption key (DESIGN §2: signing keys are never escrowed); it initializes
//! only blank tokens (CA tokens: use the vendor's tool, or `softhsm2-util`); it changes and
//! unblocks only subscriber PINs, never a CA token's; it keeps no PIN or unlock code (the
//! RA stores the transport PINs it is handed); and it knows nothing of CA policy,
//! which lives in `signet-pki`. Keys are RSA-2048/3072 (PKCS#1 v1.5 signatures with SHA-256;
//! OAEP with SHA-1 for escrow) and ECDSA P-256/P-384 only (DESIGN §2). It does not recover from a token being removed or reset
//! under a running signer: signatures then fail with [`TokenError::Device`], and the
//! signer must be opened again.

mod config;
mod encoding;
mod error;
mod recovery;
mod signer;
pub mod stock;
pub mod subscriber;
mod token;

pub use config::Pkcs11KeyConfig;
pub use error::TokenError;
pub use recovery::Pkcs11RecoveryKey;
pub use signer::Pkcs11Signer;
