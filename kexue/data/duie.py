"""Triple-extraction data: DuIE / LIC2019 files and the fetched DuIE sample (用bert4keras做三元组抽取,
https://kexue.fm/archives/7161). Every bad record is a :class:`~kexue.errors.UsageError` naming file and line.

:func:`read_duie` reads one sentence a record, from JSON lines (one object a line, blank lines skipped) or from one
JSON array of the same objects (a file whose first character is ``[``). A record is one of:

* LIC2019 / DuIE 1.0: ``{"text": ..., "spo_list": [{"subject", "predicate", "object", "subject_type",
  "object_type"}, ...]}``; the two types are optional.
* DuIE 2.0: the same, except that ``object`` and ``object_type`` may be dicts ``{"@value": ..., "inWork": ...}``;
  the ``@value`` slot is taken and the other slots (the qualifiers of DuIE 2.0's complex objects) are dropped.
* CasRel: ``{"text": ..., "triple_list": [[subject, predicate, object], ...]}`` (no types).

:func:`read_schema` reads the predicates of an ``all_50_schemas`` / ``duie_schema.json`` file or of CasRel's
``relation.json``. :func:`duie_examples` and :func:`duie_predicates` are the asset ``kexue fetch duie`` brings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, partial
from os import PathLike
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kexue.assets import asset_path
from kexue.data.readers import json_lines, utf8_lines
from kexue.errors import UsageError

Triple = tuple[str, str, str]  # (subject, predicate, object), exact strings of the sentence


@dataclass(frozen=True)
class TripleExample:
    """One sentence and its triples.

    Attributes:
        text: the sentence as in the file (not stripped: models index its characters).
        triples: distinct ``(subject, predicate, object)`` triples, file order (a repeat within a sentence is
            dropped: scores compare sets).
        types: ``(subject_type, object_type)`` of each triple, parallel to ``triples``, ``""`` where a file gives
            none; ``()`` when no triple of the sentence carries a type (CasRel's layout never does).
    """

    text: str
    triples: tuple[Triple, ...]
    types: tuple[tuple[str, str], ...] = ()


def _records(path: Path) -> Iterator[tuple[int, object]]:
    """``(line, parsed value)`` of each record of a JSON-lines file or of the elements of a JSON array file."""
    first = next((line for line in utf8_lines(path) if line.strip()), "")
    if not first.lstrip().startswith("["):
        yield from json_lines(path, "sentences")
        return
    text, decoder = "".join(utf8_lines(path)), json.JSONDecoder()
    space = re.compile(r"\s*")
    pos, line, counted = space.match(text, text.index("[") + 1).end(), 1, 0

    def line_at(at: int) -> int:  # counts newlines incrementally: the file may be large
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, at), at
        return line

    if text.startswith("]", pos):
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise UsageError(f"malformed JSON ({err.msg}, column {err.colno})", path, err.lineno) from None
        yield line_at(pos), value
        pos = space.match(text, end).end()
        if text.startswith(",", pos):
            pos = space.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            break
        else:
            raise UsageError("malformed JSON (expected ',' or ']' after an array element)", path, line_at(pos))
    rest = space.match(text, pos + 1).end()
    if rest < len(text):
        raise UsageError("malformed JSON (extra data after the array)", path, line_at(rest))


def _string(value: object, where: str, fail: Callable[[str], UsageError], empty: bool = False) -> str:
    """``value`` or its DuIE 2.0 ``@value`` slot, checked to be a (non-blank, unless ``empty``) string."""
    if isinstance(value, dict):
        if "@value" not in value:
            raise fail(f"{where} is an object without '@value'")
        value = value["@value"]
    if not isinstance(value, str) or not (empty or value.strip()):
        raise fail(f"{where} must be a non-empty string, found {json.dumps(value, ensure_ascii=False)[:40]}")
    return value


def _example(record: object, predicates: set[str] | None, path: Path, lineno: int) -> TripleExample:
    def fail(why: str) -> UsageError:
        return UsageError(why, path, lineno)

    if not isinstance(record, dict):
        raise fail(f"expected a JSON object with 'text' and 'spo_list', found {type(record).__name__}")
    if "text" not in record:
        raise fail("missing key 'text'")
    text = _string(record["text"], "'text'", fail)
    key = "spo_list" if "spo_list" in record else "triple_list" if "triple_list" in record else None
    if key is None:
        raise fail("missing key 'spo_list' (or CasRel's 'triple_list')")
    if not isinstance(record[key], list):
        raise fail(f"'{key}' must be a list, found {type(record[key]).__name__}")
    found: dict[Triple, tuple[str, str]] = {}  # insertion-ordered: the first of repeated triples wins
    for i, item in enumerate(record[key]):
        where = f"{key}[{i}]"
        if key == "spo_list":
            if not isinstance(item, dict):
                raise fail(f"{where} must be an object with subject, predicate, object")
            missing = [k for k in ("subject", "predicate", "object") if k not in item]
            if missing:
                raise fail(f"{where}: missing key {missing[0]!r}")
            s, p, o = (_string(item[k], f"{where}.{k}", fail) for k in ("subject", "predicate", "object"))
            types = tuple(_string(item.get(k, ""), f"{where}.{k}", fail, empty=True)
                          for k in ("subject_type", "object_type"))
        else:
            if not isinstance(item, list) or len(item) != 3:
                raise fail(f"{where} must be a list [subject, predicate, object]")
            s, p, o = (_string(v, f"{where}[{j}]", fail) for j, v in enumerate(item))
            types = ("", "")
        for role, value in (("subject", s), ("object", o)):
            if value not in text:
                raise fail(f"{where}: {role} {value!r} is not in the text")
        if predicates is not None and p not in predicates:
            raise fail(f"{where}: predicate {p!r} is not one of the {len(predicates)} predicates of the schema")
        found.setdefault((s, p, o), types)  # type: ignore[arg-type]
    return _example_of(text, found)


def _example_of(text: str, found: dict[Triple, tuple[str, str]]) -> TripleExample:
    """The example of ``text`` with the triples and types of ``found``; no types when all are blank."""
    return TripleExample(text, tuple(found), tuple(found.values()) if any(any(t) for t in found.values()) else ())


def read_duie(path: str | PathLike, predicates: Iterable[str] | None = None) -> list[TripleExample]:
    """Read a triple-extraction file (a layout of the module docstring) into examples, file order.

    A missing file, malformed JSON, a record that is not an object, a missing key (``text``, ``spo_list`` or
    ``triple_list``, a triple's ``subject`` / ``predicate`` / ``object``), a blank string, a subject or object
    that is not a substring of its text, a predicate not in ``predicates`` (when given), or a file without
    records raises :class:`~kexue.errors.UsageError` naming file and line. A sentence may have no triples.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    allowed = None if predicates is None else set(predicates)
    rows = [_example(record, allowed, path, lineno) for lineno, record in _records(path)]
    if not rows:
        raise UsageError("no sentences in file", path)
    return rows


def unique_sentences(examples: Iterable[TripleExample]) -> list[TripleExample]:
    """One example per distinct text, sorted by text: what a corpus is before :func:`~kexue.data.datamodule.
    fixed_split`, so that the split of a sentence depends neither on file order nor on repeats (a repeat in two
    splits would leak test sentences into training). A repeated text keeps the union of its triples, in order of
    first appearance, each type the first non-blank one it was given."""
    merged: dict[str, dict[Triple, tuple[str, str]]] = {}
    for ex in examples:
        found = merged.setdefault(ex.text, {})
        for triple, (s, o) in zip(ex.triples, ex.types or (("", ""),) * len(ex.triples)):
            before = found.get(triple, ("", ""))
            found[triple] = (before[0] or s, before[1] or o)
    return [_example_of(text, found) for text, found in sorted(merged.items())]


def read_schema(path: str | PathLike) -> list[str]:
    """The predicates of a schema file, in file order (repeats once) or in id order.

    Layouts: ``all_50_schemas`` / DuIE 2.0 ``duie_schema.json``, records ``{"subject_type", "predicate",
    "object_type"}`` as JSON lines or a JSON array (a predicate with several type pairs, as LIC2019's 成立日期,
    counts once); CasRel's ``relation.json``, one object ``{"0": name, "1": name, ...}`` with ids ``0..n-1``
    (also its ``rel2id.json``, ``[id2rel, rel2id]``: the first is read). Anything else is a UsageError naming
    file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    text = "".join(utf8_lines(path))
    if not text.strip():
        raise UsageError("no predicates in file (it is empty)", path)
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as err:  # JSON lines, or a broken single document
        first = next((line for line in text.split("\n") if line.strip()), "")
        try:
            json.loads(first)
        except json.JSONDecodeError:
            raise UsageError(f"malformed JSON ({err.msg}, column {err.colno})", path, err.lineno) from None
        whole = None
    if isinstance(whole, list) and whole and isinstance(whole[0], dict) and "predicate" not in whole[0]:
        whole = whole[0]  # CasRel's rel2id.json
    if isinstance(whole, dict) and "predicate" not in whole:
        return _relation_names(whole, text, path)
    names: dict[str, None] = {}
    for lineno, record in _records(path):
        if not isinstance(record, dict) or "predicate" not in record:
            raise UsageError("expected a schema object with a 'predicate' key", path, lineno)
        names[_string(record["predicate"], "'predicate'", partial(UsageError, path=path, line=lineno))] = None
    if not names:
        raise UsageError("no predicates in file", path)
    return list(names)


def _relation_names(relations: dict, text: str, path: Path) -> list[str]:
    """The names of an ``{"id": name}`` object in id order; a bad entry is an error at its key's line."""

    def fail(why: str, key: str) -> UsageError:
        at = text.find(json.dumps(key, ensure_ascii=False))
        return UsageError(why, path, text.count("\n", 0, at) + 1 if at >= 0 else None)

    by_id: dict[int, str] = {}
    for key, name in relations.items():
        if not key.isdigit():
            raise fail(f"relation id {key!r} is not a non-negative integer", key)
        if not isinstance(name, str) or not name.strip():
            raise fail(f"relation {key} must be a non-empty name", key)
        if name in by_id.values():
            raise fail(f"relation {key}: {name!r} is also relation {next(i for i, n in by_id.items() if n == name)}",
                       key)
        by_id[int(key)] = name
    if not by_id:
        raise UsageError("no predicates in file", path)
    gaps = sorted(set(range(len(by_id))) - by_id.keys())
    if gaps:
        raise UsageError(f"relation ids must be 0..{len(by_id) - 1}; {gaps[0]} is missing", path)
    return [by_id[i] for i in range(len(by_id))]


@cache
def _asset_predicates(path: Path) -> tuple[str, ...]:
    return tuple(read_schema(path))


@cache
def _asset_examples(path: Path, schema: Path) -> tuple[TripleExample, ...]:
    return tuple(unique_sentences(read_duie(path, _asset_predicates(schema))))


def duie_predicates() -> list[str]:
    """The 19 predicates of the fetched asset's ``relation.json`` (casrel-datautils 1.1.5), in id order (cached):
    出品公司 国籍 出生地 民族 出生日期 毕业院校 歌手 所属专辑 作词 作曲 连载网站 作者 出版社 主演 导演 编剧
    上映时间 成立日期 创立了.
    Its ``test.json`` uses 17 of them (never 编剧, 创立了). Missing asset: a UsageError saying ``kexue fetch duie``.
    """
    return list(_asset_predicates(asset_path("duie", "relation.json")))


def duie_examples() -> list[TripleExample]:
    """The fetched DuIE sample (casrel-datautils 1.1.5 ``data/test.json``, LIC2019 JSON lines with types), read
    by :func:`read_duie` against :func:`duie_predicates` and passed through :func:`unique_sentences` (cached).

    13,417 sentences (all distinct), 24,370 triples (no repeats within a sentence), 17 predicates; every triple
    has both types. Missing asset: a UsageError saying ``kexue fetch duie``.
    """
    return list(_asset_examples(asset_path("duie", "test.json"), asset_path("duie", "relation.json")))


__all__ = ["Triple", "TripleExample", "duie_examples", "duie_predicates", "read_duie", "read_schema",
           "unique_sentences"]
