//! Revocation reasons: the CRLReason codes of RFC 5280 §5.3.1, shared by CRL entries and
//! OCSP `revoked` answers (RFC 6960 §4.2.1).

use serde::{Deserialize, Serialize};

/// Why a certificate was revoked. The discriminant is the RFC 5280 `CRLReason` code; 7 is
/// unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// No reason given. RFC 5280 §5.3.1 prefers leaving the reason out to writing this.
    Unspecified = 0,
    /// The subscriber's private key was, or may have been, disclosed.
    #[serde(alias = "key-compromise")]
    KeyCompromise = 1,
    /// A CA's private key was, or may have been, disclosed.
    #[serde(rename = "cACompromise", alias = "ca-compromise")]
    CaCompromise = 2,
    /// The subject's name or other information changed; no key compromise.
    #[serde(alias = "affiliation-changed")]
    AffiliationChanged = 3,
    /// The certificate was replaced by another one.
    Superseded = 4,
    /// The certificate is no longer needed for its purpose.
    #[serde(alias = "cessation-of-operation")]
    CessationOfOperation = 5,
    /// Temporarily suspended; may later be removed from the CRL.
    #[serde(alias = "certificate-hold")]
    CertificateHold = 6,
    /// Only in delta CRLs: a held certificate is no longer on hold.
    #[serde(rename = "removeFromCRL", alias = "remove-from-crl")]
    RemoveFromCrl = 8,
    /// A privilege asserted in the certificate was withdrawn.
    #[serde(alias = "privilege-withdrawn")]
    PrivilegeWithdrawn = 9,
    /// An attribute authority's key was, or may have been, disclosed.
    #[serde(rename = "aACompromise", alias = "aa-compromise")]
    AaCompromise = 10,
}

/// A revocation reason name that is neither an RFC 5280 name nor its kebab-case form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown revocation reason {0:?} (use an RFC 5280 name such as keyCompromise or key-compromise)")]
pub struct UnknownReason(pub String);

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 `CRLReason` code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason for an RFC 5280 code, `None` for 7 and anything above 10.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name used in RFC 5280's ASN.1 module, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::RemoveFromCrl => "removeFromCRL",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// The kebab-case form for command lines and URLs, e.g. `key-compromise`.
    pub fn kebab_name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::CaCompromise => "ca-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::CertificateHold => "certificate-hold",
            Self::RemoveFromCrl => "remove-from-crl",
            Self::PrivilegeWithdrawn => "privilege-withdrawn",
            Self::AaCompromise => "aa-compromise",
        }
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = UnknownReason;

    /// Accepts the RFC 5280 name or the kebab-case form; both are matched exactly, since
    /// the RFC names' odd capitals (`cACompromise`) are what people copy from the spec.
    fn from_str(s: &str) -> Result<Self, UnknownReason> {
        Self::ALL.into_iter().find(|r| r.name() == s || r.kebab_name() == s).ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_seven_is_unassigned() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
        assert_eq!(RevocationReason::from_code(7), None);
        assert_eq!(RevocationReason::from_code(11), None);
        assert_eq!(RevocationReason::RemoveFromCrl.code(), 8);
        assert_eq!(RevocationReason::AaCompromise.code(), 10);
    }

    #[test]
    fn parses_rfc_and_kebab_names() {
        for r in RevocationReason::ALL {
            assert_eq!(r.name().parse::<RevocationReason>(), Ok(r));
            assert_eq!(r.kebab_name().parse::<RevocationReason>(), Ok(r));
            assert_eq!(r.to_string(), r.name());
        }
        assert_eq!("cACompromise".parse(), Ok(RevocationReason::CaCompromise));
        assert!("KeyCompromise".parse::<RevocationReason>().is_err());
        assert!("".parse::<RevocationReason>().is_err());
    }

    #[test]
    fn serde_uses_rfc_names_and_accepts_kebab() {
        for r in RevocationReason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            let kebab: RevocationReason = serde_json::from_str(&format!("\"{}\"", r.kebab_name())).unwrap();
            assert_eq!(kebab, r);
        }
    }
}
