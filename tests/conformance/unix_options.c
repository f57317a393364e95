/* Socket options of UNIX sockets.
 * kind: UNIX socket
 * checks: SO_RCVBUF, SO_SNDBUF, SO_PASSCRED, SO_RCVTIMEO, SO_SNDTIMEO, SO_RCVLOWAT, SO_PEEK_OFF and O_NONBLOCK of a stream socketpair's ends and of a bound datagram socket, as getsockopt/fcntl read them
 * root: restored
 */
#include "unix_cf.h"

static int sp[2], dg;
static int want_rcv, want_snd, want_dsnd;
static char dg_path[108];

static struct timeval tv(int fd, int opt) {
    struct timeval t = {-1, -1};
    socklen_t l = sizeof t;
    if (getsockopt(fd, SOL_SOCKET, opt, &t, &l) < 0) cf_fail("getsockopt: %s", strerrorname_np(errno));
    return t;
}

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    int v = 12345;
    CF_TRY(setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    v = 23456;
    CF_TRY(setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    want_rcv = cf_opt(sp[0], SO_RCVBUF);
    want_snd = cf_opt(sp[1], SO_SNDBUF);
    int one = 1;
    CF_TRY(setsockopt(sp[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    struct timeval r = {2, 500000}, s = {3, 0};
    CF_TRY(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &r, sizeof r));
    CF_TRY(setsockopt(sp[1], SOL_SOCKET, SO_SNDTIMEO, &s, sizeof s));
    v = 4;
    CF_TRY(setsockopt(sp[1], SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v));
    v = 2;
    CF_TRY(setsockopt(sp[1], SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    CF_TRY(fcntl(sp[1], F_SETFL, O_NONBLOCK));
    cf_path(dg_path, "opts.sock");
    dg = cf_bound(SOCK_DGRAM, dg_path);
    v = 65536;
    CF_TRY(setsockopt(dg, SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    want_dsnd = cf_opt(dg, SO_SNDBUF);
    CF_TRY(setsockopt(dg, SOL_SOCKET, SO_RCVTIMEO, &s, sizeof s));
    CF_TRY(setsockopt(dg, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    CF_TRY(fcntl(dg, F_SETFL, O_NONBLOCK));
}

static void check(void) {
    CF_EQ("SO_RCVBUF", want_rcv, cf_opt(sp[0], SO_RCVBUF));
    CF_EQ("SO_SNDBUF", want_snd, cf_opt(sp[1], SO_SNDBUF));
    CF_EQ("SO_SNDBUF of the datagram socket", want_dsnd, cf_opt(dg, SO_SNDBUF));
    CF_EQ("SO_PASSCRED", 1, cf_opt(sp[0], SO_PASSCRED));
    CF_EQ("no SO_PASSCRED", 0, cf_opt(sp[1], SO_PASSCRED));
    CF_EQ("SO_PASSCRED of the datagram socket", 1, cf_opt(dg, SO_PASSCRED));
    struct timeval t = tv(sp[0], SO_RCVTIMEO);
    CF_EQ("SO_RCVTIMEO seconds", 2, t.tv_sec);
    CF_EQ("SO_RCVTIMEO microseconds", 500000, t.tv_usec);
    t = tv(sp[1], SO_SNDTIMEO);
    CF_EQ("SO_SNDTIMEO seconds", 3, t.tv_sec);
    t = tv(sp[0], SO_SNDTIMEO);
    CF_EQ("no SO_SNDTIMEO", 0, t.tv_sec + t.tv_usec);
    t = tv(dg, SO_RCVTIMEO);
    CF_EQ("SO_RCVTIMEO of the datagram socket", 3, t.tv_sec);
    CF_EQ("SO_RCVLOWAT", 4, cf_opt(sp[1], SO_RCVLOWAT));
    CF_EQ("default SO_RCVLOWAT", 1, cf_opt(sp[0], SO_RCVLOWAT));
    CF_EQ("SO_PEEK_OFF", 2, cf_opt(sp[1], SO_PEEK_OFF));
    CF_EQ("SO_PEEK_OFF off", -1, cf_opt(sp[0], SO_PEEK_OFF));
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(sp[1], F_GETFL) & O_NONBLOCK);
    CF_EQ("no O_NONBLOCK", 0, fcntl(sp[0], F_GETFL) & O_NONBLOCK);
    CF_EQ("O_NONBLOCK of the datagram socket", O_NONBLOCK, fcntl(dg, F_GETFL) & O_NONBLOCK);
    CF_NAME("socketpair end with SO_PASSCRED", sp[0], "");
    CF_NAME("datagram socket", dg, dg_path);
}
CF_MAIN
