//! Who the applicant reaches at the Registration Authority: its name, the postal address the
//! notarized originals are mailed to, and the support email and phone. The forms, the mails and
//! the status page all print the same [`RaContact`], so an applicant never has to ask where the
//! paper goes.

use signet_pki::subject::Email;

use crate::application_form::PhoneNumber;

/// Why a contact setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// The RA's name is empty, too long, or has control characters.
    #[error("the name must be 1 to {max} characters without control characters", max = ContactLine::MAX)]
    Name,
    /// The mailing address has too few or too many lines.
    #[error("the mailing address must have {min} to {max} lines, not {0}", min = MailingAddress::MIN_LINES, max = MailingAddress::MAX_LINES)]
    AddressLines(usize),
    /// A mailing address line is empty, too long, or has control characters.
    #[error("mailing address line {0} must be 1 to {max} characters without control characters", max = ContactLine::MAX)]
    AddressLine(usize),
    /// The support email is not an email address.
    #[error("the support email {0:?} is not an email address")]
    Email(String),
    /// The support phone is not a phone number.
    #[error("the support phone {0:?} is not a phone number")]
    Phone(String),
}

/// One printed line: trimmed, 1 to [`ContactLine::MAX`] characters, no control characters (a
/// line break would add a line the count did not see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactLine(String);

impl ContactLine {
    /// The longest line, in characters: what fits across the forms' address block.
    pub const MAX: usize = 64;

    fn new(s: &str) -> Option<Self> {
        let t = s.trim();
        let ok = !t.is_empty() && t.chars().count() <= Self::MAX && !t.chars().any(char::is_control);
        ok.then(|| Self(t.to_owned()))
    }

    /// The line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The postal address the notarized originals go to, as printed on an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailingAddress(Vec<ContactLine>);

impl MailingAddress {
    /// The fewest lines: a street and a city line.
    pub const MIN_LINES: usize = 2;
    /// The most lines an envelope and the forms' block hold.
    pub const MAX_LINES: usize = 6;

    /// Checks the lines, top to bottom.
    pub fn new<S: AsRef<str>>(lines: &[S]) -> Result<Self, ContactError> {
        if !(Self::MIN_LINES..=Self::MAX_LINES).contains(&lines.len()) {
            return Err(ContactError::AddressLines(lines.len()));
        }
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| ContactLine::new(l.as_ref()).ok_or(ContactError::AddressLine(i + 1)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The lines, top to bottom.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(ContactLine::as_str)
    }
}

/// The Registration Authority as applicants reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaContact {
    /// The RA's name, as mail is signed and envelopes are addressed.
    pub name: ContactLine,
    /// Where the notarized originals are mailed.
    pub mailing_address: MailingAddress,
    /// Where applicants write with questions.
    pub support_email: Email,
    /// Where applicants call with questions.
    pub support_phone: PhoneNumber,
}

impl RaContact {
    /// Checks each part as configured.
    pub fn new<S: AsRef<str>>(name: &str, address: &[S], email: &str, phone: &str) -> Result<Self, ContactError> {
        Ok(Self {
            name: ContactLine::new(name).ok_or(ContactError::Name)?,
            mailing_address: MailingAddress::new(address)?,
            support_email: Email::new(email.trim()).map_err(|_| ContactError::Email(email.to_owned()))?,
            support_phone: PhoneNumber::new(phone).map_err(|_| ContactError::Phone(phone.to_owned()))?,
        })
    }

    /// The made-up RA of a development server (reserved `.example` domain, a 555 number).
    pub fn example() -> Self {
        Self::new(
            "Signet Registration Authority",
            &["Signet Registration Authority", "Attn: ECA Forms", "100 Example Way, Suite 300", "Arlington, VA 22201"],
            "support@ra.example",
            "+1 703 555 0100",
        )
        .expect("the example contact is valid")
    }

    /// The closing line every applicant mail and page carries.
    pub fn support_line(&self) -> String {
        format!("Questions? Email {} or call {}.", self.support_email.as_str(), self.support_phone.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_takes_two_to_six_bounded_lines() {
        assert_eq!(MailingAddress::new(&["One line"]), Err(ContactError::AddressLines(1)));
        assert_eq!(MailingAddress::new(&["a"; 7]), Err(ContactError::AddressLines(7)));
        assert_eq!(MailingAddress::new(&["Street", "  "]), Err(ContactError::AddressLine(2)));
        let long = "x".repeat(ContactLine::MAX + 1);
        assert_eq!(MailingAddress::new(&["Street", long.as_str()]), Err(ContactError::AddressLine(2)));
        assert_eq!(MailingAddress::new(&["Street\nhidden", "City"]), Err(ContactError::AddressLine(1)));
        let ok = MailingAddress::new(&[" 1 Main St ", "Arlington, VA 22201"]).unwrap();
        assert_eq!(ok.lines().collect::<Vec<_>>(), ["1 Main St", "Arlington, VA 22201"]);
    }

    #[test]
    fn the_contact_checks_email_and_phone_and_says_them_plainly() {
        let address = ["1 Main St", "Arlington, VA 22201"];
        assert_eq!(RaContact::new("RA", &address, "nope", "703 555 0100"), Err(ContactError::Email("nope".into())));
        assert_eq!(RaContact::new("RA", &address, "a@b.example", "12"), Err(ContactError::Phone("12".into())));
        assert_eq!(RaContact::new(" ", &address, "a@b.example", "7035550100"), Err(ContactError::Name));
        let c = RaContact::example();
        assert_eq!(c.support_line(), "Questions? Email support@ra.example or call (703) 555-0100.");
    }
}
