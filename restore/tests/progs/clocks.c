/* Reports whether CLOCK_MONOTONIC or CLOCK_BOOTTIME ever jumps by more than 1 s (or goes
 * back) between two iterations of a loop that sleeps 2 ms each time. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static long long now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    long long m = now(CLOCK_MONOTONIC), b = now(CLOCK_BOOTTIME);
    int jumps = 0;
    for (int i = 0; i < 200; i++) {
        usleep(2000);
        long long m2 = now(CLOCK_MONOTONIC), b2 = now(CLOCK_BOOTTIME);
        if (m2 < m || m2 - m > 1000000000LL || b2 < b || b2 - b > 1000000000LL) jumps++;
        m = m2;
        b = b2;
    }
    fprintf(f, "jumps %d\n", jumps);
    return fclose(f) == 0 ? 0 : 3;
}
