"""A student checkpoint behind the runtime's Classifier interface, run by PyTorch: what
``fts_edge.load`` gives for a ``.pt`` (the device half runs exported models only)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from ..device.bundle import check_bundle
from ..device.runtime import Classifier, require_classifier


class TorchClassifier(Classifier):
    backend = "torch"

    def __init__(self, path, meta: Dict, device: Optional[str] = None):
        import torch

        from .onnx import load_student

        _, self.model = load_student(path)
        super().__init__(meta, path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def logits(self, clips):
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(clips).to(self.device)).float().cpu().numpy()


def checkpoint_bundle(path) -> Dict:
    """A checkpoint's checked bundle (``nets.checkpoint.checkpoint_bundle`` and the fields every
    command relies on, as ``device.bundle.load_bundle`` checks an exported model's)."""
    from ..nets.checkpoint import checkpoint_bundle as read

    return check_bundle(read(path), path)


def load_torch_classifier(path, device: Optional[str] = None, threads: int = 0) -> TorchClassifier:
    if threads:
        import torch

        torch.set_num_threads(threads)
    p = Path(path)
    return TorchClassifier(p, require_classifier(checkpoint_bundle(p), p), device)
