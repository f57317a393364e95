/* Every kind of mapping capture/restore handles, each with known contents that are checked
 * after sleeping through the checkpoints: shared anonymous, private file mapping with
 * modified pages (one of them zeroed), read-only and PROT_NONE anonymous pages with data,
 * and a large malloc'd buffer. Prints one line per check. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define PG 4096
static uint64_t sum(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
int main(int argc, char **argv) {
    FILE *out = fopen(argv[1], "w");
    size_t big = (size_t)atoi(argv[2]) << 20;
    if (!out) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s.data", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 16 * PG; i++) { char c = 'a' + i % 26; if (write(fd, &c, 1) != 1) return 2; }
    unsigned char *shared = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *fmap = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *ro = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *none = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *heap = malloc(big);
    unsigned char *fshared = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4 * PG);
    close(fd);
    fshared[10] = 'S'; /* written through to the file before the checkpoints */
    for (int i = 0; i < 8 * PG; i++) shared[i] = (unsigned char)(i * 13);
    memset(fmap + 3 * PG, 0, PG);          /* a modified page that is all zeros */
    memcpy(fmap + 7 * PG + 100, "changed", 7); /* a partly modified page */
    for (int i = 0; i < 4 * PG; i++) ro[i] = (unsigned char)(i * 7 + 1);
    for (int i = 0; i < 4 * PG; i++) none[i] = (unsigned char)(i * 3 + 2);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < big; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(heap + i, &x, 8);
    }
    mprotect(ro, 4 * PG, PROT_READ);
    mprotect(none, 4 * PG, PROT_NONE);
    uint64_t want_heap = sum(heap, big), want_sh = sum(shared, 8 * PG), want_f = sum(fmap, 16 * PG);
    uint64_t want_ro = sum(ro, 4 * PG);
    for (int i = 0; i < 250; i++) usleep(5000);
    mprotect(none, 4 * PG, PROT_READ);
    int none_ok = 1;
    for (int i = 0; i < 4 * PG; i++) none_ok &= none[i] == (unsigned char)(i * 3 + 2);
    fprintf(out, "heap %d\n", sum(heap, big) == want_heap);
    fprintf(out, "shared %d\n", sum(shared, 8 * PG) == want_sh);
    fprintf(out, "file %d zero-page %d\n", sum(fmap, 16 * PG) == want_f, fmap[3 * PG + 5] == 0 && fmap[4 * PG] == 'a' + (4 * PG) % 26);
    fprintf(out, "readonly %d\n", sum(ro, 4 * PG) == want_ro);
    fprintf(out, "protnone %d\n", none_ok);
    fprintf(out, "shared file %d\n", fshared[10] == 'S' && fshared[11] == 'a' + (4 * PG + 11) % 26);
    unlink(path);
    return fclose(out) == 0 ? 0 : 3;
}
