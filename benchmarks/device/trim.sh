#!/bin/bash
# Here (not on the device): `trim.sh out` moves what a device call need not carry out of the working tree (the
# tree must stay under the 64 MiB a call carries): every detector's weights but the default's, the inpainter
# stays, every *.eval.json, docs/images, data_catalog/samples and benchmarks/results; `trim.sh back` puts them back (git status is then clean again).
set -euo pipefail
cd "$(dirname "$0")/../.."
STASH=${RETOUCH_TRIM_STASH:-/tmp/retouch-trim}
KEEP=$(sed -n 's/^DEFAULT_WEIGHTS = "\(.*\)"/\1/p' pipeline/stages/detect.py)
case "${1:-}" in
  out)
    mkdir -p "$STASH/weights" "$STASH/docs"
    for f in models/weights/*.safetensors models/weights/*.eval.json; do
      case "$(basename "$f")" in "$KEEP.safetensors"|inpainter-pconv.safetensors) ;; *) mv "$f" "$STASH/weights/" ;; esac
    done
    mv docs/images "$STASH/docs/images"
    mv data_catalog/samples "$STASH/samples"
    mv benchmarks/results "$STASH/results"
    du -sh --exclude=.git --exclude=.venv --exclude=runs --exclude=retouch-out . ;;
  back)
    mv "$STASH"/weights/* models/weights/
    mv "$STASH/docs/images" docs/images
    mv "$STASH/samples" data_catalog/samples
    mv "$STASH/results" benchmarks/results
    git status --short ;;
  *) echo "usage: $0 out|back" >&2; exit 2 ;;
esac
