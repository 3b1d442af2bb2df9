//! Required certificate policies (Keycloak's `requiredCertificatePolicies`): which policy
//! OIDs an application accepts, and the assurance level each one stands for.
//!
//! The OID → level mapping comes from the profile catalog (DESIGN §2's table: Medium .4 and
//! legacy .1, Medium Token .5 and legacy .3, Medium Hardware .10 and legacy .2, Device .9),
//! so it stays data: a type id in the configuration admits both its OIDs.

use signet_pki::profile::{Catalog, Oid};

/// A name in `required_policies` that is neither a catalog type id nor an OID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a certificate type of the catalog nor a dotted policy OID")]
pub struct UnknownPolicy(pub String);

/// One accepted policy OID and the assurance level it proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPolicy {
    /// Dotted OID.
    pub oid: String,
    /// Assurance level: the catalog type id (`medium-token`), or the OID itself when the
    /// catalog does not know it.
    pub level: String,
}

/// The policies one application (or route) accepts, in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet(Vec<AcceptedPolicy>);

/// The catalog type an OID belongs to (current or legacy OID).
pub fn level_of(catalog: &Catalog, oid: &str) -> Option<String> {
    catalog
        .types()
        .iter()
        .find(|t| t.policy.to_string() == oid || t.legacy_policy.as_ref().is_some_and(|l| l.to_string() == oid))
        .map(|t| t.id.clone())
}

impl PolicySet {
    /// Resolves type ids and OIDs against the catalog.
    pub fn resolve(names: &[String], catalog: &Catalog) -> Result<Self, UnknownPolicy> {
        let mut out: Vec<AcceptedPolicy> = Vec::new();
        for name in names {
            let name = name.trim();
            // A dotted-decimal OID is taken as is; anything else names a catalog type.
            let found: Vec<AcceptedPolicy> = if let Ok(oid) = Oid::parse(name) {
                let oid = oid.to_string();
                let level = level_of(catalog, &oid).unwrap_or_else(|| oid.clone());
                vec![AcceptedPolicy { oid, level }]
            } else {
                let t = catalog.types().iter().find(|t| t.id == name).ok_or_else(|| UnknownPolicy(name.to_owned()))?;
                std::iter::once(&t.policy)
                    .chain(t.legacy_policy.as_ref())
                    .map(|o| AcceptedPolicy { oid: o.to_string(), level: t.id.clone() })
                    .collect()
            };
            for p in found {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        Ok(Self(out))
    }

    /// The accepted policies.
    pub fn policies(&self) -> &[AcceptedPolicy] {
        &self.0
    }

    /// The first accepted policy among the chain's valid policies, if any.
    pub fn matching(&self, valid: &[String]) -> Option<&AcceptedPolicy> {
        self.0.iter().find(|p| valid.contains(&p.oid))
    }

    /// Distinct level names, for messages ("medium-token or medium-hardware").
    pub fn levels(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for p in &self.0 {
            if !v.contains(&p.level.as_str()) {
                v.push(&p.level);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_admit_current_and_legacy_oids() {
        let c = Catalog::default_eca();
        let set = PolicySet::resolve(&["medium-token".into(), "2.16.840.1.101.3.2.1.12.10".into()], &c).unwrap();
        let oids: Vec<&str> = set.policies().iter().map(|p| p.oid.as_str()).collect();
        assert_eq!(oids, ["2.16.840.1.101.3.2.1.12.5", "2.16.840.1.101.3.2.1.12.3", "2.16.840.1.101.3.2.1.12.10"]);
        assert_eq!(set.levels(), ["medium-token", "medium-hardware"]);
        let legacy = set.matching(&["2.16.840.1.101.3.2.1.12.3".into()]).unwrap();
        assert_eq!(legacy.level, "medium-token");
        // Medium (software) does not satisfy a token-only application.
        assert!(set.matching(&["2.16.840.1.101.3.2.1.12.4".into()]).is_none());
        assert!(PolicySet::resolve(&["platinum".into()], &c).is_err());
        let unknown_oid = PolicySet::resolve(&["1.2.3.4".into()], &c).unwrap();
        assert_eq!(unknown_oid.policies()[0].level, "1.2.3.4");
    }
}
