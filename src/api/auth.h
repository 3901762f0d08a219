/*
 * Authentication and authorisation: argon2id password hashes (libsodium), HS256 JWTs (libjwt),
 * API keys (random, shown once, stored as a BLAKE2b hash), and the role ladder
 * viewer < supervisor < manager < admin.
 */
#ifndef RV_AUTH_H
#define RV_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct rv_app;
struct rv_db;

enum rv_role {
	RV_ROLE_NONE = 0, /* public route: no credentials needed */
	RV_ROLE_VIEWER = 1,
	RV_ROLE_SUPERVISOR = 2,
	RV_ROLE_MANAGER = 3,
	RV_ROLE_ADMIN = 4,
};

/* Who made a request. */
struct rv_principal {
	int64_t user_id;    /* 0 when unauthenticated */
	int64_t api_key_id; /* 0 when the request used a JWT */
	enum rv_role role;
	char email[256];
};

/* "viewer" ... "admin" <-> enum. Parse returns 0 or -EINVAL. */
int rv_role_parse(const char *s, enum rv_role *out);
const char *rv_role_name(enum rv_role r);

/* argon2id hash (libsodium crypto_pwhash_str, interactive limits) into a malloc'd string. */
int rv_auth_password_hash(const char *password, char **out);
/* 0 when the password matches the stored hash, -EACCES when not. */
int rv_auth_password_verify(const char *hash, const char *password);
/* Password policy: 0, or -EINVAL with a reason in *why (static string). */
int rv_auth_password_check(const char *password, const char **why);

/*
 * Issue a JWT for the user; *token malloc'd (free with free()), *expires_at unix seconds.
 * Returns 0, or -EINVAL (bad arguments, no signing key) / -ENOMEM with a log line.
 */
int rv_auth_token_issue(const struct rv_app *app, int64_t user_id, const char *email,
                        enum rv_role role, char **token, int64_t *expires_at);

/*
 * Resolve the credentials of a request: an "Authorization: Bearer <jwt>" header value and/or
 * an "X-API-Key" header value (either may be NULL). Checks signature, expiry and that the user
 * or key still exists and is active (one store read). Returns 0 and fills *who, -EACCES for
 * missing, bad or expired credentials (with a reason in *why), or a store error.
 */
int rv_auth_authenticate(struct rv_app *app, const char *authorization, const char *api_key,
                         struct rv_principal *who, const char **why);

/*
 * Create a user from the command line or API: validates email and password, hashes, inserts.
 * Returns 0 and *id, RV_STORE_ECONFLICT for a taken email, -EINVAL with *why.
 * The email is stored lower-case. The audit row is written with actor "cli" in the same
 * transaction; API handlers that need their own actor validate with rv_auth_email_normalize()
 * and rv_auth_password_check(), hash with rv_auth_password_hash() and insert themselves.
 */
int rv_auth_user_create(struct rv_app *app, const char *email, const char *password,
                        enum rv_role role, const char *name, int64_t *id, const char **why);

/*
 * Create an API key for a user with a role no higher than the user's. *key receives the
 * secret ("rvk_" + 40 url-safe characters, malloc'd) to show once; only its hash is stored.
 */
int rv_auth_api_key_create(struct rv_app *app, int64_t user_id, const char *name, enum rv_role role,
                           int64_t *id, char **key);

/*
 * The same on a borrowed connection inside the caller's transaction (the caller writes the
 * audit row), so the key and its audit row commit together. Returns 0, *id and *key
 * (malloc'd), or -EINVAL (bad role or name), -ENOENT (no such user), -EPERM (user
 * deactivated, or role above the user's), or a store error; *why (static) says which.
 */
int rv_auth_api_key_insert(struct rv_db *db, int64_t user_id, const char *name, enum rv_role role,
                           int64_t *id, char **key, const char **why);

/*
 * Validate an e-mail address (one @, a dot in the domain, no spaces or control characters,
 * at most 254 bytes) and write its lower-case form into out. 0, or -EINVAL with *why (static).
 */
int rv_auth_email_normalize(const char *email, char *out, size_t outlen, const char **why);

/*
 * Spend the time of one password verification against a hash nobody can match, so that a
 * login for an unknown e-mail costs as much as a wrong password. Always returns -EACCES
 * (or -EIO when libsodium cannot start).
 */
int rv_auth_password_verify_dummy(const char *password);

/*
 * Count one refused credential in rv_auth_failures_total{reason}; reason is one of
 * bad_credentials, expired, malformed, revoked, inactive.
 */
void rv_auth_count_failure(const char *reason);

/*
 * `revovoice user add`: argv holds the command's options (an argv[0] of "add" is skipped as
 * the command name): --email E, --password P | --password-stdin,
 * --role R, [--name N]; the password may instead come from $REVOVOICE_USER_PASSWORD.
 * --data-dir and --config (with their values) are accepted and left to main.c. Prints
 * "created user <id> <email> (<role>)" on stdout, or a sentence on stderr. Returns the
 * process exit code: 0 created, 1 refused (taken email, bad role, weak password, store
 * error), 2 usage error.
 */
int rv_auth_cli_user_add(struct rv_app *app, int argc, char **argv);

#endif
