"""Bayesian networks and Markov chains against brute force: hand-multiplied CPTs, the full joint table, sampling
frequencies, direct counting loops and the n-gram model of gmlib.models.text."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gmlib.models.bayesnet import (
    BayesNet,
    ancestral_sample,
    enumerate_marginal,
    rejection_estimate,
    sample_markov_chain,
    sprinkler_network,
    transition_matrix,
)
from gmlib.models.text import CharVocab, NGramModel


def mixed_network() -> BayesNet:
    """a (2 values) -> c, b (3 values) -> c (4 values), c -> d (2 values): parents of different sizes, so a
    CPT indexed in the wrong order fails."""
    g = torch.Generator().manual_seed(0)
    cpt_c = torch.softmax(2 * torch.randn(2, 3, 4, generator=g), dim=-1)
    cpt_d = torch.softmax(2 * torch.randn(4, 2, generator=g), dim=-1)
    return BayesNet({"a": torch.tensor([0.3, 0.7]), "b": torch.tensor([0.5, 0.2, 0.3]), "c": cpt_c, "d": cpt_d},
                    parents={"c": ["a", "b"], "d": ["c"]})


def all_assignments(net: BayesNet) -> torch.Tensor:
    return torch.tensor(list(itertools.product(*(range(net.cards[v]) for v in net.variables))))


def test_joint_table_is_the_product_of_the_cpts():
    """Does every entry of the joint equal the hand-written product of CPT entries, and does it sum to 1?"""
    net = sprinkler_network()
    table = net.joint_table()
    c, s, r, w = (net.cpts[v] for v in net.variables)
    for a, b, cc, d in itertools.product(range(2), repeat=4):
        assert table[a, b, cc, d].item() == pytest.approx((c[a] * s[a, b] * r[a, cc] * w[b, cc, d]).item())
    assert table.sum().item() == pytest.approx(1.0)
    mixed = mixed_network()
    x = all_assignments(mixed)
    torch.testing.assert_close(mixed.log_prob(x).exp(), mixed.joint_table().flatten())


def test_enumeration_matches_the_joint_table_with_and_without_evidence():
    """Is p(query | evidence) by enumeration the joint table summed and normalised?"""
    for net in (sprinkler_network(), mixed_network()):
        table = net.joint_table()
        for q in net.variables:
            axes = tuple(i for i in range(len(net.variables)) if i != net.index(q))
            torch.testing.assert_close(enumerate_marginal(net, q), table.sum(axes))
        last = net.variables[-1]
        cond = table.select(net.index(last), 1)  # evidence: last variable = 1
        for q in net.variables[:-1]:
            axes = tuple(i for i in range(len(net.variables) - 1) if i != net.index(q))
            expected = cond.sum(axes)
            torch.testing.assert_close(net.marginal(q, {last: 1}), expected / expected.sum())


def test_sprinkler_numbers_and_explaining_away():
    """Are p(rain) = 0.6 * 0.15 + 0.4 * 0.7 and the explaining-away effect what the CPTs imply?"""
    net = sprinkler_network()
    assert net.marginal("rain")[1].item() == pytest.approx(0.6 * 0.15 + 0.4 * 0.7)
    wet = net.marginal("sprinkler", {"wet": 1})[1]
    wet_and_rain = net.marginal("sprinkler", {"wet": 1, "rain": 1})[1]
    assert wet_and_rain < wet  # rain explains the wet grass away
    assert net.num_parameters() == 1 + 2 + 2 + 4
    with pytest.raises(ValueError, match="takes values"):
        net.marginal("rain", {"wet": 2})


def test_ancestral_samples_have_the_joint_frequencies():
    """Do the frequencies of all full assignments among 60,000 samples match the joint within 5 standard errors?"""
    net = mixed_network()
    n = 60_000
    x = ancestral_sample(net, n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 4) and x.dtype == torch.long
    cards = [net.cards[v] for v in net.variables]
    flat = torch.zeros(n, dtype=torch.long)
    for i, card in enumerate(cards):
        flat = flat * card + x[:, i]
    freq = torch.bincount(flat, minlength=math.prod(cards)).double() / n
    p = net.joint_table().flatten()
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-4).all()


def test_sampling_uses_the_generator_and_the_injected_sampler():
    """Are samples identical for equal seeds and different for other seeds, and is sample_fn used when given?"""
    net = sprinkler_network()
    a = net.sample(500, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, net.sample(500, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, net.sample(500, generator=torch.Generator().manual_seed(2)))
    fixed = torch.zeros(3, 4, dtype=torch.long)
    assert torch.equal(net.sample(3, sample_fn=lambda net, n, generator=None: fixed), fixed)


def test_rejection_estimate_approaches_the_exact_conditional():
    """Does rejection sampling from ancestral samples estimate p(sprinkler | wet) within a few standard errors?"""
    net = sprinkler_network()
    x = net.sample(50_000, generator=torch.Generator().manual_seed(3))
    est, kept = rejection_estimate(net, x, "sprinkler", {"wet": 1})
    exact = net.marginal("sprinkler", {"wet": 1})
    assert kept == int((x[:, 3] == 1).sum())
    assert (est - exact).abs().max() < 5 * math.sqrt(0.25 / kept)


def test_network_validation():
    """Are CPTs out of topological order, of the wrong shape, or not normalised rejected with a clear message?"""
    with pytest.raises(ValueError, match="topological"):
        BayesNet({"b": torch.tensor([[0.5, 0.5], [0.5, 0.5]]), "a": torch.tensor([0.5, 0.5])}, parents={"b": ["a"]})
    with pytest.raises(ValueError, match="shape"):
        BayesNet({"a": torch.tensor([0.5, 0.5]), "b": torch.tensor([0.5, 0.5])}, parents={"b": ["a"]})
    with pytest.raises(ValueError, match="distribution"):
        BayesNet({"a": torch.tensor([0.5, 0.6])})


# ---------------------------------------------------------------------------------------------- Markov chains
def test_transition_matrix_counts_pairs_like_a_loop_and_the_bigram_model():
    """Is P[i, j] = (count(i -> j) + alpha) / (count(i) + alpha S), as a loop and NGramModel(order=2) compute it?"""
    text = "abracadabra, a bad cab"
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    s = len(vocab)
    for alpha in (0.0, 0.1, 1.0):
        p = transition_matrix(ids, s, alpha)
        counts = torch.zeros(s, s, dtype=torch.float64)
        for a, b in zip(text, text[1:], strict=False):
            counts[vocab.stoi[a], vocab.stoi[b]] += 1
        for i in range(s):
            row = counts[i] + alpha
            expected = row / row.sum() if row.sum() > 0 else torch.full((s,), 1.0 / s, dtype=torch.float64)
            torch.testing.assert_close(p[i], expected)
        bigram = NGramModel(vocab, order=2, k=alpha).fit_counts(text)
        for ch in set(text[:-1]):
            torch.testing.assert_close(p[vocab.stoi[ch]], bigram.next_probs(ch))
    # with alpha = 0, a state never followed by anything (2 only ends the sequence, 3 never occurs) is uniform
    unseen = transition_matrix(torch.tensor([0, 1, 0, 2]), 4)
    torch.testing.assert_close(unseen[3], torch.full((4,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(unseen[2], torch.full((4,), 0.25, dtype=torch.float64))


def test_markov_chain_sampling_follows_the_transitions():
    """Does a deterministic cycle come out exactly, and are samples reproducible with a generator?"""
    cycle = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert sample_markov_chain(cycle, 1, 7).tolist() == [1, 2, 0, 1, 2, 0, 1]
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
    a = sample_markov_chain(p, 0, 4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, sample_markov_chain(p, 0, 4000, generator=torch.Generator().manual_seed(0)))
    stays = ((a[:-1] == 0) & (a[1:] == 0)).sum() / (a[:-1] == 0).sum()
    assert stays.item() == pytest.approx(0.9, abs=0.03)
