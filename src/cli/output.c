/*
 * src/cli/output.c - prints a query result for `qreg query`: an aligned text
 * table for people, or one JSON object for programs. Reads the pages it is
 * given and owns nothing but its own scratch buffers, freed before returning.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* --- a growable byte buffer ------------------------------------------------ */

/* Appends that fail for want of memory set failed and do nothing more, so a
   caller checks once at the end instead of after every append. */
typedef struct text_buffer {
  char *data; /* owned; NUL-terminated while not failed */
  size_t len;
  size_t cap;
  bool failed;
} text_buffer_t;

static void buffer_append(text_buffer_t *buffer, const char *bytes, size_t len) {
  if (buffer->failed)
    return;
  if (buffer->len + len + 1 > buffer->cap) {
    size_t cap = buffer->cap ? buffer->cap : 64;
    while (cap < buffer->len + len + 1) {
      if (cap > SIZE_MAX / 2) {
        buffer->failed = true;
        return;
      }
      cap *= 2;
    }
    char *data = realloc(buffer->data, cap);
    if (!data) {
      buffer->failed = true;
      return;
    }
    buffer->data = data;
    buffer->cap = cap;
  }
  memcpy(buffer->data + buffer->len, bytes, len);
  buffer->len += len;
  buffer->data[buffer->len] = '\0';
}

static void buffer_append_str(text_buffer_t *buffer, const char *text) {
  buffer_append(buffer, text, strlen(text));
}

static void buffer_reset(text_buffer_t *buffer) {
  buffer->len = 0;
  if (buffer->data)
    buffer->data[0] = '\0';
}

/* --- UTF-8 ------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence at text[0, len): returns its length and sets
   *codepoint, or 0 when it is invalid (truncated, overlong, a surrogate or
   past U+10FFFF). */
static size_t utf8_decode(const unsigned char *text, size_t len, uint32_t *codepoint) {
  unsigned char lead = text[0];
  size_t need;
  uint32_t value;
  uint32_t min;
  if (lead < 0x80) {
    *codepoint = lead;
    return 1;
  }
  if ((lead & 0xe0) == 0xc0) {
    need = 2, value = lead & 0x1fu, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    need = 3, value = lead & 0x0fu, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    need = 4, value = lead & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (len < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((text[i] & 0xc0) != 0x80)
      return 0;
    value = (value << 6) | (text[i] & 0x3fu);
  }
  if (value < min || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
    return 0;
  *codepoint = value;
  return need;
}

/* Columns a code point takes on a terminal: 0 for combining marks, 2 for East
   Asian wide and fullwidth characters and emoji, 1 otherwise. A small table in
   the manner of wcwidth(), without depending on the process's locale. */
static int codepoint_columns(uint32_t cp) {
  if ((cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x200b && cp <= 0x200f) ||
      (cp >= 0xfe00 && cp <= 0xfe0f))
    return 0;
  if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp != 0x303f) ||
      (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
      (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
      (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd))
    return 2;
  return 1;
}

/* Terminal columns of valid UTF-8 text (what table_escape produces). */
static size_t text_columns(const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  size_t columns = 0;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t step = utf8_decode(bytes + i, len - i, &cp);
    if (step == 0) { /* cannot happen for escaped text; count the byte */
      columns++;
      i++;
      continue;
    }
    columns += (size_t)codepoint_columns(cp);
    i += step;
  }
  return columns;
}

/* Appends text with every control character and invalid byte escaped, so a
   cell stays on one line and the terminal interprets nothing. */
static void table_escape(text_buffer_t *out, const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t step = utf8_decode(bytes + i, len - i, &cp);
    char escape[16];
    if (step == 0) {
      snprintf(escape, sizeof escape, "\\x%02x", bytes[i]);
      buffer_append_str(out, escape);
      i++;
      continue;
    }
    if (cp == '\n') {
      buffer_append_str(out, "\\n");
    } else if (cp == '\t') {
      buffer_append_str(out, "\\t");
    } else if (cp == '\r') {
      buffer_append_str(out, "\\r");
    } else if (cp < 0x20 || cp == 0x7f) {
      snprintf(escape, sizeof escape, "\\x%02x", (unsigned)cp);
      buffer_append_str(out, escape);
    } else if (cp >= 0x80 && cp <= 0x9f) { /* C1 controls */
      snprintf(escape, sizeof escape, "\\u%04x", (unsigned)cp);
      buffer_append_str(out, escape);
    } else {
      buffer_append(out, text + i, step);
    }
    i += step;
  }
}

/* --- values -------------------------------------------------------------------- */

/* Appends a value as the library's encoder writes it (json: qreg_value_json,
   else qreg_value_text), so the CLI writes every value as MCP does. */
static void append_value(text_buffer_t *out, const qreg_value_t *value, bool json) {
  char small[64];
  size_t len = json ? qreg_value_json(value, small, sizeof small)
                    : qreg_value_text(value, small, sizeof small);
  if (len < sizeof small) {
    buffer_append(out, small, len);
    return;
  }
  char *big = len < SIZE_MAX ? malloc(len + 1) : NULL;
  if (!big) {
    out->failed = true;
    return;
  }
  if (json)
    qreg_value_json(value, big, len + 1);
  else
    qreg_value_text(value, big, len + 1);
  buffer_append(out, big, len);
  free(big);
}

/* Appends a value as a table cell shows it: its plain text, with control
   characters escaped. */
static void table_cell(text_buffer_t *out, const qreg_value_t *value) {
  text_buffer_t plain = {0};
  append_value(&plain, value, false);
  if (plain.failed)
    out->failed = true;
  else
    table_escape(out, plain.data ? plain.data : "", plain.len);
  free(plain.data);
}

static bool value_is_number(const qreg_value_t *value) {
  return value->type == QREG_TYPE_INT || value->type == QREG_TYPE_FLOAT;
}

/* --- the table ------------------------------------------------------------------ */

static const qreg_value_t *page_value(const qreg_page_t *page, uint64_t row, size_t column) {
  return &page->values[row * page->column_count + column];
}

static void print_padding(FILE *out, size_t count) {
  for (size_t i = 0; i < count; i++)
    fputc(' ', out);
}

/* Prints one line of cells, separated by " | ". cells[i] is already escaped;
   numbers (right_align[i]; NULL: none) go right. The last cell gets no
   trailing spaces. */
static void print_table_line(FILE *out, size_t column_count, const size_t *widths,
                             text_buffer_t *cells, const bool *right_align) {
  for (size_t c = 0; c < column_count; c++) {
    size_t used = text_columns(cells[c].data ? cells[c].data : "", cells[c].len);
    size_t pad = widths[c] > used ? widths[c] - used : 0;
    bool right = right_align && right_align[c];
    bool last = c + 1 == column_count;
    fputs(c == 0 ? " " : " | ", out);
    if (right && !(last && cells[c].len == 0))
      print_padding(out, pad);
    fwrite(cells[c].data ? cells[c].data : "", 1, cells[c].len, out);
    if (!right && !last)
      print_padding(out, pad);
  }
  fputc('\n', out);
}

static void print_row_count(FILE *out, uint64_t rows, const qreg_page_t *last) {
  fprintf(out, "(%" PRIu64 " row%s)\n", rows, rows == 1 ? "" : "s");
  if (last->truncated)
    fprintf(out, "(truncated: %s)\n", qreg_truncation_name(last->truncated_by));
}

int qreg_cli_print_table(FILE *out, qreg_page_t *const *pages, size_t page_count) {
  if (page_count == 0 || pages[0]->column_count == 0) {
    fputs("OK\n", out);
    return 0;
  }
  const qreg_page_t *first = pages[0];
  size_t column_count = first->column_count;
  size_t *widths = calloc(column_count, sizeof *widths);
  bool *right_align = calloc(column_count, sizeof *right_align);
  text_buffer_t *cells = calloc(column_count, sizeof *cells);
  int rc = -1;
  if (!widths || !right_align || !cells)
    goto done;

  /* Widths: the widest of the header and every cell. A column is right-aligned
     when it holds numbers (and nothing but numbers and NULL). */
  for (size_t c = 0; c < column_count; c++) {
    buffer_reset(&cells[c]);
    table_escape(&cells[c], first->columns[c].name, strlen(first->columns[c].name));
    widths[c] = text_columns(cells[c].data ? cells[c].data : "", cells[c].len);
    right_align[c] = true;
  }
  bool any_row = false;
  for (size_t p = 0; p < page_count; p++) {
    for (uint64_t r = 0; r < pages[p]->row_count; r++) {
      any_row = true;
      for (size_t c = 0; c < column_count; c++) {
        const qreg_value_t *value = page_value(pages[p], r, c);
        buffer_reset(&cells[c]);
        table_cell(&cells[c], value);
        size_t used = text_columns(cells[c].data ? cells[c].data : "", cells[c].len);
        if (used > widths[c])
          widths[c] = used;
        if (value->type != QREG_TYPE_NULL && !value_is_number(value))
          right_align[c] = false;
      }
    }
  }
  if (!any_row)
    memset(right_align, 0, column_count * sizeof *right_align);

  /* The header is left-aligned whatever the column holds. */
  for (size_t c = 0; c < column_count; c++) {
    buffer_reset(&cells[c]);
    table_escape(&cells[c], first->columns[c].name, strlen(first->columns[c].name));
  }
  print_table_line(out, column_count, widths, cells, NULL);
  for (size_t c = 0; c < column_count; c++) {
    fputs(c == 0 ? "-" : "-+-", out);
    for (size_t i = 0; i < widths[c]; i++)
      fputc('-', out);
  }
  fputs("-\n", out);

  uint64_t rows = 0;
  for (size_t p = 0; p < page_count; p++) {
    for (uint64_t r = 0; r < pages[p]->row_count; r++) {
      for (size_t c = 0; c < column_count; c++) {
        buffer_reset(&cells[c]);
        table_cell(&cells[c], page_value(pages[p], r, c));
      }
      print_table_line(out, column_count, widths, cells, right_align);
      rows++;
    }
  }
  print_row_count(out, rows, pages[page_count - 1]);
  rc = 0;
  for (size_t c = 0; c < column_count; c++)
    if (cells[c].failed)
      rc = -1;

done:
  if (cells)
    for (size_t c = 0; c < column_count; c++)
      free(cells[c].data);
  free(cells);
  free(right_align);
  free(widths);
  return rc;
}

/* --- JSON ------------------------------------------------------------------------ */

/* A JSON string of a name that may not be valid UTF-8. NULL when out of memory. */
static json_t *json_text(const char *text, size_t len) {
  qreg_value_t value = {.type = QREG_TYPE_TEXT, .v.s = {.ptr = text, .len = len}};
  text_buffer_t clean = {0};
  append_value(&clean, &value, false);
  json_t *string = clean.failed ? NULL : json_stringn(clean.data ? clean.data : "", clean.len);
  free(clean.data);
  return string;
}

/* Prints one value as JSON. Returns 0, or -1 when out of memory. */
static int print_json_value(FILE *out, const qreg_value_t *value) {
  text_buffer_t encoded = {0};
  append_value(&encoded, value, true);
  int rc = encoded.failed ? -1 : 0;
  if (rc == 0)
    fwrite(encoded.data ? encoded.data : "", 1, encoded.len, out);
  free(encoded.data);
  return rc;
}

/* {"columns":[{"name":...,"type":...}, ...]} minus the braces. */
static int print_json_columns(FILE *out, const qreg_page_t *first) {
  json_t *columns = json_array();
  if (!columns)
    return -1;
  int rc = 0;
  for (size_t c = 0; first && c < first->column_count && rc == 0; c++) {
    const qreg_column_t *column = &first->columns[c];
    json_t *object = json_object();
    if (!object) {
      rc = -1;
      break;
    }
    /* The *_set_new/append_new calls take the value over, even when they fail
       (a NULL value just fails); only an object never appended is ours. */
    if (json_object_set_new(object, "name", json_text(column->name, strlen(column->name))) ||
        json_object_set_new(object, "type",
                            json_text(column->type_name, strlen(column->type_name)))) {
      json_decref(object);
      rc = -1;
    } else if (json_array_append_new(columns, object)) {
      rc = -1;
    }
  }
  if (rc == 0) {
    fputs("\"columns\":", out);
    rc = json_dumpf(columns, out, JSON_COMPACT) == 0 ? 0 : -1;
  }
  json_decref(columns);
  return rc;
}

int qreg_cli_print_json(FILE *out, qreg_page_t *const *pages, size_t page_count) {
  fputc('{', out);
  if (print_json_columns(out, page_count ? pages[0] : NULL) != 0)
    return -1;
  /* One row per line: still one JSON document, and readable in a terminal. */
  fputs(",\"rows\":[", out);
  uint64_t rows = 0;
  for (size_t p = 0; p < page_count; p++) {
    const qreg_page_t *page = pages[p];
    for (uint64_t r = 0; r < page->row_count; r++) {
      fputs(rows == 0 ? "\n[" : ",\n[", out);
      for (size_t c = 0; c < page->column_count; c++) {
        if (c > 0)
          fputc(',', out);
        if (print_json_value(out, page_value(page, r, c)) != 0)
          return -1;
      }
      fputc(']', out);
      rows++;
    }
  }
  bool truncated = page_count ? pages[page_count - 1]->truncated : false;
  qreg_truncation_t by = page_count ? pages[page_count - 1]->truncated_by : QREG_TRUNCATED_NONE;
  fprintf(out, "%s],\"row_count\":%" PRIu64 ",\"truncated\":%s,\"truncated_by\":", rows ? "\n" : "",
          rows, truncated ? "true" : "false");
  if (by == QREG_TRUNCATED_NONE)
    fputs("null}\n", out);
  else
    fprintf(out, "\"%s\"}\n", qreg_truncation_name(by));
  return 0;
}
