#!/usr/bin/env bash
# check_symbols.sh LIB HEADER — the library (libgoipc.so, or the static
# libgoipc.a) exports exactly the functions declared in the header: nothing
# else (no Go runtime, no cgo glue, no capi_* internals), nothing missing.
set -euo pipefail
lib=$1 header=$2
case $lib in
  # An archive's global definitions (lines "VALUE TYPE NAME"; member names
  # and blank lines have fewer fields).
  *.a) exported=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' | sort) ;;
  *) exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort) ;;
esac
declared=$(grep -oE '^[a-z_0-9 ]+[ *]goipc_[a-z_0-9]+\(' "$header" | grep -oE 'goipc_[a-z_0-9]+' | sort -u)
status=0
others=$(grep -v '^goipc_' <<<"$exported" || true)
if [ -n "$others" ]; then
    echo "check-symbols: $lib exports symbols other than goipc_*:"; echo "$others" | head -20; status=1
fi
if ! diff <(echo "$declared") <(echo "$exported") >/dev/null; then
    echo "check-symbols: exports differ from the functions of $header (< header only, > library only):"
    diff <(echo "$declared") <(echo "$exported") || true
    status=1
fi
[ $status -eq 0 ] && echo "check-symbols: $lib exports exactly the $(wc -l <<<"$declared") functions of $header, nothing else"
exit $status
