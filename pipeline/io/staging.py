"""Recompute a store group aside and swap it in only when complete, so a failure never loses the last good one.

A stage that rewrites `<store>/<name>` (detect: `damage/`, inpaint: `restored/`, an edited mask:
`mask_edited/`) writes the new version as `<store>/<name>.partial`, marks it complete, then swaps:
`<name>` -> `<name>.old`, `<name>.partial` -> `<name>`, `<name>.old` removed (on an object store, which
cannot rename: the old group is removed, marker first, and the partial copied in, marker last). Until the
swap, readers see
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
    fs.invalidate_cache()
    return fs.exists(path)


def _move(store: str, source: str, target: str) -> None:
    """Local: one atomic rename. Remote (object stores have no rename): copy file by file with the group's
    own `zarr.json`, which holds the completion marker, last, then remove the source."""
    if is_local(store):
        os.replace(Path(local_path(store), source), Path(local_path(store), target))
        return
    fs, path = fs_and_path(store)
    fs.invalidate_cache()
    src, dst = f"{path}/{source}", f"{path}/{target}"
    files = sorted(fs.find(src), key=lambda f: f == f"{src}/zarr.json")
    for file in files:
        fs.copy(file, dst + file[len(src) :])
    remove(store, source)


def remove(store: str, name: str) -> None:
    """Delete group `name` of the store, if there (remote: its marker first, so it never looks complete)."""
    if is_local(store):
        shutil.rmtree(Path(local_path(store), name), ignore_errors=True)
        return
    fs, path = fs_and_path(join(store, name))
    fs.invalidate_cache()
    if fs.exists(f"{path}/zarr.json"):
        fs.rm(f"{path}/zarr.json")
    if fs.exists(path):
        fs.rm(path, recursive=True)
    fs.invalidate_cache()


def recover(store: str, name: str) -> None:
    """Finish a swap a crash interrupted: a complete `.partial` while `name` is absent or incomplete is moved
    into place; a leftover `.old` is removed once `name` is complete again."""
    if group_info(store, name) is None and group_info(store, partial_name(name)) is not None:
        remove(store, name)
        _move(store, partial_name(name), name)
    if group_info(store, name) is not None and _exists(store, name + OLD_SUFFIX):
        remove(store, name + OLD_SUFFIX)


def swap_in(store: str, name: str) -> None:
    """Replace `<store>/<name>` by its complete `.partial` (locally by two renames, the previous version
    removed after; remotely the previous version is removed first, its marker before anything else)."""
    if group_info(store, partial_name(name)) is None:
        raise RuntimeError(f"{join(store, partial_name(name))}: not complete; refusing to swap it in")
    if not is_local(store):
        remove(store, name)
        _move(store, partial_name(name), name)
        return
    old = name + OLD_SUFFIX
    remove(store, old)
    if _exists(store, name):
        _move(store, name, old)
    _move(store, partial_name(name), name)
    remove(store, old)
