/*
 * `steptrace stats` (not written yet).
 */
#include "reader.h"

int
rd_stats_main(int argc, char **argv)
{
    return rd_usage("stats is not implemented yet");
}
