// modelexport/export/progress.hpp — what a person sees while modelexport works.
//
// On a terminal, each step is a live line with the elapsed time (redrawn while
// a long step such as the torch export runs) that turns into "done" with what
// it did. Not on a terminal — a build log, CI, a pipe — nothing is printed
// unless verbose, and then plain lines without escape codes. Colour only on a
// terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb.
#pragma once

#include "modelexport/export/step_event.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace modelexport {

struct console_style {
    bool enabled = false;  ///< print progress at all
    bool live = false;     ///< redraw a live line (terminal)
    bool color = false;

    /// quiet: no progress (errors and hints are printed by the caller regardless). verbose: progress even when stderr
    /// is not a terminal.
    static console_style detect(bool quiet, bool verbose, int fd = STDERR_FILENO) {
        console_style s;
        bool tty = ::isatty(fd) == 1;
        const char* no_color = std::getenv("NO_COLOR");
        const char* term = std::getenv("TERM");
        s.enabled = !quiet && (tty || verbose);
        s.live = s.enabled && tty && !(term && std::string(term) == "dumb");
        s.color = s.live && !(no_color && *no_color);
        return s;
    }

    std::string bold(const std::string& t) const { return color ? "\033[1m" + t + "\033[0m" : t; }
    std::string green(const std::string& t) const { return color ? "\033[32m" + t + "\033[0m" : t; }
    std::string red(const std::string& t) const { return color ? "\033[31m" + t + "\033[0m" : t; }
    std::string dim(const std::string& t) const { return color ? "\033[2m" + t + "\033[0m" : t; }
};

/// Prints step events to stderr in the chosen style; thread-safe.
class progress_display {
public:
    explicit progress_display(console_style style) : style_(style) {}
    ~progress_display() { stop_ticker(); }

    void on_step(const step_event& e) {
        if (!style_.enabled) return;
        if (!e.finished) {
            stop_ticker();
            std::lock_guard<std::mutex> lock(mutex_);
            step_ = e.detail;
            start_ = std::chrono::steady_clock::now();
            if (style_.live) {
                draw();
                ticker_ = std::thread([this] { tick(); });
            } else {
                std::fprintf(stderr, "modelexport: %s...\n", e.detail.c_str());
            }
            return;
        }
        stop_ticker();
        std::lock_guard<std::mutex> lock(mutex_);
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.2f s", e.seconds);
        bool failed = e.detail == "failed";
        std::string mark = failed ? style_.red("failed") : style_.green("done");
        std::string line = "modelexport: " + style_.bold(e.step) + " " + mark + " in " + secs +
                           (failed || e.detail.empty() ? "" : ": " + e.detail);
        std::fprintf(stderr, "%s%s\n", style_.live ? "\r\033[K" : "", line.c_str());
    }

    /// A note between steps (waiting for a lock, the exact export command).
    void note(const std::string& text) {
        if (!style_.enabled) return;
        std::lock_guard<std::mutex> lock(mutex_);
        std::fprintf(stderr, "%smodelexport: %s\n", style_.live ? "\r\033[K" : "", text.c_str());
        if (running_) draw();
    }

    /// A line of the exporter's own output (shown with --verbose).
    void child_line(const std::string& text) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::fprintf(stderr, "%s  %s %s\n", style_.live ? "\r\033[K" : "", style_.dim("|").c_str(), text.c_str());
        if (running_) draw();
    }

private:
    void draw() {
        char elapsed[32];
        std::snprintf(elapsed, sizeof elapsed, "%.1f s",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
        std::fprintf(stderr, "\r\033[Kmodelexport: %s... %s", step_.c_str(), style_.dim(elapsed).c_str());
        std::fflush(stderr);
    }
    void tick() {
        std::unique_lock<std::mutex> lock(mutex_);
        running_ = true;
        while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) draw();
        running_ = false;
    }
    void stop_ticker() {
        if (!ticker_.joinable()) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        ticker_.join();
        stop_ = false;
    }

    console_style style_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::thread ticker_;
    bool stop_ = false;
    bool running_ = false;
    std::string step_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace modelexport
