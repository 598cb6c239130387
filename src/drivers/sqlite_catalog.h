/*
 * src/drivers/sqlite_catalog.h - the SQLite driver's catalog SQL
 * (sqlite_catalog.c), named by its descriptor in sqlite.c.
 */
#ifndef QREG_DRIVERS_SQLITE_CATALOG_H
#define QREG_DRIVERS_SQLITE_CATALOG_H

#include "qreg.h"

/* The driver.h catalog_sql of SQLite. */
int qreg__sqlite_catalog_sql(const qreg_catalog_request_t *request, char **sql_out, char **message);

#endif /* QREG_DRIVERS_SQLITE_CATALOG_H */
