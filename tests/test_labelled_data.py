"""Labelled data for sequence classification: readers, label ids, text encoders, feature sequences."""

import gzip
import json
import struct
import warnings

import numpy as np
import pytest
import torch

from rnnkit.data import (Labels, LabelledSequences, TextEncoder, digits_rows, read_labelled, read_mnist_idx,
                         read_sequences)

EXAMPLES = [("a fine film", "1"), ("dull , slow", "0"), ("très bon", "1")]


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------------------------- read_labelled

@pytest.mark.parametrize("name, text", [
    ("data.csv", "text,label\na fine film,1\n\"dull , slow\",0\ntrès bon,1\n"),
    ("data.tsv", "label\ttext\n" + "".join(f"{y}\t{t}\n" for t, y in EXAMPLES)),
    ("data.jsonl", "".join(json.dumps({"text": t, "label": int(y)}, ensure_ascii=False) + "\n"
                           for t, y in EXAMPLES)),
    ("data.txt", "".join(f"{y} {t}\n" for t, y in EXAMPLES)),
])
def test_each_format_round_trips(tmp_path, name, text):
    data = read_labelled(write(tmp_path, name, text))
    assert data.texts == [t for t, _ in EXAMPLES]
    assert data.labels == [(y,) for _, y in EXAMPLES] and data.skipped_empty == 0


def test_headerless_tsv_with_column_numbers(tmp_path):
    path = write(tmp_path, "train.tsv", "a fine film\t1\ndull , slow\t0")          # no final newline
    for cols in [dict(text_col=0, label_col=1), dict(text_col="0", label_col="1", header=False)]:
        data = read_labelled(path, **cols)
        assert data.texts == ["a fine film", "dull , slow"] and data.labels == [("1",), ("0",)]


def test_sst_files_read_as_label_then_sentence(tmp_path):
    path = write(tmp_path, "stsa.binary.dev", "1 it 's \"good\" , really\n0 bad\n\n")
    data = read_labelled(path)
    assert data.texts == ["it 's \"good\" , really", "bad"] and data.labels == [("1",), ("0",)]


def test_quoted_csv_fields_hold_newlines_commas_and_quotes(tmp_path):
    path = write(tmp_path, "data.csv",
                 'id,label,text\n7,pos,"line one\nline two, with ""quotes"""\r\n8,neg,plain\n')
    data = read_labelled(path)
    assert data.texts == ['line one\nline two, with "quotes"', "plain"] and data.labels == [("pos",), ("neg",)]


def test_multi_label_fields_and_json_lists(tmp_path):
    csv_path = write(tmp_path, "data.csv", 'text,tags\nx,"a, b,,"\ny,c\nz,\n')
    data = read_labelled(csv_path, label_col="tags", multi_label=True)
    assert data.labels == [("a", "b"), ("c",), ()]
    jsonl = write(tmp_path, "data.jsonl", '{"body": "x", "tags": ["a", 3]}\n{"body": "y", "tags": "b|c"}\n')
    data = read_labelled(jsonl, text_col="body", label_col="tags", multi_label=True, label_sep="|")
    assert data.labels == [("a", "3"), ("b", "c")]


def test_json_integer_and_boolean_labels_become_strings(tmp_path):
    path = write(tmp_path, "data.ndjson", '{"text": "x", "label": 0}\n\n{"text": "y", "label": true}\n')
    assert read_labelled(path).labels == [("0",), ("true",)]


def test_empty_texts_are_skipped_counted_and_warned_once(tmp_path):
    path = write(tmp_path, "data.csv", "text,label\ngood,1\n ,0\n,1\nbad,0\n")
    with pytest.warns(UserWarning, match="skipped 2 of 4 rows") as record:
        data = read_labelled(path)
    assert len(record) == 1 and data.skipped_empty == 2 and data.texts == ["good", "bad"]


def test_a_byte_order_mark_does_not_rename_the_first_column(tmp_path):
    path = write(tmp_path, "data.csv", "\ufefftext,label\nx,1\n")
    assert read_labelled(path).texts == ["x"]


@pytest.mark.parametrize("name, content, kwargs, message", [
    ("gone.csv", None, {}, "gone.csv does not exist"),
    ("empty.csv", b"", {}, "empty.csv is empty"),
    ("blank.txt", b"\n \n", {}, "blank.txt has no data rows"),
    ("header.csv", b"text,label\n", {}, "header.csv has no data rows"),
    ("latin.csv", "text,label\ncaf\u00e9,1\n".encode("latin-1"), {},
     r"latin.csv is not valid utf-8: byte 0xe9 at offset 14; pass --encoding"),
    ("cols.csv", b"sentence,y\nx,1\n", {}, r"cols.csv has no column 'text'; its columns are: 'sentence', 'y'"),
    ("cols.csv", b"sentence,y\nx,1\n", dict(text_col="sentence", label_col="label"), "no column 'label'"),
    ("short.csv", b"text,label\nx,1\ny\n", {}, r"short.csv, line 3: 1 fields, need at least 2"),
    ("short.tsv", b"x\t1\ny\n", dict(text_col=0, label_col=1), r"short.tsv, line 2: 1 fields"),
    ("named.tsv", b"x\t1\n", dict(header=False, text_col="text"), "without a header, columns are numbers"),
    ("quote.csv", b'text,label\n"open,1\nx,0\n', {}, r"quote.csv, line 2: unexpected end of data"),
    ("bad.jsonl", b'{"text": "x", "label": 1}\n{"text": "y", label: 0}\n', {}, r"bad.jsonl, line 2: invalid JSON"),
    ("keys.jsonl", b'{"sentence": "x", "label": 1}\n', {},
     r"keys.jsonl, line 1 has no key 'text'; its keys are: 'sentence', 'label'"),
    ("float.jsonl", b'{"text": "x", "label": 0.5}\n', {}, r"float.jsonl, line 1: a label must be a string"),
    ("all_empty.csv", b"text,label\n,1\n  ,0\n", {},
     r"all_empty.csv has no examples: the text of all 2 rows is empty"),
    ("nolabel.csv", b"text,label\nx,\n", {}, r"nolabel.csv, line 2: the label is empty"),
    ("data.csv", b"text,label\nx,1\n", dict(fmt="xml"), "unknown format 'xml'"),
])
def test_read_errors_are_one_line_and_name_the_problem(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_labelled(path, **kwargs)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------- Labels

def test_labels_encode_decode_and_save():
    labels = Labels.build([("10",), ("2",), ("2",), ("-1",)])
    assert labels.names == ["-1", "2", "10"] and len(labels) == 3        # numeric order
    ids = labels.encode([("2",), ("10",)])
    assert ids.dtype == torch.int64 and ids.tolist() == [1, 2]
    assert labels.decode(ids) == ["2", "10"]
    assert Labels.from_dict(json.loads(json.dumps(labels.to_dict()))) == labels
    assert Labels.build([("b",), ("a",), ("B",)]).names == ["B", "a", "b"]


def test_multi_labels_encode_multi_hot():
    labels = Labels.build([("a", "b"), ("c",), ()], multi_label=True)
    hot = labels.encode([("c", "a"), ()])
    assert hot.dtype == torch.float32 and hot.tolist() == [[1, 0, 1], [0, 0, 0]]
    assert labels.decode(hot[0].nonzero().flatten()) == ["a", "c"]


def test_label_errors():
    with pytest.raises(ValueError, match="only one class 'pos' in the training data"):
        Labels.build([("pos",), ("pos",)])
    with pytest.raises(ValueError, match="has 2 labels"):
        Labels.build([("a", "b"), ("c",)])
    labels = Labels.build([("neg",), ("pos",)])
    with pytest.raises(ValueError, match=r"label 'neutral' in the test data never occurs in the training "
                                         r"data \(known: 'neg', 'pos'\)"):
        labels.encode([("pos",), ("neutral",)], what="test")


# ----------------------------------------------------------------------------------- TextEncoder

def test_word_encoder_reserves_pad_and_unk_and_ranks_by_frequency():
    encoder = TextEncoder.build(["The cat the dog", "the cat", "a bird"], "word", min_freq=2)
    assert encoder.vocab == ["<pad>", "<unk>", "the", "cat"] and len(encoder) == 4
    assert encoder.encode("THE dog cat") == [2, 1, 3]
    assert encoder.tokens("THE dog cat") == ["the", "dog", "cat"]
    assert encoder.encode("   ") == [encoder.unk_id] and encoder.pad_id == 0
    assert len(TextEncoder.build(["a b c d e f"], "word", max_size=4)) == 4
    cased = TextEncoder.build(["The the"], "word", lowercase=False)
    assert cased.encode("The the THE") == [2, 3, 1]


def test_char_encoder_and_save():
    encoder = TextEncoder.build(["abba", "cab"], "char")
    assert encoder.vocab == ["<pad>", "<unk>", "a", "b", "c"]
    assert encoder.encode("Abz") == [2, 3, 1] and encoder.encode("") == [1]
    loaded = TextEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert loaded.kind == "char" and loaded.encode("Abz") == [2, 3, 1]


def test_bpe_encoder_trains_and_round_trips():
    rng = np.random.default_rng(0)
    words = ["movie", "film", "great", "terrible", "acting", "plot", "boring", "wonderful", "ending"]
    texts = [" ".join(rng.choice(words, 6)) + " !" for _ in range(200)]
    encoder = TextEncoder.build(texts, "bpe", bpe_vocab_size=60)
    assert 10 < len(encoder) <= 60
    ids = encoder.encode("Great ACTING, boring plot")
    assert ids and all(2 <= i < len(encoder) or i == encoder.unk_id for i in ids)
    assert len(encoder.tokens("Great ACTING")) == len(encoder.encode("Great ACTING"))
    assert "".join(encoder.tokens("wonderful")) == "wonderful"           # lower-cased pieces
    assert encoder.encode("") == [encoder.unk_id]
    loaded = TextEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert loaded.kind == "bpe" and len(loaded) == len(encoder)
    assert loaded.encode("Great ACTING, boring plot") == ids


# ------------------------------------------------------------------------------------- sequences

def test_read_sequences_csv_groups_by_id_and_sorts_by_time(tmp_path):
    path = write(tmp_path, "seq.csv", "id,t,a,label,b\n"
                                      "s2,1,5,up,6\ns1,2,3,down,4\ns1,0,1,down,2\ns2,0,7,up,8\ns1,1,9,down,9\n")
    data = read_sequences(path)
    assert isinstance(data, LabelledSequences) and data.labels == [("up",), ("down",)]
    assert data.sequences[0].dtype == np.float32
    assert data.sequences[0].tolist() == [[7, 8], [5, 6]]                    # s2 first: seen first
    assert data.sequences[1].tolist() == [[1, 2], [9, 9], [3, 4]]


def test_read_sequences_npz_with_lengths(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(3, 4, 2)
    np.savez(tmp_path / "seq.npz", x=x, y=np.array([0, 1, 1]), lengths=np.array([4, 1, 2]))
    data = read_sequences(tmp_path / "seq.npz")
    assert [s.shape for s in data.sequences] == [(4, 2), (1, 2), (2, 2)]
    assert data.sequences[2].dtype == np.float32 and data.sequences[2].tolist() == x[2, :2].tolist()
    assert data.labels == [("0",), ("1",), ("1",)]
    np.savez(tmp_path / "plain.npz", x=x, y=np.array(["a", "b", "a"]))
    assert [s.shape for s in read_sequences(tmp_path / "plain.npz").sequences] == [(4, 2)] * 3


@pytest.mark.parametrize("name, text, message", [
    ("cols.csv", "key,t,a,label\n1,0,1,x\n",
     r"cols.csv has no column 'id'; its columns are: 'key', 't', 'a', 'label'"),
    ("nofeat.csv", "id,t,label\n1,0,x\n", "no feature columns"),
    ("nan.csv", "id,t,a,label\n1,0,1,x\n1,1,oops,x\n", r"nan.csv, line 3: a is 'oops', not a number"),
    ("time.csv", "id,t,a,label\n1,zero,1,x\n", r"time.csv, line 2: t is 'zero', not a number"),
    ("mixed.csv", "id,t,a,label\n7,0,1,x\n7,1,1,y\n", r"mixed.csv: id '7' has two labels, 'x' and 'y' \(line 3\)"),
    ("short.csv", "id,t,a,label\n1,0,1\n", r"short.csv, line 2: 3 fields, the header has 4"),
    ("header.csv", "id,t,a,label\n", "has a header but no data rows"),
    ("gone.csv", None, "gone.csv does not exist"),
])
def test_read_sequences_csv_errors(tmp_path, name, text, message):
    path = tmp_path / name if text is None else write(tmp_path, name, text)
    with pytest.raises(ValueError, match=message):
        read_sequences(path)


def test_read_sequences_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", inputs=np.zeros((2, 3, 1)), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"a.npz has no array 'x'; its arrays are: 'inputs', 'y'"):
        read_sequences(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 3, 1)), y=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"b.npz: shapes x \(2, 3, 1\), y \(3,\)"):
        read_sequences(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.zeros((2, 3, 1)), y=np.zeros(2, dtype=int), lengths=np.array([3, 4]))
    with pytest.raises(ValueError, match=r"lengths in 1..3"):
        read_sequences(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="d.npz is not a readable .npz file"):
        read_sequences(tmp_path / "d.npz")


def test_digits_rows():
    data = digits_rows()
    assert len(data.sequences) == len(data.labels) == 1797
    assert data.sequences[0].shape == (8, 8) and data.sequences[0].dtype == np.float32
    assert 0.0 <= min(s.min() for s in data.sequences) and max(s.max() for s in data.sequences) == 1.0
    assert sorted({label for (label,) in data.labels}) == [str(d) for d in range(10)]


# ---------------------------------------------------------------------------------------- idx files

def idx_pair(tmp_path, images, labels, suffix=""):
    n, rows, cols = images.shape
    image_path, label_path = tmp_path / f"images-idx3-ubyte{suffix}", tmp_path / f"labels-idx1-ubyte{suffix}"
    opener = gzip.open if suffix == ".gz" else open
    with opener(image_path, "wb") as handle:
        handle.write(struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())
    with opener(label_path, "wb") as handle:
        handle.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())
    return image_path, label_path


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_idx_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    data = read_mnist_idx(*idx_pair(tmp_path, images, np.array([3, 1, 4, 1, 5]), suffix))
    assert data.labels == [("3",), ("1",), ("4",), ("1",), ("5",)]
    assert data.sequences[0].shape == (28, 28) and data.sequences[0].dtype == np.float32
    np.testing.assert_allclose(np.stack(data.sequences), images / 255.0, rtol=1e-6)


def test_mnist_idx_errors(tmp_path):
    images, labels = idx_pair(tmp_path, np.zeros((3, 4, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="has magic number 2049, not 2051"):
        read_mnist_idx(labels, images)
    (tmp_path / "other").mkdir()
    _, fewer = idx_pair(tmp_path / "other", np.zeros((2, 4, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="has 3 images but .* has 2 labels"):
        read_mnist_idx(images, fewer)
    images.write_bytes(images.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"has 63 bytes, but its header \(3, 4, 4\) needs 64"):
        read_mnist_idx(images, labels)
    with pytest.raises(ValueError, match="missing-idx3 does not exist"):
        read_mnist_idx(tmp_path / "missing-idx3", labels)
