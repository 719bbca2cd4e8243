"""The networks' names and the blocks a hint may name: torch-free, so settings and command lines
can check them without building a network."""
from __future__ import annotations

from typing import Optional, Tuple

MODEL_NAMES = ("r3d_18", "resnext3d_18", "causal_r3d_18")
CAUSAL_MODELS = ("causal_r3d_18",)
HINT_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def hint_layers(hint: Optional[str]) -> Tuple[str, ...]:
    """``--hint`` as the blocks it names: None -> (), "layer3" -> ("layer3",), "layer2,layer3" ->
    both, in network order. ValueError (one line) for an unknown or repeated block."""
    if not hint:
        return ()
    names = [n.strip() for n in hint.split(",")]
    bad = [n for n in names if n not in HINT_LAYERS]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"hint must be blocks of {', '.join(HINT_LAYERS)}, comma-separated and each once, "
                         f"got {hint!r}")
    return tuple(n for n in HINT_LAYERS if n in names)


def same_layers(a: str, b: str) -> bool:
    """Whether two models have the same layers and weight shapes (a causal network and its clip
    twin do): a student can then take the teacher's blocks or follow its maps. Shapes are not
    function: a causal student started from a clip teacher's blocks learns nothing (it starts
    from a causal copy of the teacher instead, ``train.loop.student_shaped_flow_network``)."""
    return a.replace("causal_", "") == b.replace("causal_", "")
