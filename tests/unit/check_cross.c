/* Programs for another machine: `aetherc MODEL -o PROGRAM --target aarch64-linux-gnu` cross-built by
 * Debian's aarch64-linux-gnu-gcc and run under qemu-user (qemu-aarch64-static or qemu-aarch64, CPU
 * "max": NEON, dotprod and i8mm), against the x86-64 program and llama.cpp's references.
 *
 * Every shared model: the prompt logits of the three prompts within the reference README's tolerance
 * and bit-identical to the x86-64 program's (but where libm's tanhf differs, below), and 32 greedy
 * tokens equal to the x86-64 program's (stories260K's equal to llama.cpp's too). Teacher forcing over
 * every step is check_e2e's, on x86-64 only: bit-identical prompt logits carry its result over. Each
 * kernel level (AETHER_ISA=neon, dotprod, i8mm where it has kernels of its own for the type; scalar on
 * the 1-token step) on a model of odd shapes in every weight type, in the layout the layout pass picks
 * and in rows, prefill in chunks and single-token steps: bit-identical logits to the x86-64 program. The level the CPU has is the one chosen (qemu's
 * Cortex-A53, Neoverse N1 and max CPUs). --static builds for both targets: no loader, no shared
 * library, and they run without opening one.
 *
 * It needs an x86-64 host (make leaves it out elsewhere). It costs about 2.4 minutes of one core, most of
 * it compiling some 110 programs (for the CPU only, no SPIR-V; each model's two at once) and starting
 * qemu some 220 times.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_reference.h"
#include "test_util.h"

#define ARM "aarch64-linux-gnu"

static char tmp_dir[64];
static char log_buf[1 << 16];
/* How an aarch64 program is started: "qemu-aarch64-static", which finds the aarch64 loader and libc
 * where Debian's multiarch libc6:arm64 puts them (/lib/ld-linux-aarch64.so.1; libsodium-dev:arm64 brings
 * it), or "qemu-aarch64-static -L /usr/aarch64-linux-gnu" for the cross toolchain's own copy when that is
 * all there is (the loader and libc must come from the same one). */
static char qemu[256];
static char qemu_bin[128];

static const char *aetherc(void)
{
    const char *bin = getenv("AE_AETHERC");
    ck_assert_msg(bin && *bin, "AE_AETHERC is not set: run the tests through make check");
    return bin;
}

/* Finds qemu-user once (the tests fail loudly without it: .ci/install-deps installs it). */
static void find_qemu(void)
{
    if (qemu_bin[0])
        return;
    int rc = test_sh(log_buf, sizeof log_buf, "command -v qemu-aarch64-static || command -v qemu-aarch64");
    ck_assert_msg(rc == 0, "no qemu-aarch64-static or qemu-aarch64 on PATH: install Debian's qemu-user-static");
    snprintf(qemu_bin, sizeof qemu_bin, "%.*s", (int)strcspn(log_buf, "\n") & 127, log_buf);
    snprintf(qemu, sizeof qemu, "%s%s", qemu_bin, access("/lib/ld-linux-aarch64.so.1", F_OK) == 0 ? "" : " -L /usr/" ARM);
}

static const char *model_path(const char *file)
{
    static char rel[256];
    snprintf(rel, sizeof rel, "models/%s", file);
    return file[0] == '/' ? file : test_shared_path(rel);
}

/* Compiles models/<file> (or an absolute path) into <tmp>/<name> with extra flags; for the CPU only
 * (--backend cpu: no Vulkan kernels to compile) unless the flags say otherwise. */
static void compile(const char *file, const char *name, const char *flags)
{
    const char *cpu = strstr(flags, "--backend") ? "" : " --backend cpu";
    int rc = test_sh(log_buf, sizeof log_buf, "%s %s -o %s/%s %s%s", aetherc(), model_path(file), tmp_dir, name, flags,
                     cpu);
    ck_assert_msg(rc == 0, "aetherc %s -o %s %s failed (%d):\n%s", file, name, flags, rc, log_buf);
}

/* The x86-64 program <tmp>/<x86> and the aarch64 one <tmp>/<arm> of a model, compiled at the same time
 * (CI has two cores), both for the CPU only; flags go to both. */
static void compile_pair(const char *file, const char *x86, const char *arm, const char *flags)
{
    const char *path = model_path(file);
    int rc = test_sh(log_buf, sizeof log_buf,
                     "%s %s -o %s/%s %s --backend cpu & x=$!; %s %s -o %s/%s %s --backend cpu --target " ARM
                     " || exit 1; wait $x",
                     aetherc(), path, tmp_dir, x86, flags, aetherc(), path, tmp_dir, arm, flags);
    ck_assert_msg(rc == 0, "aetherc %s -o %s/%s %s failed (%d):\n%s", file, x86, arm, flags, rc, log_buf);
}

static void ids_list(const int32_t *ids, uint32_t n, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId32, i ? "," : "", ids[i]);
}

/* One run of <tmp>/<name>, started with prefix (qemu or "", and environment variables) and flags: the
 * logits after the last of n prompt ids (returned, n_vocab floats) and, when max > 0, the ids of up to
 * max greedy tokens after them (into out, their count into *n_out). */
static float *run_prompt(const char *prefix, const char *name, const int32_t *ids, uint32_t n, int64_t n_vocab,
                         const char *flags, int32_t *out, uint32_t max, uint32_t *n_out)
{
    char list[2048], path[128], gen[64] = "-n 0";
    ids_list(ids, n, list, sizeof list);
    snprintf(path, sizeof path, "%s/%s.logits", tmp_dir, name);
    remove(path);
    if (max)
        snprintf(gen, sizeof gen, "-n %u --temp 0 --ignore-eos --print-ids", max);
    int rc = test_sh(log_buf, sizeof log_buf, "%s %s/%s --tokens %s %s --dump-logits %s %s 2>/dev/null", prefix, tmp_dir,
                     name, list, gen, path, flags);
    ck_assert_msg(rc == 0, "%s %s --tokens %s failed (%d):\n%s", prefix, name, list, rc, log_buf);
    size_t size;
    float *l = test_read_file(path, &size);
    ck_assert_msg(size == (size_t)n_vocab * sizeof(float), "%s wrote %zu bytes of logits, expected %" PRId64 " floats",
                  name, size, n_vocab);
    uint32_t k = 0;
    for (char *p = log_buf; max && *p && k < max;) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) {
            p++;
            continue;
        }
        out[k++] = (int32_t)v;
        p = e;
    }
    if (n_out)
        *n_out = k;
    return l;
}

static float *prompt_logits(const char *prefix, const char *name, const int32_t *ids, uint32_t n, int64_t n_vocab,
                            const char *flags)
{
    return run_prompt(prefix, name, ids, n, n_vocab, flags, NULL, 0, NULL);
}

static int64_t ref_n_vocab(const char *ref)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/%s/prompt1.kvf16.logits.f32", ref);
    size_t size;
    void *f = test_read_file(test_shared_path(rel), &size);
    free(f);
    return (int64_t)size / 4;
}

/* The first index where two logit vectors differ in their bits, or -1. */
static int64_t first_difference(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            return i;
    return -1;
}

/* glibc's tanhf (through expm1f) rounds differently on aarch64 and x86-64 for some inputs, by an ulp:
 * models whose ops call it (gemma2's soft-capping and GELU) match the x86-64 program within this bound
 * instead of bit for bit (measured: 3e-7). */
#define TANHF_TOL 1e-4

static bool uses_tanhf(const char *file)
{
    return strstr(file, "gemma2") != NULL;
}

START_TEST(test_model_matches_x86_64_and_llama_cpp)
{
    const struct model_row *row = &ref_models[_i];
    find_qemu();
    compile_pair(row->file, "x86", "arm", "");
    const int64_t nv = ref_n_vocab(row->ref);
    const double tol = ref_tol_max_abs(row->tol);
    const bool stories = !strcmp(row->ref, "stories260K");
    for (int prompt = 1; prompt <= 3; prompt++) {
        struct reference r;
        ref_load(&r, row->ref, prompt, "f16", nv);
        /* 32 greedy tokens in the same runs, after the first prompt (after every one for stories260K) */
        const uint32_t steps = prompt == 1 || stories ? REF_STEPS : 0;
        int32_t a[REF_STEPS], x[REF_STEPS];
        uint32_t n_a = 0, n_x = 0;
        float *want = run_prompt("", "x86", r.prompt, r.n_prompt, nv, "-t 1", x, steps, &n_x);
        float *got = run_prompt(qemu, "arm", r.prompt, r.n_prompt, nv, "-t 2", a, steps, &n_a);
        struct ref_diff d = ref_compare(got, r.logits, nv);
        ck_assert_msg(d.max_abs <= tol, "%s prompt %d on aarch64: logit %" PRId64 " is %g, llama.cpp %g (|diff| %g > %g)",
                      row->ref, prompt, d.at, (double)got[d.at], (double)r.logits[d.at], d.max_abs, tol);
        if (uses_tanhf(row->file)) {
            d = ref_compare(got, want, nv);
            ck_assert_msg(d.max_abs <= TANHF_TOL, "%s prompt %d: logit %" PRId64 " is %.9g on aarch64, %.9g on x86-64",
                          row->ref, prompt, d.at, (double)got[d.at], (double)want[d.at]);
        } else {
            const int64_t at = first_difference(got, want, nv);
            ck_assert_msg(at < 0, "%s prompt %d: logit %" PRId64 " is %.9g on aarch64, %.9g on x86-64", row->ref, prompt,
                          at, (double)got[at], (double)want[at]);
        }
        free(got);
        free(want);
        if (steps) {
            ck_assert_uint_eq(n_a, REF_STEPS);
            ck_assert_uint_eq(n_x, REF_STEPS);
            for (int s = 0; s < REF_STEPS; s++) {
                ck_assert_msg(a[s] == x[s], "%s prompt %d step %d: %" PRId32 " on aarch64, %" PRId32 " on x86-64",
                              row->ref, prompt, s, a[s], x[s]);
                if (stories)
                    ck_assert_msg(a[s] == r.greedy[s], "stories260K prompt %d step %d: %" PRId32 ", llama.cpp %" PRId32,
                                  prompt, s, a[s], r.greedy[s]);
            }
        }
        free(r.logits);
    }
}
END_TEST

/* Text in, text out under qemu: exactly llama.cpp's greedy continuation. The program has the Vulkan
 * half too (aetherc's default --backend all), which finds no device here and leaves the CPU to run. */
START_TEST(test_stories_text)
{
    find_qemu();
    compile("stories260K.gguf", "stories", "--target " ARM " --backend all");
    int rc = test_sh(log_buf, sizeof log_buf, "%s %s/stories -p 'Once upon a time' -n 32 --temp 0 2>/dev/null", qemu,
                     tmp_dir);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(log_buf, ", there was a little girl named Lily. She loved to play outside in the park. One day, "
                              "she saw");
}
END_TEST

/* The levels with kernels of their own for a type (runtime/kernels/matmul_neon.c's sets): a level
 * without one runs the level below's, which its own row has already run. */
enum { NEON = 1, DOTPROD = 2, I8MM_ROWS = 4 /* the rows layout only */ };

/* The weight types, each on a model of shapes that leave tails in the kernels (block counts and row
 * counts not multiples of what the SIMD loops take at once); x16: the type has an x16 layout, which the
 * layout pass picks, so its rows kernels are run too (with the layout pass off). */
static const struct {
    const char *type;
    const char *shape; /* aetherc synth flags */
    bool x16;
    int levels;
} level_models[] = {
    {"f32", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", false, NEON},
    {"f16", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", false, NEON},
    {"bf16", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", false, NEON},
    {"q4_0", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", true, NEON | DOTPROD},
    {"q4_1", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", true, NEON | DOTPROD},
    {"q5_0", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", true, NEON | DOTPROD},
    {"q5_1", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", true, NEON | DOTPROD},
    {"q8_0", "--dim 96 --heads 3 --kv-heads 1 --ffn 160", true, NEON | DOTPROD},
    {"q2_k", "--dim 256 --heads 2 --kv-heads 1 --ffn 768", true, NEON | DOTPROD | I8MM_ROWS},
    {"q3_k", "--dim 256 --heads 2 --kv-heads 1 --ffn 768", true, NEON | DOTPROD | I8MM_ROWS},
    {"q4_k", "--dim 256 --heads 2 --kv-heads 1 --ffn 768", true, NEON | DOTPROD | I8MM_ROWS},
    {"q5_k", "--dim 256 --heads 2 --kv-heads 1 --ffn 768", true, NEON | DOTPROD | I8MM_ROWS},
    {"q6_k", "--dim 256 --heads 2 --kv-heads 1 --ffn 768", true, NEON | DOTPROD | I8MM_ROWS},
};

/* Every kernel level of the aarch64 program that has kernels of its own for the type, capped with
 * AETHER_ISA, against the x86-64 program: a 70-token prompt in prefill chunks of 16 (the block kernels,
 * at P > 0), and a 1-token step (the row dots). The scalar level, which no aarch64 CPU needs (every one
 * has NEON), takes the 1-token step only. */
START_TEST(test_kernel_levels_bit_identical)
{
    find_qemu();
    char model[128];
    snprintf(model, sizeof model, "%s/levels-%s.gguf", tmp_dir, level_models[_i].type);
    int rc = test_sh(log_buf, sizeof log_buf,
                     "%s synth --arch llama %s --layers 2 --type %s --vocab-from %s --seed 5 -o %s", aetherc(),
                     level_models[_i].shape, level_models[_i].type, test_shared_path("models/stories260K.gguf"), model);
    ck_assert_msg(rc == 0, "synth failed:\n%s", log_buf);
    int32_t ids[70];
    for (int i = 0; i < 70; i++)
        ids[i] = i == 0 ? 1 : 3 + (i * 79) % 500;
    static const uint32_t lengths[] = {70, 1};
    for (int rows = 0; rows <= (int)level_models[_i].x16; rows++) {
        char flags[128];
        snprintf(flags, sizeof flags, "--t-max 16%s", rows ? " --disable-pass=layout" : "");
        compile_pair(model, "lx86", "larm", flags);
        const bool rows_layout = rows || !level_models[_i].x16;
        const int own = level_models[_i].levels & (rows_layout ? ~0 : ~I8MM_ROWS);
        const char *arm_levels[4];
        size_t n_levels = 0;
        static const struct {
            int bit;
            const char *name;
        } names[] = {{NEON, "neon"}, {DOTPROD, "dotprod"}, {I8MM_ROWS, "i8mm"}};
        for (size_t b = 0; b < sizeof names / sizeof names[0]; b++)
            if (own & names[b].bit)
                arm_levels[n_levels++] = names[b].name;
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
            float *want = prompt_logits("", "lx86", ids, lengths[k], 512, "");
            if (lengths[k] == 1)
                arm_levels[n_levels++] = "scalar";
            for (size_t l = 0; l < n_levels; l++) {
                char prefix[512];
                snprintf(prefix, sizeof prefix, "AETHER_ISA=%s %s", arm_levels[l], qemu);
                float *got = prompt_logits(prefix, "larm", ids, lengths[k], 512, "");
                const int64_t at = first_difference(got, want, 512);
                ck_assert_msg(at < 0, "%s (%s layout), %u tokens, AETHER_ISA=%s: logit %" PRId64 " is %.9g on aarch64, "
                              "%.9g on x86-64", level_models[_i].type, rows ? "rows" : "chosen", lengths[k],
                              arm_levels[l], at, (double)got[at], (double)want[at]);
                free(got);
            }
            free(want);
        }
    }
}
END_TEST

/* The level the CPU has is the one used; AETHER_ISA caps it and names only this machine's levels. */
START_TEST(test_cpu_levels)
{
    find_qemu();
    compile("stories260K.gguf", "cpus", "--target " ARM);
    static const struct {
        const char *cpu, *isa, *want;
    } rows[] = {
        {"cortex-a53", "", "kernels: neon (this CPU: neon)"},
        {"neoverse-n1", "", "kernels: dotprod (this CPU: dotprod)"},
        {"max", "", "kernels: i8mm (this CPU: i8mm)"},
        {"max", "AETHER_ISA=dotprod", "kernels: dotprod (this CPU: i8mm)"},
        {"max", "AETHER_ISA=SCALAR", "kernels: scalar (this CPU: i8mm)"},
        {"cortex-a53", "AETHER_ISA=i8mm", "kernels: neon (this CPU: neon)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = test_sh(log_buf, sizeof log_buf, "%s %s -cpu %s %s/cpus --info", rows[i].isa, qemu, rows[i].cpu,
                         tmp_dir);
        ck_assert_msg(rc == 0 && strstr(log_buf, rows[i].want), "-cpu %s %s: wanted '%s' in:\n%s", rows[i].cpu,
                      rows[i].isa, rows[i].want, log_buf);
    }
    int rc = test_sh(log_buf, sizeof log_buf, "AETHER_ISA=avx2 %s %s/cpus --info", qemu, tmp_dir);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(log_buf, "AETHER_ISA=avx2 is no instruction-set level of this machine; it takes scalar, neon, "
                                  "dotprod or i8mm"), "%s", log_buf);
}
END_TEST

/* What the program's ELF file says: its machine, its program interpreter, the shared libraries it needs. */
static void elf_facts(const char *name, char *machine, size_t size, bool *interp, bool *needed)
{
    int rc = test_sh(log_buf, sizeof log_buf, "readelf -h -l -d %s/%s", tmp_dir, name);
    ck_assert_msg(rc == 0, "readelf failed:\n%s", log_buf);
    const char *m = strstr(log_buf, "Machine:");
    ck_assert_msg(m != NULL, "%s", log_buf);
    m += strlen("Machine:");
    while (*m == ' ')
        m++;
    snprintf(machine, size, "%.*s", (int)strcspn(m, "\n"), m);
    *interp = strstr(log_buf, "INTERP") != NULL;
    *needed = strstr(log_buf, "(NEEDED)") != NULL;
}

/* --static for both targets: no program interpreter and no shared library, and each runs without
 * opening one: qemu's -strace lists every file a program opens (qemu-x86_64-static runs the x86-64 one
 * the same way), and the dynamic aarch64 program, the contrast, opens its libc. */
START_TEST(test_static_programs)
{
    find_qemu();
    compile("stories260K-q8_0.gguf", "sx86", "--static");
    /* The server stays out of a static link (it could not run there), and with it glibc's warning. */
    ck_assert_msg(!strstr(log_buf, "getaddrinfo"), "%s", log_buf);
    compile("stories260K-q8_0.gguf", "sarm", "--static --target " ARM);
    compile("stories260K-q8_0.gguf", "darm", "--target " ARM);
    static const struct {
        const char *name, *machine;
        bool is_static;
    } rows[] = {
        {"sx86", "Advanced Micro Devices X86-64", true},
        {"sarm", "AArch64", true},
        {"darm", "AArch64", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char machine[64];
        bool interp, needed;
        elf_facts(rows[i].name, machine, sizeof machine, &interp, &needed);
        ck_assert_str_eq(machine, rows[i].machine);
        ck_assert_msg(interp == !rows[i].is_static && needed == !rows[i].is_static,
                      "%s: program interpreter %d, needed libraries %d", rows[i].name, interp, needed);
    }
    struct reference r;
    ref_load(&r, "stories260K-q8_0", 1, "f16", 512);
    free(r.logits);
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "sarm" : "sx86";
        int32_t got[REF_STEPS];
        uint32_t n_got = 0;
        free(run_prompt(k ? qemu : "", name, r.prompt, r.n_prompt, 512, "", got, REF_STEPS, &n_got));
        ck_assert_uint_eq(n_got, REF_STEPS);
        for (int s = 0; s < REF_STEPS; s++)
            ck_assert_msg(got[s] == r.greedy[s], "%s step %d: %" PRId32 ", llama.cpp %" PRId32, name, s, got[s],
                          r.greedy[s]);
    }
    /* --serve loads shared libraries, which a static program cannot: it says so. */
    ck_assert_int_eq(test_sh(log_buf, sizeof log_buf, "%s/sx86 --serve --port 1", tmp_dir), 1);
    ck_assert_msg(strstr(log_buf, "which a program linked with --static cannot do"), "%s", log_buf);
    static const struct {
        const char *qemu, *name;
        bool opens_libc;
    } runs[] = {{"qemu-x86_64-static", "sx86", false}, {NULL, "sarm", false}, {NULL, "darm", true}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int rc = test_sh(log_buf, sizeof log_buf, "%s -strace %s/%s --tokens 1,403,407 -n 2 --temp 0 2>&1 >/dev/null",
                         runs[i].qemu ? runs[i].qemu : qemu, tmp_dir, runs[i].name);
        ck_assert_msg(rc == 0, "%s under qemu -strace failed (%d):\n%.2000s", runs[i].name, rc, log_buf);
        ck_assert_msg((strstr(log_buf, "libc.so") != NULL) == runs[i].opens_libc, "%s %s libc.so:\n%.4000s",
                      runs[i].name, runs[i].opens_libc ? "does not open" : "opens", log_buf);
    }
}
END_TEST

/* Flags that cannot go together say so before anything is built. */
START_TEST(test_target_flags)
{
    static const struct {
        const char *flags, *message;
    } rows[] = {
        {"--target " ARM " --cc tcc", "--cc tcc builds for this machine"},
        {"--target riscv64-linux-gnu", "--target takes x86_64-linux-gnu or aarch64-linux-gnu, not 'riscv64-linux-gnu'"},
        {"--target " ARM " --march x86-64-v3",
         "--march takes native, armv8-a, armv8.2-a+dotprod or armv8.6-a+i8mm, not 'x86-64-v3' (target " ARM ")"},
        {"--cc tcc --static", "--march and --static are gcc options"},
        {"--static --backend all", "--static makes a CPU-only program (it cannot load the Vulkan loader)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = test_sh(log_buf, sizeof log_buf, "%s %s -o %s/never %s", aetherc(),
                         test_shared_path("models/stories260K.gguf"), tmp_dir, rows[i].flags);
        ck_assert_msg(rc == 2 && strstr(log_buf, rows[i].message), "%s: exit %d, wanted '%s' in:\n%s", rows[i].flags, rc,
                      rows[i].message, log_buf);
    }
    int rc = test_sh(log_buf, sizeof log_buf, "%s %s -o %s/never --target " ARM " --march native", aetherc(),
                     test_shared_path("models/stories260K.gguf"), tmp_dir);
    ck_assert_msg(rc == 2 && strstr(log_buf, "--march native means this machine's CPU"), "%s", log_buf);
    /* --march armv8.2-a+dotprod reaches the cross gcc, and the program runs. */
    find_qemu();
    compile("stories260K-q4_0.gguf", "march", "--target " ARM " --march armv8.2-a+dotprod");
    ck_assert_int_eq(test_sh(log_buf, sizeof log_buf, "%s %s/march --info", qemu, tmp_dir), 0);
    ck_assert_msg(strstr(log_buf, "-march=armv8.2-a+dotprod for " ARM), "%s", log_buf);
}
END_TEST

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/aether-cross-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    Suite *s = suite_create("cross");
    TCase *tc = tcase_create("aarch64");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_target_flags);
    tcase_add_test(tc, test_stories_text);
    tcase_add_test(tc, test_cpu_levels);
    tcase_add_test(tc, test_static_programs);
    tcase_add_loop_test(tc, test_kernel_levels_bit_identical, 0,
                        (int)(sizeof level_models / sizeof level_models[0]));
    tcase_add_loop_test(tc, test_model_matches_x86_64_and_llama_cpp, 0, ref_n_models);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    test_remove_dir(tmp_dir);
    return rc;
}
