/*
 * steptraced as a service: config file, pid file, status counters, the
 * live stream (TAIL), write faults, memory pressure, SIGTERM draining,
 * peer credentials, descriptors and memory under hostile input.
 */
#include "test-daemon-util.h"

Suite *
service_suite(void)
{
    Suite *s = suite_create("service");

    return s;
}
