// One thread pool for every CPU kernel. The caller's thread takes part as thread 0, so a pool of N threads
// starts N-1 workers. Workers spin briefly after a job (the next kernel usually follows within microseconds),
// then sleep on a condition variable. One job runs at a time; a call made while the pool is busy (another
// thread's job, or a nested call from inside a job) runs serially on the calling thread, which is always
// correct, never deadlocks, and keeps kernels oblivious of who calls them.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gn {

class ThreadPool {
 public:
  explicit ThreadPool(int nthreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return nthreads_; }

  // Runs fn(task, tid) for task in [0, ntasks), tasks handed out dynamically. tid < size().
  void run_tasks(int64_t ntasks, const std::function<void(int64_t task, int tid)>& fn);

  // Static split of [0, n) into one contiguous chunk per thread: fn(begin, end, tid).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int tid)>& fn,
                    int64_t min_chunk = 1);

  // Threads a kernel may plan for (1 when the pool is busy or this is a nested call).
  int available_threads();

  static int default_threads();  // GPT_NATIVE_THREADS, else hardware concurrency

 private:
  void worker_loop(int tid);
  void run_job(int tid);

  int nthreads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;                         // held by the thread that owns the current job
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> done_{0};
  std::atomic<int64_t> next_task_{0};
  bool stop_ = false;
  int64_t ntasks_ = 0;
  const std::function<void(int64_t, int)>* job_ = nullptr;
};

// Serial helper when no pool is given.
inline void run_tasks(ThreadPool* pool, int64_t ntasks, const std::function<void(int64_t, int)>& fn) {
  if (pool && ntasks > 1) pool->run_tasks(ntasks, fn);
  else for (int64_t i = 0; i < ntasks; ++i) fn(i, 0);
}

}  // namespace gn
