/*
 * src/http/http.h - entry point of the HTTP front end: `qreg serve`, the
 * statement API, health, readiness and metrics over HTTP. Knows only
 * include/qreg.h; the CLI calls qreg_http_main().
 */
#ifndef QREG_HTTP_HTTP_H
#define QREG_HTTP_HTTP_H

#include <stddef.h>

/* Runs `qreg serve ARGS...` (argv[0] is "serve"); returns the exit code. */
int qreg_http_main(int argc, char **argv);

/* The OpenAPI 3.1 document of the statement API: docs/openapi.json,
   embedded at build time (CMake generates its definition). */
extern const char qreg_http_openapi[];
extern const size_t qreg_http_openapi_len;

#endif /* QREG_HTTP_HTTP_H */
