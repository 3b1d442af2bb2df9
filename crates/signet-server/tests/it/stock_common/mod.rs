//! A token in the RA's stock for the server suites, as `signet admin token provision` records
//! it after reading it off the token. Its shipment key is a software P-256 key here: the store
//! keeps only the public half, so no PKCS#11 is needed.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use signet_authority::stock::{self, Provisioned, TransportPins};
use signet_ra::token_stock::StockState;
use signet_server::AppState;

/// Puts a token with `serial` in the stock; returns its shipment key.
pub async fn in_stock(state: &AppState, serial: &str) -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo of an uncompressed P-256 point: the fixed id-ecPublicKey/prime256v1
    // header, then the point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(key.public_key().as_ref());
    let provisioned = Provisioned {
        serial: serial.into(),
        model: "SoftHSM v2".into(),
        manufacturer: "SoftHSM project".into(),
        shipment_key: spki,
        pins: TransportPins { user: "transport-user-pin".into(), so: "transport-so-pin".into() },
    };
    let t = stock::add(state, provisioned, "cli:ra").await.unwrap();
    assert_eq!(t.state, StockState::InStock);
    key
}
