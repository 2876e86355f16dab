"""Every reader of a user's file × the ways a file can be wrong (issue 29): empty, Latin-1 instead of UTF-8, the wrong
layout (a line without its tab, a JSON array where JSON lines are expected, the wrong number of columns), the wrong
keys, the wrong types (a number where a string is expected and back), and a file of exactly one row.

Each case passes when the reader either returns something sane (a non-empty result) or raises one
:class:`~kexue.errors.UsageError` line naming the file (and its line or record where the defect is at one) — never
another exception type (which the CLI reports as a library's words without the file) and never an empty result
(which a task would compute its figures on). The readers are called directly: the sweep runs in about a second.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from datamodules.reading_comprehension import ReadingComprehensionDataModule
from datamodules.text_similarity import read_pairs
from kexue.data.duie import read_duie, read_schema
from kexue.data.qa import read_qa, read_qa_jsonl, read_sogouqa, read_webqa
from kexue.data.readers import (
    read_char_tag_lines,
    read_image_csv,
    read_labelled_lines,
    read_multilabel_lines,
    read_segmented_lines,
    read_sentence_groups,
    read_text_lines,
)
from kexue.data.spectra import read_fits_folder, read_flux_csv, read_label_index, read_ts
from kexue.errors import UsageError
from kexue.text.corpus import count_words
from kexue.text.vectors import load_word2vec_format, read_analogies, read_word_pairs

QA_LINE = '{"passage": "café au lait", "question": "what?", "answer": "lait"}\n'
WEBQA = '{"Q1": {"question": "what?", "evidences": {"E1": {"evidence": "café au lait", "answer": ["lait"]}}}}'
SOGOUQA = '[{"id": "1", "question": "what?", "passages": [{"passage": "café au lait", "answer": "lait"}]}]'
DUIE = '{"text": "张三生于北京, é", "spo_list": [{"subject": "张三", "predicate": "出生地", "object": "北京"}]}\n'

# reader name -> (read(path), {defect: file text}); "good" is one sane row, with a non-ASCII character where the
# layout has free text, so that its Latin-1 bytes are not UTF-8. A defect missing from a row does not apply.
READERS: dict[str, tuple[Callable[[Path], Any], dict[str, str]]] = {
    "labelled": (lambda p: read_labelled_lines(p, ["neg", "pos"]), {
        "good": "très bien\tpos\n", "layout": "très bien pos\n", "keys": "très bien\tgood\n",
        "types": "très bien\t1\n"}),
    "multilabel": (lambda p: read_multilabel_lines(p, ["a", "b"]), {
        "good": "très bien\ta,b\n", "layout": "très bien a,b\n", "keys": "très bien\ta,c\n", "types": "x\t1,2\n"}),
    "text lines": (read_text_lines, {"good": "très bien\n"}),
    "segmented": (read_segmented_lines, {"good": "我 爱 café\n", "layout": "江 B-PER\n", "types": "我/r 爱/v\n"}),
    "char tag": (lambda p: read_char_tag_lines(p, ["B", "I", "O"]), {
        "good": "é B\n", "layout": "éa B O\n", "keys": "é Q\n", "types": "é 1\n"}),
    "groups": (lambda p: read_sentence_groups(p, "groups"), {"good": "café\tau lait\n"}),
    "groups labelled": (lambda p: read_sentence_groups(p, "labelled"), {
        "good": "1\tcafé\n", "layout": "1\tcafé\tlait\n", "types": "\tcafé\n"}),
    "groups pairs": (lambda p: read_sentence_groups(p, "pairs"), {
        "good": "café\tau lait\t1\n", "layout": "café\tau lait\n", "types": "café\tau lait\tyes\n"}),
    "image csv": (lambda p: read_image_csv(p, 2, 2, 16), {
        "good": "0,1,2,16,3\n", "layout": "0,1,2\n", "types": "0,1,x,3\n", "keys": "0,1,2,3,label\n"}),
    "qa auto": (read_qa, {"good": QA_LINE, "layout": f"[{QA_LINE.strip()}]\n",
                          "keys": QA_LINE.replace("passage", "context") * 2,
                          "types": QA_LINE.replace('"lait"}', '["lait", 3]}')}),
    "qa jsonl": (read_qa_jsonl, {"good": QA_LINE, "layout": f"[{QA_LINE.strip()}]\n",
                                 "keys": QA_LINE.replace("question", "query"),
                                 "types": QA_LINE.replace('"what?"', "7")}),
    "webqa": (read_webqa, {"good": WEBQA, "layout": QA_LINE, "keys": WEBQA.replace("evidences", "evidence"),
                           "types": WEBQA.replace('["lait"]', '"lait"')}),
    "sogouqa": (read_sogouqa, {"good": SOGOUQA, "layout": QA_LINE, "keys": SOGOUQA.replace("passages", "docs"),
                               "types": SOGOUQA.replace('"what?"', "1")}),
    "qa predict": (ReadingComprehensionDataModule._predict_lines, {
        "good": '{"passage": "café", "question": "what?"}\n', "layout": '[{"passage": "café", "question": "q"}]\n',
        "keys": '{"context": "café", "question": "what?"}\n', "types": '{"passage": 1, "question": "what?"}\n'}),
    "duie": (read_duie, {"good": DUIE, "layout": "张三生于北京\t张三\t出生地\t北京\n",
                         "keys": DUIE.replace("spo_list", "triples"), "types": DUIE.replace('"北京"}', '7}')}),
    "schema": (read_schema, {"good": '{"subject_type": "人物", "predicate": "出生地", "object_type": "地点"}\n',
                             "layout": "人物\t出生地\t地点\n", "keys": '{"subject_type": "人物", "relation": "出生地"}\n',
                             "types": '{"subject_type": "人物", "predicate": 3}\n'}),
    "ucr ts": (read_ts, {"good": "@problemName café\n@data\n1,2,3:a\n", "layout": "@data\n1,2,3\n",
                         "types": "@data\n1,x,3:a\n"}),
    "flux csv": (read_flux_csv, {"good": "id,f1,f2\nsé,1,2\n", "layout": "id,f1,f2\ns1\n",
                                 "types": "id,f1,f2\ns1,1,x\n"}),
    "label index": (lambda p: read_label_index(p, ["sé"], "flux.csv", ["STAR", "QSO"]), {
        "good": "id,type\nsé,STAR\n", "layout": "id,type\nsé\n", "keys": "id,type\nsé,DOG\n",
        "types": "id,type\nsé,1\n"}),
    "word2vec": (load_word2vec_format, {"good": "1 2\ncafé 0.1 0.2\n", "layout": "café 0.1 0.2\n",
                                        "types": "1 2\ncafé x 0.2\n"}),
    "word pairs": (read_word_pairs, {"good": "café\tlait\t1.5\n", "layout": "café lait 1.5\n",
                                     "types": "café\tlait\thigh\n"}),
    "analogies": (read_analogies, {"good": "a b c café\n", "layout": "a b c\n"}),
    "similarity pairs": (read_pairs, {"good": "café\tlait\t1\nthé\tlait\t2\n", "layout": "café\tlait\n",
                                      "types": "café\tlait\thigh\n"}),
    "corpus": (lambda p: count_words([p]), {"good": "café au lait\n"}),
    "fits folder": (lambda p: read_fits_folder(_as_fits_folder(p)), {
        "good": "FITS", "layout": "SIMPLE  = T / not a FITS header at all\n", "types": "FITS_TEXT"}),
}


def _fits_bytes(data: object) -> bytes:
    from astropy.io import fits

    out = io.BytesIO()
    fits.PrimaryHDU(data).writeto(out)
    return out.getvalue()


def _as_fits_folder(path: Path) -> Path:
    """The sweep's file as the one spectrum ``spec.fits`` of a folder (``read_fits_folder`` reads folders): "FITS"
    stands for a good one (3 fluxes), "FITS_TEXT" for a FITS file whose primary HDU holds no numbers."""
    folder = path.parent / "fits"
    folder.mkdir(exist_ok=True)
    data = path.read_bytes()
    if data == b"FITS":
        data = _fits_bytes(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    elif data == b"FITS_TEXT":
        data = _fits_bytes(None)
    (folder / "spec.fits").write_bytes(data)
    return folder
# what the line of a "keys" case must quote: the key that is missing, or the unknown label, tag or key
KEY_NAMED = {"labelled": "'good'", "multilabel": "'c'", "char tag": "'Q'", "image csv": "'label'",
             "qa auto": "'passage'", "qa jsonl": "'question'", "webqa": "'evidences'", "sogouqa": "'passages'",
             "qa predict": "'passage'", "duie": "'spo_list'", "schema": "'subject_type'", "label index": "'DOG'"}
DEFECTS = ("empty", "latin-1", "layout", "keys", "types", "one row")
BINARY = {"fits folder"}  # no lines to name
AT_A_LINE = ("latin-1", "layout", "keys", "types")  # defects that sit at one line or record of the file


def _cases() -> list:
    out = []
    for name, (_, texts) in READERS.items():
        for defect in DEFECTS:
            if defect in ("empty", "latin-1", "one row") or defect in texts:
                out.append(pytest.param(name, defect, id=f"{name}-{defect}"))
    return out


def _content(texts: dict[str, str], defect: str) -> bytes:
    if defect == "empty":
        return b""
    if defect == "latin-1":
        return texts["good"].encode("latin-1", errors="replace")
    return texts["good" if defect == "one row" else defect].encode("utf-8")


def _sane(result: object) -> bool:
    """A non-empty result: every part of a tuple non-empty, as a task would use it."""
    parts = result if isinstance(result, tuple) else (result,)
    return all(len(part) > 0 for part in parts)


@pytest.mark.parametrize(("reader", "defect"), _cases())
def test_a_bad_file_is_read_sanely_or_one_line_naming_it(tmp_path: Path, reader: str, defect: str) -> None:
    read, texts = READERS[reader]
    path = tmp_path / "user file.txt"  # a space in the name: the line must hold the whole path
    path.write_bytes(_content(texts, defect))
    try:
        result = read(path)
    except UsageError as err:
        text = str(err)
        assert "\n" not in text, text
        assert str(path) in text or str(path.parent / "fits") in text, text
        if defect in AT_A_LINE and reader not in BINARY:
            assert err.line is not None or "record" in text, f"no line or record named: {text}"
        if defect == "keys":
            assert KEY_NAMED[reader] in text, text
        return
    except Exception as err:  # noqa: BLE001 (the point: no other exception type may escape)
        pytest.fail(f"{reader} × {defect}: {type(err).__name__}: {err}")
    assert defect in ("one row", "latin-1") or (defect == "types" and _sane(result)), \
        f"{reader} × {defect} read without an error: {result!r}"
    assert _sane(result), f"{reader} × {defect} read as nothing: {result!r}"


def test_the_good_rows_read() -> None:
    """The sweep's baseline (else its 'one row' cases could pass on an unrelated error): every good row reads."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, (read, texts) in READERS.items():
            path = Path(tmp) / f"{name}.txt"
            path.write_text(texts["good"], encoding="utf-8")
            assert _sane(read(path)), name
