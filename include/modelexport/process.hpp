// modelexport/process.hpp — running helper programs (the torch exporter, a
// user's export command, runtime checks) through Boost.Process.
//
// Output is streamed line by line to a callback while it runs, the last
// stderr lines are kept for the error message, and a hung child is stopped
// after a timeout together with everything it started (a process group).
#pragma once

#include "modelexport/error.hpp"

#include <boost/process.hpp>

#include <sys/wait.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
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
};

struct run_result {
    int exit_status = -1;  ///< exit code when the child exited normally
    int signal = 0;        ///< the signal that ended it, if any
    bool timed_out = false;
    std::string out;                  ///< all of stdout
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
        for (const auto& l : last_err) s += (s.empty() ? "" : " | ") + l;
        return s;
    }
};

/// Finds `program` on PATH unless it names a path; empty when not found.
inline std::string find_program(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    auto p = boost::process::search_path(program);
    return p.empty() ? std::string() : p.string();
}

/// Runs `program args...` to completion (or timeout). Throws export_failed
/// only when the program cannot be started; a failing child is reported in the result.
inline run_result run_process(const std::string& program, const std::vector<std::string>& args, const run_options& opts = {}) {
    namespace bp = boost::process;
    std::string exe = find_program(program);
    if (exe.empty()) throw export_failed(program, "program not found on PATH");
    run_result result;
    bp::ipstream out, err;
    bp::group group;
    auto env = boost::this_process::environment();
    bp::environment child_env = env;
    for (const auto& [k, v] : opts.env) child_env[k] = v;
    bp::child child;
    try {
        child = bp::child(bp::exe = exe, bp::args = args, bp::std_out > out, bp::std_err > err, bp::std_in < bp::null,
                          bp::env = child_env, group);
    } catch (const std::exception& e) {
        throw export_failed(program, std::string("cannot start: ") + e.what());
    }
    std::thread out_reader([&] {
        std::string line;
        while (std::getline(out, line)) {
            result.out += line + "\n";
            if (opts.on_line) opts.on_line(line, false);
        }
    });
    std::thread err_reader([&] {
        std::string line;
        while (std::getline(err, line)) {
            result.last_err.push_back(line);
            if (result.last_err.size() > opts.keep_lines) result.last_err.pop_front();
            if (opts.on_line) opts.on_line(line, true);
        }
    });
    auto start = std::chrono::steady_clock::now();
    std::error_code ec;
    while (child.running(ec)) {
        if (opts.timeout.count() > 0 && std::chrono::steady_clock::now() - start > opts.timeout) {
            result.timed_out = true;
            group.terminate(ec);  // SIGKILL to the child and everything it started
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    child.wait(ec);
    group.terminate(ec);  // nothing the exporter started outlives it (and keeps our pipes open)
    out_reader.join();
    err_reader.join();
    int status = child.native_exit_code();
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    else if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
    return result;
}

}  // namespace modelexport
