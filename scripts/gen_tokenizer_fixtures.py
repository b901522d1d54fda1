#!/usr/bin/env python3
"""Expected token ids from Hugging Face for moeflux's tokenizer tests.

Builds a deterministic corpus (seeded mixing of hand-written seed texts) and
encodes it with every tokenizer in ../shared/tokenizers plus the project's own
demo tokenizer (tests/fixtures/tokenizer/demo/, written by the C++ test when
MOEFLUX_REGEN_FIXTURES=1).

  python scripts/gen_tokenizer_fixtures.py [--shared ../shared] [--out tests/fixtures/tokenizer]

Files written (all little-endian, gzip-compressed):
  corpus.bin.gz        b"MFTC", u32 version=1, u32 n, n x (u32 len, bytes)
                       Strings are raw bytes; some hold invalid UTF-8 on purpose.
  <name>.ids.bin.gz    b"MFTI", u32 version=1, u32 n, then per string:
                         ids(plain)   = u32 count, count x u32   encode(text, add_special_tokens=False)
                         ids(special) = u32 count, count x u32   encode(text) (transformers semantics)
                         dec(plain)   decode(plain ids, skip_special_tokens=False)
                         dec(skip)    decode(special ids, skip_special_tokens=True)
                       where dec is u32 0 when it equals `text`, else u32 len+1 then the bytes.

Invalid UTF-8: Python's `tokenizers` refuses str with lone surrogates
(surrogateescape gives "TextInputSequence must be str"), so the only way HF
sees invalid bytes is after bytes.decode("utf-8", "replace"): each maximal
ill-formed subsequence becomes U+FFFD. `text` above is that decoded string,
and moeflux's Tokenizer::encode on the raw bytes must give the same ids.

"With special tokens" uses transformers' AutoTokenizer, because that is what
users call: it applies tokenizer_config.json's add_bos_token/add_eos_token
(DeepSeek-V3's tokenizer.json alone adds no BOS; its LlamaTokenizerFast does).
Decoding uses `tokenizers` directly (no clean_up_tokenization_spaces).
"""
import argparse
import gzip
import os
import random
import struct
import sys

SEED = 20260501
N_STRINGS = 2400

NAMES = ["qwen3", "deepseek_v3", "llama3", "gptoss", "llama2"]

# --- seed texts: written for this project -------------------------------------------------
PROSE = [
    "The quick brown fox jumps over the lazy dog while the farmer counts his sheep.",
    "It's a truth we've all learned: you'll never finish a project if you don't start it.",
    "I'M SURE THEY'LL COME BACK, BUT HE'D RATHER WAIT. She's sure; they've gone. We'd go.",
    "Mixture-of-experts models route every token to a few experts out of many, so most weights sit idle.",
    "On Tuesday, 14 March 2023, at 09:45 the train left platform 3b with 1,234 passengers aboard.",
    "\"Quoted speech,\" he said, 'and single quotes' -- plus an em dash \u2014 and an ellipsis\u2026",
    "Dr. Smith's lab measured 3.14159 rad/s; the error was \u00b10.5% (p < 0.05).",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 co\u00f6perate fa\u00e7ade \u00fcber stra\u00dfe \u00c5ngstr\u00f6m \u00e6sthetic",
    "Se\u00f1or Pe\u00f1a visit\u00f3 Espa\u00f1a; \u00bfqu\u00e9 tal? \u00a1Muy bien! \u00c7a va tr\u00e8s bien, merci.",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? \u042d\u0442\u043e \u043f\u0440\u043e\u0441\u0442\u043e\u0439 \u0442\u0435\u0441\u0442 \u0442\u043e\u043a\u0435\u043d\u0438\u0437\u0430\u0442\u043e\u0440\u0430.",
    "\u0393\u03b5\u03b9\u03b1 \u03c3\u03bf\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5! \u0391\u03c5\u03c4\u03cc \u03b5\u03af\u03bd\u03b1\u03b9 \u03ad\u03bd\u03b1 \u03b4\u03bf\u03ba\u03b9\u03bc\u03b1\u03c3\u03c4\u03b9\u03ba\u03cc \u03ba\u03b5\u03af\u03bc\u03b5\u03bd\u03bf.",
    "Long s: \u017fome \u017fay 'S and '\u017f and 'K versus \u212a (kelvin sign) and \u0130stanbul \u0131.",
]
CODE = [
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;\n\treturn 0;\n}\n",
    "{\"name\": \"moeflux\", \"version\": [0, 1, 0], \"tags\": [\"moe\", \"llm\"], \"ok\": true, \"x\": null}",
    "for f in *.json; do\n  jq '.model.type' \"$f\" | sort | uniq -c\ndone 2>&1 | tee /tmp/out.log\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC LIMIT 10;",
    "const add = (a, b) => a + b; // arrow function\nconsole.log(`sum=${add(2, 3)}`);\n",
    "    x_1 = np.zeros((1024, 4096), dtype=np.float16)  # [T, D]\r\n    y = x_1 @ W.T\r\n",
    "https://example.com/path/to/page?query=a+b&lang=en#section-2 user@mail.example.org",
    "fn main() { let s: String = \"\u00e9\u00e8\".to_string(); println!(\"{s:?}\"); }",
    "<html><body class=\"main\"><p>Hi &amp; bye</p></body></html>",
    "a=b&&c||d!=e<=f>=g->h::i...j??k//l/*m*/n@@o##p$$q%%r^^s~~t",
]
CJK = [
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002\u4e13\u5bb6\u6df7\u5408\u6a21\u578b\u53ea\u6fc0\u6d3b\u5c11\u6570\u4e13\u5bb6\u3002",
    "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3092\u6df7\u305c\u305f\u6587\u7ae0\u3002\u30c8\u30fc\u30af\u30ca\u30a4\u30b6\u30fc",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\ub3c4 \ud3ec\ud568\ud569\ub2c8\ub2e4. \uc548\ub155\ud558\uc138\uc694, \ubc18\uac11\uc2b5\ub2c8\ub2e4!",
    "\u4e2d\u6587English\u6df7\u5408mixed\u6587\u672c123\u6570\u5b57\uff0c\u5168\u89d2\uff11\uff12\uff13\uff21\uff22\uff23\u3002",
    "\u300c\u5f15\u7528\u300d\u3010\u62ec\u5f27\u3011\u300a\u4e66\u540d\u300b\u2014\u2014\u7834\u6298\u53f7\u2026\u2026\u7701\u7565\u53f7",
    "\u9f98\u9f96\u9f8d \u3400\u3401 \U00020000\U0002a6a5 \u9fa5\u9fa6 \u3041\u3093\u309f\u30a0\u30ff",
]
RTL_INDIC = [
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a \u0644\u0644\u0627\u062e\u062a\u0628\u0627\u0631 \u0661\u0662\u0663 \u0664\u0665.",
    "\u0627\u064e\u0644\u0652\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u064e\u0629\u064f \u0645\u064e\u0639\u064e \u0627\u0644\u062a\u0651\u064e\u0634\u0652\u0643\u0650\u064a\u0644",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd, \u05d6\u05d4 \u05d8\u05e7\u05e1\u05d8 \u05d1\u05e2\u05d1\u05e8\u05d9\u05ea.",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e! \u092f\u0939 \u090f\u0915 \u092a\u0930\u0940\u0915\u094d\u0937\u0923 \u0939\u0948\u0964 \u0967\u0968\u0969",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07",
    "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 \u0532\u0561\u0580\u0587 \u12c8\u12f0 \u13a0\u13a1",
]
EMOJI = [
    "\U0001f600\U0001f603\U0001f604 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family",
    "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 flags \U0001f3f3\ufe0f\u200d\U0001f308 \u2764\ufe0f \u263a\ufe0e \u0031\ufe0f\u20e3",
    "\U0001f9d1\u200d\U0001f4bb coder \U0001f469\U0001f3ff\u200d\U0001f52c \U0001f408\u200d\u2b1b black cat",
    "math \u2211\u222b\u221a\u221e\u2248\u2260 \u2264\u2265 \U0001d400\U0001d401 \u2460\u2461 \u00b2\u00b3 \u00bd",
    "box \u2500\u2502\u250c\u2510 arrows \u2190\u2192\u2191\u2193 \u2605\u2606 \u266a\u266b \u00a9\u00ae\u2122",
]
COMBINING = [
    "e\u0301 vs \u00e9, a\u0308 vs \u00e4, n\u0303 vs \u00f1, \u1e9b\u0323 \u212b \u2126",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "\ufb01 \ufb02 \u2163 \u33a1 \uff76\uff9e \u1100\u1161\u11a8 \u0915\u093c",
    "\u00c5\u030a o\u0327\u0301 q\u0307\u0323 \u0041\u030a\u0301",
]
WHITESPACE = [
    " ", "  ", "\t", "\n", "\n\n", "\r\n", "   \n  \n", "\u00a0", "\u2003", "\u3000", "\u200b",
    "\ufeff", "\u0085", "\u2028", "\u2029", "\u000b", "\u000c", " \t \t", "\n \n\t\n", "        ",
    "\u1680", "\u202f", "\u205f", "\u180e", "\u2009\u200a",
]
SPECIALS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
    "<|eot_id|>", "<|start_header_id|>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
    "<\uff5cUser\uff5c>", "<\uff5ctool\u2581sep\uff5c>", "<think>", "</think>", "<|return|>",
    "<|channel|>", "<|reserved_special_token_7|>", "<|im_start", "<|", "|>", "<0xE2>", "\u2581",
]
INVALID = [
    b"\xff", b"\xfe\xfe", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80\x80", b"\xed\xa0\x80",
    b"\xc0\xaf", b"\xf5\x80\x80\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", b"a\xffb", b"\x00",
]

CHUNKS = PROSE + CODE + CJK + RTL_INDIC + EMOJI + COMBINING


def random_digits(rng):
    n = rng.choice([1, 2, 3, 4, 5, 7, 9, 12, 17, 30, 64])
    s = "".join(rng.choice("0123456789") for _ in range(n))
    if rng.random() < 0.2:
        s = s.replace("1", "\u0661").replace("2", "\uff12").replace("3", "\u00b3")
    return s


def random_piece(rng):
    r = rng.random()
    if r < 0.45:
        c = rng.choice(CHUNKS)
        if rng.random() < 0.5 and len(c) > 4:  # a random slice: starts/ends mid-word
            a = rng.randrange(len(c))
            b = rng.randrange(a, len(c) + 1)
            c = c[a:b]
        return c.encode("utf-8")
    if r < 0.6:
        return rng.choice(WHITESPACE).encode()
    if r < 0.7:
        return random_digits(rng).encode()
    if r < 0.8:
        return rng.choice(SPECIALS).encode()
    if r < 0.86:
        return rng.choice(INVALID)
    if r < 0.93:  # random code points from interesting ranges
        ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff),
                  (0x600, 0x6ff), (0x900, 0x97f), (0x3040, 0x30ff), (0x4e00, 0x9fff),
                  (0xac00, 0xd7a3), (0x1f300, 0x1faff), (0x2000, 0x206f), (0xff00, 0xffef)]
        lo, hi = rng.choice(ranges)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 12))).encode()
    words = ["the", "The", "THE", "don't", "I'll", "x", "foo_bar", "FooBar", "camelCase", "\u00e9t\u00e9",
             "--", "...", "!!", "??", "'s", "'ll", "'VE", "123abc", "a1b2", "\u4e2d", "\U0001f600"]
    sep = rng.choice([" ", "", "\n", "  ", "\t"])
    return sep.join(rng.choice(words) for _ in range(rng.randint(1, 8))).encode()


def fixed_strings():
    out = [b"", b" ", b"a", b"\n", b"  a", b"a  ", b"hello world", b"Hello World", b" Hello", b"\xff"]
    for group in (PROSE, CODE, CJK, RTL_INDIC, EMOJI, COMBINING, WHITESPACE, SPECIALS):
        out += [s.encode("utf-8") for s in group]
    out += INVALID
    out += [("1" * n).encode() for n in (1, 2, 3, 4, 5, 6, 7, 10, 33, 100)]
    out += [(" " * n + "x").encode() for n in (1, 2, 3, 4, 8, 17)]
    out += [("\n" * n).encode() for n in (1, 2, 3, 5)]
    out += ["<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n".encode(),
            "<s>[INST] hi [/INST]</s>".encode(), "a<s>b</s>c<unk>d".encode(),
            " <s> ".encode(), "<s><s>".encode(), "<|endoftext|><|endoftext|>".encode()]
    return out


def build_corpus():
    rng = random.Random(SEED)
    corpus = fixed_strings()
    while len(corpus) < N_STRINGS:
        n = rng.choice([1, 1, 2, 3, 4, 6, 10]) if rng.random() > 0.03 else rng.randint(40, 120)
        corpus.append(b"".join(random_piece(rng) for _ in range(n)))
    return corpus


def u32(n):
    return struct.pack("<I", n)


def write_gz(path, data):
    # mtime=0 keeps the files byte-identical across runs, so regenerating is a no-op diff.
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))


def write_corpus(path, corpus):
    out = [b"MFTC", u32(1), u32(len(corpus))]
    for b in corpus:
        out.append(u32(len(b)) + b)
    write_gz(path, b"".join(out))


def write_ids(path, corpus, tok, hf_auto):
    out = [b"MFTI", u32(1), u32(len(corpus))]
    for b in corpus:
        text = b.decode("utf-8", "replace")
        plain = tok.encode(text, add_special_tokens=False).ids
        special = hf_auto.encode(text, add_special_tokens=True) if hf_auto else tok.encode(text).ids
        assert plain == (hf_auto.encode(text, add_special_tokens=False) if hf_auto else plain)
        for ids in (plain, special):
            out.append(u32(len(ids)) + struct.pack(f"<{len(ids)}I", *ids))
        for ids, skip in ((plain, False), (special, True)):
            dec = tok.decode(ids, skip_special_tokens=skip)
            if dec == text:
                out.append(u32(0))
            else:
                db = dec.encode("utf-8")
                out.append(u32(len(db) + 1) + db)
    write_gz(path, b"".join(out))


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tokenizer"))
    args = ap.parse_args()

    import tempfile
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    corpus = build_corpus()
    os.makedirs(args.out, exist_ok=True)
    write_corpus(os.path.join(args.out, "corpus.bin.gz"), corpus)
    print(f"corpus: {len(corpus)} strings, {sum(map(len, corpus))} bytes")

    for name in NAMES + ["demo"]:
        if name == "demo":
            src = os.path.join(args.out, "demo")
            if not os.path.exists(os.path.join(src, "tokenizer.json")):
                print("demo: tests/fixtures/tokenizer/demo/tokenizer.json missing; run the C++ test "
                      "with MOEFLUX_REGEN_FIXTURES=1 first", file=sys.stderr)
                continue
            tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
            hf_auto = AutoTokenizer.from_pretrained(src)
        else:
            src = os.path.join(args.shared, "tokenizers", name)
            with tempfile.TemporaryDirectory() as d:
                with gzip.open(os.path.join(src, "tokenizer.json.gz"), "rb") as f, \
                        open(os.path.join(d, "tokenizer.json"), "wb") as g:
                    g.write(f.read())
                with open(os.path.join(src, "tokenizer_config.json"), "rb") as f, \
                        open(os.path.join(d, "tokenizer_config.json"), "wb") as g:
                    g.write(f.read())
                tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
                hf_auto = AutoTokenizer.from_pretrained(d)
        write_ids(os.path.join(args.out, f"{name}.ids.bin.gz"), corpus, tok, hf_auto)
        print(f"{name}: done")


if __name__ == "__main__":
    main()
