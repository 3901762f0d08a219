/* Unit tests for src/api/auth.c: passwords, JWTs, API keys and the CLI, on a real SQLite store. */
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "core/app.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "store/store.h"
#include "../test.h"

#define PW "correct horse battery"

struct fx {
	struct rv_config cfg;
	struct rv_app app;
	char dir[64];
	char path[128];
};

static int fx_open(struct fx *f)
{
	char err[256];
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/rv-auth-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -errno;
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->cfg.auth_token_ttl = 3600;
	f->app.cfg = &f->cfg;
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(f->app.jwt_key, 32);
	f->app.jwt_key_len = 32;
	int rc = rv_store_open("sqlite", f->path, 2, &f->app.store, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  store: %s\n", err);
	return rc;
}

static void fx_close(struct fx *f)
{
	char p[160];
	if (f->app.store)
		rv_store_close(f->app.store);
	f->app.store = NULL;
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < RV_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

static int64_t add_user(struct fx *f, const char *email, enum rv_role role)
{
	int64_t id = 0;
	const char *why = NULL;
	if (rv_auth_user_create(&f->app, email, PW, role, "Test User", &id, &why) != 0)
		return 0;
	return id;
}

/* Run one statement; returns 0 or the store error. */
static int sql(struct fx *f, const char *q, int64_t id)
{
	struct rv_val a = RV_VINT(id);
	return rv_store_exec(f->app.store, q, &a, 1, NULL, NULL);
}

/* One text column of one row, copied into buf ("" for NULL). */
static int sql_text(struct fx *f, const char *q, int64_t id, char *buf, size_t len)
{
	struct rv_rows *rows = NULL;
	struct rv_val a = RV_VINT(id);
	int err = rv_store_exec(f->app.store, q, &a, 1, &rows, NULL);
	if (err)
		return err;
	if (rows->nrows != 1) {
		rv_rows_free(rows);
		return -ENOENT;
	}
	const struct rv_val *v = rv_rows_at(rows, 0, 0);
	rv_strlcpy(buf, v->type == RV_VAL_TEXT ? v->s : "", len);
	rv_rows_free(rows);
	return 0;
}

static int auth_bearer(struct fx *f, const char *token, struct rv_principal *who, const char **why)
{
	char hdr[4200];
	snprintf(hdr, sizeof(hdr), "Bearer %s", token);
	return rv_auth_authenticate(&f->app, hdr, NULL, who, why);
}

/* A token signed by libjwt with our own claims, key and algorithm. */
static char *craft(jwt_alg_t alg, const unsigned char *key, int keylen, const char *sub,
                   const char *iss, long exp)
{
	jwt_t *j = NULL;
	char *out = NULL;
	if (jwt_new(&j) != 0)
		return NULL;
	if (sub)
		jwt_add_grant(j, "sub", sub);
	if (iss)
		jwt_add_grant(j, "iss", iss);
	jwt_add_grant(j, "role", "admin");
	if (exp)
		jwt_add_grant_int(j, "exp", exp);
	jwt_add_grant_int(j, "iat", (long)time(NULL));
	if (jwt_set_alg(j, alg, key, keylen) == 0)
		out = jwt_encode_str(j);
	jwt_free(j);
	return out;
}

static void b64url(const char *in, char *out, size_t outlen)
{
	sodium_bin2base64(out, outlen, (const unsigned char *)in, strlen(in),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ---- roles, passwords, emails --------------------------------------------------------------- */

RV_TEST(auth_role_parse_names)
{
	static const char *const names[] = {"viewer", "supervisor", "manager", "admin"};
	enum rv_role r = RV_ROLE_NONE;
	for (int i = 0; i < 4; i++) {
		ASSERT_OK(rv_role_parse(names[i], &r));
		ASSERT_EQ_INT(r, RV_ROLE_VIEWER + i);
		ASSERT_EQ_STR(rv_role_name(r), names[i]);
	}
	ASSERT(RV_ROLE_VIEWER < RV_ROLE_SUPERVISOR && RV_ROLE_SUPERVISOR < RV_ROLE_MANAGER &&
	       RV_ROLE_MANAGER < RV_ROLE_ADMIN);
	ASSERT_EQ_STR(rv_role_name(RV_ROLE_NONE), "public");
	ASSERT_EQ_STR(rv_role_name((enum rv_role)42), "unknown");
	r = RV_ROLE_ADMIN;
	ASSERT_EQ_INT(rv_role_parse("public", &r), -EINVAL);
	ASSERT_EQ_INT(rv_role_parse("Admin", &r), -EINVAL);
	ASSERT_EQ_INT(rv_role_parse("", &r), -EINVAL);
	ASSERT_EQ_INT(rv_role_parse("admin ", &r), -EINVAL);
	ASSERT_EQ_INT(rv_role_parse(NULL, &r), -EINVAL);
	ASSERT_EQ_INT(r, RV_ROLE_ADMIN); /* untouched on failure */
}

RV_TEST(auth_password_hash_verify)
{
	char *h1 = NULL, *h2 = NULL;
	ASSERT_OK(rv_auth_password_hash(PW, &h1));
	ASSERT_OK(rv_auth_password_hash(PW, &h2));
	ASSERT(strncmp(h1, "$argon2id$", 10) == 0);
	ASSERT(strstr(h1, "m=65536,t=2,p=1") != NULL);
	ASSERT(strcmp(h1, h2) != 0); /* salted */
	ASSERT(strstr(h1, PW) == NULL);
	ASSERT_OK(rv_auth_password_verify(h1, PW));
	ASSERT_OK(rv_auth_password_verify(h2, PW));
	ASSERT_EQ_INT(rv_auth_password_verify(h1, "correct horse battery "), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify(h1, "Correct horse battery"), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify(h1, ""), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify("$argon2id$garbage", PW), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify(NULL, PW), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify(h1, NULL), -EACCES);
	ASSERT_EQ_INT(rv_auth_password_verify_dummy(PW), -EACCES);
	free(h1);
	free(h2);
}

RV_TEST(auth_password_policy)
{
	const char *why = NULL;
	char buf[200];
	ASSERT_OK(rv_auth_password_check("12345678", &why));
	memset(buf, 'a', 128);
	buf[128] = '\0';
	ASSERT_OK(rv_auth_password_check(buf, &why));
	buf[128] = 'a';
	buf[129] = '\0';
	ASSERT_EQ_INT(rv_auth_password_check(buf, &why), -EINVAL);
	ASSERT(why && strstr(why, "at most 128"));
	why = NULL;
	ASSERT_EQ_INT(rv_auth_password_check("1234567", &why), -EINVAL);
	ASSERT(why && strstr(why, "at least 8"));
	why = NULL;
	ASSERT_EQ_INT(rv_auth_password_check("   \t    \n ", &why), -EINVAL);
	ASSERT(why && strstr(why, "whitespace"));
	ASSERT_OK(rv_auth_password_check("  padded  pw ", &why));
	ASSERT_EQ_INT(rv_auth_password_check("abcdefgh\xff\xfe", &why), -EINVAL);
	ASSERT_EQ_INT(rv_auth_password_check(NULL, &why), -EINVAL);
	ASSERT_OK(rv_auth_password_check("pässwörd", &why)); /* 10 bytes of UTF-8 */
}

RV_TEST(auth_email_normalize)
{
	char out[255];
	const char *why = NULL;
	ASSERT_OK(rv_auth_email_normalize("Alice.Smith@Example.COM", out, sizeof(out), &why));
	ASSERT_EQ_STR(out, "alice.smith@example.com");
	static const char *const bad[] = {
	    "",
	    "alice",
	    "alice@example",
	    "a@b@example.com",
	    "@example.com",
	    "al ice@example.com",
	    "alice@.com",
	    "alice@example.",
	    "alice@exa..mple.com",
	    "alice@example.com\t",
	};
	for (size_t i = 0; i < RV_ARRAY_LEN(bad); i++) {
		why = NULL;
		ASSERT_MSG(rv_auth_email_normalize(bad[i], out, sizeof(out), &why) == -EINVAL,
		           "accepted '%s'", bad[i]);
		ASSERT(why != NULL);
	}
	char longer[300];
	memset(longer, 'a', sizeof(longer));
	memcpy(longer + 240, "@example.com", 13); /* 252 bytes: fine */
	ASSERT_OK(rv_auth_email_normalize(longer, out, sizeof(out), &why));
	memcpy(longer + 243, "@example.com", 13); /* 255 bytes: too long */
	ASSERT_EQ_INT(rv_auth_email_normalize(longer, out, sizeof(out), &why), -EINVAL);
	ASSERT_EQ_INT(rv_auth_email_normalize(NULL, out, sizeof(out), &why), -EINVAL);
}

/* ---- users --------------------------------------------------------------------------------------
 */

RV_TEST(auth_user_create_rules)
{
	struct fx f;
	int64_t id = 0, id2 = 0;
	const char *why = NULL;
	char buf[256];
	ASSERT_OK(fx_open(&f));
	ASSERT_OK(
	    rv_auth_user_create(&f.app, "Bob@Example.com", PW, RV_ROLE_MANAGER, NULL, &id, &why));
	ASSERT(id > 0);
	ASSERT_OK(sql_text(&f, "SELECT email FROM users WHERE id = $1", id, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "bob@example.com");
	ASSERT_OK(sql_text(&f, "SELECT role FROM users WHERE id = $1", id, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "manager");
	ASSERT_OK(
	    sql_text(&f, "SELECT password_hash FROM users WHERE id = $1", id, buf, sizeof(buf)));
	ASSERT(strncmp(buf, "$argon2id$", 10) == 0);
	ASSERT_OK(rv_auth_password_verify(buf, PW));
	ASSERT_OK(sql_text(&f, "SELECT created_at FROM users WHERE id = $1", id, buf, sizeof(buf)));
	ASSERT(strlen(buf) == 24 && buf[10] == 'T' && buf[23] == 'Z');
	ASSERT_OK(sql_text(&f,
	                   "SELECT actor || ' ' || action || ' ' || resource FROM audit_log "
	                   "WHERE resource_id = $1",
	                   id, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "cli create users");

	/* Same address in another case is the same address. */
	ASSERT_EQ_INT(
	    rv_auth_user_create(&f.app, "BOB@example.com", PW, RV_ROLE_VIEWER, NULL, &id2, &why),
	    RV_STORE_ECONFLICT);
	ASSERT_EQ_INT(id2, 0);
	why = NULL;
	ASSERT_EQ_INT(rv_auth_user_create(&f.app, "carol@example.com", "short", RV_ROLE_VIEWER,
	                                  NULL, &id2, &why),
	              -EINVAL);
	ASSERT(why && strstr(why, "at least 8"));
	why = NULL;
	ASSERT_EQ_INT(
	    rv_auth_user_create(&f.app, "carol@example.com", PW, RV_ROLE_NONE, NULL, &id2, &why),
	    -EINVAL);
	ASSERT(why && strstr(why, "role"));
	why = NULL;
	ASSERT_EQ_INT(
	    rv_auth_user_create(&f.app, "carol example.com", PW, RV_ROLE_VIEWER, NULL, &id2, &why),
	    -EINVAL);
	ASSERT(why && strstr(why, "@"));
	ASSERT_OK(
	    sql_text(&f, "SELECT COUNT(*) || '' FROM users WHERE id > $1", 0, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "1");
	fx_close(&f);
}

/* ---- JWT
 * ------------------------------------------------------------------------------------------ */

RV_TEST(auth_jwt_issue_verify)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	char *tok = NULL;
	int64_t exp = 0;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "dave@example.com", RV_ROLE_MANAGER);
	ASSERT(uid > 0);
	int64_t before = (int64_t)time(NULL);
	ASSERT_OK(
	    rv_auth_token_issue(&f.app, uid, "dave@example.com", RV_ROLE_MANAGER, &tok, &exp));
	ASSERT(exp >= before + 3600 && exp <= (int64_t)time(NULL) + 3600);

	/* The claims, read back with the key. */
	jwt_t *j = NULL;
	ASSERT_OK(jwt_decode(&j, tok, f.app.jwt_key, (int)f.app.jwt_key_len));
	ASSERT_EQ_INT(jwt_get_alg(j), JWT_ALG_HS256);
	char sub[24];
	snprintf(sub, sizeof(sub), "%lld", (long long)uid);
	ASSERT_EQ_STR(jwt_get_grant(j, "sub"), sub);
	ASSERT_EQ_STR(jwt_get_grant(j, "email"), "dave@example.com");
	ASSERT_EQ_STR(jwt_get_grant(j, "role"), "manager");
	ASSERT_EQ_STR(jwt_get_grant(j, "iss"), "revovoice");
	ASSERT_EQ_INT(jwt_get_grant_int(j, "exp"), exp);
	ASSERT_EQ_INT(jwt_get_grant_int(j, "exp") - jwt_get_grant_int(j, "iat"), 3600);
	ASSERT(jwt_get_grant(j, "jti") && strlen(jwt_get_grant(j, "jti")) == 32);
	jwt_free(j);

	memset(&who, 0, sizeof(who));
	ASSERT_OK(auth_bearer(&f, tok, &who, &why));
	ASSERT_EQ_INT(who.user_id, uid);
	ASSERT_EQ_INT(who.api_key_id, 0);
	ASSERT_EQ_INT(who.role, RV_ROLE_MANAGER);
	ASSERT_EQ_STR(who.email, "dave@example.com");

	/* The scheme is case-insensitive and blanks around the token are tolerated. */
	char hdr[4200];
	snprintf(hdr, sizeof(hdr), "  bEaReR \t%s  ", tok);
	ASSERT_OK(rv_auth_authenticate(&f.app, hdr, NULL, &who, &why));

	/* Two tokens for the same user differ (jti). */
	char *tok2 = NULL;
	ASSERT_OK(
	    rv_auth_token_issue(&f.app, uid, "dave@example.com", RV_ROLE_MANAGER, &tok2, &exp));
	ASSERT(strcmp(tok, tok2) != 0);
	free(tok2);

	/* No signing key: nothing is issued, nothing is accepted. */
	size_t keylen = f.app.jwt_key_len;
	f.app.jwt_key_len = 0;
	tok2 = NULL;
	ASSERT_EQ_INT(
	    rv_auth_token_issue(&f.app, uid, "dave@example.com", RV_ROLE_MANAGER, &tok2, &exp),
	    -EINVAL);
	ASSERT(tok2 == NULL);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	f.app.jwt_key_len = keylen;
	free(tok);
	fx_close(&f);
}

RV_TEST(auth_jwt_expired)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	char *tok = NULL, sub[24];
	int64_t exp;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "erin@example.com", RV_ROLE_ADMIN);
	ASSERT(uid > 0);
	f.cfg.auth_token_ttl = -5;
	ASSERT_OK(rv_auth_token_issue(&f.app, uid, "erin@example.com", RV_ROLE_ADMIN, &tok, &exp));
	memset(&who, 0, sizeof(who));
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT(why && strstr(why, "expired"));
	ASSERT_EQ_INT(who.user_id, 0); /* untouched on failure */
	free(tok);

	/* A crafted token with our key: valid until its exp, refused one second after it. */
	snprintf(sub, sizeof(sub), "%lld", (long long)uid);
	long now = (long)time(NULL);
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, sub, "revovoice", now + 60);
	ASSERT(tok);
	ASSERT_OK(auth_bearer(&f, tok, &who, &why));
	free(tok);
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, sub, "revovoice", now - 1);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT(strstr(why, "expired"));
	free(tok);
	/* No exp at all, or someone else's issuer, or no subject: refused too. */
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, sub, "revovoice", 0);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	free(tok);
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, sub, "someone-else", now + 60);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT(strstr(why, "issued"));
	free(tok);
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, NULL, "revovoice", now + 60);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	free(tok);
	tok = craft(JWT_ALG_HS256, f.app.jwt_key, 32, "999999", "revovoice", now + 60);
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT(strstr(why, "no longer exists"));
	free(tok);
	fx_close(&f);
}

RV_TEST(auth_jwt_tampered_none_otherkey)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	char *tok = NULL, sub[24], forged[4096], h64[256], p64[512], payload[256];
	int64_t exp;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "frank@example.com", RV_ROLE_VIEWER);
	ASSERT(uid > 0);
	snprintf(sub, sizeof(sub), "%lld", (long long)uid);
	ASSERT_OK(
	    rv_auth_token_issue(&f.app, uid, "frank@example.com", RV_ROLE_VIEWER, &tok, &exp));

	/* Flip one character of the signature. */
	rv_strlcpy(forged, tok, sizeof(forged));
	char *last = forged + strlen(forged) - 2;
	*last = *last == 'A' ? 'B' : 'A';
	ASSERT_EQ_INT(auth_bearer(&f, forged, &who, &why), -EACCES);

	/* Swap in a payload of our own, keeping the real header and signature. */
	long now = (long)time(NULL);
	snprintf(payload, sizeof(payload),
	         "{\"sub\":\"%s\",\"iss\":\"revovoice\",\"role\":\"admin\",\"exp\":%ld}", sub,
	         now + 3600);
	b64url(payload, p64, sizeof(p64));
	const char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
	snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - tok), tok, p64, dot2);
	ASSERT_EQ_INT(auth_bearer(&f, forged, &who, &why), -EACCES);

	/* alg "none", with and without a trailing signature segment. */
	b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h64, sizeof(h64));
	snprintf(forged, sizeof(forged), "%s.%s.", h64, p64);
	ASSERT_EQ_INT(auth_bearer(&f, forged, &who, &why), -EACCES);
	snprintf(forged, sizeof(forged), "%s.%s.c2lnbmF0dXJl", h64, p64);
	ASSERT_EQ_INT(auth_bearer(&f, forged, &who, &why), -EACCES);
	b64url("{\"alg\":\"NONE\"}", h64, sizeof(h64));
	snprintf(forged, sizeof(forged), "%s.%s.", h64, p64);
	ASSERT_EQ_INT(auth_bearer(&f, forged, &who, &why), -EACCES);

	/* Signed with another key, or with our key under another HMAC algorithm. */
	unsigned char other[32];
	randombytes_buf(other, sizeof(other));
	char *t2 = craft(JWT_ALG_HS256, other, 32, sub, "revovoice", now + 60);
	ASSERT_EQ_INT(auth_bearer(&f, t2, &who, &why), -EACCES);
	free(t2);
	t2 = craft(JWT_ALG_HS512, f.app.jwt_key, 32, sub, "revovoice", now + 60);
	ASSERT_EQ_INT(auth_bearer(&f, t2, &who, &why), -EACCES);
	ASSERT(strstr(why, "algorithm") || strstr(why, "signature"));
	free(t2);

	/* The genuine token still works after all that. */
	ASSERT_OK(auth_bearer(&f, tok, &who, &why));
	ASSERT_EQ_INT(who.role, RV_ROLE_VIEWER);
	free(tok);
	fx_close(&f);
}

RV_TEST(auth_jwt_role_from_store)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	char *tok = NULL;
	int64_t exp;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "gina@example.com", RV_ROLE_MANAGER);
	ASSERT(uid > 0);
	ASSERT_OK(
	    rv_auth_token_issue(&f.app, uid, "gina@example.com", RV_ROLE_MANAGER, &tok, &exp));
	ASSERT_OK(auth_bearer(&f, tok, &who, &why));
	ASSERT_EQ_INT(who.role, RV_ROLE_MANAGER);
	/* Demoted: the old token carries the new role, not the one in its claims. */
	ASSERT_OK(sql(&f, "UPDATE users SET role = 'viewer' WHERE id = $1", uid));
	ASSERT_OK(auth_bearer(&f, tok, &who, &why));
	ASSERT_EQ_INT(who.role, RV_ROLE_VIEWER);
	ASSERT_OK(sql(&f, "UPDATE users SET active = 0 WHERE id = $1", uid));
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT(strstr(why, "deactivated"));
	ASSERT_OK(sql(&f, "DELETE FROM users WHERE id = $1", uid));
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	free(tok);
	fx_close(&f);
}

RV_TEST(auth_authenticate_bad_headers)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	ASSERT_OK(fx_open(&f));
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, NULL, NULL, &who, &why), -EACCES);
	ASSERT_EQ_STR(why, "authentication required");
	static const char *const bad[] = {
	    "",
	    "Bearer",
	    "Bearer ",
	    "Basic dXNlcjpwYXNz",
	    "Bearerx.y.z",
	    "Bearer a.b.c d",
	    "Bearer not-a-jwt",
	    "Bearer a..c",
	    "Bearer .b.c",
	    "Bearer a.b.c.d",
	    "Bearer a.b!.c",
	};
	for (size_t i = 0; i < RV_ARRAY_LEN(bad); i++) {
		why = NULL;
		ASSERT_MSG(rv_auth_authenticate(&f.app, bad[i], NULL, &who, &why) == -EACCES,
		           "accepted '%s'", bad[i]);
		ASSERT(why != NULL);
	}
	/* A bearer token far beyond any real one. */
	char *huge = malloc(10000);
	memcpy(huge, "Bearer ", 7);
	memset(huge + 7, 'a', 9990);
	huge[9997] = '\0';
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, huge, NULL, &who, &why), -EACCES);
	free(huge);
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, "Bearer a.b.c", "rvk_x", &who, &why), -EACCES);
	ASSERT(strstr(why, "not both"));
	fx_close(&f);
}

/* ---- API keys
 * -------------------------------------------------------------------------------------- */

RV_TEST(auth_api_key_lifecycle)
{
	struct fx f;
	struct rv_principal who;
	const char *why = NULL;
	char *key = NULL, *key2 = NULL, buf[256], hex[65];
	int64_t kid = 0, kid2 = 0;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "hank@example.com", RV_ROLE_MANAGER);
	ASSERT(uid > 0);

	ASSERT_OK(rv_auth_api_key_create(&f.app, uid, "ci", RV_ROLE_SUPERVISOR, &kid, &key));
	ASSERT(kid > 0);
	ASSERT_EQ_INT(strlen(key), 44);
	ASSERT(strncmp(key, "rvk_", 4) == 0);
	ASSERT(strspn(key + 4,
	              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 40);

	/* Only the hash and a display prefix are stored. */
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), (const unsigned char *)key, strlen(key), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	ASSERT_OK(
	    sql_text(&f, "SELECT key_hash FROM api_keys WHERE id = $1", kid, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, hex);
	ASSERT_OK(sql_text(&f, "SELECT prefix FROM api_keys WHERE id = $1", kid, buf, sizeof(buf)));
	ASSERT(strlen(buf) == 8 && strncmp(buf, key, 8) == 0);
	ASSERT_OK(sql_text(&f,
	                   "SELECT COUNT(*) || '' FROM api_keys WHERE name LIKE '%rvk_%' OR "
	                   "prefix = key_hash OR id = -$1",
	                   kid, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "0");
	ASSERT_OK(
	    sql_text(&f, "SELECT last_used_at FROM api_keys WHERE id = $1", kid, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "");

	memset(&who, 0, sizeof(who));
	ASSERT_OK(rv_auth_authenticate(&f.app, NULL, key, &who, &why));
	ASSERT_EQ_INT(who.user_id, uid);
	ASSERT_EQ_INT(who.api_key_id, kid);
	ASSERT_EQ_INT(who.role, RV_ROLE_SUPERVISOR);
	ASSERT_EQ_STR(who.email, "hank@example.com");

	/* last_used_at is written on first use, then not again within the minute. */
	char first[64];
	ASSERT_OK(sql_text(&f, "SELECT last_used_at FROM api_keys WHERE id = $1", kid, first,
	                   sizeof(first)));
	ASSERT(strlen(first) == 24);
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	ASSERT_OK(rv_auth_authenticate(&f.app, NULL, key, &who, &why));
	ASSERT_OK(
	    sql_text(&f, "SELECT last_used_at FROM api_keys WHERE id = $1", kid, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, first);
	ASSERT_OK(sql(&f,
	              "UPDATE api_keys SET last_used_at = '2020-01-01T00:00:00.000Z' WHERE id = $1",
	              kid));
	ASSERT_OK(rv_auth_authenticate(&f.app, NULL, key, &who, &why));
	ASSERT_OK(
	    sql_text(&f, "SELECT last_used_at FROM api_keys WHERE id = $1", kid, buf, sizeof(buf)));
	ASSERT(strcmp(buf, "2020-01-01T00:00:00.000Z") > 0);

	/* A key never outranks its user, now or after a demotion. */
	ASSERT_EQ_INT(rv_auth_api_key_create(&f.app, uid, "too-high", RV_ROLE_ADMIN, &kid2, &key2),
	              -EPERM);
	ASSERT(key2 == NULL);
	ASSERT_EQ_INT(
	    rv_auth_api_key_create(&f.app, 999999, "nobody", RV_ROLE_VIEWER, &kid2, &key2),
	    -ENOENT);
	ASSERT_EQ_INT(rv_auth_api_key_create(&f.app, uid, "bad", RV_ROLE_NONE, &kid2, &key2),
	              -EINVAL);
	ASSERT_OK(sql(&f, "UPDATE users SET role = 'viewer' WHERE id = $1", uid));
	ASSERT_OK(rv_auth_authenticate(&f.app, NULL, key, &who, &why));
	ASSERT_EQ_INT(who.role, RV_ROLE_VIEWER);

	/* Inactive user, then revoked key. */
	ASSERT_OK(sql(&f, "UPDATE users SET active = 0 WHERE id = $1", uid));
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, NULL, key, &who, &why), -EACCES);
	ASSERT(strstr(why, "deactivated"));
	ASSERT_OK(sql(&f, "UPDATE users SET active = 1 WHERE id = $1", uid));
	ASSERT_OK(rv_auth_authenticate(&f.app, NULL, key, &who, &why));
	ASSERT_OK(
	    sql(&f, "UPDATE api_keys SET revoked_at = '2030-01-01T00:00:00Z' WHERE id = $1", kid));
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, NULL, key, &who, &why), -EACCES);
	ASSERT(strstr(why, "revoked"));

	/* Unknown but well-formed, and malformed keys. */
	char fake[64];
	rv_strlcpy(fake, key, sizeof(fake));
	fake[10] = fake[10] == 'A' ? 'B' : 'A';
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, NULL, fake, &who, &why), -EACCES);
	ASSERT(strstr(why, "not known"));
	static const char *const bad[] = {"", "rvk_", "rvk_short",
	                                  "xyz_0123456789012345678901234567890123456789",
	                                  "rvk_01234567890123456789012345678901234567=9"};
	for (size_t i = 0; i < RV_ARRAY_LEN(bad); i++)
		ASSERT_EQ_INT(rv_auth_authenticate(&f.app, NULL, bad[i], &who, &why), -EACCES);

	/* The audit row for the key (actor cli), and none with the secret in it. */
	ASSERT_OK(
	    sql_text(&f,
	             "SELECT actor || ' ' || action FROM audit_log WHERE resource = 'api_keys' "
	             "AND resource_id = $1",
	             kid, buf, sizeof(buf)));
	ASSERT_EQ_STR(buf, "cli create");
	free(key);
	fx_close(&f);
}

RV_TEST(auth_failure_metric)
{
	struct fx f;
	struct rv_principal who;
	const char *why;
	char *text = NULL, *tok = NULL;
	size_t len;
	int64_t exp;
	ASSERT_OK(fx_open(&f));
	int64_t uid = add_user(&f, "ivy@example.com", RV_ROLE_VIEWER);
	f.cfg.auth_token_ttl = -1;
	ASSERT_OK(rv_auth_token_issue(&f.app, uid, "ivy@example.com", RV_ROLE_VIEWER, &tok, &exp));
	rv_metrics_reset();
	ASSERT_EQ_INT(auth_bearer(&f, tok, &who, &why), -EACCES);
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, "Basic x", NULL, &who, &why), -EACCES);
	ASSERT_EQ_INT(rv_auth_authenticate(&f.app, "Basic y", NULL, &who, &why), -EACCES);
	ASSERT_OK(rv_metrics_render(&text, &len));
	ASSERT_MSG(strstr(text, "rv_auth_failures_total{reason=\"expired\"} 1"), "%s", text);
	ASSERT_MSG(strstr(text, "rv_auth_failures_total{reason=\"malformed\"} 2"), "%s", text);
	free(text);
	free(tok);
	rv_metrics_reset();
	fx_close(&f);
}

/* ---- `revovoice user add`
 * ------------------------------------------------------------------------- */

/* Run the CLI with stdout/stderr (and optionally stdin) redirected to files. */
static int run_cli(struct fx *f, char **argv, int argc, const char *stdin_text, char *out,
                   size_t outlen, char *errtxt, size_t errlen)
{
	char po[160], pe[160], pi[160];
	snprintf(po, sizeof(po), "%s/out", f->dir);
	snprintf(pe, sizeof(pe), "%s/err", f->dir);
	snprintf(pi, sizeof(pi), "%s/in", f->dir);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2), si = dup(0);
	int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FILE *fi = fopen(pi, "w");
	fputs(stdin_text ? stdin_text : "", fi);
	fclose(fi);
	int fin = open(pi, O_RDONLY);
	dup2(fo, 1);
	dup2(fe, 2);
	dup2(fin, 0);
	clearerr(stdin);
	int rc = rv_auth_cli_user_add(&f->app, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	dup2(si, 0);
	clearerr(stdin);
	close(so);
	close(se);
	close(si);
	close(fo);
	close(fe);
	close(fin);
	FILE *r = fopen(po, "r");
	size_t n = fread(out, 1, outlen - 1, r);
	out[n] = '\0';
	fclose(r);
	r = fopen(pe, "r");
	n = fread(errtxt, 1, errlen - 1, r);
	errtxt[n] = '\0';
	fclose(r);
	unlink(po);
	unlink(pe);
	unlink(pi);
	return rc;
}

RV_TEST(auth_cli_user_add)
{
	struct fx f;
	char out[512], err[512], expect[400], buf[256];
	ASSERT_OK(fx_open(&f));

	char *a1[] = {"add",        "--data-dir", "/nowhere", "--email", "Judy@Example.com",
	              "--password", PW,           "--role",   "manager", "--name",
	              "Judy"};
	ASSERT_EQ_INT(run_cli(&f, a1, 11, NULL, out, sizeof(out), err, sizeof(err)), 0);
	ASSERT_OK(sql_text(&f, "SELECT id || '' FROM users WHERE email = 'judy@example.com' AND $1",
	                   1, buf, sizeof(buf)));
	snprintf(expect, sizeof(expect), "created user %s judy@example.com (manager)\n", buf);
	ASSERT_EQ_STR(out, expect);
	ASSERT_OK(sql_text(&f, "SELECT name FROM users WHERE id = $1", strtol(buf, NULL, 10), buf,
	                   sizeof(buf)));
	ASSERT_EQ_STR(buf, "Judy");

	ASSERT_EQ_INT(run_cli(&f, a1, 11, NULL, out, sizeof(out), err, sizeof(err)), 1);
	ASSERT_MSG(strstr(err, "already exists"), "%s", err);
	ASSERT_EQ_STR(out, "");

	char *a2[] = {"--email", "kim@example.com", "--password", PW, "--role", "boss"};
	ASSERT_EQ_INT(run_cli(&f, a2, 6, NULL, out, sizeof(out), err, sizeof(err)), 1);
	ASSERT_MSG(strstr(err, "unknown role 'boss'"), "%s", err);

	char *a3[] = {"--email", "kim@example.com", "--password", "abc", "--role", "viewer"};
	ASSERT_EQ_INT(run_cli(&f, a3, 6, NULL, out, sizeof(out), err, sizeof(err)), 1);
	ASSERT_MSG(strstr(err, "at least 8"), "%s", err);

	char *a4[] = {"--email", "kim@example.com", "--role"};
	ASSERT_EQ_INT(run_cli(&f, a4, 3, NULL, out, sizeof(out), err, sizeof(err)), 2);
	ASSERT_MSG(strstr(err, "usage:"), "%s", err);
	char *a5[] = {"--email", "kim@example.com", "--role", "viewer", "--bogus", "x"};
	ASSERT_EQ_INT(run_cli(&f, a5, 6, NULL, out, sizeof(out), err, sizeof(err)), 2);

	/* Password from stdin (line ending stripped) and from the environment. */
	char *a6[] = {"--email", "kim@example.com", "--password-stdin", "--role", "viewer"};
	ASSERT_EQ_INT(run_cli(&f, a6, 5, "stdin-pass-123\r\n", out, sizeof(out), err, sizeof(err)),
	              0);
	ASSERT_OK(sql_text(&f,
	                   "SELECT password_hash FROM users WHERE email = 'kim@example.com' "
	                   "AND $1",
	                   1, buf, sizeof(buf)));
	ASSERT_OK(rv_auth_password_verify(buf, "stdin-pass-123"));

	char *a7[] = {"--email", "lee@example.com", "--role", "supervisor"};
	setenv("REVOVOICE_USER_PASSWORD", "env-pass-456", 1);
	int rc = run_cli(&f, a7, 4, NULL, out, sizeof(out), err, sizeof(err));
	unsetenv("REVOVOICE_USER_PASSWORD");
	ASSERT_EQ_INT(rc, 0);
	ASSERT_MSG(strstr(out, "lee@example.com (supervisor)"), "%s", out);
	ASSERT_OK(sql_text(&f,
	                   "SELECT password_hash FROM users WHERE email = 'lee@example.com' "
	                   "AND $1",
	                   1, buf, sizeof(buf)));
	ASSERT_OK(rv_auth_password_verify(buf, "env-pass-456"));
	ASSERT_EQ_INT(run_cli(&f, a7, 4, NULL, out, sizeof(out), err, sizeof(err)), 2);
	fx_close(&f);
}
