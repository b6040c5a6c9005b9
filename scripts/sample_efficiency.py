"""Sample efficiency on a new arm, pretrained + LoRA vs scratch: see groot_kit.recipes.sample_efficiency.

    python scripts/sample_efficiency.py [--fast] [--demos 10,20,50] [--num-joints 6] ...   (--help: every flag)
"""
import sys

from groot_kit.recipes.sample_efficiency import main

if __name__ == "__main__":
    sys.exit(main())
