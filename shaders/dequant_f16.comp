// Dequantizes a weight matrix of N rows of K values (any type, K a multiple of 8) into f16 rows, for the
// tensor-core prefill product (matmul_coop.comp), which then reads plain halves. Each invocation writes
// one 8-value piece as a 16-byte store. Workgroups: x over N * K / 8 / 256 (y when that is too many).
#include "common.glsl"
#include "dequant.glsl"

#define W_REF 1
#define OUT_REF 2
#define N_ROWS pc.k[0]
#define K_COLS pc.k[1]

layout(local_size_x = 256) in;

layout(buffer_reference, std430, buffer_reference_align = 16) writeonly buffer U32x4w { uvec4 v[]; };

void main()
{
    const uint pieces = K_COLS / 8;
    const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256 + gl_LocalInvocationIndex;
    if (i >= N_ROWS * pieces)
        return;
    const uint n = i / pieces, j = i % pieces;
    float v[8];
    dq8(pc.ref[W_REF] + uint64_t(n) * wrow_bytes(K_COLS), j, v);
    U32x4w(pc.ref[OUT_REF]).v[i] = uvec4(packHalf2x16(vec2(v[0], v[1])), packHalf2x16(vec2(v[2], v[3])),
                                         packHalf2x16(vec2(v[4], v[5])), packHalf2x16(vec2(v[6], v[7])));
}
