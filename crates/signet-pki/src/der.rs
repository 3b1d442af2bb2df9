//! The few DER encodings rcgen does not write for us (certificate policies, authority
//! information access). Kept tiny and checked against OpenSSL and pkilint in tests.

use crate::profile::Oid;

/// Encodes one TLV with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub(crate) fn oid(oid: &Oid) -> Vec<u8> {
    let arcs = oid.arcs();
    let mut body = Vec::new();
    let mut push_base128 = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend_from_slice(&tmp);
    };
    push_base128(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push_base128(a);
    }
    tlv(0x06, &body)
}

/// RFC 5280 §4.2.1.4 certificatePolicies: policy OIDs without qualifiers.
pub(crate) fn certificate_policies(policies: &[Oid]) -> Vec<u8> {
    sequence(&policies.iter().map(|p| sequence(&[oid(p)])).collect::<Vec<_>>())
}

/// RFC 5280 §4.2.2.1 authorityInfoAccess with an OCSP and a caIssuers URI.
pub(crate) fn authority_info_access(ocsp: &str, ca_issuers: &str) -> Vec<u8> {
    let ad = |method: &str, uri: &str| {
        sequence(&[oid(&Oid::parse(method).expect("constant OID")), tlv(0x86, uri.as_bytes())])
    };
    sequence(&[ad("1.3.6.1.5.5.7.48.1", ocsp), ad("1.3.6.1.5.5.7.48.2", ca_issuers)])
}

/// A positive INTEGER from unsigned big-endian bytes.
pub(crate) fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    let mut body = bytes[start..].to_vec();
    if body.first().is_none_or(|b| b & 0x80 != 0) {
        body.insert(0, 0);
    }
    tlv(0x02, &body)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub(crate) fn time(t: time::OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, mo, d, h, mi, s) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    if (1950..2050).contains(&y) {
        tlv(0x17, format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes())
    } else {
        tlv(0x18, format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes())
    }
}

/// One Extension: SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }.
pub(crate) fn extension(id: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(&Oid::parse(id).expect("constant OID"))];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(tlv(0x04, value));
    sequence(&parts)
}

/// A named-bit BIT STRING (RFC 5280 key usage), minimal: trailing zero bits dropped.
pub(crate) fn named_bits(bits: &[u8]) -> Vec<u8> {
    let highest = bits.iter().copied().max().unwrap_or(0);
    let len = usize::from(highest / 8) + 1;
    let mut body = vec![0u8; len];
    for &b in bits {
        body[usize::from(b / 8)] |= 0x80 >> (b % 8);
    }
    let unused = body.last().map_or(0, |last| last.trailing_zeros().min(7) as u8);
    let mut out = vec![unused];
    out.extend_from_slice(&body);
    tlv(0x03, &out)
}

/// The AlgorithmIdentifier of the CA's signatures (RFC 4055 / RFC 5758).
pub(crate) fn signature_algorithm(alg: crate::KeyAlgorithm) -> Vec<u8> {
    use crate::KeyAlgorithm::*;
    let id = |o: &str| oid(&Oid::parse(o).expect("constant OID"));
    match alg {
        // sha256WithRSAEncryption takes explicit NULL parameters.
        Rsa2048 | Rsa3072 => sequence(&[id("1.2.840.113549.1.1.11"), vec![0x05, 0x00]]),
        P256 => sequence(&[id("1.2.840.10045.4.3.2")]),
        P384 => sequence(&[id("1.2.840.10045.4.3.3")]),
    }
}

/// OID arcs of certificatePolicies, for rcgen's custom extensions (CA certificates).
pub(crate) const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_vectors() {
        // 2.16.840.1.101.3.2.1.12.4 as produced by OpenSSL.
        assert_eq!(
            hex::encode(oid(&Oid::parse("2.16.840.1.101.3.2.1.12.4").unwrap())),
            "060a6086480165030201 0c04".replace(' ', "")
        );
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        // digitalSignature + nonRepudiation, and keyEncipherment alone, as OpenSSL writes them.
        assert_eq!(named_bits(&[0, 1]), [0x03, 0x02, 0x06, 0xc0]);
        assert_eq!(named_bits(&[2]), [0x03, 0x02, 0x05, 0x20]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0x00, 0x05]), [0x02, 0x01, 0x05]);
        let t = time::macros::datetime!(2049-12-31 23:59:59 UTC);
        assert_eq!(time(t), tlv(0x17, b"491231235959Z"));
        assert_eq!(time(t + time::Duration::seconds(1)), tlv(0x18, b"20500101000000Z"));
    }
}
