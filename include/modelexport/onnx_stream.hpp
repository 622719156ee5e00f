// modelexport/onnx_stream.hpp — reading an ONNX model without its weights.
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
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_io.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/wire_format_lite.h>
#include <onnx/onnx_pb.h>

#include <fcntl.h>

#include <climits>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

/// An initializer whose raw_data was left in the file.
struct skipped_payload {
    std::string tensor;
    std::uint64_t offset = 0;  ///< in the model file
    std::uint64_t length = 0;
    int data_type = 0;
    std::vector<std::int64_t> dims;
};

/// A model read without its inline weights.
struct light_model {
    onnx::ModelProto model;
    std::vector<skipped_payload> payloads;
};

namespace detail {

using WFL = google::protobuf::internal::WireFormatLite;

/// Payloads at least this large are skipped; small ones stay inline.
inline constexpr std::uint32_t skip_threshold = 4096;

/// Copies the field whose tag was just read into `out` (tag and value), as wire bytes.
inline bool copy_field(google::protobuf::io::CodedInputStream& in, std::uint32_t tag, google::protobuf::io::CodedOutputStream& out) {
    return WFL::SkipField(&in, tag, &out);
}

inline std::size_t element_size(int data_type) {
    switch (data_type) {
        case onnx::TensorProto_DataType_FLOAT: case onnx::TensorProto_DataType_INT32: case onnx::TensorProto_DataType_UINT32: return 4;
        case onnx::TensorProto_DataType_DOUBLE: case onnx::TensorProto_DataType_INT64: case onnx::TensorProto_DataType_UINT64:
        case onnx::TensorProto_DataType_COMPLEX64: return 8;
        case onnx::TensorProto_DataType_COMPLEX128: return 16;
        case onnx::TensorProto_DataType_FLOAT16: case onnx::TensorProto_DataType_BFLOAT16: case onnx::TensorProto_DataType_INT16:
        case onnx::TensorProto_DataType_UINT16: return 2;
        case onnx::TensorProto_DataType_INT8: case onnx::TensorProto_DataType_UINT8: case onnx::TensorProto_DataType_BOOL: return 1;
        default: return 0;
    }
}

/// Reads one TensorProto of `length` bytes; a large raw_data is skipped and recorded.
inline bool read_tensor(google::protobuf::io::CodedInputStream& in, std::uint32_t length, const std::string& location,
                        onnx::TensorProto& tensor, std::vector<skipped_payload>& payloads) {
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
            if (!in.ReadVarint32(&n)) return false;
            if (n < skip_threshold) {
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
            skipped = true;
        }
    }
    if (!in.ConsumedEntireMessage()) return false;
    in.PopLimit(limit);
    if (!tensor.ParseFromString(kept)) return false;
    if (skipped) {
        payloads.push_back({tensor.name(), raw_offset, raw_length, tensor.data_type(), {tensor.dims().begin(), tensor.dims().end()}});
        tensor.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
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

inline bool read_graph(google::protobuf::io::CodedInputStream& in, std::uint32_t length, const std::string& location,
                       onnx::GraphProto& graph, std::vector<skipped_payload>& payloads) {
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
                initializers.emplace_back();
                if (!read_tensor(in, n, location, initializers.back(), payloads)) return false;
                continue;
            }
            if (!copy_field(in, tag, out)) return false;
        }
    }
    if (!in.ConsumedEntireMessage()) return false;
    in.PopLimit(limit);
    if (!graph.ParseFromString(kept)) return false;
    for (auto& t : initializers) *graph.add_initializer() = std::move(t);
    return true;
}

}  // namespace detail

/// Reads `path` without the bytes of its large initializers. The graph's own
/// structure (nodes, inputs, outputs, small initializers) is complete.
inline light_model load_onnx_light(const fs::path& path) {
    unique_fd fd = open_or_throw(path, O_RDONLY);
    google::protobuf::io::FileInputStream raw(fd.get());
    google::protobuf::io::CodedInputStream in(&raw);
    in.SetTotalBytesLimit(INT_MAX);
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
                ok = in.ReadVarint32(&n) && detail::read_graph(in, n, location, *result.model.mutable_graph(), result.payloads);
                continue;
            }
            ok = detail::copy_field(in, tag, out);
        }
    }
    // Skipping seeks, and a seek past the end succeeds: the reader must have ended exactly at the end.
    std::uint64_t size = fs::file_size(path);
    ok = ok && static_cast<std::uint64_t>(in.CurrentPosition()) == size;
    for (const auto& p : result.payloads) ok = ok && p.offset + p.length <= size;
    onnx::ModelProto rest;
    if (!ok || !rest.ParseFromString(kept)) throw invalid_input(path.string(), "is not a valid ONNX model (protobuf parse failed)");
    rest.MergeFrom(result.model);  // graph after the other fields; field order does not matter to readers
    result.model.Swap(&rest);
    if (!result.model.has_graph()) throw invalid_input(path.string(), "is not an ONNX model (no graph)");
    return result;
}

/// A skipped payload whose size does not match its tensor's type and shape; empty when fine.
inline std::string payload_problem(const skipped_payload& p) {
    std::size_t element = detail::element_size(p.data_type);
    if (element == 0) return {};  // strings and unknown types: nothing to compare
    std::uint64_t count = 1;
    for (auto d : p.dims) {
        if (d < 0) return "tensor '" + p.tensor + "' has a negative dimension";
        count *= static_cast<std::uint64_t>(d);
    }
    if (count * element != p.length)
        return "tensor '" + p.tensor + "' holds " + std::to_string(p.length) + " bytes but its shape needs " + std::to_string(count * element);
    return {};
}

}  // namespace modelexport
