"""The adaptive softmax decoder (rnnkit.nn.adaptive) and the language model that uses it."""

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.cli import main
from rnnkit.nn.adaptive import ROW_MULTIPLE, AdaptiveSoftmax
from rnnkit.tasks.lm import LanguageModel, LMConfig


def _softmax(cutoffs=(4, 9), vocab=15, width=6, seed=0):
    torch.manual_seed(seed)
    return AdaptiveSoftmax(width, vocab, list(cutoffs)).double()


def test_log_probabilities_are_normalised_over_the_whole_vocabulary():
    softmax = _softmax()
    h = torch.randn(3, 5, 6, dtype=torch.float64)
    log_p = softmax(h)
    assert log_p.shape == (3, 5, 15)
    torch.testing.assert_close(log_p.logsumexp(-1), torch.zeros(3, 5, dtype=torch.float64))


def test_loss_and_its_gradients_equal_the_nll_of_the_full_log_probabilities():
    softmax = _softmax()
    h = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 15, (40,))
    target[:3] = torch.tensor([0, 4, 14])                   # the first word of the head, of a cluster, the last word
    params = [h, *softmax.parameters()]
    fast = softmax.loss(h, target)
    fast_grads = torch.autograd.grad(fast, params)
    full = F.nll_loss(softmax.log_prob(h), target)
    full_grads = torch.autograd.grad(full, params)
    torch.testing.assert_close(fast, full)
    for a, b in zip(fast_grads, full_grads):
        torch.testing.assert_close(a, b)


def test_cluster_products_see_row_counts_in_multiples_of_row_multiple(monkeypatch):
    # oneDNN's bfloat16 matmul builds a kernel per shape: each step's cluster sizes must not each be new
    rows_seen = []
    cluster = AdaptiveSoftmax._cluster
    monkeypatch.setattr(AdaptiveSoftmax, "_cluster",
                        lambda self, h, first, end: rows_seen.append(len(h)) or cluster(self, h, first, end))
    softmax = _softmax()
    for n in (5, 40, 77):
        softmax.loss(torch.randn(n, 6, dtype=torch.float64), torch.randint(0, 15, (n,)))
    assert rows_seen and all(rows % ROW_MULTIPLE == 0 for rows in rows_seen)


def test_targets_in_the_head_leave_the_tail_words_untouched():
    softmax = _softmax()
    h = torch.randn(8, 6, dtype=torch.float64)
    softmax.loss(h, torch.randint(0, 4, (8,))).backward()
    assert softmax.weight.grad[4:].abs().sum() == 0 and softmax.bias.grad[4:].abs().sum() == 0
    assert softmax.cluster_weight.grad.abs().sum() > 0       # the clusters still compete in the head


@pytest.mark.parametrize("cutoffs", [[], [0], [5, 3], [4, 4], [15], [2.5]])
def test_bad_cutoffs_are_refused(cutoffs):
    with pytest.raises(ValueError, match="cutoffs"):
        AdaptiveSoftmax(6, 15, cutoffs)
    with pytest.raises(ValueError, match="cutoffs"):
        LMConfig(vocab_size=15, softmax_cutoffs=cutoffs)


def test_tied_language_model_loss_equals_cross_entropy_of_its_output():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=30, embedding_size=8, hidden_size=12, num_layers=2, tie_weights=True,
                                   softmax_cutoffs=[10, 20])).eval()
    assert model.decoder.weight is model.embedding.weight
    x, y = torch.randint(0, 30, (7, 3)), torch.randint(0, 30, (7, 3))
    logits, _ = model(x)
    loss, _ = model.loss(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 30), y.reshape(-1)))


def test_language_model_with_adaptive_softmax_learns_a_sequence():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=20, embedding_size=16, hidden_size=32, num_layers=1,
                                   softmax_cutoffs=[5]))
    sequence = torch.tensor([0, 7, 3, 12, 19, 1, 8, 15] * 4).unsqueeze(1)          # (32, 1), mostly tail words
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        loss, _ = model.loss(sequence[:-1], sequence[1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def _corpus(tmp_path):
    path = tmp_path / "words.txt"
    words = "the a cat dog sat ran on under mat log house tree".split()
    path.write_text("\n".join(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(6)) for i in range(200)) + "\n")
    return path


def test_cli_trains_evaluates_and_generates_with_an_adaptive_softmax(tmp_path, capsys):
    data, out = _corpus(tmp_path), tmp_path / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(out), "--tokens", "word", "--adaptive-softmax",
                 "4,8", "--tie-weights", "--embedding-size", "16", "--hidden-size", "16", "--layers", "1",
                 "--max-steps", "30", "--eval-every", "30", "--batch-size", "4", "--bptt", "8", "--lr", "0.02"]) == 0
    assert rnnkit.load(out).config["task"]["model"]["softmax_cutoffs"] == [4, 8]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(data), "--json"]) == 0
    assert '"perplexity"' in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(out), "--prompt", "the cat", "--length", "5", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("the cat")


@pytest.mark.parametrize("extra, message", [
    (["--adaptive-softmax", "4"], "needs word tokens"),                                  # characters
    (["--tokens", "word", "--adaptive-softmax", "500"], "cutoffs"),                      # past the vocabulary
])
def test_cli_refuses_an_unusable_adaptive_softmax_in_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    data, out = _corpus(tmp_path), tmp_path / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(out), "--max-steps", "2", *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_refuses_malformed_cutoffs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "lm", "--data", str(_corpus(tmp_path)), "--out", str(tmp_path / "run"),
              "--adaptive-softmax", "2000,x"])
    assert exit_info.value.code == 2 and "--adaptive-softmax" in capsys.readouterr().err
