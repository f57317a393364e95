/* io_uring instances.
 * kind: asynchronous I/O
 * checks: the instance's descriptor; a NOP submitted through its rings completes with its user data
 * root: refused: io_uring
 */
#include "conformance.h"
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static int fd;
static struct io_uring_params p;
static unsigned char *sq, *cq;
static struct io_uring_sqe *sqes;
static unsigned long long next_data = 100;

static void setup(void) {
    CF_TRY(fd = syscall(SYS_io_uring_setup, 4, &p));
    size_t sqlen = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cqlen = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    sq = mmap(NULL, sqlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
    cq = mmap(NULL, cqlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_CQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                IORING_OFF_SQES);
    CF_TRY(sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED ? -1 : 0);
}

static void check(void) {
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail), *mask = (unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    unsigned t = *tail, i = t & *mask;
    memset(&sqes[i], 0, sizeof sqes[i]);
    sqes[i].opcode = IORING_OP_NOP;
    sqes[i].user_data = ++next_data;
    array[i] = i;
    __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    CF_EQ("io_uring_enter", 1, syscall(SYS_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0));
    unsigned *head = (unsigned *)(cq + p.cq_off.head), *ctail = (unsigned *)(cq + p.cq_off.tail);
    unsigned cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
    CF_EQ("a completion", 1, __atomic_load_n(ctail, __ATOMIC_ACQUIRE) - *head);
    struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) + (*head & cmask);
    CF_EQ("completion user data", next_data, cqe->user_data);
    CF_EQ("completion result", 0, cqe->res);
    __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
}
CF_MAIN
