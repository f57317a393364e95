/* memfd descriptors: name, contents, size, offset, flags, mode, file system type.
 * kind: memfd
 * checks: name in /proc/self/fd ("/memfd:NAME (deleted)"), contents, size, offset, F_GETFL, mode, link count, fstatfs f_type (tmpfs), a second open of the same memfd through /proc, close-on-exec, F_GET_SEALS of a memfd without sealing
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define TMPFS_MAGIC 0x01021994
static int m, m2, plain;
static struct stat st0;

static void setup(void) {
    CF_TRY(m = memfd_create("cairn test: one", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    CF_TRY(write(m, "memfd contents", 14));
    CF_TRY(ftruncate(m, 100000));
    CF_TRY(lseek(m, 6, SEEK_SET));
    CF_TRY(fchmod(m, 0640));
    char lp[64];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", m);
    CF_TRY(m2 = open(lp, O_RDONLY | O_NONBLOCK));
    CF_TRY(lseek(m2, 99999, SEEK_SET));
    CF_TRY(plain = memfd_create("plain", 0));
    CF_TRY(write(plain, "x", 1));
    CF_TRY(fstat(m, &st0));
}

static void name_is(int fd, const char *want) {
    char lp[64], link[PATH_MAX] = {0};
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", fd);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    CF_STREQ("name", want, link);
}

static void check(void) {
    name_is(m, "/memfd:cairn test: one (deleted)");
    name_is(m2, "/memfd:cairn test: one (deleted)");
    name_is(plain, "/memfd:plain (deleted)");
    struct stat st, st2;
    if (fstat(m, &st) < 0 || fstat(m2, &st2) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("mode", S_IFREG | 0640, st.st_mode);
    CF_EQ("uid", getuid(), st.st_uid);
    CF_EQ("link count", 0, st.st_nlink);
    CF_EQ("size", 100000, st.st_size);
    CF_EQ("one memfd behind both descriptors", st.st_ino, st2.st_ino);
    struct statfs sf;
    if (fstatfs(m, &sf) < 0) cf_fail("fstatfs: %s", strerror(errno));
    CF_EQ("f_type", TMPFS_MAGIC, sf.f_type);
    CF_EQ("F_GETFL", O_RDWR, fcntl(m, F_GETFL) & ~0100000);
    CF_EQ("F_GETFL of the second open", O_RDONLY | O_NONBLOCK, fcntl(m2, F_GETFL) & ~0100000);
    CF_EQ("FD_CLOEXEC", FD_CLOEXEC, fcntl(m, F_GETFD));
    CF_EQ("FD_CLOEXEC of the plain memfd", 0, fcntl(plain, F_GETFD));
    CF_EQ("offset", 6, lseek(m, 0, SEEK_CUR));
    CF_EQ("offset of the second open", 99999, lseek(m2, 0, SEEK_CUR));
    char buf[32] = {0};
    CF_EQ("pread", 14, pread(m2, buf, 14, 0));
    CF_STREQ("contents", "memfd contents", buf);
    CF_EQ("byte past the contents", 0, pread(m, buf, 1, 50000) == 1 ? buf[0] : -1);
    CF_EQ("seals (sealing allowed)", 0, fcntl(m, F_GET_SEALS));
    CF_EQ("seals (sealing not allowed)", F_SEAL_SEAL, fcntl(plain, F_GET_SEALS));
    CF_EQ("plain size", 1, lseek(plain, 0, SEEK_END));
    lseek(plain, 1, SEEK_SET);
    /* a write through one open is seen through the other */
    CF_EQ("pwrite", 1, pwrite(m, "M", 1, 0));
    CF_EQ("pread of it", 1, pread(m2, buf, 1, 0));
    CF_EQ("write seen through the second open", 'M', buf[0]);
    CF_EQ("pwrite back", 1, pwrite(m, "m", 1, 0));
}
CF_MAIN
