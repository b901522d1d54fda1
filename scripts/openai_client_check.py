#!/usr/bin/env python3
"""Talks to a running `moeflux serve` with the official `openai` client and
checks what it gets back: models, chat, completion, streaming, logprobs,
stop, usage, and the errors the client raises for refused requests.

    python3 -m venv venv && venv/bin/pip install -r scripts/requirements-openai.txt
    moeflux serve MODEL --port 8080 &
    venv/bin/python scripts/openai_client_check.py --base-url http://127.0.0.1:8080/v1

Exits 0 when every check passed; prints one line per check."""
import argparse
import sys

import openai

failures = 0


def check(name, cond, detail=""):
    global failures
    print(f"{'ok  ' if cond else 'FAIL'} {name}{': ' + str(detail) if detail and not cond else ''}")
    if not cond:
        failures += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="unused", max_retries=0)

    models = client.models.list()
    model = models.data[0].id
    check("models.list names the model", bool(model))

    msgs = [{"role": "user", "content": "Hello there"}]
    chat = client.chat.completions.create(model=model, messages=msgs, max_tokens=8, seed=1)
    check("chat: one choice with assistant text", chat.choices[0].message.role == "assistant"
          and isinstance(chat.choices[0].message.content, str))
    check("chat: usage adds up", chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
          and 1 <= chat.usage.completion_tokens <= 8, chat.usage)
    again = client.chat.completions.create(model=model, messages=msgs, max_tokens=8, seed=1)
    check("chat: same seed, same text", again.choices[0].message.content == chat.choices[0].message.content)

    comp = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0, logprobs=2)
    check("completion: text and finish reason", isinstance(comp.choices[0].text, str)
          and comp.choices[0].finish_reason in ("stop", "length"))
    lp = comp.choices[0].logprobs
    check("completion: logprobs per token", lp is not None and len(lp.token_logprobs) == len(lp.tokens) > 0
          and all(len(t) <= 2 for t in lp.top_logprobs))

    stream = client.chat.completions.create(model=model, messages=msgs, max_tokens=8, seed=1, stream=True,
                                            stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    check("stream: same text as unstreamed", text == chat.choices[0].message.content, (text, chat.choices[0].message.content))
    check("stream: finish reason and usage", finish in ("stop", "length") and usage is not None
          and usage.completion_tokens == chat.usage.completion_tokens)

    lpc = client.chat.completions.create(model=model, messages=msgs, max_tokens=4, temperature=0, logprobs=True,
                                         top_logprobs=3)
    content = lpc.choices[0].logprobs.content
    check("chat logprobs: greedy token ranked first", len(content) > 0 and all(
        len(t.top_logprobs) == 3 and abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6 for t in content))

    full = client.completions.create(model=model, prompt="The story", max_tokens=30, temperature=0).choices[0].text
    if len(full) >= 4:
        stop = full[len(full) // 2]
        cut = client.completions.create(model=model, prompt="The story", max_tokens=30, temperature=0, stop=[stop])
        check("stop string ends the text before it", cut.choices[0].text == full[:full.find(stop)]
              and cut.choices[0].finish_reason == "stop", (cut.choices[0].text, full, stop))

    for name, kwargs, param in [
        ("n=2 refused", dict(n=2), "n"),
        ("temperature out of range refused", dict(temperature=5), "temperature"),
        ("tool_choice required refused", dict(tool_choice="required"), "tool_choice"),
    ]:
        try:
            client.chat.completions.create(model=model, messages=msgs, max_tokens=2, **kwargs)
            check(name, False, "no error")
        except openai.BadRequestError as e:
            check(name, e.status_code == 400 and e.body.get("param") == param, e.body)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
              "additionalProperties": False}
    js = client.chat.completions.create(model=model, messages=msgs, max_tokens=300, seed=3, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    if js.choices[0].finish_reason == "stop":
        import json
        doc = json.loads(js.choices[0].message.content)
        check("json_schema: the answer parses and validates", isinstance(doc, dict) and isinstance(doc.get("a"), int)
              and set(doc) == {"a"}, js.choices[0].message.content)
    else:
        check("json_schema: answered within max_tokens", False, js.choices[0].finish_reason)
    try:
        client.chat.completions.create(model="not-this-model", messages=msgs, max_tokens=2)
        check("unknown model refused", False, "no error")
    except openai.NotFoundError as e:
        check("unknown model refused", e.status_code == 404)
    after = client.chat.completions.create(model=model, messages=msgs, max_tokens=2)
    check("still serving after refused requests", len(after.choices) == 1)

    print(f"{failures} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
