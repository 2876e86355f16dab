"""Shared text utilities and encoders: file errors name file and line; padding never changes a result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kexue.data.readers import read_labelled_lines, read_text_lines
from kexue.errors import UsageError
from kexue.nn import ConvEncoder, MeanEmbeddingEncoder, RecurrentEncoder
from kexue.text import char_ngrams, hash_tokens, pad_sequences


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "data.tsv"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        ("好\tpos\n坏\n".encode(), r"data.tsv:2: expected 'text<TAB>label'"),
        ("好\tpos\n\n\tneg\n".encode(), r"data.tsv:3: empty text"),
        ("好\tpos\n坏\tbad\n".encode(), r"data.tsv:2: label 'bad' is not one of \['neg', 'pos'\]"),
        ("好\tpos\n".encode() + "坏\tneg\n".encode("gbk"), r"data.tsv:2: not UTF-8"),
        (b"\n\n", r"data.tsv: no examples"),
    ],
)
def test_labelled_file_errors_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_labelled_lines(write(tmp_path, content), ["neg", "pos"])


def test_labelled_file_reads_tabs_in_text(tmp_path: Path) -> None:
    rows = read_labelled_lines(write(tmp_path, "a\tb\tpos\r\n\n坏了\tneg\n".encode()), ["neg", "pos"])
    assert rows == [("a\tb", 1), ("坏了", 0)]
    # Blank lines: whether the reader keeps them for predict's one-output-per-line is the platform's to say.
    assert [line for line in read_text_lines(write(tmp_path, " x \n\ny\n".encode())) if line] == ["x", "y"]
    with pytest.raises(UsageError, match="file not found"):
        read_text_lines(tmp_path / "missing.txt")


def test_ngrams_and_hashing_are_stable() -> None:
    assert char_ngrams("很好用", (1, 2)) == ["很", "好", "用", "很好", "好用"]
    assert char_ngrams("很好用", (2,), max_length=2) == ["很好"]
    ids = hash_tokens(["很", "好", "很"], 1000)
    assert ids[0] == ids[2] and all(1 <= i < 1000 for i in ids)
    assert hash_tokens(["很"], 1000) == [ids[0]]  # CRC-32, not the per-process salted hash()
    assert pad_sequences([[1, 2], [3]]).tolist() == [[1, 2], [3, 0]]
    assert pad_sequences([[1]], min_length=3).shape == (1, 3)
    assert pad_sequences([[[1, 2], [3, 4]], [[5, 6]]]).tolist() == [[[1, 2], [3, 4]], [[5, 6], [0, 0]]]  # (B, T, G)


@pytest.mark.parametrize(
    "encoder",
    [MeanEmbeddingEncoder(50, 8), ConvEncoder(50, 8, 4, (2, 3), pool="max"), ConvEncoder(50, 8, 4, (1, 3), pool="mean"),
     RecurrentEncoder(50, 8, 4, "gru"), RecurrentEncoder(50, 8, 4, "lstm"),
     RecurrentEncoder(50, 8, 4, "gru", pooling="mean", skip=True), RecurrentEncoder(50, 8, 4, "lstm", pooling="last")],
    ids=["mean", "cnn-max", "cnn-mean", "gru", "lstm", "gru-mean-skip", "lstm-last"],
)
def test_padding_does_not_change_the_encoding(encoder: torch.nn.Module) -> None:
    encoder.eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    out = encoder(padded)
    assert out.shape == (2, encoder.output_dim)
    torch.testing.assert_close(encoder(short)[0], out[0])


def test_recurrent_encoder_sums_feature_embeddings() -> None:
    """``(B, T, G)`` ids: the embeddings of a step's G features are summed, exactly as one id whose row is the sum."""
    enc = RecurrentEncoder(50, 8, 4, "gru", dropout=0.0, pooling="mean").eval()
    ids = torch.tensor([[[5, 9], [6, 10], [0, 0]]])  # (1, 3, 2), last step padding
    summed = RecurrentEncoder(50, 8, 4, "gru", dropout=0.0, pooling="mean").eval()
    summed.load_state_dict(enc.state_dict())
    with torch.no_grad():
        summed.embedding.weight[40] = enc.embedding.weight[5] + enc.embedding.weight[9]
        summed.embedding.weight[41] = enc.embedding.weight[6] + enc.embedding.weight[10]
    torch.testing.assert_close(enc(ids), summed(torch.tensor([[40, 41]])))


@pytest.mark.parametrize("cls", [MeanEmbeddingEncoder, ConvEncoder, RecurrentEncoder])
def test_embed_init_std_sets_the_scale_and_keeps_padding_zero(cls: type) -> None:
    torch.manual_seed(0)
    weight = cls(4096, 16, embed_init_std=0.01).embedding.weight.detach()  # (4096, 16)
    assert torch.all(weight[0] == 0)
    assert weight[1:].std().item() == pytest.approx(0.01, rel=0.05)
    assert cls(4096, 16).embedding.weight[1:].std().item() == pytest.approx(1.0, rel=0.05)  # None: PyTorch's N(0, 1)
    with pytest.raises(ValueError, match="embed_init_std"):
        cls(64, 4, embed_init_std=-0.1)


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_conv_encoder_pads_inputs_shorter_than_its_widest_kernel(pool: str) -> None:
    """A 1-step input equals the same text padded by hand to the widest kernel (5), with no error."""
    torch.manual_seed(0)
    enc = ConvEncoder(50, 8, 4, (3, 5), dropout=0.0, pool=pool).eval()
    one = enc(torch.tensor([[7]]))  # (1, D)
    padded = enc(torch.tensor([[7, 0, 0, 0, 0]]))
    torch.testing.assert_close(one, padded)
    # From scratch for width 3 (zero padding 1 each side): position 0 sees [pad, x, x_1 = pad].
    x = enc.embedding.weight[7]  # (E,)
    conv = enc.convs[0]
    want = torch.relu(conv.weight[:, :, 1] @ x + conv.bias)  # (H,): only the centre tap meets a real character
    torch.testing.assert_close(one[0, :4], want)
