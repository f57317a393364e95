/* The same program as restore/tests/progs/unixserver.c (used by the differential tests). */
#include "../../restore/tests/progs/unixserver.c"
