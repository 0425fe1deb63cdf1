"""Unique-ID item tokens for LLM recommenders (RecBench §3.1 group D, §3.2 group I, §4.3).

Following P5, every item becomes one new token `<item_{id}>`: the tokenizer learns V = #items
new (special, hence never split) tokens, the model's embedding matrix grows by V rows, and
those rows, E_id ∈ R^{V×d}, are drawn at random (normal, std = the model's `initializer_range`)
rather than from the mean of the old rows, since an ID carries no meaning before training.
`add_tokens` does this for any list of new tokens; the semantic-ID tokens of groups F and J
(`recbench.models.llm.sid`, V = levels x K) use it too.

Training touches only the LoRA adapters and these V rows: `attach_lora` uses peft's
`trainable_token_indices` (a `TrainableTokensLayer` holding just the V rows; the full
embedding matrix stays frozen). Where the input and output embeddings are tied (SmolLM2, OPT,
BERT) peft ties the output rows to the same trainable rows; an untied output layer gets its
own trainable rows. `merge_and_unload` writes them back into the matrix after training, so
inference runs at the plain model's speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from recbench.core.errors import RecbenchError

ITEM_TOKEN = "<item_{}>"


class TokenBlock(Protocol):
    """New tokens with contiguous ids, trained beside LoRA (`ItemVocabulary`, `SIDVocabulary`)."""

    @property
    def token_ids(self) -> list[int]: ...


@dataclass(frozen=True)
class ItemVocabulary:
    """The V item tokens of one tokenizer: item `i` is the token `<item_i>` with id `first_id + i`.

    Attributes:
        n_items: V, the number of items (= new tokens).
        first_id: the token id of `<item_0>`; the ids are contiguous.
        base_vocab: the tokenizer's size before the item tokens were added.
    """

    n_items: int
    first_id: int
    base_vocab: int

    def token(self, item: int) -> str:
        return ITEM_TOKEN.format(int(item))

    def render(self, items) -> str:
        """The item tokens of `items` written back to back (`<item_3><item_17>`)."""
        return "".join(ITEM_TOKEN.format(int(i)) for i in items)

    def ids(self, items: np.ndarray) -> np.ndarray:
        """Token ids of item ids (any shape)."""
        return np.asarray(items, dtype=np.int64) + self.first_id

    @property
    def token_ids(self) -> list[int]:
        return list(range(self.first_id, self.first_id + self.n_items))


def add_tokens(model: nn.Module, tokenizer: Any, tokens: list[str], seed: int,
               std: float | None = None) -> tuple[int, int]:
    """Add new (special, never split) tokens to `tokenizer`, grow `model`'s embeddings and draw
    the new rows at random, N(0, std^2); an untied output layer gets its own random rows.

    Args:
        model: a transformers model (with or without an LM head).
        tokenizer: its tokenizer; changed in place.
        tokens: the new tokens, in id order.
        seed: seeds the random rows (they are part of the run's reproducible state).
        std: standard deviation of the new rows; default `config.initializer_range` (0.02).

    Returns:
        (the id of `tokens[0]`, the tokenizer's size before); the new ids are contiguous.

    Raises:
        RecbenchError: the tokenizer already knows some of the tokens, or did not give them
            contiguous single ids.
    """
    n = len(tokens)
    base_vocab = len(tokenizer)
    added = tokenizer.add_tokens(tokens, special_tokens=True)
    if added != n:
        raise RecbenchError(f"the tokenizer of {getattr(model, 'name_or_path', 'the model')} "
                            f"already holds {n - added} of the {n} new tokens ({tokens[0]}..); "
                            "load a fresh tokenizer for each run")
    first_id = tokenizer.convert_tokens_to_ids(tokens[0])
    last_id = tokenizer.convert_tokens_to_ids(tokens[-1])
    if last_id - first_id != n - 1:
        raise RecbenchError(f"new tokens got non-contiguous ids ({first_id}..{last_id} for "
                            f"{n} tokens)")
    # No mean resizing: the rows are drawn below, so the covariance estimate would be wasted.
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    config = getattr(model.config, "get_text_config", lambda: model.config)()
    std = std if std is not None else float(getattr(config, "initializer_range", 0.02))
    generator = torch.Generator().manual_seed(seed)
    rows = slice(first_id, first_id + n)
    with torch.no_grad():
        inputs = model.get_input_embeddings().weight
        drawn = torch.randn((n, inputs.shape[1]), generator=generator) * std
        inputs[rows] = drawn.to(inputs)
        outputs = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") \
            else None
        if outputs is not None and outputs.weight is not inputs \
                and outputs.weight.shape[0] >= first_id + n:
            outputs.weight[rows] = (torch.randn((n, outputs.weight.shape[1]),
                                                generator=generator) * std).to(outputs.weight)
    return first_id, base_vocab


def add_item_tokens(model: nn.Module, tokenizer: Any, n_items: int, seed: int,
                    std: float | None = None) -> ItemVocabulary:
    """Add one token `<item_i>` per item (`add_tokens`): V = n_items random new rows.

    Returns:
        The vocabulary (first id, V, old size).

    Raises:
        RecbenchError: the tokenizer already knows some `<item_i>` tokens, or did not give the
            new tokens contiguous single ids.
    """
    first_id, base_vocab = add_tokens(model, tokenizer,
                                      [ITEM_TOKEN.format(i) for i in range(n_items)], seed, std)
    return ItemVocabulary(n_items=n_items, first_id=first_id, base_vocab=base_vocab)


def _module_name(model: nn.Module, module: nn.Module | None) -> str | None:
    if module is None:
        return None
    return next((name for name, m in model.named_modules() if m is module), None)


def trainable_token_layers(model: nn.Module, vocab: TokenBlock) -> dict[str, list[int]]:
    """peft's `trainable_token_indices`: the new rows of the input embedding, plus those of an
    untied output layer (a tied one follows the input rows)."""
    ids = vocab.token_ids
    layers = {_module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]: ids}
    get_out = getattr(model, "get_output_embeddings", None)
    outputs = get_out() if get_out is not None else None
    if outputs is not None and outputs.weight is not model.get_input_embeddings().weight:
        layers[_module_name(model, outputs).rsplit(".", 1)[-1]] = ids
    return layers


def attach_lora(model: nn.Module, vocab: TokenBlock, r: int, alpha: int, dropout: float,
                targets: list[str] | None) -> nn.Module:
    """Wrap `model` with LoRA adapters plus trainable new-token rows; everything else frozen.

    Args:
        model: the model after `add_item_tokens` (or `add_tokens`).
        vocab: its new tokens (item vocabulary or semantic-ID vocabulary).
        r, alpha, dropout: LoRA rank, scaling numerator and dropout.
        targets: module names to adapt; None = peft's default for the architecture (the
            attention query/value projections).

    Returns:
        The peft model (train it, then `merge_and_unload()` it for inference).
    """
    from peft import LoraConfig, get_peft_model

    layers = trainable_token_layers(model, vocab)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        trainable_token_indices=layers if len(layers) > 1 else vocab.token_ids,
                        bias="none")
    return get_peft_model(model, config)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
