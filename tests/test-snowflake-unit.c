/*
 * tests/test-snowflake-unit.c - the Snowflake driver's parts that need no
 * server: the URL and its options (and what is refused), redaction, the
 * key-pair JWT (claims as Snowflake documents them, the signature checked
 * with OpenSSL against the public key, renewal, encrypted keys), each
 * value encoding of the SQL API through the one encoder, and the quoting of
 * catalog names.
 *
 * How it fails: a claim, a signature, a decoded value or a quoted name that
 * differs from what is expected; a secret that shows in a message or a
 * redacted URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/result.h"
#include "drivers/snowflake/snowflake.h"

/* --- the URL ------------------------------------------------------------ */

static int parse(const char *url, const char *const *options, size_t option_count,
                 sf_state_t *state, char **message) {
  qreg_driver_config_t config = {.url = url, .options = options, .option_count = option_count};
  char *key_file = NULL, *token_file = NULL;
  memset(state, 0, sizeof *state);
  int rc = qreg__sf_parse(&config, state, message, &key_file, &token_file);
  free(key_file);
  free(token_file);
  return rc;
}

static void url_parts(void **unused) {
  (void)unused;
  sf_state_t s;
  char *message = NULL;
  assert_int_equal(parse("snowflake://me%40corp.com@myorg-acct/Sales%20DB/PUBLIC?warehouse=WH&"
                         "role=READER&query_tag=qreg&timeout=30",
                         NULL, 0, &s, &message),
                   0);
  assert_string_equal(s.user, "me@corp.com");
  assert_string_equal(s.account, "myorg-acct");
  assert_string_equal(s.database, "Sales DB");
  assert_string_equal(s.schema, "PUBLIC");
  assert_string_equal(s.warehouse, "WH");
  assert_string_equal(s.role, "READER");
  assert_string_equal(s.query_tag, "qreg");
  assert_int_equal(s.timeout_s, 30);
  assert_int_equal(s.authenticator, SF_AUTH_JWT);
  assert_string_equal(s.endpoint, "https://myorg-acct.snowflakecomputing.com");
  assert_int_equal(s.poll_max_ms, 1000);
  qreg__sf_state_clear(&s);

  /* Config options win over the URL's; a loopback endpoint may be http. */
  const char *options[] = {"role=OTHER", "authenticator=oauth", "endpoint=http://127.0.0.1:9/"};
  assert_int_equal(parse("SnowFlake://u@XY12345.us-east-2.aws?role=R", options, 3, &s, &message),
                   0);
  assert_null(s.database);
  assert_null(s.schema);
  assert_string_equal(s.role, "OTHER");
  assert_int_equal(s.authenticator, SF_AUTH_OAUTH);
  assert_string_equal(s.endpoint, "http://127.0.0.1:9");
  qreg__sf_state_clear(&s);

  assert_int_equal(parse("snowflake://u@XY12345.us-east-2.aws/db", NULL, 0, &s, &message), 0);
  assert_string_equal(s.endpoint, "https://xy12345.us-east-2.aws.snowflakecomputing.com");
  assert_string_equal(s.database, "db");
  qreg__sf_state_clear(&s);
}

static void url_refused(void **unused) {
  (void)unused;
  static const struct {
    const char *url;
    const char *says;
  } cases[] = {
      {"snowflake://me:hunter2@acct/db", "no password"},
      {"snowflake://acct/db", "no user"},
      {"snowflake://u@/db", "account"},
      {"snowflake://u@ac%20ct/db", "account"},
      {"snowflake://u@acct/db/schema/extra", "/DATABASE/SCHEMA"},
      {"snowflake://u@acct?endpoint=http://example.com", "loopback"},
      {"snowflake://u@acct?endpoint=ftp://127.0.0.1", "https://"},
      {"snowflake://u@acct?endpoint=http://127.0.0.1.evil.com", "loopback"},
      {"snowflake://u@acct?authenticator=password", "authenticator"},
      {"snowflake://u@acct?token=hunter2", "token"},
      {"snowflake://u@acct?timeout=-1", "timeout"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sf_state_t s;
    char *message = NULL;
    int rc = parse(cases[i].url, NULL, 0, &s, &message);
    if (rc == 0)
      fail_msg("accepted %s", cases[i].url);
    assert_non_null(message);
    if (strstr(message, cases[i].says) == NULL)
      fail_msg("%s: message '%s' does not say '%s'", cases[i].url, message, cases[i].says);
    assert_null(strstr(message, "hunter2"));
    free(message);
    qreg__sf_state_clear(&s);
  }
  assert_true(qreg__sf_is_loopback_url("http://localhost:8080/x"));
  assert_true(qreg__sf_is_loopback_url("http://[::1]:8080"));
  assert_true(qreg__sf_is_loopback_url("http://127.0.0.1"));
  assert_false(qreg__sf_is_loopback_url("http://127.0.0.1.example.com"));
  assert_false(qreg__sf_is_loopback_url("http://localhost.example.com"));
  assert_false(qreg__sf_is_loopback_url("http://10.0.0.1"));
}

static void redaction(void **unused) {
  (void)unused;
  static const struct {
    const char *url;
    const char *shown;
  } cases[] = {
      {"snowflake://me@acct/db/sch?warehouse=wh&role=r",
       "snowflake://me@acct/db/sch?warehouse=wh&role=r"},
      {"snowflake://me:hunter2@acct/db?warehouse=wh", "snowflake://me:***@acct/db?warehouse=wh"},
      {"snowflake://me@acct/db?token=hunter2&role=r", "snowflake://me@acct/db?***&role=r"},
      {"snowflake://me@acct?private_key_file=/k.p8&passphrase=hunter2",
       "snowflake://me@acct?private_key_file=/k.p8&***"},
      {"postgres://x:hunter2@h", "snowflake://***"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *shown = qreg__sf_redact_url(cases[i].url);
    assert_non_null(shown);
    assert_string_equal(shown, cases[i].shown);
    free(shown);
  }
}

/* --- the JWT ------------------------------------------------------------ */

static char key_dir[64];
static char plain_key[128], encrypted_key[128];
static EVP_PKEY *test_key;

static int make_keys(void **unused) {
  (void)unused;
  snprintf(key_dir, sizeof key_dir, "/tmp/qreg-sfkeys-XXXXXX");
  if (mkdtemp(key_dir) == NULL)
    return -1;
  snprintf(plain_key, sizeof plain_key, "%s/rsa_key.p8", key_dir);
  snprintf(encrypted_key, sizeof encrypted_key, "%s/rsa_key_enc.p8", key_dir);
  test_key = EVP_RSA_gen(2048);
  if (test_key == NULL)
    return -1;
  FILE *f = fopen(plain_key, "w");
  if (f == NULL || !PEM_write_PKCS8PrivateKey(f, test_key, NULL, NULL, 0, NULL, NULL))
    return -1;
  fclose(f);
  f = fopen(encrypted_key, "w");
  if (f == NULL ||
      !PEM_write_PKCS8PrivateKey(f, test_key, EVP_aes_256_cbc(), "open sesame", 11, NULL, NULL))
    return -1;
  fclose(f);
  return 0;
}

static int remove_keys(void **unused) {
  (void)unused;
  unlink(plain_key);
  unlink(encrypted_key);
  rmdir(key_dir);
  EVP_PKEY_free(test_key);
  return 0;
}

static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len) {
  char *std = malloc(len + 4);
  assert_non_null(std);
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    std[n++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
  while (n % 4 != 0)
    std[n++] = '=';
  unsigned char *out = malloc(n + 1);
  assert_non_null(out);
  int decoded = EVP_DecodeBlock(out, (unsigned char *)std, (int)n);
  assert_true(decoded >= 0);
  size_t pad = 0;
  while (pad < 2 && n > pad && std[n - 1 - pad] == '=')
    pad++;
  *out_len = (size_t)decoded - pad;
  free(std);
  return out;
}

/* The fingerprint Snowflake shows (RSA_PUBLIC_KEY_FP), computed here on
   its own. */
static void expected_fingerprint(char *out, size_t size) {
  unsigned char *der = NULL;
  int len = i2d_PUBKEY(test_key, &der);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, (size_t)len, digest);
  OPENSSL_free(der);
  unsigned char b64[64];
  EVP_EncodeBlock(b64, digest, sizeof digest);
  snprintf(out, size, "SHA256:%s", b64);
}

static void jwt_checked(const char *token, int64_t now) {
  const char *dot1 = strchr(token, '.');
  assert_non_null(dot1);
  const char *dot2 = strchr(dot1 + 1, '.');
  assert_non_null(dot2);
  assert_null(strchr(dot2 + 1, '.'));
  size_t n;
  unsigned char *header = b64url_decode(token, (size_t)(dot1 - token), &n);
  json_t *h = json_loadb((char *)header, n, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
  assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
  json_decref(h);
  free(header);
  unsigned char *payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &n);
  json_t *claims = json_loadb((char *)payload, n, 0, NULL);
  assert_non_null(claims);
  char fingerprint[80], issuer[160];
  expected_fingerprint(fingerprint, sizeof fingerprint);
  snprintf(issuer, sizeof issuer, "MYORG-ACCT.ME@CORP.COM.%s", fingerprint);
  assert_string_equal(json_string_value(json_object_get(claims, "iss")), issuer);
  assert_string_equal(json_string_value(json_object_get(claims, "sub")), "MYORG-ACCT.ME@CORP.COM");
  assert_int_equal(json_integer_value(json_object_get(claims, "iat")), now);
  int64_t exp = json_integer_value(json_object_get(claims, "exp"));
  assert_true(exp > now && exp <= now + 3600);
  json_decref(claims);
  free(payload);
  /* The signature, with the public key only. */
  size_t sig_len;
  unsigned char *signature = b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
  unsigned char *der = NULL;
  int der_len = i2d_PUBKEY(test_key, &der);
  const unsigned char *p = der;
  EVP_PKEY *public_only = d2i_PUBKEY(NULL, &p, der_len);
  OPENSSL_free(der);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, public_only), 1);
  assert_int_equal(EVP_DigestVerify(ctx, signature, sig_len, (const unsigned char *)token,
                                    (size_t)(dot2 - token)),
                   1);
  EVP_MD_CTX_free(ctx);
  /* A changed claim no longer verifies. */
  char *forged = strdup(token);
  forged[(dot1 - token) + 5] ^= 1;
  ctx = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, public_only), 1);
  assert_int_not_equal(EVP_DigestVerify(ctx, signature, sig_len, (const unsigned char *)forged,
                                        (size_t)(dot2 - token)),
                       1);
  EVP_MD_CTX_free(ctx);
  free(forged);
  EVP_PKEY_free(public_only);
  free(signature);
}

static void jwt_claims_and_signature(void **unused) {
  (void)unused;
  sf_jwt_t jwt;
  char *message = NULL;
  assert_int_equal(qreg__sf_jwt_init(&jwt, "myorg-acct", "me@corp.com", plain_key, NULL, &message),
                   0);
  int64_t now = (int64_t)time(NULL);
  const char *token = qreg__sf_jwt_token(&jwt, now);
  assert_non_null(token);
  char *first = strdup(token);
  jwt_checked(first, now);
  /* Cached while far from expiry; renewed before it expires. */
  assert_string_equal(qreg__sf_jwt_token(&jwt, now + 60), first);
  const char *renewed = qreg__sf_jwt_token(&jwt, now + 3000);
  assert_string_not_equal(renewed, first);
  free(first);
  qreg__sf_jwt_clear(&jwt);

  /* An encrypted key: with its passphrase; without or with a wrong one, a
     clear error (never a prompt on the terminal). */
  assert_int_equal(
      qreg__sf_jwt_init(&jwt, "myorg-acct", "me@corp.com", encrypted_key, "open sesame", &message),
      0);
  now = (int64_t)time(NULL);
  jwt_checked(qreg__sf_jwt_token(&jwt, now), now);
  qreg__sf_jwt_clear(&jwt);
  assert_int_not_equal(
      qreg__sf_jwt_init(&jwt, "myorg-acct", "me", encrypted_key, "wrong", &message), 0);
  assert_non_null(strstr(message, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"));
  assert_null(strstr(message, "wrong"));
  free(message);
  assert_int_not_equal(qreg__sf_jwt_init(&jwt, "myorg-acct", "me", encrypted_key, NULL, &message),
                       0);
  free(message);
  assert_int_not_equal(qreg__sf_jwt_init(&jwt, "a", "me", "/nonexistent/key.p8", NULL, &message),
                       0);
  free(message);
}

static void jwt_account(void **unused) {
  (void)unused;
  static const char *const cases[][2] = {
      {"myorg-myaccount", "MYORG-MYACCOUNT"}, {"xy12345", "XY12345"},
      {"xy12345.us-east-2.aws", "XY12345"},   {"xy12345.eu-central-1", "XY12345"},
      {"myorg-acct.global", "MYORG"},         {"my_org-my_acct", "MY_ORG-MY_ACCT"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *account = qreg__sf_jwt_account(cases[i][0]);
    assert_string_equal(account, cases[i][1]);
    free(account);
  }
}

/* --- values ------------------------------------------------------------- */

/* One cell decoded into a result, written by the one encoder. */
static void expect_cell(sf_kind_t kind, int64_t scale, const char *cell, const char *json) {
  qreg_result_t *result = qreg_result_new(10, NULL, 1 << 20);
  assert_int_equal(qreg_result_set_columns(result, 1), 0);
  assert_int_equal(qreg_result_set_column(result, 0, "c", "T"), 0);
  assert_int_equal(qreg_result_row_begin(result), 0);
  assert_int_equal(qreg__sf_put_value(result, kind, scale, cell ? cell : "",
                                      cell ? strlen(cell) : 0, cell == NULL),
                   0);
  assert_int_equal(qreg_result_row_end(result), 0);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_result_copy_page(result, 0, 1, &page), 0);
  char out[256];
  qreg_value_json(&page->values[0], out, sizeof out);
  if (strcmp(out, json) != 0)
    fail_msg("cell '%s' (kind %d): got %s, expected %s", cell ? cell : "NULL", (int)kind, out,
             json);
  qreg_page_free(page);
  qreg_result_free(result);
}

static void values(void **unused) {
  (void)unused;
  expect_cell(SF_KIND_FIXED, 2, "12.50", "\"12.50\"");
  expect_cell(SF_KIND_FIXED, 2, "-0.01", "\"-0.01\"");
  expect_cell(SF_KIND_FIXED, 0, "42", "42");
  expect_cell(SF_KIND_FIXED, 0, "-9007199254740991", "-9007199254740991");
  expect_cell(SF_KIND_FIXED, 0, "9223372036854775807", "\"9223372036854775807\"");
  expect_cell(SF_KIND_FIXED, 0, "123456789012345678901234567890",
              "\"123456789012345678901234567890\"");
  expect_cell(SF_KIND_REAL, 0, "1.5", "1.5");
  expect_cell(SF_KIND_REAL, 0, "3", "3.0");
  expect_cell(SF_KIND_REAL, 0, "NaN", "\"NaN\"");
  expect_cell(SF_KIND_REAL, 0, "inf", "\"Infinity\"");
  expect_cell(SF_KIND_REAL, 0, "-inf", "\"-Infinity\"");
  expect_cell(SF_KIND_REAL, 0, "1.0E-300", "1e-300");
  expect_cell(SF_KIND_TEXT, 0, "h\xc3\xa9llo \"q\"", "\"h\xc3\xa9llo \\\"q\\\"\"");
  expect_cell(SF_KIND_BOOLEAN, 0, "true", "true");
  expect_cell(SF_KIND_BOOLEAN, 0, "false", "false");
  expect_cell(SF_KIND_DATE, 0, "0", "\"1970-01-01\"");
  expect_cell(SF_KIND_DATE, 0, "19000", "\"2022-01-08\"");
  expect_cell(SF_KIND_DATE, 0, "-1", "\"1969-12-31\"");
  expect_cell(SF_KIND_DATE, 0, "2932896", "\"9999-12-31\"");
  expect_cell(SF_KIND_DATE, 0, "2932897", "\"+010000-01-01\"");
  expect_cell(SF_KIND_DATE, 0, "-719528", "\"0000-01-01\"");
  expect_cell(SF_KIND_DATE, 0, "-719529", "\"-000001-12-31\"");
  expect_cell(SF_KIND_TIME, 9, "3723.500000000", "\"01:02:03.5\"");
  expect_cell(SF_KIND_TIME, 9, "0.000000000", "\"00:00:00\"");
  expect_cell(SF_KIND_TIME, 9, "86399.999999999", "\"23:59:59.999999999\"");
  expect_cell(SF_KIND_TIMESTAMP_NTZ, 9, "1719828000.123000000", "\"2024-07-01T10:00:00.123\"");
  expect_cell(SF_KIND_TIMESTAMP_NTZ, 9, "-1.500000000", "\"1969-12-31T23:59:58.5\"");
  expect_cell(SF_KIND_TIMESTAMP_NTZ, 0, "1719828000", "\"2024-07-01T10:00:00\"");
  expect_cell(SF_KIND_TIMESTAMP_LTZ, 9, "0.000000000", "\"1970-01-01T00:00:00Z\"");
  expect_cell(SF_KIND_TIMESTAMP_LTZ, 3, "1719828000.001", "\"2024-07-01T10:00:00.001Z\"");
  expect_cell(SF_KIND_TIMESTAMP_TZ, 9, "1719828000.000000000 1560",
              "\"2024-07-01T12:00:00+02:00\"");
  expect_cell(SF_KIND_TIMESTAMP_TZ, 9, "1719828000.000000000 1440", "\"2024-07-01T10:00:00Z\"");
  expect_cell(SF_KIND_TIMESTAMP_TZ, 9, "1719828000.250000000 960",
              "\"2024-07-01T02:00:00.25-08:00\"");
  expect_cell(SF_KIND_TIMESTAMP_TZ, 9, "1719828000.000000000 1770",
              "\"2024-07-01T15:30:00+05:30\"");
  expect_cell(SF_KIND_JSON, 0, "{\n  \"a\": [\n    1,\n    2.50\n  ]\n}", "{\"a\":[1,2.50]}");
  expect_cell(SF_KIND_JSON, 0, "\"text\"", "\"text\"");
  expect_cell(SF_KIND_JSON, 0, "[12345678901234567890]", "[12345678901234567890]");
  expect_cell(SF_KIND_BINARY, 0, "00ff41", "\"AP9B\"");
  expect_cell(SF_KIND_BINARY, 0, "", "\"\"");
  expect_cell(SF_KIND_TEXT, 0, NULL, "null");
  expect_cell(SF_KIND_DATE, 0, NULL, "null");
  /* What does not decode stays the text sent. */
  expect_cell(SF_KIND_BINARY, 0, "0g", "\"0g\"");
  expect_cell(SF_KIND_DATE, 0, "soon", "\"soon\"");
  expect_cell(SF_KIND_TIME, 9, "99999.0", "\"99999.0\"");
  expect_cell(SF_KIND_TIMESTAMP_TZ, 9, "1.0 9999", "\"1.0 9999\"");
  expect_cell(SF_KIND_BOOLEAN, 0, "maybe", "\"maybe\"");
  expect_cell(SF_KIND_REAL, 0, "1.5x", "\"1.5x\"");

  assert_int_equal(qreg__sf_kind("FIXED"), SF_KIND_FIXED);
  assert_int_equal(qreg__sf_kind("timestamp_tz"), SF_KIND_TIMESTAMP_TZ);
  assert_int_equal(qreg__sf_kind("OBJECT"), SF_KIND_JSON);
  assert_int_equal(qreg__sf_kind("GEOGRAPHY"), SF_KIND_TEXT);
}

/* --- catalog SQL ----------------------------------------------------------- */

static void catalog_quoting(void **unused) {
  (void)unused;
  qreg_catalog_request_t request;
  qreg_catalog_init(&request, QREG_CATALOG_TABLES);
  request.schema = "a'b\\c";
  char *sql = NULL, *message = NULL;
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
  assert_non_null(strstr(sql, "TABLE_SCHEMA = 'a''b\\\\c'"));
  assert_non_null(strstr(sql, "\"schema\""));
  free(sql);

  qreg_catalog_init(&request, QREG_CATALOG_SAMPLE);
  request.schema = "S";
  request.table = "x\"y";
  request.limit = 5;
  request.random = true;
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
  assert_string_equal(sql, "SELECT * FROM \"S\".\"x\"\"y\" SAMPLE (5 ROWS)");
  assert_true(qreg__sf_sql_is_query(sql, strlen(sql)));
  free(sql);
  static const char *const sample_columns[] = {"a", "b\"c"};
  request.columns = sample_columns;
  request.column_count = 2;
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
  assert_string_equal(sql, "SELECT \"a\", \"b\"\"c\" FROM \"S\".\"x\"\"y\" SAMPLE (5 ROWS)");
  assert_true(qreg__sf_sql_is_query(sql, strlen(sql)));
  free(sql);

  qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
  request.table = "T";
  request.column = "C";
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
  assert_non_null(strstr(sql, "APPROX_COUNT_DISTINCT(t.\"C\")"));
  free(sql);

  /* Per kind, the statistics it has: a number's quartiles, a boolean's
     counts, a text's top values; all in one statement, in request order. */
  static const char *const stats_columns[] = {"n", "b", "s", "v"};
  static const char *const stats_kinds[] = {"number", "boolean", "text", "other"};
  qreg_catalog_init(&request, QREG_CATALOG_COLUMN_STATS);
  request.table = "T";
  request.columns = stats_columns;
  request.column_kinds = stats_kinds;
  request.column_count = 4;
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
  assert_non_null(strstr(sql, "PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY t.\"n\")"));
  assert_non_null(strstr(sql, "COUNT_IF(t.\"b\")"));
  assert_non_null(strstr(sql, "OBJECT_CONSTRUCT('value', k.v, 'count', k.c)"));
  assert_non_null(strstr(sql, "MIN(t.\"v\"::VARCHAR)"));
  assert_null(strstr(sql, "PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY t.\"s\")"));
  assert_true(strstr(sql, "'n' AS \"column_name\"") < strstr(sql, "'v' AS \"column_name\""));
  assert_true(qreg__sf_sql_is_query(sql, strlen(sql)));
  free(sql);

  /* Indexes and foreign keys are not offered (describe_table says null). */
  qreg_catalog_init(&request, QREG_CATALOG_INDEXES);
  request.table = "T";
  assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), QREG_EINVAL);
  assert_non_null(strstr(message, "no indexes"));
  free(message);

  for (int op = 0; op < QREG_CATALOG_OP_COUNT; op++) {
    if (op == QREG_CATALOG_INDEXES || op == QREG_CATALOG_FOREIGN_KEYS)
      continue;
    qreg_catalog_init(&request, (qreg_catalog_op_t)op);
    request.table = "T";
    request.column = "C";
    request.pattern = "id";
    assert_int_equal(qreg__sf_catalog_sql(&request, &sql, &message), 0);
    if (!qreg__sf_sql_is_query(sql, strlen(sql)))
      fail_msg("the catalog's own SQL fails the read-only check: %s", sql);
    free(sql);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(url_parts),
      cmocka_unit_test(url_refused),
      cmocka_unit_test(redaction),
      cmocka_unit_test_setup_teardown(jwt_claims_and_signature, make_keys, remove_keys),
      cmocka_unit_test(jwt_account),
      cmocka_unit_test(values),
      cmocka_unit_test(catalog_quoting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
