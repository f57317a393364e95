/* A Jacobi-like computation on a ring of RANKS processes over TCP, for the multi-node tests.
 *
 *   tcp_ring RANK ITERS ADDR0 ADDR1 ... ADDR{RANKS-1}
 *
 * Rank r listens on ADDRr (ip:port), connects to rank r+1 and accepts rank r-1 (the
 * listener is closed once both connections stand). Every iteration each rank sends the two
 * edges of its array (16 KiB each) to both neighbours, updates its array from them, then a
 * sum travels once around the ring (rank 0 -> 1 -> ... -> 0); rank 0 prints it. The output
 * of rank 0 is deterministic; most of the time 16 KiB wait unread in each direction of
 * every connection (a rank sleeps between sending and receiving). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N 8192
#define EDGE 2048

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct sockaddr_in parse(const char *s) {
    struct sockaddr_in a;
    char ip[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon - s >= (long)sizeof ip) {
        fprintf(stderr, "bad address %s\n", s);
        exit(2);
    }
    memcpy(ip, s, colon - s);
    ip[colon - s] = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(colon + 1));
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", s);
        exit(2);
    }
    return a;
}

static void send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        p += n;
        len -= n;
    }
}

static void recv_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n == 0) {
            fprintf(stderr, "peer closed\n");
            exit(1);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        p += n;
        len -= n;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: tcp_ring RANK ITERS ADDR...\n");
        return 2;
    }
    int rank = atoi(argv[1]), iters = atoi(argv[2]), ranks = argc - 3;
    struct sockaddr_in me = parse(argv[3 + rank]);
    struct sockaddr_in next = parse(argv[3 + (rank + 1) % ranks]);
    int one = 1;

    int l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&me, sizeof me) < 0)
        die("bind");
    if (listen(l, 4) < 0)
        die("listen");
    int out = -1;
    for (int tries = 0; out < 0; tries++) {
        out = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(out, (struct sockaddr *)&next, sizeof next) == 0)
            break;
        close(out);
        out = -1;
        if (tries > 2000)
            die("connect");
        usleep(10000);
    }
    int in = accept(l, NULL, NULL);
    if (in < 0)
        die("accept");
    close(l);
    setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    static double u[N], v[N], left[EDGE], right[EDGE];
    for (int i = 0; i < N; i++)
        u[i] = (double)((i * 7 + rank * 13) % 101);
    for (int it = 0; it < iters; it++) {
        /* Halo exchange: my first edge goes to the previous rank (over `in`), my last edge
         * to the next one (over `out`). */
        send_all(in, u, sizeof left);
        send_all(out, u + N - EDGE, sizeof right);
        /* The edges wait unread in the neighbours' receive queues meanwhile. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        recv_all(out, right, sizeof right);
        recv_all(in, left, sizeof left);
        for (int i = 0; i < N; i++) {
            double a = i == 0 ? left[EDGE - 1] : u[i - 1];
            double b = i == N - 1 ? right[0] : u[i + 1];
            v[i] = (a + u[i] + b) / 3.0 + (i < EDGE ? left[i] : right[i % EDGE]) * 1e-3;
        }
        memcpy(u, v, sizeof u);
        double mine = 0, sum;
        for (int i = 0; i < N; i++)
            mine += u[i];
        if (rank == 0) {
            send_all(out, &mine, sizeof mine);
            recv_all(in, &sum, sizeof sum);
            printf("iteration %d sum %.9e\n", it, sum);
            fflush(stdout);
        } else {
            recv_all(in, &sum, sizeof sum);
            sum += mine;
            send_all(out, &sum, sizeof sum);
        }
    }
    if (rank == 0)
        printf("done\n");
    return 0;
}
