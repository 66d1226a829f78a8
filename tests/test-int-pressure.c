/*
 * White-box tests of the bound on the collector's memory
 * (daemon/pressure.c) alone: the counts, the threshold at which producers
 * stop, the reserve the collector keeps for itself, and room for large
 * frames.  The reserve per connection (a read chunk and two flush
 * chunks, 192 KiB) and the margin (2 MiB) are pressure.c's own numbers.
 */
#include "test-common.h"

#include <stdint.h>

#include "../daemon/pressure.h"

#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)

static struct st_pressure p;
static uint64_t peak;

static void
pressure_setup(void)
{
    peak = 0;
    st__pressure_init(&p, 64 * MIB, &peak);
}

/* Pending bytes in and out, the part in sink queues, and the peak. */
START_TEST(test_pressure_counts)
{
    st__pressure_add(&p, 1000, 0);
    st__pressure_add(&p, 500, 1);
    ck_assert_uint_eq(p.pending, 1500);
    ck_assert_uint_eq(p.pending_out, 500);
    ck_assert_uint_eq(peak, 1500);
    st__pressure_sub(&p, 1000, 0);
    st__pressure_sub(&p, 200, 1);
    ck_assert_uint_eq(p.pending, 300);
    ck_assert_uint_eq(p.pending_out, 300);
    ck_assert_uint_eq(peak, 1500);
    /* Never below zero, whatever is given back. */
    st__pressure_sub(&p, 10000, 1);
    ck_assert_uint_eq(p.pending, 0);
    ck_assert_uint_eq(p.pending_out, 0);
}
END_TEST

/* Producers stop above a quarter of the bound and go on below three
 * quarters of that; input not yet rendered does not count. */
START_TEST(test_pressure_threshold_quarter)
{
    ck_assert_uint_eq(st__pressure_threshold(&p), 16 * MIB);
    st__pressure_add(&p, 40 * MIB, 0);
    ck_assert(!st__pressure_high(&p));
    st__pressure_add(&p, 16 * MIB, 1);
    ck_assert(!st__pressure_high(&p));
    ck_assert(!st__pressure_low(&p));
    st__pressure_add(&p, 1, 1);
    ck_assert(st__pressure_high(&p));
    st__pressure_sub(&p, 4 * MIB, 1);
    ck_assert(!st__pressure_high(&p));
    ck_assert(!st__pressure_low(&p));
    st__pressure_sub(&p, 2, 1);
    ck_assert(st__pressure_low(&p));
}
END_TEST

/* What the collector holds anyway comes off the budget: per connection,
 * or as measured when that is more; a sixteenth of the bound is always
 * left for records in flight. */
START_TEST(test_pressure_reserve)
{
    /* 300 connections: 64 MiB - 300 * 192 KiB - 2 MiB. */
    p.nconns = 300;
    ck_assert_uint_eq(st__pressure_threshold(&p),
                      64 * MIB - 300 * 192 * KIB - 2 * MIB);
    p.nconns = 400;
    ck_assert_uint_eq(st__pressure_threshold(&p), 4 * MIB);
    p.nconns = 0;
    p.rss_start = 50 * MIB;
    ck_assert_uint_eq(st__pressure_threshold(&p), 12 * MIB);
    /* Measured: the resident size less what is pending. */
    st__pressure_add(&p, 10 * MIB, 1);
    st__pressure_measure(&p, 65 * MIB);
    ck_assert_uint_eq(p.overhead, 55 * MIB);
    ck_assert_uint_eq(st__pressure_threshold(&p), 7 * MIB);
    st__pressure_measure(&p, 1 * MIB);
    ck_assert_uint_eq(p.overhead, 0);
    ck_assert_uint_eq(st__pressure_threshold(&p), 12 * MIB);
}
END_TEST

/* A large frame gets room under the budget, except the first one in
 * progress, which always completes. */
START_TEST(test_pressure_room_for_frame)
{
    ck_assert(st__pressure_room_for_frame(&p, 100 * MIB));
    p.pending_big = 1 * MIB;
    st__pressure_add(&p, 30 * MIB, 0);
    ck_assert(st__pressure_room_for_frame(&p, 32 * MIB));
    ck_assert(!st__pressure_room_for_frame(&p, 32 * MIB + 1));
}
END_TEST

Suite *
pressure_suite(void)
{
    Suite *s = suite_create("pressure");
    TCase *tc = tcase_create("pressure");

    tcase_add_checked_fixture(tc, pressure_setup, NULL);
    tcase_add_test(tc, test_pressure_counts);
    tcase_add_test(tc, test_pressure_threshold_quarter);
    tcase_add_test(tc, test_pressure_reserve);
    tcase_add_test(tc, test_pressure_room_for_frame);
    suite_add_tcase(s, tc);
    return s;
}
