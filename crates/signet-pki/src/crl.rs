//! Certificate revocation lists (RFC 5280 §5), signed by the issuing CA.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use crate::Serial;
use crate::ca::{CaError, CertificateAuthority};
use crate::reason::RevocationReason;

/// One revoked certificate as the CRL lists it.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Serial of the revoked certificate.
    pub serial: Serial,
    /// When the CA processed the revocation.
    pub revoked_at: OffsetDateTime,
    /// Why; `Unspecified` is written as no reason code (RFC 5280 §5.3.1).
    pub reason: RevocationReason,
}

fn rcgen_reason(r: RevocationReason) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match r {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::RemoveFromCrl => R::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    })
}

/// Signs a full CRL. `number` must grow with every CRL the CA publishes (the store hands it
/// out); the AKI is the CA's SKI byte for byte, since OpenSSL and nginx match CRLs to CAs
/// by it (DESIGN pitfall).
pub fn sign_crl(
    ca: &CertificateAuthority,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    entries: impl IntoIterator<Item = RevokedEntry>,
) -> Result<Vec<u8>, CaError> {
    let params = CertificateRevocationListParams {
        this_update: this_update.replace_nanosecond(0).expect("valid"),
        next_update: next_update.replace_nanosecond(0).expect("valid"),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: entries
            .into_iter()
            .map(|e| RevokedCertParams {
                serial_number: SerialNumber::from_slice(e.serial.as_bytes()),
                revocation_time: e.revoked_at.replace_nanosecond(0).expect("valid"),
                reason_code: rcgen_reason(e.reason),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(ca.key_identifier().to_vec()),
    };
    Ok(params.signed_by(&ca.issuer)?.der().to_vec())
}
