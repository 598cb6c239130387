/*
 * src/cli/args.h - parsers for the numbers on qreg's command lines, shared by
 * every subcommand (`qreg query`, `qreg mcp`) so that they accept and refuse
 * exactly the same spellings, and how an argument they refuse is shown.
 * Pure functions; own nothing.
 */
#ifndef QREG_CLI_ARGS_H
#define QREG_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest duration a command line accepts: a year, in seconds. */
#define QREG_CLI_MAX_SECONDS UINT64_C(31536000)

/* Decimal digits only: no sign, no spaces, no trailing junk, no overflow. */
bool qreg_cli_parse_count(const char *text, uint64_t *out);

/* Seconds as digits with up to three decimals ("30", "0.5", "1.250"),
   converted to milliseconds. false if malformed, zero or above
   QREG_CLI_MAX_SECONDS. */
bool qreg_cli_parse_seconds(const char *text, uint64_t *ms_out);

/* An argument a command refuses, as its error message may show it: a word
   without ':', '@', '=' or white space as it is; anything else may be a
   URL or conninfo with a password ("qreg mcp postgres://app:pw@host/db",
   "--dbx=host=db password=pw") and is cut to its option name
   ("--dbx=...", written into buf) or replaced by a note. Never NULL. */
const char *qreg_cli_shown_argument(const char *arg, char *buf, size_t size);

/* Which option of a table argv[*i] is, written "--flag=value" or "--flag
   value" (then *i steps over the value). The table holds count entries
   stride bytes apart, each starting with its flag (a const char *).
   Returns the entry's index with *value set, QREG_CLI_NO_MATCH, or
   QREG_CLI_NEEDS_VALUE ("--flag" last on the line). */
#define QREG_CLI_NO_MATCH (-1)
#define QREG_CLI_NEEDS_VALUE (-2)
int qreg_cli_match_option(int argc, char **argv, int *i, const void *table, size_t count,
                          size_t stride, const char **value);

#endif /* QREG_CLI_ARGS_H */
