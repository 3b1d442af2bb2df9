//! The Certificate Selection Wizard (DESIGN §2; seeds: IdenTrust's "About DoD ECA Certificates"):
//! which agency applications accept which ECA certificate types, kept as data in
//! `catalog/agencies.toml`, and [`AgencyCatalog::select`], which offers the types every chosen
//! agency accepts and says, for each type it leaves out, which agency excluded it and why.
//!
//! The catalog also lists the federal programs a partner link may pre-fill
//! (`?program=Integrate`, seed onboarding guide Part 1).

use serde::Deserialize;
use signet_pki::profile::{Catalog, SubjectKind};
use toml::Spanned;

use crate::application_form::FederalProgram;
use crate::data_file::AtLine;

/// The agency catalog that ships with Signet.
pub const DEFAULT_AGENCIES: &str = include_str!("../catalog/agencies.toml");

/// Why an agency catalog or a wizard request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WizardError {
    /// The TOML did not parse into the catalog shape.
    #[error("agency catalog is not valid TOML: {0}")]
    Toml(String),
    /// An agency accepts a type that is not a person certificate type of the certificate catalog.
    #[error("agency {agency:?} accepts {cert_type:?}, which is not a subscriber certificate type")]
    UnknownType {
        /// The agency id.
        agency: String,
        /// The unknown type id.
        cert_type: String,
    },
    /// An agency accepts no type at all, so choosing it could never be satisfied.
    #[error("agency {0:?} accepts no certificate type")]
    NothingAccepted(String),
    /// Two agencies or programs share an id.
    #[error("duplicate id {0:?} in the agency catalog")]
    Duplicate(String),
    /// A program pre-selects an agency the catalog does not list.
    #[error("program {program:?} refers to unknown agency {agency:?}")]
    UnknownProgramAgency {
        /// The program id.
        program: String,
        /// The missing agency id.
        agency: String,
    },
    /// The request names an agency the catalog does not list.
    #[error("unknown agency {0:?}")]
    UnknownAgency(String),
    /// The partner link names a program the catalog does not list.
    #[error("{0:?} is not a federal program Signet serves")]
    UnknownProgram(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgencyFile {
    #[serde(default, rename = "program")]
    programs: Vec<ProgramConfig>,
    #[serde(rename = "agency")]
    agencies: Vec<AgencyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramConfig {
    id: Spanned<String>,
    name: String,
    agencies: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgencyConfig {
    id: Spanned<String>,
    name: String,
    accepts: Vec<Spanned<String>>,
    reason: Option<String>,
}

/// An agency application and the certificate types it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// Catalog id, e.g. `jpas`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Accepted certificate type ids (signet-pki catalog ids), in certificate-catalog order.
    pub accepts: Vec<String>,
    /// Why it accepts only these, when the catalog says.
    pub reason: Option<String>,
}

/// A federal program a partner link can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Catalog id, e.g. `integrate`.
    pub id: String,
    /// Display name, as partners spell it in links.
    pub name: String,
    /// Agencies the program's users need; the wizard starts with these selected.
    pub agencies: Vec<String>,
}

/// A subscriber certificate type as the wizard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedType {
    /// Certificate catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The validated wizard catalog.
#[derive(Debug, Clone)]
pub struct AgencyCatalog {
    types: Vec<OfferedType>,
    agencies: Vec<Agency>,
    programs: Vec<Program>,
}

/// One agency's objection to a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objection {
    /// The agency id.
    pub agency: String,
    /// The agency's display name.
    pub agency_name: String,
    /// Readable reason.
    pub reason: String,
}

/// A type the selection leaves out, and every chosen agency that excluded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The type.
    pub cert_type: OfferedType,
    /// Who excluded it and why (at least one).
    pub excluded_by: Vec<Objection>,
}

/// What the wizard offers for a set of agencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The chosen agencies' display names, in the order chosen.
    pub agencies: Vec<String>,
    /// Types every chosen agency accepts, in certificate-catalog order.
    pub allowed: Vec<OfferedType>,
    /// The other types, with reasons.
    pub excluded: Vec<Exclusion>,
}

impl Selection {
    /// Whether no type satisfies every chosen agency.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether the applicant may buy `cert_type` for the chosen agencies.
    pub fn allows(&self, cert_type: &str) -> bool {
        self.allowed.iter().any(|t| t.id == cert_type)
    }

    /// A sentence for the wizard page: what is offered, or why nothing is.
    pub fn message(&self) -> String {
        let names = |ts: &[OfferedType]| ts.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(" or ");
        if self.agencies.is_empty() {
            return format!("No agency chosen: any of {} may be bought.", names(&self.allowed));
        }
        let agencies = self.agencies.join(", ");
        if self.is_empty() {
            // The seed page's advice: a certificate is not agency-specific, so an applicant whose
            // agencies share no type needs one certificate per group of agencies.
            return format!(
                "No single certificate type is accepted by all of {agencies}. Choose fewer agencies \
                 and apply for a separate certificate for the others."
            );
        }
        format!("{agencies}: you can use {}.", names(&self.allowed))
    }
}

impl AgencyCatalog {
    /// Parses and validates an agency catalog against the certificate catalog; an error names
    /// the line it is on.
    pub fn from_toml(text: &str, certificates: &Catalog) -> Result<Self, AtLine<WizardError>> {
        let file: AgencyFile = toml::from_str(text).map_err(|e| AtLine::toml(text, &e, WizardError::Toml))?;
        let at = |spanned: &Spanned<String>, error| AtLine::at(text, spanned.span().start, error);
        // Only types that have person profiles can be applied for; device certificates are
        // created by enterprise account holders, not through the enrollment portal.
        let types: Vec<OfferedType> = certificates
            .types()
            .iter()
            .filter(|t| certificates.profiles().any(|p| p.cert_type.id == t.id && p.subject == SubjectKind::Person))
            .map(|t| OfferedType { id: t.id.clone(), name: t.name.clone() })
            .collect();
        let mut agencies: Vec<Agency> = Vec::new();
        for a in file.agencies {
            let id = a.id.get_ref().clone();
            if agencies.iter().any(|x| x.id == id) {
                return Err(at(&a.id, WizardError::Duplicate(id)));
            }
            if a.accepts.is_empty() {
                return Err(at(&a.id, WizardError::NothingAccepted(id)));
            }
            if let Some(bad) = a.accepts.iter().find(|t| !types.iter().any(|x| x.id == *t.get_ref())) {
                return Err(at(bad, WizardError::UnknownType { agency: id, cert_type: bad.get_ref().clone() }));
            }
            let accepts =
                types.iter().filter(|t| a.accepts.iter().any(|x| *x.get_ref() == t.id)).map(|t| t.id.clone()).collect();
            agencies.push(Agency { id, name: a.name, accepts, reason: a.reason });
        }
        let mut programs: Vec<Program> = Vec::new();
        for p in file.programs {
            let id = p.id.get_ref().clone();
            if programs.iter().any(|x| x.id == id) {
                return Err(at(&p.id, WizardError::Duplicate(id)));
            }
            if let Some(bad) = p.agencies.iter().find(|a| !agencies.iter().any(|x| x.id == *a.get_ref())) {
                return Err(at(bad, WizardError::UnknownProgramAgency { program: id, agency: bad.get_ref().clone() }));
            }
            let agencies = p.agencies.into_iter().map(Spanned::into_inner).collect();
            programs.push(Program { id, name: p.name, agencies });
        }
        Ok(Self { types, agencies, programs })
    }

    /// The catalog shipped with Signet.
    pub fn default_catalog(certificates: &Catalog) -> Self {
        Self::from_toml(DEFAULT_AGENCIES, certificates).expect("the shipped agency catalog is valid (tested)")
    }

    /// Every agency, in catalog order (the wizard's checkbox list).
    pub fn agencies(&self) -> &[Agency] {
        &self.agencies
    }

    /// An agency by id.
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.id == id)
    }

    /// Every program, in catalog order.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// Resolves a partner link's `program=` value (id or display name, any case) into a
    /// [`FederalProgram`], the only way to make one.
    pub fn program(&self, value: &str) -> Result<FederalProgram, WizardError> {
        let v = value.trim();
        self.programs
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(v) || p.name.eq_ignore_ascii_case(v))
            .map(|p| FederalProgram::from_catalog(&p.id))
            .ok_or_else(|| WizardError::UnknownProgram(value.to_owned()))
    }

    /// The agencies a program pre-selects.
    pub fn program_agencies(&self, program: &FederalProgram) -> &[String] {
        self.programs.iter().find(|p| p.id == program.as_str()).map_or(&[], |p| &p.agencies)
    }

    /// The program's display name (its id if the catalog has changed since).
    pub fn program_name(&self, program: &FederalProgram) -> String {
        self.programs
            .iter()
            .find(|p| p.id == program.as_str())
            .map_or_else(|| program.as_str().to_owned(), |p| p.name.clone())
    }

    /// The agencies a partner link's program needs that `chosen` leaves out. The wizard keeps
    /// them unless the applicant says they will not use the program: a partner sent them for
    /// it, and a type bought without them may not be one the program accepts.
    pub fn program_agencies_left_out(&self, program: &FederalProgram, chosen: &[String]) -> Vec<&Agency> {
        self.program_agencies(program)
            .iter()
            .filter(|id| !chosen.contains(*id))
            .filter_map(|id| self.agency(id))
            .collect()
    }

    /// Why the program's agencies do not accept `cert_type`: empty when the program accepts it.
    /// A type with objections is sold only when the applicant says, having read them, that
    /// they will not use the certificate for the program.
    pub fn program_objections(&self, program: &FederalProgram, cert_type: &str) -> Vec<Objection> {
        let ids: Vec<&str> = self.program_agencies(program).iter().map(String::as_str).collect();
        self.select(&ids)
            .ok()
            .and_then(|s| s.excluded.into_iter().find(|e| e.cert_type.id == cert_type))
            .map_or_else(Vec::new, |e| e.excluded_by)
    }

    /// The types every agency in `agency_ids` accepts, with a reason for each type left out.
    /// Repeated ids count once. No agencies means no constraint: every type is offered.
    pub fn select(&self, agency_ids: &[&str]) -> Result<Selection, WizardError> {
        let mut chosen: Vec<&Agency> = Vec::new();
        for id in agency_ids {
            let agency = self.agency(id).ok_or_else(|| WizardError::UnknownAgency((*id).to_owned()))?;
            if !chosen.iter().any(|a| a.id == agency.id) {
                chosen.push(agency);
            }
        }
        let mut allowed = Vec::new();
        let mut excluded = Vec::new();
        for t in &self.types {
            let excluded_by: Vec<Objection> = chosen
                .iter()
                .filter(|a| !a.accepts.contains(&t.id))
                .map(|a| Objection { agency: a.id.clone(), agency_name: a.name.clone(), reason: self.reason(a, t) })
                .collect();
            if excluded_by.is_empty() {
                allowed.push(t.clone());
            } else {
                excluded.push(Exclusion { cert_type: t.clone(), excluded_by });
            }
        }
        Ok(Selection { agencies: chosen.iter().map(|a| a.name.clone()).collect(), allowed, excluded })
    }

    fn reason(&self, agency: &Agency, excluded: &OfferedType) -> String {
        let accepted: Vec<&str> =
            self.types.iter().filter(|t| agency.accepts.contains(&t.id)).map(|t| t.name.as_str()).collect();
        let accepts = format!("{} accepts only {}", agency.name, accepted.join(" or "));
        match &agency.reason {
            Some(why) => format!("{accepts}, not {} ({why})", excluded.name),
            None => format!("{accepts}, not {}", excluded.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> AgencyCatalog {
        AgencyCatalog::default_catalog(&Catalog::default_eca())
    }

    fn ids(ts: &[OfferedType]) -> Vec<&str> {
        ts.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn shipped_catalog_offers_only_person_types() {
        let c = catalog();
        let all = c.select(&[]).unwrap();
        assert_eq!(ids(&all.allowed), ["medium", "medium-token", "medium-hardware"]);
        assert!(all.message().starts_with("No agency chosen"), "{}", all.message());
        assert!(c.agencies().len() >= 5);
    }

    #[test]
    fn canes_and_jpas_leave_medium_token_with_reasons() {
        let s = catalog().select(&["canes", "jpas"]).unwrap();
        assert_eq!(ids(&s.allowed), ["medium-token"]);
        assert!(s.allows("medium-token") && !s.allows("medium"));
        let medium = s.excluded.iter().find(|e| e.cert_type.id == "medium").unwrap();
        assert_eq!(medium.excluded_by.len(), 1);
        assert_eq!(medium.excluded_by[0].agency, "jpas");
        assert!(medium.excluded_by[0].reason.contains("hardware token"), "{}", medium.excluded_by[0].reason);
        let hardware = s.excluded.iter().find(|e| e.cert_type.id == "medium-hardware").unwrap();
        let by: Vec<&str> = hardware.excluded_by.iter().map(|o| o.agency.as_str()).collect();
        assert_eq!(by, ["canes", "jpas"]);
        assert!(hardware.excluded_by[0].reason.contains("accepts only Medium Assurance or Medium Token Assurance"));
        assert!(s.message().contains("Medium Token Assurance"), "{}", s.message());
    }

    #[test]
    fn single_agencies_and_repeats() {
        let c = catalog();
        assert_eq!(ids(&c.select(&["canes"]).unwrap().allowed), ["medium", "medium-token"]);
        assert_eq!(ids(&c.select(&["jpas", "jpas"]).unwrap().allowed), ["medium-token"]);
        assert_eq!(ids(&c.select(&["integrate-il4"]).unwrap().allowed), ["medium-token", "medium-hardware"]);
        assert_eq!(ids(&c.select(&["integrate-il4", "canes"]).unwrap().allowed), ["medium-token"]);
    }

    #[test]
    fn empty_intersection_explains_itself() {
        let s = catalog().select(&["jpas", "il5-enclave"]).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.excluded.len(), 3);
        let msg = s.message();
        assert!(msg.contains("No single certificate type") && msg.contains("JPAS") && msg.contains("IL5"), "{msg}");
        let token = s.excluded.iter().find(|e| e.cert_type.id == "medium-token").unwrap();
        assert!(token.excluded_by[0].reason.contains("in person"), "{:?}", token.excluded_by);
    }

    #[test]
    fn unknown_agency_is_an_error() {
        assert_eq!(catalog().select(&["canes", "nope"]), Err(WizardError::UnknownAgency("nope".into())));
    }

    #[test]
    fn partner_link_programs() {
        let c = catalog();
        let p = c.program("Integrate").unwrap();
        assert_eq!(p.as_str(), "integrate");
        assert_eq!(c.program(" INTEGRATE ").unwrap(), p);
        assert_eq!(c.program_agencies(&p), ["integrate-il4"]);
        assert!(matches!(c.program("Acme Rockets"), Err(WizardError::UnknownProgram(_))));
    }

    #[test]
    fn a_program_keeps_its_agencies_and_objects_to_types_it_does_not_take() {
        let c = catalog();
        let integrate = c.program("Integrate").unwrap();
        assert_eq!(c.program_name(&integrate), "Integrate");
        let dropped = c.program_agencies_left_out(&integrate, &["canes".to_owned(), "jpas".to_owned()]);
        assert_eq!(dropped.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["integrate-il4"]);
        assert!(c.program_agencies_left_out(&integrate, &["integrate-il4".to_owned()]).is_empty());
        let medium = c.program_objections(&integrate, "medium");
        assert_eq!(medium.len(), 1);
        assert!(medium[0].reason.contains("IL4 systems require the private key on a hardware token"), "{medium:?}");
        assert!(c.program_objections(&integrate, "medium-token").is_empty());
        let piee = c.program("PIEE").unwrap();
        assert!(c.program_objections(&piee, "medium").is_empty());
    }

    #[test]
    fn bad_catalogs_are_refused_at_their_line() {
        let certs = Catalog::default_eca();
        let line_of = |text: &str, needle: &str| Some(text[..text.find(needle).unwrap()].matches('\n').count() + 1);
        let refused = |text: &str| AgencyCatalog::from_toml(text, &certs).unwrap_err();
        let unknown_type = DEFAULT_AGENCIES.replace("accepts = [\"medium-token\"]\n", "accepts = [\"device\"]\n");
        let e = refused(&unknown_type);
        assert!(matches!(e.error, WizardError::UnknownType { .. }) && e.line == line_of(&unknown_type, "\"device\""));
        let dup = DEFAULT_AGENCIES.replace("id = \"dtic\"", "id = \"canes\"");
        let e = refused(&dup);
        assert_eq!(e.error, WizardError::Duplicate("canes".into()));
        assert_eq!(e.line, line_of(DEFAULT_AGENCIES, "id = \"dtic\""));
        assert_eq!(e.to_string(), format!("line {}: duplicate id \"canes\" in the agency catalog", e.line.unwrap()));
        let empty = DEFAULT_AGENCIES.replace("accepts = [\"medium-hardware\"]", "accepts = []");
        assert!(matches!(refused(&empty).error, WizardError::NothingAccepted(_)));
        let dangling = DEFAULT_AGENCIES.replace("agencies = [\"piee\"]", "agencies = [\"gone\"]");
        let e = refused(&dangling);
        assert!(
            matches!(e.error, WizardError::UnknownProgramAgency { .. }) && e.line == line_of(&dangling, "\"gone\"")
        );
        let e = refused("agency = 3");
        assert!(matches!(e.error, WizardError::Toml(_)) && e.line == Some(1), "{e}");
    }
}
