// libFuzzer target: the single-file model's manifest and stored files (package/pack.hpp).
//
// The input is a packed model's tail: `MANIFEST` or `MANIFEST\n--\nCONFIG`, where
// MANIFEST becomes the "modelexport.pack" entry and CONFIG the stored
// config.json, appended to a small valid model. Placeholders let the fuzzer
// reach past the hash checks: @MODEL_SIZE@, @MODEL_SHA@, @CONFIG_SIZE@ and
// @CONFIG_SHA@ are replaced by the true values. An input starting with "RAW:"
// is instead the whole packed file. unpack_model() must either restore a
// package (model.onnx equal to the base model, every file matching the
// manifest) or throw a modelexport error; any other exception, or anything left
// beside the output on failure, aborts.
#include "modelexport/package/pack.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace me = modelexport;
namespace fs = std::filesystem;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

const fs::path& work_dir() {
    static const fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / ("modelexport-fuzz-pack-" + std::to_string(::getpid()));
        fs::create_directories(d);
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(fs::temp_directory_path() / ("modelexport-fuzz-pack-" + std::to_string(::getpid())), ec);
        });
        return d;
    }();
    return dir;
}

/// A minimal valid model: y = Identity(x).
const std::string& base_model() {
    static const std::string bytes = [] {
        onnx::ModelProto m;
        m.set_ir_version(8);
        m.add_opset_import()->set_version(14);
        auto* g = m.mutable_graph();
        g->set_name("g");
        auto* n = g->add_node();
        n->set_op_type("Identity");
        n->add_input("x");
        n->add_output("y");
        for (auto* v : {g->add_input(), g->add_output()}) {
            v->set_name(v == &g->input(0) ? "x" : "y");
            auto* t = v->mutable_type()->mutable_tensor_type();
            t->set_elem_type(1);
            t->mutable_shape()->add_dim()->set_dim_value(1);
        }
        return m.SerializeAsString();
    }();
    return bytes;
}

std::string hex_sha(const std::string& s) {
    me::sha256 h;
    h.update(s.data(), s.size());
    return h.hex();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path& dir = work_dir();
    std::string input(reinterpret_cast<const char*>(data), size), file;
    if (input.rfind("RAW:", 0) == 0) {
        file = input.substr(4);
    } else {
        std::string manifest = input, config;
        if (auto sep = input.find("\n--\n"); sep != std::string::npos) {
            manifest = input.substr(0, sep);
            config = input.substr(sep + 4);
            file = base_model() +
                   me::detail::metadata_entry_bytes(std::string(me::pack_file_prefix) + "config.json", config);
        } else {
            file = base_model();
        }
        replace_all(manifest, "@MODEL_SIZE@", std::to_string(base_model().size()));
        replace_all(manifest, "@MODEL_SHA@", hex_sha(base_model()));
        replace_all(manifest, "@CONFIG_SIZE@", std::to_string(config.size()));
        replace_all(manifest, "@CONFIG_SHA@", hex_sha(config));
        file += me::detail::metadata_entry_bytes(me::pack_manifest_key, manifest);
    }
    fs::path packed = dir / "packed.onnx", out = dir / "out";
    std::ofstream(packed, std::ios::binary | std::ios::trunc) << file;
    std::error_code ec;
    fs::remove_all(out, ec);
    bool ok = false;
    try {
        me::unpack_model(packed, out);
        ok = true;
    } catch (const me::error&) {}
    if (ok) {
        // A restored package: model.onnx is a prefix of the packed file with the
        // recorded hash, and every other file is a package file.
        require(fs::is_regular_file(out / "model.onnx"));
        std::string model = me::read_text_file(out / "model.onnx", 1u << 30);
        require(file.compare(0, model.size(), model) == 0);
        for (const auto& e : fs::directory_iterator(out))
            require(me::role_of(e.path().filename().string()).has_value());
    } else {
        require(!fs::exists(out));
    }
    // Nothing but the input, the lock file and the output beside them.
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string n = e.path().filename().string();
        require(n == "packed.onnx" || n == "out" || n == ".out.lock");
    }
    return 0;
}
