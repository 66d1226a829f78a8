/*
 * White-box tests of the collector's id map (common/idmap.c) alone: ids
 * from a peer map to pointers; memory follows the live entries, never the
 * value of an id.
 */
#include "test-common.h"

#include <stdint.h>
#include <stdlib.h>

#include "steptrace/error.h"

#include "steptrace/idmap.h"

/* Values the map stores: addresses in this array, never dereferenced. */
static char vals[4096];

START_TEST(test_idmap_put_get_del)
{
    struct st_idmap m;

    st__idmap_init(&m);
    ck_assert_ptr_null(st__idmap_get(&m, 1));
    ck_assert_ptr_null(st__idmap_del(&m, 1));
    ck_assert_int_eq(st__idmap_put(&m, 1, &vals[1]), 0);
    ck_assert_int_eq(st__idmap_put(&m, 0, &vals[0]), 0);
    ck_assert_int_eq(st__idmap_put(&m, UINT32_MAX, &vals[2]), 0);
    ck_assert_uint_eq(m.live, 3);
    ck_assert_ptr_eq(st__idmap_get(&m, 1), &vals[1]);
    ck_assert_ptr_eq(st__idmap_get(&m, 0), &vals[0]);
    ck_assert_ptr_eq(st__idmap_get(&m, UINT32_MAX), &vals[2]);
    /* Replacing keeps one entry and returns nothing to free. */
    ck_assert_int_eq(st__idmap_put(&m, 1, &vals[3]), 0);
    ck_assert_uint_eq(m.live, 3);
    ck_assert_ptr_eq(st__idmap_get(&m, 1), &vals[3]);
    ck_assert_ptr_eq(st__idmap_del(&m, 1), &vals[3]);
    ck_assert_ptr_null(st__idmap_get(&m, 1));
    ck_assert_ptr_null(st__idmap_del(&m, 1));
    ck_assert_uint_eq(m.live, 2);
    st__idmap_close(&m);
    ck_assert_uint_eq(m.cap, 0);
    ck_assert_uint_eq(m.live, 0);
}
END_TEST

/* Hostile ids (sparse, huge) cost memory by their number only. */
START_TEST(test_idmap_size_follows_entries)
{
    struct st_idmap m;
    uint32_t i;

    st__idmap_init(&m);
    for (i = 0; i < 1000; i++)
        ck_assert_int_eq(st__idmap_put(&m, i * 4000037u, &vals[i]), 0);
    ck_assert_uint_eq(m.live, 1000);
    ck_assert_uint_le(m.cap, 4096);
    ck_assert_uint_eq(m.cap & (m.cap - 1), 0);
    for (i = 0; i < 1000; i++)
        ck_assert_ptr_eq(st__idmap_get(&m, i * 4000037u), &vals[i]);
    st__idmap_close(&m);
}
END_TEST

/* Frames come and go all the time: churn through tombstones neither
 * loses entries nor grows the table past a few times the live ones. */
START_TEST(test_idmap_churn)
{
    struct st_idmap m;
    uint32_t i;

    st__idmap_init(&m);
    for (i = 0; i < 64; i++)
        ck_assert_int_eq(st__idmap_put(&m, i, &vals[i]), 0);
    for (i = 64; i < 100000; i++) {
        ck_assert_ptr_eq(st__idmap_del(&m, i - 64), &vals[(i - 64) % 4096]);
        ck_assert_int_eq(st__idmap_put(&m, i, &vals[i % 4096]), 0);
        ck_assert_uint_eq(m.live, 64);
    }
    ck_assert_uint_le(m.cap, 4 * 64);
    ck_assert_uint_le(m.filled * 4, m.cap * 3);
    for (i = 100000 - 64; i < 100000; i++)
        ck_assert_ptr_eq(st__idmap_get(&m, i), &vals[i % 4096]);
    st__idmap_close(&m);
}
END_TEST

/* Iteration sees every live value once, and may delete as it goes. */
START_TEST(test_idmap_iterate_and_delete)
{
    struct st_idmap m;
    size_t it = 0, seen = 0;
    char *v;
    uint32_t i;

    st__idmap_init(&m);
    ck_assert_ptr_null(st__idmap_next(&m, &it));
    for (i = 0; i < 300; i++)
        ck_assert_int_eq(st__idmap_put(&m, i * 7u, &vals[i]), 0);
    for (it = 0; (v = st__idmap_next(&m, &it)) != NULL; seen++) {
        ck_assert(v >= vals && v < vals + 300);
        ck_assert_ptr_eq(st__idmap_del(&m, (uint32_t)(v - vals) * 7u), v);
    }
    ck_assert_uint_eq(seen, 300);
    ck_assert_uint_eq(m.live, 0);
    st__idmap_close(&m);
}
END_TEST

Suite *
idmap_suite(void)
{
    Suite *s = suite_create("idmap");
    TCase *tc = tcase_create("idmap");

    tcase_add_test(tc, test_idmap_put_get_del);
    tcase_add_test(tc, test_idmap_size_follows_entries);
    tcase_add_test(tc, test_idmap_churn);
    tcase_add_test(tc, test_idmap_iterate_and_delete);
    suite_add_tcase(s, tc);
    return s;
}
