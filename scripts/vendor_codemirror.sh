#!/bin/sh
# Rebuild static/vendor/codemirror/codemirror-sql.min.js from its entry (entry.js beside it):
# CodeMirror 6 and its SQL language from npm, bundled by esbuild into one minified IIFE that
# sets window.BizSQLEditor. The packages are installed in a scratch directory outside the
# repository (never committed); pass another directory as $1, versions as $CODEMIRROR_PACKAGES.
# Afterwards update the versions in static/vendor/README.md (the script prints them).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/static/vendor/codemirror"
scratch=${1:-/tmp/npm-codemirror}
packages=${CODEMIRROR_PACKAGES:-"codemirror@6 @codemirror/lang-sql@6 esbuild@0"}

mkdir -p "$scratch"
cd "$scratch"
[ -f package.json ] || npm init -y >/dev/null
# shellcheck disable=SC2086
npm install --no-audit --no-fund $packages
cp "$out/entry.js" "$scratch/entry.js"
npx esbuild entry.js --bundle --minify --format=iife --target=es2020 \
  --legal-comments=none --outfile="$out/codemirror-sql.min.js"

# One licence file: every bundled package is MIT; each notice as its package ships it.
{
  echo "codemirror-sql.min.js is built from these npm packages (those installed with codemirror and"
  echo "@codemirror/lang-sql; esbuild leaves out what entry.js does not import), each under the MIT licence."
  for dir in node_modules/codemirror node_modules/@codemirror/* node_modules/@lezer/* \
    node_modules/@marijn/* node_modules/style-mod node_modules/w3c-keyname node_modules/crelt; do
    [ -f "$dir/package.json" ] || continue
    case "$dir" in */esbuild|*/@esbuild*) continue ;; esac
    name=$(node -p "require('./$dir/package.json').name")
    version=$(node -p "require('./$dir/package.json').version")
    echo
    echo "==== $name $version ===="
    cat "$dir/LICENSE" 2>/dev/null || cat "$dir/LICENSE.md" 2>/dev/null || echo "(MIT, see package.json)"
  done
} >"$out/LICENSE"

for dir in node_modules/codemirror node_modules/@codemirror/* node_modules/@lezer/* node_modules/esbuild; do
  [ -f "$dir/package.json" ] && node -p "require('./$dir/package.json').name + ' ' + require('./$dir/package.json').version"
done
ls -l "$out/codemirror-sql.min.js"
