"""Reading-comprehension data for 万能的seq2seq (https://kexue.fm/archives/7115): WebQA and SogouQA in their
published JSON layouts, plain JSON lines, templated questions from DuIE triples (scored by :mod:`kexue.metrics.qa`).

Every reader returns :class:`QAExample` rows, one per (passage, question) pair that has an answer (the post trains
and scores on answered passages only). A missing or mistyped field is a :class:`~kexue.errors.UsageError` naming
the file and the line (JSON lines) or the record (a whole-file JSON document: its question id or index); an
answer that is not a substring of its passage, where ``require_span`` asks for it (extractive decoding), is one too.

Layouts:

* WebQA v1.0 (``me_train.json`` etc.): one JSON object ``{question id: {"question": str, "evidences": {evidence
  id: {"evidence": str, "answer": [str, ...]}}}}``; ``["no_answer"]`` marks a passage without the answer.
* SogouQA (the layout of ``SogouQA.json`` and of the WebQA conversion bert4keras' reading-comprehension example
  reads): a JSON list of ``{"id", "question", "passages": [{"passage": str, "answer": str}]}``; ``""`` marks a
  passage without the answer.
* JSON lines: ``{"passage", "question", "answer"}`` one a line (``answer`` a string or a list of strings).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from kexue.data.readers import json_field, json_lines, utf8_lines
from kexue.errors import UsageError

QAFormat = Literal["auto", "webqa", "sogouqa", "jsonl"]
Fail = Callable[[str], UsageError]  # builds the error of one record


@dataclass(frozen=True)
class QAExample:
    """One question on one passage.

    Attributes:
        passage: the text the answer is read from.
        question: the question.
        answers: the accepted answers, the first being the training target (it is in the passage when the reader
            was asked for spans).
    """

    passage: str
    question: str
    answers: tuple[str, ...]


def _fail(path: Path, where: str | int) -> Fail:
    def fail(why: str) -> UsageError:
        if isinstance(where, int):
            return UsageError(why, path, where)
        return UsageError(f"{where}: {why}", path)
    return fail


def _field(record: object, key: str, fail: Fail, kind: type | tuple[type, ...] = str) -> Any:  # noqa: ANN401
    return json_field(record, key, kind, fail)


def _example(passage: str, question: str, answers: list[str], require_span: bool, fail: Fail) -> QAExample:
    answers = [a for a in answers if a.strip()]
    inside = [a for a in answers if a in passage]
    if require_span and not inside:
        raise fail(f"answer {json.dumps(answers[0], ensure_ascii=False)[:40]} is not in its passage")
    ordered = inside + [a for a in answers if a not in inside]
    return QAExample(passage, question, tuple(ordered))


def _document(path: Path) -> object:
    if not path.is_file():
        raise UsageError("file not found", path)
    text = "".join(utf8_lines(path))
    if not text.strip():
        raise UsageError("no questions in file (it is empty)", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"malformed JSON ({err.msg}, column {err.colno})", path, err.lineno) from None


def read_webqa(path: str | PathLike, require_span: bool = True) -> list[QAExample]:
    """WebQA v1.0's ``{id: {"question", "evidences": {id: {"evidence", "answer": [...]}}}}``; evidences whose
    answer is ``["no_answer"]`` (or empty) are skipped. Errors name the question id."""
    path = Path(path)
    data = _document(path)
    if not isinstance(data, dict):
        raise UsageError(f"WebQA: expected a JSON object of question ids, found {type(data).__name__}", path, 1)
    out = []
    for qid, record in data.items():
        fail = _fail(path, f"record {qid}")
        question = _field(record, "question", fail)
        for eid, evidence in _field(record, "evidences", fail, dict).items():
            efail = _fail(path, f"record {qid}, evidence {eid}")
            passage = _field(evidence, "evidence", efail)
            answers = _field(evidence, "answer", efail, list)
            if not all(isinstance(a, str) for a in answers):
                raise efail("field 'answer' must be a list of strings")
            answers = [a for a in answers if a != "no_answer" and a.strip()]
            if answers:
                out.append(_example(passage, question, answers, require_span, efail))
    return out


def read_sogouqa(path: str | PathLike, require_span: bool = True) -> list[QAExample]:
    """SogouQA's ``[{"id", "question", "passages": [{"passage", "answer"}]}]``; passages whose answer is ``""``
    are skipped. Errors name the record's ``id`` (else its index)."""
    path = Path(path)
    data = _document(path)
    if not isinstance(data, list):
        raise UsageError(f"SogouQA: expected a JSON list of questions, found {type(data).__name__}", path, 1)
    out = []
    for k, record in enumerate(data):
        name = record.get("id", k) if isinstance(record, dict) else k
        fail = _fail(path, f"record {name}")
        question = _field(record, "question", fail)
        for j, item in enumerate(_field(record, "passages", fail, list)):
            pfail = _fail(path, f"record {name}, passage {j}")
            passage = _field(item, "passage", pfail)
            answer = _field(item, "answer", pfail)
            if answer.strip():
                out.append(_example(passage, question, [answer], require_span, pfail))
    return out


def read_qa_jsonl(path: str | PathLike, require_span: bool = True, answers: bool = True) -> list[QAExample]:
    """JSON lines ``{"passage", "question", "answer"}`` (``answer`` a string or list; without ``answers`` it is
    not read and ``QAExample.answers`` is ``()``). Blank lines are skipped. Errors name the line."""
    path = Path(path)
    out = []
    for lineno, record in json_lines(path, "questions"):
        fail = _fail(path, lineno)
        passage, question = _field(record, "passage", fail), _field(record, "question", fail)
        if not answers:
            out.append(QAExample(passage, question, ()))
            continue
        answer = _field(record, "answer", fail, (str, list))
        answer = [answer] if isinstance(answer, str) else answer
        if not answer or not all(isinstance(a, str) for a in answer) or not any(a.strip() for a in answer):
            raise fail("field 'answer' must be a non-empty string or list of strings")
        out.append(_example(passage, question, answer, require_span, fail))
    return out


def read_qa(path: str | PathLike, fmt: QAFormat = "auto", require_span: bool = True) -> list[QAExample]:
    """Any of the three layouts; ``auto`` looks at the first non-blank line: ``[`` starts SogouQA; a line that is a
    JSON object alone is a JSON-lines record unless it is the file's only line and an object of objects (WebQA on
    one line); anything else is a whole-file WebQA object. A file without an answered question is a UsageError."""
    if fmt == "auto":
        if not Path(path).is_file():
            raise UsageError("file not found", path)
        lines = [line for line in utf8_lines(Path(path)) if line.strip()]
        first = lines[0].lstrip() if lines else ""
        if first.startswith("["):
            fmt = "sogouqa"
        else:
            try:
                one = json.loads(first)
            except json.JSONDecodeError:
                one = None  # not one value a line: a pretty-printed whole-file document
            # WebQA is one object of records (objects) keyed by question id; a line that is an object of anything
            # else is a JSON-lines record, whatever keys it has (a missing 'passage' is reported at its line)
            webqa = one is None or (isinstance(one, dict) and bool(one) and len(lines) == 1
                                    and all(isinstance(v, dict) for v in one.values()))
            fmt = "webqa" if webqa else "jsonl"
    reader = {"webqa": read_webqa, "sogouqa": read_sogouqa, "jsonl": read_qa_jsonl}[fmt]
    rows = reader(path, require_span)
    if not rows:
        raise UsageError(f"no answered questions in file (read as {fmt})", path)
    return rows


def templated_questions(examples: Iterable[object], template: str = "{subject}的{predicate}是什么？"
                        ) -> list[QAExample]:
    """Extractive questions from triple-extraction sentences (:class:`kexue.data.duie.TripleExample`): for each
    sentence its first triple whose (subject, predicate) has one object only and whose object is in the sentence
    becomes ``template`` over subject and predicate, answered by the object: templated questions, not human ones."""
    out = []
    for ex in examples:
        counts = Counter((s, p) for s, p, _ in ex.triples)
        for s, p, o in ex.triples:
            if counts[s, p] == 1 and o in ex.text:
                out.append(QAExample(ex.text, template.format(subject=s, predicate=p), (o,)))
                break
    return out


__all__ = ["QAExample", "read_qa", "read_qa_jsonl", "read_sogouqa", "read_webqa",
           "templated_questions"]
