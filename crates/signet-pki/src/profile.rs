//! Certificate profiles as data: the TOML catalog (types × usages) is parsed into
//! [`ProfileConfig`] and validated into a [`Catalog`] of [`Profile`]s, so a bad catalog fails
//! at load time rather than at issuance.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The catalog that ships with Signet (DESIGN §2's table).
pub const DEFAULT_CATALOG: &str = include_str!("../profiles/eca.toml");

/// The ECA policy arc, id-eca-policies; every type's OID must sit under it.
pub const ECA_POLICY_ARC: &str = "2.16.840.1.101.3.2.1.12";

/// Why a catalog was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The TOML did not parse into the catalog shape.
    #[error("profile catalog is not valid TOML: {0}")]
    Toml(String),
    /// An OID string is not dotted decimal.
    #[error("{0:?} is not a dotted-decimal OID")]
    BadOid(String),
    /// A type's policy OID is outside the ECA arc.
    #[error("policy OID {0} is not under the ECA arc {ECA_POLICY_ARC}")]
    NotEcaPolicy(String),
    /// A profile names a type or usage the catalog does not define.
    #[error("profile refers to unknown {kind} {id:?}")]
    UnknownReference {
        /// "type" or "usage".
        kind: &'static str,
        /// The missing id.
        id: String,
    },
    /// A key usage or extended key usage name is not known.
    #[error("unknown key usage {0:?}")]
    UnknownKeyUsage(String),
    /// Validity must be a non-empty set of 1, 2 or 3 years.
    #[error("validity_years must be a non-empty subset of 1, 2, 3 (DESIGN §2)")]
    BadValidity,
    /// Two profiles or types share an id.
    #[error("duplicate id {0:?} in the catalog")]
    Duplicate(String),
    /// A usage's subject kind does not fit its key usages (e.g. a person cert with serverAuth).
    #[error("usage {0:?} is inconsistent: {1}")]
    InconsistentUsage(String, &'static str),
}

/// The catalog file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(rename = "type")]
    types: Vec<TypeConfig>,
    #[serde(rename = "usage")]
    usages: Vec<UsageConfig>,
    #[serde(rename = "profile")]
    profiles: Vec<ProfileEntryConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeConfig {
    id: String,
    name: String,
    policy_oid: String,
    legacy_oid: Option<String>,
    key_storage: KeyStorage,
    proofing: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageConfig {
    id: String,
    subject: SubjectKind,
    key_usage: Vec<String>,
    /// Key usage for EC subscriber keys, where it differs (no keyEncipherment on EC).
    ec_key_usage: Option<Vec<String>>,
    extended_key_usage: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntryConfig {
    #[serde(rename = "type")]
    cert_type: String,
    usage: Vec<String>,
    validity_years: Vec<u8>,
}

/// Where the subscriber's private key must live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStorage {
    /// Browser or file keys are allowed.
    Software,
    /// Only a hardware token (PKCS#11).
    Hardware,
    /// Either.
    Any,
}

/// Who the certificate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A person: CN is the name, SAN is an rfc822Name.
    Person,
    /// A device: CN is the host name, SAN holds dNSNames.
    Device,
}

/// A key usage bit (RFC 5280 §4.2.1.3); the discriminant is the bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    /// digitalSignature.
    DigitalSignature = 0,
    /// nonRepudiation (contentCommitment).
    NonRepudiation = 1,
    /// keyEncipherment.
    KeyEncipherment = 2,
    /// dataEncipherment.
    DataEncipherment = 3,
    /// keyAgreement.
    KeyAgreement = 4,
    /// keyCertSign.
    KeyCertSign = 5,
    /// cRLSign.
    CrlSign = 6,
}

/// An extended key usage (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendedKeyUsage {
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// id-kp-codeSigning.
    CodeSigning,
    /// id-kp-emailProtection.
    EmailProtection,
}

impl ExtendedKeyUsage {
    /// The OID.
    pub fn oid(self) -> &'static str {
        match self {
            Self::ServerAuth => "1.3.6.1.5.5.7.3.1",
            Self::ClientAuth => "1.3.6.1.5.5.7.3.2",
            Self::CodeSigning => "1.3.6.1.5.5.7.3.3",
            Self::EmailProtection => "1.3.6.1.5.5.7.3.4",
        }
    }
}

/// A dotted-decimal OID, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(Vec<u64>);

impl Oid {
    /// Parses dotted decimal ("2.16.840…").
    pub fn parse(s: &str) -> Result<Self, ProfileError> {
        let arcs: Option<Vec<u64>> = s.split('.').map(|p| p.parse().ok()).collect();
        match arcs {
            Some(a) if a.len() >= 2 && a[0] <= 2 => Ok(Self(a)),
            _ => Err(ProfileError::BadOid(s.to_owned())),
        }
    }

    /// The arcs.
    pub fn arcs(&self) -> &[u64] {
        &self.0
    }

    /// The OID as the DER encoder takes it; fails for arcs beyond what it can hold (32 bits,
    /// 39 octets in all).
    pub(crate) fn object_identifier(&self) -> der::Result<const_oid::ObjectIdentifier> {
        Ok(const_oid::ObjectIdentifier::new(&self.to_string())?)
    }

    fn starts_with(&self, prefix: &Oid) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl std::fmt::Display for Oid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// A certificate type of the catalog (Medium, Medium Token, …).
#[derive(Debug, Clone)]
pub struct CertificateType {
    /// Catalog id, e.g. `medium-token`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The SHA-256-era policy OID asserted in certificates.
    pub policy: Oid,
    /// The SHA-1-era OID, accepted by relying parties but never issued.
    pub legacy_policy: Option<Oid>,
    /// Where the key must be held.
    pub key_storage: KeyStorage,
    /// Who may proof identity for this type.
    pub proofing: String,
}

/// A validated profile: everything issuance needs to shape a certificate.
#[derive(Debug, Clone)]
pub struct Profile {
    /// `<type>-<usage>`, e.g. `medium-token-identity`.
    pub id: String,
    /// The certificate type.
    pub cert_type: CertificateType,
    /// The usage id (`identity`, `encryption`, `tls`).
    pub usage: String,
    /// Person or device naming.
    pub subject: SubjectKind,
    /// Key usages for RSA keys (the extension is marked critical).
    pub key_usages: Vec<KeyUsage>,
    /// Key usages for EC keys.
    pub ec_key_usages: Vec<KeyUsage>,
    /// Extended key usages.
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// Allowed validity periods in years.
    pub validity_years: Vec<u8>,
}

impl Profile {
    /// The policy OIDs the certificate asserts.
    pub fn policies(&self) -> Vec<Oid> {
        vec![self.cert_type.policy.clone()]
    }

    /// Whether this profile's certificates carry an encryption key (eligible for escrow).
    pub fn is_encryption(&self) -> bool {
        self.key_usages.contains(&KeyUsage::KeyEncipherment) && !self.key_usages.contains(&KeyUsage::DigitalSignature)
    }
}

/// Every profile, by id, plus the types (for the selection wizard and relying parties).
#[derive(Debug, Clone)]
pub struct Catalog {
    types: Vec<CertificateType>,
    profiles: BTreeMap<String, Profile>,
}

impl Catalog {
    /// Parses and validates a catalog file.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let cfg: ProfileConfig = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        cfg.validate()
    }

    /// The catalog shipped with Signet.
    pub fn default_eca() -> Self {
        Self::from_toml(DEFAULT_CATALOG).expect("the shipped catalog is valid (tested)")
    }

    /// A profile by id.
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profiles.get(id)
    }

    /// All profiles in id order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }

    /// All certificate types in catalog order.
    pub fn types(&self) -> &[CertificateType] {
        &self.types
    }

    /// Every current policy OID of the catalog (for the issuing CA's policy extension).
    pub fn all_policies(&self) -> Vec<Oid> {
        self.types.iter().map(|t| t.policy.clone()).collect()
    }
}

impl ProfileConfig {
    fn validate(self) -> Result<Catalog, ProfileError> {
        let arc = Oid::parse(ECA_POLICY_ARC)?;
        let mut types: Vec<CertificateType> = Vec::new();
        for t in self.types {
            if types.iter().any(|x| x.id == t.id) {
                return Err(ProfileError::Duplicate(t.id));
            }
            let policy = Oid::parse(&t.policy_oid)?;
            let legacy_policy = t.legacy_oid.as_deref().map(Oid::parse).transpose()?;
            for oid in std::iter::once(&policy).chain(legacy_policy.as_ref()) {
                if !oid.starts_with(&arc) || oid.arcs().len() != arc.arcs().len() + 1 {
                    return Err(ProfileError::NotEcaPolicy(oid.to_string()));
                }
            }
            types.push(CertificateType {
                id: t.id,
                name: t.name,
                policy,
                legacy_policy,
                key_storage: t.key_storage,
                proofing: t.proofing,
            });
        }
        let mut usages = BTreeMap::new();
        for u in self.usages {
            let key_usages = u.key_usage.iter().map(|k| key_usage(k)).collect::<Result<Vec<_>, _>>()?;
            let ec_key_usages = match &u.ec_key_usage {
                Some(list) => list.iter().map(|k| key_usage(k)).collect::<Result<Vec<_>, _>>()?,
                None => key_usages.clone(),
            };
            if ec_key_usages.iter().any(|k| matches!(k, KeyUsage::KeyEncipherment | KeyUsage::DataEncipherment)) {
                return Err(ProfileError::InconsistentUsage(u.id, "EC keys cannot encipher; use keyAgreement"));
            }
            let ekus = u.extended_key_usage.iter().map(|k| extended_key_usage(k)).collect::<Result<Vec<_>, _>>()?;
            if key_usages.is_empty() {
                return Err(ProfileError::InconsistentUsage(u.id, "no key usage"));
            }
            if key_usages.iter().any(|k| matches!(k, KeyUsage::KeyCertSign | KeyUsage::CrlSign)) {
                return Err(ProfileError::InconsistentUsage(
                    u.id,
                    "end-entity profiles cannot sign certificates or CRLs",
                ));
            }
            if u.subject == SubjectKind::Person && ekus.contains(&ExtendedKeyUsage::ServerAuth) {
                return Err(ProfileError::InconsistentUsage(u.id, "a person's certificate cannot be a TLS server"));
            }
            if usages.insert(u.id.clone(), (u.subject, key_usages, ec_key_usages, ekus)).is_some() {
                return Err(ProfileError::Duplicate(u.id));
            }
        }
        let mut profiles = BTreeMap::new();
        for p in self.profiles {
            let cert_type = types
                .iter()
                .find(|t| t.id == p.cert_type)
                .ok_or_else(|| ProfileError::UnknownReference { kind: "type", id: p.cert_type.clone() })?;
            if p.validity_years.is_empty() || p.validity_years.iter().any(|y| !(1..=3).contains(y)) {
                return Err(ProfileError::BadValidity);
            }
            for usage in p.usage {
                let (subject, key_usages, ec_key_usages, ekus) = usages
                    .get(&usage)
                    .ok_or_else(|| ProfileError::UnknownReference { kind: "usage", id: usage.clone() })?;
                let id = format!("{}-{}", cert_type.id, usage);
                let profile = Profile {
                    id: id.clone(),
                    cert_type: cert_type.clone(),
                    usage,
                    subject: *subject,
                    key_usages: key_usages.clone(),
                    ec_key_usages: ec_key_usages.clone(),
                    extended_key_usages: ekus.clone(),
                    validity_years: p.validity_years.clone(),
                };
                if profiles.insert(id.clone(), profile).is_some() {
                    return Err(ProfileError::Duplicate(id));
                }
            }
        }
        Ok(Catalog { types, profiles })
    }
}

fn key_usage(name: &str) -> Result<KeyUsage, ProfileError> {
    Ok(match name {
        "digitalSignature" => KeyUsage::DigitalSignature,
        "nonRepudiation" | "contentCommitment" => KeyUsage::NonRepudiation,
        "keyEncipherment" => KeyUsage::KeyEncipherment,
        "dataEncipherment" => KeyUsage::DataEncipherment,
        "keyAgreement" => KeyUsage::KeyAgreement,
        "keyCertSign" => KeyUsage::KeyCertSign,
        "cRLSign" => KeyUsage::CrlSign,
        other => return Err(ProfileError::UnknownKeyUsage(other.to_owned())),
    })
}

fn extended_key_usage(name: &str) -> Result<ExtendedKeyUsage, ProfileError> {
    Ok(match name {
        "serverAuth" => ExtendedKeyUsage::ServerAuth,
        "clientAuth" => ExtendedKeyUsage::ClientAuth,
        "emailProtection" => ExtendedKeyUsage::EmailProtection,
        "codeSigning" => ExtendedKeyUsage::CodeSigning,
        other => return Err(ProfileError::UnknownKeyUsage(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_has_the_eca_profiles() {
        let c = Catalog::default_eca();
        let ids: Vec<&str> = c.profiles().map(|p| p.id.as_str()).collect();
        for want in [
            "medium-identity",
            "medium-encryption",
            "medium-token-identity",
            "medium-token-encryption",
            "medium-hardware-identity",
            "medium-hardware-encryption",
            "device-tls",
        ] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        assert_eq!(
            c.profile("medium-token-identity").unwrap().cert_type.policy.to_string(),
            "2.16.840.1.101.3.2.1.12.5"
        );
        assert_eq!(
            c.profile("medium-hardware-encryption").unwrap().cert_type.policy.to_string(),
            "2.16.840.1.101.3.2.1.12.10"
        );
        assert_eq!(c.profile("device-tls").unwrap().cert_type.policy.to_string(), "2.16.840.1.101.3.2.1.12.9");
        assert!(c.profile("medium-encryption").unwrap().is_encryption());
        assert!(!c.profile("medium-identity").unwrap().is_encryption());
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let outside_arc = DEFAULT_CATALOG.replace("2.16.840.1.101.3.2.1.12.9", "1.2.3.4");
        assert!(matches!(Catalog::from_toml(&outside_arc), Err(ProfileError::NotEcaPolicy(_))));
        let bad_years = DEFAULT_CATALOG.replace("validity_years = [1, 2]", "validity_years = [5]");
        assert!(matches!(Catalog::from_toml(&bad_years), Err(ProfileError::BadValidity)));
        let bad_ku = DEFAULT_CATALOG.replace("\"keyEncipherment\"]", "\"keyCertSign\"]");
        assert!(matches!(Catalog::from_toml(&bad_ku), Err(ProfileError::InconsistentUsage(..))));
        let unknown = DEFAULT_CATALOG.replace("usage = [\"tls\"]", "usage = [\"nope\"]");
        assert!(matches!(Catalog::from_toml(&unknown), Err(ProfileError::UnknownReference { .. })));
        assert!(matches!(Catalog::from_toml("garbage ="), Err(ProfileError::Toml(_))));
        let ec_encipher =
            DEFAULT_CATALOG.replace("ec_key_usage = [\"keyAgreement\"]", "ec_key_usage = [\"keyEncipherment\"]");
        assert!(matches!(Catalog::from_toml(&ec_encipher), Err(ProfileError::InconsistentUsage(..))));
    }
}
