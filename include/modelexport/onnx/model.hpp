// modelexport/onnx/model.hpp — reading ONNX files and what a package needs
// to know about them: the graph's signature and its external data.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/tensor_walk.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <onnx/onnx_pb.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>

#include <climits>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

/// Reads a serialized ModelProto; errors name the file (as `shown` when given:
/// a staged copy is better named after where it came from).
inline onnx::ModelProto load_onnx(const fs::path& path, const std::string& shown = {}) {
    const std::string name = shown.empty() ? path.string() : shown;
    unique_fd fd = open_or_throw(path, O_RDONLY);
    google::protobuf::io::FileInputStream raw(fd.get());
    google::protobuf::io::CodedInputStream coded(&raw);
    coded.SetTotalBytesLimit(INT_MAX);
    onnx::ModelProto model;
    if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
        throw invalid_input(name, "is not a valid ONNX model (protobuf parse failed)");
    if (!model.has_graph()) throw invalid_input(name, "is not an ONNX model (no graph)");
    return model;
}

/// Writes a ModelProto deterministically and fsyncs it.
inline written_file save_onnx(const onnx::ModelProto& model, const fs::path& path) {
    std::string bytes;
    google::protobuf::io::StringOutputStream sos(&bytes);
    {
        google::protobuf::io::CodedOutputStream cos(&sos);
        cos.SetSerializationDeterministic(true);
        if (!model.SerializeToCodedStream(&cos)) throw io_error(path.string(), "cannot serialise the ONNX model");
    }
    return write_file(path, bytes);
}

/// One graph input or output: name, element type and shape.
struct tensor_info {
    std::string name;
    std::string elem_type;  ///< "float32", "int64", ...
    /// Each dimension is a fixed size or a symbolic name ("batch_size"); "?" when unknown.
    std::vector<std::variant<std::int64_t, std::string>> shape;
    bool has_shape = false;

    /// The fixed size of dimension `i`, or -1 when it is symbolic or unknown.
    std::int64_t fixed_dim(std::size_t i) const {
        if (i >= shape.size()) return -1;
        auto* v = std::get_if<std::int64_t>(&shape[i]);
        return v ? *v : -1;
    }
};

struct signature {
    std::vector<tensor_info> inputs;
    std::vector<tensor_info> outputs;

    const tensor_info* output(const std::string& name) const {
        for (const auto& o : outputs)
            if (o.name == name) return &o;
        return nullptr;
    }

    const tensor_info* input(const std::string& name) const {
        for (const auto& i : inputs)
            if (i.name == name) return &i;
        return nullptr;
    }
};

inline std::string elem_type_name(int t) {
    switch (t) {
        case onnx::TensorProto_DataType_FLOAT:
            return "float32";
        case onnx::TensorProto_DataType_UINT8:
            return "uint8";
        case onnx::TensorProto_DataType_INT8:
            return "int8";
        case onnx::TensorProto_DataType_UINT16:
            return "uint16";
        case onnx::TensorProto_DataType_INT16:
            return "int16";
        case onnx::TensorProto_DataType_INT32:
            return "int32";
        case onnx::TensorProto_DataType_INT64:
            return "int64";
        case onnx::TensorProto_DataType_STRING:
            return "string";
        case onnx::TensorProto_DataType_BOOL:
            return "bool";
        case onnx::TensorProto_DataType_FLOAT16:
            return "float16";
        case onnx::TensorProto_DataType_DOUBLE:
            return "float64";
        case onnx::TensorProto_DataType_UINT32:
            return "uint32";
        case onnx::TensorProto_DataType_UINT64:
            return "uint64";
        case onnx::TensorProto_DataType_BFLOAT16:
            return "bfloat16";
        default:
            return "unknown";
    }
}

inline tensor_info to_tensor_info(const onnx::ValueInfoProto& v) {
    tensor_info t;
    t.name = v.name();
    t.elem_type = "unknown";
    if (v.has_type() && v.type().has_tensor_type()) {
        const auto& tt = v.type().tensor_type();
        t.elem_type = elem_type_name(tt.elem_type());
        t.has_shape = tt.has_shape();
        for (const auto& d : tt.shape().dim()) {
            if (d.has_dim_value())
                t.shape.emplace_back(static_cast<std::int64_t>(d.dim_value()));
            else if (d.has_dim_param() && !d.dim_param().empty())
                t.shape.emplace_back(d.dim_param());
            else
                t.shape.emplace_back(std::string("?"));
        }
    }
    return t;
}

/// The graph's real inputs (initializers listed as inputs by old exporters excluded) and outputs.
inline signature graph_signature(const onnx::GraphProto& g) {
    std::set<std::string> initializers;
    for (const auto& init : g.initializer()) initializers.insert(init.name());
    signature sig;
    for (const auto& in : g.input())
        if (!initializers.count(in.name())) sig.inputs.push_back(to_tensor_info(in));
    for (const auto& out : g.output()) sig.outputs.push_back(to_tensor_info(out));
    return sig;
}

inline nlohmann::json to_json(const tensor_info& t) {
    nlohmann::json shape = nlohmann::json::array();
    for (const auto& d : t.shape) std::visit([&](const auto& v) { shape.push_back(v); }, d);
    return {{"name", t.name}, {"type", t.elem_type}, {"shape", shape}};
}

inline nlohmann::json to_json(const signature& s) {
    nlohmann::json in = nlohmann::json::array(), out = nlohmann::json::array();
    for (const auto& t : s.inputs) in.push_back(to_json(t));
    for (const auto& t : s.outputs) out.push_back(to_json(t));
    return {{"inputs", in}, {"outputs", out}};
}

/// A tensor whose bytes live in another file (ONNX external data).
struct external_reference {
    std::string tensor;  ///< where the tensor is (tensor_site::where), for messages
    std::string location;
    std::uint64_t offset = 0;
    std::int64_t length = -1;      ///< -1: to the end of the file
    std::string malformed;         ///< "offset" or "length" when its value is not a decimal byte count
    bool has_inline_data = false;  ///< raw_data or typed data beside the external location
};

namespace detail {

/// A whole decimal number in [0, INT64_MAX]; nothing else (no sign, space, hex or overflow).
/// std::stoull would throw on "abc" and accept "-1" as 2^64-1.
inline bool parse_byte_count(const std::string& s, std::uint64_t& out) {
    constexpr std::uint64_t max = static_cast<std::uint64_t>(INT64_MAX);
    if (s.empty()) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

}  // namespace detail

/// Whether the tensor holds its values in the message itself (raw_data or a typed field).
inline bool has_inline_data(const onnx::TensorProto& t) {
    return t.has_raw_data() || t.float_data_size() || t.int32_data_size() || t.string_data_size() ||
           t.int64_data_size() || t.double_data_size() || t.uint64_data_size();
}

/// Whether ONNX Runtime reads this tensor from a file: it looks at data_location only
/// (external_data entries without it are ignored, and so are they here).
inline bool is_external(const onnx::TensorProto& t) {
    return t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL;
}

/// The external reference of a tensor with is_external(t); `where` names it in messages.
/// Repeated keys: the last one wins, as in ONNX Runtime's reader.
inline external_reference external_reference_of(const onnx::TensorProto& t, std::string where) {
    external_reference r;
    r.tensor = std::move(where);
    r.has_inline_data = has_inline_data(t);
    bool bad_offset = false, bad_length = false;
    for (const auto& kv : t.external_data()) {
        std::uint64_t v = 0;
        if (kv.key() == "location")
            r.location = kv.value();
        else if (kv.key() == "offset") {
            bad_offset = !detail::parse_byte_count(kv.value(), v);
            r.offset = bad_offset ? 0 : v;
        } else if (kv.key() == "length") {
            bad_length = !detail::parse_byte_count(kv.value(), v);
            r.length = bad_length ? -1 : static_cast<std::int64_t>(v);
        }
    }
    r.malformed = bad_offset ? "offset" : bad_length ? "length" : "";
    return r;
}

/// What is wrong with a reference before any file is looked at: no location, a
/// malformed number, inline data beside it, an absolute path or a `..`; empty when fine.
inline std::string external_reference_form_problem(const external_reference& r) {
    const std::string& what = r.tensor;
    if (r.location.empty()) return what + " has external data without a location";
    if (r.location.find('\0') != std::string::npos) return what + " has a malformed external data location (NUL byte)";
    if (!r.malformed.empty())
        return what + " has a malformed external data " + r.malformed + " (not a decimal byte count)";
    if (r.has_inline_data) return what + " has both inline data and an external data location " + r.location;
    const fs::path loc = r.location;
    if (loc.is_absolute()) return what + " points at an absolute path: " + r.location;
    for (const auto& part : loc)
        if (part == "..") return what + " points outside the package: " + r.location;
    return {};
}

/// Checks one external reference against the package directory; returns the
/// problem or an empty string. Locations resolve against `package_dir` (the
/// model's directory, as ONNX Runtime resolves them), never the working directory.
inline std::string external_reference_problem(const external_reference& r, const fs::path& package_dir) {
    if (std::string problem = external_reference_form_problem(r); !problem.empty()) return problem;
    const std::string& what = r.tensor;
    const fs::path loc = r.location;
    std::error_code ec;
    const fs::path dir = fs::absolute(package_dir, ec);
    const fs::path full = dir / loc;
    auto real = fs::weakly_canonical(full, ec);
    auto root = fs::weakly_canonical(dir, ec);
    if (real.string().rfind(root.string() + "/", 0) != 0) return what + " links outside the package: " + r.location;
    auto status = fs::status(full, ec);
    if (!fs::exists(status)) return what + " needs missing file " + r.location;
    if (!fs::is_regular_file(status)) return what + " points at " + r.location + ", which is not a regular file";
    auto size = fs::file_size(full, ec);
    std::uint64_t end = 0;
    if (ec || r.offset > size ||
        __builtin_add_overflow(r.offset, static_cast<std::uint64_t>(r.length < 0 ? 0 : r.length), &end) || end > size)
        return what + " reads bytes " + std::to_string(r.offset) + ".." +
               (r.length < 0 ? std::string("end") : std::to_string(r.offset) + "+" + std::to_string(r.length)) +
               " of " + r.location + " which has only " + std::to_string(size);
    return {};
}

/// Every external reference in the model: all tensors, wherever they are (onnx/tensor_walk.hpp).
inline std::vector<external_reference> external_references(onnx::ModelProto& model) {
    std::vector<external_reference> refs;
    for_each_tensor(model, [&](onnx::TensorProto& t, const tensor_site& site) {
        if (is_external(t)) refs.push_back(external_reference_of(t, site.where));
    });
    return refs;
}

}  // namespace modelexport
