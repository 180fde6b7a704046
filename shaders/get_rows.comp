// Embedding lookup: y[i, :] = dequantized row ids[i] of W, for the step's rows (one per workgroup row).
// An id outside the vocabulary gives a row of zeros (the host checks ids before a step).
#include "common.glsl"
#include "dequant.glsl"

#define IDS_REF 1
#define W_REF 2
#define Y_REF 3
#define D_COLS pc.k[0]
#define N_VOCAB pc.k[1]

layout(local_size_x = 64) in;

void main()
{
    const uint i = gl_WorkGroupID.y;
    const int id = I32s(pc.ref[IDS_REF]).v[i];
    const uint64_t row = pc.ref[W_REF] + uint64_t(uint(id)) * wrow_bytes(D_COLS);
    F32s y = F32s(pc.ref[Y_REF]);
    const uint j = gl_GlobalInvocationID.x, base = i * D_COLS;
    const bool ok = id >= 0 && uint(id) < N_VOCAB;
    if (j < D_COLS / 8) {
        float v[8];
        if (ok)
            dq8(row, j, v);
        for (uint e = 0; e < 8; e++)
            y.v[base + 8 * j + e] = ok ? v[e] : 0.0;
    }
#if WBLOCK == 1
    const uint k = D_COLS / 8 * 8 + j;
    if (j < D_COLS % 8)
        y.v[base + k] = ok ? dq1(row, k) : 0.0;
#endif
}
