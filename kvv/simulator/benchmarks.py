"""The simulated model on benchmark items: OCRBench, MMMU-Pro and AIME 2025 requests.

Recognising an item. A request is a benchmark item when it has the shape kvv.benchmarks builds
(upstream's): a single user message, and
  - AIME 2025: text ending with the `\\boxed{}` instruction (aime2025.SUFFIX);
  - MMMU-Pro:  image parts, then text ending with the `Answer: $LETTER` instruction;
  - OCRBench:  image parts, then any other text (the question).
Anything else (tools, response_format, other conversations) is not an item.

Finding the gold. The simulator does not know the dataset; it is given an answer key
(`answer_key(rows)`: item key -> gold), where an item's key is a digest of what the model sees:
the text and the decoded bytes of every image (so a data URL's mime spelling does not matter).
Without one it uses the key of the dataset stand-in's fixtures (datasets_server.py), so
`kvv run --simulate` against the stand-in knows every item. An item missing from the key is
one the model does not know: it answers in the right format with a guess.

Knowing an item. Each item has a difficulty d in [0, 1) from a hash of the model (profile id),
the benchmark and the item key, never of the simulator's seed: two healthy instances agree on
which items they know. The model knows the item when d < accuracy, except that a share NOISE
of requests (drawn per request from the seed, the body and the attempt) is redrawn as a coin
with P(right) = accuracy, which keeps the mean at `accuracy` and makes paired instances
disagree on a few percent of items.

Faults (faults.yaml):
  accuracy-drop=D        accuracy - D: the items with d in [accuracy - D, accuracy) are lost;
  image-dropped          the model sees no image: OCRBench answers that there is none, MMMU-Pro
                         guesses a letter (right 1 time in the number of options); AIME unaffected;
  image-downscale=F      images shrunk to F of their size. Each image item's text is h pixels
                         high, h log-uniform in [8, 96] from a hash of the item; it stays
                         readable while h * F >= 8. Unreadable OCRBench text is misread,
                         unreadable MMMU-Pro figures make the model guess;
  long-output-corrupt=N  every token after the N-th (reasoning, then content) is garbage, so a
                         long answer loses its `Answer:` line or its box (`corrupted`, any request);
  truncate-output=N      output stops at N tokens with finish_reason length (in server.py, any request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping

from ..benchmarks import BENCHMARKS, Params, aime2025, mmmu_pro, ocrbench
from .text import Answer, prose
from .tokenizer import pieces

Gold = str | list[str]

# What the simulated deployment scores when nothing says otherwise: the K3 references
# (upstream README, Moonshot's row) for OCRBench and MMMU-Pro; AIME has no published number.
DEFAULT_ACCURACY = {"ocrbench": 0.89, "mmmu-pro": 0.82, "aime2025": 0.90}
NOISE = 0.2                        # share of requests whose outcome is redrawn (sampling noise)
TEXT_PX = (8.0, 96.0)              # range of an item's text height in pixels (log-uniform)
READABLE_PX = 8.0                  # smallest text height the model reads

# Completion lengths in tokens at the highest effort: (low, high), log-uniform, longer for harder items.
REASONING = {"ocrbench": (40, 400), "mmmu-pro": (400, 3000), "aime2025": (3000, 20000)}
NON_THINKING_SHARE = 0.3            # worked answer length without thinking, against the reasoning's
SUMMARY = {"ocrbench": (0, 0), "mmmu-pro": (20, 80), "aime2025": (20, 80)}
GARBAGE = (" ~", " ^", " |", " ]", " [", " #", " @")   # one token each in every simulator tokenizer
LOOKALIKES = {"O": "0", "0": "O", "l": "1", "1": "l", "I": "1", "S": "5", "5": "S", "B": "8", "8": "B",
              "e": "c", "c": "e", "a": "o", "o": "a", "n": "h", "h": "n", "u": "v", "v": "u", "2": "Z",
              "Z": "2", "6": "b", "b": "6", "g": "q", "q": "g", "m": "rn", "t": "f", "f": "t"}
NO_IMAGE = "I don't see an image in your message. Could you attach it again?"


@dataclass(frozen=True)
class Item:
    """A benchmark request as the model sees it."""

    benchmark: str
    key: str                    # digest of the text and the image bytes
    text: str
    images: tuple[str, ...]     # image URLs, in order
    choices: tuple[str, ...]    # MMMU-Pro: the option letters; otherwise ()


# -- recognising items and building the answer key ----------------------------------------------

def recognise(body: dict[str, Any]) -> Item | None:
    """The benchmark item `body` asks, or None if it is not one."""
    if body.get("tools") is not None or body.get("response_format") is not None:
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict) \
            or messages[0].get("role") != "user":
        return None
    texts, images = _parts(messages[0].get("content"))
    if texts is None:
        return None
    text = "".join(texts)
    if not images:
        if text.endswith(aime2025.SUFFIX):
            return Item(aime2025.ID, _key(aime2025.ID, text, ()), text, (), ())
        return None
    if not text:
        return None
    if text.endswith("\n\n" + mmmu_pro.INSTRUCTION):
        return Item(mmmu_pro.ID, _key(mmmu_pro.ID, text, images), text, images, _option_letters(text))
    return Item(ocrbench.ID, _key(ocrbench.ID, text, images), text, images, ())


def answer_key(rows: Mapping[str, Iterable[dict[str, Any]]]) -> dict[str, Gold]:
    """Item key -> gold, from dataset rows by benchmark id: {"ocrbench": [row, ...], ...}.
    The rows have the shape kvv.benchmarks reads (images as data URLs)."""
    key: dict[str, Gold] = {}
    probe = Params(model="kvv-simulator", max_tokens=1)
    for benchmark_id, benchmark_rows in rows.items():
        module = BENCHMARKS[benchmark_id]
        for row in benchmark_rows:
            item = recognise(module.prompt(row, probe))
            if item is None or item.benchmark != benchmark_id:    # a row whose text mimics another benchmark
                raise ValueError(f"{benchmark_id} row is not recognised as a {benchmark_id} item: {row!r:.200}")
            key[item.key] = module.gold(row)
    return key


def fixture_rows() -> dict[str, list[dict[str, Any]]]:
    """The dataset stand-in's built-in fixture rows, by benchmark id, in the row shape
    kvv.benchmarks reads (images as data URLs of their bytes); {} without the stand-in."""
    try:
        from .datasets_server import FixtureImage, fixtures
    except ImportError:
        return {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for dataset in fixtures():
        if dataset.spec_key not in BENCHMARKS:
            continue
        rows[dataset.spec_key] = [
            {name: f"data:{value.mime};base64,{base64.b64encode(value.data).decode()}"
             if isinstance(value, FixtureImage) else value for name, value in row.items()}
            for row in dataset.rows]
    return rows


@lru_cache(maxsize=1)
def fixture_answer_key() -> dict[str, Gold]:
    """The answer key of the stand-in's fixture items (built once)."""
    return answer_key(fixture_rows())


def simulated_accuracy(profile: Any) -> dict[str, float]:
    """The accuracy a simulated deployment of `profile` scores per benchmark: the profile's
    `benchmark-accuracy`, else its `reference`, per benchmark (when the profile has a benchmark
    table), else DEFAULT_ACCURACY."""
    accuracy = dict(DEFAULT_ACCURACY)
    table = getattr(profile, "benchmarks", None)
    if isinstance(table, dict):
        for benchmark_id, entry in table.items():
            if isinstance(entry, dict):
                value = entry.get("benchmark-accuracy", entry.get("reference"))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    accuracy[benchmark_id] = float(value)
    return accuracy


# -- answering ---------------------------------------------------------------------------------

class BenchmarkModel:
    """How the simulated model answers benchmark items.

    `model` names the model whose item difficulties apply (the profile id); `seed` and the
    per-request `draw` decide only the sampling noise.
    """

    def __init__(self, model: str, accuracy: dict[str, float], answers: dict[str, Gold] | None,
                 faults: dict[str, Any], seed: int, noise: float = NOISE):
        self.model = model
        self.accuracy = accuracy
        self._answers = answers           # None: the stand-in's fixtures, looked up on first use
        self.faults = faults
        self.seed = seed
        self.noise = noise

    @property
    def answers(self) -> dict[str, Gold]:
        if self._answers is None:
            self._answers = fixture_answer_key()
        return self._answers

    def reply(self, body: dict[str, Any], *, thinking: bool, effort_share: float = 1.0,
              draw: str = "") -> tuple[Answer, set[str]] | None:
        """The answer to a benchmark item and the faults that changed it; None if `body` is not one.

        `effort_share` scales the reasoning (1 at the highest effort); `draw` identifies this
        request and choice (body digest, attempt, index) for the noise.
        """
        item = recognise(body)
        if item is None:
            return None
        rng = random.Random(f"{self.seed}:benchmark:{draw}")
        difficulty = _uniform(f"{self.model}:{item.benchmark}:{item.key}")
        faults: set[str] = set()
        accuracy = min(1.0, max(0.0, self.accuracy.get(item.benchmark, DEFAULT_ACCURACY[item.benchmark])))
        if "accuracy-drop" in self.faults:
            lowered = max(0.0, accuracy - float(self.faults["accuracy-drop"]))
            if lowered <= difficulty < accuracy:
                faults.add("accuracy-drop")
            accuracy = lowered
        knows = difficulty < accuracy
        if rng.random() < self.noise:
            knows = rng.random() < accuracy
        sight = self._sight(item)
        if sight != "clear":
            faults.add(sight)
        gold = self.answers.get(item.key)
        reasoning_tokens = _length(REASONING[item.benchmark], difficulty, rng, effort_share)
        summary_tokens = _length(SUMMARY[item.benchmark], difficulty, rng, 1.0)
        text = self._final_text(item, gold, knows, sight, rng)
        reasoning = prose(rng, reasoning_tokens) if reasoning_tokens >= 2 else ()
        lead = prose(rng, summary_tokens) if summary_tokens >= 2 else ()
        if thinking:
            return Answer(reasoning, lead + pieces(text)), faults
        if item.benchmark == ocrbench.ID:
            return Answer((), pieces(text)), faults
        # Without thinking, the step-by-step work the prompt asks for is written in the answer,
        # shorter than a thinking model's.
        worked = reasoning[:max(2, round(len(reasoning) * NON_THINKING_SHARE))]
        return Answer((), worked + lead + pieces(text)), faults

    def _sight(self, item: Item) -> str:
        """Whether the model sees the item's images: "clear", "image-dropped" or "image-downscale"."""
        if not item.images:
            return "clear"
        if "image-dropped" in self.faults:
            return "image-dropped"
        if "image-downscale" in self.faults:
            low, high = TEXT_PX
            height = low * (high / low) ** _uniform(f"{self.model}:text-px:{item.key}")
            if height * float(self.faults["image-downscale"]) < READABLE_PX:
                return "image-downscale"
        return "clear"

    def _final_text(self, item: Item, gold: Gold | None, knows: bool, sight: str, rng: random.Random) -> str:
        if item.benchmark == ocrbench.ID:
            return self._ocr_text(item, gold, knows, sight, rng)
        if item.benchmark == mmmu_pro.ID:
            letters = list(item.choices)
            if gold in letters and knows and sight == "clear":
                letter = gold
            elif gold in letters and sight == "clear":
                letter = rng.choice([c for c in letters if c != gold] or letters)
            else:                         # no gold, or nothing to see: a guess
                letter = rng.choice(letters)
            return f"\n\nAnswer: {letter}"
        number = int(gold) if isinstance(gold, str) and gold.lstrip("-").isdigit() else None
        if number is None or not knows:
            number = rng.choice([n for n in range(1000) if n != number])
        return f" Therefore, the final answer is $\\boxed{{{number}}}$."

    def _ocr_text(self, item: Item, gold: Gold | None, knows: bool, sight: str, rng: random.Random) -> str:
        answers = [gold] if isinstance(gold, str) else list(gold or [])
        if sight == "image-dropped":
            return _first_wrong(answers, [NO_IMAGE, "No image.", "?"])
        if not answers:                   # an item the model was never told: it reads something
            return " ".join(rng.sample(("TOTAL", "OPEN", "Street", "2019", "Exit", "SALE", "No."), 2))
        if knows and sight == "clear":
            return answers[0]
        return _first_wrong(answers, [_misread(answers[0], rng) for _ in range(8)] + ["(illegible)", "?"])


def corrupted(answer: Answer, after: int, rng: random.Random) -> Answer | None:
    """`answer` with every token after the first `after` (reasoning, then content) replaced by
    garbage; None if it is not longer than that. Tool calls are left alone."""
    total = len(answer.reasoning) + len(answer.content)
    if total <= after:
        return None
    keep_reasoning = min(after, len(answer.reasoning))
    keep_content = max(0, after - len(answer.reasoning))
    garble = lambda part: tuple(rng.choice(GARBAGE) for _ in part)   # noqa: E731
    return Answer(answer.reasoning[:keep_reasoning] + garble(answer.reasoning[keep_reasoning:]),
                  answer.content[:keep_content] + garble(answer.content[keep_content:]), answer.calls)


# -- helpers -----------------------------------------------------------------------------------

def _parts(content: Any) -> tuple[list[str] | None, tuple[str, ...]]:
    """A message's text pieces and image URLs; (None, ()) for content the benchmarks never send."""
    if isinstance(content, str):
        return [content], ()
    if not isinstance(content, list):
        return None, ()
    texts, images = [], []
    for part in content:
        if not isinstance(part, dict):
            return None, ()
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "image_url" and isinstance(part.get("image_url"), dict) \
                and isinstance(part["image_url"].get("url"), str):
            images.append(part["image_url"]["url"])
        else:
            return None, ()
    return texts, tuple(images)


def _key(benchmark: str, text: str, images: tuple[str, ...]) -> str:
    blob = json.dumps([benchmark, text, [_image_digest(url) for url in images]])
    return hashlib.sha256(blob.encode()).hexdigest()


def _image_digest(url: str) -> str:
    """The image's bytes' digest for a base64 data URL (whatever its mime spelling), else the URL's."""
    head, comma, payload = url.partition(",")
    if url.startswith("data:") and comma and head.endswith(";base64"):
        try:
            return hashlib.sha256(base64.b64decode(payload, validate=False)).hexdigest()
        except (binascii.Error, ValueError):
            pass
    return hashlib.sha256(url.encode()).hexdigest()


def _option_letters(text: str) -> tuple[str, ...]:
    """The letters of the option lines `A. ...` that end the question (10 if they cannot be told)."""
    lines = text[:-len("\n\n" + mmmu_pro.INSTRUCTION)].split("\n")
    for count in range(min(len(string.ascii_uppercase), len(lines) - 1), 0, -1):
        tail = lines[-count:]
        if all(line.startswith(f"{letter}. ") for letter, line in zip(string.ascii_uppercase, tail, strict=False)):
            return tuple(string.ascii_uppercase[:count])
    return tuple(string.ascii_uppercase[:10])


def _first_wrong(answers: list[str], candidates: list[str]) -> str:
    """The first candidate OCRBench scores wrong ("" at worst, which is unparsed and wrong)."""
    return next((text for text in candidates if text and not _matches(answers, text)), "")


def _matches(answers: list[str], text: str) -> bool:
    """Whether `text` scores right under either of OCRBench's rules (the question type is not
    in the request, so a misreading must fail both)."""
    return any(ocrbench.score({"question_type": kind, "answer": answers}, text).correct
               for kind in (ocrbench.HME, "other"))


def _misread(text: str, rng: random.Random) -> str:
    """`text` as a model misreads small or hard print: one to three characters swapped for
    lookalikes (or dropped)."""
    chars = list(text)
    if not chars:
        return ""
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(len(chars))
        chars[position] = LOOKALIKES.get(chars[position], "") if rng.random() < 0.8 else ""
        if not any(chars):
            break
    return "".join(chars)


def _length(bounds: tuple[int, int], difficulty: float, rng: random.Random, share: float) -> int:
    low, high = bounds
    if high <= 0:
        return 0
    position = 0.5 * difficulty + 0.5 * rng.random()        # harder items think longer
    return max(2, round(low * (high / low) ** position * share))


def _uniform(text: str) -> float:
    """A number in [0, 1) from a hash of `text`."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16) / 16 ** 13


__all__ = ["BenchmarkModel", "DEFAULT_ACCURACY", "Item", "answer_key", "corrupted", "fixture_answer_key",
           "fixture_rows", "recognise", "simulated_accuracy"]
