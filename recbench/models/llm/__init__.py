"""LLM recommenders' shared parts: the model catalog and the transformers backbone loader.

`catalog.resolve(name)` maps an alias (`llama3-8b`), a local folder or a hub id to an
`LLMEntry`; `backbones.load_backbone(entry)` loads it. Neither imports torch or transformers at
import time.
"""

from recbench.models.llm.backbones import (
    BackboneSource,
    HubUnreachableError,
    load_backbone,
    source_of,
)
from recbench.models.llm.catalog import ALIASES, CATALOG, LLMEntry, resolve

__all__ = ["ALIASES", "CATALOG", "BackboneSource", "HubUnreachableError", "LLMEntry",
           "load_backbone", "resolve", "source_of"]

# --- LLM recommenders, read by recbench.models.registry without importing torch --------------
# (name, "module:Class", groups, tasks, description), as in recbench.models.ctr.
REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("P5-CTR", "recbench.models.llm.p5:P5CTR", ("D",), ("ctr",),
     "P5-<backbone>: one new token per item, LoRA fine-tuned, P(YES) at the last position "
     "(encoders: [CLS] head)"),
    ("P5-Seq", "recbench.models.llm.p5:P5Seq", ("I",), ("seq",),
     "P5-<backbone>: one new token per item, next-item logits over all item tokens, LoRA"),
    ("LLM-text", "recbench.models.llm.text_ctr:LLMText", ("E",), ("ctr",),
     "<backbone> reading item text: P(YES) = softmax(l_yes, l_no), zero-shot or LoRA "
     "(--mode); encoders: [CLS] head, finetune only"),
    ("SID-CTR", "recbench.models.llm.sid:SIDCTR", ("F",), ("ctr",),
     "SID-<backbone>: items as semantic-ID tokens (L x K new tokens), LoRA fine-tuned, P(YES) "
     "at the last position (encoders: [CLS] head)"),
    ("SID-Seq", "recbench.models.llm.sid:SIDSeq", ("J",), ("seq",),
     "SID-<backbone>[-CBS]: semantic-ID prompt, LoRA fine-tuned, next item's codes by beam "
     "search (CBS: constrained to real items); a bare backbone means SID-<backbone>-CBS"),
]


def _constructions() -> dict:
    """group -> [Construction]: `--model P5-<backbone>` (or a bare backbone) in D and I,
    `SID-<backbone>` in F, `SID-<backbone>-CBS` / `SID-<backbone>` in J."""
    from recbench.models.registry import Construction

    return {
        "D": [Construction(model="P5-CTR", prefix="P5-")],
        "I": [Construction(model="P5-Seq", prefix="P5-")],
        "E": [Construction(model="LLM-text")],  # a bare backbone: `--model smollm2-135m`
        "F": [Construction(model="SID-CTR", prefix="SID-")],
        # J is conditional beam search by definition (RecBench Fig. 2): `x` and `SID-x-CBS`
        # decode with the trie, `SID-x` (the paper's rows without -CBS) without it.
        "J": [Construction(model="SID-Seq", prefix="SID-", suffix="-CBS",
                           implied={"cbs": True}),
              Construction(model="SID-Seq", prefix="SID-", require_prefix=True,
                           implied={"cbs": False}),
              Construction(model="SID-Seq", implied={"cbs": True})],
    }


def __getattr__(name: str):
    # CONSTRUCTIONS is built on first access: importing `Construction` at module level would
    # make this package import recbench.models.registry, whose import reads this package's
    # tables, so whichever of the two is imported first would see the other half-initialised.
    if name == "CONSTRUCTIONS":
        return _constructions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
