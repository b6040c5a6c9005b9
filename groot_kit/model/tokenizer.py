"""A small tokenizer the kit builds locally, so tiny models need no download.

Byte-level BPE trained with `tokenizers` on the task vocabulary (colours, objects, bins, verbs,
sub-tasks), wrapped as a transformers `PreTrainedTokenizerFast` so it saves beside the weights.
Any text still encodes (byte fallback); task words are single tokens. Real GR00T checkpoints
bring their own tokenizer instead.
"""

from __future__ import annotations

import itertools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<image>", "<unk>"]
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black", "cyan", "pink"]
OBJECTS = ["cube", "block", "box", "ball", "cylinder", "bottle", "cup", "can", "apple", "banana"]
PLACES = ["bin", "box", "basket", "plate", "tray", "bowl", "drawer", "table", "shelf"]
SUBTASKS = ["reach", "grasp", "lift", "move", "place", "release", "idle", "hand over", "push", "open", "close"]


def task_corpus() -> list[str]:
    """Instruction and sub-task sentences of the kit's tasks (deterministic order)."""
    lines = []
    for c1, o, c2, p in itertools.product(COLOURS, OBJECTS[:4], COLOURS, PLACES[:3]):
        lines.append(f"pick up the {c1} {o} and place it in the {c2} {p}")
    for s, c, o in itertools.product(SUBTASKS, COLOURS, OBJECTS):
        lines.append(f"{s} the {c} {o}")
    lines += ["lift the box with both hands", "hand the cube over to the other hand",
              "move the arm to the home pose", "do nothing"]
    return lines


def build_tokenizer(vocab_size: int = 512, corpus: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of `vocab_size` tokens (>= 261) on `corpus` (default: task corpus)."""
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-level tokenizer; use >= {256 + len(SPECIAL_TOKENS)}")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus or task_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", additional_special_tokens=["<image>"])
