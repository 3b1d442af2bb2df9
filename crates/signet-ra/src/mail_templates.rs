//! The wording of every notice, as templates an operator may replace: one plain-text file per
//! [`MessageKind`], a `Subject:` line, a blank line, then the body, with `{name}` where a value
//! goes. The shipped wording is in `templates/mail/`; the values each notice offers are listed in
//! [`MailTemplates::variables`]. A template is parsed once, so a value that itself contains
//! braces (an applicant's name, say) is printed as it is, never expanded.

use std::collections::BTreeMap;

use crate::data_file::AtLine;
use crate::outbox::MessageKind;

/// Why a mail template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The file is not named after a notice.
    #[error("{0:?} is not a notice; the templates are {1}")]
    UnknownNotice(String, String),
    /// The first line is not `Subject: …` followed by a blank line.
    #[error("a template starts with a \"Subject: …\" line and a blank line")]
    NoSubject,
    /// A `{name}` the notice does not offer.
    #[error("{{{name}}} is not a value of this notice; it offers {offered}")]
    UnknownValue {
        /// The name written.
        name: String,
        /// The names it could be.
        offered: String,
    },
    /// A brace that opens no `{name}`.
    #[error("an unmatched brace: write a value as {{name}}")]
    Brace,
    /// A value the notice is useless without is missing.
    #[error("the notice must include {{{0}}}")]
    Missing(&'static str),
}

/// One notice's values: every name it offers, and those a template must use.
struct Values {
    offered: &'static [&'static str],
    required: &'static [&'static str],
}

fn values(kind: MessageKind) -> Values {
    use MessageKind::*;
    let (offered, required): (&'static [&'static str], &'static [&'static str]) = match kind {
        EmailVerification => {
            (&["type", "verify_link", "files_to_print", "proofing", "mail_to", "deadline_rule"], &["verify_link"])
        }
        FormsReceived => (&["received_on", "carrier", "tracking_number", "last_day"], &[]),
        FormsDeficient => (&["problems", "staff_note", "files_to_print", "mail_to", "last_day"], &["problems"]),
        Approved => (&["shipping_address"], &[]),
        TokenShipped => (&["shipped_on", "carrier", "tracking_number", "last_day"], &["tracking_number"]),
        ActivationCode => (
            &["type", "activation_code", "retrieve_link", "reset_link", "last_day"],
            &["activation_code", "retrieve_link"],
        ),
        DeadlineReminder => (&["when", "last_day", "todo", "deadline_rule"], &["todo"]),
        Expired => (&["last_day", "deadline_rule"], &[]),
        Rejected => (&["reason"], &["reason"]),
        PasswordReset => (&["application", "reset_link"], &["reset_link"]),
        CertificateRevoked => (&["certificate", "serial", "reason", "cmc_link"], &["serial"]),
        CertificateRenewed => (&["certificate", "new_serial", "old_serial", "not_after", "cmc_link"], &["new_serial"]),
        CertificateExpiring => (&["certificate", "serial", "when", "not_after", "renewal_link"], &["renewal_link"]),
        SignInChanged => (&["change", "cmc_link", "recover_link"], &["change"]),
    };
    Values { offered, required }
}

/// The shipped wording, by notice.
fn shipped(kind: MessageKind) -> &'static str {
    use MessageKind::*;
    match kind {
        EmailVerification => include_str!("../templates/mail/email-verification.txt"),
        FormsReceived => include_str!("../templates/mail/forms-received.txt"),
        FormsDeficient => include_str!("../templates/mail/forms-deficient.txt"),
        Approved => include_str!("../templates/mail/approved.txt"),
        TokenShipped => include_str!("../templates/mail/token-shipped.txt"),
        ActivationCode => include_str!("../templates/mail/activation-code.txt"),
        DeadlineReminder => include_str!("../templates/mail/deadline-reminder.txt"),
        Expired => include_str!("../templates/mail/expired.txt"),
        Rejected => include_str!("../templates/mail/rejected.txt"),
        PasswordReset => include_str!("../templates/mail/password-reset.txt"),
        CertificateRevoked => include_str!("../templates/mail/certificate-revoked.txt"),
        CertificateRenewed => include_str!("../templates/mail/certificate-renewed.txt"),
        CertificateExpiring => include_str!("../templates/mail/certificate-expiring.txt"),
        SignInChanged => include_str!("../templates/mail/sign-in-changed.txt"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(&'static str),
}

/// A parsed template text (subject or body).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text(Vec<Piece>);

impl Text {
    /// Parses `text`, which starts at byte `offset` of `file`, against `values`.
    fn parse(file: &str, offset: usize, text: &str, values: &Values) -> Result<Self, AtLine<TemplateError>> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut at = offset;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(AtLine::at(file, at + open, TemplateError::Brace));
            }
            let close = rest[open..].find('}').map(|c| open + c);
            let name = close.map(|c| &rest[open + 1..c]);
            let Some((close, name)) = close
                .zip(name)
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            else {
                return Err(AtLine::at(file, at + open, TemplateError::Brace));
            };
            let Some(&known) = values.offered.iter().find(|v| **v == name) else {
                let error = TemplateError::UnknownValue { name: name.to_owned(), offered: braced(values.offered) };
                return Err(AtLine::at(file, at + open, error));
            };
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            pieces.push(Piece::Value(known));
            at += close + 1;
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    fn uses(&self, name: &str) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Value(v) if *v == name))
    }

    fn render(&self, values: &[(&str, &str)]) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Value(name) => values.iter().find(|(n, _)| n == name).map_or("", |(_, v)| *v),
            })
            .collect()
    }
}

fn braced(names: &[&str]) -> String {
    names.iter().map(|n| format!("{{{n}}}")).collect::<Vec<_>>().join(", ")
}

/// A notice's template: its subject line and body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    subject: Text,
    body: Text,
}

impl Template {
    fn parse(kind: MessageKind, file: &str) -> Result<Self, AtLine<TemplateError>> {
        let values = values(kind);
        let (first, rest) = file.split_once('\n').ok_or_else(|| AtLine::at(file, 0, TemplateError::NoSubject))?;
        let subject = first.strip_prefix("Subject:").ok_or_else(|| AtLine::at(file, 0, TemplateError::NoSubject))?;
        let body =
            rest.strip_prefix('\n').ok_or_else(|| AtLine::at(file, first.len() + 1, TemplateError::NoSubject))?;
        let subject_start = "Subject:".len() + (subject.len() - subject.trim_start().len());
        let subject = Text::parse(file, subject_start, subject.trim(), &values)?;
        let body = Text::parse(file, file.len() - body.len(), body.trim_end(), &values)?;
        if let Some(missing) = values.required.iter().find(|v| !subject.uses(v) && !body.uses(v)) {
            return Err(AtLine::whole_file(TemplateError::Missing(missing)));
        }
        Ok(Self { subject, body })
    }
}

/// Every notice's wording: the shipped one unless an operator replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplates(BTreeMap<&'static str, Template>);

impl Default for MailTemplates {
    fn default() -> Self {
        let all = MessageKind::ALL
            .iter()
            .map(|&k| (k.name(), Template::parse(k, shipped(k)).expect("the shipped templates are valid (tested)")));
        Self(all.collect())
    }
}

impl MailTemplates {
    /// The values a notice's template may use.
    pub fn variables(kind: MessageKind) -> &'static [&'static str] {
        values(kind).offered
    }

    /// The shipped templates with `name`'s (a notice name such as `activation-code`) replaced
    /// by `text`.
    pub fn replace(&mut self, name: &str, text: &str) -> Result<(), AtLine<TemplateError>> {
        let Some(kind) = MessageKind::ALL.iter().copied().find(|k| k.name() == name) else {
            let names: Vec<&str> = MessageKind::ALL.iter().map(|k| k.name()).collect();
            return Err(AtLine::whole_file(TemplateError::UnknownNotice(name.to_owned(), names.join(", "))));
        };
        self.0.insert(kind.name(), Template::parse(kind, text)?);
        Ok(())
    }

    /// The notices whose wording is not the shipped one.
    pub fn replaced(&self) -> Vec<&'static str> {
        let shipped = Self::default();
        self.0.iter().filter(|(name, t)| shipped.0.get(*name) != Some(t)).map(|(name, _)| *name).collect()
    }

    /// The subject and body of `kind` with `values` filled in.
    pub fn render(&self, kind: MessageKind, values: &[(&str, &str)]) -> (String, String) {
        let t = &self.0[kind.name()];
        (t.subject.render(values), t.body.render(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_parses_and_uses_only_its_values() {
        let t = MailTemplates::default();
        assert_eq!(t.0.len(), MessageKind::ALL.len());
        let (subject, body) = t.render(MessageKind::Rejected, &[("reason", "{activation_code} }{")]);
        assert_eq!(subject, "Your ECA application was not approved");
        assert!(body.contains("Reason: {activation_code} }{\n"), "a value is printed, never expanded: {body}");
    }

    #[test]
    fn a_replaced_template_is_checked_where_it_is_wrong() {
        let mut t = MailTemplates::default();
        t.replace("rejected", "Subject: About application\n\nWe said no.\nReason: {reason}\n").unwrap();
        assert_eq!(
            t.render(MessageKind::Rejected, &[("reason", "forms unreadable")]),
            ("About application".to_owned(), "We said no.\nReason: forms unreadable".to_owned())
        );
        let e = t.replace("rejected", "Subject: x\n\nWe said no.\nReason: {reason} {why}\n").unwrap_err();
        assert_eq!(e.to_string(), "line 4: {why} is not a value of this notice; it offers {reason}");
        let e = t.replace("activation-code", "Subject: Ready\n\nRetrieve at {retrieve_link}\n").unwrap_err();
        assert_eq!(e.to_string(), "the notice must include {activation_code}");
        assert_eq!(t.replace("rejected", "We said no. {reason}").unwrap_err().error, TemplateError::NoSubject);
        assert_eq!(t.replace("rejected", "Subject: x\n{reason}").unwrap_err().line, Some(2));
        assert_eq!(t.replace("rejected", "Subject: x\n\n{reason}\n\n{ reason }").unwrap_err().line, Some(5));
        assert_eq!(t.replace("rejected", "Subject: x {reason\n\ny").unwrap_err().error, TemplateError::Brace);
        let e = t.replace("rejection", "Subject: x\n\n{reason}").unwrap_err();
        assert!(matches!(e.error, TemplateError::UnknownNotice(..)) && e.line.is_none(), "{e}");
        // The template in force is still the last one accepted.
        assert_eq!(t.render(MessageKind::Rejected, &[("reason", "r")]).1, "We said no.\nReason: r");
        assert_eq!(t.replaced(), ["rejected"]);
        assert!(MailTemplates::default().replaced().is_empty());
    }
}
