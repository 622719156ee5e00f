// detail/process.hpp: child processes with streamed lines, exit status, signals and a timeout.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/detail/process.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <thread>

using namespace modelexport;
namespace fs = std::filesystem;

TEST_CASE("stdout, stderr lines and the exit status come back") {
    std::vector<std::pair<std::string, bool>> lines;
    run_options o;
    o.on_line = [&](const std::string& l, bool err) { lines.emplace_back(l, err); };
    run_result r = run_process("/bin/sh", {"-c", "echo out; echo err >&2; exit 3"}, o);
    CHECK_FALSE(r.ok());
    CHECK(r.exit_status == 3);
    CHECK(r.describe() == "exit status 3");
    CHECK(r.out == "out\n");
    CHECK(r.stderr_tail() == "err");
    CHECK(std::count(lines.begin(), lines.end(), std::make_pair(std::string("out"), false)) == 1);
    CHECK(std::count(lines.begin(), lines.end(), std::make_pair(std::string("err"), true)) == 1);
}

TEST_CASE("environment additions reach the child; a signal is reported") {
    run_options o;
    o.env = {{"MODELEXPORT_TEST_VALUE", "42"}};
    CHECK(run_process("/bin/sh", {"-c", "echo $MODELEXPORT_TEST_VALUE"}, o).out == "42\n");
    run_result killed = run_process("/bin/sh", {"-c", "kill -9 $$"});
    CHECK(killed.signal == 9);
    CHECK(killed.describe() == "killed by signal 9");
}

TEST_CASE("a hung child and its process group are stopped at the timeout") {
    run_options o;
    o.timeout = std::chrono::seconds(1);
    auto start = std::chrono::steady_clock::now();
    run_result r = run_process("/bin/sh", {"-c", "sleep 60 & sleep 60"}, o);
    CHECK(r.timed_out);
    CHECK(r.describe(o.timeout) == "timed out after 1 s");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("control characters in stderr are escaped in the tail") {
    run_result r = run_process("/bin/sh", {"-c", "printf 'a\\033[31mb\\n' >&2; exit 1"});
    CHECK(r.stderr_tail() == "a\\x1b[31mb");
}

TEST_CASE("a child dies with its parent, even when the parent is killed by SIGKILL") {
    test::temp_dir t;
    const fs::path pid_file = t / "child.pid";
    // The parent: a process of its own running a helper, killed with SIGKILL (no handler, no unwinding).
    pid_t parent = ::fork();
    REQUIRE(parent >= 0);
    if (parent == 0) {
        run_process("/bin/sh", {"-c", "echo $$ > '" + pid_file.string() + "'; exec sleep 120"});
        ::_exit(0);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!(fs::exists(pid_file) && fs::file_size(pid_file) > 0) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(fs::exists(pid_file));
    const pid_t child = std::stoi(test::read(pid_file));
    REQUIRE(::kill(child, 0) == 0);
    ::kill(parent, SIGKILL);
    ::waitpid(parent, nullptr, 0);
    // The child was reparented and killed; it is gone (or a zombie of init's, which reaps it at once).
    auto gone = [&] {
        std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) return true;
        auto close = line.rfind(')');
        return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
    };
    while (!gone() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(gone());
    if (!gone()) ::kill(child, SIGKILL);
}
