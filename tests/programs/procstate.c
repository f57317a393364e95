/* Differential test program: the per-process and per-thread kernel state a restart must keep
 * (docs/capture-restore.md, "Supported"), set up once and checked at every step against what
 * it was, while helper threads sit in blocking system calls with every signal blocked (so any
 * EINTR is spurious) and checkpoints land at random moments. Output is deterministic: one line
 * per step, "ok" or what differs, then the results of the final checks.
 * usage: procstate STEPS        (working directory: a scratch directory; creates sub/ in it) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define NWAIT 9

/* ---- problems found in one step ---- */
static char problems[8192];
static pthread_mutex_t problems_lock = PTHREAD_MUTEX_INITIALIZER;
static void bad(const char *fmt, ...) {
    char one[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof one, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&problems_lock);
    size_t n = strlen(problems);
    if (n + strlen(one) + 3 < sizeof problems) {
        if (n) strcat(problems, "; ");
        strcat(problems, one);
    }
    pthread_mutex_unlock(&problems_lock);
}

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ULL; }
    return h;
}

static size_t slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += (size_t)r;
    close(fd);
    return n;
}

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

/* ---- process-wide state recorded at start ---- */
static pid_t pid0, ppid0;
static char cwd0[4096], comm0[32];
static struct rlimit rl0[RLIM_NLIMITS];
static struct sigaction sa0[65];
static sigset_t pending0;
static char cmdline0[4096], environ0[65536], auxv0[4096];
static size_t cmdline0_n, environ0_n, auxv0_n;
static unsigned long long stat0[64];
static char special0[256];
static unsigned mxcsr0;
static unsigned short fpucw0;

static volatile sig_atomic_t ticks, off_alt;
static char altstack[65536];
static void on_alrm(int s, siginfo_t *si, void *uc) {
    (void)s; (void)si; (void)uc;
    int here;
    if (!((char *)&here >= altstack && (char *)&here < altstack + sizeof altstack)) off_alt++;
    ticks++;
}
static void on_hup(int s) { (void)s; }

static unsigned get_mxcsr(void) { unsigned v; __asm__ volatile("stmxcsr %0" : "=m"(v)); return v; }
static unsigned short get_fpucw(void) { unsigned short v; __asm__ volatile("fnstcw %0" : "=m"(v)); return v; }

/* /proc/self/stat fields 26-28 (code, stack start) and 45-51 (data, brk start, arg, env). */
static void read_stat(unsigned long long *out) {
    char buf[4096];
    size_t n = slurp("/proc/self/stat", buf, sizeof buf - 1);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    int field = 2;
    memset(out, 0, 64 * sizeof *out);
    for (p = p ? p + 1 : buf; *p && field < 63;) {
        while (*p == ' ') p++;
        field++;
        out[field] = strtoull(p, &p, 10);
    }
}
static const int stat_fields[] = {26, 27, 28, 45, 46, 47, 48, 49, 50, 51};

/* The names of the kernel's special mappings, in address order ([vdso], [vvar], ...), and
 * whether [vdso] starts where the auxiliary vector says. */
static void specials(char *out, size_t cap) {
    static char maps[1 << 20];
    size_t n = slurp("/proc/self/maps", maps, sizeof maps - 1);
    maps[n] = 0;
    out[0] = 0;
    unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
    int vdso_ok = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strchr(line, '[');
        if (!name || strstr(name, "[stack:") || strstr(name, "[anon")) continue;
        if (strncmp(name, "[vdso]", 6) == 0 && strtoul(line, NULL, 16) == vdso) vdso_ok = 1;
        if (strlen(out) + strlen(name) + 2 < cap) { strcat(out, name); strcat(out, " "); }
    }
    if (!vdso_ok && strlen(out) + 16 < cap) strcat(out, "(vdso moved)");
}

/* ---- memory of every kind ---- */
static unsigned char *anon, *ro, *none, *fmap;
static uint64_t ro_sum, none_sum;
#define ANON_LEN (8 * MIB)
#define RO_LEN (1 * MIB)
#define FMAP_LEN (4 * MIB)

/* Permissions of the mapping holding addr, "?" when /proc/self/maps does not list it. A read
 * of /proc/self/maps is not atomic (the kernel may show a mapping that changes meanwhile in
 * neither read), so a missing mapping is looked up again a few times before it counts. */
static char *perms_of(void *addr, char *out) {
    static char maps[1 << 20];
    strcpy(out, "?");
    for (int attempt = 0; attempt < 5 && strcmp(out, "?") == 0; attempt++) {
        size_t n = slurp("/proc/self/maps", maps, sizeof maps - 1);
        maps[n] = 0;
        for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
            unsigned long a, b;
            char pr[8];
            if (sscanf(line, "%lx-%lx %7s", &a, &b, pr) == 3 && (unsigned long)addr >= a &&
                (unsigned long)addr < b) {
                strcpy(out, pr);
                break;
            }
        }
    }
    return out;
}

/* ---- files ---- */
static int fd_zero, fd_urandom, fd_null, fd_input, fd_gone, fd_append;
static char link0[6][256];
static uint64_t input_sum;
static const char *fd_names[] = {"/dev/zero", "/dev/urandom", "/dev/null", "input", "gone", "append"};
static int *fd_ptrs[] = {&fd_zero, &fd_urandom, &fd_null, &fd_input, &fd_gone, &fd_append};

static unsigned char input_byte(long i) { return (unsigned char)((i * 7 + (i >> 9)) & 0xff); }

/* ---- threads ---- */
static volatile int stop;
static int futex_word_timed, futex_word_forever;
static int pipe_poll[2], pipe_select[2], pipe_read[2], pipe_child[2], pipe_robust[2];
static pid_t child;
static pthread_mutex_t robust;
static const char *wait_names[NWAIT] = {"futex-timeout", "futex", "poll", "select", "read",
                                        "nanosleep", "clock_nanosleep-abs", "sigtimedwait",
                                        "wait4"};
static long wait_calls[NWAIT], wait_anomalies[NWAIT];
static char wait_note[NWAIT][128];
static pid_t wait_tid[NWAIT];

static void block_all(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void anomaly(int w, const char *what, long rc, int err) {
    wait_anomalies[w]++;
    if (!wait_note[w][0]) snprintf(wait_note[w], sizeof wait_note[w], "%s rc=%ld %s", what, rc, strerror(err));
}

static void *waiter(void *arg) {
    int w = (int)(long)arg;
    block_all();
    char name[16];
    snprintf(name, sizeof name, "wait-%d", w);
    prctl(PR_SET_NAME, name);
    wait_tid[w] = tid();
    struct timespec t300 = {0, 300000000};
    while (!stop) {
        long rc = 0;
        wait_calls[w]++;
        errno = 0;
        switch (w) {
        case 0:
            rc = syscall(SYS_futex, &futex_word_timed, FUTEX_WAIT_PRIVATE, 0, &t300, NULL, 0);
            if (!(rc == -1 && errno == ETIMEDOUT) && !stop) anomaly(w, "futex wait", rc, errno);
            break;
        case 1:
            rc = syscall(SYS_futex, &futex_word_forever, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
            if (!(rc == 0 || (rc == -1 && errno == EAGAIN))) anomaly(w, "futex wait", rc, errno);
            break;
        case 2: {
            struct pollfd p = {pipe_poll[0], POLLIN, 0};
            rc = poll(&p, 1, 300);
            if (rc < 0 || (rc > 0 && !stop)) anomaly(w, "poll", rc, errno);
            break;
        }
        case 3: {
            fd_set r;
            FD_ZERO(&r);
            FD_SET(pipe_select[0], &r);
            struct timeval tv = {0, 300000};
            rc = select(pipe_select[0] + 1, &r, NULL, NULL, &tv);
            if (rc < 0 || (rc > 0 && !stop)) anomaly(w, "select", rc, errno);
            break;
        }
        case 4: {
            char c;
            rc = read(pipe_read[0], &c, 1);
            if (rc != 1) anomaly(w, "read", rc, errno);
            else if (c == 'q') return NULL;
            break;
        }
        case 5:
            rc = nanosleep(&t300, NULL);
            if (rc != 0) anomaly(w, "nanosleep", rc, errno);
            break;
        case 6: {
            struct timespec at;
            clock_gettime(CLOCK_MONOTONIC, &at);
            at.tv_nsec += 300000000;
            if (at.tv_nsec >= 1000000000) { at.tv_sec++; at.tv_nsec -= 1000000000; }
            rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
            if (rc != 0) anomaly(w, "clock_nanosleep", rc, (int)rc);
            break;
        }
        case 7: {
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, SIGRTMIN + 6);
            rc = sigtimedwait(&s, NULL, &t300);
            if (!(rc == -1 && errno == EAGAIN)) anomaly(w, "sigtimedwait", rc, errno);
            break;
        }
        case 8: {
            int st = 0;
            rc = wait4(child, &st, 0, NULL);
            if (rc != child) anomaly(w, "wait4", rc, errno);
            else if (!WIFEXITED(st) || WEXITSTATUS(st) != 5) anomaly(w, "child status", st, 0);
            return NULL;
        }
        }
    }
    return NULL;
}

/* Holds the robust mutex until told to die, then exits without unlocking it: the kernel must
 * walk its robust list (restored) and mark the mutex owner-dead. */
static pid_t robust_tid;
static void *robust_owner(void *arg) {
    (void)arg;
    block_all();
    prctl(PR_SET_NAME, "robust");
    robust_tid = tid();
    pthread_mutex_lock(&robust);
    char c;
    while (read(pipe_robust[0], &c, 1) < 0 && errno == EINTR) {}
    return NULL; /* exits holding the mutex */
}

/* A thread with its own blocked, pending, queued signal (with a value) and its own checks. */
static pthread_t sig_thread;
static volatile int sig_thread_result = -1;
static pid_t sig_tid;
static char sig_thread_rseq[64];
static const char *rseq_state(void);
static void *sig_owner(void *arg) {
    (void)arg;
    block_all();
    prctl(PR_SET_NAME, "sigowner");
    const char *r0 = rseq_state();
    sig_tid = tid();
    snprintf(sig_thread_rseq, sizeof sig_thread_rseq, "%s", r0);
    while (!stop) {
        struct timespec t = {0, 20000000};
        nanosleep(&t, NULL);
        const char *now = rseq_state();
        if (strcmp(now, r0) != 0) snprintf(sig_thread_rseq, sizeof sig_thread_rseq, "%s", now);
    }
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 4);
    siginfo_t si;
    struct timespec z = {0, 0};
    int r = sigtimedwait(&s, &si, &z);
    sig_thread_result = r == SIGRTMIN + 4 ? si.si_value.sival_int : -errno;
    return NULL;
}

/* rseq: registered if re-registering the same area returns EBUSY (a new registration would
 * succeed) and the kernel keeps cpu_id current. */
static const char *rseq_state(void) {
    if (__rseq_size == 0) return "off";
    struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    long r = syscall(SYS_rseq, rs, 32, 0, RSEQ_SIG);
    if (r == 0) return "LOST (re-registration succeeded)";
    if (errno != EBUSY && errno != EINVAL) return "?";
    if ((int)rs->cpu_id < 0) return "NOT UPDATED";
    return "on";
}

static void robust_head(void **head) {
    size_t len;
    syscall(SYS_get_robust_list, 0, head, &len);
}

static pid_t tids0[32];
static int ntids0;
static int list_tasks(pid_t *out, int cap) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n < cap) out[n++] = atoi(e->d_name);
    }
    if (d) closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) { pid_t t = out[j]; out[j] = out[j - 1]; out[j - 1] = t; }
    return n;
}

/* Grows the main stack by about `bytes` (each frame touched). */
static long deep(long bytes) {
    volatile char frame[16384];
    frame[0] = (char)bytes;
    frame[sizeof frame - 1] = 1;
    if (bytes <= (long)sizeof frame) return frame[0];
    return deep(bytes - (long)sizeof frame) + frame[sizeof frame - 1];
}

static void check(long step, void *head0, const char *rseq0) {
    char buf[65536];
    if (getpid() != pid0) bad("pid %d", getpid());
    if (getppid() != ppid0) bad("ppid %d", getppid());
    pid_t t[32];
    int n = list_tasks(t, 32);
    if (n != ntids0 || memcmp(t, tids0, (size_t)n * sizeof *t) != 0) {
        char l[256] = "";
        for (int i = 0; i < n && strlen(l) < 200; i++) snprintf(l + strlen(l), sizeof l - strlen(l), " %d", t[i]);
        bad("threads differ (%d, was %d):%s", n, ntids0, l);
    }
    if (!getcwd(buf, sizeof buf) || strcmp(buf, cwd0) != 0) bad("cwd");
    mode_t u = umask(0);
    umask(u);
    if (u != 027) bad("umask %o", (unsigned)u);
    char comm[32] = {0};
    prctl(PR_GET_NAME, comm);
    if (strcmp(comm, comm0) != 0) bad("name %s", comm);
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit l;
        getrlimit(r, &l);
        if (l.rlim_cur != rl0[r].rlim_cur || l.rlim_max != rl0[r].rlim_max) bad("rlimit %d", r);
    }
    for (int s = 1; s <= 64; s++) {
        struct sigaction sa;
        if (sigaction(s, NULL, &sa) != 0) continue;
        if (sa.sa_handler != sa0[s].sa_handler || sa.sa_flags != sa0[s].sa_flags ||
            memcmp(&sa.sa_mask, &sa0[s].sa_mask, 8) != 0)
            bad("disposition of signal %d", s);
    }
    sigset_t p;
    sigpending(&p);
    if (memcmp(&p, &pending0, 8) != 0) bad("pending signals");
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    if (!sigismember(&m, SIGURG) || !sigismember(&m, SIGWINCH) || sigismember(&m, SIGALRM))
        bad("signal mask");
    stack_t ss;
    sigaltstack(NULL, &ss);
    if (ss.ss_sp != altstack || ss.ss_size != sizeof altstack) bad("sigaltstack");
    struct itimerval it;
    getitimer(ITIMER_VIRTUAL, &it);
    if (it.it_interval.tv_sec != 1000 || it.it_value.tv_sec <= 0 || it.it_value.tv_sec > 1000) bad("ITIMER_VIRTUAL");
    getitimer(ITIMER_PROF, &it);
    if (it.it_interval.tv_sec != 2000 || it.it_value.tv_sec <= 0 || it.it_value.tv_sec > 2000) bad("ITIMER_PROF");
    getitimer(ITIMER_REAL, &it);
    if (it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != 7000) bad("ITIMER_REAL interval");
    if (off_alt) bad("SIGALRM handler ran off the alternate stack");
    if (get_mxcsr() != mxcsr0) bad("mxcsr %x", get_mxcsr());
    if (get_fpucw() != fpucw0) bad("x87 control word %x", get_fpucw());
    void *head;
    robust_head(&head);
    if (head != head0) bad("robust list head");
    if (strcmp(rseq_state(), rseq0) != 0) bad("rseq %s", rseq_state());
    size_t k = slurp("/proc/self/cmdline", buf, sizeof buf);
    if (k != cmdline0_n || memcmp(buf, cmdline0, k) != 0) bad("cmdline");
    k = slurp("/proc/self/environ", buf, sizeof buf);
    if (k != environ0_n || memcmp(buf, environ0, k) != 0) bad("environ");
    k = slurp("/proc/self/auxv", buf, sizeof buf);
    if (k != auxv0_n || memcmp(buf, auxv0, k) != 0) bad("auxv");
    unsigned long long st[64];
    read_stat(st);
    for (size_t i = 0; i < sizeof stat_fields / sizeof *stat_fields; i++)
        if (st[stat_fields[i]] != stat0[stat_fields[i]]) bad("/proc/self/stat field %d", stat_fields[i]);
    char sp[256];
    specials(sp, sizeof sp);
    if (strcmp(sp, special0) != 0) bad("special mappings: %s", sp);
    /* memory */
    if (step > 0 && anon[((step - 1) % (ANON_LEN / 4096)) * 4096 + 17] != (unsigned char)(step - 1))
        bad("anonymous page of step %ld", step - 1);
    if (fnv(ro, RO_LEN) != ro_sum) bad("read-only area");
    char pr[8];
    if (strcmp(perms_of(ro, pr), "r--p") != 0) bad("read-only area is %s", pr);
    if (strcmp(perms_of(none, pr), "---p") != 0) bad("PROT_NONE area is %s", pr);
    if (strcmp(perms_of(fmap, pr), "rw-p") != 0) bad("file mapping is %s", pr);
    for (int i = 0; i < 3; i++)
        if (fmap[(1 + 400 * i) * 4096 + 5] != (unsigned char)(0xA0 + i)) bad("file mapping page %d", i);
    if (fmap[2 * 4096 + 9] != (unsigned char)((2 * 4096 + 9) * 13)) bad("file mapping, unmodified page");
    /* descriptors */
    for (int i = 0; i < 6; i++) {
        char path[64], l[256] = {0};
        snprintf(path, sizeof path, "/proc/self/fd/%d", *fd_ptrs[i]);
        if (readlink(path, l, sizeof l - 1) < 0 || strcmp(l, link0[i]) != 0) bad("fd of %s is %s", fd_names[i], l);
    }
    unsigned char z[64];
    memset(z, 1, sizeof z);
    if (read(fd_zero, z, sizeof z) != (ssize_t)sizeof z) bad("read /dev/zero");
    for (size_t i = 0; i < sizeof z; i++) if (z[i]) { bad("/dev/zero gave non-zero bytes"); break; }
    if (read(fd_urandom, z, 16) != 16) bad("read /dev/urandom");
    if (write(fd_null, z, 16) != 16) bad("write /dev/null");
    int fl = fcntl(fd_input, F_GETFL);
    if ((fl & O_ACCMODE) != O_RDONLY) bad("input flags %x", fl);
    fl = fcntl(fd_append, F_GETFL);
    if (!(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY) bad("append flags %x", fl);
    if (!(fcntl(fd_zero, F_GETFD) & FD_CLOEXEC)) bad("close-on-exec of /dev/zero");
    unsigned char g[8];
    for (long s = 0; s < step && s < 4096; s += 97) {
        if (pread(fd_gone, g, 8, 65536 + s * 8) != 8 || memcmp(g, &s, 8) != 0) { bad("deleted file at step %ld", s); break; }
    }
    if (pread(fd_gone, g, 8, 800) != 8 || g[3] != (unsigned char)(803 * 5)) bad("deleted file contents");
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 400;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mkdir("sub", 0755) != 0 && errno != EEXIST) { perror("mkdir"); return 1; }
    if (chdir("sub") != 0) { perror("chdir"); return 1; }
    if (!getcwd(cwd0, sizeof cwd0)) return 1;
    umask(027);
    prctl(PR_SET_NAME, "cairn-state");
    prctl(PR_GET_NAME, comm0);
    pid0 = getpid();
    ppid0 = getppid();

    /* rlimits: a larger stack (grown below), fewer files, no core, a CPU and a queue limit. */
    struct rlimit l;
    getrlimit(RLIMIT_STACK, &l);
    if (l.rlim_max == RLIM_INFINITY || l.rlim_max >= 64 * MIB) { l.rlim_cur = 64 * MIB; setrlimit(RLIMIT_STACK, &l); }
    getrlimit(RLIMIT_NOFILE, &l);
    l.rlim_cur = l.rlim_max < 333 ? l.rlim_max : 333;
    setrlimit(RLIMIT_NOFILE, &l);
    getrlimit(RLIMIT_CORE, &l);
    l.rlim_cur = 0;
    setrlimit(RLIMIT_CORE, &l);
    getrlimit(RLIMIT_CPU, &l);
    if (l.rlim_max == RLIM_INFINITY || l.rlim_max > 100000) { l.rlim_cur = 100000; setrlimit(RLIMIT_CPU, &l); }
    getrlimit(RLIMIT_MSGQUEUE, &l);
    if (l.rlim_max > 12345) { l.rlim_cur = 12345; setrlimit(RLIMIT_MSGQUEUE, &l); }
    for (int r = 0; r < RLIM_NLIMITS; r++) getrlimit(r, &rl0[r]);

    /* Signals: dispositions of every kind, an alternate stack, blocked and pending ones. */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {0};
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART | SA_NODEFER | SA_RESETHAND;
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGQUIT);
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_alrm;
    sa.sa_flags = SA_RESTART | SA_ONSTACK | SA_SIGINFO;
    sigaction(SIGALRM, &sa, NULL);
    for (int s = 1; s <= 64; s++) sigaction(s, NULL, &sa0[s]);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGURG);
    sigaddset(&m, SIGWINCH);
    sigaddset(&m, SIGRTMIN + 2);
    sigaddset(&m, SIGRTMIN + 4);
    sigaddset(&m, SIGRTMIN + 6);
    sigprocmask(SIG_BLOCK, &m, NULL);

    /* FPU control: round toward zero, 53-bit x87 precision; MXCSR flush-to-zero and DAZ. */
    unsigned mx = (get_mxcsr() & ~0x6000u) | 0x6000u | 0x8000u | 0x40u;
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
    unsigned short cw = (unsigned short)((get_fpucw() & ~0x0f00u) | 0x0c00u | 0x0200u);
    __asm__ volatile("fldcw %0" : : "m"(cw));
    mxcsr0 = get_mxcsr();
    fpucw0 = get_fpucw();

    /* Memory: anonymous, read-only, PROT_NONE, a private file mapping with a few pages changed. */
    anon = mmap(NULL, ANON_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro = mmap(NULL, RO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none = mmap(NULL, RO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED || ro == MAP_FAILED || none == MAP_FAILED) return 1;
    for (long i = 0; i < RO_LEN; i++) { ro[i] = (unsigned char)(i * 31 + 7); none[i] = (unsigned char)(i * 17 + 3); }
    ro_sum = fnv(ro, RO_LEN);
    none_sum = fnv(none, RO_LEN);
    mprotect(ro, RO_LEN, PROT_READ);
    mprotect(none, RO_LEN, PROT_NONE);
    int mf = open("map.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (mf < 0) return 1;
    {
        static unsigned char blk[65536];
        for (long off = 0; off < FMAP_LEN; off += sizeof blk) {
            for (size_t i = 0; i < sizeof blk; i++) blk[i] = (unsigned char)((off + (long)i) * 13);
            if (write(mf, blk, sizeof blk) != (ssize_t)sizeof blk) return 1;
        }
    }
    fmap = mmap(NULL, FMAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
    close(mf);
    if (fmap == MAP_FAILED) return 1;
    for (int i = 0; i < 3; i++) fmap[(1 + 400 * i) * 4096 + 5] = (unsigned char)(0xA0 + i);

    /* Files: devices, an input read sequentially, a deleted file, an append-only log. */
    fd_zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    fd_urandom = open("/dev/urandom", O_RDONLY);
    fd_null = open("/dev/null", O_WRONLY);
    int in = open("input", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    {
        static unsigned char blk[200000];
        for (long i = 0; i < (long)sizeof blk; i++) blk[i] = input_byte(i);
        if (write(in, blk, sizeof blk) != (ssize_t)sizeof blk) return 1;
        close(in);
    }
    fd_input = open("input", O_RDONLY);
    fd_gone = open("gone", O_RDWR | O_CREAT | O_TRUNC, 0600);
    {
        unsigned char blk[4096];
        for (int i = 0; i < 4096; i++) blk[i] = (unsigned char)(i * 5);
        if (write(fd_gone, blk, sizeof blk) != (ssize_t)sizeof blk) return 1;
    }
    unlink("gone");
    fd_append = open("append.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd_zero < 0 || fd_urandom < 0 || fd_null < 0 || fd_input < 0 || fd_gone < 0 || fd_append < 0) return 1;
    for (int i = 0; i < 6; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", *fd_ptrs[i]);
        if (readlink(path, link0[i], sizeof link0[i] - 1) < 0) return 1;
    }

    /* Threads: waiters in blocking calls, a robust mutex owner, a signal owner; a child. */
    if (pipe(pipe_poll) || pipe(pipe_select) || pipe(pipe_read) || pipe(pipe_child) || pipe(pipe_robust)) return 1;
    child = fork();
    if (child == 0) {
        char c;
        while (read(pipe_child[0], &c, 1) < 0 && errno == EINTR) {}
        _exit(5);
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &ma);
    pthread_t th[NWAIT + 1];
    for (long w = 0; w < NWAIT; w++) pthread_create(&th[w], NULL, waiter, (void *)w);
    pthread_create(&th[NWAIT], NULL, robust_owner, NULL);
    pthread_create(&sig_thread, NULL, sig_owner, NULL);
    while (!robust_tid || !sig_tid) usleep(1000);
    for (int w = 0; w < NWAIT; w++) while (!wait_tid[w]) usleep(1000);
    union sigval v;
    v.sival_int = 77;
    pthread_sigqueue(sig_thread, SIGRTMIN + 4, v);
    raise(SIGURG);
    kill(getpid(), SIGWINCH);
    v.sival_int = 41;
    sigqueue(getpid(), SIGRTMIN + 2, v);
    v.sival_int = 42;
    sigqueue(getpid(), SIGRTMIN + 2, v);
    sigpending(&pending0);

    struct itimerval it = {{1000, 0}, {1000, 0}};
    setitimer(ITIMER_VIRTUAL, &it, NULL);
    it = (struct itimerval){{2000, 0}, {2000, 0}};
    setitimer(ITIMER_PROF, &it, NULL);
    it = (struct itimerval){{0, 7000}, {0, 7000}};
    setitimer(ITIMER_REAL, &it, NULL);

    void *head0;
    robust_head(&head0);
    const char *rseq0 = rseq_state();
    cmdline0_n = slurp("/proc/self/cmdline", cmdline0, sizeof cmdline0);
    environ0_n = slurp("/proc/self/environ", environ0, sizeof environ0);
    auxv0_n = slurp("/proc/self/auxv", auxv0, sizeof auxv0);
    read_stat(stat0);
    specials(special0, sizeof special0);
    ntids0 = list_tasks(tids0, 32);
    printf("threads %d, rseq %s, special mappings %s\n", ntids0, rseq0, special0);

    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long last_ticks = 0, last_tick_step = 0;
    for (long step = 0; step < steps; step++) {
        problems[0] = 0;
        check(step, head0, rseq0);
        anon[(step % (ANON_LEN / 4096)) * 4096 + 17] = (unsigned char)step;
        unsigned char r[100];
        if (read(fd_input, r, sizeof r) != (ssize_t)sizeof r) bad("input read");
        for (size_t i = 0; i < sizeof r; i++)
            if (r[i] != input_byte(step * 100 + (long)i)) { bad("input byte %ld", step * 100 + (long)i); break; }
        input_sum = input_sum * 31 + fnv(r, sizeof r);
        if (pwrite(fd_gone, &step, 8, 65536 + step * 8) != 8) bad("deleted file write");
        char line[64];
        int n = snprintf(line, sizeof line, "step %ld\n", step);
        if (write(fd_append, line, (size_t)n) != n) bad("append");
        if (step % 25 == 0 && write(pipe_read[1], "x", 1) != 1) bad("pipe write");
        deep(256 * 1024);
        if (ticks != last_ticks) { last_ticks = ticks; last_tick_step = step; }
        else if (step - last_tick_step > 50) bad("SIGALRM stopped");
        if (problems[0]) printf("step %ld: %s\n", step, problems);
        else printf("step %ld ok\n", step);
        next.tv_nsec += 10000000;
        if (next.tv_nsec >= 1000000000) { next.tv_sec++; next.tv_nsec -= 1000000000; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }

    /* Final checks: stack growth under the raised limit, rounding, signals, robust mutex. */
    printf("deep stack: %d\n", deep(24 * MIB) > 0);
    volatile double a = 1.0, b = 10.0;
    volatile long double la = 1.0L, lb = 10.0L;
    double q = a / b;
    long double lq = la / lb;
    uint64_t qb;
    memcpy(&qb, &q, 8);
    printf("1/10 in SSE: %016llx, in x87: %.25Lg\n", (unsigned long long)qb, lq);
    printf("input checksum %016llx\n", (unsigned long long)input_sum);
    uint64_t asum = fnv(anon, ANON_LEN);
    printf("anonymous checksum %016llx\n", (unsigned long long)asum);
    mprotect(none, RO_LEN, PROT_READ);
    printf("PROT_NONE area kept its contents: %d\n", fnv(none, RO_LEN) == none_sum);

    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 2);
    siginfo_t si;
    struct timespec zero = {0, 0};
    int v1 = sigtimedwait(&s, &si, &zero) == SIGRTMIN + 2 ? si.si_value.sival_int : -1;
    int v2 = sigtimedwait(&s, &si, &zero) == SIGRTMIN + 2 ? si.si_value.sival_int : -1;
    printf("queued process signals: %d %d\n", v1, v2);
    sigemptyset(&s);
    sigaddset(&s, SIGURG);
    printf("thread-pending SIGURG: %d\n", sigtimedwait(&s, &si, &zero) == SIGURG);
    sigemptyset(&s);
    sigaddset(&s, SIGWINCH);
    printf("process-pending SIGWINCH: %d\n", sigtimedwait(&s, &si, &zero) == SIGWINCH);
    raise(SIGUSR2); /* ignored: the process must survive */
    printf("SIGUSR2 ignored\n");

    if (write(pipe_robust[1], "d", 1) != 1) return 1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_join(th[NWAIT], NULL);
    int lr = pthread_mutex_timedlock(&robust, &dl);
    printf("robust mutex after its owner died: %s\n", lr == EOWNERDEAD ? "EOWNERDEAD" : strerror(lr));
    if (lr == EOWNERDEAD) { pthread_mutex_consistent(&robust); pthread_mutex_unlock(&robust); }

    stop = 1;
    futex_word_forever = 1;
    syscall(SYS_futex, &futex_word_forever, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    if (write(pipe_poll[1], "x", 1) != 1 || write(pipe_select[1], "x", 1) != 1 ||
        write(pipe_read[1], "q", 1) != 1 || write(pipe_child[1], "c", 1) != 1)
        return 1;
    for (int w = 0; w < NWAIT; w++) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 10;
        int jr = pthread_timedjoin_np(th[w], NULL, &dl);
        printf("%s: %s, %s%s%s\n", wait_names[w], jr == 0 ? "joined" : "NOT JOINED",
               wait_anomalies[w] ? "anomalies: " : "no anomalies", wait_note[w],
               wait_calls[w] > 0 ? "" : " (never called)");
    }
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    int jr = pthread_timedjoin_np(sig_thread, NULL, &dl);
    printf("thread-directed queued signal: %d (%s), rseq of that thread: %s\n", sig_thread_result,
           jr == 0 ? "joined" : "NOT JOINED", sig_thread_rseq);
    printf("done\n");
    return 0;
}
