"""`Ledger` records each finished task under `<store>/_progress/<stage>/` so that a stage killed halfway
resumes with only the missing tasks."""

from __future__ import annotations

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
