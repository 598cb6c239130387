/*
 * src/http/headers.c - the Host/Origin check and media-type lists (see
 * headers.h). Pure functions of their arguments.
 */
#include "http/headers.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Whether an authority (host[:port]) names the loopback interface by one of
   the names a browser can only reach it by. */
static bool loopback_authority(const char *authority, size_t len) {
  size_t host_len = len;
  if (len > 0 && authority[0] == '[') {
    const char *close = memchr(authority, ']', len);
    if (!close)
      return false;
    host_len = (size_t)(close - authority) + 1;
  } else {
    const char *colon = memchr(authority, ':', len);
    if (colon)
      host_len = (size_t)(colon - authority);
  }
  if (host_len < len && (authority[host_len] != ':' || host_len + 1 == len))
    return false;
  for (size_t i = host_len + 1; i < len; i++)
    if (!isdigit((unsigned char)authority[i]))
      return false;
  static const char *const NAMES[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
    if (host_len == strlen(NAMES[i]) && strncasecmp(authority, NAMES[i], host_len) == 0)
      return true;
  return false;
}

/* Whether origin (scheme://authority) is in the comma-separated list. */
static bool listed_origin(const char *list, const char *origin) {
  size_t n = strlen(origin);
  for (const char *p = list; p && *p;) {
    while (*p == ',' || *p == ' ')
      p++;
    size_t len = strcspn(p, ", ");
    if (len == n && len > 0 && strncasecmp(p, origin, n) == 0)
      return true;
    p += len;
  }
  return false;
}

bool http_origin_check(const char *host, const char *origin, bool loopback, const char *allowed,
                       char *detail, size_t detail_size) {
  /* DNS rebinding: a page of another site whose name now resolves to
     127.0.0.1 reaches a loopback server with its own name in Host. */
  if (loopback && host && !loopback_authority(host, strlen(host))) {
    snprintf(detail, detail_size,
             "this server listens on loopback and answers only Host localhost, 127.0.0.1 or "
             "[::1] (DNS rebinding protection), not %.80s",
             host);
    return false;
  }
  if (!origin)
    return true; /* not sent by a browser's cross-site request */
  if (listed_origin(allowed, origin))
    return true;
  const char *authority = NULL;
  if (strncasecmp(origin, "http://", 7) == 0)
    authority = origin + 7;
  else if (strncasecmp(origin, "https://", 8) == 0)
    authority = origin + 8;
  /* Same origin: the page was served by this server under this name. */
  bool same = authority && host && strcasecmp(authority, host) == 0 &&
              (!loopback || loopback_authority(authority, strlen(authority)));
  if (!same) {
    snprintf(detail, detail_size,
             "requests from Origin %.80s are refused: only this server's own pages (and "
             "--allow-origin) may call it",
             origin);
    return false;
  }
  return true;
}

bool http_lists_media(const char *list, const char *type, bool wildcard) {
  if (!list)
    return false;
  size_t n = strlen(type);
  const char *slash = strchr(type, '/');
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    size_t len = strcspn(p, ",;");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if ((len == n && strncasecmp(p, type, n) == 0) ||
        (wildcard &&
         ((len == 3 && strncmp(p, "*/*", 3) == 0) ||
          (slash && len == (size_t)(slash - type) + 2 &&
           strncasecmp(p, type, (size_t)(slash - type) + 1) == 0 && p[len - 1] == '*'))))
      return true;
    p += strcspn(p, ",");
  }
  return false;
}
