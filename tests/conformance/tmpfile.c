/* A tmpfile(3) stream: an unnamed file made with O_TMPFILE|O_EXCL by the C library.
 * kind: file
 * checks: mode, link count 0, size, contents, offset, flags, path "DIR/#INODE (deleted)" matching fstat's inode, not linkable
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static FILE *f;
static int fd, flags;

static void setup(void) {
    f = tmpfile();
    if (!f) exit(2);
    fputs("temporary contents\n", f);
    fflush(f);
    fseek(f, 5, SEEK_SET);
    fd = fileno(f);
    CF_TRY(flags = fcntl(fd, F_GETFL));
}

static void check(void) {
    struct stat st;
    if (fstat(fd, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("mode", S_IFREG | 0600, st.st_mode);
    CF_EQ("link count", 0, st.st_nlink);
    CF_EQ("size", 19, st.st_size);
    CF_EQ("uid", getuid(), st.st_uid);
    CF_EQ("F_GETFL", flags, fcntl(fd, F_GETFL));
    CF_EQ("offset", 5, lseek(fd, 0, SEEK_CUR));
    char buf[64] = {0};
    CF_EQ("pread", 19, pread(fd, buf, sizeof buf - 1, 0));
    CF_STREQ("contents", "temporary contents\n", buf);
    char link[PATH_MAX] = {0}, lp[64], want[64];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", fd);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    snprintf(want, sizeof want, "/#%llu (deleted)", (unsigned long long)st.st_ino);
    const char *slash = strrchr(link, '/');
    CF_STREQ("name", want, slash ? slash : link);
    /* O_EXCL: it can never be given a name */
    char lk[64];
    snprintf(lk, sizeof lk, "tmpfile-link-%d", getpid());
    if (linkat(AT_FDCWD, lp, AT_FDCWD, lk, AT_SYMLINK_FOLLOW) == 0) {
        cf_fail("linkat of the O_EXCL tmpfile succeeded");
        unlink(lk);
    }
}
CF_MAIN
