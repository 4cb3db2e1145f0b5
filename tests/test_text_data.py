"""Text data for language models: vocabularies, on-disk token streams, truncated-BPTT windows."""

import numpy as np
import pytest
import torch

from rnnkit.data import EOS, UNK, StreamBatches, Vocabulary, Window, read_chunks, tokenize_file

TEXT = "the cat sat\non the mat — ça va\nthe end\n" * 40          # multi-byte characters included


def write(tmp_path, text, name="corpus.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_char_vocabulary_round_trip():
    vocab = Vocabulary.build([TEXT], "char")
    ids = vocab.encode(TEXT)
    assert ids.dtype == np.int32 and vocab.decode(ids) == TEXT
    assert Vocabulary.from_dict(vocab.to_dict()).tokens == vocab.tokens


def test_char_vocabulary_names_missing_characters():
    vocab = Vocabulary.build(["abc"], "char")
    with pytest.raises(ValueError, match="'xz'"):
        vocab.encode("axbz")


def test_word_vocabulary_marks_line_ends_and_unknown_words():
    vocab = Vocabulary.build(["a a a b\nb c\n"], "word", min_freq=2)
    assert vocab.tokens[:2] == [UNK, EOS] and "c" not in vocab.index
    ids = vocab.encode("a c\nb\n")
    assert [vocab.tokens[i] for i in ids] == ["a", UNK, EOS, "b", EOS]
    assert vocab.decode(vocab.encode("a b\n")) == "a b\n"
    # A prompt without a final newline keeps its words and gets no <eos>.
    assert [vocab.tokens[i] for i in vocab.encode("b a")] == ["b", "a"]
    assert [vocab.tokens[i] for i in vocab.encode("a\nb a")] == ["a", EOS, "b", "a"]


def test_bpe_vocabulary_round_trips_text_and_decodes_the_same_token_by_token():
    vocab = Vocabulary.build([TEXT[:50], TEXT[50:]], "bpe", max_size=40)        # chunks split lines
    assert vocab.tokens[:2] == [UNK, EOS] and 30 < len(vocab) <= 40
    text = "the  cat sat\n\non the mat — ça va\n"
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and (ids == vocab.index[EOS]).sum() == 3
    assert vocab.decode(ids) == "the cat sat\n\non the mat — ça va\n"             # white space runs: one space
    streamed = ""
    for i in ids:
        streamed += vocab.decode([i], streamed[-1:])
    assert streamed == vocab.decode(ids)
    assert vocab.decode(vocab.encode("the ca"), "x") == " the ca" and vocab.decode(vocab.encode("ZZ")) == UNK * 2
    loaded = Vocabulary.from_dict(vocab.to_dict())
    assert loaded.kind == "bpe" and loaded.tokens == vocab.tokens
    np.testing.assert_array_equal(loaded.encode(TEXT), vocab.encode(TEXT))
    # Characters the tokens stand for: the normalised text, each line's newline counted once.
    ids = vocab.encode(text)
    assert vocab.count_chars(ids[:-1], ids[1:]) == len(vocab.decode(ids)) - len(vocab.decode(ids[:1]))


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenize_file_streams_in_chunks_like_encoding_in_memory(tmp_path, kind):
    path = write(tmp_path, TEXT)
    vocab = Vocabulary.build(read_chunks(path, chunk_chars=7), kind)       # chunks split characters
    tokens = tokenize_file(path, vocab, tmp_path / "tokens.bin", chunk_chars=7)
    assert isinstance(tokens, np.memmap)
    np.testing.assert_array_equal(np.asarray(tokens), vocab.encode(TEXT))
    assert not (tmp_path / "tokens.bin.tmp").exists()


def test_invalid_utf8_names_the_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("héllo wörld".encode("utf-8") + b"\xff tail")
    with pytest.raises(ValueError, match=r"byte 0xff at offset 13; pass --encoding"):
        list(read_chunks(path, chunk_chars=4))


def test_empty_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        list(read_chunks(write(tmp_path, "")))
    with pytest.raises(ValueError, match="does not exist"):
        list(read_chunks(tmp_path / "nope.txt"))


def test_streams_cover_the_text_in_order_and_targets_are_shifted():
    tokens = np.arange(103, dtype=np.int32)
    batches = StreamBatches(tokens, batch_size=4, bptt=6)
    xs, ys, starts = zip(*batches(0))
    assert starts[0] == 0 and list(starts) == sorted(starts)
    x, y = torch.cat(xs), torch.cat(ys)                                     # (N-1, B)
    assert x.shape == (24, 4) and x.dtype == torch.long
    for b in range(4):                                                      # stream b is a contiguous slice
        assert torch.equal(x[:, b], torch.arange(b * 25, b * 25 + 24))
    assert torch.equal(y, x + 1)


def test_random_window_lengths_are_the_same_for_the_same_epoch():
    batches = StreamBatches(np.arange(5000, dtype=np.int32), batch_size=2, bptt=20, random_length=True, seed=3)
    assert batches.windows(1) == batches.windows(1)
    assert batches.windows(1) != batches.windows(2)
    assert sum(length for _, length in batches.windows(1)) == 2499


def test_text_shorter_than_one_window_is_refused():
    with pytest.raises(ValueError, match="too few for 8 streams"):
        StreamBatches(np.arange(10, dtype=np.int32), batch_size=8, bptt=5)


# --- line ends, encodings, unknown characters, windows -------------------------------------------

def test_crlf_and_lone_cr_become_newlines_even_across_chunks(tmp_path):
    path = write(tmp_path, "a\r\nbc\r\nd\re\r\n")
    for size in (1, 2, 3, 4, 100):                      # size 2: "a\r" | "\nb" ..., a "\r\n" split in two
        assert "".join(read_chunks(path, chunk_chars=size)) == "a\nbc\nd\ne\n"
    vocab = Vocabulary.build(read_chunks(path, chunk_chars=3), "char")
    assert "\r" not in vocab.index and vocab.decode(tokenize_file(path, vocab, tmp_path / "t.bin", chunk_chars=3)) \
        == "a\nbc\nd\ne\n"


def test_the_byte_offset_of_invalid_utf8_counts_the_bytes_of_crlf(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ab\r\ncd\r\n\xff tail")
    with pytest.raises(ValueError, match=r"byte 0xff at offset 8; pass --encoding"):
        list(read_chunks(path, chunk_chars=3))


def test_an_unknown_encoding_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown text encoding 'bogus'"):
        list(read_chunks(write(tmp_path, "text"), "bogus"))


def test_tokenize_file_reads_unseen_characters_as_unk_and_warns_once(tmp_path):
    vocab = Vocabulary.build(["abc\n"], "char", specials=(UNK,))
    path = write(tmp_path, "ab€c中\n€a")
    message = r"3 characters not in the vocabulary \('€', '中'\) were read as <unk>"
    with pytest.warns(UserWarning, match=message) as record:
        tokens = tokenize_file(path, vocab, tmp_path / "tokens.bin", chunk_chars=2)
    assert len(record) == 1 and vocab.decode(tokens) == "ab<unk>c<unk>\n<unk>a"
    many = write(tmp_path, "".join(chr(0x400 + i) for i in range(12)) + "a", "many.txt")
    with pytest.warns(UserWarning, match=r"12 characters .*, \.\.\.\) were read as <unk>") as record:
        tokenize_file(many, vocab, tmp_path / "many.bin")
    assert str(record[0].message).count("'") == 2 * 10                     # 10 named


def test_tokenize_file_without_unk_refuses_and_writes_nothing(tmp_path):
    vocab = Vocabulary.build(["abc\n"], "char")
    with pytest.raises(ValueError, match=r"'€'; .*remove those characters from the text"):
        tokenize_file(write(tmp_path, "ab€c\n"), vocab, tmp_path / "tokens.bin")
    assert list(tmp_path.iterdir()) == [tmp_path / "corpus.txt"]


def test_stream_batches_count_their_windows_and_serve_window_dataclasses():
    batches = StreamBatches(np.arange(103, dtype=np.int32), batch_size=4, bptt=6)
    windows = list(batches())                                                # epoch 0 by default
    assert len(batches) == len(windows) == 4
    first = windows[0]
    assert isinstance(first, Window) and first.x.shape == first.y.shape == (6, 4) and first.start == 0
    x, y, start = windows[1]                                                 # unpacks as before
    assert torch.equal(x, windows[1].x) and start == 6


def test_a_character_language_model_reads_characters_it_never_saw_as_unk(tmp_path):
    from rnnkit.tasks.lm import LMData, evaluate, fit
    from rnnkit.train import TrainConfig

    corpus, other = write(tmp_path, "the cat sat\n" * 20), write(tmp_path, "the €at sat\n" * 4, "other.txt")
    fit(corpus, tmp_path / "lm", model=dict(embedding_size=4, hidden_size=4, num_layers=1),
             data=LMData(batch_size=2, bptt=8), train=TrainConfig(max_steps=1, progress=False, tensorboard=False))
    with pytest.warns(UserWarning, match=r"4 characters not in the vocabulary \('€'\) were read as <unk>"):
        result = evaluate(tmp_path / "lm", other)
    assert result["tokens"] == 40 and np.isfinite(result["bits_per_char"])         # 8 streams of 5 targets
