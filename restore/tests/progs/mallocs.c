/* Allocates and frees heavily (small brk allocations and large mmap ones), checksumming. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    enum { SLOTS = 512 };
    static unsigned char *slot[SLOTS];
    static size_t size[SLOTS];
    uint64_t x = 88172645463325252ull, sum = 0;
    for (int round = 0; round < 120; round++) {
        for (int k = 0; k < 400; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int s = x % SLOTS;
            if (slot[s]) {
                for (size_t i = 0; i < size[s]; i += 97) sum += slot[s][i];
                free(slot[s]);
                slot[s] = NULL;
            } else {
                size[s] = (x >> 20) % 7 == 0 ? 200000 + (x >> 40) % 300000 : 16 + (x >> 30) % 4000;
                slot[s] = malloc(size[s]);
                if (!slot[s]) return 4;
                memset(slot[s], (int)(x >> 8), size[s]);
            }
        }
        fprintf(f, "%d %llu\n", round, (unsigned long long)sum);
        fflush(f);
        usleep(3000);
    }
    fprintf(f, "done\n");
    return fclose(f) == 0 ? 0 : 3;
}
