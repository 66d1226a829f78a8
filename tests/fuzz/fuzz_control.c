/*
 * The control connection (`steptrace daemon status`, `steptrace tail`):
 * HELLO, then STATUS or TAIL, through the same server and session code as
 * an agent's (fuzz-daemon.h).  While the fuzzed client is connected, an
 * agent (fuzz-script.c: text and a step store, values that need escaping)
 * has its records rendered, so that a TAIL subscriber is sent TEXT; every
 * reply (STATS, TEXT) must be a valid frame.
 *
 * Input: byte 0 = the size of the pieces written (2^(b % 17) bytes);
 * byte 1 bit 0: the agent connects before the control client's bytes
 * (else after them); the rest is the control client's stream.
 */
#include "fuzz.h"

#include "steptrace/buf.h"
#include "steptrace/wire.h"

#include "fuzz-daemon.h"
#include "fuzz-script.h"

static struct st_buf control_agent;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct fuzz_script s;

    fuzz_script_init(&s);
    s.formats = ST_FORMAT_TEXT | ST_FORMAT_STEPS;
    s.level = ST_LEVEL_DEBUG;
    st_buf_init(&control_agent);
    FUZZ_CHECK(fuzz_script_agent(&s, &control_agent) == 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_daemon d;
    struct fuzz_client ctl, agent;
    size_t chunk;
    int early;

    if (size < 2)
        return 0;
    chunk = (size_t)1 << (data[0] % 17);
    early = data[1] & 1;
    fuzz_daemon_start(&d, 0, 0);
    if (fuzz_daemon_connect(&d, &ctl) != 0) {
        fuzz_daemon_finish(&d);
        return 0;
    }
    if (early && fuzz_daemon_connect(&d, &agent) != 0)
        early = -1;
    fuzz_daemon_send(&d, &ctl, data + 2, size - 2, chunk);
    if (early == 0 && fuzz_daemon_connect(&d, &agent) != 0)
        early = -1;
    if (early >= 0) {
        /* The agent's bytes in one piece: its traffic is not what is
         * fuzzed here. */
        fuzz_daemon_send(&d, &agent, (const uint8_t *)control_agent.data,
                         control_agent.len, control_agent.len);
        fuzz_daemon_end(&d, &agent, 0, 0);
    }
    /* Reads every TEXT and STATS still coming, checks them, ends. */
    fuzz_daemon_end(&d, &ctl, 0, 0);
    fuzz_daemon_finish(&d);
    return 0;
}
