#!/usr/bin/env bash
# Lines of code (non-blank, non-comment; Python docstrings count as
# comments) of each fiber-style example and its asyncio twin, and the
# ratio C / Python (issue 13's goal: at most 1.5). A twin is found by the
# "twin of examples/NAME.c" its docstring names.
# Usage: scripts/count-lines.sh              the table for examples/python/*.py
#        scripts/count-lines.sh FILE...      the count of each file
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$root" "$@" <<'PY'
import io, re, sys, tokenize

def count_c(text):
    out, i, n, state = [], 0, len(text), None
    while i < n:  # blank out comments, keep strings and newlines
        c = text[i]
        if state is None:
            if text.startswith("/*", i):
                j = text.find("*/", i + 2)
                j = n if j < 0 else j + 2
                out.append("".join(ch for ch in text[i:j] if ch == "\n")); i = j; continue
            if text.startswith("//", i):
                j = text.find("\n", i); j = n if j < 0 else j
                i = j; continue
            if c in "\"'":
                state = c
        elif c == "\\":
            out.append(text[i:i + 2]); i += 2; continue
        elif c == state:
            state = None
        out.append(c); i += 1
    return sum(1 for line in "".join(out).splitlines() if line.strip())

def count_py(text):
    lines, prev = set(), tokenize.NEWLINE
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
            tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and prev in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            prev = tokenize.STRING; continue  # a docstring (a string statement)
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            prev = tok.type
    return len(lines)

def count(path):
    text = open(path).read()
    return count_py(text) if path.endswith(".py") else count_c(text)

root, files = sys.argv[1], sys.argv[2:]
if files:
    for f in files:
        print(f"{count(f):6d} {f}")
    sys.exit(0)
import glob, os
print(f"{'C example':28s} {'lines':>5s}  {'asyncio twin':32s} {'lines':>5s}  ratio")
worst = 0.0
for py in sorted(glob.glob(f"{root}/examples/python/*.py")):
    m = re.search(r"twin of\s+examples/(\w+\.c)", open(py).read())
    if not m:
        continue
    c = f"{root}/examples/{m.group(1)}"
    nc, np_ = count(c), count(py)
    worst = max(worst, nc / np_)
    print(f"{'examples/' + m.group(1):28s} {nc:5d}  {os.path.relpath(py, root):32s} {np_:5d}  {nc / np_:.2f}")
print(f"worst ratio {worst:.2f} (goal <= 1.50)")
PY
