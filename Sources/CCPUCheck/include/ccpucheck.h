#ifndef CCPUCHECK_H
#define CCPUCHECK_H

/// The vector instruction set the Swift kernels were compiled for ("avx512", "avx2" or
/// "baseline"), as Package.swift chose it from the machine that built them.
const char *ccpucheck_compiled_for(void);

#endif
