/* Differential test program: spends nearly all its time asleep (nanosleep, clock_nanosleep),
 * so checkpoints land inside the syscall. usage: sleeper STEPS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 60;
    for (long i = 0; i < steps; i++) {
        struct timespec ts = {0, 40 * 1000 * 1000};
        int rc = (i % 2) ? nanosleep(&ts, NULL) : clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        printf("slept %ld rc=%d\n", i, rc);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
