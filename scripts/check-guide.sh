#!/usr/bin/env bash
# The documents keep their promises about names and code (make check):
#   - every weft_* / WEFT_* name that README.md or a page under docs/
#     mentions exists: in include/ (a function, type, macro or constant;
#     NAME_* is a prefix of some); a weft__ name in the library's sources;
#     an environment variable the library or the build reads (getenv, the
#     Makefile); a CMake target; a benchmark row (a string in bench/);
#     weft__name and NAME_X stand for any name;
#   - every code block in docs/guide/ preceded by `<!-- from FILE -->` is
#     a verbatim excerpt of FILE;
#   - every relative link in README.md and docs/ leads to a file.
# Prints the counts; exits 1 naming each broken promise (file:line).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$root" <<'PY'
import glob, os, re, sys

root = sys.argv[1]
os.chdir(root)
headers = "".join(open(h).read() for h in sorted(glob.glob("include/**/*.h", recursive=True)))
ident = r"\b(?:weft|WEFT)_[A-Za-z0-9_]*"
known = set(re.findall(ident, headers))
def read(paths):
    return "".join(open(p, errors="replace").read() for p in paths)
lib = read(glob.glob("core/*.[ch]") + glob.glob("io/*.[ch]") +
           glob.glob("promises/*.[ch]") + glob.glob("timers/*.[ch]"))
private = set(re.findall(r"\b(?:weft|WEFT)__[A-Za-z0-9_]*", lib))
everything_c = read(glob.glob("**/*.c", recursive=True))
known |= set(re.findall(r'getenv\("((?:weft|WEFT)_[A-Za-z0-9_]*)"\)', everything_c))
known |= set(re.findall(r"-D((?:weft|WEFT)_[A-Za-z0-9_]*)", read(["Makefile"])))
known |= set(re.findall(ident, read(["Makefile"] + glob.glob("scripts/*.sh") +
                                    glob.glob("**/*.cmake*", recursive=True))))
known |= set(re.findall(r'"((?:weft|WEFT)_[A-Za-z0-9_]*)"', read(glob.glob("bench/**/*.c", recursive=True))))
def exists(name, rest):
    if name == "weft__name" or name.endswith("_X"):
        return True  # a placeholder: weft__name, WEFT__K_X
    if name.startswith(("weft__", "WEFT__")):
        return name in private or rest.startswith("*") and any(p.startswith(name) for p in private)
    if name in known:
        return True
    return rest.startswith("_*") and any(k.startswith(name + "_") for k in known)
docs = ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True))
bad, names, blocks, links = [], 0, 0, 0
for d in docs:
    text = open(d).read()
    lines = text.split("\n")
    for no, line in enumerate(lines, 1):
        for m in re.finditer(r"\b(?:weft|WEFT)_[A-Za-z0-9_]*[A-Za-z0-9]", line):
            names += 1
            if not exists(m.group(0), line[m.end():]):
                bad.append(f"{d}:{no}: {m.group(0)} is in no header, source or build file")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            links += 1
            if not os.path.exists(os.path.join(os.path.dirname(d), target)):
                bad.append(f"{d}:{no}: link to {target}: no such file")
    if not d.startswith("docs/guide/"):
        continue
    for m in re.finditer(r"<!-- from (\S+) -->\n```[a-z]*\n(.*?)\n```", text, re.S):
        blocks += 1
        src, code = m.group(1), m.group(2)
        no = text.count("\n", 0, m.start()) + 1
        if not os.path.exists(src):
            bad.append(f"{d}:{no}: excerpt from {src}: no such file")
        elif code not in open(src).read():
            bad.append(f"{d}:{no}: the excerpt is not in {src} (word for word)")
for b in bad:
    print("check-guide:", b, file=sys.stderr)
print(f"check-guide: {len(docs)} documents, {names} names, {links} links, "
      f"{blocks} excerpts; {len(bad)} broken")
sys.exit(1 if bad else 0)
PY
