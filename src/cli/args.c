/*
 * src/cli/args.c - the number parsers of args.h, and what a refusal shows.
 */
#include "cli/args.h"

#include <stdio.h>
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

const char *qreg_cli_shown_argument(const char *arg, char *buf, size_t size) {
  if (arg[strcspn(arg, ":@= \t\n\r\f\v")] == '\0')
    return arg;
  const char *eq = strchr(arg, '=');
  size_t name_len = eq != NULL ? (size_t)(eq - arg) : 0;
  if (arg[0] == '-' && eq != NULL && name_len == strcspn(arg, ":@= \t\n\r\f\v") && size > 0 &&
      snprintf(buf, size, "%.*s=...", (int)name_len, arg) < (int)size)
    return buf;
  return "(not shown: it may hold a password)";
}

int qreg_cli_match_option(int argc, char **argv, int *i, const void *table, size_t count,
                          size_t stride, const char **value) {
  const char *arg = argv[*i];
  for (size_t k = 0; k < count; k++) {
    const char *flag;
    memcpy(&flag, (const char *)table + k * stride, sizeof flag);
    size_t n = strlen(flag);
    if (strncmp(arg, flag, n) != 0)
      continue;
    if (arg[n] == '=') {
      *value = arg + n + 1;
      return (int)k;
    }
    if (arg[n] == '\0') {
      if (*i + 1 >= argc)
        return QREG_CLI_NEEDS_VALUE;
      *value = argv[++*i];
      return (int)k;
    }
  }
  return QREG_CLI_NO_MATCH;
}
