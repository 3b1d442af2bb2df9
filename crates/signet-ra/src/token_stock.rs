//! The RA's stock of hardware tokens, and the proof that a retrieval runs on the token that was
//! shipped. A token-type certificate promises a key born on the vetted person's token; the
//! promise holds only if the server can tell that token from any other.
//!
//! Before a token ships, the RA provisions it: random transport PINs (user and SO) and, on the
//! token, a never-extractable *shipment key* whose public half is recorded here with the
//! token's serial. Shipping binds one stock token to one application. At retrieval the server
//! hands the transport PINs (sealed at rest, opened only for this) to the proven applicant; the
//! client sets the subscriber's own PINs, generates the keys on the token, and signs a
//! single-use [`ShipmentChallenge`] bound to the CSR with the shipment key. Only the shipped
//! token can make that signature.
//!
//! A token's life is [`StockState`]: in stock → shipped (bound) → retrieved, or lost or
//! retired, by consuming transitions; a lost token's certificates are revoked by the caller.
//!
//! Not here: HTTP, SQL, PKCS#11 and the sealing key. The store implements [`TokenStockStore`].

use std::future::Future;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::application::{ApplicationId, Transition};
use crate::audit::{AuditAction, AuditEvent};
use crate::issuance::StoreError;
use crate::outbox::OutboxMessage;

/// How long a shipment challenge may be answered.
pub const CHALLENGE_LIFETIME: Duration = Duration::minutes(15);

/// A token's serial number as `C_GetTokenInfo` reports it, trimmed: 1 to 32 of letters,
/// digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenSerial(String);

impl TokenSerial {
    /// Checks a serial as typed or read from the token (surrounding spaces ignored).
    pub fn new(s: &str) -> Result<Self, StockRefused> {
        let s = s.trim();
        let ok = !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok { Ok(Self(s.to_owned())) } else { Err(StockRefused::BadSerial) }
    }

    /// The serial.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenSerial {
    type Error = StockRefused;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<TokenSerial> for String {
    fn from(s: TokenSerial) -> Self {
        s.0
    }
}

impl std::fmt::Display for TokenSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server delivered at retrieval, kept so a retrieval whose answer was lost is
/// delivered again rather than issued twice. The wrapped keys open only inside the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The identity certificate's serial (hex).
    pub identity_serial: String,
    /// The encryption certificate, when the type has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<DeliveredKey>,
}

/// An encryption certificate and its key as wrapped to the token's transport key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredKey {
    /// The encryption certificate's serial (hex).
    pub serial: String,
    /// The AES key wrapped to the transport key (base64).
    pub wrapped_key: String,
    /// The PKCS#8 key wrapped under it (base64).
    pub wrapped_private_key: String,
}

/// Where a stock token is in its life. Persisted by [`StockState::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockState {
    /// Provisioned, on the shelf.
    InStock,
    /// Shipped to the applicant of this application.
    Shipped(ApplicationId),
    /// The application's certificates were retrieved onto it.
    Retrieved(ApplicationId, Delivery),
    /// Reported lost or stolen; whatever was issued on it is revoked.
    Lost(Option<ApplicationId>),
    /// Taken out of service without being shipped.
    Retired,
}

impl StockState {
    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InStock => "in-stock",
            Self::Shipped(_) => "shipped",
            Self::Retrieved(..) => "retrieved",
            Self::Lost(_) => "lost",
            Self::Retired => "retired",
        }
    }

    /// The application the token serves, if it was ever shipped.
    pub fn application(&self) -> Option<&ApplicationId> {
        match self {
            Self::Shipped(a) | Self::Retrieved(a, _) | Self::Lost(Some(a)) => Some(a),
            _ => None,
        }
    }

    /// Words for a person reading the stock page.
    pub fn describe(&self) -> String {
        match self {
            Self::InStock => "in stock".to_owned(),
            Self::Shipped(a) => format!("shipped for application {a}"),
            Self::Retrieved(a, _) => format!("certificates of application {a} retrieved onto it"),
            Self::Lost(Some(a)) => format!("lost (was application {a}'s)"),
            Self::Lost(None) => "lost".to_owned(),
            Self::Retired => "retired".to_owned(),
        }
    }
}

/// A provisioned token the RA holds or has shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockToken {
    /// Serial number.
    pub serial: TokenSerial,
    /// Model (`C_GetTokenInfo`).
    pub model: String,
    /// Manufacturer (`C_GetTokenInfo`).
    pub manufacturer: String,
    /// The shipment key's SubjectPublicKeyInfo (DER, ECDSA P-256).
    pub shipment_key: Vec<u8>,
    /// The transport user and SO PINs, sealed (never in clear at rest).
    pub sealed_pins: Vec<u8>,
    /// When it was provisioned.
    pub provisioned_at: OffsetDateTime,
    /// Who provisioned it (audit actor form).
    pub provisioned_by: String,
    /// Where it is.
    pub state: StockState,
}

/// Why a stock operation was refused. Messages are for the RA operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StockRefused {
    /// The serial is empty, too long, or has characters a token serial does not.
    #[error("a token serial is 1 to 32 letters, digits or dashes, as printed on the token")]
    BadSerial,
    /// No token with this serial was provisioned.
    #[error("token {0} is not in the stock: provision it first (signet admin token provision)")]
    NotInStock(TokenSerial),
    /// The token cannot take this step from where it is.
    #[error("token {serial} is {state}, so it cannot be {action}")]
    Wrong {
        /// The token.
        serial: TokenSerial,
        /// Where it is, in words.
        state: String,
        /// What was asked.
        action: &'static str,
    },
}

impl StockToken {
    fn refuse(&self, action: &'static str) -> StockRefused {
        StockRefused::Wrong { serial: self.serial.clone(), state: self.state.describe(), action }
    }

    /// Binds the token to `application` as it ships; only a token in stock ships, and only once.
    pub fn ship(self, application: ApplicationId) -> Result<Self, StockRefused> {
        match self.state {
            StockState::InStock => Ok(Self { state: StockState::Shipped(application), ..self }),
            _ => Err(self.refuse("shipped")),
        }
    }

    /// Records the delivery onto the shipped token.
    pub fn retrieved(self, delivery: Delivery) -> Result<Self, StockRefused> {
        match self.state {
            StockState::Shipped(a) => Ok(Self { state: StockState::Retrieved(a, delivery), ..self }),
            _ => Err(self.refuse("retrieved onto")),
        }
    }

    /// Reports the token lost; the caller revokes what was issued on it.
    pub fn lose(self) -> Result<Self, StockRefused> {
        match self.state {
            StockState::InStock => Ok(Self { state: StockState::Lost(None), ..self }),
            StockState::Shipped(a) | StockState::Retrieved(a, _) => {
                Ok(Self { state: StockState::Lost(Some(a)), ..self })
            }
            _ => Err(self.refuse("reported lost")),
        }
    }

    /// Takes an unshipped token out of service.
    pub fn retire(self) -> Result<Self, StockRefused> {
        match self.state {
            StockState::InStock => Ok(Self { state: StockState::Retired, ..self }),
            _ => Err(self.refuse("retired")),
        }
    }

    /// The audit event of this token reaching its current state by `actor` at `at`.
    pub fn event(&self, actor: &str, at: OffsetDateTime) -> AuditEvent {
        let action = match self.state {
            StockState::InStock => AuditAction::TokenProvisioned,
            StockState::Shipped(_) => AuditAction::TokenShipped,
            StockState::Retrieved(..) => AuditAction::ApplicationRetrieved,
            StockState::Lost(_) => AuditAction::TokenLost,
            StockState::Retired => AuditAction::TokenRetired,
        };
        let mut details = json!({ "state": self.state.name(), "model": self.model, "manufacturer": self.manufacturer });
        if let Some(a) = self.state.application() {
            details["application"] = a.as_str().into();
        }
        AuditEvent::new(at, actor, action, format!("token:{}", self.serial), details)
    }

    /// Checks the shipment key's signature over `message` (ASN.1 ECDSA P-256 with SHA-256).
    pub fn signed_by_shipment_key(&self, message: &[u8], signature: &[u8]) -> bool {
        signet_pki::csr::verify_with_spki(&self.shipment_key, message, signature).is_ok()
    }
}

/// A single-use, short-lived nonce the shipment key signs together with the CSR, so a proof
/// cannot be replayed for another request or another time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentChallenge {
    /// 32 random bytes, hex.
    pub nonce: String,
    /// The application it was issued to.
    pub application: ApplicationId,
    /// The token it was issued for.
    pub serial: TokenSerial,
    /// After this it is refused.
    pub expires_at: OffsetDateTime,
}

impl ShipmentChallenge {
    /// A fresh challenge for `serial` shipped for `application`.
    pub fn issue(application: ApplicationId, serial: TokenSerial, now: OffsetDateTime) -> Self {
        let mut nonce = [0u8; 32];
        SystemRandom::new().fill(&mut nonce).expect("the system random generator works");
        Self { nonce: hex::encode(nonce), application, serial, expires_at: now + CHALLENGE_LIFETIME }
    }

    /// What the shipment key signs for a request carrying `csr`.
    pub fn message(&self, csr: &[u8]) -> Vec<u8> {
        shipment_message(&self.nonce, &self.application, &self.serial, csr)
    }
}

/// `signet-shipment-proof-v1 ‖ 0 ‖ nonce ‖ 0 ‖ application ‖ 0 ‖ serial ‖ 0 ‖ SHA-256(csr)`: the
/// message the client signs with the shipment key (the client builds it from the challenge).
pub fn shipment_message(nonce: &str, application: &ApplicationId, serial: &TokenSerial, csr: &[u8]) -> Vec<u8> {
    let mut m = b"signet-shipment-proof-v1\0".to_vec();
    for part in [nonce.as_bytes(), application.as_str().as_bytes(), serial.as_str().as_bytes()] {
        m.extend_from_slice(part);
        m.push(0);
    }
    m.extend_from_slice(digest(&SHA256, csr).as_ref());
    m
}

/// `signet-renewal-shipment-v1 ‖ 0 ‖ serial ‖ 0 ‖ SHA-256(csr)`: the shipment key's statement
/// that the renewal's new key is on this token. No nonce: a replay carries the same CSR, whose
/// key is already certified and so refused.
pub fn renewal_message(serial: &TokenSerial, csr: &[u8]) -> Vec<u8> {
    let mut m = b"signet-renewal-shipment-v1\0".to_vec();
    m.extend_from_slice(serial.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(digest(&SHA256, csr).as_ref());
    m
}

/// The storage the token stock needs; `signet-store` implements it.
pub trait TokenStockStore {
    /// Adds a provisioned token ([`StoreError::Conflict`] if the serial is known).
    fn add_stock_token(&self, t: &StockToken, audit: AuditEvent)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The token with this serial.
    fn stock_token(&self, serial: &TokenSerial) -> impl Future<Output = Result<Option<StockToken>, StoreError>> + Send;

    /// The token shipped for `application` (shipped, retrieved or lost since).
    fn token_of(
        &self,
        application: &ApplicationId,
    ) -> impl Future<Output = Result<Option<StockToken>, StoreError>> + Send;

    /// Every token, newest first.
    fn stock(&self) -> impl Future<Output = Result<Vec<StockToken>, StoreError>> + Send;

    /// Moves `t` to its new state where it still is in `from` (a stock state name), with its
    /// audit event; [`StoreError::Conflict`] if it moved meanwhile.
    fn move_stock_token(
        &self,
        t: &StockToken,
        from: &'static str,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves an application's transition and moves `t` from `from`, in one transaction: the
    /// shipment binds the token as the application ships, and the retrieval records the
    /// delivery as it spends the activation code.
    fn save_transition_with_token(
        &self,
        transition: &Transition,
        outbox: &[OutboxMessage],
        t: &StockToken,
        from: &'static str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a challenge until it is taken or expires.
    fn save_challenge(&self, c: &ShipmentChallenge) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes (deletes) the challenge with this nonce, if any: each answers once. Expired ones
    /// are removed on the way.
    fn take_challenge(
        &self,
        nonce: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<ShipmentChallenge>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-04 09:00 UTC);

    fn token(key: &EcdsaKeyPair) -> StockToken {
        StockToken {
            serial: TokenSerial::new(" 0001a2b3 ").unwrap(),
            model: "SoftHSM v2".into(),
            manufacturer: "SoftHSM project".into(),
            shipment_key: p256_spki(key.public_key().as_ref()),
            sealed_pins: vec![1, 2, 3],
            provisioned_at: NOW,
            provisioned_by: "cli:ra".into(),
            state: StockState::InStock,
        }
    }

    /// SubjectPublicKeyInfo of an uncompressed P-256 point.
    fn p256_spki(point: &[u8]) -> Vec<u8> {
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(point);
        spki
    }

    fn key() -> EcdsaKeyPair {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn serials_are_checked_and_trimmed() {
        assert_eq!(TokenSerial::new(" 0001a2b3 ").unwrap().as_str(), "0001a2b3");
        for bad in ["", "   ", "a b", "x;y", &"9".repeat(33)] {
            assert_eq!(TokenSerial::new(bad), Err(StockRefused::BadSerial), "{bad:?}");
        }
    }

    #[test]
    fn a_token_ships_once_and_only_from_stock() {
        let app = ApplicationId::new("ABCDEFGHJKMN").unwrap();
        let other = ApplicationId::new("ABCDEFGHJKMP").unwrap();
        let k = key();
        let shipped = token(&k).ship(app.clone()).unwrap();
        assert_eq!(shipped.state.application(), Some(&app));
        let again = shipped.clone().ship(other).unwrap_err();
        assert!(again.to_string().contains("shipped for application ABCDEFGHJKMN"), "{again}");
        assert!(shipped.clone().retire().is_err(), "a shipped token is not retired");
        let delivery = Delivery { identity_serial: "01".into(), encryption: None };
        let retrieved = shipped.retrieved(delivery).unwrap();
        assert!(retrieved.clone().retrieved(Delivery { identity_serial: "02".into(), encryption: None }).is_err());
        let lost = retrieved.lose().unwrap();
        assert_eq!(lost.state, StockState::Lost(Some(app)));
        assert!(lost.clone().lose().is_err());
        assert!(lost.ship(ApplicationId::new("ABCDEFGHJKMQ").unwrap()).is_err(), "a lost token never ships");
        assert_eq!(token(&k).retire().unwrap().state, StockState::Retired);
    }

    #[test]
    fn only_the_shipment_key_signs_a_proof_for_this_request() {
        let app = ApplicationId::new("ABCDEFGHJKMN").unwrap();
        let k = key();
        let t = token(&k);
        let c = ShipmentChallenge::issue(app, t.serial.clone(), NOW);
        assert_eq!(c.expires_at, NOW + CHALLENGE_LIFETIME);
        let message = c.message(b"csr one");
        let sig = k.sign(&SystemRandom::new(), &message).unwrap();
        assert!(t.signed_by_shipment_key(&message, sig.as_ref()));
        assert!(!t.signed_by_shipment_key(&c.message(b"csr two"), sig.as_ref()), "bound to the CSR");
        let c2 = ShipmentChallenge::issue(c.application.clone(), t.serial.clone(), NOW);
        assert_ne!(c.nonce, c2.nonce);
        assert!(!t.signed_by_shipment_key(&c2.message(b"csr one"), sig.as_ref()), "bound to the challenge");
        let stranger = key();
        let forged = stranger.sign(&SystemRandom::new(), &message).unwrap();
        assert!(!t.signed_by_shipment_key(&message, forged.as_ref()), "another key's signature");
        let renewal = renewal_message(&t.serial, b"csr one");
        assert_ne!(renewal, message);
    }

    #[test]
    fn events_name_the_token_and_never_the_pins() {
        let k = key();
        let t = token(&k).ship(ApplicationId::new("ABCDEFGHJKMN").unwrap()).unwrap();
        let e = t.event("operator:bob", NOW);
        assert_eq!((e.action, e.subject.as_str()), (AuditAction::TokenShipped, "token:0001a2b3"));
        assert_eq!(e.details["application"], "ABCDEFGHJKMN");
        assert!(!e.details.to_string().contains("pins"));
    }
}
