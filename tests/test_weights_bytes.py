"""Saving the same tensors twice, in two processes, writes the same bytes (so the same sha256)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from models.weights import write_safetensors

META = {f"key{i}": f"value {i}" for i in range(6)} | {"arch_args": '{"classes": 2}'}

SAVE = """
import sys, torch
from pathlib import Path
from models.weights import write_safetensors
tensors = {"b.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
           "a.bias": torch.ones(5, dtype=torch.float16)}
write_safetensors(tensors, Path(sys.argv[1]), {META!r})
"""


def _save_in_a_new_process(path: Path) -> bytes:
    code = SAVE.replace("{META!r}", repr(META))
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=Path(__file__).resolve().parents[1])
    return path.read_bytes()


def test_two_processes_write_the_same_bytes(tmp_path: Path) -> None:
    first = _save_in_a_new_process(tmp_path / "one.safetensors")
    second = _save_in_a_new_process(tmp_path / "two.safetensors")
    assert first == second


def test_the_file_reads_back_whole_with_its_metadata(tmp_path: Path) -> None:
    tensors = {"w": torch.randn(4, 3), "s": torch.tensor([7], dtype=torch.int8)}
    path = tmp_path / "w.safetensors"
    write_safetensors(tensors, path, META)
    assert not path.with_name("w.safetensors.tmp").exists()
    blob = path.read_bytes()
    size = int.from_bytes(blob[:8], "little")
    assert size % 8 == 0
    assert list(json.loads(blob[8:8 + size])["__metadata__"]) == sorted(META)
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == META
        for name, tensor in tensors.items():
            assert torch.equal(fh.get_tensor(name), tensor)
