"""Provenance of a restored store: unique ids that merge across stores and reruns, what each run used and
generated, history kept across --force, per-chunk digest sidecars, `retouch verify`, `retouch lineage`,
the Workflow Run RO-Crate and summary.json."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from prov.model import ProvDocument
from typer.testing import CliRunner

from pipeline.audit.lineage import lineage
from pipeline.audit.verify import verify_store
from pipeline.engine.runner import EngineConfig
from pipeline.io.digests import read_sidecar
from pipeline.io.store import group_info
from pipeline.provenance import list_documents, read_document
from pipeline.stages.detect import DEFAULT_WEIGHTS, DetectConfig, detect
from pipeline.stages.export import export
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

QUIET = EngineConfig(workers=2, progress=False)
CATALOG = {"id": "leyster", "title": "Self-Portrait", "creator": "Judith Leyster", "date": "c. 1630",
           "institution": "National Gallery of Art", "accession_number": "1949.6.1", "licence": "CC0"}


def _restored_store(root: Path, name: str, seed: int) -> str:
    from test_stages import damaged_scan

    image, _ = damaged_scan((300, 260), np.uint8, seed=seed)
    src = root / f"{name}.tif"
    tifffile.imwrite(src, image, photometric="rgb", tile=(64, 64))
    store = str(root / f"{name}.zarr")
    ingest(src, store, IngestConfig(chunk=128, top_level_max_side=128, pixel_size_um=12.5), QUIET)
    detect(store, DetectConfig(tile=256), QUIET)
    inpaint_store(store, InpaintStageConfig(tile=128, overlap=32), QUIET)
    return store


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_manifest: Path) -> Iterator[dict[str, str]]:
    """Two restored stores; the first exported, then detect rerun with another threshold and inpaint again."""
    root = tmp_path_factory.mktemp("prov")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETOUCH_WEIGHTS_MANIFEST", str(tiny_manifest))
        a, b = _restored_store(root, "a", 3), _restored_store(root, "b", 4)
        mask = np.zeros((300, 260), np.uint8)
        mask[120:140, 120:200] = 255  # a conservator's mask across two chunks
        tifffile.imwrite(root / "edited.tif", mask)
        inpaint_store(b, InpaintStageConfig(tile=128, overlap=32), QUIET, mask=root / "edited.tif")
        export(a, root / "a-export", catalog=CATALOG)
        clean = str(root / "a-clean.zarr")
        shutil.copytree(a, clean)
        before = group_info(a, "damage")
        detect(a, DetectConfig(tile=256, threshold=0.6), QUIET)
        inpaint_store(a, InpaintStageConfig(tile=128, overlap=32), QUIET)
        yield {"a": a, "b": b, "clean": clean, "export": str(root / "a-export"),
               "old_labels": before["prov"]["entities"]["scan/labels/damage/0"]["id"]}


def _documents(*stores: str) -> list[ProvDocument]:
    return [read_document(url) for store in stores for url in list_documents(store)]


def test_documents_of_two_stores_and_a_rerun_merge_without_conflict(built: dict[str, str]) -> None:
    merged = ProvDocument()
    for doc in _documents(built["a"], built["b"]):
        merged.update(doc)
    unified = merged.unified()  # raises ProvUnificationError on an id with conflicting start/end times
    digests: dict[str, set[str]] = {}
    for record in unified.get_records():
        if record.get_type().localpart == "Entity":
            values = {str(v) for k, v in record.attributes if k.localpart in ("digest", "sha256")}
            digests.setdefault(record.identifier.uri, set()).update(values)
    assert len(digests) > 20
    assert all(len(v) <= 1 for v in digests.values()), {k: v for k, v in digests.items() if len(v) > 1}
    a_uuid = zarr.open_group(built["a"], mode="r").attrs["retouch_store"]["uuid"]
    b_uuid = zarr.open_group(built["b"], mode="r").attrs["retouch_store"]["uuid"]
    assert a_uuid != b_uuid
    scan_ids = [uri for uri in digests if ":scan/0@" in uri]  # urn:retouch:store:<store>:scan/0@<run>
    assert len(scan_ids) == 2 and {uri.split(":")[3] for uri in scan_ids} == {a_uuid, b_uuid}


def test_rerun_invalidates_what_it_replaced_and_keeps_the_old_mask_identifiable(built: dict[str, str]) -> None:
    docs = [json.loads(d.serialize(format="json")) for d in _documents(built["a"])]
    old_local = built["old_labels"]
    detects = [d for d in docs if any(a["retouch:stage"] == "detect" for a in d["activity"].values())]
    assert len(detects) == 2
    rerun = next(d for d in detects if old_local in json.dumps(d.get("wasInvalidatedBy", {})))
    first = next(d for d in detects if d is not rerun)
    assert old_local in first["entity"]  # the first detect generated it: still in the history
    inpaints = [d for d in docs if any(a["retouch:stage"] == "inpaint" for a in d["activity"].values())]
    first_inpaint = min(inpaints, key=lambda d: next(iter(d["activity"].values()))["prov:startTime"])
    used = {u["prov:entity"] for u in first_inpaint["used"].values()}
    assert old_local in used  # the mask restored/ was first made from is named as the first detect named it
    second_inpaint = max(inpaints, key=lambda d: next(iter(d["activity"].values()))["prov:startTime"])
    assert second_inpaint.get("wasInvalidatedBy")


def test_each_run_has_real_times_typed_parameters_and_relative_paths(built: dict[str, str]) -> None:
    workdir = str(Path(built["a"]).parent)
    for doc in _documents(built["a"]):
        text = json.loads(doc.serialize(format="json"))
        (activity,) = text["activity"].values()
        start, end = (dt.datetime.fromisoformat(activity[k]) for k in ("prov:startTime", "prov:endTime"))
        assert start < end
        assert workdir not in json.dumps(text)  # no absolute path of the store, scan or export
    detect_doc = next(json.loads(d.serialize(format="json")) for d in _documents(built["a"])
                      if "detect" in d.serialize(format="json"))
    (activity,) = detect_doc["activity"].values()
    assert activity["param:threshold"]["type"] == "xsd:double" and activity["param:tile"]["type"] == "xsd:int"
    weights = [e for i, e in detect_doc["entity"].items() if i.startswith("sha256:")]
    assert weights and weights[0]["retouch:name"] == DEFAULT_WEIGHTS


def test_export_uses_the_scan_and_each_file_derives_from_what_made_it(built: dict[str, str]) -> None:
    summary = json.loads((Path(built["export"]) / "summary.json").read_text())
    doc = json.loads(read_document(str(Path(built["clean"]) / summary["provenance_document"])).serialize(format="json"))
    used = {u["prov:entity"].split(":", 1)[1].split("@")[0] for u in doc["used"].values()}
    assert {"scan/0", "restored/0"} <= used and any(u.startswith("scan/labels/damage/") for u in used)
    derived: dict[str, set[str]] = {}
    for rel in doc["wasDerivedFrom"].values():
        name = rel["prov:generatedEntity"].split(":", 1)[1].split("@")[0]
        derived.setdefault(name, set()).add(rel["prov:usedEntity"].split(":", 1)[1].split("@")[0])
    assert derived["export/preview-scan.png"] == {"scan/0"}
    assert derived["export/preview-restored.png"] == {"restored/0"}
    assert all(s.startswith("restored/") for s in derived["export/restored.tif"])


def test_summary_has_schema_software_catalog_pixel_size_and_relative_paths(built: dict[str, str]) -> None:
    summary = json.loads((Path(built["export"]) / "summary.json").read_text())
    assert summary["schema_version"] == 2 and summary["software"]["version"]
    assert summary["catalog"]["accession_number"] == "1949.6.1" and summary["catalog"]["licence"] == "CC0"
    assert summary["pixel_size_um"] == 12.5
    assert summary["store"] == "../a.zarr" and summary["source"] == "a.tif"
    assert all(p.startswith("provenance/") for p in summary["provenance"])
    dt.datetime.fromisoformat(summary["created"])


def test_every_array_has_a_digest_sidecar_naming_its_algorithm(built: dict[str, str]) -> None:
    sidecar = read_sidecar(built["a"], "restored/0")
    assert sidecar["algorithm"] == "retouch-chunk-sha256/1" and len(sidecar["chunks"]) == 9
    assert sidecar["combined"] == group_info(built["a"], "restored")["digests"]["0"]
    assert sidecar["generated_by"] == group_info(built["a"], "restored")["prov"]["activity"]


def test_verify_a_clean_store_then_a_tampered_and_a_corrupted_chunk(built: dict[str, str], tmp_path: Path) -> None:
    report = verify_store(built["clean"])
    assert report.ok and report.chunks > 30
    store = tmp_path / "t.zarr"
    shutil.copytree(built["clean"], store)
    array = zarr.open_array(store / "restored" / "0", mode="a")  # tampered: re-encoded with one pixel changed
    array[0, 130, 140] = array[0, 130, 140] ^ 0xFF
    chunk_file = store / "scan" / "0" / "c" / "0" / "2" / "1"  # corrupted: one byte flipped in the zstd frame
    raw = bytearray(chunk_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk_file.write_bytes(bytes(raw))
    result = CliRunner().invoke(_app(), ["verify", str(store)])
    assert result.exit_code == 1, result.output
    assert "restored/0 chunk 1,1: mismatch" in result.output
    assert "scan/0 chunk 2,1:" in result.output
    problems = verify_store(str(store)).problems
    assert {(p.array, p.chunk) for p in problems} == {("restored/0", (1, 1)), ("scan/0", (2, 1))}
    clean = CliRunner().invoke(_app(), ["verify", built["clean"]])
    assert clean.exit_code == 0 and f"all {report.chunks} chunks" in clean.output


def test_lineage_of_a_region_across_chunk_borders(built: dict[str, str]) -> None:
    answer = lineage(built["clean"], (100, 100, 60, 60))
    restored = answer["steps"][0]
    assert restored["array"] == "restored/0"
    assert sorted(tuple(c["chunk"]) for c in restored["chunks"]) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(c["sha256"] for step in answer["steps"] for c in step["chunks"])
    arrays = [s["array"] for s in answer["steps"]]
    assert arrays == ["restored/0", "scan/labels/damage/0", "scan/0"]
    assert {w["name"] for w in answer["weights"]} == {"inpainter-pconv", DEFAULT_WEIGHTS}
    assert [r["stage"] for r in answer["runs"]] == ["inpaint", "detect", "ingest"]
    assert answer["runs"][1]["parameters"]["threshold"] == 0.5
    scan_chunks = {tuple(c["chunk"]) for c in answer["steps"][-1]["chunks"]}
    assert {(0, 0), (1, 1)} <= scan_chunks
    result = CliRunner().invoke(_app(), ["lineage", built["clean"], "--region", "100,100,60,60", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["region"]["width"] == 60
    short = CliRunner().invoke(_app(), ["lineage", built["clean"], "--region", "100,100,60,60"])
    assert "restored/0: 4 chunks" in short.output and "run detect" in short.output
    bad = CliRunner().invoke(_app(), ["lineage", built["clean"], "--region", "250,0,60,60"])
    assert bad.exit_code == 2 and "leaves the image (260 px wide, 300 px high)" in bad.output


def test_lineage_names_an_edited_mask_and_a_damage_region(built: dict[str, str]) -> None:
    answer = lineage(built["b"], (100, 100, 60, 60))
    mask = answer["steps"][1]
    assert mask["array"] == "mask_edited/0" and mask["kind"] == "edited" and mask["source"] == "edited.tif"
    assert set(map(tuple, answer["steps"][0]["inpainted"])) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    other = lineage(built["b"], (10, 260, 20, 20))  # far from the edited mask: a copied chunk
    assert other["steps"][0]["copied"] == [[2, 0]] and len(other["steps"][-1]["chunks"]) == 1
    assert [r["stage"] for r in answer["runs"]] == ["inpaint", "ingest"]
    assert verify_store(built["b"]).ok  # the edited mask's arrays have sidecars too
    damage = lineage(built["b"], (0, 0, 10, 10), image="damage")
    assert [s["array"] for s in damage["steps"]] == ["scan/labels/damage/0", "scan/0"]


def test_ro_crate_is_a_workflow_run_crate(built: dict[str, str]) -> None:
    from rocrate.rocrate import ROCrate

    crate = ROCrate(built["export"])
    profiles = {e.id for e in crate.root_dataset["conformsTo"]}
    assert {"https://w3id.org/ro/wfrun/process/0.5", "https://w3id.org/ro/wfrun/workflow/0.5",
            "https://w3id.org/workflowhub/workflow-ro-crate/1.0"} <= profiles
    main = crate.mainEntity
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= set(main.type)
    assert main["programmingLanguage"]["name"] == "Python" and main.get("input")
    actions = [e for e in crate.get_entities() if "CreateAction" in e.type]
    run = next(a for a in actions if a["instrument"] is main)
    assert run["startTime"] and run["endTime"] and run["object"] and run["result"]
    assert {a["name"] for a in actions} >= {"Retouch ingest", "Retouch detect", "Retouch inpaint", "Retouch export"}
    for action in actions:
        assert action["instrument"] and action["startTime"] <= action["endTime"]
    results = {e.id for e in run["result"]}
    assert {"restored.tif", "preview-overlay.png", "before-after.html"} <= results
    for pv in (e for e in run["object"] if "PropertyValue" in e.type):
        assert pv["exampleOfWork"] in main["input"]
    prov = [e for e in crate.data_entities if e.id.startswith("provenance/")]
    assert sorted(e.id.split("/")[1].split("-")[0] for e in prov) == ["detect", "export", "ingest", "inpaint"]
    assert all((Path(built["export"]) / e.id).is_file() for e in prov)
    assert (Path(built["export"]) / "workflow" / "restore.py").is_file()


def test_force_reingest_keeps_the_history(tmp_path: Path) -> None:
    from test_stages import damaged_scan

    image, _ = damaged_scan((100, 100), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", image, photometric="rgb")
    store = str(tmp_path / "s.zarr")
    config = IngestConfig(chunk=64, top_level_max_side=64)
    ingest(tmp_path / "s.tif", store, config, QUIET)
    first = group_info(store, "scan")
    uuid = zarr.open_group(store, mode="r").attrs["retouch_store"]["uuid"]
    ingest(tmp_path / "s.tif", store, config, QUIET, force=True)
    docs = list_documents(store)
    assert len(docs) == 2 and Path(docs[0]).name == Path(first["provenance"]).name  # names sort by start time
    assert zarr.open_group(store, mode="r").attrs["retouch_store"]["uuid"] == uuid
    second = json.loads(read_document(docs[1]).serialize(format="json"))
    assert first["prov"]["entities"]["scan/0"]["id"] in json.dumps(second["wasInvalidatedBy"])


def _app():  # noqa: ANN202
    from flows.cli import app

    return app
