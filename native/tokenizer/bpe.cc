// Byte-level BPE: tables, piece merging, memo, decode. See bpe.h for the algorithm.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstring>
#include <queue>

#include "common.h"

namespace gn {

namespace {

inline uint64_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  return h | 1;  // 0 marks an empty slot
}

}  // namespace

BpeTokenizer::BpeTokenizer(const int32_t* class_runs, size_t n_runs, const int32_t* byte_to_id,
                           const int32_t* merges, size_t n_merges, const uint8_t* token_bytes,
                           const int32_t* token_offsets, size_t n_tokens) {
  // code point classes: a dense table per 256-code-point block, identical blocks shared
  std::vector<uint8_t> dense(0x110000, kOther);
  for (size_t r = 0; r < n_runs; ++r) {
    int32_t first = class_runs[3 * r], last = class_runs[3 * r + 1], c = class_runs[3 * r + 2];
    GN_CHECK_RANGE(first >= 0 && last >= first && last < 0x110000 && c >= 0 && c <= 3,
                   "tokenizer: bad class run [", first, ", ", last, ", ", c, "]");
    std::fill(dense.begin() + first, dense.begin() + last + 1, static_cast<uint8_t>(c));
  }
  stage1_.resize(0x110000 >> 8);
  for (size_t blk = 0; blk < stage1_.size(); ++blk) {
    const uint8_t* src = dense.data() + (blk << 8);
    size_t found = stage2_.size() >> 8;
    for (size_t k = 0; k < (stage2_.size() >> 8); ++k)
      if (std::memcmp(stage2_.data() + (k << 8), src, 256) == 0) { found = k; break; }
    if (found == (stage2_.size() >> 8)) stage2_.insert(stage2_.end(), src, src + 256);
    stage1_[blk] = static_cast<uint16_t>(found);
  }
  for (int b = 0; b < 128; ++b) ascii_cls_[b] = dense[b];

  for (int b = 0; b < 256; ++b) {
    GN_CHECK_RANGE(byte_to_id[b] >= 0 && static_cast<size_t>(byte_to_id[b]) < n_tokens,
                   "tokenizer: byte ", b, " maps to id ", byte_to_id[b], " outside the vocabulary of ", n_tokens);
    byte_to_id_[b] = static_cast<uint32_t>(byte_to_id[b]);
  }

  size_t cap = 16;
  while (cap < 2 * n_merges + 16) cap <<= 1;
  pairs_.assign(cap, Pair{kEmpty, 0, 0});
  pair_mask_ = cap - 1;
  pair_shift_ = 64;
  for (size_t c = cap; c > 1; c >>= 1) --pair_shift_;
  for (size_t m = 0; m < n_merges; ++m) {
    int32_t l = merges[3 * m], r = merges[3 * m + 1], id = merges[3 * m + 2];
    GN_CHECK_RANGE(l >= 0 && r >= 0 && id >= 0 && static_cast<size_t>(l) < n_tokens &&
                       static_cast<size_t>(r) < n_tokens && static_cast<size_t>(id) < n_tokens,
                   "tokenizer: merge ", m, " [", l, ", ", r, " -> ", id, "] outside the vocabulary of ", n_tokens);
    uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
    size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> pair_shift_);
    while (pairs_[i].key != kEmpty && pairs_[i].key != key) i = (i + 1) & pair_mask_;
    if (pairs_[i].key == key) continue;  // a repeated merge keeps its first (lowest) rank
    pairs_[i] = Pair{key, static_cast<uint32_t>(m), static_cast<uint32_t>(id)};
  }
  set_tokens(token_bytes, token_offsets, n_tokens);
  clear_cache();
}

void BpeTokenizer::set_tokens(const uint8_t* token_bytes, const int32_t* token_offsets, size_t n_tokens) {
  GN_CHECK_RANGE(token_offsets[0] == 0, "tokenizer: token offsets must start at 0");
  for (size_t t = 0; t < n_tokens; ++t)
    GN_CHECK_RANGE(token_offsets[t + 1] >= token_offsets[t], "tokenizer: token offsets must not decrease (id ", t,
                   ")");
  bytes_.assign(token_bytes, token_bytes + token_offsets[n_tokens]);
  offsets_.assign(token_offsets, token_offsets + n_tokens + 1);
}

void BpeTokenizer::clear_cache() {
  cache_.assign(1u << 14, CacheSlot{0, 0, 0, 0, 0});
  cache_count_ = 0;
  cache_keys_.clear();
  cache_vals_.clear();
  cache_keys_.reserve(1u << 18);
  cache_vals_.reserve(1u << 16);
}

void BpeTokenizer::release_scratch() {
  constexpr size_t kKeep = 64u << 20;  // keep buffers up to 64 MB for the next call
  if (text_scratch.capacity() > kKeep) std::string().swap(text_scratch);
  if (ids_scratch.capacity() * sizeof(uint32_t) > kKeep) std::vector<uint32_t>().swap(ids_scratch);
}

void BpeTokenizer::cache_grow() {
  std::vector<CacheSlot> old;
  old.swap(cache_);
  cache_.assign(old.size() * 2, CacheSlot{0, 0, 0, 0, 0});
  size_t mask = cache_.size() - 1;
  for (const CacheSlot& s : old) {
    if (!s.hash) continue;
    size_t i = s.hash & mask;
    while (cache_[i].hash) i = (i + 1) & mask;
    cache_[i] = s;
  }
}

void BpeTokenizer::cache_insert(uint64_t h, const uint8_t* p, size_t n, const uint32_t* ids, size_t m) {
  if (cache_count_ >= kCacheMaxEntries) clear_cache();
  if (2 * (cache_count_ + 1) > cache_.size()) cache_grow();
  size_t mask = cache_.size() - 1;
  size_t i = h & mask;
  while (cache_[i].hash) i = (i + 1) & mask;
  cache_[i] = CacheSlot{h, static_cast<uint32_t>(cache_keys_.size()), static_cast<uint32_t>(n),
                        static_cast<uint32_t>(cache_vals_.size()), static_cast<uint32_t>(m)};
  cache_keys_.insert(cache_keys_.end(), p, p + n);
  cache_vals_.insert(cache_vals_.end(), ids, ids + m);
  ++cache_count_;
}

void BpeTokenizer::encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out) {
  if (n == 1) {
    out.push_back(byte_to_id_[p[0]]);
    return;
  }
  if (n > kCacheMaxBytes) {
    merge_long(p, n, out);
    return;
  }
  uint64_t h = hash_bytes(p, n);
  size_t mask = cache_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const CacheSlot& s = cache_[i];
    if (!s.hash) break;
    if (s.hash == h && s.key_len == n && std::memcmp(cache_keys_.data() + s.key_off, p, n) == 0) {
      const uint32_t* v = cache_vals_.data() + s.val_off;
      out.insert(out.end(), v, v + s.val_len);
      return;
    }
  }
  size_t start = out.size();
  merge_short(p, n, out);
  cache_insert(h, p, n, out.data() + start, out.size() - start);
}

// O(n^2) merging for pieces of at most kCacheMaxBytes bytes: ids[] and, for each adjacent pair, its rank and
// merged id packed as rank << 32 | id (all ones: no merge), so the smallest value is the best pair.
void BpeTokenizer::merge_short(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const {
  constexpr uint64_t kNone = ~0ull;
  uint32_t ids[kCacheMaxBytes];
  uint64_t cand[kCacheMaxBytes];
  auto pack = [&](uint32_t l, uint32_t r) -> uint64_t {
    const Pair* pr = find_pair(l, r);
    return pr ? (static_cast<uint64_t>(pr->rank) << 32) | pr->id : kNone;
  };
  for (size_t k = 0; k < n; ++k) ids[k] = byte_to_id_[p[k]];
  for (size_t k = 0; k + 1 < n; ++k) cand[k] = pack(ids[k], ids[k + 1]);
  size_t m = n;
  while (m > 1) {
    uint64_t best = kNone;
    size_t at = 0;
    for (size_t k = 0; k + 1 < m; ++k)
      if (cand[k] < best) { best = cand[k]; at = k; }
    if (best == kNone) break;
    ids[at] = static_cast<uint32_t>(best);
    // drop symbol at+1 and pair at
    for (size_t k = at + 1; k + 1 < m; ++k) ids[k] = ids[k + 1];
    for (size_t k = at; k + 2 < m; ++k) cand[k] = cand[k + 1];
    --m;
    if (at > 0) cand[at - 1] = pack(ids[at - 1], ids[at]);
    if (at + 1 < m) cand[at] = pack(ids[at], ids[at + 1]);
  }
  out.insert(out.end(), ids, ids + m);
}

// O(n log n) merging for long pieces: a doubly linked list of symbols and a heap of (rank, position)
// candidates, checked against the list when popped. Ties go to the leftmost pair, as in merge_short.
void BpeTokenizer::merge_long(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const {
  std::vector<uint32_t> ids(n);
  std::vector<int64_t> prev(n), next(n);
  for (size_t k = 0; k < n; ++k) {
    ids[k] = byte_to_id_[p[k]];
    prev[k] = static_cast<int64_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int64_t>(k + 1) : -1;
  }
  using Cand = std::pair<uint64_t, int64_t>;  // (rank << 32 | 0, position): smaller is better
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int64_t k) {
    if (k < 0 || next[k] < 0) return;
    uint32_t r = rank_of(ids[k], ids[next[k]]);
    if (r != kNoRank) heap.emplace(static_cast<uint64_t>(r), k);
  };
  for (size_t k = 0; k + 1 < n; ++k) push(static_cast<int64_t>(k));
  std::vector<uint8_t> dead(n, 0);
  while (!heap.empty()) {
    auto [r, k] = heap.top();
    heap.pop();
    if (dead[k] || next[k] < 0) continue;
    const Pair* pr = find_pair(ids[k], ids[next[k]]);
    if (!pr || pr->rank != r) continue;  // stale candidate
    int64_t j = next[k];
    ids[k] = pr->id;
    dead[j] = 1;
    next[k] = next[j];
    if (next[j] >= 0) prev[next[j]] = k;
    push(prev[k]);
    push(k);
  }
  for (int64_t k = 0; k >= 0; k = next[k]) out.push_back(ids[k]);
}

void BpeTokenizer::encode(const uint8_t* text, size_t n, std::vector<uint32_t>& out) {
  pretokenize(text, n, [&](size_t b, size_t e) { encode_piece(text + b, e - b, out); });
}

int64_t BpeTokenizer::find_invalid(const uint32_t* ids, size_t n, size_t* bad_index) const {
  size_t nt = n_tokens();
  for (size_t i = 0; i < n; ++i)
    if (ids[i] >= nt) {
      *bad_index = i;
      return ids[i];
    }
  return -1;
}

size_t BpeTokenizer::decoded_length(const uint32_t* ids, size_t n) const {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += offsets_[ids[i] + 1] - offsets_[ids[i]];
  return total;
}

void BpeTokenizer::decode(const uint32_t* ids, size_t n, uint8_t* dst) const {
  const uint8_t* src = bytes_.data();
  for (size_t i = 0; i < n; ++i) {
    uint32_t b = offsets_[ids[i]], e = offsets_[ids[i] + 1];
    std::memcpy(dst, src + b, e - b);
    dst += e - b;
  }
}

}  // namespace gn
