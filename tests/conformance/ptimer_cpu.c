/* POSIX timers on CPU-time clocks (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID).
 * kind: timers
 * checks: /proc/self/timers entries (clock, signal, value); a periodic process CPU-time timer's interval and the signals it delivers while the program spins; a one-shot thread CPU-time timer's CPU time left (continues from what was left: the CPU-time clocks themselves start again from zero in a restored process)
 * root: restored
 * build: -lrt
 */
#include "conformance.h"
#include <stdint.h>
#include <time.h>

static timer_t proc_t, thread_t;
static volatile int ticks;
static char proc0[2][160];

static void on_tick(int sig) {
    (void)sig;
    ticks++;
}

static long long cpu(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void proc_block(long id, char *out, size_t len) {
    char buf[8192], key[32];
    out[0] = 0;
    FILE *f = fopen("/proc/self/timers", "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    snprintf(key, sizeof key, "ID: %ld\n", id);
    char *p = buf;
    while ((p = strstr(p, key)) && p != buf && p[-1] != '\n') p++;
    if (!p) return;
    char *end = p;
    for (int lines = 0; lines < 4 && (end = strchr(end, '\n')); lines++) end++;
    if (!end) end = p + strlen(p);
    snprintf(out, len, "%.*s", (int)(end - p), p);
}

static void setup(void) {
    struct sigaction sa = {.sa_handler = on_tick, .sa_flags = SA_RESTART};
    sigaction(SIGRTMIN + 3, &sa, NULL);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 3};
    sev.sigev_value.sival_int = 3;
    CF_TRY(timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &proc_t));
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    CF_TRY(timer_create(CLOCK_THREAD_CPUTIME_ID, &none, &thread_t));
    struct itimerspec a = {{0, 20000000}, {0, 20000000}}, b = {{0, 0}, {1000, 0}};
    CF_TRY(timer_settime(proc_t, 0, &a, NULL));
    CF_TRY(timer_settime(thread_t, 0, &b, NULL));
    proc_block((long)(intptr_t)proc_t, proc0[0], sizeof proc0[0]);
    proc_block((long)(intptr_t)thread_t, proc0[1], sizeof proc0[1]);
}

static void check(void) {
    char got[160];
    proc_block((long)(intptr_t)proc_t, got, sizeof got);
    CF_STREQ("/proc/self/timers entry of the process CPU-time timer", proc0[0], got);
    proc_block((long)(intptr_t)thread_t, got, sizeof got);
    CF_STREQ("/proc/self/timers entry of the thread CPU-time timer", proc0[1], got);
    struct itimerspec cur;
    CF_EQ("timer_gettime", 0, timer_gettime(proc_t, &cur));
    CF_EQ("interval of the process CPU-time timer (ns)", 20000000, cur.it_interval.tv_nsec);
    if (cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec > 20000000)
        cf_fail("CPU time left of the periodic timer: %ld.%09ld s", (long)cur.it_value.tv_sec,
                cur.it_value.tv_nsec);
    CF_EQ("timer_gettime", 0, timer_gettime(thread_t, &cur));
    long long left = cur.it_value.tv_sec * 1000000000LL + cur.it_value.tv_nsec;
    if (left > 1000000000000LL || left < 995000000000LL)
        cf_fail("CPU time left of the thread CPU-time timer: %lld ns (expected just under 1000 s)", left);
    CF_EQ("interval of the thread CPU-time timer", 0, cur.it_interval.tv_sec + cur.it_interval.tv_nsec);
    /* Spin for 300 ms of CPU time: about 15 signals. */
    int before = ticks;
    long long start = cpu(CLOCK_PROCESS_CPUTIME_ID);
    while (cpu(CLOCK_PROCESS_CPUTIME_ID) - start < 300000000LL) {
        for (volatile int i = 0; i < 100000; i++) {
        }
    }
    int n = ticks - before;
    if (n < 8 || n > 17) cf_fail("process CPU-time timer: %d signals in 300 ms of CPU time, expected about 15", n);
}
CF_MAIN
