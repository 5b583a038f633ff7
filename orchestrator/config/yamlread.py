"""Reading YAML while remembering where every value came from.

PyYAML silently keeps the last of two duplicate keys and forgets line numbers once the data is
built. We compose the node tree first to record the line of every key and value (by key path)
and to refuse duplicates, then build plain Python data with the safe loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import ConfigProblem

PathKey = tuple[str | int, ...]

try:  # the C loader is several times faster; fall back when PyYAML was built without libyaml
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

_MERGE_TAG = "tag:yaml.org,2002:merge"
# A configuration for hundreds of clients holds some ten thousand values; past these, the file
# is an accident or an attack (an alias bomb: a kilobyte that expands to a billion values).
MAX_VALUES = 100_000
MAX_BYTES = 5 * 1024 * 1024


@dataclass
class Positions:
    """Line numbers (1-based) of values and keys, by key path."""

    values: dict[PathKey, int] = field(default_factory=dict)
    keys: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey, *, key: bool = False) -> int:
        """The line of ``path`` (of its key when ``key``), else of its nearest known ancestor."""
        probe = path
        while probe:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), 1)


@dataclass
class YamlDocument:
    data: Any
    positions: Positions
    problems: list[ConfigProblem]


def format_path(path: PathKey) -> str:
    """``('clients', 'acme', 'jobs', 'erp', 'vms', 0)`` -> ``clients.acme.jobs.erp.vms[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def read_yaml(text: str, filename: str) -> YamlDocument:
    """Parse ``text``; syntax errors, duplicate keys, a file too large or whose aliases expand
    too far come back as problems, never raised."""
    positions = Positions()
    problems: list[ConfigProblem] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        problems.append(ConfigProblem(
            filename, 0, "", f"the file holds {size / 1024 / 1024:.1f} MB: a configuration is "
                             f"at most {MAX_BYTES // 1024 // 1024} MB"))
        return YamlDocument(None, positions, problems)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        column = f", column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "cannot be read"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        problems.append(
            ConfigProblem(filename, line, "", f"YAML syntax error{column}: {what}{context}")
        )
        return YamlDocument(None, positions, problems)
    except yaml.YAMLError as exc:
        problems.append(ConfigProblem(filename, 0, "", f"YAML syntax error: {exc}"))
        return YamlDocument(None, positions, problems)
    if node is None:
        problems.append(ConfigProblem(filename, 1, "", "the file is empty"))
        return YamlDocument(None, positions, problems)
    shared = _expands_too_far(node)
    if shared is not None:
        problems.append(ConfigProblem(
            filename, shared.start_mark.line + 1, "",
            f"the aliases (*name) of this file expand to more than {MAX_VALUES} values, "
            "starting with the value anchored here: a configuration never needs that many "
            "(write the values out, or repeat fewer)"))
        return YamlDocument(None, positions, problems)
    _walk(node, (), positions, problems, filename)
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:  # a value the safe constructor refuses (bad timestamp, tag)
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problems.append(ConfigProblem(filename, line, "", f"YAML value cannot be read: {exc}"))
        return YamlDocument(None, positions, problems)
    return YamlDocument(data, positions, problems)


def _expands_too_far(root: yaml.Node) -> yaml.Node | None:
    """When the tree, with every alias expanded, holds more than MAX_VALUES nodes: the first
    node (in file order) used more than once; else None. Linear in the composed nodes (each
    shared node is sized once), so a bomb is measured without being expanded."""
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        uses[key] = uses.get(key, 0) + 1
        if key in sizes or uses[key] > 1:
            continue
        order.append(node)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    if sizes[id(root)] <= MAX_VALUES:
        return None
    shared = [n for n in order if uses[id(n)] > 1]
    return min(shared, key=lambda n: n.start_mark.index) if shared else root


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _walk(
    node: yaml.Node,
    path: PathKey,
    positions: Positions,
    problems: list[ConfigProblem],
    filename: str,
    *,
    merged: bool = False,
) -> None:
    if not merged or path not in positions.values:
        positions.values[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                is_list = isinstance(value_node, yaml.SequenceNode)
                sources = value_node.value if is_list else [value_node]
                for source in sources:
                    _walk(source, path, positions, problems, filename, merged=True)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    ConfigProblem(
                        filename, key_node.start_mark.line + 1, format_path(path),
                        "a key must be a plain word, not a list or a mapping",
                    )
                )
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag != "tag:yaml.org,2002:str":
                kind = key_node.tag.rsplit(":", 1)[-1]
                problems.append(ConfigProblem(
                    filename, line, format_path((*path, key)),
                    f"YAML reads the key {key!r} as a {kind}, not as a name (yes/no/on/off are "
                    f"booleans); write it in quotes: '{key}'"))
            child = (*path, key)
            if key in seen and not merged:
                problems.append(
                    ConfigProblem(
                        filename, line, format_path(child),
                        f"duplicate key (first written on line {seen[key]}); YAML would keep "
                        "only the last one silently, so remove or rename one of them",
                    )
                )
                # Go on with the last one, as the data will: its problems are reported too.
                positions.keys.pop(child, None)
                for known in [p for p in positions.values if p[: len(child)] == child]:
                    del positions.values[known]
            seen[key] = line
            if merged and child in positions.keys:
                continue  # an explicit key of the mapping wins over a merged one
            positions.keys[child] = line
            _walk(value_node, child, positions, problems, filename, merged=merged)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), positions, problems, filename, merged=merged)
