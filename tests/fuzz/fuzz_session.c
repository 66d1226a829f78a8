/*
 * A client's byte stream applied to a real session, as steptraced applies
 * it: accepted by the server, read by libuv in pieces, framed, validated,
 * decoded (input.c), applied to the connection's tables (session.c),
 * regions opened with their sinks and step stores (region.c, store.c),
 * records rendered into the sinks (step.c) and written by the writer's
 * jobs in libuv's threadpool (sink.c, writer.c) under a scratch directory;
 * FLUSH answered with ACKs; the end of the input is the client's end.
 * An agent whose HELLO asks for a ring gets one, and the rest of its
 * bytes go through the ring (ring.c) instead of the socket, ending with
 * how the process ended.  See fuzz-daemon.h.
 *
 * Input: byte 0 = the size of the pieces written (2^(b % 17) bytes);
 * byte 1 = how a ring agent ended (bits 0-1: end_kind, bits 2-7:
 * end_signal); byte 2 = the collector's settings: bits 0-1 its
 * log_format, bit 2 max_pending_bytes at its smallest (1 MiB: the memory
 * bound blocks and resumes the connection), bit 3 a SIGHUP (files
 * reopened) halfway through the stream; the rest is the client's stream
 * (frames; after a ring's HELLO, raw messages).
 */
#include "fuzz.h"

#include "fuzz-daemon.h"

/* The smallest max_pending_bytes a config may set (daemon/settings.c). */
#define SESSION_MIN_PENDING (1u << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_daemon d;
    struct fuzz_client cl;
    size_t chunk, half;

    if (size < 3)
        return 0;
    chunk = (size_t)1 << (data[0] % 17);
    fuzz_daemon_start(&d, data[2] & 3, data[2] & 4 ? SESSION_MIN_PENDING : 0);
    data += 3;
    size -= 3;
    half = data[-1] & 8 ? size / 2 : size;
    if (fuzz_daemon_connect(&d, &cl) == 0) {
        fuzz_daemon_send(&d, &cl, data, half, chunk);
        if (half < size) {
            fuzz_daemon_hup(&d);
            fuzz_daemon_send(&d, &cl, data + half, size - half, chunk);
        }
        fuzz_daemon_end(&d, &cl, data[-2] & 3, data[-2] >> 2);
    }
    fuzz_daemon_finish(&d);
    return 0;
}
