#include "cdnnl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl.h>) && __has_include(<dlfcn.h>) && __has_include(<pthread.h>)
#include <oneapi/dnnl/dnnl.h>
#if DNNL_VERSION_MAJOR == 2
#define CDNNL_WITH_HEADERS 1
#endif
#endif
#endif

#ifdef CDNNL_WITH_HEADERS
#include <dlfcn.h>
#include <pthread.h>

// The oneDNN 2.x functions used, resolved from libdnnl.so.2.
#define CDNNL_FUNCTIONS(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) \
    X(dnnl_memory_desc_init_by_strides) X(dnnl_memory_desc_get_size) \
    X(dnnl_memory_create) X(dnnl_memory_destroy) \
    X(dnnl_matmul_desc_init) \
    X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) \
    X(dnnl_primitive_attr_set_scratchpad_mode) X(dnnl_primitive_attr_set_output_scales) \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_post_ops_create) X(dnnl_post_ops_destroy) \
    X(dnnl_post_ops_append_sum) \
    X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy) \
    X(dnnl_primitive_desc_query_md) X(dnnl_primitive_desc_query) \
    X(dnnl_primitive_create) X(dnnl_primitive_destroy) X(dnnl_primitive_execute) \
    X(dnnl_stream_wait) X(dnnl_version)

static struct {
#define CDNNL_FIELD(name) __typeof__(&name) name;
    CDNNL_FUNCTIONS(CDNNL_FIELD)
#undef CDNNL_FIELD
    void (*omp_set_num_threads)(int);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char reason[256] = "";
static char version[32] = "";
static dnnl_engine_t engine = NULL;

static void load(void) {
    void *lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *e = dlerror();
        snprintf(reason, sizeof reason, "libdnnl.so.2 not loadable (apt-get install libdnnl2): %s", e ? e : "?");
        return;
    }
#define CDNNL_RESOLVE(name) \
    api.name = (__typeof__(&name))dlsym(lib, #name); \
    if (api.name == NULL) { snprintf(reason, sizeof reason, "libdnnl.so.2 lacks %s", #name); return; }
    CDNNL_FUNCTIONS(CDNNL_RESOLVE)
#undef CDNNL_RESOLVE
    // Debian's build runs on OpenMP; its thread count is a per-thread setting, which the
    // products set to 1 on whichever thread runs them.
    api.omp_set_num_threads = (void (*)(int))dlsym(lib, "omp_set_num_threads");
    const dnnl_version_t *v = api.dnnl_version();
    if (v == NULL || v->major != 2) {
        snprintf(reason, sizeof reason, "libdnnl.so.2 reports version %d, expected 2.x", v ? v->major : -1);
        return;
    }
    snprintf(version, sizeof version, "%d.%d.%d", v->major, v->minor, v->patch);
    if (api.dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(reason, sizeof reason, "oneDNN found no CPU engine");
        return;
    }
    loaded = 1;
}

int cdnnl_available(void) {
    pthread_once(&load_once, load);
    return loaded;
}

const char *cdnnl_unavailable_reason(void) {
    pthread_once(&load_once, load);
    return loaded ? "" : reason;
}

const char *cdnnl_version(void) {
    pthread_once(&load_once, load);
    return loaded ? version : "";
}

struct cdnnl_product {
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a, b, c, scratch;
    size_t scratch_bytes;
    char kernel[64];
    // any-shape products: sizes and strides come with each run
    int any_shape, trans_a, trans_b;
    dnnl_data_type_t input;
};

static void one_thread(void) {
    if (api.omp_set_num_threads != NULL) api.omp_set_num_threads(1);
}

// One stream per thread, made on first use and kept for the thread's life.
static __thread dnnl_stream_t thread_stream = NULL;

// Makes p->primitive for the descriptors p->a, p->b, p->c; fills the scratch size and kernel name.
static int make_primitive(cdnnl_product *p, float alpha, float beta) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = api.dnnl_primitive_attr_create(&attr) == dnnl_success
          && api.dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && alpha != 1.0f) ok = api.dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success;
    if (ok && beta != 0.0f) {
        ok = api.dnnl_post_ops_create(&ops) == dnnl_success
          && api.dnnl_post_ops_append_sum(ops, beta) == dnnl_success
          && api.dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    }
    dnnl_matmul_desc_t desc;
    if (ok) ok = api.dnnl_matmul_desc_init(&desc, &p->a, &p->b, NULL, &p->c) == dnnl_success;
    if (ok) ok = api.dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    if (ok) {
        const dnnl_memory_desc_t *s = api.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (s != NULL) { p->scratch = *s; p->scratch_bytes = api.dnnl_memory_desc_get_size(s); }
        if (p->scratch_bytes == DNNL_RUNTIME_SIZE_VAL) ok = 0;  // a size known only per run: not handled
        const char *impl = NULL;
        if (api.dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl != NULL)
            snprintf(p->kernel, sizeof p->kernel, "%s", impl);
        ok = api.dnnl_primitive_create(&p->primitive, pd) == dnnl_success;
    }
    if (pd) api.dnnl_primitive_desc_destroy(pd);
    if (ops) api.dnnl_post_ops_destroy(ops);
    if (attr) api.dnnl_primitive_attr_destroy(attr);
    return ok;
}

// Row-major strides of a [rows, cols] operand stored with leading dimension ld, or of its
// transpose stored [cols, rows].
static void strides(int64_t ld, int trans, dnnl_dims_t s) {
    if (trans) { s[0] = 1; s[1] = ld; } else { s[0] = ld; s[1] = 1; }
}

cdnnl_product *cdnnl_product_create(int64_t m, int64_t n, int64_t k, cdnnl_input_type input,
                                    int trans_a, int64_t lda, int trans_b, int64_t ldb, int64_t ldc,
                                    float alpha, float beta) {
    if (!cdnnl_available() || m <= 0 || n <= 0 || k <= 0) return NULL;
    one_thread();
    cdnnl_product *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    dnnl_data_type_t t = input == CDNNL_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t da = {m, k}, db = {k, n}, dc = {m, n}, sa, sb, sc;
    strides(lda, trans_a, sa);
    strides(ldb, trans_b, sb);
    strides(ldc, 0, sc);
    int ok = api.dnnl_memory_desc_init_by_strides(&p->a, 2, da, t, sa) == dnnl_success
          && api.dnnl_memory_desc_init_by_strides(&p->b, 2, db, t, sb) == dnnl_success
          && api.dnnl_memory_desc_init_by_strides(&p->c, 2, dc, dnnl_f32, sc) == dnnl_success
          && make_primitive(p, alpha, beta);
    if (!ok) { cdnnl_product_destroy(p); return NULL; }
    return p;
}

cdnnl_product *cdnnl_any_shape_product_create(cdnnl_input_type input, int trans_a, int trans_b, float alpha, float beta) {
    if (!cdnnl_available()) return NULL;
    one_thread();
    cdnnl_product *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->any_shape = 1;
    p->trans_a = trans_a != 0;
    p->trans_b = trans_b != 0;
    p->input = input == CDNNL_BF16 ? dnnl_bf16 : dnnl_f32;
    const int64_t r = DNNL_RUNTIME_DIM_VAL;
    dnnl_dims_t d = {r, r}, sa, sb, sc;
    strides(r, p->trans_a, sa);
    strides(r, p->trans_b, sb);
    strides(r, 0, sc);
    int ok = api.dnnl_memory_desc_init_by_strides(&p->a, 2, d, p->input, sa) == dnnl_success
          && api.dnnl_memory_desc_init_by_strides(&p->b, 2, d, p->input, sb) == dnnl_success
          && api.dnnl_memory_desc_init_by_strides(&p->c, 2, d, dnnl_f32, sc) == dnnl_success
          && make_primitive(p, alpha, beta);
    if (!ok) { cdnnl_product_destroy(p); return NULL; }
    return p;
}

size_t cdnnl_product_scratch_bytes(const cdnnl_product *p) { return p ? p->scratch_bytes : 0; }

const char *cdnnl_product_kernel(const cdnnl_product *p) { return p ? p->kernel : ""; }

// Runs p's primitive on the calling thread's stream with operands described by a, b, c.
static int execute(const cdnnl_product *p, const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b, const dnnl_memory_desc_t *c,
                   const void *pa, const void *pb, float *pc, void *scratch) {
    one_thread();
    if (thread_stream == NULL && api.dnnl_stream_create(&thread_stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        thread_stream = NULL;
        return -1;
    }
    void *own = NULL;
    if (p->scratch_bytes > 0 && scratch == NULL) {
        own = aligned_alloc(64, (p->scratch_bytes + 63) / 64 * 64);
        if (own == NULL) return -1;
        scratch = own;
    }
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL;
    int status = api.dnnl_memory_create(&ma, a, engine, (void *)pa);
    if (status == dnnl_success) status = api.dnnl_memory_create(&mb, b, engine, (void *)pb);
    if (status == dnnl_success) status = api.dnnl_memory_create(&mc, c, engine, pc);
    if (status == dnnl_success && p->scratch_bytes > 0) status = api.dnnl_memory_create(&ms, &p->scratch, engine, scratch);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}};
        status = api.dnnl_primitive_execute(p->primitive, thread_stream, ms ? 4 : 3, args);
        if (status == dnnl_success) status = api.dnnl_stream_wait(thread_stream);
    }
    if (ma) api.dnnl_memory_destroy(ma);
    if (mb) api.dnnl_memory_destroy(mb);
    if (mc) api.dnnl_memory_destroy(mc);
    if (ms) api.dnnl_memory_destroy(ms);
    free(own);
    return status;
}

int cdnnl_product_run(const cdnnl_product *p, const void *a, const void *b, float *c, void *scratch) {
    if (p == NULL || p->any_shape) return -1;
    return execute(p, &p->a, &p->b, &p->c, a, b, c, scratch);
}

int cdnnl_any_shape_product_run(const cdnnl_product *p, int64_t m, int64_t n, int64_t k,
                                const void *a, int64_t lda, const void *b, int64_t ldb, float *c, int64_t ldc) {
    if (p == NULL || !p->any_shape || m <= 0 || n <= 0 || k <= 0) return -1;
    dnnl_dims_t da = {m, k}, db = {k, n}, dc = {m, n}, sa, sb, sc;
    strides(lda, p->trans_a, sa);
    strides(ldb, p->trans_b, sb);
    strides(ldc, 0, sc);
    dnnl_memory_desc_t ma, mb, mc;
    if (api.dnnl_memory_desc_init_by_strides(&ma, 2, da, p->input, sa) != dnnl_success
        || api.dnnl_memory_desc_init_by_strides(&mb, 2, db, p->input, sb) != dnnl_success
        || api.dnnl_memory_desc_init_by_strides(&mc, 2, dc, dnnl_f32, sc) != dnnl_success) return -1;
    return execute(p, &ma, &mb, &mc, a, b, c, NULL);
}

void cdnnl_product_destroy(cdnnl_product *p) {
    if (p == NULL) return;
    if (p->primitive) api.dnnl_primitive_destroy(p->primitive);
    free(p);
}

#else  // built without oneDNN 2.x headers: always unavailable

int cdnnl_available(void) { return 0; }
const char *cdnnl_unavailable_reason(void) { return "built without oneDNN 2.x headers (apt-get install libdnnl-dev, then rebuild)"; }
const char *cdnnl_version(void) { return ""; }
cdnnl_product *cdnnl_product_create(int64_t m, int64_t n, int64_t k, cdnnl_input_type input, int trans_a, int64_t lda,
                                    int trans_b, int64_t ldb, int64_t ldc, float alpha, float beta) {
    (void)m; (void)n; (void)k; (void)input; (void)trans_a; (void)lda; (void)trans_b; (void)ldb; (void)ldc; (void)alpha; (void)beta;
    return NULL;
}
size_t cdnnl_product_scratch_bytes(const cdnnl_product *p) { (void)p; return 0; }
int cdnnl_product_run(const cdnnl_product *p, const void *a, const void *b, float *c, void *s) { (void)p; (void)a; (void)b; (void)c; (void)s; return -1; }
const char *cdnnl_product_kernel(const cdnnl_product *p) { (void)p; return ""; }
void cdnnl_product_destroy(cdnnl_product *p) { (void)p; }
cdnnl_product *cdnnl_any_shape_product_create(cdnnl_input_type input, int trans_a, int trans_b, float alpha, float beta) {
    (void)input; (void)trans_a; (void)trans_b; (void)alpha; (void)beta;
    return NULL;
}
int cdnnl_any_shape_product_run(const cdnnl_product *p, int64_t m, int64_t n, int64_t k,
                                const void *a, int64_t lda, const void *b, int64_t ldb, float *c, int64_t ldc) {
    (void)p; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;
    return -1;
}

#endif
