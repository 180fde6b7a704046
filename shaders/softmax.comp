// Softmax of each row of x * scale, then the step's epilogue. One workgroup per row; maxima and sums in
// the fixed order of reduce.glsl.
#include "common.glsl"
#define WG_SIZE 256
#include "reduce.glsl"

#define X_REF 1
#define Y_REF 3
#define D_COLS pc.k[0]
#define SCALE kf(3)

layout(local_size_x = WG_SIZE) in;

void main()
{
    const uint r = gl_WorkGroupID.x, t = gl_LocalInvocationIndex, base = r * D_COLS;
    F32s x = F32s(pc.ref[X_REF]);
    F32s y = F32s(pc.ref[Y_REF]);
    float m = -1.0 / 0.0;
    for (uint i = t; i < D_COLS; i += WG_SIZE)
        m = max(m, x.v[base + i] * SCALE);
    m = wg_max(m);
    float s = 0.0;
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        const float e = exp(x.v[base + i] * SCALE - m);
        y.v[base + i] = e;
        s += e;
    }
    const float inv = 1.0 / wg_sum(s);
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        float v = y.v[base + i] * inv;
        EPILOGUE(v, r, i, D_COLS);
        y.v[base + i] = v;
    }
}
