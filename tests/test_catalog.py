"""Catalog: the bundled catalog is valid, bad entries are named with their field, the CLI reports both."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_catalog.schema import CatalogError, default_catalog_path, find_entry, load_catalog
from flows.cli import app

GOOD = """
scans:
  - id: girl-with-broom
    source: broom.tif
    title: A Girl with a Broom
    creator: Carel Fabritius
    date: 1651
    institution: National Gallery of Art
    accession_number: 1937.1.60
    licence: CC0
    pixel_size_um: 42.5
"""


def test_bundled_catalog_is_valid_and_its_samples_exist() -> None:
    entries = load_catalog()
    assert entries
    for entry in entries:
        assert Path(entry.resolved_source(default_catalog_path())).is_file()


def test_relative_source_resolves_against_the_catalog_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    entry, path = find_entry("girl-with-broom", tmp_path / "c.yaml")
    assert entry.resolved_source(path) == str(tmp_path / "broom.tif")
    assert entry.date == "1651" and entry.pixel_size_um == 42.5


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("id: girl-with-broom", "id: Girl With Broom"), "entry 1 (id 'Girl With Broom'): field 'id'"),
        (("    licence: CC0\n", ""), "field 'licence': Field required"),
        (("pixel_size_um: 42.5", "pixel_size_um: -1"), "field 'pixel_size_um'"),
        (("pixel_size_um: 42.5", "pixel_size_um: .inf"), "field 'pixel_size_um': Input should be a finite number"),
        (("    licence: CC0\n", "    licence: CC0\n    colour: red\n"), "field 'colour'"),
    ],
)
def test_bad_entry_names_file_entry_and_field(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_duplicate_ids_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + GOOD.split("scans:\n", 1)[1])
    with pytest.raises(CatalogError, match="entry 2 .*duplicate id"):
        load_catalog(path)
    path.write_text("scans: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)


def test_cli_catalog_validate_and_list(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "validate"])
    assert ok.exit_code == 0 and "all valid" in ok.output
    listed = runner.invoke(app, ["catalog", "list"])
    assert listed.exit_code == 0 and "leyster-self-portrait" in listed.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("title: A Girl with a Broom", "title: ''"))
    result = runner.invoke(app, ["catalog", "validate", str(bad)])
    assert result.exit_code == 2 and "field 'title'" in result.output
