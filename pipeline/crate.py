"""The export folder as a Workflow Run RO-Crate (`ro-crate-metadata.json`), built with the `rocrate` package.

It follows the Workflow Run Crate profile 0.5 (https://w3id.org/ro/wfrun/workflow/0.5) on RO-Crate 1.1:
the root conforms to the Process Run, Workflow Run and Workflow RO-Crate profiles; its `mainEntity` is the
Retouch restore workflow (a copy of its Prefect flow source, typed File, SoftwareSourceCode and
ComputationalWorkflow); one CreateAction is the whole run (instrument: the workflow, object: the scan and
the parameters, result: the files) and one CreateAction per stage (ingest, detect, inpaint, export) with
its own start and end time, inputs, outputs, weights (by sha256) and parameters (PropertyValue, each an
`exampleOfWork` of the workflow's FormalParameter). The PROV documents of the store are copied into
`provenance/` and listed. The scan and the store arrays are not copied: they are contextual entities
named by their digests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.io.digests import ALGORITHM
from pipeline.io.store import DAMAGE_LABELS, fs_and_path, join

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
WORKFLOW_SOURCE = Path(__file__).resolve().parents[1] / "flows" / "restore.py"
WORKFLOW_PATH = "workflow/restore.py"
PROV_JSON = "https://www.w3.org/submissions/prov-json/"
STAGE_OUTPUTS = {"ingest": "scan/0", "detect": f"{DAMAGE_LABELS}/0", "inpaint": "restored/0"}


def write_crate(out_dir: Path, summary: dict[str, Any], infos: dict[str, dict[str, Any]], export_record: Any,
                store: str) -> Path:
    """Write `<out_dir>/ro-crate-metadata.json` (and `workflow/`, `provenance/`); returns its path.

    `infos`: the completion markers of the ingest, detect and inpaint groups; `export_record`: the export
    run's StageRecord (written, so its times are final).
    """
    from rocrate.model.computerlanguage import ComputerLanguage
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate(version="1.1")
    root = crate.root_dataset
    catalog = summary.get("catalog") or {}
    root["name"] = f"Retouch restoration of {catalog.get('title') or summary.get('source') or 'a scan'}"
    root["description"] = ("Damage map and restored image of a digitized painting, with the W3C PROV record of "
                           "every stage (Retouch).")
    root["license"] = catalog.get("licence") or "unspecified"
    root["datePublished"] = summary["created"]
    root["conformsTo"] = [crate.add(ContextEntity(crate, uri, properties={
        "@type": "CreativeWork", "name": name})) for uri, name in PROFILES.items()]

    software = crate.add(ContextEntity(crate, "#retouch", properties={
        "@type": "SoftwareApplication", "name": "Retouch", "version": summary["software"]["code"]}))
    python = crate.add(ComputerLanguage(crate, "#python", properties={
        "name": "Python", "url": {"@id": "https://www.python.org/"}}))
    workflow_props = {"@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
                      "name": "Retouch restore (ingest, detect, inpaint, export)", "version": __version__,
                      "programmingLanguage": python}
    if WORKFLOW_SOURCE.is_file():
        workflow = crate.add_file(WORKFLOW_SOURCE, WORKFLOW_PATH, properties=workflow_props)
    else:  # an installed Retouch without its flows' source: the workflow is named, not included
        workflow = crate.add(ContextEntity(crate, "#retouch-restore", properties=workflow_props))
    crate.mainEntity = workflow

    scan = crate.add(ContextEntity(crate, "#scan", properties={
        "@type": "File", "name": summary.get("source") or "scan", "sha256": summary.get("source_sha256"),
        "description": "the scan restored (not included: named by its sha256)"}))
    arrays: dict[str, Any] = {}

    def array(path: str, info: dict[str, Any], key: str) -> Any:
        if path not in arrays:
            arrays[path] = crate.add(ContextEntity(crate, f"#store/{path}", properties={
                "@type": "Dataset", "name": f"store array {path}", "sha256": info["digests"][key],
                "description": f"Zarr array in the Retouch store; digest {ALGORITHM} (per-chunk digests in "
                               f"{path}/retouch-digests.json)"}))
        return arrays[path]

    files = {name: crate.add_file(out_dir / name, name, properties={"sha256": meta["sha256"]})
             for name, meta in summary["files"].items()}
    prov_files = _copy_provenance(crate, store, out_dir, summary.get("provenance") or [])

    params: list[Any] = []
    actions = []
    stages = (("ingest", infos["ingest"], "0"), ("detect", infos["detect"], "labels/0"),
              ("inpaint", infos["inpaint"], "0"))
    previous = [scan]
    for stage, info, key in stages:
        stage_params = [_parameter(crate, workflow, stage, k, v)
                        for k, v in sorted((info.get("params") or {}).items()) if v is not None]
        params += stage_params
        objects = [*previous, *stage_params]
        if info.get("weights_sha256"):
            objects.append(crate.add(ContextEntity(crate, f"urn:sha256:{info['weights_sha256']}", properties={
                "@type": "CreativeWork", "name": f"weights {info.get('weights')}", "sha256": info["weights_sha256"],
                "description": "model weights, named by their sha256 (not included)"})))
        result = array(STAGE_OUTPUTS[stage], info, key)
        actions.append(_action(crate, software, stage, info.get("prov") or {}, objects, [result]))
        previous = [result] if stage == "ingest" else [previous[0], result]
    export_params = [_parameter(crate, workflow, "export", k, v) for k, v in export_record.parameters.items()
                     if v is not None]
    params += export_params
    actions.append(_action(crate, software, "export", summary["prov"], [*previous, *export_params],
                           list(files.values())))
    run = crate.add_action(workflow, "#restore-run", object=[scan, *params], result=list(files.values()),
                           properties={"@type": "CreateAction", "name": "Retouch restore run",
                                       "startTime": actions[0].get("startTime"), "endTime": export_record.ended,
                                       "subjectOf": prov_files})
    root["mentions"] = [run, *actions]
    crate.write(out_dir)
    return out_dir / "ro-crate-metadata.json"


def _parameter(crate: Any, workflow: Any, stage: str, name: str, value: Any) -> Any:
    """A parameter value (PropertyValue) and the workflow's FormalParameter it is an example of."""
    from rocrate.model.contextentity import ContextEntity

    kind = "Boolean" if isinstance(value, bool) else "Integer" if isinstance(value, int) else (
        "Float" if isinstance(value, float) else "Text")
    formal = crate.add_formal_parameter(f"{stage}.{name}", kind, identifier=f"#param-{stage}-{name}")
    workflow.append_to("input", formal)
    return crate.add(ContextEntity(crate, f"#value-{stage}-{name}", properties={
        "@type": "PropertyValue", "name": f"{stage}.{name}", "value": value if not isinstance(value, bool)
        else str(value).lower(), "exampleOfWork": formal}))


def _action(crate: Any, software: Any, stage: str, marker: dict[str, Any], objects: list[Any],
            results: list[Any]) -> Any:
    props = {"@type": "CreateAction", "name": f"Retouch {stage}", "identifier": marker.get("activity"),
             "description": f"PROV document: store {marker.get('document')}"}
    props.update({k: v for k, v in (("startTime", marker.get("started")), ("endTime", marker.get("ended"))) if v})
    return crate.add_action(software, f"#run-{stage}", object=objects, result=results, properties=props)


def _copy_provenance(crate: Any, store: str, out_dir: Path, documents: list[str]) -> list[Any]:
    """Copy the store's PROV documents into `<out_dir>/provenance/` and list them in the crate."""
    target = out_dir / "provenance"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    entities = []
    for relative in documents:
        fs, path = fs_and_path(join(store, relative))
        (target / Path(relative).name).write_bytes(fs.cat_file(path))
        entities.append(crate.add_file(target / Path(relative).name, f"provenance/{Path(relative).name}",
                                       properties={"encodingFormat": "application/json",
                                                   "conformsTo": {"@id": PROV_JSON}}))
    return entities
