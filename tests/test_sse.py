import json

import pytest

from kvv.sse import BodyError, EventDecoder, StreamAssembler, parse_completion


def decode(*chunks: bytes) -> list[str]:
    decoder = EventDecoder()
    events = [data for chunk in chunks for data in decoder.feed(chunk)]
    return events + decoder.close()


def sse(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def assemble(*chunks: dict) -> StreamAssembler:
    assembler = StreamAssembler()
    for data in decode(sse(*chunks)):
        assembler.add(data)
    return assembler


def delta(index: int = 0, **fields) -> dict:
    return {"choices": [{"index": index, "delta": fields}]}


# --- framing -------------------------------------------------------------------------------


def test_events_split_at_every_byte_decode_the_same():
    stream = b'data: {"a": 1}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    whole = decode(stream)
    assert whole == ['{"a": 1}', "[DONE]"]
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == whole


def test_crlf_and_cr_line_ends_including_crlf_split_across_chunks():
    assert decode(b"data: a\r\n\r\ndata: b\r\r") == ["a", "b"]
    assert decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == ["a", "b"]


def test_multi_line_data_joins_with_newline():
    assert decode(b"data: {\ndata:  \"x\": 1\ndata:}\n\n") == ['{\n "x": 1\n}']


def test_comments_and_other_fields_are_ignored():
    assert decode(b": ping\nevent: message\nid: 7\nretry: 10\ndata: x\n\n:\n\n") == ["x"]


def test_last_event_without_blank_line_is_flushed_at_close():
    assert decode(b"data: a\n\ndata: [DONE]") == ["a", "[DONE]"]


def test_multibyte_utf8_split_across_chunks():
    text = "data: héllo ✓\n\n".encode()
    assert decode(text[:8], text[8:14], text[14:]) == ["héllo ✓"]


BOM = "\ufeff".encode()


def test_a_bom_at_the_start_of_the_stream_is_stripped_however_it_is_split():
    stream = BOM + b'data: {"a": 1}\n\ndata: [DONE]\n\n'
    assert decode(stream) == ['{"a": 1}', "[DONE]"]
    for cut in range(1, 5):  # inside the BOM, at its end, and just after
        assert decode(stream[:cut], stream[cut:]) == ['{"a": 1}', "[DONE]"], cut
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == ['{"a": 1}', "[DONE]"]
    assert decode(b"", BOM, b"", b"data: x\n\n") == ["x"]  # empty chunks change nothing


def test_only_one_bom_and_only_at_the_very_start_is_stripped():
    # A second BOM makes the first line's field name "\ufeffdata", which SSE ignores.
    assert decode(BOM + BOM + b"data: a\n\ndata: b\n\n") == ["b"]
    assert decode(b"data: a\n\n" + BOM + b"data: b\n\n") == ["a"]
    assert decode(b"data: " + BOM + b"x\n\n") == ["\ufeffx"]


def test_a_stream_that_is_only_part_of_a_bom_is_flushed_as_bytes_at_close():
    decoder = EventDecoder()
    assert decoder.feed(BOM[:2]) == []
    assert decoder.close() == []  # a lone line with no field: nothing, and no crash


# --- assembly ------------------------------------------------------------------------------


def test_content_and_reasoning_concatenate_with_reasoning_alias():
    a = assemble(
        delta(role="assistant", reasoning_content="think "),
        delta(reasoning="more"),
        delta(content="Hel"),
        delta(content="lo"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
    [choice] = a.choices()
    assert choice.message.content == "Hello"
    assert choice.message.reasoning_content == "think more"
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert a.done and a.chunks == 5


def test_parallel_tool_calls_merge_by_index_and_come_out_sorted():
    a = assemble(
        delta(tool_calls=[{"index": 1, "id": "b", "type": "function", "function": {"name": "g"}}]),
        delta(tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x"'}}]),
        delta(tool_calls=[{"index": 1, "function": {"arguments": '{"y": 2}'}}]),
        delta(tool_calls=[{"index": 0, "id": "", "function": {"name": "", "arguments": ": 1}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )
    message = a.choices()[0].message
    assert message.content is None
    assert message.tool_calls == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}},
    ]


def test_choices_kept_apart_by_index():
    a = assemble(delta(1, content="one"), delta(0, content="zero"), delta(1, content="!"))
    assert [(c.index, c.message.content) for c in a.choices()] == [(0, "zero"), (1, "one!")]


def test_usage_top_level_chunk():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    a = assemble({**delta(content="hi"), "usage": None}, {"choices": [], "usage": usage})
    assert (a.usage, a.usage_location) == (usage, "top")


def test_usage_inside_choice_moonshot_style():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    a = assemble({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage}]})
    assert (a.usage, a.usage_location) == (usage, "choice")


def test_done_stops_assembly_and_is_not_counted():
    a = StreamAssembler()
    for data in ['{"choices": []}', "[DONE]", '{"choices": []}']:
        a.add(data)
    assert a.done and a.chunks == 1


@pytest.mark.parametrize(
    "chunks, detail",
    [
        ([], "2xx stream with no choices in 0 events"),
        ([{"choices": []}, {"choices": [], "usage": {"prompt_tokens": 1}}], "2xx stream with no choices in 2 events"),
        ([{"choices": [{"index": 0, "delta": None}]}] * 3, "2xx stream whose choices carried nothing"),
        ([delta(role="assistant"), delta(content=""), delta(reasoning_content="")],
         "2xx stream whose choices carried nothing"),
        ([delta(0), delta(1)], "2xx stream whose choices carried nothing"),
    ],
)
def test_stream_with_no_answer_is_unusable(chunks, detail):
    assert assemble(*chunks).unusable().startswith(detail)


@pytest.mark.parametrize(
    "chunks",
    [
        [delta(content="hi"), {"choices": [], "usage": {"prompt_tokens": 1}}],  # usage-only last chunk
        [delta(reasoning_content="hmm")],
        [delta(tool_calls=[{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}])],
        [{"choices": [{"index": 0, "delta": None, "finish_reason": "length"}]}],  # max_tokens=0-ish
        [delta(0), delta(1, content="one")],  # one choice with an answer is enough
    ],
)
def test_stream_with_any_answer_is_usable(chunks):
    assert assemble(*chunks).unusable() is None


def test_non_json_event_is_protocol():
    a = StreamAssembler()
    a.add(json.dumps(delta(content="kept")))
    with pytest.raises(BodyError) as raised:
        a.add("{not json")
    assert raised.value.error == "protocol" and "event 2" in str(raised.value)
    assert a.choices()[0].message.content == "kept"


def test_wrong_type_in_chunk_is_bad_response_naming_the_field():
    with pytest.raises(BodyError) as raised:
        StreamAssembler().add(json.dumps(delta(content=5)))
    assert raised.value.error == "bad_response"
    assert "choices[0].delta.content is a number, expected a string" in str(raised.value)


def test_error_object_in_stream_is_protocol():
    with pytest.raises(BodyError) as raised:
        StreamAssembler().add('{"error": {"message": "overloaded"}}')
    assert raised.value.error == "protocol" and "overloaded" in str(raised.value)


# --- whole bodies --------------------------------------------------------------------------


def test_parse_completion():
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    choices, got_usage, location = parse_completion(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "reasoning": "r", "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": usage,
        }
    )
    assert choices[0].message.reasoning_content == "r"
    assert choices[0].message.tool_calls == calls
    assert choices[0].finish_reason == "tool_calls"
    assert (got_usage, location) == (usage, "top")


@pytest.mark.parametrize(
    "body, detail",
    [
        ([], "body is an array, expected an object"),
        ({"id": "x"}, "body.choices is missing, expected an array"),
        ({"error": {"message": "nope"}}, "body has error"),
        ({"choices": {}}, "body.choices is an object, expected an array"),
        ({"choices": [], "usage": {"prompt_tokens": 1}}, "2xx with no choices: body.choices is an empty array"),
        ({"choices": [{"index": 0}]}, "choices[0].message is missing"),
        ({"choices": [{"message": {"content": ["x"]}}]}, "choices[0].message.content is an array"),
        ({"choices": [{"message": {}, "finish_reason": 1}]}, "choices[0].finish_reason is a number"),
    ],
)
def test_parse_completion_rejects_malformed_bodies_precisely(body, detail):
    with pytest.raises(BodyError) as raised:
        parse_completion(body)
    assert raised.value.error == "bad_response" and detail in str(raised.value)


def test_reasoning_sent_under_both_names_is_taken_once():
    both = {"reasoning_content": "r", "reasoning": "r"}
    assembler = StreamAssembler()
    assembler.add(json.dumps({"choices": [{"index": 0, "delta": both}]}))
    assert assembler.choices()[0].message.reasoning_content == "r"
    choices, _, _ = parse_completion({"choices": [{"index": 0, "message": both}]})
    assert choices[0].message.reasoning_content == "r"
