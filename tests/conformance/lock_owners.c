/* Locks held by different processes of one job: each owner keeps its own, a waiter keeps waiting.
 * kind: file lock
 * checks: F_GETLK owner pid of the parent's and the child's POSIX locks, the parent cannot take the child's range, a child's flock, children blocked in F_SETLKW, F_OFD_SETLKW and flock(LOCK_EX) stay blocked (no EINTR, no lock)
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/wait.h>

static char pa[64], pb[64];
static int fa;
static pid_t holder, waiters[3];
static int waiter_r; /* what the waiter reports */

static void setup(void) {
    cf_tmpfile_name(pa, sizeof pa, "lock_owners_a");
    cf_tmpfile_name(pb, sizeof pb, "lock_owners_b");
    CF_TRY(fa = open(pa, O_RDWR | O_CREAT | O_TRUNC, 0644));
    int fb;
    CF_TRY(fb = open(pb, O_RDWR | O_CREAT | O_TRUNC, 0644));
    close(fb);
    struct flock p = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    CF_TRY(fcntl(fa, F_SETLK, &p));
    int life[2], ready[2], rep[2];
    CF_TRY(pipe(life));
    CF_TRY(pipe(ready));
    CF_TRY(pipe(rep));
    holder = fork();
    if (holder == 0) {
        close(life[1]);
        /* The child's own lock on 10-19 (same description as the parent's) and a flock. */
        struct flock c = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
        int g = open(pb, O_RDWR);
        if (fcntl(fa, F_SETLK, &c) < 0 || g < 0 || flock(g, LOCK_EX) < 0) _exit(3);
        write(ready[1], "k", 1);
        char x;
        while (read(life[0], &x, 1) != 0) {}
        _exit(0);
    }
    char x;
    if (read(ready[0], &x, 1) != 1) {
        printf("SETUP FAILED: the lock holder\n");
        exit(2);
    }
    for (int k = 0; k < 3; k++) {
        waiters[k] = fork();
        if (waiters[k] == 0) {
            close(life[1]);
            struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
            int f = open(k == 2 ? pb : pa, O_RDWR);
            int r;
            if (k == 0)
                r = fcntl(f, F_SETLKW, &w); /* blocks: the parent holds 0-9 */
            else if (k == 1)
                r = fcntl(f, F_OFD_SETLKW, &w); /* the same */
            else
                r = flock(f, LOCK_EX); /* blocks: the holder child has it */
            char msg[2] = {"psf"[k], r == 0 ? 'G' : errno == EINTR ? 'I' : 'E'};
            write(rep[1], msg, 2);
            while (read(life[0], &x, 1) != 0) {}
            _exit(0);
        }
    }
    close(life[0]);
    close(rep[1]);
    waiter_r = rep[0];
    usleep(100000);
}

static void probe(off_t start, off_t len, pid_t owner, const char *who) {
    int f = open(pa, O_RDWR);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (f < 0 || fcntl(f, F_GETLK, &fl) < 0) {
        cf_fail("probe: %s", strerror(errno));
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "F_GETLK %lld+%lld: type", (long long)start, (long long)len);
    CF_EQ(what, F_WRLCK, fl.l_type);
    snprintf(what, sizeof what, "F_GETLK %lld+%lld: owner (%s)", (long long)start, (long long)len,
             who);
    CF_EQ(what, owner, fl.l_pid);
    close(f);
}

static void check(void) {
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        cf_failures = 0;
        probe(0, 10, me, "the parent");
        probe(10, 10, holder, "the child");
        int g = open(pb, O_RDONLY);
        CF_EQ("flock(LOCK_SH) of the child's flock'd file fails", -1, flock(g, LOCK_SH | LOCK_NB));
        _exit(cf_failures ? 1 : 0);
    }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) cf_fail("the probe process found differences");
    /* The child's range is the child's: the parent's F_GETLK sees the child as owner. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
    CF_TRY(fcntl(fa, F_GETLK, &fl));
    CF_EQ("parent's F_GETLK 10+10: owner", holder, fl.l_pid);
    /* The waiter must still be waiting. */
    struct pollfd pf = {.fd = waiter_r, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0) {
        char r[3] = "??";
        read(waiter_r, r, 2);
        cf_fail("a waiter returned (%s: p/s/f = F_SETLKW/F_OFD_SETLKW/flock, G = got the lock, "
                "I = EINTR, E = error)", r);
    }
    for (int k = 0; k < 3; k++) {
        char p[64], buf[256] = "";
        snprintf(p, sizeof p, "/proc/%d/stat", waiters[k]);
        FILE *f = fopen(p, "r");
        if (f) {
            fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
        }
        char *s = strrchr(buf, ')');
        if (!s || s[2] != 'S')
            cf_fail("waiter %d state: expected S (sleeping), got %.3s", k, s ? s + 2 : "?");
    }
}
CF_MAIN
