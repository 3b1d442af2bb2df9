//! Sample data for tests of the layers above the domain (store, server), so every suite
//! builds its applications the same way. Compiled only for tests or with the `fixtures`
//! feature; never part of a production build.

use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, Email, OrganizationName};

use crate::application::{
    ApplicationForm, CertificateChoice, Payment, PersonalInfo, PhoneNumber, PoNumber, PriceTable, Residency, UsAddress,
};
use crate::wizard::AgencyCatalog;

/// A complete application by Jane Q. Doe of Acme, Inc., from the Integrate partner link,
/// for `cert_type` (a catalog type id such as `medium-token`), two years, paid by PO.
pub fn sample_form(cert_type: &str) -> ApplicationForm {
    let catalog = Catalog::default_eca();
    let agencies = AgencyCatalog::default_catalog(&catalog);
    ApplicationForm {
        program: agencies.program("Integrate").unwrap(),
        agencies: vec!["integrate-il4".into()],
        residency: Residency::UnitedStates,
        certificate: CertificateChoice::new(&catalog, &PriceTable::default(), cert_type, 2).unwrap(),
        organization: OrganizationName::new("Acme, Inc.").unwrap(),
        applicant: PersonalInfo {
            name: CommonName::new("Jane Q. Doe").unwrap(),
            email: Email::new("jane.doe@acme.example").unwrap(),
            phone: PhoneNumber::new("(206) 555-0142").unwrap(),
            shipping: UsAddress::new("1 Main St", "Suite 200", "Seattle", "wa", "98101-1234").unwrap(),
            second_citizenship: None,
        },
        payment: Payment::PurchaseOrder { po: PoNumber::new("PO-2025/0042").unwrap() },
    }
}
