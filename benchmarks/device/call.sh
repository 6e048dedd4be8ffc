#!/bin/bash
# On the device machine, from the repository root (as .whl/run.sh, carried with carry=[".whl"]): install the
# carried wheels beside the image's torch, then run the command given, e.g.
#   bash .whl/run.sh python3 benchmarks/bench_restore.py --device cuda --sides 31623 --scans /tmp/scans --json $OUT/r.json
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
[ -d .whl/ic ] && cp -r .whl/ic/. /tmp/site/
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; free -g | head -2; } 2>&1 | tee "${OUT:-/tmp}/machine.log"
python3 -c "import torch, zarr, dask, distributed, segmentation_models_pytorch, prov, imagecodecs; print(torch.__version__, torch.cuda.is_available())" || exit 4
exec "$@"
