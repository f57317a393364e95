/* UNIX sockets whose peer was closed.
 * kind: UNIX socket
 * checks: a stream socket whose peer closed after sending reads the bytes then end of file; one whose peer closed with unread data has ECONNRESET pending (POLLERR) after its queued bytes; a seqpacket socket reads its last record then end of file; a datagram socket whose peer closed keeps its queued datagram and its (closed) peer; sends fail with EPIPE
 * root: restored
 */
#include "unix_cf.h"
#include <poll.h>

static int st, rs, sq, dg;

static int closed_pair(int type, const char *to_me, const char *to_peer) {
    int p[2];
    CF_TRY(socketpair(AF_UNIX, type, 0, p));
    if (to_me) cf_send(p[1], to_me);
    if (to_peer) cf_send(p[0], to_peer);
    close(p[1]);
    return p[0];
}

static void setup(void) {
    st = closed_pair(SOCK_STREAM, "bye", NULL);
    rs = closed_pair(SOCK_STREAM, "last words", "never read");
    sq = closed_pair(SOCK_SEQPACKET, "final record", NULL);
    dg = closed_pair(SOCK_DGRAM, "last datagram", NULL);
}

static void peek_then_eof(const char *what, int fd, const char *want) {
    int zero = 0, off = -1;
    CF_TRY(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero));
    char b[32];
    ssize_t n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    if (n != (ssize_t)strlen(want) || memcmp(b, want, n) != 0)
        cf_fail("%s: expected \"%s\", peeked %zd bytes", what, want, n);
    n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    CF_EQ("end of file after the queued data", 0, n < 0 ? -errno : n);
    CF_TRY(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off));
}

static short revents(int fd) {
    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    poll(&p, 1, 0);
    return p.revents;
}

static void check(void) {
    peek_then_eof("stream", st, "bye");
    CF_EQ("poll of the stream socket", POLLIN | POLLOUT | POLLHUP, revents(st));
    CF_EQ("send on the stream socket", -EPIPE, send(st, "x", 1, MSG_NOSIGNAL) < 0 ? -errno : 0);
    CF_EQ("poll of the reset stream socket", POLLIN | POLLOUT | POLLHUP | POLLERR, revents(rs));
    char b[32];
    ssize_t n = recv(rs, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    CF_EQ("queued bytes before ECONNRESET", 10, n);
    peek_then_eof("seqpacket", sq, "final record");
    CF_PEER("datagram socket's closed peer", dg, "");
    n = recv(dg, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    CF_EQ("queued datagram", 13, n);
    CF_EQ("poll of the datagram socket", POLLIN | POLLOUT, revents(dg));
}
CF_MAIN
