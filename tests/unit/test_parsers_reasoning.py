"""Reasoning parsers on the replies Qwen3 and DeepSeek-R1 write."""

from __future__ import annotations

from parsers_support import collect, stream, streamed, whole

from openai_frontend.parsing.registry import make_output_parser

QWEN3_THINKING = (
    "<think>\nThe user wants the capital of France. That is Paris.\n</think>\n\n"
    "The capital of France is Paris."
)
R1_OPENED_BY_PROMPT = (
    "Okay, so I need to add 2 and 2. That makes 4.\n</think>\n\n**Answer:** 2 + 2 = 4"
)


def test_qwen3_think_block_is_reasoning():
    assert whole("qwen3", None, QWEN3_THINKING) == {
        "content": "The capital of France is Paris.",
        "reasoning_content": "\nThe user wants the capital of France. That is Paris.\n",
    }


def test_qwen3_without_think_block_is_all_content():
    """enable_thinking: false — the template closed an empty block in the prompt."""
    reply = "The capital of France is Paris."
    assert whole("qwen3", None, reply) == {"content": reply}
    assert whole("qwen3", None, "  <b>Paris</b>") == {"content": "  <b>Paris</b>"}


def test_deepseek_r1_without_opening_tag():
    assert whole("deepseek_r1", None, R1_OPENED_BY_PROMPT) == {
        "content": "**Answer:** 2 + 2 = 4",
        "reasoning_content": "Okay, so I need to add 2 and 2. That makes 4.\n",
    }


def test_deepseek_r1_with_opening_tag():
    assert whole("deepseek_r1", None, "<think>\nhmm\n</think>\n\n4") == {
        "content": "4",
        "reasoning_content": "\nhmm\n",
    }


def test_cut_inside_reasoning_is_all_reasoning():
    assert whole("deepseek_r1", None, "Okay, let me think about") == {
        "content": "",
        "reasoning_content": "Okay, let me think about",
    }
    assert whole("qwen3", None, "<think>\nLet me think about </th") == {
        "content": "",
        "reasoning_content": "\nLet me think about </th",
    }


def test_closing_tag_split_across_deltas_never_leaks():
    parser = make_output_parser("qwen3", None)
    pieces = ["<thi", "nk>abc</th", "ink", ">\n", "\nAns", "wer"]
    out = [(d.reasoning, d.content) for d in stream(parser, pieces)]
    assert out == [("", ""), ("abc", ""), ("", ""), ("", ""), ("", "Ans"), ("", "wer")]


def test_prompt_decides_where_the_reply_starts():
    """QwQ's template opens <think> in the prompt; Qwen3 without thinking closes it."""
    opened = make_output_parser("qwen3", None, prompt="<|im_start|>assistant\n<think>\n")
    assert collect(stream(opened, ["Hmm.</think>", "\n\nYes"])) == {
        "content": "Yes",
        "reasoning_content": "Hmm.",
    }
    closed = make_output_parser("deepseek_r1", None, prompt="assistant\n<think>\n\n</think>\n\n")
    assert collect(stream(closed, ["Just ", "the answer"])) == {"content": "Just the answer"}


def test_reasoning_tokens_are_counted_up_to_the_closing_delta():
    parser = make_output_parser("qwen3", None)
    stream(parser, ["<think>", "a", "b", "</thi", "nk>", "\n\n", "x", "y"])
    assert parser.reasoning_tokens == 5  # the delta that completed </think>


def test_reasoning_tokens_of_a_reply_cut_inside_reasoning_and_of_none():
    cut = make_output_parser("deepseek_r1", None)
    stream(cut, ["a", "b", "c"])
    assert cut.reasoning_tokens == 3
    plain = make_output_parser("qwen3", None)
    stream(plain, ["Just", " text"])
    assert plain.reasoning_tokens == 0


def test_streamed_equals_whole_on_a_realistic_reply():
    pieces = [QWEN3_THINKING[i : i + 3] for i in range(0, len(QWEN3_THINKING), 3)]
    assert streamed("qwen3", None, pieces) == whole("qwen3", None, QWEN3_THINKING)
