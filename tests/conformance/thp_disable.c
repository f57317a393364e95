/* PR_SET_THP_DISABLE of the process, and of a child with PR_THP_DISABLE_EXCEPT_ADVISED
 * (where the kernel has it), read back with PR_GET_THP_DISABLE and THP_enabled of
 * /proc/self/status.
 * kind: process attributes
 * checks: PR_GET_THP_DISABLE (with PR_THP_DISABLE_EXCEPT_ADVISED in a child), THP_enabled in /proc/self/status
 * root: restored
 */
#include "conformance.h"
#include <sys/prctl.h>

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

static int to_child[2], from_child[2], child_want;

static int thp_enabled(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "THP_enabled:", 12)) v = atoi(line + 12);
    if (f) fclose(f);
    return v;
}

static void setup(void) {
    CF_TRY(pipe(to_child));
    CF_TRY(pipe(from_child));
    pid_t c = fork();
    CF_TRY(c);
    if (c == 0) {
        close(to_child[1]); /* end of file when the parent is gone */
        close(from_child[0]);
        int w = 1;
        if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) == 0) w = 3;
        else prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
        if (write(from_child[1], &w, sizeof w) != sizeof w) _exit(2);
        char x;
        while (read(to_child[0], &x, 1) == 1 || errno == EINTR) {
            int v[2] = {prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), thp_enabled()};
            if (write(from_child[1], v, sizeof v) != sizeof v) _exit(2);
        }
        _exit(0);
    }
    if (read(from_child[0], &child_want, sizeof child_want) != sizeof child_want) exit(2);
    CF_TRY(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
}

static void check(void) {
    CF_EQ("PR_GET_THP_DISABLE", 1, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
    CF_EQ("THP_enabled in /proc/self/status", 0, thp_enabled());
    char x = 1;
    int v[2] = {-1, -1};
    if (write(to_child[1], &x, 1) != 1 || read(from_child[0], v, sizeof v) != sizeof v)
        cf_fail("child does not answer");
    CF_EQ("child PR_GET_THP_DISABLE", child_want, v[0]);
    /* with PR_THP_DISABLE_EXCEPT_ADVISED, THP stays enabled for madvise(MADV_HUGEPAGE) */
    CF_EQ("child THP_enabled in /proc/self/status", child_want == 3, v[1]);
}
CF_MAIN
