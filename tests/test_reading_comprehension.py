"""Task reading_comprehension (万能的seq2seq, kexue.fm/archives/7115; UniLM, /6933; exposure bias, /7259): the packed
input and labels by hand, the loss on target positions only, the constrained beam search against brute force, EM and
character F1 by hand, the WebQA / SogouQA / JSON-lines loaders and their errors, random replacement, fit + predict
through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kexue.cli import main
from kexue.data.qa import read_qa, read_qa_jsonl, read_sogouqa, read_webqa, templated_questions
from kexue.errors import UsageError
from kexue.metrics.qa import char_f1, exact_match
from kexue.models.bert import Bert, BertFromConfig
from kexue.nn.masks import seq2seq_mask
from kexue.nn.transformer import TransformerConfig
from kexue.seq2seq import (
    CharVocab,
    build_char_vocab,
    copy_continuations,
    random_replace,
    unilm_batch,
    unilm_beam_search,
    unilm_loss,
    unilm_step,
)

QA = Path(__file__).parent / "fixtures" / "qa"
TINY = TransformerConfig(dim=16, num_layers=1, num_heads=2, ffn_dim=32, max_length=32, dropout=0.0,
                         attention_dropout=0.0)


def tiny_bert(vocab_size: int = 9, seed: int = 0) -> Bert:
    torch.manual_seed(seed)
    return Bert(vocab_size, TINY, pooler=False, mlm=True).eval()


def test_packed_ids_segments_labels_and_mask_by_hand() -> None:
    # [CLS]=2 p=10 11 [SEP]=3 | answer 12 [SEP]; second row: [CLS] 10 [SEP] | 13 14 [SEP]
    batch = unilm_batch([[2, 10, 11, 3], [2, 10, 3]], [[12, 3], [13, 14, 3]])
    assert batch["ids"].tolist() == [[2, 10, 11, 3, 12, 3], [2, 10, 3, 13, 14, 3]]
    assert batch["segments"].tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]]
    assert batch["padding"].all()
    assert batch["labels"].tolist() == [[-100, -100, -100, 12, 3, -100], [-100, -100, 13, 14, 3, -100]]
    padded = unilm_batch([[2, 10, 3]], [[3]])["labels"]  # an empty answer still predicts its [SEP]
    assert padded.tolist() == [[-100, -100, 3, -100]]
    mask = seq2seq_mask(batch["segments"])[0, 0].int().tolist()  # (T, T) of the first row
    assert mask == [[1, 1, 1, 1, 0, 0]] * 4 + [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]


def test_loss_counts_target_positions_only_and_the_source_never_sees_the_target() -> None:
    batch = unilm_batch([[2, 5, 6, 3], [2, 7, 3]], [[8, 3], [5, 6, 3]])
    logits = torch.randn(2, 6, 9)
    loss = unilm_loss(logits, batch["labels"])
    terms = [-logits[b, t].log_softmax(-1)[batch["ids"][b, t + 1]] for b in range(2) for t in range(5)
             if batch["segments"][b, t + 1] == 1 and batch["padding"][b, t + 1]]
    assert len(terms) == 5 and torch.allclose(loss, torch.stack(terms).mean())
    changed = logits.clone()
    changed[0, :3] += 5 * torch.randn(3, 9)  # positions whose next token is a source token
    changed[1, :2] += 5 * torch.randn(2, 9)
    assert torch.allclose(unilm_loss(changed, batch["labels"]), loss)
    changed[0, 3] += 5 * torch.randn(9)  # the [SEP] that predicts the answer
    assert not torch.allclose(unilm_loss(changed, batch["labels"]), loss)
    bert = tiny_bert()
    other = unilm_batch([[2, 5, 6, 3], [2, 7, 3]], [[4, 3], [8, 8, 3]])

    def hidden(b: dict) -> torch.Tensor:
        return bert(b["ids"], b["segments"], b["padding"], seq2seq_mask(b["segments"]))

    assert torch.allclose(hidden(batch)[0, :4], hidden(other)[0, :4], atol=1e-6)  # source: target unseen
    assert not torch.allclose(hidden(batch)[0, 4:], hidden(other)[0, 4:], atol=1e-3)


@torch.no_grad()
def brute_force(step, source: list[int], passage: list[int], sep: int, max_length: int) -> tuple[list[int], float]:
    """Every distinct passage substring of 1..max_length tokens followed by [SEP], scored token by token."""
    spans = {tuple(passage[i:j]) for i in range(len(passage)) for j in range(i + 1, min(len(passage), i + max_length)
                                                                              + 1)}
    best = ([], -math.inf)
    for span in spans:
        seq = [*span, sep]
        score = 0.0
        for k in range(len(seq)):
            packed = unilm_batch([source], [seq[:k]])
            score += float(step(packed["ids"], packed["segments"], packed["padding"])[0, seq[k]])
        if score > best[1]:
            best = (list(span), score)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_beam_search_is_exhaustive_when_wide_and_always_copies(seed: int) -> None:
    step = unilm_step(tiny_bert(seed=seed))
    gen = torch.Generator().manual_seed(seed)
    passages = [torch.randint(4, 9, (6,), generator=gen).tolist() for _ in range(2)]
    sources = [[2, *p, 3, 5, 3] for p in passages]
    wide = unilm_beam_search(step, sources, sep_id=3, beam_size=40, max_length=3, passages=passages, banned=[0, 1, 2])
    for (ids, score), source, passage in zip(wide, sources, passages):
        ref_ids, ref_score = brute_force(step, source, passage, 3, 3)
        assert ids == ref_ids and score == pytest.approx(ref_score, abs=1e-4)
    narrow = unilm_beam_search(step, sources, sep_id=3, beam_size=2, max_length=3, passages=passages)
    for (ids, _), passage in zip(narrow, passages):
        assert 1 <= len(ids) <= 3
        assert any(passage[i : i + len(ids)] == ids for i in range(len(passage)))
    free = unilm_beam_search(step, sources, sep_id=3, beam_size=2, max_length=3, banned=[0, 1, 2])
    assert all(1 <= len(ids) <= 3 and not set(ids) & {0, 1, 2, 3} for ids, _ in free)
    assert copy_continuations([5, 6, 5, 7], [5]) == {6, 7} and copy_continuations([5, 6], [6]) == set()


def test_exact_match_and_character_f1_by_hand() -> None:
    assert exact_match("周远", ["周远"]) == 1.0 and exact_match("周", ["周远"]) == 0.0
    assert exact_match(" 周远 ", ["林晓", "周远"]) == 1.0
    assert char_f1("1986年", ["1986年5月"]) == pytest.approx(2 * 5 / (5 + 7))  # 5 shared of 5 and 7
    assert char_f1("aab", ["ab"]) == pytest.approx(2 * 2 / 5)  # multiplicity: one a shared, not two
    assert char_f1("", ["周远"]) == 0.0 and char_f1("林", ["周远"]) == 0.0
    assert char_f1("浙江", ["浙江省", "浙江"]) == 1.0  # the best answer counts


def test_loaders_read_the_published_layouts() -> None:
    webqa = read_webqa(QA / "webqa.json")
    assert [(e.question, e.answers) for e in webqa] == [("《雾中灯塔》的作者是谁？", ("周远",)),
                                                         ("青石镇位于哪个省？", ("浙江省", "浙江"))]
    assert webqa[0].passage.startswith("长篇小说")  # the no_answer evidence is skipped
    sogou = read_sogouqa(QA / "sogouqa.json")
    assert [(e.passage[:3], e.answers) for e in sogou] == [("白鹭湖", ("厦门市",)), ("电影《", ("林晓",))]
    assert read_qa(QA / "webqa.json") == webqa and read_qa(QA / "sogouqa.json") == sogou
    lines = read_qa(QA / "train.jsonl")
    assert len(lines) == 8 and lines[0].answers == ("周远",) and lines == read_qa_jsonl(QA / "train.jsonl")
    assert len(read_sogouqa(QA / "sogouqa_not_in_passage.json", require_span=False)) == 2


@pytest.mark.parametrize(("reader", "name", "fragments"), [
    (read_webqa, "webqa_missing.json", ("webqa_missing.json", "record Q_TRN_000002", "missing field 'question'")),
    (read_sogouqa, "sogouqa_not_in_passage.json", ("record 102, passage 0", "林晓", "not in its passage")),
    (read_qa_jsonl, "missing_answer.jsonl", ("missing_answer.jsonl:2", "missing field 'answer'")),
])
def test_bad_records_name_file_and_line_or_record(reader, name: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as err:
        reader(QA / name)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_templated_questions_and_vocabulary() -> None:
    from kexue.data.duie import TripleExample

    ex = [TripleExample("《海风》由陈默演唱", (("海风", "歌手", "陈默"),)),
          TripleExample("甲乙丙丁", (("甲", "作者", "乙"), ("甲", "作者", "丙"), ("丁", "作者", "乙"))),
          TripleExample("无关的句子", (("甲", "作者", "乙"),))]
    qa = templated_questions(ex)
    assert [(q.question, q.answers) for q in qa] == [("海风的歌手是什么？", ("陈默",)), ("丁的作者是什么？", ("乙",))]
    vocab = CharVocab(tuple(build_char_vocab(["aab c"])))
    assert vocab.pieces[5:] == ("a", "b", "c") and vocab.encode("ab z") == [5, 6, 4, 1]


def test_random_replacement_rate_and_labels_untouched() -> None:
    ids = torch.randint(5, 100, (400, 50))
    where = torch.rand(400, 50) < 0.5
    out = random_replace(ids, where, 0.3, 5, 100, generator=torch.Generator().manual_seed(0))
    changed = out != ids
    rate = changed[where].float().mean().item()  # a draw may pick the same id: 1/95 of the time
    assert rate == pytest.approx(0.3 * 94 / 95, abs=0.01)
    assert not changed[~where].any() and int(out.min()) >= 5
    from kexue.lightning_modules.reading_comprehension import ReadingComprehension

    vocab = build_char_vocab(["甲乙丙丁戊"])
    bert = BertFromConfig(len(vocab), max_length=32, dim=16, num_layers=1, num_heads=2, ffn_dim=32, dropout=0.0,
                          attention_dropout=0.0)
    model = ReadingComprehension(bert, vocab, exposure_bias="random_replace", replace_prob=0.5)
    batch = unilm_batch([[2, 5, 6, 3]] * 4, [[7, 8, 9, 3]] * 4)
    before = {k: v.clone() for k, v in batch.items()}
    seen = []
    full = unilm_loss(model(batch["ids"], batch["segments"], batch["padding"]), batch["labels"])
    assert torch.allclose(model.eval().loss(batch["ids"], batch["segments"], batch["padding"], batch["labels"]), full)
    model.train()
    model.loss = lambda i, s, p, labels: seen.append(i) or torch.zeros(())  # record what the net reads
    model.log = lambda *a, **k: None
    model.training_step(batch, 0)
    assert all(torch.equal(batch[k], before[k]) for k in before)  # labels (and the batch) untouched
    assert torch.equal(seen[0][:, :4], batch["ids"][:, :4]) and not torch.equal(seen[0], batch["ids"])


def test_fit_predict_and_bad_input_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    files = [f"--data.{s}_path={QA / 'train.jsonl'}" for s in ("train", "val", "test")]
    tiny = ["--model.bert.dim", "32", "--model.bert.num_layers", "1", "--model.bert.num_heads", "2",
            "--model.bert.ffn_dim", "64", "--data.batch_size", "4", "--logger", "none",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    assert main(["run", "reading_comprehension", *files, *tiny, "--trainer.max_epochs", "2",
                 "--model.exposure_bias", "random_replace"]) == 0
    out = capsys.readouterr().out
    assert "test/em" in out and "test/f1" in out
    ckpt = next(tmp_path.glob("runs/reading_comprehension/*/checkpoints/best-*.ckpt"))
    assert main(["predict", "reading_comprehension", "--ckpt_path", str(ckpt), "--data.predict_path",
                 str(QA / "predict.jsonl"), "--logger", "none", "--trainer.enable_progress_bar", "false"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # one per input line, no other
    assert len(lines) == 3 and lines[1] == {"passage": "", "question": "", "answer": ""}
    for line in (lines[0], lines[2]):
        assert line["answer"] and line["answer"] in line["passage"]  # copied from the passage
    bad_lines = tmp_path / "bad.jsonl"
    bad_lines.write_text('{"passage": "甲乙", "question": "甲？"}\n{"passage": "甲乙"}\n', encoding="utf-8")
    assert main(["predict", "reading_comprehension", "--ckpt_path", str(ckpt), "--data.predict_path",
                 str(bad_lines), "--logger", "none"]) == 2
    assert "bad.jsonl:2: missing field 'question'" in capsys.readouterr().err.strip().splitlines()[-1]
    folder = tmp_path / "bert"
    vocab = build_char_vocab([line for line in (QA / "train.jsonl").read_text(encoding="utf-8").splitlines()])
    Bert(len(vocab), TransformerConfig(dim=16, num_layers=1, num_heads=2, ffn_dim=32, max_length=64), pooler=False,
         mlm=True).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    ckpt_args = ["--config", "bert_folder", "--model.bert.path", str(folder), "--data.tokenizer.path", str(folder),
                 *files, *tiny[8:], "--trainer.fast_dev_run", "1"]
    assert main(["fit", "reading_comprehension", *ckpt_args, "--data.max_length", "64"]) == 0
    assert main(["fit", "reading_comprehension", *ckpt_args]) == 2  # 128 tokens, 64 positions
    assert "data.max_length=128 exceeds the 64 positions" in capsys.readouterr().err.strip().splitlines()[-1]
    bad = [f"--data.train_path={QA / 'missing_answer.jsonl'}", *files[1:]]
    assert main(["fit", "reading_comprehension", *bad, *tiny, "--trainer.fast_dev_run", "1"]) == 2
    assert "missing_answer.jsonl:2: missing field 'answer'" in capsys.readouterr().err.strip().splitlines()[-1]


def test_beam_search_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="beam_size"):
        unilm_beam_search(lambda *a: None, [[2, 3]], 3, beam_size=0)
