//! Certificate serial numbers: positive, at most 20 octets (RFC 5280 §4.1.2.2), with at least
//! 96 bits of entropy (DESIGN §2 asks for at least 64). An issued certificate's serial leads
//! with its issuance time; others are random throughout.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::asn1::Uint;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::serial_number::SerialNumber;

/// A positive certificate serial number, kept as its minimal unsigned big-endian bytes.
/// Its text form (database keys, URLs, logs) is lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// A serial number that is not a positive integer of at most 20 octets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("serial number must be 1 to 40 hex digits of a positive integer")]
pub struct BadSerial;

impl Serial {
    /// 16 random bytes with the top bit cleared: positive, 127 bits of entropy.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        SystemRandom::new().fill(&mut b).expect("system RNG failed");
        b[0] &= 0x7f;
        // A leading zero byte would be stripped; keep the length stable by setting a bit.
        b[0] |= 0x01;
        Self(b.to_vec())
    }

    /// The serial of a certificate issued at `at`: the milliseconds since 1970 in 6 octets (a
    /// positive 47-bit count), then 12 random octets, 96 bits of entropy. Serials issued one
    /// after another sort together, so each new one is stored beside the last in the
    /// database's index of serials, where a random one would change a page of that index at
    /// a random place: one more page written to the log for every certificate.
    pub fn issued_at(at: OffsetDateTime) -> Self {
        let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0).clamp(1, (1 << 47) - 1);
        let mut b = [0u8; 18];
        b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        SystemRandom::new().fill(&mut b[6..]).expect("system RNG failed");
        Self::from_unsigned_bytes(&b).expect("the time is at least 1, and 18 octets are at most 20")
    }

    /// From the unsigned big-endian magnitude (leading zeros are dropped).
    pub fn from_unsigned_bytes(bytes: &[u8]) -> Result<Self, BadSerial> {
        let start = bytes.iter().position(|&b| b != 0).ok_or(BadSerial)?;
        let trimmed = &bytes[start..];
        if trimmed.len() > 20 {
            return Err(BadSerial);
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// From DER INTEGER content bytes (two's complement); negative values are refused.
    pub fn from_der_integer(bytes: &[u8]) -> Result<Self, BadSerial> {
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(BadSerial);
        }
        Self::from_unsigned_bytes(bytes)
    }

    /// Parses the hex text form (case-insensitive, optional `:` separators).
    pub fn from_hex(s: &str) -> Result<Self, BadSerial> {
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let padded = if clean.len() % 2 == 1 { format!("0{clean}") } else { clean };
        let bytes = hex::decode(padded).map_err(|_| BadSerial)?;
        Self::from_unsigned_bytes(&bytes)
    }

    /// Lowercase hex, no separators.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The unsigned big-endian magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serial as the DER encoder takes it. `SerialNumber::new` refuses 20-octet serials
    /// with the top bit set (their DER is 21 octets) although RFC 5280 allows them and
    /// decoding accepts them, so this goes through DER.
    pub(crate) fn serial_number(&self) -> der::Result<SerialNumber> {
        SerialNumber::from_der(&Uint::new(&self.0)?.to_der()?)
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for Serial {
    type Err = BadSerial;
    fn from_str(s: &str) -> Result<Self, BadSerial> {
        Self::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = Serial::random();
        let b = Serial::random();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), 16);
        assert_eq!(a.as_bytes()[0] & 0x80, 0);
    }

    #[test]
    fn issued_serials_lead_with_the_time_and_sort_by_it() {
        let t = time::macros::datetime!(2026-12-07 12:00 UTC);
        let a = Serial::issued_at(t);
        let b = Serial::issued_at(t + time::Duration::milliseconds(1));
        let c = Serial::issued_at(t + time::Duration::milliseconds(1));
        assert_eq!(a.as_bytes().len(), 18);
        assert_eq!(&a.as_bytes()[..6], &1_796_644_800_000_u64.to_be_bytes()[2..], "milliseconds since 1970");
        assert_ne!(b, c, "the same millisecond, different random octets");
        // The text form is what the database orders: the later serial sorts after.
        assert!(a.to_hex() < b.to_hex() && a.to_hex() < c.to_hex());
        assert_eq!(Serial::from_hex(&a.to_hex()).unwrap(), a);
        // Before 1970 or past the 47 bits: still positive and at most 20 octets.
        for t in [OffsetDateTime::UNIX_EPOCH - time::Duration::days(1), time::macros::datetime!(9999-12-31 23:59 UTC)] {
            let s = Serial::issued_at(t);
            assert!(s.as_bytes()[0] & 0x80 == 0 && s.as_bytes()[0] != 0 && s.as_bytes().len() <= 18, "{s}");
        }
    }

    #[test]
    fn hex_round_trip_and_bad_input() {
        let s = Serial::from_hex("00:0A:ff").unwrap();
        assert_eq!(s.to_hex(), "0aff");
        assert_eq!(Serial::from_hex("0").unwrap_err(), BadSerial);
        assert_eq!(Serial::from_hex("zz").unwrap_err(), BadSerial);
        assert_eq!(Serial::from_hex(&"1".repeat(42)).unwrap_err(), BadSerial);
        assert_eq!(Serial::from_der_integer(&[0x80]).unwrap_err(), BadSerial);
    }
}
