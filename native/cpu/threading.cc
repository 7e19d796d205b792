#include "cpu/threading.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GN_PAUSE() _mm_pause()
#else
#define GN_PAUSE() std::this_thread::yield()
#endif

namespace gn {

namespace {
thread_local bool tl_inside_job = false;
constexpr int kSpinIterations = 200000;  // ~ a few hundred microseconds before sleeping
}  // namespace

int ThreadPool::default_threads() {
  if (const char* s = std::getenv("GPT_NATIVE_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

ThreadPool::ThreadPool(int nthreads) : nthreads_(nthreads < 1 ? 1 : nthreads) {
  for (int t = 1; t < nthreads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(m_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_job(int tid) {
  const auto& fn = *job_;
  for (;;) {
    int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= ntasks_) break;
    fn(task, tid);
  }
}

void ThreadPool::worker_loop(int tid) {
  tl_inside_job = true;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpinIterations) {
        GN_PAUSE();
      } else {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
    }
    seen = g;
    {
      std::lock_guard<std::mutex> lk(m_);
      if (stop_) return;
    }
    run_job(tid);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

int ThreadPool::available_threads() {
  if (tl_inside_job || nthreads_ == 1) return 1;
  return nthreads_;
}

void ThreadPool::run_tasks(int64_t ntasks, const std::function<void(int64_t, int)>& fn) {
  if (ntasks <= 0) return;
  if (ntasks == 1 || nthreads_ == 1 || tl_inside_job || !busy_.try_lock()) {
    for (int64_t i = 0; i < ntasks; ++i) fn(i, 0);
    return;
  }
  std::lock_guard<std::mutex> own(busy_, std::adopt_lock);
  job_ = &fn;
  ntasks_ = ntasks;
  next_task_.store(0, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(m_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  tl_inside_job = true;
  try {
    run_job(0);
  } catch (...) {
    tl_inside_job = false;
    // let the workers finish before the job's function goes out of scope
    while (done_.load(std::memory_order_acquire) < nthreads_ - 1) GN_PAUSE();
    throw;
  }
  tl_inside_job = false;
  const int workers = nthreads_ - 1;
  int spins = 0;
  while (done_.load(std::memory_order_acquire) < workers) {
    if (++spins < kSpinIterations) GN_PAUSE();
    else std::this_thread::yield();
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t min_chunk) {
  if (n <= 0) return;
  int threads = available_threads();
  int64_t chunks = threads;
  if (min_chunk < 1) min_chunk = 1;
  if (chunks > (n + min_chunk - 1) / min_chunk) chunks = (n + min_chunk - 1) / min_chunk;
  if (chunks <= 1) { fn(0, n, 0); return; }
  run_tasks(chunks, [&](int64_t c, int tid) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    if (b < e) fn(b, e, tid);
  });
}

}  // namespace gn
