/* A regular file deleted while open, held through two descriptors of their own (two opens).
 * kind: file
 * checks: mode, owner, link count 0, size, contents, offset and flags of each descriptor, one file behind both descriptors, path shown as "PATH (deleted)"
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static int a, b;
static char path[PATH_MAX];
static uid_t uid;
static gid_t gid;
static int round_no;

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/victim.dat", cwd);
    unlink(path);
    CF_TRY(a = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    CF_TRY(write(a, "0123456789", 10));
    CF_TRY(lseek(a, 4, SEEK_SET));
    CF_TRY(b = open(path, O_RDONLY | O_NONBLOCK));
    CF_TRY(lseek(b, 2, SEEK_SET));
    CF_TRY(fchmod(a, 0751));
    uid = getuid();
    gid = getgid();
    if (geteuid() == 0) {
        uid = 4242;
        gid = 4343;
        CF_TRY(fchown(a, uid, gid));
        CF_TRY(fchmod(a, 0751));
    }
    CF_TRY(unlink(path));
}

static void check(void) {
    round_no++;
    struct stat sa, sb;
    if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("mode", S_IFREG | 0751, sa.st_mode);
    CF_EQ("uid", uid, sa.st_uid);
    CF_EQ("gid", gid, sa.st_gid);
    CF_EQ("link count", 0, sa.st_nlink);
    CF_EQ("size", 10, sa.st_size);
    CF_EQ("same inode behind both descriptors", sa.st_ino, sb.st_ino);
    CF_EQ("same device behind both descriptors", sa.st_dev, sb.st_dev);
    CF_EQ("a F_GETFL", O_RDWR, fcntl(a, F_GETFL) & ~0100000);
    CF_EQ("b F_GETFL", O_RDONLY | O_NONBLOCK, fcntl(b, F_GETFL) & ~0100000);
    CF_EQ("a offset", 4, lseek(a, 0, SEEK_CUR));
    CF_EQ("b offset", 2, lseek(b, 0, SEEK_CUR));
    char buf[32] = {0};
    CF_EQ("pread", 10, pread(b, buf, sizeof buf - 1, 0));
    char want[11] = "0123456789";
    if (round_no > 1) want[9] = 'a' + round_no - 1;
    CF_STREQ("contents", want, buf);
    /* a write through one descriptor is seen through the other */
    char c = 'a' + round_no;
    CF_EQ("pwrite through a", 1, pwrite(a, &c, 1, 9));
    char got = 0;
    CF_EQ("pread through b", 1, pread(b, &got, 1, 9));
    CF_EQ("byte written through a, read through b", c, got);
    char link[PATH_MAX + 32] = {0}, lp[64], wantl[PATH_MAX + 32];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", a);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    snprintf(wantl, sizeof wantl, "%s (deleted)", path);
    CF_STREQ("path of a", wantl, link);
    if (access(path, F_OK) == 0) cf_fail("%s exists again", path);
}
CF_MAIN
