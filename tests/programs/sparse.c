/* Storage test program: a large anonymous mapping of which only a few pages are touched, and
 * a private mapping of a large file of its own of which only a few pages are changed.
 * usage: sparse ANON_MIB FILE FILE_MIB PAGES signal|nowait
 * Maps ANON_MIB MiB anonymous memory and writes pseudo-random data into PAGES pages spread
 * over it (the others are never touched, not even read); writes FILE (FILE_MIB MiB of
 * pseudo-random data), closes it, opens it read-only, maps it MAP_PRIVATE, reads all of it
 * (its pages are present) and overwrites PAGES pages spread over it. Prints the checksums of
 * the file and of its mapping and "ready"; in "signal" mode it then waits for SIGUSR2. Then
 * it prints the checksums of the file read back from disk (a private mapping must never write
 * to its file), of the anonymous memory and of the file mapping, and how many pages of each
 * mapping differ from what they must hold (the written pages their data; the other anonymous
 * pages zeros, the other pages of the file mapping the file's bytes). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
static uint64_t x;
static uint64_t next(void) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
static void fill(uint64_t *p, size_t words, uint64_t seed) {
    x = seed | 1;
    for (size_t i = 0; i < words; i++) p[i] = next();
}
static uint64_t sum(const unsigned char *p, size_t len, uint64_t h) {
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < len / 8; i++) h = (h ^ w[i]) * 1099511628211ULL;
    return h;
}
/* The page index of the k-th of `pages` written pages in a mapping of `n` pages. */
static size_t nth(size_t k, size_t pages, size_t n) { return k * (n / pages) + (k * 7919) % (n / pages); }
static int written(size_t page, size_t pages, size_t n) {
    size_t k = page / (n / pages);
    return k < pages && nth(k, pages, n) == page;
}

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: sparse ANON_MIB FILE FILE_MIB PAGES signal|nowait\n"); return 2; }
    size_t anon_len = (size_t)atol(argv[1]) << 20, file_len = (size_t)atol(argv[3]) << 20;
    size_t pages = (size_t)atol(argv[4]);
    int by_signal = strcmp(argv[5], "signal") == 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);

    unsigned char *anon = mmap(NULL, anon_len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (anon == MAP_FAILED) { perror("mmap anon"); return 1; }
    size_t anon_pages = anon_len / PAGE;
    for (size_t k = 0; k < pages; k++)
        fill((uint64_t *)(anon + nth(k, pages, anon_pages) * PAGE), PAGE / 8, 1000 + k);

    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    uint64_t *buf = malloc(1 << 20);
    if (!buf) { perror("malloc"); return 1; }
    for (size_t off = 0; off < file_len; off += 1 << 20) {
        fill(buf, (1 << 20) / 8, 77 + off);
        if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20) { perror("pwrite"); return 1; }
    }
    /* A file open for writing would be saved whole at a checkpoint (it is rewound at a
     * restart): only a read-only descriptor is kept. */
    close(fd);
    fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    unsigned char *fmap = mmap(NULL, file_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (fmap == MAP_FAILED) { perror("mmap file"); return 1; }
    uint64_t file_sum = sum(fmap, file_len, 14695981039346656037ULL);
    size_t file_pages = file_len / PAGE;
    for (size_t k = 0; k < pages; k++)
        fill((uint64_t *)(fmap + nth(k, pages, file_pages) * PAGE), PAGE / 8, 5000 + k);
    printf("file %016llx map %016llx\n", (unsigned long long)file_sum,
           (unsigned long long)sum(fmap, file_len, 14695981039346656037ULL));
    /* The buffer is unmapped: the checkpoint holds nothing but the program's own small
     * mappings besides the written pages. */
    free(buf);
    printf("ready\n");
    fflush(stdout);

    if (by_signal) { int sig; sigwait(&set, &sig); }
    buf = malloc(1 << 20);
    if (!buf) { perror("malloc"); return 1; }

    /* Every page is what it must be: the written pages hold their data, the other anonymous
     * pages are zero, the other pages of the file mapping hold the file's bytes. */
    size_t bad_anon = 0, bad_map = 0;
    uint64_t *want = malloc(PAGE);
    if (!want) { perror("malloc"); return 1; }
    for (size_t p = 0; p < anon_pages; p++) {
        int w = written(p, pages, anon_pages);
        if (w) fill(want, PAGE / 8, 1000 + p / (anon_pages / pages)); else memset(want, 0, PAGE);
        if (memcmp(anon + p * PAGE, want, PAGE) != 0) bad_anon++;
    }
    for (size_t p = 0; p < file_pages; p++) {
        if (written(p, pages, file_pages)) {
            fill(want, PAGE / 8, 5000 + p / (file_pages / pages));
        } else if (pread(fd, want, PAGE, (off_t)(p * PAGE)) != PAGE) {
            perror("pread"); return 1;
        }
        if (memcmp(fmap + p * PAGE, want, PAGE) != 0) bad_map++;
    }
    uint64_t disk = 14695981039346656037ULL;
    for (size_t off = 0; off < file_len; off += 1 << 20) {
        if (pread(fd, buf, 1 << 20, (off_t)off) != 1 << 20) { perror("pread"); return 1; }
        disk = sum((unsigned char *)buf, 1 << 20, disk);
    }
    printf("file %016llx anon %016llx map %016llx\n", (unsigned long long)disk,
           (unsigned long long)sum(anon, anon_len, 14695981039346656037ULL),
           (unsigned long long)sum(fmap, file_len, 14695981039346656037ULL));
    printf("wrong pages: anon %zu map %zu\n", bad_anon, bad_map);
    printf("done\n");
    return 0;
}
