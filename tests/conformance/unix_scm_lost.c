/* A descriptor in flight that no process holds any more (the sender closed its copy).
 * kind: UNIX socket
 * checks: the message arrives with the descriptor of the pipe, which still works
 * root: refused: which no process of the job holds
 */
#include "unix_cf.h"

static int sp[2], rd;

static void pass(void) {
    int pp[2];
    CF_TRY(pipe(pp));
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
    close(pp[1]);
    rd = pp[0];
}

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp));
    pass();
}

static void check(void) {
    char buf[8], cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    CF_EQ("message length", 2, recvmsg(sp[1], &m, MSG_DONTWAIT));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS) {
        cf_fail("no descriptor came with the message");
        return;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    CF_EQ("write through the passed pipe end", 1, write(fd, "p", 1));
    char x = 0;
    CF_EQ("the byte arrives", 1, read(rd, &x, 1));
    close(fd);
    close(rd);
    pass();
}
CF_MAIN
