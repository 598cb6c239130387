/*
 * tests/test-http-headers.c - the request-header checks of `qreg serve`
 * (src/http/headers.c): the Host and Origin check that stops DNS rebinding
 * and cross-site pages, on a loopback server and on one with tokens, and the
 * media-type lists of Accept and Content-Type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "http/headers.h"

static bool allowed(const char *host, const char *origin, bool loopback, const char *list) {
  char detail[256];
  memset(detail, 'x', sizeof detail);
  bool ok = http_origin_check(host, origin, loopback, list, detail, sizeof detail);
  if (!ok)
    assert_non_null(memchr(detail, '\0', sizeof detail)); /* a message, terminated */
  return ok;
}

static void test_loopback_host(void **state) {
  (void)state;
  static const char *const good[] = {"localhost", "localhost:8080", "127.0.0.1",     "127.0.0.1:80",
                                     "[::1]",     "[::1]:9",        "LOCALHOST:123", NULL};
  for (size_t i = 0; good[i]; i++)
    assert_true(allowed(good[i], NULL, true, NULL));
  assert_true(allowed(NULL, NULL, true, NULL)); /* HTTP/1.0: no Host */
  static const char *const bad[] = {"evil.example.com",
                                    "evil.example.com:8080",
                                    "localhost.evil.example.com",
                                    "127.0.0.1.nip.io",
                                    "localhost:",
                                    "localhost:80x",
                                    "[::1",
                                    "[::2]:80",
                                    "127.0.0.2",
                                    "0.0.0.0",
                                    "",
                                    "localhost:8080@evil",
                                    NULL};
  for (size_t i = 0; bad[i]; i++)
    assert_false(allowed(bad[i], NULL, true, NULL));
  /* Not on loopback (tokens guard it): any name reaches it. */
  assert_true(allowed("db.example.com:8443", NULL, false, NULL));
}

static void test_origin(void **state) {
  (void)state;
  /* The server's own page. */
  assert_true(allowed("127.0.0.1:8080", "http://127.0.0.1:8080", true, NULL));
  assert_true(allowed("localhost:8080", "http://localhost:8080", true, NULL));
  assert_true(allowed("db.example.com", "https://db.example.com", false, NULL));
  /* Another site's page, even one resolving to us, or on another port. */
  assert_false(allowed("127.0.0.1:8080", "http://evil.example.com", true, NULL));
  assert_false(allowed("127.0.0.1:8080", "http://127.0.0.1:9999", true, NULL));
  assert_false(allowed("127.0.0.1:8080", "null", true, NULL));
  assert_false(allowed("127.0.0.1:8080", "file://", true, NULL));
  assert_false(allowed("127.0.0.1:8080", "", true, NULL));
  assert_false(allowed("db.example.com", "https://evil.example.com", false, NULL));
  assert_false(allowed(NULL, "http://127.0.0.1:8080", true, NULL));
  /* Listed origins. */
  const char *list = "https://app.example.com, http://localhost:3000";
  assert_true(allowed("127.0.0.1:8080", "http://localhost:3000", true, list));
  assert_true(allowed("db.example.com", "https://app.example.com", false, list));
  assert_false(allowed("db.example.com", "https://app.example.co", false, list));
  assert_false(allowed("db.example.com", "https://app.example.com.evil", false, list));
  /* A listed origin does not lift the Host check. */
  assert_false(allowed("evil.example.com", "http://localhost:3000", true, list));
}

static void test_media(void **state) {
  (void)state;
  assert_true(http_lists_media("application/json", "application/json", false));
  assert_true(http_lists_media("Application/JSON; charset=utf-8", "application/json", false));
  assert_true(http_lists_media("text/event-stream, application/json", "application/json", false));
  assert_true(
      http_lists_media("application/json, text/event-stream;q=0.9", "text/event-stream", false));
  assert_false(http_lists_media("application/jsonx", "application/json", false));
  assert_false(http_lists_media("text/plain", "application/json", false));
  assert_false(http_lists_media(NULL, "application/json", true));
  assert_false(http_lists_media("", "application/json", true));
  assert_false(http_lists_media("*/*", "application/json", false));
  assert_true(http_lists_media("*/*", "application/json", true));
  assert_true(http_lists_media("text/html, application/*;q=0.5", "application/json", true));
  assert_false(http_lists_media("text/*", "application/json", true));
  assert_false(http_lists_media(";;,,;", "application/json", true));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loopback_host),
      cmocka_unit_test(test_origin),
      cmocka_unit_test(test_media),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
