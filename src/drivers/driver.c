/*
 * src/drivers/driver.c - the table of drivers, how a URL finds its driver,
 * what the core checks of a driver's options, and the small pieces every
 * driver shares (option values, URL query parameters, quoting, the error
 * record they fill).
 *
 * Adding a database: its file exports one qreg_driver_t, and one line of
 * builtin_drivers below names it. Nothing else in src/ changes.
 *
 * Owns the list of drivers registered at run time (tests add theirs); it
 * lives for the process.
 */
#include "drivers/driver.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

/* The drivers qreg is built with, tried in this order. */
static const qreg_driver_t *const builtin_drivers[] = {
    &qreg_driver_sqlite,
    &qreg_driver_postgres,
    &qreg_driver_snowflake,
};
#define BUILTIN_COUNT (sizeof builtin_drivers / sizeof builtin_drivers[0])

static const qreg_driver_t **registered;
static size_t registered_count;

int qreg_driver_register(const qreg_driver_t *driver) {
  if (driver == NULL || driver->name == NULL || driver->url_forms == NULL ||
      (driver->schemes == NULL && driver->matches == NULL) || driver->redact_url == NULL ||
      driver->options == NULL || driver->create == NULL || driver->destroy == NULL ||
      driver->connect == NULL || driver->execute == NULL || driver->cancel == NULL ||
      driver->close == NULL)
    return QREG_EINVAL;
  const qreg_driver_t **grown =
      realloc(registered, (registered_count + 1) * sizeof(const qreg_driver_t *));
  if (grown == NULL)
    return QREG_ENOMEM;
  registered = grown;
  registered[registered_count++] = driver;
  return 0;
}

void qreg_driver_foreach(void (*fn)(const qreg_driver_t *driver, void *arg), void *arg) {
  for (size_t i = registered_count; i-- > 0;)
    fn(registered[i], arg);
  for (size_t i = 0; i < BUILTIN_COUNT; i++)
    fn(builtin_drivers[i], arg);
}

/* The i-th driver in the order they are tried (registered first), or NULL. */
static const qreg_driver_t *driver_at(size_t i) {
  if (i < registered_count)
    return registered[registered_count - 1 - i];
  i -= registered_count;
  return i < BUILTIN_COUNT ? builtin_drivers[i] : NULL;
}

/* Length of the URL's scheme (the text before ':' when it has the form of
   one: a letter, then letters, digits, '+', '-', '.'), or 0 for none. A
   libpq conninfo ("host=x") has none: '=' or a space comes first. */
static size_t scheme_length(const char *url) {
  if (!isalpha((unsigned char)url[0]))
    return 0;
  size_t n = 1;
  while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
    n++;
  return url[n] == ':' ? n : 0;
}

static bool driver_has_scheme(const qreg_driver_t *driver, const char *scheme, size_t len) {
  for (const char *const *s = driver->schemes; s != NULL && *s != NULL; s++) {
    if (strlen(*s) == len && strncasecmp(*s, scheme, len) == 0)
      return true;
  }
  return false;
}

const qreg_driver_t *qreg_driver_find(const char *url) {
  if (url == NULL)
    return NULL;
  size_t scheme_len = scheme_length(url);
  const qreg_driver_t *driver;
  for (size_t i = 0; (driver = driver_at(i)) != NULL; i++) {
    if (scheme_len > 0 ? driver_has_scheme(driver, url, scheme_len)
                       : driver->matches != NULL && driver->matches(url))
      return driver;
  }
  return NULL;
}

/* --- what the core checks ------------------------------------------------ */

/* "a, b, c": the names of the driver's options ("none" when it has none). */
static void add_option_names(qreg__text_t *b, const qreg_driver_t *driver) {
  if (driver->options == NULL || driver->options[0].name == NULL) {
    qreg__text_printf(b, "none");
    return;
  }
  for (const qreg_driver_option_t *o = driver->options; o->name != NULL; o++)
    qreg__text_printf(b, "%s%s", o == driver->options ? "" : ", ", o->name);
}

/* Whether name[0, len) may be quoted in a message: it looks like an option
   name, not like a value pasted in the wrong place (which may be a
   password). */
static bool printable_name(const char *name, size_t len) {
  if (len == 0 || len > 64)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-' && name[i] != '.')
      return false;
  }
  return true;
}

static const char *type_expectation(qreg_driver_option_type_t type) {
  switch (type) {
  case QREG_OPTION_INT:
    return "a non-negative integer";
  case QREG_OPTION_BOOL:
    return "true or false (on/off, yes/no, 1/0)";
  case QREG_OPTION_DURATION:
    return "a duration in milliseconds";
  default:
    return "text";
  }
}

/* Checks one "name=value" entry against the driver's options. */
static int check_option_entry(const qreg_driver_t *driver, const char *prefix, const char *entry,
                              qreg__text_t *message) {
  const char *eq = entry ? strchr(entry, '=') : NULL;
  if (eq == NULL) {
    qreg__text_printf(message, "%s: expected name=value (the %s driver's options: ", prefix,
                      driver->name);
    add_option_names(message, driver);
    qreg__text_printf(message, ")");
    return QREG_EINVAL;
  }
  size_t name_len = (size_t)(eq - entry);
  const qreg_driver_option_t *option = qreg_driver_option_find(driver, entry, name_len);
  if (option == NULL) {
    if (printable_name(entry, name_len))
      qreg__text_printf(message,
                        "%s: \"%.*s\" is not an option of the %s driver (accepted: ", prefix,
                        (int)name_len, entry, driver->name);
    else
      qreg__text_printf(message, "%s: not an option of the %s driver (accepted: ", prefix,
                        driver->name);
    add_option_names(message, driver);
    qreg__text_printf(message, ")");
    return QREG_EINVAL;
  }
  if (!qreg_driver_option_valid(option, eq + 1)) {
    qreg__text_printf(message, "%s: %s: expected %s", prefix, option->name,
                      type_expectation(option->type));
    return QREG_EINVAL;
  }
  return 0;
}

static int resolve_fail(int code, qreg__text_t *b, char **message) {
  *message = b->s; /* NULL after ENOMEM: the core says "out of memory" */
  return b->failed ? QREG_ENOMEM : code;
}

int qreg_driver_resolve(const struct qreg_config *config, const qreg_driver_t **driver_out,
                        char **message) {
  *driver_out = NULL;
  *message = NULL;
  qreg__text_t b = {0};
  const qreg_driver_t *driver = qreg_driver_find(config->db_url);
  if (driver == NULL) {
    /* The URL itself is never repeated: it may hold a password. */
    qreg__text_printf(&b, "db_url: no driver serves this URL; expected ");
    const qreg_driver_t *d;
    for (size_t i = 0; (d = driver_at(i)) != NULL; i++)
      qreg__text_printf(&b, "%s%s (%s)",
                        i == 0                     ? ""
                        : driver_at(i + 1) == NULL ? " or "
                                                   : ", ",
                        d->url_forms, d->name);
    return resolve_fail(QREG_EURL, &b, message);
  }

  size_t option_count = config->driver_options ? config->driver_option_count : 0;
  for (size_t i = 0; i < option_count; i++) {
    char prefix[48];
    snprintf(prefix, sizeof prefix, "driver_options[%zu]", i);
    int rc = check_option_entry(driver, prefix, config->driver_options[i], &b);
    if (rc != 0)
      return resolve_fail(rc, &b, message);
  }

  size_t limit = driver->limits.application_name_bytes;
  if (limit > 0) {
    const char *app = config->application_name;
    for (size_t i = 0; i < option_count; i++) {
      if (strncmp(config->driver_options[i], "application_name=", 17) == 0)
        app = config->driver_options[i] + 17;
    }
    if (app != NULL && strlen(app) > limit) {
      qreg__text_printf(&b, "application_name: longer than %zu bytes, the %s driver's limit", limit,
                        driver->name);
      return resolve_fail(QREG_EINVAL, &b, message);
    }
  }
  *driver_out = driver;
  return 0;
}

/* --- option values -------------------------------------------------------- */

const qreg_driver_option_t *qreg_driver_option_find(const qreg_driver_t *driver, const char *name,
                                                    size_t len) {
  for (const qreg_driver_option_t *o = driver->options; o != NULL && o->name != NULL; o++) {
    if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
      return o;
  }
  return NULL;
}

bool qreg_driver_parse_bool(const char *value, bool *out) {
  static const char *const yes[] = {"true", "on", "yes", "1"};
  static const char *const no[] = {"false", "off", "no", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(value, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(value, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

bool qreg_driver_parse_uint(const char *value, uint64_t *out) {
  uint64_t n = 0;
  if (*value == '\0')
    return false;
  for (const char *p = value; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return false;
    n = n * 10 + (uint64_t)(*p - '0');
    if (n > INT_MAX)
      return false;
  }
  *out = n;
  return true;
}

bool qreg_driver_option_valid(const qreg_driver_option_t *option, const char *value) {
  bool flag;
  uint64_t number;
  switch (option->type) {
  case QREG_OPTION_BOOL:
    return qreg_driver_parse_bool(value, &flag);
  case QREG_OPTION_INT:
  case QREG_OPTION_DURATION:
    return qreg_driver_parse_uint(value, &number);
  default:
    return true;
  }
}

static size_t option_index(const qreg_driver_t *driver, const qreg_driver_option_t *option) {
  return (size_t)(option - driver->options);
}

/* Sets the option's value (replacing an earlier one). 0 or QREG_ENOMEM. */
static int settings_set(qreg_driver_settings_t *settings, const qreg_driver_option_t *option,
                        const char *value, size_t len) {
  char *copy = strndup(value, len);
  if (copy == NULL)
    return QREG_ENOMEM;
  size_t i = option_index(settings->driver, option);
  free(settings->values[i]);
  settings->values[i] = copy;
  return 0;
}

static int settings_fail(int code, char **message, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int settings_fail(int code, char **message, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(message, fmt, ap) < 0)
    *message = NULL;
  va_end(ap);
  return code;
}

int qreg_driver_settings_init(qreg_driver_settings_t *settings, const qreg_driver_t *driver) {
  size_t count = 0;
  while (driver->options && driver->options[count].name)
    count++;
  settings->driver = driver;
  settings->values = calloc(count + 1, sizeof *settings->values);
  return settings->values ? 0 : QREG_ENOMEM;
}

int qreg_driver_settings_set(qreg_driver_settings_t *settings, const char *name, const char *value,
                             char **message) {
  *message = NULL;
  const qreg_driver_option_t *option =
      qreg_driver_option_find(settings->driver, name, strlen(name));
  if (option == NULL)
    return 1;
  if (!qreg_driver_option_valid(option, value))
    return settings_fail(QREG_EURL, message, "URL parameter %s: expected %s", option->name,
                         type_expectation(option->type));
  if (settings_set(settings, option, value, strlen(value)) != 0)
    return settings_fail(QREG_ENOMEM, message, "out of memory");
  return 0;
}

int qreg_driver_settings_from_query(qreg_driver_settings_t *settings, const char *query,
                                    bool unknown_ok, char **message) {
  *message = NULL;
  const qreg_driver_t *driver = settings->driver;
  for (const char *cursor = query; cursor != NULL;) {
    qreg_url_param_t param;
    int more = qreg_url_param_next(&cursor, &param);
    if (more < 0)
      return settings_fail(QREG_ENOMEM, message, "out of memory");
    if (more == 0)
      break;
    int rc = qreg_driver_settings_set(settings, param.name, param.value, message);
    if (rc == 1 && !unknown_ok) {
      qreg__text_t b = {0};
      if (printable_name(param.name, strlen(param.name)))
        qreg__text_printf(&b, "URL parameter \"%s\" is not an option of the %s driver (accepted: ",
                          param.name, driver->name);
      else
        qreg__text_printf(
            &b, "a URL parameter is not an option of the %s driver (accepted: ", driver->name);
      add_option_names(&b, driver);
      qreg__text_printf(&b, ")");
      *message = b.s;
      rc = b.failed ? QREG_ENOMEM : QREG_EURL;
    } else if (rc == 1) {
      rc = 0;
    }
    qreg_url_param_clear(&param);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int qreg_driver_settings_from_config(qreg_driver_settings_t *settings,
                                     const qreg_driver_config_t *config, char **message) {
  *message = NULL;
  for (size_t i = 0; config != NULL && i < config->option_count; i++) {
    const char *entry = config->options[i];
    const char *eq = strchr(entry, '=');
    const qreg_driver_option_t *option =
        eq ? qreg_driver_option_find(settings->driver, entry, (size_t)(eq - entry)) : NULL;
    if (option == NULL || !qreg_driver_option_valid(option, eq + 1))
      return settings_fail(QREG_EINVAL, message,
                           "driver_options[%zu]: not an option of the %s driver", i,
                           settings->driver->name);
    if (settings_set(settings, option, eq + 1, strlen(eq + 1)) != 0)
      return settings_fail(QREG_ENOMEM, message, "out of memory");
  }
  return 0;
}

const char *qreg_driver_settings_get(const qreg_driver_settings_t *settings, const char *name) {
  const qreg_driver_option_t *option =
      qreg_driver_option_find(settings->driver, name, strlen(name));
  if (option == NULL)
    return NULL;
  const char *value =
      settings->values ? settings->values[option_index(settings->driver, option)] : NULL;
  return value ? value : option->default_value;
}

bool qreg_driver_settings_given(const qreg_driver_settings_t *settings, const char *name) {
  const qreg_driver_option_t *option =
      qreg_driver_option_find(settings->driver, name, strlen(name));
  return option != NULL && settings->values != NULL &&
         settings->values[option_index(settings->driver, option)] != NULL;
}

void qreg_driver_settings_free(qreg_driver_settings_t *settings) {
  if (settings->values != NULL) {
    for (size_t i = 0; settings->driver->options[i].name != NULL; i++)
      free(settings->values[i]);
  }
  free(settings->values);
  settings->values = NULL;
}

/* --- URL query parameters ------------------------------------------------ */

int qreg_url_param_next(const char **cursor, qreg_url_param_t *param) {
  memset(param, 0, sizeof *param);
  const char *p = *cursor;
  while (p != NULL && *p == '&')
    p++;
  if (p == NULL || *p == '\0') {
    *cursor = NULL;
    return 0;
  }
  size_t len = strcspn(p, "&");
  const char *eq = memchr(p, '=', len);
  size_t name_len = eq ? (size_t)(eq - p) : len;
  param->start = p;
  param->end = p + len;
  param->name = qreg__percent_decode(p, name_len);
  param->value = eq ? qreg__percent_decode(eq + 1, len - name_len - 1) : strdup("");
  *cursor = p[len] == '&' ? p + len + 1 : p + len;
  if (param->name == NULL || param->value == NULL) {
    qreg_url_param_clear(param);
    return QREG_ENOMEM;
  }
  return 1;
}

void qreg_url_param_clear(qreg_url_param_t *param) {
  free(param->name);
  free(param->value);
  param->name = param->value = NULL;
}

/* --- quoting --------------------------------------------------------------- */

char *qreg_driver_quote(const char *s, const char *prefix, char quote, bool double_backslash) {
  size_t len = strlen(s), plen = strlen(prefix), extra = 0;
  for (size_t i = 0; i < len; i++)
    extra += s[i] == quote || (double_backslash && s[i] == '\\');
  char *out = malloc(plen + len + extra + 3);
  if (out == NULL)
    return NULL;
  memcpy(out, prefix, plen);
  size_t n = plen;
  out[n++] = quote;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == quote || (double_backslash && s[i] == '\\'))
      out[n++] = s[i];
    out[n++] = s[i];
  }
  out[n++] = quote;
  out[n] = '\0';
  return out;
}

char *qreg_driver_quote_double(const char *s) {
  return qreg_driver_quote(s, "", '"', false);
}

/* --- catalog names ------------------------------------------------------ */

static char *quoted(const char *s, char *(*quote)(const char *), bool *failed) {
  if (s == NULL)
    return NULL;
  char *out = quote(s);
  *failed = *failed || out == NULL;
  return out;
}

void qreg_catalog_names_make(qreg_catalog_names_t *n, const qreg_catalog_request_t *r,
                             char *(*literal)(const char *s)) {
  memset(n, 0, sizeof *n);
  n->schema_literal = quoted(r->schema, literal, &n->failed);
  n->schema_ident = quoted(r->schema, qreg_driver_quote_double, &n->failed);
  n->table_literal = quoted(r->table, literal, &n->failed);
  n->table_ident = quoted(r->table, qreg_driver_quote_double, &n->failed);
  n->column_ident = quoted(r->column, qreg_driver_quote_double, &n->failed);
  n->pattern_literal = quoted(r->pattern, literal, &n->failed);
  if (!n->failed && n->table_ident != NULL &&
      asprintf(&n->from, "%s%s%s", n->schema_ident ? n->schema_ident : "",
               n->schema_ident ? "." : "", n->table_ident) < 0) {
    n->from = NULL;
    n->failed = true;
  }
  bool listed = r->columns != NULL && r->column_count > 0;
  size_t count = listed ? r->column_count : r->column != NULL ? 1 : 0;
  if (n->failed || count == 0)
    return;
  n->column_idents = calloc(count, sizeof *n->column_idents);
  n->column_literals = calloc(count, sizeof *n->column_literals);
  n->column_kinds = calloc(count, sizeof *n->column_kinds);
  if (!n->column_idents || !n->column_literals || !n->column_kinds) {
    n->failed = true;
    return;
  }
  n->column_count = count;
  for (size_t i = 0; i < count; i++) {
    const char *name = listed ? r->columns[i] : r->column;
    const char *kind = listed && r->column_kinds ? r->column_kinds[i] : NULL;
    n->column_idents[i] = quoted(name, qreg_driver_quote_double, &n->failed);
    n->column_literals[i] = quoted(name, literal, &n->failed);
    n->column_kinds[i] = kind ? kind : "";
  }
}

char *qreg_catalog_sample_sql(const qreg_catalog_names_t *n, bool all_columns,
                              const char *random_call, unsigned long long limit) {
  char *sql = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&sql, &size);
  if (!out)
    return NULL;
  fputs("SELECT ", out);
  if (all_columns || n->column_count == 0)
    fputs("t.*", out);
  else
    for (size_t i = 0; i < n->column_count; i++)
      fprintf(out, "%st.%s", i ? ", " : "", n->column_idents[i]);
  fprintf(out, " FROM %s AS t", n->from);
  if (random_call)
    fprintf(out, " ORDER BY %s", random_call);
  fprintf(out, " LIMIT %llu", limit);
  if (fclose(out) != 0) {
    free(sql);
    return NULL;
  }
  return sql;
}

void qreg_catalog_names_free(qreg_catalog_names_t *n) {
  free(n->schema_literal);
  free(n->schema_ident);
  free(n->table_literal);
  free(n->table_ident);
  free(n->column_ident);
  free(n->pattern_literal);
  free(n->from);
  for (size_t i = 0; i < n->column_count; i++) {
    free(n->column_idents[i]);
    free(n->column_literals[i]);
  }
  free(n->column_idents);
  free(n->column_literals);
  free(n->column_kinds);
  memset(n, 0, sizeof *n);
}

/* --- the error record drivers fill ---------------------------------------- */

static void replace(char **slot, char *value) {
  free(*slot);
  *slot = value;
}

void qreg_driver_error_set(qreg_driver_error_t *error, const char *type, const char *code,
                           const char *fmt, ...) {
  char *message = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&message, fmt, ap) < 0)
    message = NULL;
  va_end(ap);
  replace(&error->type, type ? strdup(type) : NULL);
  replace(&error->code, code ? strdup(code) : NULL);
  replace(&error->message, message);
}

void qreg_driver_error_set_detail(qreg_driver_error_t *error, const char *detail) {
  replace(&error->detail, detail ? strdup(detail) : NULL);
}

void qreg_driver_error_set_hint(qreg_driver_error_t *error, const char *hint) {
  replace(&error->hint, hint ? strdup(hint) : NULL);
}

void qreg_driver_error_clear(qreg_driver_error_t *error) {
  replace(&error->type, NULL);
  replace(&error->code, NULL);
  replace(&error->message, NULL);
  replace(&error->detail, NULL);
  replace(&error->hint, NULL);
}

/* --- help text ------------------------------------------------------------ */

static const char *option_type_text(qreg_driver_option_type_t type) {
  switch (type) {
  case QREG_OPTION_INT:
    return "N";
  case QREG_OPTION_BOOL:
    return "on|off";
  case QREG_OPTION_DURATION:
    return "MS";
  case QREG_OPTION_TEXT:
    break;
  }
  return "TEXT";
}

static void help_add_driver(const qreg_driver_t *driver, void *arg) {
  FILE *out = arg;
  fprintf(out, "  %s: %s\n", driver->name, driver->url_forms);
  for (const qreg_driver_option_t *o = driver->options; o && o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "%s=%s", o->name, option_type_text(o->type));
    fprintf(out, "      %-26s %s", left, o->doc ? o->doc : "");
    if (o->default_value && !o->secret)
      fprintf(out, " (default %s)", o->default_value);
    fputc('\n', out);
  }
}

static char *help_text;
static pthread_once_t help_once = PTHREAD_ONCE_INIT;

static void help_build(void) {
  size_t size = 0;
  FILE *out = open_memstream(&help_text, &size);
  if (out == NULL)
    return;
  qreg_driver_foreach(help_add_driver, out);
  fputs("  Options go in the URL (?name=value&..., or name=value in a conninfo)\n"
        "  or in the registry's driver_options; passwords never in logs.\n",
        out);
  if (fclose(out) != 0) {
    free(help_text);
    help_text = NULL;
  }
}

const char *qreg_drivers_help(void) {
  pthread_once(&help_once, help_build);
  return help_text ? help_text : "  (out of memory describing the drivers)\n";
}
