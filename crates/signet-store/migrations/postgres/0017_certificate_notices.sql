-- Three outbox kinds for the subscriber's certificates: revoked, renewed, expiring soon.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
    'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
    'deadline-reminder', 'expired', 'rejected', 'password-reset', 'forms-deficient', 'certificate-revoked',
    'certificate-renewed', 'certificate-expiring'
));
