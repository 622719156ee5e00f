// modelexport/cache/settings.hpp — where the export cache lives and how it is reached (docs/design.md §10).
//
// The settings alone, apart from the cache's code: export options carry them, and a translation
// unit that only fills options must not compile libcurl, the process machinery and the store.
#pragma once

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace modelexport {

namespace fs = std::filesystem;

/// "10G", "500M", "64K", plain bytes; nullopt when it is none of these.
inline std::optional<std::uintmax_t> parse_size(const std::string& s) {
    if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])))
        return std::nullopt;  // strtoull would take "-5" and " 5"
    errno = 0;
    char* end = nullptr;
    unsigned long long n = std::strtoull(s.c_str(), &end, 10);
    if (end == s.c_str()) return std::nullopt;
    std::string unit(end);
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
    if (!unit.empty() && (unit.back() == 'i')) unit.pop_back();
    int shift = unit.empty()                 ? 0
                : unit == "K" || unit == "k" ? 10
                : unit == "M" || unit == "m" ? 20
                : unit == "G" || unit == "g" ? 30
                : unit == "T" || unit == "t" ? 40
                                             : -1;
    if (shift < 0 || errno == ERANGE || (shift > 0 && (static_cast<std::uintmax_t>(n) >> (64 - shift)) != 0))
        return std::nullopt;
    return static_cast<std::uintmax_t>(n) << shift;
}

/// The local cache's directory: $MODELEXPORT_CACHE_DIR, else $XDG_CACHE_HOME/modelexport/exports, else
/// ~/.cache/modelexport/exports (a subfolder: ~/.cache/modelexport/python-* holds the pinned Python environment).
inline fs::path default_cache_dir() {
    if (const char* d = std::getenv("MODELEXPORT_CACHE_DIR"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "modelexport" / "exports";
    const char* home = std::getenv("HOME");
    return fs::path(home && *home ? home : "/tmp") / ".cache" / "modelexport" / "exports";
}

/// The local cache's size bound unless MODELEXPORT_CACHE_MAX_SIZE says otherwise.
inline constexpr std::uintmax_t default_cache_max_size = 10ull << 30;

struct remote_settings {
    std::string url;         ///< http[s]://[user:password@]host[:port]/prefix
    std::string token;       ///< bearer token
    bool read_only = false;  ///< look up, never upload
    long timeout_s = 30;     ///< connect timeout, how long a transfer may crawl, the base of its deadline

    /// $MODELEXPORT_REMOTE_CACHE (+ _TOKEN, _READONLY=1, _TIMEOUT seconds); nullopt when unset.
    static std::optional<remote_settings> from_env() {
        const char* url = std::getenv("MODELEXPORT_REMOTE_CACHE");
        if (!url || !*url) return std::nullopt;
        remote_settings s;
        s.url = url;
        while (!s.url.empty() && s.url.back() == '/') s.url.pop_back();
        if (const char* t = std::getenv("MODELEXPORT_REMOTE_CACHE_TOKEN")) s.token = t;
        if (const char* r = std::getenv("MODELEXPORT_REMOTE_CACHE_READONLY")) s.read_only = std::string(r) == "1";
        if (const char* t = std::getenv("MODELEXPORT_REMOTE_CACHE_TIMEOUT"); t && std::atol(t) > 0)
            s.timeout_s = std::atol(t);
        return s;
    }
};

/// A remote cache URL as it may be shown (messages, -v, reports): any user:password is
/// replaced by `***`. The userinfo is everything between the scheme (or the start, for a URL
/// without one, which libcurl reads as http) and the last '@', so neither an unencoded '@' or
/// '/' in a password nor a missing scheme shows any part of it; a path holding an '@' is
/// over-redacted, which is harmless. The one redaction: every place that shows the URL uses it.
inline std::string redacted_url(const std::string& url) {
    auto at = url.rfind('@');
    if (at == std::string::npos) return url;
    auto scheme = url.find("://");
    std::size_t start = scheme != std::string::npos && scheme < at ? scheme + 3 : 0;
    return url.substr(0, start) + "***" + url.substr(at);
}

struct cache_settings {
    bool enabled = false;  ///< library callers opt in; the CLI enables it unless --no-cache
    /// Store and upload a miss in a detached process after the export returned (export_cache::store):
    /// the CLI's default (MODELEXPORT_CACHE_ASYNC=0 turns it off); library callers opt in, since
    /// it forks their process.
    bool background = false;
    fs::path dir = default_cache_dir();
    std::uintmax_t max_size = default_cache_max_size;
    std::optional<remote_settings> remote;

    /// The environment's settings: MODELEXPORT_CACHE_DIR, MODELEXPORT_CACHE_MAX_SIZE, MODELEXPORT_REMOTE_CACHE*;
    /// MODELEXPORT_NO_CACHE=1 is --no-cache for a whole build or test suite.
    static cache_settings from_env() {
        cache_settings s;
        const char* off = std::getenv("MODELEXPORT_NO_CACHE");
        s.enabled = !(off && std::string(off) == "1");
        if (const char* m = std::getenv("MODELEXPORT_CACHE_MAX_SIZE"))
            if (auto n = parse_size(m)) s.max_size = *n;
        s.remote = remote_settings::from_env();
        return s;
    }
};

}  // namespace modelexport
