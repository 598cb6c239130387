/*
 * tests/test-lifecycle.c - a query's life on the scripted driver when nothing
 * goes wrong: pending -> running -> succeeded, its snapshot, its result pages,
 * and what happens to its connection afterwards (pooled and reused after a
 * clean finish, closed when the driver says it is not reusable or when an
 * idle pooled one is no longer alive). Every test ends with the closing check
 * of test_util (opened == closed, no contract violation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "support/test_util.h"

/* A finished query releases its connection: nothing in use, the connection
   in the pool, the job completed exactly once. */
static void released_on_completion(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=3;cols=2;tag=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);

  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 0);
  assert_int_equal(stats.connections_opened, 1);
  assert_int_equal(stats.connections_idle, 1); /* pooled, not leaked */
  assert_int_equal(stats.records_by_status[QREG_SUCCEEDED], 1);
  scripted_tag_info_t info;
  assert_true(scripted_tag_info_get(1, &info));
  assert_int_equal(info.executes, 1);
  assert_int_equal(info.completions, 1);
  assert_int_equal(info.outcome, QREG_JOB_OK);
  test_assert_all_released(reg);
  test_close_checked(reg);
}

/* The snapshot of a finished query says what happened, in order. */
static void snapshot_of_finished_query(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=4;cols=3", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_string_equal(s->id.str, id.str);
  assert_string_equal(s->sql, "rows=4;cols=3");
  assert_int_equal(s->status, QREG_SUCCEEDED);
  assert_true(s->created_ms > 0);
  assert_true(s->started_ms >= s->created_ms);
  assert_true(s->finished_ms >= s->started_ms);
  assert_true(s->updated_ms >= s->finished_ms);
  assert_true(s->expires_ms > s->updated_ms);
  assert_int_equal(s->row_count, 4);
  assert_false(s->truncated);
  assert_false(s->has_error);
  assert_string_equal(s->error.type, "");
  assert_int_equal(s->column_count, 3);
  assert_string_equal(s->columns[0].name, "c0");
  assert_string_equal(s->columns[0].type_name, "int");
  assert_string_equal(s->columns[2].name, "c2");
  assert_string_equal(s->columns[2].type_name, "text");
  assert_true(strncmp(s->backend_id, "script-", 7) == 0);
  qreg_snapshot_free(s);
  test_close_checked(reg);
}

/* Pages of a result: values, has_more, the empty page at the end, and
   ERANGE past it. */
static void fetch_pages(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=5;cols=2", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);

  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 1, 2, &page), 0);
  assert_int_equal(page->offset, 1);
  assert_int_equal(page->row_count, 2);
  assert_int_equal(page->total_rows, 5);
  assert_true(page->has_more);
  assert_false(page->truncated);
  assert_int_equal(page->column_count, 2);
  assert_int_equal(page->values[0].type, QREG_TYPE_INT);
  assert_int_equal(page->values[0].v.i, 1);
  assert_int_equal(page->values[1].type, QREG_TYPE_TEXT);
  assert_string_equal(page->values[1].v.s.ptr, "r1c1");
  assert_int_equal(page->values[2].v.i, 2);
  qreg_page_free(page);

  assert_int_equal(qreg_fetch(reg, id.str, 3, 0, &page), 0); /* 0: the rest */
  assert_int_equal(page->row_count, 2);
  assert_false(page->has_more);
  qreg_page_free(page);

  assert_int_equal(qreg_fetch(reg, id.str, 5, 10, &page), 0);
  assert_int_equal(page->row_count, 0);
  assert_false(page->has_more);
  qreg_page_free(page);

  page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 6, 1, &page), QREG_ERANGE);
  assert_null(page);
  test_close_checked(reg);
}

/* While a query runs, it has no result yet; the snapshot says running and
   names the connection's backend. */
static void running_query_is_not_ready(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "hang;tag=1", NULL);
  test_wait_status(reg, &id, QREG_RUNNING);
  qreg_page_t *page = NULL;
  assert_int_equal(qreg_fetch(reg, id.str, 0, 0, &page), QREG_ENOTREADY);
  assert_null(page);
  qreg_snapshot_t *s = NULL;
  assert_int_equal(qreg_snapshot(reg, id.str, &s), 0);
  assert_true(s->started_ms > 0);
  assert_int_equal(s->finished_ms, 0);
  assert_true(strncmp(s->backend_id, "script-", 7) == 0);
  qreg_snapshot_free(s);
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_in_use, 1);
  assert_int_equal(stats.records_by_status[QREG_RUNNING], 1);
  test_close_checked(reg); /* closing stops the hang */
}

/* One query after another reuses the pooled connection. */
static void pooled_connection_is_reused(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  for (int i = 0; i < 5; i++) {
    qreg_id_t id = test_execute(reg, "rows=1", NULL);
    assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  }
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.opened, 1);
  assert_int_equal(c.executes, 5);
  test_close_checked(reg);
}

/* A connection the driver says is not reusable is closed, not pooled. */
static void not_reusable_connection_is_closed(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=1;not_reusable;tag=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  test_wait_counter(test_counter_closed, 1, "closed");
  id = test_execute(reg, "rows=1;tag=2", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  scripted_tag_info_t first, second;
  assert_true(scripted_tag_info_get(1, &first));
  assert_true(scripted_tag_info_get(2, &second));
  assert_int_not_equal(first.conn_serial, second.conn_serial);
  assert_true(first.close_ns >= first.op_end_ns && first.close_ns != 0);
  test_close_checked(reg);
}

/* An idle connection that is no longer alive is closed, and the next query
   gets a fresh one. */
static void dead_idle_connection_is_replaced(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t id = test_execute(reg, "rows=1;tag=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  scripted_set_idle_dead(true);
  id = test_execute(reg, "rows=1;tag=2", NULL);
  /* The replacement is dead too once pooled, but it was alive when fresh:
     alive() is asked of pooled connections only. */
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  scripted_counters_t c;
  scripted_counters_get(&c);
  assert_int_equal(c.opened, 2);
  assert_true(c.closed >= 1);
  scripted_tag_info_t first, second;
  assert_true(scripted_tag_info_get(1, &first));
  assert_true(scripted_tag_info_get(2, &second));
  assert_int_not_equal(first.conn_serial, second.conn_serial);
  test_close_checked(reg);
}

/* Idle pooled connections are closed after idle_timeout_ms. */
static void idle_connection_times_out(void **state) {
  (void)state;
  qreg_config_t config;
  test_config(&config);
  config.idle_timeout_ms = 30;
  qreg_t *reg = test_open(&config);
  qreg_id_t id = test_execute(reg, "rows=1", NULL);
  assert_int_equal(test_wait(reg, &id), QREG_SUCCEEDED);
  test_wait_counter(test_counter_closed, 1, "closed");
  qreg_stats_t stats = QREG_STATS_INIT;
  assert_int_equal(qreg_stats(reg, &stats), 0);
  assert_int_equal(stats.connections_idle, 0);
  test_close_checked(reg);
}

/* Listing: creation order, newest first, status filter, cursor paging. */
static void list_orders_and_pages(void **state) {
  (void)state;
  qreg_t *reg = test_open(NULL);
  qreg_id_t ids[5];
  for (int i = 0; i < 5; i++) {
    ids[i] = test_execute(reg, i == 2 ? "fail=start" : "rows=1", NULL);
    test_wait(reg, &ids[i]);
  }
  qreg_list_t *list = NULL;
  assert_int_equal(qreg_list(reg, NULL, &list), 0);
  assert_int_equal(list->count, 5);
  for (int i = 0; i < 5; i++)
    assert_string_equal(list->items[i]->id.str, ids[i].str);
  assert_null(list->next_cursor);
  qreg_list_free(list);

  qreg_list_filter_t filter = {.newest_first = true, .limit = 2};
  assert_int_equal(qreg_list(reg, &filter, &list), 0);
  assert_int_equal(list->count, 2);
  assert_string_equal(list->items[0]->id.str, ids[4].str);
  assert_string_equal(list->items[1]->id.str, ids[3].str);
  assert_non_null(list->next_cursor);
  qreg_list_t *next = NULL;
  filter.cursor = list->next_cursor;
  assert_int_equal(qreg_list(reg, &filter, &next), 0);
  assert_int_equal(next->count, 2);
  assert_string_equal(next->items[0]->id.str, ids[2].str);
  qreg_list_free(next);
  qreg_list_free(list);

  qreg_list_filter_t failed = {.status_mask = 1u << QREG_FAILED};
  assert_int_equal(qreg_list(reg, &failed, &list), 0);
  assert_int_equal(list->count, 1);
  assert_string_equal(list->items[0]->id.str, ids[2].str);
  qreg_list_free(list);
  test_close_checked(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(released_on_completion),
      cmocka_unit_test(snapshot_of_finished_query),
      cmocka_unit_test(fetch_pages),
      cmocka_unit_test(running_query_is_not_ready),
      cmocka_unit_test(pooled_connection_is_reused),
      cmocka_unit_test(not_reusable_connection_is_closed),
      cmocka_unit_test(dead_idle_connection_is_replaced),
      cmocka_unit_test(idle_connection_times_out),
      cmocka_unit_test(list_orders_and_pages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
