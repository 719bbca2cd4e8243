#!/usr/bin/env python3
"""The live camera app, as a script: `python apps/camera.py --input /dev/video0`.

The same code as `fts-edge camera`; the main loop (fts_edge/camera.py, `run`) reads:
capture in a thread per source (ring buffer, each frame preprocessed once) -> take the newest
windows -> one batched classification -> smooth -> events -> JSON line / overlay / page.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not
from fts_edge.cli import main

if __name__ == "__main__":
    sys.exit(main(["camera"] + sys.argv[1:]))
