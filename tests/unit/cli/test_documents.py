"""cli.documents: the files `zq` reads, in JSON or YAML, refused with where they are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import documents


def test_yaml_and_json_files_hold_the_same_document(tmp_path: Path) -> None:
    value = {"version": 1, "tasks": [{"name": "a", "task_type": "manual_task", "config": {"k": [1, "x"]}}]}
    for name, yaml_syntax in (("doc.yaml", True), ("doc.json", False)):
        path = tmp_path / name
        path.write_text(documents.dump(value, yaml_syntax), encoding="utf-8")
        assert documents.document(documents.read(str(path)), name) == value


def test_a_bare_list_of_tasks_is_a_document() -> None:
    assert documents.document([{"name": "a"}], "f") == {"version": 1, "tasks": [{"name": "a"}]}


@pytest.mark.parametrize("text,yaml_syntax", [('{"a": 1, "a": 2}', False), ("a: 1\na: 2\n", True)])
def test_a_duplicate_key_is_refused(text: str, yaml_syntax: bool) -> None:
    with pytest.raises(documents.DocumentError, match="duplicate key 'a'"):
        documents.parse(text, yaml_syntax)


def test_a_file_that_is_no_document_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(documents.DocumentError, match="broken.json: not valid JSON"):
        documents.read(str(path))
    with pytest.raises(documents.DocumentError, match="'tasks' list"):
        documents.document({"tasks": 3}, "f")


def test_yaml_runs_no_code() -> None:
    with pytest.raises(documents.DocumentError):
        documents.parse("!!python/object/apply:os.system ['true']", yaml_syntax=True)
