#!/usr/bin/env python3
"""Oracle fixtures for moeflux's chat templates.

Renders conversations with Hugging Face transformers' apply_chat_template
(tokenize=False) and writes the expected text to tests/fixtures/chat/*.json:

- one file per tokenizer in ../shared/tokenizers that has a chat_template
  (qwen3, deepseek_v3, llama3), loaded offline from a temp dir holding the
  gunzipped tokenizer.json and the tokenizer_config.json;
- one file per template in tests/fixtures/chat/templates/*.jinja (written for
  these tests to cover constructs the model templates do not use), rendered
  through the llama3 tokenizer's apply_chat_template(chat_template=...).

A case whose rendering raises records "error" instead of "expected"; the C++
tests then require a moeflux::Error.

Usage: python scripts/gen_chat_fixtures.py   (versions: scripts/requirements-chat.txt)
"""
import copy
import gzip
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import jinja2  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "tokenizers")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location.\nReturns °C by default.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["location"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web — returns <html> & \"quotes\" and 日本語.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "filters": {
                    "type": "object",
                    "properties": {"site": {"type": "string"}, "recent": {"type": "boolean"}},
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "limit": {"type": ["integer", "null"]},
            },
            "required": ["query", "tags"],
        },
    },
}
TOOLS = [WEATHER, SEARCH]

SYS = {"role": "system", "content": "You are a helpful assistant."}


def user(text):
    return {"role": "user", "content": text}


def assistant(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def tool_msg(text, **extra):
    return {"role": "tool", "content": text, **extra}


def call(name, args, call_id=None):
    c = {"type": "function", "function": {"name": name, "arguments": args}}
    if call_id:
        c["id"] = call_id
    return c


WEATHER_ARGS = {"location": "Paris, France", "unit": "celsius", "days": 3, "lat": 48.8566, "ratio": 1.0, "big": 1e20}

# (name, messages, options) with options: add_generation_prompt, tools, kwargs.
CASES = [
    ("user_only", [user("Hello!")], {}),
    ("user_only_no_generation_prompt", [user("Hello!")], {"add_generation_prompt": False}),
    ("system_user", [SYS, user("What is 2+2?")], {}),
    ("multi_turn", [SYS, user("Hi"), assistant("Hello! How can I help?"), user("Tell me a joke.")], {}),
    ("ends_with_assistant", [SYS, user("Hi"), assistant("Hello there.")], {"add_generation_prompt": False}),
    ("tools_user", [user("What's the weather in Paris?")], {"tools": TOOLS}),
    ("tools_system_user", [SYS, user("Search for moeflux.")], {"tools": TOOLS}),
    ("tool_call_dict_args", [
        SYS, user("Weather in Paris?"),
        assistant("", tool_calls=[call("get_weather", WEATHER_ARGS, "call_1")]),
        tool_msg('{"temperature": 21.5, "sky": "clear"}', tool_call_id="call_1"),
        assistant("It is 21.5 °C and clear in Paris."),
        user("Thanks!"),
    ], {"tools": TOOLS}),
    ("tool_call_string_args_none_content", [
        user("Weather in Paris?"),
        assistant(None, tool_calls=[call("get_weather", json.dumps({"location": "Paris"}))]),
        tool_msg('{"temperature": 21.5}'),
    ], {"tools": TOOLS}),
    ("parallel_tool_calls_none_content", [
        user("Weather in Paris and Tokyo?"),
        assistant(None, tool_calls=[
            call("get_weather", '{"location": "Paris"}'),
            call("get_weather", '{"location": "Tokyo"}'),
        ]),
        tool_msg("sunny"),
        tool_msg("rainy"),
        assistant("Paris is sunny, Tokyo is rainy."),
    ], {"tools": TOOLS, "add_generation_prompt": False}),
    ("parallel_tool_calls_with_text", [
        user("Weather in Paris and Tokyo?"),
        assistant("Let me check both.", tool_calls=[
            call("get_weather", {"location": "Paris"}),
            call("search", {"query": "Tokyo weather", "tags": ["weather", "東京"], "filters": {"recent": True}}),
        ]),
        tool_msg("sunny"),
        tool_msg("rainy"),
    ], {"tools": TOOLS}),
    ("multi_step_tool", [
        user("Plan my trip."),
        assistant("", tool_calls=[call("search", {"query": "flights", "tags": []})]),
        tool_msg("flight AF123"),
        assistant("", tool_calls=[call("get_weather", {"location": "Nice"})]),
        tool_msg("warm"),
    ], {"tools": TOOLS}),
    ("user_content_like_tool_response", [user("<tool_response>\nresult\n</tool_response>")], {}),
    ("reasoning_content_last", [
        user("What is 2+2?"),
        assistant("The answer is 4.", reasoning_content="2 plus 2 equals 4."),
    ], {"add_generation_prompt": False}),
    ("reasoning_content_history", [
        user("What is 2+2?"),
        assistant("4.", reasoning_content="\nSimple arithmetic.\n"),
        user("And 3+3?"),
    ], {}),
    ("think_in_content", [
        user("What is 2+2?"),
        assistant("<think>\nLet me add.\n</think>\n\nIt is 4."),
    ], {"add_generation_prompt": False}),
    ("think_in_content_history", [
        user("What is 2+2?"),
        assistant("<think>Let me add.</think>It is 4."),
        user("Sure?"),
        assistant("Yes."),
    ], {"add_generation_prompt": False}),
    ("enable_thinking_false", [user("Quick answer: capital of France?")], {"kwargs": {"enable_thinking": False}}),
    ("enable_thinking_true", [user("Think hard: capital of France?")], {"kwargs": {"enable_thinking": True}}),
    ("unicode", [
        {"role": "system", "content": "Réponds en français. 日本語も話せます。"},
        user("Emoji 👩‍💻🇫🇷, Arabic مرحبا, combining e\u0301, Turkish İstanbul, math ∑ x²."),
        assistant("Très bien ✓"),
        user("中文：你好，世界！"),
    ], {}),
    ("empty_content", [user(""), assistant(""), user("")], {}),
    ("whitespace_content", [
        {"role": "system", "content": "\n  system with spaces  \n"},
        user("  \n leading and trailing whitespace \n\n"),
        assistant("\n\nanswer\n"),
        user("\t tabbed"),
    ], {}),
    ("special_characters", [
        user('Quotes \' " backslash \\ braces {{ not a template }} {% raw %} <|im_end|> </s> <｜end▁of▁sentence｜>'),
        assistant('JSON: {"a": [1, 2]} and a\\nb'),
        user("Line1\r\nLine2\rLine3"),
    ], {}),
    ("date_string", [SYS, user("What is today's date?")], {"kwargs": {"date_string": "26 Jul 2024"}}),
    ("multiple_system_messages", [
        {"role": "system", "content": "First system."},
        {"role": "system", "content": "Second system."},
        user("Hi"),
    ], {}),
    ("long_conversation", [SYS] + [m for i in range(6) for m in (user(f"Question {i}?"), assistant(f"Answer {i}."))]
     + [user("Last question?")], {}),
    ("custom_bos_kwarg", [user("Hi")], {"kwargs": {"bos_token": "<custom_bos>", "eos_token": "<custom_eos>"}}),
    ("empty_conversation", [], {}),
]


def prepare(name, tmp):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    shutil.copy(os.path.join(SHARED, name, "tokenizer_config.json"), d)
    with gzip.open(os.path.join(SHARED, name, "tokenizer.json.gz"), "rb") as f, open(
        os.path.join(d, "tokenizer.json"), "wb"
    ) as g:
        shutil.copyfileobj(f, g)
    return AutoTokenizer.from_pretrained(d, local_files_only=True)


def render_cases(tok, chat_template=None, cases=CASES, extra_kwargs=None):
    out = []
    for name, messages, opts in cases:
        agp = opts.get("add_generation_prompt", True)
        tools = opts.get("tools")
        kwargs = dict(extra_kwargs or {})
        kwargs.update(opts.get("kwargs", {}))
        case = {"name": name, "messages": messages, "add_generation_prompt": agp}
        if tools is not None:
            case["tools"] = tools
        if kwargs:
            case["kwargs"] = kwargs
        try:
            case["expected"] = tok.apply_chat_template(
                copy.deepcopy(messages), tools=copy.deepcopy(tools), chat_template=chat_template,
                add_generation_prompt=agp, tokenize=False, **kwargs)
        except Exception as e:  # the template failed: the C++ side must fail too
            case["error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    return out


def write(fname, doc):
    path = os.path.join(OUT, fname)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_ok = sum("expected" in c for c in doc["cases"])
    print(f"{path}: {n_ok} rendered, {len(doc['cases']) - n_ok} errors")


# gpt-oss: its tokenizer in ../shared/tokenizers/gptoss has no chat_template;
# the model's own (openai/gpt-oss-120b's chat_template, as llama.cpp keeps it in
# models/templates/openai-gpt-oss-120b.jinja) is tests/fixtures/chat/gpt_oss/
# chat_template.jinja. It prints strftime_now("%Y-%m-%d"): the expected texts
# hold DATE_MARK there and the test puts in the date of its run.
GPT_OSS_TEMPLATE = os.path.join(OUT, "gpt_oss", "chat_template.jinja")
DATE_MARK = "<<strftime_now %Y-%m-%d>>"
GPT_OSS_CASES = [
    ("reasoning_effort_high", [SYS, user("Prove it.")], {"kwargs": {"reasoning_effort": "high"}}),
    ("model_identity", [user("Who are you?")], {"kwargs": {"model_identity": "You are a test model."}}),
    ("builtin_tools", [user("Look it up.")], {"kwargs": {"builtin_tools": ["browser", "python"]}}),
    ("developer_role", [{"role": "developer", "content": "Answer tersely."}, user("Hi")], {}),
    ("thinking_last", [user("What is 2+2?"), assistant("4", thinking="2 plus 2 is 4.")],
     {"add_generation_prompt": False}),
    ("thinking_history", [user("What is 2+2?"), assistant("4", thinking="Simple."), user("And 3+3?")], {}),
    ("tool_call_with_thinking", [
        user("Weather in Paris?"),
        assistant(None, thinking="I should call the tool.", tool_calls=[call("get_weather", {"location": "Paris"})]),
        tool_msg('{"temperature": 21.5}'),
    ], {"tools": TOOLS}),
]


def gpt_oss_fixture(tok, header):
    with open(GPT_OSS_TEMPLATE, encoding="utf-8") as f:
        source = f.read()
    import datetime
    today = datetime.datetime.now().strftime("%Y-%m-%d")
    cases = render_cases(tok, chat_template=source, cases=CASES + GPT_OSS_CASES)
    if datetime.datetime.now().strftime("%Y-%m-%d") != today:
        raise RuntimeError("the date changed while rendering; run again")
    for c in cases:
        if "expected" in c:
            assert c["expected"].count(today) == c["expected"].count("Current date: "), c["name"]
            c["expected"] = c["expected"].replace("Current date: " + today, "Current date: " + DATE_MARK)
    write("gpt_oss.json", {**header, "template": "gpt_oss/chat_template.jinja", "tokenizer": "gptoss",
                           "template_source": "llama.cpp models/templates/openai-gpt-oss-120b.jinja "
                                              "(openai/gpt-oss-120b's chat_template)",
                           "date_mark": DATE_MARK, "special_tokens": tok.special_tokens_map, "cases": cases})


def main():
    header = {
        "generator": "scripts/gen_chat_fixtures.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        toks = {}
        for name in sorted(os.listdir(SHARED)):
            if not os.path.isfile(os.path.join(SHARED, name, "tokenizer_config.json")):
                continue
            tok = prepare(name, tmp)
            toks[name] = tok
            if tok.chat_template is None:
                print(f"{name}: no chat_template, skipped")
                continue
            write(f"{name}.json", {**header, "tokenizer": name, "special_tokens": tok.special_tokens_map,
                                   "cases": render_cases(tok)})
        gpt_oss_fixture(toks["gptoss"], header)
        tok = toks["llama3"]
        tdir = os.path.join(OUT, "templates")
        for fname in sorted(os.listdir(tdir)):
            if not fname.endswith(".jinja"):
                continue
            with open(os.path.join(tdir, fname), encoding="utf-8") as f:
                source = f.read()
            cases = render_cases(tok, chat_template=source, extra_kwargs={"extra_value": {"k": [1, 2.5, None]}})
            write(fname.replace(".jinja", ".json"),
                  {**header, "template": f"templates/{fname}", "special_tokens": tok.special_tokens_map,
                   "cases": cases})


if __name__ == "__main__":
    sys.exit(main())
