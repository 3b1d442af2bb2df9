//! Self-service account links in a database (sqlx `Any`: SQLite by default, PostgreSQL when
//! several gateways share their links). A certificate holder asks for a link
//! ([`LinkStore::request`]); a gateway administrator approves or refuses it
//! ([`LinkStore::decide`]); every change is written to an audit table in the same
//! transaction. A link names one certificate (issuer DN + serial), so it goes when that
//! certificate is revoked or expires ([`LinkStore::remove_certificate`],
//! [`LinkStore::purge_expired`]); the renewed certificate asks again.
//!
//! Times are Unix seconds; ids are random hex (audit ids start with the time they were
//! written, so they sort), so the same SQL runs on both backends.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// Why the link database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The URL names neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL (use sqlite:… or postgres://…)")]
    UnsupportedUrl,
    /// A database error.
    #[error("link database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The certificate a link or request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// Subject DN as the gateway shows it.
    pub subject_dn: String,
    /// Issuer DN.
    pub issuer_dn: String,
    /// Serial, lower-case hex.
    pub serial_hex: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// Where a link request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestStatus {
    /// Waiting for an administrator.
    Pending,
    /// Approved: the link exists (until the certificate is revoked or expires).
    Approved,
    /// Refused by an administrator.
    Refused,
}

impl RequestStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "approved" => Self::Approved,
            "refused" => Self::Refused,
            _ => Self::Pending,
        }
    }
}

/// A request to link a certificate to an account.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    /// Random id.
    pub id: String,
    /// The certificate.
    pub cert: CertRef,
    /// The account asked for.
    pub account: String,
    /// The requester's note to the administrator.
    pub note: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// The administrator who decided (empty while pending).
    pub decided_by: String,
    /// When it was decided (0 while pending).
    pub decided_at: i64,
    /// When it was asked.
    pub created_at: i64,
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When.
    pub at: i64,
    /// Who: the administrator's account, the requester's subject, or `gateway`.
    pub actor: String,
    /// `requested`, `approved`, `refused`, `unlinked-revoked`, `unlinked-expired`.
    pub action: String,
    /// The account concerned.
    pub account: String,
    /// The certificate's serial.
    pub serial: String,
    /// Free text.
    pub detail: String,
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS gateway_links (issuer_dn TEXT NOT NULL, serial TEXT NOT NULL, \
     subject_dn TEXT NOT NULL, account TEXT NOT NULL, not_after BIGINT NOT NULL, request_id TEXT NOT NULL, \
     created_at BIGINT NOT NULL, PRIMARY KEY (issuer_dn, serial))",
    "CREATE TABLE IF NOT EXISTS gateway_link_requests (id TEXT PRIMARY KEY, issuer_dn TEXT NOT NULL, \
     serial TEXT NOT NULL, subject_dn TEXT NOT NULL, not_after BIGINT NOT NULL, account TEXT NOT NULL, \
     note TEXT NOT NULL, status TEXT NOT NULL, decided_by TEXT NOT NULL, decided_at BIGINT NOT NULL, \
     created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gateway_link_audit (id TEXT PRIMARY KEY, at BIGINT NOT NULL, \
     actor TEXT NOT NULL, action TEXT NOT NULL, request_id TEXT NOT NULL, account TEXT NOT NULL, \
     issuer_dn TEXT NOT NULL, serial TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gateway_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
];

const REQUEST_COLUMNS: &str =
    "id, issuer_dn, serial, subject_dn, not_after, account, note, status, decided_by, decided_at, created_at";

fn random_hex() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b).expect("system random");
    hex::encode(b)
}

/// Audit ids sort in the order entries were written (wall-clock nanoseconds, then random),
/// also within one second.
fn audit_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:024}-{}", &random_hex()[..8])
}

fn request_row(r: &AnyRow) -> Result<LinkRequest, sqlx::Error> {
    Ok(LinkRequest {
        id: r.try_get("id")?,
        cert: CertRef {
            subject_dn: r.try_get("subject_dn")?,
            issuer_dn: r.try_get("issuer_dn")?,
            serial_hex: r.try_get("serial")?,
            not_after: r.try_get("not_after")?,
        },
        account: r.try_get("account")?,
        note: r.try_get("note")?,
        status: RequestStatus::parse(&r.try_get::<String, _>("status")?),
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The link database.
#[derive(Debug, Clone)]
pub struct LinkStore {
    pool: AnyPool,
}

impl LinkStore {
    /// Opens (creating a SQLite file if needed) and creates the tables at `url`.
    pub async fn open(url: &str) -> Result<Self, LinkError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !(sqlite || url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            return Err(LinkError::UnsupportedUrl);
        }
        let url = if sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
        } else {
            url.to_owned()
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 2 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: lookups go on while a decision is written; a second writer
                        // waits instead of failing.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// The secret that signs form tokens, created on first use and shared by every gateway
    /// on this database.
    pub async fn form_secret(&self) -> Result<Vec<u8>, LinkError> {
        let fresh = format!("{}{}", random_hex(), random_hex());
        // Two gateways starting together: the primary key keeps the first, both read it.
        let _ = sqlx::query("INSERT INTO gateway_secrets (name, value) VALUES ('form', $1)")
            .bind(fresh)
            .execute(&self.pool)
            .await;
        let v: String =
            sqlx::query("SELECT value FROM gateway_secrets WHERE name = 'form'").fetch_one(&self.pool).await?.get(0);
        Ok(hex::decode(v).unwrap_or_default())
    }

    /// The account linked to this certificate, if the link is still current.
    pub async fn linked(&self, cert: &CertRef, now: i64) -> Result<Option<String>, LinkError> {
        let row =
            sqlx::query("SELECT account FROM gateway_links WHERE issuer_dn = $1 AND serial = $2 AND not_after > $3")
                .bind(&cert.issuer_dn)
                .bind(&cert.serial_hex)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The certificate's most recent request.
    pub async fn latest_request(&self, cert: &CertRef) -> Result<Option<LinkRequest>, LinkError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM gateway_link_requests WHERE issuer_dn = $1 AND serial = $2 \
             ORDER BY created_at DESC, id LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cert.issuer_dn)
            .bind(&cert.serial_hex)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(request_row).transpose()?)
    }

    /// Files a request, unless the certificate already has one pending (then that one is
    /// returned).
    pub async fn request(&self, cert: &CertRef, account: &str, note: &str, now: i64) -> Result<LinkRequest, LinkError> {
        if let Some(r) = self.latest_request(cert).await?
            && r.status == RequestStatus::Pending
        {
            return Ok(r);
        }
        let id = random_hex();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO gateway_link_requests (id, issuer_dn, serial, subject_dn, not_after, account, note, status, \
             decided_by, decided_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', '', 0, $8)",
        )
        .bind(&id)
        .bind(&cert.issuer_dn)
        .bind(&cert.serial_hex)
        .bind(&cert.subject_dn)
        .bind(cert.not_after)
        .bind(account)
        .bind(note)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, now, &cert.subject_dn, "requested", &id, account, cert, note).await?;
        tx.commit().await?;
        Ok(LinkRequest {
            id,
            cert: cert.clone(),
            account: account.to_owned(),
            note: note.to_owned(),
            status: RequestStatus::Pending,
            decided_by: String::new(),
            decided_at: 0,
            created_at: now,
        })
    }

    /// Requests waiting for a decision, oldest first.
    pub async fn pending(&self) -> Result<Vec<LinkRequest>, LinkError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM gateway_link_requests WHERE status = 'pending' ORDER BY created_at, id LIMIT 200"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(request_row).collect::<Result<_, _>>()?)
    }

    /// Approves (creating the link) or refuses a pending request; `None` if there is no
    /// pending request with that id.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        admin: &str,
        now: i64,
    ) -> Result<Option<LinkRequest>, LinkError> {
        let status = if approve { RequestStatus::Approved } else { RequestStatus::Refused };
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE gateway_link_requests SET status = $1, decided_by = $2, decided_at = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(admin)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(None);
        }
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM gateway_link_requests WHERE id = $1");
        let request = request_row(&sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *tx).await?)?;
        let cert = &request.cert;
        if approve {
            sqlx::query("DELETE FROM gateway_links WHERE issuer_dn = $1 AND serial = $2")
                .bind(&cert.issuer_dn)
                .bind(&cert.serial_hex)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO gateway_links (issuer_dn, serial, subject_dn, account, not_after, request_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&cert.issuer_dn)
            .bind(&cert.serial_hex)
            .bind(&cert.subject_dn)
            .bind(&request.account)
            .bind(cert.not_after)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        audit(&mut tx, now, admin, status.as_str(), id, &request.account, cert, "").await?;
        tx.commit().await?;
        Ok(Some(request))
    }

    /// Removes the links of one certificate (`why`: `revoked` or `expired`); returns how
    /// many there were.
    pub async fn remove_certificate(
        &self,
        issuer_dn: &str,
        serial_hex: &str,
        why: &str,
        now: i64,
    ) -> Result<u64, LinkError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT issuer_dn, serial, subject_dn, account, not_after, request_id FROM gateway_links \
             WHERE issuer_dn = $1 AND serial = $2",
        )
        .bind(issuer_dn)
        .bind(serial_hex)
        .fetch_all(&mut *tx)
        .await?;
        self.remove_rows(&mut tx, &rows, why, now).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Removes every link whose certificate has expired; returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, LinkError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT issuer_dn, serial, subject_dn, account, not_after, request_id FROM gateway_links \
             WHERE not_after <= $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        self.remove_rows(&mut tx, &rows, "expired", now).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn remove_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rows: &[AnyRow],
        why: &str,
        now: i64,
    ) -> Result<(), LinkError> {
        for r in rows {
            let cert = CertRef {
                issuer_dn: r.try_get("issuer_dn")?,
                serial_hex: r.try_get("serial")?,
                subject_dn: r.try_get("subject_dn")?,
                not_after: r.try_get("not_after")?,
            };
            let account: String = r.try_get("account")?;
            let request_id: String = r.try_get("request_id")?;
            sqlx::query("DELETE FROM gateway_links WHERE issuer_dn = $1 AND serial = $2")
                .bind(&cert.issuer_dn)
                .bind(&cert.serial_hex)
                .execute(&mut **tx)
                .await?;
            let action = format!("unlinked-{why}");
            audit(tx, now, "gateway", &action, &request_id, &account, &cert, "").await?;
        }
        Ok(())
    }

    /// The most recent audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, LinkError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, account, serial, detail FROM gateway_link_audit ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    account: r.try_get("account")?,
                    serial: r.try_get("serial")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: i64,
    actor: &str,
    action: &str,
    request_id: &str,
    account: &str,
    cert: &CertRef,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO gateway_link_audit (id, at, actor, action, request_id, account, issuer_dn, serial, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(audit_id())
    .bind(now)
    .bind(actor)
    .bind(action)
    .bind(request_id)
    .bind(account)
    .bind(&cert.issuer_dn)
    .bind(&cert.serial_hex)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &str, not_after: i64) -> CertRef {
        CertRef {
            subject_dn: "C=US, CN=Ann".into(),
            issuer_dn: "C=US, CN=Signet ECA 1".into(),
            serial_hex: serial.into(),
            not_after,
        }
    }

    signet_testkit::backend_test!(request_decide_and_unlink_are_audited, request_decide_and_unlink_are_audited);

    async fn request_decide_and_unlink_are_audited(backend: &str) {
        let db = signet_testkit::TestDb::new(backend).await;
        request_decide_and_unlink(&db.url).await;
    }

    async fn request_decide_and_unlink(url: &str) {
        let store = LinkStore::open(url).await.unwrap();
        let (ann, old) = (cert("0a", 2000), cert("0b", 1500));
        assert_eq!(store.linked(&ann, 100).await.unwrap(), None);
        let r = store.request(&ann, "ann", "please", 100).await.unwrap();
        assert_eq!(store.request(&ann, "other", "again", 101).await.unwrap().id, r.id, "one pending at a time");
        assert_eq!(store.pending().await.unwrap().len(), 1);
        assert_eq!(store.decide(&r.id, true, "ops", 110).await.unwrap().unwrap().account, "ann");
        assert!(store.decide(&r.id, false, "ops", 111).await.unwrap().is_none(), "decided once");
        assert_eq!(store.linked(&ann, 120).await.unwrap().as_deref(), Some("ann"));
        assert_eq!(store.latest_request(&ann).await.unwrap().unwrap().status, RequestStatus::Approved);

        let refused = store.request(&old, "admin", "", 130).await.unwrap();
        store.decide(&refused.id, false, "ops", 131).await.unwrap();
        assert_eq!(store.linked(&old, 140).await.unwrap(), None);
        let mine = store.latest_request(&old).await.unwrap().unwrap();
        assert_eq!((mine.status, mine.decided_by.as_str()), (RequestStatus::Refused, "ops"));

        // Expired links are not honoured, and purged; revoked ones are removed.
        assert_eq!(store.linked(&ann, 2000).await.unwrap(), None);
        assert_eq!(store.remove_certificate(&ann.issuer_dn, "0a", "revoked", 150).await.unwrap(), 1);
        assert_eq!(store.linked(&ann, 160).await.unwrap(), None);
        let actions: Vec<String> = store.audit_log(10).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["unlinked-revoked", "refused", "requested", "approved", "requested"]);

        // The form secret is made once and kept.
        let secret = store.form_secret().await.unwrap();
        assert_eq!(secret.len(), 32);
        assert_eq!(LinkStore::open(url).await.unwrap().form_secret().await.unwrap(), secret, "{url}");
    }
}
