#!/usr/bin/env bash
# The test suite against the wheel, installed outside the checkout (`make test` runs this).
#
#   1. build the sdist and, from it, the wheel (`python -m build`; setuptools comes from the
#      package index into build's isolated environment), from a copy of pyproject.toml,
#      README.md and analogsim/ (so nothing is written into the checkout);
#   2. install the wheel with its `test` extra into a fresh venv in a temporary folder;
#   3. copy tests/ and what the tests read (docs/, examples/, benchmarks/, README.md,
#      pyproject.toml for pytest's settings) into that folder, but not analogsim/, so the
#      only analogsim Python can import is the installed one (tests/test_packaging.py asserts it, and that the wheel
#      holds every file of analogsim/data/), and run pytest there;
#   4. run `analogsim train` with its defaults and a small `analogsim compare` (the README's
#      main job: 2 rules, 1 epoch, 1 seed) from an empty folder with the installed command.
#
# Arguments are passed to pytest. The folder is removed on success and kept on failure.
# PY: the Python that makes the venv (default python3); BUILD_PY: a Python with `build`
# (default the checkout's .venv, which `make install` sets up).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
BUILD_PY=${BUILD_PY:-$REPO/.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/analogsim-installed.XXXXXX")
finish() {
    local status=$?
    if [ "$status" = 0 ]; then
        rm -rf "$WORK"
    else
        echo "test_installed: failed (status $status); kept $WORK" >&2
    fi
}
trap finish EXIT

echo "== build the wheel from $REPO"
mkdir "$WORK/src"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$WORK/src/"
(cd "$REPO" && tar -cf - --exclude=__pycache__ analogsim) | tar -xf - -C "$WORK/src"
if ! "$BUILD_PY" -m build --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
fi
wheels=("$WORK"/dist/*.whl)
wheel=${wheels[0]}

echo "== install $(basename "$wheel") into a fresh venv: $WORK/venv"
"$PY" -m venv "$WORK/venv"
if ! "$WORK/venv/bin/python" -m pip install --quiet "$wheel[test]" >"$WORK/install.log" 2>&1
then
    cat "$WORK/install.log" >&2
    exit 1
fi

echo "== copy the tests (not the package) to $WORK/tree"
mkdir "$WORK/tree"
cp -R "$REPO/tests" "$REPO/docs" "$REPO/examples" "$REPO/benchmarks" "$REPO/pyproject.toml" \
    "$REPO/README.md" "$WORK/tree/"
find "$WORK/tree" -name __pycache__ -type d -prune -exec rm -rf {} +

cd "$WORK/tree"
unset PYTHONPATH
export ANALOGSIM_INSTALLED_PREFIX="$WORK/venv" ANALOGSIM_CHECKOUT="$REPO"
"$WORK/venv/bin/python" - <<'EOF'
import os, pathlib, analogsim
where = pathlib.Path(analogsim.__file__).resolve()
prefix = pathlib.Path(os.environ["ANALOGSIM_INSTALLED_PREFIX"]).resolve()
assert where.is_relative_to(prefix), f"analogsim imported from {where}, not from {prefix}"
print(f"== pytest against {where.parent}")
EOF
"$WORK/venv/bin/python" -m pytest -W error -p no:cacheprovider "$@"

echo "== analogsim train and a small compare, installed, from an empty folder"
mkdir "$WORK/run"
cd "$WORK/run"
"$WORK/venv/bin/analogsim" train --epochs 1 --json >train.json
"$WORK/venv/bin/analogsim" compare --rules bp,dfa --epochs 1 --seeds 1 --workers 1 \
    --out "$WORK/run/compare"
test -s "$WORK/run/compare/compare.md"
echo "== installed package: tests and main job passed"
