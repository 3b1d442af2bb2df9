-- Activation-code locks used to last until an administrator unlocked them; they now run out
-- like every other lock, at most a day after the last failure (AttemptScope::default_policy).
-- Locks taken under the old rule end as the longest new one would have.
UPDATE login_attempts
SET until_unlocked = 0, locked_until = last_failure + 86400
WHERE scope = 'activation-code' AND until_unlocked = 1;
