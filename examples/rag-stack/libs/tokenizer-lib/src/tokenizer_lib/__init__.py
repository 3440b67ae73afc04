"""Whitespace tokenizer"""


def tokenize(text: str) -> list[str]:
    return text.split()
