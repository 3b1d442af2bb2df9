//! What the applicant types on the wizard's details step, and every refusal the wizard words
//! for them. The domain's errors name fields and formats as the code knows them; an applicant
//! reads what to do instead, in the words of the form, beside the field — and every wrong field
//! at once, so nobody corrects one field per round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use signet_pki::subject::{CommonName, Email, OrganizationName, SubjectError};
use signet_ra::application::{AddressLine, PersonalInfo, PhoneNumber, StateCode, US_STATES, UsAddress, ZipCode};

/// Field → message, shown beside the field.
pub(crate) type Errors = BTreeMap<&'static str, String>;

/// The most characters a name, an organization, an address line or a city may have: the
/// certificate's (X.520) bound, which the printed forms and shipping labels also fit.
pub(crate) const NAME_MAX: usize = 64;

/// The most characters of a purchase-order number.
pub(crate) const PO_MAX: usize = 30;

/// The details step's fields, as typed.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PersonalFields {
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) line1: String,
    pub(crate) line2: String,
    pub(crate) city: String,
    pub(crate) state: String,
    pub(crate) zip: String,
    pub(crate) second_citizenship: String,
}

impl PersonalFields {
    /// The checked section, or a message for every wrong field.
    pub(crate) fn parse(&self) -> Result<PersonalInfo, Errors> {
        let mut errors = Errors::new();
        let mut check = |field: &'static str, message: Option<String>| {
            if let Some(m) = message {
                errors.insert(field, m);
            }
        };
        let name = CommonName::new(self.name.trim());
        check("name", name.as_ref().err().map(|e| person_name(&self.name, e)));
        let email = Email::new(self.email.trim());
        check("email", email.is_err().then(|| email_message(&self.email)));
        let phone = PhoneNumber::new(&self.phone);
        check("phone", phone.is_err().then(|| phone_message(&self.phone)));
        // Each part on its own, so that every wrong one is named.
        check(
            "line1",
            AddressLine::new(&self.line1)
                .err()
                .map(|_| line(&self.line1, "Enter the street address the token ships to.")),
        );
        if !self.line2.trim().is_empty() {
            check("line2", AddressLine::new(&self.line2).err().map(|_| line(&self.line2, "")));
        }
        check(
            "city",
            AddressLine::new(&self.city)
                .err()
                .map(|_| line(&self.city, "Enter the city, or APO, FPO or DPO for a military address.")),
        );
        check("state", StateCode::new(&self.state).err().map(|e| e.to_string()));
        check("zip", ZipCode::new(&self.zip).err().map(|_| zip_message(&self.zip)));
        let second = self.second_citizenship.trim();
        if second.chars().count() > NAME_MAX || second.chars().any(char::is_control) {
            check("second_citizenship", Some(format!("Name the country in at most {NAME_MAX} characters.")));
        }
        let shipping = UsAddress::new(&self.line1, &self.line2, &self.city, &self.state, &self.zip);
        match (name, email, phone, shipping) {
            (Ok(name), Ok(email), Ok(phone), Ok(shipping)) if errors.is_empty() => Ok(PersonalInfo {
                name,
                email,
                phone,
                shipping,
                second_citizenship: (!second.is_empty()).then(|| second.to_owned()),
            }),
            _ => Err(errors),
        }
    }

    /// The state list: (code, name, selected), with what was typed selected when it names one.
    pub(crate) fn states(&self) -> Vec<(&'static str, &'static str, bool)> {
        let chosen = StateCode::new(&self.state).ok();
        US_STATES
            .iter()
            .map(|(code, name)| (*code, *name, chosen.as_ref().is_some_and(|c| c.as_str() == *code)))
            .collect()
    }
}

/// Why a full name was refused, and how to fix it.
fn person_name(typed: &str, e: &SubjectError) -> String {
    match e {
        SubjectError::Length { .. } if typed.trim().is_empty() => {
            "Enter your full name as it appears on your identity documents.".into()
        }
        SubjectError::Length { .. } => format!(
            "Your name has {} characters; a certificate holds at most {NAME_MAX}. Shorten it the way your \
             documents allow: use initials for middle names (Jane Q. Doe).",
            typed.trim().chars().count()
        ),
        other => unseen_character(other),
    }
}

/// Why an organization's legal name was refused, and how to shorten a long one.
pub(crate) fn organization_name(typed: &str, e: &SubjectError) -> String {
    match e {
        SubjectError::Length { .. } if typed.trim().is_empty() => "Enter your organization's legal name.".into(),
        SubjectError::Length { .. } => format!(
            "This name has {} characters; a certificate holds at most {NAME_MAX}. Shorten it with the usual \
             abbreviations (Incorporated → Inc., Corporation → Corp., Company → Co., Association → Assn.) \
             and leave out a leading \"The\".",
            typed.trim().chars().count()
        ),
        other => unseen_character(other),
    }
}

/// A character the certificate cannot show, named in words.
fn unseen_character(e: &SubjectError) -> String {
    match e {
        SubjectError::Character { kind, code_point, .. } => format!(
            "This contains {kind} (U+{code_point:04X}), which readers cannot see or trust. Use only letters, \
             digits, punctuation and spaces."
        ),
        _ => "Use only letters, digits, punctuation and spaces.".into(),
    }
}

fn email_message(typed: &str) -> String {
    if typed.trim().is_empty() {
        "Enter your email address; every notice about your application goes there.".into()
    } else {
        "Enter an email address such as jane@example.com.".into()
    }
}

fn phone_message(typed: &str) -> String {
    if typed.trim().is_empty() {
        "Enter a daytime phone number, such as (206) 555-0142.".into()
    } else {
        "Enter a 10-digit U.S. phone number such as (206) 555-0142, or + and the country code for a number \
         outside the U.S."
            .into()
    }
}

fn zip_message(typed: &str) -> String {
    if typed.trim().is_empty() {
        "Enter the ZIP code, such as 22150 or 22150-1234.".into()
    } else {
        "A ZIP code is 5 digits, or 5 digits, a dash and 4 more: 22150 or 22150-1234.".into()
    }
}

/// An address line or city: `empty` when nothing was typed, otherwise what is wrong with it.
fn line(typed: &str, empty: &str) -> String {
    let t = typed.trim();
    if t.is_empty() {
        empty.to_owned()
    } else if t.chars().count() > NAME_MAX {
        format!(
            "Use at most {NAME_MAX} characters ({} now): abbreviate as on an envelope (St, Ave, Ste, Apt).",
            t.chars().count()
        )
    } else {
        "Use only letters, digits, punctuation and spaces.".into()
    }
}

/// Why a purchase-order number was refused.
pub(crate) fn po_message(typed: &str) -> String {
    if typed.trim().is_empty() {
        "Enter the purchase-order number from your organization's purchase order.".into()
    } else {
        format!(
            "Enter the purchase-order number as printed on the order: up to {PO_MAX} letters and digits, \
             with - / or . between them."
        )
    }
}

/// The organization name is checked here and on the organization step alike.
pub(crate) fn parse_organization(typed: &str) -> Result<OrganizationName, String> {
    OrganizationName::new(typed.trim()).map_err(|e| organization_name(typed, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> PersonalFields {
        PersonalFields {
            name: "Jane Q. Doe".into(),
            email: "jane@example.com".into(),
            phone: "(206) 555-0142".into(),
            line1: "1 Main St".into(),
            city: "Richmond".into(),
            state: "Virginia".into(),
            zip: "23219".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_state_name_is_taken_and_selected() {
        let f = fields();
        assert_eq!(f.parse().unwrap().shipping.state.as_str(), "VA");
        assert_eq!(f.states().iter().filter(|s| s.2).map(|s| s.0).collect::<Vec<_>>(), ["VA"]);
    }

    #[test]
    fn every_empty_field_is_named_at_once_in_plain_words() {
        let errors = PersonalFields::default().parse().unwrap_err();
        let fields: Vec<&str> = errors.keys().copied().collect();
        assert_eq!(fields, ["city", "email", "line1", "name", "phone", "state", "zip"]);
        let all = errors.values().cloned().collect::<Vec<_>>().join(" ");
        for code_words in ["must be 1 to", "\"\"", "is not a"] {
            assert!(!all.contains(code_words), "{code_words:?} in {all}");
        }
        assert_eq!(errors["phone"], "Enter a daytime phone number, such as (206) 555-0142.");
    }

    #[test]
    fn long_names_say_how_to_shorten() {
        let long = "Jane Quintessa Philippa Marguerite Ottoline Anastasia Doe-Montgomery";
        let errors = PersonalFields { name: long.into(), ..fields() }.parse().unwrap_err();
        assert!(errors["name"].contains("initials for middle names"), "{}", errors["name"]);
        let org = "The International Association of Aerospace and Defense Subcontractors Incorporated";
        let refused = parse_organization(org).unwrap_err();
        assert!(refused.contains("Incorporated → Inc.") && refused.contains("at most 64"), "{refused}");
    }
}
