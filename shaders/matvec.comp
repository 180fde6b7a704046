// Decode matrix-vector product for any weight type: y[n] = EPILOGUE(W[n] . x) for one activation row.
//
// A workgroup is 8 groups of 32 lanes, each group one weight row; lane l takes the 8-value pieces
// l, l + 32, ... of its row, dequantizes each (dequant.glsl) and accumulates its dot with x in order;
// the 32 partial sums are then added by a fixed tree (lane i + s into lane i for s = 16, 8, 4, 2, 1),
// as shuffles where a subgroup holds the 32 lanes and in shared memory otherwise: the same sums in the
// same order either way.
#include "common.glsl"
#include "dequant.glsl"

#define X_REF 1
#define W_REF 2
#define Y_REF 3
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]

layout(local_size_x = 256) in;

shared float red[256];

// The sum of v over the 32 lanes of this lane's group, in the tree order above.
float group_sum(float v, uint lane)
{
    if (gl_SubgroupSize >= 32) {
        for (uint s = 16; s > 0; s >>= 1)
            v += subgroupShuffleXor(v, s);
        return v;
    }
    const uint i = gl_LocalInvocationIndex;
    red[i] = v;
    barrier();
    for (uint s = 16; s > 0; s >>= 1) {
        if (lane < s)
            red[i] += red[i + s];
        barrier();
    }
    return red[i - lane];
}

void main()
{
    const uint lane = gl_LocalInvocationIndex & 31u;
    const uint n = gl_WorkGroupID.x * 8 + (gl_LocalInvocationIndex >> 5);
    const bool live = n < N_ROWS;
    float acc = 0.0;
    if (live) {
        const uint64_t row = pc.ref[W_REF] + uint64_t(n) * wrow_bytes(K_COLS);
        Vec4s x = Vec4s(pc.ref[X_REF]);
#if WTYPE == TYPE_F16
        if ((K_COLS & 7u) == 0u) { // rows 16-byte aligned: 8 halves per 16-byte load
            U32x4s w = U32x4s(row);
            for (uint j = lane; j < K_COLS / 8; j += 32) {
                const uvec4 h = w.v[j];
                const vec2 a = unpackHalf2x16(h.x), b = unpackHalf2x16(h.y), c = unpackHalf2x16(h.z), d = unpackHalf2x16(h.w);
                const vec4 x0 = x.v[2 * j], x1 = x.v[2 * j + 1];
                acc += a.x * x0.x; acc += a.y * x0.y; acc += b.x * x0.z; acc += b.y * x0.w;
                acc += c.x * x1.x; acc += c.y * x1.y; acc += d.x * x1.z; acc += d.y * x1.w;
            }
        } else
#endif
        for (uint j = lane; j < K_COLS / 8; j += 32) {
            float v[8];
            dq8(row, j, v);
            const vec4 x0 = x.v[2 * j], x1 = x.v[2 * j + 1];
            acc += v[0] * x0.x; acc += v[1] * x0.y; acc += v[2] * x0.z; acc += v[3] * x0.w;
            acc += v[4] * x1.x; acc += v[5] * x1.y; acc += v[6] * x1.z; acc += v[7] * x1.w;
        }
#if WBLOCK == 1
        for (uint k = K_COLS / 8 * 8 + lane; k < K_COLS; k += 32)
            acc += dq1(row, k) * F32s(pc.ref[X_REF]).v[k];
#endif
    }
    float sum = group_sum(acc, lane);
    if (live && lane == 0) {
        EPILOGUE(sum, 0u, n, N_ROWS);
        F32s(pc.ref[Y_REF]).v[n] = sum;
    }
}
