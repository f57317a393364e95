/* TCP data in flight both ways, more than the receivers take: receive queues full, the rest
 * waiting in the senders' write queues (windows closed).
 * kind: TCP socket
 * checks: every byte written and not read, in order, both ways (receive queue content, receive + send queue sizes), then read to the end
 * root: restored
 * user: refused: needs TCP_REPAIR
 */
#include "conformance.h"
#include "inet_common.h"
#include <poll.h>

static int c, s;
static size_t sent[2];

/* Write pattern bytes into non-blocking fd until it takes no more. */
static size_t fill(int fd, unsigned seed) {
    unsigned char buf[16384];
    size_t off = 0;
    for (;;) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = inet_byte(seed, off + i);
        ssize_t w = send(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN) {
                usleep(20000);
                w = send(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (w < 0 && errno == EAGAIN) return off;
            }
            if (w < 0) {
                printf("SETUP FAILED: send: %s\n", strerror(errno));
                exit(2);
            }
        }
        off += (size_t)w;
    }
}

static void setup(void) {
    inet_pair(AF_INET, &c, &s, NULL);
    sent[0] = fill(c, 31);
    sent[1] = fill(s, 32);
    if (sent[0] < 200000 || sent[1] < 200000) {
        printf("SETUP FAILED: only %zu / %zu bytes in flight\n", sent[0], sent[1]);
        exit(2);
    }
    usleep(100000);
}

/* The receive queue of `to` is a prefix of the pattern, and with the sender's queue holds
 * everything sent. */
static void check_queues(const char *what, int from, int to, unsigned seed, size_t total) {
    int inq = -1, outq = -1;
    for (int i = 0; i < 50; i++) {
        ioctl(to, FIONREAD, &inq);
        ioctl(from, TIOCOUTQ, &outq);
        if ((size_t)inq + (size_t)outq == total) break;
        usleep(20000);
    }
    char w[96];
    snprintf(w, sizeof w, "%s: receive + send queue", what);
    CF_EQ(w, (long long)total, (long long)inq + outq);
    unsigned char *buf = malloc((size_t)inq + 1);
    ssize_t r = recv(to, buf, (size_t)inq, MSG_PEEK | MSG_DONTWAIT);
    if (r != inq) cf_fail("%s: peeked %zd of %d bytes", what, r, inq);
    for (ssize_t i = 0; i < r; i++)
        if (buf[i] != inet_byte(seed, (size_t)i)) {
            cf_fail("%s: byte %zd differs", what, i);
            break;
        }
    free(buf);
}

static int checks;

static void check(void) {
    check_queues("client -> server", c, s, 31, sent[0]);
    check_queues("server -> client", s, c, 32, sent[1]);
    if (++checks < CF_CHECKS) return;
    /* Last check: read both streams to the end, checking every byte. */
    size_t got[2] = {0, 0};
    int fds[2] = {s, c};
    unsigned seeds[2] = {31, 32};
    static unsigned char buf[65536];
    while (got[0] < sent[0] || got[1] < sent[1]) {
        struct pollfd p[2] = {{s, POLLIN, 0}, {c, POLLIN, 0}};
        if (poll(p, 2, 5000) <= 0) {
            cf_fail("reading to the end: stuck at %zu / %zu bytes", got[0], got[1]);
            return;
        }
        for (int k = 0; k < 2; k++) {
            if (!(p[k].revents & POLLIN)) continue;
            ssize_t r = recv(fds[k], buf, sizeof buf, MSG_DONTWAIT);
            if (r <= 0) {
                cf_fail("reading to the end: recv %zd", r);
                return;
            }
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != inet_byte(seeds[k], got[k] + (size_t)i)) {
                    cf_fail("stream %d: byte %zu differs", k, got[k] + (size_t)i);
                    return;
                }
            got[k] += (size_t)r;
        }
    }
    CF_EQ("client -> server bytes read", (long long)sent[0], (long long)got[0]);
    CF_EQ("server -> client bytes read", (long long)sent[1], (long long)got[1]);
}
CF_MAIN
