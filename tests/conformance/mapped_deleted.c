/* A deleted file mapped MAP_SHARED and MAP_PRIVATE while a descriptor holds it, and a second
 * deleted file mapped MAP_SHARED with no descriptor left.
 * kind: file
 * checks: /proc/self/maps names "PATH (deleted)", contents of every mapping, MAP_SHARED writes seen through the descriptor and descriptor writes seen in the mapping, private copy-on-write pages, mode, link count 0, size
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096
static int fd;
static char *shared, *priv, *lone;
static char path[PATH_MAX], lpath[PATH_MAX];
static int round_no;

static int in_maps(void *addr, const char *name) {
    FILE *m = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 128];
    int found = 0;
    while (m && fgets(line, sizeof line, m)) {
        unsigned long s;
        if (sscanf(line, "%lx-", &s) == 1 && s == (unsigned long)addr) {
            char *n = strchr(line, '/');
            if (n) {
                n[strcspn(n, "\n")] = 0;
                found = strcmp(n, name) == 0;
                if (!found) cf_fail("mapping at %p is \"%s\", expected \"%s\"", addr, n, name);
            }
        }
    }
    if (m) fclose(m);
    return found;
}

static void setup(void) {
    char cwd[PATH_MAX / 2];
    if (!getcwd(cwd, sizeof cwd)) exit(2);
    snprintf(path, sizeof path, "%s/mapped.dat", cwd);
    snprintf(lpath, sizeof lpath, "%s/lone.dat", cwd);
    CF_TRY(fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640));
    CF_TRY(fchmod(fd, 0640));
    char page[PG];
    for (int i = 0; i < 3; i++) {
        memset(page, 'A' + i, PG);
        CF_TRY(write(fd, page, PG));
    }
    shared = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    priv = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PG);
    if (shared == MAP_FAILED || priv == MAP_FAILED) exit(2);
    priv[0] = 'p'; /* a copy-on-write page */
    int l;
    CF_TRY(l = open(lpath, O_RDWR | O_CREAT | O_TRUNC, 0600));
    CF_TRY(ftruncate(l, 2 * PG));
    lone = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, l, 0);
    if (lone == MAP_FAILED) exit(2);
    memcpy(lone, "lone mapping", 12);
    close(l);
    CF_TRY(unlink(path));
    CF_TRY(unlink(lpath));
}

static void check(void) {
    round_no++;
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s (deleted)", path);
    in_maps(shared, want);
    in_maps(priv, want);
    snprintf(want, sizeof want, "%s (deleted)", lpath);
    in_maps(lone, want);
    struct stat st;
    if (fstat(fd, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("mode", S_IFREG | 0640, st.st_mode);
    CF_EQ("link count", 0, st.st_nlink);
    CF_EQ("size", 3 * PG, st.st_size);
    /* contents */
    CF_EQ("shared page 0", 'A' + (round_no > 1 ? 20 : 0), shared[0]);
    CF_EQ("shared page 1", round_no > 1 ? 'z' : 'B', shared[PG]);
    CF_EQ("private page 0 (copy)", 'p', priv[0]);
    CF_EQ("private page 1 (file)", 'C', priv[PG]);
    CF_STREQ("lone mapping", "lone mapping", lone);
    /* a write to the shared mapping reaches the file behind the descriptor */
    shared[0] = 'A' + 20;
    char c = 0;
    CF_EQ("pread", 1, pread(fd, &c, 1, 0));
    CF_EQ("mapping write seen through the descriptor", 'A' + 20, c);
    /* a write through the descriptor is seen in the shared mapping */
    CF_EQ("pwrite", 1, pwrite(fd, "z", 1, PG));
    CF_EQ("descriptor write seen in the mapping", 'z', shared[PG]);
    /* the private copy does not see the file's page 1 change (page 1 of the file is priv[0]) */
    CF_EQ("private copy unchanged", 'p', priv[0]);
}
CF_MAIN
