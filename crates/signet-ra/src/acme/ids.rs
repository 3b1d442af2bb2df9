//! The server's random identifiers (EAB key ids, accounts, orders, authorizations, challenges,
//! tokens, nonces) and why an ACME input was refused.

use data_encoding::BASE64URL_NOPAD;
use signet_pki::subject::SubjectError;

/// Random bytes whose base64url form does not start with `-`: key ids and HMAC keys are pasted
/// into command lines (`certbot --eab-kid <id>`), where a leading `-` reads as an option.
pub(super) fn random_bytes_for_b64url(bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; bytes];
    loop {
        aws_lc_rs::rand::fill(&mut b).expect("the system RNG works");
        // The first character encodes the top six bits; 62 is `-`.
        if b[0] >> 2 != 62 {
            return b;
        }
    }
}

/// `bytes` random bytes in base64url, never starting with `-`.
fn random_b64url(bytes: usize) -> String {
    BASE64URL_NOPAD.encode(&random_bytes_for_b64url(bytes))
}

/// Whether `s` is non-empty base64url.
pub(super) fn is_b64url(s: &str) -> bool {
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

impl From<SubjectError> for AcmeInputError {
    fn from(e: SubjectError) -> Self {
        Self::Name(e.to_string())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_base64url() {
        assert!(AccountId::parse("abc-_09").is_ok());
        assert!(AccountId::parse("a/b").is_err());
        assert!(AccountId::parse("").is_err());
        assert_eq!(ChallengeToken::generate().as_str().len(), 43);
    }
}
