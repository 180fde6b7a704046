// Appends this step's rows to a layer's KV cache: cache[P + t, :] = x[t, :], rounded to fp16 (nearest
// even) unless the cache holds f32 (KV_F32). Workgroups: x over the row, y over the step's rows.
#include "common.glsl"

#define X_REF 1
#define CACHE_REF 2
#define ROW_LEN pc.k[0]

layout(local_size_x = 256) in;

void main()
{
    const uint t = gl_WorkGroupID.y, i = gl_GlobalInvocationID.x;
    if (i >= ROW_LEN)
        return;
    const float v = F32s(pc.ref[X_REF]).v[t * ROW_LEN + i];
    const uint at = (uint(STEP.P) + t) * ROW_LEN + i;
    if (KV_F32 != 0u)
        F32s(pc.ref[CACHE_REF]).v[at] = v;
    else
        F16s(pc.ref[CACHE_REF]).v[at] = float16_t(v);
}
