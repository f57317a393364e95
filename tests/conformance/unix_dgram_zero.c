/* A zero-length datagram queued between two others.
 * kind: UNIX socket
 * checks: the three datagrams arrive in order, the middle one empty
 * root: refused: zero-length datagram
 */
#include "unix_cf.h"

static int sp[2];

static void queue(void) {
    cf_send(sp[0], "before");
    CF_TRY(send(sp[0], "", 0, MSG_DONTWAIT));
    cf_send(sp[0], "after");
}

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp));
    queue();
}

static void check(void) {
    cf_expect("first", sp[1], "before", NULL, -1);
    cf_expect("empty", sp[1], "", NULL, -1);
    cf_expect("last", sp[1], "after", NULL, -1);
    queue();
}
CF_MAIN
