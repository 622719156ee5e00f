// modelexport/export/step_event.hpp — the steps of an export as progress displays see them.
//
// Shared by the export pipeline (export.hpp), which times its steps, and the
// progress display (export/progress.hpp), which shows them; neither needs the other.
#pragma once

#include "modelexport/detail/cancel.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace modelexport {

/// A step of an export starting or ending, for progress displays.
struct step_event {
    std::string step;    ///< resolve, export, project, copy, validate, commit
    std::string detail;  ///< what it does (start) or what it did (end)
    bool finished = false;
    double seconds = 0;  ///< elapsed, when finished
};

/// Seconds per finished step, in order (the report's steps_seconds).
using step_times = std::vector<std::pair<std::string, double>>;

/// Times steps and tells `on_step` when each starts and ends; a step still
/// running when the timer is destroyed (an exception left it) ends as "failed".
class step_timer {
public:
    step_timer(step_times& out, std::function<void(const step_event&)> on_step)
        : out_(out), on_step_(std::move(on_step)) {}
    step_timer(const step_timer&) = delete;
    step_timer& operator=(const step_timer&) = delete;
    ~step_timer() {
        if (!current_.empty() && on_step_) on_step_({current_, "failed", true, seconds()});
    }
    void begin(const std::string& step, const std::string& what) {
        check_cancel(step);  // between steps: a signal or the --timeout deadline stops the export here
        current_ = step;
        start_ = std::chrono::steady_clock::now();
        if (on_step_) on_step_({step, what, false, 0.0});
    }
    /// Begins `step` unless it is running already, ending the running step, if any, with
    /// `summary()`: for a step entered from more than one place, such as a callback that may run
    /// twice or not at all, and again after it.
    template <class Summary>
    void enter(const std::string& step, const std::string& what, Summary&& summary) {
        if (current_ == step) return;
        if (!current_.empty()) end(summary());
        begin(step, what);
    }
    void end(const std::string& summary = {}) {
        double s = seconds();
        out_.emplace_back(current_, s);
        if (on_step_) on_step_({current_, summary, true, s});
        current_.clear();
    }

private:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
    step_times& out_;
    std::function<void(const step_event&)> on_step_;
    std::string current_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace modelexport
