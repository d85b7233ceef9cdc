"""Morse code for a blinking LED, on CPython and on MicroPython alike.

`encode("SOS")` is "... --- ..."; `timings("SOS")` is the on/off durations (in dot units)
a board's LED loop needs. Only what both interpreters have: no typing, no f-string tricks.
"""

from .codes import CODES, LETTERS

__version__ = "0.3.0"


def encode(text):
    """Letters to dots and dashes; words are separated by ' / '."""
    words = []
    for word in text.upper().split():
        words.append(" ".join(CODES[c] for c in word if c in CODES))
    return " / ".join(words)


def decode(signal):
    return " ".join("".join(LETTERS.get(code, "?") for code in word.split())
                    for word in signal.split(" / "))


def timings(text):
    """(on, off) pairs in dot units: dot 1, dash 3, gap 1 in a letter, 3 between letters,
    7 between words."""
    out = []
    for w, word in enumerate(encode(text).split(" / ")):
        if w:
            out[-1] = (out[-1][0], 7)
        for letter in word.split(" "):
            for symbol in letter:
                out.append((1 if symbol == "." else 3, 1))
            out[-1] = (out[-1][0], 3)
    return out
