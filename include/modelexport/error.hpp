// modelexport/error.hpp — the error types every part of modelexport throws.
//
// Each error carries the exit code the CLI returns for it and the file it is
// about, so a failure always prints as one line a user can act on:
//   modelexport: error: <file>: <problem>
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace modelexport {

/// Process exit codes; the README's table mirrors this enum.
enum class exit_code : int {
    ok = 0,
    internal = 1,              ///< a bug in modelexport: please report it
    usage = 2,                 ///< bad command line
    model_not_found = 3,       ///< neither a local directory nor a cached Hub model
    config_missing = 4,        ///< the source has no config.json
    invalid_input = 5,         ///< a source file is malformed, unsafe or inconsistent
    export_failed = 6,         ///< the exporter process failed, hung or wrote no ONNX
    validation_failed = 7,     ///< a package check failed (or warned, with --strict)
    io_error = 8,              ///< the package could not be written (permissions, disk full, ...)
    package_modified = 9,      ///< `verify` found files that no longer match their hashes
    runtime_unavailable = 10,  ///< `validate --runtime X`: runtime X cannot start here (the package's checks pass)
    reference_mismatch = 11,   ///< the exported model's outputs differ from the torch model's (the reference check)
    variant_inaccurate = 12,   ///< a requested variant (export --variants) is past its accuracy bound against fp32
};

/// Base of all modelexport errors: a message about one file, plus an exit code.
class error : public std::runtime_error {
public:
    error(exit_code code, std::string file, const std::string& problem, std::string hint = {})
        : std::runtime_error(file.empty() ? problem : file + ": " + problem),
          code_(code),
          file_(std::move(file)),
          hint_(std::move(hint)) {}

    exit_code code() const noexcept { return code_; }
    const std::string& file() const noexcept { return file_; }
    /// A suggestion for what to do next; may be empty.
    const std::string& hint() const noexcept { return hint_; }

private:
    exit_code code_;
    std::string file_;
    std::string hint_;
};

#define MODELEXPORT_ERROR_TYPE(name, code_value)                                         \
    class name : public error {                                                          \
    public:                                                                              \
        name(std::string file, const std::string& problem, std::string hint = {})        \
            : error(exit_code::code_value, std::move(file), problem, std::move(hint)) {} \
    }

MODELEXPORT_ERROR_TYPE(usage_error, usage);
MODELEXPORT_ERROR_TYPE(model_not_found, model_not_found);
MODELEXPORT_ERROR_TYPE(config_missing, config_missing);
MODELEXPORT_ERROR_TYPE(invalid_input, invalid_input);
MODELEXPORT_ERROR_TYPE(export_failed, export_failed);
MODELEXPORT_ERROR_TYPE(validation_failed, validation_failed);
MODELEXPORT_ERROR_TYPE(io_error, io_error);
MODELEXPORT_ERROR_TYPE(package_modified, package_modified);
MODELEXPORT_ERROR_TYPE(runtime_unavailable, runtime_unavailable);
MODELEXPORT_ERROR_TYPE(reference_mismatch, reference_mismatch);
MODELEXPORT_ERROR_TYPE(variant_inaccurate, variant_inaccurate);

#undef MODELEXPORT_ERROR_TYPE

/// Length of the well-formed UTF-8 sequence at `text[i]` (RFC 3629: no overlong forms, no
/// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
inline std::size_t utf8_sequence_length(const std::string& text, std::size_t i) {
    auto byte = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u; };
    auto cont = [&](std::size_t k) { return (byte(k) & 0xc0u) == 0x80u; };
    unsigned c = byte(0), c1 = byte(1);
    if (i >= text.size()) return 0;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf && cont(1)) return 2;
    if (c >= 0xe0 && c <= 0xef && cont(1) && cont(2))
        return (c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) ? 0 : 3;
    if (c >= 0xf0 && c <= 0xf4 && cont(1) && cont(2) && cont(3))
        return (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90) ? 0 : 4;
    return 0;
}

/// True when all of `text` is well-formed UTF-8.
inline bool valid_utf8(const std::string& text) {
    for (std::size_t i = 0, n = 0; i < text.size(); i += n)
        if ((n = utf8_sequence_length(text, i)) == 0) return false;
    return true;
}

/// `text` made safe to print as (part of) one line: control characters
/// (C0, DEL, C1) and bytes that are not well-formed UTF-8 become `\xNN`, so a
/// Hub id, a file name or an exporter's output quoted in a message can neither
/// break the `modelexport: error:` line nor drive the terminal.
inline std::string printable(const std::string& text) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        std::size_t n = utf8_sequence_length(text, i);
        bool control = c < 0x20 || c == 0x7f ||
                       (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0);  // C0, DEL, C1
        if (n && !control) {
            out.append(text, i, n);
            i += n;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
            ++i;
        }
    }
    return out;
}

}  // namespace modelexport
