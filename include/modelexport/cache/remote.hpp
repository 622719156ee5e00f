// modelexport/cache/remote.hpp — a client for the Bazel HTTP remote cache layout
// (`GET/HEAD/PUT <prefix>/cas/<sha256>` and `<prefix>/ac/<key>`), docs/design.md §10.
//
// Served by bazel-remote, nginx or Apache WebDAV and the like. Downloads go to a temporary
// file in the local cache's cas/ directory and are renamed into place only after their size
// and SHA-256 matched, so a corrupt, truncated or hostile server costs a miss, never a wrong
// package. Timeouts bound a connect, a transfer that stalls or drips, and every transfer's
// total time (in proportion to its size: large weights may take long). TLS is verified (libcurl's default, never turned
// off here).
#pragma once

#include "modelexport/cache/settings.hpp"
#include "modelexport/cache/store.hpp"

#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace modelexport {

class remote_cache {
public:
    explicit remote_cache(remote_settings s) : s_(std::move(s)) {
        static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
        if (!initialised) throw cache_error("libcurl initialisation failed");
    }

    const remote_settings& settings() const { return s_; }

    /// The manifest text of `key`, nullopt on 404.
    std::optional<std::string> get_entry(const std::string& key) {
        std::string body;
        long status = transfer("ac/" + key, request::get, [&](const char* d, std::size_t n) {
            if (body.size() + n > max_manifest_bytes) return false;
            body.append(d, n);
            return true;
        });
        if (status == 404) return std::nullopt;
        expect_ok(status, "ac/" + key);
        return body;
    }

    /// Downloads an object into `local` after checking its size and SHA-256. With `also`, the
    /// same bytes go to that new file too (a hit's staging directory: one download, one hash,
    /// no second copy out of the store); it is removed unless the object checked out, and not
    /// fsync'ed (the package's commit does that). With `durable` false the object stays a
    /// temporary file in cas/ whose write-back has started, returned for commit_staged().
    std::optional<local_cache::staged_object> fetch_object(const cached_file& f, const local_cache& local,
                                                           const fs::path& also = {}, bool durable = true) {
        local_cache::staged_object staged{f, local_cache::temp_in(), local.objects_dir()};
        std::vector<fs::path> to{staged.path()};
        if (!also.empty()) to.push_back(also);
        std::vector<unique_fd> written = download(f, to);
        if (!durable) return staged;
        try {
            detail::fsync_or_throw(written.front().get(), local.object(f.sha256));
            local.commit_object(staged);
        } catch (...) {
            std::error_code ec;
            for (const auto& p : to) fs::remove(p, ec);
            throw;
        }
        return std::nullopt;
    }

    /// Downloads an object into the new file `dst` only (a hit's staging directory, when a
    /// background store fills the local cache from it later), checked like fetch_object.
    void fetch_object_to(const cached_file& f, const fs::path& dst) { download(f, {dst}); }

    /// Whether the server has `path` (HEAD).
    bool has(const std::string& path) {
        long status = transfer(path, request::head, nullptr);
        if (status == 404) return false;
        expect_ok(status, path);
        return true;
    }

    /// Uploads `size` bytes read from an open file, from its start (PUT).
    void put_fd(const std::string& path, int fd, std::uintmax_t size) {
        off_t at = 0;
        put(path, size, [&](char* buf, std::size_t n) -> std::size_t {
            for (;;) {
                ssize_t r = ::pread(fd, buf, n, at);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) return CURL_READFUNC_ABORT;
                at += r;
                return static_cast<std::size_t>(r);
            }
        });
    }

    /// Uploads bytes (PUT).
    void put_text(const std::string& path, const std::string& text) {
        std::size_t pos = 0;
        put(path, text.size(), [&](char* buf, std::size_t n) {
            std::size_t k = std::min(n, text.size() - pos);
            std::memcpy(buf, text.data() + pos, k);
            pos += k;
            return k;
        });
    }

private:
    enum class request { get, head, put };
    using sink = std::function<bool(const char*, std::size_t)>;
    using source = std::function<std::size_t(char*, std::size_t)>;

    struct callbacks {
        sink on_data;
        source on_read;
    };

    static std::size_t write_cb(char* d, std::size_t sz, std::size_t n, void* u) {
        auto* c = static_cast<callbacks*>(u);
        if (!c->on_data) return sz * n;
        return c->on_data(d, sz * n) ? sz * n : 0;  // 0 aborts the transfer
    }
    static std::size_t read_cb(char* d, std::size_t sz, std::size_t n, void* u) {
        return static_cast<callbacks*>(u)->on_read(d, sz * n);
    }
    /// A signal to modelexport or the --timeout deadline ends a transfer (it may run in a cache thread).
    static int progress_cb(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        return cancel::pending_signal.load() || cancel::expired() ? 1 : 0;
    }

    /// GETs an object into each of `to` (new files) in one pass, checking its size and SHA-256;
    /// on any failure all of them are removed. Their write-back has started, nothing is fsync'ed.
    std::vector<unique_fd> download(const cached_file& f, const std::vector<fs::path>& to) {
        struct remover {
            std::vector<fs::path> paths;
            ~remover() {
                std::error_code ec;
                for (const auto& p : paths) fs::remove(p, ec);
            }
        } cleanup{to};
        std::vector<unique_fd> out;
        for (const auto& p : to) out.push_back(create_file(p));
        sha256 h;
        std::uintmax_t got = 0;
        long status = transfer(
            "cas/" + f.sha256, request::get,
            [&](const char* d, std::size_t n) {
                if (got + n > f.size) return false;  // longer than the manifest says: stop reading
                for (std::size_t i = 0; i < out.size(); ++i) detail::write_all(out[i].get(), d, n, to[i]);
                h.update(d, n);
                got += n;
                return true;
            },
            nullptr, 0, f.size);
        expect_ok(status, "cas/" + f.sha256);
        if (got != f.size)
            throw cache_error("cas/" + f.sha256 + ": " + std::to_string(got) + " bytes, expected " +
                              std::to_string(f.size));
        if (h.hex() != f.sha256) throw cache_error("cas/" + f.sha256 + ": content does not match its SHA-256");
        for (const auto& fd : out)
            ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);  // start the write-back; commits fsync
        cleanup.paths.clear();
        return out;
    }

    void put(const std::string& path, std::uintmax_t size, source src) {
        long status = transfer(path, request::put, nullptr, std::move(src), size, size);
        if (status < 200 || status > 299) throw cache_error("PUT " + path + ": HTTP " + std::to_string(status));
    }

    void expect_ok(long status, const std::string& path) const {
        if (status != 200) throw cache_error(path + ": HTTP " + std::to_string(status));
    }

    /// One request; returns the HTTP status. Transport failures (refused, timeout, TLS) throw.
    /// `expected_bytes`: the body's size when known (an object, an upload), for the deadline.
    long transfer(const std::string& path, request how, sink on_data, source on_read = nullptr,
                  std::uintmax_t upload_size = 0, std::uintmax_t expected_bytes = 0) {
        std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
        if (!curl) throw cache_error("libcurl: no handle");
        CURL* c = curl.get();
        std::string url = s_.url + "/" + path;
        callbacks cb{std::move(on_data), std::move(on_read)};
        char errbuf[CURL_ERROR_SIZE] = {};
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");  // no file://, no redirects elsewhere
        curl_easy_setopt(c, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_OPTIONAL));
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, s_.timeout_s);
        // A stalled or dripping server (under 1 KiB/s for timeout_s) is a miss, and so is any
        // transfer past its deadline: timeout_s plus its size at 1 MiB/s, generous for large
        // weights on a slow link and finite for a server that sends just enough not to stall.
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, min_speed);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, s_.timeout_s);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(s_.timeout_s + expected_bytes / deadline_speed));
        // Large buffers: libcurl's 16 KiB default meant tens of thousands of callbacks, each with
        // its write() calls, for one model (512 KiB and 1 MiB are within every libcurl >= 7.62's limits).
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &progress_cb);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &cb);
        std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, &curl_slist_free_all);
        if (!s_.token.empty())
            headers.reset(curl_slist_append(headers.release(), ("Authorization: Bearer " + s_.token).c_str()));
        if (how == request::head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (how == request::put) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, &read_cb);
            curl_easy_setopt(c, CURLOPT_READDATA, &cb);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(upload_size));
            headers.reset(curl_slist_append(headers.release(), "Expect:"));  // no 1 s wait for 100-continue
        }
        if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
        CURLcode rc = curl_easy_perform(c);
        // libcurl's own message may quote parts of the URL (a host it could not resolve): with
        // credentials in the URL only its fixed text for the code is shown.
        bool userinfo = redacted_url(url) != url;
        if (rc != CURLE_OK)
            throw cache_error(redacted_url(url) + ": " +
                              (errbuf[0] && !userinfo ? std::string(errbuf) : std::string(curl_easy_strerror(rc))));
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        return status;
    }

    static constexpr long min_speed = 1024;  ///< bytes/s, below which for timeout_s a transfer is cut
    static constexpr std::uintmax_t deadline_speed = 1u << 20;  ///< bytes/s a transfer's deadline allows for its size

    remote_settings s_;
};

}  // namespace modelexport
