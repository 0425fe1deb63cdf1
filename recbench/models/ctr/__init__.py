"""Deep CTR models (groups A, B, C). `REGISTRY` lists them for recbench.models.registry without
importing torch: (name, "module:Class", groups, tasks, description).

Group A runs the nine models of RecBench §3.1 on unique item ids; groups B (`_text`, Eq. 4) and
C (`_emb`, Eq. 5) list the paper's four (DNN, DCNv2, AutoInt, GDCN) first, then the other five,
since every model runs with every item representation. A `_text`/`_emb` name is a subclass whose
config fixes `items`, so no `--set items=...` is needed.
"""

# name, module, class, what the model is (RecBench's order within each group)
_MODELS = [
    ("DNN", "dnn", "DNN", "MLP over the concatenated user and item vectors"),
    ("PNN", "pnn", "PNN", "inner-product layer + MLP (Qu et al., ICDM 2016)"),
    ("DeepFM", "deepfm", "DeepFM", "FM + MLP on shared fields (Guo et al., IJCAI 2017)"),
    ("DCN", "dcn", "DCN", "cross network + MLP (Wang et al., ADKDD 2017)"),
    ("DCNv2", "dcnv2", "DCNv2", "full-rank cross network + MLP (Wang et al., WWW 2021)"),
    ("MaskNet", "masknet", "MaskNet", "instance-guided mask blocks (Wang et al., DLP-KDD 2021)"),
    ("FinalMLP", "finalmlp", "FinalMLP", "two-stream gated MLP, bilinear fusion (Mao et al., "
                                         "AAAI 2023)"),
    ("AutoInt", "autoint", "AutoInt", "self-attentive interacting layers (Song et al., "
                                      "CIKM 2019)"),
    ("GDCN", "gdcn", "GDCN", "gated cross network + MLP (Wang et al., CIKM 2023)"),
]
_PAPER_BC = ("DNN", "DCNv2", "AutoInt", "GDCN")  # RecBench's groups B and C
_VARIANTS = [("A", "", "", "item ids"), ("B", "_text", "Text", "item text (mean word vectors)"),
             ("C", "_emb", "Emb", "encoder item embeddings")]


def _rows():
    for group, suffix, cls_suffix, items in _VARIANTS:
        order = _MODELS if group == "A" else (
            [m for m in _MODELS if m[0] in _PAPER_BC] + [m for m in _MODELS
                                                          if m[0] not in _PAPER_BC])
        for name, module, cls, what in order:
            yield (f"{name}{suffix}", f"recbench.models.ctr.{module}:{cls}{cls_suffix}",
                   (group,), ("ctr",), f"{what}; {items}")


REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = list(_rows())
