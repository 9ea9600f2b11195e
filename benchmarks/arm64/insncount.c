/* insncount.c - a QEMU TCG plugin (linux-user) that counts executed guest instructions and
 * prints the running count each time the guest makes one chosen system call (a marker).
 *
 *   gcc -O2 -shared -fPIC -o insncount.so insncount.c
 *   qemu-aarch64 -plugin ./insncount.so,marker=173 -d plugin -D log.txt prog ...
 *
 * marker=173 is getppid on AArch64: the guest brackets what it wants counted with os.getppid()
 * (or syscall(SYS_getppid)), and each call prints "mark <i> <instructions so far>"; at exit it
 * prints "insns <total>". Counting is an inline add per executed translation block (exact and
 * deterministic; not atomic, so run the guest with one thread).
 *
 * Debian's qemu-user ships no qemu-plugin.h: the few entry points used are declared below with
 * the signatures of QEMU 7.2's plugin API (version 1). qemu-aarch64-static cannot load plugins;
 * the dynamic qemu-aarch64 (package qemu-user) can. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*syscall_cb)(qemu_plugin_id_t, unsigned int vcpu, int64_t num, uint64_t, uint64_t, uint64_t,
                           uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, syscall_cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
extern void qemu_plugin_outs(const char *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed;   /* instructions of every executed block, added inline */
static int64_t marker = -1; /* the system call number that prints a mark */
static unsigned n_marks;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    if (num != marker) return;
    char line[64];
    snprintf(line, sizeof line, "mark %u %" PRIu64 "\n", n_marks++, executed);
    qemu_plugin_outs(line);
}

static void on_guest_exit(qemu_plugin_id_t id, void *unused)
{
    (void)id; (void)unused;
    char line[64];
    snprintf(line, sizeof line, "insns %" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "marker=", 7) == 0) {
            marker = strtoll(argv[i] + 7, NULL, 0);
        } else {
            fprintf(stderr, "insncount: unknown argument %s (marker=NR)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    if (marker >= 0) qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
