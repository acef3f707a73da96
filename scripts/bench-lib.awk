# Helpers shared by scripts/bench.sh (the console table) and
# scripts/bench-report.sh (REPORT.md): read a field of a flat JSON line, and
# print a value with its unit at a readable scale.
function field(line, key,    re, v) {
  re = "\"" key "\":(\"[^\"]*\"|[^,}]*)"
  if (!match(line, re)) return ""
  v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
  gsub(/"/, "", v)
  return v
}
function human(v, unit) {
  if (unit == "s") {
    if (v < 1e-3) return sprintf("%.1f us", v * 1e6)
    if (v < 1) return sprintf("%.2f ms", v * 1e3)
    return sprintf("%.3f s", v)
  }
  if (v >= 1e9) return sprintf("%.2f G%s", v / 1e9, unit)
  if (v >= 1e6) return sprintf("%.2f M%s", v / 1e6, unit)
  if (v >= 1e3) return sprintf("%.2f k%s", v / 1e3, unit)
  return sprintf("%.3g %s", v, unit)
}
