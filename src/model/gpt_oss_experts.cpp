#include "model/gpt_oss_experts.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <set>
#include <vector>

#include "core/error.h"
#include "model/arch.h"
#include "quant/blocks.h"

namespace moeflux {

namespace {

// transformers' FP4_VALUES (E2M1: sign, 2 exponent bits, 1 mantissa bit).
constexpr float kE2M1[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                             -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

class GptOssExpertsView final : public TensorTable {
 public:
  GptOssExpertsView(const ModelSpec& s, std::unique_ptr<TensorTable> files) : files_(std::move(files)) {
    std::set<std::string> consumed;
    for (int l = 0; l < s.layers; ++l) {
      const std::string p = layer_prefix(l) + "mlp.experts.";
      if (files_->find(p + "gate_up_proj_blocks") || files_->find(p + "gate_up_proj_scales"))
        split_mxfp4(s, l, p, consumed);
      else if (files_->find(p + "gate_up_proj"))
        split_plain(s, l, p, consumed);
      else
        fail("{}: layer {} has neither '{}gate_up_proj' nor '{}gate_up_proj_blocks' (the fused routed experts)",
             files_->describe(), l, p, p);
    }
    for (const auto& [name, ref] : files_->tensors())
      if (!consumed.count(name)) index_.emplace(name, ref);
  }
  std::string describe() const override { return files_->describe(); }

 private:
  const TensorRef& need(const std::string& name, std::initializer_list<int64_t> shape, std::set<std::string>& used) {
    const TensorRef& t = files_->get(name);
    if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end()))
      fail("tensor '{}' in {} has shape {} but the config implies [{}]", t.name, t.file, t.shape_str(),
           fmt::join(shape, ", "));
    used.insert(name);
    return t;
  }

  // A per-expert tensor whose bytes the view owns.
  uint8_t* add(const std::string& name, const TensorRef& from, DType dtype, int64_t rows, int64_t cols) {
    const uint64_t bytes = dtype_row_bytes(dtype, cols) * uint64_t(rows);
    auto& buf = owned_.emplace_back(bytes);
    TensorRef& r = refs_.emplace_back();
    r.name = from.name + " (repacked per expert: " + name + ")";
    r.dtype = dtype;
    r.shape = {rows, cols};
    r.nbytes = bytes;
    r.data = buf.data();
    index_.emplace(name, &r);
    return buf.data();
  }

  void split_plain(const ModelSpec& s, int l, const std::string& p, std::set<std::string>& used) {
    const int64_t E = s.experts, D = s.hidden, F = s.expert_ffn;
    const TensorRef& gu = need(p + "gate_up_proj", {E, D, 2 * F}, used);
    const TensorRef& dn = need(p + "down_proj", {E, F, D}, used);
    for (const TensorRef* t : {&gu, &dn})
      if (!is_weight_float(t->dtype))
        fail("tensor '{}' in {} has dtype {}; fused experts must be F32, F16 or BF16 (or MXFP4 _blocks/_scales)",
             t->name, t->file, dtype_name(t->dtype));
    for (int e = 0; e < s.experts; ++e) {
      const ExpertTensorNames n = arch_def(s.arch).expert_names(l, e);
      const size_t es = dtype_size(gu.dtype);
      const uint8_t* src = gu.data + uint64_t(e) * uint64_t(D) * uint64_t(2 * F) * es;
      uint8_t* gate = add(n.gate, gu, gu.dtype, F, D);
      uint8_t* up = add(n.up, gu, gu.dtype, F, D);
      for (int64_t k = 0; k < D; ++k)
        for (int64_t i = 0; i < F; ++i) {
          std::memcpy(gate + (uint64_t(i) * D + k) * es, src + (uint64_t(k) * 2 * F + 2 * i) * es, es);
          std::memcpy(up + (uint64_t(i) * D + k) * es, src + (uint64_t(k) * 2 * F + 2 * i + 1) * es, es);
        }
      const size_t ds = dtype_size(dn.dtype);
      const uint8_t* dsrc = dn.data + uint64_t(e) * uint64_t(F) * uint64_t(D) * ds;
      uint8_t* down = add(n.down, dn, dn.dtype, D, F);
      for (int64_t i = 0; i < F; ++i)
        for (int64_t r = 0; r < D; ++r)
          std::memcpy(down + (uint64_t(r) * F + i) * ds, dsrc + (uint64_t(i) * D + r) * ds, ds);
    }
  }

  void split_mxfp4(const ModelSpec& s, int l, const std::string& p, std::set<std::string>& used) {
    const int64_t E = s.experts, D = s.hidden, F = s.expert_ffn;
    if (D % quant::kQK != 0 || F % quant::kQK != 0)
      fail("{}: MXFP4 experts need hidden_size {} and intermediate_size {} to be multiples of {}",
           files_->describe(), D, F, quant::kQK);
    const TensorRef& gb = need(p + "gate_up_proj_blocks", {E, 2 * F, D / 32, 16}, used);
    const TensorRef& gs = need(p + "gate_up_proj_scales", {E, 2 * F, D / 32}, used);
    const TensorRef& db = need(p + "down_proj_blocks", {E, D, F / 32, 16}, used);
    const TensorRef& ds = need(p + "down_proj_scales", {E, D, F / 32}, used);
    for (const TensorRef* t : {&gb, &gs, &db, &ds})
      if (t->dtype != DType::U8)
        fail("tensor '{}' in {} has dtype {}; MXFP4 blocks and scales are U8", t->name, t->file,
             dtype_name(t->dtype));
    const uint64_t grow = uint64_t(D / 32), drow = uint64_t(F / 32);  // blocks per row
    const uint64_t gg = dtype_row_bytes(DType::MXFP4, D), dg = dtype_row_bytes(DType::MXFP4, F);
    for (int e = 0; e < s.experts; ++e) {
      const ExpertTensorNames n = arch_def(s.arch).expert_names(l, e);
      uint8_t* gate = add(n.gate, gb, DType::MXFP4, F, D);
      uint8_t* up = add(n.up, gb, DType::MXFP4, F, D);
      for (int64_t r = 0; r < 2 * F; ++r) {
        const uint64_t row = uint64_t(e) * uint64_t(2 * F) + uint64_t(r);
        uint8_t* dst = (r % 2 == 0 ? gate : up) + uint64_t(r / 2) * gg;
        gpt_oss_mxfp4_row_to_ggml(gb.data + row * grow * 16, gs.data + row * grow, D, dst);
      }
      uint8_t* down = add(n.down, db, DType::MXFP4, D, F);
      for (int64_t r = 0; r < D; ++r) {
        const uint64_t row = uint64_t(e) * uint64_t(D) + uint64_t(r);
        gpt_oss_mxfp4_row_to_ggml(db.data + row * drow * 16, ds.data + row * drow, F, down + uint64_t(r) * dg);
      }
    }
  }

  std::unique_ptr<TensorTable> files_;
  std::deque<TensorRef> refs_;
  std::deque<std::vector<uint8_t>> owned_;
};

}  // namespace

void gpt_oss_mxfp4_row_to_ggml(const uint8_t* blocks, const uint8_t* scales, int64_t cols, uint8_t* out) {
  for (int64_t b = 0; b < cols / quant::kQK; ++b) {
    const uint8_t* src = blocks + b * 16;
    auto* dst = reinterpret_cast<quant::BlockMXFP4*>(out) + b;
    uint8_t codes[quant::kQK];
    for (int j = 0; j < 16; ++j) {
      codes[2 * j] = src[j] & 0xF;
      codes[2 * j + 1] = src[j] >> 4;
    }
    dst->e = scales[b];
    for (int j = 0; j < 16; ++j) dst->qs[j] = uint8_t(codes[j] | (codes[j + 16] << 4));
  }
}

void gpt_oss_mxfp4_dequantize_row(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out) {
  for (int64_t b = 0; b < cols / quant::kQK; ++b)
    for (int j = 0; j < 16; ++j) {
      const uint8_t byte = blocks[b * 16 + j];
      const int exp = int(scales[b]) - 127;
      out[b * 32 + 2 * j] = std::ldexp(kE2M1[byte & 0xF], exp);
      out[b * 32 + 2 * j + 1] = std::ldexp(kE2M1[byte >> 4], exp);
    }
}

std::vector<ModelTensor> gpt_oss_stored_tensors(const ModelSpec& s) {
  std::vector<ModelTensor> out;
  for (ModelTensor& t : model_tensors(s, arch_def(s.arch))) {
    if (t.kind != ParamKind::ExpertLinear) {
      out.push_back(std::move(t));
      continue;
    }
    if (t.expert != 0 || t.slot != TensorSlot::ExpertGate) continue;  // one fused pair per layer
    const std::string p = layer_prefix(t.layer) + "mlp.experts.";
    const int64_t E = s.experts, D = s.hidden, F = s.expert_ffn;
    out.push_back({p + "gate_up_proj", {E, D, 2 * F}, ParamKind::ExpertLinear, t.layer, TensorSlot::ExpertGate, -1});
    out.push_back({p + "down_proj", {E, F, D}, ParamKind::ExpertLinear, t.layer, TensorSlot::ExpertDown, -1});
  }
  return out;
}

std::unique_ptr<TensorTable> gpt_oss_experts_view(const ModelSpec& spec, std::unique_ptr<TensorTable> files) {
  return std::make_unique<GptOssExpertsView>(spec, std::move(files));
}

}  // namespace moeflux
