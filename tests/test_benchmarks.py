"""The benchmarks' requests and scorers (kvv/benchmarks): upstream's layout and rules
(docs/upstream.md §1.5-1.7), with kvv's one change: an answer it cannot read is `unparsed`
and wrong, never a guess."""

from __future__ import annotations

import pytest

from kvv.benchmarks import BENCHMARKS, Params, RowError, Score, aime2025, benchmark, mmmu_pro, ocrbench
from kvv.thinking import thinking_fields

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLv"
       "AAAAAElFTkSuQmCC")
JPEG = ("data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAP" + "/" * 86
        + "2gAIAQEAAD8AN//Z")
K3_THINKING = Params(model="kimi-k3", max_tokens=16384, temperature=1.0, top_p=0.95,
                     thinking={"thinking": {"type": "enabled", "keep": "all", "effort": "max"}})


def ocr_row(answer, question_type="Regular Text Recognition", question="what is written in the image?"):
    return {"question": question, "question_type": question_type,
            "answer": answer if isinstance(answer, list) else [answer], "image": PNG}


def ocr(prediction, answer, question_type="Regular Text Recognition") -> Score:
    return ocrbench.score(ocr_row(answer, question_type), prediction)


# -- the registry and the parameters ---------------------------------------------------------

def test_registry_names_upstreams_three_benchmarks_and_datasets():
    assert list(BENCHMARKS) == ["ocrbench", "mmmu-pro", "aime2025"]
    assert benchmark("mmmu-pro") is mmmu_pro
    assert mmmu_pro.DATASET == {"id": "MMMU/MMMU_Pro", "config": "standard (10 options)", "split": "test"}
    assert ocrbench.DATASET["id"] == "echo840/OCRBench" and aime2025.DATASET["id"] == "math-ai/aime25"
    with pytest.raises(KeyError, match="expected one of ocrbench, mmmu-pro, aime2025"):
        benchmark("mmmu")


def test_params_from_a_profile_row_in_each_think_format():
    spec = {"temperature": 1.0, "top_p": 0.95, "max-tokens": 98304, "effort": "max"}
    kimi = Params.for_mode("kimi-k3", spec, think_mode="kimi", mode="thinking")
    thinking = {"thinking": {"type": "enabled", "keep": "all", "effort": "max"}}
    assert kimi == Params("kimi-k3", 98304, 1.0, 0.95, thinking)
    opensource = Params.for_mode("m", spec, think_mode="opensource", mode="thinking", stream=True)
    assert opensource.thinking == {"chat_template_kwargs": {"thinking": True, "preserve_thinking": True,
                                                            "thinking_effort": "max"}}
    off = Params.for_mode("m", {"temperature": 0.6, "top_p": 0.95, "max-tokens": 16384}, think_mode="kimi",
                          mode="non-thinking")
    assert off.thinking == {"thinking": {"type": "disabled"}} == thinking_fields("kimi", False)


def test_unset_parameters_are_left_out_and_stream_asks_for_usage():
    row = {"problem": "What is 1+1?", "answer": "2"}
    bare = aime2025.prompt(row, Params(model="m", max_tokens=100))
    assert list(bare) == ["model", "messages", "max_tokens"]
    streamed = aime2025.prompt(row, Params(model="m", max_tokens=100, stream=True))
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


# -- OCRBench --------------------------------------------------------------------------------

def test_ocrbench_request_is_the_image_then_the_question():
    body = ocrbench.prompt(ocr_row("CENTRE", question="what is written in the image?"), K3_THINKING)
    assert body == {
        "model": "kimi-k3",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}},
            {"type": "text", "text": "what is written in the image?"}]}],
        "max_tokens": 16384, "temperature": 1.0, "top_p": 0.95,
        "thinking": {"type": "enabled", "keep": "all", "effort": "max"},
    }


def test_ocrbench_sends_the_datasets_own_bytes_and_mime_type():
    row = {**ocr_row("x"), "image": JPEG}
    assert ocrbench.prompt(row, K3_THINKING)["messages"][0]["content"][0]["image_url"]["url"] == JPEG


def test_ocrbench_rows_without_image_or_answers_name_the_field():
    with pytest.raises(RowError) as raised:
        ocrbench.prompt({**ocr_row("x"), "image": None}, K3_THINKING)
    assert raised.value.field == "image"
    with pytest.raises(RowError) as raised:
        ocrbench.score({**ocr_row("x"), "answer": []}, "x")
    assert raised.value.field == "answer"


def test_ocrbench_upstream_cases():
    """The cases OCRBench's own evaluation documents: a case-insensitive word inside a sentence,
    a handwritten expression split over lines, and a wrong word."""
    assert ocr("The word is centre.", "CENTRE").correct
    assert ocr("12\n34", "12 34", ocrbench.HME).correct
    assert not ocr("enemy", "FRIEND", "Irregular Text Recognition").correct


def test_ocrbench_plain_rule_lowercases_trims_and_turns_newlines_into_spaces():
    score = ocr("  HELLO\nWorld  ", "hello world")
    assert score == Score(True, "HELLO\nWorld", ["hello world"], unparsed=False, rule="substring")
    assert ocr("STOP sign", " Stop ").correct                 # the gold is trimmed too
    assert not ocr("helloworld", "hello world").correct       # spaces stay significant
    assert ocr("it says beta", ["alpha", "Beta"]).correct     # any of the gold answers


def test_ocrbench_handwritten_math_rule_drops_spaces_and_newlines_and_keeps_case():
    assert ocr("\\frac{a}{b}", "\\frac { a } { b }", ocrbench.HME).correct
    assert ocr("x ^ { 2 }\n+ 1", "x^{2}+1", ocrbench.HME).correct
    assert not ocr("X^{2}+1", "x^{2}+1", ocrbench.HME).correct            # case-sensitive
    assert ocr("X^{2}+1", "x^{2}+1", "Regular Text Recognition").correct  # the other rule is not
    assert ocr("abc", "a b c", ocrbench.HME).correct and not ocr("abc", "a b c").correct


def test_ocrbench_empty_answer_is_unparsed_and_wrong():
    for nothing in ("", "   \n", None):
        score = ocr(nothing, "CENTRE")
        assert not score.correct and score.unparsed and score.parsed is None


# -- MMMU-Pro --------------------------------------------------------------------------------

def mmmu_row(**fields):
    row = {"question": "Which curve in <image 1> matches <image 2>?", "options": ["curve a", "curve b", "curve c"],
           "answer": "B", "image_1": PNG, "image_2": JPEG}
    row.update(fields)
    return row


def test_mmmu_request_is_the_images_in_order_then_question_options_and_instruction():
    row = mmmu_row(image_2=None, image_3=JPEG, image_7=PNG)
    body = mmmu_pro.prompt(row, K3_THINKING)
    content = body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "image_url", "image_url", "text"]
    assert [part["image_url"]["url"] for part in content[:3]] == [PNG, JPEG, PNG]     # image_1, image_3, image_7
    assert content[-1]["text"] == (
        "Which curve in <image 1> matches <image 2>?\nA. curve a\nB. curve b\nC. curve c\n\n"
        "Answer the following multiple-choice question. The last line of your response should be of the "
        "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of the options. "
        "Think step by step before answering.")
    assert body["messages"][0]["role"] == "user" and len(body["messages"]) == 1


def test_mmmu_options_as_the_dataset_ships_them_a_python_list_string():
    row = mmmu_row(options="['<image 1>', \"it's 2\", '3']")
    assert "\nA. <image 1>\nB. it's 2\nC. 3\n\n" in mmmu_pro.question_text(row)
    assert mmmu_pro.score(row, "Answer: C").correct is False
    assert mmmu_pro.score({**row, "answer": "c"}, "Answer: C").correct


def test_mmmu_rows_that_cannot_be_asked_name_the_field():
    for fields, field in (({"image_1": None, "image_2": None}, "image_1"), ({"options": "not a list"}, "options"),
                          ({"answer": "K"}, "answer"), ({"question": None}, "question")):
        with pytest.raises(RowError) as raised:
            row = mmmu_row(**fields)
            mmmu_pro.prompt(row, K3_THINKING)
            mmmu_pro.score(row, "Answer: A")
        assert raised.value.field == field


TEN = [f"option {n}" for n in range(10)]


def parse(response, options=TEN):
    return mmmu_pro.parse(response, [chr(65 + i) for i in range(len(options))], options)


@pytest.mark.parametrize("response, expected", [
    ("Step by step... so the answer follows.\nAnswer: B", ("B", "answer-line")),
    ("Answer: **C**", ("C", "answer-line")),
    ("Answer: (D)", ("D", "answer-line")),
    ("Answer: $\\boxed{E}$", ("E", "answer-line")),
    ("Answer: the answer is C", ("C", "answer-line")),      # lower-case words hold no option letter
    ("First guess. Answer: A\nOn reflection... Answer: G", ("G", "answer-line")),   # the last Answer:
    ("Answer: B. Because it is bigger", ("B", "answer-line")),   # B twice is still one letter
])
def test_mmmu_answer_line(response, expected):
    assert parse(response) == expected


@pytest.mark.parametrize("response, expected", [
    # Two letters after Answer: -> the heuristics over the whole answer.
    ("I think (D) is right. Answer: A or B", ("D", "bracket")),
    ("Between (A) and (C), I prefer (C) here", ("C", "bracket")),     # several: the one found last
    ("I pick B because it fits", ("B", "letter-space")),   # "I" is a letter too; B comes last
    ("so E.\ndone", ("E", "letter-dot")),
    ("my favourite of them is surely option 7 today", ("H", "option-text")),
    ("option 1 looks fine but option 2 is what i would choose", ("C", "option-text")),   # the last named
])
def test_mmmu_fallback_heuristics(response, expected):
    assert parse(response) == expected


@pytest.mark.parametrize("response", [
    "",
    "i cannot tell.",
    "Answer: c",                    # case-sensitive: a lower-case letter is no option
    "option 7",                     # option text counts only in answers of more than five words
    "the the the the the the the",
])
def test_mmmu_unreadable_answer_is_unparsed_never_a_random_letter(response):
    row = mmmu_row(options=TEN, answer="H")
    scores = {mmmu_pro.score(row, response) for _ in range(20)}
    assert scores == {Score(False, None, "H", unparsed=True, rule="none")}


def test_mmmu_score_fields():
    row = mmmu_row()
    assert mmmu_pro.score(row, "Answer: B") == Score(True, "B", "B", unparsed=False, rule="answer-line")
    assert mmmu_pro.score(row, "Answer: C") == Score(False, "C", "B", unparsed=False, rule="answer-line")
    assert mmmu_pro.score(row, None).unparsed
    assert mmmu_pro.score(row, "Answer: B").to_dict() == {"correct": True, "parsed": "B", "gold": "B",
                                                         "unparsed": False, "rule": "answer-line"}


def test_mmmu_letters_beyond_the_rows_options_do_not_count():
    row = mmmu_row()                          # three options: A-C
    assert mmmu_pro.score(row, "Answer: D").unparsed
    assert mmmu_pro.parse("Answer: D or B", ["A", "B", "C"], ["x", "y", "z"]) == ("B", "answer-line")


# -- AIME 2025 -------------------------------------------------------------------------------

def aime(answer_text, gold="42") -> Score:
    return aime2025.score({"problem": "p", "answer": gold}, answer_text)


def test_aime_request_is_the_problem_and_upstreams_boxed_suffix_as_plain_text():
    body = aime2025.prompt({"problem": "Find $x$.", "answer": "7"}, Params("kimi-k2.5", 98304, 1.0, 0.95))
    assert body == {"model": "kimi-k2.5", "max_tokens": 98304, "temperature": 1.0, "top_p": 0.95, "messages": [
        {"role": "user",
         "content": "Find $x$.\n\n Please reason step by step, and put your final answer within \\boxed{}."}]}


@pytest.mark.parametrize("text, parsed", [
    ("so $\\boxed{42}$.", "42"),
    ("\\boxed{042}", "42"),
    ("\\boxed {42}", "42"),
    ("\\boxed{\\text{42}}", "42"),                  # nested braces
    ("\\boxed{\\mathbf{42}}", "42"),
    ("\\boxed{ 42. }", "42"),
    ("\\boxed{42.0}", "42"),
    ("first \\boxed{7}, then \\boxed{42}", "42"),   # several: the last
    ("\\boxed{42} and an unfinished \\boxed{7", "42"),   # an unclosed box is none
    ("\\boxed{42} \\boxed{}", "42"),                # an empty box is none
])
def test_aime_last_boxed_integer(text, parsed):
    assert aime(text) == Score(True, parsed, "42", unparsed=False, rule="boxed")


def test_aime_thousands_and_wrong_integers():
    assert aime("\\boxed{1{,}000}", gold="1000").correct and aime("\\boxed{1,000}", gold=1000).correct
    assert aime("\\boxed{41}") == Score(False, "41", "42", unparsed=False, rule="boxed")
    assert aime("\\boxed{3, 4}", gold="34").unparsed        # two numbers are not thousands


def test_aime_no_box_or_no_integer_is_unparsed():
    assert aime("The answer is 42.") == Score(False, None, "42", unparsed=True, rule="no-box")
    assert aime(None).unparsed and aime("\\boxed{42").unparsed
    fraction = aime("\\boxed{\\frac{1}{2}}")
    assert fraction == Score(False, "\\frac{1}{2}", "42", unparsed=True, rule="box-not-integer")
    assert aime("\\boxed{x = 42}").unparsed


def test_aime_gold_as_integer_or_string_and_bad_gold_names_the_field():
    assert aime2025.gold({"problem": "p", "answer": 70}) == "70" == aime2025.gold({"problem": "p", "answer": " 070"})
    with pytest.raises(RowError) as raised:
        aime2025.gold({"problem": "p", "answer": "seventy"})
    assert raised.value.field == "answer"
    with pytest.raises(RowError) as raised:
        aime2025.prompt({"answer": "1"}, Params("m", 1))
    assert raised.value.field == "problem"
