#!/usr/bin/env bash
# The dashboard has no build step of its own: its modules in host/server/ui/ are served as
# written. The libraries it uses are the npm packages' own built files, copied into
# host/server/ui/vendor/ (committed, embedded in the binary) from the versions pinned in
# tests/browser/package-lock.json.
#   scripts/ui-vendor.sh          copy them (after changing a version there)
#   scripts/ui-vendor.sh --check  fail when the committed copies differ from the packages
#                                 (run by scripts/test.sh after `npm ci`)
set -euo pipefail
cd "$(dirname "$0")/.."
modules=tests/browser/node_modules
vendor=host/server/ui/vendor
files=(
  "@xterm/xterm/lib/xterm.mjs"
  "@xterm/xterm/css/xterm.css"
  "@xterm/addon-fit/lib/addon-fit.mjs"
  "pusher-js/dist/web/pusher.min.js"
)
[[ -d $modules ]] || { echo "no $modules: run npm ci --prefix tests/browser first" >&2; exit 1; }
status=0
for file in "${files[@]}"; do
  target="$vendor/$(basename "$file")"
  if [[ ${1:-} == --check ]]; then
    if ! cmp -s "$modules/$file" "$target"; then
      echo "$target differs from $file in tests/browser's packages: run scripts/ui-vendor.sh" >&2
      status=1
    fi
  else
    cp "$modules/$file" "$target"
  fi
done
[[ ${1:-} == --check ]] && [[ $status -eq 0 ]] && echo "vendored front-end files match their packages"
exit "$status"
