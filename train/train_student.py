#!/usr/bin/env python3
"""Train the RGB student of FTSnet: CE(P_rgb, T) + alpha * ||F_rgb - F_flow||^2, with the frozen
flow teacher's pooled features as the target. --alpha 0 trains the RGB-only baseline under the
same budget (no teacher needed); --mode mers is the pure-mimic ablation.

    python train/train_student.py --dataset hmdb51 --root hmdb51/videos --splits hmdb51/splits \\
        --teacher runs/teacher/best.pt --out runs/student
    python train/train_student.py --dataset hmdb51 --root ... --alpha 0 --out runs/rgb
Several GPUs:  torchrun --standalone --nproc_per_node 4 train/train_student.py ... --batch-size 64
Several nodes: torchrun --nnodes 2 --nproc_per_node 4 --node_rank K --rdzv_backend c10d \\
                   --rdzv_endpoint HOST:29500 train/train_student.py ...
Resume after a kill:  the same command with --resume.
"""
import sys

from fts_edge.train.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("student", doc=__doc__))
