-- RevoVoice schema, version 6: tokens end with a password change. Portable SQL: see store.h.

-- When the password was last set, in Unix seconds (NULL: not since the user was created). A
-- login token issued before it (its iat) is refused, so a changed or reset password logs out
-- every session that knew the old one.
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
