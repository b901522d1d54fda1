// Training text for the demo tokenizer: written for moeflux (no third-party
// text), a mix of plain English, chat turns and code so that the learned
// merges look like a real tokenizer's (" the", "ing", "    ", "()").
#include "text/tokenizer/demo_tokenizer.h"

namespace moeflux {

const char* demo_corpus() {
  return R"CORPUS(The engine reads the model once, keeps the dense weights in memory, and streams the experts that each token needs.
A mixture of experts routes every token to a few experts out of many. Most of the weights sit idle most of the time,
so the engine can leave them on disk and fetch them when the router asks for them. That is the whole idea.
When you run a model for the first time, the engine prints a plan: how much memory each tier gets, how many experts
fit in the cache, and how fast the disk must be to keep up. If the plan does not fit, it says so before it starts.

This is a demo tokenizer. It was trained on a few kilobytes of text that ships with the source code,
so the words it knows are the words in this file: the, and, of, to, in, is, that, it, for, with, as, on, this,
model, token, tokens, expert, experts, memory, weights, layer, layers, cache, disk, read, write, time, first, last.
The weights of a synthetic model are random, so the text it writes is random too. Do not expect it to make sense.

User: What is the capital of the country where the river meets the sea?
Assistant: I do not know which river you mean. Could you tell me its name, or the country you are thinking of?
User: Can you write a short poem about the morning?
Assistant: The morning opens slowly, light on the water, a kettle singing in the kitchen, and the day begins again.
User: How many tokens per second does it run at?
Assistant: It depends on the disk, the cache and the model. The benchmark prints the number and the floor next to it.

Numbers and dates: 1, 2, 3, 10, 42, 100, 256, 1024, 4096, 65536, 3.14, 2.718, 0.5, -1, 1e-6, 2026-05-01, 12:30.
Punctuation: "quoted text", 'single quotes', (parentheses), [brackets], {braces}, a - b, a -- b, a/b, a\b, 50%, #1, @user.

def generate(model, prompt, max_tokens=64, temperature=0.8):
    tokens = model.tokenizer.encode(prompt)
    for _ in range(max_tokens):
        logits = model.forward(tokens)
        next_token = sample(logits, temperature=temperature)
        if next_token == model.tokenizer.eos_id:
            break
        tokens.append(next_token)
    return model.tokenizer.decode(tokens)

class Cache:
    def __init__(self, capacity):
        self.capacity = capacity
        self.entries = {}

    def get(self, key):
        return self.entries.get(key)

#include <cstdint>
#include <string>
#include <vector>

struct Expert {
  int layer = 0;
  int index = 0;
  std::vector<float> weights;
};

int main(int argc, char** argv) {
  std::vector<Expert> experts(64);
  for (int i = 0; i < static_cast<int>(experts.size()); ++i) {
    experts[i].index = i;
    experts[i].weights.resize(4096, 0.0f);
  }
  if (argc > 1) {
    std::string name = argv[1];
    return name.empty() ? 1 : 0;
  }
  return 0;
}

{"role": "user", "content": "Hello, how are you?"}
{"role": "assistant", "content": "I am fine, thank you. How can I help you today?"}
{"model": "demo", "layers": 4, "experts": 8, "top_k": 2, "hidden_size": 256, "vocab_size": 2048}

for f in models/*; do echo "$f"; ls -l "$f" | head -n 3; done
git commit -m "Add the demo model" && git push origin main

Other scripts appear too, so that their bytes are merged a little: café, naïve, résumé, über, 東京, 日本語, 中文, 한국어, Привет, مرحبا, γειά σου, 🙂.
The end of the text is near. The engine stops when it reads the end token, and the chat waits for the next question.
)CORPUS";
}

}  // namespace moeflux
