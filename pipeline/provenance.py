"""W3C PROV-JSON for every stage run, built with the `prov` package.

A stage run is an activity (stage name, parameters, start/end time) that used input entities (a file
with size and sha256, or a store array with its content digest), generated output entities (array path,
shape, dtype, digest combined from per-chunk digests), and was associated with an agent (Retouch version,
git commit where known, host). Documents live under `<store>/provenance/<stage>-<time>.json`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import platform
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prov.model import ProvDocument

from pipeline import __version__
from pipeline.io.store import fs_and_path, join

NAMESPACE = "retouch"
NAMESPACE_URI = "urn:retouch:"
REPO_ROOT = Path(__file__).resolve().parents[1]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the running code where it is a git checkout, else None."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def code_version() -> str:
    commit = git_commit()
    return f"{__version__}+{commit[:12]}" if commit else __version__


def file_entity(path: str | Path, digest: str | None = None) -> dict[str, Any]:
    """An input file: path, size, sha256."""
    path = Path(path)
    return {
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "sha256": digest or sha256_file(path),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class StageRecord:
    """What one stage run did; `document()` turns it into PROV."""

    stage: str
    parameters: dict[str, Any]
    run_id: str | None = None
    started: str = field(default_factory=_now)
    ended: str | None = None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    derivations: list[tuple[str, str]] = field(default_factory=list)
    informed_by: list[str] = field(default_factory=list)

    def used(self, name: str, **attrs: Any) -> None:
        self.inputs[name] = attrs

    def generated(self, name: str, derived_from: list[str] | None = None, **attrs: Any) -> None:
        self.outputs[name] = attrs
        for source in derived_from or list(self.inputs):
            self.derivations.append((name, source))

    def finish(self) -> None:
        self.ended = _now()

    def document(self) -> ProvDocument:
        doc = ProvDocument()
        doc.add_namespace(NAMESPACE, NAMESPACE_URI)
        doc.add_namespace("prov", "http://www.w3.org/ns/prov#")
        act_id = f"{NAMESPACE}:run-{self.stage}-{uuid.uuid4().hex[:12]}"
        activity = doc.activity(
            act_id,
            startTime=dt.datetime.fromisoformat(self.started),
            endTime=dt.datetime.fromisoformat(self.ended or _now()),
            other_attributes={
                f"{NAMESPACE}:stage": self.stage,
                f"{NAMESPACE}:parameters": json.dumps(self.parameters, sort_keys=True, default=str),
                f"{NAMESPACE}:prefect_run_id": self.run_id or "",
            },
        )
        agent = doc.agent(
            f"{NAMESPACE}:retouch-{code_version()}",
            {
                "prov:type": "prov:SoftwareAgent",
                f"{NAMESPACE}:version": __version__,
                f"{NAMESPACE}:git_commit": git_commit() or "unknown",
                f"{NAMESPACE}:host": socket.gethostname(),
                f"{NAMESPACE}:user": _user(),
                f"{NAMESPACE}:python": platform.python_version(),
            },
        )
        doc.wasAssociatedWith(activity, agent)
        ids: dict[str, Any] = {}
        for name, attrs in self.inputs.items():
            ids[name] = doc.entity(_entity_id(name), _attributes(attrs))
            doc.used(activity, ids[name])
        for name, attrs in self.outputs.items():
            ids[name] = doc.entity(_entity_id(name), _attributes(attrs))
            doc.wasGeneratedBy(ids[name], activity)
        for output, source in self.derivations:
            if source in ids and output in ids:
                doc.wasDerivedFrom(ids[output], ids[source])
        for previous in self.informed_by:
            doc.wasInformedBy(activity, f"{NAMESPACE}:{previous}")
        return doc

    def write(self, store_url: str) -> str:
        """Serialise to `<store>/provenance/<stage>-<time>.json`; returns its URL."""
        if self.ended is None:
            self.finish()
        stamp = self.started.replace(":", "").replace("-", "").split(".")[0]
        url = join(store_url, "provenance", f"{self.stage}-{stamp}-{uuid.uuid4().hex[:6]}.json")
        fs, path = fs_and_path(url)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "w") as fh:
            fh.write(self.document().serialize(format="json", indent=2))
        return url


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _entity_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return f"{NAMESPACE}:{safe}"


def _attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True, default=str)
        out[f"{NAMESPACE}:{key}"] = value
    return out


def read_document(url: str) -> ProvDocument:
    """Read a PROV-JSON document back with the `prov` package."""
    fs, path = fs_and_path(url)
    with fs.open(path, "r") as fh:
        return ProvDocument.deserialize(content=fh.read(), format="json")


def list_documents(store_url: str) -> list[str]:
    fs, path = fs_and_path(join(store_url, "provenance"))
    if not fs.exists(path):
        return []
    return sorted(p for p in fs.ls(path, detail=False) if p.endswith(".json"))
