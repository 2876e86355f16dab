"""Task relation_extraction (用bert4keras做三元组抽取, kexue.fm/archives/7161): the sharpened-pointer loss, the post's
pairing and labels, a model that learns hand-written sentences exactly, the BERT path, JSON-lines predict, bad input
as one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kexue.cli import main
from kexue.datamodules.relation_extraction import RelationExtractionDataModule, pointer_spans
from kexue.lightning_modules.relation_extraction import RelationExtractor, pair_pointers
from kexue.losses import powered_sigmoid_bce
from kexue.nn import CharDGCNNEncoder
from kexue.text.tokenizers import HashedChars

from .conftest import assert_one_line_error, kexue

FIXTURES = Path(__file__).parent / "fixtures"
SPO = FIXTURES / "duie_spo.jsonl"
PREDICATES = ["歌手", "所属专辑", "出生日期", "出生地", "民族", "作者", "连载网站"]
QUICK = ["--trainer.max_epochs", "1", "--logger", "none", "--trainer.enable_progress_bar", "false"]


def user_files(path: Path = SPO) -> list[str]:
    return [f"--data.{s}_path={path}" for s in ("train", "val", "test")]


def test_powered_sigmoid_bce_equals_torch_bce_of_the_powered_probability() -> None:
    torch.manual_seed(0)
    z = (torch.randn(64) * 4).requires_grad_()
    y = (torch.rand(64) > 0.5).float()
    for n in (1.0, 2.0, 4.0):
        ours = powered_sigmoid_bce(z, y, n)
        ref = F.binary_cross_entropy(torch.sigmoid(z) ** n, y, reduction="none")
        assert torch.allclose(ours, ref, atol=1e-5), n
        g_ours, = torch.autograd.grad(ours.sum(), z)
        g_ref, = torch.autograd.grad(F.binary_cross_entropy(torch.sigmoid(z) ** n, y, reduction="sum"), z)
        assert torch.allclose(g_ours, g_ref, atol=1e-4), n
    assert torch.allclose(powered_sigmoid_bce(z, y, 1.0), F.binary_cross_entropy_with_logits(z, y, reduction="none"),
                          atol=1e-5)
    extreme = powered_sigmoid_bce(torch.tensor([60.0, -60.0]), torch.tensor([0.0, 1.0]), 4.0)
    assert torch.isfinite(extreme).all() and (extreme > 10).all()  # confidently wrong: large, never inf or NaN
    with pytest.raises(ValueError, match="power"):
        powered_sigmoid_bce(z, y, 0.0)


def post_pairing(start: list[tuple[int, int]], end: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """The post's double loop over np.where outputs, written out as it reads (an independent reference)."""
    out = []
    for s, p1 in start:
        for e, p2 in end:
            if s <= e and p1 == p2:
                out.append((s, e, p1))
                break
    return out


def test_pair_pointers_matches_the_post_loop_on_random_grids() -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        starts = (torch.rand(12, 3, generator=g) > 0.8).nonzero().tolist()
        ends = (torch.rand(12, 3, generator=g) > 0.7).nonzero().tolist()
        ours = pair_pointers([tuple(r) for r in starts], [tuple(r) for r in ends])
        assert ours == post_pairing([tuple(r) for r in starts], [tuple(r) for r in ends])
    assert pair_pointers([(2,), (5,)], [(3,), (4,)]) == [(2, 3, 0)]  # a start after every end gives nothing


def test_dgcnn_ignores_padding_and_sees_far() -> None:
    torch.manual_seed(0)
    enc = CharDGCNNEncoder(num_embeddings=50, num_features=1, embed_dim=8, hidden_dim=16, dropout=0.0).eval()
    ids = torch.randint(1, 50, (1, 9, 1))
    short = enc(ids, torch.ones(1, 9, dtype=torch.bool))
    padded_ids = torch.cat([ids, torch.randint(1, 50, (1, 5, 1))], 1)
    mask = torch.arange(14)[None] < 9
    assert torch.allclose(enc(padded_ids, mask)[:, :9], short, atol=1e-6)  # padding never leaks in
    changed = ids.clone()
    changed[0, 8, 0] = (ids[0, 8, 0] % 49) + 1
    assert not torch.allclose(enc(changed, torch.ones(1, 9, dtype=torch.bool))[0, 0], short[0, 0])  # 8 steps away
    with pytest.raises(ValueError, match="dilations"):
        CharDGCNNEncoder(dilations=())


def test_labels_follow_the_post() -> None:
    text = "林木森，1983年5月出生于湖南长沙，汉族"
    triples = (("林木森", "出生日期", "1983年5月"), ("林木森", "出生地", "湖南长沙"), ("湖南长沙", "民族", "汉族"))
    index = {p: i for i, p in enumerate(PREDICATES)}
    spans = pointer_spans(text, triples, index)
    assert spans == {(0, 2): [(4, 10, 2), (14, 17, 3)], (14, 17): [(19, 20, 4)]}
    assert pointer_spans(text[:12], triples, index) == {(0, 2): [(4, 10, 2)]}  # truncated: no label past the cut
    data = RelationExtractionDataModule(predicates=PREDICATES, tokenizer=HashedChars(num_buckets=100, bigrams=False))
    torch.manual_seed(0)
    drawn = set()
    for _ in range(60):
        batch = data.collate([(text, triples)])
        s, e = batch["subject_ids"][0].tolist()
        drawn.add((s, e))
        obj = batch["object_labels"][0]  # (T, P, 2)
        expected = {(o, p) for o, _, p in spans.get((s, e), [])}
        assert {(t, p) for t, p in obj[..., 0].nonzero().tolist()} == expected
    assert drawn == {(0, 2), (0, 17), (14, 17)}  # the post's draw: a start, then any subject end at or after it
    labels = batch["subject_labels"][0]
    assert labels[:, 0].nonzero().flatten().tolist() == [0, 14] and labels[:, 1].nonzero().flatten().tolist() == [2, 17]
    evaluation = data.collate([(text, triples, 7), ("没有", (), 8)])
    assert evaluation["subject_ids"].tolist() == [[0, 2], [0, 0]] and evaluation["index"].tolist() == [7, 8]
    assert evaluation["triples"] == [set(triples), set()] and evaluation["ids"].shape == (2, len(text), 1)


def test_the_model_learns_hand_written_sentences_exactly() -> None:
    """A few hundred steps on four sentences: decoding must return exactly their triples (subjects, objects,
    predicates and the CLN conditioning all have to work for this)."""
    rows = [(ex["text"], tuple((t["subject"], t["predicate"], t["object"]) for t in ex["spo_list"]))
            for ex in map(json.loads, filter(str.strip, SPO.read_text(encoding="utf-8").splitlines()))]
    torch.manual_seed(0)
    data = RelationExtractionDataModule(predicates=PREDICATES, tokenizer=HashedChars(num_buckets=4096))
    encoder = CharDGCNNEncoder(num_embeddings=4096, hidden_dim=64, dropout=0.0, gate_dropout=0.0)
    model = RelationExtractor(encoder=encoder, predicates=PREDICATES)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model.loss(data.collate(rows))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    batch = data.collate([(text, triples, k) for k, (text, triples) in enumerate(rows)])
    found = model.extract(batch["ids"], batch["mask"], batch["texts"])
    assert found == [set(triples) for _, triples in rows], (found, loss.item())


def tiny_bert(folder: Path, max_positions: int = 64) -> None:
    """A random 1-layer BERT folder written by transformers, over the fixture's characters."""
    transformers = pytest.importorskip("transformers")
    chars = sorted(set(SPO.read_text(encoding="utf-8")) - set(' \n"{}:,[]'))
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                      encoding="utf-8")
    config = transformers.BertConfig(vocab_size=5 + len(chars), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=max_positions)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)


def bert_options(folder: Path) -> list[str]:
    """The BERT encoder and its per-character tokenizer over one folder (the ``bert_chars`` preset)."""
    return ["--config", "bert_chars", "--model.encoder.checkpoint", str(folder), "--data.tokenizer.checkpoint",
            str(folder)]


def test_a_bert_folder_fits_predicts_json_lines_and_trains_from_scratch(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    bert = tmp_path / "bert"
    tiny_bert(bert)
    fit = kexue("run", "relation_extraction", *bert_options(bert), "--model.lr", "1e-3", "--data.max_length", "62",
                *user_files(), *QUICK)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "test/f1" in fit.stdout
    ckpt = next(tmp_path.glob("runs/relation_extraction/*/checkpoints/best-*.ckpt"))
    sentences = tmp_path / "sentences.txt"
    long = "小说《雾中灯塔》由周远写作" * 10  # 130 characters: printed whole, read up to max_length
    sentences.write_text(f"今天的天气很好\n\n{long}\n", encoding="utf-8")
    pred = kexue("predict", "relation_extraction", "--ckpt_path", str(ckpt), "--data.predict_path", str(sentences),
                 "--logger", "none")
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = [json.loads(line) for line in pred.stdout.splitlines()]  # one line per input line, nothing else
    assert [line["text"] for line in lines] == ["今天的天气很好", "", long]
    assert all(isinstance(line["spo_list"], list) for line in lines)
    found = {}  # the thresholds are the user's at predict (runtime_arguments), not the checkpoint's
    for threshold in ("0.01", "0.99"):
        capsys.readouterr()
        assert main(["predict", "relation_extraction", "--ckpt_path", str(ckpt), "--data.predict_path", str(sentences),
                     "--model.start_threshold", threshold, "--model.end_threshold", threshold, "--logger", "none",
                     "--trainer.default_root_dir", str(tmp_path / "runs")]) == 0
        found[threshold] = [json.loads(line)["spo_list"] for line in capsys.readouterr().out.splitlines()]
    assert len(found["0.99"]) == 3 and not any(found["0.99"]) and any(found["0.01"]), found
    scratch = kexue("fit", "relation_extraction", *bert_options(bert), "--model.encoder.weights", "false",
                    "--data.max_length", "20", *user_files(), "--trainer.fast_dev_run", "1", "--logger", "none")
    assert scratch.returncode == 0, scratch.stderr[-3000:]
    long_file = tmp_path / "long.jsonl"
    long_file.write_text(json.dumps({"text": long, "spo_list": [{"subject": "雾中灯塔", "predicate": "作者",
                                                                 "object": "周远"}]}, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    too_long = kexue("fit", "relation_extraction", *bert_options(bert), *user_files(long_file), "--data.schema",
                     str(FIXTURES / "duie_relation.json"), "--trainer.fast_dev_run", "1", "--logger", "none",
                     "--data.max_length", "100")
    assert_one_line_error(too_long, "long.jsonl): inputs of 100 positions exceed the 62 positions",
                          "64 less [CLS] and [SEP]", "lower data.max_length")


def test_sentences_longer_than_the_encoders_positions_are_refused_before_the_first_batch() -> None:
    """Issue 29: the split's longest sentence (cut at data.max_length) against the positions of the network being
    trained, when its loader is built, not when a long sentence's batch comes up in the middle of an epoch."""
    from types import SimpleNamespace

    from kexue.errors import UsageError
    from kexue.models.sizes import input_limit
    from kexue.nn import Transformer, TransformerConfig

    class Folder(torch.nn.Module):  # what BertCharEncoder says of a 64-position folder
        def input_limit(self) -> tuple[int, str]:
            return 62, "folder: 64 less [CLS] and [SEP]"

    stack = Transformer(TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="learned", max_length=80))
    assert input_limit(torch.nn.ModuleList([stack, Folder()]))[0] == 62 and input_limit(stack)[0] == 80
    assert input_limit(Transformer(TransformerConfig(dim=8, num_layers=1, num_heads=2, positions="rotary"))) is None
    data = RelationExtractionDataModule(predicates=PREDICATES, tokenizer=HashedChars(num_buckets=100), max_length=100)
    data.splits = {"train": [("短句", [])] * 4, "val": [("长" * 130, [])]}
    data.trainer = SimpleNamespace(lightning_module=torch.nn.Sequential(Folder()), world_size=1)
    assert len(data.train_dataloader()) == 1  # short sentences fit
    with pytest.raises(UsageError, match=r"the val split \(the embedded corpus\): inputs of 100 positions exceed "
                                         r"the 62 positions of the network \(folder: .*lower data.max_length"):
        data.val_dataloader()
    data.hparams.max_length = 62
    assert len(data.val_dataloader()) == 1


def test_user_files_with_and_without_a_schema(tmp_path: Path) -> None:
    fit = kexue("fit", "relation_extraction", *user_files(), "--trainer.fast_dev_run", "1", "--logger", "none",
                "--print_config")
    assert fit.returncode == 0, fit.stderr[-3000:]
    for knob in ("start_threshold", "object_power", "gate_dropout", "dilations", "schema", "max_length"):
        assert knob in fit.stdout, knob
    bad_schema = kexue("fit", "relation_extraction", *user_files(), "--data.schema", str(FIXTURES / "duie_schema.jsonl"),
                       "--trainer.fast_dev_run", "1", "--logger", "none")
    assert_one_line_error(bad_schema, "duie_spo.jsonl:1", "所属专辑")  # not among that schema's predicates


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(SPO.read_text(encoding="utf-8") + '{"text": "甲乙", "spo_list": [{"subject": "丙", '
                      '"predicate": "作者", "object": "甲"}]}\n', encoding="utf-8")
    proc = kexue("fit", "relation_extraction", *user_files(broken), "--trainer.fast_dev_run", "1", "--logger", "none")
    assert_one_line_error(proc, "broken.jsonl:6", "not in the text")
    folder = tmp_path / "notbert"
    folder.mkdir()
    proc = kexue("fit", "relation_extraction", *bert_options(folder), *user_files(), "--trainer.fast_dev_run", "1",
                 "--logger", "none")
    assert_one_line_error(proc, "notbert/vocab.txt")
    proc = kexue("fit", "relation_extraction", *user_files(), "--model.start_threshold", "1.5",
                 "--trainer.fast_dev_run", "1", "--logger", "none")
    assert_one_line_error(proc, "thresholds")
    missing = tmp_path / "cache"
    proc = kexue("fit", "relation_extraction", "--trainer.fast_dev_run", "1", "--logger", "none",
                 env={"KEXUE_CACHE": str(missing)})
    assert_one_line_error(proc, "kexue fetch duie")
    assert not missing.exists() or not any(missing.rglob("*.json"))
    shutil.rmtree(missing, ignore_errors=True)
