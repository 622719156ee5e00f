// modelexport/detail/process.hpp — running helper programs (the torch exporter, a
// user's export command, runtime checks) through Boost.Process.
//
// Output is streamed line by line to a callback while it runs, the last
// stderr lines are kept for the error message, and a hung child is stopped
// after a timeout together with everything it started (a process group).
// Both pipes are read by one poll() loop, so neither a line of megabytes nor
// a daemon that left the group (setsid) holding the pipes can outlast it.
// Nothing a helper started outlives it: when the group is stopped (the child
// ended, timed out, was cancelled) or modelexport dies (even by SIGKILL: a
// watcher process), the group is killed, and so is every process carrying the
// helper's environment mark (detail/run_cookie.hpp), which a descendant that
// left the group with setsid()/setpgid() still has. Marks an enclosing
// modelexport gave this one stay in the child's environment beside its own.
#pragma once

#include "modelexport/detail/cancel.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/detail/run_cookie.hpp"
#include "modelexport/error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace modelexport {

struct run_options {
    std::chrono::seconds timeout{0};  ///< 0: no limit
    /// Called for each line of the child's stdout (is_stderr false) and stderr.
    std::function<void(const std::string& line, bool is_stderr)> on_line;
    std::map<std::string, std::string> env;  ///< added to the inherited environment
    std::size_t keep_lines = 20;             ///< stderr lines kept for error messages
    std::size_t max_err_line = 2048;         ///< longer stderr lines are cut (error messages stay one readable line)
    std::size_t max_out = 16u << 20;         ///< stdout kept in run_result::out: about the last 16 MiB
};

struct run_result {
    int exit_status = -1;  ///< exit code when the child exited normally
    int signal = 0;        ///< the signal that ended it, if any
    bool timed_out = false;
    std::string out;                   ///< all of stdout
    std::deque<std::string> last_err;  ///< the last `keep_lines` stderr lines

    bool ok() const { return !timed_out && signal == 0 && exit_status == 0; }
    /// "exit status 3", "killed by signal 9", "timed out after 5 s"
    std::string describe(std::chrono::seconds timeout = {}) const {
        if (timed_out) return "timed out after " + std::to_string(timeout.count()) + " s";
        if (signal) return "killed by signal " + std::to_string(signal);
        return "exit status " + std::to_string(exit_status);
    }
    std::string stderr_tail() const {
        std::string s;
        for (const auto& l : last_err)
            s += (s.empty() ? "" : " | ") + printable(l);  // a child's bytes, quoted in one line
        return s;
    }
};

/// Finds `program` on PATH unless it names a path; empty when not found.
MODELEXPORT_ENTRY std::string find_program(const std::string& program);

/// Runs `program args...` to completion (or timeout). Throws export_failed
/// only when the program cannot be started; a failing child is reported in the result.
MODELEXPORT_ENTRY run_result run_process(const std::string& program, const std::vector<std::string>& args,
                                         const run_options& opts = {});

}  // namespace modelexport

// Boost.Process is seen only where processes are started: everywhere header-only, in
// src/process.cpp only when compiled (detail/linkage.hpp).
#if MODELEXPORT_DEFINES(PROCESS)
#include <boost/process.hpp>
#include <boost/process/extend.hpp>

namespace modelexport {

MODELEXPORT_ENTRY std::string find_program(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    auto p = boost::process::search_path(program);
    return p.empty() ? std::string() : p.string();
}

namespace detail {

/// Makes the child die with modelexport, even by SIGKILL, which gives no chance to stop it:
/// the kernel sends SIGKILL when the thread that forked it ends (run_process waits for the
/// child in that thread, so this is when the process dies). A parent that died between fork
/// and prctl is caught by comparing getppid() with the pid that forked (the child was
/// reparented then). Only helpers run through run_process get it; the detached background
/// store (cache/detached.hpp) is meant to outlive the command and does not.
struct die_with_parent : boost::process::extend::handler {
    pid_t parent = ::getpid();
    template <class Executor>
    void on_exec_setup(Executor&) const {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
    }
};

/// Splits a byte stream into lines. A line longer than `max` keeps its first
/// `max` bytes and says how many were dropped: a child printing megabytes
/// without a newline grows neither memory nor an error message.
class line_splitter {
public:
    explicit line_splitter(std::size_t max) : max_(max) {}
    template <class Emit>
    void feed(const char* p, std::size_t n, Emit&& emit) {
        for (std::size_t i = 0; i < n; ++i) {
            if (p[i] == '\n')
                flush(emit);
            else if (line_.size() < max_)
                line_ += p[i];
            else
                ++dropped_;
        }
    }
    template <class Emit>
    void flush(Emit&& emit) {
        if (dropped_) line_ += " [... " + std::to_string(dropped_) + " more bytes]";
        emit(line_);
        line_.clear();
        dropped_ = 0;
    }
    bool pending() const { return !line_.empty() || dropped_ != 0; }

private:
    std::size_t max_;
    std::string line_;
    std::size_t dropped_ = 0;
};

/// Kills a child's whole process group, and every process carrying the child's mark (`cookie`,
/// detail/run_cookie.hpp), when modelexport dies before it has ended them itself. The parent-death
/// signal reaches the child only: what the child started (a shell's commands, an exporter's
/// converter, a daemon that left the group) would outlive a SIGKILL of modelexport under init. A
/// forked watcher holds the read end of a pipe whose write end only modelexport has: end of file
/// without the "done" byte means modelexport is gone, and the watcher kills. It runs no code but
/// system calls (it is forked from a process with threads) and keeps no other descriptor (no lock,
/// no pipe).
class group_watch {
public:
    group_watch(pid_t group, const run_cookie& cookie) {
        int ends[2];
        if (group <= 0 || ::pipe2(ends, O_CLOEXEC) != 0) return;
        const pid_t modelexport = ::getpid();
        pid_t watcher = ::fork();
        if (watcher == 0) {
            const int done = ends[0];
            if (done > 0) ::syscall(SYS_close_range, 0u, static_cast<unsigned>(done - 1), 0u);
            ::syscall(SYS_close_range, static_cast<unsigned>(done + 1), ~0u, 0u);
            char byte = 0;
            ssize_t n;
            while ((n = ::read(done, &byte, 1)) < 0 && errno == EINTR) {}
            if (n == 0) {
                ::kill(-group, SIGKILL);
                kill_carriers(cookie, modelexport);  // never modelexport's pid, as in modelexport itself
            }
            ::_exit(0);
        }
        ::close(ends[0]);
        if (watcher < 0) {
            ::close(ends[1]);
            return;
        }
        done_ = ends[1];
        watcher_ = watcher;
    }
    group_watch(const group_watch&) = delete;
    group_watch& operator=(const group_watch&) = delete;
    /// The group has ended (or was terminated): the watcher leaves without killing.
    ~group_watch() {
        if (done_ < 0) return;
        const char byte = 1;
        while (::write(done_, &byte, 1) < 0 && errno == EINTR) {}
        ::close(done_);
        while (::waitpid(watcher_, nullptr, 0) < 0 && errno == EINTR) {}
    }

private:
    int done_ = -1;
    pid_t watcher_ = -1;
};

}  // namespace detail

MODELEXPORT_ENTRY run_result run_process(const std::string& program, const std::vector<std::string>& args,
                                         const run_options& opts) {
    namespace bp = boost::process;
    std::string exe = find_program(program);
    if (exe.empty()) throw export_failed(program, "program not found on PATH");
    run_result result;
    bp::pipe out, err;
    bp::group group;
    auto env = boost::this_process::environment();
    bp::environment child_env = env;
    // set(), not operator[]: Boost 1.74's environment find() compares past the end of
    // shorter entries (a heap-buffer-overflow AddressSanitizer reports).
    for (const auto& [k, v] : opts.env) child_env.set(k, v);
    // A name the child's environment already has is not taken, so the mark replaces no entry (a
    // caller's, an enclosing run's mark made by the same pid in another pid namespace) and none hides it.
    detail::run_cookie cookie;
    while (std::getenv(cookie.name().c_str()) || opts.env.count(cookie.name())) cookie = detail::run_cookie();
    child_env.set(cookie.name(), cookie.value());
    bp::child child;
    try {
        child = bp::child(bp::exe = exe, bp::args = args, bp::std_out > out, bp::std_err > err, bp::std_in < bp::null,
                          bp::env = child_env, group, detail::die_with_parent{});
    } catch (const std::exception& e) {
        throw export_failed(program, std::string("cannot start: ") + e.what());
    }
    detail::group_watch watch(group.native_handle(), cookie);  // destroyed after the last stop() below
    std::error_code ec;
    // SIGKILL to the child, everything in its group, and what left the group but carries the mark.
    auto stop = [&] {
        group.terminate(ec);
        detail::kill_carriers(cookie);
    };
    detail::line_splitter out_lines(1u << 20), err_lines(opts.max_err_line);
    auto on_out = [&](const std::string& line) {
        result.out += line;
        result.out += '\n';
        if (result.out.size() > opts.max_out) result.out.erase(0, result.out.size() - opts.max_out / 2);
        if (opts.on_line) opts.on_line(line, false);
    };
    auto on_err = [&](const std::string& line) {
        result.last_err.push_back(line);
        if (result.last_err.size() > opts.keep_lines) result.last_err.pop_front();
        if (opts.on_line) opts.on_line(line, true);
    };
    pollfd fds[2] = {{out.native_source(), POLLIN, 0}, {err.native_source(), POLLIN, 0}};
    std::vector<char> buf(1u << 16);
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> ended;  // when the child was reaped
    while (!ended || fds[0].fd >= 0 || fds[1].fd >= 0) {         // a child may close its output and keep running
        auto now = std::chrono::steady_clock::now();
        if (cancel::pending_signal.load()) {  // SIGINT/SIGTERM/SIGHUP to modelexport: stop the whole group, then unwind
            stop();
            child.wait(ec);
            check_cancel(program);
        }
        if (!ended && cancel::abandon_requested()) {  // a speculative exporter whose result the cache has
            stop();
            child.wait(ec);
            throw cancel::abandoned();
        }
        if (!ended && !child.running(ec)) {
            ended = now;
            stop();  // nothing the child started outlives it (and keeps our pipes open)
        } else if (!ended && !result.timed_out &&
                   ((opts.timeout.count() > 0 && now - start > opts.timeout) || cancel::expired())) {
            // its own limit, or the deadline of the whole operation (export --timeout)
            result.timed_out = true;
            stop();
        }
        // A descendant that left the group may hold the pipes open for ever: once the
        // child is gone, read what is still buffered, then stop waiting for end of file.
        if (ended && now - *ended > std::chrono::seconds(2)) break;
        if (::poll(fds, 2, 20) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = ::read(fds[i].fd, buf.data(), buf.size());
            if (r > 0 && i == 0)
                out_lines.feed(buf.data(), static_cast<std::size_t>(r), on_out);
            else if (r > 0)
                err_lines.feed(buf.data(), static_cast<std::size_t>(r), on_err);
            else if (r == 0 || (errno != EINTR && errno != EAGAIN))
                fds[i].fd = -1;  // end of file
        }
    }
    if (out_lines.pending()) out_lines.flush(on_out);
    if (err_lines.pending()) err_lines.flush(on_err);
    child.wait(ec);
    stop();  // what was started while the pipes were drained
    int status = child.native_exit_code();
    if (WIFSIGNALED(status))
        result.signal = WTERMSIG(status);
    else if (WIFEXITED(status))
        result.exit_status = WEXITSTATUS(status);
    return result;
}

}  // namespace modelexport
#endif
