#!/usr/bin/env bash
# Fault test: rank 1 of 2 fails mid-training (an error path, exit(), a hang, SIGKILL: see
# dist_fault.c); the job must end within 60 s with a non-zero exit and a message naming rank 1.
# Usage: fault.sh MPIRUN DIST_FAULT_BINARY
set -u
mpirun=$1 prog=$2
fails=0
for mode in error exit hang kill; do
  out=$(mktemp)
  start=$(date +%s%N)
  TG_FAULT=$mode TG_DIST_TIMEOUT=10 timeout -s KILL 120 "$mpirun" -np 2 --oversubscribe "$prog" >"$out" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  named=no
  # tapegrad's own message for rank 1, or rank 0's timeout naming rank 1, or mpirun's report on rank 1
  if grep -Eq "rank 1 of 2|rank 1 is stuck|process rank 1 " "$out"; then named=yes; fi
  verdict=ok
  # (timeout's own kill after 120 s also fails the time limit)
  if [ "$rc" -eq 0 ] || [ "$named" != yes ] || [ "$ms" -gt 60000 ]; then
    verdict=FAIL; fails=$((fails + 1))
  fi
  printf '%-4s %-5s exit %3d after %d.%01d s, names rank 1: %s\n' "$verdict" "$mode" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) "$named"
  if [ "$verdict" = FAIL ]; then sed 's/^/    | /' "$out"; else grep -E "tapegrad dist|process rank 1" "$out" | head -2 | sed 's/^/    | /'; fi
  rm -f "$out"
done
[ "$fails" -eq 0 ] && echo "fault: all cases pass" || echo "fault: $fails case(s) FAILED"
exit "$fails"
