/* A working directory removed while the process is in it.
 * kind: file
 * checks: /proc/self/cwd "PATH (deleted)", link count 0 and mode of ".", getcwd fails with ENOENT, nothing can be created in it, the path stays free
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static char path[PATH_MAX];

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/gone.dir", cwd);
    rmdir(path);
    CF_TRY(mkdir(path, 0750));
    CF_TRY(chmod(path, 0750));
    CF_TRY(chdir(path));
    CF_TRY(rmdir(path));
}

static void check(void) {
    char link[PATH_MAX + 16] = {0}, want[PATH_MAX + 16];
    if (readlink("/proc/self/cwd", link, sizeof link - 1) < 0) cf_fail("readlink: %s", strerror(errno));
    snprintf(want, sizeof want, "%s (deleted)", path);
    CF_STREQ("/proc/self/cwd", want, link);
    struct stat st;
    if (stat(".", &st) < 0) cf_fail("stat .: %s", strerror(errno));
    CF_EQ("link count of .", 0, st.st_nlink);
    CF_EQ("mode of .", S_IFDIR | 0750, st.st_mode);
    CF_EQ("uid of .", getuid(), st.st_uid);
    char buf[PATH_MAX];
    errno = 0;
    if (getcwd(buf, sizeof buf)) cf_fail("getcwd succeeded: %s", buf);
    CF_EQ("getcwd errno", ENOENT, errno);
    int fd = open("newfile", O_CREAT | O_WRONLY, 0600);
    if (fd >= 0) {
        cf_fail("a file could be created in the removed directory");
        close(fd);
        unlink("newfile");
    } else {
        CF_EQ("create errno", ENOENT, errno);
    }
    if (access(path, F_OK) == 0) cf_fail("%s exists again", path);
}
CF_MAIN
