/* The umask, read with umask(2), /proc/self/status and the mode of a new file.
 * kind: process attributes
 * checks: umask, Umask of /proc/self/status, mode of a file created with 0666
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/stat.h>

static void setup(void) { umask(0027); }

static void check(void) {
    mode_t m = umask(0);
    umask(m);
    CF_EQ("umask", 0027, m);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned v = 0777;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Umask:", 6)) v = strtoul(line + 6, NULL, 8);
    if (f) fclose(f);
    CF_EQ("Umask in /proc/self/status", 0027, v);
    char path[64];
    snprintf(path, sizeof path, "cf-umask-%d", getpid());
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0666);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) cf_fail("creating %s: %s", path, strerror(errno));
    else CF_EQ("mode of a new file", 0640, st.st_mode & 0777);
    if (fd >= 0) close(fd);
    unlink(path);
}
CF_MAIN
