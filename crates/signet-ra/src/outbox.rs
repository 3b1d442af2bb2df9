//! The outbox's vocabulary: one queued email and which notice it is. The workflows that queue
//! messages in the same transaction as their change (applications, password resets, token
//! stock, revocations) and the notifier that renders them all speak it, so none of them needs
//! the notifier to name a message. Rendering is the notifier's, sending a later layer's.

use signet_pki::subject::Email;

/// Which notice a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// The email verification link (on submission).
    EmailVerification,
    /// The mailed forms arrived.
    FormsReceived,
    /// Two operators approved.
    Approved,
    /// The token shipped.
    TokenShipped,
    /// Certificates are ready: the activation code.
    ActivationCode,
    /// A deadline approaches.
    DeadlineReminder,
    /// The application expired.
    Expired,
    /// The application was rejected.
    Rejected,
    /// A password reset link.
    PasswordReset,
    /// The mailed forms must be sent again: what is wrong and where to send them.
    FormsDeficient,
    /// One of the subscriber's certificates was revoked.
    CertificateRevoked,
    /// One of the subscriber's certificates was renewed.
    CertificateRenewed,
    /// One of the subscriber's certificates expires soon.
    CertificateExpiring,
    /// The subscriber's ways to sign in changed (a passkey added, renamed or removed, the soft
    /// token removed), so a change they did not make is noticed.
    SignInChanged,
}

impl MessageKind {
    /// Every notice.
    pub const ALL: [Self; 14] = [
        Self::EmailVerification,
        Self::FormsReceived,
        Self::Approved,
        Self::TokenShipped,
        Self::ActivationCode,
        Self::DeadlineReminder,
        Self::Expired,
        Self::Rejected,
        Self::PasswordReset,
        Self::FormsDeficient,
        Self::CertificateRevoked,
        Self::CertificateRenewed,
        Self::CertificateExpiring,
        Self::SignInChanged,
    ];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EmailVerification => "email-verification",
            Self::FormsReceived => "forms-received",
            Self::Approved => "approved",
            Self::TokenShipped => "token-shipped",
            Self::ActivationCode => "activation-code",
            Self::DeadlineReminder => "deadline-reminder",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::PasswordReset => "password-reset",
            Self::FormsDeficient => "forms-deficient",
            Self::CertificateRevoked => "certificate-revoked",
            Self::CertificateRenewed => "certificate-renewed",
            Self::CertificateExpiring => "certificate-expiring",
            Self::SignInChanged => "sign-in-changed",
        }
    }
}

/// One queued email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body. The activation-code message carries the code: the sender should
    /// delete or redact the row once delivered.
    pub body_text: String,
    /// Which notice.
    pub kind: MessageKind,
    /// Unique per notice: the store skips a message whose key it has queued before.
    pub dedup_key: String,
}
