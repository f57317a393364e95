/* Half-closed TCP connections: one end shut down writing, and one whose peer closed.
 * kind: TCP socket
 * checks: shutdown(SHUT_WR) (state, the peer reads the data then end of file, the other direction still carries data), a connection whose peer closed after sending (data then end of file), shutdown(SHUT_RD)
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"

static int c1, s1, c2, s2, c3, s3;

static void setup(void) {
    inet_pair(AF_INET, &c1, &s1, NULL);
    inet_send_pattern(c1, 21, 9000);
    CF_TRY(shutdown(c1, SHUT_WR));
    inet_pair(AF_INET, &c2, &s2, NULL);
    inet_send_pattern(s2, 22, 1234);
    close(s2); /* c2's peer is gone */
    inet_pair(AF_INET, &c3, &s3, NULL);
    CF_TRY(shutdown(c3, SHUT_RD));
    usleep(100000);
}

/* Checks that fd has exactly n pattern bytes, then end of file, without consuming. */
static void check_eof(const char *what, int fd, unsigned seed, size_t n) {
    inet_check_unread(what, fd, seed, n);
    unsigned char *buf = malloc(n + 10);
    ssize_t r = recv(fd, buf, n + 10, MSG_PEEK | MSG_DONTWAIT);
    free(buf);
    CF_EQ(what, (long long)n, r);
}

static void check(void) {
    /* The acknowledgement of a FIN may be delayed: FIN_WAIT1 for a moment. */
    for (int i = 0; i < 100 && inet_tcp_state(c1) == TCP_FIN_WAIT1; i++) usleep(10000);
    CF_EQ("SHUT_WR client state", TCP_FIN_WAIT2, inet_tcp_state(c1));
    CF_EQ("its server state", TCP_CLOSE_WAIT, inet_tcp_state(s1));
    check_eof("server reads data then EOF", s1, 21, 9000);
    inet_check_live("server -> half-closed client", s1, c1);
    CF_EQ("peer-closed client state", TCP_CLOSE_WAIT, inet_tcp_state(c2));
    check_eof("peer-closed client reads data then EOF", c2, 22, 1234);
    char b;
    CF_EQ("SHUT_RD client reads EOF", 0, recv(c3, &b, 1, MSG_PEEK | MSG_DONTWAIT));
    inet_check_live("SHUT_RD client -> server", c3, s3);
    CF_EQ("SHUT_RD client state", TCP_ESTABLISHED, inet_tcp_state(c3));
}
CF_MAIN
