/* Established TCP connections over IPv4 loopback: addresses, unread data both ways, O_NONBLOCK.
 * kind: TCP socket
 * checks: getsockname/getpeername of both ends, unread data both ways (content, FIONREAD), O_NONBLOCK, the connection carries new data
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"

static int c1, s1, c2, s2;
static char names[4][2][128];

static void setup(void) {
    inet_pair(AF_INET, &c1, &s1, NULL);
    inet_pair(AF_INET, &c2, &s2, NULL);
    inet_send_pattern(c1, 1, 20000);
    inet_send_pattern(s1, 2, 3333);
    inet_send_pattern(c2, 3, 1);
    fcntl(s2, F_SETFL, fcntl(s2, F_GETFL) | O_NONBLOCK);
    int fds[4] = {c1, s1, c2, s2};
    for (int i = 0; i < 4; i++) {
        inet_name(fds[i], 0, names[i][0], 128);
        inet_name(fds[i], 1, names[i][1], 128);
    }
}

static void check(void) {
    int fds[4] = {c1, s1, c2, s2};
    const char *what[4] = {"client 1", "server 1", "client 2", "server 2"};
    for (int i = 0; i < 4; i++) inet_check_names(what[i], fds[i], names[i][0], names[i][1]);
    inet_check_unread("server 1 unread", s1, 1, 20000);
    inet_check_unread("client 1 unread", c1, 2, 3333);
    inet_check_unread("server 2 unread", s2, 3, 1);
    inet_check_unread("client 2 unread", c2, 0, 0);
    CF_EQ("server 2 O_NONBLOCK", O_NONBLOCK, fcntl(s2, F_GETFL) & O_NONBLOCK);
    CF_EQ("client 2 O_NONBLOCK", 0, fcntl(c2, F_GETFL) & O_NONBLOCK);
    CF_EQ("client 1 state", TCP_ESTABLISHED, inet_tcp_state(c1));
    inet_check_live("server 2 -> client 2", s2, c2);
}
CF_MAIN
