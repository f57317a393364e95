/* UNIX seqpacket sockets: message boundaries of queued records, a socketpair and a connection
 * accepted from a listener with an abstract name.
 * kind: UNIX socket
 * checks: each queued record with its length (no merging, no truncation; a short read truncates one record only, MSG_TRUNC) both ways, on a socketpair and an accepted connection; records sent with MSG_EOR (the kernel reports no MSG_EOR on receipt, before and after); getsockname/getpeername with an abstract name; SO_TYPE
 * root: restored
 */
#include "unix_cf.h"

static int sp[2], lst, cli, acc;
static char name[64];

static void queue(void) {
    cf_send(sp[0], "a");
    cf_send(sp[0], "bb");
    CF_TRY(send(sp[0], "ccc", 3, MSG_EOR | MSG_DONTWAIT));
    cf_send(sp[0], "dddd");
    cf_send(sp[1], "xyz");
    cf_send(cli, "first record");
    cf_send(cli, "2");
    cf_send(acc, "reply");
}

static void setup(void) {
    cf_abstract(name, "cf-seq");
    CF_TRY(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp));
    lst = cf_bound(SOCK_SEQPACKET, name);
    CF_TRY(listen(lst, 3));
    cli = cf_bound(SOCK_SEQPACKET, NULL);
    cf_connect(cli, name);
    CF_TRY(acc = accept(lst, NULL, NULL));
    queue();
}

static void check(void) {
    CF_EQ("SO_TYPE", SOCK_SEQPACKET, cf_opt(acc, SO_TYPE));
    CF_NAME("listener", lst, name);
    CF_NAME("accepted side", acc, name);
    CF_PEER("accepted side", acc, "");
    CF_NAME("client", cli, "");
    CF_PEER("client", cli, name);
    cf_expect("record 1", sp[1], "a", NULL, 0);
    cf_expect("record 2", sp[1], "bb", NULL, 0);
    cf_expect("record 3 (sent with MSG_EOR)", sp[1], "ccc", NULL, 0);
    char one;
    struct iovec iov = {&one, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CF_EQ("short read of record 4", 1, recvmsg(sp[1], &m, MSG_DONTWAIT));
    CF_EQ("MSG_TRUNC of the short read", MSG_TRUNC, m.msg_flags & MSG_TRUNC);
    cf_expect_empty("socketpair end 1", sp[1]);
    cf_expect("record on end 0", sp[0], "xyz", NULL, -1);
    cf_expect("accepted record 1", acc, "first record", NULL, -1);
    cf_expect("accepted record 2", acc, "2", NULL, -1);
    cf_expect_empty("accepted side", acc);
    cf_expect("client record", cli, "reply", NULL, -1);
    queue();
}
CF_MAIN
