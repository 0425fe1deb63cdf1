"""Text -> vectors (paper 000 §3.2, the feature-extraction module).

- `pooling`: mean, max, last token and EOL over the last layer, with masks correct under left
  and right padding;
- `encode`: a loaded backbone (catalog alias, hub id or local folder, loaded by
  `recbench.models.llm.backbones`) run over length-sorted batches, and `encode_items`, the
  cached entry point (`recbench.core.artifacts`, kind `item_vectors`);
- `tuning`: LoRA tuning of the backbone on the training split (frozen, CPT, SFT, SCFT,
  CPT+SFT), each adapter cached as a peft folder (kind `lora`);
- `contrastive`: LLMEmb's soft-target contrastive loss (SCFT, and the alignment fusion).

transformers and peft load inside the functions that run a model (the parent
`recbench.items` imports torch today).
"""

from recbench.items.encoders.pooling import EOL_TEMPLATE, POOLINGS, Pooling

__all__ = ["EOL_TEMPLATE", "POOLINGS", "Pooling"]
