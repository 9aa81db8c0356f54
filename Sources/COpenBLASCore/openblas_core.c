#define _GNU_SOURCE
#include "COpenBLASCore.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int threads);

void lk_openblas_set_threads(int threads) { openblas_set_num_threads(threads); }

const char *lk_openblas_core(void) { return openblas_get_corename(); }

// Generic kernels OpenBLAS falls back to when it cannot name the CPU.
static int is_generic(const char *core) {
    static const char *generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Katmai",
                                    "Coppermine", "Northwood", "Banias", "Atom", "Nano", "Unknown", NULL};
    for (int i = 0; generic[i]; i++)
        if (strcasecmp(core, generic[i]) == 0) return 1;
    return 0;
}

const char *lk_openblas_better_core(void) {
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set && *set) return NULL;  // the user's choice
    const char *core = openblas_get_corename();
    if (!core || !is_generic(core)) return NULL;
    __builtin_cpu_init();  // checks the OS saves the vector state too (XCR0), not only CPUID
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return strcasecmp(core, "Haswell") == 0 ? NULL : "Haswell";
    return NULL;
}

int lk_openblas_reexec_with_native_core(char *const argv[]) {
    const char *better = lk_openblas_better_core();
    // The guard stops a loop should OpenBLAS ignore the variable.
    if (!better || getenv("LOOKALIKE_OPENBLAS_REEXEC")) return 0;
    setenv("OPENBLAS_CORETYPE", better, 1);
    setenv("LOOKALIKE_OPENBLAS_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");  // exec failed: the loaded kernels stay, and so should the variable's absence
    return -1;
}
