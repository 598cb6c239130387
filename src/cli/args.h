/*
 * src/cli/args.h - parsers for the numbers on qreg's command lines, shared by
 * every subcommand (`qreg query`, `qreg mcp`) so that they accept and refuse
 * exactly the same spellings. Pure functions; own nothing.
 */
#ifndef QREG_CLI_ARGS_H
#define QREG_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* The longest duration a command line accepts: a year, in seconds. */
#define QREG_CLI_MAX_SECONDS UINT64_C(31536000)

/* Decimal digits only: no sign, no spaces, no trailing junk, no overflow. */
bool qreg_cli_parse_count(const char *text, uint64_t *out);

/* Seconds as digits with up to three decimals ("30", "0.5", "1.250"),
   converted to milliseconds. false if malformed, zero or above
   QREG_CLI_MAX_SECONDS. */
bool qreg_cli_parse_seconds(const char *text, uint64_t *ms_out);

#endif /* QREG_CLI_ARGS_H */
