#ifndef CDNNL_H
#define CDNNL_H

#include <stddef.h>
#include <stdint.h>

// oneDNN's matrix product (libdnnl.so.2, Debian's libdnnl2), loaded with dlopen on first use.
// Nothing here links against oneDNN: a build without its headers, or a machine without the
// library, gets cdnnl_available() == 0 and callers keep to OpenBLAS.
//
// Every product runs on the calling thread only (the callers split the work across the cores
// themselves, in blocks that depend only on the problem size), with the caller's scratch memory,
// so one product object can be run from several threads at once.

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when libdnnl.so.2 was loaded and every function this shim uses was found, else 0.
int cdnnl_available(void);

/// Why oneDNN is unavailable (empty when it is available).
const char *cdnnl_unavailable_reason(void);

/// The loaded library's version as "major.minor.patch" (empty when unavailable).
const char *cdnnl_version(void);

/// Element types of the inputs A and B.
typedef enum { CDNNL_F32 = 0, CDNNL_BF16 = 1 } cdnnl_input_type;

/// A matrix product of fixed shape: C[m, n] = alpha * op(A) * op(B) + beta * C, row-major with
/// leading dimensions, A and B of `input` type, C always float.
typedef struct cdnnl_product cdnnl_product;

/// Creates a product (NULL on failure). trans_a: A is stored [k, m]; trans_b: B is stored [n, k].
cdnnl_product *cdnnl_product_create(int64_t m, int64_t n, int64_t k, cdnnl_input_type input,
                                    int trans_a, int64_t lda, int trans_b, int64_t ldb, int64_t ldc,
                                    float alpha, float beta);

/// Bytes of scratch memory one concurrent run needs (may be 0).
size_t cdnnl_product_scratch_bytes(const cdnnl_product *product);

/// Runs the product on the calling thread; `scratch` holds cdnnl_product_scratch_bytes bytes
/// (64-byte aligned) used by this run only. Returns 0 on success, else oneDNN's status.
int cdnnl_product_run(const cdnnl_product *product, const void *a, const void *b, float *c, void *scratch);

/// The kernel oneDNN chose (e.g. "brg:avx512_core"), for reports.
const char *cdnnl_product_kernel(const cdnnl_product *product);

void cdnnl_product_destroy(cdnnl_product *product);

/// A matrix product of any shape: C[m, n] = alpha * op(A) * op(B) + beta * C with m, n, k and the
/// leading dimensions given at each run (oneDNN's runtime dimensions: one primitive serves every
/// shape, and oneDNN runs its `gemm:jit` kernels for it). NULL on failure. Destroy with
/// cdnnl_product_destroy.
cdnnl_product *cdnnl_any_shape_product_create(cdnnl_input_type input, int trans_a, int trans_b, float alpha, float beta);

/// Runs an any-shape product on the calling thread (scratch memory, if oneDNN asks for any, is
/// allocated per run). Returns 0 on success, else oneDNN's status (-1: not an any-shape product).
int cdnnl_any_shape_product_run(const cdnnl_product *product, int64_t m, int64_t n, int64_t k,
                                const void *a, int64_t lda, const void *b, int64_t ldb, float *c, int64_t ldc);

#ifdef __cplusplus
}
#endif

#endif
