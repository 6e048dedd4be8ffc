"""The store's own detector weights, made by `adapt`: `<store>/weights/`.

    weights/zarr.json              a Zarr group whose completion marker names the weights, their sha256, the
                                   base weights, the scribbles' digest and the scan they were fitted on
    weights/adapted.safetensors    the whole adapted network (base and head): safetensors, never pickled
    weights/manifest.json          its manifest entry (models.weights format: architecture, arguments, sha256)

A new fit is written as `weights.partial/` and swapped in when complete (pipeline.io.staging), so a killed
or failed adapt leaves the last good weights as they were. Only local stores hold weights (the network is
loaded from a file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.io.staging import recover
from pipeline.io.store import group_info, is_local, local_path

WEIGHTS_GROUP = "weights"
ADAPTED_NAME = "adapted"
ADAPTED_FILE = f"{ADAPTED_NAME}.safetensors"
MANIFEST_FILE = "manifest.json"


def weights_dir(store: str, group: str = WEIGHTS_GROUP) -> Path:
    """The local folder of the store's weights group (refused for a remote store, in one line)."""
    if not is_local(store):
        raise ConfigError(f"{store}: adapted weights are kept in local stores only (copy the store to a local "
                          "folder to adapt it)")
    return Path(local_path(store)) / group


def store_manifest(store: str) -> Path:
    return weights_dir(store) / MANIFEST_FILE


def adapted_info(store: str) -> dict[str, Any] | None:
    """The completion marker of the store's adapted weights (a swap a crash interrupted is finished first),
    or None when the store has none (or is remote)."""
    if not is_local(store):
        return None
    recover(store, WEIGHTS_GROUP)
    return group_info(store, WEIGHTS_GROUP)


def fitted_scale(entry: Any) -> float:
    """The scale at which adapted weights were fitted (`retouch adapt --scale`), from their manifest entry; 1 for
    weights fitted before adapt took a scale."""
    return float((entry.training.get("fit") or {}).get("scale", 1.0))
