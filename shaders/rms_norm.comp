// RMS norm of each row, times an optional weight row, then the step's epilogue (rms_norm, rms_norm_mul and
// its residual add): y = EPILOGUE((x * (1 / sqrt(mean(x^2) + eps))) * w). One workgroup per row; the sum
// of squares in the fixed order of reduce.glsl.
#include "common.glsl"
#define WG_SIZE 256
#include "reduce.glsl"

#define X_REF 1
#define W_REF 2
#define Y_REF 3
#define D_COLS pc.k[0]
#define EPS kf(3)

layout(local_size_x = WG_SIZE) in;

void main()
{
    const uint r = gl_WorkGroupID.x, t = gl_LocalInvocationIndex, base = r * D_COLS;
    F32s x = F32s(pc.ref[X_REF]);
    float sq = 0.0;
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        const float v = x.v[base + i];
        sq += v * v;
    }
    const float mean = wg_sum(sq) / float(D_COLS);
    const float scale = 1.0 / sqrt(mean + EPS);
    F32s y = F32s(pc.ref[Y_REF]);
    for (uint i = t; i < D_COLS; i += WG_SIZE) {
        float v = x.v[base + i] * scale;
        if (pc.ref[W_REF] != 0)
            v = v * F32s(pc.ref[W_REF]).v[i];
        EPILOGUE(v, r, i, D_COLS);
        y.v[base + i] = v;
    }
}
