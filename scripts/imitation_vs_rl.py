"""Imitation only vs RL from scratch vs imitation + RL (so100 reach): see groot_kit.recipes.imitation_vs_rl.

    python scripts/imitation_vs_rl.py [--fast] [--seed 1] [--rl-steps 4096] ...   (--help lists every flag)
"""
import sys

from groot_kit.recipes.imitation_vs_rl import main

if __name__ == "__main__":
    sys.exit(main())
