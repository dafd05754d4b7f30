"""Recount expected_prompt_tokens in kvv's built-in prompt-token corpus.

kvv/data/prompt-token-cases.jsonl holds the requests; their constants come from the
simulator's tokenizer (the corpus tests kvv against its simulator; a vendor of a real model
is judged with that model's corpus, passed with --cases). Edit or add a request there, then:

    python scripts/make_prompt_token_cases.py
"""

from __future__ import annotations

import json
from pathlib import Path

from kvv.checks.prompt_tokens import BUILTIN, load_cases
from kvv.simulator.tokenizer import prompt_tokens

PATH = Path(__file__).resolve().parent.parent / "kvv" / "data" / BUILTIN


def main() -> None:
    lines = []
    for case in load_cases(str(PATH)):
        count = prompt_tokens(case["request"])
        if count != case["expected_prompt_tokens"]:
            print(f"{case['id']}: {case['expected_prompt_tokens']} -> {count}")
        lines.append(json.dumps({**case, "expected_prompt_tokens": count}, ensure_ascii=False))
    PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
