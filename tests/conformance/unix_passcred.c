/* SO_PASSCRED: credentials of messages sent after the restart, and SO_PEERCRED.
 * kind: UNIX socket
 * checks: SO_PASSCRED on a datagram and a stream socket; a message sent after the restart carries SCM_CREDENTIALS with the sender's pid, uid and gid; SO_PEERCRED uid and gid; the unbound socket with SO_PASSCRED stays unnamed
 * root: restored
 */
#include "unix_cf.h"

static int dg[2], st[2];

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, st));
    int one = 1;
    CF_TRY(setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    CF_TRY(setsockopt(st[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
}

static void creds(const char *what, int fd) {
    char buf[16], cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n != 3) cf_fail("%s: message of %zd bytes", what, n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_CREDENTIALS) {
        cf_fail("%s: no SCM_CREDENTIALS", what);
        return;
    }
    struct ucred u;
    memcpy(&u, CMSG_DATA(c), sizeof u);
    CF_EQ("SCM_CREDENTIALS pid", getpid(), u.pid);
    CF_EQ("SCM_CREDENTIALS uid", getuid(), u.uid);
    CF_EQ("SCM_CREDENTIALS gid", getgid(), u.gid);
}

static void check(void) {
    CF_EQ("SO_PASSCRED of the datagram receiver", 1, cf_opt(dg[1], SO_PASSCRED));
    CF_EQ("SO_PASSCRED of the stream receiver", 1, cf_opt(st[1], SO_PASSCRED));
    CF_EQ("SO_PASSCRED of the sender", 0, cf_opt(dg[0], SO_PASSCRED));
    CF_NAME("datagram receiver", dg[1], "");
    CF_NAME("stream receiver", st[1], "");
    cf_send(dg[0], "abc");
    creds("datagram", dg[1]);
    cf_send(st[0], "abc");
    creds("stream", st[1]);
    struct ucred cr;
    socklen_t l = sizeof cr;
    CF_TRY(getsockopt(st[0], SOL_SOCKET, SO_PEERCRED, &cr, &l));
    CF_EQ("SO_PEERCRED uid", getuid(), cr.uid);
    CF_EQ("SO_PEERCRED gid", getgid(), cr.gid);
}
CF_MAIN
