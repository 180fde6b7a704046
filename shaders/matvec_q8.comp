// Decode matrix-vector product with integer dot products, for Q4_0 and Q8_0 weights: the activations are
// quantized to 8 bits per block of 32 as the CPU kernels quantize them (Q8_0: d = max|x| / 127, stored as
// fp16; q = round(x / d)), each block's dot product is an exact integer sum of 4-wide products, then
// scaled by the two blocks' scales. y[n] = EPILOGUE(W[n] . x).
//
// A workgroup is 8 groups of 32 lanes and serves 16 rows, two per group, so that each quantized block of x
// feeds two weight blocks. First the workgroup quantizes x into shared memory (one block per invocation at
// a time); then lane l of a group takes blocks l, l + 32, ... of its two rows; the lanes' partial sums are
// added by the fixed tree of matvec.comp. Needs shaderIntegerDotProduct (Vulkan 1.3).
#include "common.glsl"
#extension GL_EXT_spirv_intrinsics : require

#define X_REF 1
#define W_REF 2
#define Y_REF 3
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]
#define MAX_BLOCKS 640   // K up to 20480: 26 KiB of shared memory (lavapipe allows 32)

// 4-wide dot products of packed 8-bit vectors (SPV_KHR_integer_dot_product): signed x signed, and
// signed x unsigned.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4(uint a, uint b, spirv_literal int packed_4x8);
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4452)
int sudot4(uint a_signed, uint b_unsigned, spirv_literal int packed_4x8);

layout(local_size_x = 256) in;

shared uint xq[MAX_BLOCKS * 8];   // 32 quants per block, 4 to a word
shared float xd[MAX_BLOCKS];      // the block's scale
shared int xs[MAX_BLOCKS];        // the sum of its quants

shared float red[256];

float group_sum(float v, uint lane)
{
    if (gl_SubgroupSize >= 32) {
        for (uint s = 16; s > 0; s >>= 1)
            v += subgroupShuffleXor(v, s);
        return v;
    }
    const uint i = gl_LocalInvocationIndex;
    barrier();
    red[i] = v;
    barrier();
    for (uint s = 16; s > 0; s >>= 1) {
        if (lane < s)
            red[i] += red[i + s];
        barrier();
    }
    return red[i - lane];
}

void quantize_x()
{
    Vec4s x = Vec4s(pc.ref[X_REF]);
    for (uint b = gl_LocalInvocationIndex; b < K_COLS / 32; b += 256) {
        vec4 v[8];
        float amax = 0.0;
        for (uint i = 0; i < 8; i++) {
            v[i] = x.v[8 * b + i];
            amax = max(amax, max(max(abs(v[i].x), abs(v[i].y)), max(abs(v[i].z), abs(v[i].w))));
        }
        const float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
        int sum = 0;
        for (uint i = 0; i < 8; i++) {
            const vec4 s = v[i] * id;
            const ivec4 q = ivec4(trunc(s + sign(s) * 0.5)); // roundf: halves away from zero
            sum += q.x + q.y + q.z + q.w;
            xq[8 * b + i] = uint(q.x & 255) | uint(q.y & 255) << 8 | uint(q.z & 255) << 16 | uint(q.w & 255) << 24;
        }
        xd[b] = round_half(d);
        xs[b] = sum;
    }
    barrier();
}

// The integer dot product of weight block b of the row at address row with x's block b, and its scale.
float block_dot(uint64_t row, uint b)
{
#if WTYPE == TYPE_Q4_0
    U16s w = U16s(row);
    const uint at = 9 * b;
    const float d = half_to_float(w.v[at]);
    int isum = 0;
    for (uint m = 0; m < 4; m++) {
        const uint q = uint(w.v[at + 1 + 2 * m]) | uint(w.v[at + 2 + 2 * m]) << 16;
        isum += sudot4(xq[8 * b + m], q & 0x0F0F0F0Fu, 0);
        isum += sudot4(xq[8 * b + 4 + m], (q >> 4) & 0x0F0F0F0Fu, 0);
    }
    return d * xd[b] * float(isum - 8 * xs[b]);
#elif WTYPE == TYPE_Q8_0
    U16s w = U16s(row);
    const uint at = 17 * b;
    const float d = half_to_float(w.v[at]);
    int isum = 0;
    for (uint m = 0; m < 8; m++) {
        const uint q = uint(w.v[at + 1 + 2 * m]) | uint(w.v[at + 2 + 2 * m]) << 16;
        isum += sdot4(xq[8 * b + m], q, 0);
    }
    return d * xd[b] * float(isum);
#else
#error "matvec_q8.comp: Q4_0 or Q8_0 weights only"
#endif
}

#if WTYPE == TYPE_Q4_0
#define WBYTES 18
#else
#define WBYTES 34
#endif

void main()
{
    quantize_x();
    const uint lane = gl_LocalInvocationIndex & 31u, group = gl_LocalInvocationIndex >> 5;
    const uint n0 = gl_WorkGroupID.x * 16 + 2 * group, nb = K_COLS / 32;
    const uint64_t row_bytes = uint64_t(nb) * WBYTES;
    float acc0 = 0.0, acc1 = 0.0;
    if (n0 < N_ROWS) {
        const uint64_t row0 = pc.ref[W_REF] + uint64_t(n0) * row_bytes;
        const bool two = n0 + 1 < N_ROWS;
        for (uint b = lane; b < nb; b += 32) {
            acc0 += block_dot(row0, b);
            if (two)
                acc1 += block_dot(row0 + row_bytes, b);
        }
    }
    const float s0 = group_sum(acc0, lane), s1 = group_sum(acc1, lane);
    if (lane == 0) {
        F32s y = F32s(pc.ref[Y_REF]);
        if (n0 < N_ROWS) {
            float v = s0;
            EPILOGUE(v, 0u, n0, N_ROWS);
            y.v[n0] = v;
        }
        if (n0 + 1 < N_ROWS) {
            float v = s1;
            EPILOGUE(v, 0u, n0 + 1, N_ROWS);
            y.v[n0 + 1] = v;
        }
    }
}
