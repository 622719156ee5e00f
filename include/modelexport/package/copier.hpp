// modelexport/package/copier.hpp — the configuration copier: brings config, tokenizer,
// processor, generation and recipe files from a model source into a package.
//
// "Always copy configuration": a package without config.json cannot be loaded
// by Optimum, and one without its tokenizer cannot be used by transformers.js.
// Which files exist is driven by the table in package/file_roles.hpp; how bytes move is
// a policy, so tests and special deployments can change it without touching
// what is copied.
#pragma once

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/package/file_roles.hpp"

#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

/// One file placed in a package.
struct copied_file {
    std::string name;
    file_role role;
    std::uintmax_t size = 0;
    std::string sha256;
    fs::path source;  ///< the real path read (after following cache links), for depfiles
};

/// How bytes get from a source file to the package: a reflink or a copy,
/// hashed on the way. From the Hub cache, an LFS blob's name is its SHA-256
/// and is reused when the clone avoided reading the file.
struct default_copy_policy {
    static written_file place(const fs::path& real_src, const fs::path& dst, const model_source& src) {
        std::string known;
        if (src.from_cache()) {
            std::string blob = real_src.filename().string();
            bool is_sha256 = blob.size() == 64;
            for (unsigned char c : blob) is_sha256 = is_sha256 && std::isxdigit(c) && !std::isupper(c);
            if (is_sha256) known = blob;
        }
        return copy_file_hashed(real_src, dst, known);
    }
};

namespace detail {

/// Checks a config-like JSON file before it is copied. Bytes are copied as
/// they are; this only refuses what consumers would choke on.
inline void check_json_file(const fs::path& real, const std::string& shown_name, std::uintmax_t max_bytes) {
    json_limits limits;
    limits.max_bytes = max_bytes;
    parse_json_text(read_text_file(real, max_bytes), shown_name, limits);
}

/// tokenizer_config.json may name other files (vocab_file, merges_file, ...);
/// they must stay inside the source. `cfg` is the parsed object (fuzzed directly).
inline void check_tokenizer_config_object(const json& cfg, const std::string& shown_name) {
    for (const auto& [key, value] : cfg.items()) {
        bool names_file = key.size() > 5 && key.compare(key.size() - 5, 5, "_file") == 0;
        if (!names_file || !value.is_string()) continue;
        fs::path p = value.get<std::string>();
        bool escapes = p.is_absolute();
        for (const auto& part : p) escapes = escapes || part == "..";
        if (escapes) throw invalid_input(shown_name, "\"" + key + "\" points outside the model source: " + p.string());
    }
}

inline void check_tokenizer_config(const fs::path& real, const std::string& shown_name) {
    check_tokenizer_config_object(read_json_object(real), shown_name);
}

}  // namespace detail

template <class CopyPolicy = default_copy_policy>
class configuration_copier {
public:
    configuration_copier(model_source source, fs::path package_dir)
        : source_(std::move(source)), dir_(std::move(package_dir)) {}

    /// config.json: required, a JSON object with a string `model_type`.
    copied_file copy_model_config() {
        auto real = source_.file("config.json");
        if (!real)
            throw config_missing(
                source_.spec, "config.json required but the source has none",
                "Optimum's from_pretrained cannot infer the model without it; add the model's config.json");
        std::string shown = shown_name("config.json");
        json cfg = read_json_object(*real);
        if (std::string problem = config_problem(cfg); !problem.empty())
            throw invalid_input(shown, problem,
                                "transformers' AutoConfig reads it to pick and configure the model class");
        return place("config.json", file_role::config, *real);
    }

    std::vector<copied_file> copy_tokenizer() { return copy_role(file_role::tokenizer); }
    /// Image processor, feature extractor and processor configs.
    std::vector<copied_file> copy_image_processor() { return copy_role(file_role::processor); }
    std::vector<copied_file> copy_generation_config() { return copy_role(file_role::generation); }

    /// Everything but the model: config first, so a missing config fails before any other copy.
    std::vector<copied_file> copy_all() {
        std::vector<copied_file> all{copy_model_config()};
        for (auto role : {file_role::tokenizer, file_role::processor, file_role::generation, file_role::recipe})
            for (auto& f : copy_role(role)) all.push_back(std::move(f));
        return all;
    }

    const model_source& source() const { return source_; }

private:
    std::string shown_name(const std::string& name) const { return (source_.dir / name).string(); }

    std::vector<copied_file> copy_role(file_role role) {
        std::vector<copied_file> out;
        for (const auto& f : package_files) {
            if (f.role != role) continue;
            std::string name(f.name);
            auto real = source_.file(name);
            if (!real) continue;
            std::string shown = shown_name(name);
            if (name == "tokenizer_config.json")
                detail::check_tokenizer_config(*real, shown);
            else if (name == "tokenizer.json")
                detail::check_json_file(*real, shown, 1u << 30);
            else if (fs::path(name).extension() == ".json")
                detail::check_json_file(*real, shown, json_limits{}.max_bytes);
            out.push_back(place(name, role, *real));
        }
        return out;
    }

    copied_file place(const std::string& name, file_role role, const fs::path& real) {
        written_file w = CopyPolicy::place(real, dir_ / name, source_);
        return {name, role, w.size, w.sha256, real};
    }

    model_source source_;
    fs::path dir_;
};

}  // namespace modelexport
