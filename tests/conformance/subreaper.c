/* The child subreaper flag of the process.
 * kind: process attributes
 * checks: PR_GET_CHILD_SUBREAPER
 * root: restored
 */
#include "conformance.h"
#include <sys/prctl.h>

static void setup(void) { CF_TRY(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)); }

static void check(void) {
    int v = -1;
    prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0);
    CF_EQ("PR_GET_CHILD_SUBREAPER", 1, v);
}
CF_MAIN
