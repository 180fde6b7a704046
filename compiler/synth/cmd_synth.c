/* aetherc synth: writes a random-weight GGUF model of any shape and weight type.
 *
 * The file looks like one llama.cpp writes: the same metadata keys, tensor names and shapes, and a real
 * tokenizer whose tokenizer.* keys are copied from another GGUF file. Weights come from synth_gen.c:
 * valid blocks of the chosen type, generated tensor by tensor while the writer streams the file, so a
 * model larger than memory never sits in memory whole. Their spread follows a trained model's, so
 * activations stay O(1) and logits O(1-10):
 *   projections N(0, 1/sqrt(fan_in)), attn_output and ffn_down further times 1/sqrt(2 * layers);
 *   token_embd N(0, 1) untied, N(0, 0.02) tied; output N(0, 4/sqrt(dim));
 *   norms 1 + N(0, 0.1), output_norm m (1 + N(0, 0.1)) with m = 8 sqrt(256/dim) when tied, else 1.
 * The bytes depend only on the flags: each tensor is seeded from (--seed, tensor name).
 *
 * Besides llama: mixtral (a llama file with experts), qwen2moe (experts plus a gated shared expert, q/k/v
 * biases) and deepseek2 (MLA attention, leading dense layers, routed and shared experts), in the layouts
 * llama.cpp loads. Expert tensors are 3-D [cols, rows, experts] and drawn like 2-D projections; routers
 * (ffn_gate_inp) stay f32 as llama-quantize leaves them; biases are N(0, 0.1).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ae_gguf.h"
#include "gguf_write.h"
#include "commands.h"
#include "output_check.h"
#include "synth.h"

#define MAX_DIM (1u << 20)     /* --dim, --ffn, --head-dim */
#define MAX_HEADS (1u << 12)
#define MAX_LAYERS 4096
#define MAX_CTX (1u << 30)
#define MAX_THREADS 64
#define MAX_EXPERTS 256
#define DEFAULT_SEED 1234
#define DEFAULT_CTX 2048

enum flag_kind { FLAG_STR, FLAG_UINT, FLAG_U64, FLAG_FLOAT, FLAG_BOOL };

enum flag_id {
    F_ARCH, F_DIM, F_LAYERS, F_HEADS, F_KV_HEADS, F_FFN, F_TYPE, F_VOCAB, F_OUT,
    F_CTX, F_TIED, F_SEED, F_HEAD_DIM, F_ROPE_BASE, F_EPS, F_NAME, F_THREADS,
    F_EXPERTS, F_EXPERTS_USED, F_EXPERT_FFN, F_SHARED_FFN, F_SHARED_EXPERTS, F_DENSE_LAYERS, F_KV_LORA, F_Q_LORA,
    F_ROPE_DIM, F_V_HEAD_DIM, F_COUNT
};

struct flag {
    const char *name;
    const char *metavar;
    enum flag_kind kind;
    bool required;
    uint64_t max; /* FLAG_UINT: accepted range 1..max */
    const char *help;
};

static const struct flag flags[F_COUNT] = {
    [F_ARCH] = {"--arch", "NAME", FLAG_STR, true, 0, "architecture: llama, mixtral, qwen2moe, deepseek2"},
    [F_DIM] = {"--dim", "N", FLAG_UINT, true, MAX_DIM, "embedding length (llama.embedding_length)"},
    [F_LAYERS] = {"--layers", "N", FLAG_UINT, true, MAX_LAYERS, "transformer blocks (llama.block_count)"},
    [F_HEADS] = {"--heads", "N", FLAG_UINT, true, MAX_HEADS, "attention heads"},
    [F_KV_HEADS] = {"--kv-heads", "N", FLAG_UINT, false, MAX_HEADS, "key/value heads, dividing --heads (default: --heads)"},
    [F_FFN] = {"--ffn", "N", FLAG_UINT, true, MAX_DIM, "feed-forward length (llama.feed_forward_length)"},
    [F_TYPE] = {"--type", "TYPE", FLAG_STR, true, 0, "type of every 2-D weight (1-D tensors are f32), see below"},
    [F_VOCAB] = {"--vocab-from", "FILE", FLAG_STR, true, 0,
                 "GGUF file whose tokenizer.* keys are copied; its token list sets the vocab size"},
    [F_OUT] = {"-o", "FILE", FLAG_STR, true, 0, "output GGUF file"},
    [F_CTX] = {"--ctx", "N", FLAG_UINT, false, MAX_CTX, "llama.context_length (default 2048)"},
    [F_TIED] = {"--tied", NULL, FLAG_BOOL, false, 0, "no output.weight: the lm head is token_embd.weight"},
    [F_SEED] = {"--seed", "S", FLAG_U64, false, 0, "64-bit seed (default 1234)"},
    [F_HEAD_DIM] = {"--head-dim", "N", FLAG_UINT, false, MAX_DIM,
                    "per-head dimension, even (default --dim / --heads); also rope.dimension_count"},
    [F_ROPE_BASE] = {"--rope-base", "F", FLAG_FLOAT, false, 0, "llama.rope.freq_base (default 10000)"},
    [F_EPS] = {"--eps", "F", FLAG_FLOAT, false, 0, "llama.attention.layer_norm_rms_epsilon (default 1e-5)"},
    [F_NAME] = {"--name", "S", FLAG_STR, false, 0, "general.name (default synth-<arch>-<type>)"},
    [F_THREADS] = {"--threads", "N", FLAG_UINT, false, MAX_THREADS,
                   "threads generating weights (default: all cores); the bytes do not depend on it"},
    [F_EXPERTS] = {"--experts", "N", FLAG_UINT, false, MAX_EXPERTS, "routed experts per layer (mixtral, qwen2moe, deepseek2)"},
    [F_EXPERTS_USED] = {"--experts-used", "K", FLAG_UINT, false, MAX_EXPERTS, "experts each token runs (default 2)"},
    [F_EXPERT_FFN] = {"--expert-ffn", "N", FLAG_UINT, false, MAX_DIM,
                      "width of each expert (qwen2moe, deepseek2; default --ffn; mixtral's is --ffn)"},
    [F_SHARED_FFN] = {"--shared-ffn", "N", FLAG_UINT, false, MAX_DIM, "qwen2moe's shared expert width (default --ffn)"},
    [F_SHARED_EXPERTS] = {"--shared-experts", "N", FLAG_UINT, false, 64, "deepseek2's shared experts (default 1)"},
    [F_DENSE_LAYERS] = {"--dense-layers", "N", FLAG_UINT, false, MAX_LAYERS,
                        "deepseek2's leading dense layers, of width --ffn (default 1)"},
    [F_KV_LORA] = {"--kv-lora", "N", FLAG_UINT, false, MAX_DIM, "deepseek2's compressed KV width (default --dim / 4)"},
    [F_Q_LORA] = {"--q-lora", "N", FLAG_UINT, false, MAX_DIM,
                  "deepseek2's compressed Q width (default none: a plain attn_q, which llama.cpp reads only with "
                  "27 layers)"},
    [F_ROPE_DIM] = {"--rope-dim", "N", FLAG_UINT, false, MAX_DIM,
                    "deepseek2's rope dims of each head's key, even (default head dim / 3, rounded down to even)"},
    [F_V_HEAD_DIM] = {"--v-head-dim", "N", FLAG_UINT, false, MAX_DIM,
                      "deepseek2's value dims per head (default head dim - rope dims)"},
};

struct flag_value {
    bool set;
    const char *s;
    uint64_t u;
    double f;
};

/* One tensor of the model, generated when the writer asks for its bytes. */
struct synth_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[3];
    uint32_t type;
    struct synth_dist dist;
    uint64_t n_bytes;
};

/* The fill callback's context. */
struct synth_fill {
    const struct synth_tensor *tensors;
    uint64_t n_tensors;
    const struct synth_tables *tables;
    uint64_t seed;
    int threads;
};

/* llama_ftype of a file whose weights are all of one type (K-quants get llama.cpp's _M labels, as
 * llama-quantize --pure writes them). */
static uint32_t synth_file_type(uint32_t type)
{
    switch (type) {
    case AE_TYPE_F32: return 0;
    case AE_TYPE_F16: return 1;
    case AE_TYPE_Q4_0: return 2;
    case AE_TYPE_Q4_1: return 3;
    case AE_TYPE_Q8_0: return 7;
    case AE_TYPE_Q5_0: return 8;
    case AE_TYPE_Q5_1: return 9;
    case AE_TYPE_Q2_K: return 10;
    case AE_TYPE_Q3_K: return 12;
    case AE_TYPE_Q4_K: return 15;
    case AE_TYPE_Q5_K: return 17;
    case AE_TYPE_Q6_K: return 18;
    case AE_TYPE_IQ4_NL: return 25;
    case AE_TYPE_IQ4_XS: return 30;
    case AE_TYPE_BF16: return 32;
    case AE_TYPE_TQ1_0: return 36;
    case AE_TYPE_TQ2_0: return 37;
    default: return 0;
    }
}

static void synth_usage(FILE *f)
{
    fprintf(f, "usage: aetherc synth --arch ARCH --dim N --layers N --heads N [--kv-heads N] --ffn N --type TYPE\n"
               "                     --vocab-from FILE -o OUT.gguf [--experts N --experts-used K ...] [options]\n\n"
               "Writes a GGUF v3 model with random weights in llama.cpp's layout and a real tokenizer.\n\n");
    for (int i = 0; i < F_COUNT; i++) {
        char left[40];
        snprintf(left, sizeof left, "%s%s%s", flags[i].name, flags[i].metavar ? " " : "",
                 flags[i].metavar ? flags[i].metavar : "");
        fprintf(f, "  %-18s %s%s\n", left, flags[i].help, flags[i].required ? " (required)" : "");
    }
    fprintf(f, "  %-18s %s\n", "-h, --help", "this text");
    fprintf(f, "\nTypes: %s, and q4_k_m: llama-quantize's Q4_K_M mix (Q4_K, with Q6_K for the lm head\n"
               "and for attn_v and ffn_down in the layers where llama.cpp gives them more bits).\n"
               "Every row length (--dim, --heads x head dim, --ffn) must be a multiple of the type's block size:\n"
               "32 for q4_0 q4_1 q5_0 q5_1 q8_0 iq4_nl, 256 for q2_k q3_k q4_k q5_k q6_k iq4_xs tq1_0 tq2_0. Other\n"
               "lengths are an error naming\n"
               "the tensor; there is no fallback to another type.\n\n"
               "Weights: quant bits and block scales are drawn directly (no quantizer), so that the dequantized\n"
               "values have the spread of a trained model's: projections N(0, 1/sqrt(fan_in)), attn_output and\n"
               "ffn_down further times 1/sqrt(2 x layers); token_embd N(0, 1), or N(0, 0.02) with --tied;\n"
               "output N(0, 4/sqrt(dim)); norms 1 + N(0, 0.1), output_norm times 8 sqrt(256/dim) with --tied.\n"
               "Each tensor is seeded from (--seed, its name): the same flags give the same bytes.\n",
            synth_type_list());
}

/* Prints "aetherc: <msg>" and the pointer to --help; returns the usage status 2. */
static int synth_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int synth_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aetherc: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" ('aetherc synth --help' lists the flags)\n", stderr);
    return 2;
}

/* Parses one flag's value; returns 0, or 2 after printing what is wrong. */
static int synth_parse_value(const struct flag *fl, const char *arg, struct flag_value *v)
{
    char *end;
    switch (fl->kind) {
    case FLAG_STR:
        if (!*arg)
            return synth_usage_error("%s: expected a value, got an empty string", fl->name);
        v->s = arg;
        break;
    case FLAG_UINT:
    case FLAG_U64: {
        errno = 0;
        unsigned long long x = strtoull(arg, &end, 10);
        bool ok = *arg >= '0' && *arg <= '9' && !*end && errno == 0;
        if (fl->kind == FLAG_UINT && (!ok || x < 1 || x > fl->max))
            return synth_usage_error("%s: expected an integer in 1..%" PRIu64 ", got '%s'", fl->name, fl->max, arg);
        if (!ok)
            return synth_usage_error("%s: expected an unsigned 64-bit integer, got '%s'", fl->name, arg);
        v->u = x;
        break;
    }
    case FLAG_FLOAT: {
        errno = 0;
        double x = strtod(arg, &end);
        if (end == arg || *end || errno != 0 || !isfinite(x) || x <= 0 || x > 3.4e38)
            return synth_usage_error("%s: expected a positive number, got '%s'", fl->name, arg);
        v->f = x;
        break;
    }
    case FLAG_BOOL:
        return synth_usage_error("%s takes no value, got '%s'", fl->name, arg);
    }
    v->set = true;
    return 0;
}

/* Fills vals from argv; returns -1 for --help (usage printed), 0, or 2 for a usage error. */
static int synth_parse_flags(int argc, char **argv, struct flag_value *vals)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            synth_usage(stdout);
            return -1;
        }
        int id = -1;
        const char *inline_val = NULL;
        for (int k = 0; k < F_COUNT && id < 0; k++) {
            size_t n = strlen(flags[k].name);
            if (!strncmp(arg, flags[k].name, n) && (arg[n] == 0 || (arg[n] == '=' && n > 2))) {
                id = k;
                inline_val = arg[n] ? arg + n + 1 : NULL;
            }
        }
        if (id < 0)
            return synth_usage_error(arg[0] == '-' ? "unknown flag '%s'" : "unexpected argument '%s'", arg);
        const struct flag *fl = &flags[id];
        if (fl->kind == FLAG_BOOL) {
            if (inline_val)
                return synth_parse_value(fl, inline_val, &vals[id]);
            vals[id].set = true;
            continue;
        }
        if (!inline_val) {
            if (i + 1 >= argc)
                return synth_usage_error("%s needs a value (%s)", fl->name, fl->metavar);
            inline_val = argv[++i];
        }
        int rc = synth_parse_value(fl, inline_val, &vals[id]);
        if (rc)
            return rc;
    }
    for (int k = 0; k < F_COUNT; k++)
        if (flags[k].required && !vals[k].set)
            return synth_usage_error("missing %s %s", flags[k].name, flags[k].metavar);
    return 0;
}

/* The architectures synth writes. mixtral is a llama file with experts. */
enum synth_arch { ARCH_LLAMA, ARCH_MIXTRAL, ARCH_QWEN2MOE, ARCH_DEEPSEEK2 };

static const char *const arch_names[] = {"llama", "mixtral", "qwen2moe", "deepseek2"};

/* The model's shape after defaults and checks. */
struct synth_shape {
    enum synth_arch arch;
    const char *gguf_arch;      /* general.architecture: "llama" for mixtral */
    uint32_t dim, layers, heads, kv_heads, ffn, head_dim, ctx, vocab;
    uint32_t type;
    bool q4_k_m;                /* --type q4_k_m: llama-quantize's Q4_K_M mix, with type Q4_K */
    bool tied;
    uint32_t experts, experts_used, expert_ffn, shared_ffn, shared_experts, dense_layers;
    uint32_t kv_lora, q_lora, rope_dim, v_head_dim; /* deepseek2 */
};

/* Applies defaults and checks the flags against each other; 0 or 2. */
static int synth_check_shape(const struct flag_value *v, struct synth_shape *sh)
{
    int arch = -1;
    for (int i = 0; i < (int)(sizeof arch_names / sizeof arch_names[0]); i++)
        if (!strcmp(v[F_ARCH].s, arch_names[i]))
            arch = i;
    if (arch < 0)
        return synth_usage_error("--arch: '%s' is not supported (supported: llama, mixtral, qwen2moe, deepseek2)",
                                 v[F_ARCH].s);
    sh->arch = (enum synth_arch)arch;
    sh->gguf_arch = sh->arch == ARCH_MIXTRAL ? "llama" : arch_names[arch];
    sh->q4_k_m = !strcmp(v[F_TYPE].s, "q4_k_m");
    int type = sh->q4_k_m ? AE_TYPE_Q4_K : ae_type_from_name(v[F_TYPE].s);
    if (type < 0 || !synth_type_supported((uint32_t)type))
        return synth_usage_error("--type: '%s' is not supported; valid types: %s", v[F_TYPE].s, synth_type_list());
    sh->type = (uint32_t)type;
    sh->dim = (uint32_t)v[F_DIM].u;
    sh->layers = (uint32_t)v[F_LAYERS].u;
    sh->heads = (uint32_t)v[F_HEADS].u;
    sh->kv_heads = v[F_KV_HEADS].set ? (uint32_t)v[F_KV_HEADS].u : sh->heads;
    sh->ffn = (uint32_t)v[F_FFN].u;
    sh->ctx = v[F_CTX].set ? (uint32_t)v[F_CTX].u : DEFAULT_CTX;
    sh->tied = v[F_TIED].set;
    if (sh->heads % sh->kv_heads)
        return synth_usage_error("--kv-heads %" PRIu32 " does not divide --heads %" PRIu32, sh->kv_heads, sh->heads);
    if (v[F_HEAD_DIM].set) {
        sh->head_dim = (uint32_t)v[F_HEAD_DIM].u;
        if (sh->head_dim % 2)
            return synth_usage_error("--head-dim %" PRIu32 " is odd; rope rotates pairs, so it must be even",
                                     sh->head_dim);
    } else {
        if (sh->dim % sh->heads)
            return synth_usage_error("--dim %" PRIu32 " is not a multiple of --heads %" PRIu32 "; give --head-dim",
                                     sh->dim, sh->heads);
        sh->head_dim = sh->dim / sh->heads;
        if (sh->head_dim % 2)
            return synth_usage_error("--dim / --heads gives head dim %" PRIu32 ", which is odd; rope rotates pairs, "
                                     "so give an even --head-dim", sh->head_dim);
    }
    if ((uint64_t)sh->heads * sh->head_dim > MAX_DIM)
        return synth_usage_error("--heads x head dim = %" PRIu64 " is larger than %u",
                                 (uint64_t)sh->heads * sh->head_dim, MAX_DIM);

    /* Experts: required by the MoE families, refused by llama. */
    static const enum flag_id moe_flags[] = {F_EXPERTS, F_EXPERTS_USED, F_EXPERT_FFN, F_SHARED_FFN, F_SHARED_EXPERTS,
                                             F_DENSE_LAYERS, F_KV_LORA, F_Q_LORA, F_ROPE_DIM, F_V_HEAD_DIM};
    static const uint32_t allowed[] = {
        [ARCH_LLAMA] = 0,
        [ARCH_MIXTRAL] = 1u << F_EXPERTS | 1u << F_EXPERTS_USED,
        [ARCH_QWEN2MOE] = 1u << F_EXPERTS | 1u << F_EXPERTS_USED | 1u << F_EXPERT_FFN | 1u << F_SHARED_FFN,
        [ARCH_DEEPSEEK2] = 1u << F_EXPERTS | 1u << F_EXPERTS_USED | 1u << F_EXPERT_FFN | 1u << F_SHARED_EXPERTS |
                           1u << F_DENSE_LAYERS | 1u << F_KV_LORA | 1u << F_Q_LORA | 1u << F_ROPE_DIM |
                           1u << F_V_HEAD_DIM,
    };
    for (size_t i = 0; i < sizeof moe_flags / sizeof moe_flags[0]; i++)
        if (v[moe_flags[i]].set && !(allowed[sh->arch] & 1u << moe_flags[i]))
            return synth_usage_error("%s does not apply to --arch %s", flags[moe_flags[i]].name, arch_names[arch]);
    if (sh->arch == ARCH_LLAMA)
        return 0;
    if (!v[F_EXPERTS].set)
        return synth_usage_error("--arch %s needs --experts", arch_names[arch]);
    if (sh->tied && sh->arch != ARCH_MIXTRAL)
        return synth_usage_error("--tied: llama.cpp's %s loader requires output.weight", arch_names[arch]);
    sh->experts = (uint32_t)v[F_EXPERTS].u;
    sh->experts_used = v[F_EXPERTS_USED].set ? (uint32_t)v[F_EXPERTS_USED].u : 2;
    if (sh->experts_used > sh->experts)
        return synth_usage_error("--experts-used %" PRIu32 " is more than --experts %" PRIu32, sh->experts_used,
                                 sh->experts);
    sh->expert_ffn = v[F_EXPERT_FFN].set ? (uint32_t)v[F_EXPERT_FFN].u : sh->ffn;
    sh->shared_ffn = v[F_SHARED_FFN].set ? (uint32_t)v[F_SHARED_FFN].u : sh->ffn;
    sh->shared_experts = v[F_SHARED_EXPERTS].set ? (uint32_t)v[F_SHARED_EXPERTS].u : 1;
    if (sh->arch != ARCH_DEEPSEEK2)
        return 0;
    sh->dense_layers = v[F_DENSE_LAYERS].set ? (uint32_t)v[F_DENSE_LAYERS].u : 1;
    if (sh->dense_layers > sh->layers)
        return synth_usage_error("--dense-layers %" PRIu32 " is more than --layers %" PRIu32, sh->dense_layers,
                                 sh->layers);
    sh->kv_lora = v[F_KV_LORA].set ? (uint32_t)v[F_KV_LORA].u : sh->dim / 4;
    sh->q_lora = v[F_Q_LORA].set ? (uint32_t)v[F_Q_LORA].u : 0;
    sh->rope_dim = v[F_ROPE_DIM].set ? (uint32_t)v[F_ROPE_DIM].u : sh->head_dim / 3 / 2 * 2;
    if (sh->kv_lora == 0)
        return synth_usage_error("--dim %" PRIu32 " / 4 gives no compressed KV; give --kv-lora", sh->dim);
    if (sh->rope_dim % 2 || sh->rope_dim == 0 || sh->rope_dim >= sh->head_dim)
        return synth_usage_error("--rope-dim %" PRIu32 " must be even, at least 2 and less than the head dim %" PRIu32,
                                 sh->rope_dim, sh->head_dim);
    sh->v_head_dim = v[F_V_HEAD_DIM].set ? (uint32_t)v[F_V_HEAD_DIM].u : sh->head_dim - sh->rope_dim;
    if (sh->kv_heads != sh->heads)
        return synth_usage_error("--arch deepseek2 has as many kv heads as heads (--kv-heads %" PRIu32 ")", sh->kv_heads);
    return 0;
}

static void synth_add_tensor(struct synth_tensor *t, uint64_t *n, const char *name, uint32_t type, int64_t ne0,
                             int64_t ne1, int64_t ne2, float mean, float std)
{
    struct synth_tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->n_dims = ne2 ? 3 : ne1 ? 2 : 1;
    x->ne[0] = ne0;
    x->ne[1] = ne1 ? ne1 : 1;
    x->ne[2] = ne2 ? ne2 : 1;
    x->type = type;
    x->dist.mean = mean;
    x->dist.std = std;
}

/* The most tensors one layer has (deepseek2 with q_lora and experts). */
#define MAX_LAYER_TENSORS 20

/* The tensor list of every architecture, in the order convert_hf_to_gguf writes it. t holds
 * 3 + MAX_LAYER_TENSORS * layers entries. */
static uint64_t synth_tensors(const struct synth_shape *sh, struct synth_tensor *t)
{
    uint64_t n = 0;
    const int64_t dim = sh->dim;
    const bool mla = sh->arch == ARCH_DEEPSEEK2;
    const int64_t q = (int64_t)sh->heads * sh->head_dim, kv = (int64_t)sh->kv_heads * sh->head_dim;
    const int64_t o = mla ? (int64_t)sh->heads * sh->v_head_dim : q; /* attn_output's input */
    const float deep = 1.0f / sqrtf(2.0f * (float)sh->layers);
    const float in_dim = 1 / sqrtf((float)dim);
    /* Q4_K_M: the lm head (a tied token_embd) is Q6_K, and so are attn_v and ffn_down in llama.cpp's
     * use_more_bits layers (the first and last eighth, and every third between) */
    const uint32_t head_type = sh->q4_k_m ? AE_TYPE_Q6_K : sh->type;
    synth_add_tensor(t, &n, "token_embd.weight", sh->tied ? head_type : sh->type, dim, sh->vocab, 0, 0,
                     sh->tied ? 0.02f : 1.0f);
    for (uint32_t l = 0; l < sh->layers; l++) {
        char name[64];
        const int li = (int)l, nl = (int)sh->layers;
        const bool more_bits = li < nl / 8 || li >= 7 * nl / 8 || (li - nl / 8) % 3 == 2;
        const uint32_t more_type = sh->q4_k_m && more_bits ? AE_TYPE_Q6_K : sh->type;
#define TENSOR(SUFFIX, KIND, TYPE, NE0, NE1, NE2, MEAN, STD)                                                           \
    do {                                                                                                           \
        snprintf(name, sizeof name, "blk.%" PRIu32 ".%s.%s", l, SUFFIX, KIND);                                   \
        synth_add_tensor(t, &n, name, TYPE, NE0, NE1, NE2, MEAN, STD);                                             \
    } while (0)
#define WEIGHT(SUFFIX, TYPE, NE0, NE1, NE2, MEAN, STD) TENSOR(SUFFIX, "weight", TYPE, NE0, NE1, NE2, MEAN, STD)
#define NORM(SUFFIX, NE0) WEIGHT(SUFFIX, AE_TYPE_F32, NE0, 0, 0, 1.0f, 0.1f)
#define PROJ(SUFFIX, NE0, NE1, NE2, SCALE) WEIGHT(SUFFIX, sh->type, NE0, NE1, NE2, 0, (SCALE) / sqrtf((float)(NE0)))
        NORM("attn_norm", dim);
        if (!mla) {
            PROJ("attn_q", dim, q, 0, 1);
            PROJ("attn_k", dim, kv, 0, 1);
            WEIGHT("attn_v", more_type, dim, kv, 0, 0, 1 / sqrtf((float)dim));
            if (sh->arch == ARCH_QWEN2MOE) {
                TENSOR("attn_q", "bias", AE_TYPE_F32, q, 0, 0, 0, 0.1f);
                TENSOR("attn_k", "bias", AE_TYPE_F32, kv, 0, 0, 0, 0.1f);
                TENSOR("attn_v", "bias", AE_TYPE_F32, kv, 0, 0, 0, 0.1f);
            }
        } else {
            const int64_t nope = (int64_t)sh->head_dim - sh->rope_dim;
            if (sh->q_lora) {
                PROJ("attn_q_a", dim, sh->q_lora, 0, 1);
                NORM("attn_q_a_norm", sh->q_lora);
                PROJ("attn_q_b", sh->q_lora, q, 0, 1);
            } else {
                PROJ("attn_q", dim, q, 0, 1);
            }
            PROJ("attn_kv_a_mqa", dim, sh->kv_lora + sh->rope_dim, 0, 1);
            NORM("attn_kv_a_norm", sh->kv_lora);
            PROJ("attn_kv_b", sh->kv_lora, (int64_t)sh->heads * (nope + sh->v_head_dim), 0, 1);
        }
        PROJ("attn_output", o, dim, 0, deep);
        NORM("ffn_norm", dim);
        if (sh->arch == ARCH_LLAMA || (mla && l < sh->dense_layers)) {
            PROJ("ffn_gate", dim, sh->ffn, 0, 1);
            PROJ("ffn_up", dim, sh->ffn, 0, 1);
            WEIGHT("ffn_down", more_type, sh->ffn, dim, 0, 0, deep / sqrtf((float)sh->ffn));
            continue;
        }
        const int64_t E = sh->experts, ffe = sh->arch == ARCH_MIXTRAL ? sh->ffn : sh->expert_ffn;
        WEIGHT("ffn_gate_inp", AE_TYPE_F32, dim, E, 0, 0, in_dim);
        PROJ("ffn_gate_exps", dim, ffe, E, 1);
        PROJ("ffn_up_exps", dim, ffe, E, 1);
        PROJ("ffn_down_exps", ffe, dim, E, deep);
        if (sh->arch == ARCH_MIXTRAL)
            continue;
        const int64_t shf = sh->arch == ARCH_QWEN2MOE ? sh->shared_ffn : ffe * sh->shared_experts;
        if (sh->arch == ARCH_QWEN2MOE)
            WEIGHT("ffn_gate_inp_shexp", AE_TYPE_F32, dim, 0, 0, 0, in_dim);
        PROJ("ffn_gate_shexp", dim, shf, 0, 1);
        PROJ("ffn_up_shexp", dim, shf, 0, 1);
        PROJ("ffn_down_shexp", shf, dim, 0, deep);
#undef PROJ
#undef NORM
#undef WEIGHT
#undef TENSOR
    }
    const float m = sh->tied ? 8.0f * sqrtf(256.0f / (float)dim) : 1.0f;
    synth_add_tensor(t, &n, "output_norm.weight", AE_TYPE_F32, dim, 0, 0, m, 0.1f * m);
    if (!sh->tied)
        synth_add_tensor(t, &n, "output.weight", head_type, dim, sh->vocab, 0, 0, 4 / sqrtf((float)dim));
    return n;
}

static void synth_add_metadata(ae_gguf_writer *w, const struct synth_shape *sh, const struct flag_value *v)
{
    char key[96], name[96];
    const char *arch = sh->gguf_arch;
#define ARCH_KEY(SUFFIX) (snprintf(key, sizeof key, "%s.%s", arch, SUFFIX), key)
    ae_gguf_writer_add_str(w, "general.architecture", arch);
    if (v[F_NAME].set)
        snprintf(name, sizeof name, "%s", v[F_NAME].s);
    else
        snprintf(name, sizeof name, "synth-%s-%s", arch_names[sh->arch], ae_type_name(sh->type));
    ae_gguf_writer_add_str(w, "general.name", name);
    ae_gguf_writer_add_u32(w, ARCH_KEY("vocab_size"), sh->vocab);
    ae_gguf_writer_add_u32(w, ARCH_KEY("context_length"), sh->ctx);
    ae_gguf_writer_add_u32(w, ARCH_KEY("embedding_length"), sh->dim);
    ae_gguf_writer_add_u32(w, ARCH_KEY("block_count"), sh->layers);
    ae_gguf_writer_add_u32(w, ARCH_KEY("feed_forward_length"), sh->ffn);
    ae_gguf_writer_add_u32(w, ARCH_KEY("rope.dimension_count"),
                           sh->arch == ARCH_DEEPSEEK2 ? sh->rope_dim : sh->head_dim);
    ae_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count"), sh->heads);
    ae_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count_kv"), sh->kv_heads);
    if ((uint64_t)sh->head_dim * sh->heads != sh->dim || sh->arch == ARCH_DEEPSEEK2) {
        ae_gguf_writer_add_u32(w, ARCH_KEY("attention.key_length"), sh->head_dim);
        ae_gguf_writer_add_u32(w, ARCH_KEY("attention.value_length"),
                               sh->arch == ARCH_DEEPSEEK2 ? sh->v_head_dim : sh->head_dim);
    }
    ae_gguf_writer_add_f32(w, ARCH_KEY("rope.freq_base"), v[F_ROPE_BASE].set ? (float)v[F_ROPE_BASE].f : 10000.0f);
    ae_gguf_writer_add_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), v[F_EPS].set ? (float)v[F_EPS].f : 1e-5f);
    if (sh->arch != ARCH_LLAMA) {
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_count"), sh->experts);
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_used_count"), sh->experts_used);
    }
    if (sh->arch == ARCH_QWEN2MOE) {
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_feed_forward_length"), sh->expert_ffn);
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_shared_feed_forward_length"), sh->shared_ffn);
    }
    if (sh->arch == ARCH_DEEPSEEK2) {
        ae_gguf_writer_add_u32(w, ARCH_KEY("leading_dense_block_count"), sh->dense_layers);
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_feed_forward_length"), sh->expert_ffn);
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_shared_count"), sh->shared_experts);
        ae_gguf_writer_add_f32(w, ARCH_KEY("expert_weights_scale"), 1.0f);
        ae_gguf_writer_add_u32(w, ARCH_KEY("expert_gating_func"), 1);
        ae_gguf_writer_add_u32(w, ARCH_KEY("attention.kv_lora_rank"), sh->kv_lora);
        if (sh->q_lora)
            ae_gguf_writer_add_u32(w, ARCH_KEY("attention.q_lora_rank"), sh->q_lora);
        ae_gguf_writer_add_f32(w, ARCH_KEY("rope.scaling.yarn_log_multiplier"), 0.0707f);
    }
    ae_gguf_writer_add_u32(w, "general.file_type", synth_file_type(sh->type));
    ae_gguf_writer_add_u32(w, "general.quantization_version", 2);
#undef ARCH_KEY
}

/* Opens the vocab file and reads its vocabulary size from the token list; 0, or 1 after printing why. */
static int synth_open_vocab(const char *path, ae_gguf **out, uint32_t *vocab)
{
    ae_error err = {{0}};
    ae_gguf *g;
    if (ae_gguf_open(&g, path, &err) < 0) {
        fprintf(stderr, "aetherc: --vocab-from: %s\n", err.msg);
        return 1;
    }
    const struct ae_gguf_array *tokens;
    int found = ae_gguf_get_arr(g, "tokenizer.ggml.tokens", AE_GGUF_STRING, &tokens, &err);
    if (found < 0) {
        fprintf(stderr, "aetherc: --vocab-from: %s\n", err.msg);
        ae_gguf_close(g);
        return 1;
    }
    if (found == 0 || tokens->n == 0 || tokens->n > UINT32_MAX) {
        fprintf(stderr, "aetherc: --vocab-from: %s has no tokenizer.ggml.tokens array of 1..%" PRIu32
                        " strings, so it gives no vocabulary\n", path, UINT32_MAX);
        ae_gguf_close(g);
        return 1;
    }
    *vocab = (uint32_t)tokens->n;
    *out = g;
    return 0;
}

/* Copies every tokenizer.* key of the vocab file, in its order; 0 or 1. */
static int synth_copy_tokenizer(ae_gguf_writer *w, const ae_gguf *g)
{
    static const char prefix[] = "tokenizer.";
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct ae_gguf_kv *kv = &g->kv[i];
        if (kv->key.len < sizeof prefix - 1 || memcmp(kv->key.ptr, prefix, sizeof prefix - 1))
            continue;
        char *key = malloc(kv->key.len + 1);
        if (!key) {
            fprintf(stderr, "aetherc: out of memory\n");
            return 1;
        }
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        ae_gguf_writer_add_value(w, key, &kv->value);
        free(key);
    }
    return 0;
}

static int synth_fill_cb(void *ctx, uint64_t tensor_index, void *buf, uint64_t n_bytes, ae_error *err)
{
    const struct synth_fill *f = ctx;
    if (tensor_index >= f->n_tensors || f->tensors[tensor_index].n_bytes != n_bytes)
        return ae_fail(err, "synth: the writer asked for tensor %" PRIu64 " with %" PRIu64 " bytes, which does not "
                       "match the tensor list", tensor_index, n_bytes);
    const struct synth_tensor *t = &f->tensors[tensor_index];
    synth_fill_tensor(f->tables, t->type, t->dist, synth_tensor_seed(f->seed, t->name), t->ne[0], t->ne[1] * t->ne[2],
                      buf, f->threads);
    return 0;
}

static double synth_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_synth(int argc, char **argv)
{
    double t0 = synth_now();
    struct flag_value v[F_COUNT];
    memset(v, 0, sizeof v);
    int rc = synth_parse_flags(argc, argv, v);
    if (rc)
        return rc < 0 ? 0 : rc;
    struct synth_shape sh = {0};
    if ((rc = synth_check_shape(v, &sh)))
        return rc;
    ae_error out_err;
    if (output_check("-o", v[F_OUT].s, OUTPUT_ANY, v[F_VOCAB].s, &out_err) < 0) {
        fprintf(stderr, "aetherc: %s\n", out_err.msg);
        return 1;
    }

    ae_gguf *vocab;
    if (synth_open_vocab(v[F_VOCAB].s, &vocab, &sh.vocab))
        return 1;
    ae_gguf_writer *w = ae_gguf_writer_create();
    struct synth_tensor *tensors = calloc(3 + MAX_LAYER_TENSORS * (uint64_t)sh.layers, sizeof *tensors);
    struct synth_tables *tables = synth_tables_create();
    rc = 1;
    if (!w || !tensors || !tables) {
        fprintf(stderr, "aetherc: out of memory\n");
        goto free_all;
    }
    synth_add_metadata(w, &sh, v);
    if (synth_copy_tokenizer(w, vocab))
        goto free_all;

    uint64_t n_tensors = synth_tensors(&sh, tensors), params = 0;
    ae_error err = {{0}};
    for (uint64_t i = 0; i < n_tensors; i++) {
        struct synth_tensor *t = &tensors[i];
        uint32_t bs = ae_type_info(t->type)->block_size;
        if (t->ne[0] % bs) {
            rc = synth_usage_error("tensor %s has rows of %" PRId64 " values, not a multiple of %s's block size %"
                                   PRIu32 "; pick row lengths (--dim, --heads x head dim, --ffn) that are, or "
                                   "another --type", t->name, t->ne[0], ae_type_name(t->type), bs);
            goto free_all;
        }
        uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2];
        if (ae_type_row_bytes(t->type, n, &t->n_bytes, &err) < 0 ||
            ae_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, &err) < 0) {
            fprintf(stderr, "aetherc: %s\n", err.msg);
            goto free_all;
        }
        params += n;
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct synth_fill fill = {
        tensors, n_tensors, tables, v[F_SEED].set ? v[F_SEED].u : DEFAULT_SEED,
        v[F_THREADS].set ? (int)v[F_THREADS].u : cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores,
    };
    if (ae_gguf_writer_write_file(w, v[F_OUT].s, synth_fill_cb, &fill, &err) < 0) {
        fprintf(stderr, "aetherc: %s\n", err.msg);
        goto free_all;
    }
    struct stat st;
    uint64_t bytes = stat(v[F_OUT].s, &st) == 0 ? (uint64_t)st.st_size : 0;
    bool billions = params >= 1000000000u;
    fprintf(stderr, "aetherc: wrote %s: %s %s, %.2f%s params, %" PRIu64 " bytes, %.2f s\n", v[F_OUT].s, arch_names[sh.arch],
            ae_type_name(sh.type), (double)params / (billions ? 1e9 : 1e6), billions ? "B" : "M", bytes,
            synth_now() - t0);
    rc = 0;
free_all:
    synth_tables_destroy(tables);
    free(tensors);
    ae_gguf_writer_destroy(w);
    ae_gguf_close(vocab);
    return rc;
}
