"""CLIP's byte-level BPE tokenizer, without torch: what open_clip's SimpleTokenizer computes, as plain lists.

open_clip builds its tokenizer while it is imported, and importing it costs a query seconds.
This one reads the same vocabulary file and must give the same token ids; the query model's
export checks that it does before any query relies on it.
"""

from __future__ import annotations

import gzip
import html
import itertools
from functools import lru_cache
from pathlib import Path

import regex

# The vocabulary file holds more merges than CLIP uses: 49152 tokens minus 256 bytes minus 2 specials.
_MERGES_USED = 49152 - 256 - 2
START_OF_TEXT = "<start_of_text>"
END_OF_TEXT = "<end_of_text>"


@lru_cache(maxsize=1)
def _byte_symbols() -> dict[int, str]:
    """Every byte as a printable character, so that BPE never sees whitespace or control characters.

    The order matters: it is the order of the first 256 vocabulary entries.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {byte: chr(byte) for byte in printable}
    spare = 256
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(spare)
            spare += 1
    return symbols


# Plain ASCII without '&', escape or control characters is text that ftfy.fix_text returns unchanged.
_NOTHING_FOR_FTFY = regex.compile(r"[\t\n\r\x20-\x25\x27-\x7e]*")


def clean(text: str) -> str:
    """Fix mojibake, unescape HTML twice, collapse whitespace, lower-case: CLIP's 'lower' cleaning."""
    if not _NOTHING_FOR_FTFY.fullmatch(text):
        import ftfy  # open_clip's own dependency, and slow to import: only for text that may need it

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    def __init__(self, vocabulary_file: Path, context_length: int) -> None:
        raw = vocabulary_file.read_bytes()
        text = (gzip.decompress(raw) if vocabulary_file.suffix == ".gz" else raw).decode("utf-8")
        # Each merge is one line, "left right". Ranks stay keyed by that line, which spares every fresh query
        # splitting 49k lines into pairs.
        merges = text.split("\n")[1:_MERGES_USED + 1]
        symbols = list(_byte_symbols().values())
        vocabulary = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
        vocabulary += [START_OF_TEXT, END_OF_TEXT]
        self._ids = dict(zip(vocabulary, range(len(vocabulary))))
        self._ranks = dict(zip(merges, range(len(merges))))
        self._cache: dict[str, list[str]] = {START_OF_TEXT: [START_OF_TEXT], END_OF_TEXT: [END_OF_TEXT]}
        self._pattern = regex.compile(
            rf"{START_OF_TEXT}|{END_OF_TEXT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
            regex.IGNORECASE,
        )
        self.start_id = self._ids[START_OF_TEXT]
        self.end_id = self._ids[END_OF_TEXT]
        self.context_length = context_length

    def __call__(self, text: str) -> list[int]:
        """Token ids of one text: start, the text (truncated to fit), end, then zeros to the context length."""
        ids = [*[self.start_id, *self.encode(text)][:self.context_length - 1], self.end_id]
        return ids + [0] * (self.context_length - len(ids))

    def encode(self, text: str) -> list[int]:
        symbols = _byte_symbols()
        ids = []
        for word in self._pattern.findall(clean(text)):
            spelled = "".join(symbols[b] for b in word.encode("utf-8"))
            ids += [self._ids[piece] for piece in self._merge(spelled)]
        return ids

    def _merge(self, word: str) -> list[str]:
        """Apply merges lowest rank first, each to every non-overlapping occurrence, left to right."""
        if word in self._cache:
            return self._cache[word]
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            rank, left, right = min((self._ranks.get(f"{a} {b}", len(self._ranks)), a, b)
                                    for a, b in itertools.pairwise(parts))
            if rank == len(self._ranks):
                break
            merged: list[str] = []
            index = 0
            while index < len(parts):
                if index + 1 < len(parts) and parts[index] == left and parts[index + 1] == right:
                    merged.append(parts[index] + parts[index + 1])
                    index += 2
                else:
                    merged.append(parts[index])
                    index += 1
            parts = merged
        self._cache[word] = parts
        return parts
