/* Regular files written and read through read-write descriptors: plain, O_APPEND, and one whose
 * mode forbids writing (created read-write).
 * kind: file
 * checks: access mode and flags (F_GETFL), offset, contents read back through the descriptor, size, mode, link count, path, O_APPEND, read-write descriptor of a read-only file
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static int rw, ap, ro;
static char path[PATH_MAX], apath[PATH_MAX];
static int round_no;

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/rdwr.dat", cwd);
    snprintf(apath, sizeof apath, "%s/append.log", cwd);
    unlink(path);
    unlink(apath);
    CF_TRY(rw = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640));
    CF_TRY(fchmod(rw, 0640));
    CF_TRY(write(rw, "hello, world", 12));
    CF_TRY(lseek(rw, 7, SEEK_SET));
    CF_TRY(ap = open(apath, O_RDWR | O_CREAT | O_APPEND | O_TRUNC, 0600));
    CF_TRY(write(ap, "line0\n", 6));
    CF_TRY(lseek(ap, 2, SEEK_SET));
    /* created read-write although its mode lets nobody write (O_CREAT opens it all the same) */
    char rpath[PATH_MAX + 16];
    snprintf(rpath, sizeof rpath, "%s.ro", path);
    unlink(rpath);
    CF_TRY(ro = open(rpath, O_RDWR | O_CREAT | O_TRUNC, 0400));
    CF_TRY(write(ro, "read-only mode", 14));
    CF_TRY(fchmod(ro, 0400));
}

static void check(void) {
    round_no++;
    CF_EQ("rw F_GETFL", O_RDWR, fcntl(rw, F_GETFL) & ~0100000);
    CF_EQ("ap F_GETFL", O_RDWR | O_APPEND, fcntl(ap, F_GETFL) & ~0100000);
    /* rw: the offset was left at 7 + 5 * (round - 1) by the previous rounds */
    off_t want = 7 + 5 * (round_no - 1);
    CF_EQ("rw offset", want, lseek(rw, 0, SEEK_CUR));
    struct stat st;
    if (fstat(rw, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("rw size", 12 + 5 * (round_no - 1) - (round_no > 1 ? 5 : 0), st.st_size);
    CF_EQ("rw mode", S_IFREG | 0640, st.st_mode);
    CF_EQ("rw link count", 1, st.st_nlink);
    char buf[64] = {0};
    /* reading through the same descriptor from the current offset */
    ssize_t n = read(rw, buf, sizeof buf - 1);
    if (round_no == 1) CF_STREQ("rw read from offset 7", "world", buf);
    else CF_STREQ("rw read at end", "", buf);
    (void)n;
    /* write through it, read back through it */
    CF_EQ("rw lseek back", want, lseek(rw, want, SEEK_SET));
    char w[24];
    snprintf(w, sizeof w, "W%04d", round_no);
    CF_EQ("rw write", 5, write(rw, w, 5));
    CF_EQ("rw lseek", want, lseek(rw, want, SEEK_SET));
    memset(buf, 0, sizeof buf);
    CF_EQ("rw read back", 5, read(rw, buf, 5));
    CF_STREQ("rw read back contents", w, buf);
    memset(buf, 0, sizeof buf);
    CF_EQ("rw pread of the start", 7, pread(rw, buf, 7, 0));
    CF_STREQ("rw start of the contents", "hello, ", buf);
    char link[PATH_MAX] = {0}, lp[64];
    snprintf(lp, sizeof lp, "/proc/self/fd/%d", rw);
    if (readlink(lp, link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    CF_STREQ("rw path", path, link);
    /* ap: appends land at the end whatever the offset */
    CF_EQ("ap offset", round_no == 1 ? 2 : 6 + 6 * (round_no - 1), lseek(ap, 0, SEEK_CUR));
    char line[24];
    snprintf(line, sizeof line, "line%d\n", round_no);
    CF_EQ("ap append", 6, write(ap, line, 6));
    CF_EQ("ap offset after append", 6 + 6 * round_no, lseek(ap, 0, SEEK_CUR));
    memset(buf, 0, sizeof buf);
    pread(ap, buf, sizeof buf - 1, 0);
    char want_ap[64] = "line0\n";
    for (int i = 1; i <= round_no; i++) {
        char l[24];
        snprintf(l, sizeof l, "line%d\n", i);
        strcat(want_ap, l);
    }
    CF_STREQ("ap contents", want_ap, buf);
    CF_EQ("ro F_GETFL", O_RDWR, fcntl(ro, F_GETFL) & ~0100000);
    if (fstat(ro, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("ro mode", S_IFREG | 0400, st.st_mode);
    CF_EQ("ro offset", 14, lseek(ro, 0, SEEK_CUR));
    memset(buf, 0, sizeof buf);
    CF_EQ("ro pread", 14, pread(ro, buf, sizeof buf - 1, 0));
    CF_STREQ("ro contents", "read-only mode", buf);
    CF_EQ("ro pwrite", 1, pwrite(ro, "r", 1, 0));
}
CF_MAIN
