//! The organization register: search for the wizard (confirmed organizations only), the
//! console's list, and the RA's decisions, each written with its audit event only if the
//! organization is still pending.

use signet_pki::subject::OrganizationName;
use signet_ra::application::{Organization, OrganizationKey};
use signet_ra::issuance::StoreError;
use signet_ra::organization::{Decision, OrganizationStatus, RegisteredOrganization};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::applications::{corrupt, like_escape, ts};
use crate::{Store, backend_error};

const COLUMNS: &str = "org_key, name, status, merged_into, created_at";

/// A key as stored: the stored key, not one recomputed from the name, since the key is what the
/// UNIQUE constraint held, even if the folding rules change later.
fn stored_key(key: String, what: &str) -> Result<OrganizationKey, StoreError> {
    serde_json::from_value::<OrganizationKey>(serde_json::Value::String(key)).map_err(|e| corrupt(what, e))
}

/// The name and key of a row that starts with `org_key, name`.
pub(crate) fn organization(row: &AnyRow) -> Result<Organization, StoreError> {
    let key: String = row.try_get(0).map_err(backend_error)?;
    let name: String = row.try_get(1).map_err(backend_error)?;
    let what = format!("organization {key}");
    Ok(Organization {
        name: OrganizationName::new(&name).map_err(|e| corrupt(&what, e))?,
        key: stored_key(key, &what)?,
    })
}

fn registered(row: &AnyRow) -> Result<RegisteredOrganization, StoreError> {
    let organization = organization(row)?;
    let what = format!("organization {}", organization.key);
    let status: String = row.try_get(2).map_err(backend_error)?;
    let merged_into =
        row.try_get::<Option<String>, _>(3).map_err(backend_error)?.map(|k| stored_key(k, &what)).transpose()?;
    let status = OrganizationStatus::from_stored(&status, merged_into).map_err(|e| corrupt(&what, e))?;
    Ok(RegisteredOrganization { organization, status, registered_at: ts(row.try_get(4).map_err(backend_error)?)? })
}

impl Store {
    /// Confirmed organizations whose key starts with the key of `query`, or whose name contains
    /// `query` (case-insensitively), by name, at most `limit`: the organization picker's search
    /// box. Pending, merged and rejected ones are never offered.
    pub async fn search_organizations(&self, query: &str, limit: u32) -> Result<Vec<Organization>, StoreError> {
        let query = query.trim();
        // Text that is not a valid organization name still searches by name substring; the key
        // pattern then matches nothing (keys are never empty).
        let key = OrganizationName::new(query).map(|n| OrganizationKey::of(&n).as_str().to_owned()).unwrap_or_default();
        let key_pattern = if key.is_empty() { String::new() } else { format!("{}%", like_escape(&key)) };
        let name_pattern = format!("%{}%", like_escape(&query.to_lowercase()));
        let rows = sqlx::query(
            "SELECT org_key, name FROM organizations WHERE status = 'confirmed' \
             AND (org_key LIKE $1 ESCAPE '\\' OR name_lower LIKE $2 ESCAPE '\\') \
             ORDER BY name_lower, org_key LIMIT $3",
        )
        .bind(key_pattern)
        .bind(name_pattern)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(organization).collect()
    }

    /// One organization by key, whatever its status.
    pub async fn registered_organization(
        &self,
        key: &OrganizationKey,
    ) -> Result<Option<RegisteredOrganization>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM organizations WHERE org_key = $1")))
            .bind(key.as_str().to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        row.as_ref().map(registered).transpose()
    }

    /// The console's list: pending organizations first (oldest first, the order they wait
    /// in), then the others by name.
    pub async fn registered_organizations(&self) -> Result<Vec<RegisteredOrganization>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM organizations \
             ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END, \
             CASE WHEN status = 'pending' THEN created_at ELSE 0 END, name_lower, org_key"
        )))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(registered).collect()
    }

    /// Stores a decision with its audit event. `Conflict("organization decided")` if the
    /// organization is no longer pending (another operator decided first), and nothing is
    /// written; a merge also needs its target to be still confirmed.
    pub async fn save_organization_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        let key = decision.organization.organization.key.as_str().to_owned();
        let status = decision.organization.status.name();
        let into = decision.organization.status.merged_into().map(|k| k.as_str().to_owned());
        self.audited(&decision.audit, move |c| {
            Box::pin(async move {
                if let Some(into) = &into {
                    let target = sqlx::query("SELECT 1 FROM organizations WHERE org_key = $1 AND status = 'confirmed'")
                        .bind(into.clone())
                        .fetch_optional(&mut *c)
                        .await
                        .map_err(backend_error)?;
                    if target.is_none() {
                        return Err(StoreError::Conflict("organization decided"));
                    }
                }
                let done = sqlx::query(
                    "UPDATE organizations SET status = $1, merged_into = $2 WHERE org_key = $3 AND status = 'pending'",
                )
                .bind(status)
                .bind(into)
                .bind(key)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Conflict("organization decided")) }
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quoted names in the status CHECK of each backend's migration.
    #[test]
    fn migration_status_list_is_every_status() {
        for (backend, sql) in [
            ("sqlite", include_str!("../migrations/sqlite/0016_organization_status.sql")),
            ("postgres", include_str!("../migrations/postgres/0016_organization_status.sql")),
        ] {
            let start = sql.find("CHECK (status IN (").expect("a CHECK list") + "CHECK (status IN (".len();
            let list: Vec<&str> = sql[start..start + sql[start..].find(')').unwrap()]
                .split(',')
                .map(|s| s.trim().trim_matches('\''))
                .collect();
            assert_eq!(list, OrganizationStatus::ALL_NAMES, "{backend}");
        }
    }
}
