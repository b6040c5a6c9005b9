"""Recipes: each a config dataclass with commented defaults plus `run(cfg)`; the command line of each
is generated from its dataclass (groot_kit.recipes.config_cli).

    finetune            a new arm: spec -> MJCF -> demos -> fresh slot + LoRA -> closed loop
    pretrain            the tiny base model: data pyramid -> co-training -> evaluation
    sample_efficiency   pretrained + LoRA vs scratch on a new arm, by number of demos
    imitation_vs_rl     imitation only vs RL from scratch vs imitation + RL
"""
