// modelexport/detail/run_cookie.hpp — finding every process a helper started, even one that left
// its process group.
//
// run_process() (detail/process.hpp) gives each helper an environment entry of its own,
// MODELEXPORT_RUN_ID_<pid>_<counter>=<random>. Fork and exec pass it on, so a descendant that
// called setsid() or setpgid() (a daemon, `setsid sleep &` in a user's command) is out of the
// helper's process group but still carries the entry; this is how Jenkins' ProcessTreeKiller finds
// what a build started. kill_carriers() reads /proc/PID/environ of this user's processes and kills
// those holding the entry. Each run's mark has a name of its own, so marks accumulate: a
// modelexport run nested under another (a `--strategy command` running modelexport, a build run by
// a helper) keeps the outer run's mark beside its own, and the outer run's kill still reaches what
// the inner run started. One shared name would make the inner mark replace the outer one. The scan
// makes system calls only and uses stack buffers: the watcher that runs it when modelexport was
// killed is forked from a process with threads, where malloc (and so opendir, std::string) may
// deadlock. A process that rewrote or cleared its environment (env -i) is not found; neither is one
// of another user.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern char** environ;

namespace modelexport::detail {

/// What every mark's name starts with; the rest is "<pid>_<counter>" of the run that made it.
inline constexpr char run_cookie_prefix[] = "MODELEXPORT_RUN_ID_";

/// One helper's mark, "MODELEXPORT_RUN_ID_<pid>_<counter>=<random>": the name is unique per
/// run_process call among this machine's live processes, the random value against a reused pid.
/// A fixed array, not a std::string: the watcher reads it after fork.
struct run_cookie {
    char entry[96] = {};
    std::size_t size = 0;
    std::size_t name_size = 0;  ///< bytes before the '='

    run_cookie() {
        static std::atomic<unsigned long> counter{0};
        // No entropy (getrandom fails): the clock and the counter still differ per call.
        std::uint64_t random = std::chrono::steady_clock::now().time_since_epoch().count(), entropy = 0;
        if (::getrandom(&entropy, sizeof entropy, GRND_NONBLOCK) == sizeof entropy) random ^= entropy;
        int n = std::snprintf(entry, sizeof entry, "%s%ld_%lu=%016llx", run_cookie_prefix,
                              static_cast<long>(::getpid()), ++counter, static_cast<unsigned long long>(random));
        size = n > 0 ? static_cast<std::size_t>(n) : 0;
        name_size = size ? static_cast<std::size_t>(std::strchr(entry, '=') - entry) : 0;
    }
    std::string name() const { return std::string(entry, entry + name_size); }
    std::string value() const { return size ? std::string(entry + name_size + 1, entry + size) : std::string(); }
};

/// True when the environment block read from `fd` (a /proc/PID/environ: NUL-separated entries)
/// holds the entry `want` (`n` bytes) exactly: not as the prefix of a longer value, not inside
/// another entry. Read in chunks; a partial match carries over from one chunk to the next, so an
/// entry split by a chunk boundary is found. Async-signal-safe.
inline bool environ_holds(int fd, const char* want, std::size_t n) noexcept {
    char buf[4096];
    std::size_t matched = 0;  // bytes of `want` the current entry starts with
    bool differs = false;     // the current entry is not `want`
    for (;;) {
        ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return false;
        if (r == 0) return !differs && matched == n && n > 0;  // a last entry without its NUL
        for (ssize_t i = 0; i < r; ++i) {
            if (buf[i] == '\0') {
                if (!differs && matched == n && n > 0) return true;
                matched = 0;
                differs = false;
            } else if (!differs && matched < n && buf[i] == want[matched]) {
                ++matched;
            } else {
                differs = true;
            }
        }
    }
}

/// One pass of kill_carriers(): SIGKILL to every process of this user whose environment holds
/// `entry`, but this process and `spare`. Counts those not signalled by an earlier pass (`seen`,
/// `n_seen`: pids already signalled; when full, every hit counts as new, which only costs a pass).
inline int kill_carriers_pass(const char* entry, std::size_t n, pid_t spare, pid_t* seen, std::size_t& n_seen,
                              std::size_t max_seen) noexcept {
    const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return 0;
    const pid_t self = ::getpid();
    const uid_t uid = ::geteuid();
    struct dirent64_head {  // the kernel's struct linux_dirent64, which glibc does not declare
        std::uint64_t ino;
        std::int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
    };
    alignas(8) char buf[8192];
    int fresh = 0;
    for (;;) {
        long got = ::syscall(SYS_getdents64, proc, buf, sizeof buf);
        if (got <= 0) break;
        for (long at = 0; at < got;) {
            const auto* d = reinterpret_cast<const dirent64_head*>(buf + at);
            at += d->reclen;
            pid_t pid = 0;
            const char* c = d->name;
            for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
            if (c == d->name || *c != '\0' || pid == self || pid == spare) continue;
            // The directory descriptor is the process, not its number: signalled through it
            // (pidfd_send_signal), a process that ended meanwhile cannot be confused with one
            // that got its pid since.
            const int dir = ::openat(proc, d->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0) continue;
            struct stat st;
            bool marked = false;
            if (::fstat(dir, &st) == 0 && st.st_uid == uid) {
                const int env = ::openat(dir, "environ", O_RDONLY | O_CLOEXEC);
                if (env >= 0) {  // unreadable: not ours to judge
                    marked = environ_holds(env, entry, n);
                    ::close(env);
                }
            }
            if (marked && (::syscall(SYS_pidfd_send_signal, dir, SIGKILL, nullptr, 0u) == 0 ||
                           (errno == ENOSYS && ::kill(pid, SIGKILL) == 0))) {
                bool before = false;
                for (std::size_t i = 0; i < n_seen && !before; ++i) before = seen[i] == pid;
                if (!before) {
                    ++fresh;
                    if (n_seen < max_seen) seen[n_seen++] = pid;
                }
            }
            ::close(dir);
        }
    }
    ::close(proc);
    return fresh;
}

/// Kills every process of this user whose environment holds `entry` ("NAME=VALUE", `n` bytes),
/// but this process and `spare`. Passes repeat until one finds no process it had not signalled
/// (a process may fork while it is being killed), at most ten. Async-signal-safe.
inline void kill_carriers(const char* entry, std::size_t n, pid_t spare = 0) noexcept {
    if (n == 0) return;
    pid_t seen[256];
    std::size_t n_seen = 0;
    for (int pass = 0; pass < 10; ++pass)
        if (kill_carriers_pass(entry, n, spare, seen, n_seen, sizeof seen / sizeof seen[0]) == 0) break;
}
inline void kill_carriers(const run_cookie& cookie, pid_t spare = 0) noexcept {
    kill_carriers(cookie.entry, cookie.size, spare);
}

/// True when the `n` bytes at `name` are the name of a mark: "MODELEXPORT_RUN_ID_<digits>_<digits>",
/// or "MODELEXPORT_RUN_ID", the one name every mark had before names were per run (an older
/// modelexport may be the outer run).
inline bool is_run_cookie_name(const char* name, std::size_t n) noexcept {
    const std::size_t head = sizeof run_cookie_prefix - 2;  // without the last '_'
    if (n < head || std::strncmp(name, run_cookie_prefix, head) != 0) return false;
    if (n == head) return true;
    const char *p = name + head + 1, *end = name + n;
    auto digits = [&] {
        const char* from = p;
        while (p < end && *p >= '0' && *p <= '9') ++p;
        return p > from;
    };
    return name[head] == '_' && digits() && p < end && *p++ == '_' && digits() && p == end;
}

/// Takes every mark this process carries off it, so that no helper's kill_carriers() reaches it.
/// For the background store (cache/detached.hpp), forked without exec and meant to outlive the
/// command: when modelexport itself runs as a helper of another modelexport (itself perhaps a
/// helper of a third), each enclosing run's mark would let that run's end take the store along.
/// Only marks go: other entries, whatever their name, stay. /proc/PID/environ shows the block the
/// process started with, so the values are overwritten there (this process's own memory after
/// fork), not only removed from `environ`. Not async-signal-safe (unsetenv).
inline void drop_run_cookies() noexcept {
    int marks = 0;
    for (char** e = environ; e && *e; ++e)
        if (const char* eq = std::strchr(*e, '='); eq && is_run_cookie_name(*e, eq - *e)) {
            ++marks;
            for (char* p = *e + (eq - *e) + 1; *p; ++p) *p = '-';
        }
    // unsetenv() moves the entries after the one it removes: each round looks from the start.
    for (bool removed = true; removed && marks-- > 0;) {
        removed = false;
        for (char** e = environ; e && *e && !removed; ++e) {
            const char* eq = std::strchr(*e, '=');
            char name[96];
            const std::size_t n = eq ? static_cast<std::size_t>(eq - *e) : 0;
            if (!eq || n >= sizeof name || !is_run_cookie_name(*e, n)) continue;
            std::memcpy(name, *e, n);
            name[n] = '\0';
            removed = ::unsetenv(name) == 0;
        }
    }
}

}  // namespace modelexport::detail
