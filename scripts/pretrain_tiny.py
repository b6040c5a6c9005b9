"""Tiny pretraining recipe in one command: data pyramid -> base checkpoint -> closed-loop eval.

    python scripts/pretrain_tiny.py                 # full recipe (~35-45 min on a 2-core CPU)
    python scripts/pretrain_tiny.py --fast          # smoke run (~1-2 min), writes nothing shared
    python scripts/pretrain_tiny.py --train-minutes 40 --eval-episodes 50   (--help: every flag)
    python scripts/pretrain_tiny.py --chain pick_place_so100 --threads 2     # a shipped checkpoint's warm-start
                                                     # stages, in order, from the committed base (--dry-run)

Writes data_samples/checkpoints/tiny_base/ and benchmarks/results/pretrain_tiny.json. The recipe is
groot_kit.recipes.pretrain.
"""
import sys

from groot_kit.recipes.chain import main   # --chain NAME, else one run of groot_kit.recipes.pretrain

if __name__ == "__main__":
    sys.exit(main())
