/* An epoll instance shared across fork, to which the child adds a descriptor of its own:
 * after each restart the parent still gets the child's events, and the child still finds
 * its entry by its own descriptor number (EPOLL_CTL_MOD).
 * Usage: epoll_fork STEPS. Prints "step N ok" or "FAIL ..." and "PASS". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

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
    int ep = epoll_create1(0), a = eventfd(1, 0), ready[2];
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    if (ep < 0 || a < 0 || pipe(ready) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) < 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        /* Two descriptors the parent does not have; the first registered, then closed
         * after being moved to another number. */
        int b = eventfd(1, 0), c = eventfd(1, 0);
        ev.data.u64 = 77;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) < 0) return 1;
        ev.data.u64 = 78;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0) return 1;
        int moved = dup(c);
        close(c);
        if (write(ready[1], "r", 1) != 1) return 1;
        int bad = 0;
        for (int i = 1; i <= steps; i++) {
            ev.data.u64 = 77;
            if (epoll_ctl(ep, EPOLL_CTL_MOD, b, &ev) < 0) { printf("FAIL child step %d: MOD: %s\n", i, strerror(errno)); bad++; }
            errno = 0;
            epoll_ctl(ep, EPOLL_CTL_MOD, moved, &ev);
            if (errno != ENOENT) { printf("FAIL child step %d: MOD of the moved target: %s\n", i, strerror(errno)); bad++; }
            if (entries(ep) != 3) { printf("FAIL child step %d: %d entries\n", i, entries(ep)); bad++; }
            fflush(stdout);
            usleep(20000);
        }
        return bad != 0;
    }
    char r;
    if (read(ready[0], &r, 1) != 1) return 2;
    int bad = 0;
    for (int i = 1; i <= steps; i++) {
        struct epoll_event got[8];
        int n = epoll_wait(ep, got, 8, 0);
        unsigned long long sum = 0;
        for (int k = 0; k < n; k++) sum += got[k].data.u64;
        if (n != 3 || sum != 1 + 77 + 78) { printf("FAIL step %d: %d events, data sum %llu\n", i, n, sum); bad++; }
        if (!bad) printf("step %d ok\n", i);
        fflush(stdout);
        usleep(20000);
    }
    int status;
    waitpid(child, &status, 0);
    printf("%s\n", bad || status ? "FAIL" : "PASS");
    return 0;
}
