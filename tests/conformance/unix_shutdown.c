/* shutdown(2) states of UNIX sockets of each type, each end.
 * kind: UNIX socket
 * checks: SHUT_WR of one stream end (its sends fail with EPIPE, the peer reads the queued bytes then end of file); SHUT_RD of a stream end (reads give end of file, the peer's sends fail with EPIPE); SHUT_RDWR of a seqpacket end with a record queued for its peer; SHUT_WR and SHUT_RD of datagram socketpair ends (no effect on the peer's direction)
 * root: restored
 */
#include "unix_cf.h"

static int w[2], r[2], sq[2], dw[2], dr[2];

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, w));
    cf_send(w[0], "tail");
    CF_TRY(shutdown(w[0], SHUT_WR));
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, r));
    CF_TRY(shutdown(r[0], SHUT_RD));
    CF_TRY(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq));
    cf_send(sq[0], "last record");
    CF_TRY(shutdown(sq[0], SHUT_RDWR));
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dw));
    CF_TRY(shutdown(dw[0], SHUT_WR));
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, dr));
    CF_TRY(shutdown(dr[0], SHUT_RD));
}

static long sendres(int fd) {
    ssize_t n = send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

/* Peeks the queue through SO_PEEK_OFF: `want` then end of file, without consuming. */
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

static void check(void) {
    CF_EQ("send on the SHUT_WR stream end", -EPIPE, sendres(w[0]));
    peek_then_eof("its peer", w[1], "tail");
    CF_EQ("the peer of SHUT_WR can still send", 1, sendres(w[1]));
    char b[4];
    CF_EQ("SHUT_WR end reads what its peer sent", 1, recv(w[0], b, sizeof b, MSG_DONTWAIT));
    CF_EQ("read on the SHUT_RD stream end", 0, recv(r[0], b, sizeof b, MSG_DONTWAIT));
    CF_EQ("send to the SHUT_RD end", -EPIPE, sendres(r[1]));
    CF_EQ("the SHUT_RD end can still send", 1, sendres(r[0]));
    CF_EQ("its peer reads it", 1, recv(r[1], b, sizeof b, MSG_DONTWAIT));
    CF_EQ("send on the SHUT_RDWR seqpacket end", -EPIPE, sendres(sq[0]));
    CF_EQ("send to the SHUT_RDWR seqpacket end", -EPIPE, sendres(sq[1]));
    peek_then_eof("seqpacket peer", sq[1], "last record");
    CF_EQ("send on the SHUT_WR datagram end", -EPIPE, sendres(dw[0]));
    CF_EQ("the peer of the SHUT_WR datagram end sends", 1, sendres(dw[1]));
    CF_EQ("and the SHUT_WR end receives", 1, recv(dw[0], b, sizeof b, MSG_DONTWAIT));
    CF_EQ("send to the SHUT_RD datagram end", -EPIPE, sendres(dr[1]));
    CF_EQ("the SHUT_RD datagram end sends", 1, sendres(dr[0]));
    CF_EQ("its peer receives", 1, recv(dr[1], b, sizeof b, MSG_DONTWAIT));
}
CF_MAIN
