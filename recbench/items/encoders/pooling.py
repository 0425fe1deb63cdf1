"""Pooling of last-layer hidden states (B, L, D) into item vectors (B, D) (paper 000 §3.2.0.2).

Every method takes the (B, L) attention mask, so it is correct under left padding (pads
first, what batched generation uses) and right padding (pads last) alike:

- `mean`: sum_t m_t h_t / sum_t m_t over the non-padding tokens (special tokens included, as
  sentence-transformers does);
- `max`: max_t h_t over the non-padding tokens (padding set to -inf first);
- `last`: h at the last non-padding position (the EOS / [SEP] state where the tokenizer adds
  one: LLMEmb's `last`);
- `eol` (PromptEOL, Zhang et al. 2024): the text is wrapped in `EOL_TEMPLATE` and h is read at
  the prompt's own last token, the closing `"` after which the one word would be generated:
  the last non-padding position that is not a special token ([SEP], EOS) a tokenizer
  appends.
"""

from __future__ import annotations

from typing import Literal

Pooling = Literal["mean", "max", "last", "eol"]
POOLINGS: tuple[str, ...] = ("mean", "max", "last", "eol")
EOL_TEMPLATE = 'This sentence : "{text}" means in one word:"'


def last_positions(mask):
    """(B, L) 0/1 mask -> (B,) index of each row's last 1 (any padding side; 0 if none)."""
    import torch

    length = mask.shape[1]
    positions = torch.arange(length, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).amax(1).clamp(
        min=0)


def eol_positions(mask, input_ids, special_ids: set[int] | frozenset[int]):
    """(B,) the last non-padding position whose token is not special (EOL's read position);
    a row made only of special tokens falls back to its last non-padding position."""
    import torch

    special = torch.zeros_like(mask, dtype=torch.bool)
    for tid in special_ids:
        special |= input_ids == tid
    content = mask.bool() & ~special
    fallback = last_positions(mask)
    pos = last_positions(content)
    return torch.where(content.any(1), pos, fallback)


def pool(hidden, mask, method: Pooling, positions=None):
    """(B, L, D) hidden states, (B, L) 0/1 mask -> (B, D) pooled vectors.

    `positions` (B,) gives the read position of `last`/`eol` (default: the last non-padding
    position, `last_positions(mask)`).
    """
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    if method == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if method == "max":
        return hidden.masked_fill(m == 0, float("-inf")).amax(1)
    if method not in ("last", "eol"):
        raise ValueError(f"pooling {method!r}: expected one of {', '.join(POOLINGS)}")
    if positions is None:
        positions = last_positions(mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), positions]
