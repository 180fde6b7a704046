/* The two libraries the server uses, loaded with dlopen only when a program is asked to serve.
 *
 * A program that never serves needs nothing but libc and libm (and the loader): the HTTP server
 * (GNU libmicrohttpd) and the JSON library (json-c) are therefore not linked in. serve_lib_load opens
 * their shared objects by soname at --serve, looks up every function the server calls, and fails with
 * a message naming the Debian package that provides the missing one. The headers are needed only to
 * build the runtime: they give the types, constants and the functions' prototypes, from which each
 * pointer below takes its type.
 *
 * libmicrohttpd could not be linked statically anyway: Debian's libmicrohttpd.a needs GnuTLS, which has
 * no static library. json-c could; loading both the same way keeps one rule for the server's parts.
 */
#ifndef SERVE_LIB_H
#define SERVE_LIB_H

#include <json-c/json.h>
#include <microhttpd.h>

#include "ae_error.h"

/* The shared objects and the Debian packages that install them. */
#define SERVE_MHD_SONAME "libmicrohttpd.so.12"
#define SERVE_MHD_PACKAGE "libmicrohttpd12"
#define SERVE_JSON_SONAME "libjson-c.so.5"
#define SERVE_JSON_PACKAGE "libjson-c5"

#define SERVE_MHD_FUNCTIONS(X)                                                                      \
    X(MHD_start_daemon) X(MHD_stop_daemon) X(MHD_quiesce_daemon) X(MHD_get_daemon_info)            \
    X(MHD_get_connection_info) X(MHD_set_connection_option) X(MHD_lookup_connection_value)          \
    X(MHD_create_response_from_buffer) X(MHD_create_response_from_callback) X(MHD_add_response_header) \
    X(MHD_queue_response) X(MHD_destroy_response)

#define SERVE_JSON_FUNCTIONS(X)                                                                     \
    X(json_tokener_new_ex) X(json_tokener_set_flags) X(json_tokener_parse_ex) X(json_tokener_get_error) \
    X(json_tokener_error_desc) X(json_tokener_get_parse_end) X(json_tokener_free) X(json_object_put)  \
    X(json_object_get_type) X(json_object_object_get_ex) X(json_object_get_string)                 \
    X(json_object_get_string_len) X(json_object_get_int64) X(json_object_get_double)               \
    X(json_object_get_boolean) X(json_object_array_length) X(json_object_array_get_idx)            \
    X(json_object_new_object) X(json_object_new_array) X(json_object_new_string_len)               \
    X(json_object_new_int64) X(json_object_new_double) X(json_object_new_boolean)                  \
    X(json_object_object_add) X(json_object_array_add) X(json_object_to_json_string_length)        \
    X(json_object_iter_begin) X(json_object_iter_end) X(json_object_iter_equal)                    \
    X(json_object_iter_next) X(json_object_iter_peek_name) X(json_object_iter_peek_value)

#define SERVE_LIB_FIELD(name) __typeof__(name) *name;

struct serve_mhd_lib {
    SERVE_MHD_FUNCTIONS(SERVE_LIB_FIELD)
};

struct serve_json_lib {
    SERVE_JSON_FUNCTIONS(SERVE_LIB_FIELD)
};

/* Filled by serve_lib_load; read-only afterwards. */
extern struct serve_mhd_lib serve_mhd;
extern struct serve_json_lib serve_jc;

/* Opens both libraries (once; later calls return at once). Returns 0, or -1 with err naming the shared
 * object, the Debian package to install and what dlopen or dlsym said. */
int serve_lib_load(ae_error *err);

#endif
