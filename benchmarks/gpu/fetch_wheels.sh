#!/usr/bin/env bash
# Fetch, on a machine with the package registries, the wheels the lent GPU machine lacks
# (its image has torch, numpy, scipy, scikit-learn, pillow, timm, huggingface_hub, tqdm,
# pytest; not open_clip, zarr, FAISS, openTSNE, watchdog): Python 3.12, x86-64, the
# versions this project's venv holds, into .whl/ (kept out of git by .git/info/exclude).
#   bash benchmarks/gpu/fetch_wheels.sh [.venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${1:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
names="open_clip_torch ftfy wcwidth zarr numcodecs donfig google-crc32c faiss-cpu openTSNE watchdog"
pins=$("$python" -m pip list --format=freeze 2>/dev/null | grep -iE "^($(echo $names | tr ' ' '|' | sed 's/_/[-_]/g'))==" )
rm -rf .whl && mkdir .whl
platforms=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $p"
done
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d .whl $pins
ls -1 .whl
du -sh .whl
