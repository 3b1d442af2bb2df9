//! The public repository of certificates (signet_ra::repository) on sqlx: certificates by
//! their subject's email, and the accounts that publish their identity certificates.

use signet_pki::Serial;
use signet_ra::application::ApplicationId;
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::repository::{LookupAddress, RepositoryCertificate, RepositoryStore};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::cmc::{AccountCertificate, CERTIFICATE_COLUMNS, account_certificate};
use crate::{Store, backend_error};

/// An issued certificate with its account's choice: the certificate's own columns, then
/// `since` (NULL unless its account publishes identity certificates). A certificate names its
/// account in `requested_by` in one of the two forms `signet_ra::cmc::account_of` reads.
const SELECT: &str = "FROM certificates LEFT JOIN published_identities \
     ON requested_by IN ('applicant:' || account, 'subscriber:' || account) WHERE state = 'issued'";

impl AccountCertificate {
    /// The certificate as the repository's rules judge it, for an account that does (or does
    /// not) publish its identity certificates.
    pub fn in_repository(self, identity_chosen: bool) -> RepositoryCertificate {
        RepositoryCertificate {
            serial: self.serial,
            profile: self.profile,
            der: self.der,
            not_before: self.not_before,
            not_after: self.not_after,
            status: self.status,
            identity_chosen,
        }
    }
}

fn repository_certificate(r: &AnyRow) -> Result<RepositoryCertificate, StoreError> {
    let since: Option<i64> = r.try_get(7).map_err(backend_error)?;
    Ok(account_certificate(r)?.in_repository(since.is_some()))
}

impl RepositoryStore for Store {
    async fn certificates_for_address(
        &self,
        address: &LookupAddress,
    ) -> Result<Vec<RepositoryCertificate>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS}, since {SELECT} AND subject_email = $1"
        )))
        .bind(address.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(repository_certificate).collect()
    }

    async fn repository_certificate(&self, serial: &Serial) -> Result<Option<RepositoryCertificate>, StoreError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CERTIFICATE_COLUMNS}, since {SELECT} AND serial = $1")))
                .bind(serial.to_hex())
                .fetch_optional(self.pool())
                .await
                .map_err(backend_error)?;
        row.as_ref().map(repository_certificate).transpose()
    }

    async fn identity_published(&self, account: &ApplicationId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT since FROM published_identities WHERE account = $1")
            .bind(account.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(row.is_some())
    }

    async fn set_identity_published(
        &self,
        account: &ApplicationId,
        publish: bool,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let (account, at) = (account.as_str().to_owned(), audit.at.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let query = if publish {
                    sqlx::query(
                        "INSERT INTO published_identities (account, since) VALUES ($1, $2) \
                         ON CONFLICT (account) DO NOTHING",
                    )
                    .bind(account)
                    .bind(at)
                } else {
                    sqlx::query("DELETE FROM published_identities WHERE account = $1").bind(account)
                };
                query.execute(&mut *c).await.map_err(backend_error)?;
                Ok(())
            })
        })
        .await
    }
}
