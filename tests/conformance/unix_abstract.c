/* UNIX socket names: abstract, autobound and unbound sockets of every type.
 * kind: UNIX socket
 * checks: getsockname/getpeername of a stream listener and its accepted connection under an abstract name, an autobound datagram socket (its kernel-chosen name), unbound stream, seqpacket and datagram sockets that were never connected; SO_ACCEPTCONN; SO_TYPE of each
 * root: restored
 */
#include "unix_cf.h"

static int lst, cli, acc, autob, ust, usq, udg;
static char name[64], auto_name[64];

static void setup(void) {
    cf_abstract(name, "cf-abstract");
    lst = cf_bound(SOCK_STREAM, name);
    CF_TRY(listen(lst, 1));
    cli = cf_bound(SOCK_STREAM, NULL);
    cf_connect(cli, name);
    CF_TRY(acc = accept(lst, NULL, NULL));
    autob = cf_bound(SOCK_DGRAM, NULL);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CF_TRY(bind(autob, (struct sockaddr *)&a, sizeof(sa_family_t)));
    cf_name(autob, 0, auto_name, sizeof auto_name);
    ust = cf_bound(SOCK_STREAM, NULL);
    usq = cf_bound(SOCK_SEQPACKET, NULL);
    udg = cf_bound(SOCK_DGRAM, NULL);
}

static void check(void) {
    CF_NAME("listener", lst, name);
    CF_EQ("SO_ACCEPTCONN", 1, cf_opt(lst, SO_ACCEPTCONN));
    CF_NAME("client", cli, "");
    CF_PEER("client", cli, name);
    CF_NAME("accepted side", acc, name);
    CF_PEER("accepted side", acc, "");
    CF_EQ("autobound name length", 6, strlen(auto_name));
    CF_NAME("autobound", autob, auto_name);
    CF_NAME("unbound stream", ust, "");
    CF_PEER("unbound stream", ust, "ERR:ENOTCONN");
    CF_NAME("unbound seqpacket", usq, "");
    CF_NAME("unbound datagram", udg, "");
    CF_EQ("SO_TYPE stream", SOCK_STREAM, cf_opt(ust, SO_TYPE));
    CF_EQ("SO_TYPE seqpacket", SOCK_SEQPACKET, cf_opt(usq, SO_TYPE));
    CF_EQ("SO_TYPE datagram", SOCK_DGRAM, cf_opt(udg, SO_TYPE));
    CF_EQ("SO_ACCEPTCONN of the unbound stream socket", 0, cf_opt(ust, SO_ACCEPTCONN));
    /* The connection works both ways. */
    cf_send(cli, "ping");
    cf_expect("accepted side reads", acc, "ping", NULL, -1);
    cf_send(acc, "pong");
    cf_expect("client reads", cli, "pong", NULL, -1);
}
CF_MAIN
