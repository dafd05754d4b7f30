"""Recount expected_prompt_tokens in kvv's simulator prompt-token corpora.

Each prompt-tokens reference in kvv/data/references.yaml that is valid for kvv's simulator
holds requests whose constants are that simulator tokenizer's counts (a real model's corpus,
e.g. upstream's Kimi K3 cases, is measured on the model and never recounted here). Edit or add
a request in such a file, then:

    python scripts/make_prompt_token_cases.py
"""

from __future__ import annotations

import json
from pathlib import Path

from kvv.checks.prompt_tokens import CHECK, load_cases
from kvv.references import builtin
from kvv.simulator.tokenizer import TOKENIZERS

DATA = Path(__file__).resolve().parent.parent / "kvv" / "data"


def main() -> None:
    for reference in builtin(CHECK).values():
        if reference.simulator is None:
            continue
        tokenizer = TOKENIZERS[reference.simulator["tokenizer"]]
        if tokenizer.identity != reference.simulator:
            raise SystemExit(f"{reference.name}: valid-for {reference.simulator} is no simulator tokenizer "
                             f"({tokenizer.identity})")
        path = DATA / reference.file
        lines = []
        for case in load_cases(str(path)):
            count = tokenizer.prompt_tokens(case["request"])
            if count != case["expected_prompt_tokens"]:
                print(f"{reference.file}: {case['id']}: {case['expected_prompt_tokens']} -> {count}")
            lines.append(json.dumps({**case, "expected_prompt_tokens": count}, ensure_ascii=False))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
