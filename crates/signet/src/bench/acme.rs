//! ACME finalize as a client sends it: an account's orders made ready beforehand, then each
//! request `POST /acme/order/<id>/finalize`, a JWS (ES256) signed by the account key over
//! the nonce the connection's last answer gave. The orders are made ready through the store,
//! the bench standing in for their challenges' validation, which needs a name the server can
//! reach; finalize itself runs exactly as it does for certbot.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;
use signet_pki::subject::OrganizationName;
use signet_ra::acme::{Account, AcmeStore, DomainScope, EabKey, NewOrder, Respond};
use signet_ra::jws::Jwk;
use signet_store::Store;
use time::OffsetDateTime;

use super::BoxError;
use super::messages::p256_csr;

// The domain the bench's account may order names under.
const DOMAIN: &str = "bench.example";
// Orders made ready at once: their writes queue on the store rather than one after another.
const SETUP_CONCURRENCY: usize = 16;

/// An ACME account's key and its URL (the JWS `kid`).
pub(super) struct AcmeAccount {
    key: EcdsaKeyPair,
    kid: String,
}

/// A ready order: where to finalize it, and the finalize payload with a CSR for its one name.
pub(super) struct ReadyOrder {
    path: String,
    payload: Vec<u8>,
}

impl AcmeAccount {
    /// The JWS body of `POST path` with `payload`, signed over `nonce`, for the server at
    /// `base_url`.
    fn signed(&self, base_url: &str, order: &ReadyOrder, nonce: &str) -> Result<Vec<u8>, String> {
        let url = format!("{base_url}{}", order.path);
        let protected = json!({ "alg": "ES256", "kid": self.kid, "nonce": nonce, "url": url });
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let payload = URL_SAFE_NO_PAD.encode(&order.payload);
        let signature = self
            .key
            .sign(&SystemRandom::new(), format!("{protected}.{payload}").as_bytes())
            .map_err(|_| "signing the JWS failed")?;
        let body = json!({
            "protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }
}

/// What one finalize request needs: the account, its ready orders and the server's URL.
pub(super) struct Finalize {
    account: AcmeAccount,
    base_url: String,
    orders: Vec<ReadyOrder>,
}

impl Finalize {
    /// The `i`th order's finalize request: its path and JWS body.
    pub(super) fn request(&self, i: usize, nonce: &str) -> Result<(&str, Bytes), String> {
        let order = self.orders.get(i).ok_or_else(|| format!("all {} ready orders are used up", self.orders.len()))?;
        Ok((&order.path, Bytes::from(self.account.signed(&self.base_url, order, nonce)?)))
    }
}

/// An account as `new-account` with an EAB key makes one, and `count` orders of one name each,
/// their authorizations valid, in `store`; the requests go to the server at `base_url`.
pub(super) async fn ready_orders(store: &Store, base_url: &str, count: usize) -> Result<Finalize, BoxError> {
    let now = OffsetDateTime::now_utc();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "making the account key failed")?;
    let point = key.public_key().as_ref();
    let jwk = Jwk::from_json(&json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }))
    .map_err(|e| format!("the account key's JWK: {}", e.detail))?;
    let eab = EabKey::generate(OrganizationName::new("Signet Benchmarks")?, DomainScope::parse(DOMAIN)?, now);
    store.create_eab_key(&eab, eab.created_event(super::ACTOR)).await?;
    let (account, _) = Account::register(jwk.canonical_json(), jwk.thumbprint(), eab, Vec::new(), now)?;
    store.create_account(&account, account.created_event()).await?;
    // Names unique per run: a scratch database keeps earlier runs' orders.
    let mut run = [0u8; 4];
    SystemRandom::new().fill(&mut run).map_err(|_| "the random generator failed")?;
    let run = hex::encode(run);
    let orders = futures_util::stream::iter(0..count)
        .map(|i| ready_order(store, &account, format!("o{i}-{run}.{DOMAIN}"), now))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let kid = format!("{base_url}/acme/account/{}", account.id);
    Ok(Finalize { account: AcmeAccount { key, kid }, base_url: base_url.to_owned(), orders })
}

/// One order for `name`, stored with its authorization validated as a challenge would.
async fn ready_order(
    store: &Store,
    account: &Account,
    name: String,
    now: OffsetDateTime,
) -> Result<ReadyOrder, BoxError> {
    let new = NewOrder::new(account, [("dns", name.as_str())], now)?;
    store.create_order(&new, new.created_event(account)).await?;
    for authorization in new.authorizations {
        let challenge = authorization.challenges.first().ok_or("an authorization without challenges")?.id.clone();
        let Respond::Validate(validation) = authorization.respond(&challenge, &account.thumbprint, now) else {
            return Err(format!("the new authorization for {name} is not pending").into());
        };
        let (valid, challenge, event) = validation.conclude(Ok(()), account, now);
        store.record_validation(&valid, &challenge, event).await?;
    }
    let csr = p256_csr(&name)?;
    Ok(ReadyOrder {
        path: format!("/acme/order/{}/finalize", new.order.id),
        payload: json!({ "csr": URL_SAFE_NO_PAD.encode(csr) }).to_string().into_bytes(),
    })
}
