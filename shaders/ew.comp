// A fused elementwise group (ew, add, mul, scale, silu, gelu, softcap): y[r, c] = EPILOGUE(x[r, c]) over
// rows of D_COLS, the steps and their operands defined by aetherc. y may be x. Workgroups: x over the
// row, y over the rows.
#include "common.glsl"

#define X_REF 1
#define Y_REF 2
#define D_COLS pc.k[0]

layout(local_size_x = 256) in;

void main()
{
    const uint r = gl_WorkGroupID.y, c = gl_GlobalInvocationID.x;
    if (c >= D_COLS)
        return;
    float v = F32s(pc.ref[X_REF]).v[r * D_COLS + c];
    EPILOGUE(v, r, c, D_COLS);
    F32s(pc.ref[Y_REF]).v[r * D_COLS + c] = v;
}
