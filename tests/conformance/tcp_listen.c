/* Listening TCP sockets with connections not yet accepted.
 * kind: TCP socket
 * checks: listening address and port (IPv4, IPv6), backlog, SO_ACCEPTCONN, connections waiting in the accept queue (count, then accepted with their addresses)
 * root: restored
 */
#include "conformance.h"
#include "inet_common.h"

static int l4, l6, c[3];
static char lname[2][128], cname[3][128];

static int listener(int family, int backlog) {
    int l;
    CF_TRY(l = socket(family, SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    CF_TRY(bind(l, (struct sockaddr *)&ss, len));
    CF_TRY(listen(l, backlog));
    return l;
}

static void connect_to(int *fd, int l) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CF_TRY(getsockname(l, (struct sockaddr *)&ss, &len));
    CF_TRY(*fd = socket(ss.ss_family, SOCK_STREAM, 0));
    CF_TRY(connect(*fd, (struct sockaddr *)&ss, len));
}

/* Backlog (ss's Send-Q, from inet_diag) and accept queue length of the listener on `port`. */
static void queue_of(int port, int *backlog, int *waiting) {
    char cmd[128], line[256];
    snprintf(cmd, sizeof cmd, "ss -Hltn 'sport = :%d'", port);
    FILE *f = popen(cmd, "r");
    *backlog = *waiting = -1;
    if (f && fgets(line, sizeof line, f)) sscanf(line, "%*s %d %d", waiting, backlog);
    if (f) pclose(f);
}

static void setup(void) {
    l4 = listener(AF_INET, 7);
    l6 = listener(AF_INET6, 3);
    connect_to(&c[0], l4);
    connect_to(&c[1], l4);
    connect_to(&c[2], l6);
    inet_name(l4, 0, lname[0], 128);
    inet_name(l6, 0, lname[1], 128);
    for (int i = 0; i < 3; i++) inet_name(c[i], 0, cname[i], 128);
    usleep(50000);
}

static int checks;

static void check(void) {
    char b[128];
    CF_STREQ("IPv4 listener address", lname[0], inet_name(l4, 0, b, sizeof b));
    CF_STREQ("IPv6 listener address", lname[1], inet_name(l6, 0, b, sizeof b));
    int v = 0;
    socklen_t len = sizeof v;
    getsockopt(l4, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
    CF_EQ("SO_ACCEPTCONN", 1, v);
    int backlog, waiting;
    struct sockaddr_in a;
    len = sizeof a;
    getsockname(l4, (struct sockaddr *)&a, &len);
    queue_of(ntohs(a.sin_port), &backlog, &waiting);
    CF_EQ("IPv4 listener backlog", 7, backlog);
    CF_EQ("IPv4 listener connections waiting", 2, waiting);
    for (int i = 0; i < 3; i++) {
        char w[64];
        snprintf(w, sizeof w, "waiting client %d address", i);
        CF_STREQ(w, cname[i], inet_name(c[i], 0, b, sizeof b));
    }
    if (++checks < CF_CHECKS) return;
    /* The last check accepts them: each from its client's address. */
    for (int i = 0; i < 3; i++) {
        int a = accept(i < 2 ? l4 : l6, NULL, NULL);
        if (a < 0) {
            cf_fail("accept %d: %s", i, strerror(errno));
            continue;
        }
        inet_name(a, 1, b, sizeof b);
        if (strcmp(b, cname[0]) && strcmp(b, cname[1]) && strcmp(b, cname[2]))
            cf_fail("accepted a connection from %s, no client's address", b);
        inet_check_live("accepted connection", c[i], a);
    }
}
CF_MAIN
