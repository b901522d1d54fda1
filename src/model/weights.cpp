#include "model/weights.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/tensor_list.h"

namespace moeflux {

void check_tensor(const TensorRef& t, std::initializer_list<int64_t> shape, bool vector) {
  check_tensor(t, std::span<const int64_t>(shape.begin(), shape.size()), vector);
}

void check_tensor(const TensorRef& t, std::span<const int64_t> shape, bool vector) {
  if (vector && !is_weight_float(t.dtype))
    fail("tensor '{}' in {} has dtype {}; norm weights and biases must be F32, F16 or BF16", t.name, t.file,
         dtype_name(t.dtype));
  if (!is_matmul_weight(t.dtype))
    fail("tensor '{}' in {} has dtype {}; weights must be F32, F16, BF16 or a GGML block format", t.name, t.file,
         dtype_name(t.dtype));
  if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end()))
    fail("tensor '{}' in {} has shape {} but the config implies [{}]", t.name, t.file, t.shape_str(),
         fmt::join(shape, ", "));
}

class ResidentWeights {
 public:
  ~ResidentWeights() {
    if (buf) munmap(buf, bytes);
  }
  std::deque<TensorRef> refs;  // a deque: pointers to its elements stay valid as it grows
  uint8_t* buf = nullptr;
  size_t bytes = 0;
};

namespace {

// Every tensor pointer of `w`, for visiting and re-pointing.
template <typename F>
void for_each_ref(ModelWeights& w, F&& f) {
  f(w.embed);
  f(w.final_norm);
  f(w.lm_head);
  for (LayerWeights& L : w.layers)
    for (const TensorRef*& t : L.slot) f(t);
}

// One run of bytes to copy: from a file (through its MappedFile, read with
// pread) or, for a table that is not backed by a file, from memory.
struct Piece {
  const MappedFile* file = nullptr;
  uint64_t offset = 0;            // in the file
  const uint8_t* src = nullptr;   // when file is null
  uint64_t nbytes = 0;
  const uint8_t** dst = nullptr;  // the pointer to set to the copy
  uint64_t at = 0;                // offset in the buffer
};

constexpr uint64_t kPieceAlign = 64;  // a cache line: never worse aligned than in the file

// Copies the bound tensors into one owned buffer and re-points `w` at them.
void make_resident(ModelWeights& w) {
  auto res = std::make_shared<ResidentWeights>();
  std::map<const TensorRef*, const TensorRef*> copied;  // tied embeddings: one copy for both uses
  std::vector<Piece> pieces;
  uint64_t total = 0;
  auto add = [&](const uint8_t* src, uint64_t n, const uint8_t** dst) {
    if (n == 0 || !src) return;
    Piece p;
    p.file = MappedFile::holding(src);
    p.offset = p.file ? uint64_t(src - p.file->data()) : 0;
    p.src = src;
    p.nbytes = n;
    p.dst = dst;
    p.at = total;
    total += (n + kPieceAlign - 1) / kPieceAlign * kPieceAlign;
    pieces.push_back(p);
  };
  for_each_ref(w, [&](const TensorRef* t) {
    if (!t || copied.count(t)) return;
    TensorRef& c = res->refs.emplace_back(*t);
    copied[t] = &c;
    add(t->data, t->nbytes, &c.data);
    if (c.mlx) {
      add(c.mlx->scales.data, c.mlx->scales.nbytes, &c.mlx->scales.data);
      add(c.mlx->biases.data, c.mlx->biases.nbytes, &c.mlx->biases.data);
    }
  });
  if (total > 0) {
    const long page = sysconf(_SC_PAGESIZE);
    res->bytes = (total + uint64_t(page) - 1) / uint64_t(page) * uint64_t(page);
    void* p = mmap(nullptr, res->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("cannot allocate {} bytes for the dense weights: {}", res->bytes, std::strerror(errno));
    res->buf = static_cast<uint8_t*>(p);
    // No MADV_HUGEPAGE: measured on a 550 MB dense copy, decode did not
    // change, and where THP is "madvise" with direct defrag the first load
    // of a process spent ~2 s compacting memory (0.5 s without) on a VM
    // whose RAM was fragmented by page cache.
  }
  // In file order, so that the reads go forward through each file.
  std::vector<Piece*> order;
  for (Piece& p : pieces) order.push_back(&p);
  std::sort(order.begin(), order.end(), [](const Piece* a, const Piece* b) {
    return a->file != b->file ? std::less<>()(a->file, b->file) : a->offset < b->offset;
  });
  std::set<const MappedFile*> files;
  for (Piece* p : order) {
    uint8_t* dst = res->buf + p->at;
    if (p->file) {
      p->file->read(p->offset, dst, p->nbytes);
      files.insert(p->file);
    } else {
      std::memcpy(dst, p->src, p->nbytes);
    }
    *p->dst = dst;
  }
  // A file rewritten while it was read would leave a mix of two versions.
  for (const MappedFile* f : files)
    if (std::string what = f->changed(); !what.empty())
      fail("{} changed since it was opened ({}) while the dense weights were read; reload the model", f->path(),
           what);
  if (res->buf) mprotect(res->buf, res->bytes, PROT_READ);  // weights are never written
  for_each_ref(w, [&](const TensorRef*& t) {
    if (t) t = copied.at(t);
  });
  w.resident_bytes = total;
  w.resident = std::move(res);
}

}  // namespace

namespace {

// The ModelWeights pointer a slot fills (null for routed experts, which the
// expert source serves).
const TensorRef** slot_of(ModelWeights& w, TensorSlot slot, int layer) {
  using S = TensorSlot;
  switch (slot) {
    case S::Embed: return &w.embed;
    case S::FinalNorm: return &w.final_norm;
    case S::LmHead: return &w.lm_head;
    default: break;
  }
  if (slot == S::None || slot == S::Count || slot == S::ExpertGate || slot == S::ExpertUp || slot == S::ExpertDown)
    return nullptr;
  return &w.layers.at(size_t(layer)).slot[size_t(slot)];
}

}  // namespace

ModelWeights bind_weights(const ModelSpec& s, const ArchDef& arch, const TensorTable& st) {
  ModelWeights w;
  w.layers.resize(size_t(s.layers));
  // Every tensor of the architecture's table, checked against its shape
  // and bound into its slot; routed experts go to the expert source.
  for (const ModelTensor& t : model_tensors(s, arch)) {
    if (t.kind == ParamKind::ExpertLinear) continue;
    const TensorRef** slot = slot_of(w, t.slot, t.layer);
    if (!slot) fail("tensor '{}' has no slot in the model's weights", t.name);
    if (*slot) fail("tensors '{}' and '{}' both fill one slot of layer {}", (*slot)->name, t.name, t.layer);
    const TensorRef& ref = st.get(t.name);
    const bool vector = t.kind == ParamKind::Norm || t.kind == ParamKind::Bias;
    if (vector)
      check_tensor(ref, t.shape, true);  // a norm or bias, or small float taps (conv1d [C, 1, K])
    else
      check_tensor(ref, {t.shape[0], t.shape[1]});
    *slot = &ref;
  }
  if (s.tie_embeddings) w.lm_head = w.embed;
  make_resident(w);
  return w;
}

}  // namespace moeflux
