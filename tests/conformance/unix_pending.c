/* A UNIX stream listener with connections not accepted yet, whose connecting ends a child
 * process holds.
 * kind: UNIX socket
 * checks: the listener's backlog (connections it still takes before EAGAIN); accepting after the restart gives the waiting connections in order, with the client's name as peer; data both ways over them; the child's clients' getsockname/getpeername
 * root: restored
 */
#include "unix_cf.h"
#include <sys/wait.h>

#define BACKLOG 3
static int lst, ctl[2], res[2];
static char srv_path[108], c1_path[108];

/* The child: connects two clients (one bound), then on each request checks them, answers, and
 * connects two fresh ones again. */
static void child(void) {
    int c1 = -1, c2 = -1;
    for (;;) {
        unlink(c1_path);
        c1 = cf_bound(SOCK_STREAM, c1_path);
        cf_connect(c1, srv_path);
        c2 = cf_bound(SOCK_STREAM, NULL);
        cf_connect(c2, srv_path);
        if (write(res[1], "R", 1) != 1) exit(2);
        char c;
        if (read(ctl[0], &c, 1) != 1) exit(0);
        cf_failures = 0;
        CF_NAME("child's bound client", c1, c1_path);
        CF_PEER("child's bound client", c1, srv_path);
        CF_NAME("child's unbound client", c2, "");
        CF_PEER("child's unbound client", c2, srv_path);
        cf_expect("client 1 reads", c1, "to client 1", NULL, -1);
        cf_expect("client 2 reads", c2, "to client 2", NULL, -1);
        cf_send(c1, "from client 1");
        cf_send(c2, "from client 2");
        char r = cf_failures ? 'F' : 'P';
        if (write(res[1], &r, 1) != 1) exit(2);
        if (read(ctl[0], &c, 1) != 1) exit(0);
        close(c1);
        close(c2);
    }
}

static void wait_child(const char *what, char want) {
    char c = 0;
    if (read(res[0], &c, 1) != 1 || c != want) cf_fail("child %s: got '%c'", what, c);
}

static void setup(void) {
    cf_path(srv_path, "pending.sock");
    cf_path(c1_path, "client1.sock");
    lst = cf_bound(SOCK_STREAM, srv_path);
    CF_TRY(listen(lst, BACKLOG));
    CF_TRY(pipe(ctl));
    CF_TRY(pipe(res));
    pid_t p;
    CF_TRY(p = fork());
    if (p == 0) {
        close(ctl[1]); /* EOF once the first process ends: the child ends with it */
        child();
        exit(0);
    }
    wait_child("connecting", 'R');
}

static void check(void) {
    /* The backlog: BACKLOG + 1 connections may wait; two do. */
    int extra[8], n = 0;
    for (; n < 8; n++) {
        CF_TRY(extra[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
        struct sockaddr_un a;
        socklen_t len = cf_sun(&a, srv_path);
        if (connect(extra[n], (struct sockaddr *)&a, len) < 0) {
            if (errno != EAGAIN) cf_fail("extra connect: %s", strerrorname_np(errno));
            close(extra[n]);
            break;
        }
    }
    CF_EQ("connections the listener still took", BACKLOG + 1 - 2, n);
    int a1, a2;
    CF_TRY(a1 = accept(lst, NULL, NULL));
    CF_TRY(a2 = accept(lst, NULL, NULL));
    CF_PEER("first accepted", a1, c1_path);
    CF_NAME("first accepted", a1, srv_path);
    CF_PEER("second accepted", a2, "");
    cf_send(a1, "to client 1");
    cf_send(a2, "to client 2");
    if (write(ctl[1], "C", 1) != 1) cf_fail("child gone");
    wait_child("checking its clients", 'P');
    char b[32];
    ssize_t r = recv(a1, b, sizeof b, 0);
    CF_EQ("bytes from client 1", 13, r);
    r = recv(a2, b, sizeof b, 0);
    CF_EQ("bytes from client 2", 13, r);
    for (int i = 0; i < n; i++) {
        int x = accept(lst, NULL, NULL);
        if (x < 0) cf_fail("accepting extra connection %d: %s", i, strerrorname_np(errno));
        close(x);
        close(extra[i]);
    }
    close(a1);
    close(a2);
    if (write(ctl[1], "N", 1) != 1) cf_fail("child gone");
    wait_child("connecting again", 'R');
}
CF_MAIN
