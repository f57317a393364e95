/* Differential test program: allocates and frees heavily (small blocks from brk, large ones
 * mmapped), checking the contents of every block before freeing it. usage: malloc_heavy ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 4096
static unsigned char *slot[SLOTS];
static size_t slot_len[SLOTS];
static unsigned char slot_fill[SLOTS];

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++) {
        for (int k = 0; k < 4000; k++) {
            unsigned i = (unsigned)(next() % SLOTS);
            if (slot[i]) {
                for (size_t j = 0; j < slot_len[i]; j += 97)
                    if (slot[i][j] != slot_fill[i]) { printf("CORRUPT slot %u\n", i); return 1; }
                sum += slot_len[i];
                free(slot[i]);
                slot[i] = NULL;
            } else {
                uint64_t v = next();
                size_t len = (v % 16 == 0) ? 200000 + v % 300000 : 16 + v % 4000;
                slot[i] = malloc(len);
                if (!slot[i]) { perror("malloc"); return 1; }
                slot_len[i] = len;
                slot_fill[i] = (unsigned char)(v >> 8);
                memset(slot[i], slot_fill[i], len);
            }
        }
        printf("round %ld sum %llu\n", r, (unsigned long long)sum);
        fflush(stdout);
        usleep(20000);
    }
    printf("done\n");
    return 0;
}
