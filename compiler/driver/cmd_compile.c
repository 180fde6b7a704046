/* 'aetherc [flags] MODEL.gguf': the compiler proper.
 *
 * Reads the model, imports its forward step as IR, runs the pass pipeline (passes/pipeline.c) with
 * the dumps and options the flags ask for, and reports what the passes did: nodes before and after,
 * fused groups by kind, and the planned peak of activation memory against the sum of all
 * intermediates. With -o it then writes the program: generated C compiled by gcc or libtcc, the
 * weights appended (or beside it with --weights=external), and one closing line (the program, its
 * size, the weights and their hash, the time). Every file it will write is checked first
 * (output_check.h), so that a wrong path fails before any work and a model is never overwritten.
 * --print-plan (what 'aetherc plan' runs) prints the memory plan as a table instead of the summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "ae_gguf.h"
#include "build_program.h"
#include "commands.h"
#include "frontend.h"
#include "import.h"
#include "ir.h"
#include "output_check.h"
#include "pass.h"
#include "toolchain.h"

struct compile_args {
    const char *model;
    const char *out;
    uint32_t dump_mask;
    const char *dump_dir;
    enum pass_dump_format dump_format;
    uint32_t disabled;
    bool o0;
    bool verify_each;
    bool no_merge;
    bool print_plan;
    int64_t t_max;
    uint32_t n_ctx;
    uint32_t kv_type;
    struct build_options build;
};

static void compile_usage(FILE *f)
{
    fprintf(f,
            "usage: aetherc [flags] MODEL.gguf\n"
            "\n"
            "Imports the model, runs the passes (%s) and reports\n"
            "what they did: nodes before and after, fused groups, the activation memory plan.\n"
            "\n"
            "  -o OUT                       write the program: one executable with the weights inside (an\n"
            "                               existing OUT is replaced only when it is a program)\n"
            "  -m MODEL                     the model (llama.cpp's spelling; a bare path works too)\n"
            "  --cc gcc|tcc                 compile the generated C with gcc -O2 (default) or in-process\n"
            "                               with libtcc (much faster to build, slower to run)\n"
            "  --target x86_64-linux-gnu|aarch64-linux-gnu\n"
            "                               the machine the program runs on (default: this one); another\n"
            "                               one's is built by its cross gcc (aarch64-linux-gnu-gcc)\n"
            "  --march native|x86-64|x86-64-v2|x86-64-v3|x86-64-v4 (x86_64)\n"
            "          native|armv8-a|armv8.2-a+dotprod|armv8.6-a+i8mm (aarch64)\n"
            "                               gcc's -march (default: gcc's own); the kernels pick their\n"
            "                               AVX2, AVX-512 or NEON paths at run time whatever it says\n"
            "  --static                     a fully static program: no loader, no shared libc, CPU only (gcc)\n"
            "  --emit-c DIR                 keep the generated C in DIR/OUT.c (and gcc's link map in\n"
            "                               DIR/OUT.map)\n"
            "  --backend all|cpu            the program runs on Vulkan GPUs and the CPU (all, the default),\n"
            "                               or on the CPU only (a smaller program)\n"
            "  --dump-spirv DIR             write each Vulkan kernel's GLSL (.comp) and SPIR-V (.spv) to DIR\n"
            "  --weights=embedded|external  weights inside the program (default) or in OUT.weights\n"
            "  -g                           compile the program with debug information\n"
            "  -O0                          run only what correctness needs (memplan); -O1, -O2: every pass\n"
            "  --disable-pass=NAME[,NAME]   do not run these passes (repeatable)\n"
            "  --dump-ir=after-all          print '; after <pass>' and the graph after every pass, and the\n"
            "                               imported graph first ('; after import')\n"
            "  --dump-ir=after=PASS[,PASS]  the same after the named passes only (or 'import')\n"
            "  --dump-dir DIR               write each dump to DIR/NN-<pass>.ir (.yaml) instead of stdout\n"
            "  --dump-format=text|yaml      the dump's form (default text)\n"
            "  --verify-each                ir_verify after every pass (always on in debug builds)\n"
            "  --no-merge                   run each matmul apart and store each matrix apart, even those\n"
            "                               that multiply the same input (Q, K and V; gate and up)\n"
            "  --t-max N                    plan memory for steps of up to N tokens (default 512)\n"
            "  --ctx N                      the program's default context (default: the model's training\n"
            "                               context, at most 4096); the program's --ctx may change it up to\n"
            "                               the training context\n"
            "  --kv f16|f32                 the program's default KV cache type (default f16)\n"
            "  --print-plan                 print the memory plan as a table ('aetherc plan')\n"
            "  --help                       this text; aetherc --version says which build this is\n",
            pass_list());
}

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || *e || s[0] == '-' || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "a,b,c" of pass names into a mask; "import" (bit PASS_COUNT) when allow_import. */
static int parse_pass_list(const char *list, bool allow_import, uint32_t *mask, const char *flag)
{
    const char *p = list;
    if (!*p) {
        fprintf(stderr, "aetherc: %s needs a pass name; the passes are: %s\n", flag, pass_list());
        return -1;
    }
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int id = pass_from_name(p, len);
        if (id < 0 && allow_import && len == 6 && !memcmp(p, "import", 6))
            id = PASS_COUNT;
        if (id < 0) {
            fprintf(stderr, "aetherc: %s: unknown pass '%.*s'; the passes are: %s%s\n", flag, (int)len, p,
                    pass_list(), allow_import ? " (and import, the graph before them)" : "");
            return -1;
        }
        *mask |= 1u << id;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* The value of "--flag=VALUE" or "--flag VALUE" (advancing *i), or NULL when arg is not flag. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag, bool *missing)
{
    size_t len = strlen(flag);
    const char *arg = argv[*i];
    if (strncmp(arg, flag, len) != 0)
        return NULL;
    if (arg[len] == '=')
        return arg + len + 1;
    if (arg[len] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

/* "x86_64-linux-gnu or aarch64-linux-gnu": the targets, for messages. */
static const char *target_list(void)
{
    static char buf[256];
    size_t k = 0;
    for (const struct cc_target *t = cc_targets; t->triple && k < sizeof buf; t++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", t == cc_targets ? "" : t[1].triple ? ", " : " or ",
                              t->triple);
    return buf;
}

/* The flags, for "did you mean" (parse_args is the reference). */
static const char *const compile_flags[] = {
    "-o", "-m", "-g", "-O0", "-O1", "-O2", "--cc", "--target", "--march", "--static", "--emit-c", "--weights",
    "--dump-ir", "--dump-dir", "--dump-format", "--disable-pass", "--verify-each", "--no-merge", "--t-max", "--ctx", "--kv",
    "--print-plan", "--help",
};

static int unknown_flag(const char *arg)
{
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
    const char *near = ae_closest_name(word, compile_flags, sizeof compile_flags / sizeof compile_flags[0]);
    if (near)
        fprintf(stderr, "aetherc: unknown flag '%s'; did you mean '%s'?\n", word, near);
    else
        fprintf(stderr, "aetherc: unknown flag '%s' (aetherc --help lists them)\n", word);
    return 2;
}

/* Returns 0, 1 when --help was printed, or 2 on a usage error (after a message). */
static int parse_args(int argc, char **argv, struct compile_args *a)
{
    bool backend_all = false; /* --backend all given */
    memset(a, 0, sizeof *a);
    a->dump_format = PASS_DUMP_TEXT;
    a->t_max = 512;
    a->kv_type = AE_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        bool missing = false;
        uint64_t num;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            compile_usage(stdout);
            return 1;
        } else if (!strcmp(arg, "-O0")) {
            a->o0 = true;
        } else if (!strcmp(arg, "-O1") || !strcmp(arg, "-O2")) {
            a->o0 = false;
        } else if (!strcmp(arg, "--verify-each")) {
            a->verify_each = true;
        } else if (!strcmp(arg, "--no-merge")) {
            a->no_merge = true;
        } else if (!strcmp(arg, "--print-plan")) {
            a->print_plan = true;
        } else if (!strcmp(arg, "-o")) {
            if (i + 1 >= argc)
                goto missing_value;
            a->out = argv[++i];
        } else if (!strcmp(arg, "-g")) {
            a->build.debug = true;
        } else if (!strcmp(arg, "-m")) {
            if (i + 1 >= argc)
                goto missing_value;
            if (a->model) {
                fprintf(stderr, "aetherc: two models given ('%s' and '%s'); compile one at a time\n", a->model, argv[i + 1]);
                return 2;
            }
            a->model = argv[++i];
        } else if ((v = flag_value(argc, argv, &i, "--cc", &missing))) {
            if (strcmp(v, "gcc") != 0 && strcmp(v, "tcc") != 0) {
                fprintf(stderr, "aetherc: --cc takes gcc or tcc, not '%s'\n", v);
                return 2;
            }
            a->build.use_tcc = !strcmp(v, "tcc");
        } else if (!strcmp(arg, "--static")) {
            a->build.static_link = true;
        } else if ((v = flag_value(argc, argv, &i, "--target", &missing))) {
            if (!(a->build.target = cc_target_find(v))) {
                fprintf(stderr, "aetherc: --target takes %s, not '%s'\n", target_list(), v);
                return 2;
            }
        } else if ((v = flag_value(argc, argv, &i, "--march", &missing))) {
            a->build.march = v; /* checked against the target below */
        } else if ((v = flag_value(argc, argv, &i, "--emit-c", &missing))) {
            a->build.emit_c_dir = v;
        } else if ((v = flag_value(argc, argv, &i, "--backend", &missing))) {
            if (strcmp(v, "all") != 0 && strcmp(v, "cpu") != 0) {
                fprintf(stderr, "aetherc: --backend takes all or cpu, not '%s'\n", v);
                return 2;
            }
            a->build.cpu_only = !strcmp(v, "cpu");
            backend_all = !a->build.cpu_only;
        } else if ((v = flag_value(argc, argv, &i, "--dump-spirv", &missing))) {
            a->build.dump_spirv_dir = v;
        } else if ((v = flag_value(argc, argv, &i, "--weights", &missing))) {
            if (strcmp(v, "embedded") != 0 && strcmp(v, "external") != 0) {
                fprintf(stderr, "aetherc: --weights takes embedded or external, not '%s'\n", v);
                return 2;
            }
            a->build.weights_external = !strcmp(v, "external");
        } else if ((v = flag_value(argc, argv, &i, "--dump-ir", &missing))) {
            if (!strcmp(v, "after-all")) {
                a->dump_mask = (1u << (PASS_COUNT + 1)) - 1;
            } else if (!strncmp(v, "after=", 6)) {
                if (parse_pass_list(v + 6, true, &a->dump_mask, "--dump-ir=after"))
                    return 2;
            } else {
                fprintf(stderr, "aetherc: --dump-ir takes after-all or after=PASS[,PASS], not '%s'\n", v);
                return 2;
            }
        } else if ((v = flag_value(argc, argv, &i, "--dump-dir", &missing))) {
            a->dump_dir = v;
        } else if ((v = flag_value(argc, argv, &i, "--dump-format", &missing))) {
            if (!strcmp(v, "text")) {
                a->dump_format = PASS_DUMP_TEXT;
            } else if (!strcmp(v, "yaml")) {
                a->dump_format = PASS_DUMP_YAML;
            } else {
                fprintf(stderr, "aetherc: --dump-format takes text or yaml, not '%s'\n", v);
                return 2;
            }
        } else if ((v = flag_value(argc, argv, &i, "--disable-pass", &missing))) {
            if (parse_pass_list(v, false, &a->disabled, "--disable-pass"))
                return 2;
        } else if ((v = flag_value(argc, argv, &i, "--t-max", &missing))) {
            if (parse_num(v, 1u << 20, &num)) {
                fprintf(stderr, "aetherc: --t-max takes a token count from 1 to %u, not '%s'\n", 1u << 20, v);
                return 2;
            }
            a->t_max = (int64_t)num;
        } else if ((v = flag_value(argc, argv, &i, "--ctx", &missing))) {
            if (parse_num(v, 1u << 24, &num)) {
                fprintf(stderr, "aetherc: --ctx takes a context length from 1 to %u, not '%s'\n", 1u << 24, v);
                return 2;
            }
            a->n_ctx = (uint32_t)num;
        } else if ((v = flag_value(argc, argv, &i, "--kv", &missing))) {
            if (!strcmp(v, "f16")) {
                a->kv_type = AE_TYPE_F16;
            } else if (!strcmp(v, "f32")) {
                a->kv_type = AE_TYPE_F32;
            } else {
                fprintf(stderr, "aetherc: --kv takes f16 or f32, not '%s'\n", v);
                return 2;
            }
        } else if (missing) {
            goto missing_value;
        } else if (arg[0] == '-' && arg[1]) {
            return unknown_flag(arg);
        } else if (a->model) {
            fprintf(stderr, "aetherc: two models given ('%s' and '%s'); compile one at a time\n", a->model, arg);
            return 2;
        } else {
            a->model = arg;
        }
        continue;
    missing_value:
        fprintf(stderr, "aetherc: %s needs a value\n", arg);
        return 2;
    }
    if (!a->model) {
        fprintf(stderr, "aetherc: no model given (aetherc MODEL.gguf -o PROGRAM; aetherc --help says more)\n");
        return 2;
    }
    if (a->disabled & (1u << PASS_MEMPLAN)) {
        fprintf(stderr, "aetherc: memplan cannot be disabled: the program needs its memory plan\n");
        return 2;
    }
    if ((a->build.use_tcc || a->build.march || a->build.emit_c_dir || a->build.weights_external || a->build.debug ||
         a->build.cpu_only || a->build.dump_spirv_dir || a->build.target || a->build.static_link) && !a->out) {
        fprintf(stderr, "aetherc: --cc, --target, --march, --static, --emit-c, --weights, --backend, --dump-spirv and "
                        "-g describe the program: they need -o OUT\n");
        return 2;
    }
    if (a->build.cpu_only && a->build.dump_spirv_dir) {
        fprintf(stderr, "aetherc: --dump-spirv writes the Vulkan kernels, which --backend cpu leaves out\n");
        return 2;
    }
    /* A static program cannot load the Vulkan loader (glibc's dlopen needs a dynamic program): CPU only. */
    if (a->build.static_link && backend_all) {
        fprintf(stderr, "aetherc: --static makes a CPU-only program (it cannot load the Vulkan loader); "
                        "--backend all needs a dynamic one\n");
        return 2;
    }
    if (a->build.static_link)
        a->build.cpu_only = true;
    if (a->build.use_tcc && (a->build.march || a->build.static_link)) {
        fprintf(stderr, "aetherc: --march and --static are gcc options; libtcc has no target choice\n");
        return 2;
    }
    const struct cc_target *host = cc_target_host(), *target = a->build.target ? a->build.target : host;
    if (a->build.use_tcc && target != host) {
        fprintf(stderr, "aetherc: --cc tcc builds for this machine (%s) only: libtcc cannot build for %s; use --cc gcc\n",
                host ? host->triple : "unknown", target->triple);
        return 2;
    }
    if (a->build.march && target && !cc_target_takes_march(target, a->build.march)) {
        char list[256];
        cc_target_march_list(target, list, sizeof list);
        fprintf(stderr, "aetherc: --march takes %s, not '%s' (target %s)\n", list, a->build.march, target->triple);
        return 2;
    }
    if (a->build.march && !strcmp(a->build.march, "native") && target != host) {
        fprintf(stderr, "aetherc: --march native means this machine's CPU (%s), not a %s one; name the level of "
                        "the machine the program is for\n", host ? host->triple : "unknown", target->triple);
        return 2;
    }
    if (a->dump_dir && !a->dump_mask) {
        fprintf(stderr, "aetherc: --dump-dir needs --dump-ir=after-all or --dump-ir=after=PASS\n");
        return 2;
    }
    return 0;
}

/* "1.50 MiB" style, into buf. */
static const char *human_bytes(uint64_t b, char *buf, size_t size)
{
    if (b >= (1u << 30))
        snprintf(buf, size, "%.2f GiB", (double)b / (double)(1u << 30));
    else if (b >= (1u << 20))
        snprintf(buf, size, "%.2f MiB", (double)b / (double)(1u << 20));
    else if (b >= (1u << 10))
        snprintf(buf, size, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, size, "%" PRIu64 " bytes", b);
    return buf;
}

static void print_summary(const struct compile_args *a, const struct import_hparams *hp, const struct pass_ctx *c)
{
    const struct pass_stats *s = &c->stats;
    char b1[32], b2[32], b3[32];
    const char *base = strrchr(a->model, '/');
    base = base ? base + 1 : a->model;
    printf("%s (%s, %" PRIu32 " layers): %" PRIu32 " nodes imported, %" PRIu32 " after the passes.", base, hp->arch,
           hp->n_layer, s->nodes_in, s->nodes_out);
    if (a->o0) {
        printf(" At -O0 only memplan ran.");
    } else {
        printf(" simplify made %" PRIu32 " rewrites, cse merged %" PRIu32 " nodes, dce removed %" PRIu32
               ", fold made %" PRIu32 " constants (%s); layout placed %" PRIu32 " weights, %" PRIu32
               " groups of them merged into one matrix each;",
               s->simplified, s->cse_merged, s->dce_removed, s->folded, human_bytes(s->folded_bytes, b1, sizeof b1),
               s->layout_weights, s->layout_merges);
        uint32_t total = 0;
        for (int k = 0; k < FUSE_KIND_COUNT; k++)
            total += s->fused[k];
        printf(" fuse formed %" PRIu32 " groups (", total);
        bool first = true;
        for (int k = 0; k < FUSE_KIND_COUNT; k++)
            if (s->fused[k]) {
                printf("%s%" PRIu32 " %s%s", first ? "" : ", ", s->fused[k], fuse_kind_name((enum fuse_kind)k),
                       k == FUSE_ATTENTION ? " (one op from the importer)" : "");
                first = false;
            }
        printf("%s), saving %s of intermediate reads and writes in a step of %" PRId64 " tokens.",
               first ? "none" : "", human_bytes(s->fuse_saved_bytes, b1, sizeof b1), c->opt.t_max);
    }
    const struct pass_plan *p = &c->plan;
    printf(" Activation memory for steps of up to %" PRId64 " tokens (contexts up to %" PRId64 "): %s planned peak against "
           "%s for all %" PRIu32 " intermediates without reuse (%.1fx less); no plan can go below %s.\n",
           p->t_max, p->n_ctx, human_bytes(p->peak, b1, sizeof b1), human_bytes(p->naive, b2, sizeof b2), p->n,
           p->peak ? (double)p->naive / (double)p->peak : 0.0, human_bytes(p->max_live, b3, sizeof b3));
}

static void print_plan(const struct ir_graph *g, const struct pass_ctx *c)
{
    const struct pass_plan *p = &c->plan;
    char b1[32], b2[32], b3[32];
    printf("%6s  %6s  %-13s %-28s %12s %12s %6s %6s\n", "buffer", "node", "op", "name", "size", "offset", "first",
           "last");
    for (uint32_t i = 0; i < p->n; i++) {
        const struct ir_node *n = g->nodes[p->node[i]];
        const struct plan_buffer *b = &p->buf[i];
        char id[16];
        snprintf(id, sizeof id, "%%%" PRIu32, n->id);
        printf("%6" PRIu32 "  %6s  %-13s %-28s %12" PRIu64 " %12" PRIu64 " %6" PRIu32 " %6" PRIu32 "\n", i, id,
               ir_op_name(n->op), n->name ? n->name : "-", b->size, b->offset, b->first, b->last);
    }
    printf("\npeak %" PRIu64 " bytes (%s) for steps of up to %" PRId64 " tokens, contexts up to %" PRId64
           "; naive sum of all %" PRIu32 " intermediates %" PRIu64 " bytes (%s), %.1fx more; largest live set %"
           PRIu64 " bytes (%s). Offsets are multiples of %" PRIu64 " bytes; weights and the KV cache are not in "
           "this arena.\n",
           p->peak, human_bytes(p->peak, b1, sizeof b1), p->t_max, p->n_ctx, p->n, p->naive,
           human_bytes(p->naive, b2, sizeof b2), p->peak ? (double)p->naive / (double)p->peak : 0.0, p->max_live,
           human_bytes(p->max_live, b3, sizeof b3), c->opt.alignment);
    /* The layout pass's choice per weight: the format the weights pack stores it in (docs/kernels.md), and
     * the merged matrix it is a part of. */
    printf("\n%-40s %-12s %s\n", "weight", "layout", "merged");
    for (uint32_t i = 0; i < c->n_layouts; i++) {
        const struct pass_layout *l = &c->layouts[i];
        if (l->merge < 0) {
            printf("%-40s %s\n", l->weight, l->format);
            continue;
        }
        const struct pass_merge *m = &c->merges[l->merge];
        printf("%-40s %-12s %s#%d rows %" PRId64 "..%" PRId64 " of %" PRId64 "\n", l->weight, l->format, m->kind,
               l->merge, l->row_begin, l->row_end, m->rows);
    }
}

/* The pass options the flags ask for (frontend_compile's configure step). */
static void configure(struct pass_ctx *c, void *arg)
{
    const struct compile_args *a = arg;
    c->opt.t_max = a->t_max;
    c->opt.disabled = a->o0 ? ((1u << PASS_COUNT) - 1) & ~(1u << PASS_MEMPLAN) : a->disabled;
    if (a->verify_each)
        c->opt.verify_each = true;
    if (a->no_merge)
        c->opt.merge = false;
    c->dump_mask = a->dump_mask;
    c->dump_dir = a->dump_dir;
    c->dump_format = a->dump_format;
}

/* Every file the flags will write, checked before any work. */
static int check_outputs(const struct compile_args *a, ae_error *err)
{
    if (a->dump_dir && output_check_dir("--dump-dir", a->dump_dir, err) < 0)
        return -1;
    if (!a->out)
        return 0;
    if (output_check("-o", a->out, OUTPUT_PROGRAM, a->model, err) < 0)
        return -1;
    char path[PATH_MAX + 16];
    if (a->build.weights_external) {
        snprintf(path, sizeof path, "%s.weights", a->out);
        if (output_check("--weights=external", path, OUTPUT_WEIGHTS, a->model, err) < 0)
            return -1;
    }
    if (a->build.emit_c_dir) {
        const char *base = strrchr(a->out, '/');
        snprintf(path, sizeof path, "%s/%s.c", a->build.emit_c_dir, base ? base + 1 : a->out);
        struct stat st;
        if (output_check_dir("--emit-c", a->build.emit_c_dir, err) < 0 ||
            (stat(a->build.emit_c_dir, &st) == 0 && output_check("--emit-c", path, OUTPUT_ANY, a->model, err) < 0))
            return -1;
    }
    return 0;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "aetherc: wrote stories (413.2 KiB) with 1.12 MiB of weights appended, BLAKE2b-256 3f2a...9c01, in 0.84 s" */
static void print_written(const struct compile_args *a, const struct build_result *r, double t0)
{
    char b1[32], b2[32], hex[2 * AE_HASH_BYTES + 1], where[PATH_MAX + 32];
    ae_hash_hex(r->weights_hash, hex);
    if (a->build.weights_external)
        snprintf(where, sizeof where, "in %s.weights", a->out);
    else
        snprintf(where, sizeof where, "appended");
    printf("aetherc: wrote %s (%s) with %s of weights %s, BLAKE2b-256 %.8s...%s, in %.2f s\n", a->out,
           human_bytes(r->program_bytes, b1, sizeof b1), human_bytes(r->weights_bytes, b2, sizeof b2), where, hex,
           hex + 2 * AE_HASH_BYTES - 8, seconds() - t0);
}

int cmd_compile(int argc, char **argv)
{
    double t0 = seconds();
    struct compile_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : 2;
    ae_error err = {{0}};
    if (check_outputs(&a, &err) < 0) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        return 1;
    }
    if (a.dump_dir && mkdir(a.dump_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "aetherc: --dump-dir %s: cannot create: %s\n", a.dump_dir, strerror(errno));
        return 1;
    }

    struct import_options io;
    import_options_init(&io);
    io.kv_type = a.kv_type;
    io.n_ctx = a.n_ctx;
    struct frontend fe;
    if (frontend_compile(&fe, a.model, &io, configure, &a, &err)) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        return 1;
    }
    rc = 0;
    if (a.print_plan)
        print_plan(fe.g, &fe.c);
    else if (!a.out)
        print_summary(&a, &fe.hp, &fe.c);
    if (a.out) {
        struct build_model m = {fe.path, fe.f, fe.g, &fe.c, &fe.hp};
        struct build_result r;
        a.build.output = a.out;
        if (build_program(&m, &a.build, &r, &err)) {
            fprintf(stderr, "aetherc: %s\n", err.msg);
            rc = 1;
        } else {
            print_written(&a, &r, t0);
        }
    }
    frontend_free(&fe);
    return rc;
}
