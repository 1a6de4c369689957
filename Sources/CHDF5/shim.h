#ifndef MOE_INSPECT_CHDF5_SHIM_H
#define MOE_INSPECT_CHDF5_SHIM_H
#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* HDF5's type and property identifiers are macros over globals that Swift cannot import. */
static inline unsigned moe_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned moe_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t moe_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t moe_h5s_all(void) { return H5S_ALL; }
static inline hid_t moe_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t moe_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t moe_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t moe_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t moe_h5t_ieee_f16le(void) {
    /* h5py's float16: IEEE half precision, little-endian. */
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}
static inline hid_t moe_h5t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t moe_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t moe_h5t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t moe_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t moe_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t moe_h5t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t moe_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t moe_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t moe_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t moe_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t moe_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t moe_h5e_default(void) { return H5E_DEFAULT; }
static inline size_t moe_h5t_variable(void) { return H5T_VARIABLE; }

static inline void moe_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- Reading files that may be hostile (see HDF5File.swift) ---- */

static inline hid_t moe_h5p_link_access(void) { return H5P_LINK_ACCESS; }
static inline hid_t moe_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }

/* An external-link traversal callback that always refuses: a checkpoint never reads other files. */
static herr_t moe_refuse_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                       const char *child_object, unsigned *acc_flags, hid_t fapl, void *data) {
    (void)parent_file; (void)parent_group; (void)child_file; (void)child_object; (void)acc_flags; (void)fapl; (void)data;
    return -1;
}
/* A link (or dataset) access property list of class `cls` on which external links cannot be traversed. */
static inline hid_t moe_h5_access_without_external_links(hid_t cls) {
    hid_t p = H5Pcreate(cls);
    if (p < 0) return p;
    if (H5Pset_elink_cb(p, moe_refuse_external_link, NULL) < 0) { H5Pclose(p); return -1; }
    return p;
}

/* Kinds of link reported by moe_h5_list_links. */
enum { MOE_LINK_HARD = 0, MOE_LINK_SOFT = 1, MOE_LINK_EXTERNAL = 2, MOE_LINK_USER = 3, MOE_LINK_UNREADABLE = 4 };
/* Called for one link of a group with its name, kind and, for a soft link, its target path (`target`);
   for an external link, the object (`target`) and the file (`target_file`) it names. */
typedef int (*moe_link_cb)(const char *name, int kind, const char *target, const char *target_file, void *ctx);
struct moe_list_ctx { moe_link_cb cb; void *ctx; };
static herr_t moe_list_one_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    struct moe_list_ctx *c = (struct moe_list_ctx *)data;
    if (info->type == H5L_TYPE_HARD) return c->cb(name, MOE_LINK_HARD, NULL, NULL, c->ctx);
    if (info->type != H5L_TYPE_SOFT && info->type != H5L_TYPE_EXTERNAL) return c->cb(name, MOE_LINK_USER, NULL, NULL, c->ctx);
    size_t n = info->u.val_size;
    if (n == 0 || n > ((size_t)1 << 20)) return c->cb(name, MOE_LINK_UNREADABLE, NULL, NULL, c->ctx);
    char *buf = (char *)calloc(n + 1, 1);
    if (buf == NULL) return -1;
    int r;
    if (H5Lget_val(g, name, buf, n, H5P_DEFAULT) < 0) {
        r = c->cb(name, MOE_LINK_UNREADABLE, NULL, NULL, c->ctx);
    } else if (info->type == H5L_TYPE_SOFT) {
        r = c->cb(name, MOE_LINK_SOFT, buf, NULL, c->ctx);
    } else {
        unsigned flags = 0;
        const char *file = NULL, *object = NULL;
        if (H5Lunpack_elink_val(buf, n, &flags, &file, &object) < 0) r = c->cb(name, MOE_LINK_EXTERNAL, NULL, NULL, c->ctx);
        else r = c->cb(name, MOE_LINK_EXTERNAL, object, file, c->ctx);
    }
    free(buf);
    return r;
}
/* Lists the links of group `g` in name order (not recursively), without following any. A callback
   returning non-zero stops the listing. */
static inline herr_t moe_h5_list_links(hid_t g, moe_link_cb cb, void *ctx) {
    struct moe_list_ctx c = { cb, ctx };
    return H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, moe_list_one_link, &c);
}

/* The file number and address of an open object: equal for two identifiers of the same object. */
static inline int moe_h5_object_identity(hid_t obj, unsigned long long *fileno, unsigned long long *address) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    unsigned long long a = 0;
    memcpy(&a, &info.token, sizeof a < sizeof info.token ? sizeof a : sizeof info.token);
    *address = a;
#else
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    *address = (unsigned long long)info.addr;
#endif
    *fileno = (unsigned long long)info.fileno;
    return 0;
}

/* Outcomes of moe_h5_read_vlen_string_isolated. */
enum { MOE_ISOLATED_OK = 0, MOE_ISOLATED_HDF5_ERROR = -1, MOE_ISOLATED_CRASHED = -2, MOE_ISOLATED_TIMED_OUT = -3,
       MOE_ISOLATED_TOO_LONG = -4, MOE_ISOLATED_NO_PROCESS = -5 };

static int moe_write_all(int fd, const void *buf, size_t n) {
    const char *p = (const char *)buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

/* Reads the one-element variable-length string attribute `a` (memory type `mt`, a vlen string)
   in a child process and hands the bytes over a pipe: libhdf5 1.10 crashes or loops forever on
   a corrupt global heap (where vlen data lives), and then only the child dies. On
   MOE_ISOLATED_OK, *out is a malloc'd copy of the string (NUL-terminated, `*len` bytes), or NULL
   for a null string.
   MOE_ISOLATED_NO_PROCESS: no child could be started (the caller may read in-process). */
static inline int moe_h5_read_vlen_string_isolated(hid_t a, hid_t mt, size_t max_len, int timeout_ms,
                                                   char **out, size_t *len) {
    *out = NULL; *len = 0;
    int fds[2];
    if (pipe(fds) != 0) return MOE_ISOLATED_NO_PROCESS;
    pid_t pid = fork();
    if (pid < 0) { close(fds[0]); close(fds[1]); return MOE_ISOLATED_NO_PROCESS; }
    if (pid == 0) {
        /* Child: only C and libhdf5 from here; a crash must die quietly, not run the parent's
           crash reporter or print on the user's terminal. */
        int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP, SIGPIPE };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); }
        close(fds[0]);
        /* A corrupt heap can also claim gigabytes: let the child allocate what it holds now plus
           twice the longest string and 256 MiB, no more. */
        FILE *statm = fopen("/proc/self/statm", "r");
        unsigned long pages[7] = { 0 };
        if (statm != NULL) {
            if (fscanf(statm, "%lu %lu %lu %lu %lu %lu %lu", &pages[0], &pages[1], &pages[2], &pages[3], &pages[4],
                       &pages[5], &pages[6]) == 7) {
                rlim_t limit = (rlim_t)pages[5] * (rlim_t)sysconf(_SC_PAGESIZE) + 2 * (rlim_t)max_len + ((rlim_t)256 << 20);
                struct rlimit rl = { limit, limit };
                setrlimit(RLIMIT_DATA, &rl);
            }
            fclose(statm);
        }
        char *p = NULL;
        if (H5Aread(a, mt, &p) < 0) _exit(3);
        unsigned char tag = 'S';
        uint64_t n = 0;
        if (p != NULL) {
            n = strnlen(p, max_len + 1);
            if (n > max_len) { tag = 'L'; n = 0; }
        } else {
            tag = 'N';
        }
        if (moe_write_all(fds[1], &tag, 1) != 0 || moe_write_all(fds[1], &n, sizeof n) != 0 ||
            (n > 0 && moe_write_all(fds[1], p, (size_t)n) != 0)) _exit(4);
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 4096, got = 0, need = 1 + sizeof(uint64_t);
    char *buf = (char *)malloc(cap);
    int result = MOE_ISOLATED_OK;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (buf == NULL) { result = MOE_ISOLATED_NO_PROCESS; break; }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (long)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) { result = MOE_ISOLATED_TIMED_OUT; break; }
        struct pollfd pfd = { fds[0], POLLIN, 0 };
        int r = poll(&pfd, 1, (int)(timeout_ms - elapsed));
        if (r < 0) { if (errno == EINTR) continue; result = MOE_ISOLATED_NO_PROCESS; break; }
        if (r == 0) { result = MOE_ISOLATED_TIMED_OUT; break; }
        if (got == cap) {
            if (cap > max_len + 64) { result = MOE_ISOLATED_TOO_LONG; break; }
            char *bigger = (char *)realloc(buf, cap * 2);
            if (bigger == NULL) { result = MOE_ISOLATED_NO_PROCESS; break; }
            buf = bigger; cap *= 2;
        }
        ssize_t k = read(fds[0], buf + got, cap - got);
        if (k < 0) { if (errno == EINTR) continue; result = MOE_ISOLATED_NO_PROCESS; break; }
        if (k == 0) break;  /* the child closed the pipe: it has finished or died */
        got += (size_t)k;
    }
    close(fds[0]);
    if (result == MOE_ISOLATED_TIMED_OUT || result == MOE_ISOLATED_TOO_LONG) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (result == MOE_ISOLATED_OK) {
        if (WIFSIGNALED(status)) result = MOE_ISOLATED_CRASHED;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got < need) result = MOE_ISOLATED_HDF5_ERROR;
        else {
            uint64_t n = 0;
            memcpy(&n, buf + 1, sizeof n);
            if (buf[0] == 'L' || n > max_len) result = MOE_ISOLATED_TOO_LONG;
            else if (buf[0] != 'S' && buf[0] != 'N') result = MOE_ISOLATED_HDF5_ERROR;
            else if (got != need + n) result = MOE_ISOLATED_HDF5_ERROR;
            else if (buf[0] == 'N') { /* a null string: *out stays NULL */ }
            else {
                char *s = (char *)malloc((size_t)n + 1);
                if (s == NULL) result = MOE_ISOLATED_NO_PROCESS;
                else { memcpy(s, buf + need, (size_t)n); s[n] = 0; *out = s; *len = (size_t)n; }
            }
        }
    }
    free(buf);
    return result;
}

/* Frees the variable-length data HDF5 allocated when reading `buf` with memory type `type`. */
static inline herr_t moe_h5_reclaim(hid_t type, hid_t space, void *buf) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
    return H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}
#endif
