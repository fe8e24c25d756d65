#!/usr/bin/env bash
# tools/dev/lint.sh — style gate: clang-format (dry run, -Werror) over every C/C++
# source, and a banned-function check in the spirit of curl's checksrc:
# no sprintf/vsprintf/strcpy/strcat/gets/atoi/atol/strtok/strncpy in project code.
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t files < <(git ls-files -co --exclude-standard '*.c' '*.h' '*.cpp' | grep -v '^build/' | sort)
rc=0
if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/cv-lint.$$; then
  head -40 /tmp/cv-lint.$$ >&2
  echo "lint: clang-format differences (run 'make format')" >&2
  rc=1
fi
rm -f /tmp/cv-lint.$$
banned='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atof|strtok|strncpy|stpcpy)[[:space:]]*\('
if grep -nE "$banned" "${files[@]}"; then
  echo "lint: banned function used (see tools/dev/lint.sh for the list and use bounded versions)" >&2
  rc=1
fi
# Self-contained: no tracked file may reach outside the repository (a user clones it alone). The
# background folder beside the development checkouts is the one such path ever seen.
outside='(\.\./shared|[^a-z_]shared/(docs|models)/)'
if git ls-files -z | xargs -0 grep -InE "$outside" -- 2>/dev/null | grep -v '^tools/dev/lint.sh:'; then
  echo "lint: the files above reference a path outside the repository" >&2
  rc=1
fi
[[ $rc -eq 0 ]] && echo "lint: ${#files[@]} files clean"
exit $rc
