/* A FIFO (named pipe) deleted while open through several descriptors.
 * kind: fifo
 * checks: access mode and O_NONBLOCK of each descriptor (read, write, read-write), unread data, mode, link count 0, path "PATH (deleted)", capacity, one FIFO behind all descriptors
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

static int r, w, rw;
static char path[PATH_MAX];

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/deleted.fifo", cwd);
    unlink(path);
    CF_TRY(mkfifo(path, 0640));
    CF_TRY(chmod(path, 0640));
    CF_TRY(r = open(path, O_RDONLY | O_NONBLOCK));
    CF_TRY(w = open(path, O_WRONLY));
    CF_TRY(rw = open(path, O_RDWR | O_NONBLOCK));
    CF_TRY(fcntl(w, F_SETPIPE_SZ, 8192 * 4));
    CF_TRY(write(w, "fifo data", 9));
    CF_TRY(unlink(path));
}

static void check(void) {
    CF_EQ("read end F_GETFL", O_RDONLY | O_NONBLOCK, fcntl(r, F_GETFL) & ~0100000);
    CF_EQ("write end F_GETFL", O_WRONLY, fcntl(w, F_GETFL) & ~0100000);
    CF_EQ("read-write F_GETFL", O_RDWR | O_NONBLOCK, fcntl(rw, F_GETFL) & ~0100000);
    CF_EQ("capacity", 8192 * 4, fcntl(r, F_GETPIPE_SZ));
    struct stat st, sp;
    if (fstat(r, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("mode", S_IFIFO | 0640, st.st_mode);
    CF_EQ("link count", 0, st.st_nlink);
    if (stat(path, &sp) == 0) cf_fail("%s exists again", path);
    if (fstat(rw, &sp) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("same FIFO behind all descriptors", st.st_ino, sp.st_ino);
    int n = 0;
    ioctl(r, FIONREAD, &n);
    CF_EQ("unread bytes", 9, n);
    char buf[32] = {0};
    CF_EQ("read", 9, read(r, buf, sizeof buf));
    CF_STREQ("unread data", "fifo data", buf);
    /* the read-write descriptor reaches the same FIFO */
    CF_EQ("write through the read-write descriptor", 2, write(rw, "xy", 2));
    memset(buf, 0, sizeof buf);
    CF_EQ("read it back", 2, read(r, buf, sizeof buf));
    CF_STREQ("read back", "xy", buf);
    CF_EQ("refill", 9, write(w, "fifo data", 9));
    char link[PATH_MAX] = {0}, lp[64];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", w);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s (deleted)", path);
    CF_STREQ("path", want, link);
}
CF_MAIN
