#!/bin/sh
# Writes a C file holding each template given as a string: templates/program_head.c becomes
# `const char tmpl_program_head[]`, templates/steps.c `tmpl_steps`. aetherc carries its templates this
# way, so an installed aetherc needs no data files; compiler/emit/template.h says how they are filled.
echo "/* Generated from templates/ by compiler/emit/embed_templates.sh. */"
for f in "$@"; do
    name=$(basename "$f" | sed 's/\.[^.]*$//; s/[^A-Za-z0-9_]/_/g')
    echo "extern const char tmpl_$name[];"
    echo "const char tmpl_$name[] ="
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$f"
    echo "    ;"
done
