#!/usr/bin/env bash
# `make install` / `make uninstall` (the Makefile passes its variables).
# Usage: scripts/install.sh install|uninstall
# Environment: O PREFIX LIBDIR INCDIR DESTDIR VERSION SOMAJOR VERSION_MAJOR
# VERSION_MINOR.
#
# install: the headers, libweft.a, libweft.so.VERSION (+ .so.SOMAJOR, .so
# links), weft.pc (relocatable: every path ${prefix}-relative when under
# PREFIX) and a CMake package (LIBDIR/cmake/weft: weftConfig.cmake,
# weftConfigVersion.cmake, imported targets weft::weft and
# weft::weft_static). It lists every file and every directory it created in
# LIBDIR/cmake/weft/install_manifest.txt. As root with DESTDIR empty it runs
# ldconfig; then (and otherwise) it checks that the run-time linker finds
# libweft.so.SOMAJOR and, if not, prints exactly what to do.
# uninstall: removes what the manifest lists (files, then the directories
# install created, deepest first, when empty), or without a manifest the
# files install would have written.
set -euo pipefail
: "${O:=build}" "${PREFIX:=/usr/local}" "${LIBDIR:=$PREFIX/lib}" "${INCDIR:=$PREFIX/include}"
: "${DESTDIR:=}" "${VERSION:?}" "${SOMAJOR:?}" "${VERSION_MAJOR:?}" "${VERSION_MINOR:?}"
root=$(cd "$(dirname "$0")/.." && pwd)
L=$DESTDIR$LIBDIR I=$DESTDIR$INCDIR
cmakedir=$L/cmake/weft
manifest=$cmakedir/install_manifest.txt

# ${prefix}-relative where possible (pkg-config --define-prefix relocates).
rel() { case $1 in "$PREFIX"/*) echo "\${prefix}/${1#"$PREFIX"/}" ;; *) echo "$1" ;; esac; }

files=(
  "$I/weft.h"
  "$L/libweft.a" "$L/libweft.so.$VERSION" "$L/libweft.so.$SOMAJOR" "$L/libweft.so"
  "$L/pkgconfig/weft.pc" "$cmakedir/weftConfig.cmake" "$cmakedir/weftConfigVersion.cmake"
)

do_install() {
  local made=() d
  for d in "$I" "$I/weft" "$L" "$L/pkgconfig" "$L/cmake" "$cmakedir"; do
    # every missing ancestor, outermost first
    local chain=() p=$d
    while [ ! -d "$p" ]; do chain=("$p" "${chain[@]}"); p=$(dirname "$p"); done
    for p in "${chain[@]}"; do mkdir "$p"; made+=("$p"); done
  done
  install -m 644 "$root/include/weft.h" "$I/"
  local h hs=()
  for h in "$root"/include/weft/*.h; do
    install -m 644 "$h" "$I/weft/"; hs+=("$I/weft/${h##*/}")
  done
  install -m 644 "$O/libweft.a" "$L/"
  install -m 755 "$O/libweft.so.$VERSION" "$L/"
  ln -sf "libweft.so.$VERSION" "$L/libweft.so.$SOMAJOR"
  ln -sf "libweft.so.$SOMAJOR" "$L/libweft.so"
  sed -e "s|@PREFIX@|$PREFIX|; s|@PC_LIBDIR@|$(rel "$LIBDIR")|; s|@PC_INCDIR@|$(rel "$INCDIR")|" \
      -e "s|@VERSION@|$VERSION|" "$root/weft.pc.in" >"$L/pkgconfig/weft.pc"
  # the include dir relative to LIBDIR when both are under PREFIX
  local cinc=$INCDIR
  if [ "$LIBDIR" = "$PREFIX/lib" ] && [ "$INCDIR" = "$PREFIX/include" ]; then cinc=../include; fi
  sed -e "s|@CMAKE_INCDIR@|$cinc|; s|@VERSION@|$VERSION|g; s|@SOMAJOR@|$SOMAJOR|g" \
      "$root/cmake/weftConfig.cmake.in" >"$cmakedir/weftConfig.cmake"
  sed -e "s|@VERSION@|$VERSION|g; s|@VERSION_MAJOR@|$VERSION_MAJOR|g; s|@VERSION_MINOR@|$VERSION_MINOR|g" \
      "$root/cmake/weftConfigVersion.cmake.in" >"$cmakedir/weftConfigVersion.cmake"
  # A reinstall keeps the directories the first install made.
  local old=()
  if [ -f "$manifest" ]; then mapfile -t old < <(grep '^dir ' "$manifest" || true); fi
  {
    printf 'file %s\n' "${files[@]}" "${hs[@]}"
    [ ${#old[@]} -eq 0 ] || printf '%s\n' "${old[@]}"
    [ ${#made[@]} -eq 0 ] || printf 'dir %s\n' "${made[@]}"
  } >"$manifest.tmp"
  mv "$manifest.tmp" "$manifest"
  echo "weft: installed $VERSION into ${DESTDIR:+$DESTDIR}$PREFIX"

  # Run time: can the dynamic linker find libweft.so.SOMAJOR?
  if [ -n "$DESTDIR" ]; then
    echo "weft: staged in DESTDIR=$DESTDIR; on the target, run ldconfig if $LIBDIR is a system library directory"
    return
  fi
  if [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi
  local found
  found=$(ldconfig -p 2>/dev/null | awk -v n="libweft.so.$SOMAJOR" '$1 == n {print $NF; exit}')
  if [ "$found" = "$LIBDIR/libweft.so.$SOMAJOR" ]; then
    echo "weft: the run-time linker finds $found"
  elif [ "$(id -u)" -ne 0 ]; then
    echo "weft: to use the shared library, as root run:  ldconfig"
    echo "weft:   (if $LIBDIR is not a system library directory: echo $LIBDIR >/etc/ld.so.conf.d/weft.conf && ldconfig,"
    echo "weft:    or run programs with LD_LIBRARY_PATH=$LIBDIR, or link them with -Wl,-rpath,$LIBDIR)"
  else
    echo "weft: $LIBDIR is not in the run-time linker's path; programs need one of:"
    echo "weft:   echo $LIBDIR >/etc/ld.so.conf.d/weft.conf && ldconfig"
    echo "weft:   LD_LIBRARY_PATH=$LIBDIR, or linking with -Wl,-rpath,$LIBDIR"
  fi
}

do_uninstall() {
  local kind path dirs=()
  if [ -f "$manifest" ]; then
    while read -r kind path; do
      case $kind in
        file) rm -f "$path" ;;
        dir) dirs=("$path" "${dirs[@]}") ;;
      esac
    done <"$manifest"
    rm -f "$manifest"
  else
    rm -f "${files[@]}"
    rm -rf "$I/weft"
    dirs=("$cmakedir")
  fi
  for path in "${dirs[@]}"; do rmdir "$path" 2>/dev/null || true; done
  if [ -z "$DESTDIR" ] && [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi
  echo "weft: uninstalled from ${DESTDIR:+$DESTDIR}$PREFIX"
}

case ${1:-} in
  install) do_install ;;
  uninstall) do_uninstall ;;
  *) echo "usage: scripts/install.sh install|uninstall" >&2; exit 2 ;;
esac
