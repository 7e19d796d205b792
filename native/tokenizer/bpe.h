// Byte-level BPE (GPT-2's tokenizer): the hot path of encoding and decoding. No N-API here.
//
// encode(text):  UTF-8 bytes -> pieces by GPT-2's pre-tokenisation pattern
//                  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//                (hand-written scanner; classes L, N, White_Space come from a code-point table built at load
//                from runs [first, last, class] that the TypeScript side generates), then each piece ->
//                byte ids -> repeated merging of the adjacent pair with the lowest merge rank (leftmost first)
//                until no pair has a rank. Pieces up to kCacheMaxBytes are memoised.
// decode(ids):   concatenation of each id's bytes (ids range-checked first).
// Piece merging is O(n^2) on short pieces (fast for the usual < 64 symbols) and O(n log n) with a heap
// over a linked list on long ones, so no input takes quadratic time overall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gn {

// Pre-tokeniser classes. A code point not listed in the runs is kOther.
enum : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

class BpeTokenizer {
 public:
  // class_runs: n_runs triples [first, last, class]; byte_to_id: 256 ids; merges: n_merges triples
  // [left id, right id, merged id] in rank order; token_bytes/token_offsets: every id's bytes
  // (token_offsets has n_tokens + 1 entries).
  BpeTokenizer(const int32_t* class_runs, size_t n_runs, const int32_t* byte_to_id, const int32_t* merges,
               size_t n_merges, const uint8_t* token_bytes, const int32_t* token_offsets, size_t n_tokens);

  // Replaces the decode table (after special tokens were added).
  void set_tokens(const uint8_t* token_bytes, const int32_t* token_offsets, size_t n_tokens);

  // Appends the ids of text (ordinary text: no special tokens) to out.
  void encode(const uint8_t* text, size_t n, std::vector<uint32_t>& out);

  // Calls emit(begin, end) for each pre-tokenised piece of text, in order.
  template <typename F>
  void pretokenize(const uint8_t* s, size_t n, F&& emit) const;

  // Returns the first id >= n_tokens (its index in bad_index), or -1 when all ids are valid.
  int64_t find_invalid(const uint32_t* ids, size_t n, size_t* bad_index) const;
  // Bytes of ids (all valid) written to dst, which has room for decoded_length(ids, n) bytes.
  void decode(const uint32_t* ids, size_t n, uint8_t* dst) const;
  size_t decoded_length(const uint32_t* ids, size_t n) const;

  size_t n_tokens() const { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  void clear_cache();

  // Buffers the caller may reuse across calls for the input bytes and the output ids (no fresh pages
  // each call); release_scratch() drops them when they grew large.
  std::string text_scratch;
  std::vector<uint32_t> ids_scratch;
  void release_scratch();

  uint8_t cls(uint32_t cp) const {
    return cp < 0x110000 ? stage2_[(static_cast<size_t>(stage1_[cp >> 8]) << 8) | (cp & 0xff)] : uint8_t{kOther};
  }

 private:
  struct Pair {
    uint64_t key;  // left << 32 | right; kEmpty when unused
    uint32_t rank;
    uint32_t id;
  };
  struct CacheSlot {
    uint64_t hash;  // 0: empty
    uint32_t key_off, key_len, val_off, val_len;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  static constexpr uint32_t kNoRank = 0xffffffffu;
  static constexpr size_t kCacheMaxBytes = 128;
  static constexpr size_t kCacheMaxEntries = 1u << 18;

  const Pair* find_pair(uint32_t left, uint32_t right) const {
    uint64_t key = (static_cast<uint64_t>(left) << 32) | right;
    size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> pair_shift_);
    for (;;) {
      const Pair& p = pairs_[i];
      if (p.key == key) return &p;
      if (p.key == kEmpty) return nullptr;
      i = (i + 1) & pair_mask_;
    }
  }
  uint32_t rank_of(uint32_t left, uint32_t right) const {
    const Pair* p = find_pair(left, right);
    return p ? p->rank : kNoRank;
  }

  void encode_piece(const uint8_t* p, size_t n, std::vector<uint32_t>& out);
  void merge_short(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const;
  void merge_long(const uint8_t* p, size_t n, std::vector<uint32_t>& out) const;
  void cache_insert(uint64_t h, const uint8_t* p, size_t n, const uint32_t* ids, size_t m);
  void cache_grow();

  // code point -> class: stage1_[cp >> 8] picks a 256-entry block of stage2_
  std::vector<uint16_t> stage1_;
  std::vector<uint8_t> stage2_;
  uint8_t ascii_cls_[128];
  uint32_t byte_to_id_[256];
  std::vector<Pair> pairs_;
  size_t pair_mask_ = 0;
  int pair_shift_ = 64;
  std::vector<uint8_t> bytes_;
  std::vector<uint32_t> offsets_;
  // memo of piece bytes -> ids
  std::vector<CacheSlot> cache_;
  size_t cache_count_ = 0;
  std::vector<uint8_t> cache_keys_;
  std::vector<uint32_t> cache_vals_;
};

// ---- UTF-8 and the scanner (inline: it is the inner loop) ----

inline bool utf8_cont(uint8_t b) { return (b & 0xc0) == 0x80; }

// Decodes the code point at s[i] (i < n). Invalid or truncated sequences count as one byte of class "other"
// (U+FFFD); strings from JavaScript never contain them.
inline uint32_t utf8_at(const uint8_t* s, size_t i, size_t n, size_t* len) {
  uint8_t b = s[i];
  if (b < 0x80) { *len = 1; return b; }
  if (b >= 0xc2 && b < 0xe0 && i + 1 < n && utf8_cont(s[i + 1])) {
    *len = 2;
    return (static_cast<uint32_t>(b & 0x1f) << 6) | (s[i + 1] & 0x3f);
  }
  if (b >= 0xe0 && b < 0xf0 && i + 2 < n && utf8_cont(s[i + 1]) && utf8_cont(s[i + 2])) {
    *len = 3;
    return (static_cast<uint32_t>(b & 0x0f) << 12) | (static_cast<uint32_t>(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
  }
  if (b >= 0xf0 && b < 0xf5 && i + 3 < n && utf8_cont(s[i + 1]) && utf8_cont(s[i + 2]) && utf8_cont(s[i + 3])) {
    *len = 4;
    return (static_cast<uint32_t>(b & 0x07) << 18) | (static_cast<uint32_t>(s[i + 1] & 0x3f) << 12) |
           (static_cast<uint32_t>(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
  }
  *len = 1;
  return 0xfffd;
}

template <typename F>
void BpeTokenizer::pretokenize(const uint8_t* s, size_t n, F&& emit) const {
  // class of the code point at i, and its length in bytes
  auto class_at = [&](size_t i, size_t* len) -> uint8_t {
    uint8_t b = s[i];
    if (b < 0x80) { *len = 1; return ascii_cls_[b]; }
    return cls(utf8_at(s, i, n, len));
  };
  // end of the run of class c starting at i
  auto run_end = [&](size_t i, uint8_t c) -> size_t {
    while (i < n) {
      uint8_t b = s[i];
      if (b < 0x80) {
        if (ascii_cls_[b] != c) break;
        ++i;
        continue;
      }
      size_t len;
      if (cls(utf8_at(s, i, n, &len)) != c) break;
      i += len;
    }
    return i;
  };
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    // 's 't 're 've 'm 'll 'd
    if (b == '\'' && i + 1 < n) {
      uint8_t c1 = s[i + 1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { emit(i, i + 2); i += 2; continue; }
      if (i + 2 < n) {
        uint8_t c2 = s[i + 2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          emit(i, i + 3);
          i += 3;
          continue;
        }
      }
    }
    size_t len;
    uint8_t c = class_at(i, &len);
    if (b == ' ' && i + 1 < n) {  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+"
      size_t len2;
      uint8_t c2 = class_at(i + 1, &len2);
      if (c2 != kSpace) {
        size_t e = run_end(i + 1 + len2, c2);
        emit(i, e);
        i = e;
        continue;
      }
    }
    size_t e = run_end(i + len, c);
    if (c != kSpace || e == n) {
      emit(i, e);
      i = e;
      continue;
    }
    // "\s+(?!\S)": a whitespace run followed by a non-space gives up its last character (when it has
    // more than one), which then starts the next piece; "\s+" takes a lone one.
    size_t last = e - 1;
    while (last > i && utf8_cont(s[last])) --last;
    if (last > i) e = last;
    emit(i, e);
    i = e;
  }
}

}  // namespace gn
