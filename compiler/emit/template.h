/* Templates: named snippets of text with placeholders, the form of every file in templates/.
 *
 * A template file is the text an emitter writes, cut into snippets: a line "//@ name" starts the snippet
 * called name, which runs to the next such line (blank lines at its end are dropped); what comes before
 * the first is the file's own comment. In a snippet, $word (letters, digits, '_') is a placeholder that
 * the emitter fills with a value it computed; everything else is copied as it is. The files are real,
 * readable C (or GLSL) with holes, embedded into aetherc as strings by compiler/emit/embed_templates.sh,
 * so an installed aetherc needs no data files.
 */
#ifndef AE_TEMPLATE_H
#define AE_TEMPLATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ae_error.h"

/* A placeholder's value. */
struct tmpl_arg {
    const char *name;
    const char *value;
};

/* Whether text has a snippet called name. */
bool tmpl_has(const char *text, const char *name);

/* Writes snippet name of text to f with every placeholder replaced by its value in args. Fails naming
 * the snippet when text has none of that name, or naming the placeholder when args has no value for it. */
int tmpl_write(FILE *f, const char *text, const char *name, const struct tmpl_arg *args, uint32_t n_args,
               ae_error *err);

#endif
