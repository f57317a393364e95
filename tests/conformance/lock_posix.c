/* POSIX record locks (fcntl F_SETLK): ranges, read/write types and the owning process.
 * kind: file lock
 * checks: F_GETLK from another process (type, start, length, owner pid), F_SETLK conflicts, fdinfo lock lines, a lock set through a dup
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/wait.h>

static char path[64];
static int fd, fd2;

static void lock(int f, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    CF_TRY(fcntl(f, F_SETLK, &fl));
}

static void setup(void) {
    cf_tmpfile_name(path, sizeof path, "lock_posix");
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    CF_TRY(ftruncate(fd, 4096));
    lock(fd, F_WRLCK, 10, 20);  /* bytes 10-29 */
    lock(fd, F_RDLCK, 100, 0);  /* 100 to EOF, however far */
    CF_TRY(fd2 = dup(fd));
    lock(fd2, F_WRLCK, 50, 1);  /* byte 50, through the dup */
    lock(fd, F_RDLCK, 60, 10);  /* 60-69, then 65-69 turned into a write lock */
    lock(fd, F_WRLCK, 65, 5);
}

/* In a child (another process): what F_GETLK says about [start, start+len) for `type`. */
static void probe(short type, off_t start, off_t len, short want_type, off_t want_start,
                  off_t want_len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int f = open(path, O_RDWR);
    if (f < 0 || fcntl(f, F_GETLK, &fl) < 0) {
        cf_fail("probe: open/F_GETLK: %s", strerror(errno));
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "F_GETLK %s %lld+%lld: type", type == F_WRLCK ? "write" : "read",
             (long long)start, (long long)len);
    CF_EQ(what, want_type, fl.l_type);
    if (want_type != F_UNLCK) {
        snprintf(what, sizeof what, "F_GETLK %lld+%lld: start", (long long)start, (long long)len);
        CF_EQ(what, want_start, fl.l_start);
        snprintf(what, sizeof what, "F_GETLK %lld+%lld: length", (long long)start, (long long)len);
        CF_EQ(what, want_len, fl.l_len);
        snprintf(what, sizeof what, "F_GETLK %lld+%lld: owner pid", (long long)start, (long long)len);
        CF_EQ(what, getppid(), fl.l_pid);
    }
    /* A conflicting F_SETLK must fail, a compatible one must work. */
    struct flock set = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int r = fcntl(f, F_SETLK, &set);
    snprintf(what, sizeof what, "F_SETLK %lld+%lld fails", (long long)start, (long long)len);
    CF_EQ(what, want_type != F_UNLCK, r < 0);
    close(f);
}

static void check(void) {
    pid_t c = fork();
    if (c == 0) {
        cf_failures = 0;
        probe(F_RDLCK, 10, 20, F_WRLCK, 10, 20);
        probe(F_WRLCK, 0, 10, F_UNLCK, 0, 0);
        probe(F_RDLCK, 30, 20, F_UNLCK, 0, 0);
        probe(F_WRLCK, 50, 1, F_WRLCK, 50, 1);
        probe(F_RDLCK, 51, 9, F_UNLCK, 0, 0);
        probe(F_WRLCK, 60, 5, F_RDLCK, 60, 5);
        probe(F_RDLCK, 60, 5, F_UNLCK, 0, 0);
        probe(F_RDLCK, 65, 5, F_WRLCK, 65, 5);
        probe(F_RDLCK, 100, 1, F_UNLCK, 0, 0);
        probe(F_WRLCK, 1000000, 1, F_RDLCK, 100, 0);
        _exit(cf_failures ? 1 : 0);
    }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) cf_fail("the probe process found differences");
    /* The kernel's own account: the lock lines of both descriptors. */
    char want[5][64];
    snprintf(want[0], 64, "POSIX  ADVISORY  WRITE %d ", getpid());
    for (int k = 0; k < 2; k++) {
        char p[64], buf[4096];
        snprintf(p, sizeof p, "/proc/self/fdinfo/%d", k ? fd2 : fd);
        FILE *f = fopen(p, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        const char *ranges[] = {" 10 29\n", " 50 50\n", " 60 64\n", " 65 69\n", " 100 EOF\n"};
        const char *types[] = {"WRITE", "WRITE", "READ", "WRITE", "READ"};
        for (int i = 0; i < 5; i++) {
            char line[128];
            snprintf(line, sizeof line, "POSIX  ADVISORY  %s %d ", types[i], getpid());
            char *at = strstr(buf, line);
            int found = 0;
            while (at) {
                char *eol = strchr(at, '\n');
                size_t len = strlen(ranges[i]);
                if (eol && (size_t)(eol - at) >= len - 1 &&
                    strncmp(eol + 1 - len, ranges[i], len) == 0)
                    found = 1;
                at = strstr(at + 1, line);
            }
            if (!found) cf_fail("%s: no %s lock line for%s", p, types[i], ranges[i]);
        }
        int count = 0;
        for (char *s = buf; (s = strstr(s, "lock:")); s++) count++;
        CF_EQ("number of lock lines", 5, count);
    }
    (void)want;
}
CF_MAIN
