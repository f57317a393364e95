/* The same program as restore/tests/progs/sockpair.c (used by the differential tests). */
#include "../../restore/tests/progs/sockpair.c"
