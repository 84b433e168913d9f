#!/usr/bin/env bash
# Packaging check (issue #13): build the sdist and from it the wheel, install the wheel into a
# fresh venv and use it from a folder outside the clone, where no workflows/ lies beside the
# source tree: the recipes must come from the installed package.
#
#   .ci/check_wheel.sh            # BUILD_PYTHON (default .venv/bin/python) needs `build`
#
# Measured on 2 cores shared with other jobs (load ~9): build 42 s, sample world 75 s,
# gosat-xco2 run 49 s (a pip install of every dependency into the fresh venv took 300 s: the
# dependencies are taken from the CI venv instead, see below).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build_python="${BUILD_PYTHON:-$repo/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fluxscape-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH  # the installed package only, never the clone's source
start=$(date +%s)
step() { echo "+ [$(($(date +%s) - start)) s] $*"; }

# sdist first, then the wheel from the unpacked sdist: checks both carry the recipes, and no
# stale build/ folder of the clone can leak into the wheel.
step "build sdist and wheel"
"$build_python" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/fluxscape-*.whl)"
python3 - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
recipes = sorted(n for n in names if n.startswith("fluxscape/workflows/"))
assert "fluxscape/workflows/demo.yaml" in recipes, f"no recipes in the wheel: {recipes}"
assert "fluxscape/catalog/web/index.html" in names, "no web assets in the wheel"
print(f"  wheel holds {len(recipes)} recipes: {', '.join(r.rsplit('/', 1)[1] for r in recipes)}")
EOF

step "fresh venv, pip install --no-deps $(basename "$wheel")"
python3 -m venv "$work/venv"
# The dependencies come from the CI's own venv, installed from the same pyproject a minute
# ago (a .pth line puts its site-packages after the fresh venv's own): a full dependency
# install takes 5 minutes here and tests pip, not us. Only the fresh venv's site dir is
# processed for .pth files, so the clone's editable install is not seen: fluxscape is the
# wheel's.
deps="$("$build_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
own="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$deps" >"$own/ci-dependencies.pth"
"$work/venv/bin/pip" install -q --no-deps "$wheel"
fluxscape="$work/venv/bin/fluxscape"
export FLUXSCAPE_WHEEL_SITE="$own"

mkdir "$work/elsewhere"
cd "$work/elsewhere"
"$work/venv/bin/python" - <<'EOF'
import fluxscape
from fluxscape.pipeline.recipes import recipe_names, recipes_folder
import os

assert fluxscape.__file__.startswith(os.environ["FLUXSCAPE_WHEEL_SITE"]), fluxscape.__file__
assert "demo.yaml" in recipe_names() and "gosat-xco2.yaml" in recipe_names(), recipe_names()
print(f"  {len(recipe_names())} recipes in {recipes_folder()}")
EOF

step "fluxscape demo --help"
"$fluxscape" demo --help | grep -q -- "--out"

step "fluxscape run no-such.yaml names the shipped recipes"
if "$fluxscape" run no-such.yaml 2>"$work/err.txt"; then
  echo "a missing workflow did not fail" >&2
  exit 1
fi
grep -q "hint: .*demo.yaml.*gosat-xco2.yaml" "$work/err.txt" || { cat "$work/err.txt"; exit 1; }

# SAMPLE_DIR: a sample world already written (CI passes the test run's), saving ~75 s; the
# wheel's own sample-data command is then only asked for its help.
if [ -n "${SAMPLE_DIR:-}" ] && [ -d "$SAMPLE_DIR" ]; then
  step "fluxscape sample-data --help (the sample world of the test run: $SAMPLE_DIR)"
  "$fluxscape" sample-data --help | grep -q -- "--preset"
  sample="$SAMPLE_DIR"
else
  step "fluxscape sample-data sample"
  "$fluxscape" sample-data sample
  sample=sample
fi

step "fluxscape run gosat-xco2.yaml (the shipped recipe, by name)"
"$fluxscape" run gosat-xco2.yaml --data-dir "$sample" --out gosat-out --workers 2

test -f gosat-out/products/gosat_l3.zarr/zarr.json -o -f gosat-out/products/gosat_l3.zarr/.zmetadata
test -f gosat-out/catalog/catalog.json
"$fluxscape" catalog list gosat-out/catalog --json \
  | "$work/venv/bin/python" -c 'import json, sys; ids = [e["id"] for e in json.load(sys.stdin)]; assert ids == ["gosat-xco2.gosat_l3"], ids'
step "wheel check passed"
