/* The moeflux C API: load a model, run sessions on it, sample, save and
 * restore. Every call that can fail returns a moeflux_status; the message
 * of the last failure on the calling thread is moeflux_last_error(). No C++
 * exception crosses this interface.
 *
 * Buffers the caller provides follow one rule: the call writes at most
 * `cap` elements, stores the number it needs in *n, and returns
 * MOEFLUX_ERR_CAPACITY when cap was too small (call again with a larger
 * buffer; cap 0 with a null buffer asks for the size). Strings are written
 * with a terminating NUL, which counts toward cap but not toward *n.
 *
 * A model may be shared by many sessions, and sessions of one model may be
 * evaluated from many threads (the engine runs their steps one at a time);
 * one session or sampler must not be used from two threads at once. */
#ifndef MOEFLUX_H
#define MOEFLUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moeflux_status {
  MOEFLUX_OK = 0,
  MOEFLUX_ERR_BAD_INPUT = 1, /* the request, an option or a model file is wrong */
  MOEFLUX_ERR_IO = 2,        /* storage failed or a file changed under the engine */
  MOEFLUX_ERR_CAPACITY = 3,  /* a budget, the context or a caller's buffer is too small */
  MOEFLUX_ERR_INTERNAL = 4   /* a bug in moeflux */
} moeflux_status;

typedef struct moeflux_model moeflux_model;
typedef struct moeflux_session moeflux_session;
typedef struct moeflux_sampler moeflux_sampler;

/* The message of the last call that failed on this thread ("" if none). */
const char* moeflux_last_error(void);
const char* moeflux_version(void);

typedef struct moeflux_options {
  int threads;             /* 0: all online cores */
  int max_micro_batch;     /* prefill chunk, default 256 */
  const char* expert_ram;  /* NULL: experts memory-mapped; else "8G", "25%", "auto": streamed */
  const char* io;          /* NULL or "direct", "pread", "buffered", "mmap" */
  const char* cache_policy; /* NULL or "lru", "lfu" */
  int prefetch;            /* nonzero: read the next layer's likely experts ahead */
  uint64_t state_budget;   /* bytes of KV state all sessions may hold; 0: no limit */
  int f32_activations;     /* nonzero: keep matrix-product activations in f32 */
  const char* device;      /* NULL or "cpu" (default), "cuda", "auto" (CUDA when a GPU is present) */
} moeflux_options;

void moeflux_options_init(moeflux_options* options);

/* Opens a model directory (config.json, safetensors, tokenizer.json) or a
 * GGUF file. options NULL: the defaults. */
moeflux_status moeflux_model_open(const char* path, const moeflux_options* options, moeflux_model** model);
void moeflux_model_free(moeflux_model* model);
int32_t moeflux_model_vocab(const moeflux_model* model);
int32_t moeflux_model_context(const moeflux_model* model); /* max positions */
/* End-of-sequence ids (buffer rule above). */
moeflux_status moeflux_model_eos(const moeflux_model* model, int32_t* ids, size_t cap, size_t* n);

/* Text to token ids; add_special: BOS/EOS as the tokenizer's config says. */
moeflux_status moeflux_tokenize(const moeflux_model* model, const char* text, size_t text_len, int add_special,
                                int32_t* ids, size_t cap, size_t* n);
moeflux_status moeflux_detokenize(const moeflux_model* model, const int32_t* ids, size_t n_ids, int skip_special,
                                  char* text, size_t cap, size_t* n);
/* Renders a conversation, a JSON list of {"role", "content"} objects, with
 * the model's chat template (ChatML when it has none). */
moeflux_status moeflux_apply_chat_template(const moeflux_model* model, const char* messages_json,
                                           int add_generation_prompt, char* text, size_t cap, size_t* n);

/* max_positions 0: the model's context. */
moeflux_status moeflux_session_new(moeflux_model* model, int32_t max_positions, moeflux_session** session);
void moeflux_session_free(moeflux_session* session);
/* Runs tokens at the next positions; the logits of the last one are then
 * readable. On failure the session is as it was before the call. */
moeflux_status moeflux_session_eval(moeflux_session* session, const int32_t* tokens, size_t n);
/* The last eval's logits (vocab floats), valid until the next eval. */
moeflux_status moeflux_session_logits(const moeflux_session* session, const float** logits, size_t* n);
int32_t moeflux_session_position(const moeflux_session* session);
uint64_t moeflux_session_state_bytes(const moeflux_session* session);
moeflux_status moeflux_session_reset(moeflux_session* session);
/* Forgets positions from `position` on (models whose state is all per position). */
moeflux_status moeflux_session_rewind(moeflux_session* session, int32_t position);
/* Saved sessions: a versioned file with the model's fingerprint and a
 * checksum, written atomically; save replaces only an earlier session
 * file (any other existing file or a link is refused); load refuses another model's, another
 * version's or a corrupt file and then leaves the session as it was. */
moeflux_status moeflux_session_save(const moeflux_session* session, const char* path);
moeflux_status moeflux_session_load(moeflux_session* session, const char* path);

typedef struct moeflux_sampling {
  float temperature;        /* 0: greedy */
  int top_k;                /* 0: off */
  float top_p;              /* 1: off */
  float min_p;              /* 0: off */
  float repetition_penalty; /* 1: off */
  float presence_penalty, frequency_penalty;
  int penalty_last_n;       /* -1: all history */
  uint64_t seed;
} moeflux_sampling;

/* moeflux's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05. */
void moeflux_sampling_init(moeflux_sampling* params);
moeflux_status moeflux_sampler_new(const moeflux_model* model, const moeflux_sampling* params, moeflux_sampler** sampler);
void moeflux_sampler_free(moeflux_sampler* sampler);
/* Picks a token from the session's last logits and records it for the penalties. */
moeflux_status moeflux_sampler_sample(moeflux_sampler* sampler, const moeflux_session* session, int32_t* token);

typedef struct moeflux_stats {
  uint64_t state_bytes;  /* KV state held by all sessions of the model */
  uint64_t expert_hits, expert_prefetch_hits, expert_misses, expert_bytes_read, expert_evictions;
  double expert_read_wait_s;
} moeflux_stats;

moeflux_status moeflux_model_stats(const moeflux_model* model, moeflux_stats* stats);

#ifdef __cplusplus
}
#endif

#endif /* MOEFLUX_H */
