/*
 * tests/test-snowflake.c - the Snowflake driver against a stand-in of the
 * SQL API v2 on a loopback port (tests/snowflake-driver/standin.mjs, run
 * with node; the test is skipped, exit 77, when node is missing). Through
 * the public API only: results and their types, partitions streamed and
 * cut at max_rows without fetching the rest, cancel, timeout (ours and the
 * server's) and close of running statements with nothing left running on
 * the server, retries under injected 429/503/resets with nothing run twice,
 * 422 errors with Snowflake's code and SQLSTATE, a malformed answer (a clear
 * error, the statement cancelled), the read-only refusal
 * before anything is sent, authentication refused, token authentication,
 * and HTTP keep-alive across statements.
 *
 * The stand-in counts statements executed, executed twice, running and
 * cancelled (GET /_stats): each test proves "nothing left running, nothing
 * ran twice" from the server's side.
 *
 * Owns, per test group: the stand-in process (stdin is a pipe: closing it
 * ends the process), a key pair in a temporary directory.
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

#define BOUND_MS 30000u

typedef struct standin {
  pid_t pid;
  int stdin_fd;
  int port;
} standin_t;

static char dir[64], key_path[128], pub_path[128], other_key_path[128], token_path[128];
static const char *node;
static const char *script;
static standin_t jwt_server, token_server;

/* --- the stand-in ------------------------------------------------------------ */

static bool standin_start(standin_t *s, const char *const *extra) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0)
    return false;
  const char *argv[32] = {node, script, "--account", "testorg-acct", "--user", "tester"};
  size_t argc = 6;
  for (size_t i = 0; extra[i] != NULL && argc < 30; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
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
  bool ok =
      f != NULL && fgets(line, sizeof line, f) != NULL && sscanf(line, "PORT %d", &s->port) == 1;
  if (f != NULL)
    fclose(f);
  s->pid = pid;
  s->stdin_fd = in[1];
  return ok;
}

static void standin_stop(standin_t *s) {
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

/* GET /_stats, or POST /_faults when body is not NULL. */
static json_t *standin_call(const standin_t *s, const char *path, const char *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
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

static long long stat_of(const standin_t *s, const char *name) {
  json_t *stats = standin_call(s, "/_stats", NULL);
  long long value = json_integer_value(json_object_get(stats, name));
  json_decref(stats);
  return value;
}

static void wait_stat(const standin_t *s, const char *name, long long value) {
  for (unsigned waited = 0; waited < BOUND_MS; waited += 10) {
    if (stat_of(s, name) == value)
      return;
    usleep(10000);
  }
  fail_msg("the stand-in's %s never reached %lld", name, value);
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
  const char *jwt_args[] = {
      "--public-key", pub_path, "--partition-rows", "1000", "--bare-gzip", "1", NULL};
  const char *token_args[] = {"--token", "pat-secret-123", NULL};
  ok = ok && standin_start(&jwt_server, jwt_args) && standin_start(&token_server, token_args);
  return ok ? 0 : -1;
}

static int teardown(void **unused) {
  (void)unused;
  standin_stop(&jwt_server);
  standin_stop(&token_server);
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
           jwt_server.port, key, extra ? extra : "");
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

static void types_and_values(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  qreg_id_t id = run(reg, "SELECT TYPES", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(strlen(s->backend_id), 36); /* the statement handle */
  assert_int_equal(s->column_count, 14);
  assert_string_equal(s->columns[0].name, "DEC");
  assert_string_equal(s->columns[0].type_name, "FIXED");
  assert_string_equal(s->columns[10].type_name, "TIMESTAMP_TZ");
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
  /* What the driver sent: the context of the URL, one statement, the
     backstop timeout. */
  json_t *stats = standin_call(&jwt_server, "/_stats", NULL);
  json_t *body = json_object_get(stats, "lastBody");
  assert_string_equal(json_string_value(json_object_get(body, "database")), "DB");
  assert_string_equal(json_string_value(json_object_get(body, "schema")), "PUBLIC");
  assert_string_equal(json_string_value(json_object_get(json_object_get(body, "parameters"),
                                                        "MULTI_STATEMENT_COUNT")),
                      "1");
  assert_true(json_integer_value(json_object_get(body, "timeout")) > 0);
  json_decref(stats);
  close_registry(reg);
}

static void partitions_and_truncation(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  long long served = stat_of(&jwt_server, "partitionsServed");
  qreg_id_t id = run(reg, "SELECT * FROM TABLE(GENERATOR(ROWCOUNT => 5500))", 0, 100000);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  assert_int_equal(stat_of(&jwt_server, "partitionsServed"), served + 6);
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
    snprintf(want, sizeof want, "\"row %zu\"", row);
    assert_string_equal(out, want);
  }
  qreg_page_free(page);

  /* max_rows 1500: partitions 0 and 1 only, the rest never fetched. */
  served = stat_of(&jwt_server, "partitionsServed");
  id = run(reg, "SELECT * FROM TABLE(GENERATOR(ROWCOUNT => 5500))", 0, 1500);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(s->row_count, 1500);
  assert_true(s->truncated);
  qreg_snapshot_free(s);
  assert_int_equal(stat_of(&jwt_server, "partitionsServed"), served + 2);
  assert_int_equal(stat_of(&jwt_server, "running"), 0);
  close_registry(reg);
}

static void cancel_and_timeout(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 2, NULL);
  long long cancelled = stat_of(&jwt_server, "cancelled");
  qreg_id_t id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_running(reg, &id);
  assert_int_equal(stat_of(&jwt_server, "running"), 1);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  /* Settled only once the server reported the end: nothing runs there. */
  assert_int_equal(stat_of(&jwt_server, "running"), 0);
  assert_int_equal(stat_of(&jwt_server, "cancelled"), cancelled + 1);

  /* Our timeout: the statement is cancelled on the server too. */
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 400, 0);
  assert_int_equal(wait_for(reg, &id), QREG_TIMEOUT);
  wait_stat(&jwt_server, "running", 0);
  assert_int_equal(stat_of(&jwt_server, "cancelled"), cancelled + 2);
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
  long long executed = stat_of(&jwt_server, "executed");
  qreg_id_t ids[4];
  for (int i = 0; i < 4; i++)
    ids[i] = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_running(reg, &ids[0]);
  wait_running(reg, &ids[1]);
  wait_stat(&jwt_server, "running", 2);
  close_registry(reg);
  /* Closed: the two running were cancelled and had ended, the two pending
     never started. */
  assert_int_equal(stat_of(&jwt_server, "running"), 0);
  assert_int_equal(stat_of(&jwt_server, "executed"), executed + 2);
}

static void retries_never_run_twice(void **unused) {
  (void)unused;
  qreg_t *reg = open_registry(key_path, 1, NULL);
  long long executed = stat_of(&jwt_server, "executed");
  json_decref(standin_call(&jwt_server, "/_faults",
                           "[{\"on\":\"submit\",\"kind\":\"429\",\"retryAfter\":0},"
                           "{\"on\":\"submit\",\"kind\":\"503\"},"
                           "{\"on\":\"submit\",\"kind\":\"reset\"},"
                           "{\"on\":\"submit\",\"kind\":\"reset-after\"},"
                           "{\"on\":\"poll\",\"kind\":\"reset\"},"
                           "{\"on\":\"poll\",\"kind\":\"504\"},"
                           "{\"on\":\"partition\",\"kind\":\"503\"},"
                           "{\"on\":\"partition\",\"kind\":\"reset\"}]"));
  qreg_id_t id = run(reg, "SELECT * FROM TABLE(GENERATOR(ROWCOUNT => 2500))", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = snap(reg, &id);
  assert_int_equal(s->row_count, 2500);
  qreg_snapshot_free(s);
  assert_int_equal(stat_of(&jwt_server, "executed"), executed + 1);
  assert_int_equal(stat_of(&jwt_server, "executedTwice"), 0);

  /* A cancel while a submit whose answer was lost waits for its retry: the
     statement is found (same requestId) and cancelled, not left running. */
  json_decref(standin_call(&jwt_server, "/_faults",
                           "[{\"on\":\"submit\",\"kind\":\"reset-after\"},"
                           "{\"on\":\"submit\",\"kind\":\"503\",\"retryAfter\":1}]"));
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  wait_stat(&jwt_server, "running", 1);
  qreg_status_t status;
  assert_int_equal(qreg_cancel(reg, id.str, &status), 0);
  assert_int_equal(status, QREG_CANCELED);
  wait_stat(&jwt_server, "running", 0);
  assert_int_equal(stat_of(&jwt_server, "executedTwice"), 0);
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
  long long cancelled = stat_of(&jwt_server, "cancelled");
  json_decref(standin_call(&jwt_server, "/_faults", "[{\"on\":\"poll\",\"kind\":\"garbage\"}]"));
  id = run(reg, "SELECT SYSTEM$WAIT(60)", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  s = snap(reg, &id);
  assert_non_null(strstr(s->error.message, "malformed"));
  qreg_snapshot_free(s);
  assert_int_equal(stat_of(&jwt_server, "running"), 0);
  assert_int_equal(stat_of(&jwt_server, "cancelled"), cancelled + 1);

  /* Read-only: refused before anything is sent. */
  long long submits = stat_of(&jwt_server, "submits");
  id = run(reg, "DROP TABLE t", 0, 0);
  assert_int_equal(wait_for(reg, &id), QREG_FAILED);
  s = snap(reg, &id);
  assert_string_equal(s->error.code, "QREG_READ_ONLY");
  qreg_snapshot_free(s);
  assert_int_equal(stat_of(&jwt_server, "submits"), submits);
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
           token_server.port, token_path);
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
           token_server.port);
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
  long long connections = stat_of(&jwt_server, "connections");
  for (int i = 0; i < 5; i++) {
    qreg_id_t id = run(reg, "SELECT 1", 0, 0);
    assert_int_equal(wait_for(reg, &id), QREG_SUCCEEDED);
  }
  /* One for the statements; _stats calls above open their own. */
  long long opened = stat_of(&jwt_server, "connections") - connections - 1;
  assert_true(opened <= 1);
  close_registry(reg);
}

int main(void) {
  node = getenv("QREG_NODE");
  if (node == NULL || access(node, X_OK) != 0)
    node = access("/usr/bin/node", X_OK) == 0 ? "/usr/bin/node" : NULL;
  script = getenv("QREG_SF_STANDIN");
  if (node == NULL || script == NULL || access(script, R_OK) != 0) {
    fprintf(stderr, "test-snowflake: node or the stand-in is missing: skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(types_and_values),
      cmocka_unit_test(partitions_and_truncation),
      cmocka_unit_test(cancel_and_timeout),
      cmocka_unit_test(close_stops_everything),
      cmocka_unit_test(retries_never_run_twice),
      cmocka_unit_test(errors),
      cmocka_unit_test(token_auth),
      cmocka_unit_test(keep_alive),
  };
  int failed = cmocka_run_group_tests(tests, setup, teardown);
  curl_global_cleanup();
  return failed;
}
