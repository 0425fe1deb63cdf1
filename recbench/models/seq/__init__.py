"""Sequential recommenders (group G and the LLM-enhanced variants of paper 002). `REGISTRY`
lists them for recbench.models.registry without importing torch:
(name, "module:Class", groups, tasks, description).

RecBench group G (paper 001 §3.2, Table 5) is SASRec over item ids at 3, 6, 12 and 24 layers;
its kin are the other baselines of paper 002 §5.1 (BERT4Rec, GRU4Rec, the SKNN family) and the
LLM2X models of §5.2 (the same networks with item tables initialised from encoder embeddings,
reduced by PCA) plus SKNNEmb. Group H is SID-SASRec: SASRec over semantic-ID code tokens,
decoded by beam search with (-CBS) or without the prefix trie.
"""

_M = "recbench.models.seq"
_G = ("G",)
_H = ("H",)
_SEQ = ("seq",)
_GUIDED_BASE = ("G", "guided")  # also the Base rows of paper 003 (group guided)

REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("SASRec-3L", f"{_M}.sasrec:SASRec3L", _G, _SEQ,
     "SASRec, 3 causal self-attention blocks (RecBench Table 5)"),
    ("SASRec-6L", f"{_M}.sasrec:SASRec6L", _G, _SEQ, "SASRec, 6 blocks (RecBench Table 5)"),
    ("SASRec-12L", f"{_M}.sasrec:SASRec12L", _G, _SEQ, "SASRec, 12 blocks (RecBench Table 5)"),
    ("SASRec-24L", f"{_M}.sasrec:SASRec24L", _G, _SEQ, "SASRec, 24 blocks (RecBench Table 5)"),
    ("SASRec", f"{_M}.sasrec:SASRec", _GUIDED_BASE, _SEQ,
     "SASRec (Kang & McAuley, ICDM 2018); depth from the n_layers setting (default 2)"),
    ("BERT4Rec", f"{_M}.bert4rec:BERT4Rec", _GUIDED_BASE, _SEQ,
     "bidirectional transformer, Cloze training (Sun et al., CIKM 2019)"),
    ("GRU4Rec", f"{_M}.gru4rec:GRU4Rec", _GUIDED_BASE, _SEQ,
     "GRU over item embeddings, per-position CE (Hidasi et al., ICLR 2016)"),
    ("SKNN", f"{_M}.sknn:SKNN", _G, _SEQ,
     "session-based kNN, cosine of binary sessions (Jannach & Ludewig, RecSys 2017)"),
    ("V-SKNN", f"{_M}.sknn:VSKNN", _G, _SEQ,
     "SKNN with position-decayed history weights (Ludewig & Jannach, UMUAI 2018)"),
    ("S-SKNN", f"{_M}.sknn:SSKNN", _G, _SEQ,
     "SKNN weighting neighbours by their newest shared item (Ludewig & Jannach, UMUAI 2018)"),
    ("SF-SKNN", f"{_M}.sknn:SFSKNN", _G, _SEQ,
     "SKNN recommending only items that followed the last item (Ludewig & Jannach, UMUAI 2018)"),
    ("SKNNEmb", f"{_M}.sknn:SKNNEmb", _G, _SEQ,
     "SKNN with session similarity from LLM item embeddings (paper 002 §5.2)"),
    ("LLM2SASRec", f"{_M}.sasrec:LLM2SASRec", _G, _SEQ,
     "SASRec with item table initialised from encoder embeddings + PCA (paper 002 §5.2)"),
    ("LLM2BERT4Rec", f"{_M}.bert4rec:LLM2BERT4Rec", _G, _SEQ,
     "BERT4Rec with item table initialised from encoder embeddings + PCA (paper 002 §5.2)"),
    ("LLM2GRU4Rec", f"{_M}.gru4rec:LLM2GRU4Rec", _G, _SEQ,
     "GRU4Rec with item table initialised from encoder embeddings + PCA (paper 002 §5.2)"),
    ("FE-SASRec", f"{_M}.fe_sasrec:FESASRec", ("feature-extractor",), _SEQ,
     "SASRec over adapted LLM item features: text, tuning, pooling, adapter and ID fusion "
     "as settings (RecXplore, paper 000)"),
    ("SID-SASRec", f"{_M}.sid_sasrec:SIDSASRec", _H, _SEQ,
     "SASRec over semantic-ID code tokens, beam search; n_layers and cbs settings"),
    ("SID-SASRec-3L", f"{_M}.sid_sasrec:SIDSASRec3L", _H, _SEQ,
     "SID-SASRec, 3 blocks, plain beam search (invalid codes are misses; RecBench Table 5)"),
    ("SID-SASRec-3L-CBS", f"{_M}.sid_sasrec:SIDSASRec3LCBS", _H, _SEQ,
     "SID-SASRec, 3 blocks, conditional beam search over the prefix trie (RecBench Table 5)"),
    ("SID-SASRec-6L", f"{_M}.sid_sasrec:SIDSASRec6L", _H, _SEQ,
     "SID-SASRec, 6 blocks, plain beam search (invalid codes are misses; RecBench Table 5)"),
    ("SID-SASRec-6L-CBS", f"{_M}.sid_sasrec:SIDSASRec6LCBS", _H, _SEQ,
     "SID-SASRec, 6 blocks, conditional beam search over the prefix trie (RecBench Table 5)"),
    ("SID-SASRec-12L", f"{_M}.sid_sasrec:SIDSASRec12L", _H, _SEQ,
     "SID-SASRec, 12 blocks, plain beam search (invalid codes are misses; RecBench Table 5)"),
    ("SID-SASRec-12L-CBS", f"{_M}.sid_sasrec:SIDSASRec12LCBS", _H, _SEQ,
     "SID-SASRec, 12 blocks, conditional beam search over the prefix trie (RecBench Table 5)"),
    ("SID-SASRec-24L", f"{_M}.sid_sasrec:SIDSASRec24L", _H, _SEQ,
     "SID-SASRec, 24 blocks, plain beam search (invalid codes are misses; RecBench Table 5)"),
    ("SID-SASRec-24L-CBS", f"{_M}.sid_sasrec:SIDSASRec24LCBS", _H, _SEQ,
     "SID-SASRec, 24 blocks, conditional beam search over the prefix trie (RecBench Table 5)"),
    # Paper 003 (guided embedding refinement): the Base rows are SASRec, BERT4Rec and GRU4Rec
    # themselves (group G and guided), the Ref. rows their guided variants.
    ("SASRec-guided", f"{_M}.guided:SASRecGuided", ("guided",), _SEQ,
     "SASRec with guided embedding refinement: LLM-scored aspects (paper 003)"),
    ("BERT4Rec-guided", f"{_M}.guided:BERT4RecGuided", ("guided",), _SEQ,
     "BERT4Rec with guided embedding refinement: LLM-scored aspects (paper 003)"),
    ("GRU4Rec-guided", f"{_M}.guided:GRU4RecGuided", ("guided",), _SEQ,
     "GRU4Rec with guided embedding refinement: LLM-scored aspects (paper 003)"),
    ("GRU4RecPlus", f"{_M}.gru4rec:GRU4RecPlus", _GUIDED_BASE, _SEQ,
     "GRU4Rec+ : BPR-max over popularity-sampled shared negatives (Hidasi & Karatzoglou 2018)"),
    ("GRU4RecPlus-guided", f"{_M}.guided:GRU4RecPlusGuided", ("guided",), _SEQ,
     "GRU4Rec+ with guided embedding refinement: LLM-scored aspects (paper 003)"),
]
