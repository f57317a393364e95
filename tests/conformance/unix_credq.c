/* Queued messages whose receiver has SO_PASSCRED: each carries its sender's credentials.
 * kind: UNIX socket
 * checks: a datagram queued before the checkpoint arrives with SCM_CREDENTIALS of its sender (pid, uid, gid)
 * root: refused: senders' credentials
 */
#include "unix_cf.h"

static int dg[2];

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    int one = 1;
    CF_TRY(setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    cf_send(dg[0], "abc");
}

static void check(void) {
    char buf[16], cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    CF_EQ("queued message", 3, recvmsg(dg[1], &m, MSG_DONTWAIT));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_CREDENTIALS) {
        cf_fail("no SCM_CREDENTIALS");
    } else {
        struct ucred u;
        memcpy(&u, CMSG_DATA(c), sizeof u);
        CF_EQ("SCM_CREDENTIALS pid", getpid(), u.pid);
        CF_EQ("SCM_CREDENTIALS uid", getuid(), u.uid);
    }
    cf_send(dg[0], "abc");
}
CF_MAIN
