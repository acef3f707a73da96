#!/bin/sh
# doxygen's INPUT_FILTER for include/ (docs/Doxyfile): a header's opening
# `/* weft — ...` comment becomes its file documentation (so the header gets
# its own page), and a literal <word> in a comment stays text.
exec sed -e '1s|^/\* weft — |/** @file\n * weft — |' \
         -e '/^[[:space:]]*\(\/\*\*\|\*\)/s|<\([a-z_]*\)>|\&lt;\1\&gt;|g' "$1"
