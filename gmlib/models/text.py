"""Character-level autoregressive text models: an n-gram model fitted by counting (Shannon, 1948) and a tiny
causal transformer (Vaswani et al., 2017, "Attention Is All You Need"; decoder-only as in GPT, Radford et al.,
2018, laid out like nanoGPT).

Notation as in course lesson 04:
    x = (x_1, ..., x_T) characters, encoded as indices in {0, ..., V-1} by a `CharVocab`
    p(x) = prod_t p(x_t | x_<t)                       log p(x) = sum_t log p(x_t | x_<t), in nats
    n-gram:      p(x_t | x_<t) = p(x_t | x_{t-n+1}, ..., x_{t-1})
                 add-k estimate: (count(context, c) + k) / (count(context) + k V)
                 the first n-1 characters see a context left-padded with a start symbol (not in the vocabulary)
    transformer: p(x_t | x_<t) = softmax(logits_t), logits_t a causal function of (BOS, x_1, ..., x_{t-1})
                 BOS is an extra input index V (never predicted), so log p(x) is a full distribution over
                 strings of length T, just like the n-gram's.
    sampling:    x_t ~ softmax(top_k(logits_t / temperature)); temperature -> 0 is greedy (argmax),
                 temperature > 1 flattens the distribution, top_k keeps the k most likely characters

The pieces a lesson teaches are small pure functions (`apply_temperature`, `top_k_filter`, `sample_next`); the
samplers take replacements for them: `CharTransformer(config, temperature_fn=mine, top_k_fn=mine)`, or for the
whole next-character draw `CharTransformer(config, sample_fn=mine)`; `NGramModel(..., same)`. Both models give
the next-character distribution of a history with `next_probs(history)`.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CharVocab",
    "apply_temperature",
    "top_k_filter",
    "sample_next",
    "make_windows",
    "NGramModel",
    "CharTransformerConfig",
    "CharTransformer",
    "CausalSelfAttention",
    "TransformerBlock",
    "PRINTABLE_CHARS",
]

# newline + the printable ASCII characters from space to "~": every corpus of gmlib.data.text fits in it
PRINTABLE_CHARS: str = "\n" + "".join(sorted(set(string.printable) - set("\t\n\r\x0b\x0c")))


# ---------------------------------------------------------------------------------------------- the pieces
class CharVocab:
    """A character vocabulary: `encode(str) -> (T,) int64`, `decode(indices) -> str`; index = position in chars."""

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary's characters must be distinct")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted set of characters of `text`."""
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str) -> Tensor:
        """str of length T -> (T,) int64; a character outside the vocabulary raises a KeyError naming it."""
        try:
            return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        except KeyError as err:
            raise KeyError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, indices: Tensor | Sequence[int]) -> str:
        """(T,) indices -> str."""
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        return "".join(self.chars[i] for i in indices)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """logits / temperature: (..., V) -> (..., V). temperature must be > 0 (the samplers treat 0 as argmax)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row, set the others to -inf: (..., V) -> (..., V).

    Exactly k survive per row, even with ties (the first k that `topk` returns); k >= V keeps everything.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    idx = logits.topk(k, dim=-1).indices  # (..., k)
    return torch.full_like(logits, -math.inf).scatter(-1, idx, logits.gather(-1, idx))


def make_windows(ids: Tensor, block_size: int, stride: int | None = None) -> Tensor:
    """Training windows of an encoded text: (N_chars,) -> (N, block_size), window starts every `stride`
    characters (default block_size // 2)."""
    stride = stride or max(1, block_size // 2)
    if ids.numel() < block_size:
        raise ValueError(f"the text has {ids.numel()} characters, fewer than block_size={block_size}")
    return ids.unfold(0, block_size, stride).contiguous()


def _draw(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row from softmax(logits): (N, V) -> (N,); drawn on the generator's device."""
    probs = F.softmax(logits.float(), dim=-1)
    if generator is not None:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)


LogitsFn = Callable[[Tensor, float], Tensor]
SampleFn = Callable[[Tensor, float, "int | None", "torch.Generator | None"], Tensor]


def sample_next(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """One index per row from softmax(top_k_filter(logits / temperature, top_k)): (N, V) -> (N,) int64.

    temperature 0 is greedy decoding (the argmax, no randomness); top_k None keeps every index.
    """
    return _next_index(logits, temperature, top_k, generator, None, None)


def _next_index(
    logits: Tensor,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
    temperature_fn: LogitsFn | None,
    top_k_fn: Callable[[Tensor, int], Tensor] | None,
    sample_fn: SampleFn | None = None,
) -> Tensor:
    """(N, V) logits -> (N,) next indices: greedy at temperature 0, else temperature, top-k, then a draw
    (or all of it by `sample_fn(logits, temperature, top_k, generator)`)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if sample_fn is not None:
        return sample_fn(logits, temperature, top_k, generator)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = (temperature_fn or apply_temperature)(logits, temperature)
    if top_k is not None:
        logits = (top_k_fn or top_k_filter)(logits, top_k)
    return _draw(logits, generator)


# ---------------------------------------------------------------------------------------------- n-gram model
class NGramModel:
    """Order-n character model with add-k smoothing, fitted by counting: `NGramModel(vocab, 3).fit_counts(text)`.

    order 1 is the unigram model (context ""). An unseen context gets the uniform distribution (add-k of zero
    counts), or with `backoff=True` the distribution of its longest suffix that was seen in training (the
    counts of every shorter order are kept for that): which distribution is used depends only on the history,
    so every conditional still sums to 1 and `log_prob` stays exact. Without back-off a sampler that draws a
    character never seen in its context lands in an unseen context, gets the uniform distribution, and keeps
    producing noise. All probabilities are exact ratios of counts. The default k = 0.1 beats add-one (k = 1) on
    held-out stdlib docstrings for orders 3 to 5: add-one flattens the many rare contexts.
    """

    PAD = "\x00"  # the start symbol that left-pads the first contexts (never a vocabulary character)

    def __init__(
        self,
        vocab: CharVocab,
        order: int = 3,
        k: float = 0.1,
        *,
        temperature_fn: LogitsFn | None = None,
        top_k_fn: Callable[[Tensor, int], Tensor] | None = None,
        sample_fn: SampleFn | None = None,
        backoff: bool = False,
    ):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if self.PAD in vocab.stoi:
            raise ValueError("the vocabulary may not contain the start symbol '\\x00'")
        self.vocab, self.order, self.k, self.backoff = vocab, order, k, backoff
        self.temperature_fn, self.top_k_fn, self.sample_fn = temperature_fn, top_k_fn, sample_fn
        self.counts: dict[str, Counter] = {}  # context (order-1 characters) -> Counter of next characters
        self.totals: Counter = Counter()  # context -> number of occurrences

    def context_of(self, history: str) -> str:
        """The last order-1 characters of `history`, left-padded with PAD."""
        n = self.order - 1
        return (self.PAD * n + history)[len(history) :] if n else ""

    def fit_counts(self, text: str) -> NGramModel:
        """Add the counts of every (context, next character) pair of `text` (start padded); returns self."""
        self.vocab.encode(text)  # raises on unknown characters
        for order in range(1, self.order + 1) if self.backoff else (self.order,):  # back-off: every shorter order
            n = order - 1
            padded = self.PAD * n + text
            for t in range(len(text)):
                context, ch = padded[t : t + n], padded[t + n]
                self.counts.setdefault(context, Counter())[ch] += 1
                self.totals[context] += 1
        return self

    def context_used(self, history: str) -> str:
        """The context whose counts give p(next | history): the last order-1 characters (PAD-padded), or with
        back-off their longest suffix seen in training ("" if none)."""
        context = self.context_of(history)
        if self.backoff:
            while context and self.totals[context] == 0:
                context = context[1:]
        return context

    def next_probs(self, history: str) -> Tensor:
        """p(next character | the last order-1 characters of history): (V,) float64, sums to 1."""
        context = self.context_used(history)
        v = len(self.vocab)
        counts = torch.zeros(v, dtype=torch.float64)
        for ch, c in self.counts.get(context, {}).items():
            counts[self.vocab.stoi[ch]] = c
        total = counts.sum()
        if total + self.k * v == 0:  # k = 0 and an unseen context
            return torch.full((v,), 1.0 / v, dtype=torch.float64)
        return (counts + self.k) / (total + self.k * v)

    def log_prob(self, text: str, prompt: str = "") -> float:
        """log p(text | prompt) in nats: the sum over characters of log p(x_t | context), exact."""
        history, total = prompt, 0.0
        for ch in text:
            total += math.log(float(self.next_probs(history)[self.vocab.stoi[ch]]))
            history += ch
        return total

    def sample(
        self,
        n: int,
        length: int,
        *,
        prompt: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """n strings: the prompt followed by `length` sampled characters each."""
        self.vocab.encode(prompt)
        texts = [prompt] * n
        for _ in range(length):
            logits = torch.stack([self.next_probs(t).log() for t in texts])  # (n, V)
            nxt = _next_index(
                logits, temperature, top_k, generator, self.temperature_fn, self.top_k_fn, self.sample_fn
            )  # (n,)
            texts = [t + self.vocab.chars[i] for t, i in zip(texts, nxt.tolist(), strict=True)]
        return texts


# ---------------------------------------------------------------------------------------------- transformer blocks
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t attends to positions <= t: (B, T, d) -> (B, T, d)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, T, d)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hd)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)  # (B, nh, T, hd)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln(x)), then x + mlp(ln(x)): (B, T, d) -> (B, T, d)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class CharTransformerConfig:
    chars: str = PRINTABLE_CHARS  # the vocabulary (index = position); covers every gmlib.data.text corpus
    block_size: int = 64  # longest context (characters, BOS included)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0


class CharTransformer(nn.Module):
    """A tiny decoder-only transformer over characters; `loss(batch)` is the mean NLL in nats per character.

    batch = x or (x,) with x (B, T) int64 indices into `config.chars`, T <= block_size.
    """

    def __init__(
        self,
        config: CharTransformerConfig,
        *,
        temperature_fn: LogitsFn | None = None,
        top_k_fn: Callable[[Tensor, int], Tensor] | None = None,
        sample_fn: SampleFn | None = None,
    ):
        super().__init__()
        self.config = config
        self.vocab = CharVocab(config.chars)
        self.temperature_fn, self.top_k_fn, self.sample_fn = temperature_fn, top_k_fn, sample_fn
        v, d = len(self.vocab), config.n_embd
        self.bos = v  # an input-only index
        self.tok_emb = nn.Embedding(v + 1, d)
        self.pos_emb = nn.Embedding(config.block_size, d)
        self.blocks = nn.ModuleList([TransformerBlock(d, config.n_head, config.dropout) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, v)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def cache_key(self) -> dict:
        """The injected functions only change sampling, never the trained weights: nothing to add."""
        return {}

    @staticmethod
    def _tokens(batch) -> Tensor:
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    def forward(self, idx: Tensor) -> Tensor:
        """Input indices (B, T) in {0..V} (V = BOS) -> logits (B, T, V); logits at t depend on idx[:, :t+1] only."""
        t = idx.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size={self.config.block_size}")
        pos = torch.arange(t, device=idx.device)
        h = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, d)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))  # (B, T, V)

    @torch.no_grad()
    def next_probs(self, history: str) -> Tensor:
        """p(next character | history) (no dropout): (V,) float64 on the CPU, sums to 1. Histories longer than
        block_size - 1 keep their last characters (as in `sample`)."""
        was_training = self.training
        self.eval()
        try:
            device = self.head.weight.device
            idx = torch.cat([torch.tensor([self.bos]), self.vocab.encode(history)])[-self.config.block_size :]
            logits = self(idx[None].to(device))[0, -1]  # (V,)
        finally:
            self.train(was_training)
        return F.softmax(logits.double(), dim=-1).cpu()

    def _shifted(self, x: Tensor) -> Tensor:
        """(B, T) targets -> (B, T) inputs (BOS, x_1, ..., x_{T-1})."""
        bos = torch.full_like(x[:, :1], self.bos)
        return torch.cat([bos, x[:, :-1]], dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) = sum_t log p(x_t | BOS, x_<t) in nats: (B, T) int64 -> (B,)."""
        x = self._tokens(x).long()
        log_p = F.log_softmax(self(self._shifted(x)), dim=-1)  # (B, T, V)
        return log_p.gather(2, x.unsqueeze(2)).squeeze(2).sum(dim=1)

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x = self._tokens(batch).long()  # (B, T)
        logits = self(self._shifted(x))  # (B, T, V)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))  # nats per character
        return nll, {"bits_per_char": nll.item() / math.log(2.0)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        length: int,
        *,
        prompt: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        as_ids: bool = False,
    ) -> list[str] | Tensor:
        """n strings: the prompt followed by `length` sampled characters (temperature 0: greedy).

        as_ids: return the indices instead, (n, len(prompt) + length) int64. Contexts longer than block_size
        keep their last block_size characters (BOS drops out).
        """
        was_training = self.training
        self.eval()  # no dropout while sampling
        try:
            return self._sample(n, length, prompt, temperature, top_k, generator, as_ids)
        finally:
            self.train(was_training)

    def _sample(self, n, length, prompt, temperature, top_k, generator, as_ids):
        device = self.head.weight.device
        prefix = torch.cat([torch.tensor([self.bos]), self.vocab.encode(prompt)]).to(device)
        idx = prefix.expand(n, -1).clone()  # (n, 1 + P)
        for _ in range(length):
            logits = self(idx[:, -self.config.block_size :])[:, -1]  # (n, V)
            nxt = _next_index(
                logits, temperature, top_k, generator, self.temperature_fn, self.top_k_fn, self.sample_fn
            )  # (n,)
            idx = torch.cat([idx, nxt[:, None]], dim=1)
        out = idx[:, 1:]  # drop BOS
        return out if as_ids else [self.vocab.decode(row) for row in out]
