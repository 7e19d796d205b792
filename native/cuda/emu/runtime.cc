// gpt-native's CUDA emulator: fibers for CUDA threads, the barrier scheduler, and the CUDA runtime calls over
// host memory. What it models and what it checks is described in cuda_runtime_api.h (this folder).
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "capture_hook.h"
#include "cuda_runtime_api.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace gn_emu {

// Per OS thread (like __shared__), so Node worker threads may each run kernels; device memory is shared and
// its table is guarded by g_alloc_mu.
thread_local ThreadState* g_self = nullptr;

namespace {

// ---- errors ---------------------------------------------------------------------------------------------
thread_local cudaError_t g_last = cudaSuccess;  // per host thread, as in CUDA
thread_local std::string g_detail;  // what the emulator saw, appended to cudaGetErrorString of the last error

cudaError_t fail(cudaError_t e, const std::string& detail) {
  g_last = e;
  g_detail = detail;
  return e;
}

// ---- fibers ---------------------------------------------------------------------------------------------
constexpr size_t kStackBytes = 256 * 1024;  // per CUDA thread (a PROT_NONE page below it catches overflow)

enum class St { Ready, AtBlockBarrier, AtWarpBarrier, Done };
enum class WarpOp { Exchange, Sync, Ballot, Gather };

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while suspended
#if !defined(__x86_64__)
  ucontext_t uc;
#endif
  char* stack = nullptr;
  ThreadState ts;
  St st = St::Ready;
  unsigned mask = 0;  // warp barrier: the lanes that take part
  WarpOp op = WarpOp::Sync;
  uint64_t put = 0, got = 0;
  int src = -1;
  uint64_t* all = nullptr;  // Gather: receives every lane's `put` (lanes outside the mask untouched)
  // cp.async: copies issued and not landed (group -1: not committed yet), and the groups committed so far
  struct PendingCopy {
    void* dst;
    unsigned char bytes[16];
    int group;
  };
  std::vector<PendingCopy> cp;
  int cp_groups = 0;
};

struct Grid {
  std::vector<Fiber> fibers;  // one block's threads (stacks kept between launches)
  void* sched_sp = nullptr;
#if !defined(__x86_64__)
  ucontext_t sched_uc;
#endif
  Thunk thunk = nullptr;
  void* closure = nullptr;
  Fiber* cur = nullptr;
};
thread_local Grid g_grid;

}  // namespace
}  // namespace gn_emu

#if defined(__x86_64__)
// gn_emu_swap(save, load): pushes the callee-saved registers, MXCSR and the x87 control word, stores rsp in
// *save, switches to load and pops the same from there. gn_emu_entry starts a fiber: r12 = Fiber*, r13 = main.
extern "C" void gn_emu_swap(void** save, void* load);
extern "C" void gn_emu_entry();
asm(R"(
  .pushsection .text
  .globl gn_emu_swap
  .hidden gn_emu_swap
  .type gn_emu_swap,@function
gn_emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size gn_emu_swap,.-gn_emu_swap

  .globl gn_emu_entry
  .hidden gn_emu_entry
  .type gn_emu_entry,@function
gn_emu_entry:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size gn_emu_entry,.-gn_emu_entry
  .popsection
)");
#endif

namespace gn_emu {
namespace {

[[noreturn]] void fiber_main(Fiber* f) {
  g_grid.thunk(g_grid.closure);
  f->st = St::Done;
#if defined(__x86_64__)
  void* dead;
  gn_emu_swap(&dead, g_grid.sched_sp);
#else
  setcontext(&g_grid.sched_uc);
#endif
  std::abort();  // never resumed
}

#if !defined(__x86_64__)
Fiber* g_starting = nullptr;
void uc_entry() { fiber_main(g_starting); }
#endif

void start(Fiber* f) {
  if (!f->stack) {
    void* m = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "gpt-native CUDA emulator: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(m, 4096, PROT_NONE);
    f->stack = static_cast<char*>(m) + 4096;
  }
#if defined(__x86_64__)
  uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStackBytes) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = reinterpret_cast<void*>(&gn_emu_entry);                                // ret
  *--sp = nullptr;                                                              // rbp
  *--sp = nullptr;                                                              // rbx
  *--sp = f;                                                                    // r12
  *--sp = reinterpret_cast<void*>(&fiber_main);                                 // r13
  *--sp = nullptr;                                                              // r14
  *--sp = nullptr;                                                              // r15
  --sp;
  uint32_t csr;
  uint16_t cw;
  asm volatile("stmxcsr %0" : "=m"(csr));
  asm volatile("fnstcw %0" : "=m"(cw));
  std::memcpy(reinterpret_cast<char*>(sp), &csr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &cw, 2);
  f->sp = sp;
#else
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = kStackBytes;
  f->uc.uc_link = nullptr;
  makecontext(&f->uc, uc_entry, 0);
#endif
}

void resume(Fiber* f) {
  g_grid.cur = f;
  g_self = &f->ts;
#if defined(__x86_64__)
  gn_emu_swap(&g_grid.sched_sp, f->sp);
#else
  g_starting = f;
  swapcontext(&g_grid.sched_uc, &f->uc);
#endif
  g_self = nullptr;
  g_grid.cur = nullptr;
}

void yield_to_scheduler() {
  Fiber* f = g_grid.cur;
  if (!f) {
    std::fprintf(stderr, "gpt-native CUDA emulator: a barrier was reached outside a kernel\n");
    std::abort();
  }
#if defined(__x86_64__)
  gn_emu_swap(&f->sp, g_grid.sched_sp);
#else
  swapcontext(&f->uc, &g_grid.sched_uc);
#endif
  g_self = &f->ts;  // the scheduler cleared it while this fiber was suspended
}

std::string where(const char* name, const Fiber& f) {
  char b[200];
  std::snprintf(b, sizeof b, "%s, block (%u,%u,%u), thread (%u,%u,%u)", name, f.ts.block_idx.x, f.ts.block_idx.y,
                f.ts.block_idx.z, f.ts.thread_idx.x, f.ts.thread_idx.y, f.ts.thread_idx.z);
  return b;
}

// Releases the warp barriers that can be released. Returns false and sets *err when one can never release.
bool release_warps(const char* name, int nthreads, bool* released, std::string* err) {
  std::vector<Fiber>& fs = g_grid.fibers;
  const int nwarps = (nthreads + 31) / 32;
  for (int w = 0; w < nwarps; ++w) {
    const int base = w * 32;
    int first = -1;
    for (int l = 0; l < 32 && base + l < nthreads; ++l)
      if (fs[base + l].st == St::AtWarpBarrier) {
        first = base + l;
        break;
      }
    if (first < 0) continue;
    const Fiber& lead = fs[first];
    const unsigned mask = lead.mask;
    bool all_here = true;
    for (int l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) continue;
      if (base + l >= nthreads) {
        *err = "warp-collective with lane " + std::to_string(l) + " in its mask, which does not exist (the block has " +
               std::to_string(nthreads) + " threads) at " + where(name, lead);
        return false;
      }
      const Fiber& o = fs[base + l];
      if (o.st == St::Done) {
        *err = "warp-collective waits for lane " + std::to_string(l) + ", which has exited, at " + where(name, lead);
        return false;
      }
      if (o.st == St::AtWarpBarrier && (o.mask != mask || o.op != lead.op)) {
        *err = "lanes of one warp reached different warp-collectives (or masks) at " + where(name, lead) + " and " +
               where(name, o);
        return false;
      }
      if (o.st != St::AtWarpBarrier) all_here = false;
    }
    if (!all_here) continue;
    unsigned ballot_bits = 0;
    if (lead.op == WarpOp::Ballot)
      for (int l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && fs[base + l].put) ballot_bits |= 1u << l;
    for (int l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) continue;
      Fiber& o = fs[base + l];
      if (o.op == WarpOp::Exchange) {
        if (o.src < 0) {
          o.got = o.put;
        } else if (!(mask >> o.src & 1u)) {
          *err = "shuffle reads lane " + std::to_string(o.src) + ", which is not in the mask, at " + where(name, o);
          return false;
        } else {
          o.got = fs[base + o.src].put;
        }
      } else if (o.op == WarpOp::Ballot) {
        o.got = ballot_bits;
      } else if (o.op == WarpOp::Gather) {
        for (int m = 0; m < 32; ++m)
          if (mask >> m & 1u) o.all[m] = fs[base + m].put;
      }
      o.st = St::Ready;
    }
    *released = true;
  }
  return true;
}

// Runs one block, a warp at a time: a warp runs (its warp-collectives released as soon as all its lanes are there)
// until none of its lanes can go on (all at __syncthreads or done), then the next warp does. Warps (and threads in a
// warp) run in index order in even blocks and in reverse order in odd ones. So a read of another warp's
// shared-memory write with no __syncthreads between them sees stale data in one of the two orders: each warp runs
// ahead to its next block barrier, as a GPU warp may, instead of the warps moving in step from one collective to
// the next (which hid a missing barrier between a write and a read that each follow a collective).
bool run_block(const char* name, int nthreads, bool reverse, std::string* err) {
  std::vector<Fiber>& fs = g_grid.fibers;
  const int nwarps = (nthreads + 31) / 32;
  for (;;) {
    bool ran = false;
    for (int kw = 0; kw < nwarps; ++kw) {
      const int w = reverse ? nwarps - 1 - kw : kw;
      for (;;) {
        bool any = false;
        for (int kl = 0; kl < 32; ++kl) {
          const int i = w * 32 + (reverse ? 31 - kl : kl);
          if (i < nthreads && fs[i].st == St::Ready) {
            resume(&fs[i]);
            any = ran = true;
          }
        }
        if (!any) break;
        bool released = false;  // (this warp's collective, if all its lanes reached it)
        if (!release_warps(name, nthreads, &released, err)) return false;
      }
    }
    if (ran) continue;
    int live = 0, at_block = 0;
    for (int i = 0; i < nthreads; ++i) {
      if (fs[i].st != St::Done) ++live;
      if (fs[i].st == St::AtBlockBarrier) ++at_block;
    }
    if (live == 0) {
      for (int i = 0; i < nthreads; ++i)
        if (!fs[i].cp.empty()) {
          *err = "thread " + std::to_string(i) + " of " + std::string(name) + " exited with " +
                 std::to_string(fs[i].cp.size()) + " cp.async copies in flight (a cp.async.wait_group is missing)";
          return false;
        }
      return true;
    }
    bool released = false;
    if (!release_warps(name, nthreads, &released, err)) return false;
    if (released) continue;
    if (at_block == live) {  // exited threads count as arrived (as on sm_70+ hardware)
      for (int i = 0; i < nthreads; ++i)
        if (fs[i].st == St::AtBlockBarrier) fs[i].st = St::Ready;
      continue;
    }
    for (int i = 0; i < nthreads; ++i)
      if (fs[i].st == St::AtWarpBarrier) {
        *err = "deadlock: a warp-collective waits for lanes that are at __syncthreads(), at " + where(name, fs[i]);
        return false;
      }
    *err = "deadlock in " + std::string(name);
    return false;
  }
}

}  // namespace

void syncthreads() {
  g_grid.cur->st = St::AtBlockBarrier;
  yield_to_scheduler();
}

// cp.async as the hardware may run it: the 16 bytes are read when the copy is issued and land in shared memory
// only at the cp.async.wait_group that covers their group, so a read before that wait sees what was there before
void cp_async16(void* dst, const void* src, bool valid) {
  // both addresses 16-byte aligned, as cp.async.cg with 16 bytes requires (the source even when nothing is read)
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0) {
    std::fprintf(stderr, "gn_emu: cp.async of 16 bytes from %p to %p: an address is not 16-byte aligned\n", src, dst);
    std::abort();
  }
  Fiber::PendingCopy c;
  c.dst = dst;
  c.group = -1;
  if (valid) std::memcpy(c.bytes, src, 16);
  else std::memset(c.bytes, 0, 16);
  g_grid.cur->cp.push_back(c);
}
void cp_async_commit() {
  Fiber* f = g_grid.cur;
  for (auto& c : f->cp)
    if (c.group < 0) c.group = f->cp_groups;
  ++f->cp_groups;
}
void cp_async_wait(int n) {
  Fiber* f = g_grid.cur;
  const int last = f->cp_groups - n;  // groups below this one have landed
  std::vector<Fiber::PendingCopy> still;
  for (auto& c : f->cp) {
    if (c.group >= 0 && c.group < last) std::memcpy(c.dst, c.bytes, 16);
    else still.push_back(c);
  }
  f->cp.swap(still);
}

// The calling thread joins warp collective `op` over `mask`, offering `bits` (src: Exchange's source lane; all:
// Gather's destination), and waits until the warp's scheduler has resolved it; returns what it received
namespace {
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t bits, int src = -1, uint64_t* all = nullptr) {
  Fiber* f = g_grid.cur;
  f->st = St::AtWarpBarrier;
  f->op = op;
  f->mask = mask;
  f->put = bits;
  f->src = src;
  f->all = all;
  yield_to_scheduler();
  return f->got;
}
}  // namespace

uint64_t exchange(unsigned mask, uint64_t bits, int src) { return warp_collective(WarpOp::Exchange, mask, bits, src); }

void syncwarp(unsigned mask) { warp_collective(WarpOp::Sync, mask, 0); }

void gather(unsigned mask, uint64_t bits, uint64_t (&all)[32]) { warp_collective(WarpOp::Gather, mask, bits, -1, all); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 with the fragment layout of native/cuda/mma.cuh: every
// lane publishes where its fragments are, reads all 32, waits until every lane has read (so none changes its
// registers early), then computes its own four elements of D = A·B + C in fp32, k in order.
void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Frag {
    uint32_t a[4], b[2];
  } mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
  uint64_t all[32];
  gather(0xffffffffu, reinterpret_cast<uint64_t>(&mine), all);
  const auto bf = [](uint32_t r, int hi) {
    const uint32_t u = (hi ? r >> 16 : r & 0xffffu) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const Frag& f = *reinterpret_cast<const Frag*>(all[l]);
    const int g = l >> 2, t = l & 3;
    for (int e = 0; e < 2; ++e) {
      A[g][2 * t + e] = bf(f.a[0], e);
      A[g + 8][2 * t + e] = bf(f.a[1], e);
      A[g][2 * t + 8 + e] = bf(f.a[2], e);
      A[g + 8][2 * t + 8 + e] = bf(f.a[3], e);
      B[2 * t + e][g] = bf(f.b[0], e);
      B[2 * t + 8 + e][g] = bf(f.b[1], e);
    }
  }
  syncwarp(0xffffffffu);
  const int g = g_self->lane >> 2, t = g_self->lane & 3;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      float acc = d[2 * r + c];
      for (int k = 0; k < 16; ++k) acc += A[g + 8 * r][k] * B[k][2 * t + c];
      d[2 * r + c] = acc;
    }
}

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: lane l gives row l % 8 of matrix l / 8; every lane reads its
// elements of the four matrices, then waits for the others (the load is one instruction of the warp)
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
  if (reinterpret_cast<uintptr_t>(row) % 16 != 0) {
    std::fprintf(stderr, "gn_emu: ldmatrix row address %p is not 16-byte aligned (lane %d)\n", row, g_self->lane);
    std::abort();
  }
  uint64_t all[32];
  gather(0xffffffffu, reinterpret_cast<uint64_t>(row), all);
  const int lane = g_self->lane, g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      const auto* p = reinterpret_cast<const uint16_t*>(all[8 * i + g]);
      lo = p[2 * t];
      hi = p[2 * t + 1];
    } else {
      lo = reinterpret_cast<const uint16_t*>(all[8 * i + 2 * t])[g];
      hi = reinterpret_cast<const uint16_t*>(all[8 * i + 2 * t + 1])[g];
    }
    r[i] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
  }
  syncwarp(0xffffffffu);
}

unsigned ballot(unsigned mask, bool pred) {
  return static_cast<unsigned>(warp_collective(WarpOp::Ballot, mask, pred ? 1 : 0));
}

namespace {
std::mutex g_attr_mu;
std::map<const void*, size_t> g_max_dynamic_shared;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
}  // namespace

// The most dynamic shared memory a kernel may be allowed (sharedMemPerBlockOptin): sm_90's 227 KiB, or a smaller
// $GN_EMU_SMEM_OPTIN (bytes), as on GPUs with less (99 KiB on sm_89 and sm_120), so tests can take that path
size_t smem_optin() {
  static const size_t v = [] {
    const char* e = std::getenv("GN_EMU_SMEM_OPTIN");
    const long long n = e ? std::atoll(e) : 0;
    return n > 0 && static_cast<size_t>(n) < kMaxDynamicShared ? static_cast<size_t>(n) : kMaxDynamicShared;
  }();
  return v;
}

cudaError_t set_func_attribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (!fn || attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute");
  if (value < 0 || static_cast<size_t>(value) > smem_optin())
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: more dynamic shared memory than a block may have "
                                       "(227 KiB, or $GN_EMU_SMEM_OPTIN)");
  std::lock_guard<std::mutex> lock(g_attr_mu);
  g_max_dynamic_shared[fn] = static_cast<size_t>(value);
  return cudaSuccess;
}

unsigned char* dynamic_shared() {
  alignas(16) static thread_local unsigned char buf[kMaxDynamicShared];
  return buf;
}

void run_grid(const void* fn, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t, Thunk thunk,
              void* closure) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0 || nthreads > 1024 || block.z > 64 ||
      grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu) {
    char b[200];
    std::snprintf(b, sizeof b, "launch of %s with grid (%u,%u,%u), block (%u,%u,%u)", name, grid.x, grid.y, grid.z,
                  block.x, block.y, block.z);
    fail(cudaErrorInvalidConfiguration, b);
    return;
  }
  if (smem > 48 * 1024) {  // allowed up to the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize
    size_t max = 48 * 1024;
    {
      std::lock_guard<std::mutex> lock(g_attr_mu);
      auto it = g_max_dynamic_shared.find(fn);
      if (it != g_max_dynamic_shared.end() && it->second > max) max = it->second;
    }
    if (smem > max) {
      fail(cudaErrorInvalidValue, std::string("launch of ") + name + " asks for " + std::to_string(smem) +
                                      " bytes of dynamic shared memory, more than 48 KiB and its "
                                      "cudaFuncAttributeMaxDynamicSharedMemorySize (" + std::to_string(max) + ")");
      return;
    }
  }
  if (g_grid.cur) {
    std::fprintf(stderr, "gpt-native CUDA emulator: kernel launch from inside a kernel\n");
    std::abort();
  }
  g_grid.thunk = thunk;
  g_grid.closure = closure;
  if (g_grid.fibers.size() < nthreads) g_grid.fibers.resize(nthreads);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        for (uint64_t t = 0; t < nthreads; ++t) {
          Fiber& f = g_grid.fibers[t];
          f.ts.thread_idx = dim3(static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                                 static_cast<unsigned>(t / (uint64_t(block.x) * block.y)));
          f.ts.block_idx = dim3(bx, by, bz);
          f.ts.block_dim = block;
          f.ts.grid_dim = grid;
          f.ts.lane = static_cast<int>(t % 32);
          f.ts.warp = static_cast<int>(t / 32);
          f.st = St::Ready;
          f.cp.clear();
          f.cp_groups = 0;
          start(&f);
        }
        std::string err;
        const bool reverse = ((uint64_t(bz) * grid.y + by) * grid.x + bx) % 2 == 1;
        if (!run_block(name, static_cast<int>(nthreads), reverse, &err)) {
          fail(cudaErrorLaunchFailure, err);
          return;
        }
      }
}

// ---- device memory ----------------------------------------------------------------------------------------
namespace {

struct Alloc {
  char* map;
  size_t map_bytes;
  size_t bytes;
};
std::map<uintptr_t, Alloc> g_allocs;  // by user pointer
std::mutex g_alloc_mu;
size_t g_in_use = 0;
constexpr size_t kTotal = size_t(16) << 30;  // what cudaMemGetInfo reports as the device's memory

// true when [p, p+n) lies inside one allocation
bool on_device(const void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return false;
  --it;
  return a >= it->first && a + n <= it->first + it->second.bytes;
}

cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* call) {
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
  if (dst_dev && !on_device(dst, bytes))
    return fail(cudaErrorInvalidValue, std::string(call) + ": the destination range is not inside one device allocation");
  if (src_dev && !on_device(src, bytes))
    return fail(cudaErrorInvalidValue, std::string(call) + ": the source range is not inside one device allocation");
  return cudaSuccess;
}

}  // namespace
}  // namespace gn_emu

using namespace gn_emu;

struct CUstream_st {
  GnEmuStreamHead head;  // first: the emulated cuBLAS reads it
  unsigned flags = 0;
  bool capturing = false, invalidated = false;
  std::string why;  // what invalidated the capture
  std::vector<std::function<void()>> recorded;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};

namespace gn_emu {
namespace {
thread_local CUstream_st* g_capture = nullptr;  // the stream this thread is capturing

// A call that a capture forbids (ThreadLocal and Global modes): an error, and the capture is invalidated
cudaError_t forbidden(const char* call) {
  CUstream_st* s = g_capture;
  std::string why = std::string(call) + " during stream capture";
  if (!s->invalidated) {
    s->invalidated = true;
    s->why = why;
  }
  return fail(cudaErrorStreamCaptureUnsupported, why);
}
#define GN_EMU_NO_CAPTURE(call) \
  do {                          \
    if (g_capture) return forbidden(call); \
  } while (0)

int capture_hook(void* stream, std::function<void()>* op) {
  int r = capture(static_cast<cudaStream_t>(stream), *op);
  delete op;
  return r;
}
}  // namespace

int capture(cudaStream_t s, std::function<void()>& op) {
  if (s && s->capturing) {
    if (!s->invalidated) s->recorded.push_back(std::move(op));
    return 1;
  }
  if (g_capture && !s) {  // the legacy stream would synchronise with the captured one
    if (!g_capture->invalidated) {
      g_capture->invalidated = true;
      g_capture->why = "work on the legacy stream during stream capture";
    }
    fail(cudaErrorStreamCaptureImplicit, "work on the legacy stream during stream capture");
    return 2;
  }
  return 0;
}

namespace {
// stream work op: run now, or recorded while s is being captured (an error where the capture forbids it)
cudaError_t on_stream(cudaStream_t s, std::function<void()>& op) {
  const int c = capture(s, op);
  if (c == 2) return g_last;
  if (c == 0) op();
  return cudaSuccess;
}
}  // namespace
}  // namespace gn_emu

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "the emulator has device 0 only");
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice, "the emulator has device 0 only");
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "gpt-native CUDA emulator (host CPU)");
  prop->totalGlobalMem = kTotal;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = gn_emu::smem_optin();
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  GN_EMU_NO_CAPTURE("cudaMalloc");
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  if (bytes > kTotal - g_in_use) return fail(cudaErrorMemoryAllocation, "out of emulated device memory");
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t rounded = (bytes + 7) & ~size_t(7);  // 8-byte aligned; overruns of more than 7 bytes fault
  const size_t data_pages = (rounded + page - 1) / page;
  const size_t map_bytes = (data_pages + 1) * page;  // + a PROT_NONE page after the data
  void* m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation, "mmap failed");
  char* base = static_cast<char*>(m);
  mprotect(base + data_pages * page, page, PROT_NONE);
  char* user = base + data_pages * page - rounded;  // the data ends (8-byte rounded) at the guard page
  std::memset(user, 0xff, rounded);                  // NaN as floats: reading what nobody wrote shows
  g_allocs[reinterpret_cast<uintptr_t>(user)] = Alloc{base, map_bytes, bytes};
  g_in_use += bytes;
  *p = user;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  GN_EMU_NO_CAPTURE("cudaFree");
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end()) return fail(cudaErrorInvalidValue, "cudaFree of a pointer that cudaMalloc did not return");
  munmap(it->second.map, it->second.map_bytes);  // later use of the pointer faults
  g_in_use -= it->second.bytes;
  g_allocs.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = nullptr;
  GN_EMU_NO_CAPTURE("cudaMallocHost");
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation, "cudaMallocHost: out of host memory");
}
cudaError_t cudaFreeHost(void* p) {
  GN_EMU_NO_CAPTURE("cudaFreeHost");
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  *free_bytes = kTotal - g_in_use;
  *total_bytes = kTotal;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  GN_EMU_NO_CAPTURE("cudaMemcpy");
  cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy");
  if (e != cudaSuccess) return e;
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync");
  if (e != cudaSuccess) return e;
  std::function<void()> op = [=] {
    if (bytes) std::memmove(dst, src, bytes);
  };
  return on_stream(s, op);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
  if (width > dpitch || width > spitch)
    return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width is larger than a pitch");
  if (height == 0 || width == 0) return cudaSuccess;
  const size_t dspan = (height - 1) * dpitch + width, sspan = (height - 1) * spitch + width;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev && !on_device(dst, dspan))
    return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: the destination rows are not inside one device allocation");
  if (src_dev && !on_device(src, sspan))
    return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: the source rows are not inside one device allocation");
  std::function<void()> op = [=] {
    for (size_t r = 0; r < height; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  };
  return on_stream(s, op);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  GN_EMU_NO_CAPTURE("cudaMemset");
  if (bytes && !on_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset: the range is not device memory");
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (bytes && !on_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync: the range is not device memory");
  std::function<void()> op = [=] {
    if (bytes) std::memset(p, value, bytes);
  };
  return on_stream(s, op);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st();
  (*s)->head.capture = capture_hook;
  (*s)->flags = flags;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamDestroy of a stream being captured");
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  GN_EMU_NO_CAPTURE("cudaStreamSynchronize");
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  GN_EMU_NO_CAPTURE("cudaDeviceSynchronize");
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!s) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture on the legacy stream");
  if (mode == cudaStreamCaptureModeRelaxed)
    return fail(cudaErrorInvalidValue, "the emulator captures in the Global and ThreadLocal modes only");
  if (s->capturing || g_capture)
    return fail(cudaErrorIllegalState, "cudaStreamBeginCapture while a capture is under way on this thread");
  s->capturing = true;
  s->invalidated = false;
  s->why.clear();
  s->recorded.clear();
  g_capture = s;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (!graph) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: null graph pointer");
  *graph = nullptr;
  if (!s || !s->capturing) return fail(cudaErrorIllegalState, "cudaStreamEndCapture on a stream that is not capturing");
  s->capturing = false;
  g_capture = nullptr;
  std::vector<std::function<void()>> ops;
  ops.swap(s->recorded);
  if (s->invalidated) return fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated: " + s->why);
  *graph = new CUgraph_st{std::move(ops)};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  if (!status) return fail(cudaErrorInvalidValue, "cudaStreamIsCapturing: null status pointer");
  *status = !s || !s->capturing ? cudaStreamCaptureStatusNone
            : s->invalidated    ? cudaStreamCaptureStatusInvalidated
                                : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: null argument");
  GN_EMU_NO_CAPTURE("cudaGraphInstantiate");
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: null graph");
  std::function<void()> op = [exec] {
    for (auto& o : exec->ops) o();
  };
  const int c = capture(s, op);
  if (c == 2) return g_last;
  if (c == 1) return fail(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a captured stream (not emulated)");
  op();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  bool recorded = false;
};
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaEventCreate: null event pointer");
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaEventRecord: null event");
  std::function<void()> op = [e] {
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
  };
  return on_stream(s, op);
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  GN_EMU_NO_CAPTURE("cudaEventSynchronize");
  return e ? cudaSuccess : fail(cudaErrorInvalidValue, "cudaEventSynchronize: null event");
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end || !start->recorded || !end->recorded)
    return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: an event that was not recorded");
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  cudaError_t e = g_last;
  g_last = cudaSuccess;  // emulator errors are not sticky, so one failing test does not fail the rest
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  static thread_local std::string text;
  text = e == cudaSuccess ? "no error" : std::string("emulator: ") + (g_detail.empty() ? "error" : g_detail);
  return text.c_str();
}
