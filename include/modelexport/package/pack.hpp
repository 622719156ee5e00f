// modelexport/package/pack.hpp — a self-contained single-file model and back.
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

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/onnx/tensor_walk.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/package/single_file.hpp"
#include "modelexport/package/writer.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <openssl/evp.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

namespace modelexport {

inline constexpr const char* pack_manifest_key = "modelexport.pack";
inline constexpr const char* pack_file_prefix = "modelexport.file:";
inline constexpr int model_metadata_props_field = 14;

namespace detail {

inline std::string base64_encode(const std::string& in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

inline std::string base64_decode(const std::string& in, const std::string& what) {
    if (in.size() % 4 != 0 || in.size() > (1u << 31)) throw invalid_input(what, "invalid base64");
    std::string out(3 * in.size() / 4 + 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    std::size_t pad = in.size() >= 2 ? (in[in.size() - 1] == '=') + (in[in.size() - 2] == '=') : 0;
    if (n < 0 || static_cast<std::size_t>(n) < pad) throw invalid_input(what, "invalid base64");
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

/// A file being written beside its destination: removed on unwind, renamed by commit().
/// Created with O_EXCL under a per-process name, so it never writes through a
/// link or over a file someone else put there.
class temp_file {
public:
    explicit temp_file(const fs::path& dest)
        : dest_(dest), path_(dest.string() + ".tmp-" + std::to_string(::getpid())) {
        refuse_replacing_special_file(dest);  // before any work; commit() renames over it
        unique_fd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd && errno == EEXIST) {  // left by a killed run with our pid
            ::unlink(path_.c_str());
            fd.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        }
        if (!fd) {
            int e = errno;
            path_.clear();
            throw io_error(dest.string(), std::string("cannot write: ") + std::strerror(e));
        }
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() {
        if (!path_.empty()) ::unlink(path_.c_str());
    }
    const fs::path& path() const { return path_; }
    void commit() {
        refuse_replacing_special_file(dest_);  // one put there meanwhile
        if (::rename(path_.c_str(), dest_.c_str()) != 0)
            throw io_error(dest_.string(), std::string("cannot rename into place: ") + std::strerror(errno));
        path_.clear();
    }

private:
    fs::path dest_, path_;
};

/// A lower-case 64-digit hex SHA-256.
inline bool is_sha256_hex(const json& v) {
    if (!v.is_string() || v.get_ref<const std::string&>().size() != 64) return false;
    for (char c : v.get_ref<const std::string&>())
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

/// Checks the manifest's shape before anything uses it: {format_version: 1,
/// model: {size, sha256}, files: {name: {size, sha256, encoding}}} with package
/// file names other than model.onnx, unsigned sizes, hex hashes and a known
/// encoding. Anything else is invalid input naming the packed file.
inline void check_pack_manifest(const json& m, const std::string& name) {
    auto bad = [&](const std::string& what) {
        return invalid_input(name, "malformed " + std::string(pack_manifest_key) + " manifest: " + what);
    };
    if (!m.is_object()) throw bad("not a JSON object");
    if (!m.contains("format_version") || !m["format_version"].is_number_unsigned() ||
        m["format_version"].get<std::uint64_t>() != 1)
        throw bad("format_version is not 1");
    auto sized = [](const json& e) {
        return e.is_object() && e.contains("size") && e["size"].is_number_unsigned() && e.contains("sha256") &&
               is_sha256_hex(e["sha256"]);
    };
    if (!m.contains("model") || !sized(m["model"])) throw bad("\"model\" is not {size, sha256}");
    if (!m.contains("files") || !m["files"].is_object()) throw bad("no \"files\" object");
    if (m.contains("layout") && m["layout"] != "hub") throw bad("\"layout\" is not \"hub\"");  // absent: flat
    for (const auto& [file, e] : m["files"].items()) {
        auto role = role_of(file);
        if (!role || *role == file_role::model || file == "model.onnx_data")
            throw bad("names an unexpected file '" + file + "'");
        if (!sized(e) || !e.contains("encoding") || !e["encoding"].is_string() ||
            (e["encoding"] != "utf-8" && e["encoding"] != "base64"))
            throw bad("files entry '" + file + "' is not {size, sha256, encoding: utf-8|base64}");
    }
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

/// Writes `output`: the package's model.onnx (at the root, or onnx/model.onnx in the hub layout)
/// with its configuration files appended. A hub package's manifest says so ("layout": "hub"), and
/// unpack puts the model back under onnx/, where the stored export_metadata.json lists it.
/// Every file is read through the package's descriptor (package/reader.hpp): a link or special
/// file among the package's names is refused, never followed or left out, and so is a model
/// with external data (the packed file would not be self-contained) and an output inside the
/// package being read.
MODELEXPORT_ENTRY void pack_package(const fs::path& dir, const fs::path& output);

#if MODELEXPORT_DEFINES(PACKAGE)
MODELEXPORT_ENTRY void pack_package(const fs::path& dir, const fs::path& output) {
    const single_file_model m = open_single_file_model(dir, "pack");
    // A variant is a model of its own that loaders open by file name: no metadata entry of model.onnx stands for it.
    if (std::string variants = variant_files_in(dir); !variants.empty())
        throw invalid_input(dir.string(),
                            "holds variant files (" + variants + "); pack takes a package without variants");
    if (path_within(fs::weakly_canonical(fs::absolute(output)), fs::weakly_canonical(fs::absolute(dir))))
        throw usage_error(output.string(), "is inside the package " + dir.string() + ", which pack reads",
                          "write the packed model outside the package");
    const package_reader& pkg = m.package;
    const fs::path model = m.shown, model_read = m.read_path();
    std::string tail;
    json manifest{{"format_version", 1},
                  {"model", {{"size", fs::file_size(model_read)}, {"sha256", hash_file(model_read)}}},
                  {"files", json::object()}};
    if (m.layout == package_layout::hub) manifest["layout"] = "hub";  // absent for flat: flat packs keep their bytes
    for (const auto& f : package_files) {
        std::string name(f.name);
        if (f.role == file_role::model || !pkg.open(name)) continue;
        std::string bytes = pkg.read(name, 1u << 30);
        bool text = valid_utf8(bytes);
        tail += detail::metadata_entry_bytes(pack_file_prefix + name, text ? bytes : detail::base64_encode(bytes));
        manifest["files"][name] = {
            {"size", bytes.size()}, {"sha256", sha256_hex(bytes)}, {"encoding", text ? "utf-8" : "base64"}};
    }
    tail += detail::metadata_entry_bytes(pack_manifest_key, manifest.dump());
    detail::temp_file tmp(output);  // removed on any failure below: no OUT.tmp-PID stays
    if (copy_file_hashed(model_read, tmp.path()).sha256 != manifest["model"]["sha256"])
        throw invalid_input(model.string(), "changed while it was packed");
    {
        unique_fd out = open_or_throw(tmp.path(), O_WRONLY | O_APPEND);
        detail::write_all(out.get(), tail.data(), tail.size(), tmp.path());
        detail::fsync_or_throw(out.get(), tmp.path());
    }
    tmp.commit();
}
#endif

/// Restores a package directory from a packed model: model.onnx and every file byte-identical.
MODELEXPORT_ENTRY void unpack_model(const fs::path& packed, const fs::path& outdir);

#if MODELEXPORT_DEFINES(PACKAGE)
MODELEXPORT_ENTRY void unpack_model(const fs::path& packed, const fs::path& outdir) {
    onnx::ModelProto model = load_onnx_light(packed).model;
    json manifest;
    std::map<std::string, std::string> stored;
    for (const auto& kv : model.metadata_props()) {
        if (kv.key() == pack_manifest_key)
            manifest = parse_json_text(kv.value(), packed.string() + " (" + pack_manifest_key + ")");
        else if (kv.key().rfind(pack_file_prefix, 0) == 0)
            stored[kv.key().substr(std::string(pack_file_prefix).size())] = kv.value();
    }
    if (manifest.is_null())
        throw invalid_input(packed.string(), "is not a packed model (no " + std::string(pack_manifest_key) + " entry)");
    detail::check_pack_manifest(manifest, packed.string());
    model.Clear();
    // Everything is checked in memory before the package writer touches the output.
    std::uintmax_t size = manifest["model"]["size"].get<std::uintmax_t>();
    if (size > fs::file_size(packed)) throw invalid_input(packed.string(), "shorter than the model it claims to hold");
    std::map<std::string, std::string> files;
    for (const auto& [name, entry] : manifest["files"].items()) {
        if (!stored.count(name))
            throw invalid_input(packed.string(), "manifest names '" + name + "' but the model holds no such file");
        std::string bytes = entry["encoding"] == "base64"
                                ? detail::base64_decode(stored[name], packed.string() + " (" + name + ")")
                                : stored[name];
        sha256 h;
        h.update(bytes.data(), bytes.size());
        if (bytes.size() != entry["size"].get<std::uintmax_t>() || h.hex() != entry["sha256"].get<std::string>())
            throw invalid_input(packed.string(), "stored " + name + " does not match its recorded size and SHA-256");
        files[name] = std::move(bytes);
    }
    if (package_writer::claims(outdir, fs::weakly_canonical(fs::absolute(packed))))
        throw usage_error(outdir.string(), "holds " + packed.string() + ", which unpacking would replace",
                          "unpack to another directory");
    package_writer writer(outdir);
    for (const auto& [name, bytes] : files) write_file(writer.staging() / name, bytes);
    // model.onnx: the packed file cut at the original length, where the packed package's layout had it.
    const package_layout layout = manifest.contains("layout") ? package_layout::hub : package_layout::flat;
    fs::path staged = writer.staging() / layout_path(layout, "model.onnx");
    if (layout == package_layout::hub) {
        fs::create_directory(staged.parent_path());
        fs::permissions(staged.parent_path(), fs::perms(0755));
    }
    copy_file_hashed(packed, staged);
    fs::resize_file(staged, size);
    if (hash_file(staged) != manifest["model"]["sha256"].get<std::string>())
        throw invalid_input(packed.string(),
                            "the model bytes before the packed files do not match the recorded SHA-256");
    light_model restored = load_onnx_light(staged, packed.string());
    if (std::string tensor = detail::first_external_tensor(restored); !tensor.empty())
        throw invalid_input(
            packed.string(),
            "the packed model's " + tensor + " keeps its data in another file; a packed model holds all its tensors");
    writer.commit();
}
#endif

}  // namespace modelexport
