// modelexport/detail/cancel.hpp — stopping an export: signals and the --timeout deadline.
//
// One mechanism for both (docs/design.md §11): a process-wide flag set by the
// CLI's SIGINT/SIGTERM/SIGHUP handler and a process-wide deadline. Every loop
// that can take long — the child-process poll loop, copy and hash loops, the
// wait for the lock — calls check_cancel(), which throws. The exception unwinds
// through package_writer, whose destructor removes the staging directory and
// the lock; the CLI then exits with the error's code (128 + signal number for a
// signal, like a shell; 6 for the timeout).
#pragma once

#include "modelexport/error.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace modelexport {

/// A signal asked the export to stop. Exit code 128 + signal number.
class interrupted : public error {
public:
    explicit interrupted(int signo)
        : error(static_cast<exit_code>(128 + signo), "",
                "interrupted by signal " + std::to_string(signo) +
                    "; the exporter was stopped and nothing was committed") {}
};

namespace cancel {

/// The signal that asked to stop (0: none). Set from a signal handler: lock-free atomic.
inline std::atomic<int> pending_signal{0};
/// steady_clock nanoseconds after which work stops (0: no deadline), and the limit it came from.
inline std::atomic<std::int64_t> deadline_ns{0};
inline std::atomic<std::int64_t> limit_seconds{0};

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline bool expired() {
    std::int64_t d = deadline_ns.load();
    return d != 0 && now_ns() >= d;
}

/// Sets the deadline `seconds` from now for the lifetime of the object (0: none).
/// Seconds are clamped so that the clock arithmetic cannot overflow.
class deadline_scope {
public:
    explicit deadline_scope(std::int64_t seconds) : saved_(deadline_ns.load()), saved_limit_(limit_seconds.load()) {
        if (seconds <= 0) return;
        constexpr std::int64_t max_s = 100LL * 365 * 24 * 3600;  // ~100 years: far below int64 nanoseconds
        if (seconds > max_s) seconds = max_s;
        deadline_ns = now_ns() + seconds * 1000000000LL;
        limit_seconds = seconds;
    }
    ~deadline_scope() {
        deadline_ns = saved_;
        limit_seconds = saved_limit_;
    }
    deadline_scope(const deadline_scope&) = delete;
    deadline_scope& operator=(const deadline_scope&) = delete;

private:
    std::int64_t saved_, saved_limit_;
};

/// A speculative exporter (cache/export_cache.hpp starts it while the cache key is computed) is
/// stopped when the flag its thread set here becomes true: run_process() kills the child's
/// process group and throws `abandoned`.
inline thread_local const std::atomic<bool>* abandon_flag = nullptr;

class abandoned : public std::exception {
public:
    const char* what() const noexcept override {
        return "the speculative exporter was stopped: the export cache has the result";
    }
};

inline bool abandon_requested() { return abandon_flag && abandon_flag->load(); }

}  // namespace cancel

/// Throws when a signal asked to stop (interrupted) or the deadline passed
/// (export_failed naming `where`, the file or step being worked on).
inline void check_cancel(const std::string& where = {}) {
    if (int s = cancel::pending_signal.load()) throw interrupted(s);
    if (cancel::expired())
        throw export_failed(where,
                            "timed out after " + std::to_string(cancel::limit_seconds.load()) +
                                " s (--timeout bounds the whole export)",
                            "raise --timeout if the model is large");
}

}  // namespace modelexport
