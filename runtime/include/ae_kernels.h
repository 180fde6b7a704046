/* The CPU compute kernels that generated programs call: quantized matrix multiplication for every
 * supported weight type, the row-wise ops of a transformer, and attention over a KV cache.
 *
 * Matmul follows ggml's scheme so that results track llama.cpp: the f32 activations are first converted
 * to the weight type's "vec type" (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the
 * K-quants, IQ4_XS, TQ1_0 and TQ2_0, F16 for F16, BF16 for BF16; F32 stays F32), then each output is
 * a sum of exact integer dot products
 * per block, scaled by the blocks' scales. The weights come in a layout chosen at compile time (the GGUF
 * rows, or 16 rows interleaved for SIMD). Each type has a scalar reference and SIMD kernels per
 * instruction-set level, picked at run time from the CPU's features and an optional cap.
 *
 * Every output value is computed by one thread in one fixed order of float operations, the canonical
 * order of docs/kernels.md, which every kernel and layout follows. The same inputs therefore give the
 * same bytes for any thread count, layout and level.
 *
 * The ops follow ggml's CPU formulas (see each function). None of these functions allocates: scratch
 * memory comes from the caller, sized by the *_scratch_size functions.
 */
#ifndef AE_KERNELS_H
#define AE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae_error.h"
#include "ae_pool.h"
#include "ae_types.h"

/* ---- CPU features (cpu.c) ------------------------------------------------------------------------- */

/* Instruction-set levels of the kernels, ranked within one architecture, each level including the ones
 * below it; 0 is the scalar code on every machine.
 *   x86-64: AE_ISA_AVX2 means AVX2 + FMA + F16C; AE_ISA_AVX512 adds AVX-512 F, BW, VL and VNNI;
 *   AE_ISA_AMX adds AMX-TILE and AMX-INT8 (with the OS's permission to use them).
 *   aarch64: AE_ISA_NEON is Advanced SIMD (every ARMv8-A CPU); AE_ISA_DOTPROD adds SDOT (ARMv8.2-A
 *   dotprod, e.g. Cortex-A76, the Raspberry Pi 5's A76); AE_ISA_I8MM adds SMMLA (ARMv8.6-A i8mm).
 * The two architectures' levels share numbers; AE_ISA_COUNT counts the host's. */
enum ae_isa {
    AE_ISA_SCALAR = 0,
    AE_ISA_AVX2 = 1,
    AE_ISA_AVX512 = 2,
    AE_ISA_AMX = 3,
    AE_ISA_NEON = 1,
    AE_ISA_DOTPROD = 2,
    AE_ISA_I8MM = 3,
};
#define AE_ISA_COUNT 4

/* The best level this CPU supports (AE_ISA_SCALAR on hosts other than x86-64 and aarch64). */
enum ae_isa ae_cpu_host_isa(void);

/* Caps the level the kernels use (for tests, and for programs built for a lesser target). The default
 * cap is the highest level; a cap above what the host supports has no effect beyond it. */
void ae_cpu_set_max_isa(enum ae_isa isa);

/* The level the kernels use now: the lower of the host's level and the cap. */
enum ae_isa ae_cpu_isa(void);

/* The host's names of its levels: "scalar", "avx2", "avx512", "amx" (x86-64); "scalar", "neon",
 * "dotprod", "i8mm" (aarch64); "unknown" for other values. */
const char *ae_isa_name(enum ae_isa isa);

/* Looks one of the host's levels up by name (case-insensitive); returns -1 if there is none. */
int ae_isa_from_name(const char *name);

/* Caps the level as the environment variable AETHER_ISA (a level's name) asks, if it is set, so that tests
 * and benchmarks can run each path on one machine. Fails (-1, err set) for a name that is no level of
 * this host. */
int ae_cpu_cap_from_env(ae_error *err);

/* ---- Weight layouts (layout.c; docs/kernels.md) -------------------------------------------------- */

/* How a weight's bytes are arranged: AE_LAYOUT_ROWS, the GGUF rows as stored (every supported type);
 * AE_LAYOUT_X16, 16 rows interleaved into group blocks (struct ae_x16_<type>). */
enum ae_layout {
    AE_LAYOUT_ROWS = 0,
    AE_LAYOUT_X16 = 1,
};
#define AE_LAYOUT_COUNT 2

/* "rows", "x16"; "unknown" for other values. */
const char *ae_layout_name(enum ae_layout layout);

/* Looks a layout up by name; -1 if there is none. */
int ae_layout_from_name(const char *name);

/* Whether the matmul reads weights of this type in this layout. */
bool ae_layout_supports(uint32_t type, enum ae_layout layout);

/* Rows per group: 16 for x16, 1 for rows. */
int64_t ae_layout_rows_per_group(enum ae_layout layout);

/* Bytes of one group of rows (one row for AE_LAYOUT_ROWS) of K values; 0 when unsupported or K is not a
 * whole number of blocks. */
uint64_t ae_layout_group_bytes(uint32_t type, enum ae_layout layout, int64_t K);

/* Bytes of an N x K weight in the layout (x16 rounds N up to a whole group); 0 when unsupported. */
uint64_t ae_layout_bytes(uint32_t type, enum ae_layout layout, int64_t N, int64_t K);

/* Converts N GGUF rows of K values (rows) into the layout at dst (ae_layout_bytes bytes). The padding
 * rows of a last partial x16 group are zeros. Done at compile time; a program never repacks. */
int ae_layout_pack(uint32_t type, enum ae_layout layout, const void *rows, int64_t N, int64_t K, void *dst,
                   ae_error *err);

/* Row `row` of a weight stored in the layout, back as its GGUF row. */
int ae_layout_unpack_row(uint32_t type, enum ae_layout layout, const void *packed, int64_t K, int64_t row, void *dst,
                         ae_error *err);

/* Row `row` of a K-value weight stored in the layout, dequantized to K floats at out (an embedding
 * lookup; a weight that is also the lm head may be stored interleaved). */
int ae_layout_get_row(uint32_t type, enum ae_layout layout, const void *w, int64_t K, int64_t row, float *out,
                      ae_error *err);

/* The 16 GGUF blocks (row after row, each the type's block size) of one x16 group block. */
void ae_x16_unpack_group(uint32_t type, const void *group_block, void *blocks);

/* ---- Matmul (matmul.c) -------------------------------------------------------------------------- */

/* Whether ae_matmul handles weights of this type (in the rows layout at least): F32, F16, BF16, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0. */
bool ae_matmul_supports(uint32_t type);

/* The ggml type whose conversion the activations follow for weights of this type (AE_TYPE_Q8_0,
 * AE_TYPE_Q8_1, AE_TYPE_Q8_K, or the weight type itself for F32, F16 and BF16); AE_TYPE_ID_LIMIT for
 * unsupported types. The converted rows are stored as the kernels read them: Q8_0 and Q8_1 as struct
 * ae_block_q8a, the others as ggml does. */
uint32_t ae_matmul_vec_type(uint32_t type);

/* Bytes of one converted activation row of K values (0 for F32, unsupported types, or K not a whole
 * number of blocks). */
size_t ae_matmul_act_row_bytes(uint32_t type, int64_t K);

/* Bytes of scratch that ae_matmul needs for M rows of K activations; 0 for F32 weights (whose
 * activations are used as they are) and for unsupported types or K that is not a whole number of
 * blocks. The scratch must be 8-byte aligned (64 is best). */
size_t ae_matmul_scratch_size(uint32_t type, int64_t K, int64_t M);

/* Y[m][n] = sum_k X[m][k] * W[n][k], for m < M and n < N.
 *   W: the N x K weight of the given ggml type in the given layout (ae_layout_bytes bytes), 2-byte
 *      aligned (4 for F32, 64 is best).
 *   X: M rows of K floats; Y: M rows of N floats; scratch: ae_matmul_scratch_size(type, K, M) bytes.
 * Every output follows the canonical order of docs/kernels.md, so the result is the same bytes for any
 * layout, instruction-set level and thread count. Fails (-1, err set) for an unsupported type or
 * layout, a type whose kernel table was not given (ae_kernels_use), K not a multiple of the type's
 * block size, a negative size, or a misaligned W or scratch.
 * pool may be NULL (one thread). */
int ae_matmul(uint32_t type, enum ae_layout layout, const void *W, int64_t N, int64_t K, const float *X, int64_t M,
              float *Y, void *scratch, ae_pool *pool, ae_error *err);

/* ae_matmul in two steps, so that one converted input serves several weights (Q, K and V; gate and up):
 * ae_matmul_quantize converts X into Xq (ae_matmul_scratch_size bytes; for F32 weights it does nothing
 * and Xq is X itself), and ae_matmul_prequantized multiplies W by the converted rows. Weights of
 * different types may share Xq when their vec types agree. */
int ae_matmul_quantize(uint32_t type, const float *X, int64_t K, int64_t M, void *Xq, ae_pool *pool,
                       ae_error *err);
int ae_matmul_prequantized(uint32_t type, enum ae_layout layout, const void *W, int64_t N, int64_t K, const void *Xq,
                           int64_t M, float *Y, ae_pool *pool, ae_error *err);

/* ---- Mixture of experts (moe.c) ------------------------------------------------------------------- */

/* Bytes of scratch ae_matmul_id needs (64-byte aligned); 0 for bad sizes or an unsupported type. */
size_t ae_matmul_id_scratch_size(uint32_t type, int64_t E, int64_t N, int64_t K, int64_t R, int64_t k,
                                 bool x_per_slot);

/* The experts' matmul (ggml's mul_mat_id): Y[r][j][n] = sum_c X[r][s][c] * W[ids[r][j]][n][c] for r < R,
 * j < k, n < N, with s = j when x_per_slot (X has R * k rows) and s = 0 otherwise (X has R rows, shared by
 * the k slots). W holds E matrices of N rows of K values of type in the layout, one after another, each
 * ae_layout_bytes(type, layout, N, K) bytes.
 * Only the chosen experts' rows are read; each output is the bytes ae_matmul gives for that row and
 * expert, for any thread count. Fails for an id outside 0..E-1 (naming it), an unsupported type or bad
 * sizes. */
int ae_matmul_id(uint32_t type, enum ae_layout layout, const void *W, int64_t E, int64_t N, int64_t K, const float *X,
                 bool x_per_slot, const int32_t *ids, int64_t R, int64_t k, float *Y, void *scratch, ae_pool *pool,
                 ae_error *err);

/* ids[r] = the indices of the k largest of the E values of row r of x, largest first: the first k of
 * ggml's descending argsort (an exchange sort that swaps only for a strictly larger value). work holds E
 * indices. */
void ae_moe_topk(const float *x, int64_t R, int64_t E, int32_t k, int32_t *ids, int32_t *work);

/* w[r][j] = probs[r][ids[r][j]], divided by their sum (in double, rounded to float) when norm, then times
 * scale. */
void ae_moe_weights(const float *probs, const int32_t *ids, int64_t R, int64_t E, int64_t k, bool norm, float scale,
                    float *w);

/* y[r] = ((w[r][0] x[r][0] + w[r][1] x[r][1]) + ...) + w[r][k-1] x[r][k-1], each product rounded, for x of
 * R x k rows of D values. */
void ae_moe_sum(const float *x, const float *w, int64_t R, int64_t k, int64_t D, float *y);

/* ---- Activation quantizers (quantize.c) --------------------------------------------------------- */

/* Each converts k floats (a multiple of the block size) as ggml's reference quantizers do
 * (quantize_row_q8_0_ref, q8_1_ref, q8_K_ref):
 *   Q8_0: d = amax / 127, q = roundf(x / d) (computed as x * (1/d); ties away from zero), d rounded to
 *         fp16. Stored as struct ae_block_q8a (d as the f32 value of the fp16 scale, sum = sum(q)).
 *   Q8_1: the same, plus s = fp16(d * sum(q)) (ae_block_q8a.s).
 *   Q8_K: max = the value of largest magnitude, iscale = -127 / max, q = min(127, nearest(iscale * x))
 *         (ties to even), d = 1 / iscale as f32, bsums = sums of each 16 quants; an all-zero block
 *         has d = 0. Stored as struct ae_block_q8_k.
 * F16 and BF16 round to nearest even. */
void ae_quantize_row_q8_0(const float *x, void *y, int64_t k);
void ae_quantize_row_q8_1(const float *x, void *y, int64_t k);
void ae_quantize_row_q8_k(const float *x, void *y, int64_t k);
void ae_convert_row_f16(const float *x, uint16_t *y, int64_t k);
void ae_convert_row_bf16(const float *x, uint16_t *y, int64_t k);

/* ---- Kernel tables (kernel_table.c) ------------------------------------------------------------ */

/* A block of outputs: y[c * y_stride + r] = the canonical dot product (docs/kernels.md) of weight row r
 * with converted activation row c (at x + c * x_row), for r < n_rows and c < n_cols. The weights start
 * at a group boundary: for AE_LAYOUT_ROWS row r is at w + r * w_stride; for AE_LAYOUT_X16 row r is row
 * r % 16 of the group at w + (r / 16) * w_stride (rows of the last group past n_rows are read, never
 * written). */
typedef void (*ae_gemm_fn)(int64_t k, const void *w, size_t w_stride, int64_t n_rows, const void *x, size_t x_row,
                           int64_t n_cols, float *y, int64_t y_stride);

/* The block kernels of one weight type at one instruction-set level, by layout. A NULL entry means the
 * level has no kernel of its own for that layout, and the next lower level's is used. */
struct ae_gemm_level {
    const char *name; /* the level's: "scalar", "avx2", ... */
    ae_gemm_fn gemm[AE_LAYOUT_COUNT];
};

/* The kernels of one weight type: its block kernels per level of the host (enum ae_isa; NULL: none at
 * that level). The unit of linking: a program names the tables of the types its weights have (as it
 * names its tokenizer), and a program links with --gc-sections, so the SIMD code of the other types is
 * not in it. */
struct ae_type_kernels {
    uint32_t type;
    const struct ae_gemm_level *level[AE_ISA_COUNT];
};

extern const struct ae_type_kernels ae_kernels_f32, ae_kernels_f16, ae_kernels_bf16, ae_kernels_q4_0,
    ae_kernels_q4_1, ae_kernels_q5_0, ae_kernels_q5_1, ae_kernels_q8_0, ae_kernels_q2_k, ae_kernels_q3_k,
    ae_kernels_q4_k, ae_kernels_q5_k, ae_kernels_q6_k, ae_kernels_iq4_nl, ae_kernels_iq4_xs, ae_kernels_tq1_0,
    ae_kernels_tq2_0;

/* Every supported type's table, NULL-terminated: for tools and tests, which link them all. */
extern const struct ae_type_kernels *const ae_kernels_all[];

/* Makes the kernels of these types (a NULL-terminated list) the ones ae_matmul and ae_matmul_id use, in
 * addition to any given before; call it before the kernels run. A generated program passes its model's
 * list (ae_model.kernels). A matmul of a type whose table was never given fails, naming the type. */
void ae_kernels_use(const struct ae_type_kernels *const *types);

/* The table given for this type; NULL when none was. */
const struct ae_type_kernels *ae_kernels_of(uint32_t type);

/* The block kernel that the matmul uses for this type and layout at the current level; NULL when
 * unsupported or the type's table was not given. */
ae_gemm_fn ae_kernel_gemm(uint32_t type, enum ae_layout layout);

/* The name of the level whose kernel ae_kernel_gemm returns ("scalar", "avx2", ...); NULL when
 * ae_kernel_gemm is NULL. */
const char *ae_kernel_gemm_level(uint32_t type, enum ae_layout layout);

/* f32 -> fp16, rounding to nearest even, with the best conversion of the current level (the same bytes
 * as ae_convert_row_f16). */
void ae_convert_row_f16_fast(const float *x, uint16_t *y, int64_t n);

/* ---- Ops (kernels_ops.c) ------------------------------------------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w, per row of n (w may be NULL: no weight). As ggml: the sum of
 * squares in double, scale = 1 / sqrtf(mean + eps) in float, then (x * scale) * w. x may equal y. */
void ae_rms_norm(const float *x, const float *w, float *y, int64_t n_rows, int64_t n, float eps);

/* y = exp(x - max) / sum, per row of n; the sum in double, as ggml. x may equal y. */
void ae_softmax(const float *x, float *y, int64_t n_rows, int64_t n);

/* y = x / (1 + exp(-x)). */
void ae_silu(const float *x, float *y, int64_t n);

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))).
 * ae_gelu does what ggml's CPU backend does: x <= -10 gives 0, x >= 10 gives x, otherwise x is rounded
 * to fp16, the formula is evaluated in float and the result rounded to fp16 (ggml's lookup table).
 * ae_gelu_f32 evaluates the formula in float without the fp16 roundings. */
void ae_gelu(const float *x, float *y, int64_t n);
void ae_gelu_f32(const float *x, float *y, int64_t n);

/* Tanh soft-capping: y = cap * tanh(x * (1 / cap)), as ggml's scale, tanh, scale. */
void ae_softcap(const float *x, float *y, int64_t n, float cap);

/* YaRN context extension and the scaling of cos and sin (ggml's rope_yarn). */
struct ae_rope_yarn {
    float ext_factor;           /* 0: angles freq_scale * theta; else mixed with the unscaled angles by YaRN's
                                 * ramp over the correction dims, and cos, sin times 1 + 0.1 ln(1/freq_scale) */
    float attn_factor;          /* multiplies cos and sin */
    int32_t n_ctx_orig;         /* the training context, for the correction dims */
    float beta_fast, beta_slow; /* the correction dims' rotation counts (32, 1) */
};

/* Rotary position embedding. */
struct ae_rope_params {
    int32_t n_rot;              /* rotated dimensions at the start of each head: even, <= head_dim */
    bool neox;                  /* false: pairs (2i, 2i+1); true: pairs (i, i + n_rot/2) */
    float freq_base;            /* e.g. 10000 */
    float freq_scale;           /* 1 / linear scaling factor; 1 for none */
    const float *freq_factors;  /* n_rot/2 divisors of the angles, or NULL */
    const struct ae_rope_yarn *yarn; /* NULL: no YaRN, cos and sin unscaled */
};
#define AE_ROPE_MAX_ROT 1024

/* Rotates x [n_tokens, n_heads, head_dim] (token t at position pos0 + t) into y (may equal x). For pair
 * i (i < n_rot/2) at position p the angle is theta_i = freq_scale * (p * base^(-2i/n_rot)) / ff_i,
 * computed as ggml's rope cache does: theta starts at (float)p and is multiplied by
 * powf(base, -2/n_rot) once per pair, in float; with YaRN (p->yarn) the angle and the scale of cos and sin
 * are ggml's rope_yarn's. (x0, x1) becomes (x0 cos - x1 sin, x0 sin + x1 cos). Dimensions from n_rot on
 * are copied. Fails for odd, zero or too large n_rot. */
int ae_rope(const float *x, float *y, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
            const struct ae_rope_params *p, ae_error *err);

/* Attention of n_tokens queries over a KV cache. */
struct ae_attn_params {
    int64_t n_tokens;   /* T: query rows in this step */
    int64_t pos0;       /* P: position of the first query; cache rows 0..P+T-1 must be stored */
    int64_t n_ctx;      /* rows the cache holds */
    int32_t n_head;     /* query heads */
    int32_t n_head_kv;  /* key/value heads; divides n_head; head h reads kv head h / (n_head / n_head_kv) */
    int32_t head_dim_k; /* of q and k */
    int32_t head_dim_v; /* of v and of the output */
    uint32_t kv_type;   /* AE_TYPE_F16 (llama.cpp's default) or AE_TYPE_F32 */
    float scale;        /* multiplies q.k, usually 1/sqrt(head_dim_k) */
    float softcap;      /* > 0: s = softcap * tanh(s / softcap) after the scale, before the mask */
    int64_t window;     /* > 0: sliding window, query at p sees keys at j with p - window < j <= p */
};

/* Per-thread scratch for ae_attention: ae_pool_threads(pool) slices, each a block of 16 transposed K
 * rows and 16 V rows in f32 and the query rows of one task with their running outputs, rounded up to
 * 64 bytes. It does not grow with the context. */
size_t ae_attention_scratch_size(const struct ae_attn_params *p, int n_threads);

/* out [T, n_head, head_dim_v] = softmax(mask(softcap(scale * q.k))) v for q [T, n_head, head_dim_k];
 * k_cache [n_ctx, n_head_kv, head_dim_k], v_cache [n_ctx, n_head_kv, head_dim_v] of kv_type. Query t
 * (position P + t) sees keys 0..P+t (causal) within the window. Tiled with an online softmax in f32
 * (attention.c gives the order of every float operation, the same at every level); no score matrix.
 * With an F16 cache q is rounded to fp16 for the q.k products, as llama.cpp's CPU path does. (llama.cpp's
 * gemma2 multiplies q by its scale before that rounding and passes scale 1; do the same to follow it.)
 * A pool task is one kv head's query heads for up to 16 tokens. Fails for bad parameters (head counts,
 * sizes, P + T > n_ctx, kv_type). */
int ae_attention(const struct ae_attn_params *p, const float *q, const void *k_cache, const void *v_cache,
                 float *out, void *scratch, ae_pool *pool, ae_error *err);

/* Stores n_rows rows of row_len floats into rows pos0.. of a cache of n_ctx rows of kv_type (F16:
 * rounded to nearest even; F32: copied). Fails when the rows do not fit or the type is not F16/F32. */
int ae_kv_store(uint32_t kv_type, void *cache, int64_t n_ctx, int64_t row_len, int64_t pos0, const float *src,
                int64_t n_rows, ae_error *err);

#endif
