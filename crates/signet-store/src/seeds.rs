//! TOTP seeds at rest: operators' (`operators.totp_secret`) and subscribers' soft tokens'
//! (`soft_tokens.secret`). The server must compute codes, so a seed cannot be hashed like a
//! password; it is sealed instead (AES-256-GCM under the CA folder's `sealing.key`, which never
//! enters the database) and stored as `sealed:v1:<hex of nonce ‖ ciphertext ‖ tag>`. The seal is
//! bound to its row (operator id; soft token serial and account), so a sealed seed copied onto
//! another row does not open.
//!
//! Reading accepts sealed seeds only. Seeds an earlier version stored in clear are sealed by
//! [`Store::with_sealing_key`] before the store is used; after that a clear seed can only have
//! been written by someone who can write the database but lacks the key, and accepting it would
//! let them give an operator or subscriber a seed they know — what the row binding prevents.

use std::sync::Arc;

use signet_pki::seal::{SealError, SealingKey};
use signet_ra::issuance::StoreError;
use signet_ra::totp::TotpSecret;
use sqlx::Row;

use crate::{OpenError, Store, backend_error};

/// What every sealed seed (and kept page) starts with; the version names the sealing scheme.
pub(crate) const SEALED_PREFIX: &str = "sealed:v1:";

/// Why a TOTP seed could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SeedError {
    /// The store has no sealing key ([`Store::with_sealing_key`]); seeds are never written in
    /// clear, nor read.
    #[error("the store has no sealing key for TOTP seeds")]
    NoKey,
    /// The stored seed is in clear, which is refused once seeds are sealed.
    #[error("the TOTP seed is stored in clear")]
    Clear,
    /// The sealed seed is damaged, was sealed under another key, or belongs to another row.
    #[error("the sealed TOTP seed does not open with this sealing.key for this row")]
    Open,
    /// The system's random generator failed.
    #[error("no randomness to seal the TOTP seed")]
    Random,
    /// What the seal holds is not a base32 TOTP seed.
    #[error("the TOTP seed is not valid base32")]
    Seed,
}

impl From<SealError> for SeedError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Random => Self::Random,
            _ => Self::Open,
        }
    }
}

/// The row a seed belongs to; its form is the seal's associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedOwner<'a> {
    /// An operator, by id.
    Operator(&'a str),
    /// A soft token, by serial and the account holding it (neither contains ':').
    SoftToken {
        /// The token's serial.
        serial: &'a str,
        /// The subscriber account.
        account: &'a str,
    },
}

impl SeedOwner<'_> {
    fn context(self) -> Vec<u8> {
        match self {
            Self::Operator(id) => format!("operator-totp:{id}"),
            Self::SoftToken { serial, account } => format!("soft-token-totp:{serial}:{account}"),
        }
        .into_bytes()
    }

    /// How the row is named in errors.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Operator(id) => format!("operator {id}"),
            Self::SoftToken { serial, .. } => format!("soft token {serial}"),
        }
    }
}

/// A seed failure as the domain sees it; the message names the row, never the seed.
pub(crate) fn seed_error(owner: SeedOwner<'_>, e: SeedError) -> StoreError {
    StoreError::Backend(format!("TOTP seed of {}: {e}", owner.describe()))
}

/// One table holding seeds: the query for its clear seeds (key, seed, account), the
/// compare-and-set that seals one, and whose row it is.
struct SeedTable {
    select: &'static str,
    update: &'static str,
    owner: for<'a> fn(&'a str, &'a str) -> SeedOwner<'a>,
}

const SEED_TABLES: [SeedTable; 2] = [
    SeedTable {
        select: "SELECT id, totp_secret, '' FROM operators WHERE totp_secret NOT LIKE 'sealed:%'",
        update: "UPDATE operators SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3",
        owner: |id, _| SeedOwner::Operator(id),
    },
    SeedTable {
        select: "SELECT serial, secret, account FROM soft_tokens WHERE secret NOT LIKE 'sealed:%'",
        update: "UPDATE soft_tokens SET secret = $1 WHERE serial = $2 AND secret = $3",
        owner: |serial, account| SeedOwner::SoftToken { serial, account },
    },
];

impl Store {
    /// Gives the store the key that seals TOTP seeds (and sessions' kept pages) at rest (the
    /// CA folder's `sealing.key`), after sealing the seeds an earlier version stored in clear. Without it the store reads
    /// and writes no operator or soft token. Several nodes may run this at once: each seed is
    /// sealed by a compare-and-set on its clear value, so only one of them seals it.
    pub async fn with_sealing_key(mut self, key: SealingKey) -> Result<Self, OpenError> {
        self.sealing = Some(Arc::new(key));
        let sealed = self.seal_clear_seeds().await.map_err(OpenError::SealSeeds)?;
        if sealed > 0 {
            tracing::info!(sealed, "sealed the TOTP seeds an earlier version stored in clear");
        }
        Ok(self)
    }

    /// Seals every clear seed; returns how many this call sealed. Not audited: like a
    /// migration it changes how a value is stored, not what it is.
    async fn seal_clear_seeds(&self) -> Result<u64, StoreError> {
        let mut sealed = 0;
        for table in &SEED_TABLES {
            let rows = sqlx::query(table.select).fetch_all(self.pool()).await.map_err(backend_error)?;
            for row in rows {
                let key: String = row.try_get(0).map_err(backend_error)?;
                let clear: String = row.try_get(1).map_err(backend_error)?;
                let account: String = row.try_get(2).map_err(backend_error)?;
                let owner = (table.owner)(&key, &account);
                let secret = TotpSecret::from_base32(&clear).map_err(|_| seed_error(owner, SeedError::Seed))?;
                let value = self.seal_seed(&secret, owner).map_err(|e| seed_error(owner, e))?;
                sealed += sqlx::query(table.update)
                    .bind(value)
                    .bind(&key)
                    .bind(&clear)
                    .execute(self.pool())
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
            }
        }
        Ok(sealed)
    }

    /// The stored form of `secret` for `owner`'s row.
    pub(crate) fn seal_seed(&self, secret: &TotpSecret, owner: SeedOwner<'_>) -> Result<String, SeedError> {
        let key = self.sealing.as_ref().ok_or(SeedError::NoKey)?;
        let sealed = key.seal(secret.to_base32().as_bytes(), &owner.context())?;
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(sealed)))
    }

    /// The seed stored as `stored` in `owner`'s row.
    pub(crate) fn open_seed(&self, stored: &str, owner: SeedOwner<'_>) -> Result<TotpSecret, SeedError> {
        let key = self.sealing.as_ref().ok_or(SeedError::NoKey)?;
        let sealed = stored.strip_prefix(SEALED_PREFIX).ok_or(SeedError::Clear)?;
        let sealed = hex::decode(sealed).map_err(|_| SeedError::Open)?;
        let base32 = String::from_utf8(key.open(&sealed, &owner.context())?).map_err(|_| SeedError::Seed)?;
        TotpSecret::from_base32(&base32).map_err(|_| SeedError::Seed)
    }
}
