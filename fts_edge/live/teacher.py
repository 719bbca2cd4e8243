"""Teacher mode: the flow teacher beside the student in the camera app. The one place of the live
half that imports torch, lazily, and only when --teacher is given."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .stream import LIVE, topk

PICTURE_HEIGHT = 192  # the frame and its flow are drawn this high: a clip's 56 or 112 pixels are too small to read


def frame_of(clip: np.ndarray, spec) -> np.ndarray:
    """The clip's last frame as uint8 RGB (H, W, 3): what the teacher's last flow field starts from."""
    from ..data.transforms import denormalise

    return np.clip(denormalise(clip[:, -1:], spec)[:, 0].transpose(1, 2, 0), 0, 255).astype(np.uint8)


def side_by_side(frame: np.ndarray, flow_picture: np.ndarray) -> np.ndarray:
    """The frame and its flow picture, each scaled (nearest pixel: no invented detail) to
    PICTURE_HEIGHT, side by side."""
    import cv2

    def high(img):
        return cv2.resize(img, (img.shape[1] * PICTURE_HEIGHT // img.shape[0], PICTURE_HEIGHT),
                          interpolation=cv2.INTER_NEAREST)

    return np.concatenate([high(frame), high(flow_picture)], 1)


class Teacher:
    """The flow teacher beside the student: TV-L1 layers on CUDA where there is a GPU, else the CPU."""

    def __init__(self, ckpt: str, spec, flow_dir: Optional[str], say):
        import torch

        from ..nets.checkpoint import build_from_checkpoint, load_teacher

        ck = load_teacher(ckpt, spec)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            say({"type": "warning", "message": "teacher mode on the CPU: TV-L1 flow is slow here (no CUDA GPU)"})
        self.model = build_from_checkpoint(ck, ckpt).to(self.device).freeze()
        self.classes, self.spec = ck["classes"], spec
        self.flow_dir = Path(flow_dir) if flow_dir else None
        self.agree = 0
        self.n = 0

    def __call__(self, clip: np.ndarray, student_label: str, tag: str):
        import torch

        from ..flow.pictures import flow_to_color, with_legend

        with torch.no_grad():
            x = torch.from_numpy(clip[None]).to(self.device)
            flow = self.model.flow(x)
            probs = torch.softmax(self.model.forward_head(self.model.forward_flow_features(flow)), 1)[0].cpu().numpy()
        last = flow[0, :, -1].cpu().numpy()
        top = max(float(np.sqrt((last ** 2).sum(0)).max()), 1e-3)
        picture = side_by_side(frame_of(clip, self.spec), with_legend(flow_to_color(last, top), top))
        if self.flow_dir is not None:
            import cv2

            from ..core.artifacts import atomic_write_bytes
            ok, buf = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            atomic_write_bytes(self.flow_dir / f"flow_{tag}.png", buf.tobytes())
        agrees = self.classes[int(np.argmax(probs))] == student_label  # by name: the two lists may differ in order
        self.n += 1
        self.agree += int(agrees)
        return {"top": topk(probs, self.classes, LIVE.topk), "agrees": agrees,
                "agreement_so_far": self.agree / self.n}, picture
