"""Recompute a store group aside and swap it in only when complete, so a failure never loses the last good one.

A stage that rewrites `<store>/<name>` (detect: `damage/`, inpaint: `restored/`, an edited mask:
`mask_edited/`) writes the new version as `<store>/<name>.partial`, marks it complete, then swaps:
`<name>` -> `<name>.old`, `<name>.partial` -> `<name>`, `<name>.old` removed. Until the swap, readers see
the previous complete group untouched; a refused or crashed recompute leaves it as it was. The per-chunk
ledger (`_progress/`) belongs to the `.partial` group, so a killed recompute resumes into it.
A crash between the two renames is finished by `recover` at the next stage start.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.io.store import fs_and_path, group_info, is_local, join, local_path

PARTIAL_SUFFIX = ".partial"
OLD_SUFFIX = ".old"


def partial_name(name: str) -> str:
    """The group a recompute of `name` writes into."""
    return f"{name}{PARTIAL_SUFFIX}"


def _exists(store: str, name: str) -> bool:
    if is_local(store):
        return Path(local_path(store), name).exists()
    fs, path = fs_and_path(join(store, name))
    return fs.exists(path)


def _move(store: str, source: str, target: str) -> None:
    if is_local(store):
        os.replace(Path(local_path(store), source), Path(local_path(store), target))
    else:
        fs, path = fs_and_path(store)
        fs.mv(f"{path}/{source}", f"{path}/{target}", recursive=True)


def remove(store: str, name: str) -> None:
    """Delete group `name` of the store, if there."""
    if is_local(store):
        shutil.rmtree(Path(local_path(store), name), ignore_errors=True)
    else:
        fs, path = fs_and_path(join(store, name))
        if fs.exists(path):
            fs.rm(path, recursive=True)


def recover(store: str, name: str) -> None:
    """Finish a swap a crash interrupted: a complete `.partial` with no `name` is moved into place;
    a leftover `.old` is removed once `name` is there again."""
    if not _exists(store, name) and group_info(store, partial_name(name)) is not None:
        _move(store, partial_name(name), name)
    if _exists(store, name) and _exists(store, name + OLD_SUFFIX):
        remove(store, name + OLD_SUFFIX)


def swap_in(store: str, name: str) -> None:
    """Replace `<store>/<name>` by its complete `.partial` (the previous version is removed after)."""
    if group_info(store, partial_name(name)) is None:
        raise RuntimeError(f"{join(store, partial_name(name))}: not complete; refusing to swap it in")
    old = name + OLD_SUFFIX
    remove(store, old)
    if _exists(store, name):
        _move(store, name, old)
    _move(store, partial_name(name), name)
    remove(store, old)

