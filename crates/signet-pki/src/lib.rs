//! Pure X.509 for Signet.
//!
//! What it does: ECA certificate profiles (configuration → validated [`profile::Profile`]),
//! CSR checks and key policy, YubiKey PIV key attestation ([`attestation`]), issuance
//! (prepare → lint → sign, each step consuming the last), CA hierarchy creation, key escrow of
//! server-generated encryption keys ([`escrow`]), certificates-only `.p7c` bundles ([`p7c`]), secrets sealed at rest ([`seal`]), CRLs, OCSP requests and responses, and the
//! [`Signer`] trait with an aws-lc-rs software signer.
//!
//! What it does not do: no I/O of any kind — no files, network, database or clock. Callers
//! pass the time in, and decide what is stored and when.

pub mod attestation;
pub mod ca;
pub mod crl;
pub mod csr;
pub mod escrow;
pub mod issue;
pub mod ocsp;
pub mod p7c;
pub mod profile;
pub mod reason;
pub mod seal;
pub mod serial;
pub mod signer;
pub mod subject;

pub use ca::{CaError, CaUrls, CertificateAuthority};
pub use issue::{CertificateOrder, IssueError, IssuedCertificate};
pub use reason::RevocationReason;
pub use serial::Serial;
pub use signer::{KeyAlgorithm, SignError, Signer, SoftwareSigner};

/// PEM text of a DER object (`tag` such as `CERTIFICATE`), with LF line ends: what every file
/// and API answer of Signet carries.
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(tag, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// A time as the DER encoder takes it: UTC, whole seconds; `None` outside the years 1970 to
/// 9999 that ASN.1 times can hold here.
pub(crate) fn der_date_time(t: time::OffsetDateTime) -> Option<der::DateTime> {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let year = u16::try_from(utc.year()).ok()?;
    der::DateTime::new(year, utc.month().into(), utc.day(), utc.hour(), utc.minute(), utc.second()).ok()
}
