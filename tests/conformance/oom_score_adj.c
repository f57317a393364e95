/* The process's oom_score_adj (raised: an ordinary user may), read back from
 * /proc/self/oom_score_adj and the legacy /proc/self/oom_adj.
 * kind: process attributes
 * checks: /proc/self/oom_score_adj, /proc/self/oom_adj
 * root: restored
 */
#include "conformance.h"

static int read_int(const char *path) {
    FILE *f = fopen(path, "r");
    int v = -12345;
    if (!f || fscanf(f, "%d", &v) != 1) cf_fail("reading %s", path);
    if (f) fclose(f);
    return v;
}

static void setup(void) {
    FILE *f = fopen("/proc/self/oom_score_adj", "w");
    if (!f || fprintf(f, "500\n") < 0 || fclose(f) != 0) {
        printf("SETUP FAILED: writing /proc/self/oom_score_adj\n");
        exit(2);
    }
}

static void check(void) {
    CF_EQ("/proc/self/oom_score_adj", 500, read_int("/proc/self/oom_score_adj"));
    CF_EQ("/proc/self/oom_adj", 500 * 17 / 1000, read_int("/proc/self/oom_adj"));
}
CF_MAIN
