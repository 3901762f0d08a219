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

/* Issue a JWT for the user; *token malloc'd, *expires_at unix seconds. */
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
 */
int rv_auth_user_create(struct rv_app *app, const char *email, const char *password,
			enum rv_role role, const char *name, int64_t *id, const char **why);

/*
 * Create an API key for a user with a role no higher than the user's. *key receives the
 * secret ("rvk_" + 40 url-safe characters, malloc'd) to show once; only its hash is stored.
 */
int rv_auth_api_key_create(struct rv_app *app, int64_t user_id, const char *name,
			   enum rv_role role, int64_t *id, char **key);

#endif
