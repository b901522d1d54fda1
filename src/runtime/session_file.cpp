// Saved sessions (Session::save / load) and the model fingerprint they carry.
//
// File layout, integers little-endian:
//   "MOEFLUXS"  u32 version  u32 meta_bytes  meta (JSON: fingerprint, arch,
//   backend, positions, per-state widths, byte counts)
//   u64 user_bytes  user_data   u64 state_bytes  state (BackendSession::export_states:
//   the positional states, then the recurrent layers' fixed blocks)
//   u32 CRC-32 of every byte before it
// The checksum is checked before anything else is believed, the version
// and fingerprint before the state is touched.
#include <sys/stat.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/output_file.h"
#include "runtime/engine_impl.h"

namespace moeflux {

namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'F', 'L', 'U', 'X', 'S'};
constexpr uint32_t kVersion = 1;

struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void add(std::string_view s) {
    add(s.data(), s.size());
    add("\0", 1);
  }
};

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

nlohmann::json state_layout(const Engine::Impl& e) {
  nlohmann::json s = nlohmann::json::array();
  for (const StateDesc& d : e.states) {
    if (d.positional())
      s.push_back({d.layer, d.key_width, d.value_width});
    else  // a recurrent layer: its fixed block, after every positional state
      s.push_back({d.layer, "recurrent", d.fixed_floats});
  }
  return s;
}

// Reads a little-endian integer at `at`, checking the bounds.
template <class T>
T get(std::string_view data, size_t& at, const std::string& path) {
  if (at + sizeof(T) > data.size()) fail("{}: the session file is truncated ({} bytes)", path, data.size());
  T v;
  std::memcpy(&v, data.data() + at, sizeof v);
  at += sizeof v;
  return v;
}

}  // namespace

std::string Engine::fingerprint() const {
  Fnv f;
  const Impl& m = *impl_;
  f.add(m.spec.arch);
  for (const auto& [name, t] : m.files->tensors()) {
    f.add(name);
    const int dt = int(t->dtype);
    f.add(&dt, sizeof dt);
    for (int64_t d : t->shape) f.add(&d, sizeof d);
  }
  // Samples of the weights: models of one shape (a fine-tune, another
  // seed) differ here.
  for (const TensorRef* t : {m.weights.embed, m.weights.final_norm, m.weights.lm_head})
    if (t && t->data) f.add(t->data, size_t(std::min<uint64_t>(t->nbytes, 1 << 16)));
  return fmt::format("{:016x}", f.h);
}

std::string Session::save_to_bytes(std::string_view user_data) const {
  const Impl& s = *impl_;
  const Engine::Impl& e = s.engine->impl();
  if (s.recurrent_state_lost)
    fail("cannot save the session: a failed step left its recurrent layer state behind the position");
  std::vector<uint8_t> state;
  try {
    s.backend->export_states(s.position, state);
  } catch (const Error& err) {
    throw Error(fmt::format("cannot save the session (backend '{}'): {}", e.backend->name(), err.what()), err.kind());
  }
  const nlohmann::json meta = {{"fingerprint", s.engine->fingerprint()},
                               {"arch", e.spec.arch},
                               {"backend", e.backend->name()},
                               {"positions", s.position},
                               {"states", state_layout(e)},
                               {"dtype", "f32le"}};
  const std::string meta_text = meta.dump();
  std::string out(kMagic, sizeof kMagic);
  put(out, kVersion);
  put(out, uint32_t(meta_text.size()));
  out += meta_text;
  put(out, uint64_t(user_data.size()));
  out += user_data;
  put(out, uint64_t(state.size()));
  out.append(reinterpret_cast<const char*>(state.data()), state.size());
  put(out, uint32_t(crc32_z(0, reinterpret_cast<const Bytef*>(out.data()), out.size())));
  return out;
}

namespace {

// save() may replace an earlier session file (saving a conversation again
// under its name is the point of /save), but never a file that is not one:
// a user's notes.txt typed as the target must survive the typo. Links,
// directories and devices are refused by OutputFile itself.
void refuse_replacing_a_foreign_file(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  std::ifstream in(path, std::ios::binary);
  char head[sizeof kMagic] = {};
  in.read(head, sizeof head);
  if (in.gcount() != std::streamsize(sizeof head) || std::memcmp(head, kMagic, sizeof kMagic) != 0)
    fail("{}: exists and is not a moeflux session file; not replacing it (choose another name)", path);
}

}  // namespace

void Session::save(const std::string& path, std::string_view user_data) const {
  refuse_replacing_a_foreign_file(path);
  const std::string bytes = save_to_bytes(user_data);
  OutputFile f(path, Replace::Yes);
  f.write(bytes);
  f.commit();
}

std::string Session::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the session file", path);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail_as(ErrorKind::Io, "{}: read error", path);
  return load_from_bytes(data, path);
}

std::string Session::load_from_bytes(std::string_view data, const std::string& path) {
  Impl& s = *impl_;
  Engine::Impl& e = s.engine->impl();
  if (data.size() < sizeof kMagic + 12 || std::memcmp(data.data(), kMagic, sizeof kMagic) != 0)
    fail("{}: not a moeflux session file", path);
  size_t at = sizeof kMagic;
  const uint32_t version = get<uint32_t>(data, at, path);
  if (version != kVersion)
    fail("{}: session file format version {}; this moeflux reads version {}", path, version, kVersion);
  uint32_t stored_crc;
  std::memcpy(&stored_crc, data.data() + data.size() - 4, 4);
  if (uint32_t(crc32_z(0, reinterpret_cast<const Bytef*>(data.data()), data.size() - 4)) != stored_crc)
    fail("{}: the session file is corrupt (checksum mismatch)", path);
  const uint32_t meta_bytes = get<uint32_t>(data, at, path);
  if (at + meta_bytes > data.size()) fail("{}: the session file is truncated", path);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(data.substr(at, meta_bytes));
  } catch (const std::exception& err) {
    fail("{}: the session file's header is not valid JSON: {}", path, err.what());
  }
  at += meta_bytes;
  const std::string fp = meta.value("fingerprint", "");
  if (fp != s.engine->fingerprint())
    fail("{}: the session was saved from another model ({} '{}', fingerprint {}; this model is {} '{}')", path,
         meta.value("arch", "?"), meta.value("arch", "?"), fp, e.spec.arch, s.engine->fingerprint());
  if (meta.value("states", nlohmann::json()) != state_layout(e) || meta.value("dtype", "") != "f32le")
    fail("{}: the session's layer states do not match this model's", path);
  const int positions = meta.value("positions", -1);
  if (positions < 0) fail("{}: the session file has no valid position count", path);
  if (positions > s.max_positions)
    fail_as(ErrorKind::Capacity, "{}: the session holds {} positions; this session's context is {}", path, positions,
            s.max_positions);
  const uint64_t user_bytes = get<uint64_t>(data, at, path);
  if (user_bytes > data.size() - at) fail("{}: the session file is truncated", path);
  std::string user(data.substr(at, size_t(user_bytes)));
  at += size_t(user_bytes);
  const uint64_t state_bytes = get<uint64_t>(data, at, path);
  if (state_bytes != data.size() - at - 4) fail("{}: the session file's state size does not match its length", path);
  const std::span<const uint8_t> state(reinterpret_cast<const uint8_t*>(data.data() + at), size_t(state_bytes));
  try {
    s.backend->import_states(positions, state);
  } catch (const Error& err) {
    throw Error(fmt::format("{}: cannot load the session (backend '{}'): {}", path, e.backend->name(), err.what()),
                err.kind());
  }
  // Every checkpoint taken before is void; the loaded positions count as written.
  s.overwrites.push_back({s.serial, 0});
  ++s.serial;
  s.position = positions;
  s.high_water = positions;
  s.recurrent_state_lost = false;  // the loaded state matches the loaded position
  return user;
}

}  // namespace moeflux
