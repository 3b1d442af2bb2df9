//! ACME storage: the domain's [`AcmeStore`] on both backends.
//!
//! Writes that race between nodes are single conditional statements: binding an EAB key
//! (`… WHERE account_id IS NULL`), concluding an authorization (`… WHERE status = 'pending'`),
//! moving an order (`… WHERE progress = $from`) and spending a nonce (`DELETE … WHERE nonce =
//! $1`, one row or none), so a second node's attempt finds nothing to change.

use std::collections::BTreeSet;

use signet_pki::Serial;
use signet_pki::subject::{Email, OrganizationName};
use signet_ra::acme::{
    Account, AccountId, AccountStatus, AcmeProblem, AcmeStore, Authorization, AuthorizationId, AuthorizationStatus,
    Challenge, ChallengeId, ChallengeKind, ChallengeStatus, ChallengeToken, DomainScope, DomainSuffix, EabBinding,
    EabHmacKey, EabKey, EabKeyId, Identifier, KeyThumbprint, NONCE_LIFETIME, NewOrder, Nonce, Order, OrderId,
    OrderProgress,
};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::applications::{corrupt, ts};
use crate::{Store, backend_error, unique_or};

fn get<'r, T>(row: &'r AnyRow, i: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(i).map_err(backend_error)
}

/// A stored JSON array of strings, each checked by `parse`.
fn json_list<T, E: std::fmt::Display>(
    what: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, StoreError> {
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(what, e))?;
    items.iter().map(|s| parse(s).map_err(|e| corrupt(what, e))).collect()
}

fn to_json<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::from(items.into_iter().collect::<Vec<_>>()).to_string()
}

fn scope(text: &str) -> Result<DomainScope, StoreError> {
    let domains: BTreeSet<DomainSuffix> = json_list("EAB domains", text, DomainSuffix::new)?.into_iter().collect();
    DomainScope::new(domains).map_err(|e| corrupt("EAB domains", e))
}

fn problem(text: &str) -> Result<AcmeProblem, StoreError> {
    AcmeProblem::from_stored(text).ok_or_else(|| corrupt("ACME problem", text))
}

const EAB_COLUMNS: &str = "key_id, organization, domains, hmac_key, account_id, created_at";

fn eab_key(row: &AnyRow) -> Result<EabKey, StoreError> {
    let id: String = get(row, 0)?;
    let hmac: Option<Vec<u8>> = get(row, 3)?;
    let account: Option<String> = get(row, 4)?;
    let binding = match (hmac, account) {
        (Some(k), None) => EabBinding::Unbound(EabHmacKey::from_bytes(k).map_err(|e| corrupt("EAB key", e))?),
        (None, Some(a)) => EabBinding::Bound(AccountId::parse(&a).map_err(|e| corrupt("EAB key", e))?),
        _ => return Err(corrupt("EAB key", &id)),
    };
    Ok(EabKey {
        id: EabKeyId::parse(&id).map_err(|e| corrupt("EAB key", e))?,
        organization: OrganizationName::new(&get::<String>(row, 1)?).map_err(|e| corrupt("EAB key", e))?,
        scope: scope(&get::<String>(row, 2)?)?,
        binding,
        created_at: ts(get(row, 5)?)?,
    })
}

const ACCOUNT_SELECT: &str = "SELECT a.id, a.thumbprint, a.jwk, a.eab_key_id, k.organization, k.domains, a.contact, \
     a.status, a.created_at FROM acme_accounts a JOIN acme_eab_keys k ON k.key_id = a.eab_key_id";

fn account(row: &AnyRow) -> Result<Account, StoreError> {
    let bad = |e: &dyn std::fmt::Display| corrupt("ACME account", e);
    let status: String = get(row, 7)?;
    Ok(Account {
        id: AccountId::parse(&get::<String>(row, 0)?).map_err(|e| bad(&e))?,
        thumbprint: KeyThumbprint::new(&get::<String>(row, 1)?).map_err(|e| bad(&e))?,
        jwk: get(row, 2)?,
        eab_key: EabKeyId::parse(&get::<String>(row, 3)?).map_err(|e| bad(&e))?,
        organization: OrganizationName::new(&get::<String>(row, 4)?).map_err(|e| bad(&e))?,
        scope: scope(&get::<String>(row, 5)?)?,
        contact: json_list("ACME contact", &get::<String>(row, 6)?, Email::new)?,
        status: AccountStatus::from_name(&status).ok_or_else(|| bad(&status))?,
        created_at: ts(get(row, 8)?)?,
    })
}

const ORDER_SELECT: &str =
    "SELECT id, account_id, identifiers, progress, certificate_serial, error, expires_at, created_at FROM acme_orders";

fn progress(name: &str, serial: Option<String>, error: Option<String>) -> Result<OrderProgress, StoreError> {
    Ok(match (name, serial, error) {
        ("authorizing", None, None) => OrderProgress::Authorizing,
        ("processing", None, None) => OrderProgress::Processing,
        ("valid", Some(s), None) => {
            OrderProgress::Valid { certificate: Serial::from_hex(&s).map_err(|e| corrupt("order serial", e))? }
        }
        ("invalid", None, Some(e)) => OrderProgress::Invalid { error: problem(&e)? },
        (other, ..) => return Err(corrupt("order progress", other)),
    })
}

/// The columns [`save_order_progress`] writes for `p`.
fn progress_columns(p: &OrderProgress) -> (&'static str, Option<String>, Option<String>) {
    match p {
        OrderProgress::Valid { certificate } => (p.name(), Some(certificate.to_hex()), None),
        OrderProgress::Invalid { error } => (p.name(), None, Some(error.to_stored())),
        _ => (p.name(), None, None),
    }
}

/// Saves `order`'s progress if it still has progress `from`; whether it did. `intent`: the
/// issuance intent it moves to processing with, which it then waits for.
pub(crate) async fn move_order(
    c: &mut AnyConnection,
    order: &Order,
    from: &OrderProgress,
    intent: Option<&Serial>,
) -> Result<bool, StoreError> {
    let (progress, serial, error) = progress_columns(&order.progress);
    let done = sqlx::query(
        "UPDATE acme_orders SET progress = $1, certificate_serial = $2, error = $3, \
         intent_serial = COALESCE($4, intent_serial) WHERE id = $5 AND progress = $6",
    )
    .bind(progress)
    .bind(serial)
    .bind(error)
    .bind(intent.map(Serial::to_hex))
    .bind(order.id.to_string())
    .bind(from.name())
    .execute(&mut *c)
    .await
    .map_err(|e| unique_or(e, "certificate serial"))?;
    Ok(done.rows_affected() == 1)
}

fn identifier(name: &str) -> Result<Identifier, StoreError> {
    Identifier::parse("dns", name).map_err(|e| corrupt("ACME identifier", e))
}

impl Store {
    /// The DNS domains registered for an organization — the union of its EAB keys' scopes, as
    /// the RA registered them (`signet admin acme eab create`) — or `None` if it has none. The
    /// Certificate Management Center creates device certificates only under these.
    pub async fn organization_domains(
        &self,
        organization: &OrganizationName,
    ) -> Result<Option<DomainScope>, StoreError> {
        let rows = sqlx::query("SELECT domains FROM acme_eab_keys WHERE organization = $1")
            .bind(organization.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        let mut all = BTreeSet::new();
        for row in &rows {
            all.extend(scope(&row.try_get::<String, _>(0).map_err(backend_error)?)?.domains().cloned());
        }
        Ok(DomainScope::new(all).ok())
    }

    async fn order_with(&self, filter: &str, value: String) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{ORDER_SELECT} WHERE {filter} = $1")))
            .bind(value)
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = get(&row, 0)?;
        let authz = sqlx::query("SELECT id, status FROM acme_authorizations WHERE order_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        let authorizations = authz
            .iter()
            .map(|r| {
                let status: String = get(r, 1)?;
                Ok((
                    AuthorizationId::parse(&get::<String>(r, 0)?).map_err(|e| corrupt("authorization", e))?,
                    AuthorizationStatus::from_stored(&status)
                        .ok_or_else(|| corrupt("authorization status", &status))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let identifiers = json_list("order identifiers", &get::<String>(&row, 2)?, |n| Identifier::parse("dns", n))?;
        Ok(Some(Order {
            id: OrderId::parse(&id).map_err(|e| corrupt("order", e))?,
            account: AccountId::parse(&get::<String>(&row, 1)?).map_err(|e| corrupt("order", e))?,
            identifiers,
            authorizations,
            progress: progress(&get::<String>(&row, 3)?, get(&row, 4)?, get(&row, 5)?)?,
            expires: ts(get(&row, 6)?)?,
            created_at: ts(get(&row, 7)?)?,
        }))
    }

    /// The authorization matching `condition` (SQL over `z`, the authorization, with `$1`).
    async fn authorization_with(&self, condition: &str, value: String) -> Result<Option<Authorization>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT z.id, z.order_id, o.account_id, z.identifier, z.status, z.expires_at \
             FROM acme_authorizations z JOIN acme_orders o ON o.id = z.order_id WHERE {condition}"
        )))
        .bind(value)
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        let Some(row) = row else { return Ok(None) };
        let bad = |e: &dyn std::fmt::Display| corrupt("authorization", e);
        let id: String = get(&row, 0)?;
        let rows = sqlx::query(
            "SELECT id, kind, token, status, validated_at, error FROM acme_challenges \
             WHERE authorization_id = $1 ORDER BY position",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        let challenges = rows
            .iter()
            .map(|r| {
                let kind: String = get(r, 1)?;
                let status: String = get(r, 3)?;
                let validated: Option<i64> = get(r, 4)?;
                let error: Option<String> = get(r, 5)?;
                Ok(Challenge {
                    id: ChallengeId::parse(&get::<String>(r, 0)?).map_err(|e| bad(&e))?,
                    kind: ChallengeKind::from_name(&kind).ok_or_else(|| bad(&kind))?,
                    token: ChallengeToken::parse(&get::<String>(r, 2)?).map_err(|e| bad(&e))?,
                    status: match (status.as_str(), validated, error) {
                        ("pending", None, None) => ChallengeStatus::Pending,
                        ("valid", Some(at), None) => ChallengeStatus::Valid { validated: ts(at)? },
                        ("invalid", None, Some(e)) => ChallengeStatus::Invalid { error: problem(&e)? },
                        _ => return Err(bad(&status)),
                    },
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let status: String = get(&row, 4)?;
        Ok(Some(Authorization {
            id: AuthorizationId::parse(&id).map_err(|e| bad(&e))?,
            order: OrderId::parse(&get::<String>(&row, 1)?).map_err(|e| bad(&e))?,
            account: AccountId::parse(&get::<String>(&row, 2)?).map_err(|e| bad(&e))?,
            identifier: identifier(&get::<String>(&row, 3)?)?,
            status: AuthorizationStatus::from_stored(&status).ok_or_else(|| bad(&status))?,
            expires: ts(get(&row, 5)?)?,
            challenges,
        }))
    }

    /// The ACME order in processing that waits for the intent `serial`, with its account.
    pub(crate) async fn order_waiting_for(&self, serial: &Serial) -> Result<Option<(Order, Account)>, StoreError> {
        let Some(order) = self.order_with("intent_serial", serial.to_hex()).await? else { return Ok(None) };
        if order.progress != OrderProgress::Processing {
            return Ok(None);
        }
        let account = self.account_with("a.id", order.account.to_string()).await?;
        Ok(account.map(|account| (order, account)))
    }

    async fn account_with(&self, filter: &str, value: String) -> Result<Option<Account>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{ACCOUNT_SELECT} WHERE {filter} = $1")))
            .bind(value)
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?
            .as_ref()
            .map(account)
            .transpose()
    }
}

async fn insert_authorization(c: &mut AnyConnection, position: i64, a: &Authorization) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO acme_authorizations (id, order_id, position, identifier, status, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(a.id.as_str())
    .bind(a.order.as_str())
    .bind(position)
    .bind(a.identifier.name().as_str())
    .bind(a.status.name())
    .bind(a.expires.unix_timestamp())
    .execute(&mut *c)
    .await
    .map_err(backend_error)?;
    for (position, ch) in (0i64..).zip(&a.challenges) {
        sqlx::query(
            "INSERT INTO acme_challenges (id, authorization_id, position, kind, token, status) \
             VALUES ($1, $2, $3, $4, $5, 'pending')",
        )
        .bind(ch.id.as_str())
        .bind(a.id.as_str())
        .bind(position)
        .bind(ch.kind.name())
        .bind(ch.token.as_str())
        .execute(&mut *c)
        .await
        .map_err(backend_error)?;
    }
    Ok(())
}

impl AcmeStore for Store {
    async fn create_eab_key(&self, key: &EabKey, audit: AuditEvent) -> Result<(), StoreError> {
        let EabBinding::Unbound(hmac) = &key.binding else {
            return Err(StoreError::Conflict("eab key used"));
        };
        let (id, org, hmac, at) =
            (key.id.to_string(), key.organization.to_string(), hmac.as_bytes().to_vec(), key.created_at);
        let domains = to_json(key.scope.domains().map(DomainSuffix::as_str));
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO acme_eab_keys (key_id, organization, domains, hmac_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(org)
                .bind(domains)
                .bind(hmac)
                .bind(at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "eab key id"))?;
                Ok(())
            })
        })
        .await
    }

    async fn eab_key(&self, id: &EabKeyId) -> Result<Option<EabKey>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {EAB_COLUMNS} FROM acme_eab_keys WHERE key_id = $1")))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?
            .as_ref()
            .map(eab_key)
            .transpose()
    }

    async fn create_account(&self, a: &Account, audit: AuditEvent) -> Result<(), StoreError> {
        let a = a.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let bound = sqlx::query(
                    "UPDATE acme_eab_keys SET account_id = $1, hmac_key = NULL \
                     WHERE key_id = $2 AND account_id IS NULL",
                )
                .bind(a.id.as_str())
                .bind(a.eab_key.as_str())
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                if bound.rows_affected() != 1 {
                    return Err(StoreError::Conflict("eab key used"));
                }
                sqlx::query(
                    "INSERT INTO acme_accounts (id, thumbprint, jwk, eab_key_id, contact, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(a.id.as_str())
                .bind(a.thumbprint.as_str())
                .bind(&a.jwk)
                .bind(a.eab_key.as_str())
                .bind(to_json(a.contact.iter().map(Email::as_str)))
                .bind(a.status.name())
                .bind(a.created_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "account key"))?;
                Ok(())
            })
        })
        .await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.account_with("a.id", id.to_string()).await
    }

    async fn account_by_thumbprint(&self, thumbprint: &KeyThumbprint) -> Result<Option<Account>, StoreError> {
        self.account_with("a.thumbprint", thumbprint.as_str().to_owned()).await
    }

    async fn deactivate_account(&self, a: &Account, audit: AuditEvent) -> Result<(), StoreError> {
        let (id, status) = (a.id.to_string(), a.status.name());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let done = sqlx::query("UPDATE acme_accounts SET status = $1 WHERE id = $2 AND status = 'valid'")
                    .bind(status)
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict("account status"));
                }
                Ok(())
            })
        })
        .await
    }

    async fn create_order(&self, new: &NewOrder, audit: AuditEvent) -> Result<(), StoreError> {
        let new = new.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let o = &new.order;
                let (progress, serial, error) = progress_columns(&o.progress);
                sqlx::query(
                    "INSERT INTO acme_orders (id, account_id, identifiers, progress, certificate_serial, error, \
                     expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(o.id.as_str())
                .bind(o.account.as_str())
                .bind(to_json(o.identifiers.iter().map(|i| i.name().as_str())))
                .bind(progress)
                .bind(serial)
                .bind(error)
                .bind(o.expires.unix_timestamp())
                .bind(o.created_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                for (position, a) in (0i64..).zip(&new.authorizations) {
                    insert_authorization(c, position, a).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.order_with("id", id.to_string()).await
    }

    async fn order_by_certificate(&self, serial: &Serial) -> Result<Option<Order>, StoreError> {
        self.order_with("certificate_serial", serial.to_hex()).await
    }

    async fn account_orders(&self, account: &AccountId) -> Result<Vec<OrderId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM acme_orders WHERE account_id = $1 ORDER BY created_at DESC, id")
            .bind(account.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter().map(|r| OrderId::parse(&get::<String>(r, 0)?).map_err(|e| corrupt("order", e))).collect()
    }

    async fn save_order_progress(
        &self,
        order: &Order,
        from: &OrderProgress,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let (order, from) = (order.clone(), from.clone());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                if move_order(c, &order, &from, None).await? {
                    Ok(())
                } else {
                    Err(StoreError::Conflict("order progress"))
                }
            })
        })
        .await
    }

    async fn authorization(&self, id: &AuthorizationId) -> Result<Option<Authorization>, StoreError> {
        self.authorization_with("z.id = $1", id.to_string()).await
    }

    async fn authorization_by_challenge(&self, challenge: &ChallengeId) -> Result<Option<Authorization>, StoreError> {
        self.authorization_with(
            "z.id = (SELECT authorization_id FROM acme_challenges WHERE id = $1)",
            challenge.to_string(),
        )
        .await
    }

    async fn record_validation(
        &self,
        a: &Authorization,
        challenge: &ChallengeId,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let ch = a.challenges.iter().find(|c| &c.id == challenge).ok_or(StoreError::NotFound)?;
        let (validated, error) = match &ch.status {
            ChallengeStatus::Valid { validated } => (Some(validated.unix_timestamp()), None),
            ChallengeStatus::Invalid { error } => (None, Some(error.to_stored())),
            other => return Err(StoreError::Backend(format!("a concluded challenge is not {}", other.name()))),
        };
        let (authz, status, ch_id, ch_status) =
            (a.id.to_string(), a.status.name(), ch.id.to_string(), ch.status.name());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let done =
                    sqlx::query("UPDATE acme_authorizations SET status = $1 WHERE id = $2 AND status = 'pending'")
                        .bind(status)
                        .bind(&authz)
                        .execute(&mut *c)
                        .await
                        .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict("authorization status"));
                }
                sqlx::query(
                    "UPDATE acme_challenges SET status = $1, validated_at = $2, error = $3 \
                     WHERE id = $4 AND authorization_id = $5",
                )
                .bind(ch_status)
                .bind(validated)
                .bind(error)
                .bind(ch_id)
                .bind(authz)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                Ok(())
            })
        })
        .await
    }

    async fn issue_nonce(&self, nonce: &Nonce, now: OffsetDateTime) -> Result<(), StoreError> {
        let _turn = self.turns.take().await;
        // Expired nonces go as new ones come: the expiry index makes this a short range scan.
        sqlx::query("DELETE FROM acme_nonces WHERE expires_at <= $1")
            .bind(now.unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        sqlx::query("INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2)")
            .bind(nonce.as_str())
            .bind((now + NONCE_LIFETIME).unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn consume_nonce(&self, nonce: &Nonce, now: OffsetDateTime) -> Result<bool, StoreError> {
        let _turn = self.turns.take().await;
        let done = sqlx::query("DELETE FROM acme_nonces WHERE nonce = $1 AND expires_at > $2")
            .bind(nonce.as_str())
            .bind(now.unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use signet_pki::issue::IssuedCertificate;
    use signet_ra::acme::{AcmeProblem, Finalizing, ProblemKind, Respond};
    use signet_ra::audit::AuditAction;
    use signet_ra::issuance::{CaStore, IssuanceIntent};
    use signet_testkit::TestDb;

    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    async fn on_backend<F: AsyncFnOnce(Store)>(backend: &str, test: F) {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        test(store.clone()).await;
        assert!(store.verify_audit().await.unwrap().is_ok(), "{backend}: audit chain intact");
        store.close().await;
    }

    async fn new_account(store: &Store, thumb: char) -> Account {
        let org = OrganizationName::new("Acme Devices").unwrap();
        let eab = EabKey::generate(org, DomainScope::parse("acme.example").unwrap(), t0());
        store.create_eab_key(&eab, eab.created_event("cli:test")).await.unwrap();
        let thumbprint = KeyThumbprint::new(&thumb.to_string().repeat(43)).unwrap();
        let contact = vec![Email::new("ops@acme.example").unwrap()];
        let (account, _) = Account::register("{\"kty\":\"EC\"}".into(), thumbprint, eab, contact, t0()).unwrap();
        store.create_account(&account, account.created_event()).await.unwrap();
        account
    }

    async fn actions(store: &Store) -> Vec<String> {
        store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect()
    }

    signet_testkit::backend_test!(eab_keys_bind_one_account_and_lose_their_secret, on_backend, async |store: Store| {
        let org = OrganizationName::new("Acme Devices").unwrap();
        let eab = EabKey::generate(org, DomainScope::parse("b.example,acme.example").unwrap(), t0());
        store.create_eab_key(&eab, eab.created_event("cli:test")).await.unwrap();
        assert_eq!(store.eab_key(&eab.id).await.unwrap().as_ref(), Some(&eab), "secret and domains round-trip");

        let thumbprint = KeyThumbprint::new(&"t".repeat(43)).unwrap();
        let (account, bound) = Account::register("{}".into(), thumbprint.clone(), eab.clone(), vec![], t0()).unwrap();
        store.create_account(&account, account.created_event()).await.unwrap();
        assert_eq!(store.eab_key(&eab.id).await.unwrap(), Some(bound));
        let secret: Option<Vec<u8>> = sqlx::query("SELECT hmac_key FROM acme_eab_keys WHERE key_id = $1")
            .bind(eab.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(secret, None, "the HMAC key is erased once bound");
        assert_eq!(store.account(&account.id).await.unwrap().as_ref(), Some(&account));
        assert_eq!(store.account_by_thumbprint(&thumbprint).await.unwrap().as_ref(), Some(&account));

        // A second account racing on the same (stale, still unbound) key is refused.
        let other = KeyThumbprint::new(&"u".repeat(43)).unwrap();
        let (second, _) = Account::register("{}".into(), other.clone(), eab, vec![], t0()).unwrap();
        let err = store.create_account(&second, second.created_event()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("eab key used")), "{err:?}");
        assert_eq!(store.account_by_thumbprint(&other).await.unwrap(), None);

        let (closed, event) = account.deactivate(t0()).unwrap();
        store.deactivate_account(&closed, event.clone()).await.unwrap();
        assert_eq!(store.account(&closed.id).await.unwrap().unwrap().status, AccountStatus::Deactivated);
        assert!(matches!(store.deactivate_account(&closed, event).await, Err(StoreError::Conflict(_))));
        assert_eq!(
            actions(&store).await,
            ["acme-eab-key-created", "acme-account-created", "acme-account-deactivated"],
            "refused writes leave no audit row"
        );
    });

    signet_testkit::backend_test!(orders_move_through_their_lifecycle_once, on_backend, async |store: Store| {
        let account = new_account(&store, 'a').await;
        let new = NewOrder::new(&account, [("dns", "b.acme.example"), ("dns", "a.acme.example")], t0()).unwrap();
        store.create_order(&new, new.created_event(&account)).await.unwrap();
        let order = store.order(&new.order.id).await.unwrap().unwrap();
        assert_eq!(order, new.order);
        assert_eq!(store.account_orders(&account.id).await.unwrap(), std::slice::from_ref(&order.id));
        for authz in &new.authorizations {
            assert_eq!(store.authorization(&authz.id).await.unwrap().as_ref(), Some(authz));
            let by_challenge = store.authorization_by_challenge(&authz.challenges[1].id).await.unwrap();
            assert_eq!(by_challenge.as_ref(), Some(authz));
        }

        // Validate both names; the second fails once on a stale copy.
        let mut last = None;
        for authz in &new.authorizations {
            let http01 = authz.challenges[0].id.clone();
            let Respond::Validate(v) = authz.clone().respond(&http01, &account.thumbprint, t0()) else {
                panic!("pending")
            };
            let (done, ch, event) = v.conclude(Ok(()), &account, t0());
            store.record_validation(&done, &ch, event.clone()).await.unwrap();
            let err = store.record_validation(&done, &ch, event).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict("authorization status")));
            last = Some(done);
        }
        let reloaded = store.authorization(&last.as_ref().unwrap().id).await.unwrap();
        assert_eq!(reloaded, last, "validated_at and statuses round-trip");
        let order = store.order(&new.order.id).await.unwrap().unwrap();
        assert_eq!(order.status_at(t0()), signet_ra::acme::OrderStatus::Ready);

        let names: BTreeSet<Identifier> =
            ["a.acme.example", "b.acme.example"].iter().map(|n| Identifier::parse("dns", n).unwrap()).collect();
        let (processing, event) = order.clone().finalize(&names, &account, t0()).unwrap();
        store.save_order_progress(&processing, &order.progress, event.clone()).await.unwrap();
        let err = store.save_order_progress(&processing, &order.progress, event).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("order progress")), "a second finalize loses");
        let serial = Serial::random();
        let (valid, event) = processing.clone().issued(serial.clone(), &account, t0()).unwrap();
        store.save_order_progress(&valid, &processing.progress, event).await.unwrap();
        assert_eq!(store.order_by_certificate(&serial).await.unwrap().as_ref(), Some(&valid));
        assert_eq!(store.order(&valid.id).await.unwrap().as_ref(), Some(&valid));
    });

    signet_testkit::backend_test!(failures_are_stored_with_their_problem, on_backend, async |store: Store| {
        let account = new_account(&store, 'f').await;
        let new = NewOrder::new(&account, [("dns", "x.acme.example")], t0()).unwrap();
        store.create_order(&new, new.created_event(&account)).await.unwrap();
        let authz = new.authorizations[0].clone();
        let dns01 = authz.challenges[1].id.clone();
        let Respond::Validate(v) = authz.respond(&dns01, &account.thumbprint, t0()) else { panic!("pending") };
        let problem = AcmeProblem::new(ProblemKind::Dns, "no TXT record at _acme-challenge.x.acme.example");
        let (failed, ch, event) = v.conclude(Err(problem.clone()), &account, t0());
        store.record_validation(&failed, &ch, event).await.unwrap();
        let stored = store.authorization(&failed.id).await.unwrap().unwrap();
        assert_eq!(stored.challenges[1].status, ChallengeStatus::Invalid { error: problem });
        let order = store.order(&new.order.id).await.unwrap().unwrap();
        assert_eq!(order.status_at(t0()).name(), "invalid");
    });

    /// An order of one name, its authorization validated, as the account finalizes it.
    async fn finalizing(store: &Store, account: &Account, name: &str) -> Finalizing {
        let new = NewOrder::new(account, [("dns", name)], t0()).unwrap();
        store.create_order(&new, new.created_event(account)).await.unwrap();
        let authz = new.authorizations[0].clone();
        let http01 = authz.challenges[0].id.clone();
        let Respond::Validate(v) = authz.respond(&http01, &account.thumbprint, t0()) else { panic!("pending") };
        let (done, ch, event) = v.conclude(Ok(()), account, t0());
        store.record_validation(&done, &ch, event).await.unwrap();
        let order = store.order(&new.order.id).await.unwrap().unwrap();
        let names: BTreeSet<Identifier> = [Identifier::parse("dns", name).unwrap()].into();
        order.finalizing(&names, account, t0()).unwrap()
    }

    fn intent(serial: &Serial, key: &str) -> (IssuanceIntent, AuditEvent) {
        let intent = IssuanceIntent {
            serial: serial.clone(),
            profile: "device-tls".into(),
            subject_json: "{}".into(),
            spki_sha256: key.into(),
            requested_by: "acme:test".into(),
            at: t0(),
        };
        (intent, AuditEvent::new(t0(), "acme:test", AuditAction::IssuanceIntent, serial.to_hex(), json!({})))
    }

    async fn progress(store: &Store, f: &Finalizing) -> OrderProgress {
        store.order(&f.accepted.order.id).await.unwrap().unwrap().progress
    }

    // The order moves in the CA's own transactions: processing with the intent (refused, and
    // the intent with it, when another finalize went first), valid with the certificate,
    // invalid with the failure; each move audited beside the CA's row.
    signet_testkit::backend_test!(orders_move_with_the_cas_writes, on_backend, async |store: Store| {
        let account = new_account(&store, 'c').await;
        let first = finalizing(&store, &account, "c.acme.example").await;
        let serial = Serial::random();
        let (i, audit) = intent(&serial, "key-1");
        store.record_intent(&i, audit, Some(&first.accepted)).await.unwrap();
        assert_eq!(progress(&store, &first).await, OrderProgress::Processing);

        // A second finalize of the same order, racing: refused, its intent not kept.
        let (racing, audit) = intent(&Serial::random(), "key-2");
        let err = store.record_intent(&racing, audit, Some(&first.accepted)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("order progress")), "{err:?}");
        assert_eq!(store.status(&racing.serial).await.unwrap(), None, "nothing of it is stored");
        let (again, audit) = intent(&Serial::random(), "key-2");
        store.record_intent(&again, audit, None).await.expect("its key is still free");

        let cert =
            IssuedCertificate { der: vec![0x30, 0x00], serial: serial.clone(), not_before: t0(), not_after: t0() };
        let valid = first.issued(serial.clone(), t0()).unwrap();
        let audit = AuditEvent::new(t0(), "acme:test", AuditAction::CertificateIssued, serial.to_hex(), json!({}));
        store.complete_issuance(&cert, audit, Some(&valid)).await.unwrap();
        assert_eq!(progress(&store, &first).await, OrderProgress::Valid { certificate: serial.clone() });
        assert_eq!(store.order_by_certificate(&serial).await.unwrap().map(|o| o.id), Some(first.accepted.order.id));

        let second = finalizing(&store, &account, "d.acme.example").await;
        let failing = Serial::random();
        let (i, audit) = intent(&failing, "key-3");
        store.record_intent(&i, audit, Some(&second.accepted)).await.unwrap();
        let invalid = second.failed(AcmeProblem::issuance_failed(), t0()).unwrap();
        let audit = AuditEvent::new(t0(), "acme:test", AuditAction::IssuanceFailed, failing.to_hex(), json!({}));
        store.fail_issuance(&failing, audit, Some(&invalid)).await.unwrap();
        assert_eq!(progress(&store, &second).await, OrderProgress::Invalid { error: AcmeProblem::issuance_failed() });

        // An issuance whose node stopped after its intent: the intents job resolves the intent
        // as abandoned and concludes the order with it, so its client stops waiting. A
        // certificate coming after that is refused, and the failure that follows changes and
        // audits nothing more.
        let third = finalizing(&store, &account, "e.acme.example").await;
        let stalled = Serial::random();
        let (i, audit) = intent(&stalled, "key-4");
        store.record_intent(&i, audit, Some(&third.accepted)).await.unwrap();
        let later = t0() + signet_ra::issuance::ABANDONED_AFTER + time::Duration::seconds(1);
        // The intent left open above, for no order, is abandoned with it.
        let abandoned = store.abandon_intents(later - signet_ra::issuance::ABANDONED_AFTER, later, 10).await.unwrap();
        assert!(abandoned.contains(&stalled) && abandoned.len() == 2, "{abandoned:?}");
        let interrupted = OrderProgress::Invalid { error: AcmeProblem::issuance_interrupted() };
        assert_eq!(progress(&store, &third).await, interrupted);
        let cert =
            IssuedCertificate { der: vec![0x30, 0x00], serial: stalled.clone(), not_before: t0(), not_after: t0() };
        let audit = AuditEvent::new(t0(), "acme:test", AuditAction::CertificateIssued, stalled.to_hex(), json!({}));
        let refused = store.complete_issuance(&cert, audit, Some(&third.issued(stalled.clone(), t0()).unwrap())).await;
        assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
        let audit = AuditEvent::new(t0(), "acme:test", AuditAction::IssuanceFailed, stalled.to_hex(), json!({}));
        let invalid = third.failed(AcmeProblem::issuance_failed(), t0()).unwrap();
        store.fail_issuance(&stalled, audit, Some(&invalid)).await.unwrap();
        assert_eq!(progress(&store, &third).await, interrupted, "the later writes moved nothing");

        // Processing, then the two intents abandoned in either order, the order's move right
        // after its own intent's.
        let records = store.audit_records().await.unwrap();
        let last: Vec<(&str, &str)> =
            records[records.len() - 4..].iter().map(|r| (r.action.as_str(), r.subject.as_str())).collect();
        let (order_id, stalled_hex) = (third.accepted.order.id.to_string(), stalled.to_hex());
        assert_eq!(last[0], ("acme-order-processing", order_id.as_str()), "{last:?}");
        let at = last.iter().position(|&row| row == ("issuance-abandoned", stalled_hex.as_str())).expect("abandoned");
        assert_eq!(last[at + 1], ("acme-order-invalid", order_id.as_str()), "{last:?}");
        assert_eq!(last.iter().filter(|(action, _)| *action == "issuance-abandoned").count(), 2, "{last:?}");

        let actions = actions(&store).await;
        // Before the third order's rows (created, validated, intent, processing, two
        // abandoned, invalid), the first two orders'.
        let actions = &actions[..actions.len() - 7];
        let after_validation = |n: usize| actions.iter().skip_while(|a| *a != "acme-authorization-validated").nth(n);
        assert_eq!(after_validation(1).map(String::as_str), Some("issuance-intent"));
        assert_eq!(after_validation(2).map(String::as_str), Some("acme-order-processing"));
        assert_eq!(
            actions.iter().rev().take(4).rev().map(String::as_str).collect::<Vec<_>>(),
            ["issuance-intent", "acme-order-processing", "issuance-failed", "acme-order-invalid"],
        );
        assert!(actions.iter().any(|a| a == "acme-order-valid"));
    });

    signet_testkit::backend_test!(nonces_are_spent_once_and_expire, on_backend, async |store: Store| {
        let (a, b) = (Nonce::generate(), Nonce::generate());
        store.issue_nonce(&a, t0()).await.unwrap();
        store.issue_nonce(&b, t0()).await.unwrap();
        assert!(store.consume_nonce(&a, t0()).await.unwrap());
        assert!(!store.consume_nonce(&a, t0()).await.unwrap(), "a nonce is spent once");
        assert!(!store.consume_nonce(&Nonce::generate(), t0()).await.unwrap(), "unknown nonce");
        assert!(!store.consume_nonce(&b, t0() + NONCE_LIFETIME).await.unwrap(), "expired nonce");
        assert!(actions(&store).await.is_empty(), "nonces are not audited");
    });
}
