/* Mapping attributes set with madvise, mmap flags and mseal.
 * kind: memory
 * checks: MADV_DONTFORK, MADV_DONTDUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WIPEONFORK, MADV_MERGEABLE, MADV_SEQUENTIAL, MADV_RANDOM, MAP_NORESERVE, mseal, MAP_32BIT placement, a read-only shared view of a file opened read-write (may become writable), contents
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PG 4096
#define LEN (4 * PG)

struct m {
    const char *what;
    const char *flag; /* the VmFlags code the mapping must show */
    char *p;
};
static struct m maps[12];
static int nmaps;
static char *shared_file;
static char *low;

/* The VmFlags line of the mapping starting at `p` (empty when there is none). */
static void vmflags(const void *p, char *out, size_t n) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    out[0] = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = a == (unsigned long)p;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, n, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

static int has_flag(const char *flags, const char *code) {
    char buf[512];
    snprintf(buf, sizeof buf, " %s", flags);
    char want[8];
    snprintf(want, sizeof want, " %s ", code);
    char *nl = strchr(buf, '\n');
    if (nl) *nl = ' ';
    return strstr(buf, want) != NULL;
}

static char *mapping(const char *what, const char *flag, int advice, int extra) {
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    if (p == MAP_FAILED) CF_TRY(-1);
    if (advice >= 0) CF_TRY(madvise(p, LEN, advice));
    for (int i = 0; i < LEN / PG; i++) snprintf(p + i * PG, 64, "%s page %d", what, i);
    maps[nmaps++] = (struct m){what, flag, p};
    return p;
}

static void setup(void) {
    mapping("MADV_DONTFORK", "dc", MADV_DONTFORK, 0);
    mapping("MADV_DONTDUMP", "dd", MADV_DONTDUMP, 0);
    mapping("MADV_HUGEPAGE", "hg", MADV_HUGEPAGE, 0);
    mapping("MADV_NOHUGEPAGE", "nh", MADV_NOHUGEPAGE, 0);
    mapping("MADV_WIPEONFORK", "wf", MADV_WIPEONFORK, 0);
    mapping("MADV_MERGEABLE", "mg", MADV_MERGEABLE, 0);
    mapping("MADV_SEQUENTIAL", "sr", MADV_SEQUENTIAL, 0);
    mapping("MADV_RANDOM", "rr", MADV_RANDOM, 0);
    mapping("MAP_NORESERVE", "nr", -1, MAP_NORESERVE);
    char *sealed = mapping("mseal", "sl", -1, 0);
    CF_TRY(syscall(462, sealed, LEN, 0));
    low = mapping("MAP_32BIT", NULL, -1, MAP_32BIT);
    if ((uintptr_t)low + LEN > 0x80000000UL) CF_TRY(-1);

    char path[] = "/tmp/cf-madvise-XXXXXX";
    int fd = mkstemp(path);
    CF_TRY(fd);
    CF_TRY(ftruncate(fd, PG));
    CF_TRY(pwrite(fd, "file contents", 13, 0));
    shared_file = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    if (shared_file == MAP_FAILED) CF_TRY(-1);
    close(fd);
    unlink(path);
}

static void check(void) {
    char flags[512];
    for (int i = 0; i < nmaps; i++) {
        struct m *m = &maps[i];
        vmflags(m->p, flags, sizeof flags);
        if (!flags[0]) {
            cf_fail("%s: no mapping at %p any more", m->what, (void *)m->p);
            continue;
        }
        if (m->flag && !has_flag(flags, m->flag))
            cf_fail("%s: VmFlags \"%s\" lack %s", m->what, strtok(flags, "\n"), m->flag);
        for (int j = 0; j < LEN / PG; j++) {
            char want[64];
            snprintf(want, sizeof want, "%s page %d", m->what, j);
            if (strcmp(m->p + j * PG, want) != 0)
                cf_fail("%s: page %d holds \"%.30s\"", m->what, j, m->p + j * PG);
        }
    }
    /* The sealed mapping cannot be unmapped, the MAP_32BIT one is below 2 GiB. */
    char *sealed = maps[nmaps - 2].p;
    errno = 0;
    if (munmap(sealed, LEN) == 0 || errno != EPERM)
        cf_fail("mseal: munmap of the sealed mapping gave %s, expected EPERM", strerror(errno));
    if ((uintptr_t)low + LEN > 0x80000000UL) cf_fail("MAP_32BIT: mapping at %p", (void *)low);
    /* What the flags do: a child has no MADV_DONTFORK mapping, zeros in MADV_WIPEONFORK. */
    pid_t c = fork();
    if (c == 0) {
        unsigned char v;
        int dontfork_gone = mincore(maps[0].p, PG, &v) < 0 && errno == ENOMEM;
        int wiped = maps[4].p[0] == 0;
        _exit(dontfork_gone && wiped ? 0 : 1);
    }
    int st;
    CF_TRY(waitpid(c, &st, 0));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        cf_fail("a forked child sees the MADV_DONTFORK mapping or unwiped MADV_WIPEONFORK memory");
    /* A read-only shared view of a file opened read-write may be made writable. */
    if (strcmp(shared_file, "file contents") != 0)
        cf_fail("shared file mapping holds \"%.20s\"", shared_file);
    if (mprotect(shared_file, PG, PROT_READ | PROT_WRITE) < 0)
        cf_fail("mprotect(PROT_WRITE) of the shared file mapping: %s", strerror(errno));
    else
        CF_TRY(mprotect(shared_file, PG, PROT_READ));
}

CF_MAIN
