/* Memory a parent shares copy-on-write with the children it forked.
 * kind: memory
 * checks: each child's and the parent's private share of a 16 MiB array (smaps Private_Dirty), the total Pss of the array over the 9 processes, its contents in every process, pages a child changed staying its own
 * root: restored
 */
#include "conformance.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define KIDS 8
#define PG 4096
#define LEN (16 << 20)

static unsigned char *array;
static pid_t kids[KIDS];
static int to_parent[2];
static int to_kid[KIDS][2];

/* Private_Dirty and Pss (kB) of the mapping at `p` in process `pid` (0: this one). */
static void usage(pid_t pid, void *p, long *priv, long *pss) {
    char path[64], line[256];
    snprintf(path, sizeof path, pid ? "/proc/%d/smaps" : "/proc/self/smaps", pid);
    FILE *f = fopen(path, "r");
    int in = 0;
    *priv = *pss = -1;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%lx-%lx", &a, &b) == 2) {
            in = a == (unsigned long)p;
            continue;
        }
        if (in) {
            sscanf(line, "Private_Dirty: %ld", priv);
            sscanf(line, "Pss: %ld", pss);
        }
    }
    fclose(f);
}

/* The byte at offset `i` of the array in process `who` (0 = parent, k+1 = child k). */
static unsigned char want(int who, size_t i) {
    if (who > 0 && i / PG == (size_t)(who * 97)) return (unsigned char)(0xa0 + who);
    return (unsigned char)(i * 7 + i / PG);
}

/* A child's own check: its contents, and that it holds almost none of the array privately. */
static void child_check(int who) {
    char msg[200] = "OK";
    for (size_t i = 0; i < LEN; i += 61)
        if (array[i] != want(who, i)) {
            snprintf(msg, sizeof msg, "child %d: array[%zu] = %d, expected %d", who, i, array[i],
                     want(who, i));
            break;
        }
    long priv, pss;
    usage(0, array, &priv, &pss);
    if (strcmp(msg, "OK") == 0 && (priv < 0 || priv > 1024))
        snprintf(msg, sizeof msg, "child %d: Private_Dirty of the shared array is %ld kB (expected at most 1024)", who, priv);
    char line[256];
    int n = snprintf(line, sizeof line, "%s\n", msg);
    if (write(to_parent[1], line, n) != n) _exit(3);
}

static void setup(void) {
    array = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (array == MAP_FAILED) CF_TRY(-1);
    CF_TRY(madvise(array, LEN, MADV_NOHUGEPAGE));
    for (size_t i = 0; i < LEN; i++) array[i] = want(0, i);
    CF_TRY(pipe(to_parent));
    for (int k = 0; k < KIDS; k++) {
        CF_TRY(pipe(to_kid[k]));
        pid_t c = fork();
        CF_TRY(c);
        if (c == 0) {
            int who = k + 1;
            /* Only the parent writes to the children: a child ends when the parent is gone. */
            for (int j = 0; j <= k; j++) close(to_kid[j][1]);
            /* One page of its own. */
            for (size_t i = (size_t)who * 97 * PG; i < (size_t)(who * 97 + 1) * PG; i++) array[i] = want(who, i);
            char b;
            while (read(to_kid[k][0], &b, 1) == 1) child_check(who);
            _exit(0);
        }
        kids[k] = c;
        close(to_kid[k][0]);
    }
}

static void check(void) {
    for (size_t i = 0; i < LEN; i += 61)
        if (array[i] != want(0, i)) {
            cf_fail("parent: array[%zu] = %d, expected %d", i, array[i], want(0, i));
            break;
        }
    long priv, pss, total = 0;
    usage(0, array, &priv, &pss);
    if (priv < 0 || priv > 1024)
        cf_fail("parent: Private_Dirty of the shared array is %ld kB (expected at most 1024)", priv);
    total += pss;
    FILE *from = fdopen(dup(to_parent[0]), "r");
    for (int k = 0; k < KIDS; k++) {
        CF_TRY(write(to_kid[k][1], "c", 1));
        char line[256];
        if (!fgets(line, sizeof line, from)) {
            cf_fail("child %d does not answer", k + 1);
            continue;
        }
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, "OK") != 0) cf_fail("%s", line);
        usage(kids[k], array, &priv, &pss);
        total += pss;
    }
    fclose(from);
    /* 16 MiB shared by 9 processes, plus the 8 pages the children made their own (and the
     * parent's now private originals). */
    long expect = LEN / 1024 + 8 * 4;
    if (total < expect - 512 || total > expect + 1024)
        cf_fail("total Pss of the array over the 9 processes: %ld kB, expected about %ld", total, expect);
}

CF_MAIN
