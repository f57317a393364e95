/* One long relative sleep of each kind (tests/incremental.rs): a checkpoint lands inside it,
 * so the thread is interrupted with -ERESTART_RESTARTBLOCK, resumed through restart_syscall,
 * and (with pre-copy) frozen again. usage: long_sleep MILLIS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 1500;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("start\n");
    int a = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    printf("clock_nanosleep rc=%d\n", a);
    int b = nanosleep(&ts, NULL);
    printf("nanosleep rc=%d\n", b);
    return 0;
}
