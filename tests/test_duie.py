"""Triple extraction data and scores (用bert4keras做三元组抽取, kexue.fm/archives/7161): the DuIE readers on
hand-written fixtures (JSON lines, a JSON array in CasRel's layout, DuIE 2.0 dict objects), every bad input as a
one-line file:line UsageError, schema files, triple_prf against hand counts, TripleF1 against triple_prf (with
DDP-style padded repeats), and the fetched DuIE sample's counts (skipped without `kexue fetch duie`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kexue.assets import asset_path
from kexue.data.duie import TripleExample, duie_examples, duie_predicates, read_duie, read_schema, unique_sentences
from kexue.errors import UsageError
from kexue.metrics import TripleF1, triple_prf

FIXTURES = Path(__file__).parent / "fixtures"


def test_json_lines_with_types_repeats_and_empty_sentences() -> None:
    rows = read_duie(FIXTURES / "duie_spo.jsonl")
    assert [len(r.triples) for r in rows] == [2, 3, 0, 2]  # blank line skipped; the repeated 出生日期 dropped
    assert rows[0] == TripleExample("《山间小路》是由青禾演唱的歌曲，收录于专辑《远行》",
                                    (("山间小路", "歌手", "青禾"), ("山间小路", "所属专辑", "远行")),
                                    (("歌曲", "人物"), ("歌曲", "音乐专辑")))
    assert rows[1].triples[2] == ("林木森", "民族", "汉族") and rows[1].types[2] == ("", "")  # a triple without types
    assert rows[2].types == () and rows[3].types == ()  # no triple of the sentence has a type


def test_json_array_in_casrel_layout() -> None:
    rows = read_duie(FIXTURES / "duie_casrel.json")
    assert rows == [TripleExample("电影《北方来信》由陈一导演，于2015年上映",
                                  (("北方来信", "导演", "陈一"), ("北方来信", "上映时间", "2015年"))),
                    TripleExample("这是一句没有三元组的话", ())]


def test_duie2_dict_objects_take_their_value_slot() -> None:
    rows = read_duie(FIXTURES / "duie_v2.jsonl", predicates={"配音", "作者"})
    assert rows[0].triples == (("白石", "配音", "小灯"),) and rows[0].types == (("娱乐人物", "人物"),)
    assert rows[1].triples == (("雾中灯塔", "作者", "周远"),)


GOOD = '{"text": "青禾演唱了山间小路", "spo_list": [{"subject": "山间小路", "predicate": "歌手", "object": "青禾"}]}'
BAD_CASES = {
    "malformed": (GOOD + '\n{"text": "x", spo_list: []}\n', 2, "malformed JSON"),
    "not_object": (GOOD + "\n\n[1, 2]\n", 3, "expected a JSON object"),
    "no_text": ('{"spo_list": []}\n', 1, "missing key 'text'"),
    "blank_text": ('{"text": " ", "spo_list": []}\n', 1, "'text' must be a non-empty string"),
    "no_spo_list": (GOOD + '\n{"text": "青禾"}\n', 2, "missing key 'spo_list'"),
    "spo_not_list": ('{"text": "青禾", "spo_list": {}}\n', 1, "'spo_list' must be a list"),
    "no_object": ('{"text": "青禾演唱", "spo_list": [{"subject": "青禾", "predicate": "歌手"}]}\n', 1,
                  "spo_list[0]: missing key 'object'"),
    "subject_not_in_text": (GOOD.replace('"subject": "山间小路"', '"subject": "山间大路"'), 1,
                            "spo_list[0]: subject '山间大路' is not in the text"),
    "object_not_in_text": (GOOD + "\n" + GOOD.replace('"object": "青禾"', '"object": "白石"'), 2,
                           "spo_list[0]: object '白石' is not in the text"),
    "blank_subject": (GOOD.replace('"subject": "山间小路"', '"subject": ""'), 1,
                      "spo_list[0].subject must be a non-empty string"),
    "object_without_value": (GOOD.replace('"object": "青禾"', '"object": {"inWork": "青禾"}'), 1,
                             "spo_list[0].object is an object without '@value'"),
    "short_triple": ('{"text": "青禾", "triple_list": [["青禾", "歌手"]]}\n', 1,
                     "triple_list[0] must be a list [subject, predicate, object]"),
    "not_utf8": (b"\n".join([GOOD.encode(), b'{"text": "\xff"}']), 2, "not UTF-8"),
    "array_element": ("[\n  " + GOOD + ',\n  {"text": "青禾",\n   "spo_list": 3}\n]', 3, "'spo_list' must be a list"),
    "array_malformed": ("[\n  " + GOOD + ",\n  {\"text\": 'x'}\n]", 3, "malformed JSON"),
    "array_no_comma": ("[\n  " + GOOD + "\n  " + GOOD + "\n]", 3, "expected ',' or ']'"),
    "array_extra": ("[\n  " + GOOD + "\n]\n]", 4, "extra data after the array"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_error_at_its_line(case: str, tmp_path: Path) -> None:
    content, line, reason = BAD_CASES[case]
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UsageError) as err:
        read_duie(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and reason in message and "\n" not in message, message


def test_unknown_predicate_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"duie_spo.jsonl:2: spo_list\[1\]: predicate '出生地' is not one of the 3"):
        read_duie(FIXTURES / "duie_spo.jsonl", predicates=["歌手", "所属专辑", "出生日期"])
    (tmp_path / "empty.json").write_text("\n\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no sentences in file"):
        read_duie(tmp_path / "empty.json")
    with pytest.raises(UsageError, match="file not found"):
        read_duie(tmp_path / "absent.json")


def test_unique_sentences_merges_repeats_and_sorts_so_the_split_is_stable() -> None:
    rows = read_duie(FIXTURES / "duie_spo.jsonl")
    repeat = TripleExample(rows[0].text, (("山间小路", "作曲", "青禾"), rows[0].triples[0]), ())
    merged = unique_sentences([rows[3], repeat, *rows[:3]])
    assert [r.text for r in merged] == sorted(r.text for r in rows)
    song = next(r for r in merged if r.text == rows[0].text)
    assert song.triples == (("山间小路", "作曲", "青禾"), ("山间小路", "歌手", "青禾"), ("山间小路", "所属专辑", "远行"))
    assert song.types == (("", ""), ("歌曲", "人物"), ("歌曲", "音乐专辑"))
    assert unique_sentences(list(reversed(rows)) + rows) == unique_sentences(rows)


def test_schema_files(tmp_path: Path) -> None:
    assert read_schema(FIXTURES / "duie_schema.jsonl") == ["歌手", "成立日期", "配音"]
    assert read_schema(FIXTURES / "duie_relation.json") == ["歌手", "导演", "作者"]
    (tmp_path / "rel2id.json").write_text('[{"1": "导演", "0": "歌手"}, {"歌手": 0, "导演": 1}]', encoding="utf-8")
    assert read_schema(tmp_path / "rel2id.json") == ["歌手", "导演"]


SCHEMA_BAD = {
    "record": ('{"predicate": "歌手"}\n{"object_type": "人物"}\n', 2, "expected a schema object with a 'predicate'"),
    "blank": ('{"predicate": "歌手"}\n\n{"predicate": ""}\n', 3, "'predicate' must be a non-empty string"),
    "malformed_lines": ('{"predicate": "歌手"}\n{"predicate": 导演}\n', 2, "malformed JSON"),
    "malformed_object": ('{\n  "0": "歌手",\n  "1" "导演"\n}', 3, "malformed JSON"),
    "id": ('{\n  "0": "歌手",\n  "x": "导演"\n}', 3, "relation id 'x' is not a non-negative integer"),
    "repeat": ('{\n  "0": "歌手",\n  "1": "导演",\n  "2": "歌手"\n}', 4, "relation 2: '歌手' is also relation 0"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_BAD))
def test_bad_schema_is_one_line_error_at_its_line(case: str, tmp_path: Path) -> None:
    content, line, reason = SCHEMA_BAD[case]
    path = tmp_path / "schema.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as err:
        read_schema(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and reason in message and "\n" not in message, message


def test_relation_ids_must_be_contiguous(tmp_path: Path) -> None:
    (tmp_path / "relation.json").write_text('{"0": "歌手", "2": "导演"}', encoding="utf-8")
    with pytest.raises(UsageError, match="relation ids must be 0..1; 1 is missing"):
        read_schema(tmp_path / "relation.json")


A, B, C, D, E = (("s", p, "o") for p in "abcde")


@pytest.mark.parametrize("pred, gold, expected", [
    ([{A, B}, {C}, set()], [{A}, {C, D}, {E}], (2 / 3, 1 / 2, 4 / 7)),  # 2 correct of 3 predicted, 4 gold
    ([[A, A, B]], [[A, A]], (1 / 2, 1.0, 2 / 3)),  # repeats count once
    ([set(), set()], [{A}, {B}], (0.0, 0.0, 0.0)),  # no predictions
    ([{A}], [set()], (0.0, 0.0, 0.0)),  # no gold
    ([set()], [set()], (0.0, 0.0, 0.0)),
    ([], [], (0.0, 0.0, 0.0)),
    ([{A}], [{("s", "a", "o ")}], (0.0, 0.0, 0.0)),  # exact strings: a trailing space is another object
])
def test_triple_prf_by_hand(pred: list, gold: list, expected: tuple[float, float, float]) -> None:
    assert triple_prf(pred, gold) == pytest.approx(expected)


def test_triple_f1_equals_triple_prf_and_counts_padded_repeats_once() -> None:
    pred = [{A, B}, set(), {C}, {A, D}, {E}]
    gold = [{A}, {B}, {C, D}, {A, D}, set()]
    metric = TripleF1()
    for batch in ([0, 1], [2], [3, 4]):
        metric.update([pred[i] for i in batch], [gold[i] for i in batch], ids=torch.tensor(batch))
    metric.update([pred[0]], [gold[0]], ids=torch.tensor([0]))  # DistributedSampler's padding repeats sentence 0
    assert metric.compute().tolist() == pytest.approx(triple_prf(pred, gold))
    plain = TripleF1()
    for batch in ([0, 1], [2], [3, 4], [0]):
        plain.update([pred[i] for i in batch], [gold[i] for i in batch])
    assert plain.compute().tolist() == pytest.approx(triple_prf(pred + [pred[0]], gold + [gold[0]]))
    assert plain.compute().tolist() != pytest.approx(triple_prf(pred, gold))  # the ids do matter here
    with pytest.raises(ValueError, match="one triple set per sentence"):
        metric.update([{A}], [])


def test_fetched_duie_sample_counts() -> None:
    try:
        asset_path("duie", "test.json")
    except UsageError:
        pytest.skip("DuIE sample not fetched: run `kexue fetch duie`")
    predicates = duie_predicates()
    assert len(predicates) == 19 and predicates[:3] == ["出品公司", "国籍", "出生地"] and predicates[-1] == "创立了"
    rows = duie_examples()
    assert len(rows) == 13_417 and sum(len(r.triples) for r in rows) == 24_370
    used = {p for r in rows for _, p, _ in r.triples}
    assert len(used) == 17 and set(predicates) - used == {"编剧", "创立了"}
    assert [r.text for r in rows] == sorted({r.text for r in rows})  # distinct and sorted: a fixed split is stable
    assert all(len(r.types) == len(r.triples) for r in rows)
    assert duie_examples() == rows and duie_examples() is not rows  # cached, handed out as a fresh list
