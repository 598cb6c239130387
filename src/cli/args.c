/*
 * src/cli/args.c - the number parsers of args.h.
 */
#include "cli/args.h"

#include <string.h>

bool qreg_cli_parse_count(const char *text, uint64_t *out) {
  if (text == NULL || *text == '\0')
    return false;
  uint64_t value = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    uint64_t digit = (uint64_t)(*p - '0');
    if (value > (UINT64_MAX - digit) / 10)
      return false;
    value = value * 10 + digit;
  }
  *out = value;
  return true;
}

bool qreg_cli_parse_seconds(const char *text, uint64_t *ms_out) {
  const char *dot = strchr(text, '.');
  char whole_text[32];
  size_t whole_len = dot ? (size_t)(dot - text) : strlen(text);
  if (whole_len == 0 || whole_len >= sizeof whole_text)
    return false;
  memcpy(whole_text, text, whole_len);
  whole_text[whole_len] = '\0';
  uint64_t whole;
  if (!qreg_cli_parse_count(whole_text, &whole) || whole > QREG_CLI_MAX_SECONDS)
    return false;
  uint64_t ms = whole * 1000;
  if (dot) {
    const char *fraction_text = dot + 1;
    size_t digits = strlen(fraction_text);
    uint64_t fraction;
    if (digits == 0 || digits > 3 || !qreg_cli_parse_count(fraction_text, &fraction))
      return false;
    for (size_t i = digits; i < 3; i++)
      fraction *= 10;
    ms += fraction;
  }
  if (ms == 0 || ms > QREG_CLI_MAX_SECONDS * 1000)
    return false;
  *ms_out = ms;
  return true;
}
