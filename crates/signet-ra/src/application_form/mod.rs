//! What an applicant submits ([`ApplicationForm`]), as parsed newtypes so a form that exists is
//! a form that was checked: the federal program, the certificate bought and its price, the
//! organization, the applicant's contact and shipping details, and the payment.

mod address;
mod organization;
mod payment;

use serde::{Deserialize, Serialize};
use signet_pki::profile::{Catalog, SubjectKind};
use signet_pki::subject::{CommonName, Email, OrganizationName};

pub use address::{AddressLine, PhoneNumber, StateCode, US_STATES, UsAddress, ZipCode};
pub use organization::{Organization, OrganizationKey};
pub use payment::{
    CardAuthorization, CardNumber, Payment, PaymentError, PaymentProcessor, PoNumber, TestCardProcessor,
};

use crate::input::InputError;
use crate::prices::{Cents, PriceTable};

/// The federal program the applicant applies under, checked against the wizard catalog's
/// program list (only [`crate::wizard::AgencyCatalog::program`] makes one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FederalProgram(String);

impl FederalProgram {
    pub(crate) fn from_catalog(id: &str) -> Self {
        Self(id.to_owned())
    }
    /// The program's catalog id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The applicant's answer to "Do you live in the United States?" (seed onboarding guide Part 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Residency {
    /// Lives in the United States.
    UnitedStates,
    /// Lives elsewhere.
    Abroad,
}

/// The certificate bought: type, validity and the price charged (fixed at application time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChoice {
    cert_type: String,
    years: u8,
    price: Cents,
}

impl CertificateChoice {
    /// Checks a choice: the type is a subscriber type of the catalog, the validity is one its
    /// profile allows (1, 2 or 3 years, DESIGN §2), and it has a price.
    pub fn new(catalog: &Catalog, prices: &PriceTable, cert_type: &str, years: u8) -> Result<Self, InputError> {
        if !catalog.types().iter().any(|t| t.id == cert_type) {
            return Err(InputError::UnknownCertificateType(cert_type.to_owned()));
        }
        let profile = catalog
            .profiles()
            .find(|p| p.cert_type.id == cert_type && p.subject == SubjectKind::Person)
            .ok_or_else(|| InputError::NotASubscriberType(cert_type.to_owned()))?;
        if !profile.validity_years.contains(&years) {
            return Err(InputError::Validity { cert_type: cert_type.to_owned(), years });
        }
        let price = prices
            .price(cert_type, years)
            .ok_or_else(|| InputError::NoPrice { cert_type: cert_type.to_owned(), years })?;
        Ok(Self { cert_type: cert_type.to_owned(), years, price })
    }
    /// The certificate catalog type id.
    pub fn cert_type(&self) -> &str {
        &self.cert_type
    }
    /// Validity in years.
    pub fn years(&self) -> u8 {
        self.years
    }
    /// The price charged.
    pub fn price(&self) -> Cents {
        self.price
    }
}

/// The applicant's personal information section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalInfo {
    /// Full name as it will be proofed and appear in the certificate's CN.
    pub name: CommonName,
    /// Email: the certificate's rfc822Name and where every notice goes.
    pub email: Email,
    /// Daytime phone.
    pub phone: PhoneNumber,
    /// Where the token ships.
    pub shipping: UsAddress,
    /// A second citizenship, if any: the form packet then includes page 5 (seed onboarding
    /// guide Part 2), which vetting requires.
    pub second_citizenship: Option<String>,
}

/// Everything the applicant submitted, each part already checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationForm {
    /// Federal program (pre-filled from the partner link).
    pub program: FederalProgram,
    /// Agencies chosen in the selection wizard (may be empty).
    pub agencies: Vec<String>,
    /// U.S. resident or not.
    pub residency: Residency,
    /// Type, validity, price.
    pub certificate: CertificateChoice,
    /// The employer organization (found or created).
    pub organization: OrganizationName,
    /// Name, email, phone, shipping address.
    pub applicant: PersonalInfo,
    /// How it is paid.
    pub payment: Payment,
}

impl ApplicationForm {
    /// The order for a certificate of `profile` for this vetted applicant: the subject from the
    /// form and the validity length it chose (retrieval and renewal issue the same person).
    pub fn person_order(&self, profile: String) -> signet_pki::issue::CertificateOrder {
        signet_pki::issue::CertificateOrder {
            profile,
            subject: signet_pki::subject::Subject::Person {
                common_name: self.applicant.name.clone(),
                organization: self.organization.clone(),
                email: self.applicant.email.clone(),
            },
            validity_years: self.certificate.years(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_choices_and_prices() {
        let c = Catalog::default_eca();
        let p = PriceTable::default();
        let choice = CertificateChoice::new(&c, &p, "medium-token", 3).unwrap();
        assert_eq!((choice.price(), choice.price().to_string()), (Cents(35_900), "$359.00".to_owned()));
        assert!(matches!(CertificateChoice::new(&c, &p, "medium", 4), Err(InputError::Validity { .. })));
        assert!(matches!(CertificateChoice::new(&c, &p, "device", 1), Err(InputError::NotASubscriberType(_))));
        assert!(matches!(CertificateChoice::new(&c, &p, "gold", 1), Err(InputError::UnknownCertificateType(_))));
        let mut custom = PriceTable::empty();
        assert!(matches!(CertificateChoice::new(&c, &custom, "medium", 1), Err(InputError::NoPrice { .. })));
        custom.set("medium", 1, Cents(9_900));
        assert_eq!(CertificateChoice::new(&c, &custom, "medium", 1).unwrap().price(), Cents(9_900));
        for (t, y, _) in p.iter() {
            CertificateChoice::new(&c, &p, t, y).unwrap();
        }
    }
}
