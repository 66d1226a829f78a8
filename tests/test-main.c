/*
 * The runner shared by every check test executable.
 *
 * Each executable is one area and is built from this file with one
 * -DST_TEST_AREA_<AREA> define; the list below names the suites that area
 * runs, explicitly (no linker-section auto-registration, which relies on
 * GNU ld / lld __start_ / __stop_ symbols).
 *
 * CK_FORK is left at check's default (on), so every test runs in its own
 * process, the isolation libuv's runner gives.  Set CK_FORK=no only under
 * a debugger or valgrind.  Exit status: 0 when every test passed, 1
 * otherwise.
 */
#include "test-common.h"

#include <stdlib.h>

typedef Suite *(*suite_fn)(void);

static const suite_fn suites[] = {
#if defined(ST_TEST_AREA_COMMON)
    wire_suite,
    record_suite,
    error_suite,
    config_suite,
#elif defined(ST_TEST_AREA_DTOA)
    dtoa_suite,
#elif defined(ST_TEST_AREA_DAEMON)
    daemon_suite,
    service_suite,
    ring_suite,
#elif defined(ST_TEST_AREA_DAEMON_INT)
    sink_suite,
    idmap_suite,
    pressure_suite,
    forward_suite,
#else
#error "compile test-main.c with one -DST_TEST_AREA_<AREA>"
#endif
};

int
main(void)
{
    SRunner *sr;
    size_t i;
    int failed;

    sr = srunner_create(suites[0]());
    for (i = 1; i < sizeof(suites) / sizeof(suites[0]); i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
