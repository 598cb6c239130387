/*
 * src/core/catalog.c - the public calls that ask the registry's driver about
 * its database: catalog queries (qreg_catalog), identifier quoting, the
 * redacted URL and the driver's name.
 *
 * The core names no database: it checks a catalog request (op, the names it
 * needs, their encoding and the driver's identifier limit), asks the
 * driver's catalog_sql() for read-only SQL and submits that with
 * qreg_execute(), so a catalog query is bounded, cancellable and listed like
 * any other query. Owns nothing beyond each call.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/registry.h"
#include "core/util.h"
#include "drivers/driver.h"

/* The first published qreg_catalog_request_t ends here: a smaller
   struct_size is a caller that did not use qreg_catalog_init(). */
#define REQUEST_SIZE_V1 (offsetof(qreg_catalog_request_t, limit) + sizeof(uint64_t))
/* Rows a SAMPLE or SEARCH_COLUMNS may ask for: the most a result holds. */
#define CATALOG_MAX_LIMIT ((uint64_t)UINT32_MAX)

static const char *const op_names[QREG_CATALOG_OP_COUNT] = {
    "schemas",      "tables",         "describe", "sample",
    "column_stats", "search_columns", "indexes",  "foreign_keys",
};

void qreg_catalog_init(qreg_catalog_request_t *request, qreg_catalog_op_t op) {
  if (request == NULL)
    return;
  memset(request, 0, sizeof *request);
  request->struct_size = sizeof *request;
  request->op = op;
}

const char *qreg_catalog_op_name(qreg_catalog_op_t op) {
  return (unsigned)op < QREG_CATALOG_OP_COUNT ? op_names[op] : NULL;
}

/* Checks one name of the request: present when required, not empty, valid
   UTF-8, within the database's identifier limit (a longer one cannot name
   anything, and a database may silently cut it to another name). */
static int check_name(const qreg_driver_t *driver, const char *what, const char *name,
                      bool required, bool identifier) {
  if (name == NULL)
    return required ? qreg__fail(QREG_EINVAL, "catalog: %s: required for this operation", what) : 0;
  size_t len = strlen(name);
  if (len == 0 && identifier)
    return qreg__fail(QREG_EINVAL, "catalog: %s: empty", what);
  size_t bad = qreg__utf8_invalid_at(name, len);
  if (bad != len)
    return qreg__fail(QREG_EINVAL, "catalog: %s: invalid UTF-8 at offset %zu", what, bad);
  size_t limit = driver->limits.identifier_bytes;
  if (identifier && limit > 0 && len > limit)
    return qreg__fail(QREG_EINVAL, "catalog: %s: longer than %zu bytes, the %s driver's limit",
                      what, limit, driver->name);
  return 0;
}

static int check_request(const qreg_driver_t *driver, const qreg_catalog_request_t *r) {
  if (r->struct_size < REQUEST_SIZE_V1)
    return qreg__fail(QREG_EINVAL, "catalog: struct_size not set (start from qreg_catalog_init)");
  if ((unsigned)r->op >= QREG_CATALOG_OP_COUNT)
    return qreg__fail(QREG_EINVAL, "catalog: op %d is not a catalog operation", (int)r->op);
  qreg_catalog_op_t op = r->op;
  bool needs_table = op == QREG_CATALOG_DESCRIBE || op == QREG_CATALOG_SAMPLE ||
                     op == QREG_CATALOG_COLUMN_STATS || op == QREG_CATALOG_INDEXES ||
                     op == QREG_CATALOG_FOREIGN_KEYS;
  bool has_columns = r->struct_size >= offsetof(qreg_catalog_request_t, random) + sizeof(bool) &&
                     r->columns != NULL && r->column_count > 0;
  int rc;
  if (has_columns) {
    if (op != QREG_CATALOG_SAMPLE && op != QREG_CATALOG_COLUMN_STATS)
      return qreg__fail(QREG_EINVAL, "catalog: columns: only for sample and column_stats");
    if (r->column_count > QREG_CATALOG_MAX_COLUMNS)
      return qreg__fail(QREG_EINVAL, "catalog: columns: more than %d", QREG_CATALOG_MAX_COLUMNS);
    for (size_t i = 0; i < r->column_count; i++) {
      if ((rc = check_name(driver, "columns[]", r->columns[i], true, true)) != 0)
        return rc;
      const char *kind = r->column_kinds ? r->column_kinds[i] : NULL;
      if (kind && strcmp(kind, QREG_COLUMN_KIND_NUMBER) != 0 &&
          strcmp(kind, QREG_COLUMN_KIND_TEXT) != 0 && strcmp(kind, QREG_COLUMN_KIND_BOOLEAN) != 0 &&
          strcmp(kind, QREG_COLUMN_KIND_DATE) != 0 && strcmp(kind, QREG_COLUMN_KIND_OTHER) != 0)
        return qreg__fail(
            QREG_EINVAL, "catalog: column_kinds[%zu]: not number, text, boolean, date or other", i);
    }
  }
  if ((rc = check_name(driver, "schema", r->schema, false, true)) != 0 ||
      (rc = check_name(driver, "table", r->table, needs_table, true)) != 0 ||
      (rc = check_name(driver, "column", r->column, op == QREG_CATALOG_COLUMN_STATS && !has_columns,
                       true)) != 0 ||
      (rc = check_name(driver, "pattern", r->pattern, op == QREG_CATALOG_SEARCH_COLUMNS, false)) !=
          0)
    return rc;
  if (r->limit > CATALOG_MAX_LIMIT)
    return qreg__fail(QREG_EINVAL, "catalog: limit: more than %llu rows",
                      (unsigned long long)CATALOG_MAX_LIMIT);
  return 0;
}

int qreg_catalog(qreg_t *reg, const qreg_catalog_request_t *request, const qreg_options_t *options,
                 qreg_id_t *id_out) {
  const char *url;
  int rc = qreg__registry_db_url(reg, &url); /* ECLOSED before the arguments */
  if (rc != 0)
    return rc;
  if (request == NULL || id_out == NULL)
    return qreg__fail(QREG_EINVAL, "catalog: request and id_out are required");
  id_out->str[0] = '\0';
  if (options != NULL &&
      options->struct_size >= offsetof(qreg_options_t, allow_writes) + sizeof(bool) &&
      options->allow_writes)
    return qreg__fail(QREG_EINVAL, "allow_writes: catalog queries are read-only");
  const qreg_driver_t *driver = qreg__registry_driver(reg, NULL);
  if ((rc = check_request(driver, request)) != 0)
    return rc;
  if (driver->catalog_sql == NULL)
    return qreg__fail(QREG_EINVAL, "catalog: the %s driver has no catalog", driver->name);

  /* A copy the size of ours: fields a shorter (older) struct lacks are 0. */
  qreg_catalog_request_t full;
  qreg_catalog_init(&full, request->op);
  memcpy(&full, request, request->struct_size < sizeof full ? request->struct_size : sizeof full);
  full.struct_size = sizeof full;

  char *sql = NULL, *message = NULL;
  rc = driver->catalog_sql(&full, &sql, &message);
  if (rc != 0 || sql == NULL) {
    rc = rc < 0 ? rc : QREG_ENOMEM;
    qreg__fail(rc, "catalog %s: %s", op_names[full.op], message ? message : "out of memory");
    free(message);
    free(sql);
    return rc;
  }
  free(message);
  rc = qreg_execute(reg, sql, options, id_out);
  free(sql);
  return rc;
}

int qreg_quote_identifier(qreg_t *reg, const char *name, char **out) {
  const char *url;
  int rc = qreg__registry_db_url(reg, &url);
  if (rc != 0)
    return rc;
  if (name == NULL || out == NULL)
    return qreg__fail(QREG_EINVAL, "quote_identifier: name and out are required");
  *out = NULL;
  const qreg_driver_t *driver = qreg__registry_driver(reg, NULL);
  if ((rc = check_name(driver, "name", name, true, true)) != 0)
    return rc;
  if (driver->quote_identifier == NULL)
    return qreg__fail(QREG_EINVAL, "quote_identifier: the %s driver has no identifiers",
                      driver->name);
  if ((*out = driver->quote_identifier(name)) == NULL)
    return qreg__fail(QREG_ENOMEM, "out of memory");
  return 0;
}

int qreg_redacted_url(qreg_t *reg, char **out) {
  const char *url;
  int rc = qreg__registry_db_url(reg, &url);
  if (rc != 0)
    return rc;
  if (out == NULL)
    return qreg__fail(QREG_EINVAL, "redacted_url: out is required");
  if ((*out = qreg__registry_driver(reg, NULL)->redact_url(url)) == NULL)
    return qreg__fail(QREG_ENOMEM, "out of memory");
  return 0;
}

bool qreg_read_only(qreg_t *reg) {
  const char *url;
  if (qreg__registry_db_url(reg, &url) != 0)
    return false;
  return qreg__registry_read_only(reg);
}

const char *qreg_driver_name(qreg_t *reg) {
  const char *url;
  if (qreg__registry_db_url(reg, &url) != 0)
    return NULL;
  return qreg__registry_driver(reg, NULL)->name;
}
