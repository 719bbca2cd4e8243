#!/usr/bin/env python3
"""Train the flow teacher: TV-L1 layers -> 3D ResNet (2 input channels), cross-entropy.

Flow is computed once per video with the TVL1 layers and cached; epochs read the cache.

One CPU or GPU:
    python train/train_teacher.py --dataset hmdb51 --root hmdb51/videos --splits hmdb51/splits --split 1
Several GPUs on one machine (DistributedDataParallel, NCCL; --batch-size is the global batch):
    torchrun --standalone --nproc_per_node 4 train/train_teacher.py --dataset hmdb51 --root ... --batch-size 64
Several nodes (run on each node, --node_rank 0..N-1):
    torchrun --nnodes 2 --nproc_per_node 4 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        train/train_teacher.py --dataset hmdb51 --root ... --batch-size 128
Resume after a kill:  the same command with --resume.
"""
import sys

from fts_edge.train.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main("teacher", doc=__doc__))
