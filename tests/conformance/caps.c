/* The five capability sets of each thread (they are per thread). As root: the main thread
 * keeps a chosen permitted set with a smaller effective one, an inheritable set, an ambient
 * capability and a smaller bounding set; a second thread has other sets. An ordinary user's
 * program has no capabilities, and must still have none, with its bounding set unchanged.
 * kind: credentials
 * checks: capget of each thread, PR_CAPBSET_READ, PR_CAP_AMBIENT_IS_SET, the Cap* lines of /proc/self/task/TID/status
 * root: restored
 * build: -pthread
 */
#include "conformance.h"
#include "cf_threads.h"
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

struct caps { uint64_t eff, prm, inh, bnd, amb; };
static struct caps want[2];

#define BIT(c) (1ull << (c))

static int get_caps(pid_t tid, struct caps *c) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, tid};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return -1;
    c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
    c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
    c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    return 0;
}

static void set_caps(uint64_t eff, uint64_t prm, uint64_t inh) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}};
    CF_TRY(syscall(SYS_capset, &h, d));
}

static uint64_t status_hex(pid_t tid, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    uint64_t v = ~0ull;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) v = strtoull(line + strlen(key) + 1, NULL, 16);
    if (f) fclose(f);
    return v;
}

/* Reads this thread's own sets (bounding and ambient only through prctl of the thread). */
static void own(struct caps *c) {
    get_caps(0, c);
    c->bnd = c->amb = 0;
    for (int cap = 0; cap <= 63; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0) break;
        if (r) c->bnd |= BIT(cap);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) c->amb |= BIT(cap);
    }
}

static void compare(int i, pid_t tid, const struct caps *got) {
    char what[80];
#define ONE(field, name)                                                                   \
    snprintf(what, sizeof what, "thread %d %s set", i, name);                              \
    if (want[i].field != got->field)                                                       \
        cf_fail("%s: expected %#llx, got %#llx", what, (unsigned long long)want[i].field,  \
                (unsigned long long)got->field);
    ONE(eff, "effective") ONE(prm, "permitted") ONE(inh, "inheritable") ONE(bnd, "bounding")
    ONE(amb, "ambient")
    struct caps st = {status_hex(tid, "CapEff"), status_hex(tid, "CapPrm"), status_hex(tid, "CapInh"),
                      status_hex(tid, "CapBnd"), status_hex(tid, "CapAmb")};
    snprintf(what, sizeof what, "thread %d Cap* of /proc/self/task/TID/status", i);
    if (memcmp(&st, &want[i], sizeof st))
        cf_fail("%s: expected eff %#llx prm %#llx inh %#llx bnd %#llx amb %#llx, got %#llx %#llx %#llx %#llx %#llx",
                what, (unsigned long long)want[i].eff, (unsigned long long)want[i].prm,
                (unsigned long long)want[i].inh, (unsigned long long)want[i].bnd,
                (unsigned long long)want[i].amb, (unsigned long long)st.eff,
                (unsigned long long)st.prm, (unsigned long long)st.inh,
                (unsigned long long)st.bnd, (unsigned long long)st.amb);
}

static void worker_setup(int i) {
    if (geteuid() == 0) {
        struct caps c;
        own(&c);
        /* fewer permitted, effective a subset of them, another inheritable set */
        uint64_t prm = c.prm & ~(BIT(CAP_SYS_ADMIN) | BIT(CAP_NET_RAW) | BIT(CAP_SYS_PTRACE));
        set_caps(prm & (BIT(CAP_CHOWN) | BIT(CAP_KILL) | BIT(CAP_SETUID)), prm, BIT(CAP_FOWNER));
    }
    own(&want[i]);
}

static void worker_check(int i) {
    struct caps c;
    own(&c);
    compare(i, gettid(), &c);
}

static void setup(void) {
    cf_start(1, worker_setup, worker_check);
    if (geteuid() == 0) {
        CF_TRY(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0));
        CF_TRY(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0));
        struct caps c;
        own(&c);
        uint64_t prm = c.prm & ~(BIT(CAP_SYS_MODULE) | BIT(CAP_SYS_RAWIO));
        uint64_t inh = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_KILL);
        set_caps(prm & ~BIT(CAP_DAC_OVERRIDE), prm, inh);
        CF_TRY(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0));
    }
    own(&want[0]);
}

static void check(void) {
    struct caps c;
    own(&c);
    compare(0, gettid(), &c);
    cf_ask(1);
}
CF_MAIN
