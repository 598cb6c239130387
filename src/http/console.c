/*
 * src/http/console.c - GET / of `qreg serve`: the console, one static page
 * (src/http/console.html, compiled in as qreg_http_console) from which a
 * browser lists the statements, submits SQL, cancels and pages results
 * through the statement API. The page holds no data, so it is served
 * without a token; its API calls carry one.
 *
 * Its headers shut out what the page does not need. The
 * Content-Security-Policy admits the page's one inline script and one
 * inline style by their SHA-256, computed here from the embedded bytes (a
 * few microseconds a request), so the hashes cannot go stale when the page
 * changes: an injected script, an inline event handler or a style attribute
 * would not run; the page connects only to its own origin, submits no form
 * anywhere and may not be framed. Main thread only, like every route.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "http/http_internal.h"

/* Large enough for two 'sha256-<44 base64>' sources and the fixed text. */
#define CSP_MAX 512

/* Writes the CSP source of the element that starts with open at the start of
   a line and ends at the next close: 'sha256-<base64>' of the text between
   them, which is what the browser hashes. 'none' when the page has no such
   element or the digest fails: then nothing inline is allowed (the page
   breaks, visibly, but stays safe). */
/* 'sha256-<base64 of a digest>' at most, with its NUL. */
#define HASH_SOURCE_MAX (sizeof "'sha256-'" + 4 * (size_t)((EVP_MAX_MD_SIZE + 2) / 3))

static void element_hash_source(const char *page, const char *open, const char *close, char *out,
                                size_t size) {
  snprintf(out, size, "'none'");
  char line_open[32];
  snprintf(line_open, sizeof line_open, "\n%s", open);
  const char *start = strstr(page, line_open);
  if (!start)
    return;
  start += strlen(line_open);
  const char *end = strstr(start, close);
  if (!end)
    return;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(start, (size_t)(end - start), digest, &digest_len, EVP_sha256(), NULL) != 1)
    return;
  unsigned char base64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  EVP_EncodeBlock(base64, digest, (int)digest_len);
  snprintf(out, size, "'sha256-%s'", (const char *)base64);
}

enum MHD_Result http_serve_console(http_request_t *req) {
  char script_source[HASH_SOURCE_MAX];
  char style_source[HASH_SOURCE_MAX];
  element_hash_source(qreg_http_console, "<script>", "</script>", script_source,
                      sizeof script_source);
  element_hash_source(qreg_http_console, "<style>", "</style>", style_source, sizeof style_source);
  char policy[CSP_MAX];
  snprintf(policy, sizeof policy,
           "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
           script_source, style_source);
  struct MHD_Response *response = MHD_create_response_from_buffer(
      qreg_http_console_len, (void *)qreg_http_console, MHD_RESPMEM_PERSISTENT);
  if (!response)
    return MHD_NO;
  /* Content type, no-store, nosniff (and Connection: close when draining). */
  http_response_headers(req, response, "text/html; charset=utf-8");
  MHD_add_response_header(response, "Content-Security-Policy", policy);
  MHD_add_response_header(response, "X-Frame-Options", "DENY");
  MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
  return http_queue(req, MHD_HTTP_OK, response);
}
