#include "server/chat_page.h"

namespace moeflux::server {

const char* chat_page_html() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moeflux chat</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 14px; background: #223; color: #eef; display: flex; gap: 12px; align-items: center; }
  header input { width: 5em; }
  #log { flex: 1; overflow-y: auto; padding: 14px; }
  .msg { white-space: pre-wrap; margin: 0 0 12px; padding: 8px 10px; border-radius: 6px; max-width: 80ch; }
  .user { background: #e8eefc; margin-left: auto; }
  .assistant { background: #f3f3f3; }
  .error { background: #fde8e8; }
  .stats { font-size: 12px; color: #667; margin: -8px 0 12px; }
  form { display: flex; gap: 8px; padding: 10px 14px; border-top: 1px solid #ccd; }
  textarea { flex: 1; font: inherit; min-height: 2.6em; }
</style>
</head>
<body>
<header><b>moeflux</b><span id="model"></span>
  <label>system <input id="system" style="width: 24em" placeholder="system message (optional)"></label>
  <label>temperature <input id="temp" type="number" value="0.7" min="0" max="2" step="0.1"></label>
  <label>max tokens <input id="max" type="number" value="512" min="1"></label>
  <button id="clear" type="button">new chat</button>
</header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<script>
const log = document.getElementById('log'), input = document.getElementById('input');
const send = document.getElementById('send'), stop = document.getElementById('stop');
let messages = [], controller = null;
fetch('/v1/models').then(r => r.json()).then(j => { document.getElementById('model').textContent = j.data[0].id; });
function add(cls, text) {
  const d = document.createElement('div');
  d.className = 'msg ' + cls;
  d.textContent = text;
  log.appendChild(d);
  log.scrollTop = log.scrollHeight;
  return d;
}
// A new chat ends the answer in progress; that answer's ending then goes
// to the conversation it belonged to, not to the new one.
document.getElementById('clear').onclick = () => { if (controller) controller.abort(); messages = []; log.textContent = ''; };
stop.onclick = () => { if (controller) controller.abort(); };
input.addEventListener('keydown', e => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); document.getElementById('form').requestSubmit(); }
});
document.getElementById('form').onsubmit = async e => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = '';
  add('user', text);
  const conversation = messages;
  conversation.push({role: 'user', content: text});
  const sys = document.getElementById('system').value.trim();
  const body = {
    messages: sys ? [{role: 'system', content: sys}, ...conversation] : conversation,
    stream: true, stream_options: {include_usage: true},
    temperature: parseFloat(document.getElementById('temp').value),
    max_tokens: parseInt(document.getElementById('max').value, 10),
  };
  const out = add('assistant', '');
  controller = new AbortController();
  send.disabled = true; stop.disabled = false;
  const t0 = performance.now();
  let first = 0, usage = null, answer = '', finish = '';
  try {
    const res = await fetch('/v1/chat/completions', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                     body: JSON.stringify(body), signal: controller.signal});
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, at); buf = buf.slice(at + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const j = JSON.parse(line.slice(6));
        if (j.error) throw new Error(j.error.message);
        if (j.usage) usage = j.usage;
        for (const c of j.choices) {
          if (c.delta && c.delta.content) { if (!first) first = performance.now(); answer += c.delta.content; out.textContent = answer; }
          if (c.finish_reason) finish = c.finish_reason;
        }
        log.scrollTop = log.scrollHeight;
      }
    }
    const s = (performance.now() - (first || t0)) / 1000;
    const stats = document.createElement('div');
    stats.className = 'stats';
    stats.textContent = usage ? `${usage.prompt_tokens} prompt tokens (${usage.prompt_tokens_details.cached_tokens} cached), ` +
      `${usage.completion_tokens} tokens, first after ${((first || t0) - t0).toFixed(0)} ms, ` +
      `${s > 0 ? (Math.max(usage.completion_tokens - 1, 0) / s).toFixed(1) : '-'} tok/s, ${finish}` : '';
    if (out.isConnected) log.appendChild(stats);
  } catch (err) {
    if (err.name === 'AbortError') { out.textContent = answer + ' [stopped]'; }
    else { out.className = 'msg error'; out.textContent = (answer ? answer + '\n' : '') + 'error: ' + err.message; }
  }
  conversation.push({role: 'assistant', content: answer});
  controller = null;
  send.disabled = false; stop.disabled = true;
  input.focus();
};
</script>
</body>
</html>
)html";
}

}  // namespace moeflux::server
