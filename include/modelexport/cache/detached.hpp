// modelexport/cache/detached.hpp — running work after the command has returned, in a process of its own.
//
// The export cache stores and uploads a miss this way (docs/design.md §10): the build step
// ends when its package is committed, as Bazel's --remote_cache_async lets a build go on
// while its outputs upload. The job is a grandchild in a session of its own (a double fork:
// no zombie for a caller that lives on, no terminal signals), with stdin/stdout/stderr on
// /dev/null, so neither ninja nor a pipe reading the command waits for it, and with every
// other descriptor closed but those it needs: an inherited lock (the package writer's) must
// not outlive the command. It drops every helper's environment mark (detail/run_cookie.hpp) it
// may have inherited: when modelexport itself runs as another modelexport's helper (that one
// perhaps nested in a third), no enclosing helper's end may take the store along.
#pragma once

#include "modelexport/detail/run_cookie.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

namespace modelexport {

namespace detail {

/// Closes every descriptor of this process except those in `keep` (read from /proc/self/fd).
inline void close_all_but(const std::vector<int>& keep) {
    std::vector<int> open;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        int own = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            int fd = std::atoi(e->d_name);
            if (e->d_name[0] != '.' && fd != own) open.push_back(fd);
        }
        ::closedir(d);
    }
    for (int fd : open)
        if (std::find(keep.begin(), keep.end(), fd) == keep.end()) ::close(fd);
}

}  // namespace detail

/// Runs `job` in a detached process and returns at once; descriptors in `keep` stay open
/// for it (stdio is /dev/null). The job's exceptions are its own to handle: it ends with
/// _exit, running no destructor or exit handler of this process. Returns false when no
/// process could be made (the caller decides whether to run the job itself).
template <class Job>
bool run_detached(std::vector<int> keep, Job&& job) {
    // A kept descriptor among 0-2 (a process started with them closed) would become /dev/null.
    if (std::any_of(keep.begin(), keep.end(), [](int fd) { return fd < 3; })) return false;
    pid_t child = ::fork();
    if (child < 0) return false;
    if (child == 0) {
        ::setsid();
        // Before the second fork: the caller's waitpid below then proves the marks are gone, so a
        // helper's own stop, scanning for its mark as soon as this command ends, cannot catch the store.
        detail::drop_run_cookies();
        pid_t grandchild = ::fork();
        if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
        int null = ::open("/dev/null", O_RDWR);
        for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
        keep.insert(keep.end(), {0, 1, 2});
        detail::close_all_but(keep);
        try {
            job();
        } catch (...) {}
        ::_exit(0);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace modelexport
