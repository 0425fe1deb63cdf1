"""The latency protocol's batch-1 path for the deep CTR models: one row, history ids -> P(click).

At batch 1 the arithmetic is a handful of 1 x 128 products; what costs is the framework's
per-op dispatch. Measured on the 2-core CPU this suite is developed on (1 thread,
`benchmarks/latency_bench.py`), DNN's whole single-row path takes p50 175 us through PyTorch
(embedding bag, a TorchScript trace of Φ, sigmoid) and 55 us as one ONNX Runtime session;
AutoInt 293 -> 142 us.

So the path is exported once after training, as a graph computing exactly Eqs. 2-3 over the
frozen item-vector table (row 0 = padding, ids shifted by one):

    u = Σ_j table[h_j] / max(|h|, 1),  t = table[i],  p = σ(Φ(u, t)),

and run by ONNX Runtime on the CPU. Where onnxruntime/onnx are not installed, the export
fails, or the model is on a GPU, the same equations run in PyTorch with Φ traced by
TorchScript (and eagerly if tracing fails). `kind` names what was used; the record notes it.
Exactness against the training network is tested for all nine models (tests/test_ctr_models.py).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ScoreOne = Callable[[np.ndarray, int], np.ndarray]  # (shifted history ids, shifted item) -> (1,)


class SingleRowPath(nn.Module):
    """Eqs. 2-3 for one row over a frozen item table: (history ids (n,), item id (1,)) -> (1,)."""

    def __init__(self, table: torch.Tensor, phi: nn.Module):
        super().__init__()
        self.register_buffer("table", table.detach())
        self.phi = phi

    def forward(self, history: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        count = torch.ones_like(history, dtype=self.table.dtype).sum()  # |h|, traced as data
        user = self.table[history].sum(0, keepdim=True) / count.clamp(min=1.0)  # Eq. 2
        return torch.sigmoid(self.phi(user, self.table[item])).reshape(-1)  # Eq. 3


def batch_one_scorer(table: torch.Tensor, phi: nn.Module) -> tuple[ScoreOne, str]:
    """The fastest exact single-row scorer available here, and a description of it."""
    if table.device.type == "cpu":
        try:
            return _onnx_scorer(table, phi)
        except Exception as exc:  # noqa: BLE001 - missing package or export failure: PyTorch
            reason = f"ONNX Runtime unavailable ({type(exc).__name__}: {str(exc)[:80]})"
    else:
        reason = f"ONNX Runtime not used on {table.device.type}"
    traced, kind = _trace(phi, table.shape[1], table.device)
    return _torch_scorer(table, traced), f"{kind} ({reason})"


def _onnx_scorer(table: torch.Tensor, phi: nn.Module) -> tuple[ScoreOne, str]:
    import onnxruntime as ort

    graph = io.BytesIO()
    example = (torch.arange(1, 3, dtype=torch.int64), torch.ones(1, dtype=torch.int64))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(SingleRowPath(table, phi).eval(), example, graph, dynamo=False,
                          input_names=["history", "item"], output_names=["p"],
                          dynamic_axes={"history": {0: "n"}}, opset_version=17)
    sessions: dict[int, ort.InferenceSession] = {}

    def session() -> ort.InferenceSession:
        threads = torch.get_num_threads()  # the latency protocol's thread count, as set
        if threads not in sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[threads] = ort.InferenceSession(graph.getvalue(), options,
                                                     providers=["CPUExecutionProvider"])
        return sessions[threads]

    session()  # fail here, at fit time, rather than inside the latency loop

    def score(history: np.ndarray, item: int) -> np.ndarray:
        feed = {"history": history, "item": np.array([item], dtype=np.int64)}
        return session().run(None, feed)[0]

    return score, f"ONNX Runtime {ort.__version__} session of the whole single-row path"


def _torch_scorer(table: torch.Tensor, phi: nn.Module) -> ScoreOne:
    offsets = torch.zeros(1, dtype=torch.int64, device=table.device)

    def score(history: np.ndarray, item: int) -> np.ndarray:
        with torch.inference_mode():
            ids = torch.from_numpy(history).to(table.device)
            user = F.embedding_bag(ids, table, offsets, mode="mean")  # Eq. 2; empty: 0
            logit = phi(user, table[item:item + 1])
            return torch.sigmoid(logit).reshape(-1).cpu().numpy()  # Eq. 3

    return score


def _trace(phi: nn.Module, dim: int, device: torch.device) -> tuple[nn.Module, str]:
    """Φ traced by TorchScript (1.5-3x less than eager Φ at batch 1 here; `torch.compile` was
    slower at batch 1, DNN 67 -> 129 us, from its per-call guards), or eager if tracing fails."""
    example = (torch.randn(1, dim, device=device), torch.randn(1, dim, device=device))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer notices
            return torch.jit.trace(phi.eval(), example, check_trace=False), "TorchScript trace of Φ"
    except Exception as exc:  # noqa: BLE001 - any tracing failure: fall back to eager
        return phi, f"eager Φ (tracing failed: {type(exc).__name__})"
