// Strided copies: slice, permute, concat (one dispatch per half) and the last-row view. The result is the
// index space n0 x n1 x n2 x n3 (n0 times T when the first dimension is the step's); element
// (i0, i1, i2, i3) comes from x[sum i_d * xs_d] and goes to y[sum i_d * ys_d]. With LAST_ROW the source
// starts (T - 1) * k[13] elements in. Workgroups: x over n1 n2 n3 flattened, y over n0.
#include "common.glsl"

#define X_REF 1
#define Y_REF 2
#define LAST_ROW (pc.k[12] & 1u)

layout(local_size_x = 256) in;

void main()
{
    const uint i0 = gl_WorkGroupID.y, flat_i = gl_GlobalInvocationID.x;
    const uint n1 = pc.k[1], n2 = pc.k[2], n3 = pc.k[3];
    if (flat_i >= n1 * n2 * n3)
        return;
    const uint i3 = flat_i % n3, i2 = (flat_i / n3) % n2, i1 = flat_i / (n2 * n3);
    uint from = i0 * pc.k[4] + i1 * pc.k[5] + i2 * pc.k[6] + i3 * pc.k[7];
    if (LAST_ROW != 0u)
        from += uint(STEP.T - 1) * pc.k[13];
    const uint to = i0 * pc.k[8] + i1 * pc.k[9] + i2 * pc.k[10] + i3 * pc.k[11];
    F32s(pc.ref[Y_REF]).v[to] = F32s(pc.ref[X_REF]).v[from];
}
