//! Where the applicant is reached and the token ships: U.S. mailing addresses (states and
//! territories, ZIP codes, address lines) and phone numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::{InputError, string_display, string_serde, text};

/// The states, D.C., the territories, and the military "states" AA/AE/AP that APO/FPO/DPO
/// addresses use (USPS Publication 28): two-letter code and name, in the order a list shows them.
pub const US_STATES: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("AS", "American Samoa"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
    ("AA", "Armed Forces Americas (AA)"),
    ("AE", "Armed Forces Europe, Middle East, Africa and Canada (AE)"),
    ("AP", "Armed Forces Pacific (AP)"),
];

/// A U.S. state, territory or military postal code, uppercased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StateCode(String);

impl StateCode {
    /// Checks a code or a name as people write it ("va", "Virginia", "virginia"); spacing and
    /// case do not matter.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
        US_STATES
            .iter()
            .find(|(code, name)| code.eq_ignore_ascii_case(&folded) || name.eq_ignore_ascii_case(&folded))
            .map(|(code, _)| Self((*code).to_owned()))
            .ok_or_else(|| InputError::StateCode(s.to_owned()))
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ZIP code: five digits, or ZIP+4 written `12345-6789` (nine bare digits are accepted and
/// written that way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZipCode(String);

impl ZipCode {
    /// Checks a ZIP code.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
        let zip = match t.split_once('-') {
            Some((a, b)) if digits(a, 5) && digits(b, 4) => t.to_owned(),
            None if digits(t, 5) => t.to_owned(),
            None if digits(t, 9) => format!("{}-{}", &t[..5], &t[5..]),
            _ => return Err(InputError::ZipCode(s.to_owned())),
        };
        // 00000 is not assigned to any delivery area.
        if zip.starts_with("00000") {
            return Err(InputError::ZipCode(s.to_owned()));
        }
        Ok(Self(zip))
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 (`+15555550123`): ten North American digits (optionally with the
/// leading 1), or `+` and an international number. The officer call-back dials it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Checks a number as typed (spaces, dots, dashes and parentheses ignored).
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let international = t.starts_with('+');
        let digits: String = t.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+')).collect();
        let bad = || InputError::Phone(s.to_owned());
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let e164 = if international && !digits.starts_with('1') {
            if !(8..=15).contains(&digits.len()) {
                return Err(bad());
            }
            digits
        } else {
            let national = match digits.len() {
                10 => digits.as_str(),
                11 if digits.starts_with('1') => &digits[1..],
                _ => return Err(bad()),
            };
            // NANP area codes and exchanges never start with 0 or 1.
            if national.starts_with(['0', '1']) || national[3..].starts_with(['0', '1']) {
                return Err(bad());
            }
            format!("1{national}")
        };
        Ok(Self(format!("+{e164}")))
    }
    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// As people write it: North American numbers as `(206) 555-0142`, others in E.164.
    pub fn display(&self) -> String {
        match self.0.strip_prefix("+1") {
            Some(n) if n.len() == 10 => format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => self.0.clone(),
        }
    }
}

/// An address line or city: trimmed, 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddressLine(String);

impl AddressLine {
    /// Checks a line.
    pub fn new(s: &str) -> Result<Self, InputError> {
        text("address line", 64, s).map(Self)
    }
    /// The line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_serde!(StateCode, ZipCode, PhoneNumber, AddressLine);
string_display!(StateCode, ZipCode, PhoneNumber, AddressLine);

/// A U.S. mailing address; the token ships here (seed onboarding guide: "The address you enter
/// is where IdenTrust will ship your USB token").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsAddress {
    /// Street line.
    pub line1: AddressLine,
    /// Apartment, suite, unit.
    pub line2: Option<AddressLine>,
    /// City (or APO/FPO/DPO).
    pub city: AddressLine,
    /// State.
    pub state: StateCode,
    /// ZIP.
    pub zip: ZipCode,
}

impl UsAddress {
    /// Checks an address from its form fields; an empty second line means none.
    pub fn new(line1: &str, line2: &str, city: &str, state: &str, zip: &str) -> Result<Self, InputError> {
        Ok(Self {
            line1: AddressLine::new(line1)?,
            line2: if line2.trim().is_empty() { None } else { Some(AddressLine::new(line2)?) },
            city: AddressLine::new(city)?,
            state: StateCode::new(state)?,
            zip: ZipCode::new(zip)?,
        })
    }
}

impl fmt::Display for UsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.line1)?;
        if let Some(l2) = &self.line2 {
            writeln!(f, "{l2}")?;
        }
        write!(f, "{}, {} {}", self.city, self.state, self.zip)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_zips_and_phones() {
        assert_eq!(ZipCode::new("98101").unwrap().as_str(), "98101");
        assert_eq!(ZipCode::new("98101-1234").unwrap().as_str(), "98101-1234");
        assert_eq!(ZipCode::new("981011234").unwrap().as_str(), "98101-1234");
        for bad in ["9810", "981012", "98101-12", "9810a", "00000", "98101 1234", ""] {
            assert_eq!(ZipCode::new(bad), Err(InputError::ZipCode(bad.into())), "{bad}");
        }
        assert_eq!(StateCode::new(" wa ").unwrap().as_str(), "WA");
        assert_eq!(StateCode::new("AE").unwrap().as_str(), "AE");
        assert_eq!(StateCode::new("Virginia").unwrap().as_str(), "VA");
        assert_eq!(StateCode::new(" new  york ").unwrap().as_str(), "NY");
        assert_eq!(StateCode::new("Armed Forces Pacific (AP)").unwrap().as_str(), "AP");
        assert_eq!(US_STATES.len(), 59, "50 states, D.C., 5 territories, AA, AE, AP");
        let refused = StateCode::new("XX").unwrap_err();
        assert_eq!(refused.to_string(), "Choose your state, territory or military address (AA, AE, AP) from the list.");
        assert!(StateCode::new("Virginny").is_err() && StateCode::new("").is_err());
        let a = UsAddress::new("1 Main St", " ", "Seattle", "WA", "98101").unwrap();
        assert_eq!(a.line2, None);
        assert_eq!(a.to_string(), "1 Main St\nSeattle, WA 98101");
        assert!(matches!(UsAddress::new("", "", "Seattle", "WA", "98101"), Err(InputError::Text { .. })));
        assert!(matches!(UsAddress::new("1 Main", "", "Seattle", "ZZ", "98101"), Err(InputError::StateCode(_))));
        assert_eq!(PhoneNumber::new("(206) 555-0142").unwrap().as_str(), "+12065550142");
        assert_eq!(PhoneNumber::new("1-206-555-0142").unwrap().as_str(), "+12065550142");
        assert_eq!(PhoneNumber::new("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        for bad in ["555-0142", "(106) 555-0142", "206 055 0142", "+44 12", "call me"] {
            assert!(PhoneNumber::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_display_as_people_write_them() {
        assert_eq!(PhoneNumber::new("206 555 0142").unwrap().display(), "(206) 555-0142");
        assert_eq!(PhoneNumber::new("+44 20 7123 4567").unwrap().display(), "+442071234567");
    }
}
