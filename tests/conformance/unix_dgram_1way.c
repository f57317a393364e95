/* UNIX datagram sockets connected one way, as to a syslog-style receiver, and two bound
 * datagram sockets connected to each other.
 * kind: UNIX socket
 * checks: several senders connected to one bound receiver (getpeername of each, the receiver unconnected), their queued datagrams with each sender's address, send() without an address after the restart; a pair of bound sockets connected to each other with datagrams queued both ways; a connected receiver refuses other senders (EPERM)
 * root: restored
 */
#include "unix_cf.h"

static int rcv, s1, s2, s3, p1, p2, stranger;
static char rcv_path[108], abs_name[64], p1_path[108], p2_name[64], s3_name[64];

static void queue(void) {
    cf_send(s1, "s1 first");
    cf_send(s2, "s2 first");
    cf_send(s3, "s3 first");
    cf_send(s1, "s1 second");
    cf_send(p1, "to p2");
    cf_send(p2, "to p1");
    cf_send(p2, "to p1 again");
}

static void setup(void) {
    cf_path(rcv_path, "syslog.sock");
    cf_path(p1_path, "p1.sock");
    cf_abstract(abs_name, "cf-1way");
    cf_abstract(p2_name, "cf-p2");
    rcv = cf_bound(SOCK_DGRAM, rcv_path);
    s1 = cf_bound(SOCK_DGRAM, NULL);
    s2 = cf_bound(SOCK_DGRAM, abs_name);
    s3 = cf_bound(SOCK_DGRAM, NULL);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CF_TRY(bind(s3, (struct sockaddr *)&a, sizeof(sa_family_t)));
    cf_name(s3, 0, s3_name, sizeof s3_name);
    cf_connect(s1, rcv_path);
    cf_connect(s2, rcv_path);
    cf_connect(s3, rcv_path);
    p1 = cf_bound(SOCK_DGRAM, p1_path);
    p2 = cf_bound(SOCK_DGRAM, p2_name);
    cf_connect(p1, p2_name);
    cf_connect(p2, p1_path);
    stranger = cf_bound(SOCK_DGRAM, NULL);
    queue();
}

static void check(void) {
    CF_NAME("receiver", rcv, rcv_path);
    CF_PEER("receiver", rcv, "ERR:ENOTCONN");
    CF_PEER("unnamed sender", s1, rcv_path);
    CF_NAME("unnamed sender", s1, "");
    CF_PEER("abstract sender", s2, rcv_path);
    CF_NAME("abstract sender", s2, abs_name);
    CF_PEER("autobound sender", s3, rcv_path);
    CF_NAME("autobound sender", s3, s3_name);
    CF_NAME("p1", p1, p1_path);
    CF_PEER("p1", p1, p2_name);
    CF_NAME("p2", p2, p2_name);
    CF_PEER("p2", p2, p1_path);
    cf_expect("datagram 1", rcv, "s1 first", "", -1);
    cf_expect("datagram 2", rcv, "s2 first", abs_name, -1);
    cf_expect("datagram 3", rcv, "s3 first", s3_name, -1);
    cf_expect("datagram 4", rcv, "s1 second", "", -1);
    cf_expect_empty("receiver", rcv);
    cf_expect("p2's datagram", p2, "to p2", p1_path, -1);
    cf_expect("p1's datagram 1", p1, "to p1", p2_name, -1);
    cf_expect("p1's datagram 2", p1, "to p1 again", p2_name, -1);
    cf_expect_empty("p1", p1);
    struct sockaddr_un a;
    socklen_t len = cf_sun(&a, p1_path);
    errno = 0;
    ssize_t r = sendto(stranger, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&a, len);
    CF_EQ("sending to the connected p1 from another socket", -EPERM, r < 0 ? -errno : r);
    queue();
}
CF_MAIN
