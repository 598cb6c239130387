/*
 * src/drivers/snowflake/snowflake_auth.c - how the Snowflake driver proves
 * who it is on each request: a key-pair JWT it signs itself, or a bearer
 * token (programmatic access token, OAuth) read from a file or from the
 * environment, never from the URL or a command line.
 *
 * The JWT, as Snowflake documents key-pair authentication:
 *   header  {"alg":"RS256","typ":"JWT"}
 *   claims  iss  ACCOUNT.USER.SHA256:<base64 of SHA-256 of the public key's DER>
 *           sub  ACCOUNT.USER
 *           iat  now, exp  now + 59 minutes (Snowflake accepts at most one hour)
 * ACCOUNT is the account identifier in upper case without its region
 * ("xy12345.us-east-2.aws" -> "XY12345"; a ".global" account is cut at its
 * first '-'), USER in upper case. The token is made again when less than
 * ten minutes of it are left, so a statement that polls for hours keeps a
 * valid one.
 *
 * Owns the private key (EVP_PKEY) and the token strings of an sf_jwt_t;
 * the key is loaded on the qreg_open() caller's thread, tokens are made on
 * the loop thread.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "drivers/snowflake/snowflake.h"

#define JWT_LIFETIME_S ((int64_t)59 * 60)
#define JWT_RENEW_BEFORE_S ((int64_t)10 * 60)

char *qreg__sf_jwt_account(const char *account) {
  char *out = strdup(account);
  if (out == NULL)
    return NULL;
  for (char *p = out; *p != '\0'; p++)
    *p = (char)toupper((unsigned char)*p);
  char *cut = strstr(out, ".GLOBAL") != NULL ? strchr(out, '-') : strchr(out, '.');
  if (cut != NULL && cut != out)
    *cut = '\0';
  return out;
}

static char *upper_copy(const char *s) {
  char *out = strdup(s);
  for (char *p = out; p != NULL && *p != '\0'; p++)
    *p = (char)toupper((unsigned char)*p);
  return out;
}

/* Base64 of data: standard with padding, or URL-safe without (JWT). */
static char *base64(const unsigned char *data, size_t len, bool url) {
  size_t cap = 4 * ((len + 2) / 3) + 1;
  char *out = malloc(cap);
  if (out == NULL)
    return NULL;
  int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  if (n < 0) {
    free(out);
    return NULL;
  }
  out[n] = '\0';
  if (url) {
    for (int i = 0; i < n; i++) {
      if (out[i] == '+')
        out[i] = '-';
      else if (out[i] == '/')
        out[i] = '_';
    }
    while (n > 0 && out[n - 1] == '=')
      out[--n] = '\0';
  }
  return out;
}

/* The passphrase callback: never a prompt on the terminal. */
static int passphrase_cb(char *buf, int size, int rwflag, void *u) {
  (void)rwflag;
  const char *passphrase = u;
  if (passphrase == NULL)
    return -1;
  size_t len = strlen(passphrase);
  if (size <= 0 || len >= (size_t)size)
    return -1;
  memcpy(buf, passphrase, len + 1);
  return (int)len;
}

static int fail(char **message, int code, const char *fmt, const char *arg) {
  if (asprintf(message, fmt, arg) < 0)
    *message = NULL;
  return code;
}

int qreg__sf_jwt_init(sf_jwt_t *jwt, const char *account, const char *user, const char *pem_path,
                      const char *passphrase, char **message) {
  memset(jwt, 0, sizeof *jwt);
  FILE *file = fopen(pem_path, "re");
  if (file == NULL)
    return fail(message, QREG_EINVAL, "snowflake: cannot open private_key_file '%s'", pem_path);
  EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, passphrase_cb, (void *)passphrase);
  fclose(file);
  if (key == NULL)
    return fail(message, QREG_EINVAL,
                "snowflake: private_key_file '%s' holds no private key qreg can read (a PEM "
                "PKCS#8 key; an encrypted one needs SNOWFLAKE_PRIVATE_KEY_PASSPHRASE)",
                pem_path);
  if (!EVP_PKEY_is_a(key, "RSA")) {
    EVP_PKEY_free(key);
    return fail(message, QREG_EINVAL, "snowflake: private_key_file '%s' is not an RSA key",
                pem_path);
  }
  jwt->key = key;
  unsigned char *der = NULL;
  int der_len = i2d_PUBKEY(key, &der);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  char *fingerprint = NULL;
  if (der_len > 0 && SHA256(der, (size_t)der_len, digest) != NULL)
    fingerprint = base64(digest, sizeof digest, false);
  OPENSSL_free(der);
  char *acct = qreg__sf_jwt_account(account), *usr = upper_copy(user);
  if (fingerprint != NULL && acct != NULL && usr != NULL) {
    if (asprintf(&jwt->issuer, "%s.%s.SHA256:%s", acct, usr, fingerprint) < 0)
      jwt->issuer = NULL;
    if (asprintf(&jwt->subject, "%s.%s", acct, usr) < 0)
      jwt->subject = NULL;
  }
  free(fingerprint);
  free(acct);
  free(usr);
  if (jwt->issuer == NULL || jwt->subject == NULL) {
    qreg__sf_jwt_clear(jwt);
    *message = strdup("snowflake: out of memory preparing the JWT");
    return QREG_ENOMEM;
  }
  return 0;
}

void qreg__sf_jwt_clear(sf_jwt_t *jwt) {
  EVP_PKEY_free(jwt->key);
  free(jwt->issuer);
  free(jwt->subject);
  free(jwt->token);
  memset(jwt, 0, sizeof *jwt);
}

/* A new JWT issued at now; NULL on failure. */
static char *jwt_make(const sf_jwt_t *jwt, int64_t now) {
  static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
  json_int_t issued = now, expires = issued + JWT_LIFETIME_S;
  json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "iss", jwt->issuer, "sub", jwt->subject, "iat",
                             issued, "exp", expires);
  char *payload = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(claims);
  char *h64 = base64((const unsigned char *)header, sizeof header - 1, true);
  char *p64 = payload ? base64((const unsigned char *)payload, strlen(payload), true) : NULL;
  free(payload);
  char *signing_input = NULL, *token = NULL;
  if (h64 != NULL && p64 != NULL && asprintf(&signing_input, "%s.%s", h64, p64) < 0)
    signing_input = NULL;
  free(h64);
  free(p64);
  if (signing_input == NULL)
    return NULL;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char *signature = NULL;
  size_t sig_len = 0;
  bool ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, jwt->key) == 1 &&
            EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)signing_input,
                           strlen(signing_input)) == 1 &&
            (signature = malloc(sig_len)) != NULL &&
            EVP_DigestSign(ctx, signature, &sig_len, (const unsigned char *)signing_input,
                           strlen(signing_input)) == 1;
  EVP_MD_CTX_free(ctx);
  char *s64 = ok ? base64(signature, sig_len, true) : NULL;
  free(signature);
  if (s64 != NULL && asprintf(&token, "%s.%s", signing_input, s64) < 0)
    token = NULL;
  free(s64);
  free(signing_input);
  return token;
}

const char *qreg__sf_jwt_token(sf_jwt_t *jwt, int64_t now) {
  if (jwt->token != NULL && now + JWT_RENEW_BEFORE_S < jwt->expires &&
      now >= jwt->expires - JWT_LIFETIME_S)
    return jwt->token;
  char *token = jwt_make(jwt, now);
  if (token == NULL)
    return NULL;
  free(jwt->token);
  jwt->token = token;
  jwt->expires = now + JWT_LIFETIME_S;
  return token;
}

int qreg__sf_read_token_file(const char *path, char **token_out, char **message) {
  *token_out = NULL;
  FILE *file = fopen(path, "re");
  if (file == NULL)
    return fail(message, QREG_EINVAL, "snowflake: cannot open token_file '%s'", path);
  char *buf = malloc(65536);
  size_t n = buf ? fread(buf, 1, 65535, file) : 0;
  fclose(file);
  if (buf == NULL) {
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  buf[n] = '\0';
  char *start = buf;
  while (isspace((unsigned char)*start))
    start++;
  size_t len = strcspn(start, "\r\n");
  while (len > 0 && isspace((unsigned char)start[len - 1]))
    len--;
  if (len == 0) {
    free(buf);
    return fail(message, QREG_EINVAL, "snowflake: token_file '%s' is empty", path);
  }
  *token_out = strndup(start, len);
  OPENSSL_cleanse(buf, n);
  free(buf);
  if (*token_out == NULL) {
    *message = strdup("out of memory");
    return QREG_ENOMEM;
  }
  return 0;
}

int qreg__sf_auth_headers(sf_state_t *state, char **authorization, const char **token_type) {
  const char *token = NULL;
  switch (state->authenticator) {
  case SF_AUTH_JWT:
    token = qreg__sf_jwt_token(&state->jwt, (int64_t)time(NULL));
    *token_type = "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT";
    break;
  case SF_AUTH_PAT:
    token = state->token;
    *token_type = "X-Snowflake-Authorization-Token-Type: PROGRAMMATIC_ACCESS_TOKEN";
    break;
  case SF_AUTH_OAUTH:
    token = state->token;
    *token_type = "X-Snowflake-Authorization-Token-Type: OAUTH";
    break;
  }
  if (token == NULL || asprintf(authorization, "Authorization: Bearer %s", token) < 0) {
    *authorization = NULL;
    return QREG_EINVAL;
  }
  return 0;
}
