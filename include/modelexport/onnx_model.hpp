// modelexport/onnx_model.hpp — reading ONNX files and what a package needs
// to know about them: the graph's signature and its external data.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_io.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

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
};

inline std::string elem_type_name(int t) {
    switch (t) {
        case onnx::TensorProto_DataType_FLOAT: return "float32";
        case onnx::TensorProto_DataType_UINT8: return "uint8";
        case onnx::TensorProto_DataType_INT8: return "int8";
        case onnx::TensorProto_DataType_UINT16: return "uint16";
        case onnx::TensorProto_DataType_INT16: return "int16";
        case onnx::TensorProto_DataType_INT32: return "int32";
        case onnx::TensorProto_DataType_INT64: return "int64";
        case onnx::TensorProto_DataType_STRING: return "string";
        case onnx::TensorProto_DataType_BOOL: return "bool";
        case onnx::TensorProto_DataType_FLOAT16: return "float16";
        case onnx::TensorProto_DataType_DOUBLE: return "float64";
        case onnx::TensorProto_DataType_UINT32: return "uint32";
        case onnx::TensorProto_DataType_UINT64: return "uint64";
        case onnx::TensorProto_DataType_BFLOAT16: return "bfloat16";
        default: return "unknown";
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
            if (d.has_dim_value()) t.shape.emplace_back(static_cast<std::int64_t>(d.dim_value()));
            else if (d.has_dim_param() && !d.dim_param().empty()) t.shape.emplace_back(d.dim_param());
            else t.shape.emplace_back(std::string("?"));
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
    std::string tensor;
    std::string location;
    std::uint64_t offset = 0;
    std::int64_t length = -1;  ///< -1: to the end of the file
    std::string malformed;     ///< "offset" or "length" when its value is not a decimal byte count
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

inline std::vector<external_reference> external_references(const onnx::GraphProto& g) {
    std::vector<external_reference> refs;
    for (const auto& t : g.initializer()) {
        if (t.data_location() != onnx::TensorProto_DataLocation_EXTERNAL) continue;
        external_reference r;
        r.tensor = t.name();
        for (const auto& kv : t.external_data()) {
            std::uint64_t v = 0;
            if (kv.key() == "location") r.location = kv.value();
            else if (kv.key() == "offset" && !detail::parse_byte_count(kv.value(), r.offset)) r.malformed = "offset";
            else if (kv.key() == "length") {
                if (detail::parse_byte_count(kv.value(), v)) r.length = static_cast<std::int64_t>(v);
                else r.malformed = "length";
            }
        }
        refs.push_back(r);
    }
    return refs;
}

/// Rewrites relative external-data locations of the main graph as absolute paths under `dir`.
inline void absolutize_external_locations(onnx::ModelProto& model, const fs::path& dir) {
    for (auto& t : *model.mutable_graph()->mutable_initializer()) {
        if (t.data_location() != onnx::TensorProto_DataLocation_EXTERNAL) continue;
        for (auto& kv : *t.mutable_external_data())
            if (kv.key() == "location" && !fs::path(kv.value()).is_absolute()) kv.set_value((dir / kv.value()).string());
    }
}

/// Checks one external reference against the package directory; returns the
/// problem or an empty string.
inline std::string external_reference_problem(const external_reference& r, const fs::path& package_dir) {
    fs::path loc = r.location;
    if (r.location.empty()) return "tensor '" + r.tensor + "' has external data without a location";
    if (!r.malformed.empty()) return "tensor '" + r.tensor + "' has a malformed external data " + r.malformed + " (not a decimal byte count)";
    if (loc.is_absolute()) return "tensor '" + r.tensor + "' points at an absolute path: " + r.location;
    for (const auto& part : loc)
        if (part == "..") return "tensor '" + r.tensor + "' points outside the package: " + r.location;
    std::error_code ec;
    fs::path full = package_dir / loc;
    auto real = fs::weakly_canonical(full, ec);
    auto root = fs::weakly_canonical(package_dir, ec);
    if (real.string().rfind(root.string() + "/", 0) != 0) return "tensor '" + r.tensor + "' links outside the package: " + r.location;
    if (!fs::is_regular_file(full, ec)) return "tensor '" + r.tensor + "' needs missing file " + r.location;
    auto size = fs::file_size(full, ec);
    std::uint64_t end = r.offset + static_cast<std::uint64_t>(r.length < 0 ? 0 : r.length);
    if (r.offset > size || end > size)
        return "tensor '" + r.tensor + "' reads bytes " + std::to_string(r.offset) + ".." + std::to_string(end) + " of " + r.location +
               " which has only " + std::to_string(size);
    return {};
}

}  // namespace modelexport
