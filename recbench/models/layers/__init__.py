"""Layers shared by models: MLP blocks, feature interactions (cross, attention, ...).

- `mlp`: MLP (the deep part of every hybrid CTR model), fold_for_inference (batch norm folded,
  Linear weights pre-transposed).
- `cross`: CrossNet (DCN), CrossNetV2 with optional low-rank mixture (DCNv2), GatedCrossNet (GDCN).
- `product`: InnerProduct and OuterProduct (PNN), FMInteraction (FM second order, DeepFM).
- `attention`: InteractingLayer (AutoInt's multi-head self-attention with residual),
  TransformerBlock (SASRec, BERT4Rec).
- `mask`: MaskBlock (MaskNet's instance-guided mask).
- `two_stream`: FeatureGate, BilinearFusion, TwoStreamMLP (FinalMLP).

Modules are imported by path (`recbench.models.layers.cross`), so importing this package stays
free of torch.
"""
