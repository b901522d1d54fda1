// llama.cpp's logits for a token-id sequence, for the cross-check of
// scripts/crosscheck_llamacpp_layouts.py: one batch (every position's
// logits), f32 rows written raw to OUT. Build against libllama:
//   c++ -O2 -std=c++17 llamacpp_logits.cpp -I$LLAMA/include -I$LLAMA/ggml/include \
//       -L$BUILD/bin -lllama -lggml -lggml-base -Wl,-rpath,$BUILD/bin -o llamacpp_logits
// Usage: llamacpp_logits MODEL.gguf OUT.f32 TOKEN...
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf OUT.f32 TOKEN...\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    std::fprintf(stderr, "llama.cpp refused to load %s\n", argv[1]);
    return 3;
  }
  std::vector<llama_token> tokens;
  for (int i = 3; i < argc; ++i) tokens.push_back(llama_token(std::atoi(argv[i])));
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 256;
  cp.n_batch = 256;
  cp.n_ubatch = 256;
  cp.n_threads = 2;
  cp.n_threads_batch = 2;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    std::fprintf(stderr, "llama.cpp could not make a context\n");
    return 4;
  }
  llama_batch b = llama_batch_init(int32_t(tokens.size()), 0, 1);
  for (size_t i = 0; i < tokens.size(); ++i) {
    b.token[i] = tokens[i];
    b.pos[i] = llama_pos(i);
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = int32_t(tokens.size());
  if (int rc = llama_decode(ctx, b); rc != 0) {
    std::fprintf(stderr, "llama_decode failed: %d\n", rc);
    return 5;
  }
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  std::FILE* f = std::fopen(argv[2], "wb");
  for (size_t i = 0; i < tokens.size(); ++i) std::fwrite(llama_get_logits_ith(ctx, int32_t(i)), 4, size_t(n_vocab), f);
  std::fclose(f);
  llama_batch_free(b);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
