/* UNIX stream sockets: a socketpair and a connection accepted from a listener on a path.
 * kind: UNIX socket
 * checks: socketpair and accepted connection with unread data both ways; getsockname/getpeername of listener, client (bound) and accepted side; socket files' mode and owner; SO_TYPE, SO_ACCEPTCONN; SO_PEERCRED uid/gid; O_NONBLOCK
 * root: restored
 */
#include "unix_cf.h"

static int sp[2], lst, cli, acc;
static char srv_path[108], cli_path[108];

static void setup(void) {
    CF_TRY(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    CF_TRY(fcntl(sp[0], F_SETFL, O_NONBLOCK));
    cf_send(sp[0], "hello");
    cf_send(sp[1], "world!");
    cf_path(srv_path, "srv.sock");
    cf_path(cli_path, "cli.sock");
    lst = cf_bound(SOCK_STREAM, srv_path);
    CF_TRY(chmod(srv_path, 0640));
    CF_TRY(listen(lst, 5));
    cli = cf_bound(SOCK_STREAM, cli_path);
    CF_TRY(chmod(cli_path, 0604));
    cf_connect(cli, srv_path);
    CF_TRY(acc = accept(lst, NULL, NULL));
    cf_send(cli, "from-client");
    cf_send(acc, "from-server");
}

static void check(void) {
    CF_NAME("socketpair end", sp[0], "");
    CF_PEER("socketpair end", sp[1], "");
    CF_EQ("SO_TYPE", SOCK_STREAM, cf_opt(sp[0], SO_TYPE));
    CF_EQ("O_NONBLOCK of the first end", O_NONBLOCK, fcntl(sp[0], F_GETFL) & O_NONBLOCK);
    CF_EQ("no O_NONBLOCK on the second end", 0, fcntl(sp[1], F_GETFL) & O_NONBLOCK);
    CF_NAME("listener", lst, srv_path);
    CF_EQ("SO_ACCEPTCONN of the listener", 1, cf_opt(lst, SO_ACCEPTCONN));
    CF_EQ("SO_ACCEPTCONN of the client", 0, cf_opt(cli, SO_ACCEPTCONN));
    CF_NAME("client", cli, cli_path);
    CF_PEER("client", cli, srv_path);
    CF_NAME("accepted side", acc, srv_path);
    CF_PEER("accepted side", acc, cli_path);
    cf_sockfile(srv_path, 0640, getuid());
    cf_sockfile(cli_path, 0604, getuid());
    struct ucred cr;
    socklen_t l = sizeof cr;
    CF_TRY(getsockopt(acc, SOL_SOCKET, SO_PEERCRED, &cr, &l));
    CF_EQ("SO_PEERCRED uid", getuid(), cr.uid);
    CF_EQ("SO_PEERCRED gid", getgid(), cr.gid);
    /* Unread data, read and queued again for the next check. */
    cf_expect("unread on socketpair end 1", sp[1], "hello", NULL, -1);
    cf_expect("unread on socketpair end 0", sp[0], "world!", NULL, -1);
    cf_expect("unread on the accepted side", acc, "from-client", NULL, -1);
    cf_expect("unread on the client", cli, "from-server", NULL, -1);
    cf_expect_empty("socketpair end 1 after reading", sp[1]);
    cf_expect_empty("client after reading", cli);
    cf_send(sp[0], "hello");
    cf_send(sp[1], "world!");
    cf_send(cli, "from-client");
    cf_send(acc, "from-server");
}
CF_MAIN
