"""Text as the terminal will show it: one line, every character visible, whatever a file name holds."""

from __future__ import annotations

import unicodedata

# Shown in place of control characters, so one odd name cannot break a line or a table's layout.
_VISIBLE_CONTROLS = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}
# Bidirectional controls (embeddings, overrides, isolates, marks): one in a name reorders what follows it on screen.
_BIDI_CONTROLS = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def visible(text: str) -> str:
    """`text` with control characters as their Unicode pictures (␊) and undecodable bytes as \\xNN."""
    chars = []
    for char in text:
        code = ord(char)
        if code in _VISIBLE_CONTROLS:
            chars.append(_VISIBLE_CONTROLS[code])
        elif 0xDC80 <= code <= 0xDCFF:  # a surrogate escape: one byte that was not UTF-8
            chars.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or code in _BIDI_CONTROLS:
            chars.append(f"\\u{code:04x}")
        else:
            chars.append(char)
    return "".join(chars)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 file', '2 files'."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
