// detail/process.hpp: child processes with streamed lines, exit status, signals and a timeout.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/cache/detached.hpp"
#include "modelexport/detail/process.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <map>
#include <sstream>
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

namespace {

/// True when `pid` no longer runs (a zombie nobody reaped yet counts as gone).
bool gone(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    auto close = line.rfind(')');
    return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

bool gone_within(pid_t pid, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!gone(pid) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return gone(pid);
}

/// A shell command that starts `sleep 300` in a session of its own (out of the helper's process
/// group, as a daemon leaves it), writes the sleeper's pid to `pid_file` and waits until it is there.
std::string escape_the_group(const fs::path& pid_file) {
    const std::string f = "'" + pid_file.string() + "'";
    return "setsid sh -c 'echo $$ > \"$0\"; exec sleep 300' " + f + " </dev/null >/dev/null 2>&1 & while [ ! -s " + f +
           " ]; do sleep 0.02; done";
}

pid_t wait_for_pid(const fs::path& pid_file, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!(fs::exists(pid_file) && fs::file_size(pid_file) > 0) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(fs::exists(pid_file));
    return std::stoi(test::read(pid_file));
}

}  // namespace

TEST_CASE("a process that left the helper's group (setsid) ends with the helper") {
    test::temp_dir t;
    const fs::path pid_file = t / "escaped.pid";
    run_result r = run_process("/bin/sh", {"-c", escape_the_group(pid_file)});
    CHECK(r.ok());
    const pid_t escaped = std::stoi(test::read(pid_file));
    REQUIRE(escaped > 0);
    CHECK(gone_within(escaped, std::chrono::seconds(5)));
    if (!gone(escaped)) ::kill(escaped, SIGKILL);
}

TEST_CASE("the environment mark is found exactly, across read chunks, and nowhere else") {
    const std::string want = "MODELEXPORT_RUN_ID_1_2=abc";
    auto holds = [&](const std::string& block) {
        int ends[2];
        REQUIRE(::pipe(ends) == 0);
        std::thread writer([&] {
            for (std::size_t at = 0; at < block.size();) {
                ssize_t w = ::write(ends[1], block.data() + at, block.size() - at);
                if (w <= 0) break;
                at += static_cast<std::size_t>(w);
            }
            ::close(ends[1]);
        });
        bool found = detail::environ_holds(ends[0], want.data(), want.size());
        writer.join();
        ::close(ends[0]);
        return found;
    };
    const std::string pad(4090, 'x');  // the entry after it crosses the 4096-byte chunk boundary
    CHECK(holds("A=1" + std::string(1, '\0') + want + std::string(1, '\0')));
    CHECK(holds("P=" + pad + std::string(1, '\0') + want + std::string(1, '\0') + "B=2" + std::string(1, '\0')));
    CHECK(holds("P=" + pad + std::string(1, '\0') + want));  // the last entry, without its NUL
    CHECK_FALSE(holds(want + "d" + std::string(1, '\0')));   // a longer value
    CHECK_FALSE(holds("X" + want + std::string(1, '\0')));   // inside another entry
    CHECK_FALSE(holds(want.substr(0, want.size() - 1) + std::string(1, '\0') + "c" + std::string(1, '\0')));
    CHECK_FALSE(holds("P=" + pad + want + std::string(1, '\0')));  // the same bytes, not at an entry's start
    CHECK_FALSE(holds(""));
}

namespace {

/// The marks (name to value) among the environment entries in `block`, separated by `sep`: `env`'s
/// output or a /proc/PID/environ.
std::map<std::string, std::string> marks_in(const std::string& block, char sep = '\n') {
    std::map<std::string, std::string> marks;
    std::istringstream in(block);
    for (std::string entry; std::getline(in, entry, sep);) {
        const auto eq = entry.find('=');
        if (eq != std::string::npos && detail::is_run_cookie_name(entry.data(), eq))
            marks[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    return marks;
}

/// The mark name of a helper this process starts ("MODELEXPORT_RUN_ID_<pid>_"), without its counter.
std::string own_mark_prefix() { return detail::run_cookie_prefix + std::to_string(::getpid()) + "_"; }

/// Runs this binary's test case `test_case` as a helper, a run nested in this one, with `variable`
/// naming `pid_file` in its environment: that case's inner part runs then.
run_result run_nested(const std::string& test_case, const char* variable, const fs::path& pid_file) {
    run_options o;
    o.env = {{variable, pid_file.string()}};
    return run_process(fs::read_symlink("/proc/self/exe").string(), {"--test-case=" + test_case, "--no-intro"}, o);
}

/// Puts an enclosing run's mark into this process's environment for the test's scope, as a
/// modelexport started by another one has it.
struct outer_mark {
    detail::run_cookie cookie;
    outer_mark() { ::setenv(cookie.name().c_str(), cookie.value().c_str(), 1); }
    ~outer_mark() { ::unsetenv(cookie.name().c_str()); }
};

}  // namespace

TEST_CASE("a mark is told from other entries by its name, and dropping takes marks only") {
    auto is_mark = [](const std::string& name) { return detail::is_run_cookie_name(name.data(), name.size()); };
    CHECK(is_mark(detail::run_cookie().name()));
    CHECK(is_mark("MODELEXPORT_RUN_ID_12_3"));
    CHECK(is_mark("MODELEXPORT_RUN_ID"));  // an older modelexport's, as the outer run
    for (const char* other :
         {"MODELEXPORT_RUN_IDX", "MODELEXPORT_RUN_ID_", "MODELEXPORT_RUN_ID_12", "MODELEXPORT_RUN_ID_12_",
          "MODELEXPORT_RUN_ID_1a_2", "MODELEXPORT_RUN_ID_1_2_3", "MODELEXPORT_RUN_I"})
        CHECK_MESSAGE(!is_mark(other), other);
    // In a child: the test's own environment (and whatever marks it inherited) stays as it is.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::setenv("MODELEXPORT_RUN_ID_1_2", "a", 1);
        ::setenv("MODELEXPORT_RUN_ID_3_4", "b", 1);
        ::setenv("MODELEXPORT_RUN_ID_1_2_KEEP", "c", 1);
        detail::drop_run_cookies();
        const char* keep = std::getenv("MODELEXPORT_RUN_ID_1_2_KEEP");
        const bool ok = !std::getenv("MODELEXPORT_RUN_ID_1_2") && !std::getenv("MODELEXPORT_RUN_ID_3_4") && keep &&
                        std::string(keep) == "c";
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

TEST_CASE("each helper gets a mark of its own") {
    auto marks = [](const run_options& o = {}) { return marks_in(run_process("/bin/sh", {"-c", "env"}, o).out); };
    const auto first = marks(), second = marks();
    REQUIRE(first.size() == 1);
    REQUIRE(second.size() == 1);
    CHECK(first.begin()->first.rfind(own_mark_prefix(), 0) == 0);
    CHECK(first.begin()->first != second.begin()->first);
    CHECK(first.begin()->second != second.begin()->second);
    // A caller's entry of the name the next mark would have replaces no mark: the mark takes another name.
    const detail::run_cookie probe;
    const std::string next =
        own_mark_prefix() + std::to_string(std::stoul(probe.name().substr(own_mark_prefix().size())) + 1);
    run_options o;
    o.env = {{next, "chosen"}};
    const auto chosen = marks(o);
    CHECK(chosen.size() == 2);
    CHECK(chosen.count(next));
    CHECK(chosen.at(next) == "chosen");
}

TEST_CASE("a nested run keeps the outer run's mark, and its kill spares what carries that mark only") {
    const outer_mark outer;
    const auto marks = marks_in(run_process("/bin/sh", {"-c", "env"}).out);
    REQUIRE(marks.size() == 2);
    CHECK(marks.count(outer.cookie.name()));
    CHECK(marks.at(outer.cookie.name()) == outer.cookie.value());
    for (const auto& [name, value] : marks)  // the other one is the inner helper's own
        if (name != outer.cookie.name()) CHECK(value.size() == 16);

    // A process of the outer run's (it has the outer mark only) outlives the inner helper; what
    // the helper started, out of its group, does not.
    const pid_t outer_only = ::fork();
    REQUIRE(outer_only >= 0);
    if (outer_only == 0) {
        ::setsid();
        ::execl("/bin/sleep", "sleep", "300", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    test::temp_dir t;
    const fs::path pid_file = t / "escaped.pid";
    CHECK(run_process("/bin/sh", {"-c", escape_the_group(pid_file)}).ok());
    const pid_t escaped = std::stoi(test::read(pid_file));
    CHECK(gone_within(escaped, std::chrono::seconds(5)));
    CHECK_FALSE(gone(outer_only));
    ::kill(outer_only, SIGKILL);
    ::waitpid(outer_only, nullptr, 0);
    if (!gone(escaped)) ::kill(escaped, SIGKILL);
}

TEST_CASE("the outer run's kill reaches what a nested run started, when the nested run dies with its watcher") {
    // Inner run: this binary, started as a helper below. Its own helper starts a process out of
    // the group, then kills the inner run's process group with SIGKILL, the inner run and its
    // watcher at once (as the outer run's stop does), so the inner run kills nothing itself.
    if (const char* inner = std::getenv("MODELEXPORT_TEST_NESTED_PID_FILE")) {
        run_process("/bin/sh",
                    {"-c", escape_the_group(inner) + "; kill -9 -" + std::to_string(::getpgrp()) + "; exec sleep 120"});
        return;
    }
    test::temp_dir t;
    const fs::path pid_file = t / "escaped.pid";
    CHECK(run_nested("the outer run's kill reaches*", "MODELEXPORT_TEST_NESTED_PID_FILE", pid_file).signal == SIGKILL);
    const pid_t escaped = wait_for_pid(pid_file, std::chrono::seconds(5));
    CHECK(gone_within(escaped, std::chrono::seconds(5)));
    if (!gone(escaped)) ::kill(escaped, SIGKILL);
}

namespace {

/// Runs the shell command `command` as a helper in a process of its own (the parent), waits until
/// `pid_file` names a process, then kills the parent with SIGKILL (no handler, no unwinding).
/// Returns the named process.
pid_t run_then_kill_the_parent(const std::string& command, const fs::path& pid_file) {
    pid_t parent = ::fork();
    REQUIRE(parent >= 0);
    if (parent == 0) {
        run_process("/bin/sh", {"-c", command});
        ::_exit(0);
    }
    const pid_t named = wait_for_pid(pid_file, std::chrono::seconds(20));
    REQUIRE(::kill(named, 0) == 0);
    ::kill(parent, SIGKILL);
    ::waitpid(parent, nullptr, 0);
    return named;
}

}  // namespace

TEST_CASE("a child dies with its parent, even when the parent is killed by SIGKILL") {
    test::temp_dir t;
    const fs::path pid_file = t / "child.pid";
    const pid_t child = run_then_kill_the_parent("echo $$ > '" + pid_file.string() + "'; exec sleep 120", pid_file);
    // The child was reparented and killed; it is gone (or a zombie of init's, which reaps it at once).
    CHECK(gone_within(child, std::chrono::seconds(20)));
    if (!gone(child)) ::kill(child, SIGKILL);
}

TEST_CASE("a process that left the helper's group dies when the parent is killed by SIGKILL") {
    test::temp_dir t;
    const fs::path pid_file = t / "escaped.pid";
    const pid_t escaped = run_then_kill_the_parent(escape_the_group(pid_file) + "; exec sleep 120", pid_file);
    CHECK(gone_within(escaped, std::chrono::seconds(5)));
    if (!gone(escaped)) ::kill(escaped, SIGKILL);
}

TEST_CASE("the background store drops the marks it inherited, and outlives the runs it is nested in") {
    // Inner run: this binary, started as a helper below (so its environment block holds marks),
    // starts a background store the way the cache does and ends once the store is running.
    if (const char* inner = std::getenv("MODELEXPORT_TEST_DETACHED_PID_FILE")) {
        const fs::path pid_file = inner;
        REQUIRE(run_detached({}, [&] {
            test::write(pid_file, std::to_string(::getpid()));
            std::this_thread::sleep_for(std::chrono::seconds(30));
        }));
        wait_for_pid(pid_file, std::chrono::seconds(20));
        return;
    }
    const outer_mark outer;  // the inner run is nested in two: it carries two marks
    test::temp_dir t;
    const fs::path pid_file = t / "store.pid";
    run_result r = run_nested("the background store drops the mark*", "MODELEXPORT_TEST_DETACHED_PID_FILE", pid_file);
    REQUIRE_MESSAGE(r.ok(), (r.out + r.stderr_tail()));
    const pid_t store = std::stoi(test::read(pid_file));
    detail::kill_carriers(outer.cookie);  // the end of the outer run's helper
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK_FALSE(gone(store));
    const auto marks = marks_in(test::read("/proc/" + std::to_string(store) + "/environ"), '\0');
    CHECK(marks.size() == 2);  // both overwritten in the block the store started with
    for (const auto& [name, value] : marks) CHECK_MESSAGE(value.find_first_not_of('-') == std::string::npos, name);
    ::kill(store, SIGKILL);
}
