// modelexport/package/bindings.hpp — C++ sources generated from a package (docs/design.md §8):
//  - a header describing the model (task, input/output names, element types,
//    shapes with symbolic dims named, id2label, file hashes), so application
//    code compiles against the model it ships; a multi-file (encoder-decoder)
//    package gets a nested namespace per ONNX file;
//  - the operators the package's ORT-format models need (required_operators.config), so a
//    firmware build can check its reduced ONNX Runtime against them;
//  - the model bytes in a form the compiler links (.S with .incbin, or a .cpp
//    array), for targets without a file system.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/package/contents.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/package/single_file.hpp"
#include "modelexport/package/variant_names.hpp"
#include "modelexport/version.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace modelexport {

/// A C++ string literal for arbitrary bytes. Every byte outside printable
/// ASCII (controls, DEL, NUL and all bytes >= 0x80, UTF-8 or not) is a
/// three-digit octal escape: exact bytes whatever -finput-charset or
/// -fexec-charset say, and never greedy like `\x` (which would swallow a
/// following hex digit). `?` is escaped too (no trigraphs in old modes).
inline std::string cpp_string_literal(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\' || c == '?') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\%03o", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

/// An initializer for a std::string_view holding exactly `s`: the plain literal,
/// or `std::string_view{"...", N}` when `s` holds a NUL (a literal alone would
/// stop at it) or is long.
inline std::string cpp_string_view(const std::string& s) {
    // A long literal gets its length too: a constexpr string_view from a bare literal counts
    // its characters in a constexpr loop, and GCC stops such loops at 262144 iterations.
    if (s.find('\0') == std::string::npos && s.size() <= 4096) return cpp_string_literal(s);
    return "std::string_view{" + cpp_string_literal(s) + ", " + std::to_string(s.size()) + "}";
}

namespace detail {

/// Names a generated namespace may not take, because the compiler or the headers the bindings
/// include (<cstddef>, <cstdint>, <string_view>, which bring in <cwchar> and the C library's
/// declarations) use them at global scope, or because C and POSIX reserve them for that:
///  - C++20 keywords and alternative tokens, and lower-case macros of GNU modes (`linux`);
///  - names ending in `_t` (POSIX reserves them for types: `uint8_t`, `mbstate_t`, `nullptr_t`);
///  - names without a lower-case letter (the C library's macros: `INT8_MAX`, `SIZE_MAX`, `WEOF`);
///  - `str`, `mem`, `wcs`, `wmem`, `mbs`, `mbr` followed by a lower-case letter (C's reserved
///    function prefixes: `wcslen`, `memcmp`, `mbrlen`);
///  - the other functions and names those headers declare (`btowc`, `fwprintf`, `tm`, `main`).
/// A name starting with `model_` (the prefix identifier_for gives a reserved name) is none of these.
/// The list was taken by compiling `namespace X {}` after those includes for every identifier
/// they declare (glibc, libstdc++); the patterns cover what other C libraries add.
inline bool reserved_word(const std::string& w) {
    static const char* const words[] = {"alignas",
                                        "alignof",
                                        "and",
                                        "and_eq",
                                        "asm",
                                        "auto",
                                        "bitand",
                                        "bitor",
                                        "bool",
                                        "break",
                                        "case",
                                        "catch",
                                        "char",
                                        "char8_t",
                                        "char16_t",
                                        "char32_t",
                                        "class",
                                        "compl",
                                        "concept",
                                        "const",
                                        "consteval",
                                        "constexpr",
                                        "constinit",
                                        "const_cast",
                                        "continue",
                                        "co_await",
                                        "co_return",
                                        "co_yield",
                                        "decltype",
                                        "default",
                                        "delete",
                                        "do",
                                        "double",
                                        "dynamic_cast",
                                        "else",
                                        "enum",
                                        "explicit",
                                        "export",
                                        "extern",
                                        "false",
                                        "float",
                                        "for",
                                        "friend",
                                        "goto",
                                        "if",
                                        "inline",
                                        "int",
                                        "long",
                                        "mutable",
                                        "namespace",
                                        "new",
                                        "noexcept",
                                        "not",
                                        "not_eq",
                                        "nullptr",
                                        "operator",
                                        "or",
                                        "or_eq",
                                        "private",
                                        "protected",
                                        "public",
                                        "register",
                                        "reinterpret_cast",
                                        "requires",
                                        "return",
                                        "short",
                                        "signed",
                                        "sizeof",
                                        "static",
                                        "static_assert",
                                        "static_cast",
                                        "struct",
                                        "switch",
                                        "template",
                                        "this",
                                        "thread_local",
                                        "throw",
                                        "true",
                                        "try",
                                        "typedef",
                                        "typeid",
                                        "typename",
                                        "union",
                                        "unsigned",
                                        "using",
                                        "virtual",
                                        "void",
                                        "volatile",
                                        "wchar_t",
                                        "while",
                                        "xor",
                                        "xor_eq",
                                        "linux",
                                        "unix",
                                        "i386",
                                        "NULL",
                                        "errno",
                                        "assert",
                                        "offsetof",
                                        "std",
                                        "modelexport_bindings",
                                        "main",
                                        "tm",
                                        "btowc",
                                        "fgetwc",
                                        "fgetwc_unlocked",
                                        "fgetws",
                                        "fgetws_unlocked",
                                        "fputwc",
                                        "fputwc_unlocked",
                                        "fputws",
                                        "fputws_unlocked",
                                        "fwide",
                                        "fwprintf",
                                        "fwscanf",
                                        "getwc",
                                        "getwc_unlocked",
                                        "getwchar",
                                        "getwchar_unlocked",
                                        "open_wmemstream",
                                        "putwc",
                                        "putwc_unlocked",
                                        "putwchar",
                                        "putwchar_unlocked",
                                        "swprintf",
                                        "swscanf",
                                        "ungetwc",
                                        "vfwprintf",
                                        "vfwscanf",
                                        "vswprintf",
                                        "vswscanf",
                                        "vwprintf",
                                        "vwscanf",
                                        "wcpcpy",
                                        "wcpncpy",
                                        "wcrtomb",
                                        "wctob",
                                        "wcwidth",
                                        "wprintf",
                                        "wscanf",
                                        "printf",
                                        "fprintf",
                                        "sprintf",
                                        "snprintf",
                                        "puts",
                                        "putchar",
                                        "getchar",
                                        "fopen",
                                        "fclose",
                                        "fread",
                                        "fwrite",
                                        "fflush",
                                        "abort",
                                        "exit",
                                        "malloc",
                                        "calloc",
                                        "realloc",
                                        "free",
                                        "abs",
                                        "labs",
                                        "div",
                                        "ldiv"};
    for (const char* k : words)
        if (w == k) return true;
    if (w.rfind("model_", 0) == 0) return false;  // the prefix a reserved name gets: no C or POSIX header declares one
    if (w.size() > 2 && w.compare(w.size() - 2, 2, "_t") == 0) return true;
    if (std::none_of(w.begin(), w.end(), [](unsigned char c) { return std::islower(c); })) return true;
    for (const char* prefix : {"str", "mem", "wcs", "wmem", "mbs", "mbr"}) {
        std::size_t n = std::strlen(prefix);
        if (w.size() > n && w.compare(0, n, prefix) == 0 && std::islower(static_cast<unsigned char>(w[n]))) return true;
    }
    return false;
}

}  // namespace detail

/// Checks that `ns` is a usable C++ namespace name: an identifier, not a
/// keyword, not reserved (`__` anywhere, a leading `_`), at most 200 characters.
inline void check_identifier(const std::string& ns, const std::string& what) {
    bool ok = !ns.empty() && ns.size() <= 200 && !std::isdigit(static_cast<unsigned char>(ns[0])) && ns[0] != '_' &&
              ns.find("__") == std::string::npos && !detail::reserved_word(ns);
    for (unsigned char c : ns) ok = ok && c < 0x80 && (std::isalnum(c) || c == '_');
    if (!ok)
        throw usage_error(what,
                          "'" + ns + "' is not a usable C++ namespace name (an identifier, not a keyword or reserved)");
}

/// A name made a valid, deterministic identifier (docs/design.md §8): every byte that is not an
/// ASCII letter or digit becomes `_`, runs of `_` collapse to one and leading/trailing ones go
/// (so never `__` or a leading `_`); an empty result becomes `model`; a result starting with a
/// digit, or a keyword or reserved word, gets the prefix `model_`; a result longer than 64
/// characters is cut to 47 and gets `_` plus the first 16 hex digits of the SHA-256 of the name.
inline std::string identifier_for(const std::string& name) {
    std::string ns;
    for (unsigned char c : name) {
        bool keep = c < 0x80 && std::isalnum(c);
        if (keep)
            ns += static_cast<char>(c);
        else if (!ns.empty() && ns.back() != '_')
            ns += '_';
    }
    while (!ns.empty() && ns.back() == '_') ns.pop_back();
    if (ns.empty()) ns = "model";
    if (std::isdigit(static_cast<unsigned char>(ns[0])) || detail::reserved_word(ns)) ns = "model_" + ns;
    if (ns.size() > 64) {
        sha256 h;
        h.update(name.data(), name.size());
        ns = ns.substr(0, 47);
        while (ns.back() == '_') ns.pop_back();
        ns += "_" + h.hex().substr(0, 16);
    }
    return ns;
}

/// The namespace derived from a package directory's name: identifier_for its last component.
inline std::string namespace_for(const fs::path& dir) {
    std::string name = fs::absolute(dir).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
    return identifier_for(name);
}

/// The nested namespace of one ONNX file of a multi-file package: its name without `.onnx`
/// (`decoder_model_merged.onnx` -> `decoder_model_merged`), made an identifier; a name the
/// package-level declarations already use gets the prefix `model_`, so the two cannot collide.
inline std::string file_namespace(const std::string& file) {
    std::string stem =
        file.size() > 5 && file.compare(file.size() - 5, 5, ".onnx") == 0 ? file.substr(0, file.size() - 5) : file;
    std::string id = identifier_for(stem);
    for (const char* taken : {"task", "optimum_class", "model_type", "id2label", "label_count", "files", "models",
                              "inputs", "outputs", "file", "ort_required_operators", "ort_required_operator_count"})
        if (id == taken) return "model_" + id;
    return id;
}

/// The labels of config.json's id2label in id order; throws when ids are not 0..n-1.
inline std::vector<std::string> labels_in_order(const json& config, const std::string& config_name) {
    std::vector<std::string> labels;
    if (!config.contains("id2label") || !config["id2label"].is_object()) return labels;
    const auto& m = config["id2label"];
    labels.resize(m.size());
    std::vector<bool> seen(m.size());
    for (const auto& [k, v] : m.items()) {
        // Decimal digits only: " 1", "+1" and "01" would alias another id.
        bool digits = !k.empty() && k.size() <= 9 && (k == "0" || k[0] != '0');
        for (unsigned char c : k) digits = digits && c >= '0' && c <= '9';
        unsigned long id = digits ? std::stoul(k) : 0;
        if (!digits || id >= labels.size() || seen[id] || !v.is_string())
            throw invalid_input(config_name, "id2label is not a map from 0..n-1 to strings (key '" + k + "')");
        seen[id] = true;
        labels[id] = v.get<std::string>();
    }
    return labels;
}

/// One operator a package's ORT-format models need, as required_operators.config lists it.
struct ort_operator {
    std::string domain;
    int opset;
    std::string op;
};

/// The operators of ONNX Runtime's operator list `text` (required_operators.config; `shown` names it),
/// in file order. Lines are empty, '#' comments, or `domain;opset;Op1,Op2,...` with one decimal opset
/// and names of ASCII letters, digits and `_` (a domain also `.` and `-`). Anything else is
/// invalid_input naming the line: type-reduction JSON, several opsets, `!` directives (of which
/// `!no_ops_specified_means_all_ops_are_required` turns an empty list into "every operator"),
/// spaces. convert_onnx_models_to_ort writes none of them, and a list read loosely would misstate
/// what a reduced build must hold.
inline std::vector<ort_operator> parse_ort_operators(const std::string& text, const std::string& shown) {
    auto name = [](const std::string& s, const char* also) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [&](unsigned char c) {
            return c < 0x80 && (std::isalnum(c) || (c != 0 && std::strchr(also, c)));
        });
    };
    std::vector<ort_operator> out;
    std::size_t number = 0;
    for (std::size_t start = 0; start < text.size();) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        if (line.empty() || line[0] == '#') continue;
        const std::size_t a = line.find(';'), b = a == std::string::npos ? a : line.find(';', a + 1);
        const std::string domain = line.substr(0, a),
                          opset = b == std::string::npos ? "" : line.substr(a + 1, b - a - 1);
        int version = 0;
        bool ok =
            b != std::string::npos && name(domain, "._-") && !opset.empty() && opset.size() <= 9 && opset[0] >= '1' &&
            opset[0] <= '9' &&
            std::from_chars(opset.data(), opset.data() + opset.size(), version).ptr == opset.data() + opset.size();
        std::vector<ort_operator> ops;
        for (std::size_t from = b + 1; ok && from <= line.size();) {
            const std::size_t comma = std::min(line.find(',', from), line.size());
            ops.push_back({domain, version, line.substr(from, comma - from)});
            ok = name(ops.back().op, "");
            from = comma + 1;
        }
        if (!ok)
            throw invalid_input(shown,
                                "line " + std::to_string(number) + " is not `domain;opset;Op1,Op2,...`: '" +
                                    printable(line.substr(0, 120)) + "'",
                                "re-export the package with --variants ort to write it again");
        out.insert(out.end(), ops.begin(), ops.end());
    }
    return out;
}

/// The operators of the package's required_operators.config (beside its ONNX files: under onnx/ in
/// the hub layout), read through `pkg` as every package file is; none without the file (no `ort` variant).
inline std::vector<ort_operator> package_ort_operators(const package_reader& pkg) {
    const std::string name = layout_path(find_layout(pkg.dir()), ort_operators_file);
    if (!pkg.open(name)) return {};
    // An operator list names some hundreds of operators: 1 MiB leaves room and bounds what a damaged file costs.
    return parse_ort_operators(pkg.read(name, 1u << 20), (pkg.dir() / name).string());
}

namespace detail {

/// `input_<i>_shape` / `output_<i>_shape` arrays and the `inputs[]` / `outputs[]` tables of one graph.
inline void write_signature(std::ostream& h, const signature& sig, const std::string& model_name) {
    auto tensors = [&](const char* what, const std::vector<tensor_info>& list) {
        for (std::size_t i = 0; i < list.size(); ++i) {
            h << "inline constexpr modelexport_bindings::dim " << what << "_" << i << "_shape[] = {";
            for (std::size_t d = 0; d < list[i].shape.size(); ++d) {
                const auto& dim = list[i].shape[d];
                const auto* fixed = std::get_if<std::int64_t>(&dim);
                if (fixed && *fixed < 0)  // ONNX dims are >= 0; -1 here means "symbolic"
                    throw invalid_input(model_name, std::string(what) + " '" + list[i].name +
                                                        "' has the negative dimension " + std::to_string(*fixed));
                h << (d ? ", " : "") << "{" << (fixed ? *fixed : -1) << ", "
                  << cpp_string_view(fixed ? "" : std::get<std::string>(dim)) << "}";
            }
            if (list[i].shape.empty()) h << "{0, \"\"}";  // no zero-length arrays; rank says 0
            h << "};\n";
        }
        h << "inline constexpr modelexport_bindings::tensor " << what << "s[] = {\n";
        for (std::size_t i = 0; i < list.size(); ++i)
            h << "    {" << cpp_string_view(list[i].name) << ", " << cpp_string_view(list[i].elem_type) << ", " << what
              << "_" << i << "_shape, " << list[i].shape.size() << "},\n";
        h << "};\n\n";
    };
    tensors("input", sig.inputs);
    tensors("output", sig.outputs);
}

}  // namespace detail

namespace detail {

/// `ort_required_operators[]` and its count (0, and no array, without ORT-format models).
inline void write_ort_operators(std::ostream& h, const std::vector<ort_operator>& ops) {
    h << "\n/// The operators the package's ORT-format models need (required_operators.config), as a reduced\n"
      << "/// ONNX Runtime build takes them (--include_ops_by_config): domain, opset, operator.\n";
    if (!ops.empty()) {
        h << "inline constexpr modelexport_bindings::ort_operator ort_required_operators[] = {\n";
        for (const auto& o : ops)
            h << "    {" << cpp_string_view(o.domain) << ", " << o.opset << ", " << cpp_string_view(o.op) << "},\n";
        h << "};\n";
    }
    h << "inline constexpr std::size_t ort_required_operator_count = " << ops.size() << ";\n";
}

/// `files[]`: every package file with its size and SHA-256, as export_metadata.json records them.
inline void write_files(std::ostream& h, const json& meta) {
    h << "\n/// The package's files as export_metadata.json records them.\n"
      << "inline constexpr modelexport_bindings::file files[] = {\n";
    for (const auto& [name, f] : meta["files"].items())
        h << "    {" << cpp_string_view(name) << ", " << f["size"].get<std::uint64_t>() << "ull, "
          << cpp_string_view(f["sha256"].get<std::string>()) << "},\n";
    h << "};\n";
}

}  // namespace detail

/// The header text for the package in `dir`, in namespace `ns`. A single-file package's signature
/// is `ns::inputs` / `ns::outputs`; a multi-file (encoder-decoder) package gets a nested namespace
/// per ONNX file (`ns::encoder_model::inputs`, `ns::decoder_model_merged::outputs`, ...: the
/// file's name without `.onnx`, file_namespace) holding its `file` name and signature, and the
/// package-level declarations (task, labels, the ORT-format models' operators, the files' hashes)
/// once, in `ns`.
/// Without `with_files` the header leaves `files[]` to bindings_files_header.
MODELEXPORT_ENTRY std::string bindings_header(const fs::path& dir, const std::string& ns, bool with_files = true);

#if MODELEXPORT_DEFINES(BINDINGS)
MODELEXPORT_ENTRY std::string bindings_header(const fs::path& dir, const std::string& ns, bool with_files) {
    check_identifier(ns, "--namespace");
    // No file read through a link (package/reader.hpp), none missing (package/contents.hpp).
    const package_reader pkg = open_complete_package(dir, package_need::exported);
    const std::vector<std::string> several = multi_file_model_names(dir);
    const fs::path meta_path = dir / "export_metadata.json";
    json meta = parse_export_metadata(pkg.read("export_metadata.json", 256u << 20), meta_path.string());
    json config = parse_json_object(pkg.read("config.json", json_limits{}.max_bytes), (dir / "config.json").string());
    std::map<std::string, signature> sigs;  // by file name; the first of `models` is the primary
    const std::vector<std::string> models = several.empty() ? std::vector<std::string>{"model.onnx"} : several;
    for (const auto& name : models)
        sigs[name] = graph_signature(load_onnx_light(package_file_path(dir, name)).model.graph());
    // The header states the recorded task: one validate would call wrong is refused, as validate's task.recorded fails
    // it.
    const std::string primary = package_models(package_task(dir)).front();
    const signature* primary_sig = sigs.count(primary) ? &sigs[primary] : nullptr;
    if (std::string problem = recorded_task_problem(recorded_model_task(meta), &config, primary_sig, primary);
        !problem.empty())
        throw invalid_input(meta_path.string(), problem);

    std::ostringstream h;
    h << "// Generated by modelexport " << version << " from a model package. Do not edit.\n"
      << "// Regenerate with: modelexport bindings PKG --header FILE --namespace " << ns << "\n"
      << "#pragma once\n\n#include <cstddef>\n#include <cstdint>\n#include <string_view>\n\n"
      << "#ifndef MODELEXPORT_BINDINGS_TYPES\n#define MODELEXPORT_BINDINGS_TYPES\n"
      << "namespace modelexport_bindings {\n"
      << "/// One dimension: a fixed size, or -1 and the symbolic name (\"batch_size\").\n"
      << "struct dim { std::int64_t size; std::string_view symbol; };\n"
      << "struct tensor { std::string_view name; std::string_view type; const dim* shape; std::size_t rank; };\n"
      << "struct file { std::string_view name; std::uint64_t size; std::string_view sha256; };\n"
      << "struct ort_operator { std::string_view domain; int opset; std::string_view op; };\n"
      << "}  // namespace modelexport_bindings\n#endif\n\n"
      << "namespace " << ns << " {\n\n"
      << "inline constexpr std::string_view task = " << cpp_string_view(meta["model"].value("task", "")) << ";\n"
      << "inline constexpr std::string_view optimum_class = "
      << cpp_string_view(meta["model"].value("optimum_class", "")) << ";\n"
      << "inline constexpr std::string_view model_type = "
      << cpp_string_view(config.contains("model_type") && config["model_type"].is_string()
                             ? config["model_type"].get<std::string>()
                             : "")
      << ";\n\n";

    if (several.empty()) {
        const fs::path model = package_file_path(dir, "model.onnx");  // onnx/model.onnx in the hub layout
        detail::write_signature(h, sigs["model.onnx"], model.string());
    } else {
        h << "/// The package's ONNX files; each has a namespace of its own with its signature.\n"
          << "inline constexpr std::string_view models[] = {";
        for (std::size_t i = 0; i < several.size(); ++i) h << (i ? ", " : "") << cpp_string_view(several[i]);
        h << "};\n\n";
        for (const auto& name : several) {
            const fs::path model = package_file_path(dir, name);
            h << "namespace " << file_namespace(name) << " {\n"
              << "inline constexpr std::string_view file = " << cpp_string_view(name) << ";\n";
            detail::write_signature(h, sigs[name], model.string());
            h << "}  // namespace " << file_namespace(name) << "\n\n";
        }
    }

    auto labels = labels_in_order(config, (dir / "config.json").string());
    h << "/// config.json id2label, by class id.\n";
    if (labels.empty()) {
        h << "inline constexpr std::size_t label_count = 0;\n";
    } else {
        h << "inline constexpr std::string_view id2label[] = {";
        for (std::size_t i = 0; i < labels.size(); ++i) h << (i ? ",\n    " : "\n    ") << cpp_string_view(labels[i]);
        h << "};\ninline constexpr std::size_t label_count = " << labels.size() << ";\n";
    }
    detail::write_ort_operators(h, package_ort_operators(pkg));
    if (with_files) detail::write_files(h, meta);
    h << "\n}  // namespace " << ns << "\n";
    return h.str();
}
#endif

/// `files[]` in a header of its own (`modelexport bindings --files-header`), including the header
/// `main_header` (the text of bindings_header without its files): a tokenizer or weight edit
/// changes the hashes but no name or shape, so code that includes only the main header is not
/// recompiled. `main_header` is named relative to this header's directory.
MODELEXPORT_ENTRY std::string bindings_files_header(const fs::path& dir, const std::string& ns, const fs::path& header,
                                                    const fs::path& main_header);

#if MODELEXPORT_DEFINES(BINDINGS)
MODELEXPORT_ENTRY std::string bindings_files_header(const fs::path& dir, const std::string& ns, const fs::path& header,
                                                    const fs::path& main_header) {
    check_identifier(ns, "--namespace");
    std::string include =
        fs::absolute(main_header).lexically_relative(fs::absolute(header).parent_path()).generic_string();
    // An #include's header-name has no escapes: a name it cannot spell is refused, not mangled.
    for (unsigned char c : include)
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            throw usage_error(main_header.string(), "this header name cannot be written in an #include line",
                              "name the header without quotes, backslashes or control characters");
    json meta = read_export_metadata(dir / "export_metadata.json");
    std::ostringstream h;
    h << "// Generated by modelexport " << version << " from a model package. Do not edit.\n"
      << "// The package's file sizes and hashes, apart from " << include << " so that code using only the model's\n"
      << "// names and shapes is not recompiled when a file's bytes change.\n"
      << "#pragma once\n\n#include \"" << include << "\"\n\n"
      << "namespace " << ns << " {\n";
    detail::write_files(h, meta);
    h << "\n}  // namespace " << ns << "\n";
    return h.str();
}
#endif

/// The model bytes as a linkable source: `.S` (GNU as .incbin, no copy of the
/// bytes through the compiler) or `.cpp` (a byte array, for other toolchains),
/// plus a header declaring them with their size and SHA-256.
struct embedded_sources {
    std::string source;
    std::string header;
};

MODELEXPORT_ENTRY embedded_sources embed_model(const fs::path& dir, const std::string& ns, bool assembly);

#if MODELEXPORT_DEFINES(BINDINGS)
MODELEXPORT_ENTRY embedded_sources embed_model(const fs::path& dir, const std::string& ns, bool assembly) {
    check_identifier(ns, "--namespace");
    // One symbol holds one model's bytes, all of them: pack's rule (an encoder-decoder's files are loaded as separate
    // files anyway).
    const single_file_model m = open_single_file_model(dir, "embed");
    const fs::path model = fs::absolute(m.shown);  // .incbin reads it by name when the program is assembled
    std::string sha = hash_file(m.read_path());
    auto size = fs::file_size(m.read_path());
    std::string sym = ns + "_model_onnx";
    embedded_sources out;
    std::ostringstream s;
    if (assembly) {
        // GNU as string: `"` and `\` escaped, every other byte outside printable ASCII as octal.
        std::string quoted;
        for (unsigned char c : model.string()) {
            char buf[8];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
                std::snprintf(buf, sizeof buf, "\\%03o", c);
            else
                buf[0] = static_cast<char>(c), buf[1] = '\0';
            quoted += buf;
        }
        // The size and hash in the comment make the file change whenever the model does,
        // so the object is rebuilt even though .incbin is invisible to dependency scanning.
        s << "/* Generated by modelexport " << version << ". model.onnx: " << size << " bytes, sha256 " << sha
          << " */\n"
          << "    .section .rodata\n    .global " << sym << "\n    .type " << sym << ", @object\n    .balign 16\n"
          << sym << ":\n    .incbin \"" << quoted << "\"\n    .size " << sym << ", . - " << sym << "\n"
          << "    .section .note.GNU-stack,\"\",@progbits\n";
    } else {
        s << "// Generated by modelexport " << version << ". model.onnx: " << size << " bytes, sha256 " << sha << "\n"
          << "extern \"C\" {\nalignas(16) extern const unsigned char " << sym << "[];\nalignas(16) const unsigned char "
          << sym << "[] = {\n";
        unique_fd in = open_or_throw(m.read_path(), O_RDONLY);
        std::vector<unsigned char> buf(1 << 16);
        std::size_t col = 0;
        for (ssize_t r; (r = ::read(in.get(), buf.data(), buf.size())) > 0;)
            for (ssize_t i = 0; i < r; ++i) {
                s << static_cast<unsigned>(buf[static_cast<std::size_t>(i)]) << ',';
                if (++col % 32 == 0) s << '\n';
            }
        s << "};\n}\n";
    }
    out.source = s.str();
    std::ostringstream h;
    h << "// Generated by modelexport " << version
      << ". Do not edit.\n#pragma once\n\n#include <cstddef>\n#include <string_view>\n\n"
      << "extern \"C\" const unsigned char " << sym << "[];\n\n"
      << "namespace " << ns << " {\n"
      << "inline constexpr std::size_t model_size = " << size << ";\n"
      << "inline constexpr std::string_view model_sha256 = \"" << sha << "\";\n"
      << "inline const unsigned char* model_data() { return " << sym << "; }\n"
      << "}  // namespace " << ns << "\n";
    out.header = h.str();
    return out;
}
#endif

}  // namespace modelexport
