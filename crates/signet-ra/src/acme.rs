//! ACME (RFC 8555) for device certificates: the rules, without HTTP or JSON Web Signatures.
//!
//! DESIGN §1: enterprise account admins get device (TLS server/client) certificates "by hand or
//! via ACME". An enterprise account is bound to an ACME account by an External Account Binding
//! key (RFC 8555 §7.3.4) that an administrator creates for one organization and the DNS domains
//! registered for it; the key binds exactly one ACME account, and every name that account
//! orders must lie under one of those domains (the organization-scoped name rule).
//!
//! Lifecycles are enums changed by consuming transitions, as RFC 8555 §7.1.6 draws them:
//! an order is pending until all its authorizations are valid, then ready; finalizing makes it
//! processing, then valid (with a certificate) or invalid. An authorization's challenge goes
//! pending → processing → valid / invalid and takes the authorization with it. The pending /
//! ready part of an order is derived from its authorizations rather than stored, so two
//! authorizations validated at once on two nodes cannot leave an order stuck in pending.
//!
//! Declares [`AcmeStore`], which `signet-store` implements.

use std::collections::BTreeSet;
use std::future::Future;

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_pki::Serial;
use signet_pki::subject::{DnsName, Email, OrganizationName, SubjectError};
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent};
use crate::issuance::StoreError;

/// How long an order and its authorizations stay usable (Let's Encrypt uses 7 days too).
pub const ORDER_LIFETIME: Duration = Duration::days(7);

/// How long a replay nonce is accepted after it was handed out.
pub const NONCE_LIFETIME: Duration = Duration::hours(1);

/// The most names one order may carry.
pub const MAX_IDENTIFIERS: usize = 20;

/// Random bytes whose base64url form does not start with `-`: key ids and HMAC keys are pasted
/// into command lines (`certbot --eab-kid <id>`), where a leading `-` reads as an option.
fn random_bytes_for_b64url(bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; bytes];
    loop {
        aws_lc_rs::rand::fill(&mut b).expect("the system RNG works");
        // The first character encodes the top six bits; 62 is `-`.
        if b[0] >> 2 != 62 {
            return b;
        }
    }
}

fn random_b64url(bytes: usize) -> String {
    BASE64URL_NOPAD.encode(&random_bytes_for_b64url(bytes))
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeInputError {
    /// An identifier of a type other than `dns` (RFC 8738 IP identifiers are not issued).
    #[error("identifier type {0:?} is not supported; only \"dns\" names are")]
    IdentifierType(String),
    /// A wildcard name. RFC 8555 §7.1.3 would allow it with dns-01 only, but the device
    /// profile carries host names only (signet-pki's `DnsName` has no wildcard), so none is
    /// authorized.
    #[error("{0:?} is a wildcard name; device certificates name single hosts")]
    Wildcard(String),
    /// Not a valid host name (the message of signet-pki's `SubjectError`).
    #[error("{0}")]
    Name(String),
    /// A domain suffix of a single label would cover a whole top-level domain.
    #[error("{0:?} is a top-level domain; register the organization's own domains")]
    TopLevelSuffix(String),
    /// No domain was given for an EAB key.
    #[error("an EAB key needs at least one DNS domain")]
    NoDomains,
    /// A key id, account id, order id or token that was not made by this server.
    #[error("{what} {value:?} is malformed")]
    Id {
        /// Which kind of value.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An HMAC key of the wrong length.
    #[error("an EAB HMAC key has 32 to 64 bytes")]
    HmacKeyLength,
    /// A contact that is not a `mailto:` address.
    #[error("contact {0:?} is not a mailto: address")]
    Contact(String),
}

macro_rules! random_id {
    ($($(#[$doc:meta])* $t:ident = $what:literal, $bytes:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $t(String);

        impl $t {
            /// A fresh random value.
            pub fn generate() -> Self {
                Self(random_b64url($bytes))
            }
            /// Checks a value that should have come from [`Self::generate`].
            pub fn parse(s: &str) -> Result<Self, AcmeInputError> {
                if is_b64url(s) && s.len() <= 64 {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(AcmeInputError::Id { what: $what, value: s.chars().take(80).collect() })
                }
            }
            /// The value (URL-safe).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

random_id! {
    /// An EAB key's id (the `kid` of the inner JWS), printed once with its HMAC key.
    EabKeyId = "EAB key id", 12;
    /// An ACME account (the tail of its URL, the `kid` of its requests).
    AccountId = "account id", 16;
    /// An order.
    OrderId = "order id", 16;
    /// An authorization.
    AuthorizationId = "authorization id", 16;
    /// A challenge.
    ChallengeId = "challenge id", 16;
    /// A challenge token (RFC 8555 §8.1: at least 128 bits of entropy, base64url): 256 bits.
    ChallengeToken = "challenge token", 32;
    /// A replay nonce (RFC 8555 §6.5): 128 bits, single use.
    Nonce = "nonce", 16;
}

/// An EAB HMAC key: 256 random bits. Debug never prints it; it leaves only through
/// [`EabHmacKey::as_bytes`], for the store and for showing it once when it is created.
#[derive(Clone, PartialEq, Eq)]
pub struct EabHmacKey(Vec<u8>);

impl std::fmt::Debug for EabHmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EabHmacKey(<redacted>)")
    }
}

/// The MAC algorithms an EAB's inner JWS may use (RFC 8555 §7.3.4 names HS256; certbot sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EabAlgorithm {
    /// HMAC-SHA256.
    Hs256,
    /// HMAC-SHA384.
    Hs384,
    /// HMAC-SHA512.
    Hs512,
}

impl EabAlgorithm {
    /// By JWS `alg` name.
    pub fn from_name(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            _ => None,
        }
    }
}

impl EabHmacKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(random_bytes_for_b64url(32))
    }

    /// A stored key.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AcmeInputError> {
        if (32..=64).contains(&bytes.len()) { Ok(Self(bytes)) } else { Err(AcmeInputError::HmacKeyLength) }
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The base64url form clients take (certbot's `--eab-hmac-key`).
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(&self.0)
    }

    /// Whether `tag` is the MAC of `message` under this key, compared in constant time.
    pub fn verify(&self, alg: EabAlgorithm, message: &[u8], tag: &[u8]) -> bool {
        use aws_lc_rs::hmac;
        let alg = match alg {
            EabAlgorithm::Hs256 => hmac::HMAC_SHA256,
            EabAlgorithm::Hs384 => hmac::HMAC_SHA384,
            EabAlgorithm::Hs512 => hmac::HMAC_SHA512,
        };
        hmac::verify(&hmac::Key::new(alg, &self.0), message, tag).is_ok()
    }
}

impl From<SubjectError> for AcmeInputError {
    fn from(e: SubjectError) -> Self {
        Self::Name(e.to_string())
    }
}

/// Orders and hashes a wrapper of a [`DnsName`] by its text (signet-pki's `DnsName` is
/// lowercased on construction, so equal text is the same name).
macro_rules! by_name {
    ($($t:ident),*) => {$(
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.as_str().hash(state);
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_str().cmp(other.0.as_str())
            }
        }
    )*};
}

/// A DNS domain registered for an organization: it covers itself and every name below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainSuffix(DnsName);

impl DomainSuffix {
    /// Checks a domain; it needs two labels at least.
    pub fn new(s: &str) -> Result<Self, AcmeInputError> {
        let name = DnsName::new(s.trim())?;
        if !name.as_str().contains('.') {
            return Err(AcmeInputError::TopLevelSuffix(name.as_str().to_owned()));
        }
        Ok(Self(name))
    }

    /// Whether `name` is this domain or below it (label-wise: `evilacme.example` is not
    /// under `acme.example`).
    pub fn covers(&self, name: &DnsName) -> bool {
        let (n, d) = (name.as_str(), self.0.as_str());
        n == d || n.strip_suffix(d).is_some_and(|head| head.ends_with('.'))
    }

    /// The domain.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for DomainSuffix {
    type Error = AcmeInputError;
    fn try_from(s: String) -> Result<Self, AcmeInputError> {
        Self::new(&s)
    }
}

impl From<DomainSuffix> for String {
    fn from(d: DomainSuffix) -> String {
        d.0.into()
    }
}

/// The domains an EAB key (and the account it binds) may get certificates for; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainScope(BTreeSet<DomainSuffix>);

impl DomainScope {
    /// A scope from a comma-separated list (`a.example,b.example`).
    pub fn parse(list: &str) -> Result<Self, AcmeInputError> {
        Self::new(list.split(',').filter(|s| !s.trim().is_empty()).map(DomainSuffix::new).collect::<Result<_, _>>()?)
    }

    /// A scope from checked domains.
    pub fn new(domains: BTreeSet<DomainSuffix>) -> Result<Self, AcmeInputError> {
        if domains.is_empty() { Err(AcmeInputError::NoDomains) } else { Ok(Self(domains)) }
    }

    /// Whether some domain of the scope covers `name`.
    pub fn covers(&self, name: &DnsName) -> bool {
        self.0.iter().any(|d| d.covers(name))
    }

    /// The domains, sorted.
    pub fn domains(&self) -> impl Iterator<Item = &DomainSuffix> {
        self.0.iter()
    }
}

/// Whether an EAB key can still bind an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EabBinding {
    /// Not used yet: the HMAC key is kept to check the binding.
    Unbound(EabHmacKey),
    /// Bound to this account; the HMAC key is erased, since it can never be used again.
    Bound(AccountId),
}

/// An External Account Binding key of an enterprise organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EabKey {
    /// The key id.
    pub id: EabKeyId,
    /// The enterprise organization: the organization OU of every certificate the bound
    /// account is issued.
    pub organization: OrganizationName,
    /// The DNS domains registered for the organization.
    pub scope: DomainScope,
    /// Unbound (with its secret) or bound.
    pub binding: EabBinding,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl EabKey {
    /// A new unbound key with a random id and HMAC key.
    pub fn generate(organization: OrganizationName, scope: DomainScope, now: OffsetDateTime) -> Self {
        Self {
            id: EabKeyId::generate(),
            organization,
            scope,
            binding: EabBinding::Unbound(EabHmacKey::generate()),
            created_at: now,
        }
    }

    /// The audit event for creating it (never the HMAC key).
    pub fn created_event(&self, actor: &str) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            actor,
            AuditAction::AcmeEabKeyCreated,
            self.id.as_str(),
            json!({
                "organization": self.organization.as_str(),
                "domains": self.scope.domains().map(DomainSuffix::as_str).collect::<Vec<_>>(),
            }),
        )
    }
}

/// An account key's RFC 7638 thumbprint (base64url SHA-256): its identity, and the second
/// half of every key authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyThumbprint(String);

impl KeyThumbprint {
    /// Wraps the base64url thumbprint computed from the JWK.
    pub fn new(s: &str) -> Result<Self, AcmeInputError> {
        if is_b64url(s) && s.len() == 43 {
            Ok(Self(s.to_owned()))
        } else {
            Err(AcmeInputError::Id { what: "key thumbprint", value: s.chars().take(80).collect() })
        }
    }
    /// The thumbprint.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account's status (RFC 8555 §7.1.6); `revoked` is for server-initiated removal, which
/// Signet does by deactivating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// In use.
    Valid,
    /// Closed by its holder; every later request with its key is refused.
    Deactivated,
}

impl AccountStatus {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Deactivated => "deactivated",
        }
    }
    /// By RFC name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "valid" => Some(Self::Valid),
            "deactivated" => Some(Self::Deactivated),
            _ => None,
        }
    }
}

/// An ACME account, bound to one EAB key and so to one organization and its domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// The account public key as a JWK (JSON text), as the client sent it.
    pub jwk: String,
    /// Its thumbprint.
    pub thumbprint: KeyThumbprint,
    /// The EAB key it was created with.
    pub eab_key: EabKeyId,
    /// The organization of the EAB key.
    pub organization: OrganizationName,
    /// The domains of the EAB key.
    pub scope: DomainScope,
    /// Contact addresses.
    pub contact: Vec<Email>,
    /// Status.
    pub status: AccountStatus,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Why an account could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The EAB key already bound an account.
    #[error("this external account binding key is already used by another account")]
    EabKeyUsed,
    /// The account is deactivated.
    #[error("the account is deactivated")]
    Deactivated,
}

/// Parses `mailto:` contacts (RFC 8555 §7.3: servers may refuse other schemes).
pub fn parse_contacts<'a>(contacts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Email>, AcmeInputError> {
    contacts
        .into_iter()
        .map(|c| {
            let addr = c.strip_prefix("mailto:").ok_or_else(|| AcmeInputError::Contact(c.to_owned()))?;
            Email::new(addr).map_err(|_| AcmeInputError::Contact(c.to_owned()))
        })
        .collect()
}

impl Account {
    /// A new account for the key `jwk`, binding the unbound EAB key `eab`, whose MAC the caller
    /// has verified. Returns the account and the key as it is once bound.
    pub fn register(
        jwk: String,
        thumbprint: KeyThumbprint,
        eab: EabKey,
        contact: Vec<Email>,
        now: OffsetDateTime,
    ) -> Result<(Self, EabKey), AccountError> {
        if !matches!(eab.binding, EabBinding::Unbound(_)) {
            return Err(AccountError::EabKeyUsed);
        }
        let account = Self {
            id: AccountId::generate(),
            jwk,
            thumbprint,
            eab_key: eab.id.clone(),
            organization: eab.organization.clone(),
            scope: eab.scope.clone(),
            contact,
            status: AccountStatus::Valid,
            created_at: now,
        };
        let bound = EabKey { binding: EabBinding::Bound(account.id.clone()), ..eab };
        Ok((account, bound))
    }

    /// The audit event for creating it.
    pub fn created_event(&self) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            &self.actor(),
            AuditAction::AcmeAccountCreated,
            self.id.as_str(),
            json!({
                "eab_key": self.eab_key.as_str(),
                "organization": self.organization.as_str(),
                "thumbprint": self.thumbprint.as_str(),
            }),
        )
    }

    /// Closes the account (RFC 8555 §7.3.6) and returns it with the audit event.
    pub fn deactivate(self, now: OffsetDateTime) -> Result<(Self, AuditEvent), AccountError> {
        if self.status != AccountStatus::Valid {
            return Err(AccountError::Deactivated);
        }
        let event =
            AuditEvent::new(now, &self.actor(), AuditAction::AcmeAccountDeactivated, self.id.as_str(), json!({}));
        Ok((Self { status: AccountStatus::Deactivated, ..self }, event))
    }

    /// The audit actor for this account's requests.
    pub fn actor(&self) -> String {
        format!("acme:{}", self.id)
    }
}

/// The ACME error types (RFC 8555 §6.7) Signet reports, and the HTTP layer's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No account has this key (`onlyReturnExisting`).
    AccountDoesNotExist,
    /// The certificate was revoked before.
    AlreadyRevoked,
    /// The CSR is unacceptable.
    BadCsr,
    /// The replay nonce is missing, unknown, expired or used.
    BadNonce,
    /// The JWS key is not acceptable.
    BadPublicKey,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The JWS algorithm is not supported.
    BadSignatureAlgorithm,
    /// The server could not connect to the validation target.
    Connection,
    /// DNS lookup failed during validation.
    Dns,
    /// An EAB is required and was missing.
    ExternalAccountRequired,
    /// The validation response was wrong.
    IncorrectResponse,
    /// The request is malformed.
    Malformed,
    /// The order is not ready to finalize.
    OrderNotReady,
    /// The server will not issue for this identifier.
    RejectedIdentifier,
    /// Something broke on the server's side.
    ServerInternal,
    /// The client lacks authorization.
    Unauthorized,
    /// The contact scheme is not supported.
    UnsupportedContact,
    /// The identifier type is not supported.
    UnsupportedIdentifier,
}

impl ProblemKind {
    const ALL: [Self; 18] = [
        Self::AccountDoesNotExist,
        Self::AlreadyRevoked,
        Self::BadCsr,
        Self::BadNonce,
        Self::BadPublicKey,
        Self::BadRevocationReason,
        Self::BadSignatureAlgorithm,
        Self::Connection,
        Self::Dns,
        Self::ExternalAccountRequired,
        Self::IncorrectResponse,
        Self::Malformed,
        Self::OrderNotReady,
        Self::RejectedIdentifier,
        Self::ServerInternal,
        Self::Unauthorized,
        Self::UnsupportedContact,
        Self::UnsupportedIdentifier,
    ];

    /// The name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::BadCsr => "badCSR",
            Self::BadNonce => "badNonce",
            Self::BadPublicKey => "badPublicKey",
            Self::BadRevocationReason => "badRevocationReason",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::Connection => "connection",
            Self::Dns => "dns",
            Self::ExternalAccountRequired => "externalAccountRequired",
            Self::IncorrectResponse => "incorrectResponse",
            Self::Malformed => "malformed",
            Self::OrderNotReady => "orderNotReady",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::ServerInternal => "serverInternal",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedContact => "unsupportedContact",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// By name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The full URN.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }
}

/// An ACME problem: a kind and a detail for the client (never internal causes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeProblem {
    /// Kind.
    pub kind: ProblemKind,
    /// What the client can act on.
    pub detail: String,
}

impl AcmeProblem {
    /// A problem.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }

    /// Stored form: `{"type": name, "detail": ...}`.
    pub fn to_stored(&self) -> String {
        json!({ "type": self.kind.name(), "detail": self.detail }).to_string()
    }

    /// From the stored form.
    pub fn from_stored(s: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        Some(Self::new(ProblemKind::from_name(v["type"].as_str()?)?, v["detail"].as_str()?))
    }
}

impl From<AcmeInputError> for AcmeProblem {
    fn from(e: AcmeInputError) -> Self {
        let kind = match &e {
            AcmeInputError::IdentifierType(_) => ProblemKind::UnsupportedIdentifier,
            AcmeInputError::Wildcard(_) | AcmeInputError::Name(_) => ProblemKind::RejectedIdentifier,
            AcmeInputError::Contact(_) => ProblemKind::UnsupportedContact,
            _ => ProblemKind::Malformed,
        };
        Self::new(kind, e.to_string())
    }
}

/// An ACME identifier: a DNS host name, the only type issued (RFC 8555 §9.7.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(DnsName);

by_name!(DomainSuffix, Identifier);

impl Identifier {
    /// Checks an identifier object's `type` and `value`.
    pub fn parse(kind: &str, value: &str) -> Result<Self, AcmeInputError> {
        if kind != "dns" {
            return Err(AcmeInputError::IdentifierType(kind.chars().take(40).collect()));
        }
        if value.starts_with("*.") {
            return Err(AcmeInputError::Wildcard(value.chars().take(260).collect()));
        }
        Ok(Self(DnsName::new(value)?))
    }

    /// The host name.
    pub fn name(&self) -> &DnsName {
        &self.0
    }
}

/// A challenge type (RFC 8555 §8.3, §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// The key authorization served over HTTP on port 80.
    Http01,
    /// A TXT record at `_acme-challenge.<name>`.
    Dns01,
}

impl ChallengeKind {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
    /// By RFC name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "http-01" => Some(Self::Http01),
            "dns-01" => Some(Self::Dns01),
            _ => None,
        }
    }
}

/// The key authorization (RFC 8555 §8.1): what the client must publish for `token`.
pub fn key_authorization(token: &ChallengeToken, thumbprint: &KeyThumbprint) -> String {
    format!("{}.{}", token.as_str(), thumbprint.as_str())
}

/// The dns-01 TXT value (RFC 8555 §8.4): base64url SHA-256 of the key authorization.
pub fn dns01_txt(key_authorization: &str) -> String {
    BASE64URL_NOPAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes()).as_ref())
}

/// A challenge's status. `Processing` exists only while the server validates: the outcome is
/// stored, never the in-between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeStatus {
    /// Waiting for the client.
    Pending,
    /// Being validated.
    Processing,
    /// Validated at this time.
    Valid {
        /// When.
        validated: OffsetDateTime,
    },
    /// Validation failed.
    Invalid {
        /// Why.
        error: AcmeProblem,
    },
}

impl ChallengeStatus {
    /// The RFC name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// A challenge of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Id.
    pub id: ChallengeId,
    /// Type.
    pub kind: ChallengeKind,
    /// Token.
    pub token: ChallengeToken,
    /// Status.
    pub status: ChallengeStatus,
}

/// An authorization's stored status; `expired` is derived from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationStatus {
    /// Waiting for a challenge to be validated.
    Pending,
    /// A challenge was validated.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Pending past its expiry.
    Expired,
}

impl AuthorizationStatus {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
    /// By stored name (`expired` is never stored).
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "valid" => Some(Self::Valid),
            "invalid" => Some(Self::Invalid),
            _ => None,
        }
    }
}

/// The authorization of one name for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Id.
    pub id: AuthorizationId,
    /// The order it belongs to.
    pub order: OrderId,
    /// The account that owns the order.
    pub account: AccountId,
    /// The name.
    pub identifier: Identifier,
    /// Stored status (pending, valid or invalid).
    pub status: AuthorizationStatus,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// The challenges offered: http-01 and dns-01.
    pub challenges: Vec<Challenge>,
}

/// What a client's "please validate" did to an authorization.
#[derive(Debug)]
pub enum Respond {
    /// The challenge is processing: validate it, then [`Validation::conclude`].
    Validate(Validation),
    /// Nothing to do (already validated, failed or expired): report the state as it is.
    Unchanged(Authorization),
}

impl Authorization {
    /// The status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> AuthorizationStatus {
        match self.status {
            AuthorizationStatus::Pending if now >= self.expires => AuthorizationStatus::Expired,
            s => s,
        }
    }

    /// The client asked the server to validate `challenge` (RFC 8555 §7.5.1).
    pub fn respond(mut self, challenge: &ChallengeId, thumbprint: &KeyThumbprint, now: OffsetDateTime) -> Respond {
        let Some(index) = self.challenges.iter().position(|c| &c.id == challenge) else {
            return Respond::Unchanged(self);
        };
        if self.status_at(now) != AuthorizationStatus::Pending
            || self.challenges[index].status != ChallengeStatus::Pending
        {
            return Respond::Unchanged(self);
        }
        self.challenges[index].status = ChallengeStatus::Processing;
        let key_authorization = key_authorization(&self.challenges[index].token, thumbprint);
        Respond::Validate(Validation { authorization: self, index, key_authorization })
    }
}

/// An authorization whose challenge is processing.
#[derive(Debug)]
pub struct Validation {
    authorization: Authorization,
    index: usize,
    key_authorization: String,
}

impl Validation {
    /// The name to validate.
    pub fn name(&self) -> &DnsName {
        self.authorization.identifier.name()
    }
    /// The challenge type.
    pub fn kind(&self) -> ChallengeKind {
        self.authorization.challenges[self.index].kind
    }
    /// The token (the http-01 path).
    pub fn token(&self) -> &ChallengeToken {
        &self.authorization.challenges[self.index].token
    }
    /// The key authorization the client must have published.
    pub fn key_authorization(&self) -> &str {
        &self.key_authorization
    }

    /// Records the outcome: the challenge and its authorization become valid or invalid.
    /// Returns the authorization, the challenge's id and the audit event.
    pub fn conclude(
        self,
        outcome: Result<(), AcmeProblem>,
        account: &Account,
        now: OffsetDateTime,
    ) -> (Authorization, ChallengeId, AuditEvent) {
        let Self { mut authorization, index, .. } = self;
        let kind = authorization.challenges[index].kind;
        let (action, status, details) = match outcome {
            Ok(()) => (
                AuditAction::AcmeAuthorizationValidated,
                AuthorizationStatus::Valid,
                json!({ "name": authorization.identifier.name().as_str(), "challenge": kind.name() }),
            ),
            Err(error) => {
                let details = json!({
                    "name": authorization.identifier.name().as_str(), "challenge": kind.name(),
                    "error": error.kind.name(), "detail": error.detail,
                });
                authorization.challenges[index].status = ChallengeStatus::Invalid { error };
                (AuditAction::AcmeAuthorizationInvalid, AuthorizationStatus::Invalid, details)
            }
        };
        if status == AuthorizationStatus::Valid {
            authorization.challenges[index].status = ChallengeStatus::Valid { validated: now };
        }
        authorization.status = status;
        let event = AuditEvent::new(now, &account.actor(), action, authorization.id.as_str(), details);
        let challenge = authorization.challenges[index].id.clone();
        (authorization, challenge, event)
    }
}

/// How far an order got, as stored; whether it is pending or ready follows from its
/// authorizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderProgress {
    /// Waiting for its authorizations (pending, or ready once all are valid).
    Authorizing,
    /// Finalize was accepted; the certificate is being issued.
    Processing,
    /// Issued.
    Valid {
        /// The certificate's serial.
        certificate: Serial,
    },
    /// Issuance failed.
    Invalid {
        /// Why.
        error: AcmeProblem,
    },
}

impl OrderProgress {
    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authorizing => "authorizing",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// An order's status (RFC 8555 §7.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    /// Some authorization is pending.
    Pending,
    /// All authorizations are valid: finalize may be sent.
    Ready,
    /// Issuing.
    Processing,
    /// Issued.
    Valid {
        /// The certificate's serial.
        certificate: Serial,
    },
    /// An authorization failed or expired, or issuance failed.
    Invalid {
        /// Why, when known.
        error: Option<AcmeProblem>,
    },
}

impl OrderStatus {
    /// The RFC name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// Why an order could not be created or finalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// No identifiers, or too many.
    #[error("an order names 1 to {MAX_IDENTIFIERS} DNS names")]
    IdentifierCount,
    /// An identifier was refused.
    #[error(transparent)]
    Identifier(#[from] AcmeInputError),
    /// A name outside the domains registered for the account's organization.
    #[error("{name} is not under the domains registered for {organization} ({domains})")]
    OutsideScope {
        /// The name.
        name: String,
        /// The organization.
        organization: String,
        /// Its domains, comma-separated.
        domains: String,
    },
    /// Finalize before every authorization was valid, or twice.
    #[error("the order is {0}, not ready")]
    NotReady(&'static str),
    /// The CSR does not request exactly the order's names.
    #[error("the CSR requests {requested}, but the order is for {ordered}")]
    CsrNames {
        /// The CSR's names.
        requested: String,
        /// The order's names.
        ordered: String,
    },
    /// A transition was asked of an order in another state (a bug or a concurrent change).
    #[error("the order is {0}")]
    State(&'static str),
}

impl From<OrderError> for AcmeProblem {
    fn from(e: OrderError) -> Self {
        let kind = match &e {
            OrderError::Identifier(i) => return i.clone().into(),
            OrderError::OutsideScope { .. } => ProblemKind::RejectedIdentifier,
            OrderError::NotReady(_) => ProblemKind::OrderNotReady,
            OrderError::CsrNames { .. } => ProblemKind::BadCsr,
            _ => ProblemKind::Malformed,
        };
        Self::new(kind, e.to_string())
    }
}

/// A certificate order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// The names, sorted, without duplicates.
    pub identifiers: Vec<Identifier>,
    /// Its authorizations (one per name, same order) and their stored statuses.
    pub authorizations: Vec<(AuthorizationId, AuthorizationStatus)>,
    /// Stored progress.
    pub progress: OrderProgress,
    /// Expiry (of the order and its authorizations).
    pub expires: OffsetDateTime,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// A new order with its new authorizations, to be stored together.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order.
    pub order: Order,
    /// One pending authorization per name, each with an http-01 and a dns-01 challenge.
    pub authorizations: Vec<Authorization>,
}

impl NewOrder {
    /// Checks the requested `(type, value)` identifiers against the account's scope and builds
    /// the order (RFC 8555 §7.4).
    pub fn new<'a>(
        account: &Account,
        requested: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: OffsetDateTime,
    ) -> Result<Self, OrderError> {
        let mut names = BTreeSet::new();
        for (kind, value) in requested {
            let id = Identifier::parse(kind, value)?;
            if !account.scope.covers(id.name()) {
                return Err(OrderError::OutsideScope {
                    name: id.name().to_string(),
                    organization: account.organization.to_string(),
                    domains: account.scope.domains().map(DomainSuffix::as_str).collect::<Vec<_>>().join(", "),
                });
            }
            names.insert(id);
        }
        if names.is_empty() || names.len() > MAX_IDENTIFIERS {
            return Err(OrderError::IdentifierCount);
        }
        let id = OrderId::generate();
        let expires = now + ORDER_LIFETIME;
        let authorizations: Vec<Authorization> = names
            .iter()
            .map(|identifier| Authorization {
                id: AuthorizationId::generate(),
                order: id.clone(),
                account: account.id.clone(),
                identifier: identifier.clone(),
                status: AuthorizationStatus::Pending,
                expires,
                challenges: [ChallengeKind::Http01, ChallengeKind::Dns01]
                    .into_iter()
                    .map(|kind| Challenge {
                        id: ChallengeId::generate(),
                        kind,
                        token: ChallengeToken::generate(),
                        status: ChallengeStatus::Pending,
                    })
                    .collect(),
            })
            .collect();
        let order = Order {
            id,
            account: account.id.clone(),
            identifiers: names.into_iter().collect(),
            authorizations: authorizations.iter().map(|a| (a.id.clone(), a.status)).collect(),
            progress: OrderProgress::Authorizing,
            expires,
            created_at: now,
        };
        Ok(Self { order, authorizations })
    }

    /// The audit event for creating it.
    pub fn created_event(&self, account: &Account) -> AuditEvent {
        let names: Vec<&str> = self.order.identifiers.iter().map(|i| i.name().as_str()).collect();
        AuditEvent::new(
            self.order.created_at,
            &account.actor(),
            AuditAction::AcmeOrderCreated,
            self.order.id.as_str(),
            json!({ "names": names }),
        )
    }
}

impl Order {
    /// The status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> OrderStatus {
        match &self.progress {
            OrderProgress::Processing => OrderStatus::Processing,
            OrderProgress::Valid { certificate } => OrderStatus::Valid { certificate: certificate.clone() },
            OrderProgress::Invalid { error } => OrderStatus::Invalid { error: Some(error.clone()) },
            OrderProgress::Authorizing => {
                let statuses = || self.authorizations.iter().map(|(_, s)| *s);
                if statuses().any(|s| s == AuthorizationStatus::Invalid) {
                    OrderStatus::Invalid {
                        error: Some(AcmeProblem::new(ProblemKind::Unauthorized, "an authorization failed")),
                    }
                } else if statuses().all(|s| s == AuthorizationStatus::Valid) {
                    OrderStatus::Ready
                } else if now >= self.expires {
                    OrderStatus::Invalid { error: None }
                } else {
                    OrderStatus::Pending
                }
            }
        }
    }

    /// Finalize (RFC 8555 §7.4): the order must be ready and the CSR must request exactly its
    /// names. Returns the processing order and the audit event.
    pub fn finalize(
        self,
        csr_names: &BTreeSet<Identifier>,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        let status = self.status_at(now);
        if status != OrderStatus::Ready {
            return Err(OrderError::NotReady(status.name()));
        }
        if !csr_names.iter().eq(self.identifiers.iter()) {
            let list = |names: &mut dyn Iterator<Item = &Identifier>| {
                names.map(|i| i.name().as_str()).collect::<Vec<_>>().join(", ")
            };
            return Err(OrderError::CsrNames {
                requested: list(&mut csr_names.iter()),
                ordered: list(&mut self.identifiers.iter()),
            });
        }
        let event =
            AuditEvent::new(now, &account.actor(), AuditAction::AcmeOrderProcessing, self.id.as_str(), json!({}));
        Ok((Self { progress: OrderProgress::Processing, ..self }, event))
    }

    /// The certificate was issued: processing → valid.
    pub fn issued(
        self,
        certificate: Serial,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        if self.progress != OrderProgress::Processing {
            return Err(OrderError::State(self.progress.name()));
        }
        let event = AuditEvent::new(
            now,
            &account.actor(),
            AuditAction::AcmeOrderValid,
            self.id.as_str(),
            json!({ "serial": certificate.to_hex() }),
        );
        Ok((Self { progress: OrderProgress::Valid { certificate }, ..self }, event))
    }

    /// Issuance failed: processing → invalid.
    pub fn failed(
        self,
        error: AcmeProblem,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        if self.progress != OrderProgress::Processing {
            return Err(OrderError::State(self.progress.name()));
        }
        let event = AuditEvent::new(
            now,
            &account.actor(),
            AuditAction::AcmeOrderInvalid,
            self.id.as_str(),
            json!({ "error": error.kind.name(), "detail": error.detail }),
        );
        Ok((Self { progress: OrderProgress::Invalid { error }, ..self }, event))
    }
}

/// The storage ACME consumes; `signet-store` implements it. Every state change is one
/// transaction with its audit event.
pub trait AcmeStore: Send + Sync {
    /// Stores a new unbound EAB key with its secret.
    fn create_eab_key(&self, key: &EabKey, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An EAB key by id.
    fn eab_key(&self, id: &EabKeyId) -> impl Future<Output = Result<Option<EabKey>, StoreError>> + Send;

    /// Stores a new account and binds its EAB key (erasing the key's secret), only if the key
    /// is still unbound: `Conflict("eab key used")` otherwise, `Conflict("account key")` if
    /// another account has the same key.
    fn create_account(
        &self,
        account: &Account,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An account by id.
    fn account(&self, id: &AccountId) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// The account with this key.
    fn account_by_thumbprint(
        &self,
        thumbprint: &KeyThumbprint,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Saves a deactivated account; `Conflict("account status")` if it was not valid.
    fn deactivate_account(
        &self,
        account: &Account,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new order and its authorizations and challenges.
    fn create_order(&self, order: &NewOrder, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An order by id.
    fn order(&self, id: &OrderId) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// The order that produced the certificate `serial`.
    fn order_by_certificate(&self, serial: &Serial) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// The ids of an account's orders, newest first.
    fn account_orders(&self, account: &AccountId) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;

    /// Saves an order's new progress, only over `from` (the progress it was changed from):
    /// `Conflict("order progress")` if another request moved it first.
    fn save_order_progress(
        &self,
        order: &Order,
        from: &OrderProgress,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An authorization with its challenges.
    fn authorization(
        &self,
        id: &AuthorizationId,
    ) -> impl Future<Output = Result<Option<Authorization>, StoreError>> + Send;

    /// The authorization holding a challenge.
    fn authorization_by_challenge(
        &self,
        challenge: &ChallengeId,
    ) -> impl Future<Output = Result<Option<Authorization>, StoreError>> + Send;

    /// Saves a concluded validation (the authorization and `challenge`), only over a pending
    /// authorization: `Conflict("authorization status")` if it was concluded meanwhile.
    fn record_validation(
        &self,
        authorization: &Authorization,
        challenge: &ChallengeId,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a nonce handed out at `now`, valid for [`NONCE_LIFETIME`]. Not audited: nonces are the
    /// protocol's anti-replay plumbing, not state anyone acts on, and auditing them would
    /// make every ACME response a write on the audit chain's head.
    fn issue_nonce(&self, nonce: &Nonce, now: OffsetDateTime) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Spends a nonce: true once if it was handed out and has not expired at `now`, on
    /// whichever node it is presented.
    fn consume_nonce(
        &self,
        nonce: &Nonce,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn account(domains: &str) -> Account {
        let eab = EabKey::generate(
            OrganizationName::new("Acme Devices").unwrap(),
            DomainScope::parse(domains).unwrap(),
            t0(),
        );
        let thumb = KeyThumbprint::new(&"a".repeat(43)).unwrap();
        Account::register("{}".into(), thumb, eab, vec![], t0()).unwrap().0
    }

    #[test]
    fn domain_suffixes_cover_by_label() {
        let scope = DomainScope::parse("acme.example, b.example").unwrap();
        let covered = |n: &str| scope.covers(&DnsName::new(n).unwrap());
        assert!(covered("acme.example"));
        assert!(covered("device.acme.example"));
        assert!(covered("x.y.B.example"));
        assert!(!covered("evilacme.example"), "a suffix match must end on a label boundary");
        assert!(!covered("example"));
        assert!(!covered("acme.example.evil"));
        assert_eq!(DomainScope::parse(" , "), Err(AcmeInputError::NoDomains));
        assert_eq!(DomainSuffix::new("example"), Err(AcmeInputError::TopLevelSuffix("example".into())));
        assert!(DomainSuffix::new("*.acme.example").is_err());
    }

    #[test]
    fn identifiers_are_dns_names_without_wildcards() {
        assert_eq!(Identifier::parse("dns", "Device.Acme.Example").unwrap().name().as_str(), "device.acme.example");
        assert_eq!(Identifier::parse("ip", "127.0.0.1"), Err(AcmeInputError::IdentifierType("ip".into())));
        assert!(matches!(Identifier::parse("dns", "*.acme.example"), Err(AcmeInputError::Wildcard(_))));
        assert!(matches!(Identifier::parse("dns", "bad_name.example"), Err(AcmeInputError::Name(_))));
        let p: AcmeProblem = AcmeInputError::IdentifierType("ip".into()).into();
        assert_eq!(p.kind, ProblemKind::UnsupportedIdentifier);
    }

    #[test]
    fn orders_stay_inside_the_organization_domains() {
        let acct = account("acme.example");
        let order = NewOrder::new(
            &acct,
            [("dns", "b.acme.example"), ("dns", "a.acme.example"), ("dns", "A.acme.example")],
            t0(),
        )
        .unwrap();
        let names: Vec<&str> = order.order.identifiers.iter().map(|i| i.name().as_str()).collect();
        assert_eq!(names, ["a.acme.example", "b.acme.example"], "sorted, duplicates folded");
        assert_eq!(order.authorizations.len(), 2);
        let kinds: Vec<_> = order.authorizations[0].challenges.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChallengeKind::Http01, ChallengeKind::Dns01]);
        assert_ne!(order.authorizations[0].challenges[0].token, order.authorizations[0].challenges[1].token);
        assert_eq!(order.order.status_at(t0()), OrderStatus::Pending);

        let err = NewOrder::new(&acct, [("dns", "a.acme.example"), ("dns", "www.other.example")], t0()).unwrap_err();
        assert!(matches!(&err, OrderError::OutsideScope { name, .. } if name == "www.other.example"));
        assert_eq!(AcmeProblem::from(err).kind, ProblemKind::RejectedIdentifier);
        assert_eq!(NewOrder::new(&acct, [], t0()).unwrap_err(), OrderError::IdentifierCount);
        let many: Vec<String> = (0..=MAX_IDENTIFIERS).map(|i| format!("h{i}.acme.example")).collect();
        let err = NewOrder::new(&acct, many.iter().map(|n| ("dns", n.as_str())), t0()).unwrap_err();
        assert_eq!(err, OrderError::IdentifierCount);
    }

    #[test]
    fn order_lifecycle_pending_ready_processing_valid() {
        let acct = account("acme.example");
        let new = NewOrder::new(&acct, [("dns", "d.acme.example")], t0()).unwrap();
        let authz = new.authorizations[0].clone();
        let dns01 = authz.challenges[1].id.clone();
        let Respond::Validate(v) = authz.respond(&dns01, &acct.thumbprint, t0()) else { panic!("pending") };
        assert_eq!(v.kind(), ChallengeKind::Dns01);
        assert_eq!(v.key_authorization(), format!("{}.{}", v.token().as_str(), acct.thumbprint.as_str()));
        let (authz, challenge, event) = v.conclude(Ok(()), &acct, t0());
        assert_eq!(challenge, dns01);
        assert_eq!(event.action, AuditAction::AcmeAuthorizationValidated);
        assert_eq!(authz.status, AuthorizationStatus::Valid);
        assert!(matches!(authz.challenges[1].status, ChallengeStatus::Valid { .. }));
        assert_eq!(authz.challenges[0].status, ChallengeStatus::Pending);
        // Asking again changes nothing.
        assert!(matches!(authz.clone().respond(&dns01, &acct.thumbprint, t0()), Respond::Unchanged(_)));

        let mut order = new.order;
        let names: BTreeSet<Identifier> = [Identifier::parse("dns", "d.acme.example").unwrap()].into();
        assert_eq!(order.clone().finalize(&names, &acct, t0()).unwrap_err(), OrderError::NotReady("pending"));
        order.authorizations[0].1 = authz.status;
        assert_eq!(order.status_at(t0()), OrderStatus::Ready);
        let wrong: BTreeSet<Identifier> = [Identifier::parse("dns", "e.acme.example").unwrap()].into();
        assert!(matches!(order.clone().finalize(&wrong, &acct, t0()), Err(OrderError::CsrNames { .. })));
        let (processing, event) = order.finalize(&names, &acct, t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeOrderProcessing);
        assert_eq!(processing.status_at(t0()), OrderStatus::Processing);
        assert_eq!(processing.clone().finalize(&names, &acct, t0()).unwrap_err(), OrderError::NotReady("processing"));
        let serial = Serial::random();
        let (valid, _) = processing.clone().issued(serial.clone(), &acct, t0()).unwrap();
        assert_eq!(valid.status_at(t0()), OrderStatus::Valid { certificate: serial.clone() });
        assert!(valid.issued(serial, &acct, t0()).is_err(), "valid is final");
        let (invalid, event) =
            processing.failed(AcmeProblem::new(ProblemKind::BadCsr, "duplicate key"), &acct, t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeOrderInvalid);
        assert_eq!(invalid.status_at(t0()).name(), "invalid");
    }

    #[test]
    fn failed_or_expired_authorizations_make_the_order_invalid() {
        let acct = account("acme.example");
        let new = NewOrder::new(&acct, [("dns", "d.acme.example")], t0()).unwrap();
        let authz = new.authorizations[0].clone();
        let http01 = authz.challenges[0].id.clone();
        let Respond::Validate(v) = authz.clone().respond(&http01, &acct.thumbprint, t0()) else { panic!() };
        let (failed, _, event) = v.conclude(Err(AcmeProblem::new(ProblemKind::Connection, "refused")), &acct, t0());
        assert_eq!(event.action, AuditAction::AcmeAuthorizationInvalid);
        assert_eq!(failed.status, AuthorizationStatus::Invalid);
        let mut order = new.order.clone();
        order.authorizations[0].1 = failed.status;
        assert!(matches!(order.status_at(t0()), OrderStatus::Invalid { error: Some(_) }));

        let later = t0() + ORDER_LIFETIME;
        assert_eq!(authz.status_at(later), AuthorizationStatus::Expired);
        assert!(matches!(authz.respond(&http01, &acct.thumbprint, later), Respond::Unchanged(_)));
        assert_eq!(new.order.status_at(later), OrderStatus::Invalid { error: None });
    }

    #[test]
    fn eab_ids_and_keys_never_start_like_a_command_line_option() {
        // 1 in 64 would without the check; a thousand draws make a miss all but impossible.
        for _ in 0..1000 {
            let id = EabKeyId::generate();
            let key = EabHmacKey::generate();
            assert!(!id.as_str().starts_with('-') && !key.to_base64url().starts_with('-'), "{id}");
        }
    }

    #[test]
    fn eab_keys_bind_once_and_hide_their_secret() {
        let org = OrganizationName::new("Acme Devices").unwrap();
        let eab = EabKey::generate(org, DomainScope::parse("acme.example").unwrap(), t0());
        let EabBinding::Unbound(hmac) = &eab.binding else { panic!("new keys are unbound") };
        assert!(!format!("{eab:?}").contains(&hmac.to_base64url()));
        assert!(!format!("{:?}", eab.created_event("cli:x").details).contains(&hmac.to_base64url()));
        let tag =
            aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac.as_bytes()), b"m");
        assert!(hmac.verify(EabAlgorithm::Hs256, b"m", tag.as_ref()));
        assert!(!hmac.verify(EabAlgorithm::Hs256, b"n", tag.as_ref()));
        assert!(!hmac.verify(EabAlgorithm::Hs384, b"m", tag.as_ref()));
        let thumb = KeyThumbprint::new(&"b".repeat(43)).unwrap();
        let (acct, bound) = Account::register("{}".into(), thumb.clone(), eab, vec![], t0()).unwrap();
        assert_eq!(bound.binding, EabBinding::Bound(acct.id.clone()));
        assert_eq!(acct.organization.as_str(), "Acme Devices");
        assert_eq!(Account::register("{}".into(), thumb, bound, vec![], t0()).unwrap_err(), AccountError::EabKeyUsed);
        let (closed, event) = acct.deactivate(t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeAccountDeactivated);
        assert_eq!(closed.deactivate(t0()).unwrap_err(), AccountError::Deactivated);
    }

    #[test]
    fn contacts_ids_and_problems() {
        assert_eq!(parse_contacts(["mailto:ops@acme.example"]).unwrap()[0].as_str(), "ops@acme.example");
        assert!(matches!(parse_contacts(["tel:+1555"]), Err(AcmeInputError::Contact(_))));
        assert!(AccountId::parse("abc-_09").is_ok());
        assert!(AccountId::parse("a/b").is_err());
        assert!(AccountId::parse("").is_err());
        assert_eq!(ChallengeToken::generate().as_str().len(), 43);
        for kind in ProblemKind::ALL {
            assert_eq!(ProblemKind::from_name(kind.name()), Some(kind));
        }
        let p = AcmeProblem::new(ProblemKind::Dns, "no TXT");
        assert_eq!(AcmeProblem::from_stored(&p.to_stored()), Some(p));
        assert_eq!(ProblemKind::BadNonce.urn(), "urn:ietf:params:acme:error:badNonce");
        // SHA-256("abc") is the FIPS 180-2 test vector ba7816bf…15ad, here in base64url.
        assert_eq!(dns01_txt("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
