// modelexport/onnx/stream.hpp — reading an ONNX model without its weights.
//
// Validation, projection and inspection need the graph, not the initializer
// bytes that make up almost all of a model file. This reader walks the
// protobuf wire format of ModelProto -> GraphProto -> TensorProto and skips
// every initializer's raw_data (seeking, not reading), recording where the
// bytes are instead. The result is a ModelProto whose large initializers
// point at their bytes as ONNX external data inside the model file itself,
// so onnx::checker still checks every tensor's declaration while modelexport
// checks the payload sizes itself (payload_problem). Memory stays at the size
// of the graph, whatever the size of the weights.
//
// It reads what protobuf (and so ONNX Runtime) reads: a singular message field
// that occurs several times (two `graph` fields) is merged, not replaced, and of
// several raw_data fields in one tensor the last counts (docs/design.md §11).
// Every length is checked against what is left of its enclosing message before
// it is used.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/tensor_walk.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/wire_format_lite.h>
#include <onnx/onnx_pb.h>

#include <fcntl.h>

#include <climits>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelexport {

/// An initializer whose raw_data was left in the file.
struct skipped_payload {
    std::string tensor;
    int initializer = -1;            ///< index in the main graph's initializers (tensor_site::main_initializer)
    bool declared_external = false;  ///< the tensor also says its data is EXTERNAL: malformed
    std::uint64_t offset = 0;        ///< in the model file
    std::uint64_t length = 0;
    int data_type = 0;
    std::vector<std::int64_t> dims;
};

/// A model read without its inline weights.
struct light_model {
    onnx::ModelProto model;
    std::vector<skipped_payload> payloads;

    /// The payload the reader skipped for the tensor at `site`, if it did: that tensor's
    /// external location is the reader's own pointer into the model file.
    const skipped_payload* skipped_at(const tensor_site& site) const {
        if (site.main_initializer < 0) return nullptr;
        for (const auto& p : payloads)
            if (p.initializer == site.main_initializer) return &p;
        return nullptr;
    }
};

namespace detail {

using WFL = google::protobuf::internal::WireFormatLite;

/// Payloads at least this large are skipped; small ones stay inline.
inline constexpr std::uint32_t skip_threshold = 4096;

/// Copies the field whose tag was just read into `out` (tag and value), as wire bytes.
inline bool copy_field(google::protobuf::io::CodedInputStream& in, std::uint32_t tag,
                       google::protobuf::io::CodedOutputStream& out) {
    return WFL::SkipField(&in, tag, &out);
}

inline std::size_t element_size(int data_type) {
    switch (data_type) {
        case onnx::TensorProto_DataType_FLOAT:
        case onnx::TensorProto_DataType_INT32:
        case onnx::TensorProto_DataType_UINT32:
            return 4;
        case onnx::TensorProto_DataType_DOUBLE:
        case onnx::TensorProto_DataType_INT64:
        case onnx::TensorProto_DataType_UINT64:
        case onnx::TensorProto_DataType_COMPLEX64:
            return 8;
        case onnx::TensorProto_DataType_COMPLEX128:
            return 16;
        case onnx::TensorProto_DataType_FLOAT16:
        case onnx::TensorProto_DataType_BFLOAT16:
        case onnx::TensorProto_DataType_INT16:
        case onnx::TensorProto_DataType_UINT16:
            return 2;
        case onnx::TensorProto_DataType_INT8:
        case onnx::TensorProto_DataType_UINT8:
        case onnx::TensorProto_DataType_BOOL:
            return 1;
        default:
            return 0;
    }
}

/// Whether a length-delimited field of `n` bytes fits in what is left of the current message.
inline bool fits(google::protobuf::io::CodedInputStream& in, std::uint32_t n) {
    int left = in.BytesUntilLimit();
    return left >= 0 && n <= static_cast<std::uint32_t>(left);
}

/// Reads one TensorProto of `length` bytes; a large raw_data is skipped and recorded
/// as payload number `index` of the main graph.
inline bool read_tensor(google::protobuf::io::CodedInputStream& in, std::uint32_t length, const std::string& location,
                        int index, onnx::TensorProto& tensor, std::vector<skipped_payload>& payloads) {
    if (!fits(in, length)) return false;
    auto limit = in.PushLimit(static_cast<int>(length));
    std::string kept;
    std::uint64_t raw_offset = 0, raw_length = 0;
    bool skipped = false;
    {
        google::protobuf::io::StringOutputStream sos(&kept);
        google::protobuf::io::CodedOutputStream out(&sos);
        while (std::uint32_t tag = in.ReadTag()) {
            bool is_raw = WFL::GetTagFieldNumber(tag) == onnx::TensorProto::kRawDataFieldNumber &&
                          WFL::GetTagWireType(tag) == WFL::WIRETYPE_LENGTH_DELIMITED;
            if (!is_raw) {
                if (!copy_field(in, tag, out)) return false;
                continue;
            }
            std::uint32_t n = 0;
            if (!in.ReadVarint32(&n) || !fits(in, n)) return false;
            // Of several raw_data fields the last one counts (protobuf's rule for a bytes field).
            skipped = n >= skip_threshold;
            if (!skipped) {
                std::string bytes;
                if (!in.ReadString(&bytes, static_cast<int>(n))) return false;
                out.WriteTag(tag);
                out.WriteVarint32(n);
                out.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
                continue;
            }
            raw_offset = static_cast<std::uint64_t>(in.CurrentPosition());
            raw_length = n;
            if (!in.Skip(static_cast<int>(n))) return false;
        }
    }
    if (!in.ConsumedEntireMessage()) return false;
    in.PopLimit(limit);
    if (!tensor.ParseFromString(kept)) return false;
    if (skipped) {
        tensor.clear_raw_data();  // an earlier small raw_data that the skipped one replaces
        payloads.push_back({tensor.name(),
                            index,
                            tensor.data_location() == onnx::TensorProto_DataLocation_EXTERNAL,
                            raw_offset,
                            raw_length,
                            tensor.data_type(),
                            {tensor.dims().begin(), tensor.dims().end()}});
        tensor.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
        tensor.clear_external_data();
        auto add = [&](const char* k, const std::string& v) {
            auto* e = tensor.add_external_data();
            e->set_key(k);
            e->set_value(v);
        };
        add("location", location);
        add("offset", std::to_string(raw_offset));
        add("length", std::to_string(raw_length));
    }
    return true;
}

/// Reads one occurrence of ModelProto.graph and merges it into `graph`, as protobuf
/// merges repeated occurrences of a singular message field.
inline bool read_graph(google::protobuf::io::CodedInputStream& in, std::uint32_t length, const std::string& location,
                       onnx::GraphProto& graph, std::vector<skipped_payload>& payloads) {
    if (!fits(in, length)) return false;
    auto limit = in.PushLimit(static_cast<int>(length));
    std::string kept;
    std::vector<onnx::TensorProto> initializers;
    {
        google::protobuf::io::StringOutputStream sos(&kept);
        google::protobuf::io::CodedOutputStream out(&sos);
        while (std::uint32_t tag = in.ReadTag()) {
            if (WFL::GetTagFieldNumber(tag) == onnx::GraphProto::kInitializerFieldNumber &&
                WFL::GetTagWireType(tag) == WFL::WIRETYPE_LENGTH_DELIMITED) {
                std::uint32_t n = 0;
                if (!in.ReadVarint32(&n)) return false;
                int index = graph.initializer_size() + static_cast<int>(initializers.size());
                initializers.emplace_back();
                if (!read_tensor(in, n, location, index, initializers.back(), payloads)) return false;
                continue;
            }
            if (!copy_field(in, tag, out)) return false;
        }
    }
    if (!in.ConsumedEntireMessage()) return false;
    in.PopLimit(limit);
    if (!graph.MergeFromString(kept)) return false;
    for (auto& t : initializers) *graph.add_initializer() = std::move(t);
    return true;
}

}  // namespace detail

/// Reads `path` without the bytes of its large initializers. The graph's own
/// structure (nodes, inputs, outputs, small initializers) is complete. Errors name
/// the file as `shown` when given (a staged copy is named after where it came from).
inline light_model load_onnx_light(const fs::path& path, const std::string& shown = {}) {
    const std::string name = shown.empty() ? path.string() : shown;
    unique_fd fd = open_or_throw(path, O_RDONLY);
    google::protobuf::io::FileInputStream raw(fd.get());
    google::protobuf::io::CodedInputStream in(&raw);
    in.SetTotalBytesLimit(INT_MAX);
    // Protobuf cannot represent a larger message; the limit makes every length checkable.
    const std::uint64_t size = fs::file_size(path);
    if (size > static_cast<std::uint64_t>(INT_MAX))
        throw invalid_input(name, "is larger than protobuf's 2 GiB message limit");
    in.PushLimit(static_cast<int>(size));
    light_model result;
    std::string kept;
    bool ok = true;
    // Absolute: onnx::checker resolves locations against the model's directory, which
    // check_model(ModelProto) does not know (it uses the working directory).
    std::string location = fs::absolute(path).string();
    {
        google::protobuf::io::StringOutputStream sos(&kept);
        google::protobuf::io::CodedOutputStream out(&sos);
        while (ok) {
            std::uint32_t tag = in.ReadTag();
            if (tag == 0) {
                ok = in.ConsumedEntireMessage();
                break;
            }
            if (detail::WFL::GetTagFieldNumber(tag) == onnx::ModelProto::kGraphFieldNumber &&
                detail::WFL::GetTagWireType(tag) == detail::WFL::WIRETYPE_LENGTH_DELIMITED) {
                std::uint32_t n = 0;
                ok = in.ReadVarint32(&n) &&
                     detail::read_graph(in, n, location, *result.model.mutable_graph(), result.payloads);
                continue;
            }
            ok = detail::copy_field(in, tag, out);
        }
    }
    // Skipping seeks, and a seek past the end succeeds: the reader must have ended exactly at the end.
    ok = ok && static_cast<std::uint64_t>(in.CurrentPosition()) == size;
    for (const auto& p : result.payloads) ok = ok && p.offset + p.length <= size;
    onnx::ModelProto rest;
    if (!ok || !rest.ParseFromString(kept))
        throw invalid_input(name, "is not a valid ONNX model (protobuf parse failed)");
    rest.MergeFrom(result.model);  // graph after the other fields; field order does not matter to readers
    result.model.Swap(&rest);
    if (!result.model.has_graph()) throw invalid_input(name, "is not an ONNX model (no graph)");
    return result;
}

/// The bytes a tensor of `data_type` and `dims` needs; nullopt when the type has no
/// fixed element size (strings, unknown types). Checked arithmetic: hostile dims
/// must not wrap around to a small, matching size.
inline std::optional<std::uint64_t> payload_bytes(int data_type, const std::vector<std::int64_t>& dims,
                                                  std::string& problem) {
    // A type outside TensorProto.DataType (or UNDEFINED) has no meaning for its bytes; ONNX Runtime refuses it.
    if (!onnx::TensorProto_DataType_IsValid(data_type) || data_type == onnx::TensorProto_DataType_UNDEFINED)
        return problem = "has data_type " + std::to_string(data_type) + ", which is not an ONNX TensorProto.DataType",
               std::nullopt;
    std::uint64_t bytes = detail::element_size(data_type);
    if (bytes == 0) return std::nullopt;
    for (auto d : dims) {
        if (d < 0) return problem = "has a negative dimension", std::nullopt;
        if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(d), &bytes))
            return problem = "has dimensions whose size overflows", std::nullopt;
    }
    return bytes;
}

/// A payload of `length` bytes that is not the size `data_type` and `dims` need; empty when fine.
inline std::string payload_size_problem(const std::string& tensor, int data_type, const std::vector<std::int64_t>& dims,
                                        std::uint64_t length) {
    std::string problem;
    auto need = payload_bytes(data_type, dims, problem);
    if (!problem.empty()) return tensor + " " + problem;
    if (need && *need != length)
        return tensor + " holds " + std::to_string(length) + " bytes but its shape needs " + std::to_string(*need);
    return {};
}

/// A skipped payload whose size does not match its tensor's type and shape; empty when fine.
inline std::string payload_problem(const skipped_payload& p) {
    return payload_size_problem("tensor '" + p.tensor + "'", p.data_type, p.dims, p.length);
}

}  // namespace modelexport
