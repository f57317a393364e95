/* Clocks as the program sees them across a restart.
 * kind: clocks
 * checks: CLOCK_MONOTONIC and CLOCK_BOOTTIME never go back and do not jump by the time the job was down (at most the real downtime is not required: the job's time namespace continues from the checkpoint); CLOCK_REALTIME is the host's wall time
 * root: restored
 */
#include "conformance.h"
#include <time.h>

static struct timespec last_mono, last_boot;

static double secs(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }

static void setup(void) {
    clock_gettime(CLOCK_MONOTONIC, &last_mono);
    clock_gettime(CLOCK_BOOTTIME, &last_boot);
}

static void check(void) {
    struct timespec mono, boot, real, host;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    clock_gettime(CLOCK_REALTIME, &real);
    CF_EQ("CLOCK_MONOTONIC does not go back", 1, secs(mono) >= secs(last_mono));
    CF_EQ("CLOCK_BOOTTIME does not go back", 1, secs(boot) >= secs(last_boot));
    CF_EQ("CLOCK_BOOTTIME >= CLOCK_MONOTONIC", 1, secs(boot) + 0.001 >= secs(mono));
    /* The wall clock is the host's: compare with the time(2) the kernel gives. */
    time_t t = time(NULL);
    host.tv_sec = t;
    CF_EQ("CLOCK_REALTIME is the wall time", 1, secs(real) - host.tv_sec < 2 && host.tv_sec - secs(real) < 2);
    last_mono = mono;
    last_boot = boot;
}

CF_MAIN
