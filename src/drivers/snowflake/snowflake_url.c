/*
 * src/drivers/snowflake/snowflake_url.c - what the Snowflake driver reads
 * from its URL and options, how it shows the URL without secrets, and the
 * per-registry state's making and freeing (create, destroy).
 *
 *   snowflake://USER@ACCOUNT[/DATABASE[/SCHEMA]][?option=value&...]
 *
 * USER and the path are percent-decoded (an e-mail user name is written
 * "me%40corp.com"). ACCOUNT is the account identifier ("myorg-myaccount",
 * or a locator with its region "xy12345.us-east-2.aws"): it names the host
 * https://ACCOUNT.snowflakecomputing.com unless endpoint= says otherwise;
 * plain http:// endpoints are accepted only on loopback (test doubles).
 * A password in the URL is refused: Snowflake's SQL API takes none, and
 * the secrets it does take (the private key's passphrase, tokens) come
 * from files and the environment, never from a URL or a command line.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "drivers/snowflake/snowflake.h"

const qreg_driver_option_t qreg__sf_options[] = {
    {.name = "warehouse", .type = QREG_OPTION_TEXT, .doc = "the warehouse statements run on"},
    {.name = "role", .type = QREG_OPTION_TEXT, .doc = "the role statements run as"},
    {.name = "authenticator",
     .type = QREG_OPTION_TEXT,
     .default_value = "jwt",
     .doc = "jwt (key pair, private_key_file), programmatic_access_token or oauth (the token "
            "from token_file or SNOWFLAKE_TOKEN)"},
    {.name = "private_key_file",
     .type = QREG_OPTION_TEXT,
     .doc = "the PEM PKCS#8 private key for jwt (encrypted: passphrase from "
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE)"},
    {.name = "token_file",
     .type = QREG_OPTION_TEXT,
     .doc = "a file holding the token for programmatic_access_token or oauth (else "
            "SNOWFLAKE_TOKEN)"},
    {.name = "endpoint",
     .type = QREG_OPTION_TEXT,
     .doc = "the API's base URL (default https://ACCOUNT.snowflakecomputing.com; http:// only "
            "on loopback)"},
    {.name = "timeout",
     .type = QREG_OPTION_INT,
     .default_value = "0",
     .doc = "seconds after which the server cancels a statement itself (0: the query's timeout "
            "plus a second)"},
    {.name = "query_tag", .type = QREG_OPTION_TEXT, .doc = "QUERY_TAG of every statement"},
    {.name = "request_timeout_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "60000",
     .doc = "an HTTP request that receives nothing this long fails and is retried"},
    {.name = "poll_max_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "1000",
     .doc = "the longest wait between status polls (they start at 25 ms)"},
    {.name = "cancel_wait_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "30000",
     .doc = "how long a cancel waits for the server to report the statement ended"},
    {.name = "max_retries",
     .type = QREG_OPTION_INT,
     .default_value = "8",
     .doc = "retries of a request answered 429, 503, 504 or cut (same requestId)"},
    {.name = NULL},
};

static size_t scheme_length(const char *url) {
  return strncasecmp(url, "snowflake://", 12) == 0 ? 12 : 0;
}

bool qreg__sf_is_loopback_url(const char *url) {
  const char *host;
  if (strncasecmp(url, "http://", 7) == 0)
    host = url + 7;
  else if (strncasecmp(url, "https://", 8) == 0)
    host = url + 8;
  else
    return false;
  size_t len = strcspn(host, ":/?#");
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    return close != NULL && (size_t)(close - host) == 4 && strncmp(host, "[::1]", 5) == 0;
  }
  if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
    return true;
  if (len >= 7 && strncmp(host, "127.", 4) == 0) {
    for (size_t i = 4; i < len; i++) {
      if (!isdigit((unsigned char)host[i]) && host[i] != '.')
        return false;
    }
    return true;
  }
  return false;
}

static int url_error(char **message, int code, const char *text) {
  *message = strdup(text);
  return code;
}

static bool account_valid(const char *s, size_t len) {
  if (len == 0 || len > 255)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return false;
  }
  return s[0] != '.' && s[0] != '-';
}

static char *option_copy(const qreg_driver_settings_t *settings, const char *name) {
  const char *value = qreg_driver_settings_get(settings, name);
  return value != NULL && value[0] != '\0' ? strdup(value) : NULL;
}

static uint64_t option_uint(const qreg_driver_settings_t *settings, const char *name) {
  uint64_t value = 0;
  const char *text = qreg_driver_settings_get(settings, name);
  return text != NULL && qreg_driver_parse_uint(text, &value) ? value : 0;
}

int qreg__sf_parse(const qreg_driver_config_t *config, sf_state_t *state, char **message,
                   char **private_key_file, char **token_file) {
  *message = NULL;
  *private_key_file = *token_file = NULL;
  const char *url = config->url;
  size_t prefix = scheme_length(url);
  if (prefix == 0)
    return url_error(message, QREG_EURL,
                     "snowflake: the URL must read snowflake://USER@ACCOUNT/DATABASE/SCHEMA");
  const char *authority = url + prefix;
  size_t authority_len = strcspn(authority, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < authority_len; i++) {
    if (authority[i] == '@')
      at = authority + i;
  }
  if (at == NULL || at == authority)
    return url_error(message, QREG_EURL,
                     "snowflake: the URL names no user: snowflake://USER@ACCOUNT/...");
  if (memchr(authority, ':', (size_t)(at - authority)) != NULL)
    return url_error(message, QREG_EURL,
                     "snowflake: no password in the URL: use authenticator=jwt with "
                     "private_key_file, or a token from token_file or SNOWFLAKE_TOKEN");
  const char *account = at + 1;
  size_t account_len = (size_t)(authority + authority_len - account);
  if (!account_valid(account, account_len))
    return url_error(message, QREG_EURL,
                     "snowflake: the account identifier must be letters, digits, '-', '_' "
                     "and '.' (myorg-myaccount, or xy12345.us-east-2.aws)");
  state->user = qreg__percent_decode(authority, (size_t)(at - authority));
  state->account = strndup(account, account_len);
  const char *path = authority + authority_len;
  const char *query = NULL;
  if (*path == '/') {
    path++;
    size_t path_len = strcspn(path, "?#");
    const char *slash = memchr(path, '/', path_len);
    size_t db_len = slash ? (size_t)(slash - path) : path_len;
    if (db_len > 0)
      state->database = qreg__percent_decode(path, db_len);
    if (slash != NULL) {
      const char *schema = slash + 1;
      size_t schema_len = path_len - db_len - 1;
      if (memchr(schema, '/', schema_len) != NULL)
        return url_error(message, QREG_EURL,
                         "snowflake: the URL's path is /DATABASE/SCHEMA, nothing more");
      if (schema_len > 0)
        state->schema = qreg__percent_decode(schema, schema_len);
    }
    path += path_len;
  }
  if (*path == '?')
    query = path + 1;
  else if (*path == '#')
    return url_error(message, QREG_EURL, "snowflake: the URL may not have a #fragment");
  if (state->user == NULL || state->account == NULL)
    return url_error(message, QREG_ENOMEM, "out of memory");

  qreg_driver_settings_t settings;
  if (qreg_driver_settings_init(&settings, &qreg_driver_snowflake) != 0)
    return url_error(message, QREG_ENOMEM, "out of memory");
  int rc = qreg_driver_settings_from_query(&settings, query, false, message);
  if (rc == 0)
    rc = qreg_driver_settings_from_config(&settings, config, message);
  if (rc != 0) {
    qreg_driver_settings_free(&settings);
    return rc;
  }
  const char *authenticator = qreg_driver_settings_get(&settings, "authenticator");
  if (strcasecmp(authenticator, "jwt") == 0 || strcasecmp(authenticator, "snowflake_jwt") == 0) {
    state->authenticator = SF_AUTH_JWT;
  } else if (strcasecmp(authenticator, "programmatic_access_token") == 0) {
    state->authenticator = SF_AUTH_PAT;
  } else if (strcasecmp(authenticator, "oauth") == 0) {
    state->authenticator = SF_AUTH_OAUTH;
  } else {
    qreg_driver_settings_free(&settings);
    return url_error(message, QREG_EURL,
                     "snowflake: authenticator must be jwt, programmatic_access_token or oauth");
  }
  state->warehouse = option_copy(&settings, "warehouse");
  state->role = option_copy(&settings, "role");
  state->query_tag = option_copy(&settings, "query_tag");
  *private_key_file = option_copy(&settings, "private_key_file");
  *token_file = option_copy(&settings, "token_file");
  state->timeout_s = option_uint(&settings, "timeout");
  state->request_timeout_ms = option_uint(&settings, "request_timeout_ms");
  state->poll_max_ms = option_uint(&settings, "poll_max_ms");
  state->cancel_wait_ms = option_uint(&settings, "cancel_wait_ms");
  state->max_retries = (unsigned)option_uint(&settings, "max_retries");
  if (state->poll_max_ms < 25)
    state->poll_max_ms = 25;
  char *endpoint = option_copy(&settings, "endpoint");
  qreg_driver_settings_free(&settings);
  if (endpoint != NULL) {
    bool https = strncasecmp(endpoint, "https://", 8) == 0;
    bool http = strncasecmp(endpoint, "http://", 7) == 0;
    if (!https && !(http && qreg__sf_is_loopback_url(endpoint))) {
      free(endpoint);
      return url_error(message, QREG_EURL,
                       "snowflake: endpoint must be an https:// URL (http:// only on a loopback "
                       "address: 127.0.0.1, ::1, localhost)");
    }
    size_t len = strlen(endpoint);
    while (len > 0 && endpoint[len - 1] == '/')
      endpoint[--len] = '\0';
    state->endpoint = endpoint;
  } else {
    char *host = strdup(state->account);
    for (char *p = host; p != NULL && *p != '\0'; p++)
      *p = (char)tolower((unsigned char)*p);
    if (host == NULL || asprintf(&state->endpoint, "https://%s.snowflakecomputing.com", host) < 0)
      state->endpoint = NULL;
    free(host);
  }
  if (asprintf(&state->user_agent, "User-Agent: qreg/%s", QREG_VERSION_STRING) < 0)
    state->user_agent = NULL;
  if (state->endpoint == NULL || state->user_agent == NULL)
    return url_error(message, QREG_ENOMEM, "out of memory");
  return 0;
}

void qreg__sf_state_clear(sf_state_t *state) {
  free(state->account);
  free(state->user);
  free(state->database);
  free(state->schema);
  free(state->warehouse);
  free(state->role);
  free(state->query_tag);
  free(state->endpoint);
  free(state->user_agent);
  if (state->token != NULL) {
    memset(state->token, 0, strlen(state->token));
    free(state->token);
  }
  qreg__sf_jwt_clear(&state->jwt);
  memset(state, 0, sizeof *state);
}

int qreg__sf_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  *state_out = NULL;
  sf_state_t *state = calloc(1, sizeof *state);
  if (state == NULL)
    return url_error(message, QREG_ENOMEM, "out of memory");
  char *key_file = NULL, *token_file = NULL;
  int rc = qreg__sf_parse(config, state, message, &key_file, &token_file);
  if (rc == 0 && state->authenticator == SF_AUTH_JWT) {
    if (key_file == NULL)
      rc = url_error(message, QREG_EINVAL,
                     "snowflake: authenticator=jwt needs private_key_file=PATH (a PEM PKCS#8 "
                     "RSA key whose public key is set on the user)");
    else
      rc = qreg__sf_jwt_init(&state->jwt, state->account, state->user, key_file,
                             getenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"), message);
  } else if (rc == 0) {
    const char *env = getenv("SNOWFLAKE_TOKEN");
    if (token_file != NULL)
      rc = qreg__sf_read_token_file(token_file, &state->token, message);
    else if (env != NULL && env[0] != '\0')
      rc = (state->token = strdup(env)) != NULL ? 0
                                                : url_error(message, QREG_ENOMEM, "out of memory");
    else
      rc = url_error(message, QREG_EINVAL,
                     "snowflake: this authenticator needs a token: token_file=PATH or the "
                     "environment variable SNOWFLAKE_TOKEN");
  }
  free(key_file);
  free(token_file);
  if (rc != 0) {
    qreg__sf_state_clear(state);
    free(state);
    return rc;
  }
  state->loop = config->loop;
  *state_out = state;
  return 0;
}

void qreg__sf_destroy(void *state) {
  if (state == NULL)
    return;
  qreg__sf_state_clear(state);
  free(state);
}

/* --- redaction --------------------------------------------------------- */

/* Whether a query parameter of this name may be shown with its value: one
   of our options, none of which is a secret. */
static bool shown_option(const char *name, size_t len) {
  const qreg_driver_option_t *option = qreg_driver_option_find(&qreg_driver_snowflake, name, len);
  return option != NULL && !option->secret;
}

char *qreg__sf_redact_url(const char *url) {
  qreg__text_t out = {0};
  size_t prefix = scheme_length(url);
  if (prefix == 0) {
    qreg__text_puts(&out, "snowflake://***");
    return out.s;
  }
  qreg__text_put(&out, url, prefix);
  const char *authority = url + prefix;
  size_t authority_len = strcspn(authority, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < authority_len; i++) {
    if (authority[i] == '@')
      at = authority + i;
  }
  if (at != NULL) {
    const char *colon = memchr(authority, ':', (size_t)(at - authority));
    if (colon != NULL) {
      qreg__text_put(&out, authority, (size_t)(colon - authority));
      qreg__text_puts(&out, ":***");
    } else {
      qreg__text_put(&out, authority, (size_t)(at - authority));
    }
    qreg__text_put(&out, at, (size_t)(authority + authority_len - at));
  } else {
    qreg__text_put(&out, authority, authority_len);
  }
  const char *rest = authority + authority_len;
  size_t path_len = strcspn(rest, "?#");
  qreg__text_put(&out, rest, path_len);
  rest += path_len;
  if (*rest == '?') {
    bool first = true;
    for (const char *cursor = rest + 1; cursor != NULL;) {
      qreg_url_param_t param;
      int more = qreg_url_param_next(&cursor, &param);
      if (more <= 0)
        break;
      qreg__text_puts(&out, first ? "?" : "&");
      first = false;
      if (shown_option(param.name, strlen(param.name))) {
        qreg__text_put(&out, param.start, (size_t)(param.end - param.start));
      } else {
        qreg__text_puts(&out, "***");
      }
      qreg_url_param_clear(&param);
    }
  }
  if (out.s == NULL && !out.failed)
    qreg__text_puts(&out, "");
  return out.s;
}
