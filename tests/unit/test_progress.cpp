// What a person sees while modelexport works (export/progress.hpp): stderr captured in a file, terminals as
// pseudo-terminals.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export/progress.hpp"

#include <fcntl.h>
#include <stdlib.h>

using namespace modelexport;

namespace {

/// Runs `fn` with stderr redirected into a file and returns what it printed.
template <class Fn>
std::string captured_stderr(const test::temp_dir& t, Fn fn) {
    std::fflush(stderr);
    int saved = ::dup(STDERR_FILENO);
    int fd = ::open((t / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
    fn();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    return test::read(t / "stderr");
}

/// A pseudo-terminal's controlled side, open for the test (isatty is true on it).
struct pty {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY), slave = -1;
    pty() {
        REQUIRE(master >= 0);
        REQUIRE(::grantpt(master) == 0);
        REQUIRE(::unlockpt(master) == 0);
        slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
        REQUIRE(slave >= 0);
    }
    ~pty() { ::close(slave), ::close(master); }
};

}  // namespace

TEST_CASE("style: nothing off a terminal unless verbose; live lines and colour only on a terminal") {
    test::temp_dir t;
    int file = ::open((t / "log").c_str(), O_WRONLY | O_CREAT, 0600);
    CHECK_FALSE(console_style::detect(false, false, file).enabled);
    console_style verbose = console_style::detect(false, true, file);
    CHECK(verbose.enabled);
    CHECK_FALSE(verbose.live);
    CHECK_FALSE(verbose.color);
    ::close(file);

    pty term;
    ::setenv("TERM", "xterm", 1);
    ::unsetenv("NO_COLOR");
    console_style s = console_style::detect(false, false, term.slave);
    CHECK(s.live);
    CHECK(s.color);
    CHECK(s.bold("x") == "\033[1mx\033[0m");
    CHECK_FALSE(console_style::detect(true, true, term.slave).enabled);  // quiet wins
    ::setenv("NO_COLOR", "1", 1);
    CHECK_FALSE(console_style::detect(false, false, term.slave).color);
    ::unsetenv("NO_COLOR");
    ::setenv("TERM", "dumb", 1);
    CHECK_FALSE(console_style::detect(false, false, term.slave).live);
}

TEST_CASE("verbose off a terminal: plain lines, no escape codes") {
    test::temp_dir t;
    console_style plain;
    plain.enabled = true;
    std::string out = captured_stderr(t, [&] {
        progress_display d(plain);
        d.on_step({"export", "running the exporter", false, 0});
        d.note("waiting for the lock");
        d.on_step({"export", "4096 bytes of ONNX", true, 1.25});
        d.on_step({"commit", "failed", true, 0.5});
    });
    CHECK(out ==
          "modelexport: running the exporter...\n"
          "modelexport: waiting for the lock\n"
          "modelexport: export done in 1.25 s: 4096 bytes of ONNX\n"
          "modelexport: commit failed in 0.50 s\n");
    CHECK(out.find('\033') == std::string::npos);
}

TEST_CASE("disabled: step events and notes print nothing") {
    test::temp_dir t;
    std::string out = captured_stderr(t, [&] {
        progress_display d(console_style{});
        d.on_step({"export", "running", false, 0});
        d.note("a note");
        d.on_step({"export", "done", true, 1});
    });
    CHECK(out.empty());
}
