/* The C API, compiled as C. Usage: test_capi_c MODEL_DIR TEMP_DIR OTHER_MODEL
 * MODEL_DIR has a tokenizer (a synthetic model), OTHER_MODEL is another
 * model (for the foreign-file refusal). Exits non-zero on the first failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moeflux.h"

static int failures = 0;
#define CHECK(cond)                                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              moeflux_last_error());                                                        \
      ++failures;                                                                           \
    }                                                                                       \
  } while (0)

static int argmax(const float* v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return (int)best;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL_DIR TEMP_DIR OTHER_MODEL\n", argv[0]);
    return 2;
  }
  char path[4096], bad_path[4096], other_path[4096];
  snprintf(path, sizeof path, "%s/capi.session", argv[2]);
  snprintf(bad_path, sizeof bad_path, "%s/corrupt.session", argv[2]);
  snprintf(other_path, sizeof other_path, "%s/other.session", argv[2]);

  moeflux_options opts;
  moeflux_options_init(&opts);
  opts.threads = 2;
  moeflux_model* model = NULL;
  CHECK(moeflux_model_open("/nonexistent/model", &opts, &model) != MOEFLUX_OK);
  CHECK(model == NULL);
  CHECK(strlen(moeflux_last_error()) > 0);
  /* A device that does not exist is refused, naming it. */
  opts.device = "tpu";
  CHECK(moeflux_model_open(argv[1], &opts, &model) == MOEFLUX_ERR_BAD_INPUT);
  CHECK(model == NULL);
  CHECK(strstr(moeflux_last_error(), "tpu") != NULL);
  opts.device = "cpu";
  CHECK(moeflux_model_open(argv[1], &opts, &model) == MOEFLUX_OK);
  if (!model) return 1;
  const int32_t vocab = moeflux_model_vocab(model);
  CHECK(vocab > 0);
  CHECK(moeflux_model_context(model) > 0);

  /* Tokenize: ask for the size, then fill. */
  const char* text = "Hello world, hello moeflux";
  size_t n = 0;
  CHECK(moeflux_tokenize(model, text, strlen(text), 0, NULL, 0, &n) == MOEFLUX_ERR_CAPACITY);
  CHECK(n > 0);
  int32_t* ids = malloc(n * sizeof *ids);
  size_t n_ids = 0;
  CHECK(moeflux_tokenize(model, text, strlen(text), 0, ids, n, &n_ids) == MOEFLUX_OK);
  CHECK(n_ids == n);
  char buf[4096];
  size_t len = 0;
  CHECK(moeflux_detokenize(model, ids, n_ids, 0, buf, sizeof buf, &len) == MOEFLUX_OK);
  CHECK(len == strlen(text) && strcmp(buf, text) == 0);
  CHECK(moeflux_detokenize(model, ids, n_ids, 0, buf, 3, &len) == MOEFLUX_ERR_CAPACITY);

  /* Chat template. */
  CHECK(moeflux_apply_chat_template(model, "[{\"role\":\"user\",\"content\":\"Hi there\"}]", 1, buf, sizeof buf, &len) ==
        MOEFLUX_OK);
  CHECK(strstr(buf, "Hi there") != NULL);
  CHECK(moeflux_apply_chat_template(model, "{not json", 1, buf, sizeof buf, &len) == MOEFLUX_ERR_BAD_INPUT);

  size_t n_eos = 0;
  int32_t eos[8];
  CHECK(moeflux_model_eos(model, eos, 8, &n_eos) == MOEFLUX_OK);
  CHECK(n_eos >= 1);

  /* Evaluate, read logits, sample greedily. */
  moeflux_session* s = NULL;
  CHECK(moeflux_session_new(model, 0, &s) == MOEFLUX_OK);
  const float* logits = NULL;
  size_t n_logits = 0;
  CHECK(moeflux_session_logits(s, &logits, &n_logits) == MOEFLUX_ERR_BAD_INPUT); /* nothing evaluated yet */
  CHECK(moeflux_session_eval(s, ids, n_ids) == MOEFLUX_OK);
  CHECK(moeflux_session_position(s) == (int32_t)n_ids);
  CHECK(moeflux_session_logits(s, &logits, &n_logits) == MOEFLUX_OK);
  CHECK(n_logits == (size_t)vocab);
  moeflux_sampling sp;
  moeflux_sampling_init(&sp);
  sp.temperature = 0;
  moeflux_sampler* greedy = NULL;
  CHECK(moeflux_sampler_new(model, &sp, &greedy) == MOEFLUX_OK);
  int32_t tok = -1;
  CHECK(moeflux_sampler_sample(greedy, s, &tok) == MOEFLUX_OK);
  CHECK(tok == argmax(logits, n_logits));
  for (int i = 0; i < 4; ++i) {
    CHECK(moeflux_session_eval(s, &tok, 1) == MOEFLUX_OK);
    CHECK(moeflux_sampler_sample(greedy, s, &tok) == MOEFLUX_OK);
  }

  /* Bad input leaves the session as it was. */
  const int32_t pos = moeflux_session_position(s);
  int32_t bad = vocab + 5;
  CHECK(moeflux_session_eval(s, &bad, 1) == MOEFLUX_ERR_BAD_INPUT);
  CHECK(strstr(moeflux_last_error(), "outside the vocabulary") != NULL);
  CHECK(moeflux_session_position(s) == pos);
  CHECK(moeflux_session_eval(NULL, &tok, 1) == MOEFLUX_ERR_BAD_INPUT);
  moeflux_session* small = NULL;
  CHECK(moeflux_session_new(model, 4, &small) == MOEFLUX_OK);
  CHECK(moeflux_session_eval(small, ids, n_ids) == MOEFLUX_ERR_CAPACITY);
  moeflux_session_free(small);

  /* Save, load into a fresh session, and both continue alike. */
  CHECK(moeflux_session_save(s, path) == MOEFLUX_OK);
  moeflux_session* s2 = NULL;
  CHECK(moeflux_session_new(model, 0, &s2) == MOEFLUX_OK);
  CHECK(moeflux_session_load(s2, path) == MOEFLUX_OK);
  CHECK(moeflux_session_position(s2) == pos);
  CHECK(moeflux_session_eval(s, &tok, 1) == MOEFLUX_OK);
  CHECK(moeflux_session_eval(s2, &tok, 1) == MOEFLUX_OK);
  const float *l1 = NULL, *l2 = NULL;
  CHECK(moeflux_session_logits(s, &l1, NULL) == MOEFLUX_OK);
  CHECK(moeflux_session_logits(s2, &l2, NULL) == MOEFLUX_OK);
  CHECK(l1 && l2 && memcmp(l1, l2, (size_t)vocab * sizeof(float)) == 0);

  /* A corrupt file and another model's file are refused. */
  FILE* f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* data = malloc((size_t)size);
  CHECK(fread(data, 1, (size_t)size, f) == (size_t)size);
  fclose(f);
  data[size / 2] ^= 1;
  f = fopen(bad_path, "wb");
  fwrite(data, 1, (size_t)size, f);
  fclose(f);
  free(data);
  CHECK(moeflux_session_load(s2, bad_path) == MOEFLUX_ERR_BAD_INPUT);
  CHECK(strstr(moeflux_last_error(), "corrupt") != NULL);
  CHECK(moeflux_session_position(s2) == pos + 1);

  moeflux_model* other = NULL;
  CHECK(moeflux_model_open(argv[3], &opts, &other) == MOEFLUX_OK);
  if (other) {
    /* No tokenizer there: text calls say so, token ids still work. */
    CHECK(moeflux_tokenize(other, "x", 1, 0, ids, n, &n_ids) == MOEFLUX_ERR_BAD_INPUT);
    moeflux_session* so = NULL;
    CHECK(moeflux_session_new(other, 0, &so) == MOEFLUX_OK);
    int32_t one = 1;
    CHECK(moeflux_session_eval(so, &one, 1) == MOEFLUX_OK);
    CHECK(moeflux_session_save(so, other_path) == MOEFLUX_OK);
    CHECK(moeflux_session_load(s2, other_path) == MOEFLUX_ERR_BAD_INPUT);
    CHECK(strstr(moeflux_last_error(), "another model") != NULL);
    moeflux_session_free(so);
    moeflux_model_free(other);
  }

  moeflux_stats st;
  CHECK(moeflux_model_stats(model, &st) == MOEFLUX_OK);
  CHECK(st.state_bytes > 0);

  moeflux_sampler_free(greedy);
  moeflux_session_free(s);
  moeflux_session_free(s2);
  moeflux_model_free(model);
  free(ids);
  if (failures) fprintf(stderr, "%d checks failed\n", failures);
  else printf("C API: all checks passed\n");
  return failures ? 1 : 0;
}
