#!/usr/bin/env python3
"""The chat page served at / (issue 16), driven in headless Chromium.

Starts `moeflux serve` on the demo model (made by `moeflux demo --dir`),
loads the page and checks, as a user would see it: a message sent shows
its answer growing token by token, the answer ends with its speed line,
a second message keeps both turns on screen (and the history reaches the
model), and Stop ends a long answer: the text stops growing and the
server counts a cancelled request. Run by scripts/chat_page_test.sh
(CTest `chat_page_test`), which skips where Chromium or selenium is absent.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# Records every value the page gives an answer: the page replaces the
# bubble's text at each streamed piece, so each value is a new text node
# whose data stays as it was set.
OBSERVER_JS = """
window.__answers = [];
new MutationObserver(records => {
  for (const r of records)
    if (r.target.classList && r.target.classList.contains('assistant'))
      for (const n of r.addedNodes) if (n.nodeType === 3) window.__answers.push(n.data);
}).observe(document.getElementById('log'), {childList: true, subtree: true});
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    if not m:
        raise AssertionError("no %s in /metrics" % name)
    return float(m.group(1))


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def set_field(driver, element_id, value):
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(str(value))


def send_message(driver, text, enter=False):
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    if enter:
        box.send_keys(Keys.ENTER)  # the page sends on Enter (Shift+Enter: a new line)
    else:
        driver.find_element(By.ID, "send").click()


def answers(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")


def answer_text(driver, i):
    # The text as the page set it (WebDriver's .text is the rendered text,
    # whitespace trimmed and normalized, which noise from a random model
    # has plenty of).
    return answers(driver)[i].get_property("textContent")


def wait_idle(driver, seconds):
    # The page enables Send again once an answer has ended.
    WebDriverWait(driver, seconds).until(lambda d: d.find_element(By.ID, "send").is_enabled())


def check_growth(seen, final, what):
    check(len(seen) >= 3, "%s: the answer appeared in %d steps (at least 3)" % (what, len(seen)))
    for a, b in zip(seen, seen[1:]):
        if not (len(b) > len(a) and b.startswith(a)):
            raise AssertionError("%s: the answer did not grow by appending: %r then %r" % (what, a, b))
    check(final.startswith(seen[-1]), "%s: each value extends the last, ending in the shown text" % what)


def run(args, work):
    moeflux = os.path.abspath(args.moeflux)
    model = os.path.join(work, "model")
    demo = subprocess.run([moeflux, "demo", "--dir", model], capture_output=True, text=True)
    if demo.returncode != 0:
        raise AssertionError("moeflux demo failed:\n" + demo.stdout + demo.stderr)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    log = open(os.path.join(work, "serve.log"), "w")
    server = subprocess.Popen([moeflux, "serve", model, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    driver = None
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError("the server exited:\n" + open(log.name).read())
                time.sleep(0.2)
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1200,900"):
            opts.add_argument(a)
        opts.binary_location = shutil.which("chromium")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        driver.set_script_timeout(30)
        driver.get(base + "/")
        check(driver.title == "moeflux chat", "the page loads (title %r)" % driver.title)
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "model").text != "")
        check(driver.find_element(By.ID, "model").text != "", "the model's name is shown")
        driver.execute_script(OBSERVER_JS)
        # Short answers. A random model writes noise, many of whose tokens
        # are pieces of a character held back until it is whole: greedy
        # decoding can stay on those, sampling gives text in more steps.
        set_field(driver, "temp", 1)
        set_field(driver, "max", 48)

        # 1. The first message: streamed, then its speed line.
        send_message(driver, "Tell me about experts.")
        WebDriverWait(driver, 5).until(lambda d: not d.find_element(By.ID, "send").is_enabled())
        check(driver.find_element(By.ID, "stop").is_enabled(), "Stop is enabled while an answer streams")
        wait_idle(driver, 60)
        first = answer_text(driver, 0)
        check_growth(driver.execute_script("return window.__answers"), first, "first answer")
        stats = driver.find_elements(By.CSS_SELECTOR, "#log .stats")
        check(len(stats) == 1, "one speed line after the first answer")
        m = re.fullmatch(r"(\d+) prompt tokens \((\d+) cached\), (\d+) tokens, first after (\d+) ms, ([\d.]+) tok/s, (\w+)",
                         stats[0].text)
        check(m is not None, "the speed line reads as expected: %r" % stats[0].text)
        prompt1, completion1 = int(m.group(1)), int(m.group(3))
        check(1 <= completion1 <= 48 and float(m.group(5)) > 0, "tokens (%d) and tok/s (%s) are sane" % (completion1, m.group(5)))
        check(m.group(6) in ("length", "stop"), "the finish reason is shown (%s)" % m.group(6))

        # 2. A second message: both turns on screen, the history sent.
        driver.execute_script("window.__answers = [];")
        send_message(driver, "And the router?", enter=True)
        wait_idle(driver, 60)
        users = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#log .msg.user")]
        check(users == ["Tell me about experts.", "And the router?"], "both user turns are shown: %r" % users)
        check(len(answers(driver)) == 2 and answer_text(driver, 0) == first, "both answers are shown, the first unchanged")
        check_growth(driver.execute_script("return window.__answers"), answer_text(driver, 1), "second answer")
        stats = driver.find_elements(By.CSS_SELECTOR, "#log .stats")
        check(len(stats) == 2, "a speed line per answer")
        prompt2 = int(re.match(r"(\d+) prompt tokens", stats[1].text).group(1))
        # Alone, "And the router?" would make a prompt no longer than the
        # first; with the history it holds the first question, the first
        # answer and the template's markers of two more turns.
        check(prompt2 >= prompt1 + 8, "the second prompt (%d tokens) holds the first turn (first prompt %d)" %
              (prompt2, prompt1))

        # 3. A long answer, stopped.
        cancelled = metric(base, "moeflux_requests_cancelled_total")
        set_field(driver, "max", 2000)
        send_message(driver, "Now a long story, please.")
        WebDriverWait(driver, 30).until(lambda d: len(answers(d)) == 3 and len(answers(d)[2].get_property("textContent")) >= 8)
        driver.find_element(By.ID, "stop").click()
        wait_idle(driver, 10)
        stopped = answer_text(driver, 2)
        check(stopped.endswith("[stopped]"), "the stopped answer says so: %r" % stopped[-40:])
        time.sleep(1.5)
        check(answer_text(driver, 2) == stopped, "the answer stops growing after Stop")
        deadline = time.time() + 10
        while metric(base, "moeflux_requests_cancelled_total") <= cancelled and time.time() < deadline:
            time.sleep(0.2)
        now = metric(base, "moeflux_requests_cancelled_total")
        check(now == cancelled + 1, "the server counted the cancelled request (%g -> %g)" % (cancelled, now))
        check(server.poll() is None, "the server is still running")
        # The page still works after a stop.
        set_field(driver, "max", 4)
        send_message(driver, "Short one.")
        wait_idle(driver, 30)
        check(len(answers(driver)) == 4 and len(driver.find_elements(By.CSS_SELECTOR, "#log .stats")) == 3,
              "a message after Stop gets its answer and speed line")
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#log .msg.error")]
        check(errors == [], "no error shown")

        # 4. "new chat" during an answer: the answer ends, and the new
        # conversation starts empty (the first question again makes the
        # same prompt as at first).
        cancelled = metric(base, "moeflux_requests_cancelled_total")
        set_field(driver, "max", 2000)
        send_message(driver, "Another long story.")
        WebDriverWait(driver, 30).until(lambda d: len(answers(d)) == 5 and len(answers(d)[4].get_property("textContent")) >= 4)
        driver.find_element(By.ID, "clear").click()
        wait_idle(driver, 10)
        check(driver.find_elements(By.CSS_SELECTOR, "#log > *") == [], "new chat empties the conversation")
        deadline = time.time() + 10
        while metric(base, "moeflux_requests_cancelled_total") <= cancelled and time.time() < deadline:
            time.sleep(0.2)
        check(metric(base, "moeflux_requests_cancelled_total") == cancelled + 1, "new chat cancelled the answer")
        time.sleep(0.5)
        check(driver.find_elements(By.CSS_SELECTOR, "#log > *") == [], "nothing of the old answer comes back")
        set_field(driver, "max", 4)
        send_message(driver, "Tell me about experts.")
        wait_idle(driver, 30)
        stats = driver.find_elements(By.CSS_SELECTOR, "#log .stats")
        check(len(stats) == 1 and len(answers(driver)) == 1, "the new chat holds one turn")
        prompt = int(re.match(r"(\d+) prompt tokens", stats[0].text).group(1))
        check(prompt == prompt1, "its prompt is a fresh conversation's (%d tokens, first was %d)" % (prompt, prompt1))
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moeflux", required=True, help="the moeflux binary")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="moeflux-chat-page-")
    t0 = time.time()
    try:
        run(args, work)
    except Exception as e:  # a failed check, or a wait that timed out
        print("FAILED: %s: %s" % (type(e).__name__, e))
        serve_log = os.path.join(work, "serve.log")
        if os.path.exists(serve_log):
            print(open(serve_log).read()[-4000:])
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("chat page test passed in %.1f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
