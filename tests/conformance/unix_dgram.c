/* UNIX datagram sockets: a receiver bound to a path with datagrams queued from several
 * senders, each kept with its sender's address.
 * kind: UNIX socket
 * checks: each queued datagram with its bytes and its sender's address (a path, an abstract name, an autobound name, an unnamed sender, a sender closed since, whose socket file stays); getsockname of every socket; the receiver's socket file mode and owner; SO_TYPE
 * root: restored
 */
#include "unix_cf.h"

static int rcv, by_path, by_abs, unnamed, autob;
static char rcv_path[108], snd_path[108], gone_path[108], abs_name[64], auto_name[64];

static void queue(void) {
    cf_sendto(by_path, "one from a path", rcv_path);
    cf_sendto(unnamed, "two from nobody", rcv_path);
    cf_sendto(by_abs, "three from an abstract name", rcv_path);
    cf_sendto(autob, "four autobound", rcv_path);
    int gone = cf_bound(SOCK_DGRAM, gone_path);
    CF_TRY(chmod(gone_path, 0600));
    cf_sendto(gone, "five from a closed sender", rcv_path);
    close(gone);
    cf_sendto(by_path, "six from a path again", rcv_path);
}

static void setup(void) {
    cf_path(rcv_path, "log.sock");
    cf_path(snd_path, "sender.sock");
    cf_path(gone_path, "gone.sock");
    cf_abstract(abs_name, "cf-dgram");
    rcv = cf_bound(SOCK_DGRAM, rcv_path);
    CF_TRY(chmod(rcv_path, 0666));
    by_path = cf_bound(SOCK_DGRAM, snd_path);
    by_abs = cf_bound(SOCK_DGRAM, abs_name);
    unnamed = cf_bound(SOCK_DGRAM, NULL);
    autob = cf_bound(SOCK_DGRAM, NULL);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CF_TRY(bind(autob, (struct sockaddr *)&a, sizeof(sa_family_t)));
    cf_name(autob, 0, auto_name, sizeof auto_name);
    queue();
}

static void check(void) {
    CF_EQ("SO_TYPE", SOCK_DGRAM, cf_opt(rcv, SO_TYPE));
    CF_NAME("receiver", rcv, rcv_path);
    CF_PEER("receiver", rcv, "ERR:ENOTCONN");
    CF_NAME("sender by path", by_path, snd_path);
    CF_NAME("sender by abstract name", by_abs, abs_name);
    CF_NAME("unnamed sender", unnamed, "");
    CF_NAME("autobound sender", autob, auto_name);
    cf_sockfile(rcv_path, 0666, getuid());
    cf_sockfile(gone_path, 0600, getuid());
    cf_expect("datagram 1", rcv, "one from a path", snd_path, -1);
    cf_expect("datagram 2", rcv, "two from nobody", "", -1);
    cf_expect("datagram 3", rcv, "three from an abstract name", abs_name, -1);
    cf_expect("datagram 4", rcv, "four autobound", auto_name, -1);
    cf_expect("datagram 5", rcv, "five from a closed sender", gone_path, -1);
    cf_expect("datagram 6", rcv, "six from a path again", snd_path, -1);
    cf_expect_empty("receiver after six datagrams", rcv);
    queue();
}
CF_MAIN
