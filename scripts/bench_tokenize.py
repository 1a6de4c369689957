#!/usr/bin/env python3
"""The peer of the Swift tokenizer benchmark (Tests/TokenizersTests/BenchmarkTests.swift):
Hugging Face `tokenizers` encoding 10 MB of text on one thread.

The text is fixtures/corpus/kjv-train.txt repeated and cut at 10,000,000 bytes, exactly as the
Swift benchmark builds it. Timed calls, each single-threaded (RAYON_NUM_THREADS=1,
TOKENIZERS_PARALLELISM=false are set before tokenizers is imported):
  encode:          tokenizer.encode(text, add_special_tokens=False), the whole text as one sequence
                   (what moe-inspect does, same ids; also computes character offsets);
  encode_batch_fast([text]): the same sequence without offsets (same ids);
  encode_batch_fast(lines): one call over the text's lines, no offsets (on one thread; ids
                   differ slightly at line ends, so it is timing only).

usage: bench_tokenize.py [TOKENIZER_JSON] [--train-vocab N --save PATH] [--compare IDS.npy] [--repeat 3]
  --train-vocab N --save PATH  first train a GPT-2-style byte-level BPE of N tokens on the corpus
                               (a realistic vocabulary size) and save it to PATH, then time it.
  --compare IDS.npy            check that the ids the Swift benchmark wrote equal ours.
Prints one line per measurement and a final JSON line with the best MB/s.
"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fixtures", "corpus", "kjv-train.txt")
TEN_MB = 10_000_000


def bench_text():
    data = open(CORPUS, "rb").read()
    reps = TEN_MB // len(data) + 1
    return (data * reps)[:TEN_MB].decode("utf-8")


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    positional = [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and not sys.argv[i - 1].startswith("--")]
    path = positional[0] if positional else os.path.join(ROOT, "fixtures", "tokenizers", "gpt2.json")
    repeat = int(arg("--repeat", "3"))
    if "--train-vocab" in sys.argv:
        n = int(arg("--train-vocab"))
        path = arg("--save")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=n, min_frequency=2, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train(files=[CORPUS], trainer=trainer)
        tok.save(path)
        print(f"trained {tok.get_vocab_size()} tokens -> {path}")
    tok = Tokenizer.from_file(path)
    text = bench_text()
    lines = text.split("\n")
    results = {}
    ids = None
    for name, call in [("encode", lambda: tok.encode(text, add_special_tokens=False)),
                       ("encode_batch_fast([text])", lambda: tok.encode_batch_fast([text], add_special_tokens=False)),
                       ("encode_batch_fast(lines)", lambda: tok.encode_batch_fast(lines, add_special_tokens=False))]:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = call()
            best = min(best, time.perf_counter() - t0)
            if name == "encode":
                ids = r.ids
        results[name] = TEN_MB / best / 1e6
        print(f"tokenizers {tokenizers.__version__} {name}: {best:.3f} s, {results[name]:.2f} MB/s"
              + (f", {len(ids)} tokens" if name == "encode" else ""))
    if "--compare" in sys.argv:
        import numpy as np
        ours = np.load(arg("--compare"))
        same = ours.shape[0] == len(ids) and bool((ours == np.asarray(ids, dtype=np.int32)).all())
        print(f"ids of {arg('--compare')}: {'identical' if same else 'DIFFERENT'} ({ours.shape[0]} vs {len(ids)} tokens)")
        if not same:
            return 1
    print(json.dumps({"tokenizer": path, "bytes": TEN_MB, "tokens": len(ids),
                      "mb_per_s": {k: round(v, 3) for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
