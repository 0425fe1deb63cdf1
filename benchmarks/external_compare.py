"""recbench's SASRec-3L and DCNv2 against RecBole's SASRec and FuxiCTR's DCNv2, same split.

    .extvenv/bin/python benchmarks/external_compare.py [--dataset amazon-beauty]
        [--size small] [--home .recbench] [--only recbole|fuxictr] [--threads 1]
        [--seq-epochs N] [--ctr-epochs N] [--patience N] [--recbench-only]

Issue 4: the prepared split under `--home` is exported into each library's own input format,
trained there with the library's own trainer, and the SAME test rows are scored and judged by
recbench's metric code (`recbench.metrics`) and latency protocol (`recbench.latency.measure`:
batch 1, `--threads` threads, 20 warm-up rows, then up to 1,000 test rows, raw row -> scores).

Like for like (issue 13): both sides train in this script, one after the other, in this
process, at the same pinned thread count (`--threads`, `recbench.core.hardware.pin_threads`;
recbench's run gets it as `train_threads` and `latency_threads`). recbench's run goes through
`recbench.runner.run` (`--overwrite always`, so its train time is measured here, not read from
an older record), and its record is then selected by that run's config hash (and dataset
version and seed), never "the newest record". The peers' batch size, learning rate, width,
depth, dropout, epochs and patience are read from the config that recbench ran with; the batch
size is the one recbench trained at (`seq_batch_size` of the SeqRec split,
`auto_batch_size` of the CTR split when the config leaves it to the data).

- RecBole SASRec (SeqRec, full ranking): atomic files with `benchmark_filename`
  train/valid/test, so RecBole splits nothing itself. Each recbench train row (history +
  target, one sequence per user) becomes RecBole's own augmentation of that sequence (every
  prefix predicts its next item), the same predictions recbench's causal objective trains on;
  valid/test rows are history -> target. An `.item` file lists the whole catalogue, so every
  item has a RecBole id and a score. Layers, d, heads, FFN width (= d), dropout, lr, batch size,
  epochs and patience from recbench's SASRec-3L config (3, 64, 2, 64, 0.2, 1e-3, the capped
  256), ReLU, CE loss over the full softmax, early stopping on valid NDCG@10. The best
  epoch's weights are kept in memory as RecBole saves them (its checkpoint file also pickles
  its config, and nothing here unpickles a file). Test scores: `full_sort_predict` over every
  item, reordered to recbench's ids.
- FuxiCTR DCNv2 (CTR): CSV with `item_id` (categorical), `history` (sequence, "^"-joined,
  sharing the item embedding, masked mean pooling: recbench's user field u) and `user_id`
  (meta, the gAUC group); FuxiCTR's `FeatureProcessor` + `build_dataset` fit the vocabulary on
  train only. The model_zoo DCNv2 class is not in the fuxictr wheel, so `FuxiDCNv2` assembles
  the parallel DCNv2 from the wheel's layers (`FeatureEmbedding`, `CrossNetV2`, `MLP_Block`)
  on its `BaseModel` (trainer, early stopping, lr /10 on plateau, best checkpoint restored).
  Embedding, cross layers, MLP widths, batch norm, dropout, lr, batch size and gradient clip
  from recbench's DCNv2 config (64, 3, 256-128-64, on, 0.1, 1e-3, auto, 5 by default); early
  stopping on valid gAUC (recbench's criterion; FuxiCTR's gAUC weights users by rows, and
  every user here has 4 rows).

Environment (kept apart from recbench's .venv; versions that run these two libraries):
    python3 -m venv .extvenv && P=.extvenv/bin/pip
    $P install torch==2.13.0                     # the CPU build
    $P install --no-deps recbole==1.2.1 fuxictr==2.3.9
    $P install "numpy<2" "pandas<3" "polars<2" "pyarrow<19" scipy scikit-learn pyyaml tqdm h5py \
        colorlog==4.7.2 colorama==0.4.4 tensorboard thop tabulate plotly texttable psutil \
        Keras-Preprocessing pydantic threadpoolctl
    $P install -e . "numpy<2" "polars<2"       # recbench itself: its side trains here too
Why: RecBole 1.2.1 aliases `np.float_` and FuxiCTR uses `np.Inf` (both gone in NumPy 2);
FuxiCTR calls `pl.scan_csv(dtypes=...)` (removed in Polars 2); pandas 3 and pyarrow 26 need
NumPy 2 (pyarrow 18.1 does not); ray is left out (RecBole pins ray <= 2.6.3 for
`quick_start`'s tuning, fuxictr 2.3.10 needs ray >= 2.52 for preprocessing), so this script
uses RecBole's data/model/trainer API and fuxictr 2.3.9, neither of which imports ray.

Working files go to `HOME/external/DATASET/SIZE/{recbole,fuxictr}` and are rebuilt each run;
the external test ranks / scores are kept there (`test_ranks.parquet`, `test_scores.parquet`).
Besides the table, a paired t-test and Wilcoxon test (`recbench.metrics.paired_tests`) of the
external model against recbench's predictions: per test row NDCG@10, per user AUC. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import torch

from recbench import metrics
from recbench.core.hardware import pin_threads
from recbench.data.prepare import load_manifest, prepared_path, read_split
from recbench.latency import measure
from recbench.models.ctr.base import auto_batch_size
from recbench.models.torch_base import seq_batch_size
from recbench.results.store import ResultStore
from recbench.runner import RunRequest
from recbench.runner import run as run_recbench

HISTORY = 20  # recbench's max_history: SASRec's max_seq_length and the CTR history length
SEED = 0


@dataclass
class Split:
    """The prepared split, as recbench wrote it."""

    root: Path
    n_items: int
    content_hash: str
    seq: dict[str, pl.DataFrame]
    ctr: dict[str, pl.DataFrame]


@dataclass
class Result:
    library: str
    model: str
    task: str
    metrics: dict[str, float]
    train_seconds: float | None
    latency_ms: float | None  # mean per-sample ms
    latency_p50_ms: float | None
    per_unit: np.ndarray  # per test row NDCG@10 (seq) / per-user AUC, users sorted (ctr)
    notes: list[str] = field(default_factory=list)


def per_row_ndcg(ranks: np.ndarray) -> np.ndarray:
    return metrics.per_row_metric(ranks, "ndcg@10")


def per_user(user: np.ndarray, label: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return metrics.per_user_auc(user, label, scores)[1]


def load_split(home: Path, dataset: str, size: str) -> Split:
    """The prepared split, read (and checked against its manifest) as a recbench run reads it."""
    manifest = load_manifest(home, dataset, size)
    protocol = manifest["protocol_version"]

    def read(rel: str) -> pl.DataFrame:
        return read_split(home, dataset, size, rel, protocol, manifest=manifest)

    seq = {s: read(f"seq/{s}") for s in ("train", "valid", "test")}
    ctr = {s: read(f"ctr/{s}") for s in ("train", "valid", "test")}
    return Split(prepared_path(home, dataset, size, protocol), read("items").height,
                 manifest["content_hash"], seq, ctr)


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """`contextlib.chdir` before Python 3.11."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- recbench, trained here -----------------------------------------------------------------

def train_recbench(args: argparse.Namespace, group: str, model: str, task: str) -> dict:
    """Train and evaluate recbench's `model` on the split in this process, at `--threads`;
    returns the resolved config of the run (its `config_hash` selects the record)."""
    sets: dict[str, object] = {"train_threads": args.threads, "latency_threads": args.threads,
                               "latency_samples": args.latency_samples}
    epochs = args.seq_epochs if task == "seq" else args.ctr_epochs
    if epochs is not None:
        sets["epochs"] = epochs
    if args.patience is not None:
        sets["patience"] = args.patience
    req = RunRequest(group=group, model=model, datasets=[args.dataset], size=args.size,
                     seed=SEED, home=args.home, sets=sets, task=task, overwrite="always")
    (outcome,) = run_recbench(req)
    if outcome.record is None:
        raise SystemExit(f"recbench {group}/{model}: {outcome.status} (another process holds "
                         "the key); rerun when it is done")
    return {"config_hash": outcome.record.config_hash, **outcome.record.config}


def recbench_result(home: Path, split: Split, dataset: str, group: str, model: str,
                    task: str, keys: tuple[str, ...], config_hash: str) -> Result:
    """The finished record of (group, model) on this dataset version with `config_hash` and
    the script's seed: the run `train_recbench` just made, whatever else the store holds."""
    store = ResultStore(home)
    records = [r for r in store.records()
               if (r.dataset, r.group, r.model) == (dataset, group, model)
               and r.config_hash == config_hash and r.dataset_version == split.content_hash
               and r.seed == SEED and not r.smoke]
    if len(records) != 1:
        raise SystemExit(f"{dataset} {group}/{model}: {len(records)} records with config hash "
                         f"{config_hash} on version {split.content_hash}, seed {SEED}; "
                         "expected exactly one")
    record = records[0]
    pred = store.predictions(record).sort("row")
    rec = record.model_dump(mode="json")
    per_unit = (per_row_ndcg(pred["rank_full"].to_numpy()) if task == "seq" else
                per_user(pred["user_id"].to_numpy(), pred["label"].to_numpy(),
                         pred["score"].to_numpy()))
    protocol = "full" if task == "seq" else "ctr"
    lat = rec.get("latency") or {}
    training = [n for n in rec.get("notes", []) if n.startswith(("training:", "batch size"))]
    return Result("recbench", model, task, {k: rec["metrics"][protocol][k] for k in keys},
                  rec.get("train_seconds"), lat.get("mean_ms"), lat.get("p50_ms"), per_unit,
                  [f"record {rec['key']} (config {config_hash}), trained here at "
                   f"{rec['config']['eval']['train_threads']} thread(s)", *training])


def seq_settings(config: dict, split: Split) -> dict:
    """What RecBole's SASRec takes from recbench's: the batch size it trained at, and the
    rest of its model config."""
    m = config["model"]
    return {"batch_size": seq_batch_size(split.seq["train"].height, m["batch_size"]),
            "lr": m["lr"], "dim": m["dim"], "n_layers": m["n_layers"], "heads": m["heads"],
            "dropout": m["dropout"], "epochs": m["epochs"], "patience": m["patience"]}


def ctr_settings(config: dict, split: Split) -> dict:
    """What FuxiCTR's DCNv2 takes from recbench's DCNv2 config (batch size: as recbench
    resolved it for this split when the config leaves it to the data)."""
    m = config["model"]
    batch = m["batch_size"] or auto_batch_size(split.ctr["train"].height)
    return {"batch_size": batch, "lr": m["lr"], "dim": m["dim"],
            "cross_layers": m["cross_layers"], "hidden": list(m["hidden"]),
            "dropout": m["dropout"], "batch_norm": m["batch_norm"], "grad_clip": m["grad_clip"],
            "epochs": m["epochs"], "patience": m["patience"]}


# --- RecBole SASRec -------------------------------------------------------------------------

SEQ_KEYS = ("ndcg@10", "hr@10", "mrr@10")


def export_recbole(split: Split, out: Path, name: str) -> None:
    """Atomic files `name.{train,valid,test}.inter` and `name.item` under `out/name/`."""
    folder = fresh_dir(out / name)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def write(split_name: str, rows: list[tuple[int, list[int], int]]) -> None:
        with open(folder / f"{name}.{split_name}.inter", "w") as f:
            f.write(header)
            for user, history, target in rows:
                f.write(f"{user}\t{' '.join(map(str, history))}\t{target}\n")

    train = []
    for user, history, target in split.seq["train"].iter_rows():
        sequence = [*history, target]
        # RecBole's own augmentation of one user sequence: each prefix predicts its successor.
        train.extend((user, sequence[max(0, t - HISTORY):t], sequence[t])
                     for t in range(1, len(sequence)))
    write("train", train)
    for split_name in ("valid", "test"):
        write(split_name, [(u, h[-HISTORY:], t) for u, h, t in split.seq[split_name].iter_rows()])
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\n")
        f.writelines(f"{i}\n" for i in range(split.n_items))


def run_recbole(split: Split, work: Path, args: argparse.Namespace, cfg: dict) -> Result:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.model.sequential_recommender import SASRec
    from recbole.utils import get_trainer, init_seed

    name = "recbench"
    export_recbole(split, work, name)
    config_dict = {
        "data_path": str(work), "checkpoint_dir": str(work / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "alias_of_item_id": ["item_id_list"], "MAX_ITEM_LIST_LENGTH": HISTORY,
        "n_layers": cfg["n_layers"], "n_heads": cfg["heads"], "hidden_size": cfg["dim"],
        "inner_size": cfg["dim"], "hidden_dropout_prob": cfg["dropout"],
        "attn_dropout_prob": cfg["dropout"], "hidden_act": "relu",
        "loss_type": "CE", "train_neg_sample_args": None,
        "learning_rate": cfg["lr"], "train_batch_size": cfg["batch_size"],
        "eval_batch_size": 256,
        "epochs": cfg["epochs"], "stopping_step": cfg["patience"], "eval_step": 1,
        "eval_args": {"order": "TO", "mode": "full"},
        "metrics": ["NDCG", "Hit", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": SEED, "reproducibility": True,
        "show_progress": False, "save_dataloaders": False, "log_wandb": False,
    }
    # RecBole reads `--key=value` from sys.argv into its config; ours are not for it.
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        config = Config(model="SASRec", dataset=name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    # recbench item id -> RecBole's internal id (the .item file put every item in the vocab)
    to_internal = np.asarray(dataset.token2id("item_id", [str(i) for i in range(split.n_items)]),
                             dtype=np.int64)

    with working_dir(work):  # RecBole's trainer writes log_tensorboard/ into the cwd
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        best = keep_best_weights(trainer, model)
        start = time.perf_counter()
        best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        train_seconds = time.perf_counter() - start
    epochs_run = len(trainer.train_loss_dict)
    # the best epoch's weights, as RecBole saved them; its file also pickles the config, and a
    # pickle under HOME is never loaded
    model.load_state_dict(best)
    model.eval()

    def histories(rows: pl.DataFrame) -> Interaction:
        """RecBole's input: left-aligned internal ids, 0-padded, plus the lengths."""
        seqs = np.zeros((rows.height, HISTORY), dtype=np.int64)
        lengths = np.empty(rows.height, dtype=np.int64)
        for r, history in enumerate(rows["history"].to_list()):
            ids = to_internal[np.asarray(history[-HISTORY:], dtype=np.int64)]
            seqs[r, :len(ids)], lengths[r] = ids, len(ids)
        return Interaction({"item_id_list": torch.from_numpy(seqs),
                            "item_length": torch.from_numpy(lengths)})

    def score_items(rows: pl.DataFrame) -> np.ndarray:
        """(n, n_items) scores in recbench's item order."""
        with torch.no_grad():
            scores = model.full_sort_predict(histories(rows))  # (n, 1 + n_items), [PAD] first
        return scores.numpy()[:, to_internal]

    test = split.seq["test"]
    ranks = metrics.full_ranks(score_items(test), test["target"].to_numpy())
    quality = metrics.ranking_metrics(ranks, ks=(10,))
    test.select("user_id", "target").with_columns(rank_full=ranks).write_parquet(
        work / "test_ranks.parquet")
    latency = measure(score_items, test, n=args.latency_samples, threads=args.threads)
    with working_dir(work):
        own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return Result("RecBole 1.2.1", "SASRec (3 layers)", "seq",
                  {k: quality[k] for k in SEQ_KEYS}, train_seconds, latency.mean_ms,
                  latency.p50_ms, per_row_ndcg(ranks),
                  [f"epochs run {epochs_run}, best valid NDCG@10 {best_valid:.4f} "
                   f"(epoch {epochs_run - trainer.cur_step})",
                   f"{len(train_data._dataset)} training rows (prefixes), "
                   f"{dataset.item_num - 1} items",
                   f"RecBole's own test evaluator: ndcg@10 {own['ndcg@10']:.4f}, "
                   f"hit@10 {own['hit@10']:.4f}"])


def keep_best_weights(trainer, model) -> dict[str, torch.Tensor]:
    """A dict that always holds the weights RecBole's trainer last saved as its best."""
    best: dict[str, torch.Tensor] = {}
    save = trainer._save_checkpoint

    def save_and_keep(*a, **kw):
        best.clear()
        best.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return save(*a, **kw)

    trainer._save_checkpoint = save_and_keep
    return best


# --- FuxiCTR DCNv2 --------------------------------------------------------------------------

CTR_KEYS = ("gauc", "auc")


def export_fuxictr(split: Split, out: Path) -> dict[str, str]:
    """CSV per split: user_id, history ("^"-joined item ids, oldest first), item_id, label."""
    folder = fresh_dir(out / "csv")
    paths = {}
    for name, rows in split.ctr.items():
        path = folder / f"{name}.csv"
        rows.select(
            pl.col("user_id"),
            pl.col("history").list.tail(HISTORY).cast(pl.List(pl.String)).list.join("^"),
            pl.col("item_id"), pl.col("label"),
        ).write_csv(path)
        paths[name] = str(path)
    return paths


def fuxi_dcnv2_class():
    """DCNv2, parallel: ŷ = σ(w^T [CrossNetV2(x0) ; MLP(x0)]), x0 = [e_item ; pool(e_history)]
    (B, 128), built from fuxictr's layers on its BaseModel (a function so fuxictr imports late).
    """
    from fuxictr.pytorch.layers import CrossNetV2, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel
    from torch import nn

    class FuxiDCNv2(BaseModel):
        def __init__(self, feature_map, embedding_dim: int, num_cross_layers: int,
                     hidden_units: list[int], net_dropout: float, batch_norm: bool,
                     learning_rate: float, **kwargs):
            super().__init__(feature_map, model_id="DCNv2", **kwargs)
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            width = feature_map.sum_emb_out_dim()  # item + pooled history: 2 x 64
            self.crossnet = CrossNetV2(width, num_cross_layers)
            self.dnn = MLP_Block(input_dim=width, output_dim=None, hidden_units=hidden_units,
                                 hidden_activations="ReLU", output_activation=None,
                                 dropout_rates=net_dropout, batch_norm=batch_norm)
            self.fc = nn.Linear(width + hidden_units[-1], 1)
            self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            x0 = self.embedding_layer(self.get_inputs(inputs), flatten_emb=True)  # (B, 128)
            out = torch.cat([self.crossnet(x0), self.dnn(x0)], dim=-1)
            return {"y_pred": self.output_activation(self.fc(out))}

    return FuxiDCNv2


def run_fuxictr(split: Split, work: Path, args: argparse.Namespace, cfg: dict) -> Result:
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything

    csv = export_fuxictr(split, work)
    dataset_id = "recbench"
    feature_cols = [
        {"name": "item_id", "active": True, "dtype": "str", "type": "categorical"},
        {"name": "history", "active": True, "dtype": "str", "type": "sequence",
         "splitter": "^", "max_len": HISTORY, "share_embedding": "item_id",
         "feature_encoder": "layers.MaskedAveragePooling()"},
        # remap=False: fuxictr 2.3.9's Tokenizer.encode_meta breaks on remapped meta columns
        # (it passes a dict to build_vocab, which calls .most_common()).
        {"name": "user_id", "active": True, "dtype": "int", "type": "meta", "remap": False},
    ]
    label_col = {"name": "label", "dtype": "float"}
    seed_everything(SEED)
    processor = FeatureProcessor(feature_cols=feature_cols, label_col=label_col,
                                 dataset_id=dataset_id, data_root=str(work / "data"),
                                 group_id="user_id")
    train_path, valid_path, test_path = build_dataset(
        processor, train_data=csv["train"], valid_data=csv["valid"], test_data=csv["test"])
    params = {"embedding_dim": cfg["dim"], "group_id": "user_id"}
    feature_map = FeatureMap(dataset_id, processor.data_dir)
    feature_map.load(os.path.join(processor.data_dir, "feature_map.json"), params)
    loader = dict(batch_size=cfg["batch_size"], data_format="parquet", num_workers=0)
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", train_data=train_path,
                                          valid_data=valid_path, **loader).make_iterator()
    test_gen = RankDataLoader(feature_map, stage="test", test_data=test_path,
                              **loader).make_iterator()

    model = fuxi_dcnv2_class()(
        feature_map, embedding_dim=cfg["dim"], num_cross_layers=cfg["cross_layers"],
        hidden_units=cfg["hidden"], net_dropout=cfg["dropout"], batch_norm=cfg["batch_norm"],
        learning_rate=cfg["lr"], optimizer="adam",
        loss="binary_crossentropy", gpu=-1, monitor={args.ctr_monitor: 1}, monitor_mode="max",
        early_stop_patience=cfg["patience"], metrics=["logloss", "AUC", "gAUC"],
        model_root=str(work / "checkpoints"), verbose=0)
    os.makedirs(model.model_dir, exist_ok=True)  # FuxiCTR's run_expid.py makes it, not fit()
    start = time.perf_counter()
    model.fit(train_gen, validation_data=valid_gen, epochs=cfg["epochs"],
              max_gradient_norm=cfg["grad_clip"] or 0.0)
    train_seconds = time.perf_counter() - start
    epochs_run = model._epoch_index + 1
    best_epoch = epochs_run - model._stopping_steps

    test = split.ctr["test"]
    scores = model.predict(test_gen)  # rows in CSV order = recbench's test order
    user, label = test["user_id"].to_numpy(), test["label"].to_numpy()
    quality = {"gauc": metrics.gauc(user, label, scores), "auc": metrics.auc(label, scores)}
    test.select("user_id", "item_id", "label").with_columns(score=scores).write_parquet(
        work / "test_scores.parquet")

    # Per-sample path for the latency protocol: raw row -> vocab ids -> forward -> score.
    vocab = processor.processor_dict["item_id::tokenizer"].vocab  # shared with history
    lookup = np.full(split.n_items, vocab["__OOV__"], dtype=np.int64)
    known = [(int(token), index) for token, index in vocab.items() if token.isdigit()]
    lookup[[t for t, _ in known]] = [i for _, i in known]

    def score_rows(rows: pl.DataFrame) -> np.ndarray:
        history = np.zeros((rows.height, HISTORY), dtype=np.int64)  # FuxiCTR pads at the end
        for r, h in enumerate(rows["history"].to_list()):
            ids = lookup[np.asarray(h[-HISTORY:], dtype=np.int64)]
            history[r, :len(ids)] = ids
        batch = {"item_id": torch.from_numpy(lookup[rows["item_id"].to_numpy()]),
                 "history": torch.from_numpy(history)}
        with torch.no_grad():
            return model(batch)["y_pred"].numpy().reshape(-1)

    model.eval()
    agree = float(np.abs(score_rows(test) - scores).max())
    latency = measure(score_rows, test, n=args.latency_samples, threads=args.threads)
    n_known = len(known)
    return Result("FuxiCTR 2.3.9", "DCNv2 (parallel)", "ctr", quality, train_seconds,
                  latency.mean_ms, latency.p50_ms, per_user(user, label, scores),
                  [f"epochs run {epochs_run}, best epoch {best_epoch} "
                   f"(valid {args.ctr_monitor}, lr /10 on plateau)",
                   f"vocabulary {n_known} train items + OOV; {split.n_items - n_known} OOV",
                   f"per-sample path vs FuxiCTR's loader: max |diff| {agree:.1e}"])


# --- report ---------------------------------------------------------------------------------

def table(results: list[Result], keys: tuple[str, ...]) -> str:
    head = ["library", "model", *keys, "train s", "ms/sample (mean)", "ms/sample (p50)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in results:
        cells = [r.library, r.model, *(f"{r.metrics[k]:.4f}" for k in keys),
                 "–" if r.train_seconds is None else f"{r.train_seconds:.1f}",
                 "–" if r.latency_ms is None else f"{r.latency_ms:.2f}",
                 "–" if r.latency_p50_ms is None else f"{r.latency_p50_ms:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path,
                        default=Path(os.environ.get("RECBENCH_HOME", ".recbench")))
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--size", default="small")
    parser.add_argument("--only", choices=["recbole", "fuxictr"], default=None)
    parser.add_argument("--seq-epochs", type=int, default=None,
                        help="both sides (default: recbench's SASRec-3L config, 200)")
    parser.add_argument("--ctr-epochs", type=int, default=None,
                        help="both sides (default: recbench's DCNv2 config, 50)")
    parser.add_argument("--patience", type=int, default=None,
                        help="both sides (default: recbench's configs, 10)")
    parser.add_argument("--ctr-monitor", choices=["gAUC", "AUC"], default="gAUC")
    parser.add_argument("--latency-samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1,
                        help="training and latency threads, both sides")
    parser.add_argument("--recbench-only", action="store_true",
                        help="train and report recbench's side only (no peer installed)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: expected at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pin_threads(args.threads)  # the peers' side; recbench's run pins train_threads itself

    split = load_split(args.home, args.dataset, args.size)
    work = args.home / "external" / args.dataset / args.size
    print(f"# {args.dataset} ({args.size}, version {split.content_hash}), {split.n_items} items;"
          f" {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, {args.threads} thread(s)")
    sections = []
    if args.only in (None, "recbole"):
        config = train_recbench(args, "G", "SASRec-3L", "seq")
        ours = recbench_result(args.home, split, args.dataset, "G", "SASRec-3L", "seq",
                               SEQ_KEYS, config["config_hash"])
        settings = seq_settings(config, split)
        theirs = (None if args.recbench_only else
                  run_recbole(split, fresh_dir(work / "recbole"), args, settings))
        ours.notes.append(f"settings given to the peer: {settings}")
        sections.append(("SeqRec, full ranking over all items", SEQ_KEYS, [ours, theirs]))
    if args.only in (None, "fuxictr"):
        config = train_recbench(args, "A", "DCNv2", "ctr")
        ours = recbench_result(args.home, split, args.dataset, "A", "DCNv2", "ctr", CTR_KEYS,
                               config["config_hash"])
        settings = ctr_settings(config, split)
        theirs = (None if args.recbench_only else
                  run_fuxictr(split, fresh_dir(work / "fuxictr"), args, settings))
        ours.notes.append(f"settings given to the peer: {settings}")
        sections.append(("CTR", CTR_KEYS, [ours, theirs]))
    print(f"\nfinished with load average {os.getloadavg()[0]:.1f}")
    for title, keys, results in sections:
        present = [r for r in results if r is not None]
        print(f"\n## {title}\n\n{table(present, keys)}\n")
        for r in present:
            for note in r.notes:
                print(f"- {r.library} {r.model}: {note}")
        if len(present) == 2:
            ours, theirs = present
            unit = "test row NDCG@10" if keys == SEQ_KEYS else "user AUC"
            test = metrics.paired_tests(theirs.per_unit, ours.per_unit)
            print(f"- paired, per {unit} ({test['n']:.0f}), {theirs.library} - recbench: "
                  f"{test['mean_diff']:+.4f}, t-test p = {test['t_pvalue']:.3f}, "
                  f"Wilcoxon p = {test['wilcoxon_pvalue']:.3f}")


if __name__ == "__main__":
    main()
