//! Enterprise account users (signet_ra::enterprise) on sqlx.

use signet_ra::application::{ApplicationId, ApplicationStore, OrganizationKey};
use signet_ra::audit::AuditEvent;
use signet_ra::enterprise::{Candidate, EnterpriseStore, EnterpriseUser};
use signet_ra::issuance::StoreError;
use sqlx::Row;
use time::OffsetDateTime;

use crate::applications::{corrupt, ts};
use crate::{Store, backend_error, unique_or};

impl Store {
    /// What [`signet_ra::enterprise::check_candidate`] needs to know about `account` joining an
    /// enterprise account that has `users`: its organization, whether it holds a valid identity
    /// certificate at `now`, and whether it is among them.
    pub async fn enterprise_candidate(
        &self,
        account: &ApplicationId,
        users: &[EnterpriseUser],
        now: OffsetDateTime,
    ) -> Result<Candidate, StoreError> {
        Ok(Candidate {
            organization: self.load(account).await?.map(|a| OrganizationKey::of(&a.form().organization)),
            vetted: self.holds_identity_certificate(account, now).await?,
            already_user: users.iter().any(|u| &u.account == account),
        })
    }
}

impl EnterpriseStore for Store {
    async fn enterprise_users(&self, organization: &OrganizationKey) -> Result<Vec<EnterpriseUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, added_by, added_at FROM enterprise_users WHERE organization_key = $1 \
             ORDER BY added_at, account",
        )
        .bind(organization.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let account: String = r.try_get(0).map_err(backend_error)?;
                Ok(EnterpriseUser {
                    organization: organization.clone(),
                    account: ApplicationId::new(&account).map_err(|e| corrupt("enterprise user", e))?,
                    added_by: r.try_get(1).map_err(backend_error)?,
                    added_at: ts(r.try_get(2).map_err(backend_error)?)?,
                })
            })
            .collect()
    }

    async fn add_enterprise_user(&self, user: &EnterpriseUser, audit: AuditEvent) -> Result<(), StoreError> {
        let user = user.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO enterprise_users (organization_key, account, added_by, added_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user.organization.as_str())
                .bind(user.account.as_str())
                .bind(&user.added_by)
                .bind(user.added_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "enterprise user"))?;
                Ok(())
            })
        })
        .await
    }
}
