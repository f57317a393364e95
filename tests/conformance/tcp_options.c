/* Socket options of established TCP connections.
 * kind: TCP socket
 * checks: TCP_NODELAY, TCP_CORK, SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT, SO_RCVBUF, SO_SNDBUF, SO_REUSEADDR, SO_REUSEPORT, SO_LINGER, SO_RCVTIMEO, IP_TOS, IP_TTL, SO_PRIORITY, SO_RCVLOWAT
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"
#include <sys/time.h>

static int c, s;

struct opt { int level, name, value; const char *what; };
static struct opt copts[] = {
    {IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
    {SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
    {IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE"},
    {IPPROTO_TCP, TCP_KEEPINTVL, 9, "TCP_KEEPINTVL"},
    {IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT"},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT"},
    {SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"},
    {SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"},
    {IP_TOS, IP_TOS, 0, NULL},
};
static struct opt sopts[] = {
    {IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK"},
    {IPPROTO_IP, IP_TOS, 0x10, "IP_TOS"},
    {IPPROTO_IP, IP_TTL, 33, "IP_TTL"},
    {SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY"},
    {SOL_SOCKET, SO_RCVLOWAT, 10, "SO_RCVLOWAT"},
    {SOL_SOCKET, SO_SNDBUF, 50000, NULL},
    {SOL_SOCKET, SO_RCVBUF, 60000, NULL},
};

static void set_all(int fd, struct opt *o, int n) {
    for (int i = 0; i < n; i++) {
        if (o[i].level == IP_TOS && o[i].what == NULL) continue;
        CF_TRY(setsockopt(fd, o[i].level, o[i].name, &o[i].value, sizeof(int)));
    }
}

static void check_all(const char *who, int fd, struct opt *o, int n) {
    char w[96];
    for (int i = 0; i < n; i++) {
        if (o[i].what == NULL) continue;
        int v = -1;
        socklen_t len = sizeof v;
        getsockopt(fd, o[i].level, o[i].name, &v, &len);
        snprintf(w, sizeof w, "%s %s", who, o[i].what);
        CF_EQ(w, o[i].value, v);
    }
}

static int sndbuf, rcvbuf;

static void setup(void) {
    inet_pair(AF_INET, &c, &s, NULL);
    set_all(c, copts, sizeof copts / sizeof *copts);
    set_all(s, sopts, sizeof sopts / sizeof *sopts);
    struct linger lg = {1, 7};
    CF_TRY(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    struct timeval tv = {3, 0};
    CF_TRY(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    socklen_t len = sizeof sndbuf;
    getsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
    len = sizeof rcvbuf;
    getsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
}

static void check(void) {
    check_all("client", c, copts, sizeof copts / sizeof *copts);
    check_all("server", s, sopts, sizeof sopts / sizeof *sopts);
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &len);
    CF_EQ("server SO_SNDBUF", sndbuf, v);
    getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &len);
    CF_EQ("server SO_RCVBUF", rcvbuf, v);
    getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &len);
    CF_EQ("server SO_REUSEADDR", 0, v);
    getsockopt(c, IPPROTO_TCP, TCP_CORK, &v, &len);
    CF_EQ("client TCP_CORK", 0, v);
    struct linger lg = {0, 0};
    len = sizeof lg;
    getsockopt(c, SOL_SOCKET, SO_LINGER, &lg, &len);
    CF_EQ("client SO_LINGER on", 1, lg.l_onoff);
    CF_EQ("client SO_LINGER time", 7, lg.l_linger);
    struct timeval tv = {0, 0};
    len = sizeof tv;
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
    CF_EQ("server SO_RCVTIMEO", 3000000, tv.tv_sec * 1000000 + tv.tv_usec);
    inet_check_live("client -> server", c, s);
}
CF_MAIN
