/*
 * src/drivers/snowflake/snowflake_sql.c - the read-only check of the
 * Snowflake driver. The SQL API has no read-only transaction, so in
 * read-only mode qreg refuses, before sending, a statement that is not a
 * query: its first keyword (after white space, comments and opening
 * parentheses) must be SELECT, SHOW, DESCRIBE, DESC or EXPLAIN, or WITH
 * whose common table expressions are followed by SELECT; and the one
 * procedure that does nothing but sleep, CALL SYSTEM$WAIT(n[, 'unit']),
 * exactly (no other argument, nothing after it). The server runs
 * one statement per request (MULTI_STATEMENT_COUNT 1), so "SELECT 1; DROP
 * TABLE t" is refused there. This is a guard against accidents, not a
 * boundary: a role with read grants only is (docs/snowflake.md).
 *
 * Snowflake's lexical rules followed here: comments are "-- ...", "// ..."
 * and "/ * ... * /" (not nested); strings are '...' with '' and backslash
 * escapes, or $$...$$; quoted identifiers are "..." with "" inside.
 * Pure functions; owns nothing.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "drivers/snowflake/snowflake.h"

typedef struct lexer {
  const char *s;
  size_t len, pos;
  bool bad; /* an unterminated comment, string or identifier */
} lexer_t;

/* Skips white space and comments. */
static void skip_space(lexer_t *lx) {
  while (lx->pos < lx->len) {
    char c = lx->s[lx->pos];
    char next = '\0';
    if (lx->pos + 1 < lx->len)
      next = lx->s[lx->pos + 1];
    if (isspace((unsigned char)c)) {
      lx->pos++;
    } else if ((c == '-' && next == '-') || (c == '/' && next == '/')) {
      while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
        lx->pos++;
    } else if (c == '/' && next == '*') {
      const char *end = NULL;
      for (size_t i = lx->pos + 2; i + 1 < lx->len; i++) {
        if (lx->s[i] == '*' && lx->s[i + 1] == '/') {
          end = lx->s + i;
          break;
        }
      }
      if (end == NULL) {
        lx->bad = true;
        lx->pos = lx->len;
        return;
      }
      lx->pos = (size_t)(end - lx->s) + 2;
    } else {
      return;
    }
  }
}

static bool word_char(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Reads a bare word at the cursor into [*start, *start + *n); 0 length when
   there is none. */
static void read_word(lexer_t *lx, const char **start, size_t *n) {
  *start = lx->s + lx->pos;
  size_t begin = lx->pos;
  while (lx->pos < lx->len && word_char(lx->s[lx->pos]))
    lx->pos++;
  *n = lx->pos - begin;
}

static bool word_is(const char *w, size_t n, const char *keyword) {
  return strlen(keyword) == n && strncasecmp(w, keyword, n) == 0;
}

/* Skips one token that is not a parenthesis: a string, a quoted
   identifier, a word or one character. */
static void skip_token(lexer_t *lx) {
  char c = lx->s[lx->pos];
  if (c == '\'') {
    for (lx->pos++; lx->pos < lx->len; lx->pos++) {
      char d = lx->s[lx->pos];
      if (d == '\\') {
        lx->pos++;
      } else if (d == '\'') {
        if (lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '\'') {
          lx->pos++;
        } else {
          lx->pos++;
          return;
        }
      }
    }
    lx->bad = true;
  } else if (c == '"') {
    for (lx->pos++; lx->pos < lx->len; lx->pos++) {
      if (lx->s[lx->pos] == '"') {
        if (lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '"') {
          lx->pos++;
        } else {
          lx->pos++;
          return;
        }
      }
    }
    lx->bad = true;
  } else if (c == '$' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '$') {
    for (lx->pos += 2; lx->pos + 1 < lx->len; lx->pos++) {
      if (lx->s[lx->pos] == '$' && lx->s[lx->pos + 1] == '$') {
        lx->pos += 2;
        return;
      }
    }
    lx->pos = lx->len;
    lx->bad = true;
  } else if (word_char(c)) {
    const char *w;
    size_t n;
    read_word(lx, &w, &n);
  } else {
    lx->pos++;
  }
}

/* At '(': skips to after its matching ')'. false when unbalanced. */
static bool skip_group(lexer_t *lx) {
  size_t depth = 0;
  while (lx->pos < lx->len && !lx->bad) {
    skip_space(lx);
    if (lx->pos >= lx->len)
      break;
    char c = lx->s[lx->pos];
    if (c == '(') {
      depth++;
      lx->pos++;
    } else if (c == ')') {
      lx->pos++;
      if (--depth == 0)
        return true;
    } else {
      skip_token(lx);
    }
  }
  return false;
}

/* Skips opening parentheses and the space around them. */
static void skip_open_parens(lexer_t *lx) {
  for (;;) {
    skip_space(lx);
    if (lx->pos < lx->len && lx->s[lx->pos] == '(')
      lx->pos++;
    else
      return;
  }
}

/* After WITH: name [(columns)] AS (query) [, ...] then the statement, whose
   first keyword must be SELECT. */
static bool with_is_query(lexer_t *lx) {
  skip_space(lx);
  const char *w;
  size_t n;
  size_t mark = lx->pos;
  read_word(lx, &w, &n);
  if (!word_is(w, n, "RECURSIVE"))
    lx->pos = mark;
  for (;;) {
    skip_space(lx);
    if (lx->pos >= lx->len)
      return false;
    if (lx->s[lx->pos] == '"' || word_char(lx->s[lx->pos]))
      skip_token(lx); /* the name */
    else
      return false;
    skip_space(lx);
    if (lx->pos < lx->len && lx->s[lx->pos] == '(' && !skip_group(lx))
      return false; /* its column list */
    skip_space(lx);
    read_word(lx, &w, &n);
    if (!word_is(w, n, "AS"))
      return false;
    skip_space(lx);
    /* AS (query): anything else (AS PROCEDURE ...) is not a query. */
    if (lx->pos >= lx->len || lx->s[lx->pos] != '(' || !skip_group(lx))
      return false;
    skip_space(lx);
    if (lx->pos < lx->len && lx->s[lx->pos] == ',') {
      lx->pos++;
      continue;
    }
    skip_open_parens(lx);
    if (lx->bad)
      return false;
    read_word(lx, &w, &n);
    return word_is(w, n, "SELECT");
  }
}

/* After CALL: exactly SYSTEM$WAIT(<digits>[, '<letters>']) and nothing
   else but an optional ';' - the one procedure that reads and writes
   nothing (it sleeps), which scripts and checks call this way. */
static bool call_is_wait(lexer_t *lx) {
  const char *w;
  size_t n;
  skip_space(lx);
  read_word(lx, &w, &n);
  if (!word_is(w, n, "SYSTEM$WAIT"))
    return false;
  skip_space(lx);
  if (lx->pos >= lx->len || lx->s[lx->pos] != '(')
    return false;
  lx->pos++;
  skip_space(lx);
  size_t digits = 0;
  while (lx->pos < lx->len && isdigit((unsigned char)lx->s[lx->pos])) {
    lx->pos++;
    digits++;
  }
  skip_space(lx);
  if (digits == 0 || digits > 9)
    return false;
  if (lx->pos < lx->len && lx->s[lx->pos] == ',') {
    lx->pos++;
    skip_space(lx);
    if (lx->pos >= lx->len || lx->s[lx->pos] != '\'')
      return false;
    size_t letters = 0;
    for (lx->pos++; lx->pos < lx->len && isalpha((unsigned char)lx->s[lx->pos]); lx->pos++)
      letters++;
    if (letters == 0 || lx->pos >= lx->len || lx->s[lx->pos] != '\'')
      return false;
    lx->pos++;
    skip_space(lx);
  }
  if (lx->pos >= lx->len || lx->s[lx->pos] != ')')
    return false;
  lx->pos++;
  skip_space(lx);
  if (lx->pos < lx->len && lx->s[lx->pos] == ';') {
    lx->pos++;
    skip_space(lx);
  }
  return lx->pos == lx->len && !lx->bad;
}

bool qreg__sf_sql_is_query(const char *sql, size_t len) {
  lexer_t lx = {.s = sql, .len = len};
  skip_open_parens(&lx);
  if (lx.bad)
    return false;
  const char *w;
  size_t n;
  read_word(&lx, &w, &n);
  if (word_is(w, n, "SELECT") || word_is(w, n, "SHOW") || word_is(w, n, "DESCRIBE") ||
      word_is(w, n, "DESC") || word_is(w, n, "EXPLAIN"))
    return true;
  if (word_is(w, n, "WITH"))
    return with_is_query(&lx);
  if (word_is(w, n, "CALL"))
    return call_is_wait(&lx);
  return false;
}
