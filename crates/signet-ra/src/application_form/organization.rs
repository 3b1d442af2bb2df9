//! An applicant's organization as entered: its name and the key that finds duplicates ("Acme,
//! Inc." and "ACME Inc" are one). Whether the RA confirmed it is [`crate::organization`]'s.

use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_pki::subject::OrganizationName;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::Actor;
use crate::input::string_display;

/// An organization's duplicate-detection key: case, punctuation and spacing folded, `&` read as
/// "and", and the usual legal-form spellings collapsed, so "Acme, Inc." and "ACME Inc" — or
/// "Acme Incorporated" — are one organization. DESIGN §2: once created, others in the company
/// find the organization instead of creating another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrganizationKey(String);

impl OrganizationKey {
    /// The key of a name.
    pub fn of(name: &OrganizationName) -> Self {
        let spaced: String = name
            .as_str()
            .chars()
            .flat_map(char::to_lowercase)
            .map(|c| if c.is_alphanumeric() || c == '&' { c } else { ' ' })
            .collect::<String>()
            .replace('&', " and ");
        let mut words: Vec<String> = Vec::new();
        let mut in_initials = false;
        for w in spaced.split_whitespace() {
            // "L.L.C." splits into one-letter words: glue each run of them back into one word.
            if w.chars().count() == 1 && in_initials {
                words.last_mut().expect("a run has a first word").push_str(w);
                continue;
            }
            in_initials = w.chars().count() == 1;
            words.push(
                match w {
                    "incorporated" => "inc",
                    "corporation" => "corp",
                    "company" => "co",
                    "limited" => "ltd",
                    w => w,
                }
                .to_owned(),
            );
        }
        Self(words.join(" "))
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An applicant's organization (the certificate's organization OU, DESIGN §2). Search and
/// creation are the store's; the key is what makes "Acme, Inc." find "ACME Inc".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The name as first entered.
    pub name: OrganizationName,
    /// The duplicate-detection key.
    pub key: OrganizationKey,
}

impl Organization {
    /// A new organization.
    pub fn new(name: OrganizationName) -> Self {
        let key = OrganizationKey::of(&name);
        Self { name, key }
    }
    /// The audit event for creating it.
    pub fn created_event(&self, at: OffsetDateTime, actor: &Actor) -> AuditEvent {
        AuditEvent::new(
            at,
            &actor.audit_name(),
            AuditAction::OrganizationCreated,
            self.key.as_str(),
            json!({ "name": self.name.as_str() }),
        )
    }
}
string_display!(OrganizationKey);

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn organization_names_fold_for_duplicates() {
        let key = |s: &str| OrganizationKey::of(&OrganizationName::new(s).unwrap()).as_str().to_owned();
        assert_eq!(key("Acme, Inc."), key("ACME Inc"));
        assert_eq!(key("Acme Incorporated"), key("acme  inc."));
        assert_eq!(key("Smith & Sons L.L.C."), key("Smith and Sons LLC"));
        assert_eq!(key("Acme, Inc."), "acme inc");
        assert_ne!(key("Acme Inc"), key("Acme Rockets Inc"));
        let org = Organization::new(OrganizationName::new("Acme, Inc.").unwrap());
        let ev = org.created_event(datetime!(2025-03-03 15:00 UTC), &Actor::Applicant);
        assert_eq!((ev.action, ev.subject.as_str()), (AuditAction::OrganizationCreated, "acme inc"));
    }
}
