// Untrusted chat templates (they come with a downloaded model) against the
// interpreter's limits (text/chat/jinja_limits.h). Each template below once
// crashed (stack overflow, SIGFPE), hung, exhausted memory or wrapped an
// integer silently; each must now fail with a moeflux::Error that names the
// limit and the template position. The deep ones also run on a thread (a
// std::thread's 8 MiB stack) and on a thread with a 512 KiB stack, where the
// stack guard must stop them before the stack does.
#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "moeflux/error.h"
#include "text/chat/chat_template.h"
#include "text/chat/jinja_template.h"

namespace moeflux::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(const std::string& tmpl, const Limits& limits = {}) {
  return Template::parse(tmpl, "t", {}, limits).render(ojson::object());
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Runs `fn` and returns the message of the moeflux::Error it throws ("" if
// it returns; any other exception is reported as a failure).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a moeflux::Error: " << e.what();
    return e.what();
  }
  return "";
}

void expect_error(const std::string& msg, std::initializer_list<const char*> needles) {
  EXPECT_FALSE(msg.empty()) << "expected an error";
  for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

// `fn` on a std::thread and on a pthread with a 512 KiB stack.
std::string error_on_thread(const std::function<void()>& fn, size_t stack_bytes = 0) {
  std::string msg;
  if (stack_bytes == 0) {
    std::thread t([&] { msg = error_of(fn); });
    t.join();
    return msg;
  }
  struct Job {
    const std::function<void()>* fn;
    std::string* msg;
  } job{&fn, &msg};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t th;
  int rc = pthread_create(
      &th, &attr,
      [](void* p) -> void* {
        auto* j = static_cast<Job*>(p);
        *j->msg = error_of(*j->fn);
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attr);
  EXPECT_EQ(rc, 0);
  if (rc == 0) pthread_join(th, nullptr);
  return msg;
}

// Every deep template is checked in three places: this thread, a
// std::thread, and a thread with a small stack.
void expect_deep_error(const std::string& tmpl, std::initializer_list<const char*> needles) {
  auto fn = [&] { render(tmpl); };
  SCOPED_TRACE(tmpl.substr(0, 60));
  expect_error(error_of(fn), needles);
  expect_error(error_on_thread(fn), needles);
  expect_error(error_on_thread(fn, 512 << 10), {"t:1:"});
}

constexpr const char* kRecursion = "maximum recursion depth exceeded";

TEST(JinjaLimits, RecursiveMacroStopsAtTheCallDepth) {
  expect_deep_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", {kRecursion, "t:1:20"});
  // ~7,400 levels once overflowed the stack; Python stops at 1,000 frames.
  expect_deep_error("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(7400) }}",
                    {kRecursion, "t:1:"});
  // The counted limit names itself where the stack is large enough.
  expect_error(error_of([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }),
               {"more than 500 nested macro calls (max_call_depth)"});
  // Real recursion stays allowed.
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ f(200) | length }}"),
            std::to_string(10 + 90 * 2 + 101 * 3));
}

TEST(JinjaLimits, DeepNestingFailsAtParse) {
  const char* nest = "nested too deeply";
  expect_deep_error("{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}", {nest, "max_nesting", "t:1:"});
  expect_deep_error("{{ 1" + repeat(" + 1", 20000) + " }}", {nest, "t:1:"});
  expect_deep_error(repeat("{% if true %}", 5600) + "x" + repeat("{% endif %}", 5600), {nest, "t:1:"});
  expect_deep_error("{{ " + repeat("[", 5000) + repeat("]", 5000) + " }}", {nest});
  expect_deep_error("{{ " + repeat("not ", 5000) + "x }}", {nest});
  expect_deep_error("{{ " + repeat("-", 5000) + "1 }}", {nest});
  expect_deep_error("{{ x" + repeat(".a", 20000) + " }}", {nest});
  expect_deep_error("{{ x" + repeat(" | string", 20000) + " }}", {nest});
  expect_deep_error("{{ 1" + repeat(" if 1", 20000) + " }}", {nest});
  // Nesting real templates use is far below the limit.
  EXPECT_EQ(render(repeat("{% if true %}", 40) + "x" + repeat("{% endif %}", 40)), "x");
  EXPECT_EQ(render("{{ " + repeat("(", 30) + "1" + repeat(")", 30) + repeat(" + 1", 60) + " }}"), "61");
}

TEST(JinjaLimits, DeepValuesFailWhenPrintedAndAreFreedWithoutRecursion) {
  const std::string build =
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
  expect_deep_error(build + "{{ ns.x | tojson }}", {kRecursion, "max_value_depth", "t:1:"});
  expect_deep_error(build + "{{ ns.x }}", {kRecursion, "max_value_depth"});
  expect_deep_error(build + "{{ ns.x == ns.x }}", {kRecursion, "max_value_depth"});
  // Building and dropping 100,000 levels is fine: destruction is iterative.
  EXPECT_EQ(render(build + "ok"), "ok");
  std::string on_thread = error_on_thread([&] { EXPECT_EQ(render(build + "ok"), "ok"); }, 512 << 10);
  EXPECT_EQ(on_thread, "");
}

TEST(JinjaLimits, NamespaceCyclesPrintAsPythonDoes) {
  // Python's repr marks a container already being printed; json.dumps of a
  // namespace fails in Python too.
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}"),
            "<Namespace {'a': 1, 'me': <Namespace {...}>}>");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.l = [ns, 2] %}{{ ns }}"),
            "<Namespace {'l': [<Namespace {...}>, 2]}>");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.d = {'k': ns} %}{{ ns.d }}"),
            "{'k': <Namespace {'d': {...}}>}");
  expect_error(error_of([] { render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}"); }),
               {"t:1:55", "not JSON serializable"});
  expect_error(error_of([] { render("{% set ns = namespace() %}{% set ns.l = [ns] %}{{ ns.l | tojson }}"); }),
               {"not JSON serializable"});
}

TEST(JinjaLimits, IntegerOverflowIsAnErrorNotAWrapOrATrap) {
  const char* ovf = "integer overflow";
  expect_error(error_of([] { render("{{ (-9223372036854775807-1) // -1 }}"); }), {ovf, "t:1:29"});
  EXPECT_EQ(render("{{ (-9223372036854775807-1) % -1 }}"), "0");  // Python's answer; once SIGFPE
  expect_error(error_of([] { render("{{ 9223372036854775807 + 1 }}"); }), {ovf, "t:1:24"});
  expect_error(error_of([] { render("{{ -9223372036854775807 - 2 }}"); }), {ovf});
  expect_error(error_of([] { render("{{ 4294967296 * 4294967296 }}"); }), {ovf});
  expect_error(error_of([] { render("{{ 10 ** 100 }}"); }), {ovf, "t:1:7"});
  expect_error(error_of([] { render("{{ -(-9223372036854775807-1) }}"); }), {ovf, "t:1:4"});
  expect_error(error_of([] { render("{{ [-9223372036854775807-1] | sum(start=-1) }}"); }), {ovf});
  expect_error(error_of([] { render("{{ (-9223372036854775807-1) | abs }}"); }), {ovf});
  expect_error(error_of([] { render("{{ 1e300 | int }}"); }), {"out of the 64-bit range"});
  // A huge exponent fails at once instead of looping 10^15 times.
  auto t0 = std::chrono::steady_clock::now();
  expect_error(error_of([] { render("{{ 2 ** 1000000000000000 }}"); }), {ovf});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(render("{{ 0 ** 1000000000000000 }} {{ 1 ** 1000000000000000 }} {{ (-1) ** 1000000000000001 }}"),
            "0 1 -1");
  EXPECT_EQ(render("{{ 9223372036854775807 }} {{ -9223372036854775807 - 1 }} {{ 3 ** 39 }} {{ -7 // 2 }} {{ -7 % 2 }}"),
            "9223372036854775807 -9223372036854775808 4052555153018976267 -4 1");
  EXPECT_EQ(render("{{ range(9223372036854775800, 9223372036854775807, 3) | list }}"),
            "[9223372036854775800, 9223372036854775803, 9223372036854775806]");
  EXPECT_EQ(render("{{ 'abcdef'[1::9223372036854775807] }}{{ 'abcdef'[::-9223372036854775807-1] }}"), "bf");
}

TEST(JinjaLimits, IntegerLiteralOverflowNamesThePosition) {
  expect_error(error_of([] { Template::parse("ok\n{{ 99999999999999999999 }}", "t"); }),
               {"t:2:4", "integer literal 99999999999999999999 is out of the 64-bit range"});
  expect_error(error_of([] { render("{{ x.99999999999999999999 }}"); }), {"t:1:"});
  expect_error(error_of([] { render("{{ '{99999999999999999999}'.format(1) }}"); }), {"t:1:", "out of range"});
  EXPECT_EQ(render("{{ 1e999 }} {{ 1e-999 }}"), "inf 0.0");  // Python's floats
}

TEST(JinjaLimits, DivisionByZeroNamesThePosition) {
  expect_error(error_of([] { render("{{ 1 // 0 }}"); }), {"t:1:6", "integer division or modulo by zero"});
  expect_error(error_of([] { render("{{ 1 % 0 }}"); }), {"t:1:6", "by zero"});
  expect_error(error_of([] { render("{{ 1 / 0 }}"); }), {"t:1:6", "division by zero"});
  expect_error(error_of([] { render("{{ 1.5 // 0 }}"); }), {"t:1:8", "float division by zero"});
  expect_error(error_of([] { render("{{ 1 % 0.0 }}"); }), {"t:1:6", "by zero"});
}

TEST(JinjaLimits, RunawayLoopsStopAtTheStepBudget) {
  const char* steps = "template ran too long";
  auto t0 = std::chrono::steady_clock::now();
  expect_error(error_of([] { render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"); }),
               {steps, "max_steps", "t:1:"});
  // Exponential fan-out: 2^60 calls.
  expect_error(error_of([] {
                 render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}");
               }),
               {steps, "t:1:"});
  std::cout << "[ limits   ] two step-budget runs took "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  // Lowered, the budget names itself and stops at once.
  Limits small;
  small.max_steps = 1000;
  expect_error(error_of([&] { render("{% for i in range(2000) %}{% endfor %}", small); }), {"more than 1000 steps"});
  EXPECT_EQ(render("{% for i in range(20) %}{% endfor %}ok", small), "ok");
}

TEST(JinjaLimits, HugeValuesFailBeforeTheyAreAllocated) {
  expect_error(error_of([] { render("{{ 'a' * 10**10 }}"); }), {"string too long", "max_string_bytes", "t:1:8"});
  expect_error(error_of([] { render("{{ [1] * 10**9 }}"); }), {"list too long", "max_items", "t:1:8"});
  expect_error(error_of([] { render("{{ 10**9 * 'ab' }}"); }), {"string too long"});
  // String doubling in a loop.
  expect_error(error_of([] {
                 render("{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
               }),
               {"string too long", "t:1:"});
  expect_error(error_of([] {
                 render("{% set ns = namespace(s=[1]) %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
               }),
               {"list too long", "t:1:"});
  expect_error(error_of([] { render("{{ ('a' * 1000000) | replace('', 'b' * 1000) }}"); }), {"string too long"});
  expect_error(error_of([] { render("{{ 'x' | indent(10**12) }}"); }), {"string too long"});
  expect_error(error_of([] { render("{{ [1] | tojson(indent=10**12) }}"); }), {"string too long"});
  expect_error(error_of([] { render("{{ [1] | batch(10**12, 0) }}"); }), {"list too long"});
  expect_error(error_of([] { render("{{ ('ab' * 3000000) | list | length }}"); }), {"list too long"});
  expect_error(error_of([] { render("{{ 'x' | round(10**12) }}"); }), {"round"});
  EXPECT_EQ(render("{{ 1.25 | round(10**12) }}"), "1.25");
}

TEST(JinjaLimits, OutputSizeIsBounded) {
  Limits small;
  small.max_output_bytes = 1000;
  expect_error(error_of([&] { render("{% for i in range(2000) %}x{% endfor %}", small); }),
               {"output too long", "max_output_bytes", "t:1:"});
  expect_error(error_of([&] { render("{{ 'x' * 2000 }}", small); }), {"output too long"});
  EXPECT_EQ(render("{{ 'x' * 1000 }}", small).size(), 1000u);
}

TEST(JinjaLimits, WorstCaseSearchesStayLinear) {
  // std::string::find is O(n*m) on these; the interpreter's search is not.
  const std::string t =
      "{% set h = 'a' * 2000000 %}{% set n = 'a' * 100000 ~ 'b' %}"
      "{{ n in h }} {{ h.find(n) }} {{ h.rfind(n) }} {{ h.count(n) }} {{ h.split(n) | length }} "
      "{{ h.rsplit(n, 1) | length }} {{ h.replace(n, '') | length }}";
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(render(t), "False -1 -1 0 1 1 2000000");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(render("{{ 'a,b,,c'.rsplit(',', 2) }} {{ 'abcabc'.rfind('bc') }} {{ 'abc'.rfind('') }}"),
            "['a,b', '', 'c'] 4 3");
}

TEST(JinjaLimits, ChatTemplateTakesLimits) {
  Limits small;
  small.max_call_depth = 10;
  auto t = ChatTemplate::parse("{% macro f(n) %}{{ f(n + 1) if n < 20 }}{% endmacro %}{{ f(0) }}", "c", small);
  ojson msgs = ojson::array({{{"role", "user"}, {"content", "hi"}}});
  expect_error(error_of([&] { t.render(msgs); }), {"c:1:", "more than 10 nested macro calls"});
}

}  // namespace
}  // namespace moeflux::jinja
