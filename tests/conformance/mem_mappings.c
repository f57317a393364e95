/* Memory mappings: anonymous private and shared, file-backed private (modified) and shared, the heap.
 * kind: memory
 * checks: addresses, sizes and protections of each mapping; contents of anonymous private, anonymous shared (shared with a child), private file copy (modified, file untouched) and shared file mappings (writes reach the file); brk position and heap contents
 * root: restored
 */
#include "conformance.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define SZ (256 * 1024)
static unsigned char *anon, *shared, *fpriv, *fshared, *heap;
static void *brk0, *brk_end;
static int to_child[2], from_child[2];

static unsigned char pat(int i, int k) { return (unsigned char)(i * 31 + k * 7 + (i >> 9)); }

static int prot_of(void *addr) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int prot = -1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && (unsigned long)addr >= lo && (unsigned long)addr < hi)
            prot = (p[0] == 'r') * 4 + (p[1] == 'w') * 2 + (p[2] == 'x') + (p[3] == 's') * 8;
    }
    if (f) fclose(f);
    return prot;
}

static void setup(void) {
    int fd;
    unsigned char buf[4096];
    CF_TRY(fd = open("mapped.bin", O_RDWR | O_CREAT | O_TRUNC, 0600));
    for (int i = 0; i < SZ; i += 4096) {
        for (int k = 0; k < 4096; k++) buf[k] = pat(i + k, 3);
        CF_TRY(write(fd, buf, 4096));
    }
    anon = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    shared = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fpriv = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    fshared = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CF_TRY(anon == MAP_FAILED || shared == MAP_FAILED || fpriv == MAP_FAILED || fshared == MAP_FAILED ? -1 : 0);
    close(fd);
    for (int i = 0; i < SZ; i++) {
        anon[i] = pat(i, 1);
        shared[i] = pat(i, 2);
    }
    for (int i = 0; i < SZ; i += 8192) fpriv[i] = 0xAA; /* private copies of some pages */
    fshared[5] = 0x55;
    CF_TRY(mprotect(anon + SZ / 2, 4096, PROT_READ));
    brk0 = sbrk(0);
    heap = sbrk(100000);
    CF_TRY(heap == (void *)-1 ? -1 : 0);
    for (int i = 0; i < 100000; i++) heap[i] = pat(i, 4);
    brk_end = sbrk(0);
    CF_TRY(pipe(to_child));
    CF_TRY(pipe(from_child));
    pid_t c = fork();
    CF_TRY(c);
    if (c == 0) { /* the child writes into the shared mapping when asked, then reports */
        char b;
        close(to_child[1]); /* EOF once the first process ends: the child ends with it */
        while (read(to_child[0], &b, 1) == 1) {
            shared[(unsigned char)b] = (unsigned char)(0xC0 + b);
            if (write(from_child[1], &b, 1) != 1) _exit(1);
        }
        _exit(0);
    }
}

static int round_no;
static void check(void) {
    int bad = 0;
    for (int i = 0; i < SZ; i++) bad += anon[i] != pat(i, 1);
    CF_EQ("anonymous private contents (bytes wrong)", 0, bad);
    bad = 0;
    for (int i = 0; i < SZ; i++) if (i >= 64 || i == 0) bad += shared[i] != pat(i, 2);
    CF_EQ("anonymous shared contents (bytes wrong)", 0, bad);
    bad = 0;
    for (int i = 0; i < SZ; i++) bad += fpriv[i] != (i % 8192 == 0 ? 0xAA : pat(i, 3));
    CF_EQ("private file mapping contents (bytes wrong)", 0, bad);
    CF_EQ("shared file mapping sees the file's byte", 0x55, fshared[5]);
    int fd = open("mapped.bin", O_RDONLY);
    unsigned char b = 0;
    CF_EQ("the file holds the shared write", 1, pread(fd, &b, 1, 5));
    CF_EQ("the file's byte 5", 0x55, b);
    CF_EQ("the file untouched by the private copy", 1, pread(fd, &b, 1, 8192));
    CF_EQ("the file's byte 8192", pat(8192, 3), b);
    fshared[6] = 0x66;
    CF_EQ("a new shared write reaches the file", 1, pread(fd, &b, 1, 6));
    CF_EQ("the file's byte 6", 0x66, b);
    close(fd);
    CF_EQ("protection rw-p", 6, prot_of(anon));
    CF_EQ("protection r--p of the middle page", 4, prot_of(anon + SZ / 2));
    CF_EQ("protection rw-s", 14, prot_of(shared));
    CF_EQ("brk end not below where it was", 1, (char *)sbrk(0) >= (char *)brk_end);
    CF_EQ("brk start", (long)brk0, (long)heap);
    bad = 0;
    for (int i = 0; i < 100000; i++) bad += heap[i] != pat(i, 4);
    CF_EQ("heap contents (bytes wrong)", 0, bad);
    char k = (char)(1 + round_no++);
    CF_EQ("child asked", 1, write(to_child[1], &k, 1));
    CF_EQ("child answered", 1, read(from_child[0], &k, 1));
    CF_EQ("the child's write is seen in the shared mapping", 0xC0 + k, shared[(unsigned char)k]);
    shared[(unsigned char)k] = pat(k, 2);
}

CF_MAIN
