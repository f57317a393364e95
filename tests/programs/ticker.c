/* Prints "tick N" every 20 ms, COUNT times, then exits 0. MODE "daemon": the launched process
 * double-forks (the middle process calls setsid and exits, so the ticking daemon is adopted
 * by the init and its session and group leader has exited) and exits 0 at once; MODE
 * "plain": the process ticks itself. Each line also says whether the daemon's view of its
 * session and group is still the one it started with.
 * usage: ticker daemon|plain COUNT */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void tick(int count) {
    pid_t sid = getsid(0), pgid = getpgid(0);
    for (int i = 1; i <= count; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0) {
        }
        printf("tick %d %s\n", i, getsid(0) == sid && getpgid(0) == pgid ? "same" : "CHANGED");
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ticker daemon|plain COUNT\n");
        return 2;
    }
    int count = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "plain") == 0) {
        tick(count);
        return 0;
    }
    printf("launched\n");
    pid_t mid = fork();
    if (mid < 0) return 1;
    if (mid == 0) {
        if (setsid() < 0) _exit(1);
        pid_t d = fork();
        if (d < 0) _exit(1);
        if (d == 0) {
            tick(count);
            _exit(0);
        }
        _exit(0);
    }
    int st;
    waitpid(mid, &st, 0);
    return 0;
}
