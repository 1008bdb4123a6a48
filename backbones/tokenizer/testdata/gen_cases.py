"""Writes cases.json: reference outputs of CLIP's tokenizer pipeline for inputs that
stress its Unicode corners, on the fixture vocabulary beside this file.

This is an independent Python rendering of HF's CLIPTokenizer with ftfy's fix_text
reduced to NFC (what the Go package documents): exactly written special tokens are
split off first (HF's added-token trie), each piece is cleaned with
whitespace_clean and lower(), split by the pattern, and merged by bpe(). HTML
entities are not decoded (OpenAI's SimpleTokenizer would). Its value is that the
Python primitives the reference relies on (str.lower, str.strip, the `regex`
module's \\s, \\p{L} and \\p{N}) are the real ones, not Go lookalikes.

Run with the `regex` package installed:  python3 gen_cases.py > cases.json
"""
import json
import os
import sys
import unicodedata

import regex

here = os.path.dirname(os.path.abspath(__file__))
vocab = json.load(open(os.path.join(here, "vocab.json"), encoding="utf-8"))
lines = open(os.path.join(here, "merges.txt"), encoding="utf-8").read().strip().split("\n")
ranks = {}
for i, line in enumerate(lines[1:49152 - 256 - 2 + 1]):
    ranks[tuple(line.split())] = i
unk = vocab["<|endoftext|>"]
specials = {"<|startoftext|>", "<|endoftext|>"}

printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
byte_enc, extra = {}, 0
for b in range(256):
    if b in printable:
        byte_enc[b] = chr(b)
    else:
        byte_enc[b] = chr(256 + extra)
        extra += 1

pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                    regex.IGNORECASE)


def clean(text):
    text = unicodedata.normalize("NFC", text)  # the part of ftfy.fix_text kept
    text = regex.sub(r"\s+", " ", text).strip()  # whitespace_clean
    return text.lower()


def bpe(word):
    if word in specials:
        return [word]
    sym = list(word[:-1]) + [word[-1] + "</w>"]
    while len(sym) > 1:
        pairs = {(a, b) for a, b in zip(sym, sym[1:])}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(sym):
            if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                out.append(sym[i] + sym[i + 1])
                i += 2
            else:
                out.append(sym[i])
                i += 1
        sym = out
    return sym


texts = [
    "a photo of a cat.",
    "&amp;lt;b&amp;gt; photo &amp;amp;",
    "&#39;s &#x27;t &#X27;re &#39 &#x27",
    "a&#1;b&#0;c&#128;d&#x9d;e&#13;f&#65534;g&#xFDD0;h&#11;",
    "&notit; &ampx &amp &#xD800; &#99999999999; &# &#x; &;",
    "&AElig &aacute; &unknownentity; &NotNestedGreaterGreater;",
    "İSTANBUL ΟΔΟΣ ΣΑ ΑΣ'Σ Σ .Σ ΑΣ.",
    "cafe\u0301 e\u0301&#769;",
    "\u00a0photo\u2003of\u3000a\u1680cat\u0085 \u2028dog\u2029",
    "\x1c photo \x1c of\x1f \x1f",
    "\v\f\r\nphoto\t\tof",
    "I'LL it's we're they've i'm you'd don't 'S",
    "12,345.67 ٣ Ⅻ ½ ²",
    "ﬁne ligature",
    "<|startoftext|>photo<|endoftext|> <|ENDOFTEXT|> a<|endoftext|>b",
    "!!!??? ... photo!!! ,,,",
    "日本語 한국어 中文",
    "emoji 🐱 cat 👍🏽",
    "",
    "   ",
    "ß ẞ ǅ Ǆ",
    "zero\u200bwidth soft\u00adhyphen",
    "photophotophoto catcats cats cat dogdog",
    "ＰＨＯＴＯ of a ｃａｔ",
    "the plane and the dog",
    "ΣΣ Σ́Α",
    "!<|endoftext|>photo.<|startoftext|>?",
    "<|endoftext|>\u0338 >\u0338",
    "it\u2019s R&amp;B &lt;3",
]

special_split = regex.compile(r"(<\|startoftext\|>|<\|endoftext\|>)")


def encode(text):
    ids = []
    for piece in special_split.split(text):
        if piece in specials:
            ids.append(vocab[piece])
            continue
        for w in pat.findall(clean(piece)):
            enc = "".join(byte_enc[b] for b in w.encode("utf-8"))
            ids += [vocab.get(s, unk) for s in bpe(enc)]
    return ids


# clean and words are the stages applied to the whole text; ids are end to end.
cases = []
for t in texts:
    c = clean(t)
    cases.append({"text": t, "clean": c, "words": pat.findall(c), "ids": encode(t)})
json.dump(cases, sys.stdout, ensure_ascii=True, indent=1)
sys.stdout.write("\n")
