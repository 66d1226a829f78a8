/*
 * `steptrace query` (not written yet).
 */
#include "reader.h"

int
rd_query_main(int argc, char **argv)
{
    return rd_usage("query is not implemented yet");
}
