/* timerfd: clocks, intervals, remaining time, absolute expiries and unread expirations.
 * kind: timerfd
 * checks: a relative CLOCK_MONOTONIC periodic timer keeps its interval; an absolute CLOCK_MONOTONIC one-shot keeps its expiry; a CLOCK_BOOTTIME timer; a disarmed timer stays disarmed; expirations accumulate while nobody reads; O_NONBLOCK
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>

static int periodic, absolute, boot, idle;
static struct timespec abs_expiry;

static void setup(void) {
    CF_TRY(periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
    struct itimerspec its = {.it_interval = {0, 50000000}, .it_value = {0, 50000000}};
    CF_TRY(timerfd_settime(periodic, 0, &its, NULL));
    CF_TRY(absolute = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
    clock_gettime(CLOCK_MONOTONIC, &abs_expiry);
    abs_expiry.tv_sec += 3600;
    struct itimerspec a = {.it_value = abs_expiry};
    CF_TRY(timerfd_settime(absolute, TFD_TIMER_ABSTIME, &a, NULL));
    CF_TRY(boot = timerfd_create(CLOCK_BOOTTIME, 0));
    struct itimerspec b = {.it_interval = {7200, 0}, .it_value = {7200, 0}};
    CF_TRY(timerfd_settime(boot, 0, &b, NULL));
    CF_TRY(idle = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK));
}

static void check(void) {
    struct itimerspec cur;
    timerfd_gettime(periodic, &cur);
    CF_EQ("periodic interval (ns)", 50000000, cur.it_interval.tv_sec * 1000000000LL + cur.it_interval.tv_nsec);
    CF_EQ("periodic timer armed", 1, cur.it_value.tv_sec > 0 || cur.it_value.tv_nsec > 0);
    /* It has been running since the setup (or the last check): expirations accumulate. */
    usleep(60000);
    uint64_t n = 0;
    CF_EQ("expirations read", 8, read(periodic, &n, 8));
    CF_EQ("expirations accumulated", 1, n >= 1);
    /* And it keeps firing at its interval: about 4 in 200 ms. */
    usleep(200000);
    n = 0;
    read(periodic, &n, 8);
    CF_EQ("fires at its interval (3..6 in 200 ms)", 1, n >= 3 && n <= 6);
    timerfd_gettime(absolute, &cur);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = cur.it_value.tv_sec + cur.it_value.tv_nsec / 1e9;
    double want = (abs_expiry.tv_sec - now.tv_sec) + (abs_expiry.tv_nsec - now.tv_nsec) / 1e9;
    CF_EQ("absolute timer keeps its expiry (within 20 ms)", 1, left - want < 0.02 && want - left < 0.02);
    timerfd_gettime(boot, &cur);
    CF_EQ("boottime interval", 7200, cur.it_interval.tv_sec);
    CF_EQ("boottime remaining below its interval", 1, cur.it_value.tv_sec <= 7200 && cur.it_value.tv_sec > 7000);
    timerfd_gettime(idle, &cur);
    CF_EQ("disarmed timer stays disarmed", 0, cur.it_value.tv_sec + cur.it_value.tv_nsec);
    CF_EQ("O_NONBLOCK", O_NONBLOCK, fcntl(idle, F_GETFL) & O_NONBLOCK);
    CF_EQ("blocking timer", 0, fcntl(boot, F_GETFL) & O_NONBLOCK);
}

CF_MAIN
