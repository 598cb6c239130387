/*
 * src/core/result.h - the result store: column metadata and rows of one
 * finished query, compact, with the row and byte caps applied while a driver
 * writes it.
 *
 * Ownership: the core creates a result for each query it starts and hands it
 * to the driver inside the job (driver.h). While the job runs, only the
 * driver writes it, from whichever one thread it works on at the time (a
 * worker for SQLite, the loop for PostgreSQL); the hand-over back to the core
 * happens through qreg_job_complete() on the loop thread. After that the
 * result is frozen: readers (qreg_fetch, snapshots) copy out of it under the
 * registry lock, and the core frees it with the record.
 *
 * Writing protocol for drivers:
 *
 *   qreg_result_set_columns(r, n);                  once, before any row
 *   qreg_result_set_column(r, i, name, type) ...    for i in [0, n)
 *   for each row:
 *     rc = qreg_result_row_begin(r);   QREG_RESULT_FULL: stop reading rows
 *     qreg_result_put_*(r, ...)        exactly n times, in column order
 *     rc = qreg_result_row_end(r);     QREG_RESULT_FULL: row dropped, stop
 *
 * A FULL answer means the row was real but is not stored: the result is
 * marked truncated (with the reason: max_rows, its own byte cap, the
 * registry's budget, or one value too large ever to fit), and the driver
 * should stop reading (and, for a server,
 * cancel and drain the rest). Any QREG_ENOMEM means the job should fail.
 */
#ifndef QREG_CORE_RESULT_H
#define QREG_CORE_RESULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qreg.h"

#define QREG_RESULT_FULL 1

typedef struct qreg_result qreg_result_t;

/*
 * The byte budget the results of one registry share (qreg.h, "Result
 * memory"). Every byte a result holds is charged to `used`, which stays at
 * most `limit`. A result is "running" from qreg_result_new() until
 * qreg_result_settle(): a running result may hold `share` bytes of its own;
 * what it holds beyond is charged to `lent` as well, which stays at most
 * `pool` = limit - slots * share. So when every slot is taken, each running
 * result still finds its share, provided the bytes of settled results can be
 * given back: when `used` would pass `limit`, the writer calls reclaim()
 * (from its own thread, holding no lock) to free settled results; it
 * returns the bytes it freed.
 *
 * A budget with 0 slots has share 0 and lends all of limit: first come,
 * first served (what a result store used alone wants).
 */
typedef struct qreg_budget {
  _Atomic size_t used; /* bytes every result holds (qreg_stats.result_bytes) */
  _Atomic size_t lent; /* bytes running results hold beyond their share */
  size_t limit;
  size_t share;
  size_t pool;
  size_t (*reclaim)(void *arg, size_t need);
  void *reclaim_arg;
} qreg_budget_t;

/* limit > 0; slots: results running at once at most (0: no shares). */
void qreg_budget_init(qreg_budget_t *budget, size_t limit, unsigned slots);

/*
 * Creates an empty, running result that stores at most max_rows rows and
 * max_bytes bytes (its own cap), charging every byte to budget (NULL: no
 * accounting). Returns NULL on ENOMEM.
 */
qreg_result_t *qreg_result_new(uint64_t max_rows, qreg_budget_t *budget, size_t max_bytes);
/* Frees the result and gives its bytes back to the budget. NULL is fine. */
void qreg_result_free(qreg_result_t *result);

/* The writer is done (the job ended): what the result holds beyond its
   share goes back to the pool (it stays charged to `used`). Once only. */
void qreg_result_settle(qreg_result_t *result);

/* Frees the rows of a settled result, keeping its columns, row count and
   truncation; qreg_result_copy_page() then fails with QREG_ENORESULT.
   Returns the bytes given back to the budget. */
size_t qreg_result_evict(qreg_result_t *result);
bool qreg_result_evicted(const qreg_result_t *result);

/* Empties the result (columns, rows, truncation) and gives its bytes back,
   so a driver can start over. */
void qreg_result_reset(qreg_result_t *result);

/* Writing (see the protocol above). Each returns 0, QREG_RESULT_FULL where
   documented, or QREG_ENOMEM / QREG_EINVAL (protocol misuse). */
int qreg_result_set_columns(qreg_result_t *result, size_t count);
int qreg_result_set_column(qreg_result_t *result, size_t index, const char *name,
                           const char *type_name);
/* Sets a column's type name later, rows stored or not (until the job
   completes): for a driver that learns a type's name only after the
   statement ran (PostgreSQL's row types of tables). */
int qreg_result_set_column_type(qreg_result_t *result, size_t index, const char *type_name);
int qreg_result_row_begin(qreg_result_t *result);
int qreg_result_put_null(qreg_result_t *result);
int qreg_result_put_int(qreg_result_t *result, int64_t value);
int qreg_result_put_float(qreg_result_t *result, double value);
int qreg_result_put_bool(qreg_result_t *result, bool value);
/* Text and JSON that are not valid UTF-8 are stored with U+FFFD for each
   byte that does not start a valid sequence: a driver hands over what the
   database gave. */
int qreg_result_put_text(qreg_result_t *result, const char *text, size_t len);
int qreg_result_put_bytes(qreg_result_t *result, const void *bytes, size_t len);
int qreg_result_put_json(qreg_result_t *result, const char *json, size_t len);
int qreg_result_row_end(qreg_result_t *result);

/* Marks the result truncated (for a driver that detects a cut itself),
   unless it already is: the first reason stays. */
void qreg_result_mark_truncated(qreg_result_t *result, qreg_truncation_t reason);

/* Reading (frozen results only). */
size_t qreg_result_column_count(const qreg_result_t *result);
const char *qreg_result_column_name(const qreg_result_t *result, size_t index);
const char *qreg_result_column_type(const qreg_result_t *result, size_t index);
uint64_t qreg_result_row_count(const qreg_result_t *result);
bool qreg_result_truncated(const qreg_result_t *result);
qreg_truncation_t qreg_result_truncated_by(const qreg_result_t *result);
/* Bytes this result holds (what it charged to the budget). */
size_t qreg_result_bytes(const qreg_result_t *result);

/*
 * Copies rows [offset, offset + count) into a new qreg_page_t (one allocation,
 * independent of the result). offset + count must not exceed the row count.
 */
int qreg_result_copy_page(const qreg_result_t *result, uint64_t offset, uint64_t count,
                          qreg_page_t **out);

#endif /* QREG_CORE_RESULT_H */
