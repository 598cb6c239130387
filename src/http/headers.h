/*
 * src/http/headers.h - pure parsers of request headers `qreg serve` decides
 * on: the Host and Origin check against DNS rebinding and cross-site pages,
 * and media-type lists (Accept, Content-Type). No libmicrohttpd: the fuzzer
 * (tests/fuzz/fuzz_headers.c) and the unit tests call them directly.
 */
#ifndef QREG_HTTP_HEADERS_H
#define QREG_HTTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether a request with these Host and Origin headers (NULL: absent) may be
 * served. loopback: the server listens on a loopback address, so Host must
 * name localhost, 127.0.0.1 or [::1] (a page whose own name was made to
 * resolve to 127.0.0.1 sends that name). An Origin, when sent, must be this
 * server's own (scheme://Host) or listed in allowed (comma-separated
 * origins; NULL: none). On refusal detail says why (never longer than
 * detail_size, always terminated).
 */
bool http_origin_check(const char *host, const char *origin, bool loopback, const char *allowed,
                       char *detail, size_t detail_size);

/* Whether a media-type list (an Accept or Content-Type value; NULL: none)
   names type (case-insensitive, parameters ignored); with wildcard, "* / *"
   and "type/ *" (without the spaces) count too. */
bool http_lists_media(const char *list, const char *type, bool wildcard);

#endif /* QREG_HTTP_HEADERS_H */
