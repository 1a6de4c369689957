// Package.swift compiles the Swift kernels for the vector unit of the machine that builds them
// (AVX-512 or AVX2 with FMA), which makes their 16-lane loops one or two instructions wide
// instead of four SSE ones. A binary copied to a CPU without those instructions would die on the
// first of them (SIGILL) somewhere deep in a computation; this constructor, compiled for the
// baseline x86-64 and run before any Swift code, stops it first with one line saying why.
#include "ccpucheck.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef MOE_INSPECT_CPU_LEVEL
#define MOE_INSPECT_CPU_LEVEL 0
#endif

const char *ccpucheck_compiled_for(void) {
#if MOE_INSPECT_CPU_LEVEL == 2
    return "avx512";
#elif MOE_INSPECT_CPU_LEVEL == 1
    return "avx2";
#else
    return "baseline";
#endif
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && MOE_INSPECT_CPU_LEVEL > 0
__attribute__((constructor)) static void ccpucheck_startup(void) {
    __builtin_cpu_init();
    const char *missing = NULL;
#if MOE_INSPECT_CPU_LEVEL == 2
    if (!__builtin_cpu_supports("avx512f")) missing = "avx512f";
    else if (!__builtin_cpu_supports("avx512bw")) missing = "avx512bw";
    else if (!__builtin_cpu_supports("avx512dq")) missing = "avx512dq";
    else if (!__builtin_cpu_supports("avx512vl")) missing = "avx512vl";
    else if (!__builtin_cpu_supports("avx512cd")) missing = "avx512cd";
#endif
    if (!missing && !__builtin_cpu_supports("avx2")) missing = "avx2";
    if (!missing && !__builtin_cpu_supports("fma")) missing = "fma";
    if (!missing && !__builtin_cpu_supports("bmi2")) missing = "bmi2";
    if (missing) {
        fprintf(stderr,
                "moe-inspect: error: this build's kernels were compiled for %s, and this CPU has no %s: "
                "build it on this machine (make build), or with MOE_INSPECT_CPU=generic for any x86-64\n",
                ccpucheck_compiled_for(), missing);
        exit(1);
    }
}
#endif
