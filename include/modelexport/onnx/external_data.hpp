// modelexport/onnx/external_data.hpp — bringing a model's external data into the
// package as one file, model.onnx_data (docs/design.md §3 and §11).
//
// torch.onnx.export above 2 GiB, and onnx.save_model(...,
// all_tensors_to_one_file=False), write one file per tensor beside model.onnx.
// A package holds model.onnx and at most model.onnx_data, so every strategy
// calls gather_external_data() once its model is staged: when every external
// tensor already lives in model.onnx_data nothing happens (the files stay byte
// for byte); otherwise each tensor's bytes are streamed, in 1 MiB blocks, into a
// new model.onnx_data at offsets aligned to 4096 (as onnx's own writer may
// align, so runtimes can map them), and model.onnx is rewritten to point there.
// Memory is the graph plus one block, whatever the size of the weights.
#pragma once

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/onnx/tensor_walk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

inline constexpr const char* external_data_name = "model.onnx_data";

/// Finds the readable regular file behind a reference's location, or throws invalid_input
/// naming the tensor; the strategy decides what "inside" means (a source, the staging dir).
using external_file_resolver = std::function<fs::path(const external_reference&)>;

/// What gathering did.
struct gathered_data {
    bool rewritten = false;                     ///< model.onnx and model.onnx_data were written anew
    std::vector<fs::path> inputs;               ///< the files read (for the depfile)
    std::map<std::string, std::string> sha256;  ///< of the files written, by package name
};

namespace detail {

inline constexpr std::uint64_t external_alignment = 4096;

/// Appends `length` bytes of `from` at `offset` to `out`, hashing them.
inline void append_range(const fs::path& from, std::uint64_t offset, std::uint64_t length, int out,
                         const fs::path& out_path, sha256& hash) {
    unique_fd in = open_or_throw(from, O_RDONLY);
    std::vector<char> block(1u << 20);
    while (length > 0) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, block.size()));
        ssize_t n = ::pread(in.get(), block.data(), want, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw invalid_input(from.string(), "ended before the external data a tensor declares");
        hash.update(block.data(), static_cast<std::size_t>(n));
        write_all(out, block.data(), static_cast<std::size_t>(n), out_path);
        offset += static_cast<std::uint64_t>(n);
        length -= static_cast<std::uint64_t>(n);
    }
}

inline void set_external(onnx::TensorProto& t, std::uint64_t offset, std::uint64_t length) {
    t.clear_external_data();
    for (auto [k, v] : {std::pair<const char*, std::string>{"location", external_data_name},
                        {"offset", std::to_string(offset)},
                        {"length", std::to_string(length)}}) {
        auto* e = t.add_external_data();
        e->set_key(k);
        e->set_value(v);
    }
}

}  // namespace detail

/// Whether some tensor of `model` keeps its data in a file other than model.onnx_data.
/// Read without the inline weights, so a large model without external data costs
/// the graph's memory, not the model's.
inline bool has_foreign_external_data(const fs::path& model, const std::string& shown) {
    light_model light = load_onnx_light(model, shown);
    bool foreign = false;
    for_each_tensor(light.model, [&](onnx::TensorProto& t, const tensor_site& site) {
        if (is_external(t) && !light.skipped_at(site))
            foreign = foreign || external_reference_of(t, site.where).location != external_data_name;
    });
    return foreign;
}

/// Makes the staged `model` (read as `shown` in messages) keep all its external data in
/// model.onnx_data beside it. Locations are resolved by `resolve`. Files it gathered
/// from inside the model's own directory (the staging directory) are removed, so the
/// package holds model.onnx and model.onnx_data only.
inline gathered_data gather_external_data(const fs::path& model, const std::string& shown,
                                          const external_file_resolver& resolve) {
    gathered_data result;
    if (!has_foreign_external_data(model, shown))
        return result;                             // byte for byte: the strategy copies model.onnx_data as it is
    onnx::ModelProto m = load_onnx(model, shown);  // the weights are in other files: this is about the graph's size

    const fs::path dir = model.parent_path(), data = dir / external_data_name,
                   partial = dir / ".model.onnx_data.partial";
    std::set<fs::path> read;
    sha256 hash;
    std::uint64_t end = 0;
    {
        unique_fd out = open_or_throw(partial, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        for_each_tensor(m, [&](onnx::TensorProto& t, const tensor_site& site) {
            if (!is_external(t)) return;
            external_reference r = external_reference_of(t, site.where);
            fs::path file = resolve(r);
            std::uint64_t size = fs::file_size(file), length = r.length < 0 ? size - std::min(size, r.offset)
                                                                            : static_cast<std::uint64_t>(r.length);
            std::uint64_t stop = 0;
            if (r.offset > size || __builtin_add_overflow(r.offset, length, &stop) || stop > size)
                throw invalid_input(shown, r.tensor + " reads bytes " + std::to_string(r.offset) + "+" +
                                               std::to_string(length) + " of " + r.location + " which has only " +
                                               std::to_string(size));
            std::uint64_t aligned =
                (end + detail::external_alignment - 1) / detail::external_alignment * detail::external_alignment;
            std::string pad(static_cast<std::size_t>(aligned - end), '\0');
            hash.update(pad.data(), pad.size());
            detail::write_all(out.get(), pad.data(), pad.size(), partial);
            detail::append_range(file, r.offset, length, out.get(), partial, hash);
            detail::set_external(t, aligned, length);
            end = aligned + length;
            read.insert(file);
        });
        detail::fsync_or_throw(out.get(), partial);
    }
    for (const auto& f : read) {
        result.inputs.push_back(f);
        // The exporter's per-tensor files in the staging directory are not package files.
        if (f.parent_path() == dir && f.filename() != external_data_name && f.filename() != model.filename())
            fs::remove(f);
    }
    fs::rename(partial, data);
    result.sha256[external_data_name] = hash.hex();
    result.sha256["model.onnx"] = save_onnx(m, model).sha256;
    result.rewritten = true;
    return result;
}

/// The resolver for files an exporter wrote into `dir`: the location must name a
/// regular file inside it (the package rule, onnx/model.hpp).
inline external_file_resolver files_inside(const fs::path& dir, const std::string& shown) {
    return [dir, shown](const external_reference& r) {
        if (std::string problem = external_reference_problem(r, dir); !problem.empty())
            throw invalid_input(shown, problem);
        return dir / r.location;
    };
}

/// The resolver for a source's files: the location's form is checked here, and `find`
/// (model_source::file) applies the source's own containment rule; nullopt is missing.
inline external_file_resolver files_of_source(std::function<std::optional<fs::path>(const std::string&)> find,
                                              const std::string& shown) {
    return [find = std::move(find), shown](const external_reference& r) {
        if (std::string problem = external_reference_form_problem(r); !problem.empty())
            throw invalid_input(shown, problem);
        if (auto f = find(r.location)) return *f;
        throw invalid_input(shown, r.tensor + " needs missing file " + r.location);
    };
}

}  // namespace modelexport
