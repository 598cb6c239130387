/*
 * tests/test-result.c - the result store (src/core/result.h) on its own:
 * every value type comes back unchanged through a page, max_rows and the
 * shared byte budget cut a result (and the bytes come back on free and reset),
 * pages read correctly across the arena's chunk boundaries, protocol misuse
 * is refused without damage, and the storage stays compact (a tiny result
 * in one allocation; results that outgrow it, rows left half-written).
 */
/* cmocka.h needs these first; its own block keeps clang-format from sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/result.h"

static size_t budget_used(qreg_budget_t *budget) {
  return atomic_load(&budget->used);
}

/* Pages are one malloc block: the registry's qreg_page_free() is free(). */
static void page_free(qreg_page_t *page) {
  free(page);
}

static void set_columns(qreg_result_t *r, size_t count) {
  assert_int_equal(qreg_result_set_columns(r, count), 0);
  for (size_t i = 0; i < count; i++) {
    char name[32];
    snprintf(name, sizeof name, "c%zu", i);
    assert_int_equal(qreg_result_set_column(r, i, name, "TEXT"), 0);
  }
}

static qreg_page_t *copy_page(const qreg_result_t *r, uint64_t offset, uint64_t count) {
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_result_copy_page(r, offset, count, &page), 0);
  assert_non_null(page);
  return page;
}

static void assert_string_value(const qreg_value_t *v, qreg_type_t type, const void *bytes,
                                size_t len) {
  assert_int_equal(v->type, type);
  assert_int_equal(v->v.s.len, len);
  assert_non_null(v->v.s.ptr);
  assert_memory_equal(v->v.s.ptr, bytes, len);
  assert_int_equal(v->v.s.ptr[len], '\0'); /* text is NUL-terminated in a page */
}

/* Every value type comes back as it went in, with its column names and types. */
static void every_type_round_trips(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(100, &budget, SIZE_MAX);
  assert_non_null(r);
  assert_int_equal(qreg_result_set_columns(r, 7), 0);
  const char *names[] = {"n", "i", "f", "b", "t", "by", "j"};
  const char *types[] = {"NULL", "INTEGER", "REAL", "BOOLEAN", "TEXT", "BLOB", "JSONB"};
  for (size_t i = 0; i < 7; i++)
    assert_int_equal(qreg_result_set_column(r, i, names[i], types[i]), 0);

  const int64_t ints[] = {0, 1, -1, 63, -64, 64, 300, INT64_MAX, INT64_MIN, -1234567890123};
  const double floats[] = {0.0,     -0.0,     1.5,       -2.25e300, DBL_MIN,
                           DBL_MAX, INFINITY, -INFINITY, 3.14159,   1e-300};
  const char bytes[] = {'\0', '\x01', '\xff', '\0', 'z'};
  const char *texts[] = {"", "x", "héllo wörld", "a much longer text value to store"};
  size_t rows = sizeof ints / sizeof ints[0];
  for (size_t row = 0; row < rows; row++) {
    assert_int_equal(qreg_result_row_begin(r), 0);
    assert_int_equal(qreg_result_put_null(r), 0);
    assert_int_equal(qreg_result_put_int(r, ints[row]), 0);
    assert_int_equal(qreg_result_put_float(r, floats[row]), 0);
    assert_int_equal(qreg_result_put_bool(r, row % 2 == 0), 0);
    const char *text = texts[row % 4];
    assert_int_equal(qreg_result_put_text(r, text, strlen(text)), 0);
    assert_int_equal(qreg_result_put_bytes(r, bytes, row % 6), 0);
    assert_int_equal(qreg_result_put_json(r, "{\"k\":[1,2]}", 11), 0);
    assert_int_equal(qreg_result_row_end(r), 0);
  }
  /* NaN (not equal to itself) and a NULL pointer with length 0. */
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_null(r), 0);
  assert_int_equal(qreg_result_put_null(r), 0);
  assert_int_equal(qreg_result_put_float(r, NAN), 0);
  assert_int_equal(qreg_result_put_null(r), 0);
  assert_int_equal(qreg_result_put_text(r, NULL, 0), 0);
  assert_int_equal(qreg_result_put_bytes(r, NULL, 0), 0);
  assert_int_equal(qreg_result_put_json(r, "null", 4), 0);
  assert_int_equal(qreg_result_row_end(r), 0);

  assert_int_equal(qreg_result_row_count(r), rows + 1);
  assert_false(qreg_result_truncated(r));
  assert_int_equal(qreg_result_column_count(r), 7);
  assert_string_equal(qreg_result_column_name(r, 5), "by");
  assert_string_equal(qreg_result_column_type(r, 6), "JSONB");
  assert_null(qreg_result_column_name(r, 7));

  qreg_page_t *page = copy_page(r, 0, rows + 1);
  assert_int_equal(page->column_count, 7);
  for (size_t i = 0; i < 7; i++) {
    assert_string_equal(page->columns[i].name, names[i]);
    assert_string_equal(page->columns[i].type_name, types[i]);
  }
  assert_int_equal(page->offset, 0);
  assert_int_equal(page->row_count, rows + 1);
  assert_int_equal(page->total_rows, rows + 1);
  assert_false(page->has_more);
  assert_false(page->truncated);
  for (size_t row = 0; row < rows; row++) {
    const qreg_value_t *v = &page->values[row * 7];
    assert_int_equal(v[0].type, QREG_TYPE_NULL);
    assert_int_equal(v[1].type, QREG_TYPE_INT);
    assert_true(v[1].v.i == ints[row]);
    assert_int_equal(v[2].type, QREG_TYPE_FLOAT);
    assert_memory_equal(&v[2].v.f, &floats[row], sizeof(double)); /* -0.0 too */
    assert_int_equal(v[3].type, QREG_TYPE_BOOL);
    assert_int_equal(v[3].v.b, row % 2 == 0);
    assert_string_value(&v[4], QREG_TYPE_TEXT, texts[row % 4], strlen(texts[row % 4]));
    assert_string_value(&v[5], QREG_TYPE_BYTES, bytes, row % 6);
    assert_string_value(&v[6], QREG_TYPE_JSON, "{\"k\":[1,2]}", 11);
  }
  const qreg_value_t *last = &page->values[rows * 7];
  assert_int_equal(last[2].type, QREG_TYPE_FLOAT);
  assert_true(isnan(last[2].v.f));
  assert_string_value(&last[4], QREG_TYPE_TEXT, "", 0);
  assert_string_value(&last[5], QREG_TYPE_BYTES, "", 0);
  assert_string_value(&last[6], QREG_TYPE_JSON, "null", 4);
  page_free(page);

  /* A page in the middle says there is more. */
  page = copy_page(r, 3, 2);
  assert_int_equal(page->offset, 3);
  assert_int_equal(page->row_count, 2);
  assert_true(page->has_more);
  assert_true(page->values[1].v.i == ints[3]);
  assert_true(page->values[7 + 1].v.i == ints[4]);
  page_free(page);

  qreg_result_free(r);
  assert_int_equal(budget_used(&budget), 0);
}

/* Stores `rows` rows of one int column; returns how many were accepted. */
static uint64_t add_int_rows(qreg_result_t *r, uint64_t rows, int *last_rc) {
  uint64_t stored = 0;
  *last_rc = 0;
  for (uint64_t i = 0; i < rows; i++) {
    int rc = qreg_result_row_begin(r);
    if (rc == 0) {
      assert_int_equal(qreg_result_put_int(r, (int64_t)i), 0);
      rc = qreg_result_row_end(r);
    }
    *last_rc = rc;
    if (rc != 0)
      break;
    stored++;
  }
  return stored;
}

/* max_rows rows are stored; the next row_begin says FULL and marks the cut. */
/* Text, JSON, column names and type names are stored as UTF-8 whatever a
   driver hands over: each byte that does not start a valid sequence becomes
   U+FFFD; bytes are kept as they are. */
static void invalid_utf8_is_repaired(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(100, &budget, SIZE_MAX);
  assert_non_null(r);
  assert_int_equal(qreg_result_set_columns(r, 3), 0);
  assert_int_equal(qreg_result_set_column(r, 0, "n\xff", "t\xc3"), 0);
  assert_int_equal(qreg_result_set_column(r, 1, "ok \xc3\xa9", "JSON"), 0);
  assert_int_equal(qreg_result_set_column(r, 2, "b", "BLOB"), 0);
  assert_string_equal(qreg_result_column_name(r, 0), "n\xef\xbf\xbd");
  assert_string_equal(qreg_result_column_type(r, 0), "t\xef\xbf\xbd");
  assert_string_equal(qreg_result_column_name(r, 1), "ok \xc3\xa9");
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_text(r, "a\xff\0b\xed\xa0\x80", 7), 0);
  assert_int_equal(qreg_result_put_json(r, "\"\xfe\"", 3), 0);
  assert_int_equal(qreg_result_put_bytes(r, "\xff\xfe", 2), 0);
  assert_int_equal(qreg_result_row_end(r), 0);
  qreg_page_t *page = copy_page(r, 0, 1);
  assert_string_value(&page->values[0], QREG_TYPE_TEXT,
                      "a\xef\xbf\xbd\0b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 15);
  assert_string_value(&page->values[1], QREG_TYPE_JSON, "\"\xef\xbf\xbd\"", 5);
  assert_string_value(&page->values[2], QREG_TYPE_BYTES, "\xff\xfe", 2);
  page_free(page);
  qreg_result_free(r);
}

/* A column's type name set after rows are stored (a driver that learns it
   late): names, other columns and rows are unchanged, and pages see it. */
static void column_type_set_late(void **state) {
  (void)state;
  for (int wide = 0; wide < 2; wide++) {
    qreg_budget_t budget;
    qreg_budget_init(&budget, SIZE_MAX, 0);
    qreg_result_t *r = qreg_result_new(100, &budget, SIZE_MAX);
    assert_non_null(r);
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(qreg_result_set_columns(r, 2), 0);
    assert_int_equal(qreg_result_set_column(r, 0, wide ? long_name : "a", ""), 0);
    assert_int_equal(qreg_result_set_column(r, 1, "b", "int"), 0);
    for (int64_t i = 0; i < 50; i++) {
      assert_int_equal(qreg_result_row_begin(r), 0);
      assert_int_equal(qreg_result_put_int(r, i), 0);
      assert_int_equal(qreg_result_put_text(r, "row", 3), 0);
      assert_int_equal(qreg_result_row_end(r), 0);
    }
    size_t before = budget_used(&budget);
    assert_int_equal(qreg_result_set_column_type(r, 0, "my_row_type"), 0);
    assert_true(budget_used(&budget) >= before);
    assert_string_equal(qreg_result_column_name(r, 0), wide ? long_name : "a");
    assert_string_equal(qreg_result_column_type(r, 0), "my_row_type");
    assert_string_equal(qreg_result_column_name(r, 1), "b");
    assert_string_equal(qreg_result_column_type(r, 1), "int");
    assert_int_equal(qreg_result_set_column_type(r, 2, "x"), QREG_EINVAL);
    qreg_page_t *page = copy_page(r, 49, 1);
    assert_string_equal(page->columns[0].type_name, "my_row_type");
    assert_int_equal(page->values[0].v.i, 49);
    page_free(page);
    qreg_result_free(r);
    assert_int_equal(budget_used(&budget), 0);
  }
}

static void max_rows_truncates(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(5, &budget, SIZE_MAX);
  set_columns(r, 1);
  int rc;
  assert_int_equal(add_int_rows(r, 5, &rc), 5);
  assert_int_equal(rc, 0);
  assert_false(qreg_result_truncated(r)); /* exactly max_rows is not a cut */
  assert_int_equal(qreg_result_row_begin(r), QREG_RESULT_FULL);
  assert_true(qreg_result_truncated(r));
  assert_int_equal(qreg_result_row_begin(r), QREG_RESULT_FULL);
  assert_int_equal(qreg_result_row_count(r), 5);
  qreg_page_t *page = copy_page(r, 0, 5);
  assert_true(page->truncated);
  assert_false(page->has_more);
  for (int i = 0; i < 5; i++)
    assert_int_equal(page->values[i].v.i, i);
  page_free(page);

  /* A driver-detected cut also stops storing. */
  qreg_result_t *cut = qreg_result_new(100, &budget, SIZE_MAX);
  set_columns(cut, 1);
  assert_int_equal(add_int_rows(cut, 2, &rc), 2);
  qreg_result_mark_truncated(cut, QREG_TRUNCATED_DRIVER);
  assert_true(qreg_result_truncated(cut));
  assert_int_equal(qreg_result_row_begin(cut), QREG_RESULT_FULL);
  qreg_result_free(cut);
  qreg_result_free(r);
  assert_int_equal(budget_used(&budget), 0);
}

/* Two results share one budget: neither pushes it past the limit, each is cut
   by the budget, and the bytes come back on free and on reset. */
static void budget_is_shared_and_given_back(void **state) {
  (void)state;
  const size_t limit = (size_t)256 * 1024;
  qreg_budget_t budget;
  qreg_budget_init(&budget, limit, 0);
  qreg_result_t *a = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  qreg_result_t *b = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  set_columns(a, 1);
  set_columns(b, 1);
  size_t b_before = qreg_result_bytes(b);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(a) + b_before);

  int rc;
  uint64_t stored_a = add_int_rows(a, UINT64_MAX, &rc);
  assert_int_equal(rc, QREG_RESULT_FULL);
  assert_true(qreg_result_truncated(a));
  assert_true(stored_a > 1000);
  assert_int_equal(qreg_result_row_count(a), stored_a);
  assert_true(budget_used(&budget) <= limit);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(a) + qreg_result_bytes(b));

  /* b gets little or nothing: a holds the budget. Its first row needs a
     chunk, which no longer fits. */
  uint64_t stored_b = add_int_rows(b, UINT64_MAX, &rc);
  assert_int_equal(rc, QREG_RESULT_FULL);
  assert_true(qreg_result_truncated(b));
  assert_true(budget_used(&budget) <= limit);
  assert_true(stored_b < stored_a);

  /* The stored rows of a are intact, the dropped one is not there. */
  qreg_page_t *page = copy_page(a, stored_a - 3, 3);
  assert_true(page->truncated);
  for (int i = 0; i < 3; i++)
    assert_int_equal(page->values[i].v.i, (int64_t)(stored_a - 3 + (uint64_t)i));
  page_free(page);

  /* A huge cell never fits: put accepts it, row_end drops the row. */
  qreg_result_t *c = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  set_columns(c, 2);
  size_t huge = 4 * limit;
  char *text = malloc(huge);
  assert_non_null(text);
  memset(text, 'x', huge);
  assert_int_equal(qreg_result_row_begin(c), 0);
  assert_int_equal(qreg_result_put_text(c, text, huge), 0);
  assert_int_equal(qreg_result_put_int(c, 1), 0);
  assert_int_equal(qreg_result_row_end(c), QREG_RESULT_FULL);
  assert_int_equal(qreg_result_row_count(c), 0);
  assert_true(qreg_result_truncated(c));
  assert_int_equal(qreg_result_truncated_by(c), QREG_TRUNCATED_VALUE_TOO_LARGE);
  /* c holds its metadata only, charged whatever the limit: a and b filled
     the budget to the byte. */
  assert_true(budget_used(&budget) <= limit + qreg_result_bytes(c));
  free(text);
  qreg_result_free(c);

  /* Freeing a gives its bytes back; b then has room again after a reset. */
  size_t a_bytes = qreg_result_bytes(a);
  size_t held = budget_used(&budget);
  qreg_result_free(a);
  assert_int_equal(budget_used(&budget), held - a_bytes);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(b));

  qreg_result_reset(b);
  assert_false(qreg_result_truncated(b));
  assert_int_equal(qreg_result_row_count(b), 0);
  assert_int_equal(qreg_result_column_count(b), 0);
  /* The columns and rows went too: b holds what a new result holds. */
  qreg_result_t *fresh = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  assert_true(qreg_result_bytes(b) <= b_before);
  assert_int_equal(qreg_result_bytes(b), qreg_result_bytes(fresh));
  qreg_result_free(fresh);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(b));
  set_columns(b, 1);
  stored_b = add_int_rows(b, 1000, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(stored_b, 1000);
  qreg_result_free(b);
  assert_int_equal(budget_used(&budget), 0);
}

/* Deterministic text for (row, column): its length varies with the row. */
static size_t cell_text(uint64_t row, size_t column, char *buf, size_t max) {
  size_t len = (size_t)((row * 7919u + column * 104729u) % max);
  for (size_t i = 0; i < len; i++)
    buf[i] = (char)('a' + (row + i + column) % 26);
  return len;
}

static void check_rows(const qreg_result_t *r, uint64_t offset, uint64_t count, char *buf,
                       size_t max_len) {
  qreg_page_t *page = copy_page(r, offset, count);
  assert_int_equal(page->row_count, count);
  assert_int_equal(page->has_more, offset + count < qreg_result_row_count(r));
  for (uint64_t i = 0; i < count; i++) {
    uint64_t row = offset + i;
    const qreg_value_t *v = &page->values[i * 3];
    assert_int_equal(v[0].type, QREG_TYPE_INT);
    assert_true(v[0].v.i == (int64_t)row * -977);
    size_t len = cell_text(row, 1, buf, max_len);
    assert_string_value(&v[1], QREG_TYPE_TEXT, buf, len);
    assert_int_equal(v[2].type, QREG_TYPE_FLOAT);
    assert_true(v[2].v.f == (double)row / 4);
  }
  page_free(page);
}

/* Many rows and large cells cross chunk boundaries; every page reads back the
   right rows whatever its offset and size. */
static void pages_cross_chunk_boundaries(void **state) {
  (void)state;
  static const size_t max_lens[] = {40, 3000, (size_t)300 * 1024};
  static const uint64_t row_counts[] = {20000, 3000, 60};
  static const uint64_t max_page_rows[] = {500, 100, 8}; /* keeps the copying short */
  char *buf = malloc((size_t)300 * 1024);
  assert_non_null(buf);
  for (size_t round = 0; round < 3; round++) {
    qreg_budget_t budget;
    qreg_budget_init(&budget, SIZE_MAX, 0);
    qreg_result_t *r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
    set_columns(r, 3);
    uint64_t rows = row_counts[round];
    for (uint64_t row = 0; row < rows; row++) {
      assert_int_equal(qreg_result_row_begin(r), 0);
      assert_int_equal(qreg_result_put_int(r, (int64_t)row * -977), 0);
      size_t len = cell_text(row, 1, buf, max_lens[round]);
      assert_int_equal(qreg_result_put_text(r, buf, len), 0);
      assert_int_equal(qreg_result_put_float(r, (double)row / 4), 0);
      assert_int_equal(qreg_result_row_end(r), 0);
    }
    assert_int_equal(qreg_result_row_count(r), rows);
    assert_int_equal(budget_used(&budget), qreg_result_bytes(r));

    check_rows(r, 0, rows, buf, max_lens[round]); /* all at once */
    uint64_t seed = 88172645463325252u;
    for (int i = 0; i < 200; i++) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      uint64_t offset = seed % rows;
      uint64_t count = (seed >> 20) % (rows - offset + 1);
      if (count > max_page_rows[round])
        count = max_page_rows[round];
      check_rows(r, offset, count, buf, max_lens[round]);
    }
    for (uint64_t offset = 0; offset + 33 <= rows && offset < 200; offset += 31)
      check_rows(r, offset, 33, buf, max_lens[round]); /* across index strides */
    check_rows(r, rows, 0, buf, max_lens[round]);      /* empty page at the end */
    qreg_page_t *page = NULL;
    assert_int_equal(qreg_result_copy_page(r, rows, 1, &page), QREG_ERANGE);
    assert_int_equal(qreg_result_copy_page(r, rows + 1, 0, &page), QREG_ERANGE);
    assert_int_equal(qreg_result_copy_page(r, 1, UINT64_MAX, &page), QREG_ERANGE);
    assert_null(page);
    qreg_result_free(r);
    assert_int_equal(budget_used(&budget), 0);
  }
  free(buf);
}

/* Misuse is refused with QREG_EINVAL and damages nothing. */
static void misuse_is_refused(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(100, &budget, SIZE_MAX);
  /* Nothing before set_columns. */
  assert_int_equal(qreg_result_set_column(r, 0, "a", "T"), QREG_EINVAL);
  assert_int_equal(qreg_result_row_begin(r), QREG_EINVAL);
  assert_int_equal(qreg_result_put_int(r, 1), QREG_EINVAL);
  assert_int_equal(qreg_result_row_end(r), QREG_EINVAL);

  assert_int_equal(qreg_result_set_columns(r, 2), 0);
  assert_int_equal(qreg_result_set_columns(r, 3), QREG_EINVAL); /* twice */
  assert_int_equal(qreg_result_set_column(r, 2, "c", "T"), QREG_EINVAL);
  assert_int_equal(qreg_result_set_column(r, 0, NULL, "T"), QREG_EINVAL);
  assert_int_equal(qreg_result_set_column(r, 0, "a", NULL), 0); /* no type: "" */
  assert_int_equal(qreg_result_set_column(r, 1, "old", "T"), 0);
  assert_int_equal(qreg_result_set_column(r, 1, "b", "INT"), 0); /* renamed */
  assert_string_equal(qreg_result_column_type(r, 0), "");
  assert_string_equal(qreg_result_column_name(r, 1), "b");
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));

  /* Put without begin. */
  assert_int_equal(qreg_result_put_text(r, "x", 1), QREG_EINVAL);
  /* A good row. */
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_row_begin(r), QREG_EINVAL); /* begin twice */
  assert_int_equal(qreg_result_put_int(r, 10), 0);
  assert_int_equal(qreg_result_put_text(r, NULL, 3), QREG_EINVAL); /* bad argument */
  assert_int_equal(qreg_result_put_text(r, "ten", 3), 0);
  assert_int_equal(qreg_result_put_int(r, 99), QREG_EINVAL);             /* one put too many */
  assert_int_equal(qreg_result_set_column(r, 0, "z", "T"), QREG_EINVAL); /* in a row */
  assert_int_equal(qreg_result_row_end(r), 0);
  assert_int_equal(qreg_result_row_end(r), QREG_EINVAL);                 /* end twice */
  assert_int_equal(qreg_result_set_column(r, 0, "z", "T"), QREG_EINVAL); /* after rows */

  /* Too few puts: the row is dropped and the next one is fine. */
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_int(r, 666), 0);
  assert_int_equal(qreg_result_row_end(r), QREG_EINVAL);
  assert_int_equal(qreg_result_put_int(r, 1), QREG_EINVAL); /* the row is gone */
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_int(r, 20), 0);
  assert_int_equal(qreg_result_put_null(r), 0);
  assert_int_equal(qreg_result_row_end(r), 0);

  assert_int_equal(qreg_result_row_count(r), 2);
  assert_false(qreg_result_truncated(r));
  qreg_page_t *page = copy_page(r, 0, 2);
  assert_string_equal(page->columns[0].name, "a");
  assert_string_equal(page->columns[1].name, "b");
  assert_string_equal(page->columns[1].type_name, "INT");
  assert_int_equal(page->values[0].v.i, 10);
  assert_string_value(&page->values[1], QREG_TYPE_TEXT, "ten", 3);
  assert_int_equal(page->values[2].v.i, 20);
  assert_int_equal(page->values[3].type, QREG_TYPE_NULL);
  page_free(page);

  assert_int_equal(qreg_result_copy_page(r, 0, 1, NULL), QREG_EINVAL);
  assert_int_equal(qreg_result_set_columns(NULL, 1), QREG_EINVAL);
  assert_int_equal(qreg_result_put_null(NULL), QREG_EINVAL);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));
  qreg_result_free(r);
  qreg_result_free(NULL);
  assert_int_equal(budget_used(&budget), 0);
}

/* A result with columns and no rows gives an empty page with the columns; one
   with no columns can still count rows. */
static void empty_results(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(10, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(r, 2), 0);
  assert_int_equal(qreg_result_set_column(r, 0, "id", "INTEGER"), 0);
  /* column 1 never named: "" */
  qreg_page_t *page = copy_page(r, 0, 0);
  assert_int_equal(page->column_count, 2);
  assert_string_equal(page->columns[0].name, "id");
  assert_string_equal(page->columns[0].type_name, "INTEGER");
  assert_string_equal(page->columns[1].name, "");
  assert_string_equal(page->columns[1].type_name, "");
  assert_int_equal(page->row_count, 0);
  assert_int_equal(page->total_rows, 0);
  assert_false(page->has_more);
  assert_false(page->truncated);
  page_free(page);
  qreg_result_free(r);

  qreg_result_t *none = qreg_result_new(10, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(none, 0), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(qreg_result_row_begin(none), 0);
    assert_int_equal(qreg_result_put_null(none), QREG_EINVAL);
    assert_int_equal(qreg_result_row_end(none), 0);
  }
  assert_int_equal(qreg_result_row_count(none), 3);
  page = copy_page(none, 1, 2);
  assert_int_equal(page->column_count, 0);
  assert_int_equal(page->row_count, 2);
  assert_int_equal(page->total_rows, 3);
  page_free(page);
  qreg_result_free(none);
  assert_int_equal(budget_used(&budget), 0);
}

/* Storage stays compact: 200,000 rows x 5 columns within 1.5x the raw value
   bytes (8 per number, the bytes of a text, 1 per bool), and a small
   one-row result within a few hundred bytes. */
static void storage_is_compact(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  set_columns(r, 5);
  size_t raw = 0;
  char text[16];
  for (uint64_t row = 0; row < 200000; row++) {
    assert_int_equal(qreg_result_row_begin(r), 0);
    assert_int_equal(qreg_result_put_int(r, (int64_t)(row * 2654435761u % 1000000007u)), 0);
    assert_int_equal(qreg_result_put_int(r, (int64_t)row), 0);
    assert_int_equal(qreg_result_put_float(r, (double)row * 0.5), 0);
    int len = snprintf(text, sizeof text, "name-%" PRIu64, row);
    assert_int_equal(qreg_result_put_text(r, text, (size_t)len), 0);
    assert_int_equal(qreg_result_put_bool(r, row & 1), 0);
    assert_int_equal(qreg_result_row_end(r), 0);
    raw += 8 + 8 + 8 + (size_t)len + 1;
  }
  size_t bytes = qreg_result_bytes(r);
  print_message("200000 x 5: %zu bytes held for %zu raw (%.3fx)\n", bytes, raw,
                (double)bytes / (double)raw);
  assert_true(bytes * 2 <= raw * 3);
  qreg_result_free(r);

  qreg_result_t *one = qreg_result_new(10, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(one, 2), 0);
  assert_int_equal(qreg_result_set_column(one, 0, "id", "INTEGER"), 0);
  assert_int_equal(qreg_result_set_column(one, 1, "name", "TEXT"), 0);
  assert_int_equal(qreg_result_row_begin(one), 0);
  assert_int_equal(qreg_result_put_int(one, 42), 0);
  assert_int_equal(qreg_result_put_text(one, "answer", 6), 0);
  assert_int_equal(qreg_result_row_end(one), 0);
  print_message("one row: %zu bytes\n", qreg_result_bytes(one));
  assert_true(qreg_result_bytes(one) <= 256);
  qreg_result_free(one);
  assert_int_equal(budget_used(&budget), 0);
}

/* Reads back rows written by put_mixed_row: row i holds i, a text of
   text_len(i) bytes and a bool. */
static size_t mixed_text_len(uint64_t row) {
  return (size_t)(row * 37 % 61);
}

static void put_mixed_row(qreg_result_t *r, uint64_t row, const char *text) {
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_int(r, (int64_t)row), 0);
  assert_int_equal(qreg_result_put_text(r, text, mixed_text_len(row)), 0);
  assert_int_equal(qreg_result_put_bool(r, row % 3 == 0), 0);
  assert_int_equal(qreg_result_row_end(r), 0);
}

static void check_mixed_rows(const qreg_result_t *r, uint64_t rows, const char *text) {
  qreg_page_t *page = copy_page(r, 0, rows);
  assert_int_equal(page->row_count, rows);
  for (uint64_t row = 0; row < rows; row++) {
    const qreg_value_t *v = &page->values[row * 3];
    assert_int_equal(v[0].v.i, (int64_t)row);
    assert_string_value(&v[1], QREG_TYPE_TEXT, text, mixed_text_len(row));
    assert_int_equal(v[2].v.b, row % 3 == 0);
  }
  page_free(page);
}

/* A tiny result (one row, one short column, as for SELECT 1) holds no more
   than an empty one: it lives in the result's own allocation. A result that
   outgrows that space - more rows, a longer row, more columns, a renamed
   column - reads back the same, and its bytes stay exact. */
static void small_results_outgrow_their_first_chunk(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  qreg_result_t *empty = qreg_result_new(10, &budget, SIZE_MAX);
  size_t empty_bytes = qreg_result_bytes(empty);
  assert_true(empty_bytes > 0);
  assert_true(empty_bytes <= 128);

  qreg_result_t *one = qreg_result_new(10, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(one, 1), 0);
  assert_int_equal(qreg_result_set_column(one, 0, "1", ""), 0);
  assert_int_equal(qreg_result_row_begin(one), 0);
  assert_int_equal(qreg_result_put_int(one, 1), 0);
  assert_int_equal(qreg_result_row_end(one), 0);
  assert_int_equal(qreg_result_bytes(one), empty_bytes);
  qreg_page_t *page = copy_page(one, 0, 1);
  assert_string_equal(page->columns[0].name, "1");
  assert_string_equal(page->columns[0].type_name, "");
  assert_int_equal(page->values[0].v.i, 1);
  page_free(page);
  assert_int_equal(budget_used(&budget), 2 * empty_bytes);
  qreg_result_free(one);
  qreg_result_free(empty);
  assert_int_equal(budget_used(&budget), 0);

  char text[64];
  memset(text, 't', sizeof text);
  /* Rows grow past the inline space, one at a time: every count reads back. */
  for (uint64_t rows = 1; rows <= 80; rows++) {
    qreg_result_t *r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
    assert_int_equal(qreg_result_set_columns(r, 3), 0);
    assert_int_equal(qreg_result_set_column(r, 0, "i", ""), 0);
    for (uint64_t row = 0; row < rows; row++)
      put_mixed_row(r, row, text);
    check_mixed_rows(r, rows, text);
    assert_int_equal(budget_used(&budget), qreg_result_bytes(r));
    qreg_result_free(r);
    assert_int_equal(budget_used(&budget), 0);
  }

  /* Columns outgrow the inline space while they are named (and renamed),
     after a first row that needed a chunk of its own was dropped. */
  qreg_result_t *r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(r, 3), 0);
  assert_int_equal(qreg_result_set_column(r, 0, "a", ""), 0);
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_text(r, text, sizeof text), 0);
  assert_int_equal(qreg_result_row_end(r), QREG_EINVAL); /* two puts missing */
  assert_int_equal(qreg_result_set_column(r, 1, "b", "TEXT"), 0);
  assert_int_equal(qreg_result_set_column(r, 2, "a rather long column name", "BOOLEAN"), 0);
  assert_int_equal(qreg_result_set_column(r, 0, "renamed", "INTEGER"), 0);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));
  for (uint64_t row = 0; row < 70; row++)
    put_mixed_row(r, row, text);
  check_mixed_rows(r, 70, text);
  assert_string_equal(qreg_result_column_name(r, 0), "renamed");
  assert_string_equal(qreg_result_column_type(r, 0), "INTEGER");
  assert_string_equal(qreg_result_column_name(r, 1), "b");
  assert_string_equal(qreg_result_column_type(r, 2), "BOOLEAN");
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));
  qreg_result_free(r);

  /* Many columns: the column block lives on the heap and grows. */
  r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  set_columns(r, 300);
  assert_int_equal(qreg_result_row_begin(r), 0);
  for (int64_t i = 0; i < 300; i++)
    assert_int_equal(qreg_result_put_int(r, i), 0);
  assert_int_equal(qreg_result_row_end(r), 0);
  page = copy_page(r, 0, 1);
  assert_string_equal(page->columns[299].name, "c299");
  assert_string_equal(page->columns[299].type_name, "TEXT");
  assert_int_equal(page->values[299].v.i, 299);
  page_free(page);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));
  qreg_result_free(r);
  assert_int_equal(budget_used(&budget), 0);
}

/* Rows that outgrow every chunk (a row's own chunk growing several times)
   are followed by small rows, all in order; a row left half-written is
   freed with the result; a reset of a small result or of a half-written
   one empties it for a fresh start. */
static void big_rows_and_reset_mid_row(void **state) {
  (void)state;
  qreg_budget_t budget;
  qreg_budget_init(&budget, SIZE_MAX, 0);
  size_t big = (size_t)200 * 1024;
  char *text = malloc(big);
  assert_non_null(text);
  memset(text, 'q', big);

  qreg_result_t *r = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  size_t empty_bytes = qreg_result_bytes(r);
  assert_int_equal(qreg_result_set_columns(r, 4), 0);
  for (int row = 0; row < 6; row++) {
    assert_int_equal(qreg_result_row_begin(r), 0);
    assert_int_equal(qreg_result_put_int(r, row), 0);
    /* small cells first, then one that outgrows the chunk, then more */
    for (int i = 0; i < 3; i++) {
      size_t len = row % 2 == 0 ? big / 3 : (size_t)row;
      assert_int_equal(qreg_result_put_text(r, text, len), 0);
    }
    assert_int_equal(qreg_result_row_end(r), 0);
  }
  qreg_page_t *page = copy_page(r, 0, 6);
  for (int row = 0; row < 6; row++) {
    const qreg_value_t *v = &page->values[row * 4];
    assert_int_equal(v[0].v.i, row);
    for (int i = 1; i < 4; i++)
      assert_string_value(&v[i], QREG_TYPE_TEXT, text, row % 2 == 0 ? big / 3 : (size_t)row);
  }
  page_free(page);
  assert_int_equal(budget_used(&budget), qreg_result_bytes(r));

  /* Reset in the middle of a row that has a chunk of its own. */
  assert_int_equal(qreg_result_row_begin(r), 0);
  assert_int_equal(qreg_result_put_text(r, text, big), 0);
  qreg_result_reset(r);
  assert_int_equal(qreg_result_bytes(r), empty_bytes);
  assert_int_equal(budget_used(&budget), empty_bytes);
  assert_int_equal(qreg_result_row_count(r), 0);
  assert_int_equal(qreg_result_column_count(r), 0);
  assert_int_equal(qreg_result_row_begin(r), QREG_EINVAL); /* columns first */

  /* Reset of a small result that lives in its own allocation. */
  assert_int_equal(qreg_result_set_columns(r, 1), 0);
  assert_int_equal(qreg_result_set_column(r, 0, "x", ""), 0);
  int rc;
  assert_int_equal(add_int_rows(r, 1, &rc), 1);
  qreg_result_mark_truncated(r, QREG_TRUNCATED_DRIVER);
  qreg_result_reset(r);
  assert_int_equal(qreg_result_bytes(r), empty_bytes);
  assert_false(qreg_result_truncated(r));
  set_columns(r, 1);
  assert_int_equal(add_int_rows(r, 100, &rc), 100);
  page = copy_page(r, 99, 1);
  assert_int_equal(page->values[0].v.i, 99);
  page_free(page);

  /* Freed in the middle of a row: nothing leaks (valgrind, ASan). */
  qreg_result_t *half = qreg_result_new(UINT64_MAX, &budget, SIZE_MAX);
  assert_int_equal(qreg_result_set_columns(half, 2), 0);
  assert_int_equal(qreg_result_row_begin(half), 0);
  assert_int_equal(qreg_result_put_text(half, text, big), 0);
  qreg_result_free(half);
  qreg_result_free(r);
  assert_int_equal(budget_used(&budget), 0);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_type_round_trips),
      cmocka_unit_test(invalid_utf8_is_repaired),
      cmocka_unit_test(column_type_set_late),
      cmocka_unit_test(max_rows_truncates),
      cmocka_unit_test(budget_is_shared_and_given_back),
      cmocka_unit_test(pages_cross_chunk_boundaries),
      cmocka_unit_test(misuse_is_refused),
      cmocka_unit_test(empty_results),
      cmocka_unit_test(storage_is_compact),
      cmocka_unit_test(small_results_outgrow_their_first_chunk),
      cmocka_unit_test(big_rows_and_reset_mid_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
