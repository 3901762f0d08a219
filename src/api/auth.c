/*
 * Authentication and authorisation. Passwords are argon2id strings from libsodium; login
 * tokens are HS256 JWTs from libjwt; API keys are random secrets of which only a BLAKE2b-256
 * hash is stored. Every credential check ends in one store read, so that a deactivated user
 * or a revoked key stops working at once and a user's role always comes from the users row.
 */
#include "api/auth.h"

#include <errno.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/audit.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "store/store.h"

#define ISSUER           "revovoice"
#define KEY_PREFIX       "rvk_"
#define KEY_PREFIX_LEN   4
#define KEY_RANDOM_BYTES 30 /* 30 bytes -> exactly 40 base64 characters, no padding */
#define KEY_BODY_LEN     40
#define KEY_LEN          (KEY_PREFIX_LEN + KEY_BODY_LEN)
#define KEY_DISPLAY_LEN  8
#define HASH_HEX_SIZE    (crypto_generichash_BYTES * 2 + 1)
#define TOKEN_MAX        4096
#define KEY_TOUCH_SECS   60
#define PASSWORD_MIN     8
#define PASSWORD_MAX     128
#define EMAIL_MAX        254
#define NAME_MAX_BYTES   200
#define FAILURES_METRIC  "rv_auth_failures_total"

/*
 * An argon2id hash of a random password nobody knows, made with the interactive limits.
 * Logins for unknown emails verify against it so they cost as much as a wrong password.
 */
static const char dummy_hash_builtin[] = "$argon2id$v=19$m=65536,t=2,p=1$iqL66AjBt/9xNgBiXEno3Q$"
                                         "/ASiCXBI80JQJoqj6xNpMfW7sqhV8/TfoDFXsoLWhzs";

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_ok;
static char dummy_hash[crypto_pwhash_STRBYTES];

static void crypto_setup(void)
{
	if (sodium_init() < 0)
		return;
	rv_strlcpy(dummy_hash, dummy_hash_builtin, sizeof(dummy_hash));
	/* Should libsodium's interactive limits ever change, the dummy must follow them. */
	if (crypto_pwhash_str_needs_rehash(dummy_hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                   crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		unsigned char pw[32];
		randombytes_buf(pw, sizeof(pw));
		if (crypto_pwhash_str(dummy_hash, (const char *)pw, sizeof(pw),
		                      crypto_pwhash_OPSLIMIT_INTERACTIVE,
		                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
			return;
	}
	crypto_ok = 1;
}

static int crypto_ready(void)
{
	pthread_once(&crypto_once, crypto_setup);
	if (!crypto_ok) {
		rv_error("auth", "libsodium could not be initialised");
		return -EIO;
	}
	return 0;
}

void rv_auth_count_failure(const char *reason)
{
	/* Registering again is a no-op; doing it here survives rv_metrics_reset() in tests. */
	rv_metrics_register(FAILURES_METRIC, RV_METRIC_COUNTER,
	                    "Failed authentication attempts by reason", "reason", NULL, 0);
	rv_metrics_inc(FAILURES_METRIC, 1, reason, (const char *)NULL);
}

/* RV_VTEXT through a pointer, so that arrays don't trip -Waddress in the macro's NULL test. */
static struct rv_val vtext(const char *s)
{
	return RV_VTEXT(s);
}

/* Count, log and describe one refused credential. Always returns -EACCES. */
static int refuse(const char *reason, const char *message, const char **why)
{
	rv_auth_count_failure(reason);
	rv_logkv(RV_LOG_INFO, "auth", "credentials refused", "reason", reason, "detail", message,
	         (const char *)NULL);
	if (why)
		*why = message;
	return -EACCES;
}

/* ---- roles ---------------------------------------------------------------------------- */

static const char *const role_names[] = {
    [RV_ROLE_NONE] = "public",     [RV_ROLE_VIEWER] = "viewer", [RV_ROLE_SUPERVISOR] = "supervisor",
    [RV_ROLE_MANAGER] = "manager", [RV_ROLE_ADMIN] = "admin",
};

int rv_role_parse(const char *s, enum rv_role *out)
{
	if (!s)
		return -EINVAL;
	/* Only the four user roles: "public" describes routes, never a user or a key. */
	for (int r = RV_ROLE_VIEWER; r <= RV_ROLE_ADMIN; r++) {
		if (strcmp(s, role_names[r]) == 0) {
			*out = (enum rv_role)r;
			return 0;
		}
	}
	return -EINVAL;
}

const char *rv_role_name(enum rv_role r)
{
	if ((int)r < RV_ROLE_NONE || r > RV_ROLE_ADMIN)
		return "unknown";
	return role_names[r];
}

/* ---- passwords ------------------------------------------------------------------------- */

int rv_auth_password_check(const char *password, const char **why)
{
	const char *w = NULL;
	if (!password) {
		w = "password is required";
	} else {
		size_t n = strlen(password);
		if (n < PASSWORD_MIN) {
			w = "password must be at least 8 bytes long";
		} else if (n > PASSWORD_MAX) {
			w = "password must be at most 128 bytes long";
		} else if (!rv_utf8_valid(password, n)) {
			w = "password must be valid UTF-8";
		} else {
			size_t blank = strspn(password, " \t\r\n\v\f");
			if (blank == n)
				w = "password must not be only whitespace";
		}
	}
	if (w) {
		if (why)
			*why = w;
		return -EINVAL;
	}
	return 0;
}

int rv_auth_password_hash(const char *password, char **out)
{
	char buf[crypto_pwhash_STRBYTES];
	int err = crypto_ready();
	if (err)
		return err;
	if (!password)
		return -EINVAL;
	if (crypto_pwhash_str(buf, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		/* libsodium fails here only when it cannot get the 64 MiB work area. */
		rv_error("auth", "argon2id hashing failed (out of memory)");
		return -ENOMEM;
	}
	*out = rv_xstrdup(buf);
	return 0;
}

int rv_auth_password_verify(const char *hash, const char *password)
{
	char buf[crypto_pwhash_STRBYTES];
	int err = crypto_ready();
	if (err)
		return err;
	if (!hash || !password)
		return -EACCES;
	/* libsodium reads a fixed-size buffer; a longer stored string cannot be a valid hash. */
	if (rv_strlcpy(buf, hash, sizeof(buf)) >= sizeof(buf))
		return -EACCES;
	if (crypto_pwhash_str_verify(buf, password, strlen(password)) != 0)
		return -EACCES;
	return 0;
}

int rv_auth_password_verify_dummy(const char *password)
{
	int err = crypto_ready();
	if (err)
		return err;
	/* The result is thrown away: only the time spent matters. */
	int ignored = crypto_pwhash_str_verify(dummy_hash, password ? password : "",
	                                       password ? strlen(password) : 0);
	(void)ignored;
	return -EACCES;
}

/* ---- e-mail addresses and names --------------------------------------------------------- */

int rv_auth_email_normalize(const char *email, char *out, size_t outlen, const char **why)
{
	const char *w = NULL;
	size_t n = email ? strlen(email) : 0;
	const char *at = email ? strchr(email, '@') : NULL;

	if (!email || n == 0)
		w = "email is required";
	else if (n > EMAIL_MAX)
		w = "email must be at most 254 characters";
	else if (!rv_utf8_valid(email, n))
		w = "email must be valid UTF-8";
	else if (!at || strchr(at + 1, '@'))
		w = "email must contain exactly one @";
	else if (at == email)
		w = "email has nothing before the @";
	else {
		const char *domain = at + 1;
		size_t dlen = strlen(domain);
		for (size_t i = 0; i < n && !w; i++) {
			unsigned char c = (unsigned char)email[i];
			if (c <= 0x20 || c == 0x7f)
				w = "email must not contain spaces or control characters";
		}
		if (!w && (dlen == 0 || !strchr(domain, '.') || domain[0] == '.' ||
		           domain[dlen - 1] == '.' || strstr(domain, "..")))
			w = "email domain must contain a dot (like example.com)";
	}
	if (!w && n + 1 > outlen)
		w = "email is too long";
	if (w) {
		if (why)
			*why = w;
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++) {
		char c = email[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	return 0;
}

static int name_check(const char *name, const char **why)
{
	if (!name)
		return 0;
	size_t n = strlen(name);
	if (n > NAME_MAX_BYTES) {
		*why = "name must be at most 200 bytes";
		return -EINVAL;
	}
	if (!rv_utf8_valid(name, n)) {
		*why = "name must be valid UTF-8";
		return -EINVAL;
	}
	return 0;
}

/* ---- JSON web tokens --------------------------------------------------------------------- */

int rv_auth_token_issue(const struct rv_app *app, int64_t user_id, const char *email,
                        enum rv_role role, char **token, int64_t *expires_at)
{
	jwt_t *jwt = NULL;
	char sub[24], jti[33];
	unsigned char rnd[16];
	char *enc;
	int err;

	if (!app || !app->cfg || !email || user_id <= 0 || role < RV_ROLE_VIEWER ||
	    role > RV_ROLE_ADMIN)
		return -EINVAL;
	if (app->jwt_key_len == 0 || app->jwt_key_len > sizeof(app->jwt_key)) {
		rv_error("auth", "no JWT signing key configured; refusing to issue a token");
		return -EINVAL;
	}
	err = crypto_ready();
	if (err)
		return err;

	int64_t now = (int64_t)time(NULL);
	int64_t exp = now + app->cfg->auth_token_ttl;
	snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(jti, sizeof(jti), rnd, sizeof(rnd));

	err = -jwt_new(&jwt);
	if (err)
		goto out;
	if ((err = -jwt_add_grant(jwt, "sub", sub)) ||
	    (err = -jwt_add_grant(jwt, "email", email)) ||
	    (err = -jwt_add_grant(jwt, "role", rv_role_name(role))) ||
	    (err = -jwt_add_grant(jwt, "iss", ISSUER)) || (err = -jwt_add_grant(jwt, "jti", jti)) ||
	    (err = -jwt_add_grant_int(jwt, "iat", (long)now)) ||
	    (err = -jwt_add_grant_int(jwt, "exp", (long)exp)))
		goto out;
	err = -jwt_set_alg(jwt, JWT_ALG_HS256, app->jwt_key, (int)app->jwt_key_len);
	if (err)
		goto out;
	enc = jwt_encode_str(jwt);
	if (!enc) {
		err = -ENOMEM;
		goto out;
	}
	*token = enc;
	*expires_at = exp;
out:
	if (jwt)
		jwt_free(jwt);
	if (err)
		rv_error("auth", "could not issue a token for user %lld: %s", (long long)user_id,
		         strerror(-err));
	return err;
}

/* Three base64url segments, the first two non-empty: anything else is not worth decoding. */
static int token_shape_ok(const char *t)
{
	size_t dots = 0, seg = 0;
	for (const char *p = t;; p++) {
		if (*p == '.' || *p == '\0') {
			if (seg == 0 && dots < 2)
				return 0;
			if (*p == '\0')
				break;
			dots++;
			seg = 0;
			continue;
		}
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
		seg++;
	}
	return dots == 2;
}

/*
 * Check the HS256 signature of a well-shaped token in constant time. libjwt 1.10 compares
 * signatures with strcmp, whose early exit tells a forger how many leading characters of a
 * guess are right; this runs first, so libjwt only ever sees tokens we signed.
 */
static int hs256_signature_ok(const struct rv_app *app, const char *token)
{
	const char *sig = strrchr(token, '.');
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char want[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
	                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	crypto_auth_hmacsha256_state st;

	if (!sig)
		return 0;
	crypto_auth_hmacsha256_init(&st, app->jwt_key, app->jwt_key_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, (size_t)(sig - token));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(want, sizeof(want), mac, sizeof(mac),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	size_t n = strlen(want);
	int ok = strlen(sig + 1) == n && sodium_memcmp(want, sig + 1, n) == 0;
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	return ok;
}

/*
 * The users row behind a login token: exists, active, and its current role. `issued_at` is
 * the token's iat (Unix seconds): a token issued before the password last changed is refused.
 */
static int load_user(struct rv_db *db, int64_t user_id, int64_t issued_at, struct rv_principal *p,
                     const char **why)
{
	struct rv_rows *rows = NULL;
	struct rv_val arg = RV_VINT(user_id);
	int err = rv_db_exec(db,
	                     "SELECT email, role, active, password_changed_at FROM users WHERE "
	                     "id = $1",
	                     &arg, 1, &rows, NULL);
	if (err) {
		*why = "the user store is unavailable";
		goto out;
	}
	if (rows->nrows == 0) {
		err = refuse("bad_credentials", "the user no longer exists", why);
		goto out;
	}
	if (rv_rows_at(rows, 0, 2)->i == 0) {
		err = refuse("inactive", "the user is deactivated", why);
		goto out;
	}
	if (issued_at > 0 && rv_rows_at(rows, 0, 3)->type == RV_VAL_INT &&
	    issued_at < rv_rows_at(rows, 0, 3)->i) {
		err =
		    refuse("revoked", "the token was issued before the password was changed", why);
		goto out;
	}
	if (rv_role_parse(rv_rows_at(rows, 0, 1)->s, &p->role) != 0) {
		err = refuse("bad_credentials", "the user has no valid role", why);
		goto out;
	}
	p->user_id = user_id;
	rv_strlcpy(p->email, rv_rows_at(rows, 0, 0)->s ? rv_rows_at(rows, 0, 0)->s : "",
	           sizeof(p->email));
out:
	if (rows)
		rv_rows_free(rows);
	return err;
}

static int verify_jwt(struct rv_app *app, const char *token, struct rv_principal *p,
                      const char **why)
{
	jwt_t *jwt = NULL;
	struct rv_db *db = NULL;
	int64_t uid;
	int err;

	if (!token_shape_ok(token))
		return refuse("malformed", "the bearer token is not a JWT", why);
	/* With no key libjwt would skip the signature check entirely. */
	if (app->jwt_key_len == 0 || app->jwt_key_len > sizeof(app->jwt_key)) {
		rv_error("auth", "no JWT signing key configured; refusing every token");
		return refuse("bad_credentials", "tokens cannot be checked", why);
	}
	err = crypto_ready();
	if (err)
		return err;
	if (!hs256_signature_ok(app, token) ||
	    jwt_decode(&jwt, token, app->jwt_key, (int)app->jwt_key_len) != 0 || !jwt) {
		err = refuse("bad_credentials", "the token signature is invalid", why);
		goto out;
	}
	/* Only our own algorithm: rejects "none" and every alg-confusion trick. */
	if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
		err = refuse("bad_credentials", "the token algorithm is not accepted", why);
		goto out;
	}
	const char *iss = jwt_get_grant(jwt, "iss");
	if (!iss || strcmp(iss, ISSUER) != 0) {
		err = refuse("bad_credentials", "the token was not issued by revovoice", why);
		goto out;
	}
	errno = 0;
	long exp = jwt_get_grant_int(jwt, "exp");
	if (errno != 0) {
		err = refuse("bad_credentials", "the token has no expiry", why);
		goto out;
	}
	if ((int64_t)exp <= (int64_t)time(NULL)) {
		err = refuse("expired", "the token has expired", why);
		goto out;
	}
	const char *sub = jwt_get_grant(jwt, "sub");
	if (!sub || rv_parse_int64(sub, 1, INT64_MAX, &uid) != 0) {
		err = refuse("bad_credentials", "the token names no user", why);
		goto out;
	}
	err = rv_store_acquire(app->store, &db);
	if (err) {
		*why = "the user store is unavailable";
		goto out;
	}
	errno = 0;
	long iat = jwt_get_grant_int(jwt, "iat");
	if (errno != 0 || iat <= 0) {
		err = refuse("bad_credentials", "the token has no issue time", why);
		goto out;
	}
	err = load_user(db, uid, (int64_t)iat, p, why);
	p->api_key_id = 0;
out:
	if (db)
		rv_store_release(app->store, db);
	if (jwt)
		jwt_free(jwt);
	return err;
}

/* ---- API keys ----------------------------------------------------------------------------- */

static void key_hash_hex(const char *key, char hex[HASH_HEX_SIZE])
{
	unsigned char h[crypto_generichash_BYTES];
	crypto_generichash(h, sizeof(h), (const unsigned char *)key, strlen(key), NULL, 0);
	sodium_bin2hex(hex, HASH_HEX_SIZE, h, sizeof(h));
}

static int key_shape_ok(const char *key)
{
	if (strlen(key) != KEY_LEN || strncmp(key, KEY_PREFIX, KEY_PREFIX_LEN) != 0)
		return 0;
	for (const char *p = key + KEY_PREFIX_LEN; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int iso_to_unix(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/*
 * Record that a key was used, but at most once a minute per key: a write per request would
 * turn every read-only API call into a write transaction. The WHERE clause keeps concurrent
 * requests from writing twice; a failure only costs the time stamp, never the request.
 */
static void key_touch(struct rv_db *db, int64_t key_id, const char *last_used)
{
	int64_t last, now = (int64_t)time(NULL);
	if (last_used && iso_to_unix(last_used, &last) == 0 && now - last < KEY_TOUCH_SECS)
		return;
	char stamp[32], limit[32];
	rv_time_iso_now(stamp, sizeof(stamp));
	rv_time_iso(now - KEY_TOUCH_SECS, limit, sizeof(limit));
	struct rv_val args[] = {vtext(stamp), RV_VINT(key_id), vtext(limit)};
	int err = rv_db_exec(db,
	                     "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND "
	                     "(last_used_at IS NULL OR last_used_at < $3)",
	                     args, RV_ARRAY_LEN(args), NULL, NULL);
	if (err)
		rv_warn("auth", "could not record the use of API key %lld: %s", (long long)key_id,
		        rv_store_strerror(err));
}

static int verify_api_key(struct rv_app *app, const char *key, struct rv_principal *p,
                          const char **why)
{
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	char hex[HASH_HEX_SIZE];
	enum rv_role key_role, user_role;
	int err;

	if (!key_shape_ok(key))
		return refuse("malformed", "the X-API-Key header is not a revovoice API key", why);
	key_hash_hex(key, hex);
	err = rv_store_acquire(app->store, &db);
	if (err) {
		*why = "the key store is unavailable";
		goto out;
	}
	struct rv_val arg = vtext(hex);
	err =
	    rv_db_exec(db,
	               "SELECT k.id, k.user_id, k.role, k.key_hash, k.revoked_at, k.last_used_at, "
	               "u.email, u.role, u.active FROM api_keys k JOIN users u ON u.id = k.user_id "
	               "WHERE k.key_hash = $1",
	               &arg, 1, &rows, NULL);
	if (err) {
		*why = "the key store is unavailable";
		goto out;
	}
	const struct rv_val *stored = rows->nrows ? rv_rows_at(rows, 0, 3) : NULL;
	if (!stored || !stored->s || stored->len != HASH_HEX_SIZE - 1 ||
	    sodium_memcmp(stored->s, hex, HASH_HEX_SIZE - 1) != 0) {
		err = refuse("bad_credentials", "the API key is not known", why);
		goto out;
	}
	if (rv_rows_at(rows, 0, 4)->type != RV_VAL_NULL) {
		err = refuse("revoked", "the API key has been revoked", why);
		goto out;
	}
	if (rv_rows_at(rows, 0, 8)->i == 0) {
		err = refuse("inactive", "the key's user is deactivated", why);
		goto out;
	}
	if (rv_role_parse(rv_rows_at(rows, 0, 2)->s, &key_role) != 0 ||
	    rv_role_parse(rv_rows_at(rows, 0, 7)->s, &user_role) != 0) {
		err = refuse("bad_credentials", "the API key has no valid role", why);
		goto out;
	}
	/* A key never outranks its user as the user is now, so demotions apply to keys too. */
	p->role = key_role < user_role ? key_role : user_role;
	p->api_key_id = rv_rows_at(rows, 0, 0)->i;
	p->user_id = rv_rows_at(rows, 0, 1)->i;
	rv_strlcpy(p->email, rv_rows_at(rows, 0, 6)->s ? rv_rows_at(rows, 0, 6)->s : "",
	           sizeof(p->email));
	key_touch(db, p->api_key_id, rv_rows_at(rows, 0, 5)->s);
out:
	if (rows)
		rv_rows_free(rows);
	if (db)
		rv_store_release(app->store, db);
	sodium_memzero(hex, sizeof(hex));
	return err;
}

/*
 * Split "Bearer <token>" (scheme case-insensitive, surrounding blanks allowed) and copy the
 * token into buf. Returns 0, or -EACCES with a reason.
 */
static int bearer_token(const char *header, char *buf, size_t buflen, const char **why)
{
	const char *p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return refuse("malformed", "the Authorization header must be \"Bearer <token>\"",
		              why);
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strcspn(p, " \t");
	const char *rest = p + n;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (n == 0 || *rest != '\0')
		return refuse("malformed", "the Authorization header must be \"Bearer <token>\"",
		              why);
	if (n >= buflen)
		return refuse("malformed", "the bearer token is too long", why);
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

int rv_auth_authenticate(struct rv_app *app, const char *authorization, const char *api_key,
                         struct rv_principal *who, const char **why)
{
	struct rv_principal p;
	const char *w = NULL;
	char token[TOKEN_MAX + 1];
	int err;

	memset(&p, 0, sizeof(p));
	if (authorization && api_key) {
		err = refuse("malformed", "send either Authorization or X-API-Key, not both", &w);
		goto out;
	}
	if (authorization) {
		err = bearer_token(authorization, token, sizeof(token), &w);
		if (!err)
			err = verify_jwt(app, token, &p, &w);
	} else if (api_key) {
		err = verify_api_key(app, api_key, &p, &w);
	} else {
		w = "authentication required";
		err = -EACCES;
	}
	if (!err)
		*who = p;
out:
	if (err && why)
		*why = w ? w : "authentication failed";
	sodium_memzero(token, sizeof(token));
	return err;
}

/* ---- users and keys ------------------------------------------------------------------------- */

int rv_auth_user_create(struct rv_app *app, const char *email, const char *password,
                        enum rv_role role, const char *name, int64_t *id, const char **why)
{
	char addr[EMAIL_MAX + 1], now[32];
	char *hash = NULL;
	struct rv_db *db = NULL;
	struct rv_rows *rows = NULL;
	const char *w = NULL;
	int err, in_tx = 0;

	err = rv_auth_email_normalize(email, addr, sizeof(addr), &w);
	if (!err)
		err = rv_auth_password_check(password, &w);
	if (!err && (role < RV_ROLE_VIEWER || role > RV_ROLE_ADMIN)) {
		w = "role must be one of viewer, supervisor, manager, admin";
		err = -EINVAL;
	}
	if (!err)
		err = name_check(name, &w);
	if (err)
		goto out;
	/* Hash before taking the write lock: argon2id takes tens of milliseconds. */
	err = rv_auth_password_hash(password, &hash);
	if (err) {
		w = "the password could not be hashed";
		goto out;
	}
	err = rv_store_acquire(app->store, &db);
	if (err)
		goto out;
	err = rv_db_begin(db);
	if (err)
		goto out;
	in_tx = 1;
	rv_time_iso_now(now, sizeof(now));
	struct rv_val args[] = {vtext(addr), vtext(name ? name : ""), vtext(hash),
	                        vtext(rv_role_name(role)), vtext(now)};
	err = rv_db_exec(db,
	                 "INSERT INTO users (email, name, password_hash, role, active, created_at, "
	                 "updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING id",
	                 args, RV_ARRAY_LEN(args), &rows, NULL);
	if (err == RV_STORE_ECONFLICT) {
		w = "a user with this email already exists";
		goto out;
	}
	if (err)
		goto out;
	if (rows->nrows != 1) {
		err = -EIO;
		goto out;
	}
	int64_t uid = rv_rows_at(rows, 0, 0)->i;
	json_t *details = json_pack("{s:s, s:s}", "email", addr, "role", rv_role_name(role));
	err = rv_audit(db, NULL, "create", "users", uid, details);
	json_decref(details);
	if (err)
		goto out;
	err = rv_db_commit(db);
	if (err)
		goto out;
	in_tx = 0;
	rv_logkv(RV_LOG_INFO, "auth", "user created", "email", addr, "role", rv_role_name(role),
	         (const char *)NULL);
	*id = uid;
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (rows)
		rv_rows_free(rows);
	free(hash);
	if (err && why)
		*why = w ? w : rv_store_strerror(err);
	return err;
}

int rv_auth_api_key_insert(struct rv_db *db, int64_t user_id, const char *name, enum rv_role role,
                           int64_t *id, char **key, const char **why)
{
	struct rv_rows *rows = NULL;
	unsigned char rnd[KEY_RANDOM_BYTES];
	char secret[KEY_LEN + 1], hex[HASH_HEX_SIZE], prefix[KEY_DISPLAY_LEN + 1], now[32];
	enum rv_role user_role;
	const char *w = NULL;
	int err;

	err = crypto_ready();
	if (err)
		return err;
	if (role < RV_ROLE_VIEWER || role > RV_ROLE_ADMIN) {
		w = "role must be one of viewer, supervisor, manager, admin";
		err = -EINVAL;
		goto out;
	}
	err = name_check(name, &w);
	if (err)
		goto out;

	struct rv_val uarg = RV_VINT(user_id);
	err = rv_db_exec(db, "SELECT role, active FROM users WHERE id = $1", &uarg, 1, &rows, NULL);
	if (err)
		goto out;
	if (rows->nrows == 0) {
		w = "the user does not exist";
		err = -ENOENT;
		goto out;
	}
	if (rv_rows_at(rows, 0, 1)->i == 0) {
		w = "the user is deactivated";
		err = -EPERM;
		goto out;
	}
	if (rv_role_parse(rv_rows_at(rows, 0, 0)->s, &user_role) != 0 || role > user_role) {
		w = "a key's role may not exceed its user's role";
		err = -EPERM;
		goto out;
	}
	rv_rows_free(rows);
	rows = NULL;

	memcpy(secret, KEY_PREFIX, KEY_PREFIX_LEN);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(secret + KEY_PREFIX_LEN, sizeof(secret) - KEY_PREFIX_LEN, rnd,
	                  sizeof(rnd), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof(rnd));
	key_hash_hex(secret, hex);
	rv_strlcpy(prefix, secret, sizeof(prefix));
	rv_time_iso_now(now, sizeof(now));

	struct rv_val args[] = {RV_VINT(user_id), vtext(name ? name : ""),   vtext(prefix),
	                        vtext(hex),       vtext(rv_role_name(role)), vtext(now)};
	err = rv_db_exec(db,
	                 "INSERT INTO api_keys (user_id, name, prefix, key_hash, role, created_at) "
	                 "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
	                 args, RV_ARRAY_LEN(args), &rows, NULL);
	if (err)
		goto out;
	if (rows->nrows != 1) {
		err = -EIO;
		goto out;
	}
	*id = rv_rows_at(rows, 0, 0)->i;
	*key = rv_xstrdup(secret);
out:
	sodium_memzero(secret, sizeof(secret));
	if (rows)
		rv_rows_free(rows);
	if (err && why)
		*why = w ? w : rv_store_strerror(err);
	return err;
}

int rv_auth_api_key_create(struct rv_app *app, int64_t user_id, const char *name, enum rv_role role,
                           int64_t *id, char **key)
{
	struct rv_db *db = NULL;
	const char *why = NULL;
	char *secret = NULL;
	int64_t kid = 0;
	int err, in_tx = 0;

	err = rv_store_acquire(app->store, &db);
	if (err)
		goto out;
	err = rv_db_begin(db);
	if (err)
		goto out;
	in_tx = 1;
	err = rv_auth_api_key_insert(db, user_id, name, role, &kid, &secret, &why);
	if (err)
		goto out;
	json_t *details = json_pack("{s:s, s:s, s:I}", "name", name ? name : "", "role",
	                            rv_role_name(role), "user_id", (json_int_t)user_id);
	err = rv_audit(db, NULL, "create", "api_keys", kid, details);
	json_decref(details);
	if (err)
		goto out;
	err = rv_db_commit(db);
	if (err)
		goto out;
	in_tx = 0;
	*id = kid;
	*key = secret;
	secret = NULL;
out:
	if (in_tx)
		rv_db_rollback(db);
	if (db)
		rv_store_release(app->store, db);
	if (secret) {
		sodium_memzero(secret, strlen(secret));
		free(secret);
	}
	if (err)
		rv_logkv(RV_LOG_WARN, "auth", "API key not created", "detail",
		         why ? why : rv_store_strerror(err), (const char *)NULL);
	return err;
}

/* ---- `revovoice user add` ------------------------------------------------------------------ */

/* One line from stdin without its line ending; 0, or -EINVAL when empty or too long. */
static int read_password_line(char *buf, size_t len)
{
	if (!fgets(buf, (int)len, stdin))
		return -EINVAL;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin))
		return -EINVAL;
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

int rv_auth_cli_user_add(struct rv_app *app, int argc, char **argv)
{
	const char *email = NULL, *password = NULL, *role_s = NULL, *name = NULL, *why = NULL;
	char line[1024];
	int from_stdin = 0, rc = 2;
	enum rv_role role;
	int64_t id;

	line[0] = '\0';
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (i == 0 && strcmp(a, "add") == 0)
			continue;
		if (strcmp(a, "--password-stdin") == 0) {
			from_stdin = 1;
			continue;
		}
		const char **slot = NULL;
		if (strcmp(a, "--email") == 0)
			slot = &email;
		else if (strcmp(a, "--password") == 0)
			slot = &password;
		else if (strcmp(a, "--role") == 0)
			slot = &role_s;
		else if (strcmp(a, "--name") == 0)
			slot = &name;
		else if (strcmp(a, "--data-dir") != 0 && strcmp(a, "--config") != 0) {
			fprintf(stderr, "revovoice user add: unknown argument '%s'\n", a);
			goto usage;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "revovoice user add: %s needs a value\n", a);
			goto usage;
		}
		i++;
		if (slot)
			*slot = argv[i];
	}
	if (password && from_stdin) {
		fprintf(stderr,
		        "revovoice user add: give --password or --password-stdin, not both\n");
		goto usage;
	}
	if (from_stdin) {
		if (read_password_line(line, sizeof(line)) != 0) {
			fprintf(stderr, "revovoice user add: could not read one password line from "
			                "stdin\n");
			rc = 1;
			goto out;
		}
		password = line;
	} else if (!password) {
		password = getenv("REVOVOICE_USER_PASSWORD");
	}
	if (!email || !role_s || !password) {
		fprintf(stderr,
		        "revovoice user add: --email, --role and a password are required\n");
		goto usage;
	}
	rc = 1;
	if (rv_role_parse(role_s, &role) != 0) {
		fprintf(stderr,
		        "revovoice user add: unknown role '%s' (viewer, supervisor, manager, "
		        "admin)\n",
		        role_s);
		goto out;
	}
	int err = rv_auth_user_create(app, email, password, role, name, &id, &why);
	if (err == RV_STORE_ECONFLICT) {
		fprintf(stderr, "revovoice user add: a user with email '%s' already exists\n",
		        email);
		goto out;
	}
	if (err) {
		fprintf(stderr, "revovoice user add: %s\n", why ? why : rv_store_strerror(err));
		goto out;
	}
	char addr[EMAIL_MAX + 1];
	if (rv_auth_email_normalize(email, addr, sizeof(addr), NULL) != 0)
		rv_strlcpy(addr, email, sizeof(addr));
	printf("created user %lld %s (%s)\n", (long long)id, addr, rv_role_name(role));
	fflush(stdout);
	rc = 0;
	goto out;
usage:
	fprintf(stderr, "usage: revovoice user add --data-dir DIR --email EMAIL "
	                "(--password PASSWORD | --password-stdin) --role "
	                "viewer|supervisor|manager|admin [--name NAME]\n"
	                "       (or set REVOVOICE_USER_PASSWORD instead of --password)\n");
	rc = 2;
out:
	sodium_memzero(line, sizeof(line));
	return rc;
}
