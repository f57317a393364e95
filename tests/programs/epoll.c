/* epoll(7) conformance across checkpoints: the interest list (events, EPOLLET,
 * EPOLLONESHOT, EPOLLEXCLUSIVE, 64-bit data, an epoll instance as a target, targets whose
 * descriptor was since closed or reused), which events are reported, epoll_ctl finding the
 * entries by their numbers, and a thread blocked in epoll_wait.
 * Usage: epoll STEPS. Prints "step N ok" or "FAIL ..." with the difference. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LT_DATA 0x1111222233334444ULL
enum { ET_DATA = 2, ONESHOT_DATA = 3, NESTED_DATA = 4, INNER_DATA = 5, MOVED_DATA = 6,
       EXCL_DATA = 7, GONE_DATA = 8 };
#define MOVED_FD 30 /* registered as 30, then moved to 40; 30 is /dev/null since */
#define GONE_FD 31  /* registered as 31, then moved to 41; 31 is closed since */

static int bad;

static void fail(int step, const char *what, const char *want, const char *got) {
    printf("FAIL step %d: %s:\n  expected %s\n  got      %s\n", step, what, want, got);
    bad++;
}

/* The interest list of FD from fdinfo: "[tfd events data]" per entry, sorted (the kernel
 * lists them in the order of its files' addresses). */
static void interest(int fd, char *out, size_t len) {
    char path[64], line[256], items[32][64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (!f) return;
    while (n < 32 && fgets(line, sizeof line, f)) {
        int tfd;
        unsigned ev;
        unsigned long long data;
        if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) == 3)
            snprintf(items[n++], sizeof items[0], "[%02d %x %llx]", tfd, ev, data);
    }
    fclose(f);
    qsort(items, n, sizeof items[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        size_t k = strlen(out);
        snprintf(out + k, len - k, "%s", items[i]);
    }
}

/* The data of the ready events of EP (no waiting), as a sorted list. */
static void ready(int ep, char *out, size_t len) {
    struct epoll_event ev[16];
    unsigned long long d[16];
    int n = epoll_wait(ep, ev, 16, 0);
    for (int i = 0; i < n; i++) d[i] = ev[i].data.u64;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (d[j] < d[i]) { unsigned long long t = d[i]; d[i] = d[j]; d[j] = t; }
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(out);
        snprintf(out + k, len - k, "%llx ", d[i]);
    }
}

static void add(int ep, int fd, unsigned events, unsigned long long data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { perror("epoll_ctl"); exit(2); }
}

static int ping[2], pong[2];

/* Waits in epoll_wait (no timeout) for each ping, answers with a pong. */
static void *waiter(void *arg) {
    (void)arg;
    int ep = epoll_create1(0);
    add(ep, ping[0], EPOLLIN, 1);
    for (;;) {
        struct epoll_event ev;
        int n = epoll_wait(ep, &ev, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        char c;
        if (n != 1 || ev.data.u64 != 1 || read(ping[0], &c, 1) != 1) c = 'x';
        if (write(pong[1], &c, 1) != 1) exit(3);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int lt = eventfd(1, EFD_NONBLOCK);
    int p[2];
    if (ep < 0 || lt < 0 || pipe2(p, O_NONBLOCK) < 0) { perror("setup"); return 2; }
    add(ep, lt, EPOLLIN, LT_DATA);
    add(ep, p[0], EPOLLIN | EPOLLET, ET_DATA);
    int timer = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 0}, {0, 1000}};
    timerfd_settime(timer, 0, &its, NULL);
    add(ep, timer, EPOLLIN | EPOLLONESHOT, ONESHOT_DATA);
    int inner = epoll_create1(0), e2 = eventfd(1, 0);
    fcntl(inner, F_SETFL, O_NONBLOCK);
    add(inner, e2, EPOLLIN, INNER_DATA);
    add(ep, inner, EPOLLIN, NESTED_DATA);
    int excl = eventfd(0, 0);
    add(ep, excl, EPOLLIN | EPOLLEXCLUSIVE, EXCL_DATA);
    /* Registered under one number, then held under another. */
    int moved = eventfd(1, 0), gone = eventfd(1, 0);
    dup2(moved, MOVED_FD);
    dup2(gone, GONE_FD);
    close(moved);
    close(gone);
    add(ep, MOVED_FD, EPOLLIN, MOVED_DATA);
    add(ep, GONE_FD, EPOLLIN, GONE_DATA);
    dup2(MOVED_FD, 40);
    dup2(GONE_FD, 41);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, MOVED_FD);
    close(null);
    close(GONE_FD);
    int idle = epoll_create1(0);
    if (pipe(ping) < 0 || pipe(pong) < 0) return 2;
    pthread_t th;
    pthread_create(&th, NULL, waiter, NULL);
    usleep(5000);
    char want[1024], got[1024];
    ready(ep, got, sizeof got); /* fires the one-shot entry: disarmed from now on */
    char list[1024];
    interest(ep, list, sizeof list);
    int entries = 0;
    for (const char *c = list; *c; c++) entries += *c == '[';
    printf("interest list of %d entries\n", entries);
    snprintf(want, sizeof want, "%llx %x %x %x %x %x ", LT_DATA, ONESHOT_DATA, NESTED_DATA,
             MOVED_DATA, GONE_DATA, 0);
    int pending_edge = 0;
    for (int i = 1; i <= steps; i++) {
        interest(ep, got, sizeof got);
        if (strcmp(got, list)) fail(i, "interest list", list, got);
        /* Re-arm the one-shot entry by its number: it reports once more. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = ONESHOT_DATA};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, timer, &ev) < 0) fail(i, "EPOLL_CTL_MOD", "0", strerror(errno));
        ready(ep, got, sizeof got);
        if (pending_edge)
            snprintf(want, sizeof want, "%x %x %x %x %x %llx ", ET_DATA, ONESHOT_DATA,
                     NESTED_DATA, MOVED_DATA, GONE_DATA, LT_DATA);
        else
            snprintf(want, sizeof want, "%x %x %x %x %llx ", ONESHOT_DATA, NESTED_DATA,
                     MOVED_DATA, GONE_DATA, LT_DATA);
        if (strcmp(got, want)) fail(i, "ready events", want, got);
        char buf[64];
        while (read(p[0], buf, sizeof buf) > 0) {}
        /* The entries are keyed by the numbers they were registered under. */
        errno = 0;
        epoll_ctl(ep, EPOLL_CTL_MOD, 40, &ev);
        if (errno != ENOENT) fail(i, "EPOLL_CTL_MOD of the moved target's new number", strerror(ENOENT), strerror(errno));
        errno = 0;
        epoll_ctl(ep, EPOLL_CTL_MOD, MOVED_FD, &ev);
        if (errno != EPERM) fail(i, "EPOLL_CTL_MOD of the reused number (/dev/null)", strerror(EPERM), strerror(errno));
        errno = 0;
        epoll_ctl(ep, EPOLL_CTL_DEL, 41, NULL);
        if (errno != ENOENT) fail(i, "EPOLL_CTL_DEL of the closed target's new number", strerror(ENOENT), strerror(errno));
        errno = 0;
        epoll_ctl(ep, EPOLL_CTL_ADD, lt, &ev);
        if (errno != EEXIST) fail(i, "EPOLL_CTL_ADD of a registered target", strerror(EEXIST), strerror(errno));
        if (!(fcntl(inner, F_GETFL) & O_NONBLOCK)) fail(i, "O_NONBLOCK", "set", "clear");
        if (!(fcntl(ep, F_GETFD) & FD_CLOEXEC)) fail(i, "FD_CLOEXEC", "set", "clear");
        /* The thread blocked in epoll_wait answers. */
        char c = 'p';
        if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1 || c != 'p') fail(i, "thread in epoll_wait", "p", &c);
        /* Leave an edge pending across the sleep (and maybe a checkpoint). */
        pending_edge = i % 2;
        if (pending_edge && write(p[1], "e", 1) != 1) return 3;
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        struct epoll_event none;
        int n = epoll_wait(idle, &none, 1, 20);
        if (n != 0) fail(i, "sleeping in epoll_wait", "0", "events");
    }
    printf("%s\n", bad ? "FAIL" : "PASS");
    return 0;
}
