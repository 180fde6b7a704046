#!/bin/sh
# Writes a C file holding every shader source given, as a table of (file name, text): aetherc carries
# shaders/ this way, so an installed aetherc needs no data files.
echo "/* Generated from shaders/ by compiler/emit/embed_shaders.sh. */"
echo "#include \"spirv.h\""
echo "const struct spirv_source spirv_sources[] = {"
for f in "$@"; do
    echo "    {\"$(basename "$f")\","
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/     "/' -e 's/$/\\n"/' "$f"
    echo "    },"
done
echo "    {0, 0},"
echo "};"
