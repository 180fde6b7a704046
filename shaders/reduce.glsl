// Sums and maxima over a whole workgroup of WG_SIZE invocations (a power of two, at most 1024), in a
// fixed order: each value lands in shared memory and the halves are folded, i + s into i for
// s = WG_SIZE/2 .. 1. Every invocation must call these (they hold barriers) and gets the result.

shared float wg_red[WG_SIZE];

float wg_sum(float v)
{
    const uint i = gl_LocalInvocationIndex;
    barrier();
    wg_red[i] = v;
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (i < s)
            wg_red[i] += wg_red[i + s];
        barrier();
    }
    return wg_red[0];
}

float wg_max(float v)
{
    const uint i = gl_LocalInvocationIndex;
    barrier();
    wg_red[i] = v;
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (i < s)
            wg_red[i] = max(wg_red[i], wg_red[i + s]);
        barrier();
    }
    return wg_red[0];
}
