// OpenBLAS kernel selection on CPUs it does not recognise. OpenBLAS (Debian's DYNAMIC_ARCH build)
// picks its kernels once, when it loads, from the CPU's family and model numbers; a virtual machine
// that reports a generic model ("Intel Xeon Processor") gets the SSE3 "Prescott" kernels although
// the CPU has AVX-512: sgemm then runs at a quarter of its speed and sgemv at half (measured here:
// 26.6 vs 101 GFLOPS for the batched search product). OpenBLAS honours OPENBLAS_CORETYPE, but only
// at load time, so the one remedy that needs no patched library is to set it from the CPU's
// features and start the program again.
#pragma once

/// The kernel family OpenBLAS chose ("Prescott", "SkylakeX", "Haswell"...).
const char *lk_openblas_core(void);

/// The OPENBLAS_CORETYPE this CPU's features call for when OpenBLAS chose a weaker generic kernel
/// and the user set none; NULL when nothing is to be done.
const char *lk_openblas_better_core(void);

/// Threads OpenBLAS uses per call. A server sets 1: it runs one product per core itself (the
/// batcher's concurrent batches), and OpenBLAS's own threads would only spin against them.
void lk_openblas_set_threads(int threads);

/// When `lk_openblas_better_core` names a core: sets OPENBLAS_CORETYPE and re-executes this program
/// with the same arguments (does not return on success; returns -1 when exec failed, and the
/// program then goes on with the kernels it has). Returns 0 when nothing was to be done.
int lk_openblas_reexec_with_native_core(char *const argv[]);
