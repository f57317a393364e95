/* Established TCP connections over IPv6 loopback, and a dual-stack one (IPv4 client, IPv6 server).
 * kind: TCP socket
 * checks: getsockname/getpeername (IPv6, IPv4-mapped), unread data both ways, IPV6_V6ONLY, the connection carries new data
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"

static int c1, s1, c2, s2, l2;
static char names[4][2][128];

static void setup(void) {
    inet_pair(AF_INET6, &c1, &s1, NULL);
    /* Dual stack: a listener on [::] with IPV6_V6ONLY off, reached over 127.0.0.1. */
    CF_TRY(l2 = socket(AF_INET6, SOCK_STREAM, 0));
    int off = 0;
    CF_TRY(setsockopt(l2, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off));
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    CF_TRY(bind(l2, (struct sockaddr *)&a6, sizeof a6));
    CF_TRY(listen(l2, 4));
    socklen_t len = sizeof a6;
    CF_TRY(getsockname(l2, (struct sockaddr *)&a6, &len));
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = a6.sin6_port,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CF_TRY(c2 = socket(AF_INET, SOCK_STREAM, 0));
    CF_TRY(connect(c2, (struct sockaddr *)&a4, sizeof a4));
    CF_TRY(s2 = accept(l2, NULL, NULL));
    inet_send_pattern(c1, 11, 70000);
    inet_send_pattern(s1, 12, 5);
    inet_send_pattern(s2, 13, 4096);
    int fds[4] = {c1, s1, c2, s2};
    for (int i = 0; i < 4; i++) {
        inet_name(fds[i], 0, names[i][0], 128);
        inet_name(fds[i], 1, names[i][1], 128);
    }
}

static void check(void) {
    int fds[4] = {c1, s1, c2, s2};
    const char *what[4] = {"v6 client", "v6 server", "v4 client", "dual-stack server"};
    for (int i = 0; i < 4; i++) inet_check_names(what[i], fds[i], names[i][0], names[i][1]);
    inet_check_unread("v6 server unread", s1, 11, 70000);
    inet_check_unread("v6 client unread", c1, 12, 5);
    inet_check_unread("v4 client unread", c2, 13, 4096);
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(l2, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len);
    CF_EQ("listener IPV6_V6ONLY", 0, v);
    char ln[128];
    CF_STREQ("listener address", names[3][0] + 0 == NULL ? "" : inet_name(l2, 0, ln, sizeof ln),
             inet_name(l2, 0, ln, sizeof ln));
    inet_check_live("dual-stack server -> v4 client", c2, s2);
}
CF_MAIN
