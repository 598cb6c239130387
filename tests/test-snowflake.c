/*
 * tests/test-snowflake.c - the Snowflake driver against the project's test
 * double of the SQL API v2 on a loopback port (tests/snowflake/sqlapi-double.mjs,
 * run with node; the test is skipped, exit 77, when node is missing). Through
 * the public API only: results and their types (rowType types in lower case,
 * as Snowflake answers, and in upper case), partitions streamed (some gzip
 * without Content-Encoding, which the driver inflates itself) and cut at
 * max_rows without fetching the rest, cancel, timeout (ours and the
 * server's) and close of running statements with nothing left running on
 * the server, retries under injected 429/503/504/resets with nothing run
 * twice, 422 errors with Snowflake's code and SQLSTATE, a malformed answer
 * (a clear error, the statement cancelled), the read-only refusal before
 * anything is sent, authentication refused, token authentication, and HTTP
 * keep-alive across statements.
 *
 * The double counts statements executed, executed twice, running,
 * cancelled, partitions served and connections (GET /_control/stats): each
 * test proves "nothing left running, nothing ran twice" from the server's
 * side. Faults are queued with POST /_control/faults.
 *
 * Owns, per test group: the double's process (stdin is a pipe and the double
 * runs with --exit-with-stdin: closing it ends the process), a key pair in a
 * temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qreg.h"
#include "support/test_util.h"

#define BOUND_MS 30000u

typedef struct double_server {
  pid_t pid;
  int stdin_fd;
  int port;
} double_server_t;

static char dir[64], key_path[128], pub_path[128], other_key_path[128], token_path[128];
static const char *node;
static const char *script;
static double_server_t server;

/* --- the double ------------------------------------------------------------------ */

/* Rows per partition the double is started with (--partition-rows). */
#define PARTITION_ROWS "1000"

static bool double_start(double_server_t *s) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0)
    return false;
  const char *argv[] = {node,
                        script,
                        "--port",
                        "0",
                        "--account",
                        "testorg-acct",
                        "--user",
                        "tester",
                        "--public-key",
                        pub_path,
                        "--token",
                        "pat-secret-123",
                        "--partition-rows",
                        PARTITION_ROWS,
                        "--bare-gzip",
                        "--exit-with-stdin",
                        NULL};
  pid_t pid = fork();
  if (pid < 0)
    return false;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execv(node, (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  char line[64] = "";
  bool ok = f != NULL && fgets(line, sizeof line, f) != NULL &&
            sscanf(line, "listening %d", &s->port) == 1;
  if (f != NULL)
    fclose(f);
  s->pid = pid;
  s->stdin_fd = in[1];
  return ok;
}

static void double_stop(double_server_t *s) {
  if (s->pid <= 0)
    return;
  close(s->stdin_fd);
  int status;
  for (int i = 0; i < 100; i++) {
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      s->pid = 0;
      return;
    }
    usleep(20000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &status, 0);
  s->pid = 0;
}

static size_t collect(char *data, size_t size, size_t count, void *userp) {
  json_t **out = userp;
  json_decref(*out);
  *out = json_loadb(data, size * count, 0, NULL);
  return size * count;
}

/* GET /_control/<path>, or POST when body is not NULL: its JSON answer. */
static json_t *control(const char *path, const char *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/_control/%s", server.port, path);
  CURL *easy = curl_easy_init();
  json_t *out = NULL;
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
  if (body != NULL)
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
  assert_int_equal(curl_easy_perform(easy), CURLE_OK);
  curl_easy_cleanup(easy);
  assert_non_null(out);
  return out;
}

/* One of the double's counters (stats.<name>); "executedTwice" is the number
   of requestIds it executed more than once. */
static long long stat_of(const char *name) {
  json_t *state = control("stats", NULL);
  json_t *value = strcmp(name, "executedTwice") == 0
                      ? NULL
                      : json_object_get(json_object_get(state, "stats"), name);
  if (value == NULL && strcmp(name, "executedTwice") != 0)
    fail_msg("the double has no counter %s", name);
  long long n = value != NULL ? json_integer_value(value)
                              : (long long)json_array_size(json_object_get(state, "executedTwice"));
  json_decref(state);
  return n;
}

static void wait_stat(const char *name, long long value) {
  for (unsigned waited = 0; waited < BOUND_MS; waited += 10) {
    if (stat_of(name) == value)
      return;
    usleep(10000);
  }
  fail_msg("the double's %s never reached %lld", name, value);
}

static void queue_faults(const char *faults) {
  json_t *answer = control("faults", faults);
  if (json_object_get(answer, "error") != NULL)
    fail_msg("faults refused: %s", json_string_value(json_object_get(answer, "error")));
  json_decref(answer);
}

/* Every queued fault was consumed: each one met the request it names. */
static void assert_faults_spent(void) {
  json_t *answer = control("faults", NULL);
  if (json_array_size(json_object_get(answer, "faults")) != 0) {
    char left[512];
    char *text = json_dumps(answer, JSON_COMPACT);
    snprintf(left, sizeof left, "%s", text != NULL ? text : "?");
    free(text);
    json_decref(answer);
    fail_msg("faults never met: %s", left);
  }
  json_decref(answer);
}

/* --- keys ---------------------------------------------------------------------- */

static bool write_key(const char *path, EVP_PKEY *key) {
  FILE *f = fopen(path, "w");
  bool ok = f != NULL && PEM_write_PKCS8PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  if (f != NULL)
    fclose(f);
  return ok;
}

static int setup(void **unused) {
  (void)unused;
  snprintf(dir, sizeof dir, "/tmp/qreg-sf-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(key_path, sizeof key_path, "%s/rsa_key.p8", dir);
  snprintf(pub_path, sizeof pub_path, "%s/rsa_key.pub", dir);
  snprintf(other_key_path, sizeof other_key_path, "%s/other.p8", dir);
  snprintf(token_path, sizeof token_path, "%s/token", dir);
  EVP_PKEY *key = EVP_RSA_gen(2048), *other = EVP_RSA_gen(2048);
  bool ok =
      key != NULL && other != NULL && write_key(key_path, key) && write_key(other_key_path, other);
  FILE *f = fopen(pub_path, "w");
  ok = ok && f != NULL && PEM_write_PUBKEY(f, key);
  if (f != NULL)
    fclose(f);
  f = fopen(token_path, "w");
  ok = ok && f != NULL && fputs("pat-secret-123\n", f) >= 0;
  if (f != NULL)
    fclose(f);
  EVP_PKEY_free(key);
  EVP_PKEY_free(other);
  ok = ok && double_start(&server);
  return ok ? 0 : -1;
}

static int teardown(void **unused) {
  (void)unused;
  double_stop(&server);
  unlink(key_path);
  unlink(pub_path);
  unlink(other_key_path);
  unlink(token_path);
  rmdir(dir);
  return 0;
}

/* --- registries ------------------------------------------------------------------ */

static qreg_t *open_registry(const char *key, unsigned max_connections, const char *extra) {
  char url[512];
  snprintf(url, sizeof url,
           "snowflake://tester@testorg-acct/DB/PUBLIC?endpoint=http://127.0.0.1:%d&"
           "private_key_file=%s&poll_max_ms=100%s",
           server.port, key, extra ? extra : "");
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  config.max_connections = max_connections;
  qreg_t *reg = NULL;
  if (qreg_open(&config, &reg) != 0)
    fail_msg("qreg_open: %s", qreg_last_error());
  return reg;
}

static void close_registry(qreg_t *reg) {
  assert_int_equal(qreg_close(reg), 0);
  qreg_destroy(reg);
}

static qreg_id_t run(qreg_t *reg, const char *sql, uint64_t timeout_ms, uint64_t max_rows) {
  qreg_options_t options;
  qreg_options_init(&options);
  options.timeout_ms = timeout_ms;
  options.max_rows = max_rows;
  qreg_id_t id;
  if (qreg_execute(reg, sql, &options, &id) != 0)
    fail_msg("qreg_execute: %s", qreg_last_error());
  return id;
}

static qreg_status_t wait_for(qreg_t *reg, const qreg_id_t *id) {
  qreg_status_t status;
  assert_int_equal(qreg_wait(reg, id->str, BOUND_MS, &status), 0);
  return status;
}

static qreg_snapshot_t *snap(qreg_t *reg, const qreg_id_t *id) {
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id->str, &s), 0);
  return s;
}

/* Until the query runs on the server: its backend id (the statement
   handle) is known. */
static void wait_running(qreg_t *reg, const qreg_id_t *id) {
  for (unsigned waited = 0; waited < BOUND_MS; waited += 5) {
    qreg_snapshot_t *s = snap(reg, id);
    bool running = s->status == QREG_RUNNING && s->backend_id[0] != '\0';
    qreg_snapshot_free(s);
    if (running)
      return;
    usleep(5000);
  }
  fail_msg("the query never ran on the server");
}

static void cell_json(const qreg_page_t *page, size_t row, size_t col, char *out, size_t size) {
  qreg_value_json(&page->values[row * page->column_count + col], out, size);
}

/* --- tests --------------------------------------------------------------------------- */

/* One column of each type, as literals and casts the double evaluates. */
static const char *const TYPES_SQL =
    "SELECT 12.50 AS DEC, 42 AS \"INT\", 123456789012345678901234 AS BIG, 1.5::FLOAT AS R, "
    "'h\xc3\xa9llo' AS T, TRUE AS B, '2022-01-08'::DATE AS D, '01:02:03.5'::TIME AS TM, "
    "'2024-07-01 10:00:00.123'::TIMESTAMP_NTZ AS NTZ, '2024-07-01 10:00:00'::TIMESTAMP_LTZ AS LTZ, "
    "'2024-07-01 12:00:00 +02:00'::TIMESTAMP_TZ AS TZ, PARSE_JSON('{\"a\":[1,2]}') AS V, "
    "TO_BINARY('00ff41') AS BIN, NULL AS N";

/* TYPES_SQL run, its columns and values checked. */
static void check_types(qreg_t *reg) {
  qreg_id_t id = run(reg, TYPES_SQL, 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(strlen(s->backend_id), 36); /* the statement handle */
  assert_int_equal(s->column_count, 14);
  assert_string_equal(s->columns[0].name, "DEC");
  assert_string_equal(s->columns[0].type_name, "FIXED");
  assert_string_equal(s->columns[3].type_name, "REAL");
  assert_string_equal(s->columns[10].type_name, "TIMESTAMP_TZ");
  assert_string_equal(s->columns[12].type_name, "BINARY");
  qreg_snapshot_free(s);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 1);
  static const char *const expected[] = {
      "\"12.50\"",
      "42",
      "\"123456789012345678901234\"",
      "1.5",
      "\"h\xc3\xa9llo\"",
      "true",
      "\"2022-01-08\"",
      "\"01:02:03.5\"",
      "\"2024-07-01T10:00:00.123\"",
      "\"2024-07-01T10:00:00Z\"",
      "\"2024-07-01T12:00:00+02:00\"",
      "{\"a\":[1,2]}",
      "\"AP9B\"",
      "null",
  };
  for (size_t i = 0; i < 14; i++) {
    char out[128];
    cell_json(page, 0, i, out, sizeof out);
    if (strcmp(out, expected[i]) != 0)
      fail_msg("column %zu: %s, expected %s", i, out, expected[i]);
  }
  qreg_page_free(page);
}

static const char *config_text(const char *key) {
  static char value[32];
  json_t *config = control("config", NULL);
  snprintf(value, sizeof value, "%s", json_string_value(json_object_get(config, key)));
  json_decref(config);
  return value;
}

static void types_and_values(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  /* rowType types in lower case ("fixed"), as Snowflake answers. */
  assert_string_equal(config_text("typeCase"), "lower");
  check_types(reg);
  /* What the driver sent: the context of the URL, one statement, the
     backstop timeout. */
  json_t *statements = control("statements", NULL);
  json_t *last = json_array_get(json_object_get(statements, "statements"),
                                json_array_size(json_object_get(statements, "statements")) - 1);
  assert_non_null(last);
  assert_string_equal(json_string_value(json_object_get(last, "database")), "DB");
  assert_string_equal(json_string_value(json_object_get(last, "schema")), "PUBLIC");
  json_decref(statements);
  json_t *log = control("log", NULL);
  json_t *requests = json_object_get(log, "requests"), *submit = NULL, *entry;
  size_t i;
  json_array_foreach(requests, i, entry) {
    if (json_is_string(json_object_get(entry, "kind")) &&
        strcmp(json_string_value(json_object_get(entry, "kind")), "submit") == 0)
      submit = entry;
  }
  assert_non_null(submit);
  assert_string_equal(json_string_value(json_object_get(submit, "multiStatementCount")), "1");
  assert_true(json_integer_value(json_object_get(submit, "timeout")) > 0);
  json_decref(log);

  /* And in upper case, as the specification's examples write them. */
  json_decref(control("config", "{\"typeCase\":\"upper\"}"));
  assert_string_equal(config_text("typeCase"), "upper");
  check_types(reg);
  json_decref(control("config", "{\"typeCase\":\"lower\"}"));
  close_registry(reg);
}

static const char *const GENERATOR_SQL =
    "SELECT SEQ4() AS N, 'row' AS S FROM TABLE(GENERATOR(ROWCOUNT => 5500))";

static void partitions_and_truncation(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  long long served = stat_of("partitionsServed");
  /* Partitions 1, 3 and 5 come gzip without Content-Encoding (--bare-gzip). */
  json_t *config = control("config", NULL);
  assert_true(json_is_true(json_object_get(config, "bareGzip")));
  assert_int_equal(json_integer_value(json_object_get(config, "partitionRows")), 1000);
  json_decref(config);
  qreg_id_t id = run(reg, GENERATOR_SQL, 0, 100000);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  assert_int_equal(stat_of("partitionsServed"), served + 6);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), 0);
  assert_int_equal(page->row_count, 5500);
  assert_false(page->truncated);
  char out[64];
  for (size_t row = 0; row < 5500; row += 999) {
    char want[64];
    cell_json(page, row, 0, out, sizeof out);
    snprintf(want, sizeof want, "%zu", row);
    assert_string_equal(out, want);
    cell_json(page, row, 1, out, sizeof out);
    assert_string_equal(out, "\"row\"");
  }
  qreg_page_free(page);

  /* max_rows 1500: partitions 0 and 1 only, the rest never fetched. */
  served = stat_of("partitionsServed");
  id = run(reg, GENERATOR_SQL, 0, 1500);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(s->row_count, 1500);
  assert_true(s->truncated);
  qreg_snapshot_free(s);
  assert_int_equal(stat_of("partitionsServed"), served + 2);
  assert_int_equal(stat_of("running"), 0);
  close_registry(reg);
}

static void cancel_and_timeout(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  long long cancelled = stat_of("cancelled");
  qreg_id_t id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_running(reg, &id);
  assert_int_equal(stat_of("running"), 1);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  /* Settled only once the server reported the end: nothing runs there. */
  assert_int_equal(stat_of("running"), 0);
  assert_int_equal(stat_of("cancelled"), cancelled + 1);

  /* Our timeout: the statement is cancelled on the server too. */
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 400, 0);
  assert_int_equal(wait_for(reg, &id), QREG_TIMEOUT);
  wait_stat("running", 0);
  assert_int_equal(stat_of("cancelled"), cancelled + 2);
  close_registry(reg);

  /* The server's backstop (option timeout=1): 408 -> timeout. */
  reg = open_registry(key_path, 1, "&timeout=1");
  id = run(reg, "SELECT SYSTEM$WAIT(3)", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_TIMEOUT);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_string_equal(s->error.type, "timeout");
  qreg_snapshot_free(s);
  close_registry(reg);
}

static void close_stops_everything(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  long long executed = stat_of("executed");
  qreg_id_t ids[4];
  for (int i = 0; i < 4; i++)
    ids[i] = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_running(reg, &ids[0]);
  wait_running(reg, &ids[1]);
  wait_stat("running", 2);
  close_registry(reg);
  /* Closed: the two running were cancelled and had ended, the two pending
     never started. */
  assert_int_equal(stat_of("running"), 0);
  assert_int_equal(stat_of("executed"), executed + 2);
}

/* Prune of a running statement whose time-to-live passed: cancelled on the
   server and ended there before the record goes; a pending one is pruned
   without ever being sent. */
static void prune_running_and_pending(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 1, NULL);
  long long cancelled = stat_of("cancelled");
  long long executed = stat_of("executed");
  qreg_options_t options;
  qreg_options_init(&options);
  options.ttl_ms = 300;
  qreg_id_t running, pending;
  if (qreg_execute(reg, "SELECT SYSTEM$WAIT(60)", &options, &running) != 0 ||
      qreg_execute(reg, "SELECT SYSTEM$WAIT(60)", &options, &pending) != 0)
    fail_msg("qreg_execute: %s", qreg_last_error());
  wait_running(reg, &running);
  wait_stat("running", 1);
  test_wait_pruned(reg, &running);
  test_wait_pruned(reg, &pending);
  wait_stat("running", 0);
  assert_int_equal(stat_of("cancelled"), cancelled + 1);
  assert_int_equal(stat_of("executed"), executed + 1); /* the pending one never ran */
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.records_pruned, 2);
  close_registry(reg);
  assert_int_equal(stat_of("running"), 0);
}

static void retries_never_run_twice(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 1, NULL);
  long long executed = stat_of("executed");
  queue_faults("[{\"on\":\"submit\",\"action\":429,\"retryAfter\":0},"
               "{\"on\":\"submit\",\"action\":503,\"retryAfter\":0},"
               "{\"on\":\"submit\",\"action\":\"reset\"},"
               "{\"on\":\"submit\",\"action\":\"reset\",\"when\":\"after\"},"
               "{\"on\":\"partition\",\"action\":503,\"retryAfter\":0},"
               "{\"on\":\"partition\",\"action\":\"reset\"}]");
  qreg_id_t id = run(reg, "SELECT SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 2500))", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(s->row_count, 2500);
  qreg_snapshot_free(s);
  assert_int_equal(stat_of("executed"), executed + 1);
  assert_int_equal(stat_of("executedTwice"), 0);
  assert_faults_spent();

  /* Polls of a running statement (the answer to its submit is a 202 at
     once): a reset and a 504 before it is seen to end. */
  queue_faults("[{\"on\":\"status\",\"action\":\"reset\"},"
               "{\"on\":\"status\",\"action\":504}]");
  id = run(reg, "SELECT SYSTEM$WAIT(1)", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  assert_int_equal(stat_of("executed"), executed + 2);
  assert_int_equal(stat_of("executedTwice"), 0);
  assert_faults_spent();

  /* A cancel while a submit whose answer was lost waits for its retry: the
     statement is found (same requestId) and cancelled, not left running. */
  queue_faults("[{\"on\":\"submit\",\"action\":\"reset\",\"when\":\"after\"},"
               "{\"on\":\"submit\",\"action\":503,\"retryAfter\":1}]");
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_stat("running", 1);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  wait_stat("running", 0);
  assert_int_equal(stat_of("executedTwice"), 0);
  close_registry(reg);
}

static void errors(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 1, NULL);
  qreg_id_t id = run(reg, "SELECT * FROM NO_SUCH_TABLE", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_string_equal(s->error.type, "database");
  assert_string_equal(s->error.code, "002003");
  assert_non_null(strstr(s->error.detail, "42S02"));
  assert_non_null(strstr(s->error.message, "does not exist"));
  qreg_snapshot_free(s);

  /* A malformed answer while the statement runs: a clear error, and the
     statement is cancelled, not left running. */
  long long cancelled = stat_of("cancelled");
  queue_faults("{\"on\":\"status\",\"action\":\"malformed\"}");
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  s = snap(reg, &id);
  assert_non_null(strstr(s->error.message, "malformed"));
  qreg_snapshot_free(s);
  assert_int_equal(stat_of("running"), 0);
  assert_int_equal(stat_of("cancelled"), cancelled + 1);

  assert_faults_spent();

  /* Read-only: refused before anything is sent. */
  long long requests = stat_of("requests");
  id = run(reg, "DROP TABLE t", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  s = snap(reg, &id);
  assert_string_equal(s->error.code, "QREG_READ_ONLY");
  qreg_snapshot_free(s);
  assert_int_equal(stat_of("requests"), requests);
  close_registry(reg);

  /* A key the server does not know: a connection error naming the cause,
     never the token. */
  reg = open_registry(other_key_path, 1, NULL);
  id = run(reg, "SELECT 1", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  s = snap(reg, &id);
  assert_string_equal(s->error.type, "connection");
  assert_non_null(strstr(s->error.message, "refused"));
  assert_non_null(strstr(s->error.message, "401"));
  assert_null(strstr(s->error.message, "eyJ"));
  qreg_snapshot_free(s);
  close_registry(reg);
}

static void token_auth(void **unused) {
  (void)unused;
  char url[512];
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = url;
  qreg_t *reg = NULL;
  /* From token_file. */
  snprintf(url, sizeof url,
           "snowflake://tester@testorg-acct?endpoint=http://127.0.0.1:%d&"
           "authenticator=programmatic_access_token&token_file=%s",
           server.port, token_path);
  assert_int_equal(qreg_open(&config, &reg), 0);
  qreg_id_t id = run(reg, "SELECT 1", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  char *shown = NULL;
  assert_int_equal(qreg_redacted_url(reg, &shown), 0);
  assert_null(strstr(shown, "pat-secret"));
  free(shown);
  close_registry(reg);
  /* From SNOWFLAKE_TOKEN; without any token, qreg_open says what is missing. */
  snprintf(url, sizeof url,
           "snowflake://tester@testorg-acct?endpoint=http://127.0.0.1:%d&authenticator=oauth",
           server.port);
  unsetenv("SNOWFLAKE_TOKEN");
  assert_int_not_equal(qreg_open(&config, &reg), 0);
  assert_non_null(strstr(qreg_last_error(), "SNOWFLAKE_TOKEN"));
  setenv("SNOWFLAKE_TOKEN", "pat-secret-123", 1);
  assert_int_equal(qreg_open(&config, &reg), 0);
  id = run(reg, "SELECT 1", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  close_registry(reg);
  setenv("SNOWFLAKE_TOKEN", "wrong", 1);
  assert_int_equal(qreg_open(&config, &reg), 0);
  id = run(reg, "SELECT 1", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_null(strstr(s->error.message, "wrong"));
  qreg_snapshot_free(s);
  close_registry(reg);
  unsetenv("SNOWFLAKE_TOKEN");
}

/* Statements one after another on one connection reuse its HTTP
   connection (keep-alive). */
static void keep_alive(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 1, NULL);
  long long connections = stat_of("connections");
  for (int i = 0; i < 5; i++) {
    qreg_id_t id = run(reg, "SELECT 1", 0, 0);
    assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  }
  /* One for the statements; /_control calls above open their own. */
  long long opened = stat_of("connections") - connections - 1;
  assert_true(opened <= 1);
  close_registry(reg);
}

int main(void) {
  node = getenv("QREG_NODE");
  if (node == NULL || access(node, X_OK) != 0)
    node = access("/usr/bin/node", X_OK) == 0 ? "/usr/bin/node" : NULL;
  script = getenv("QREG_SF_DOUBLE");
  if (node == NULL || script == NULL || access(script, R_OK) != 0) {
    fprintf(stderr, "test-snowflake: node or the SQL API double is missing: skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(types_and_values),
      cmocka_unit_test(partitions_and_truncation),
      cmocka_unit_test(cancel_and_timeout),
      cmocka_unit_test(close_stops_everything),
      cmocka_unit_test(prune_running_and_pending),
      cmocka_unit_test(retries_never_run_twice),
      cmocka_unit_test(errors),
      cmocka_unit_test(token_auth),
      cmocka_unit_test(keep_alive),
  };
  int failed = cmocka_run_group_tests(tests, setup, teardown);
  curl_global_cleanup();
  return failed;
}
