/* Open file description locks (fcntl F_OFD_SETLK): ranges and types, owned by the description.
 * kind: file lock
 * checks: F_OFD_GETLK from another description of the same process and from another process (type, start, length, pid -1), POSIX F_GETLK sees them, conflicts, fdinfo lock lines
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/wait.h>

static char path[64];
static int fd;

static void setup(void) {
    cf_tmpfile_name(path, sizeof path, "lock_ofd");
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    CF_TRY(fcntl(fd, F_OFD_SETLK, &w));
    struct flock r = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 0};
    CF_TRY(fcntl(fd, F_OFD_SETLK, &r));
}

static void query(int cmd, short type, off_t start, off_t len, short want, off_t ws, off_t wl,
                  pid_t wpid) {
    int f = open(path, O_RDWR);
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (f < 0 || fcntl(f, cmd, &fl) < 0) {
        cf_fail("open/GETLK: %s", strerror(errno));
        if (f >= 0) close(f);
        return;
    }
    char what[96];
    const char *c = cmd == F_OFD_GETLK ? "F_OFD_GETLK" : "F_GETLK";
    snprintf(what, sizeof what, "%s %lld+%lld: type", c, (long long)start, (long long)len);
    CF_EQ(what, want, fl.l_type);
    if (want != F_UNLCK) {
        snprintf(what, sizeof what, "%s %lld+%lld: start", c, (long long)start, (long long)len);
        CF_EQ(what, ws, fl.l_start);
        snprintf(what, sizeof what, "%s %lld+%lld: length", c, (long long)start, (long long)len);
        CF_EQ(what, wl, fl.l_len);
        snprintf(what, sizeof what, "%s %lld+%lld: pid", c, (long long)start, (long long)len);
        CF_EQ(what, wpid, fl.l_pid);
    }
    struct flock set = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int r = fcntl(f, F_OFD_SETLK, &set);
    snprintf(what, sizeof what, "F_OFD_SETLK %lld+%lld from another description fails",
             (long long)start, (long long)len);
    CF_EQ(what, want != F_UNLCK, r < 0);
    close(f);
}

static void all(void) {
    query(F_OFD_GETLK, F_RDLCK, 5, 1, F_WRLCK, 0, 10, -1);
    query(F_OFD_GETLK, F_WRLCK, 10, 10, F_UNLCK, 0, 0, 0);
    query(F_OFD_GETLK, F_RDLCK, 25, 5, F_UNLCK, 0, 0, 0);
    query(F_OFD_GETLK, F_WRLCK, 1 << 20, 1, F_RDLCK, 20, 0, -1);
    query(F_GETLK, F_RDLCK, 0, 1, F_WRLCK, 0, 10, -1);
}

static void check(void) {
    all(); /* another description of this process */
    pid_t c = fork();
    if (c == 0) {
        cf_failures = 0;
        all();
        _exit(cf_failures ? 1 : 0);
    }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) cf_fail("the probe process found differences");
    char p[64], buf[4096];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    if (!strstr(buf, "OFDLCK ADVISORY  WRITE -1 ") || !strstr(buf, " 0 9\n"))
        cf_fail("%s: no OFD write lock line for 0-9:\n%s", p, buf);
    if (!strstr(buf, "OFDLCK ADVISORY  READ -1 ") || !strstr(buf, " 20 EOF\n"))
        cf_fail("%s: no OFD read lock line for 20-EOF:\n%s", p, buf);
}
CF_MAIN
