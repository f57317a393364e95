/* Linux native AIO contexts (io_setup).
 * kind: asynchronous I/O
 * checks: the context id (the address of its ring); io_submit of a read and io_getevents on the context give the data; the ring's header (number of events)
 * root: refused: AIO context
 */
#include "conformance.h"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>

static aio_context_t ctx;
static int fd;
static char path[64];

static void setup(void) {
    snprintf(path, sizeof path, "/tmp/cf_aio_%d", (int)getpid());
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    unlink(path);
    CF_TRY(write(fd, "0123456789abcdef", 16));
    CF_TRY(syscall(SYS_io_setup, 16, &ctx));
}

static void check(void) {
    /* The ring's header: struct aio_ring { id, nr, head, tail, magic, ... } at ctx. */
    unsigned *ring = (unsigned *)ctx;
    CF_EQ("ring magic", 0xa10a10a1, ring[4]);
    char buf[8] = {0};
    struct iocb cb = {.aio_fildes = fd,
                      .aio_lio_opcode = IOCB_CMD_PREAD,
                      .aio_buf = (unsigned long)buf,
                      .aio_nbytes = 4,
                      .aio_offset = 10,
                      .aio_data = 77};
    struct iocb *cbs[1] = {&cb};
    CF_EQ("io_submit", 1, syscall(SYS_io_submit, ctx, 1, cbs));
    struct io_event ev;
    struct timespec ts = {5, 0};
    CF_EQ("io_getevents", 1, syscall(SYS_io_getevents, ctx, 1, 1, &ev, &ts));
    CF_EQ("event data", 77, ev.data);
    CF_EQ("event result", 4, ev.res);
    CF_STREQ("bytes read", "abcd", buf);
}
CF_MAIN
