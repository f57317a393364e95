/* A deleted file mapped MAP_PRIVATE with no descriptor left: its unchanged pages are only in
 * the file, which an ordinary user cannot reach once no descriptor holds it.
 * kind: file
 * checks: /proc/self/maps name "PATH (deleted)", changed (copy-on-write) and unchanged pages
 * root: restored
 * user: refused: a private mapping of a deleted file that no descriptor of the job holds
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>

#define PG 4096
static char *priv;
static char path[PATH_MAX];

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/private.dat", cwd);
    int fd;
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    char page[PG];
    for (int i = 0; i < 3; i++) {
        memset(page, 'a' + i, PG);
        CF_TRY(write(fd, page, PG));
    }
    priv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (priv == MAP_FAILED) exit(2);
    priv[PG] = 'X';
    close(fd);
    CF_TRY(unlink(path));
}

static void check(void) {
    FILE *m = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 128], want[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s (deleted)", path);
    int seen = 0;
    while (m && fgets(line, sizeof line, m)) {
        unsigned long s;
        if (sscanf(line, "%lx-", &s) == 1 && s == (unsigned long)priv) {
            char *n = strchr(line, '/');
            if (n) n[strcspn(n, "\n")] = 0;
            CF_STREQ("name in /proc/self/maps", want, n);
            seen = 1;
        }
    }
    if (m) fclose(m);
    if (!seen) cf_fail("no mapping at %p", (void *)priv);
    CF_EQ("page 0 (file)", 'a', priv[0]);
    CF_EQ("page 1 (copy)", 'X', priv[PG]);
    CF_EQ("page 1 rest (copy)", 'b', priv[PG + 1]);
    CF_EQ("page 2 (file)", 'c', priv[2 * PG + 7]);
}
CF_MAIN
