//! The domain's [`PasskeyStore`] on both backends. Removing a passkey and recording its use are
//! single conditional statements, so two nodes cannot both remove an owner's last two factors,
//! nor both accept one signature counter.

use data_encoding::BASE64URL_NOPAD;
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::notify::OutboxMessage;
use signet_ra::passkey::{Aaguid, Passkey, PasskeyName, PasskeyOwner, PasskeyStore};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::applications::{corrupt, insert_outbox, outbox_rows, ts};
use crate::{Store, backend_error, unique_or};

const COLUMNS: &str =
    "credential_id, owner, user_handle, name, aaguid, static_state, dynamic_state, created_at, last_used_at";

fn passkey(row: &AnyRow) -> Result<Passkey, StoreError> {
    let id: String = row.try_get(0).map_err(backend_error)?;
    let bad = |what: &str| corrupt(&format!("passkey {id}"), what);
    let owner: String = row.try_get(1).map_err(backend_error)?;
    let handle: String = row.try_get(2).map_err(backend_error)?;
    let name: String = row.try_get(3).map_err(backend_error)?;
    let aaguid: String = row.try_get(4).map_err(backend_error)?;
    let dynamic: Vec<u8> = row.try_get(6).map_err(backend_error)?;
    let last_used: Option<i64> = row.try_get(8).map_err(backend_error)?;
    Ok(Passkey {
        credential_id: BASE64URL_NOPAD.decode(id.as_bytes()).map_err(|_| bad("credential id"))?,
        owner: PasskeyOwner::parse(&owner).ok_or_else(|| bad("owner"))?,
        user_handle: hex::decode(&handle).ok().and_then(|h| h.try_into().ok()).ok_or_else(|| bad("user handle"))?,
        name: PasskeyName::new(&name).map_err(|_| bad("name"))?,
        aaguid: Aaguid::parse(&aaguid).ok_or_else(|| bad("aaguid"))?,
        static_state: row.try_get(5).map_err(backend_error)?,
        dynamic_state: dynamic.try_into().map_err(|_| bad("dynamic state"))?,
        created_at: ts(row.try_get(7).map_err(backend_error)?)?,
        last_used_at: last_used.map(ts).transpose()?,
    })
}

impl PasskeyStore for Store {
    async fn passkeys(&self, owner: &PasskeyOwner) -> Result<Vec<Passkey>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM passkeys WHERE owner = $1 ORDER BY created_at, credential_id"
        )))
        .bind(owner.stored())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(passkey).collect()
    }

    async fn passkey(&self, credential_id: &[u8]) -> Result<Option<Passkey>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1")))
            .bind(BASE64URL_NOPAD.encode(credential_id))
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        row.as_ref().map(passkey).transpose()
    }

    async fn add_passkey(
        &self,
        p: &Passkey,
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> Result<(), StoreError> {
        let p = p.clone();
        let (notice, at) =
            (notice.map(|n| outbox_rows(std::slice::from_ref(n))).unwrap_or_default(), audit.at.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO passkeys (credential_id, owner, user_handle, name, aaguid, static_state, \
                     dynamic_state, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
                )
                .bind(p.id_text())
                .bind(p.owner.stored())
                .bind(hex::encode(p.user_handle))
                .bind(p.name.as_str().to_owned())
                .bind(p.aaguid.to_string())
                .bind(p.static_state.clone())
                .bind(p.dynamic_state.to_vec())
                .bind(p.created_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "passkey credential id"))?;
                insert_outbox(c, notice, at).await
            })
        })
        .await
    }

    async fn rename_passkey(
        &self,
        owner: &PasskeyOwner,
        credential_id: &[u8],
        name: &PasskeyName,
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> Result<(), StoreError> {
        let (owner, id, name) = (owner.stored(), BASE64URL_NOPAD.encode(credential_id), name.as_str().to_owned());
        let (notice, at) =
            (notice.map(|n| outbox_rows(std::slice::from_ref(n))).unwrap_or_default(), audit.at.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let changed = sqlx::query("UPDATE passkeys SET name = $1 WHERE credential_id = $2 AND owner = $3")
                    .bind(name)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                if changed != 1 {
                    return Err(StoreError::NotFound);
                }
                insert_outbox(c, notice, at).await
            })
        })
        .await
    }

    async fn remove_passkey(
        &self,
        owner: &PasskeyOwner,
        credential_id: &[u8],
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> Result<(), StoreError> {
        let (notice, at) =
            (notice.map(|n| outbox_rows(std::slice::from_ref(n))).unwrap_or_default(), audit.at.unix_timestamp());
        let account = match owner {
            PasskeyOwner::Subscriber(id) => id.as_str().to_owned(),
            // Operators keep their authenticator-app secret whatever passkeys they have; whether
            // they may go without a passkey is the console's rule, checked before this.
            PasskeyOwner::Operator(_) => String::new(),
        };
        let is_operator = matches!(owner, PasskeyOwner::Operator(_));
        let (owner, id) = (owner.stored(), BASE64URL_NOPAD.encode(credential_id));
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let removed = sqlx::query(
                    "DELETE FROM passkeys WHERE credential_id = $1 AND owner = $2 AND ( \
                       $3 OR (SELECT COUNT(*) FROM passkeys WHERE owner = $2) > 1 \
                       OR EXISTS (SELECT 1 FROM soft_tokens WHERE account = $4 AND state = 'active'))",
                )
                .bind(&id)
                .bind(&owner)
                .bind(is_operator)
                .bind(&account)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if removed == 1 {
                    return insert_outbox(c, notice, at).await;
                }
                let exists = sqlx::query("SELECT 1 FROM passkeys WHERE credential_id = $1 AND owner = $2")
                    .bind(&id)
                    .bind(&owner)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend_error)?;
                Err(if exists.is_some() {
                    StoreError::Conflict("the last second factor")
                } else {
                    StoreError::NotFound
                })
            })
        })
        .await
    }

    async fn passkey_used(&self, before: &Passkey, after: &Passkey, audit: AuditEvent) -> Result<(), StoreError> {
        let (id, old, new) = (after.id_text(), before.dynamic_state.to_vec(), after.dynamic_state.to_vec());
        let at = after.last_used_at.map(|t| t.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let moved = sqlx::query(
                    "UPDATE passkeys SET dynamic_state = $1, last_used_at = $2 \
                     WHERE credential_id = $3 AND dynamic_state = $4",
                )
                .bind(new)
                .bind(at)
                .bind(id)
                .bind(old)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if moved == 1 { Ok(()) } else { Err(StoreError::Conflict("passkey used meanwhile")) }
            })
        })
        .await
    }
}
