/* CPU feature detection for the kernels: which instruction-set level this host runs, and a cap on it.
 *
 * The library is built for baseline x86-64 (or ARMv8-A, or any other host) and carries AVX2, AVX-512 and
 * AMX kernels (NEON, dotprod and i8mm kernels on aarch64) compiled with per-function or per-file target
 * options; this file decides at run time whether they may run: cpuid on x86-64, the kernel's hardware
 * capability bits (getauxval(AT_HWCAP), AT_HWCAP2) on aarch64. AMX also needs the kernel's permission:
 * Linux enables the tile data state per process on request (arch_prctl ARCH_REQ_XCOMP_PERM), and the
 * request is made here, once, when AMX is detected. The cap (AETHER_ISA, or ae_cpu_set_max_isa) lets the
 * tests and benchmarks run every path side by side, and lets a program built for a lesser target keep
 * to it.
 */
#include "ae_kernels.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#include <strings.h>

/* -1 until detected, then the host's enum ae_isa. */
static atomic_int host_isa = -1;
static atomic_int max_isa = AE_ISA_COUNT - 1;

/* AVX2 needs the CPU's AVX2, FMA and F16C bits and the OS saving the YMM registers (XCR0 bits 1-2).
 * Read with cpuid and xgetbv directly rather than __builtin_cpu_supports, whose support code lives in
 * libgcc: programs linked by libtcc do not get libgcc. */
static enum ae_isa cpu_detect(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return AE_ISA_SCALAR;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!(fma && osxsave && avx && f16c))
        return AE_ISA_SCALAR;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    if ((xcr0_lo & 6u) != 6u || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5)))
        return AE_ISA_SCALAR;
    /* AVX-512: F (ebx 16), BW (ebx 30), VL (ebx 31), VNNI (ecx 11), and the OS saving the opmask and
     * ZMM state (XCR0 bits 5-7) */
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = c & (1u << 11);
    if (!(f && bw && vl && vnni && (xcr0_lo & 0xe0u) == 0xe0u))
        return AE_ISA_AVX2;
    /* AMX: TILE (edx 24) and INT8 (edx 25), the OS managing the tile state (XCR0 bits 17-18), and
     * Linux's permission to use the tile data (ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18) */
    const bool tile = d & (1u << 24), int8 = d & (1u << 25);
    if (!(tile && int8 && (xcr0_lo & 0x60000u) == 0x60000u))
        return AE_ISA_AVX512;
#if defined(__linux__)
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
        return AE_ISA_AVX512;
    return AE_ISA_AMX;
#else
    return AE_ISA_AVX512;
#endif
#elif defined(__aarch64__) && defined(__linux__)
    /* Linux's arm64 hwcap bits (asm/hwcap.h): HWCAP_ASIMD 1 << 1, HWCAP_ASIMDDP 1 << 20, HWCAP2_I8MM 1 << 13. */
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    if (!(hwcap & (1ul << 1)))
        return AE_ISA_SCALAR;
    if (!(hwcap & (1ul << 20)))
        return AE_ISA_NEON;
    return hwcap2 & (1ul << 13) ? AE_ISA_I8MM : AE_ISA_DOTPROD;
#else
    return AE_ISA_SCALAR;
#endif
}

enum ae_isa ae_cpu_host_isa(void)
{
    int isa = atomic_load_explicit(&host_isa, memory_order_relaxed);
    if (isa < 0) { /* detection is idempotent, so racing first calls are harmless */
        isa = (int)cpu_detect();
        atomic_store_explicit(&host_isa, isa, memory_order_relaxed);
    }
    return (enum ae_isa)isa;
}

void ae_cpu_set_max_isa(enum ae_isa isa)
{
    int v = (int)isa;
    if (v < 0)
        v = AE_ISA_SCALAR;
    if (v >= AE_ISA_COUNT)
        v = AE_ISA_COUNT - 1;
    atomic_store_explicit(&max_isa, v, memory_order_relaxed);
}

enum ae_isa ae_cpu_isa(void)
{
    const int host = (int)ae_cpu_host_isa();
    const int cap = atomic_load_explicit(&max_isa, memory_order_relaxed);
    return (enum ae_isa)(host < cap ? host : cap);
}

static const char *const isa_names[AE_ISA_COUNT] = {
    [AE_ISA_SCALAR] = "scalar",
#if defined(__aarch64__)
    [AE_ISA_NEON] = "neon",
    [AE_ISA_DOTPROD] = "dotprod",
    [AE_ISA_I8MM] = "i8mm",
#else
    [AE_ISA_AVX2] = "avx2",
    [AE_ISA_AVX512] = "avx512",
    [AE_ISA_AMX] = "amx",
#endif
};

const char *ae_isa_name(enum ae_isa isa)
{
    const int v = (int)isa;
    return v >= 0 && v < AE_ISA_COUNT ? isa_names[v] : "unknown";
}

int ae_isa_from_name(const char *name)
{
    for (int i = 0; name && i < AE_ISA_COUNT; i++)
        if (strcasecmp(name, isa_names[i]) == 0)
            return i;
    return -1;
}

int ae_cpu_cap_from_env(ae_error *err)
{
    const char *v = getenv("AETHER_ISA");
    if (!v || !*v)
        return 0;
    const int isa = ae_isa_from_name(v);
    if (isa < 0) {
        char names[64] = "";
        for (int i = 0; i < AE_ISA_COUNT; i++) {
            strncat(names, i ? (i + 1 < AE_ISA_COUNT ? ", " : " or ") : "", sizeof names - strlen(names) - 1);
            strncat(names, isa_names[i], sizeof names - strlen(names) - 1);
        }
        return ae_fail(err, "AETHER_ISA=%s is no instruction-set level of this machine; it takes %s", v, names);
    }
    ae_cpu_set_max_isa((enum ae_isa)isa);
    return 0;
}
