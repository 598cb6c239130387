/*
 * tests/fuzz/fuzz_mcp_message.c - libFuzzer target for the MCP message
 * handler (src/mcp/protocol.c and the tools and tasks behind it): each input
 * is one message, exactly as one line of standard input would be, handed to
 * mcp_server_handle_message() against a real registry on a small SQLite
 * database. Whatever the bytes, the handler must answer with one valid JSON
 * line (or nothing, for notifications) and never crash, leak or hang.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS] (clang, -fsanitize=fuzzer,
 * address,undefined). Seeds: tests/fuzz/corpus/.
 *
 * Owns, for the whole process: the temporary database directory, the
 * registry and the message handler, set up on the first input and torn down
 * at exit.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp/protocol.h"
#include "qreg.h"

static qreg_t *fuzz_reg;
static mcp_server_t *fuzz_server;
static char fuzz_dir[] = "/tmp/qreg-fuzz-XXXXXX";
static char fuzz_db[sizeof fuzz_dir + 16];
static char fuzz_url[sizeof fuzz_db + 8];

static void die(const char *what) {
  fprintf(stderr, "fuzz_mcp_message: %s: %s\n", what, qreg_last_error());
  abort();
}

/* Creates the database through a writable registry: a table and a view. */
static void make_database(void) {
  if (!mkdtemp(fuzz_dir))
    die("mkdtemp");
  snprintf(fuzz_db, sizeof fuzz_db, "%s/fuzz.db", fuzz_dir);
  snprintf(fuzz_url, sizeof fuzz_url, "sqlite:%s", fuzz_db);
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = fuzz_url;
  config.allow_writes = true;
  qreg_t *writer;
  if (qreg_open(&config, &writer) < 0)
    die("qreg_open (writer)");
  static const char *const setup[] = {
      "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB)",
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200) "
      "INSERT INTO items SELECT x, 'item ' || x, x * 0.5, x'00ff' FROM c",
      "CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10",
  };
  for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
    qreg_options_t options;
    qreg_options_init(&options);
    options.allow_writes = true;
    qreg_id_t id;
    qreg_status_t status;
    if (qreg_execute(writer, setup[i], &options, &id) < 0 ||
        qreg_wait(writer, id.str, UINT64_MAX, &status) < 0 || status != QREG_SUCCEEDED)
      die(setup[i]);
  }
  qreg_close(writer);
  qreg_destroy(writer);
}

static void teardown(void) {
  if (fuzz_reg)
    qreg_close(fuzz_reg);
  mcp_server_free(fuzz_server);
  qreg_destroy(fuzz_reg);
  char path[sizeof fuzz_db + 8];
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s%s", fuzz_db, suffixes[i]);
    unlink(path);
  }
  rmdir(fuzz_dir);
}

static void setup_once(void) {
  make_database();
  qreg_config_t config;
  qreg_config_init(&config);
  config.db_url = fuzz_url;
  /* Small and quick: a slow query found by mutation ends in a second, and
     the record store stays small. */
  config.max_connections = 2;
  config.max_records = 256;
  config.default_timeout_ms = 1000;
  config.default_ttl_ms = 60000;
  if (qreg_open(&config, &fuzz_reg) < 0)
    die("qreg_open");
  mcp_settings_t settings = {
      .max_message_bytes = 1 << 20,
      .max_response_bytes = 64 * 1024,
      .poll_interval_ms = 500,
      .ttl_ms = config.default_ttl_ms,
      .timeout_ms = config.default_timeout_ms,
      .allow_writes = false,
  };
  if (mcp_server_new(fuzz_reg, &settings, &fuzz_server) < 0)
    die("mcp_server_new");
  atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fuzz_server)
    setup_once();
  size_t len = 0;
  char *reply = mcp_server_handle_message(fuzz_server, (const char *)data, size, &len);
  if (reply) {
    /* One line of JSON, newline-terminated, no other newline. */
    if (len == 0 || reply[len - 1] != '\n' || memchr(reply, '\n', len - 1))
      abort();
    json_error_t error;
    json_t *parsed = json_loadb(reply, len - 1, 0, &error);
    if (!json_is_object(parsed) || !json_object_get(parsed, "jsonrpc"))
      abort();
    json_decref(parsed);
    free(reply);
  }
  return 0;
}
