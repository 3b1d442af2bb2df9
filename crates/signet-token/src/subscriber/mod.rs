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

mod objects;
mod pkcs10;
mod readiness;
mod session;

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

pub use objects::*;
pub use pkcs10::*;
pub use readiness::*;
pub use session::*;
