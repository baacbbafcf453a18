"""Character-level text models against independent references: direct counts, brute-force enumeration of
all short strings, hand-written greedy decoding, perturbation of future tokens."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from gmlib.data.text import TEXT_CORPORA, load_corpus
from gmlib.models.text import (
    PRINTABLE_CHARS,
    CharTransformer,
    CharTransformerConfig,
    CharVocab,
    NGramModel,
    apply_temperature,
    make_windows,
    sample_next,
    top_k_filter,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not stall when other processes load the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_transformer(chars: str = "abc", seed: int = 0, **kw) -> CharTransformer:
    torch.manual_seed(seed)
    cfg = CharTransformerConfig(chars=chars, **{"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})
    model = CharTransformer(cfg).double().eval()
    with torch.no_grad():  # larger output weights than the 0.02 init, so the distributions are far from uniform
        model.head.weight.normal_(0.0, 1.0)
    return model


# ---------------------------------------------------------------------------------------------- corpus, vocab
def test_corpora_ship_with_python():
    """Is stdlib-docs 100-300 kB of printable ASCII, the same on every call, and is the Zen readable?"""
    text = load_corpus("stdlib-docs")
    assert 100_000 <= len(text) <= 300_000
    assert set(text) <= set(PRINTABLE_CHARS)
    assert "json.dumps:" in text
    assert load_corpus("stdlib-docs") == text
    assert "Beautiful is better than ugly." in load_corpus("zen")
    assert set(TEXT_CORPORA) == {"stdlib-docs", "zen"}
    with pytest.raises(ValueError, match="stdlib-docs"):
        load_corpus("shakespeare")


def test_vocab_round_trip():
    """Does decode(encode(s)) give s back, with indices in sorted-character order, and is an unknown
    character named in the error?"""
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == " dehlorw"
    ids = vocab.encode("hello")
    assert ids.dtype == torch.long and ids.tolist() == [3, 2, 4, 4, 5]
    assert vocab.decode(ids) == "hello" and vocab.decode([7, 5]) == "wo"
    with pytest.raises(KeyError, match="'z'"):
        vocab.encode("zebra")


def test_make_windows():
    """Are the windows consecutive slices of the text starting every stride characters?"""
    ids = torch.arange(20)
    w = make_windows(ids, 8, stride=4)
    assert w.shape == (4, 8)
    assert torch.equal(w[1], torch.arange(4, 12)) and torch.equal(w[-1], torch.arange(12, 20))
    assert make_windows(ids, 8).shape == (4, 8)  # default stride block_size // 2


# ---------------------------------------------------------------------------------------------- pure pieces
def test_apply_temperature_divides_logits():
    """Is apply_temperature logits / t, the identity at t = 1, and is t <= 0 refused?"""
    logits = torch.randn(3, 5)
    torch.testing.assert_close(apply_temperature(logits, 1.0), logits)
    torch.testing.assert_close(apply_temperature(logits, 0.5), 2 * logits)
    with pytest.raises(ValueError):
        apply_temperature(logits, 0.0)


def test_temperature_to_zero_approaches_argmax_and_large_to_uniform():
    """Does softmax(logits / t) tend to one_hot(argmax) as t -> 0 and to uniform as t grows?"""
    logits = torch.tensor([[0.3, 2.0, -1.0, 1.9]])
    cold = torch.softmax(apply_temperature(logits, 1e-3), dim=-1)
    torch.testing.assert_close(cold, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    hot = torch.softmax(apply_temperature(logits, 1e4), dim=-1)
    torch.testing.assert_close(hot, torch.full((1, 4), 0.25), atol=1e-3, rtol=0)
    entropies = [torch.distributions.Categorical(logits=apply_temperature(logits, t)).entropy() for t in (0.5, 1, 2)]
    assert entropies[0] < entropies[1] < entropies[2]


def test_top_k_keeps_exactly_the_k_largest():
    """Does top_k_filter keep exactly k finite logits per row (ties included), unchanged, and are they the k
    largest; is k >= V the identity?"""
    logits = torch.randn(6, 10)
    logits[0] = 1.0  # all tied
    for k in (1, 3, 7):
        out = top_k_filter(logits, k)
        finite = torch.isfinite(out)
        assert (finite.sum(dim=1) == k).all()
        torch.testing.assert_close(out[finite], logits[finite])
        kth = logits.sort(dim=1, descending=True).values[:, k - 1 : k]  # (6, 1)
        assert (logits[finite.logical_not()].view(6, -1) <= kth).all()
        assert (out[finite].view(6, k) >= kth).all()
    assert torch.equal(top_k_filter(logits, 10), logits)
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_sample_next_follows_the_filtered_softmax():
    """Do sample_next's draws follow softmax(top_k(logits / t)) (frequencies over 40k draws), reproducibly with
    a generator; is temperature 0 the argmax?"""
    logits = torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5])
    n = 40_000
    for t, k in [(1.0, None), (0.5, None), (2.0, 3)]:
        g = torch.Generator().manual_seed(0)
        draws = sample_next(logits.expand(n, 5), t, k, g)
        assert draws.shape == (n,) and draws.dtype == torch.long
        expected = torch.softmax(top_k_filter(logits / t, k) if k else logits / t, dim=-1)
        freq = torch.bincount(draws, minlength=5).float() / n
        torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
        again = sample_next(logits.expand(n, 5), t, k, torch.Generator().manual_seed(0))
        assert torch.equal(draws, again)
    assert sample_next(torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]]), 0.0).tolist() == [1, 0]


def test_transformer_next_probs_is_a_ratio_of_string_probabilities():
    """Is CharTransformer.next_probs(h)[c] = p(h + c) / p(h), both from log_prob (an independent path)?"""
    model = tiny_transformer("abc", seed=3)
    for history in ("", "a", "cab"):
        probs = model.next_probs(history)
        ids = model.vocab.encode(history)
        with torch.no_grad():
            base = model.log_prob(ids[None]) if history else torch.zeros(1, dtype=torch.float64)
            ext = torch.stack([model.log_prob(torch.cat([ids, torch.tensor([c])])[None])[0] for c in range(3)])
        torch.testing.assert_close(probs, (ext - base).exp())
        assert probs.dtype == torch.float64


# ---------------------------------------------------------------------------------------------- n-gram
def count_overlapping(text: str, pattern: str) -> int:
    return sum(text.startswith(pattern, i) for i in range(len(text)))


def test_ngram_probabilities_equal_direct_counts():
    """Is p(c | context) = (count(context + c) + k) / (count(context as a prefix of some pair) + k V), counted
    directly with str.startswith, and does every seen context's distribution sum to 1?"""
    text = "abracadabra cadabra"
    vocab = CharVocab.from_text(text)
    k = 0.5
    model = NGramModel(vocab, order=3, k=k).fit_counts(text)
    v = len(vocab)
    for context in ("ab", "ra", "ca", "a ", "zz"):
        if "z" in context:
            probs = model.next_probs("x" + context)  # unseen context: uniform
            torch.testing.assert_close(probs, torch.full((v,), 1.0 / v, dtype=torch.float64))
            continue
        probs = model.next_probs("only the last two count: " + context)
        total = sum(count_overlapping(text, context + c) for c in vocab.chars)
        for c in vocab.chars:
            expected = (count_overlapping(text, context + c) + k) / (total + k * v)
            assert probs[vocab.stoi[c]].item() == pytest.approx(expected)
    for history in ("", "a", "ab", "br", "ra", "bra ", "d"):
        assert model.next_probs(history).sum().item() == pytest.approx(1.0)


def test_unigram_with_k0_is_the_character_frequency():
    """Is the order-1, k=0 model the empirical character frequency?"""
    text = "mississippi river"
    vocab = CharVocab.from_text(text)
    model = NGramModel(vocab, order=1, k=0.0).fit_counts(text)
    freq = Counter(text)
    for c in vocab.chars:
        assert model.next_probs("anything")[vocab.stoi[c]].item() == pytest.approx(freq[c] / len(text))


@pytest.mark.parametrize(("order", "k"), [(1, 1.0), (2, 0.5), (3, 0.1)])
def test_ngram_probabilities_of_all_strings_sum_to_one(order, k):
    """Brute force: do the n-gram probabilities of all V^4 strings of length 4 sum to 1?"""
    vocab = CharVocab("abc")
    model = NGramModel(vocab, order=order, k=k).fit_counts("abacabcbbacab")
    total = sum(math.exp(model.log_prob("".join(s))) for s in itertools.product("abc", repeat=4))
    assert total == pytest.approx(1.0)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_ngram_backoff_is_normalised_and_uses_the_longest_seen_suffix(order):
    """With backoff=True, do the probabilities of all V^4 strings sum to 1; is a seen context's distribution the
    plain model's, and an unseen one's that of a separately fitted lower-order model whose context was seen?"""
    text = "abacabcbbacab"
    vocab = CharVocab("abcd")  # "d" never occurs: every context containing it is unseen
    model = NGramModel(vocab, order=order, k=0.2, backoff=True).fit_counts(text)
    total = sum(math.exp(model.log_prob("".join(s))) for s in itertools.product("abcd", repeat=4))
    assert total == pytest.approx(1.0)
    plain = NGramModel(vocab, order=order, k=0.2).fit_counts(text)
    seen = text[: order - 1]
    torch.testing.assert_close(model.next_probs(seen), plain.next_probs(seen))
    for cut in range(1, order):  # history ending in "d" + the last order-1-cut characters of a seen context
        history = "d" + text[5 : 5 + order - 1 - cut]
        lower = NGramModel(vocab, order=order - cut, k=0.2).fit_counts(text)
        suffix = history[-(order - 1 - cut) :] if order - 1 - cut else ""
        expected = lower.next_probs(suffix) if suffix else lower.next_probs("")
        assert model.context_used(history) == suffix
        torch.testing.assert_close(model.next_probs(history), expected)


def test_ngram_sampling_is_reproducible_and_greedy_at_zero_temperature():
    """Do equal seeds give equal samples, and does temperature 0 follow the argmax of each next_probs?"""
    text = "the cat sat on the mat. the dog sat on the log."
    vocab = CharVocab.from_text(text)
    model = NGramModel(vocab, order=3, k=0.01).fit_counts(text)
    a = model.sample(3, 20, prompt="the ", generator=torch.Generator().manual_seed(0))
    b = model.sample(3, 20, prompt="the ", generator=torch.Generator().manual_seed(0))
    assert a == b and all(s.startswith("the ") and len(s) == 24 for s in a)
    greedy = "th"
    for _ in range(15):
        greedy += vocab.chars[int(model.next_probs(greedy).argmax())]
    assert model.sample(2, 15, prompt="th", temperature=0.0) == [greedy, greedy]
    (top1,) = model.sample(1, 15, prompt="th", top_k=1, generator=torch.Generator().manual_seed(5))
    for t in range(2, len(top1)):  # top_k = 1 keeps a most likely character (ties may pick another)
        probs = model.next_probs(top1[:t])
        assert probs[vocab.stoi[top1[t]]] == probs.max()


# ---------------------------------------------------------------------------------------------- transformer
def test_transformer_is_causal():
    """Are the logits at position t unchanged when the tokens after t change, and changed by token t?"""
    model = tiny_transformer("abcdef")
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 6, (2, 8), generator=g)
    base = model(idx)
    for t in range(7):
        changed = idx.clone()
        changed[:, t + 1 :] = torch.randint(0, 6, changed[:, t + 1 :].shape, generator=g)
        torch.testing.assert_close(model(changed)[:, : t + 1], base[:, : t + 1])
        bumped = idx.clone()
        bumped[:, t] = (bumped[:, t] + 1) % 6
        assert not torch.allclose(model(bumped)[:, t], base[:, t])


def test_transformer_probabilities_of_all_strings_sum_to_one():
    """Brute force: do exp(log_prob) of all V^T strings (V = 3, T = 4) sum to 1, and is the loss the
    per-character mean of -log_prob?"""
    model = tiny_transformer("abc")
    x = torch.tensor(list(itertools.product(range(3), repeat=4)))  # (81, 4)
    with torch.no_grad():
        lp = model.log_prob(x)
        loss, logs = model.loss(x)
    torch.testing.assert_close(lp.logsumexp(0).exp(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(loss, -lp.mean() / 4)
    assert logs["bits_per_char"] == pytest.approx(loss.item() / math.log(2))
    assert model.log_prob((x,)).shape == (81,)


def test_transformer_samples_follow_its_distribution():
    """Brute force: do the frequencies of sampled strings of length 2 match exp(log_prob)?"""
    model = tiny_transformer("abc", seed=1)
    n = 20_000
    ids = model.sample(n, 2, generator=torch.Generator().manual_seed(0), as_ids=True)  # (n, 2)
    freq = torch.bincount(ids[:, 0] * 3 + ids[:, 1], minlength=9).double() / n
    all_pairs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    with torch.no_grad():
        probs = model.log_prob(all_pairs).exp()
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n)


def test_transformer_sampling_reproducible_prompt_and_greedy():
    """Do equal seeds give equal strings that start with the prompt; are temperature 0 and top_k = 1 the greedy
    continuation built by hand; does a sample longer than block_size work?"""
    model = tiny_transformer("abcd ", seed=2)
    a = model.sample(3, 5, prompt="ab", generator=torch.Generator().manual_seed(0))
    b = model.sample(3, 5, prompt="ab", generator=torch.Generator().manual_seed(0))
    assert a == b and all(s.startswith("ab") and len(s) == 7 for s in a)
    ids = torch.tensor([[model.bos, 0, 1]])
    with torch.no_grad():
        for _ in range(5):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    greedy = model.vocab.decode(ids[0, 1:])
    assert model.sample(2, 5, prompt="ab", temperature=0.0) == [greedy, greedy]
    assert model.sample(1, 5, prompt="ab", top_k=1, generator=torch.Generator().manual_seed(9)) == [greedy]
    assert len(model.sample(1, 20, temperature=0.7, top_k=3)[0]) == 20
    assert model.sample(4, 6, generator=torch.Generator().manual_seed(0), as_ids=True).shape == (4, 6)


def test_injected_sampling_pieces_are_used():
    """Do the model and the n-gram model call injected temperature and top-k functions?"""
    calls = []

    def my_temperature(logits, t):
        calls.append("t")
        return logits / t

    def my_top_k(logits, k):
        calls.append("k")
        return top_k_filter(logits, k)

    torch.manual_seed(0)
    model = CharTransformer(
        CharTransformerConfig(chars="ab", block_size=4, n_layer=1, n_head=1, n_embd=8),
        temperature_fn=my_temperature,
        top_k_fn=my_top_k,
    )
    model.sample(1, 2, temperature=0.5, top_k=1)
    ngram = NGramModel(CharVocab("ab"), 2, temperature_fn=my_temperature, top_k_fn=my_top_k).fit_counts("abba")
    ngram.sample(1, 1, temperature=0.5, top_k=1)
    assert calls == ["t", "k", "t", "k", "t", "k"]

    seen = []

    def my_sample(logits, temperature, top_k, generator):
        seen.append((tuple(logits.shape), temperature, top_k, generator))
        return torch.zeros(logits.shape[0], dtype=torch.long)

    g = torch.Generator()
    model.sample_fn = my_sample
    assert model.sample(2, 3, temperature=0.7, top_k=2, generator=g) == ["aaa", "aaa"]
    ngram = NGramModel(CharVocab("ab"), 2, sample_fn=my_sample).fit_counts("abba")
    assert ngram.sample(1, 2, temperature=1.5, generator=g) == ["aa"]
    assert seen == [((2, 2), 0.7, 2, g)] * 3 + [((1, 2), 1.5, None, g)] * 2


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_trained_models_beat_the_unigram_entropy():
    """After a few seconds of training, is the transformer's held-out loss (nats/char) below the entropy of the
    training text's character frequencies, and does a trigram beat it too?"""
    from torch.utils.data import DataLoader, TensorDataset

    from gmlib.train import fit

    text = load_corpus("stdlib-docs")
    cut = int(0.9 * len(text))
    train_text, test_text = text[:cut], text[cut:]
    freq = torch.tensor(list(Counter(train_text).values()), dtype=torch.float64) / len(train_text)
    unigram_entropy = float(-(freq * freq.log()).sum())  # nats per character

    torch.manual_seed(0)
    cfg = CharTransformerConfig(block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = CharTransformer(cfg)
    train_ids = model.vocab.encode(train_text)
    loader = DataLoader(TensorDataset(make_windows(train_ids, 32)), batch_size=64, shuffle=True)
    fit(model, loader, epochs=100, lr=3e-3, max_steps=150, device="cpu", progress=False)
    test_windows = make_windows(model.vocab.encode(test_text), 32, stride=32)[:200]
    with torch.no_grad():
        test_loss = float(-model.log_prob(test_windows).sum() / test_windows.numel())
    assert test_loss < unigram_entropy - 0.3, (test_loss, unigram_entropy)

    trigram = NGramModel(CharVocab(PRINTABLE_CHARS), order=3).fit_counts(train_text)
    assert -trigram.log_prob(test_text[:2000], prompt=train_text[-2:]) / 2000 < unigram_entropy


@pytest.mark.slow
def test_transformer_overfits_one_batch():
    """Can the transformer memorise one small batch of windows: near-zero NLL, and greedy decoding repeats it?"""
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. "
    cfg = CharTransformerConfig(chars=PRINTABLE_CHARS, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = CharTransformer(cfg)
    batch = make_windows(model.vocab.encode(text * 2), block_size=16, stride=8)[:6]  # (6, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(batch)[0].item()
    for _ in range(300):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # after BOS the first character of a window cannot be predicted: its entropy over the batch, spread over
    # the 16 positions, is the lowest mean NLL any model can reach on this batch
    counts = torch.bincount(batch[:, 0]).double()
    p_first = counts[counts > 0] / counts.sum()
    floor = -(p_first * p_first.log()).sum().item() / batch.shape[1]
    assert first > 3.0  # about log(V) at the start
    assert floor - 1e-6 <= loss.item() < floor + 0.02, (loss.item(), floor)
    prompt = model.vocab.decode(batch[0, :4])
    greedy = model.sample(1, 12, prompt=prompt, temperature=0.0)[0]
    assert greedy == model.vocab.decode(batch[0, :16]), greedy
