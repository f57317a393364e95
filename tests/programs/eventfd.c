/* eventfd(2) conformance across checkpoints: counters (beyond 32 bits), EFD_SEMAPHORE,
 * O_NONBLOCK, FD_CLOEXEC and a descriptor shared by dup keep their values and behaviour.
 * Usage: eventfd STEPS. Each step checks every attribute against what the program expects,
 * changes the counters, then sleeps; prints "step N ok" or "FAIL ..." with the difference. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int bad;

static void fail(int step, const char *what, uint64_t want, uint64_t got) {
    printf("FAIL step %d: %s: expected %" PRIu64 ", got %" PRIu64 "\n", step, what, want, got);
    bad++;
}

/* The value of fdinfo line KEY of descriptor FD, parsed in BASE; -1 if absent. */
static long long info(int fd, const char *key, int base) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) v = strtoll(line + strlen(key), NULL, base);
    fclose(f);
    return v;
}

static uint64_t rd(int fd, int *err) {
    uint64_t v = 0;
    *err = read(fd, &v, 8) == 8 ? 0 : errno;
    return v;
}

static void wr(int fd, uint64_t v) {
    if (write(fd, &v, 8) != 8) { perror("write"); exit(3); }
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    int sem = eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
    int big = eventfd(0, 0);
    int empty = eventfd(0, EFD_NONBLOCK);
    int shared = dup2(sem, 20);
    if (sem < 0 || big < 0 || empty < 0 || shared != 20) { perror("eventfd"); return 2; }
    uint64_t want_sem = 7, want_big = 0x123456789ULL;
    wr(big, want_big);
    for (int i = 1; i <= steps; i++) {
        int err;
        if ((uint64_t)info(sem, "eventfd-count:", 16) != want_sem)
            fail(i, "semaphore count", want_sem, info(sem, "eventfd-count:", 16));
        if ((uint64_t)info(big, "eventfd-count:", 16) != want_big)
            fail(i, "count", want_big, info(big, "eventfd-count:", 16));
        if (info(sem, "eventfd-semaphore:", 10) != 1) fail(i, "EFD_SEMAPHORE", 1, info(sem, "eventfd-semaphore:", 10));
        if (info(big, "eventfd-semaphore:", 10) != 0) fail(i, "no EFD_SEMAPHORE", 0, info(big, "eventfd-semaphore:", 10));
        if (!(fcntl(sem, F_GETFL) & O_NONBLOCK)) fail(i, "O_NONBLOCK", 1, 0);
        if (fcntl(big, F_GETFL) & O_NONBLOCK) fail(i, "blocking", 0, 1);
        if (!(fcntl(sem, F_GETFD) & FD_CLOEXEC)) fail(i, "FD_CLOEXEC", 1, 0);
        if (fcntl(big, F_GETFD) & FD_CLOEXEC) fail(i, "no FD_CLOEXEC", 0, 1);
        if (fcntl(shared, F_GETFD) & FD_CLOEXEC) fail(i, "no FD_CLOEXEC on the dup", 0, 1);
        /* A semaphore read takes 1; the dup is the same counter. */
        uint64_t got = rd(shared, &err);
        if (err || got != 1) fail(i, "semaphore read", 1, err ? (uint64_t)err : got);
        want_sem -= 1;
        if ((uint64_t)info(sem, "eventfd-count:", 16) != want_sem)
            fail(i, "count after a read through the dup", want_sem, info(sem, "eventfd-count:", 16));
        wr(sem, (uint64_t)(i % 3) + 1);
        want_sem += (uint64_t)(i % 3) + 1;
        /* A non-semaphore read takes everything, every fourth step. */
        if (i % 4 == 0) {
            got = rd(big, &err);
            if (err || got != want_big) fail(i, "counter read", want_big, err ? (uint64_t)err : got);
            want_big = 0;
        }
        wr(big, (uint64_t)i << 33);
        want_big += (uint64_t)i << 33;
        got = rd(empty, &err);
        if (err != EAGAIN) fail(i, "EAGAIN on an empty non-blocking eventfd", EAGAIN, err ? (uint64_t)err : got);
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    printf("%s\n", bad ? "FAIL" : "PASS");
    return 0;
}
