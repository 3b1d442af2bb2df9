//! The RA's token stock as the console and `signet admin token` work it: adding a provisioned
//! token (its transport PINs sealed under the CA folder's sealing key), shipping one bound to
//! an application, and reporting one lost — which revokes whatever was issued for that
//! application, since its keys are on the token.

use serde::{Deserialize, Serialize};
use signet_pki::RevocationReason;
use signet_pki::profile::SubjectKind;
use signet_ra::application::{Actor, ApplicationId, ApplicationStore, Command};
use signet_ra::issuance::StoreError;
use signet_ra::token_stock::{StockRefused, StockState, StockToken, TokenSerial, TokenStockStore};

use crate::core::{CommandFailure, Core};

/// Why a stock operation did not take effect. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StockError {
    /// The stock refused: unknown serial, or the token is not where the step needs it.
    #[error(transparent)]
    Refused(#[from] StockRefused),
    /// A token with this serial is already in the stock.
    #[error("a token with serial {0} is already in the stock")]
    Duplicate(TokenSerial),
    /// The token or the application changed meanwhile.
    #[error("the token or the application changed meanwhile; look again and retry")]
    Changed,
    /// The transport PINs could not be sealed or opened (wrong or damaged sealing key).
    #[error("the transport PINs of token {0} cannot be opened with this CA folder's sealing.key")]
    Sealing(TokenSerial),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for StockError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::Changed,
            other => Self::Store(other),
        }
    }
}

/// A stock token's transport PINs, as sealed at rest and handed to its retrieval.
#[derive(Serialize, Deserialize)]
pub struct TransportPins {
    /// The user PIN set at provisioning.
    pub user: String,
    /// The SO PIN set at provisioning.
    pub so: String,
}

impl std::fmt::Debug for TransportPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportPins(..)")
    }
}

/// Binds the sealed PINs to their token, so PINs copied onto another row do not open.
fn context(serial: &TokenSerial) -> Vec<u8> {
    format!("signet transport pins\0{serial}").into_bytes()
}

impl TransportPins {
    /// The PINs of `t`, opened.
    pub fn open(state: &Core, t: &StockToken) -> Result<Self, StockError> {
        let plain = state
            .sealing
            .open(&t.sealed_pins, &context(&t.serial))
            .map_err(|_| StockError::Sealing(t.serial.clone()))?;
        serde_json::from_slice(&plain).map_err(|_| StockError::Sealing(t.serial.clone()))
    }
}

/// What `signet admin token provision` read off a freshly provisioned token.
#[derive(Debug)]
pub struct Provisioned {
    /// `C_GetTokenInfo` serial.
    pub serial: String,
    /// Model.
    pub model: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// The shipment key's SubjectPublicKeyInfo (DER).
    pub shipment_key: Vec<u8>,
    /// The transport PINs set on it.
    pub pins: TransportPins,
}

/// Adds a provisioned token to the stock, its PINs sealed (audited as `token-provisioned`).
pub async fn add(state: &Core, p: Provisioned, actor: &str) -> Result<StockToken, StockError> {
    let serial = TokenSerial::new(&p.serial)?;
    let plain = serde_json::to_vec(&p.pins).expect("PINs serialize");
    let sealed_pins = state.sealing.seal(&plain, &context(&serial)).map_err(|_| StockError::Sealing(serial.clone()))?;
    let now = state.clock.now();
    let t = StockToken {
        serial: serial.clone(),
        model: p.model,
        manufacturer: p.manufacturer,
        shipment_key: p.shipment_key,
        sealed_pins,
        provisioned_at: now,
        provisioned_by: actor.to_owned(),
        state: StockState::InStock,
    };
    match state.store.add_stock_token(&t, t.event(actor, now)).await {
        Ok(()) => Ok(t),
        Err(StoreError::Conflict(_)) => Err(StockError::Duplicate(serial)),
        Err(e) => Err(e.into()),
    }
}

/// The stock token with `serial`, or why there is none.
pub async fn find(state: &Core, serial: &TokenSerial) -> Result<StockToken, StockError> {
    state.store.stock_token(serial).await?.ok_or_else(|| StockRefused::NotInStock(serial.clone()).into())
}

/// Records the shipment of application `id` with the stock token `serial`, bound to it in the
/// same transaction as the application's `ShipToken` step.
pub async fn ship(
    state: &Core,
    id: &ApplicationId,
    actor: &Actor,
    command: Command,
    serial: &TokenSerial,
) -> Result<(), ShipFailure> {
    let token = find(state, serial).await.map_err(ShipFailure::Stock)?;
    let app = state.store.load(id).await.map_err(|e| ShipFailure::Command(e.into()))?;
    let app = app.ok_or(ShipFailure::Command(CommandFailure::NotFound))?;
    let mut transition = app
        .apply(actor, command, state.clock.now(), &state.deadlines)
        .map_err(|e| ShipFailure::Command(CommandFailure::Refused(e)))?;
    let shipped = token.ship(id.clone()).map_err(|e| ShipFailure::Stock(e.into()))?;
    transition.audit.details["token_serial"] = serial.as_str().into();
    let outbox = state.notifier.outbox_for(&transition);
    match state.store.save_transition_with_token(&transition, &outbox, &shipped, StockState::InStock.name()).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ShipFailure::Command(CommandFailure::Changed)),
        Err(e) => Err(ShipFailure::Command(e.into())),
    }
}

/// Why a shipment was not recorded.
#[derive(Debug)]
pub enum ShipFailure {
    /// The application refused or failed.
    Command(CommandFailure),
    /// The token cannot ship.
    Stock(StockError),
}

/// Reports the token lost and revokes (keyCompromise) every person certificate of the
/// application it was shipped for (device certificates made in the CMC are not on a token);
/// returns the token and the serials revoked. The certificates are revoked
/// before the token is marked lost, so a failure part way is finished by asking again.
pub async fn report_lost(
    state: &Core,
    serial: &TokenSerial,
    actor: &str,
) -> Result<(StockToken, Vec<String>), StockError> {
    let token = find(state, serial).await?;
    let from = token.state.name();
    let lost = token.lose()?;
    let mut revoked = Vec::new();
    if let Some(app) = lost.state.application() {
        for c in state.store.account_certificates(app).await? {
            if matches!(c.status, signet_ra::issuance::StoredStatus::Revoked { .. }) {
                continue;
            }
            // Device certificates made in the CMC certify keys on the organization's servers,
            // not on the token: losing the token compromises only the person's own keys.
            if state.catalog.profile(&c.profile).is_some_and(|p| p.subject == SubjectKind::Device) {
                continue;
            }
            state.revoke(actor, &c.serial, RevocationReason::KeyCompromise).await.map_err(|e| match e {
                signet_ra::issuance::RevocationError::Store(s) => StockError::from(s),
                other => StockError::Store(StoreError::Backend(other.to_string())),
            })?;
            revoked.push(c.serial.to_hex());
        }
    }
    state.store.move_stock_token(&lost, from, lost.event(actor, state.clock.now())).await?;
    tracing::info!(token = %lost.serial, revoked = revoked.len(), "token reported lost");
    Ok((lost, revoked))
}

/// Takes an unshipped token out of service.
pub async fn retire(state: &Core, serial: &TokenSerial, actor: &str) -> Result<StockToken, StockError> {
    let token = find(state, serial).await?;
    let retired = token.retire()?;
    state.store.move_stock_token(&retired, StockState::InStock.name(), retired.event(actor, state.clock.now())).await?;
    Ok(retired)
}
