// modelexport/detail/json_file.hpp — reading small JSON files from untrusted sources.
//
// Model configs come from the internet. Before a document is built, a SAX pass
// checks it against limits: file size, nesting depth (a 100 000-deep array must
// be an error, not a stack overflow in whoever walks the tree later) and
// duplicate object keys (nlohmann/json would silently keep the last one, while
// Python's json keeps the last and other readers the first: ambiguous).
//
// The rule (docs/design.md §11): never accept what Python's json module, as
// transformers calls it (open(encoding="utf-8") then json.loads), rejects. So a
// UTF-8 byte order mark is refused (nlohmann would skip it; Python raises
// "Unexpected UTF-8 BOM") and so is any NUL byte (nlohmann would take it as
// the end of the input and ignore what follows), and lone surrogate escapes ("\ud800"), which Python
// accepts and real tokenizer files contain, are accepted (nlohmann alone would
// refuse them). Refused although Python accepts: duplicate keys, NaN/Infinity
// and numbers beyond double (not JSON; nlohmann cannot read them), nesting
// deeper than the limit.
#pragma once

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/error.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct json_limits {
    std::uintmax_t max_bytes = 16u << 20;  ///< 16 MiB; tokenizer.json of large vocabularies fits
    std::size_t max_depth = 64;            ///< HF configs nest 3-4 levels
};

namespace detail {

/// SAX handler that builds nothing and stops at the first violated limit.
class limit_checker : public json::json_sax_t {
public:
    explicit limit_checker(std::size_t max_depth) : max_depth_(max_depth) {}

    std::string problem;  ///< empty when the document is acceptable

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(json::number_integer_t) override { return true; }
    bool number_unsigned(json::number_unsigned_t) override { return true; }
    bool number_float(json::number_float_t, const std::string&) override { return true; }
    bool string(json::string_t&) override { return true; }
    bool binary(json::binary_t&) override { return true; }
    bool start_object(std::size_t) override {
        keys_.emplace_back();
        return enter();
    }
    bool key(json::string_t& k) override {
        if (!keys_.back().insert(k).second) {
            problem = "duplicate key \"" + k + "\"";
            return false;
        }
        return true;
    }
    bool end_object() override {
        keys_.pop_back();
        return leave();
    }
    bool start_array(std::size_t) override {
        keys_.emplace_back();  // arrays have no keys; keeps the stack aligned with depth
        return enter();
    }
    bool end_array() override {
        keys_.pop_back();
        return leave();
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
        problem = "invalid JSON at byte " + std::to_string(position) + ": " + short_reason(ex.what());
        return false;
    }

private:
    bool enter() {
        if (keys_.size() > max_depth_) {
            problem = "nesting deeper than " + std::to_string(max_depth_) + " levels";
            return false;
        }
        return true;
    }
    bool leave() { return true; }
    // nlohmann messages start with "[json.exception.parse_error.101] parse error at line 1, column 2: ".
    static std::string short_reason(const std::string& what) {
        auto colon = what.find(": ");
        return colon == std::string::npos ? what : what.substr(colon + 2);
    }

    std::size_t max_depth_;
    std::vector<std::set<std::string>> keys_;
};

inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// The code unit of a `\uXXXX` escape starting at text[i] (the backslash), or -1.
inline long escape_unit(const std::string& text, std::size_t i) {
    if (i + 6 > text.size() || text[i] != '\\' || text[i + 1] != 'u') return -1;
    long v = 0;
    for (std::size_t k = i + 2; k < i + 6; ++k) {
        int h = hex_value(text[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/// `text` with every lone surrogate escape (a `\uD800`-`\uDFFF` escape not part
/// of a high-low pair) replaced by `\uFFFD`, the same length, so byte positions
/// in error messages stay those of the file. Python's json accepts lone
/// surrogates; nlohmann/json would refuse them. Only escapes inside strings are
/// touched; everything else is left to the parser.
inline std::string replace_lone_surrogates(const std::string& text) {
    if (text.find("\\u") == std::string::npos) return text;
    std::string out = text;
    bool in_string = false;
    for (std::size_t i = 0; i < out.size(); ++i) {
        char c = out[i];
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\') {
            long u = escape_unit(out, i);
            if (u < 0) {
                ++i;  // a two-character escape (or an invalid one the parser reports)
                continue;
            }
            long next = escape_unit(out, i + 6);
            if (u >= 0xd800 && u <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
                i += 11;  // a valid pair
                continue;
            }
            if (u >= 0xd800 && u <= 0xdfff) out.replace(i, 6, "\\ufffd");
            i += 5;
        }
    }
    return out;
}

}  // namespace detail

/// Parses JSON text that is known to be within limits; `name` names it in errors.
inline json parse_json_text(const std::string& raw, const std::string& name, const json_limits& limits = {}) {
    if (raw.size() > limits.max_bytes)
        throw invalid_input(name, "larger than " + std::to_string(limits.max_bytes) + " bytes");
    if (raw.compare(0, 3, "\xef\xbb\xbf") == 0)
        throw invalid_input(name, "starts with a UTF-8 byte order mark (Python's json refuses it)");
    // nlohmann/json stops at a NUL byte as if the input ended there; a raw NUL is never valid JSON.
    if (auto nul = raw.find('\0'); nul != std::string::npos)
        throw invalid_input(name, "invalid JSON at byte " + std::to_string(nul + 1) + ": a NUL byte");
    std::string text = detail::replace_lone_surrogates(raw);
    detail::limit_checker checker(limits.max_depth);
    if (!json::sax_parse(text, &checker) || !checker.problem.empty())
        throw invalid_input(name, checker.problem.empty() ? "invalid JSON" : checker.problem);
    return json::parse(text);
}

/// Reads a whole (small) file into memory, through open_or_throw (a FIFO or
/// device is refused, never waited on) and within `max_bytes` however the file
/// grows while it is read.
inline std::string read_text_file(const fs::path& path, std::uintmax_t max_bytes = json_limits{}.max_bytes,
                                  int extra_flags = 0) {
    unique_fd fd = open_or_throw(path, O_RDONLY | extra_flags);
    struct stat st {};
    if (::fstat(fd.get(), &st) == 0 && static_cast<std::uintmax_t>(st.st_size) > max_bytes)
        throw invalid_input(path.string(), "larger than " + std::to_string(max_bytes) + " bytes");
    std::string out;
    detail::read_blocks(fd.get(), path, [&](const char* data, std::size_t n) {
        if (out.size() + n > max_bytes)
            throw invalid_input(path.string(), "larger than " + std::to_string(max_bytes) + " bytes");
        out.append(data, n);
    });
    return out;
}

/// Reads and parses a JSON file within `limits`.
inline json read_json_file(const fs::path& path, const json_limits& limits = {}) {
    return parse_json_text(read_text_file(path, limits.max_bytes), path.string(), limits);
}

/// Parses `text` (the file `name`) as JSON that must hold an object.
inline json parse_json_object(const std::string& text, const std::string& name, const json_limits& limits = {}) {
    json doc = parse_json_text(text, name, limits);
    if (!doc.is_object()) throw invalid_input(name, std::string("expected a JSON object, found ") + doc.type_name());
    return doc;
}

/// Reads a JSON file that must hold an object (config.json and friends).
inline json read_json_object(const fs::path& path, const json_limits& limits = {}) {
    return parse_json_object(read_text_file(path, limits.max_bytes), path.string(), limits);
}

/// What is wrong with the shape of a config.json object that transformers and the bindings
/// read, or empty: `model_type` must be a non-empty string, `id2label` and `label2id` (when
/// present) objects (transformers turns a list into nonsense labels; the bindings read a map).
/// Whether Python's int() reads `text`: blanks around, a sign, digits with single underscores between them.
inline bool is_python_int(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\n\r\f\v"), last = text.find_last_not_of(" \t\n\r\f\v");
    if (first == std::string::npos) return false;
    std::string_view digits(text.data() + first, last - first + 1);
    if (digits.front() == '+' || digits.front() == '-') digits.remove_prefix(1);
    if (digits.empty() || digits.front() == '_' || digits.back() == '_') return false;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (digits[i] == '_' ? digits[i - 1] == '_' : !(digits[i] >= '0' && digits[i] <= '9')) return false;
    }
    return true;
}

inline std::string config_problem(const json& cfg) {
    auto mt = cfg.find("model_type");
    if (mt == cfg.end() || !mt->is_string() || mt->get<std::string>().empty()) return "has no \"model_type\" string";
    for (const char* key : {"id2label", "label2id"})
        if (cfg.contains(key) && !cfg[key].is_object() && !cfg[key].is_null())
            return std::string(key) + " is " + cfg[key].type_name() + ", not an object mapping ids and labels";
    if (auto labels = cfg.find("id2label"); labels != cfg.end() && labels->is_object())
        for (const auto& [id, label] : labels->items())
            if (!is_python_int(id))
                return "id2label key '" + id + "' is not an integer (transformers reads every key with int())";
    return {};
}

/// Checks the shape of a package's export_metadata.json that its readers
/// (verify, inspect, bindings) rely on, so a damaged or hand-edited file is
/// invalid input naming it, not an internal error: "files" maps names to
/// {size, sha256, role}; "model" is an object and it and "nodes" (optional)
/// hold strings where the readers take strings.
inline json parse_export_metadata(const std::string& text, const std::string& name) {
    json meta = parse_json_text(text, name, {256u << 20, 64});
    auto malformed = [&](const std::string& what) { return invalid_input(name, "malformed: " + what); };
    if (!meta.is_object()) throw invalid_input(name, std::string("expected a JSON object, found ") + meta.type_name());
    auto string_or_absent = [](const json& o, const char* k) { return !o.contains(k) || o.at(k).is_string(); };
    if (!meta.contains("files") || !meta["files"].is_object()) throw malformed("has no \"files\" object");
    for (const auto& [file, f] : meta["files"].items())
        if (!f.is_object() || !f.contains("size") || !f.at("size").is_number_unsigned() || !f.contains("sha256") ||
            !f.at("sha256").is_string() || !f.contains("role") || !f.at("role").is_string())
            throw malformed("files entry \"" + file + "\" is not {size, sha256, role}");
    if (!meta.contains("model") || !meta["model"].is_object() || !string_or_absent(meta["model"], "task") ||
        !string_or_absent(meta["model"], "optimum_class") || !string_or_absent(meta["model"], "class"))
        throw malformed("\"model\" is not an object with string task, optimum_class and class");
    if (meta.contains("nodes")) {
        if (!meta["nodes"].is_object()) throw malformed("\"nodes\" is not an object");
        for (const auto& [node, tag] : meta["nodes"].items())
            if (!tag.is_string()) throw malformed("the tag of node \"" + node + "\" is not a string");
    }
    return meta;
}

/// Reads a package's export_metadata.json and checks its shape (parse_export_metadata).
inline json read_export_metadata(const fs::path& path) {
    return parse_export_metadata(read_text_file(path, 256u << 20), path.string());
}

/// Serialises JSON the one way modelexport writes it: sorted keys, 2-space indent, final newline.
/// Strings that are not UTF-8 (names in a hostile ONNX file, an exporter's
/// output quoted in an error) get U+FFFD instead of making dump() throw.
inline std::string to_canonical_text(const json& doc) {
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace modelexport
