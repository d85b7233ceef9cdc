"""Upper-cases the text and adds emphasis."""


def transform(text: str) -> str:
    return text.upper() + "!"
