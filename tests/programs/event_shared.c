/* Event descriptors shared by a parent and its child across fork, across checkpoints: the
 * child wakes the parent through an eventfd the parent waits for in epoll_wait, the parent
 * wakes the child through a semaphore eventfd, and both see one absolute timer and one
 * interest list. Usage: event_shared STEPS. Prints "step N ok" or "FAIL ..." and "PASS". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * NS + t.tv_nsec;
}

/* The timer's expiry on CLOCK_MONOTONIC (now + time left). */
static long long expiry(int fd) {
    struct itimerspec cur;
    long long a = now();
    timerfd_gettime(fd, &cur);
    return a + cur.it_value.tv_sec * NS + cur.it_value.tv_nsec;
}

static int entries(int ep) {
    char path[64], line[256];
    int n = 0;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) n += strncmp(line, "tfd:", 4) == 0;
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    int up = eventfd(0, 0), down = eventfd(0, EFD_SEMAPHORE);
    int ep = epoll_create1(0), timer = timerfd_create(CLOCK_MONOTONIC, 0);
    long long at = now() + 3600 * NS;
    struct itimerspec its = {{0, 0}, {at / NS, at % NS}};
    timerfd_settime(timer, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    epoll_ctl(ep, EPOLL_CTL_ADD, up, &ev);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 1; i <= steps; i++) {
            uint64_t v;
            if (read(down, &v, 8) != 8 || v != 1) { printf("FAIL child read %d\n", i); return 1; }
            if (llabs(expiry(timer) - at) > NS / 50) printf("FAIL child step %d: timer\n", i);
            if (entries(ep) != 1) printf("FAIL child step %d: %d epoll entries\n", i, entries(ep));
            v = i;
            if (write(up, &v, 8) != 8) return 1;
        }
        return 0;
    }
    int bad = 0;
    for (int i = 1; i <= steps; i++) {
        uint64_t v = 1;
        if (write(down, &v, 8) != 8) return 1;
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, 10000);
        if (n != 1 || got.data.u64 != 42) { printf("FAIL step %d: epoll_wait %d\n", i, n); bad++; }
        if (read(up, &v, 8) != 8 || v != (uint64_t)i) { printf("FAIL step %d: got %" PRIu64 "\n", i, v); bad++; }
        if (llabs(expiry(timer) - at) > NS / 50) { printf("FAIL step %d: timer\n", i); bad++; }
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    int status;
    waitpid(child, &status, 0);
    printf("%s\n", bad || status ? "FAIL" : "PASS");
    return 0;
}
