/*
 * `steptrace export` (not written yet).
 */
#include "reader.h"

int
rd_export_main(int argc, char **argv)
{
    return rd_usage("export is not implemented yet");
}
