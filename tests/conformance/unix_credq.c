/* Queued messages whose receiver has SO_PASSCRED: each carries its sender's credentials.
 * kind: UNIX socket
 * checks: datagrams and stream bytes queued before the checkpoint by the program and by its child arrive with SCM_CREDENTIALS of their sender (pid, uid, gid); the stream's runs from the two senders are not merged
 * root: restored
 * user: refused: only root can send again in the senders' names
 */
#include "unix_cf.h"

static int dg[2], st[2], ctl[2], ack[2];
static pid_t child;

static void child_sends(void) {
    cf_send(dg[0], "from the child");
    cf_send(st[0], "child bytes");
}

static void queue(void) {
    cf_send(dg[0], "from the parent");
    cf_send(st[0], "parent bytes");
    if (write(ctl[1], "s", 1) != 1) exit(2);
    char c;
    if (read(ack[0], &c, 1) != 1) exit(2);
}

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, st));
    int one = 1;
    CF_TRY(setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    CF_TRY(setsockopt(st[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    CF_TRY(pipe(ctl));
    CF_TRY(pipe(ack));
    CF_TRY(child = fork());
    if (child == 0) {
        char c;
        close(ctl[1]); /* EOF once the first process ends: the child ends with it */
        while (read(ctl[0], &c, 1) == 1) {
            child_sends();
            if (write(ack[1], "k", 1) != 1) exit(2);
        }
        exit(0);
    }
    queue();
}

static void expect(const char *what, int fd, const char *want, pid_t pid) {
    char buf[64], cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) != 0)
        cf_fail("%s: expected \"%s\", got %zd bytes \"%.*s\"", what, want, n, n > 0 ? (int)n : 0, buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_CREDENTIALS) {
        cf_fail("%s: no SCM_CREDENTIALS", what);
        return;
    }
    struct ucred u;
    memcpy(&u, CMSG_DATA(c), sizeof u);
    CF_EQ("SCM_CREDENTIALS pid", pid, u.pid);
    CF_EQ("SCM_CREDENTIALS uid", getuid(), u.uid);
    CF_EQ("SCM_CREDENTIALS gid", getgid(), u.gid);
}

static void check(void) {
    expect("parent's datagram", dg[1], "from the parent", getpid());
    expect("child's datagram", dg[1], "from the child", child);
    expect("parent's stream bytes", st[1], "parent bytes", getpid());
    expect("child's stream bytes", st[1], "child bytes", child);
    cf_expect_empty("datagram receiver", dg[1]);
    cf_expect_empty("stream receiver", st[1]);
    queue();
}
CF_MAIN
