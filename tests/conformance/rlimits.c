/* Every resource limit, soft and hard, each set to a value of its own below what it was
 * (an ordinary user may lower limits), read back with getrlimit and /proc/self/limits.
 * kind: process attributes
 * checks: soft and hard limit of all 16 RLIMIT_*
 * root: restored
 */
#include "conformance.h"
#include <sys/resource.h>

static struct rlimit want[RLIM_NLIMITS];
/* soft, hard to aim for (never above what the process has) */
static const rlim_t aim[RLIM_NLIMITS][2] = {
    [RLIMIT_CPU] = {100001, 100003},
    [RLIMIT_FSIZE] = {1ull << 40, (1ull << 40) + 4096},
    [RLIMIT_DATA] = {1ull << 38, (1ull << 38) + 8192},
    [RLIMIT_STACK] = {16 << 20, 64 << 20},
    [RLIMIT_CORE] = {0, 1 << 20},
    [RLIMIT_RSS] = {1ull << 36, (1ull << 36) + 4096},
    [RLIMIT_NPROC] = {3001, 3003},
    [RLIMIT_NOFILE] = {301, 1003},
    [RLIMIT_MEMLOCK] = {65536, 131072},
    [RLIMIT_AS] = {1ull << 42, (1ull << 42) + 4096},
    [RLIMIT_LOCKS] = {1001, 1005},
    [RLIMIT_SIGPENDING] = {501, 503},
    [RLIMIT_MSGQUEUE] = {81920, 81921},
    [RLIMIT_NICE] = {0, 0},
    [RLIMIT_RTPRIO] = {0, 0},
    [RLIMIT_RTTIME] = {1000001, 2000003},
};
static const char *names[RLIM_NLIMITS] = {
    "Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
    "Max resident set", "Max processes", "Max open files", "Max locked memory",
    "Max address space", "Max file locks", "Max pending signals", "Max msgqueue size",
    "Max nice priority", "Max realtime priority", "Max realtime timeout"};

static rlim_t lower(rlim_t a, rlim_t b) { return a < b ? a : b; }

static void setup(void) {
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit now;
        CF_TRY(getrlimit(r, &now));
        want[r].rlim_max = lower(now.rlim_max, aim[r][1]);
        want[r].rlim_cur = lower(want[r].rlim_max, aim[r][0]);
        CF_TRY(setrlimit(r, &want[r]));
    }
}

static void check(void) {
    char what[64];
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit got;
        getrlimit(r, &got);
        snprintf(what, sizeof what, "%s soft", names[r]);
        CF_EQ(what, want[r].rlim_cur, got.rlim_cur);
        snprintf(what, sizeof what, "%s hard", names[r]);
        CF_EQ(what, want[r].rlim_max, got.rlim_max);
    }
    FILE *f = fopen("/proc/self/limits", "r");
    char line[256];
    int seen = 0;
    while (f && fgets(line, sizeof line, f)) {
        for (int r = 0; r < RLIM_NLIMITS; r++) {
            if (strncmp(line, names[r], strlen(names[r])) || line[strlen(names[r])] != ' ') continue;
            char soft[32], hard[32], exp_s[32], exp_h[32];
            if (sscanf(line + 26, "%31s %31s", soft, hard) != 2) continue;
            seen++;
            if (want[r].rlim_cur == RLIM_INFINITY) strcpy(exp_s, "unlimited");
            else snprintf(exp_s, sizeof exp_s, "%llu", (unsigned long long)want[r].rlim_cur);
            if (want[r].rlim_max == RLIM_INFINITY) strcpy(exp_h, "unlimited");
            else snprintf(exp_h, sizeof exp_h, "%llu", (unsigned long long)want[r].rlim_max);
            snprintf(what, sizeof what, "%s soft in /proc/self/limits", names[r]);
            CF_STREQ(what, exp_s, soft);
            snprintf(what, sizeof what, "%s hard in /proc/self/limits", names[r]);
            CF_STREQ(what, exp_h, hard);
        }
    }
    if (f) fclose(f);
    CF_EQ("limits found in /proc/self/limits", RLIM_NLIMITS, seen);
}
CF_MAIN
