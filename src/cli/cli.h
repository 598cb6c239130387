/*
 * src/cli/cli.h - what the parts of the qreg program share: the subcommand
 * entry points main() dispatches to, the exit statuses, and the printers of a
 * query result (output.c). Knows only include/qreg.h.
 */
#ifndef QREG_CLI_CLI_H
#define QREG_CLI_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "qreg.h"

/* Exit statuses of every subcommand. A signal that stops a command gives
   128 + its number, as a shell reports it (Ctrl-C: 130). */
enum {
  QREG_CLI_EXIT_OK = 0,
  QREG_CLI_EXIT_FAILED = 1, /* the query failed, timed out or was canceled */
  QREG_CLI_EXIT_USAGE = 2,  /* bad command line or bad input */
  QREG_CLI_EXIT_SIGNAL_BASE = 128,
};

/* Runs `qreg query ARGS...` (argv[0] is "query"); returns the exit status. */
int qreg_cli_query_main(int argc, char **argv);
/* Prints the help of `qreg query` to out. */
void qreg_cli_query_usage(FILE *out);

/*
 * Print a whole result: the pages of one query in order (page_count 0 means
 * the statement produced no result set, e.g. a CREATE TABLE). Both return 0,
 * or -1 when out of memory; write errors are left in ferror(out).
 *
 * The table is aligned for a terminal: control characters and invalid UTF-8
 * are escaped (\n, \xNN), bytes print as \x<hex>, NULL as nothing, then a
 * "(N rows)" line and "(truncated: REASON)" when the stored result was cut
 * (REASON as qreg_truncation_name: max_rows, max_result_bytes, ...).
 *
 * The JSON is one object: {"columns":[{"name","type"}],"rows":[[...]],
 * "row_count":N,"truncated":bool,"truncated_by":null or "REASON"}; bytes are base64 strings, JSON values are
 * embedded as JSON, invalid UTF-8 becomes U+FFFD, non-finite reals are the
 * strings "NaN", "Infinity" and "-Infinity".
 */
int qreg_cli_print_table(FILE *out, qreg_page_t *const *pages, size_t page_count);
int qreg_cli_print_json(FILE *out, qreg_page_t *const *pages, size_t page_count);

#endif /* QREG_CLI_CLI_H */
