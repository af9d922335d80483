"""A tiny causal LM built offline for fast, real training tests.

Recipe from docs/engine.md ("The tiny test model"): a byte-level BPE tokenizer trained on a
generated corpus (full byte alphabet so every string encodes) and a 2-layer Llama with tied
embeddings. The pad token is the EOS token, like SmolLM2, so tests exercise the case where a mask
built from ``ids == pad_id`` would silently drop the EOS target.
"""

from __future__ import annotations

import random
from pathlib import Path

SEPARATOR = "\n\n###\n\n"
EOS = "<|im_end|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", EOS]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

POSITIVE_WORDS = [
    "wonderful", "great", "excellent", "delightful", "superb",
    "lovely", "brilliant", "fantastic", "charming", "pleasant",
]  # fmt: skip
NEGATIVE_WORDS = [
    "terrible", "awful", "dreadful", "horrible", "boring",
    "dismal", "poor", "painful", "tedious", "bland",
]  # fmt: skip
SUBJECTS = ["The movie", "This book", "The meal", "Our trip", "The show", "That song", "The game"]
TEMPLATES = [
    "{subject} was {word}.",
    "{subject} felt {word} to me.",
    "I thought {subject_l} was {word}!",
    "Honestly, {subject_l} is {word}.",
    "{subject} seemed {word} today.",
]
FILLER = [
    "the", "a", "of", "and", "to", "in", "is", "it", "was", "for", "on",
    "with", "as", "at", "by", "this", "that", "we", "you", "they", "what", "when",
]  # fmt: skip


def make_sentiment_examples(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` legacy examples: one sentiment word per prompt, label ` positive` / ` negative`."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        positive = rng.random() < 0.5
        word = rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS)
        subject = rng.choice(SUBJECTS)
        text = rng.choice(TEMPLATES).format(subject=subject, subject_l=subject.lower(), word=word)
        examples.append(
            {
                "prompt": text + SEPARATOR,
                "completion": " positive" if positive else " negative",
            }
        )
    return examples


def _corpus(seed: int = 0) -> list[str]:
    # Many label occurrences so BPE merges ` positive` / ` negative` into distinct first tokens
    # (a byte tokenizer gives both the same first token and first-token metrics break).
    rng = random.Random(seed)
    lines = [e["prompt"] + e["completion"] for e in make_sentiment_examples(600, seed)]
    for _ in range(200):
        lines.append(" ".join(rng.choice(FILLER) for _ in range(12)))
    lines.append("user assistant system hello hi yes no Hello? What is 2+2?")
    return lines


def build_tokenizer(vocab_size: int = 480):
    """A fast byte-level BPE tokenizer; pad = eos = ``<|im_end|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token=EOS,
        pad_token=EOS,
        unk_token="<|endoftext|>",
        model_max_length=256,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(path: Path) -> Path:
    """Save a tiny Llama + tokenizer to ``path`` (HF format) and return ``path``. Deterministic."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    # Fixed init without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=eos_id, pad_token_id=eos_id
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
