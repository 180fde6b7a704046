/* dlopen of libmicrohttpd and json-c for --serve (serve_lib.h). */
#include "serve_lib.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

struct serve_mhd_lib serve_mhd;
struct serve_json_lib serve_jc;

static bool serve_lib_loaded;

/* Looks up one symbol; the function pointer is copied out of dlsym's void * (ISO C has no conversion
 * between the two). */
static int serve_lib_sym(void *handle, const char *name, void *fn, size_t fn_size, const char *soname,
                         const char *package, ae_error *err)
{
    dlerror();
    void *p = dlsym(handle, name);
    if (!p)
        return ae_fail(err, "%s has no function %s (%s): --serve needs the Debian package %s as in "
                       "Debian 12 or later", soname, name, dlerror(), package);
    memcpy(fn, &p, fn_size);
    return 0;
}

static void *serve_lib_open(const char *soname, const char *package, ae_error *err)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        ae_fail(err, "--serve needs %s, which is not installed (%s): install the Debian package %s "
                "(apt-get install %s)", soname, dlerror(), package, package);
    return h;
}

int serve_lib_load(ae_error *err)
{
    if (serve_lib_loaded)
        return 0;
    void *mhd = serve_lib_open(SERVE_MHD_SONAME, SERVE_MHD_PACKAGE, err);
    if (!mhd)
        return -1;
    void *jc = serve_lib_open(SERVE_JSON_SONAME, SERVE_JSON_PACKAGE, err);
    if (!jc) {
        dlclose(mhd);
        return -1;
    }
    struct serve_mhd_lib m;
    struct serve_json_lib j;
#define SERVE_MHD_LOOKUP(name)                                                                      \
    if (serve_lib_sym(mhd, #name, &m.name, sizeof m.name, SERVE_MHD_SONAME, SERVE_MHD_PACKAGE, err) < 0) \
        goto fail;
#define SERVE_JSON_LOOKUP(name)                                                                     \
    if (serve_lib_sym(jc, #name, &j.name, sizeof j.name, SERVE_JSON_SONAME, SERVE_JSON_PACKAGE, err) < 0) \
        goto fail;
    SERVE_MHD_FUNCTIONS(SERVE_MHD_LOOKUP)
    SERVE_JSON_FUNCTIONS(SERVE_JSON_LOOKUP)
#undef SERVE_MHD_LOOKUP
#undef SERVE_JSON_LOOKUP
    /* The libraries stay loaded for the life of the process. */
    serve_mhd = m;
    serve_jc = j;
    serve_lib_loaded = true;
    return 0;
fail:
    dlclose(jc);
    dlclose(mhd);
    return -1;
}
