/* The same program as restore/tests/progs/sysvshm.c (used by the differential tests). */
#include "../../restore/tests/progs/sysvshm.c"
