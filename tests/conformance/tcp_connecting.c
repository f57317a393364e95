/* A TCP connect still in progress (SYN_SENT: the listener's accept queue is full, so its SYN
 * goes unanswered).
 * kind: TCP socket
 * checks: the connecting socket's state and O_NONBLOCK, the listener's address
 * root: refused: in progress
 */
#include "conformance.h"
#include "inet_common.h"

static int l, c1, c2;
static char lname[128];

static void setup(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CF_TRY(l = socket(AF_INET, SOCK_STREAM, 0));
    CF_TRY(bind(l, (struct sockaddr *)&a, sizeof a));
    CF_TRY(listen(l, 0)); /* room for one connection waiting */
    CF_TRY(getsockname(l, (struct sockaddr *)&a, &len));
    CF_TRY(c1 = socket(AF_INET, SOCK_STREAM, 0));
    CF_TRY(connect(c1, (struct sockaddr *)&a, sizeof a));
    usleep(50000);
    CF_TRY(c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    if (connect(c2, (struct sockaddr *)&a, sizeof a) == 0 || errno != EINPROGRESS) {
        printf("SETUP FAILED: the second connect did not stay in progress\n");
        exit(2);
    }
    inet_name(l, 0, lname, sizeof lname);
    usleep(50000);
}

static void check(void) {
    char b[128];
    CF_STREQ("listener address", lname, inet_name(l, 0, b, sizeof b));
    int st = inet_tcp_state(c2);
    if (st != TCP_SYN_SENT && st != TCP_ESTABLISHED) cf_fail("connecting socket: state %d", st);
    CF_EQ("connecting socket O_NONBLOCK", O_NONBLOCK, fcntl(c2, F_GETFL) & O_NONBLOCK);
}
CF_MAIN
