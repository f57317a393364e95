/* A thread CPU-time POSIX timer in a process with several threads.
 * kind: timers
 * checks: the timer's CPU time left and its clock (the kernel does not show which thread's CPU time it measures)
 * root: refused: CLOCK_THREAD_CPUTIME_ID
 * build: -lrt -lpthread
 */
#include "conformance.h"
#include <pthread.h>
#include <time.h>

static timer_t t;
static void *idle(void *a) {
    (void)a;
    for (;;) pause();
    return NULL;
}

static void setup(void) {
    pthread_t th;
    CF_TRY(pthread_create(&th, NULL, idle, NULL) ? -1 : 0);
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    CF_TRY(timer_create(CLOCK_THREAD_CPUTIME_ID, &none, &t));
    struct itimerspec b = {{0, 0}, {1000, 0}};
    CF_TRY(timer_settime(t, 0, &b, NULL));
}

static void check(void) {
    struct itimerspec cur;
    CF_EQ("timer_gettime", 0, timer_gettime(t, &cur));
    if (cur.it_value.tv_sec < 990 || cur.it_value.tv_sec > 1000)
        cf_fail("CPU time left: %ld s", (long)cur.it_value.tv_sec);
}
CF_MAIN
