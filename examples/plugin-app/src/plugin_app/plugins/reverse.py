"""Reverses the text."""


def transform(text: str) -> str:
    return text[::-1]
