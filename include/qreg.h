/*
 * qreg.h - the public API of qreg, an asynchronous SQL query registry.
 *
 * This is the only header a user includes. A registry (qreg_t) runs SQL in the
 * background against one database: qreg_execute() returns a query id at once,
 * the query runs on the registry's own loop thread and worker threads, and the
 * caller polls (qreg_snapshot), waits (qreg_wait), pages through the result
 * (qreg_fetch), cancels (qreg_cancel) and lists (qreg_list) queries. Finished
 * queries are kept for a time-to-live and then pruned.
 *
 * Conventions (as in libuv):
 *  - Every function returns 0 or a positive count on success and a negative
 *    QREG_E* code on failure. qreg_strerror() names a code; qreg_last_error()
 *    gives the detailed message of the last failure on the calling thread.
 *  - Every function is thread-safe and may be called from any thread,
 *    concurrently with any other, including qreg_close(). Calls that race with
 *    or follow qreg_close() fail with QREG_ECLOSED. Only qreg_destroy() must not
 *    race with anything: it frees the handle itself.
 *  - Nothing is printed and nothing aborts on bad input.
 *  - Objects a function returns through an out-pointer (snapshots, pages,
 *    lists) belong to the caller, are independent of the registry (they stay
 *    valid after the query is pruned or the registry closed) and are freed with
 *    the matching qreg_*_free().
 *
 * The library: libqreg.so.0 (and libqreg.a), found with
 * `pkg-config --cflags --libs qreg`. The shared library exports exactly the
 * functions declared here, nothing else. Versioning:
 *  - qreg_version() / qreg_version_number() give the version of the library
 *    loaded at run time; QREG_VERSION_STRING / QREG_VERSION_HEX the version of
 *    this header, the one a program was compiled against.
 *  - The SONAME (libqreg.so.0) changes only when the ABI breaks: a function
 *    removed or its signature changed, a struct's existing field moved.
 *    Within one SONAME functions are only added, and structs only grow.
 *  - Structs a caller allocates and the library reads or fills (qreg_config_t,
 *    qreg_options_t, qreg_stats_t, qreg_catalog_request_t) start with
 *    struct_size; set it with their *_init() function (QREG_STATS_INIT for
 *    stats) and never by hand. New fields are only appended; the library
 *    touches only the fields within struct_size, so a program compiled
 *    against an older header keeps working with a newer library.
 *  - Structs the library allocates and the caller only reads (snapshots,
 *    pages, lists) may grow at the end too: never copy them by value or
 *    allocate them; use the pointer the library returns. qreg_value_t and
 *    qreg_column_t are read as arrays: their size is fixed within a SONAME.
 */
#ifndef QREG_H
#define QREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function declared here is the library's public interface; the
   library is built with hidden visibility, so these alone are exported. */
#if defined(__GNUC__) && !defined(QREG_STATIC_ONLY)
#pragma GCC visibility push(default)
#endif

#define QREG_VERSION_MAJOR 0
#define QREG_VERSION_MINOR 1
#define QREG_VERSION_PATCH 0
#define QREG_VERSION_STRING "0.1.0"
/* The version as one number: major * 10000 + minor * 100 + patch. */
#define QREG_VERSION_HEX                                                                           \
  (QREG_VERSION_MAJOR * 10000 + QREG_VERSION_MINOR * 100 + QREG_VERSION_PATCH)

/* The version of the library actually loaded, at run time: "0.1.0". Compare
   with QREG_VERSION_STRING, the version a program was compiled against. */
const char *qreg_version(void);
/* The same as a number (QREG_VERSION_HEX of the loaded library). */
unsigned qreg_version_number(void);

/* Error codes. Always negative; 0 is success. */
typedef enum qreg_errno {
  QREG_OK = 0,
  QREG_EINVAL = -1,     /* an argument is invalid (message says which) */
  QREG_ENOMEM = -2,     /* out of memory */
  QREG_ENOTFOUND = -3,  /* no query with that id (never existed, or pruned) */
  QREG_ECLOSED = -4,    /* the registry is closing or closed */
  QREG_EFULL = -5,      /* too many queries: max_records reached, none finished */
  QREG_ETOOBIG = -6,    /* SQL larger than max_sql_bytes */
  QREG_ENOTREADY = -7,  /* the query has not finished: no result yet */
  QREG_ENORESULT = -8,  /* the query finished without a result to fetch */
  QREG_ERANGE = -9,     /* offset past the end of the result */
  QREG_ETIMEDOUT = -10, /* qreg_wait: the wait timed out (the query goes on) */
  QREG_EURL = -11,      /* database URL not understood */
  QREG_EDRIVER = -12,   /* the driver could not be set up */
  QREG_ESYS = -13,      /* an operating system call failed (thread, random) */
} qreg_errno_t;

/* Name of an error code: "invalid argument", "not found", ... Never NULL. */
const char *qreg_strerror(int code);

/*
 * Detailed message of the last failing qreg_* call on this thread, e.g.
 * "sql: contains a NUL byte at offset 12". Thread-local; valid until the next
 * qreg_* call on this thread. Never NULL (empty when there is none).
 */
const char *qreg_last_error(void);

/* Query statuses. pending -> running -> one terminal status; terminal is final. */
typedef enum qreg_status {
  QREG_PENDING = 0, /* accepted, waiting for a connection */
  QREG_RUNNING = 1, /* running on a connection */
  QREG_SUCCEEDED = 2,
  QREG_FAILED = 3,
  QREG_CANCELED = 4,
  QREG_TIMEOUT = 5,
} qreg_status_t;
#define QREG_STATUS_COUNT 6

/* "pending", "running", "succeeded", "failed", "canceled", "timeout". */
const char *qreg_status_name(qreg_status_t status);
/* Parses a status name; returns 0 and sets *out, or QREG_EINVAL. */
int qreg_status_parse(const char *name, qreg_status_t *out);
/* true for succeeded, failed, canceled and timeout. */
bool qreg_status_is_terminal(qreg_status_t status);

/*
 * Structs a caller fills (config, options) or receives (stats) start with
 * struct_size, set by their *_init() function (or QREG_STATS_INIT): the
 * library reads and writes only the fields that fit in it, so a program built
 * against an older, shorter struct keeps working when fields are added at the
 * end. A struct_size of 0 or smaller than the first version is refused with
 * QREG_EINVAL.
 */

/* Registry configuration. Start from qreg_config_init(), then set fields. */
typedef struct qreg_config {
  size_t struct_size; /* sizeof(qreg_config_t), set by qreg_config_init */
  /* "sqlite:PATH", "postgres://...", "postgresql://..." or a libpq conninfo
     ("host=... dbname=..."). Required. Copied by qreg_open(). */
  const char *db_url;
  unsigned max_connections;     /* connections at once (default 8, 1..10000) */
  size_t max_records;           /* records kept at once (default 10000) */
  size_t max_result_bytes;      /* bytes of results held by the registry (256 MiB):
                                   shared fairly, see "Result memory" below */
  size_t max_sql_bytes;         /* longest SQL accepted (default 1 MiB) */
  uint64_t default_timeout_ms;  /* per query, from submission (default 1 h) */
  uint64_t default_ttl_ms;      /* kept this long after the last change (1 h) */
  uint64_t default_max_rows;    /* rows stored per result (default 10000,
                                   at most 4294967295) */
  uint64_t idle_timeout_ms;     /* idle pooled connections closed after (60 s) */
  bool allow_writes;            /* false: every query is read-only */
  const char *application_name; /* shown by the server (PostgreSQL), "qreg" */
  /* Driver options as "name=value" strings, checked against the driver's
     descriptor (unknown names are refused); URL query parameters such as
     "?application_name=x" set the same options. NULL/0: none. Copied. */
  const char *const *driver_options;
  size_t driver_option_count;
} qreg_config_t;

/* Fills *config with the defaults above, struct_size and db_url = NULL. */
void qreg_config_init(qreg_config_t *config);

/*
 * Result memory. The registry's max_result_bytes (B) bounds the bytes every
 * stored result holds together (qreg_stats.result_bytes), and is shared so
 * that one query cannot take it from the others:
 *  - Each query stores at most its own max_result_bytes (qreg_options_t):
 *    by default qreg_default_result_bytes(), a quarter of B (but never less
 *    than the share below); settable per query up to B.
 *  - Half of B is reserved: each of the max_connections queries that can run
 *    at once is guaranteed a share of B / (2 * max_connections) (16 MiB with
 *    the defaults). The other half is lent, first come first served, to
 *    running queries that outgrow their share. So a query that starts always
 *    finds at least its share, however much the others took.
 *  - Finished results stay in memory until their TTL, qreg_forget(), or
 *    eviction: whenever a running query needs bytes that finished results
 *    hold, they are evicted - first those read to their end by qreg_fetch()
 *    (oldest first), then the oldest. An evicted record keeps its status,
 *    row count and columns (snapshot result_evicted); qreg_fetch() then fails
 *    with QREG_ENORESULT. A running query is cut (truncated_by
 *    QREG_TRUNCATED_REGISTRY_BUDGET) only when its own share and what can be
 *    lent to it are used up.
 *  - A result that is cut says why (qreg_truncation_t). A row holding one
 *    value larger than the query may ever store is not stored, nor anything
 *    after it: truncated_by QREG_TRUNCATED_VALUE_TOO_LARGE.
 */

/* Per-query options. Start from qreg_options_init(); 0 means "registry default". */
typedef struct qreg_options {
  size_t struct_size;  /* sizeof(qreg_options_t), set by qreg_options_init */
  uint64_t timeout_ms; /* give up (status timeout) this long after submission */
  uint64_t max_rows;   /* store at most this many rows; more -> truncated
                          (truncated_by QREG_TRUNCATED_MAX_ROWS) */
  uint64_t ttl_ms;     /* keep the record this long after its last change */
  bool allow_writes;   /* ask for a writable query; refused unless the
                          registry has allow_writes */
  /* Added in 0.1 (struct_size tells): */
  size_t max_result_bytes; /* bytes the result may hold, at most the
                              registry's max_result_bytes; 0: the default,
                              qreg_default_result_bytes() */
} qreg_options_t;

void qreg_options_init(qreg_options_t *options);

typedef struct qreg qreg_t;

/* Text form of a query id: a UUIDv4, 36 characters plus NUL. */
#define QREG_ID_LEN 36
typedef struct qreg_id {
  char str[QREG_ID_LEN + 1];
} qreg_id_t;

/* The per-query result byte cap a query gets when its options do not set
   max_result_bytes: max(B / 4, B / (2 * max_connections)) for the
   registry's max_result_bytes B. 0 for a NULL or closed registry. */
size_t qreg_default_result_bytes(qreg_t *reg);

/*
 * Opens a registry: validates the configuration, sets up the driver named by
 * db_url and starts the registry's loop thread. Connections are opened lazily,
 * when queries need them, so a wrong password surfaces as a failed query.
 * On success *out is a handle to pass to qreg_close() and then qreg_destroy().
 */
int qreg_open(const qreg_config_t *config, qreg_t **out);

/*
 * Submits one SQL statement. Validates it (not NULL, not blank, no NUL byte,
 * valid UTF-8, at most max_sql_bytes), creates a pending record, queues it and
 * returns at once with its id in *id_out. options may be NULL (defaults).
 * Fails with QREG_EFULL when max_records records exist and none has finished
 * (otherwise the oldest finished record is evicted to make room).
 */
int qreg_execute(qreg_t *reg, const char *sql, const qreg_options_t *options, qreg_id_t *id_out);

/* The same for SQL of a known length, which may come from a protocol that
   allows NUL bytes inside a string: a NUL inside is refused (QREG_EINVAL). */
int qreg_execute_n(qreg_t *reg, const char *sql, size_t sql_len, const qreg_options_t *options,
                   qreg_id_t *id_out);

/* A result column: its name and the database's name for its type ("" if none). */
typedef struct qreg_column {
  const char *name;
  const char *type_name;
} qreg_column_t;

/* A query's error. All strings are "" when absent, never NULL. */
typedef struct qreg_error {
  const char *type; /* "database", "connection", "canceled", "timeout",
                          "limit", "internal" */
  const char *message;
  const char *code; /* SQLSTATE (PostgreSQL) or driver code (SQLite name) */
  const char *detail;
  const char *hint;
} qreg_error_t;

/* Why a stored result was cut (QREG_TRUNCATED_NONE: it was not). */
typedef enum qreg_truncation {
  QREG_TRUNCATED_NONE = 0,
  QREG_TRUNCATED_MAX_ROWS = 1,         /* max_rows rows were stored */
  QREG_TRUNCATED_MAX_RESULT_BYTES = 2, /* the query's own max_result_bytes */
  QREG_TRUNCATED_REGISTRY_BUDGET = 3,  /* the registry's shared budget: the
                                          query's share and what could be
                                          lent to it were used up */
  QREG_TRUNCATED_VALUE_TOO_LARGE = 4,  /* one value was larger than the
                                          query may ever store: its row and
                                          the rest were not stored */
  QREG_TRUNCATED_DRIVER = 5,           /* the driver cut it itself */
} qreg_truncation_t;
#define QREG_TRUNCATION_COUNT 6

/* "none", "max_rows", "max_result_bytes", "registry_budget",
   "value_too_large", "driver"; "unknown" for any other value. */
const char *qreg_truncation_name(qreg_truncation_t reason);

/* An immutable copy of a record's public state. Times are milliseconds since
   the Unix epoch, 0 when the event has not happened. */
typedef struct qreg_snapshot {
  qreg_id_t id;
  const char *sql;
  qreg_status_t status;
  int64_t created_ms;
  int64_t started_ms;
  int64_t finished_ms;
  int64_t updated_ms;
  int64_t expires_ms; /* when the record will be pruned */
  int64_t elapsed_ms; /* started (or created) to finished (or now) */
  uint64_t row_count; /* rows stored */
  bool truncated;     /* the result was cut: truncated_by says why */
  bool has_error;
  qreg_error_t error;
  size_t column_count;
  const qreg_column_t *columns;
  const char *backend_id; /* the database's own id for the statement, set
                             by the driver when it starts (PostgreSQL backend
                             pid, SQLite connection serial, a Snowflake query
                             id): at most QREG_BACKEND_ID_MAX bytes, "" before */
  /* Added in 0.1 (result memory): */
  qreg_truncation_t truncated_by; /* why the result was cut; NONE when not */
  bool result_evicted;            /* succeeded, but its rows were freed under
                                     memory pressure: qreg_fetch fails */
  uint64_t result_bytes;          /* bytes its stored result holds now */
  uint64_t max_result_bytes;      /* the query's cap on them */
} qreg_snapshot_t;

#define QREG_BACKEND_ID_MAX 64

/* Copies the record's state into a new snapshot (*out), freed by the caller. */
int qreg_snapshot(qreg_t *reg, const char *id, qreg_snapshot_t **out);
void qreg_snapshot_free(qreg_snapshot_t *snapshot);

/* Value types in results. */
typedef enum qreg_type {
  QREG_TYPE_NULL = 0,
  QREG_TYPE_INT = 1,   /* v.i */
  QREG_TYPE_FLOAT = 2, /* v.f */
  QREG_TYPE_BOOL = 3,  /* v.b */
  QREG_TYPE_TEXT = 4,  /* v.s: UTF-8 text (also numeric, dates, uuid, arrays) */
  QREG_TYPE_BYTES = 5, /* v.s: raw bytes */
  QREG_TYPE_JSON = 6,  /* v.s: JSON text */
} qreg_type_t;

typedef struct qreg_value {
  qreg_type_t type;
  union {
    int64_t i;
    double f;
    bool b;
    struct {
      const char *ptr; /* not NUL-terminated for bytes; text is also NUL-terminated */
      size_t len;
    } s;
  } v;
} qreg_value_t;

/*
 * The one encoder of values: every output of qreg (qreg query --json and its
 * table, MCP) writes values through these two, so the same value reads the
 * same everywhere. docs/values.md is the table per type and database.
 *
 * qreg_value_json() writes value as one JSON value on one line:
 *  - NULL: null; booleans: true/false.
 *  - integers: a number within +-(2^53 - 1), the integers every JSON client
 *    holds exactly; beyond, the digits as a string ("9223372036854775807").
 *  - floats: the shortest number that reads back as the same double, always
 *    with a fraction or an exponent ("3.0", "-0.0", "0.1", "5e-324"); NaN
 *    and the infinities as the strings "NaN", "Infinity", "-Infinity".
 *  - text: a string; each byte that is not valid UTF-8 becomes U+FFFD.
 *  - bytes: a string of standard base64 with padding.
 *  - JSON: embedded as the database wrote it (numbers digit for digit,
 *    duplicate keys and escapes kept; white space between tokens dropped),
 *    never re-parsed. Text that cannot be embedded (not valid JSON, invalid
 *    UTF-8, an unpaired surrogate escape "\ud800", nesting deeper than 512,
 *    or a valid document with the key "$unembedded_json" at its top level)
 *    is written as {"$unembedded_json":{"reason":R,"text":T}}: T the text
 *    as a JSON string, R one of "invalid_json", "invalid_utf8",
 *    "unpaired_surrogate", "too_deep", "reserved_key" (docs/values.md).
 * qreg_value_text() writes the same value as plain text, for a table cell:
 * the same as qreg_value_json() but strings without quotes or escapes (text,
 * base64, big integers, NaN), JSON that cannot be embedded as its text
 * without the wrapper, and NULL as "".
 *
 * Both write into buf as snprintf does: at most size bytes, NUL-terminated
 * when size > 0 (buf may be NULL when size is 0), and return the length of
 * the whole encoding without the NUL; a result >= size means the output was
 * cut: call again with a buffer of result + 1 bytes. They never fail.
 */
size_t qreg_value_json(const qreg_value_t *value, char *buf, size_t size);
size_t qreg_value_text(const qreg_value_t *value, char *buf, size_t size);

/* A page of a finished query's result: rows [offset, offset + row_count). */
typedef struct qreg_page {
  size_t column_count;
  const qreg_column_t *columns;
  uint64_t offset;
  uint64_t row_count;             /* rows in this page */
  uint64_t total_rows;            /* rows stored in the whole result */
  bool has_more;                  /* rows after this page */
  bool truncated;                 /* the stored result itself was cut */
  const qreg_value_t *values;     /* row_count * column_count, row-major */
  qreg_truncation_t truncated_by; /* why (added in 0.1) */
} qreg_page_t;

/*
 * Copies up to limit rows starting at offset out of a succeeded query's result.
 * QREG_ENOTREADY while the query is pending or running, QREG_ENORESULT when it
 * ended another way or its result was evicted (snapshot result_evicted),
 * QREG_ERANGE when offset > total_rows (offset == total_rows gives an empty
 * page). limit 0 means "all remaining rows". A page that reaches the last
 * row marks the result as read: it is then evicted before unread ones.
 */
int qreg_fetch(qreg_t *reg, const char *id, uint64_t offset, uint64_t limit, qreg_page_t **out);
void qreg_page_free(qreg_page_t *page);

/* Which records qreg_list returns, and in what order. */
typedef struct qreg_list_filter {
  unsigned status_mask; /* bit (1u << status) per wanted status; 0 = all */
  bool newest_first;    /* default: creation order, oldest first */
  const char *cursor;   /* next_cursor of a previous call, or NULL to start */
  size_t limit;         /* at most this many (0 = 100) */
} qreg_list_filter_t;

typedef struct qreg_list {
  size_t count;
  qreg_snapshot_t **items;
  const char *next_cursor; /* NULL when there is no more */
} qreg_list_t;

/* Lists records in a stable order, with cursor paging. filter may be NULL. */
int qreg_list(qreg_t *reg, const qreg_list_filter_t *filter, qreg_list_t **out);
void qreg_list_free(qreg_list_t *list);

/*
 * Blocks until the query is terminal and its connection released (back in the
 * pool, or closed: never merely closing), or until
 * timeout_ms passes (QREG_ETIMEDOUT; the query goes on). timeout_ms 0 checks
 * without blocking; UINT64_MAX waits for ever. *status_out may be NULL.
 */
int qreg_wait(qreg_t *reg, const char *id, uint64_t timeout_ms, qreg_status_t *status_out);

/*
 * Asynchronous completion: calls cb exactly once when the query settles -
 * terminal and its connection released, as qreg_wait() would return - without
 * any thread waiting for it. Returns 0 when cb will be called; any error
 * (QREG_EINVAL, QREG_ENOTFOUND, QREG_ECLOSED, QREG_ENOMEM) means it never
 * will be.
 *
 * The call: always on the registry's loop thread, never under the registry's
 * lock, never from inside qreg_watch() itself (an already settled query is
 * reported on the loop's next pass). rc is 0 with the terminal status, or
 * QREG_ECLOSED when the registry is closing (the status then is what the
 * query ended with, usually canceled): every watch is called before
 * qreg_close() returns. The id is the query's; the record may be pruned by
 * the time cb reads it, so a snapshot can fail with QREG_ENOTFOUND.
 *
 * What cb may do: any non-blocking call (qreg_snapshot, qreg_fetch,
 * qreg_list, qreg_execute, qreg_watch, qreg_cancel_async, qreg_stats), and
 * hand work to its own threads (uv_async_send, a pipe, a condition). What it
 * must not do: call a function that waits for the loop (qreg_wait with a
 * timeout, qreg_cancel, qreg_prune_expired, qreg_close, qreg_destroy) - from
 * the loop thread those fail with QREG_EINVAL instead of deadlocking - or
 * block for long: every other query's progress waits for it.
 */
typedef void (*qreg_watch_cb)(qreg_t *reg, const qreg_id_t *id, int rc, qreg_status_t status,
                              void *arg);
int qreg_watch(qreg_t *reg, const char *id, qreg_watch_cb cb, void *arg);

/*
 * Asks for the query to be canceled and returns at once, without waiting for
 * it to settle (use qreg_watch() or qreg_wait() for that). The outcome is the
 * same as qreg_cancel()'s; *status_out (may be NULL) is the status now:
 * canceled, or the terminal status it already had.
 */
int qreg_cancel_async(qreg_t *reg, const char *id, qreg_status_t *status_out);

/*
 * Cancels the query: a pending one is dequeued without touching a connection;
 * a running one is stopped in the database. Returns once the record is
 * terminal and its connection released (a stopped query's connection is
 * closed, never pooled), with the terminal status in
 * *status_out (may be NULL). If the query had already finished, nothing
 * changes and its status is returned: exactly one terminal status wins.
 */
int qreg_cancel(qreg_t *reg, const char *id, qreg_status_t *status_out);

/*
 * Forgets a query now: its record and result are freed (qreg_stats
 * result_bytes drops at once) and its id is unknown from then on
 * (QREG_ENOTFOUND). A query that has not finished is canceled first, as
 * qreg_cancel_async() would, and forgotten at once: its result is freed
 * when the database has stopped it. Whoever waits for it meanwhile (a
 * blocked qreg_wait, a qreg_watch) is answered as for a cancel: rc 0,
 * status canceled. QREG_ENOTFOUND for an unknown (or already forgotten) id.
 */
int qreg_forget(qreg_t *reg, const char *id);

/*
 * Removes every record whose TTL has passed; a running one is stopped first
 * and its connection released before this returns. Returns the number
 * removed. A timer on the loop thread does the same at each expiry.
 */
int qreg_prune_expired(qreg_t *reg);

typedef struct qreg_stats {
  size_t struct_size;           /* set by the caller: QREG_STATS_INIT */
  uint64_t connections_opened;  /* ever */
  uint64_t connections_closed;  /* ever */
  uint64_t connect_failures;    /* attempts that never produced a connection */
  unsigned connections_in_use;  /* running a query */
  unsigned connections_idle;    /* in the pool */
  unsigned connections_opening; /* being opened */
  uint64_t records_by_status[QREG_STATUS_COUNT];
  uint64_t records;           /* held now */
  uint64_t records_pruned;    /* ever, by TTL */
  uint64_t records_evicted;   /* ever, by max_records */
  uint64_t result_bytes;      /* held now */
  uint64_t watches;           /* qreg_watch callbacks registered, not yet made */
  uint64_t driver_violations; /* completions a driver reported twice or
                                   unasked (a driver bug; ignored): 0 */
  uint64_t records_forgotten; /* ever, by qreg_forget */
  uint64_t results_evicted;   /* ever: results freed under memory pressure */
} qreg_stats_t;
#define QREG_STATS_INIT                                                                            \
  { .struct_size = sizeof(qreg_stats_t) }

/* Current counters. Also works after qreg_close() (until qreg_destroy()): it
   then gives the final counters, so a caller can check that every connection
   opened was closed. */
int qreg_stats(qreg_t *reg, qreg_stats_t *out);

/*
 * Shuts the registry down: refuses new calls (QREG_ECLOSED), cancels every
 * pending and running query, waits until every driver operation has stopped,
 * closes every connection, stops the loop thread and frees every record and
 * result. When it returns, connections_opened == connections_closed. Blocked
 * qreg_wait/qreg_cancel callers return. The handle stays valid (every call on
 * it but qreg_stats fails with QREG_ECLOSED) until qreg_destroy(). A second
 * call returns QREG_ECLOSED.
 */
int qreg_close(qreg_t *reg);

/* Frees the handle. Closes first if needed. Must not race with any call. */
void qreg_destroy(qreg_t *reg);

/* --- catalog: exploring the database ------------------------------------ */

/* What a catalog request asks for. The driver writes the SQL (each database
   has its own catalog); the query runs through the registry like any other,
   read-only, bounded and cancellable, and its result is fetched as usual. */
typedef enum qreg_catalog_op {
  QREG_CATALOG_SCHEMAS = 0,        /* columns: schema_name */
  QREG_CATALOG_TABLES = 1,         /* schema, name, type ("table"/"view"/...),
                                 comment, row_estimate (NULL when unknown) */
  QREG_CATALOG_DESCRIBE = 2,       /* ordinal, name, type, nullable, default_value,
                                 comment, primary_key, kind: the column's kind
                                 of values, as the driver reads its type -
                                 "number", "text", "boolean", "date" (dates,
                                 times, timestamps) or "other" */
  QREG_CATALOG_SAMPLE = 3,         /* the table's own columns (or `columns`), up
                                      to limit rows; a random sample when
                                      `random` is set */
  QREG_CATALOG_COLUMN_STATS = 4,   /* one row per column (`column`, or each of
                                    `columns`): row_count, null_count,
                                    distinct_count, min_value, max_value (text,
                                    in the type's own order), mean (number
                                    kind), p25, p50, p75 (number kind, text:
                                    the nearest-rank value, as
                                    percentile_disc), true_count, false_count
                                    (boolean kind), top_values (text kind: a
                                    JSON array of up to 5 {"value", "count"},
                                    most frequent first, as text),
                                    column_name. NULL where not computed. */
  QREG_CATALOG_SEARCH_COLUMNS = 5, /* schema, table_name, column_name, type
                                      of columns whose name contains pattern */
  QREG_CATALOG_INDEXES = 6,        /* index_name, columns (", "-separated, in
                                      index order; expressions as written),
                                      is_unique, is_primary */
  QREG_CATALOG_FOREIGN_KEYS = 7,   /* name, columns, referenced_schema,
                                      referenced_table, referenced_columns
                                      (NULL: the referenced primary key) */
} qreg_catalog_op_t;
#define QREG_CATALOG_OP_COUNT 8

/* Column kinds, as DESCRIBE's kind column gives them and COLUMN_STATS's
   column_kinds takes them. */
#define QREG_COLUMN_KIND_NUMBER "number"
#define QREG_COLUMN_KIND_TEXT "text"
#define QREG_COLUMN_KIND_BOOLEAN "boolean"
#define QREG_COLUMN_KIND_DATE "date"
#define QREG_COLUMN_KIND_OTHER "other"

/* Columns one SAMPLE or COLUMN_STATS request may name at most. */
#define QREG_CATALOG_MAX_COLUMNS 200

typedef struct qreg_catalog_request {
  size_t struct_size; /* sizeof(qreg_catalog_request_t): qreg_catalog_init */
  qreg_catalog_op_t op;
  const char *schema;  /* NULL: the default schema, or every schema for
                          SCHEMAS/TABLES/SEARCH_COLUMNS */
  const char *table;   /* DESCRIBE, SAMPLE, COLUMN_STATS, INDEXES, FOREIGN_KEYS */
  const char *column;  /* COLUMN_STATS (or columns) */
  const char *pattern; /* SEARCH_COLUMNS: a plain substring, not a pattern */
  uint64_t limit;      /* SAMPLE and SEARCH_COLUMNS rows (0: 100) */
  /* Added after the first release (struct_size tells). */
  const char *const *columns;      /* SAMPLE: only these columns; COLUMN_STATS:
                                      these instead of column. NULL: none */
  size_t column_count;             /* entries of columns (and column_kinds) */
  const char *const *column_kinds; /* COLUMN_STATS: each column's kind as
                                      DESCRIBE gives it, which says which
                                      statistics apply (NULL, or a NULL
                                      entry: "other") */
  bool random;                     /* SAMPLE: random rows, not the first ones */
} qreg_catalog_request_t;

void qreg_catalog_init(qreg_catalog_request_t *request, qreg_catalog_op_t op);

/* "schemas", "tables", "describe", "sample", "column_stats",
   "search_columns", "indexes", "foreign_keys"; NULL for an unknown op. */
const char *qreg_catalog_op_name(qreg_catalog_op_t op);

/*
 * Submits the catalog query for request, as qreg_execute() would (options
 * may be NULL; allow_writes is refused). Names are passed to the driver,
 * which quotes them as identifiers or binds them as literals: they cannot
 * change the SQL's meaning. QREG_EINVAL for a missing or malformed argument
 * or an op the driver does not offer.
 */
int qreg_catalog(qreg_t *reg, const qreg_catalog_request_t *request, const qreg_options_t *options,
                 qreg_id_t *id_out);

/* Quotes name as an identifier of the registry's database into a new string
   (*out, free() it): "a""b" for PostgreSQL and SQLite. */
int qreg_quote_identifier(qreg_t *reg, const char *name, char **out);

/* The registry's database URL with secrets (passwords) replaced by "***", as
   the driver redacts it, into a new string (*out, free() it). */
int qreg_redacted_url(qreg_t *reg, char **out);

/*
 * Whether the registry promises that no query changes anything outside its
 * own result - no row, file, process, other session, server setting or
 * state seen by the next query - as its driver enforces it
 * (docs/security.md): true when it was opened without allow_writes and the
 * driver's read-only policy is in force. PostgreSQL: false when the option
 * allow_privileged_role=true lets in a role that READ ONLY cannot hold.
 * Front ends claim read-only (MCP's readOnlyHint, their instructions) only
 * when this says true. false for a NULL registry or once qreg_close() has
 * begun (qreg_last_error() then says why).
 */
bool qreg_read_only(qreg_t *reg);

/* The name of the registry's driver: "sqlite", "postgres", ... (a static
   string). NULL for a NULL registry, or once qreg_close() has begun
   (qreg_last_error() then says so, as QREG_ECLOSED would). */
const char *qreg_driver_name(qreg_t *reg);

/* Every database URL form this process accepts and each driver's options,
   as text for a --help ("  sqlite:PATH\n      ?busy_timeout_ms=N ..."), from
   the drivers' descriptors: front ends name no database. Built on the first
   call (which must not race with qreg_driver_register in tests); a static
   string, never NULL. */
const char *qreg_drivers_help(void);

/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds,
   "2026-11-27T19:41:56.123Z", into buf (at least 32 bytes). "" for 0. */
void qreg_format_time(int64_t ms, char *buf, size_t size);

#if defined(__GNUC__) && !defined(QREG_STATIC_ONLY)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* QREG_H */
