/*
 * src/drivers/snowflake/snowflake.h - what the files of the Snowflake driver
 * share: the per-registry settings, the HTTP layer's interface, and the pure
 * functions the tests reach. Only src/drivers/snowflake/ and the driver's
 * unit tests include it.
 *
 *   snowflake.c          the descriptor, connections, a statement's life
 *                        (submit, poll, partitions, cancel, retries)
 *   snowflake_http.c     libcurl's multi interface on the registry's loop
 *                        (one multi per connection: its keep-alive cache)
 *   snowflake_auth.c     key-pair JWT (RS256, OpenSSL) and bearer tokens
 *   snowflake_url.c      the URL and options, redaction, create/destroy
 *   snowflake_values.c   the SQL API's JSON cells as qreg values
 *   snowflake_sql.c      the read-only check: is this statement a query?
 *   snowflake_catalog.c  the catalog SQL (INFORMATION_SCHEMA, SAMPLE,
 *                        APPROX_COUNT_DISTINCT)
 */
#ifndef QREG_DRIVERS_SNOWFLAKE_H
#define QREG_DRIVERS_SNOWFLAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/result.h"
#include "drivers/driver.h"

/* How the driver proves who it is. */
typedef enum sf_authenticator {
  SF_AUTH_JWT = 0,   /* key pair: a JWT we sign (KEYPAIR_JWT) */
  SF_AUTH_PAT = 1,   /* programmatic access token (PROGRAMMATIC_ACCESS_TOKEN) */
  SF_AUTH_OAUTH = 2, /* OAuth access token (OAUTH) */
} sf_authenticator_t;

/* The key-pair JWT: the key, the claims it signs, the token in use. */
typedef struct sf_jwt {
  void *key;       /* owned: EVP_PKEY, the private key */
  char *issuer;    /* owned: ACCOUNT.USER.SHA256:<fingerprint> */
  char *subject;   /* owned: ACCOUNT.USER */
  char *token;     /* owned: the current JWT; NULL until first made */
  int64_t expires; /* seconds since the epoch: when token expires */
} sf_jwt_t;

/* Per registry: made by create() on the qreg_open() caller's thread, read
   only afterwards except the JWT cache, which only the loop thread touches. */
typedef struct sf_state {
  qreg_loop_t *loop;
  char *account;   /* owned: as written in the URL */
  char *user;      /* owned: percent-decoded */
  char *database;  /* owned; NULL: the user's default */
  char *schema;    /* owned; NULL: the user's default */
  char *warehouse; /* owned; NULL */
  char *role;      /* owned; NULL */
  char *query_tag; /* owned; NULL */
  char *endpoint;  /* owned: "https://account.snowflakecomputing.com", no '/' at the end */
  sf_authenticator_t authenticator;
  char *token; /* owned: PAT or OAuth token (token_file or SNOWFLAKE_TOKEN);
                  never printed */
  sf_jwt_t jwt;
  uint64_t timeout_s;          /* the body's timeout cap, seconds (0: from the query) */
  uint64_t request_timeout_ms; /* one HTTP request may stall this long */
  uint64_t poll_max_ms;        /* the slowest status polling */
  uint64_t cancel_wait_ms;     /* how long a cancel waits for the server to end it */
  unsigned max_retries;        /* retries of one request (429, 503, 504, resets) */
  char *user_agent;            /* owned */
} sf_state_t;

/* --- snowflake_url.c --------------------------------------------------- */

extern const qreg_driver_option_t qreg__sf_options[];
int qreg__sf_create(const qreg_driver_config_t *config, void **state_out, char **message);
void qreg__sf_destroy(void *state);
char *qreg__sf_redact_url(const char *url);
/* Reads a URL and the options into state (no files, no environment): the
   part of create() the unit tests check. 0 or QREG_EURL / QREG_EINVAL /
   QREG_ENOMEM with a malloc'd *message that never holds a secret. */
int qreg__sf_parse(const qreg_driver_config_t *config, sf_state_t *state, char **message,
                   char **private_key_file, char **token_file);
void qreg__sf_state_clear(sf_state_t *state);
/* Whether url ("http://127.0.0.1:8080") names a loopback host. */
bool qreg__sf_is_loopback_url(const char *url);

/* --- snowflake_auth.c -------------------------------------------------- */

/* The account as the JWT's claims name it: upper case, cut at the first
   '.' (a locator with its region: "xy12345.us-east-2.aws" -> "XY12345"),
   or at the first '-' for a ".global" account. malloc'd; NULL on ENOMEM. */
char *qreg__sf_jwt_account(const char *account);
/* Loads the PEM private key (PKCS#8, encrypted when passphrase is not
   NULL) and sets the claims. 0 or a negative code with *message. */
int qreg__sf_jwt_init(sf_jwt_t *jwt, const char *account, const char *user, const char *pem_path,
                      const char *passphrase, char **message);
void qreg__sf_jwt_clear(sf_jwt_t *jwt);
/* A JWT valid at now (seconds since the epoch) for at least a few
   minutes: the cached one, or a new one (iat now, exp now + 59 minutes).
   NULL on failure. Loop thread. */
const char *qreg__sf_jwt_token(sf_jwt_t *jwt, int64_t now);
/* Reads a token file: the first line, white space trimmed. malloc'd. */
int qreg__sf_read_token_file(const char *path, char **token_out, char **message);
/* "Authorization: Bearer ..." and the token type header for a request. 0 or
   QREG_EINVAL (the JWT could not be signed). */
int qreg__sf_auth_headers(sf_state_t *state, char **authorization, const char **token_type);

/* --- snowflake_sql.c --------------------------------------------------- */

/* Whether sql is a query by its first keyword (after white space, comments
   and opening parentheses): SELECT, SHOW, DESCRIBE, DESC, EXPLAIN, or WITH
   whose common table expressions are followed by SELECT. Pure. */
bool qreg__sf_sql_is_query(const char *sql, size_t len);

/* --- snowflake_values.c ------------------------------------------------ */

/* The kinds of values the SQL API encodes, from rowType's "type". */
typedef enum sf_kind {
  SF_KIND_TEXT = 0, /* TEXT and anything unknown: text as sent */
  SF_KIND_FIXED,
  SF_KIND_REAL,
  SF_KIND_BOOLEAN,
  SF_KIND_DATE,
  SF_KIND_TIME,
  SF_KIND_TIMESTAMP_NTZ,
  SF_KIND_TIMESTAMP_LTZ,
  SF_KIND_TIMESTAMP_TZ,
  SF_KIND_JSON, /* VARIANT, OBJECT, ARRAY, MAP, VECTOR */
  SF_KIND_BINARY,
} sf_kind_t;

sf_kind_t qreg__sf_kind(const char *type_name);
/* Writes one cell (text, len; is_null) into result as the kind decodes it.
   Returns what qreg_result_put_* returned; a cell that does not decode is
   stored as the text the server sent. */
int qreg__sf_put_value(qreg_result_t *result, sf_kind_t kind, int64_t scale, const char *text,
                       size_t len, bool is_null);
/* The ISO 8601 text of one cell of a date or time kind, into out (at least
   48 bytes). false when text does not decode. */
bool qreg__sf_format_datetime(sf_kind_t kind, const char *text, size_t len, char *out, size_t size);

/* --- snowflake_catalog.c ----------------------------------------------- */

int qreg__sf_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message);

/* --- snowflake_http.c -------------------------------------------------- */

typedef struct sf_http sf_http_t;
typedef struct sf_request sf_request_t;
typedef void (*sf_request_cb)(sf_request_t *request, void *arg);

/* What a finished request holds. The callback reads it; the HTTP layer
   frees the request after the callback returns. */
struct sf_request {
  long status;     /* the HTTP status, 0 when none arrived */
  int curl_code;   /* CURLE_OK, or why the transfer failed */
  char error[256]; /* curl's words for curl_code */
  char *body;      /* the response, NUL-terminated (decompressed) */
  size_t body_len;
  int64_t retry_after_ms; /* the Retry-After header, -1 when absent */
  bool too_big;           /* the response exceeded the cap: cut */
  /* private to snowflake_http.c */
  void *easy;
  void *headers;
  char *post_body;
  size_t post_len, post_sent;
  size_t body_cap;
  sf_http_t *http;
  sf_request_cb done;
  void *arg;
  sf_request_t *next;
};

/* A multi handle on loop. NULL on ENOMEM. */
sf_http_t *qreg__sf_http_new(qreg_loop_t *loop);
/* Aborts every request (no callback), stops every watch and timer, frees. */
void qreg__sf_http_free(sf_http_t *http);
/* Starts a request: POST when post_body is not NULL (copied). headers: a
   NULL-terminated list of "Name: value". done runs on the loop thread once
   the request ended, unless it is aborted first. NULL on failure. */
sf_request_t *qreg__sf_http_start(sf_http_t *http, const char *url, const char *const *headers,
                                  const char *post_body, uint64_t stall_ms, sf_request_cb done,
                                  void *arg);
/* Stops a request in flight: done will not run; the request is freed. */
void qreg__sf_http_abort(sf_request_t *request);
/* Whether a curl failure is worth a retry (reset, timeout, refused), and
   whether the request may have reached the server before it failed. */
bool qreg__sf_http_retryable(int curl_code, bool *maybe_received);

#endif /* QREG_DRIVERS_SNOWFLAKE_H */
