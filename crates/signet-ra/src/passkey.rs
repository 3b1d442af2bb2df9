//! Passkeys (WebAuthn) as a second factor. A passkey's signature covers the origin the browser
//! was really on, so a phishing page that relays the password and the passkey's answer to the
//! real site gets a signature the site refuses — which a six-digit code cannot offer.
//!
//! The ceremonies themselves (challenge, origin and RP ID checks, user verification, signature
//! counter, COSE keys) are `webauthn_rp`'s: no CBOR or COSE is parsed here. This module says who
//! a passkey belongs to, what a person may call it, and what is stored: the credential's public
//! half, never a secret. Between the two halves of a ceremony the relying party's state travels
//! as opaque bytes the caller keeps (the web layer seals them to the session), so any node can
//! finish a ceremony another began. Attestation is not verified: browsers send none for
//! passkeys, so the AAGUID is what the authenticator says it is (see [`Aaguid`]).
//!
//! No HTTP and no SQL here: storage is [`PasskeyStore`].

use std::fmt;
use std::future::Future;

use time::OffsetDateTime;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::AuthenticationVerificationOptions;
use webauthn_rp::request::register::{
    CredProtect, Nickname, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle16, Username,
};
use webauthn_rp::request::{AsciiDomain, ExtensionInfo, PublicKeyCredentialDescriptor, RpId};
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, CredentialId};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication16, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration, RegistrationServerState,
};

use crate::audit::AuditEvent;
use crate::ids::ApplicationId;
use crate::issuance::StoreError;
use crate::notify::OutboxMessage;

/// Longest passkey name, in characters.
const NAME_CHARS: usize = 60;

/// Why a passkey ceremony or input failed. Sign-in and step-up answer all of them with the one
/// generic refusal; the variants exist for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasskeyError {
    /// The configured origin is not an `http(s)://host[:port]` a browser accepts for WebAuthn.
    #[error("the passkey origin {0:?} is not usable: {1}")]
    Origin(String, &'static str),
    /// The browser's answer is not a WebAuthn response, or names no credential.
    #[error("the passkey answer could not be read")]
    Malformed,
    /// The ceremony state did not decode (damaged, or from an older release).
    #[error("the passkey request expired or was damaged; start again")]
    State,
    /// The WebAuthn checks refused the answer (wrong origin, challenge, signature, no user
    /// verification, a cloned authenticator's counter, an expired ceremony).
    #[error("the passkey answer was refused: {0}")]
    Refused(String),
    /// The credential is not registered to this owner.
    #[error("this passkey is not registered to the account")]
    NotOwner,
    /// The authenticator is not on the allow-list for this owner.
    #[error("this kind of security key is not allowed here (AAGUID {0})")]
    NotAllowed(Aaguid),
    /// A stored passkey did not decode.
    #[error("stored passkey is damaged: {0}")]
    Stored(&'static str),
}

/// Why a passkey name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasskeyNameError {
    /// Empty after trimming.
    #[error("give the passkey a name, such as the device it is on")]
    Empty,
    /// Longer than sixty characters.
    #[error("use at most 60 characters")]
    TooLong,
    /// Holds a control character.
    #[error("use letters, digits, spaces and punctuation only")]
    Control,
}

/// What its owner calls a passkey ("Work laptop", "YubiKey on my keyring").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Parses a typed name: trimmed, 1–60 characters, no control characters.
    pub fn new(typed: &str) -> Result<Self, PasskeyNameError> {
        let name = typed.trim();
        if name.is_empty() {
            return Err(PasskeyNameError::Empty);
        }
        if name.chars().count() > NAME_CHARS {
            return Err(PasskeyNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(PasskeyNameError::Control);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose second factor a passkey is. Persisted as the audit actor's form, `subscriber:<ref>` or
/// `operator:<id>`, a closed set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PasskeyOwner {
    /// A subscriber's Certificate Management Center account.
    Subscriber(ApplicationId),
    /// An RA operator.
    Operator(String),
}

impl PasskeyOwner {
    /// The stored (and audit actor) form.
    pub fn stored(&self) -> String {
        match self {
            Self::Subscriber(id) => crate::cmc::actor(id),
            Self::Operator(id) => format!("operator:{id}"),
        }
    }

    /// Parses [`PasskeyOwner::stored`].
    pub fn parse(stored: &str) -> Option<Self> {
        match stored.split_once(':')? {
            ("subscriber", id) => ApplicationId::new(id).ok().map(Self::Subscriber),
            ("operator", id) if !id.is_empty() => Some(Self::Operator(id.to_owned())),
            _ => None,
        }
    }
}

/// An authenticator model's AAGUID, as the authenticator reported it at registration. Without
/// verified attestation this is the authenticator's own claim: an allow-list of AAGUIDs keeps
/// honest people to approved models, it does not stop a forged authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aaguid([u8; 16]);

impl Aaguid {
    /// From its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses the usual `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form (dashes optional).
    pub fn parse(text: &str) -> Option<Self> {
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        let bytes = hex::decode(hex).ok()?;
        bytes.try_into().ok().map(Self)
    }

    /// The 16 bytes.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for Aaguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

/// What the RA asks of operators' passkeys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorPasskeys {
    /// Operators sign in with a passkey: a code alone no longer signs in one who has a passkey,
    /// and one who has none must register one before doing anything else.
    pub required: bool,
    /// The authenticator models operators may register; `None`: any.
    pub authenticators: Option<Vec<Aaguid>>,
}

impl OperatorPasskeys {
    /// Whether an operator may register an authenticator of this model.
    pub fn allows(&self, aaguid: Aaguid) -> bool {
        self.authenticators.as_ref().is_none_or(|list| list.contains(&aaguid))
    }

    /// Reads an allow-list file: one AAGUID per line; blank lines and `#` comments ignored.
    pub fn parse_allow_list(text: &str) -> Result<Vec<Aaguid>, String> {
        let mut list = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let aaguid = Aaguid::parse(line).ok_or_else(|| format!("line {}: {line:?} is not an AAGUID", n + 1))?;
            list.push(aaguid);
        }
        if list.is_empty() {
            return Err("the file lists no AAGUID: no operator could register a passkey".into());
        }
        Ok(list)
    }
}

/// A registered passkey: the credential's public key and counters, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The credential id the authenticator chose (16–1023 bytes); unique.
    pub credential_id: Vec<u8>,
    /// Whose it is.
    pub owner: PasskeyOwner,
    /// The WebAuthn user handle: random, the same for all of an owner's passkeys.
    pub user_handle: [u8; 16],
    /// What the owner calls it.
    pub name: PasskeyName,
    /// The authenticator model, as it reported itself.
    pub aaguid: Aaguid,
    /// `webauthn_rp`'s encoding of the public key and fixed extensions.
    pub static_state: Vec<u8>,
    /// `webauthn_rp`'s encoding of the signature counter, backup and user-verified flags.
    pub dynamic_state: [u8; 7],
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed someone in or confirmed an action.
    pub last_used_at: Option<OffsetDateTime>,
}

impl Passkey {
    /// The credential id as the browser reports it (base64url, no padding), for forms and logs.
    pub fn id_text(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(&self.credential_id)
    }
}

/// One half-done ceremony: the state to keep until the answer comes back, and the options the
/// browser passes to `navigator.credentials` (WebAuthn's JSON form).
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// Opaque; hand it back with the answer. Holds the challenge and its expiry, no secret.
    pub state: Vec<u8>,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    pub options_json: String,
}

/// A parsed sign-in or step-up answer: which credential it claims, checked only by
/// [`RelyingParty::authenticate`].
pub struct Assertion(DiscoverableAuthentication16);

impl Assertion {
    /// Parses the browser's `PublicKeyCredential` JSON.
    pub fn parse(json: &str) -> Result<Self, PasskeyError> {
        serde_json::from_str(json).map(Self).map_err(|_| PasskeyError::Malformed)
    }

    /// The credential id it claims, to look the passkey up.
    pub fn credential_id(&self) -> &[u8] {
        self.0.raw_id().into_inner()
    }
}

/// This site as WebAuthn sees it: the RP ID passkeys are bound to, and the one origin whose
/// signatures count.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    rp_id: RpId,
    origin: String,
}

impl RelyingParty {
    /// The relying party for the address people open, `scheme://host[:port]` (a path is
    /// ignored). Browsers accept no IP address as an RP ID, so a loopback address becomes
    /// `localhost`, which browsers treat as secure over plain HTTP: open the site at
    /// `http://localhost:<port>` to use passkeys on a development server.
    pub fn for_origin(url: &str) -> Result<Self, PasskeyError> {
        let bad = |why| PasskeyError::Origin(url.to_owned(), why);
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("it has no scheme"))?;
        if !matches!(scheme, "http" | "https") {
            return Err(bad("the scheme is not http or https"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
            _ if authority.starts_with('[') => match authority.rsplit_once("]:") {
                Some((h, p)) => (&authority[..h.len() + 1], Some(p)),
                None => (authority, None),
            },
            _ => (authority, None),
        };
        let loopback = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let host = if loopback { "localhost".to_owned() } else { host.to_ascii_lowercase() };
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return Err(bad("browsers accept no IP address for passkeys; use a host name"));
        }
        if scheme == "http" && host != "localhost" {
            return Err(bad("passkeys need https:// except on localhost"));
        }
        let rp_id = AsciiDomain::try_from(host.clone()).map_err(|_| bad("the host is not a domain name"))?;
        let origin = match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(Self { rp_id: RpId::Domain(rp_id), origin })
    }

    /// The origin whose signatures count, `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Starts registering a passkey for `owner`. `user_handle` is the owner's (from an earlier
    /// passkey, or fresh); `existing` are the owner's passkeys, which the authenticator is told
    /// not to register twice. User verification (PIN or biometric) is required.
    pub fn start_registration(
        &self,
        owner: &PasskeyOwner,
        display_name: &str,
        user_handle: [u8; 16],
        existing: &[Passkey],
    ) -> Result<Ceremony, PasskeyError> {
        let handle = user_handle_of(user_handle);
        let stored = owner.stored();
        let name = Username::try_from(stored.as_str()).map_err(|_| PasskeyError::Stored("owner name"))?;
        let display = Nickname::try_from(display_name).ok();
        let exclude = existing
            .iter()
            .filter_map(|p| {
                let id = CredentialId::<Vec<u8>>::decode(p.credential_id.clone()).ok()?;
                // No transports recorded: the browser tries them all.
                let transports = AuthTransports::decode(0).ok()?;
                Some(PublicKeyCredentialDescriptor { id, transports })
            })
            .collect();
        let user = PublicKeyCredentialUserEntity { name, id: &handle, display_name: display };
        let mut options = PublicKeyCredentialCreationOptions::passkey(&self.rp_id, user, exclude);
        // Ask authenticators to keep the passkey behind user verification, but do not make the
        // browser refuse those that cannot say so (many platform passkeys): every sign-in and
        // step-up requires user verification anyway.
        options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
        let (server, client) = options.start_ceremony().map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let state = server.encode().map_err(|_| PasskeyError::State)?;
        Ok(Ceremony { state, options_json: options_json(&client)? })
    }

    /// Finishes a registration: checks the browser's answer against `state` and returns the
    /// passkey to store.
    pub fn register(
        &self,
        state: &[u8],
        response_json: &str,
        owner: PasskeyOwner,
        name: PasskeyName,
        now: OffsetDateTime,
    ) -> Result<Passkey, PasskeyError> {
        let server = RegistrationServerState::<16>::decode(state).map_err(|_| PasskeyError::State)?;
        let registration: Registration = serde_json::from_str(response_json).map_err(|_| PasskeyError::Malformed)?;
        let origins = [self.origin.as_str()];
        let options = RegistrationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
        let credential =
            server.verify(&self.rp_id, &registration, &options).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let aaguid: [u8; 16] =
            credential.metadata().aaguid.data().try_into().map_err(|_| PasskeyError::Stored("aaguid"))?;
        let static_state = credential.static_state().encode().map_err(|_| PasskeyError::Stored("static state"))?;
        let dynamic_state = credential.dynamic_state().encode().map_err(|_| PasskeyError::Stored("dynamic state"))?;
        let user_handle = credential.user_id().encode().map_err(|_| PasskeyError::Stored("user handle"))?;
        Ok(Passkey {
            credential_id: credential.id().into_inner().to_vec(),
            owner,
            user_handle,
            name,
            aaguid: Aaguid(aaguid),
            static_state,
            dynamic_state,
            created_at: now,
            last_used_at: None,
        })
    }

    /// Starts a sign-in or step-up: a discoverable request, so the browser offers the
    /// person's passkeys for this site without being told whose they are.
    pub fn start_authentication(&self) -> Result<Ceremony, PasskeyError> {
        let (server, client) = DiscoverableCredentialRequestOptions::passkey(&self.rp_id)
            .start_ceremony()
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let state = server.encode().map_err(|_| PasskeyError::State)?;
        Ok(Ceremony { state, options_json: options_json(&client)? })
    }

    /// Checks `assertion` against `state` and the stored `passkey` (already looked up by the
    /// assertion's credential id), and returns the passkey with its new counters. User
    /// verification is required; a counter that goes backwards (a cloned authenticator) is
    /// refused.
    pub fn authenticate(
        &self,
        state: &[u8],
        assertion: &Assertion,
        passkey: &Passkey,
        now: OffsetDateTime,
    ) -> Result<Passkey, PasskeyError> {
        let server = DiscoverableAuthenticationServerState::decode(state).map_err(|_| PasskeyError::State)?;
        let handle = user_handle_of(passkey.user_handle);
        let static_state = StaticState::<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>::decode(
            passkey.static_state.as_slice(),
        )
        .map_err(|_| PasskeyError::Stored("static state"))?;
        let dynamic_state =
            DynamicState::decode(passkey.dynamic_state).map_err(|_| PasskeyError::Stored("dynamic state"))?;
        let id = assertion.0.raw_id();
        if id.into_inner() != passkey.credential_id.as_slice() {
            return Err(PasskeyError::NotOwner);
        }
        let mut credential = AuthenticatedCredential::new(id, &handle, static_state, dynamic_state)
            .map_err(|_| PasskeyError::Stored("credential"))?;
        let origins = [self.origin.as_str()];
        let options =
            AuthenticationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
        server
            .verify(&self.rp_id, &assertion.0, &mut credential, &options)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let dynamic_state = credential.dynamic_state().encode().map_err(|_| PasskeyError::Stored("dynamic state"))?;
        Ok(Passkey { dynamic_state, last_used_at: Some(now), ..passkey.clone() })
    }
}

/// The options as `PublicKeyCredential.parse…OptionsFromJSON` reads them: the request options
/// come wrapped with their mediation, which the forms do not use.
fn options_json(client: &impl serde::Serialize) -> Result<String, PasskeyError> {
    let mut value = serde_json::to_value(client).map_err(|_| PasskeyError::State)?;
    if let Some(inner) = value.get_mut("publicKey") {
        value = inner.take();
    }
    Ok(value.to_string())
}

fn user_handle_of(bytes: [u8; 16]) -> UserHandle16 {
    match UserHandle16::decode(bytes) {
        Ok(handle) => handle,
        Err(never) => match never {},
    }
}

/// A fresh random user handle, for an owner's first passkey.
pub fn new_user_handle() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("the system RNG works");
    b
}

/// What a person gave as the second factor at sign-in or step-up.
#[derive(Clone, Copy)]
pub enum SecondFactor<'a> {
    /// Typed from the soft token: `<PIN><code>`, or the code alone.
    Code(&'a str),
    /// A passkey's answer (the browser's JSON) to the ceremony whose state the caller kept.
    Passkey {
        /// This site.
        rp: &'a RelyingParty,
        /// The state [`RelyingParty::start_authentication`] returned.
        state: &'a [u8],
        /// The browser's `PublicKeyCredential` JSON.
        answer: &'a str,
    },
}

/// Checks a sign-in or step-up answer from one of `owner`'s passkeys and records the use (the
/// new counter) with `audit`. `Ok(Err(_))` is a refusal, which the caller counts like a wrong
/// code; `Err` is the store failing.
pub async fn confirm<S: PasskeyStore>(
    store: &S,
    rp: &RelyingParty,
    owner: &PasskeyOwner,
    state: &[u8],
    answer: &str,
    now: OffsetDateTime,
    audit: AuditEvent,
) -> Result<Result<(), PasskeyError>, StoreError> {
    let assertion = match Assertion::parse(answer) {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let Some(stored) = store.passkey(assertion.credential_id()).await? else {
        return Ok(Err(PasskeyError::NotOwner));
    };
    if stored.owner != *owner {
        return Ok(Err(PasskeyError::NotOwner));
    }
    let after = match rp.authenticate(state, &assertion, &stored, now) {
        Ok(after) => after,
        Err(e) => return Ok(Err(e)),
    };
    match store.passkey_used(&stored, &after, audit).await {
        Ok(()) => Ok(Ok(())),
        Err(StoreError::Conflict(_)) => Ok(Err(PasskeyError::Refused("the passkey was used meanwhile".into()))),
        Err(e) => Err(e),
    }
}

/// Where passkeys live; `signet-store` implements it. Each write carries its audit event, and
/// the owner's notice of the change when there is one, into the same transaction.
pub trait PasskeyStore: Send + Sync {
    /// The owner's passkeys, oldest first.
    fn passkeys(&self, owner: &PasskeyOwner) -> impl Future<Output = Result<Vec<Passkey>, StoreError>> + Send;

    /// The passkey with this credential id, whoever owns it.
    fn passkey(&self, credential_id: &[u8]) -> impl Future<Output = Result<Option<Passkey>, StoreError>> + Send;

    /// Stores a new passkey (`Conflict` if the credential id is taken).
    fn add_passkey(
        &self,
        passkey: &Passkey,
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Renames one of the owner's passkeys (`NotFound` if it has no such passkey).
    fn rename_passkey(
        &self,
        owner: &PasskeyOwner,
        credential_id: &[u8],
        name: &PasskeyName,
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes one of the owner's passkeys, only while the owner keeps another second factor
    /// (another passkey, or for a subscriber an active soft token): `Conflict` otherwise, and
    /// `NotFound` if it has no such passkey.
    fn remove_passkey(
        &self,
        owner: &PasskeyOwner,
        credential_id: &[u8],
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a use: the new counters and time, only if the counters stored are still those
    /// the check started from (`Conflict` if another request used the passkey meanwhile).
    fn passkey_used(
        &self,
        before: &Passkey,
        after: &Passkey,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_become_rp_ids_browsers_accept() {
        let rp = RelyingParty::for_origin("http://127.0.0.1:41234").expect("loopback");
        assert_eq!(rp.origin(), "http://localhost:41234");
        assert_eq!(
            RelyingParty::for_origin("https://ra.example.gov/").expect("https").origin(),
            "https://ra.example.gov"
        );
        assert_eq!(
            RelyingParty::for_origin("https://RA.example.gov:8443/cmc").expect("port").origin(),
            "https://ra.example.gov:8443"
        );
        assert_eq!(
            RelyingParty::for_origin("http://[::1]:8080").expect("v6 loopback").origin(),
            "http://localhost:8080"
        );
        for bad in ["http://ra.example.gov", "https://10.0.0.5", "ftp://ra.example.gov", "ra.example.gov"] {
            assert!(matches!(RelyingParty::for_origin(bad), Err(PasskeyError::Origin(..))), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(PasskeyName::new("  Work laptop ").expect("valid").as_str(), "Work laptop");
        assert_eq!(PasskeyName::new("   "), Err(PasskeyNameError::Empty));
        assert_eq!(PasskeyName::new(&"x".repeat(61)), Err(PasskeyNameError::TooLong));
        assert!(PasskeyName::new(&"é".repeat(60)).is_ok());
        assert_eq!(PasskeyName::new("a\u{7}b"), Err(PasskeyNameError::Control));
    }

    #[test]
    fn owners_round_trip_through_their_stored_form() {
        let sub = PasskeyOwner::Subscriber(ApplicationId::new("ABCDEFGHJKMN").expect("valid"));
        assert_eq!(PasskeyOwner::parse(&sub.stored()), Some(sub));
        let op = PasskeyOwner::Operator("alice".into());
        assert_eq!(PasskeyOwner::parse(&op.stored()), Some(op));
        assert_eq!(PasskeyOwner::parse("applicant:ABCDEFGHJKMN"), None);
        assert_eq!(PasskeyOwner::parse("operator:"), None);
    }

    #[test]
    fn allow_lists_name_the_models_operators_may_use() {
        let list = OperatorPasskeys::parse_allow_list(
            "# YubiKey 5 (USB-A, firmware 5.2/5.4)\ncb69481e-8ff7-4039-93ec-0a2729a154a8\n\nee882879-721c-4913-9775-3dfcce97072a # 5 NFC\n",
        )
        .expect("valid");
        let policy = OperatorPasskeys { required: true, authenticators: Some(list) };
        assert!(policy.allows(Aaguid::parse("ee882879721c491397753dfcce97072a").unwrap()));
        assert!(!policy.allows(Aaguid::from_bytes([0; 16])));
        assert!(OperatorPasskeys::default().allows(Aaguid::from_bytes([0; 16])));
        assert!(OperatorPasskeys::parse_allow_list("# nothing\n").unwrap_err().contains("no AAGUID"));
        assert!(OperatorPasskeys::parse_allow_list("not-an-aaguid").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn aaguids_parse_with_or_without_dashes() {
        let a = Aaguid::parse("ee882879-721c-4913-9775-3dfcce97072a").expect("valid");
        assert_eq!(a.to_string(), "ee882879-721c-4913-9775-3dfcce97072a");
        assert_eq!(Aaguid::parse("ee882879721c491397753dfcce97072a"), Some(a));
        assert_eq!(Aaguid::parse("ee882879"), None);
    }

    #[test]
    fn ceremonies_start_with_options_for_the_browser() {
        let rp = RelyingParty::for_origin("https://ra.example.gov").expect("valid");
        let owner = PasskeyOwner::Operator("alice".into());
        let reg = rp.start_registration(&owner, "Alice Adams", new_user_handle(), &[]).expect("starts");
        let options: serde_json::Value = serde_json::from_str(&reg.options_json).expect("json");
        assert_eq!(options["rp"]["id"], "ra.example.gov", "{options}");
        assert_eq!(options["authenticatorSelection"]["userVerification"], "required", "{options}");
        assert_eq!(options["extensions"]["enforceCredentialProtectionPolicy"], false, "{options}");
        let auth = rp.start_authentication().expect("starts");
        let options: serde_json::Value = serde_json::from_str(&auth.options_json).expect("json");
        assert_eq!(options["userVerification"], "required", "{options}");
        assert!(
            rp.register(b"not a state", "{}", owner, PasskeyName::new("x").unwrap(), OffsetDateTime::UNIX_EPOCH)
                .is_err()
        );
    }
}
