#!/usr/bin/env bash
# The API reference covers the library (make check; make docs first builds
# $O/docs with doxygen from docs/Doxyfile):
#   - every function the shared library exports (nm -D: ' T weft_') is
#     declared WEFT_API in a header of include/ with a `/** ... */` doc
#     comment right before it, and appears, described, in the generated
#     reference (doxygen's xml/, from the same run as html/ and man/) and
#     on its header's HTML page;
#   - no WEFT_API function in a header lacks a doc comment, and none is
#     declared without being exported;
#   - every header has its own page (html/NAME_8h.html, man/man3/NAME.h.3).
# Prints the counts; exits 1 naming each function (file:line) that fails.
set -euo pipefail
O=${O:-build}
so=$O/libweft.so
ref=$O/docs
[ -e "$so" ] || { echo "check-docs: $so missing (make lib)" >&2; exit 1; }
[ -d "$ref/xml" ] || { echo "check-docs: $ref/xml missing (make docs)" >&2; exit 1; }

nm -D --defined-only "$so" | awk '$2 == "T" && $3 ~ /^weft_/ { print $3 }' | sort -u >"$ref/exported.txt"

python3 - "$ref" include <<'EOF'
import glob, os, re, sys
import xml.etree.ElementTree as ET

ref, inc = sys.argv[1], sys.argv[2]
exported = set(open(os.path.join(ref, "exported.txt")).read().split())

# Header declarations: a line starting WEFT_API (not the macro itself),
# joined up to ';' or '{'; the name is the identifier before the first '('.
# Documented when the line before it ends a comment that began with '/**'.
decls = {}  # name -> (file:line, documented)
headers = sorted(glob.glob(os.path.join(inc, "*.h")) + glob.glob(os.path.join(inc, "weft", "*.h")))
for path in headers:
    lines = open(path, encoding="utf-8").read().split("\n")
    comment_end = {}  # line index where a comment closes -> began with /**
    i = 0
    while i < len(lines):
        m = re.search(r"/\*", lines[i])
        if m and "//" not in lines[i][: m.start()]:
            start, doc = i, lines[i][m.start():].startswith("/**")
            j = i
            tail = lines[i][m.start() + 2:]
            while "*/" not in tail:
                j += 1
                tail = lines[j]
            comment_end[j] = doc
            i = j + 1
            continue
        i += 1
    for i, line in enumerate(lines):
        if not line.startswith("WEFT_API") or line.startswith("WEFT_API_"):
            continue
        text, j = line, i
        while ";" not in text and "{" not in text:
            j += 1
            text += " " + lines[j]
        text = text.split(";")[0].split("{")[0]
        m = re.search(r"([A-Za-z_]\w*)\s*\(", text)
        if not m:
            m = re.search(r"([A-Za-z_]\w*)\s*(\[[^]]*\])?\s*$", text)
        name = m.group(1)
        k = i - 1
        while k >= 0 and lines[k].strip() == "":
            k -= 1
        documented = comment_end.get(k, False)
        decls[name] = ("%s:%d" % (path, i + 1), documented)

# The reference: functions documented on a header's page.
described, pages = {}, set()
for x in glob.glob(os.path.join(ref, "xml", "*_8h.xml")):
    root = ET.parse(x).getroot()
    for cd in root.iter("compounddef"):
        if cd.get("kind") != "file":
            continue
        fname = cd.findtext("compoundname")
        pages.add(fname)
        for md in cd.iter("memberdef"):
            if md.get("kind") != "function":
                continue
            text = "".join(md.find("briefdescription").itertext()).strip() + \
                   "".join(md.find("detaileddescription").itertext()).strip()
            if text:
                described[md.findtext("name")] = fname

pages_html = {}
def html_text(header):  # the page of weft/x.h is html/x_8h.html
    if header not in pages_html:
        path = os.path.join(ref, "html", os.path.basename(header).replace(".", "_8") + ".html")
        pages_html[header] = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    return pages_html[header]

fail = []
for name in sorted(exported):
    if name not in decls:
        fail.append("%s: exported but declared WEFT_API in no header of include/" % name)
    elif not decls[name][1]:
        fail.append("%s: %s: exported, no /** */ doc comment" % (name, decls[name][0]))
    if name not in described:
        fail.append("%s: exported, missing from the generated reference" % name)
    elif name not in html_text(described[name]):
        fail.append("%s: not on %s's HTML page" % (name, described[name]))
for name, (where, doc) in sorted(decls.items()):
    if not doc and name not in exported:
        fail.append("%s: %s: WEFT_API without a /** */ doc comment" % (name, where))
    if name not in exported:
        fail.append("%s: %s: declared WEFT_API, not exported by libweft.so" % (name, where))
for path in headers:
    base = os.path.basename(path)
    html = os.path.join(ref, "html", base.replace(".", "_8") + ".html")
    man = os.path.join(ref, "man", "man3", base + ".3")
    if not os.path.exists(html) or not os.path.exists(man):
        fail.append("%s: no page of its own in the reference (%s, %s)" % (path, html, man))

documented = sum(1 for n in exported if n in decls and decls[n][1])
in_ref = sum(1 for n in exported if n in described)
print("check-docs: %d functions exported by libweft.so; %d with a doc comment in include/; "
      "%d in the generated reference; %d WEFT_API declarations in %d headers, %d documented; "
      "%d header pages" % (len(exported), documented, in_ref, len(decls), len(headers),
                           sum(1 for d in decls.values() if d[1]), len(pages)))
for f in fail:
    print("check-docs: FAIL " + f, file=sys.stderr)
sys.exit(1 if fail else 0)
EOF
# doxygen's own complaints (markup it could not read) do not fail the
# check; they are shown so that they get fixed.
if [ -s "$ref/doxygen-warnings.log" ]; then
  echo "check-docs: doxygen warnings ($ref/doxygen-warnings.log):"
  sed 's/^/  /' "$ref/doxygen-warnings.log"
fi
