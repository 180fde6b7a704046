// Layer norm of each row, without weight or bias (those are separate ops), then the step's epilogue:
// y = EPILOGUE((x - mean) / sqrt(var + eps)). One workgroup per row; sums in the fixed order of reduce.glsl.
#include "common.glsl"
#define WG_SIZE 256
#include "reduce.glsl"

#define X_REF 1
#define Y_REF 3
#define D_COLS pc.k[0]
#define EPS kf(3)

layout(local_size_x = WG_SIZE) in;

void main()
{
    const uint r = gl_WorkGroupID.x, t = gl_LocalInvocationIndex, base = r * D_COLS;
    F32s x = F32s(pc.ref[X_REF]);
    float s = 0.0;
    for (uint i = t; i < D_COLS; i += WG_SIZE)
        s += x.v[base + i];
    const float mean = wg_sum(s) / float(D_COLS);
    float sq = 0.0;
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        const float d = x.v[base + i] - mean;
        sq += d * d;
    }
    const float scale = 1.0 / sqrt(wg_sum(sq) / float(D_COLS) + EPS);
    F32s y = F32s(pc.ref[Y_REF]);
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        float v = (x.v[base + i] - mean) * scale;
        EPILOGUE(v, r, i, D_COLS);
        y.v[base + i] = v;
    }
}
