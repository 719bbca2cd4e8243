#!/usr/bin/env python3
"""The paper-style table on the test split: RGB, flow (teacher), two-stream (average of the two
softmax scores), distilled student; top-1, top-5, clips/s; Markdown and JSON, and a confusion
matrix picture for each row.

    python train/evaluate.py --rgb runs/rgb/best.pt --teacher runs/teacher/best.pt \\
        --student runs/student/best.pt --out runs/table
The dataset defaults to the one the checkpoints were trained on.
"""
import sys

from fts_edge.train.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main(doc=__doc__))
