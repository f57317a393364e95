/* flock(2) locks: shared and exclusive, owned by the open file description.
 * kind: file lock
 * checks: flock LOCK_NB from another process's own open (exclusive blocks all, shared blocks exclusive only), the holder's inherited descriptor shares the lock, fdinfo lock lines
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

static char pa[64], pb[64], pc[64];
static int fa, fb, fc;

static void setup(void) {
    cf_tmpfile_name(pa, sizeof pa, "lock_flock_a");
    cf_tmpfile_name(pb, sizeof pb, "lock_flock_b");
    cf_tmpfile_name(pc, sizeof pc, "lock_flock_c");
    CF_TRY(fa = open(pa, O_RDWR | O_CREAT | O_TRUNC, 0644));
    CF_TRY(fb = open(pb, O_RDONLY | O_CREAT | O_TRUNC, 0644));
    CF_TRY(fc = open(pc, O_RDWR | O_CREAT | O_TRUNC, 0644));
    CF_TRY(flock(fa, LOCK_EX));
    CF_TRY(flock(fb, LOCK_SH));
    /* fc: locked and unlocked again: no lock must appear. */
    CF_TRY(flock(fc, LOCK_EX));
    CF_TRY(flock(fc, LOCK_UN));
}

/* From a fresh open in this (child) process: may `op` be taken on `path`? */
static void try_lock(const char *path, int op, int want_ok) {
    int f = open(path, O_RDONLY);
    if (f < 0) {
        cf_fail("probe: open %s: %s", path, strerror(errno));
        return;
    }
    int r = flock(f, op | LOCK_NB);
    char what[128];
    snprintf(what, sizeof what, "flock(%s) of %s from another process succeeds",
             op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", path);
    CF_EQ(what, want_ok, r == 0);
    if (r < 0 && errno != EWOULDBLOCK) cf_fail("flock: errno %d, expected EWOULDBLOCK", errno);
    close(f);
}

static void check(void) {
    pid_t c = fork();
    if (c == 0) {
        cf_failures = 0;
        try_lock(pa, LOCK_SH, 0);
        try_lock(pa, LOCK_EX, 0);
        try_lock(pb, LOCK_SH, 1);
        try_lock(pb, LOCK_EX, 0);
        try_lock(pc, LOCK_EX, 1);
        /* The inherited descriptor is the same description: it holds the lock already. */
        CF_EQ("flock(LOCK_EX) on the inherited descriptor of a", 0, flock(fa, LOCK_EX | LOCK_NB));
        CF_EQ("flock(LOCK_SH) on the inherited descriptor of b", 0, flock(fb, LOCK_SH | LOCK_NB));
        _exit(cf_failures ? 1 : 0);
    }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) cf_fail("the probe process found differences");
    const char *want[] = {"FLOCK  ADVISORY  WRITE", "FLOCK  ADVISORY  READ", NULL};
    int fds[] = {fa, fb, fc};
    for (int k = 0; k < 3; k++) {
        char p[64], buf[4096];
        snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fds[k]);
        FILE *f = fopen(p, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        int count = 0;
        for (char *s = buf; (s = strstr(s, "lock:")); s++) count++;
        CF_EQ(p, want[k] ? 1 : 0, count);
        if (want[k] && !strstr(buf, want[k])) cf_fail("%s: no \"%s\" line", p, want[k]);
    }
}
CF_MAIN
