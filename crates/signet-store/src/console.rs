//! Operator console reads: the vetting queue with its filters, and one application's history
//! (the audit rows whose subject is its reference).
//!
//! The queue filters on fields inside the stored form JSON (program, type, applicant name,
//! email, organization). JSON is read with each backend's own functions, the one place the
//! SQL differs: SQLite's `json_extract` and PostgreSQL's `#>>` over the text cast to `jsonb`.

use signet_ra::application::{ALL_STATE_NAMES, Application, ApplicationId};
use signet_ra::audit::AuditRecord;
use signet_ra::issuance::StoreError;

use crate::applications::{application, like_escape};
use crate::audit::{AUDIT_SELECT, audit_record};
use crate::{Backend, Store, backend_error};

/// Which applications the queue lists, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFilter {
    /// Every application that can still move (the vetting queue).
    #[default]
    Open,
    /// Retrieved, rejected, expired and withdrawn ones.
    Closed,
    /// All of them.
    Any,
    /// Those in one state: one of [`ALL_STATE_NAMES`], which only [`StateFilter::parse`] takes.
    Only(&'static str),
}

impl StateFilter {
    /// Reads a filter as the console's query string writes it: `open` (or empty), `closed`,
    /// `all`, or a state's stored name. `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "all" => Some(Self::Any),
            name => ALL_STATE_NAMES.iter().find(|n| **n == name).map(|n| Self::Only(n)),
        }
    }

    /// The name [`StateFilter::parse`] reads back.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Any => "all",
            Self::Only(name) => name,
        }
    }
}

/// What the operator narrowed the queue to. Empty strings and `None` alike mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// By state.
    pub states: StateFilter,
    /// A federal program's catalog id.
    pub program: Option<String>,
    /// A certificate type id.
    pub cert_type: Option<String>,
    /// Case-insensitive substring of the reference, applicant name, email or organization.
    pub text: Option<String>,
}

/// One page of the queue.
#[derive(Debug, Clone)]
pub struct QueuePage {
    /// The applications, oldest submission first.
    pub applications: Vec<Application>,
    /// Whether another page follows.
    pub more: bool,
}

/// The SQL reading the text at `path` in the `form` JSON column. `path` is a constant of this
/// module, never user input.
fn form_field(backend: Backend, path: &[&str]) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(form, '$.{}')", path.join(".")),
        Backend::Postgres => format!("((form::jsonb) #>> '{{{}}}')", path.join(",")),
    }
}

impl Store {
    /// The applications `filter` admits, oldest submission first (the open window runs from
    /// submission, so this is also the order their open deadlines fall in), skipping `offset`
    /// and returning at most `limit`.
    pub async fn application_queue(
        &self,
        filter: &QueueFilter,
        offset: u64,
        limit: u32,
    ) -> Result<QueuePage, StoreError> {
        let b = self.backend();
        let (program, cert_type) = (form_field(b, &["program"]), form_field(b, &["certificate", "cert_type"]));
        let text_columns = [
            "id".to_owned(),
            form_field(b, &["applicant", "name"]),
            form_field(b, &["applicant", "email"]),
            form_field(b, &["organization"]),
        ];
        let text_match: Vec<String> = text_columns.iter().map(|c| format!("LOWER({c}) LIKE $5 ESCAPE '\\'")).collect();
        let sql = format!(
            "SELECT id, form, submitted_at, revision, state, state_data FROM applications \
             WHERE ($1 < 0 OR is_open = $1) AND ($2 = '' OR state = $2) \
             AND ($3 = '' OR {program} = $3) AND ($4 = '' OR {cert_type} = $4) \
             AND ($5 = '' OR {}) \
             ORDER BY submitted_at, id LIMIT $6 OFFSET $7",
            text_match.join(" OR ")
        );
        let (is_open, state): (i64, &str) = match filter.states {
            StateFilter::Open => (1, ""),
            StateFilter::Closed => (0, ""),
            StateFilter::Any => (-1, ""),
            StateFilter::Only(name) => (-1, name),
        };
        let text = filter.text.as_deref().map(str::trim).unwrap_or_default();
        let pattern = if text.is_empty() { String::new() } else { format!("%{}%", like_escape(&text.to_lowercase())) };
        let offset = i64::try_from(offset).map_err(|_| StoreError::Backend("queue offset out of range".into()))?;
        // One row more than the page tells whether another page follows.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(is_open)
            .bind(state.to_owned())
            .bind(filter.program.clone().unwrap_or_default())
            .bind(filter.cert_type.clone().unwrap_or_default())
            .bind(pattern)
            .bind(i64::from(limit) + 1)
            .bind(offset)
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        let more = rows.len() > limit as usize;
        let applications = rows.iter().take(limit as usize).map(application).collect::<Result<_, _>>()?;
        Ok(QueuePage { applications, more })
    }

    /// The audit rows whose subject is the application `id` — its transitions and the
    /// operators' notes — oldest first.
    pub async fn application_history(&self, id: &ApplicationId) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} WHERE subject = $1 ORDER BY seq")))
            .bind(id.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter().map(audit_record).collect::<Result<_, sqlx::Error>>().map_err(backend_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_filters_round_trip_and_refuse_unknown_names() {
        for name in ["open", "closed", "all"].into_iter().chain(ALL_STATE_NAMES) {
            assert_eq!(StateFilter::parse(name).map(|f| f.as_str()), Some(name));
        }
        assert_eq!(StateFilter::parse(""), Some(StateFilter::Open));
        assert_eq!(StateFilter::parse("approved'; --"), None);
    }

    #[test]
    fn form_fields_use_each_backends_json_syntax() {
        assert_eq!(form_field(Backend::Sqlite, &["applicant", "name"]), "json_extract(form, '$.applicant.name')");
        assert_eq!(form_field(Backend::Postgres, &["applicant", "name"]), "((form::jsonb) #>> '{applicant,name}')");
    }
}
