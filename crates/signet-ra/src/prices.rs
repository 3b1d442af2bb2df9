//! What a certificate costs: [`Cents`], and the [`PriceTable`] by type and validity, read from
//! `catalog/prices.toml` or an operator's replacement of it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use signet_pki::profile::{Catalog, SubjectKind};
use toml::Spanned;

use crate::data_file::AtLine;

/// The price list that ships with Signet.
pub const SHIPPED_PRICES: &str = include_str!("../catalog/prices.toml");

/// An amount in U.S. cents (never floating point for money).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub u32);

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Cents {
    /// Parses a dollar amount as an operator writes it: `119`, `119.00`, `$119.5`.
    pub fn parse_usd(text: &str) -> Option<Self> {
        let t = text.trim().trim_start_matches('$');
        let (dollars, cents) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(dollars) || !(cents.is_empty() || digits(cents)) || cents.len() > 2 {
            return None;
        }
        let cents: u32 = format!("{cents:0<2}").parse().ok()?;
        dollars.parse::<u32>().ok()?.checked_mul(100)?.checked_add(cents).map(Self)
    }
}

/// Why a price list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// The TOML did not parse into the price list's shape.
    #[error("not a price list: {0}")]
    Toml(String),
    /// A price names a type the certificate catalog has no subscriber profile for.
    #[error("{0:?} is not a subscriber certificate type of the certificate catalog")]
    UnknownType(String),
    /// A price names a validity the type's profile does not allow.
    #[error("{cert_type} certificates are not issued for {years} years (the profile allows {allowed})")]
    Validity {
        /// The type id.
        cert_type: String,
        /// The validity asked.
        years: u8,
        /// The validities the profile allows.
        allowed: String,
    },
    /// The amount is not a dollar amount.
    #[error("{0:?} is not an amount in dollars, such as \"119.00\"")]
    Amount(String),
    /// A type and validity is priced twice.
    #[error("{cert_type} for {years} years is priced twice")]
    Duplicate {
        /// The type id.
        cert_type: String,
        /// The validity.
        years: u8,
    },
    /// A subscriber type has no price at all, so the wizard would offer what cannot be bought.
    #[error("{0} has no price: applicants could choose it but never pay for it")]
    Unpriced(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(rename = "price")]
    prices: Vec<PriceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    #[serde(rename = "type")]
    cert_type: Spanned<String>,
    years: Spanned<u8>,
    usd: Spanned<String>,
}

/// Prices by certificate type and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable(BTreeMap<(String, u8), Cents>);

impl Default for PriceTable {
    fn default() -> Self {
        Self::from_toml(SHIPPED_PRICES, &Catalog::default_eca()).expect("the shipped price list is valid (tested)")
    }
}

impl PriceTable {
    /// An empty table.
    pub fn empty() -> Self {
        Self(BTreeMap::new())
    }

    /// Sets a price.
    pub fn set(&mut self, cert_type: &str, years: u8, price: Cents) {
        self.0.insert((cert_type.to_owned(), years), price);
    }

    /// The price, if one is set.
    pub fn price(&self, cert_type: &str, years: u8) -> Option<Cents> {
        self.0.get(&(cert_type.to_owned(), years)).copied()
    }

    /// Every price, by type and validity.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u8, Cents)> {
        self.0.iter().map(|((t, y), c)| (t.as_str(), *y, *c))
    }

    /// Parses a price list and checks it against the certificate catalog: every price is for a
    /// validity a subscriber profile allows, and every subscriber type has a price.
    pub fn from_toml(text: &str, catalog: &Catalog) -> Result<Self, AtLine<PriceError>> {
        let file: PriceFile = toml::from_str(text).map_err(|e| AtLine::toml(text, &e, PriceError::Toml))?;
        let mut table = Self::empty();
        for entry in file.prices {
            let at = |span: std::ops::Range<usize>, error| AtLine::at(text, span.start, error);
            let cert_type = entry.cert_type.get_ref().clone();
            let years = *entry.years.get_ref();
            let profile = catalog
                .profiles()
                .find(|p| p.cert_type.id == cert_type && p.subject == SubjectKind::Person)
                .ok_or_else(|| at(entry.cert_type.span(), PriceError::UnknownType(cert_type.clone())))?;
            if !profile.validity_years.contains(&years) {
                let years_allowed: Vec<String> = profile.validity_years.iter().map(u8::to_string).collect();
                let allowed = match years_allowed.split_last() {
                    Some((last, [])) => format!("{last} years"),
                    Some((last, rest)) => format!("{} or {last} years", rest.join(", ")),
                    None => "no validity".to_owned(),
                };
                let error = PriceError::Validity { cert_type, years, allowed };
                return Err(at(entry.years.span(), error));
            }
            let amount = Cents::parse_usd(entry.usd.get_ref())
                .ok_or_else(|| at(entry.usd.span(), PriceError::Amount(entry.usd.get_ref().clone())))?;
            if table.price(&cert_type, years).is_some() {
                return Err(at(entry.cert_type.span(), PriceError::Duplicate { cert_type, years }));
            }
            table.set(&cert_type, years, amount);
        }
        let person_types = catalog
            .types()
            .iter()
            .filter(|t| catalog.profiles().any(|p| p.cert_type.id == t.id && p.subject == SubjectKind::Person));
        for t in person_types {
            if !table.0.keys().any(|(id, _)| *id == t.id) {
                return Err(AtLine::whole_file(PriceError::Unpriced(t.name.clone())));
            }
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_amounts() {
        assert_eq!(Cents::parse_usd("119.00"), Some(Cents(11_900)));
        assert_eq!(Cents::parse_usd(" $119.5 "), Some(Cents(11_950)));
        assert_eq!(Cents::parse_usd("7"), Some(Cents(700)));
        for bad in ["", "1.234", "-1", "1,000", "abc", ".5", "99999999999"] {
            assert_eq!(Cents::parse_usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_shipped_list_prices_every_subscriber_type() {
        let p = PriceTable::default();
        assert_eq!(p.price("medium-token", 3), Some(Cents(35_900)));
        assert_eq!(p.iter().count(), 9);
    }

    #[test]
    fn a_bad_list_is_refused_at_its_line() {
        let c = Catalog::default_eca();
        let refused = |from: &str, to: &str| {
            let text = SHIPPED_PRICES.replacen(from, to, 1);
            assert_ne!(text, SHIPPED_PRICES, "{from}");
            PriceTable::from_toml(&text, &c).unwrap_err()
        };
        let line_of = |needle: &str| SHIPPED_PRICES[..SHIPPED_PRICES.find(needle).unwrap()].matches('\n').count() + 1;
        let e = refused("type = \"medium-token\"\nyears = 2", "type = \"gold\"\nyears = 2");
        assert_eq!(
            (e.line, e.error),
            (Some(line_of("type = \"medium-token\"\nyears = 2")), PriceError::UnknownType("gold".into()))
        );
        let e = refused("years = 3\nusd = \"299.00\"", "years = 4\nusd = \"299.00\"");
        assert_eq!(e.line, Some(line_of("years = 3\nusd = \"299.00\"")));
        assert_eq!(
            e.to_string(),
            format!(
                "line {}: medium certificates are not issued for 4 years (the profile allows 1, 2 or 3 years)",
                line_of("years = 3\nusd = \"299.00\"")
            ),
        );
        let e = refused("usd = \"119.00\"", "usd = \"cheap\"");
        assert_eq!(
            e.to_string(),
            format!("line {}: \"cheap\" is not an amount in dollars, such as \"119.00\"", line_of("usd = \"119.00\""))
        );
        let e = refused("years = 2\nusd = \"219.00\"", "years = 1\nusd = \"219.00\"");
        assert!(matches!(e.error, PriceError::Duplicate { years: 1, .. }), "{e}");
        let e = refused("usd = \"119.00\"", "usd = 119");
        assert!(matches!(e.error, PriceError::Toml(_)) && e.line == Some(line_of("usd = \"119.00\"")), "{e}");
        let only_medium: String = SHIPPED_PRICES.split("[[price]]").take(4).collect::<Vec<_>>().join("[[price]]");
        let e = PriceTable::from_toml(&only_medium, &c).unwrap_err();
        assert_eq!((e.line, e.error), (None, PriceError::Unpriced("Medium Token Assurance".into())));
    }
}
