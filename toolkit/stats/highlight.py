"""Highlighted tokens: a sentence cut into the pieces its model read, each coloured by one neuron's value on the
same diverging scale as every figure (red above 0, blue below, white at 0), the word piece with the largest value
marked. The terminal card (`neurons neuron --tokens`) and the report's explorer read the same segments.
"""

from __future__ import annotations

from collections.abc import Sequence

MARK = ("«", "»")
"""Around the word piece with the largest value, in colour and without."""


def segments(
    text: str,
    tokens: Sequence[str],
    starts: Sequence[int | None],
    ends: Sequence[int | None],
    special: Sequence[bool],
) -> list[tuple[str, int | None]]:
    """TEXT as (string, token index) pieces in reading order: each token's own characters (its offsets), the text
    between tokens with index None, a special token as its own name; a tokenizer without offsets shows each
    token's piece, space-separated."""
    out: list[tuple[str, int | None]] = []
    pos = 0
    offsets = any(a is not None for a in starts)
    for i, (tok, a, b, sp) in enumerate(zip(tokens, starts, ends, special)):
        gap = bool(out) and (sp or out[-1][1] is not None and special[out[-1][1]])  # a space beside a special token
        if a is None or b is None or sp:
            out.append((" " if gap or (out and not offsets) else "", None))
            out.append((tok if sp or not offsets else "", i))
            continue
        a = max(a, pos)
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())  # a piece that carries its leading space (SentencePiece's ▁)
        between = text[pos : a + lead]
        out.append((" " if gap and not between else between, None))
        out.append((piece[lead:], i))
        pos = max(pos, b)
    if offsets and pos < len(text):
        out.append((text[pos:], None))  # a tail cut at max length
    return [(s, i) for s, i in out if s or i is not None]


def max_token(values: Sequence[float], special: Sequence[bool]) -> int | None:
    """The index of the largest value among the tokens that are not special (the first of ties)."""
    best = None
    for i, (v, sp) in enumerate(zip(values, special)):
        if not sp and (best is None or v > values[best]):
            best = i
    return best


def shade(value: float, scale: float) -> tuple[int, int, int]:
    """The diverging colour of VALUE saturating at |SCALE| (the explorer's `shade`): red above 0, blue below."""
    t = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    c = round(255 * (1 - 0.75 * t))
    return (255, c, c) if value >= 0 else (c, c, 255)


def highlighted(
    pieces: list[tuple[str, int | None]], values: Sequence[float], best: int | None, scale: float, colour: bool
) -> str:
    """PIECES (`segments`) as one line: tokens on their value's background in COLOUR (24-bit ANSI), the BEST token
    between MARK either way."""
    out = []
    for text, i in pieces:
        text = text.replace("\n", " ")
        if i is None:
            out.append(text)
            continue
        if i == best:
            text = f"{MARK[0]}{text}{MARK[1]}"
        if colour:
            r, g, b = shade(values[i], scale)
            text = f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{text}\x1b[0m"
        out.append(text)
    return "".join(out)


def evidence_rows(wanted, read: dict, neuron: int) -> list[dict]:
    """Per sentence of WANTED (`toolkit.capture.evidence.evidence_sentences` rows of NEURON) with the token values
    READ (sentence id -> `SentenceTokens`): what a card shows and `--json` returns."""
    rows = []
    for w in wanted.filter(wanted["neuron"] == neuron).iter_rows(named=True):
        t = read[int(w["sentence_id"])]
        values = [float(v) for v in t.values[t.neurons.index(neuron)]]
        best = max_token(values, t.special)
        rows.append(
            {
                "language": w["language"],
                "kind": w["kind"],
                "rank": w["rank"],
                "sentence_id": w["sentence_id"],
                "label": w["label"],
                "stored": w["value"],
                "pooled_again": float(t.pooled[t.neurons.index(neuron)]),
                "max_position": best,
                "text": w["text"],
                "tokens": [
                    {"token": tok, "start": a, "end": b, "special": sp, "pooled": p, "value": v}
                    for tok, a, b, sp, p, v in zip(t.tokens, t.starts, t.ends, t.special, t.pooled_tokens, values)
                ],
            }
        )
    return rows


def evidence_text(rows: list[dict], header: str, colour: bool) -> str:
    """ROWS (`evidence_rows`) as the card's token section: one line of facts and one highlighted line per
    sentence, the colour scale shared by all of them (saturating at the largest |value| shown)."""
    scale = max((abs(t["value"]) for r in rows for t in r["tokens"] if not t["special"]), default=0.0)
    lines = [
        "",
        header,
        f"colour: red above 0, blue below, full at |value| {scale:.3g}; {MARK[0]}{MARK[1]} the largest",
    ]
    for r in rows:
        toks = r["tokens"]
        best = r["max_position"]
        where = f"top {r['rank']}" if r["kind"] == "top" else f"bin {r['rank']}"
        peak = f"; largest {toks[best]['token']!r} {toks[best]['value']:.3f}" if best is not None else ""
        lines.append(
            f"{r['language']}  {where}  {r['label']}  pooled {r['stored']:.3f} (again from its tokens "
            f"{r['pooled_again']:.3f}){peak}"
        )
        pieces = segments(
            r["text"],
            [t["token"] for t in toks],
            [t["start"] for t in toks],
            [t["end"] for t in toks],
            [t["special"] for t in toks],
        )
        lines.append("    " + highlighted(pieces, [t["value"] for t in toks], best, scale, colour))
    return "\n".join(lines) + "\n"
