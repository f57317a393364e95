/* A memfd mapped MAP_SHARED by a parent and its child: one shared object, seen through the
 * descriptor too; and a memfd mapped with no descriptor left.
 * kind: memfd
 * checks: the child's write is seen in the parent's mapping and through the descriptor, /proc/self/maps names "/memfd:NAME (deleted)", contents, size, mapping without a descriptor
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PG 4096
static int m, to_child[2], from_child[2];
static char *map, *lone;
static pid_t child;

static void maps_name(void *addr, const char *want) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 128];
    int seen = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long s;
        if (sscanf(line, "%lx-", &s) == 1 && s == (unsigned long)addr) {
            char *n = strchr(line, '/');
            if (n) n[strcspn(n, "\n")] = 0;
            CF_STREQ("name in /proc/self/maps", want, n);
            seen = 1;
        }
    }
    if (f) fclose(f);
    if (!seen) cf_fail("no mapping at %p", addr);
}

static void setup(void) {
    CF_TRY(m = memfd_create("shared-obj", 0));
    CF_TRY(ftruncate(m, 2 * PG));
    map = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    if (map == MAP_FAILED) exit(2);
    strcpy(map, "from setup");
    int l;
    CF_TRY(l = memfd_create("lonely", 0));
    CF_TRY(ftruncate(l, PG));
    lone = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, l, 0);
    if (lone == MAP_FAILED) exit(2);
    strcpy(lone, "lonely contents");
    close(l);
    CF_TRY(pipe(to_child));
    CF_TRY(pipe(from_child));
    child = fork();
    if (child == 0) {
        close(to_child[1]);
        close(from_child[0]);
        char n;
        while (read(to_child[0], &n, 1) == 1) {
            /* the child writes into its view of the shared mapping */
            snprintf(map + PG, 32, "child round %c", n);
            if (write(from_child[1], "k", 1) != 1) _exit(3);
        }
        _exit(0);
    }
}

static void check(void) {
    static char round_no = '0';
    round_no++;
    maps_name(map, "/memfd:shared-obj (deleted)");
    maps_name(lone, "/memfd:lonely (deleted)");
    CF_STREQ("lonely contents", "lonely contents", lone);
    CF_STREQ("contents", "from setup", map);
    if (write(to_child[1], &round_no, 1) != 1) cf_fail("asking the child: %s", strerror(errno));
    char k = 0;
    if (read(from_child[0], &k, 1) != 1) cf_fail("child's answer: %s", strerror(errno));
    char want[32];
    snprintf(want, sizeof want, "child round %c", round_no);
    CF_STREQ("child's write seen in the parent's mapping", want, map + PG);
    char buf[32] = {0};
    pread(m, buf, sizeof buf - 1, PG);
    CF_STREQ("child's write seen through the descriptor", want, buf);
    struct stat st;
    if (fstat(m, &st) < 0) cf_fail("fstat: %s", strerror(errno));
    CF_EQ("size", 2 * PG, st.st_size);
}
CF_MAIN
