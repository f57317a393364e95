/* POSIX timers that signal one thread (SIGEV_THREAD_ID) or run a function (SIGEV_THREAD).
 * kind: timers
 * checks: a periodic timer whose signals go to one chosen thread (every signal arrives there, none elsewhere, about as many as its period gives); glibc's SIGEV_THREAD timer calling a function with its value; their /proc/self/timers entries (notification, thread, signal, value, clock) and intervals
 * root: restored
 * build: -lrt -lpthread
 */
#include "conformance.h"
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

static timer_t to_thread, by_function;
static volatile pid_t worker_tid;
static volatile int worker_hits, elsewhere, calls, bad_value;
static char proc0[2][160];

static void on_sig(int sig) {
    (void)sig;
    if (syscall(SYS_gettid) == worker_tid) worker_hits++;
    else elsewhere++;
}

static void *worker(void *arg) {
    (void)arg;
    worker_tid = syscall(SYS_gettid);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 2);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    for (;;) pause();
    return NULL;
}

static void on_expiry(union sigval v) {
    if (v.sival_int != 99) bad_value = 1;
    __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
}

static long long now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 2);
    sigprocmask(SIG_BLOCK, &s, NULL);
    signal(SIGRTMIN + 2, on_sig);
    pthread_t th;
    CF_TRY(pthread_create(&th, NULL, worker, NULL) ? -1 : 0);
    while (!worker_tid) usleep(1000);
    struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 2};
    sev._sigev_un._tid = worker_tid;
    sev.sigev_value.sival_int = 5;
    CF_TRY(timer_create(CLOCK_MONOTONIC, &sev, &to_thread));
    struct sigevent fn = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_expiry};
    fn.sigev_value.sival_int = 99;
    CF_TRY(timer_create(CLOCK_MONOTONIC, &fn, &by_function));
    struct itimerspec a = {{0, 20000000}, {0, 20000000}}, b = {{0, 50000000}, {0, 50000000}};
    CF_TRY(timer_settime(to_thread, 0, &a, NULL));
    CF_TRY(timer_settime(by_function, 0, &b, NULL));
    proc_block((long)(intptr_t)to_thread, proc0[0], sizeof proc0[0]);
    proc_block((long)(intptr_t)by_function, proc0[1], sizeof proc0[1]);
}

static void check(void) {
    char got[160];
    proc_block((long)(intptr_t)to_thread, got, sizeof got);
    CF_STREQ("/proc/self/timers entry of the SIGEV_THREAD_ID timer", proc0[0], got);
    proc_block((long)(intptr_t)by_function, got, sizeof got);
    CF_STREQ("/proc/self/timers entry of the SIGEV_THREAD timer", proc0[1], got);
    struct itimerspec cur;
    CF_EQ("timer_gettime", 0, timer_gettime(to_thread, &cur));
    CF_EQ("interval of the SIGEV_THREAD_ID timer (ns)", 20000000, cur.it_interval.tv_nsec);
    CF_EQ("timer_gettime", 0, timer_gettime(by_function, &cur));
    CF_EQ("interval of the SIGEV_THREAD timer (ns)", 50000000, cur.it_interval.tv_nsec);
    int h0 = worker_hits, c0 = calls;
    long long start = now();
    while (now() - start < 500000000LL) {
        struct timespec d = {0, 5000000};
        nanosleep(&d, NULL);
    }
    int h = worker_hits - h0, c = calls - c0;
    if (h < 5 || h > 27) cf_fail("signals at the chosen thread in 500 ms: %d, expected about 25", h);
    if (c < 2 || c > 11) cf_fail("SIGEV_THREAD calls in 500 ms: %d, expected about 10", c);
    CF_EQ("signals that arrived at another thread", 0, elsewhere);
    CF_EQ("SIGEV_THREAD value", 0, bad_value);
}
CF_MAIN
