"""Files the CLI reads and writes: task documents in JSON or YAML. Pure, no I/O beyond the file.

A document is ``{"version": 1, "tasks": [...]}`` (docs/contract.md, TransferService). YAML is read
with the safe loader and sent as JSON, so the registry sees one format; a file is YAML when its name
ends in .yaml or .yml, JSON otherwise (``-`` is standard input, read as YAML, which JSON is a subset
of). Duplicate keys are refused in both, as the registry refuses them in JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class DocumentError(ValueError):
    """A file that is no document; the message says where."""


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise DocumentError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def is_yaml(name: str) -> bool:
    return name == "-" or name.lower().endswith((".yaml", ".yml"))


def parse(text: str, yaml_syntax: bool) -> Any:
    """The value a file holds."""
    if yaml_syntax:
        try:
            return yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise DocumentError(f"not valid YAML: {exc}") from None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise DocumentError(f"duplicate key {duplicates[0]!r}")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def read(path: str, text: str | None = None) -> Any:
    """The value in the file at `path` (`text` when already read, e.g. standard input)."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DocumentError(f"cannot read {path}: {exc}") from None
    try:
        return parse(text, is_yaml(path))
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None


def document(value: Any, source: str) -> dict[str, Any]:
    """A document from a file's value: an object with a `tasks` list. A bare list of tasks is
    taken as the document's tasks, so a hand-written file can skip the envelope."""
    if isinstance(value, list):
        return {"version": 1, "tasks": value}
    if not isinstance(value, dict) or not isinstance(value.get("tasks"), list):
        raise DocumentError(f"{source}: a document is an object with a 'tasks' list")
    return value


def dump(value: Any, yaml_syntax: bool) -> str:
    if yaml_syntax:
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"
