"""`Ledger` records each finished task under `<store>/_progress/<stage>/` so that a stage killed halfway
resumes with only the missing tasks."""

from __future__ import annotations

import zarr

from pipeline.io.staging import partial_name
from pipeline.io.store import fs_and_path, join


class Ledger:
    """Per-task completion records of one stage run, keyed so a changed run starts afresh."""

    def __init__(self, store_url: str, stage: str, key: str) -> None:
        self.url = join(store_url, "_progress", stage)
        self.key = key
        self.fs, self.path = fs_and_path(self.url)

    def start(self) -> dict[str, str]:
        """Records of finished tasks (empty, and old records cleared, if the key changed)."""
        key_file = f"{self.path}/key"
        if self.fs.exists(key_file) and self.fs.cat_file(key_file).decode() == self.key:
            done: dict[str, str] = {}
            for entry in self.fs.ls(self.path, detail=False):
                name = entry.rstrip("/").rsplit("/", 1)[-1]
                if name.endswith(".done"):
                    done[name[: -len(".done")]] = self.fs.cat_file(entry).decode()
            return done
        self.clear()
        self.fs.makedirs(self.path, exist_ok=True)
        self.fs.pipe_file(key_file, self.key.encode())
        return {}

    def record(self, task_id: str, value: str) -> None:
        self.fs.pipe_file(f"{self.path}/{task_id}.done", value.encode())

    def clear(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


def resume_group(store_url: str, name: str, ledger: Ledger) -> tuple[zarr.Group, dict[str, str], bool]:
    """The `.partial` group a recompute of `name` writes into, the ledger's finished tasks, and whether the
    group is new: an interrupted run with the same key is resumed, anything else starts afresh."""
    done = ledger.start()
    root = zarr.open_group(store_url, mode="a")
    partial = partial_name(name)
    if done and partial in root:
        return root[partial], done, False
    if done:  # the ledger outlived its group: its records are worthless
        ledger.clear()
        done = ledger.start()
    return root.create_group(partial, overwrite=True), done, True
