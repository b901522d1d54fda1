// The C API (include/moeflux.h) over the C++ one: every entry point catches
// everything, maps moeflux::Error kinds to status codes and keeps the
// message per thread.
#include "moeflux.h"

#include <cstring>
#include <new>
#include <optional>
#include <string>

#include "core/error.h"
#include "model/model_spec.h"
#include "moeflux/engine.h"
#include "sampling/sampler.h"
#include "server/model_text.h"

struct moeflux_model {
  std::shared_ptr<moeflux::Engine> engine;
  std::optional<moeflux::ModelText> text;  // absent when the model has no tokenizer
  std::string text_error;                  // why
};

struct moeflux_session {
  moeflux::Session session;
  std::vector<float> logits;  // the last eval's, vocab floats
};

struct moeflux_sampler {
  moeflux::Sampler sampler;
};

namespace {

thread_local std::string t_error;

moeflux_status status_of(moeflux::ErrorKind k) {
  switch (k) {
    case moeflux::ErrorKind::BadInput:
      return MOEFLUX_ERR_BAD_INPUT;
    case moeflux::ErrorKind::Io:
      return MOEFLUX_ERR_IO;
    case moeflux::ErrorKind::Capacity:
      return MOEFLUX_ERR_CAPACITY;
    case moeflux::ErrorKind::Internal:
      break;
  }
  return MOEFLUX_ERR_INTERNAL;
}

template <class Fn>
moeflux_status guarded(Fn&& fn) {
  try {
    fn();
    return MOEFLUX_OK;
  } catch (const moeflux::Error& e) {
    t_error = e.what();
    return status_of(e.kind());
  } catch (const std::bad_alloc&) {
    t_error = "out of memory";
    return MOEFLUX_ERR_CAPACITY;
  } catch (const std::exception& e) {
    t_error = e.what();
    return MOEFLUX_ERR_INTERNAL;
  } catch (...) {
    t_error = "unknown error";
    return MOEFLUX_ERR_INTERNAL;
  }
}

void need(const void* p, const char* what) {
  if (!p) moeflux::fail("{} is NULL", what);
}

template <class T>
void copy_out(const T* src, size_t count, T* dst, size_t cap, size_t* n, bool nul) {
  if (n) *n = count;
  if (cap < count + (nul ? 1 : 0) || !dst)
    moeflux::fail_as(moeflux::ErrorKind::Capacity, "the buffer holds {} elements; {} are needed", cap,
                     count + (nul ? 1 : 0));
  if (count) std::memcpy(dst, src, count * sizeof(T));
  if (nul) dst[count] = T{};
}

const moeflux::ModelText& text_of(const moeflux_model* m) {
  need(m, "model");
  if (!m->text) moeflux::fail("this model has no tokenizer: {}", m->text_error);
  return *m->text;
}

}  // namespace

extern "C" {

const char* moeflux_last_error(void) { return t_error.c_str(); }
const char* moeflux_version(void) { return "0.1.0"; }

void moeflux_options_init(moeflux_options* o) {
  if (!o) return;
  *o = moeflux_options{};
  o->max_micro_batch = moeflux::EngineOptions{}.max_micro_batch;
}

moeflux_status moeflux_model_open(const char* path, const moeflux_options* options, moeflux_model** model) {
  return guarded([&] {
    need(path, "path");
    need(model, "model");
    *model = nullptr;
    moeflux::EngineOptions o;
    if (options) {
      o.threads = options->threads;
      if (options->max_micro_batch) o.max_micro_batch = options->max_micro_batch;
      if (options->expert_ram) o.expert_ram_text = options->expert_ram;
      if (options->io) o.io = options->io;
      if (options->cache_policy) o.cache_policy = options->cache_policy;
      o.prefetch = options->prefetch != 0;
      o.state_budget = options->state_budget;
      o.f32_activations = options->f32_activations != 0;
      if (options->device) o.device = options->device;
    }
    auto m = std::make_unique<moeflux_model>();
    m->engine = moeflux::Engine::load(path, o);
    try {
      m->text = moeflux::load_model_text(path, *m->engine);
    } catch (const moeflux::Error& e) {
      m->text_error = e.what();  // token ids still work
    }
    *model = m.release();
  });
}

void moeflux_model_free(moeflux_model* model) { delete model; }
int32_t moeflux_model_vocab(const moeflux_model* m) { return m ? m->engine->spec().vocab : 0; }
int32_t moeflux_model_context(const moeflux_model* m) { return m ? m->engine->spec().max_positions : 0; }

moeflux_status moeflux_model_eos(const moeflux_model* m, int32_t* ids, size_t cap, size_t* n) {
  return guarded([&] {
    need(m, "model");
    std::vector<int32_t> eos = m->text ? m->text->stop_tokens : std::vector<int32_t>{};
    if (!m->text && m->engine->spec().eos_token) eos.push_back(*m->engine->spec().eos_token);
    copy_out(eos.data(), eos.size(), ids, cap, n, false);
  });
}

moeflux_status moeflux_tokenize(const moeflux_model* m, const char* text, size_t len, int add_special, int32_t* ids,
                                size_t cap, size_t* n) {
  return guarded([&] {
    if (len) need(text, "text");
    const auto out = text_of(m).tokenizer.encode(std::string_view(text ? text : "", len), add_special != 0);
    copy_out(out.data(), out.size(), ids, cap, n, false);
  });
}

moeflux_status moeflux_detokenize(const moeflux_model* m, const int32_t* ids, size_t n_ids, int skip_special,
                                  char* text, size_t cap, size_t* n) {
  return guarded([&] {
    if (n_ids) need(ids, "ids");
    const std::string s = text_of(m).tokenizer.decode(std::span<const int32_t>(ids, n_ids), skip_special != 0);
    copy_out(s.data(), s.size(), text, cap, n, true);
  });
}

moeflux_status moeflux_apply_chat_template(const moeflux_model* m, const char* messages_json, int add_generation_prompt,
                                           char* text, size_t cap, size_t* n) {
  return guarded([&] {
    need(messages_json, "messages_json");
    const auto messages = nlohmann::ordered_json::parse(messages_json, nullptr, false);
    if (messages.is_discarded() || !messages.is_array() || messages.empty())
      moeflux::fail("messages_json must be a non-empty JSON list of {{\"role\", \"content\"}} objects");
    moeflux::ChatTemplateOptions opts;
    opts.add_generation_prompt = add_generation_prompt != 0;
    const std::string s = text_of(m).chat_template.render(messages, opts);
    copy_out(s.data(), s.size(), text, cap, n, true);
  });
}

moeflux_status moeflux_session_new(moeflux_model* m, int32_t max_positions, moeflux_session** session) {
  return guarded([&] {
    need(m, "model");
    need(session, "session");
    *session = nullptr;
    *session = new moeflux_session{moeflux::Session(m->engine, max_positions), {}};
  });
}

void moeflux_session_free(moeflux_session* s) { delete s; }

moeflux_status moeflux_session_eval(moeflux_session* s, const int32_t* tokens, size_t n) {
  return guarded([&] {
    need(s, "session");
    if (n) need(tokens, "tokens");
    const auto l = s->session.step(std::span<const int32_t>(tokens, n));
    s->logits.assign(l.begin(), l.end());
  });
}

moeflux_status moeflux_session_logits(const moeflux_session* s, const float** logits, size_t* n) {
  return guarded([&] {
    need(s, "session");
    need(logits, "logits");
    if (s->logits.empty()) moeflux::fail("no logits yet: evaluate tokens first");
    *logits = s->logits.data();
    if (n) *n = s->logits.size();
  });
}

int32_t moeflux_session_position(const moeflux_session* s) { return s ? s->session.position() : 0; }
uint64_t moeflux_session_state_bytes(const moeflux_session* s) { return s ? s->session.state_bytes() : 0; }

moeflux_status moeflux_session_reset(moeflux_session* s) {
  return guarded([&] {
    need(s, "session");
    s->session.reset();
    s->logits.clear();
  });
}

moeflux_status moeflux_session_rewind(moeflux_session* s, int32_t position) {
  return guarded([&] {
    need(s, "session");
    s->session.rewind(position);
    s->logits.clear();  // they belonged to a position now forgotten
  });
}

moeflux_status moeflux_session_save(const moeflux_session* s, const char* path) {
  return guarded([&] {
    need(s, "session");
    need(path, "path");
    s->session.save(path);
  });
}

moeflux_status moeflux_session_load(moeflux_session* s, const char* path) {
  return guarded([&] {
    need(s, "session");
    need(path, "path");
    s->session.load(path);
    s->logits.clear();
  });
}

void moeflux_sampling_init(moeflux_sampling* p) {
  if (!p) return;
  const moeflux::SamplingParams d;
  *p = moeflux_sampling{d.temperature, d.top_k, d.top_p, d.min_p, d.repetition_penalty, d.presence_penalty,
                        d.frequency_penalty, d.penalty_last_n, d.seed};
}

moeflux_status moeflux_sampler_new(const moeflux_model* m, const moeflux_sampling* p, moeflux_sampler** sampler) {
  return guarded([&] {
    need(m, "model");
    need(sampler, "sampler");
    *sampler = nullptr;
    moeflux::SamplingParams sp;
    if (p) {
      sp.temperature = p->temperature;
      sp.top_k = p->top_k;
      sp.top_p = p->top_p;
      sp.min_p = p->min_p;
      sp.repetition_penalty = p->repetition_penalty;
      sp.presence_penalty = p->presence_penalty;
      sp.frequency_penalty = p->frequency_penalty;
      sp.penalty_last_n = p->penalty_last_n;
      sp.seed = p->seed;
    }
    *sampler = new moeflux_sampler{moeflux::Sampler(sp, m->engine->spec().vocab)};
  });
}

void moeflux_sampler_free(moeflux_sampler* s) { delete s; }

moeflux_status moeflux_sampler_sample(moeflux_sampler* s, const moeflux_session* session, int32_t* token) {
  return guarded([&] {
    need(s, "sampler");
    need(session, "session");
    need(token, "token");
    if (session->logits.empty()) moeflux::fail("no logits yet: evaluate tokens first");
    const int32_t t = s->sampler.sample(session->logits);
    s->sampler.accept(t);
    *token = t;
  });
}

moeflux_status moeflux_model_stats(const moeflux_model* m, moeflux_stats* stats) {
  return guarded([&] {
    need(m, "model");
    need(stats, "stats");
    const moeflux::ExpertStats e = m->engine->expert_stats();
    *stats = moeflux_stats{m->engine->state_bytes_in_use(), e.hits, e.prefetch_hits, e.misses, e.bytes_read,
                           e.evictions, e.read_wait_s};
  });
}

}  // extern "C"
