"""One Vocabulary for every task: configurable special tokens, the classifier's view of it, and the
formats earlier releases saved inside checkpoints."""

import json

import numpy as np
import pytest

from rnnkit.data import BOS, EOS, PAD, PAD_ID, UNK, UNK_ID, TextEncoder, Vocabulary
from rnnkit.data.bpe import SPACE, train_bpe


def test_special_tokens_come_first_and_name_their_ids():
    vocab = Vocabulary.build(["b a b\nc\n"], "word", specials=(PAD, UNK, BOS))
    assert vocab.tokens == [PAD, UNK, BOS, "b", "a", "c"] and vocab.specials == (PAD, UNK, BOS)
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id, vocab.blank_id) == (0, 1, 2, None, None)
    assert vocab.split("a z\nb\n") == ["a", "z", "b"]                          # no <eos>: lines are not marked
    assert vocab.encode("a z").tolist() == [4, 1]
    assert vocab.decode([2, 3, 0, 4]) == "b a"                                 # <bos>, <pad> decode as nothing
    assert Vocabulary.build(["b a b"], "word", specials=(UNK,), max_size=2).tokens == [UNK, "b"]   # specials count


def test_specials_not_at_the_start_are_refused():
    with pytest.raises(ValueError, match="must begin with the special tokens"):
        Vocabulary("word", ["a", UNK], specials=(UNK,))
    with pytest.raises(ValueError, match="needs <unk>"):
        Vocabulary.build(["a b"], "bpe", specials=(EOS,))


def test_character_vocabularies_are_cut_by_frequency_then_sorted():
    vocab = Vocabulary.build(["zzzyx", "y"], "char", max_size=3, specials=(UNK,))
    assert vocab.tokens == [UNK, "y", "z"]                                    # z 3, y 2 kept (3 ids), x cut
    assert vocab.encode("zxy").tolist() == [2, 0, 1]                           # unknown characters: <unk>
    assert vocab.decode(vocab.encode("zxy")) == "z<unk>y"


def test_a_vocabulary_without_unk_names_the_missing_tokens_and_what_to_do():
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: 'xz'; .*remove those characters"):
        Vocabulary.build(["abc"], "char").encode("axbzx")
    with pytest.raises(ValueError, match=r"words not in the vocabulary: 'c', 'd'"):
        Vocabulary("word", ["a", "b"]).encode("a c d")


def test_lowercase_applies_to_counting_and_to_splitting():
    vocab = Vocabulary.build(["The the THE cat"], "word", specials=(UNK,), lowercase=True)
    assert vocab.tokens == [UNK, "the", "cat"] and vocab.split("THE Cat") == ["the", "cat"]
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))).encode("Cat THE").tolist() == [2, 1]


def test_to_dict_round_trips_every_kind():
    text = "the cat sat\non the mat\n" * 20
    for vocab in [Vocabulary.build([text], "char", specials=(UNK,)), Vocabulary.build([text], "word"),
                  Vocabulary.build([text], "bpe", max_size=30),
                  Vocabulary.build([text], "bpe", specials=(PAD, UNK), max_size=30, lowercase=True)]:
        data = json.loads(json.dumps(vocab.to_dict()))
        assert set(data) == {"kind", "specials", "lowercase", "tokens" if vocab.kind != "bpe" else "tokenizer"}
        loaded = Vocabulary.from_dict(data)
        assert (loaded.kind, loaded.tokens, loaded.specials, loaded.lowercase) == \
               (vocab.kind, vocab.tokens, vocab.specials, vocab.lowercase)
        np.testing.assert_array_equal(loaded.encode("The cat\nsat"), vocab.encode("The cat\nsat"))


def test_bpe_keeps_spaces_for_language_models_only():
    texts = ["a fine film , really", "a dull film !"] * 30
    lm = Vocabulary.build(texts, "bpe", max_size=40)                           # <unk>, <eos>: line by line
    classifier = Vocabulary.build(texts, "bpe", specials=(PAD, UNK), max_size=40)
    assert any(token.startswith(SPACE) for token in lm.tokens)
    assert not any(SPACE in token for token in classifier.tokens)             # punctuation-split, spaces dropped
    assert classifier.split("Fine film!") == classifier.split("Fine film !")
    assert lm.eos_id == 1 and classifier.eos_id is None and EOS not in classifier.split("a\nb")


# --- formats saved by earlier releases (format 1) ------------------------------------------------

def test_language_model_vocabularies_of_earlier_releases_load():
    char = Vocabulary.from_dict({"kind": "char", "tokens": ["\n", " ", "a", "c", "t"]})
    assert char.specials == () and not char.lowercase and char.unk_id is None
    assert char.decode(char.encode("a cat\n")) == "a cat\n"
    with pytest.raises(ValueError, match="'x'"):
        char.encode("tax")
    word = Vocabulary.from_dict({"kind": "word", "tokens": ["<unk>", "<eos>", "the", "cat"]})
    assert word.specials == (UNK, EOS) and word.encode("the dog\ncat").tolist() == [2, 0, 1, 3]
    assert word.decode([2, 3, 1, 0]) == "the cat\n<unk>"
    tokenizer = train_bpe([["the cat", "the mat"]] * 10, 30, [UNK, EOS], unk_token=UNK, keep_spaces=True)
    bpe = Vocabulary.from_dict({"kind": "bpe", "tokenizer": tokenizer.to_str()})
    assert bpe.specials == (UNK, EOS) and bpe.decode(bpe.encode("the  cat\nthe mat\n")) == "the cat\nthe mat\n"
    assert Vocabulary.from_dict(word.to_dict()).to_dict() == {"kind": "word", "specials": [UNK, EOS],
                                                             "lowercase": False, "tokens": word.tokens}


def test_classifier_encoders_of_earlier_releases_load():
    word = TextEncoder.from_dict({"kind": "word", "lowercase": True,
                                  "tokens": ["<pad>", "<unk>", "film", "good", "bad"]})
    assert word.vocabulary.specials == (PAD, UNK) and word.lowercase
    assert word.encode("Good FILM , bad") == [3, 2, UNK_ID, 4] and word.tokens("Good") == ["good"]
    tokenizer = train_bpe(["good film", "bad film"] * 10, 30, [PAD, UNK], lowercase=True)
    bpe = TextEncoder.from_dict({"kind": "bpe", "lowercase": True, "tokenizer": tokenizer.to_str()})
    assert bpe.vocabulary.specials == (PAD, UNK) and bpe.encode("GOOD film") == tokenizer.encode("good film").ids
    assert bpe.encode("") == [UNK_ID]


# --- TextEncoder: the classifier's view -----------------------------------------------------------

def test_text_encoder_wraps_a_vocabulary_with_pad_and_unk():
    encoder = TextEncoder.build(["A fine film", "a dull film"], "char")
    assert isinstance(encoder.vocabulary, Vocabulary) and encoder.vocabulary.specials == (PAD, UNK)
    assert encoder.vocab[:2] == [PAD, UNK] and encoder.vocab[2:] == sorted(encoder.vocab[2:])
    assert encoder.to_dict() == encoder.vocabulary.to_dict() and encoder.pad_id == PAD_ID
    with pytest.raises(ValueError, match="begins with <pad>, <unk>"):
        TextEncoder(Vocabulary.build(["a b"], "word"))


def test_text_encoder_from_a_language_models_tokens():
    lm = Vocabulary.build(["the cat\nthe dog\n"], "word")                      # <unk>, <eos>, the, cat, dog
    encoder = TextEncoder.from_tokens(lm.kind, lm.tokens)
    assert encoder.vocab == [PAD, UNK, EOS, "the", "cat", "dog"] and not encoder.lowercase
    assert encoder.encode("The cat\n") == [UNK_ID, 4]                          # case kept, no <eos> per line
