/* Descriptors in flight: messages carrying descriptors (SCM_RIGHTS) not received yet, on a
 * datagram, a stream and a seqpacket socketpair; the descriptors are also open in the program.
 * kind: UNIX socket
 * checks: each message arrives with its descriptors (the same pipe and socket: same inode, a byte written through the received pipe end arrives), in the same place in the stream (a read ends with the bytes that carry descriptors), with the records without descriptors in between
 * root: restored
 */
#include "unix_cf.h"

static int pp[2], dg[2], st[2], sq[2];

static void pass(int fd, const char *data, int n, const int *fds) {
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n) {
        m.msg_control = cbuf;
        m.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    }
    CF_TRY(sendmsg(fd, &m, MSG_DONTWAIT));
}

static void queue(void) {
    int both[2] = {pp[1], dg[0]};
    pass(dg[0], "fd", 1, &pp[1]);
    pass(st[0], "head", 0, NULL);
    pass(st[0], "body", 2, both);
    pass(st[0], "tail", 0, NULL);
    pass(sq[0], "one", 1, &pp[1]);
    pass(sq[0], "two", 0, NULL);
}

static void setup(void) {
    CF_TRY(pipe(pp));
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, st));
    CF_TRY(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq));
    queue();
}

static unsigned long ino(int fd) {
    struct stat s;
    return fstat(fd, &s) < 0 ? 0 : s.st_ino;
}

/* Receives one message: checks its bytes and that it carries descriptors of the same files as
 * `want` (n of them); each received descriptor is closed. */
static void expect(const char *what, int fd, const char *data, int n, const int *want) {
    char buf[64], cbuf[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r != (ssize_t)strlen(data) || memcmp(buf, data, r) != 0)
        cf_fail("%s: expected \"%s\", got %zd bytes \"%.*s\"", what, data, r, r > 0 ? (int)r : 0, buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int got = (c && c->cmsg_type == SCM_RIGHTS) ? (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0;
    CF_EQ("number of descriptors", n, got);
    for (int i = 0; i < got && i < n; i++) {
        int f;
        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        CF_EQ("inode of a received descriptor", ino(want[i]), ino(f));
        if (want[i] == pp[1]) {
            char x = 0;
            CF_EQ("write through the received pipe end", 1, write(f, "p", 1));
            CF_EQ("the byte arrives", 1, read(pp[0], &x, 1));
        }
        close(f);
    }
}

static void check(void) {
    int both[2] = {pp[1], dg[0]};
    expect("datagram", dg[1], "fd", 1, &pp[1]);
    expect("stream read up to the descriptors", st[1], "headbody", 2, both);
    expect("stream rest", st[1], "tail", 0, NULL);
    expect("seqpacket record with a descriptor", sq[1], "one", 1, &pp[1]);
    expect("seqpacket record without", sq[1], "two", 0, NULL);
    cf_expect_empty("datagram", dg[1]);
    cf_expect_empty("stream", st[1]);
    queue();
}
CF_MAIN
