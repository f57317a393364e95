/* A descriptor in flight: a message carrying a pipe's descriptor (SCM_RIGHTS) not received
 * yet.
 * kind: UNIX socket
 * checks: the message arrives with its descriptor, which is the same pipe
 * root: refused: descriptors in flight
 */
#include "unix_cf.h"

static int sp[2], pp[2];

static void pass(void) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {"fd", 2};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pp[1], sizeof(int));
    CF_TRY(sendmsg(sp[0], &m, 0));
}

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp));
    CF_TRY(pipe(pp));
    pass();
}

static void check(void) {
    char buf[8], cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(sp[1], &m, MSG_DONTWAIT);
    CF_EQ("message length", 2, n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS) {
        cf_fail("no descriptor came with the message");
        return;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    CF_TRY(write(fd, "p", 1));
    char x = 0;
    CF_EQ("byte through the passed pipe end", 1, read(pp[0], &x, 1));
    close(fd);
    pass();
}
CF_MAIN
