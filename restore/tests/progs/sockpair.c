/* A parent and a child talk over SOCK_STREAM, SOCK_SEQPACKET and SOCK_DGRAM socketpairs, with data in
 * flight in both directions most of the time: the child writes text records (stream, its end
 * O_NONBLOCK) and variable-length messages (seqpacket) faster than the parent reads them; the
 * parent answers every 17 bytes with an ack that the child drains only every 10 records. Both
 * print counts and checksums: usage sockpair N. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_all(int fd, const char *b, int n) {
    while (n > 0) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EAGAIN) { usleep(200); continue; }
        if (r <= 0) exit(30);
        b += r; n -= r;
    }
}

int main(int argc, char **argv) {
    printf("start\n");
    fflush(stdout);
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int ss[2], qs[2], ds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, ss) < 0) return 2;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, qs) < 0) return 3;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, ds) < 0) return 3;
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) {
        close(ss[0]);
        close(qs[0]);
        close(ds[0]);
        fcntl(ss[1], F_SETFL, O_NONBLOCK);
        unsigned long ackbytes = 0, acksum = 0;
        char ab[64];
        for (int i = 0; i < n; i++) {
            char buf[128];
            int len = snprintf(buf, sizeof buf, "rec %d %d\n", i, i * i);
            write_all(ss[1], buf, len);
            char m[200];
            int ml = i % 97 + 1;
            for (int j = 0; j < ml; j++) m[j] = (char)(i + j);
            if (send(qs[1], m, ml, 0) != ml) _exit(31);
            if (send(ds[1], m, ml / 2 + 1, 0) != ml / 2 + 1) _exit(32);
            usleep(1500);
            if (i % 10 == 9) {
                ssize_t r;
                while ((r = read(ss[1], ab, sizeof ab)) > 0) {
                    ackbytes += r;
                    for (int j = 0; j < r; j++) acksum = acksum * 31 + (unsigned char)ab[j];
                }
            }
        }
        shutdown(ss[1], SHUT_WR);
        fcntl(ss[1], F_SETFL, 0);
        ssize_t r;
        while ((r = read(ss[1], ab, sizeof ab)) > 0) {
            ackbytes += r;
            for (int j = 0; j < r; j++) acksum = acksum * 31 + (unsigned char)ab[j];
        }
        printf("child: ack bytes %lu sum %lu\n", ackbytes, acksum);
        fflush(stdout);
        _exit(0);
    }
    close(ss[1]);
    close(qs[1]);
    close(ds[1]);
    unsigned long dmsgs = 0, dsum = 0;
    unsigned long bytes = 0, sum = 0, msgs = 0, mlen = 0, msum = 0;
    char b[17], mb[256];
    int have = 0, eof = 0;
    /* Never block: an ack per 17 stream bytes and at most one message per round, so the
     * results do not depend on timing while queues fill up. */
    while (!eof || have > 0 || msgs < (unsigned long)n || dmsgs < (unsigned long)n) {
        if (!eof) {
            ssize_t r = recv(ss[0], b + have, sizeof b - have, MSG_DONTWAIT);
            if (r == 0) eof = 1;
            else if (r < 0 && errno != EAGAIN) return 5;
            else if (r > 0) have += r;
        }
        if (have == (int)sizeof b || (eof && have > 0)) {
            bytes += have;
            for (int j = 0; j < have; j++) sum = sum * 131 + (unsigned char)b[j];
            have = 0;
            write_all(ss[0], "ack\n", 4);
        }
        ssize_t m = recv(qs[0], mb, sizeof mb, MSG_DONTWAIT);
        if (m > 0) {
            msgs++;
            mlen += m;
            for (int j = 0; j < m; j++) msum = msum * 7 + (unsigned char)mb[j] + j;
        } else if (m == 0 || (m < 0 && errno != EAGAIN)) {
            return 6;
        }
        ssize_t d = recv(ds[0], mb, sizeof mb, MSG_DONTWAIT);
        if (d > 0) {
            dmsgs++;
            for (int j = 0; j < d; j++) dsum = dsum * 5 + (unsigned char)mb[j] + d;
        } else if (d == 0 || (d < 0 && errno != EAGAIN)) {
            return 8;
        }
        usleep(2500);
    }
    shutdown(ss[0], SHUT_WR);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) return 7;
    printf("parent: stream bytes %lu sum %lu; messages %lu bytes %lu sum %lu; datagrams %lu "
           "sum %lu\n", bytes, sum, msgs, mlen, msum, dmsgs, dsum);
    return 0;
}
