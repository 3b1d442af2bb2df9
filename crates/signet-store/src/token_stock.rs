//! The RA's token stock (signet_ra::token_stock) on sqlx: one row per token, its state a
//! closed name under a CHECK, the delivery of a retrieval as JSON; challenges until taken.

use signet_ra::application::{ApplicationId, Transition};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::notify::OutboxMessage;
use signet_ra::token_stock::{Delivery, ShipmentChallenge, StockState, StockToken, TokenSerial, TokenStockStore};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::applications::{TransitionWrite, corrupt, ts};
use crate::{Store, backend_error, unique_or};

const COLUMNS: &str = "serial, model, manufacturer, shipment_key, sealed_pins, provisioned_at, provisioned_by, \
                       state, application, delivery";

fn stock_token(row: &AnyRow) -> Result<StockToken, StoreError> {
    let get_text = |i: usize| row.try_get::<String, _>(i).map_err(backend_error);
    let application: Option<String> = row.try_get(8).map_err(backend_error)?;
    let application =
        application.map(|a| ApplicationId::new(&a).map_err(|e| corrupt("token application", e))).transpose()?;
    let delivery: Option<String> = row.try_get(9).map_err(backend_error)?;
    let state = match (get_text(7)?.as_str(), application, delivery) {
        ("in-stock", None, None) => StockState::InStock,
        ("shipped", Some(a), None) => StockState::Shipped(a),
        ("retrieved", Some(a), Some(d)) => {
            let d: Delivery = serde_json::from_str(&d).map_err(|e| corrupt("token delivery", e))?;
            StockState::Retrieved(a, d)
        }
        ("lost", a, None) => StockState::Lost(a),
        ("retired", None, None) => StockState::Retired,
        (other, ..) => return Err(corrupt("token state", other)),
    };
    Ok(StockToken {
        serial: TokenSerial::new(&get_text(0)?).map_err(|e| corrupt("token serial", e))?,
        model: get_text(1)?,
        manufacturer: get_text(2)?,
        shipment_key: row.try_get(3).map_err(backend_error)?,
        sealed_pins: row.try_get(4).map_err(backend_error)?,
        provisioned_at: ts(row.try_get(5).map_err(backend_error)?)?,
        provisioned_by: get_text(6)?,
        state,
    })
}

/// What the row stores of a state: (name, application, delivery JSON).
fn stored(state: &StockState) -> (&'static str, Option<String>, Option<String>) {
    let delivery = match state {
        StockState::Retrieved(_, d) => Some(serde_json::to_string(d).expect("a delivery serializes")),
        _ => None,
    };
    (state.name(), state.application().map(|a| a.as_str().to_owned()), delivery)
}

/// Moves the row of `t` to its state where it still is in `from`, as of `at`.
async fn move_row(c: &mut AnyConnection, t: StockToken, from: &'static str, at: i64) -> Result<(), StoreError> {
    let (state, application, delivery) = stored(&t.state);
    let done = sqlx::query(
        "UPDATE stock_tokens SET state = $1, application = $2, delivery = $3, updated_at = $4 \
         WHERE serial = $5 AND state = $6",
    )
    .bind(state)
    .bind(application)
    .bind(delivery)
    .bind(at)
    .bind(t.serial.as_str().to_owned())
    .bind(from)
    .execute(&mut *c)
    .await
    .map_err(|e| unique_or(e, "token of this application"))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict("token state"));
    }
    Ok(())
}

impl Store {
    /// The token whose `column` (a unique one) is `value`.
    async fn one_token(&self, column: &'static str, value: &str) -> Result<Option<StockToken>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM stock_tokens WHERE {column} = $1")))
            .bind(value.to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?
            .as_ref()
            .map(stock_token)
            .transpose()
    }
}

impl TokenStockStore for Store {
    async fn add_stock_token(&self, t: &StockToken, audit: AuditEvent) -> Result<(), StoreError> {
        let t = t.clone();
        let (state, application, delivery) = stored(&t.state);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO stock_tokens (serial, model, manufacturer, shipment_key, sealed_pins, provisioned_at, \
                     provisioned_by, state, application, delivery, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $6)",
                )
                .bind(t.serial.as_str().to_owned())
                .bind(t.model)
                .bind(t.manufacturer)
                .bind(t.shipment_key)
                .bind(t.sealed_pins)
                .bind(t.provisioned_at.unix_timestamp())
                .bind(t.provisioned_by)
                .bind(state)
                .bind(application)
                .bind(delivery)
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "token serial"))?;
                Ok(())
            })
        })
        .await
    }

    async fn stock_token(&self, serial: &TokenSerial) -> Result<Option<StockToken>, StoreError> {
        self.one_token("serial", serial.as_str()).await
    }

    async fn token_of(&self, application: &ApplicationId) -> Result<Option<StockToken>, StoreError> {
        self.one_token("application", application.as_str()).await
    }

    async fn stock(&self) -> Result<Vec<StockToken>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stock_tokens ORDER BY provisioned_at DESC, serial"
        )))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?
        .iter()
        .map(stock_token)
        .collect()
    }

    async fn move_stock_token(&self, t: &StockToken, from: &'static str, audit: AuditEvent) -> Result<(), StoreError> {
        let (t, at) = (t.clone(), audit.at.unix_timestamp());
        self.audited(&audit, move |c| Box::pin(move_row(c, t, from, at))).await
    }

    async fn save_transition_with_token(
        &self,
        transition: &Transition,
        outbox: &[OutboxMessage],
        t: &StockToken,
        from: &'static str,
    ) -> Result<(), StoreError> {
        let write = TransitionWrite::of(transition, outbox)?;
        let (t, at) = (t.clone(), transition.audit.at.unix_timestamp());
        self.audited(&transition.audit, move |c| {
            Box::pin(async move {
                write.apply(c).await?;
                move_row(c, t, from, at).await
            })
        })
        .await
    }

    async fn save_challenge(&self, ch: &ShipmentChallenge) -> Result<(), StoreError> {
        // Challenges that lapsed unanswered go as new ones come, so the table stays small.
        let issued_at = ch.expires_at - signet_ra::token_stock::CHALLENGE_LIFETIME;
        sqlx::query("DELETE FROM shipment_challenges WHERE expires_at < $1")
            .bind(issued_at.unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        sqlx::query("INSERT INTO shipment_challenges (nonce, application, serial, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(ch.nonce.clone())
            .bind(ch.application.as_str().to_owned())
            .bind(ch.serial.as_str().to_owned())
            .bind(ch.expires_at.unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(|e| unique_or(e, "challenge"))?;
        Ok(())
    }

    async fn take_challenge(
        &self,
        nonce: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<ShipmentChallenge>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(backend_error)?;
        // Delete first: of two requests with the same nonce, only the one whose delete took the
        // row goes on.
        let row = sqlx::query(
            "DELETE FROM shipment_challenges WHERE nonce = $1 RETURNING nonce, application, serial, expires_at",
        )
        .bind(nonce)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_error)?;
        sqlx::query("DELETE FROM shipment_challenges WHERE expires_at < $1")
            .bind(now.unix_timestamp())
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)?;
        let Some(row) = row else { return Ok(None) };
        let challenge = ShipmentChallenge {
            nonce: row.try_get(0).map_err(backend_error)?,
            application: ApplicationId::new(&row.try_get::<String, _>(1).map_err(backend_error)?)
                .map_err(|e| corrupt("challenge application", e))?,
            serial: TokenSerial::new(&row.try_get::<String, _>(2).map_err(backend_error)?)
                .map_err(|e| corrupt("challenge serial", e))?,
            expires_at: ts(row.try_get(3).map_err(backend_error)?)?,
        };
        Ok((challenge.expires_at >= now).then_some(challenge))
    }
}
