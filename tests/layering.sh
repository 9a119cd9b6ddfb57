#!/bin/sh
# The library's layers call only downwards (README "Layout"): core <- ops <- nn, and core <- data
# (nn and data do not call each other); inside nn/, the safetensors format layer (nn/safetensors.c)
# calls nothing else in nn/ (the checkpoint layer builds on it, not the other way round).
# Usage: layering.sh "OBJ1;OBJ2;..." (the library's object files, $<TARGET_OBJECTS:tapegrad>):
# every undefined symbol of an object that another object defines is checked against these rules.
set -eu
objs=$(printf '%s' "$1" | tr ';' ' ')
[ -n "$objs" ] || { echo "layering.sh: no object files given"; exit 2; }
# nm -A: "OBJECT:VALUE TYPE NAME" (defined) and "OBJECT: U NAME" (undefined), for all objects at once.
# An object's unit: its folder (core, ops, nn, data), or nn/safetensors for the format layer.
# shellcheck disable=SC2086
{ nm -A --defined-only -g $objs | sed 's/^/D /'; nm -A -u $objs | sed 's/^/U /'; } | awk '
function unit(o) {
    if (o ~ /\/nn\/safetensors\.c\.o$/) return "nn/safetensors";
    if (match(o, /\/(core|ops|nn|data)\/[^\/]*$/)) return substr(o, RSTART + 1, index(substr(o, RSTART + 1), "/") - 1);
    return "?";
}
# may[caller unit] = the units it may call (besides itself)
BEGIN {
    may["core"] = " ";
    may["ops"] = " core ";
    may["data"] = " core ";
    may["nn"] = " core ops nn/safetensors ";
    may["nn/safetensors"] = " core ";
}
{ obj = $2; sub(/:[0-9a-f]*$/, "", obj); sym = $NF }
$1 == "D" && NF == 4 { du[sym] = unit(obj); dobj[sym] = obj; nd++; next }
$1 == "U" { uses[++n] = sym; uobj[n] = obj }
END {
    if (nd == 0 || n == 0) { print "layering.sh: nm listed no symbols"; exit 2 }
    for (i = 1; i <= n; i++) {
        s = uses[i]; u = unit(uobj[i]);
        if ((s in du) && du[s] != u && index(may[u], " " du[s] " ") == 0) {
            o = uobj[i]; sub(/.*\//, "", o); d = dobj[s]; sub(/.*\//, "", d);
            printf "%s (%s) calls %s, defined in %s (%s): not allowed\n", o, u, s, d, du[s]; bad++
        }
    }
    if (bad) { print bad " call(s) against the layering"; exit 1 }
    print "layering: every call goes down (core <- ops <- nn; core <- data; nn/safetensors.c under the rest of nn/)"
}'
