-- An outbox kind for the notice that the mailed forms must be sent again.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
    'email-verification', 'forms-received', 'approved', 'token-shipped', 'activation-code',
    'deadline-reminder', 'expired', 'rejected', 'password-reset', 'forms-deficient'
));
