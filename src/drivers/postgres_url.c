/*
 * src/drivers/postgres_url.c - what the PostgreSQL driver reads from its URL
 * and its options, and how it keeps passwords out of sight (postgres.h
 * lists the driver's files). Owns the per-registry state's making and
 * freeing (create, destroy).
 *
 * The URL is a libpq connection URI (postgres://, postgresql://, the scheme
 * in any case) or a libpq conninfo string ("host=... dbname=..."). libpq
 * reads it, with everything it knows: host lists, sslmode, service, the PG*
 * environment variables. qreg's options (qreg__pg_options) come on top:
 *
 *  - Options only qreg knows (statement_timeout_backstop,
 *    statement_timeout_margin_ms, connection_check_interval_ms,
 *    allow_privileged_role) may be
 *    written in the URL like libpq's ("?statement_timeout_margin_ms=500", or
 *    "statement_timeout_margin_ms=500" in a conninfo); qreg takes them out
 *    before libpq sees the URL, which would refuse them.
 *  - Options libpq knows too (application_name, connect_timeout, password)
 *    stay in the URL for libpq; qreg reads what libpq parsed.
 *  - The registry's driver_options ("name=value") replace the URL's.
 *  - application_name: the option, else the URL's, else the registry's
 *    application_name ("qreg", "qreg-mcp", ...). At most 63 bytes.
 *
 * Passwords: the URL's (user:pass@ or password=), PGPASSWORD and the
 * password option are scrubbed from what libpq says while connecting or
 * cancelling (built from the conninfo); the server's error text is passed
 * on verbatim, so that masking cannot confirm a guess (docs/security.md).
 * redact_url shows the URL with them (and sslpassword) as "***", also a
 * URL it cannot read.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "drivers/postgres.h"

const qreg_driver_option_t qreg__pg_options[] = {
    {.name = "application_name",
     .type = QREG_OPTION_TEXT,
     .doc = "shown in pg_stat_activity, at most 63 bytes (default: the URL's, else the "
            "registry's application_name, \"qreg\")"},
    {.name = "connect_timeout",
     .type = QREG_OPTION_INT,
     .default_value = "10",
     .doc = "seconds to wait for a connection (0: no limit; at least 2), as libpq reads it"},
    {.name = "password",
     .type = QREG_OPTION_TEXT,
     .doc = "the password, kept out of the URL; replaces the URL's and PGPASSWORD",
     .secret = true},
    {.name = "statement_timeout_backstop",
     .type = QREG_OPTION_BOOL,
     .default_value = "on",
     .doc = "also set statement_timeout on the server, so a query past its timeout stops even "
            "if qreg cannot cancel it"},
    {.name = "statement_timeout_margin_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "1000",
     .doc = "how much later than the query's timeout the server-side backstop fires"},
    {.name = "allow_privileged_role",
     .type = QREG_OPTION_BOOL,
     .default_value = "off",
     .doc = "a read-only registry refuses a role that READ ONLY cannot hold (superuser, "
            "REPLICATION, BYPASSRLS, server files or programs, signalling, dblink; "
            "docs/security.md); on: accept it, and qreg no longer claims read-only"},
    {.name = "connection_check_interval_ms",
     .type = QREG_OPTION_DURATION,
     .default_value = "1000",
     .doc = "PostgreSQL 14+: how often a busy backend checks that qreg is still there "
            "(client_connection_check_interval; 0: the server's setting)"},
    {.name = NULL},
};

/* Options libpq reads itself: they stay in the URL it is given. */
static const char *const libpq_options[] = {"application_name", "connect_timeout", "password"};

/* Whether name[0, len) is one of qreg's options that libpq does not know. */
static bool qreg_only_option(const char *name, size_t len) {
  if (qreg_driver_option_find(&qreg_driver_postgres, name, len) == NULL)
    return false;
  for (size_t i = 0; i < sizeof libpq_options / sizeof libpq_options[0]; i++) {
    if (strlen(libpq_options[i]) == len && strncmp(libpq_options[i], name, len) == 0)
      return false;
  }
  return true;
}

/* Whether a parameter of this name holds a secret. */
static bool secret_name(const char *name, size_t len) {
  if ((len == 8 && strncasecmp(name, "password", 8) == 0) ||
      (len == 11 && strncasecmp(name, "sslpassword", 11) == 0))
    return true;
  const qreg_driver_option_t *option = qreg_driver_option_find(&qreg_driver_postgres, name, len);
  return option != NULL && option->secret;
}

/* ------------------------------------------------------------------------
 * Messages: one line, no password
 * ---------------------------------------------------------------------- */

static bool is_word_char(char c) {
  return isalnum((unsigned char)c) || c == '_';
}

/* Replaces every occurrence of secret in *text with "********". Short
   secrets are replaced only as whole words, so a one-letter password does
   not shred the message. */
static void scrub_secret(char **text, const char *secret) {
  size_t secret_len = secret ? strlen(secret) : 0;
  if (*text == NULL || secret_len == 0)
    return;
  static const char mask[] = "********";
  size_t mask_len = sizeof mask - 1;
  const char *src = *text;
  size_t len = strlen(src);
  size_t cap = len + 1 + (len / secret_len + 1) * mask_len;
  char *out = malloc(cap);
  if (out == NULL)
    return; /* keep the text; scrub() below drops it instead */
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    bool match = strncmp(src + i, secret, secret_len) == 0;
    if (match && secret_len < 4) {
      bool left_ok = i == 0 || !is_word_char(src[i - 1]);
      bool right_ok = i + secret_len >= len || !is_word_char(src[i + secret_len]);
      match = left_ok && right_ok;
    }
    if (match) {
      memcpy(out + n, mask, mask_len);
      n += mask_len;
      i += secret_len;
    } else {
      out[n++] = src[i++]; // NOLINT(clang-analyzer-core.uninitialized.Assign): i < strlen(src)
    }
  }
  out[n] = '\0';
  free(*text);
  *text = out;
}

/* A heap copy of text with the state's secrets removed; NULL for NULL. */
char *qreg__pg_scrubbed_copy(const pg_state_t *state, const char *text) {
  if (text == NULL)
    return NULL;
  char *copy = strdup(text);
  for (size_t i = 0; copy != NULL && i < sizeof state->secrets / sizeof state->secrets[0]; i++) {
    char *before = copy;
    scrub_secret(&copy, state->secrets[i]);
    if (copy == before && state->secrets[i] != NULL && strstr(copy, state->secrets[i]) != NULL) {
      /* Could not scrub (ENOMEM): say nothing rather than leak it. */
      free(copy);
      copy = strdup("(message withheld: it contained the password)");
    }
  }
  return copy;
}

/* Collapses every run of white space in text to one space, in place. */
static void collapse_space(char *text) {
  size_t n = 0;
  bool space = false;
  for (const char *p = text; *p != '\0'; p++) {
    if (isspace((unsigned char)*p)) {
      space = true;
      continue;
    }
    if (space && n > 0)
      text[n++] = ' ';
    space = false;
    text[n++] = *p;
  }
  text[n] = '\0';
}

/* libpq's multi-line messages ("...failed: FATAL:  password authentication
   failed\n\tIs the server running...\n") as one line, verbatim. */
char *qreg__pg_one_line(const char *raw) {
  char *text = strdup(raw != NULL && raw[0] != '\0' ? raw : "unknown error");
  if (text != NULL)
    collapse_space(text);
  return text;
}

/* The same with the state's secrets removed: only for what libpq says
   while connecting or cancelling, which quotes the conninfo (host, user,
   dbname) and never a query's text, so masking there confirms no guess. */
char *qreg__pg_one_line_message(const pg_state_t *state, const char *raw) {
  char *text = qreg__pg_scrubbed_copy(state, raw != NULL && raw[0] != '\0' ? raw : "unknown error");
  if (text != NULL)
    collapse_space(text);
  return text;
}

/* ------------------------------------------------------------------------
 * The two forms of the URL
 * ---------------------------------------------------------------------- */

/* Length of "postgres://" or "postgresql://" (any case) at the start of
   url, or 0. */
static size_t uri_prefix_length(const char *url) {
  if (strncasecmp(url, "postgresql://", 13) == 0)
    return 13;
  if (strncasecmp(url, "postgres://", 11) == 0)
    return 11;
  return 0;
}

/* Where libpq's user information ("user:password") ends in a URI: at the
   first '@' before any '/'; NULL when there is none. rest follows "://". */
static const char *userinfo_end(const char *rest) {
  const char *p = rest + strcspn(rest, "@/");
  return *p == '@' ? p : NULL;
}

/* One "key = value" of a conninfo string, as libpq reads it. */
typedef struct conninfo_entry {
  const char *start, *end; /* the whole entry */
  const char *key;
  size_t key_len;
  const char *value; /* raw: quotes and backslashes as written */
  size_t value_len;
} conninfo_entry_t;

/* Reads the entry at *cursor: 1 (and *cursor past it), 0 at the end, -1 if
   it is malformed (no '=', an unterminated quote). */
static int conninfo_next(const char **cursor, conninfo_entry_t *e) {
  const char *s = *cursor;
  while (isspace((unsigned char)*s))
    s++;
  if (*s == '\0') {
    *cursor = s;
    return 0;
  }
  e->start = e->key = s;
  while (*s != '\0' && *s != '=' && !isspace((unsigned char)*s))
    s++;
  e->key_len = (size_t)(s - e->key);
  while (isspace((unsigned char)*s))
    s++;
  if (*s != '=' || e->key_len == 0)
    return -1;
  s++;
  while (isspace((unsigned char)*s))
    s++;
  e->value = s;
  if (*s == '\'') {
    for (s++;;) {
      if (*s == '\0')
        return -1;
      if (*s == '\\') {
        if (*++s == '\0')
          return -1;
        s++;
        continue;
      }
      if (*s++ == '\'')
        break;
    }
  } else {
    while (*s != '\0' && !isspace((unsigned char)*s)) {
      if (*s == '\\' && s[1] != '\0')
        s++;
      s++;
    }
  }
  e->value_len = (size_t)(s - e->value);
  e->end = *cursor = s;
  return 1;
}

/* The entry's value without quotes and escapes, malloc'd; NULL on ENOMEM. */
static char *conninfo_value(const conninfo_entry_t *e) {
  char *out = malloc(e->value_len + 1);
  if (out == NULL)
    return NULL;
  const char *p = e->value, *end = e->value + e->value_len;
  bool quoted = p < end && *p == '\'';
  if (quoted) {
    p++;
    end--;
  }
  size_t n = 0;
  for (; p < end; p++) {
    if (*p == '\\' && p + 1 < end)
      p++;
    out[n++] = *p;
  }
  out[n] = '\0';
  return out;
}

/* ------------------------------------------------------------------------
 * What goes to libpq, and qreg's own options
 * ---------------------------------------------------------------------- */

/* Takes qreg's own options out of a URI's query into settings; *out is
   the rest for libpq, its scheme in lower case (libpq reads only that). */
static int split_uri(const char *url, qreg__text_t *out, qreg_driver_settings_t *settings,
                     char **message) {
  size_t prefix = uri_prefix_length(url);
  for (size_t i = 0; i < prefix; i++) {
    char c = (char)tolower((unsigned char)url[i]);
    qreg__text_put(out, &c, 1);
  }
  const char *rest = url + prefix;
  const char *user_end = userinfo_end(rest);
  const char *query = strchr(user_end ? user_end : rest, '?');
  if (query == NULL) {
    qreg__text_puts(out, rest);
    return 0;
  }
  qreg__text_put(out, rest, (size_t)(query - rest));
  bool first = true;
  for (const char *cursor = query + 1; cursor != NULL;) {
    qreg_url_param_t param;
    int more = qreg_url_param_next(&cursor, &param);
    if (more <= 0)
      return more == 0 ? 0 : QREG_ENOMEM;
    int rc = 0;
    if (qreg_only_option(param.name, strlen(param.name))) {
      rc = qreg_driver_settings_set(settings, param.name, param.value, message);
    } else {
      qreg__text_puts(out, first ? "?" : "&");
      qreg__text_put(out, param.start, (size_t)(param.end - param.start));
      first = false;
    }
    qreg_url_param_clear(&param);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* The same for a conninfo string. A malformed one goes to libpq as it is,
   to be refused with libpq's own message. */
static int split_conninfo(const char *url, qreg__text_t *out, qreg_driver_settings_t *settings,
                          char **message) {
  qreg__text_t kept = {0};
  conninfo_entry_t e;
  int more;
  for (const char *cursor = url; (more = conninfo_next(&cursor, &e)) == 1;) {
    if (!qreg_only_option(e.key, e.key_len)) {
      qreg__text_put(&kept, e.start, (size_t)(e.end - e.start));
      qreg__text_puts(&kept, " ");
      continue;
    }
    char *name = strndup(e.key, e.key_len), *value = conninfo_value(&e);
    int rc = name && value ? qreg_driver_settings_set(settings, name, value, message) : QREG_ENOMEM;
    free(name);
    free(value);
    if (rc != 0) {
      free(kept.s);
      return rc;
    }
  }
  if (more < 0) {
    free(kept.s);
    qreg__text_puts(out, url);
  } else if (kept.failed) {
    return QREG_ENOMEM;
  } else {
    qreg__text_puts(out, kept.s ? kept.s : "");
    free(kept.s);
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Redaction
 * ---------------------------------------------------------------------- */

/* Puts a URI's host list hosts[0, len) into out, with every port that is
   not digits as "***": "postgresql://app:s3cret/db" (the '@' forgotten)
   reads as host "app", port "s3cret". */
static void put_hosts(qreg__text_t *out, const char *hosts, size_t len) {
  const char *end = hosts + len;
  for (const char *entry = hosts; entry < end;) {
    const char *entry_end = memchr(entry, ',', (size_t)(end - entry));
    if (entry_end == NULL)
      entry_end = end;
    const char *colon = *entry == '[' ? NULL : memchr(entry, ':', (size_t)(entry_end - entry));
    bool digits = true;
    for (const char *p = colon ? colon + 1 : entry_end; p < entry_end; p++)
      digits = digits && isdigit((unsigned char)*p);
    if (digits) {
      qreg__text_put(out, entry, (size_t)(entry_end - entry));
    } else {
      qreg__text_put(out, entry, (size_t)(colon - entry) + 1);
      qreg__text_puts(out, "***");
    }
    if (entry_end < end)
      qreg__text_puts(out, ",");
    entry = entry_end + 1;
  }
}

static char *redact_uri(const char *url) {
  qreg__text_t out = {0};
  size_t prefix = uri_prefix_length(url);
  qreg__text_put(&out, url, prefix);
  const char *rest = url + prefix;
  const char *user_end = userinfo_end(rest);
  const char *last_at = strrchr(rest, '@');
  if (last_at != NULL && last_at != user_end) {
    /* More than one '@', or a '/' before it ("app:pa/ss@host",
       "app:p@ss@host"): libpq reads it otherwise, but the writer may have
       meant a password with those characters. Hide all of it; and when a
       query began before that '@' ("h/db?x=u@h2/d&password=..."), the
       parameters cannot be told apart: hide everything. */
    const char *query = memchr(rest, '?', (size_t)(last_at - rest));
    qreg__text_puts(&out, query != NULL ? "***" : "***@");
    if (query != NULL)
      return out.s;
    rest = last_at + 1;
    user_end = NULL;
  }
  if (user_end != NULL) {
    const char *colon = memchr(rest, ':', (size_t)(user_end - rest));
    char *user = strndup(rest, (size_t)(user_end - rest));
    /* "host?password=x@y": libpq reads a user name; the writer meant a
       password. Hide it all. */
    bool odd = user == NULL || strcasestr(user, "password") != NULL;
    free(user);
    if (odd)
      qreg__text_puts(&out, "***");
    else if (colon != NULL) {
      qreg__text_put(&out, rest, (size_t)(colon - rest) + 1);
      qreg__text_puts(&out, "***");
    } else
      qreg__text_put(&out, rest, (size_t)(user_end - rest));
    qreg__text_puts(&out, "@");
    rest = user_end + 1;
  }
  size_t hosts_len = strcspn(rest, "/?");
  put_hosts(&out, rest, hosts_len);
  rest += hosts_len;
  const char *query = strchr(rest, '?');
  if (query == NULL) {
    qreg__text_puts(&out, rest);
    return out.s;
  }
  qreg__text_put(&out, rest, (size_t)(query - rest) + 1);
  bool first = true;
  for (const char *cursor = query + 1; cursor != NULL;) {
    qreg_url_param_t param;
    int more = qreg_url_param_next(&cursor, &param);
    if (more < 0) {
      free(out.s);
      return NULL;
    }
    if (more == 0)
      break;
    if (!first)
      qreg__text_puts(&out, "&");
    first = false;
    if (secret_name(param.name, strlen(param.name))) {
      const char *eq = memchr(param.start, '=', (size_t)(param.end - param.start));
      qreg__text_put(&out, param.start, (size_t)((eq ? eq : param.end) - param.start));
      qreg__text_puts(&out, "=***");
    } else {
      qreg__text_put(&out, param.start, (size_t)(param.end - param.start));
    }
    qreg_url_param_clear(&param);
  }
  return out.s;
}

static char *redact_conninfo(const char *url) {
  qreg__text_t out = {0};
  conninfo_entry_t e;
  int more;
  for (const char *cursor = url; (more = conninfo_next(&cursor, &e)) == 1;) {
    if (out.len > 0)
      qreg__text_puts(&out, " ");
    bool hide = secret_name(e.key, e.key_len);
    if (!hide) {
      /* A dbname may be a whole URI or conninfo of its own; and "user=
         password=x" gives user the value "password=x" (libpq skips the
         space after '='), which the writer meant as a password. */
      char *value = conninfo_value(&e);
      bool dbname = e.key_len == 6 && strncmp(e.key, "dbname", 6) == 0;
      hide = value == NULL || strchr(value, '=') != NULL || strcasestr(value, "password") != NULL ||
             (dbname && strchr(value, '@') != NULL);
      free(value);
    }
    if (hide) {
      qreg__text_put(&out, e.key, e.key_len);
      qreg__text_puts(&out, "=***");
    } else {
      qreg__text_put(&out, e.start, (size_t)(e.end - e.start));
    }
  }
  if (more < 0) /* cut what cannot be read: it may be a password */
    qreg__text_puts(&out, out.len > 0 ? " ..." : "...");
  if (out.s == NULL && !out.failed)
    return strdup("");
  return out.s;
}

char *qreg__pg_redact_url(const char *url) {
  if (uri_prefix_length(url) == 0)
    return redact_conninfo(url);
  /* A URI's hosts, path and query hold no white space; after some, the
     writer went on in another form ("postgresql://h/db password=..."):
     hide what follows. (A space in the user information is hidden with
     it.) */
  const char *last_at = strrchr(url, '@');
  const char *host = last_at != NULL ? last_at + 1 : url + uri_prefix_length(url);
  size_t uri_len = (size_t)(host - url) + strcspn(host, " \t\n\v\f\r");
  if (url[uri_len] == '\0')
    return redact_uri(url);
  char *head = strndup(url, uri_len);
  char *redacted = head != NULL ? redact_uri(head) : NULL;
  free(head);
  char *out = NULL;
  if (redacted != NULL && asprintf(&out, "%s ***", redacted) < 0)
    out = NULL;
  free(redacted);
  return out;
}

/* ------------------------------------------------------------------------
 * Registry set-up
 * ---------------------------------------------------------------------- */

/* A URL without a scheme of its own is a conninfo when it has '=' (the
   schemes postgres and postgresql are matched by the descriptor). */
bool qreg__pg_matches(const char *url) {
  return strchr(url, '=') != NULL;
}

/* libpq's parse errors quote pieces of the string, which may be the
   password. Quoted pieces that are not a connection keyword (or a single
   character) are hidden - except in "invalid connection option", which
   quotes the unknown keyword. When the string itself holds a '"', the
   quotes of the message no longer pair up: nothing after the first one is
   kept. */
static char *safe_parse_error(const char *raw, const char *url) {
  size_t len = strlen(raw);
  bool cut = strchr(url, '"') != NULL && raw[strcspn(raw, "\"")] != '\0';
  if (cut)
    len = strcspn(raw, "\"");
  char *out = malloc(len * 3 + 64); /* "ab" (4 bytes) becomes "(hidden)" (10); the tail */
  if (out == NULL)
    return NULL;
  bool keep_all = strncmp(raw, "invalid connection option", 25) == 0;
  PQconninfoOption *defaults = keep_all ? NULL : PQconndefaults();
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    if (raw[i] != '"') {
      out[n++] = raw[i];
      if (raw[i++] == '\n')
        out[n - 1] = ' ';
      continue;
    }
    const char *end = memchr(raw + i + 1, '"', len - i - 1);
    if (end == NULL) {
      out[n++] = raw[i++];
      continue;
    }
    size_t piece = (size_t)(end - (raw + i + 1));
    bool keep = keep_all || piece <= 1;
    for (PQconninfoOption *o = defaults; !keep && o != NULL && o->keyword != NULL; o++)
      keep = strlen(o->keyword) == piece && strncmp(o->keyword, raw + i + 1, piece) == 0;
    if (keep) {
      memcpy(out + n, raw + i, piece + 2);
      n += piece + 2;
    } else {
      memcpy(out + n, "\"(hidden)\"", 10);
      n += 10;
    }
    i += piece + 2;
  }
  while (n > 0 && isspace((unsigned char)out[n - 1]))
    n--;
  out[n] = '\0';
  if (cut) {
    static const char rest_hidden[] = " ... (the rest is hidden)";
    memcpy(out + n, rest_hidden, sizeof rest_hidden);
  }
  PQconninfoFree(defaults);
  return out;
}

void qreg__pg_destroy(void *state_arg) {
  pg_state_t *state = state_arg;
  if (state == NULL)
    return;
  for (size_t i = 0; i < state->type_count; i++)
    free(state->types[i].name);
  free(state->types);
  for (size_t i = 0; i < sizeof state->secrets / sizeof state->secrets[0]; i++)
    free(state->secrets[i]);
  free(state->url);
  free(state->application_name);
  free(state->password);
  free(state->session_sql_14);
  free(state->lookup_hosts);
  free(state->lookup_ports);
  free(state);
}

static int create_fail(char **message, int code, const char *text) {
  free(*message);
  *message = strdup(text);
  return code;
}

/* The URL with qreg's options taken out (*libpq_url) and the options
   (URL, then config) in settings. */
static int read_options(const qreg_driver_config_t *config, char **libpq_url,
                        qreg_driver_settings_t *settings, char **message) {
  *libpq_url = NULL;
  if (qreg_driver_settings_init(settings, &qreg_driver_postgres) != 0)
    return create_fail(message, QREG_ENOMEM, "out of memory");
  const char *url = config->url;
  bool uri = uri_prefix_length(url) > 0;
  if (!uri && strncasecmp(url, "postgres", 8) == 0 &&
      (url[8] == ':' || strncasecmp(url + 8, "ql:", 3) == 0))
    return create_fail(message, QREG_EURL,
                       "expected postgres://... or postgresql://... (two slashes after the "
                       "scheme) or a conninfo \"host=... dbname=...\"");
  qreg__text_t out = {0};
  int rc =
      uri ? split_uri(url, &out, settings, message) : split_conninfo(url, &out, settings, message);
  if (rc == 0 && out.failed)
    rc = QREG_ENOMEM;
  if (rc == 0)
    rc = qreg_driver_settings_from_config(settings, config, message);
  if (rc != 0) {
    free(out.s);
    return rc == QREG_ENOMEM ? create_fail(message, rc, "out of memory") : rc;
  }
  *libpq_url = out.s ? out.s : strdup("");
  return *libpq_url ? 0 : create_fail(message, QREG_ENOMEM, "out of memory");
}

/* Seconds as libpq reads connect_timeout: 0 or less is "no limit", and at
   least 2. */
static uint64_t connect_timeout_ms(const char *seconds_text) {
  long seconds = strtol(seconds_text, NULL, 10);
  return seconds <= 0 ? 0 : (uint64_t)(seconds < 2 ? 2 : seconds) * 1000;
}

/* The settings libpq parsed and the options, into state. */
static bool apply_settings(pg_state_t *state, const qreg_driver_config_t *config,
                           PQconninfoOption *parsed, const qreg_driver_settings_t *settings) {
  const char *timeout = getenv("PGCONNECT_TIMEOUT");
  const char *host = getenv("PGHOST"), *hostaddr = getenv("PGHOSTADDR");
  const char *port = getenv("PGPORT");
  const char *url_app = NULL;
  bool ok = true;
  for (PQconninfoOption *o = parsed; o->keyword != NULL; o++) {
    if (o->val == NULL || o->val[0] == '\0')
      continue;
    if (strcmp(o->keyword, "password") == 0)
      ok = ok && (state->secrets[0] = strdup(o->val)) != NULL;
    else if (strcmp(o->keyword, "connect_timeout") == 0)
      timeout = o->val;
    else if (strcmp(o->keyword, "host") == 0)
      host = o->val;
    else if (strcmp(o->keyword, "hostaddr") == 0)
      hostaddr = o->val;
    else if (strcmp(o->keyword, "port") == 0)
      port = o->val;
    else if (strcmp(o->keyword, "application_name") == 0)
      url_app = o->val;
  }
  /* Names libpq would resolve with a blocking getaddrinfo() on the loop are
     resolved on a worker instead (not when hostaddr is given: then libpq
     does not look anything up). A host coming from a service file is the
     one case left to libpq. */
  if (host != NULL && host[0] != '\0' && (hostaddr == NULL || hostaddr[0] == '\0') &&
      qreg__pg_hosts_need_lookup(host)) {
    ok = ok && (state->lookup_hosts = strdup(host)) != NULL;
    if (port != NULL && port[0] != '\0')
      ok = ok && (state->lookup_ports = strdup(port)) != NULL;
  }
  const char *env_password = getenv("PGPASSWORD");
  if (env_password != NULL && env_password[0] != '\0')
    ok = ok && (state->secrets[1] = strdup(env_password)) != NULL;

  if (qreg_driver_settings_given(settings, "connect_timeout"))
    timeout = qreg_driver_settings_get(settings, "connect_timeout");
  state->connect_timeout_ms = PG_DEFAULT_CONNECT_TIMEOUT_MS;
  if (timeout != NULL && timeout[0] != '\0')
    state->connect_timeout_ms = connect_timeout_ms(timeout);

  const char *app = qreg_driver_settings_given(settings, "application_name")
                        ? qreg_driver_settings_get(settings, "application_name")
                    : url_app != NULL ? url_app
                                      : config->application_name;
  ok = ok && (state->application_name = strdup(app ? app : "")) != NULL;
  if (qreg_driver_settings_given(settings, "password")) {
    const char *password = qreg_driver_settings_get(settings, "password");
    ok = ok && (state->password = strdup(password)) != NULL &&
         (state->secrets[2] = strdup(password)) != NULL;
  }
  bool backstop = true;
  uint64_t margin = 0, check = 0;
  (void)qreg_driver_parse_bool(qreg_driver_settings_get(settings, "statement_timeout_backstop"),
                               &backstop);
  (void)qreg_driver_parse_uint(qreg_driver_settings_get(settings, "statement_timeout_margin_ms"),
                               &margin);
  (void)qreg_driver_parse_uint(qreg_driver_settings_get(settings, "connection_check_interval_ms"),
                               &check);
  bool privileged_ok = false;
  (void)qreg_driver_parse_bool(qreg_driver_settings_get(settings, "allow_privileged_role"),
                               &privileged_ok);
  state->check_role = !config->allow_writes && !privileged_ok;
  state->statement_timeout_backstop = backstop;
  state->statement_timeout_margin_ms = margin;
  ok = ok && (state->session_sql_14 = qreg__pg_session_sql_14(check)) != NULL;
  return ok;
}

int qreg__pg_create(const qreg_driver_config_t *config, void **state_out, char **message) {
  *state_out = NULL;
  *message = NULL;
  qreg_driver_settings_t settings;
  char *libpq_url = NULL;
  int rc = read_options(config, &libpq_url, &settings, message);
  if (rc != 0) {
    qreg_driver_settings_free(&settings);
    return rc;
  }
  char *parse_error = NULL;
  PQconninfoOption *parsed = PQconninfoParse(libpq_url, &parse_error);
  if (parsed == NULL) {
    qreg_driver_settings_free(&settings);
    char *safe = parse_error != NULL ? safe_parse_error(parse_error, libpq_url) : NULL;
    free(libpq_url);
    if (parse_error == NULL)
      return create_fail(message, QREG_ENOMEM, "out of memory");
    PQfreemem(parse_error);
    if (safe != NULL && asprintf(message, "invalid connection string: %s", safe) < 0)
      *message = NULL;
    free(safe);
    return QREG_EURL;
  }
  pg_state_t *state = calloc(1, sizeof *state);
  bool ok = state != NULL;
  if (ok) {
    state->loop = config->loop;
    state->url = libpq_url;
    libpq_url = NULL;
    ok = apply_settings(state, config, parsed, &settings);
  }
  PQconninfoFree(parsed);
  qreg_driver_settings_free(&settings);
  free(libpq_url);
  if (!ok) {
    qreg__pg_destroy(state);
    return create_fail(message, QREG_ENOMEM, "out of memory");
  }
  size_t limit = qreg_driver_postgres.limits.application_name_bytes;
  if (strlen(state->application_name) > limit) {
    qreg__pg_destroy(state);
    *message = NULL;
    if (asprintf(message, "application_name: longer than %zu bytes, the server's limit", limit) < 0)
      *message = NULL;
    return QREG_EURL;
  }
  *state_out = state;
  return 0;
}
