/*
 * tests/test-mcp-config.c - the config file of `qreg mcp --config`
 * (src/mcp/config.c): a file of several sources is read with every setting
 * in place; each mistake is refused with the file, the line and the key in
 * the message; secrets only by reference (password_env, password_file), a
 * password file others can read refused, and a file that refers to secrets
 * refused when others can read it.
 *
 * Owns a temporary directory with the files it writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcp/config.h"

static char temp_dir[256];
static char path[320];

static bool known_tool(const char *name) {
  return strcmp(name, "sample_table_data") == 0 || strcmp(name, "list_tables") == 0;
}

/* Writes text to the config file with the given mode. */
static void write_file(const char *file, const char *text, mode_t mode) {
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(file, mode), 0);
}

static int setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(temp_dir, sizeof temp_dir, "%s/qreg-test-config-XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(temp_dir) == NULL)
    return -1;
  snprintf(path, sizeof path, "%s/qreg.yaml", temp_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char file[400];
  snprintf(file, sizeof file, "%s/secret", temp_dir);
  unlink(file);
  unlink(path);
  return rmdir(temp_dir);
}

static void a_full_file(void **state) {
  (void)state;
  setenv("QREG_TEST_CONFIG_PW", "s3cret-from-env", 1);
  write_file(path,
             "# two sources\n"
             "defaults:\n"
             "  timeout: 30\n"
             "  max_connections: 3\n"
             "tools:\n"
             "  disabled: [sample_table_data]\n"
             "wait: 0.5\n"
             "sources:\n"
             "  shop:\n"
             "    url: sqlite:/tmp/shop.db\n"
             "    description: orders\n"
             "    read_only: true\n"
             "  wh:\n"
             "    url: postgresql://reader@db/wh\n"
             "    password_env: QREG_TEST_CONFIG_PW\n"
             "    timeout: 600\n"
             "    allow_writes: true\n"
             "    options: {connect_timeout: 5}\n"
             "    tools:\n"
             "      disabled: [list_tables, sample_table_data]\n",
             0600);
  mcp_config_t config;
  char error[512] = "";
  if (mcp_config_load(path, known_tool, &config, error, sizeof error) != 0)
    fail_msg("%s", error);
  assert_int_equal(config.source_count, 2);
  assert_int_equal(config.defaults.timeout_ms, 30000);
  assert_int_equal(config.defaults.max_connections, 3);
  assert_string_equal(config.defaults.disabled_tools, "sample_table_data");
  assert_true(config.wait_set);
  assert_int_equal(config.wait_ms, 500);
  assert_string_equal(config.sources[0].name, "shop");
  assert_string_equal(config.sources[0].description, "orders");
  assert_int_equal(config.sources[0].allow_writes, 0);
  assert_null(config.sources[0].password);
  assert_string_equal(config.sources[1].name, "wh");
  assert_string_equal(config.sources[1].url, "postgresql://reader@db/wh");
  assert_string_equal(config.sources[1].password, "s3cret-from-env");
  assert_int_equal(config.sources[1].timeout_ms, 600000);
  assert_int_equal(config.sources[1].allow_writes, 1);
  assert_int_equal(config.sources[1].option_count, 1);
  assert_string_equal(config.sources[1].options[0], "connect_timeout=5");
  assert_string_equal(config.sources[1].disabled_tools, "list_tables,sample_table_data");
  mcp_config_free(&config);
}

/* Each bad file, and what its error must say. */
static void mistakes_name_the_line_and_key(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *says;
  } bad[] = {
      {"sources:\n  a:\n    url: sqlite:x\n    timeout: soon\n",
       ":4: sources.a.timeout: expected seconds"},
      {"sources:\n  a:\n    url: sqlite:x\n    read_only: no\n",
       ":4: sources.a.read_only: expected true or false"},
      {"sources:\n  a:\n    url: sqlite:x\n    colour: red\n", ":4: sources.a.colour: unknown key"},
      {"sources:\n  a:\n    description: no url\n", ":3: sources.a: url: required"},
      {"sources:\n  a:\n    url: sqlite:x\n  a:\n    url: sqlite:y\n",
       ":4: sources.a: named twice"},
      {"sources:\n  'a b':\n    url: sqlite:x\n", ":2: sources.a b: a source name"},
      {"sources:\n  a:\n    url: sqlite:x\n    password: hunter2\n",
       ":4: sources.a.password: secrets only by reference"},
      {"sources:\n  a:\n    url: postgresql://u:hunter2@h/db\n",
       "sources.a: url: holds a password"},
      {"sources:\n  a:\n    url: sqlite:x\n    options: {password: hunter2}\n",
       "sources.a.options.password: secrets only by reference"},
      {"sources:\n  a:\n    url: sqlite:x\n    tools:\n      disabled: [nope]\n",
       ":5: sources.a.tools.disabled: 'nope' is not a tool"},
      {"sources:\n  a:\n    url: sqlite:x\n    password_env: QREG_TEST_CONFIG_UNSET\n",
       ":4: sources.a.password_env: the environment variable QREG_TEST_CONFIG_UNSET is not set"},
      {"colour: red\nsources:\n  a:\n    url: sqlite:x\n", ":1: colour: unknown key"},
      {"defaults:\n  timeout: 1\n", "sources: required"},
      {"sources: [\n", ":2: "},
  };
  unsetenv("QREG_TEST_CONFIG_UNSET");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file(path, bad[i].text, 0600);
    mcp_config_t config;
    char error[512] = "";
    assert_int_equal(mcp_config_load(path, known_tool, &config, error, sizeof error), -1);
    if (strstr(error, bad[i].says) == NULL)
      fail_msg("case %zu: \"%s\" does not say \"%s\"", i, error, bad[i].says);
    if (strstr(error, "hunter2") != NULL)
      fail_msg("case %zu: the error shows the password: %s", i, error);
    assert_non_null(strstr(error, path));
  }
}

/* A password file: read when only its owner can; refused otherwise. A
   config file that refers to secrets must not be readable by others. */
static void secret_files_and_modes(void **state) {
  (void)state;
  char secret[400], text[600];
  snprintf(secret, sizeof secret, "%s/secret", temp_dir);
  write_file(secret, "from-a-file\nsecond line ignored\n", 0600);
  snprintf(text, sizeof text,
           "sources:\n  a:\n    url: postgresql://u@h/db\n    password_file: %s\n", secret);
  write_file(path, text, 0600);
  mcp_config_t config;
  char error[512] = "";
  if (mcp_config_load(path, known_tool, &config, error, sizeof error) != 0)
    fail_msg("%s", error);
  assert_string_equal(config.sources[0].password, "from-a-file");
  mcp_config_free(&config);

  write_file(path, text, 0644);
  assert_int_equal(mcp_config_load(path, known_tool, &config, error, sizeof error), -1);
  assert_non_null(strstr(error, "can be read by others"));

  write_file(path, text, 0600);
  write_file(secret, "from-a-file\n", 0644);
  assert_int_equal(mcp_config_load(path, known_tool, &config, error, sizeof error), -1);
  assert_non_null(strstr(error, "password_file"));
  assert_non_null(strstr(error, "can be read by others"));
  assert_null(strstr(error, "from-a-file"));

  /* Without secrets, a file others can read is fine. */
  write_file(path, "sources:\n  a:\n    url: sqlite:x\n", 0644);
  assert_int_equal(mcp_config_load(path, known_tool, &config, error, sizeof error), 0);
  mcp_config_free(&config);
}

/* Sources as a list, each with its name; and a JSON file (JSON is YAML). */
static void a_list_and_json(void **state) {
  (void)state;
  mcp_config_t config;
  char error[512] = "";
  write_file(path,
             "sources:\n  - name: one\n    url: sqlite:a.db\n  - name: two\n    url: sqlite:b.db\n"
             "    max_rows: 7\n",
             0600);
  if (mcp_config_load(path, known_tool, &config, error, sizeof error) != 0)
    fail_msg("%s", error);
  assert_int_equal(config.source_count, 2);
  assert_string_equal(config.sources[0].name, "one");
  assert_string_equal(config.sources[1].url, "sqlite:b.db");
  assert_int_equal(config.sources[1].max_rows, 7);
  mcp_config_free(&config);
  write_file(path,
             "{\"defaults\": {\"timeout\": 60}, \"sources\": {\"j\": {\"url\": \"sqlite:j.db\", "
             "\"read_only\": true}}}\n",
             0600);
  if (mcp_config_load(path, known_tool, &config, error, sizeof error) != 0)
    fail_msg("%s", error);
  assert_int_equal(config.defaults.timeout_ms, 60000);
  assert_string_equal(config.sources[0].name, "j");
  assert_int_equal(config.sources[0].allow_writes, 0);
  mcp_config_free(&config);
  write_file(path, "sources:\n  - url: sqlite:x\n", 0600);
  assert_int_equal(mcp_config_load(path, known_tool, &config, error, sizeof error), -1);
  assert_non_null(strstr(error, ":2: sources[]: each source in a list needs a name"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_full_file),
      cmocka_unit_test(a_list_and_json),
      cmocka_unit_test(mistakes_name_the_line_and_key),
      cmocka_unit_test(secret_files_and_modes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
