/*
 * The HELLO exchange; see hello.h.  The reply is one frame, and the two
 * descriptors of the ring come with it (SCM_RIGHTS); anything more the
 * collector passes is closed.
 */
#include "steptrace/error.h"
#include "steptrace/wire.h"

#include "hello.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELLO_TIMEOUT_MS 5000

/* Keeps the first two descriptors passed with message mh in fds (where
 * still -1) and closes any others. */
static void
hello_take_fds(struct msghdr *mh, int fds[2])
{
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        size_t k, nfd;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (k = 0; k < nfd; k++) {
            int d;

            memcpy(&d, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
            if (k < 2 && fds[k] < 0)
                fds[k] = d;
            else
                close(d);
        }
    }
}

/* Receives one frame (the HELLO reply) and the descriptors sent with it.
 * @return the payload length, or -1 (err says why). */
static int64_t
hello_recv_reply(int fd, char *reply, size_t cap, int fds[2], char *err,
                 size_t errlen)
{
    size_t got = 0, want = ST_WIRE_HEADER_SIZE;
    int64_t len = -1;

    while (got < want) {
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct pollfd p = {fd, POLLIN, 0};
        struct iovec iov = {reply + got, want - got};
        struct msghdr mh;
        ssize_t n;

        if (poll(&p, 1, HELLO_TIMEOUT_MS) <= 0) {
            snprintf(err, errlen, "the collector did not answer within %d s",
                     HELLO_TIMEOUT_MS / 1000);
            return -1;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            snprintf(err, errlen, "the collector closed the connection");
            return -1;
        }
        hello_take_fds(&mh, fds);
        got += (size_t)n;
        if (got == ST_WIRE_HEADER_SIZE && len < 0) {
            len = st_wire_frame_len((const unsigned char *)reply,
                                    (uint32_t)(cap - ST_WIRE_HEADER_SIZE));
            if (len < 0)
                break;
            want += (size_t)len;
        }
    }
    return len;
}

/* Decodes the HELLO reply.  @return 0 (with *ring the ring's size) or a
 * negative code (err says why). */
static int
hello_check_reply(const char *reply, int64_t len, const char *path,
                  uint64_t *ring, uint32_t *formats, char *err, size_t errlen)
{
    struct st_wire_decoder d;
    struct st_msg m;
    int r = -EPROTO;

    if (len > 0 &&
        st_wire_validate(reply + ST_WIRE_HEADER_SIZE, (size_t)len) > 0) {
        st_wire_decoder_init(&d);
        st_wire_decoder_reset(&d, reply + ST_WIRE_HEADER_SIZE, (size_t)len);
        if (st_wire_decode_next(&d, &m) == 1 && m.type == ST_MSG_HELLO) {
            r = m.u.hello.version == ST_WIRE_VERSION ? 0 : ST_EVERSION;
            *ring = m.u.hello.ring_bytes;
            *formats = m.u.hello.formats & ST_FORMAT_MASK_;
        }
        st_wire_decoder_close(&d);
    }
    /* A HELLO of another version may have other fields: its version is
     * still its second element. */
    if (r != 0 && len >= 3 &&
        ((unsigned char)reply[ST_WIRE_HEADER_SIZE] & 0xf0) == 0x90 &&
        reply[ST_WIRE_HEADER_SIZE + 1] == ST_MSG_HELLO &&
        (unsigned char)reply[ST_WIRE_HEADER_SIZE + 2] <= 0x7f &&
        reply[ST_WIRE_HEADER_SIZE + 2] != ST_WIRE_VERSION)
        r = ST_EVERSION;
    if (r == ST_EVERSION)
        snprintf(err, errlen,
                 "the collector speaks another protocol version "
                 "(need %d): upgrade steptrace and steptraced together",
                 ST_WIRE_VERSION);
    else if (r != 0)
        snprintf(err, errlen,
                 "the collector's reply is not a steptrace "
                 "HELLO: is %s a steptraced socket?",
                 path);
    return r;
}

/* Sends the HELLO frame.  @return 0, or -EIO (err says why). */
static int
hello_send(int fd, const char *program, uint64_t ring_bytes, char *err,
           size_t errlen)
{
    struct st_buf b;
    msgpack_packer pk;
    int r = 0;

    st_buf_init(&b);
    st_buf_append(&b, "\0\0\0\0", 4);
    msgpack_packer_init(&pk, &b, st_buf_msgpack_write);
    st_wire_pack_hello(&pk, (uint64_t)getpid(), program, strlen(program),
                       ring_bytes, 0);
    st_wire_put_header((unsigned char *)b.data, (uint32_t)(b.len - 4));
    if (b.oom || send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len) {
        snprintf(err, errlen, "cannot send to the collector: %s",
                 strerror(errno));
        r = -EIO;
    }
    st_buf_close(&b);
    return r;
}

int
st__hello_exchange(int fd, const char *program, uint64_t ring_bytes,
                   const char *path, struct st_hello_ring *ring, char *err,
                   size_t errlen)
{
    char reply[512];
    int fds[2] = {-1, -1};
    uint64_t size = 0;
    int64_t len;
    int r;

    r = hello_send(fd, program, ring_bytes, err, errlen);
    if (r != 0)
        return r;
    len = hello_recv_reply(fd, reply, sizeof(reply), fds, err, errlen);
    if (len < 0) {
        r = -EPROTO;
        goto err_fds;
    }
    r = hello_check_reply(reply, len, path, &size, &ring->formats, err,
                          errlen);
    if (r != 0)
        goto err_fds;
    if (size == 0 || fds[0] < 0 || fds[1] < 0) {
        snprintf(err, errlen,
                 "the collector sent no ring: upgrade "
                 "steptrace and steptraced together");
        r = -EPROTO;
        goto err_fds;
    }
    ring->memfd = fds[0];
    ring->size = size;
    ring->efd = fds[1];
    return 0;

err_fds:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    return r;
}
