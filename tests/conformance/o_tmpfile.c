/* Files made with O_TMPFILE in the working directory: one linkable, one with O_EXCL.
 * kind: file
 * checks: mode, owner, link count 0, size, contents, offset, flags, path "DIR/#INODE (deleted)" matching fstat's inode, linkat refused with O_EXCL
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static int t, x, tflags, xflags;
static char dir[PATH_MAX];

static void setup(void) {
    if (!getcwd(dir, sizeof dir)) exit(2);
    CF_TRY(t = open(".", O_TMPFILE | O_RDWR, 0640));
    CF_TRY(fchmod(t, 0640));
    CF_TRY(write(t, "linkable", 8));
    CF_TRY(lseek(t, 3, SEEK_SET));
    CF_TRY(x = open(".", O_TMPFILE | O_EXCL | O_WRONLY | O_APPEND, 0600));
    CF_TRY(write(x, "excl", 4));
    CF_TRY(tflags = fcntl(t, F_GETFL));
    CF_TRY(xflags = fcntl(x, F_GETFL));
}

static void one(const char *what, int fd, int flags, mode_t mode, off_t size, off_t off,
                const char *contents, int linkable, int try_link) {
    char w[128];
    struct stat st;
    if (fstat(fd, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    snprintf(w, sizeof w, "%s mode", what);
    CF_EQ(w, S_IFREG | mode, st.st_mode);
    snprintf(w, sizeof w, "%s link count", what);
    CF_EQ(w, 0, st.st_nlink);
    snprintf(w, sizeof w, "%s uid", what);
    CF_EQ(w, getuid(), st.st_uid);
    snprintf(w, sizeof w, "%s size", what);
    CF_EQ(w, size, st.st_size);
    snprintf(w, sizeof w, "%s F_GETFL", what);
    CF_EQ(w, flags, fcntl(fd, F_GETFL));
    snprintf(w, sizeof w, "%s offset", what);
    CF_EQ(w, off, lseek(fd, 0, SEEK_CUR));
    char lp[64], link[PATH_MAX + 64] = {0}, want[PATH_MAX + 64];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", fd);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    snprintf(want, sizeof want, "%s/#%llu (deleted)", dir, (unsigned long long)st.st_ino);
    snprintf(w, sizeof w, "%s path", what);
    CF_STREQ(w, want, link);
    /* contents, through a read-only reopen (x is write-only) */
    int r = open(lp, O_RDONLY);
    char buf[64] = {0};
    if (r < 0 || pread(r, buf, sizeof buf - 1, 0) < 0) cf_fail("%s reopen: %s", what, strerror(errno));
    if (r >= 0) close(r);
    snprintf(w, sizeof w, "%s contents", what);
    CF_STREQ(w, contents, buf);
    /* linkat into a name, then away again: allowed for O_TMPFILE without O_EXCL only */
    if (!try_link) return;
    char name[64];
    snprintf(name, sizeof name, "linked-%d", getpid());
    int ok = linkat(AT_FDCWD, lp, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0;
    if (ok) unlink(name);
    snprintf(w, sizeof w, "%s linkable", what);
    CF_EQ(w, linkable, ok);
}

static void check(void) {
    /* Whether t can still be linked is not checked: the kernel does not show whether a file
     * was made with O_EXCL, and a restore makes every O_TMPFILE file unlinkable, as
     * tmpfile() makes them (docs/capture-restore.md, "Files without a name"). */
    one("O_TMPFILE", t, tflags, 0640, 8, 3, "linkable", 1, 0);
    one("O_TMPFILE|O_EXCL", x, xflags, 0600, 4, 4, "excl", 0, 1);
}
CF_MAIN
