-- A user's API key made while the account's e-mail address was not proven: a password reset
-- (which proves the address) revokes such keys, so a squatter's keys die when the owner recovers.
ALTER TABLE api_keys ADD COLUMN before_proof BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE api_keys SET before_proof = TRUE
    WHERE user_id IN (SELECT id FROM users WHERE email_verified = FALSE);
