#!/bin/bash
# Here (not on the device): download the cp312 wheels a device call needs beyond the device image's own torch,
# timm, numpy, tifffile, scikit-image and opencv into the ignored .whl/ (about 18 MB), for carry=[".whl"], with
# the PNG codec of imagecodecs (the export stage's previews) cut out of its 28 MB wheel into .whl/ic/.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_28_x86_64 -d .whl \
  zarr==3.1.6 numcodecs==0.16.6 donfig google-crc32c dask==2026.8.0 distributed==2026.8.0 partd locket zict tblib \
  tornado importlib_metadata lazy_importer segmentation_models_pytorch==0.6.0 prov==3.2.3
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
  -d .whl/full imagecodecs
rm -rf .whl/ic && mkdir -p .whl/ic/imagecodecs .whl/ic/imagecodecs.libs
unzip -q -o .whl/full/imagecodecs-*.whl 'imagecodecs/*.py' 'imagecodecs/_png.*' 'imagecodecs/_shared*' \
  'imagecodecs.libs/libpng16*' -d .whl/ic
rm -rf .whl/full .whl/ic/imagecodecs/{zarr,numcodecs}.py
cp benchmarks/device/call.sh .whl/run.sh
ls .whl
