//! Certificate renewal (DESIGN §2 "CMC": "Renewal allowed in the 90 days before expiry, signed
//! in with the current certificate or the account + 2FA"): when a subscriber certificate may be
//! renewed, and what a subscriber signs with the current key to prove it holds it.
//!
//! Both ways in — the Certificate Management Center (account + 2FA) and `signet token renew`
//! (the current certificate) — ask [`check_window`]; the second also sends a signature by the
//! current key over [`proof_message`], as EST re-enrollment (RFC 7030 §4.2.2) and CMP key
//! update (RFC 4210 §5.3.5) prove possession of the key being replaced.

use time::{Duration, OffsetDateTime, UtcOffset};

/// How long before its expiry a certificate may be renewed.
pub const WINDOW: Duration = Duration::days(90);

/// Why a certificate may not be renewed now. The messages name the dates, for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalRefused {
    /// Too early: the window opens at `opens` (not_after - 90 days).
    #[error("renewal opens on {}, 90 days before the certificate expires on {}", utc(*.opens), utc(*.opens + WINDOW))]
    TooEarly {
        /// When the window opens.
        opens: OffsetDateTime,
    },
    /// The certificate has expired: a new application is needed.
    #[error("the certificate expired on {}: an expired certificate cannot be renewed; apply for a new one", utc(*.at))]
    Expired {
        /// Its notAfter.
        at: OffsetDateTime,
    },
    /// The certificate is revoked.
    #[error("the certificate is revoked: a revoked certificate cannot be renewed; apply for a new one")]
    Revoked,
    /// A later certificate of the same type already replaces it: one renewal per certificate.
    #[error("the certificate was already renewed: certificate {by} replaces it")]
    Replaced {
        /// The replacing certificate's serial (hex).
        by: String,
    },
}

/// Whether a certificate expiring at `not_after` may be renewed at `now`: from 90 days before
/// its expiry up to its notAfter, which RFC 5280 §4.1.2.5 counts as still valid; never once
/// revoked, since renewing would give a revoked subscriber a good certificate.
pub fn check_window(not_after: OffsetDateTime, revoked: bool, now: OffsetDateTime) -> Result<(), RenewalRefused> {
    let opens = not_after - WINDOW;
    if revoked {
        Err(RenewalRefused::Revoked)
    } else if now > not_after {
        Err(RenewalRefused::Expired { at: not_after })
    } else if now < opens {
        Err(RenewalRefused::TooEarly { opens })
    } else {
        Ok(())
    }
}

/// What the current key signs to renew: `"signet-renewal-v1\0" || SHA-256(new CSR DER)`. The
/// prefix keeps the signature from meaning anything in another protocol (it is no valid
/// certificate, CSR or OCSP structure); the hash binds it to the one new key, so a captured
/// proof cannot certify a key of the captor's choosing.
pub fn proof_message(csr_der: &[u8]) -> Vec<u8> {
    const CONTEXT: &[u8] = b"signet-renewal-v1\0";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, csr_der);
    [CONTEXT, digest.as_ref()].concat()
}

/// How many days before a certificate expires its subscriber is reminded: three mails, the
/// first inside the renewal window, the last with time left to renew.
pub const EXPIRY_REMINDER_DAYS: [i64; 3] = [60, 30, 7];

/// A reminder due for a certificate: the whole days left, and the threshold of
/// [`EXPIRY_REMINDER_DAYS`] it falls under (each threshold is mailed once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryReminder {
    /// Calendar days from today to the day it expires.
    pub days_left: i64,
    /// The smallest threshold not below `days_left`.
    pub threshold: i64,
}

/// The reminder due at `now` for a certificate expiring at `not_after`; `None` more than 60
/// days ahead, or once it has expired.
pub fn expiry_reminder(not_after: OffsetDateTime, now: OffsetDateTime) -> Option<ExpiryReminder> {
    let days_left = (not_after.to_offset(UtcOffset::UTC).date() - now.to_offset(UtcOffset::UTC).date()).whole_days();
    if days_left < 1 || now > not_after {
        return None;
    }
    let threshold = EXPIRY_REMINDER_DAYS.iter().copied().filter(|t| *t >= days_left).min()?;
    Some(ExpiryReminder { days_left, threshold })
}

fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!("{} {:02}:{:02}:{:02} UTC", t.date(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOT_AFTER: OffsetDateTime = datetime!(2027-12-02 14:00:00 UTC);

    #[test]
    fn the_window_is_the_last_ninety_days_up_to_not_after() {
        let opens = datetime!(2027-09-03 14:00:00 UTC);
        assert_eq!(NOT_AFTER - WINDOW, opens);
        let second = Duration::seconds(1);
        assert_eq!(check_window(NOT_AFTER, false, opens - second), Err(RenewalRefused::TooEarly { opens }));
        assert_eq!(check_window(NOT_AFTER, false, opens), Ok(()));
        assert_eq!(check_window(NOT_AFTER, false, NOT_AFTER), Ok(()), "notAfter itself is still valid");
        assert_eq!(check_window(NOT_AFTER, false, NOT_AFTER + second), Err(RenewalRefused::Expired { at: NOT_AFTER }));
    }

    #[test]
    fn a_revoked_certificate_is_never_renewed() {
        for now in [NOT_AFTER - WINDOW * 2, NOT_AFTER - Duration::days(1), NOT_AFTER + Duration::days(1)] {
            assert_eq!(check_window(NOT_AFTER, true, now), Err(RenewalRefused::Revoked), "{now}");
        }
    }

    #[test]
    fn messages_name_the_dates() {
        let early = check_window(NOT_AFTER, false, datetime!(2027-01-01 0:00 UTC)).unwrap_err();
        assert_eq!(
            early.to_string(),
            "renewal opens on 2027-09-03 14:00:00 UTC, 90 days before the certificate expires on 2027-12-02 14:00:00 UTC"
        );
        // An offset clock reads the same in UTC.
        let late = check_window(NOT_AFTER.to_offset(time::macros::offset!(-5)), false, datetime!(2028-01-01 0:00 UTC));
        assert_eq!(
            late.unwrap_err().to_string(),
            "the certificate expired on 2027-12-02 14:00:00 UTC: an expired certificate cannot be renewed; apply for a new one"
        );
        assert!(RenewalRefused::Revoked.to_string().contains("revoked"));
    }

    #[test]
    fn reminders_fall_under_sixty_thirty_and_seven_days() {
        let at = |days: i64| expiry_reminder(NOT_AFTER, NOT_AFTER - Duration::days(days));
        assert_eq!(at(61), None);
        assert_eq!(at(60), Some(ExpiryReminder { days_left: 60, threshold: 60 }));
        assert_eq!(at(45), Some(ExpiryReminder { days_left: 45, threshold: 60 }));
        assert_eq!(at(30).map(|r| r.threshold), Some(30));
        assert_eq!(at(8).map(|r| r.threshold), Some(30));
        assert_eq!(at(7).map(|r| r.threshold), Some(7));
        assert_eq!(at(1), Some(ExpiryReminder { days_left: 1, threshold: 7 }));
        assert_eq!(expiry_reminder(NOT_AFTER, NOT_AFTER), None, "the last day has no day left to renew");
        assert_eq!(at(-1), None);
    }

    #[test]
    fn the_proof_message_is_bound_to_the_request() {
        let m = proof_message(b"csr one");
        assert_eq!(m.len(), 18 + 32);
        assert!(m.starts_with(b"signet-renewal-v1\0"));
        assert_eq!(m[18..], *aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"csr one").as_ref());
        assert_ne!(m, proof_message(b"csr two"));
    }
}
