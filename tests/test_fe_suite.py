"""The feature-extractor suite: the paper's tables as row sets over valid FE-SASRec settings."""

from __future__ import annotations

from recbench.models.seq.fe_sasrec import FESASRecConfig
from recbench.suites import expand, load_suite


def test_suite_rows_mirror_the_paper_tables():
    suite = load_suite("feature-extractor")
    assert suite.protocol == "loo-v1" and suite.seeds == [42, 43, 44]
    assert suite.metrics["seq"] == ["hr@5", "hr@10", "ndcg@5", "ndcg@10"]
    sections = {}
    for row in suite.rows:
        sections.setdefault(row.section, []).append(row.name)
    assert sections["base"] == ["base"]
    assert sections["RQ1"] == ["keyword", "summary", "expansion"]
    assert sections["RQ2"] == ["pool-max", "pool-last", "pool-eol"]
    assert sections["RQ3"] == ["tune-scft", "tune-cpt", "tune-sft", "tune-cpt-sft"]
    assert len(sections["RQ4"]) == 8 and len(sections["RQ5"]) == 6
    assert {"GRU4Rec", "BERT4Rec", "SASRec", "RecXplore"} <= set(sections["RQ6"])
    # the base configuration is the reference row of every table
    assert all(t.row_groups[0] == "base" for t in suite.tables)
    protocols = {t.protocol_key for t in suite.tables}
    assert protocols == {"sampled100", "full"}


def test_every_feature_extractor_row_is_a_valid_config():
    suite = load_suite("feature-extractor")
    for row in suite.rows:
        if row.group == "feature-extractor":
            FESASRecConfig(**row.settings)  # a typo or a bad value raises here
    base = FESASRecConfig(**suite.row("base").settings)
    assert (base.text, base.tuning, base.pooling, base.adapter, base.pca_dim, base.fusion) == \
        ("sac", "frozen", "mean", "linear", None, "replace")
    assert not base.non_causal


def test_expand_gives_one_run_per_row_dataset_seed():
    suite = load_suite("feature-extractor")
    requests = expand(suite, datasets=["amazon-beauty"], seeds=[42, 43], only=["RQ2"],
                      size="tiny", protocol=None)
    assert len(requests) == 6  # 3 rows x 2 seeds; the base row runs with --only base,RQ2
    assert {r.sets["pooling"] for r in requests} == {"max", "last", "eol"}
