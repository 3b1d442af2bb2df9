//! Witnessed key generation (signet_ra::witness) on sqlx.

use signet_ra::application::{ApplicationId, OperatorId};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::token_stock::TokenSerial;
use signet_ra::witness::{WitnessStore, WitnessedGeneration};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::applications::{corrupt, ts};
use crate::{Store, backend_error, unique_or};

fn witnessed(row: &AnyRow) -> Result<WitnessedGeneration, StoreError> {
    let application: String = row.try_get(0).map_err(backend_error)?;
    let operator: String = row.try_get(1).map_err(backend_error)?;
    Ok(WitnessedGeneration {
        application: ApplicationId::new(&application).map_err(|e| corrupt("witnessed application", e))?,
        operator: OperatorId::new(&operator).map_err(|e| corrupt("witnessing operator", e))?,
        witnessed_at: ts(row.try_get(2).map_err(backend_error)?)?,
        note: row.try_get(3).map_err(backend_error)?,
        token: row
            .try_get::<Option<String>, _>(4)
            .map_err(backend_error)?
            .map(|t| TokenSerial::new(&t).map_err(|e| corrupt("witnessed token", e)))
            .transpose()?,
    })
}

impl WitnessStore for Store {
    async fn record_witness(&self, w: &WitnessedGeneration, audit: AuditEvent) -> Result<(), StoreError> {
        let w = w.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO witnessed_key_generations (application, operator, witnessed_at, note, token_serial) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(w.application.as_str().to_owned())
                .bind(w.operator.as_str().to_owned())
                .bind(w.witnessed_at.unix_timestamp())
                .bind(w.note)
                .bind(w.token.map(String::from))
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "witnessed key generation"))?;
                Ok(())
            })
        })
        .await
    }

    async fn witness(&self, application: &ApplicationId) -> Result<Option<WitnessedGeneration>, StoreError> {
        sqlx::query(
            "SELECT application, operator, witnessed_at, note, token_serial FROM witnessed_key_generations \
             WHERE application = $1",
        )
        .bind(application.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?
        .as_ref()
        .map(witnessed)
        .transpose()
    }
}
