#!/usr/bin/env bash
# The GPU checks, in one call of the lent machine (device tool `run`, carry [".whl"]), from
# the repository root; the wheels come from benchmarks/gpu/fetch_wheels.sh:
#   bash benchmarks/gpu/check.sh
# The CUDA-only tests (fp16 CLIP against the CPU, torch and faiss-gpu kNN), the encoder's
# launched work per batch, then the ingest benchmark's CLIP runs, the store's writes in a process of
# their own and not (docs/ingest.md, "On a GPU machine"). Output under $OUT (comes back) or /tmp/gpu-out.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_encoders.py tests/test_nearest.py 2>&1 | tee "$out/tests.txt"
python3 benchmarks/encoder_ops.py --device cuda --batch 256 --repeats 20 2>&1 | tee "$out/encoder_ops.txt"
# The store written by its own process (the default with spare cores) and in the watcher's,
# alternating, so that the two compare within this call (a fresh machine each call).
for mode in 1 0 1 0; do
  EVOWATCH_WRITER_PROCESS=$mode python3 benchmarks/ingest.py --only clip --clip-images 20000 2>&1 \
    | tee -a "$out/ingest_clip_writer_process_$mode.txt"
done
