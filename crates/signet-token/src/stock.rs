//! The RA's side of token stock: provisioning a blank token before it ships.
//!
//! [`provision`] initializes a blank token with random transport PINs (user and SO) and
//! generates on it a never-extractable P-256 *shipment key*. The RA records the token's serial,
//! model and manufacturer, the shipment public key and the transport PINs; at retrieval the
//! subscriber's client logs in with the transport PINs, replaces them with the subscriber's own
//! ([`crate::subscriber::SubscriberToken::personalize`]) and signs the server's challenge with
//! the shipment key ([`crate::subscriber::TokenSession::shipment_sign`]), which proves the keys
//! it generated are on the very token that was shipped.

use std::fmt;
use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use signet_pki::KeyAlgorithm;
use signet_pki::signer::verify_signature;

use crate::error::{TokenError, device};
use crate::signer::{KeyUsage, discard, ecdsa_p256_sign, generate_key_pair};
use crate::subscriber::SubscriberToken;

/// The `CKA_LABEL` of the shipment key pair.
pub const SHIPMENT_KEY_LABEL: &str = "signet shipment key";

/// How long transport PINs are, within the token's limits: 16 alphanumerics are 95 bits.
const TRANSPORT_PIN_LENGTH: usize = 16;

/// What the shipment key signs right after it is made, to prove the pair works.
const SELF_TEST_MESSAGE: &[u8] = b"signet shipment key self-test";

/// A transport PIN (user or SO) set on a token before it ships, replaced by the subscriber's own
/// at retrieval. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportPin(String);

impl TransportPin {
    /// Wraps a PIN (as read back from the RA's records).
    pub fn new(pin: String) -> Self {
        Self(pin)
    }

    /// The PIN, to store encrypted or to hand to the one retrieval that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Random letters and digits, `len` clamped to the token's PIN lengths.
    fn generate(len: usize, (min, max): (usize, usize)) -> Result<Self, TokenError> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let len = len.clamp(min, max.max(min));
        let rng = SystemRandom::new();
        let mut pin = String::with_capacity(len);
        let mut byte = [0u8; 1];
        while pin.len() < len {
            rng.fill(&mut byte).map_err(|_| TokenError::Device("no randomness for a transport PIN".into()))?;
            // 248 is the largest multiple of 62 in a byte: rejecting above it keeps the choice uniform.
            if byte[0] < 248 {
                pin.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
            }
        }
        Ok(Self(pin))
    }
}

impl fmt::Debug for TransportPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportPin(<redacted>)")
    }
}

/// A token just provisioned for stock: what the RA records about it.
#[derive(Debug, Clone)]
pub struct ProvisionedToken {
    /// Serial number from `C_GetTokenInfo`, trimmed.
    pub serial: String,
    /// Model from `C_GetTokenInfo`, trimmed.
    pub model: String,
    /// Manufacturer from `C_GetTokenInfo`, trimmed.
    pub manufacturer: String,
    /// The shipment public key, a DER SubjectPublicKeyInfo (P-256).
    pub shipment_key: Vec<u8>,
    /// The transport user PIN.
    pub user_pin: TransportPin,
    /// The transport SO PIN.
    pub so_pin: TransportPin,
}

/// Provisions the blank token in `slot` (or the only token inserted) of `module` for stock:
/// initializes it labelled `label` with a random transport SO PIN, sets a random transport user
/// PIN, and generates on it the shipment key (P-256, `CKA_TOKEN`, private, sensitive, never
/// extractable, sign-only, labelled [`SHIPMENT_KEY_LABEL`]), which signs a self-test.
///
/// Refuses a token that is not blank ([`TokenError::StockNotBlank`]): `C_InitToken` would erase
/// it, and a used token could carry keys from before. If a step after `C_InitToken` fails, the
/// token is left initialized and must be reset before it is provisioned again.
pub fn provision(module: &Path, slot: Option<u64>, label: &str) -> Result<ProvisionedToken, TokenError> {
    let token = SubscriberToken::find(module, slot)?;
    if token.is_initialized() {
        return Err(TokenError::StockNotBlank { serial: token.serial().to_owned(), label: token.label().to_owned() });
    }
    let pin_length = token.pin_length();
    let so_pin = TransportPin::generate(TRANSPORT_PIN_LENGTH, pin_length)?;
    let user_pin = TransportPin::generate(TRANSPORT_PIN_LENGTH, pin_length)?;
    let (pkcs11, slot) = (token.pkcs11(), token.slot());

    pkcs11.init_token(slot, &AuthPin::from(so_pin.expose()), label).map_err(device)?;
    let session = pkcs11.open_rw_session(slot).map_err(device)?;
    session.login(UserType::So, Some(&AuthPin::from(so_pin.expose()))).map_err(device)?;
    session.init_pin(&AuthPin::from(user_pin.expose())).map_err(device)?;
    session.logout().map_err(device)?;
    session.login(UserType::User, Some(&AuthPin::from(user_pin.expose()))).map_err(device)?;
    let pair = generate_key_pair(&session, KeyAlgorithm::P256, KeyUsage::Sign, true, SHIPMENT_KEY_LABEL)?;
    let works = ecdsa_p256_sign(&session, pair.private, SELF_TEST_MESSAGE).and_then(|signature| {
        if verify_signature(KeyAlgorithm::P256, &pair.spki, SELF_TEST_MESSAGE, &signature) {
            Ok(())
        } else {
            Err(TokenError::SelfTest { key: SHIPMENT_KEY_LABEL.to_owned() })
        }
    });
    if let Err(e) = works {
        discard(&session, [pair.private, pair.public]);
        return Err(e);
    }
    session.logout().map_err(device)?;

    let info = pkcs11.get_token_info(slot).map_err(device)?;
    Ok(ProvisionedToken {
        serial: info.serial_number().trim().to_owned(),
        model: info.model().trim().to_owned(),
        manufacturer: info.manufacturer_id().trim().to_owned(),
        shipment_key: pair.spki,
        user_pin,
        so_pin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_pins_are_alphanumerics_within_the_tokens_limits() {
        let pin = TransportPin::generate(16, (4, 255)).unwrap();
        assert_eq!(pin.expose().len(), 16);
        assert!(pin.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(TransportPin::generate(16, (6, 8)).unwrap().expose().len(), 8);
        assert_ne!(pin, TransportPin::generate(16, (4, 255)).unwrap());
        assert_eq!(format!("{pin:?}"), "TransportPin(<redacted>)");
    }
}
