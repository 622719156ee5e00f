// libFuzzer target, structure-aware: the input bytes drive a small generator of
// ModelProtos that put tensors everywhere ONNX allows one (initializers, sparse
// initializers, Constant-style attributes, If/Loop/Scan subgraphs several levels
// deep, function bodies), many with external data pointing at good, missing,
// escaping, linked and special files, and sometimes a second `graph` field that
// protobuf merges into the first. Then:
//
//  1. The light reader must accept whatever protobuf accepts (and see as many
//     initializers), and throw only invalid_input.
//  2. check_onnx (export and validate's check) must never call a model ok that
//     holds an external tensor the generator pointed outside the package, at a
//     link leaving it, a special file or a missing file (docs/design.md §11).
//  3. A model it accepts gathers (onnx/external_data.hpp) into a staging directory, and
//     the gathered model passes the same check there.
#include "modelexport/onnx/checks.hpp"
#include "modelexport/onnx/external_data.hpp"
#include "modelexport/onnx/stream.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace me = modelexport;
namespace fs = std::filesystem;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

fs::path root() { return fs::temp_directory_path() / ("modelexport-fuzz-walk-" + std::to_string(::getpid())); }

/// The package: w.bin (64 bytes), model.onnx_data (8 KiB), a link out, a FIFO, a directory.
const fs::path& package_dir() {
    static const fs::path dir = [] {
        fs::path d = root() / "pkg";
        fs::create_directories(d / "dir");
        fs::create_directories(root() / "stage");
        std::ofstream(d / "w.bin") << std::string(64, '\1');
        std::ofstream(d / "model.onnx_data") << std::string(8192, '\2');
        std::ofstream(root() / "outside.bin") << std::string(64, '\3');
        fs::create_symlink(root() / "outside.bin", d / "link.bin");
        ::mkfifo((d / "fifo").c_str(), 0644);
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(root(), ec);
        });
        return d;
    }();
    return dir;
}

/// Builds models from fuzzer bytes; `hostile` is set when an external tensor points
/// somewhere a package may never read.
struct generator {
    FuzzedDataProvider& in;
    bool hostile = false;
    int tensors = 0;

    std::string name(const char* prefix) { return prefix + std::to_string(tensors++); }

    std::string byte_count() {
        switch (in.ConsumeIntegralInRange(0, 5)) {
            case 0:
                return "0";
            case 1:
                return std::to_string(in.ConsumeIntegralInRange(0, 9000));
            case 2:
                return "-1";
            case 3:
                return "18446744073709551615";
            case 4:
                return "9223372036854775807";
            default:
                return in.ConsumeRandomLengthString(24);
        }
    }

    void external(onnx::TensorProto& t) {
        t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
        static const char* good[] = {"w.bin", "model.onnx_data", "dir/../w.bin"};
        static const char* bad[] = {"../outside.bin", "/etc/hostname", "link.bin", "fifo", "dir", "missing.bin", "",
                                    "./../w.bin"};
        int entries = in.ConsumeIntegralInRange(0, 4);
        std::string last_location;
        bool has_location = false;
        for (int i = 0; i < entries; ++i) {
            auto* e = t.add_external_data();
            switch (in.ConsumeIntegralInRange(0, 3)) {
                case 0: {
                    e->set_key("location");
                    has_location = true;
                    if (in.ConsumeBool())
                        last_location = good[in.ConsumeIntegralInRange<std::size_t>(0, 2)];
                    else
                        last_location = bad[in.ConsumeIntegralInRange<std::size_t>(0, 7)];
                    e->set_value(last_location);
                    break;
                }
                case 1:
                    e->set_key("offset"), e->set_value(byte_count());
                    break;
                case 2:
                    e->set_key("length"), e->set_value(byte_count());
                    break;
                default:
                    e->set_key(in.ConsumeRandomLengthString(8)), e->set_value(in.ConsumeRandomLengthString(8));
            }
        }
        // The last location counts, as in ONNX Runtime; only plain names of package files may pass.
        hostile = hostile || !(has_location && (last_location == "w.bin" || last_location == "model.onnx_data"));
    }

    onnx::TensorProto tensor() {
        onnx::TensorProto t;
        t.set_name(name("t"));
        static const int types[] = {onnx::TensorProto_DataType_FLOAT,
                                    onnx::TensorProto_DataType_UINT8,
                                    onnx::TensorProto_DataType_INT64,
                                    onnx::TensorProto_DataType_STRING,
                                    0,
                                    99};
        t.set_data_type(types[in.ConsumeIntegralInRange<std::size_t>(0, 5)]);
        int rank = in.ConsumeIntegralInRange(0, 3);
        for (int i = 0; i < rank; ++i)
            t.add_dims(in.ConsumeBool() ? in.ConsumeIntegralInRange<std::int64_t>(0, 16)
                                        : in.ConsumeIntegral<std::int64_t>());
        switch (in.ConsumeIntegralInRange(0, 3)) {
            case 0:
                t.set_raw_data(std::string(in.ConsumeIntegralInRange<std::size_t>(0, 64), '\0'));
                break;
            case 1:
                t.set_raw_data(std::string(in.ConsumeIntegralInRange<std::size_t>(4096, 4200), '\0'));
                break;
            case 2:
                for (int i = in.ConsumeIntegralInRange(0, 8); i > 0; --i) t.add_float_data(1.0f);
                break;
            default:
                break;
        }
        if (in.ConsumeBool()) external(t);
        return t;
    }

    void sparse(onnx::SparseTensorProto& s) {
        s.add_dims(in.ConsumeIntegralInRange<std::int64_t>(0, 64));
        if (in.ConsumeBool()) *s.mutable_values() = tensor();
        if (in.ConsumeBool()) *s.mutable_indices() = tensor();
    }

    void node(onnx::NodeProto& n, int depth) {
        static const char* ops[] = {"Constant", "If", "Loop", "Scan", "Identity"};
        n.set_op_type(ops[in.ConsumeIntegralInRange<std::size_t>(0, 4)]);
        n.set_name(name("n"));
        n.add_output(n.name() + "_out");
        for (int i = in.ConsumeIntegralInRange(0, 3); i > 0; --i) {
            auto* a = n.add_attribute();
            a->set_name(name("a"));
            switch (in.ConsumeIntegralInRange(0, 4)) {
                case 0:
                    *a->mutable_t() = tensor();
                    break;
                case 1:
                    for (int k = in.ConsumeIntegralInRange(0, 2); k > 0; --k) *a->add_tensors() = tensor();
                    break;
                case 2:
                    sparse(*a->mutable_sparse_tensor());
                    break;
                case 3:
                    if (depth < 5) graph(*a->mutable_g(), depth + 1);
                    break;
                default:
                    if (depth < 5)
                        for (int k = in.ConsumeIntegralInRange(0, 2); k > 0; --k) graph(*a->add_graphs(), depth + 1);
            }
        }
    }

    void graph(onnx::GraphProto& g, int depth) {
        g.set_name(name("g"));
        for (int i = in.ConsumeIntegralInRange(0, 3); i > 0; --i) *g.add_initializer() = tensor();
        for (int i = in.ConsumeIntegralInRange(0, 1); i > 0; --i) sparse(*g.add_sparse_initializer());
        for (int i = in.ConsumeIntegralInRange(0, 3); i > 0 && in.remaining_bytes(); --i) node(*g.add_node(), depth);
    }

    /// The model's bytes; sometimes a second graph field after the first (protobuf merges them).
    std::string model_bytes() {
        onnx::ModelProto m;
        m.set_ir_version(8);
        m.add_opset_import()->set_version(14);
        graph(*m.mutable_graph(), 0);
        for (int i = in.ConsumeIntegralInRange(0, 2); i > 0; --i) {
            auto* f = m.add_functions();
            f->set_name(name("f"));
            f->set_domain("local");
            node(*f->add_node(), 1);
        }
        std::string out;
        m.SerializeToString(&out);
        if (in.ConsumeBool()) {
            onnx::ModelProto second;
            graph(*second.mutable_graph(), 0);
            std::string more;
            second.SerializeToString(&more);
            out += in.ConsumeBool() ? more : more.substr(0, more.size() / 2);  // sometimes cut: a parse error
        }
        return out;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path& dir = package_dir();
    FuzzedDataProvider in(data, size);
    generator gen{in};
    const std::string bytes = gen.model_bytes();
    {
        std::ofstream out(dir / "model.onnx", std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    onnx::ModelProto reference;  // what protobuf, and so ONNX Runtime, reads
    bool parses = reference.ParseFromString(bytes) && reference.has_graph();

    me::light_model light;
    try {
        light = me::load_onnx_light(dir / "model.onnx");
    } catch (const me::invalid_input&) {
        require(!parses);  // 1. what protobuf reads, the light reader reads
        return 0;
    }
    require(light.model.graph().initializer_size() == reference.graph().initializer_size());

    me::onnx_verdict v = me::check_onnx(light, dir);
    if (gen.hostile) require(!v.external_data.empty());  // 2. never ok when a tensor leaves the package
    if (!v.external_data.empty()) return 0;

    // 3. gathering what was accepted, into a staging directory, gives a model accepted there.
    const fs::path stage = root() / "stage";
    fs::remove_all(stage);
    fs::create_directories(stage);
    fs::copy_file(dir / "model.onnx", stage / "model.onnx");
    fs::copy_file(dir / "model.onnx_data",
                  stage / "model.onnx_data");  // what a strategy copies when nothing needs gathering
    try {
        me::gather_external_data(stage / "model.onnx", "fuzz model", me::files_inside(dir, "fuzz model"));
    } catch (const me::invalid_input&) {
        return 0;  // a payload range the check leaves to the size check (length past a tensor's shape) may still be
                   // refused
    }
    me::light_model gathered = me::load_onnx_light(stage / "model.onnx");
    require(me::check_onnx(gathered, stage).external_data.empty());
    return 0;
}
