//! The mailed form packet as received (carrier and tracking number, pages, notary or registrar)
//! and the call-backs to the organization officer.

use serde::{Deserialize, Serialize};
use signet_pki::subject::CommonName;
use time::{Date, OffsetDateTime};

use crate::application_form::PhoneNumber;
use crate::ids::OperatorId;
use crate::input::{InputError, iso_date, string_display};

/// A parcel carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    /// United States Postal Service.
    Usps,
    /// UPS.
    Ups,
    /// FedEx.
    Fedex,
    /// DHL Express.
    Dhl,
    /// Any other carrier (format checked loosely).
    Other,
}

impl Carrier {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Usps => "USPS",
            Self::Ups => "UPS",
            Self::Fedex => "FedEx",
            Self::Dhl => "DHL",
            Self::Other => "carrier",
        }
    }

    /// What its tracking numbers look like, in words, for a person copying one from a receipt.
    pub fn number_hint(self) -> &'static str {
        match self {
            Self::Ups => "A UPS tracking number has 18 letters and digits and starts with 1Z.",
            Self::Fedex => "A FedEx tracking number has 12, 15, 20 or 22 digits.",
            Self::Usps => "A USPS tracking number has 20 to 22 digits, or 13 characters like EA123456789US.",
            Self::Dhl => "A DHL tracking number has 10 digits.",
            Self::Other => "A tracking number has 6 to 40 letters and digits.",
        }
    }
}

/// A tracking number in its carrier's format, uppercased, spaces removed. The seed guide:
/// "Without a tracking number, IdenTrust may not confirm receipt" — so it is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    /// Checks a number against the carrier's format.
    pub fn new(carrier: Carrier, s: &str) -> Result<Self, InputError> {
        let n: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        let alnum = |x: &str| x.bytes().all(|b| b.is_ascii_alphanumeric());
        let ok = match carrier {
            // 1Z + 6-character shipper + 2-digit service + 8 digits.
            Carrier::Ups => n.len() == 18 && n.starts_with("1Z") && alnum(&n),
            Carrier::Fedex => [12, 15, 20, 22].contains(&n.len()) && digits(&n),
            // Domestic 20–22 digits, or the UPU S10 form "EA123456789US".
            Carrier::Usps => {
                ((20..=22).contains(&n.len()) && digits(&n))
                    // ASCII first: the slices below would panic inside a multi-byte character.
                    || (n.len() == 13
                        && n.is_ascii()
                        && n[..2].bytes().all(|b| b.is_ascii_uppercase())
                        && digits(&n[2..11])
                        && n[11..].bytes().all(|b| b.is_ascii_uppercase()))
            }
            Carrier::Dhl => n.len() == 10 && digits(&n),
            Carrier::Other => (6..=40).contains(&n.len()) && alnum(&n),
        };
        if ok { Ok(Self(n)) } else { Err(InputError::TrackingNumber { carrier: carrier.name(), number: s.to_owned() }) }
    }
    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A carrier and tracking number (forms mailed in, token shipped out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// The carrier.
    pub carrier: Carrier,
    /// Its tracking number.
    pub number: TrackingNumber,
}

/// The pages of the form packet, as the operator found them (seed onboarding guide Part 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormPages {
    /// Page 2, Organization Officer Verification: signed, dated, every field on the right side.
    pub officer_verification: bool,
    /// Page 4, Identity Verification: the identification section complete.
    pub identity_verification: bool,
    /// Page 5, second citizenship: `None` if not enclosed, else whether complete.
    pub citizenship: Option<bool>,
}

/// Who witnessed the applicant's identity documents and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attestation {
    /// A notary public (Medium and Medium Token only).
    Notarized {
        /// The notary's name as on the seal.
        notary_name: String,
        /// Whether the official seal is on the pages (seed: "Missing the seal means starting over").
        seal_present: bool,
        /// The notarization date: day 1 of the 30-day retrieval window.
        #[serde(with = "iso_date")]
        notarized_on: Date,
    },
    /// A registrar or Trusted Agent, in person (required for Medium Hardware, DESIGN §2).
    InPerson {
        /// The registrar's operator id.
        registrar: OperatorId,
        /// The date of the in-person proofing.
        #[serde(with = "iso_date")]
        attested_on: Date,
    },
}

impl Attestation {
    /// The date of the signature that starts the 30-day retrieval window.
    pub fn signed_on(&self) -> Date {
        match self {
            Self::Notarized { notarized_on, .. } => *notarized_on,
            Self::InPerson { attested_on, .. } => *attested_on,
        }
    }
    /// `notarized` or `in-person`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Notarized { .. } => "notarized",
            Self::InPerson { .. } => "in-person",
        }
    }
}

/// The mailed form packet as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormsReceipt {
    /// The day it arrived.
    #[serde(with = "iso_date")]
    pub received_on: Date,
    /// How it was mailed.
    pub tracking: Tracking,
    /// The pages.
    pub pages: FormPages,
    /// Notary or in-person registrar.
    pub attestation: Attestation,
}

/// How an officer call-back went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    /// The officer confirmed the applicant's employment.
    Confirmed,
    /// The officer said the applicant does not work there (or refused to confirm).
    Denied,
    /// No one answered.
    NoAnswer,
    /// A message was left; the officer may call back (seed onboarding guide).
    LeftMessage,
}

impl CallOutcome {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Denied => "denied",
            Self::NoAnswer => "no-answer",
            Self::LeftMessage => "left-message",
        }
    }
}

/// One call to the Organization Officer named on page 2 (DESIGN §2: "organization officer
/// confirmed by a call-back").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerCallback {
    /// The officer's name, from page 2.
    pub officer_name: CommonName,
    /// The number dialled, from page 2.
    pub phone: PhoneNumber,
    /// The operator who called.
    pub called_by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub called_at: OffsetDateTime,
    /// What happened.
    pub outcome: CallOutcome,
}
string_display!(TrackingNumber);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_numbers_by_carrier() {
        assert_eq!(
            TrackingNumber::new(Carrier::Ups, "1z 999 aa1 01 2345 6784").unwrap().as_str(),
            "1Z999AA10123456784"
        );
        assert!(TrackingNumber::new(Carrier::Ups, "2Z999AA10123456784").is_err());
        assert!(TrackingNumber::new(Carrier::Fedex, "123456789012").is_ok());
        assert!(TrackingNumber::new(Carrier::Fedex, "12345678901").is_err());
        assert!(TrackingNumber::new(Carrier::Usps, "9400 1000 0000 0000 0000 00").is_ok());
        assert!(TrackingNumber::new(Carrier::Usps, "EA123456789US").is_ok());
        assert!(TrackingNumber::new(Carrier::Usps, "EA12345678XUS").is_err());
        // Found by fuzz/fuzz_targets/form_inputs.rs: 13 bytes with a character across byte 11.
        assert!(TrackingNumber::new(Carrier::Usps, "EA2469134:\u{4da}3").is_err());
        assert!(TrackingNumber::new(Carrier::Dhl, "1234567890").is_ok());
        assert!(TrackingNumber::new(Carrier::Other, "").is_err());
        let err = TrackingNumber::new(Carrier::Ups, "nope").unwrap_err();
        assert_eq!(err.to_string(), "\"nope\" is not a UPS tracking number");
    }
}
