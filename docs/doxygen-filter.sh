#!/bin/sh
# doxygen's INPUT_FILTER for include/ (docs/Doxyfile): a header's opening
# `/* weft — ...` comment becomes its file documentation (so the header gets
# its own page), a literal <word> in a comment stays text, and a range
# "0 .. n" reads "0 to n" (doxygen would end the brief at its dot, and take
# a line ending in it for an end of list).
exec sed -e '1s|^/\* weft — |/** @file\n * weft — |' \
         -e '/^[[:space:]]*\(\/\*\*\|\*\)/s|<\([a-z_]*\)>|\&lt;\1\&gt;|g' \
         -e 's|\([0-9]\) \.\.$|\1 to|' -e 's|\([0-9]\) \.\. |\1 to |g' "$1"
