// modelexport/pack.hpp — a self-contained single-file model and back.
//
// `pack` appends the package's configuration files to model.onnx as
// ModelProto.metadata_props entries (field 14). Appending a field to a
// serialized protobuf message is the same as merging it, so the original
// bytes are never re-serialised: packing is one copy plus an append, and
// `unpack` restores model.onnx byte for byte by cutting the file at the
// original length recorded in the manifest (checked with its SHA-256).
//
// Keys are namespaced: "modelexport.file:<name>" holds a file (base64 when the
// bytes are not valid UTF-8, since metadata values are protobuf strings);
// "modelexport.pack" holds the manifest (JSON) and is written last.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_copy.hpp"
#include "modelexport/file_roles.hpp"
#include "modelexport/json_file.hpp"
#include "modelexport/onnx_model.hpp"
#include "modelexport/onnx_stream.hpp"
#include "modelexport/package_writer.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <openssl/evp.h>

#include <filesystem>
#include <string>

namespace modelexport {

inline constexpr const char* pack_manifest_key = "modelexport.pack";
inline constexpr const char* pack_file_prefix = "modelexport.file:";
inline constexpr int model_metadata_props_field = 14;

namespace detail {

inline std::string base64_encode(const std::string& in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

inline std::string base64_decode(const std::string& in, const std::string& what) {
    std::string out(3 * in.size() / 4 + 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) throw invalid_input(what, "invalid base64");
    std::size_t pad = in.size() >= 2 ? (in[in.size() - 1] == '=') + (in[in.size() - 2] == '=') : 0;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

/// The wire bytes of one `metadata_props` entry of ModelProto.
inline std::string metadata_entry_bytes(const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto entry;
    entry.set_key(key);
    entry.set_value(value);
    std::string body = entry.SerializeAsString(), out;
    google::protobuf::io::StringOutputStream sos(&out);
    {
        google::protobuf::io::CodedOutputStream cos(&sos);
        cos.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
            model_metadata_props_field, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
        cos.WriteVarint32(static_cast<std::uint32_t>(body.size()));
        cos.WriteRaw(body.data(), static_cast<int>(body.size()));
    }
    return out;
}

}  // namespace detail

/// Writes `output`: the package's model.onnx with its configuration files appended.
inline void pack_package(const fs::path& dir, const fs::path& output) {
    fs::path model = dir / "model.onnx";
    if (!fs::is_regular_file(model)) throw invalid_input(model.string(), "missing");
    if (fs::exists(dir / "model.onnx_data"))
        throw invalid_input((dir / "model.onnx_data").string(), "external data cannot be packed into one file");
    std::string tail;
    json manifest{{"format_version", 1}, {"model", {{"size", fs::file_size(model)}, {"sha256", hash_file(model)}}}, {"files", json::object()}};
    for (const auto& f : package_files) {
        std::string name(f.name);
        if (f.role == file_role::model || !fs::is_regular_file(dir / name)) continue;
        std::string bytes = read_text_file(dir / name, 1u << 30);
        bool text = valid_utf8(bytes);
        tail += detail::metadata_entry_bytes(pack_file_prefix + name, text ? bytes : detail::base64_encode(bytes));
        manifest["files"][name] = {{"size", bytes.size()}, {"sha256", sha256_hex(bytes)}, {"encoding", text ? "utf-8" : "base64"}};
    }
    tail += detail::metadata_entry_bytes(pack_manifest_key, manifest.dump());
    fs::path tmp = output.string() + ".tmp";
    copy_file_hashed(model, tmp);
    {
        unique_fd out = open_or_throw(tmp, O_WRONLY | O_APPEND);
        detail::write_all(out.get(), tail.data(), tail.size(), tmp);
        detail::fsync_or_throw(out.get(), tmp);
    }
    fs::rename(tmp, output);
}

/// Restores a package directory from a packed model: model.onnx and every file byte-identical.
inline void unpack_model(const fs::path& packed, const fs::path& outdir) {
    onnx::ModelProto model = load_onnx_light(packed).model;
    json manifest;
    std::map<std::string, std::string> stored;
    for (const auto& kv : model.metadata_props()) {
        if (kv.key() == pack_manifest_key) manifest = parse_json_text(kv.value(), packed.string() + " (" + pack_manifest_key + ")");
        else if (kv.key().rfind(pack_file_prefix, 0) == 0) stored[kv.key().substr(std::string(pack_file_prefix).size())] = kv.value();
    }
    if (!manifest.is_object()) throw invalid_input(packed.string(), "is not a packed model (no " + std::string(pack_manifest_key) + " entry)");
    model.Clear();
    package_writer writer(outdir);
    for (const auto& [name, entry] : manifest.at("files").items()) {
        if (!role_of(name) || !stored.count(name)) throw invalid_input(packed.string(), "manifest names an unexpected file '" + name + "'");
        std::string bytes = entry.value("encoding", "utf-8") == "base64" ? detail::base64_decode(stored[name], packed.string()) : stored[name];
        if (write_file(writer.staging() / name, bytes).sha256 != entry.value("sha256", ""))
            throw invalid_input(packed.string(), "stored " + name + " does not match its recorded SHA-256");
    }
    // model.onnx: the packed file cut at the original length.
    std::uintmax_t size = manifest.at("model").at("size").get<std::uintmax_t>();
    if (size > fs::file_size(packed)) throw invalid_input(packed.string(), "shorter than the model it claims to hold");
    fs::path staged = writer.staging() / "model.onnx";
    copy_file_hashed(packed, staged);
    fs::resize_file(staged, size);
    if (hash_file(staged) != manifest["model"].value("sha256", ""))
        throw invalid_input(packed.string(), "the model bytes before the packed files do not match the recorded SHA-256");
    writer.commit();
}

}  // namespace modelexport
