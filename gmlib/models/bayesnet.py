"""Small discrete Bayesian networks (Pearl, 1988): conditional probability tables, ancestral sampling and exact
marginals by enumeration; and the simplest network of all, a Markov chain over symbols (Markov, 1913;
Shannon, 1948), fitted by counting transitions.

Notation as in course lesson 00:
    variables X_1, ..., X_V in topological order (every parent comes before its children), X_i in {0, ..., card_i - 1}
    joint        p(x_1, ..., x_V) = prod_i p(x_i | x_parents(i))
    CPT of X_i   a tensor of shape (card of parent 1, ..., card of parent m, card_i): cpt[a_1, ..., a_m, :] is the
                 distribution of X_i when its parents take the values a_1, ..., a_m; a root's CPT is (card_i,)
    samples      (n, V) int64, column i holds X_i (in the network's variable order)
    ancestral sampling: for i = 1, ..., V draw x_i ~ p(x_i | the already drawn values of its parents)
    enumeration: p(X_q = a | E = e) = sum over full assignments x with x_q = a and x_E = e of p(x),
                 divided by the same sum without the condition on x_q
    Markov chain p(s_1, ..., s_T) = p(s_1) prod_t P[s_{t-1}, s_t] with one transition matrix P (S, S), rows sum to 1;
                 it is a Bayesian network s_1 -> s_2 -> ... -> s_T whose nodes share one CPT

The pieces a lesson teaches are small pure functions (`ancestral_sample`, `transition_matrix`); `BayesNet.sample`
takes a replacement for the first: `net.sample(n, generator=g, sample_fn=mine)`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "BayesNet",
    "ancestral_sample",
    "enumerate_marginal",
    "rejection_estimate",
    "transition_matrix",
    "sample_markov_chain",
    "sprinkler_network",
]


class BayesNet:
    """A discrete Bayesian network given by its CPTs, in topological order.

        net = BayesNet({"rain": torch.tensor([0.8, 0.2]),
                        "wet":  torch.tensor([[0.9, 0.1], [0.2, 0.8]])},   # rows: rain = 0, 1
                       parents={"wet": ["rain"]})

    cpts:    variable name -> CPT (see the module docstring); the dict's order is the variable order and must be
             topological. CPTs are stored as float64.
    parents: variable name -> its parents' names, in the order of the CPT's leading axes (roots may be left out).
    states:  optional variable name -> names of its values, for display.
    """

    def __init__(self, cpts: Mapping[str, Tensor], parents: Mapping[str, Sequence[str]] | None = None,
                 states: Mapping[str, Sequence[str]] | None = None):
        parents = dict(parents or {})
        unknown = set(parents) - set(cpts)
        if unknown:
            raise ValueError(f"parents given for unknown variables {sorted(unknown)}")
        self.variables: list[str] = list(cpts)
        self.parents: dict[str, tuple[str, ...]] = {v: tuple(parents.get(v, ())) for v in self.variables}
        self.cpts: dict[str, Tensor] = {}
        self.cards: dict[str, int] = {}
        for i, v in enumerate(self.variables):
            cpt = torch.as_tensor(cpts[v], dtype=torch.float64)
            for p in self.parents[v]:
                if p not in self.cards:
                    where = "comes after it" if p in self.variables[i:] else "is not a variable"
                    raise ValueError(f"parent {p!r} of {v!r} {where}: list the CPTs in topological order")
            expected = tuple(self.cards[p] for p in self.parents[v])
            if cpt.dim() != len(expected) + 1 or tuple(cpt.shape[:-1]) != expected:
                raise ValueError(f"CPT of {v!r} has shape {tuple(cpt.shape)}; expected {expected} + (card of {v!r},)")
            if (cpt < 0).any() or not torch.allclose(cpt.sum(-1), torch.ones(expected, dtype=torch.float64), atol=1e-6):
                raise ValueError(f"every row of the CPT of {v!r} must be a distribution (non-negative, summing to 1)")
            self.cpts[v] = cpt
            self.cards[v] = int(cpt.shape[-1])
        self.states = {v: tuple(states[v]) if states and v in states else tuple(map(str, range(self.cards[v])))
                       for v in self.variables}

    def __repr__(self) -> str:
        edges = ", ".join(f"{p}->{v}" for v in self.variables for p in self.parents[v])
        return f"BayesNet({len(self.variables)} variables: {', '.join(self.variables)}; edges: {edges or 'none'})"

    def index(self, name: str) -> int:
        """The column of variable `name` in a samples tensor."""
        return self.variables.index(name)

    def num_parameters(self) -> int:
        """Free parameters: (card - 1) per row of every CPT."""
        return sum((self.cards[v] - 1) * math.prod(self.cpts[v].shape[:-1]) for v in self.variables)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) in nats of full assignments: (N, V) int64 -> (N,) float64."""
        x = x.long()
        total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for i, v in enumerate(self.variables):
            idx = tuple(x[:, self.index(p)] for p in self.parents[v]) + (x[:, i],)
            total = total + self.cpts[v].to(x.device).log()[idx]
        return total

    def joint_table(self) -> Tensor:
        """The full joint p(x_1, ..., x_V) as one tensor of shape (card_1, ..., card_V), by broadcasting the CPTs."""
        table = torch.ones((), dtype=torch.float64)
        for v in self.variables:
            shape = [1] * len(self.variables)
            for p in self.parents[v]:
                shape[self.index(p)] = self.cards[p]
            shape[self.index(v)] = self.cards[v]
            # the CPT's axes are (parents in CPT order, v): put them in variable order before broadcasting
            axes = [self.index(p) for p in self.parents[v]] + [self.index(v)]
            cpt = self.cpts[v].permute(*sorted(range(len(axes)), key=lambda j: axes[j]))
            table = table * cpt.reshape(shape)
        return table

    def marginal(self, query: str, evidence: Mapping[str, int] | None = None) -> Tensor:
        """Exact p(query | evidence) by enumeration: (card of query,) float64."""
        return enumerate_marginal(self, query, evidence)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               sample_fn: Callable[..., Tensor] | None = None) -> Tensor:
        """n joint samples (n, V) int64 by ancestral sampling (or by `sample_fn(net, n, generator=...)`)."""
        return (sample_fn or ancestral_sample)(self, n, generator=generator)


def ancestral_sample(net: BayesNet, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """n independent joint samples, each variable drawn given its already drawn parents: -> (n, V) int64."""
    samples = torch.zeros(n, len(net.variables), dtype=torch.long)
    for i, v in enumerate(net.variables):  # topological order: the parents' columns are filled already
        rows = tuple(samples[:, net.index(p)] for p in net.parents[v])
        probs = net.cpts[v][rows] if rows else net.cpts[v].expand(n, -1)  # (n, card)
        dev = generator.device if generator is not None else probs.device
        samples[:, i] = torch.multinomial(probs.to(dev), 1, generator=generator).squeeze(1).cpu()
    return samples


def _check_values(net: BayesNet, assignment: Mapping[str, int]) -> None:
    for name, value in assignment.items():
        if name not in net.cards:
            raise ValueError(f"unknown variable {name!r}; the network has {net.variables}")
        if not 0 <= int(value) < net.cards[name]:
            raise ValueError(f"{name!r} takes values 0..{net.cards[name] - 1}, got {value}")


def enumerate_marginal(net: BayesNet, query: str, evidence: Mapping[str, int] | None = None) -> Tensor:
    """p(query | evidence) by brute force: sum p(x) = prod_i p(x_i | parents) over every full assignment x that
    agrees with the evidence, one sum per value of `query`, then normalise: -> (card of query,) float64.

    The cost is the product of all cardinalities (fine for the small networks of the course). Raises if the
    evidence has probability 0.
    """
    evidence = dict(evidence or {})
    _check_values(net, {query: 0, **evidence})
    totals = torch.zeros(net.cards[query], dtype=torch.float64)
    q = net.index(query)
    for values in itertools.product(*(range(net.cards[v]) for v in net.variables)):
        if any(values[net.index(name)] != int(val) for name, val in evidence.items()):
            continue
        p = 1.0
        for i, v in enumerate(net.variables):
            p *= float(net.cpts[v][tuple(values[net.index(par)] for par in net.parents[v]) + (values[i],)])
        totals[values[q]] += p
    if totals.sum() <= 0:
        raise ValueError(f"the evidence {evidence} has probability 0")
    return totals / totals.sum()


def rejection_estimate(net: BayesNet, samples: Tensor, query: str,
                       evidence: Mapping[str, int] | None = None) -> tuple[Tensor, int]:
    """p(query | evidence) estimated from joint samples (n, V): the frequencies of the query's values among the
    samples that agree with the evidence (rejection sampling). Returns (card,) float64 and the number kept."""
    evidence = dict(evidence or {})
    _check_values(net, {query: 0, **evidence})
    keep = torch.ones(len(samples), dtype=torch.bool)
    for name, value in evidence.items():
        keep &= samples[:, net.index(name)].cpu() == int(value)
    kept = samples[keep][:, net.index(query)].cpu()
    counts = torch.bincount(kept, minlength=net.cards[query]).double()
    return (counts / counts.sum() if len(kept) else torch.full_like(counts, math.nan)), int(keep.sum())


def sprinkler_network() -> BayesNet:
    """The four-variable lawn example (cloudy -> sprinkler, cloudy -> rain, (sprinkler, rain) -> wet grass),
    with the course's own numbers. Every variable is binary: 0 = no, 1 = yes."""
    return BayesNet(
        {
            "cloudy": torch.tensor([0.6, 0.4]),
            "sprinkler": torch.tensor([[0.6, 0.4], [0.9, 0.1]]),  # rows: cloudy = 0, 1
            "rain": torch.tensor([[0.85, 0.15], [0.3, 0.7]]),  # rows: cloudy = 0, 1
            "wet": torch.tensor([[[0.98, 0.02], [0.15, 0.85]],  # [sprinkler, rain, wet]
                                 [[0.1, 0.9], [0.02, 0.98]]]),
        },
        parents={"sprinkler": ["cloudy"], "rain": ["cloudy"], "wet": ["sprinkler", "rain"]},
        states={v: ("no", "yes") for v in ("cloudy", "sprinkler", "rain", "wet")},
    )


# ---------------------------------------------------------------------------------------------- Markov chains
def transition_matrix(ids: Tensor, num_states: int, alpha: float = 0.0) -> Tensor:
    """Estimated transition probabilities of a first-order Markov chain from one sequence: (T,) int64 -> (S, S).

    P[i, j] = (count of i followed by j + alpha) / (count of i followed by anything + alpha * S), float64; a state
    that is never followed by anything (only possible with alpha = 0) gets the uniform row 1 / S.
    """
    ids = ids.long().flatten()
    counts = torch.zeros(num_states, num_states, dtype=torch.float64, device=ids.device)
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1, dtype=torch.float64, device=ids.device),
                      accumulate=True)
    counts = counts + alpha
    totals = counts.sum(dim=1, keepdim=True)  # (S, 1)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-300), torch.full_like(counts, 1.0 / num_states))


def sample_markov_chain(transition: Tensor, start: int, length: int, *,
                        generator: torch.Generator | None = None) -> Tensor:
    """A path s_0 = start, s_t ~ P[s_{t-1}, :] of `length` states in all: -> (length,) int64 (start included)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    dev = generator.device if generator is not None else transition.device
    probs = transition.to(dev, torch.float64)
    path = [int(start)]
    for _ in range(length - 1):
        path.append(int(torch.multinomial(probs[path[-1]], 1, generator=generator)))
    return torch.tensor(path, dtype=torch.long)
