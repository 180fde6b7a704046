// Sums and maxima over a whole workgroup of WG_SIZE invocations (a power of two, at most 1024). Each
// subgroup first reduces its own values (subgroupAdd, subgroupMax), then one value per subgroup goes
// to shared memory and every invocation combines those in subgroup order. The order of the float
// operations is fixed for a device, so results repeat exactly from run to run. Every invocation must
// call these (they hold barriers) and gets the result.

shared float wg_red[WG_SIZE];

float wg_sum(float v)
{
    v = subgroupAdd(v);
    barrier();
    if (subgroupElect())
        wg_red[gl_SubgroupID] = v;
    barrier();
    float s = wg_red[0];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        s += wg_red[i];
    return s;
}

float wg_max(float v)
{
    v = subgroupMax(v);
    barrier();
    if (subgroupElect())
        wg_red[gl_SubgroupID] = v;
    barrier();
    float m = wg_red[0];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        m = max(m, wg_red[i]);
    return m;
}
