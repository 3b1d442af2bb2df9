//! The parsers behind every field an applicant or operator types into a form.
//!
//! Input: one selector byte, then UTF-8 text. The selector, counted from `a`, picks the parser
//! (`a` phone, `b` ZIP, … in the order of [`PARSERS`]); parsers of several fields take them
//! newline-separated. Besides never panicking, each accepted value must parse again from its
//! own string form to the same value: values are stored by that form and read back through the
//! same parser (serde `try_from = "String"`), so one that does not re-parse could be saved but
//! never loaded. Secrets must not show in Debug output.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use signet_pki::subject::{CommonName, DnsName, Email, OrganizationName};
use signet_ra::application::{
    ActivationCode, ApplicationId, CardNumber, MIN_PASSWORD_LENGTH, NewPassword, PhoneNumber, PoNumber, StateCode,
    UsAddress, ZipCode,
};
use signet_ra::vetting::{Carrier, DocumentNumber, TrackingNumber};

type Parser = fn(&str);

const PARSERS: [Parser; 15] = [
    |s| plain(s, PhoneNumber::new, PhoneNumber::as_str),
    |s| plain(s, ZipCode::new, ZipCode::as_str),
    |s| plain(s, StateCode::new, StateCode::as_str),
    address,
    |s| plain(s, PoNumber::new, PoNumber::as_str),
    card,
    activation_code,
    |s| plain(s, ApplicationId::new, ApplicationId::as_str),
    password,
    |s| plain(s, CommonName::new, CommonName::as_str),
    email,
    |s| plain(s, OrganizationName::new, OrganizationName::as_str),
    |s| plain(s, DnsName::new, DnsName::as_str),
    tracking,
    document,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(input) = std::str::from_utf8(rest) else { return };
    PARSERS[usize::from(selector.wrapping_sub(b'a')) % PARSERS.len()](input);
});

/// Parses `input`; if accepted, checks that the value's string form parses to the same value.
/// Returns the value for further checks.
fn round_trip<T: PartialEq + Debug, E>(
    input: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    form: impl Fn(&T) -> String,
) -> Option<T> {
    let value = parse(input).ok()?;
    let stored = form(&value);
    let again = parse(&stored).unwrap_or_else(|_| panic!("{value:?} does not parse from its own form"));
    assert_eq!(again, value, "re-parsing changed the value");
    Some(value)
}

/// A value whose `as_str` is its stored form.
fn plain<T: PartialEq + Debug, E>(input: &str, parse: fn(&str) -> Result<T, E>, as_str: fn(&T) -> &str) {
    round_trip(input, parse, |v| as_str(v).to_owned());
}

fn field<'a>(fields: &mut impl Iterator<Item = &'a str>) -> &'a str {
    fields.next().unwrap_or_default()
}

fn address(input: &str) {
    let mut f = input.split('\n');
    let (line1, line2, city, state, zip) = (field(&mut f), field(&mut f), field(&mut f), field(&mut f), field(&mut f));
    let Ok(a) = UsAddress::new(line1, line2, city, state, zip) else { return };
    let line2 = a.line2.as_ref().map_or("", |l| l.as_str());
    let again = UsAddress::new(a.line1.as_str(), line2, a.city.as_str(), a.state.as_str(), a.zip.as_str());
    assert_eq!(again.as_ref(), Ok(&a));
    // The shipping label: one line per field, none lost.
    assert_eq!(a.to_string().lines().count(), if a.line2.is_some() { 3 } else { 2 });
}

fn card(input: &str) {
    let Some(card) = round_trip(input, CardNumber::new, |c| c.expose().to_owned()) else { return };
    let number = card.expose();
    assert!((13..=19).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()));
    assert!(number.ends_with(card.last4()) && card.last4().len() == 4);
    assert!(!format!("{card:?}").contains(number), "Debug shows the card number");
}

fn activation_code(input: &str) {
    let Some(code) = round_trip(input, ActivationCode::new, ActivationCode::expose) else { return };
    let shown = code.expose().replace('-', "");
    assert!(!format!("{code:?}").contains(&shown), "Debug shows the activation code");
}

fn password(input: &str) {
    let mut f = input.split('\n');
    let (password, email) = (field(&mut f), field(&mut f));
    let Ok(email) = Email::new(email) else { return };
    let Ok(p) = NewPassword::new(password, &email) else { return };
    assert!(password.chars().count() >= MIN_PASSWORD_LENGTH);
    // The same Debug text for every password: nothing of it shows.
    let other = NewPassword::new("Zq7!vLm2#pR9wX", &Email::new("fuzz@example.com").expect("valid email"));
    assert_eq!(format!("{p:?}"), format!("{:?}", other.expect("strong password")), "Debug shows the password");
}

fn email(input: &str) {
    let Some(email) = round_trip(input, Email::new, |v| v.as_str().to_owned()) else { return };
    // rfc822Name is an IA5String, and the domain must be a host name certificates can carry.
    assert!(email.as_str().is_ascii());
    let (_, domain) = email.as_str().rsplit_once('@').expect("an address has an @");
    assert!(DnsName::new(domain).is_ok(), "domain {domain:?} is not a DNS name");
}

fn tracking(input: &str) {
    let (carrier, number) = input.split_once('\n').unwrap_or(("", input));
    let carrier = match carrier {
        "usps" => Carrier::Usps,
        "ups" => Carrier::Ups,
        "fedex" => Carrier::Fedex,
        "dhl" => Carrier::Dhl,
        _ => Carrier::Other,
    };
    round_trip(number, |s| TrackingNumber::new(carrier, s), |v| v.as_str().to_owned());
}

fn document(input: &str) {
    let Some(number) = round_trip(input, DocumentNumber::new, |v| v.as_str().to_owned()) else { return };
    let full = number.as_str();
    let masked = number.masked();
    assert_eq!(masked.chars().count(), full.len());
    assert!(full.ends_with(masked.trim_start_matches('*')));
    if full.len() > 4 {
        assert!(!format!("{number:?}").contains(full), "Debug shows the document number");
    }
}
