// modelexport/export/reference_source.hpp — an existing ONNX model compared with a source's torch model
// (docs/design.md §3, §5.5).
//
// The reference check of an export the htp exporter did not trace: `prebuilt` and `command` exports
// of a source that has torch weights, and `validate --reference SOURCE` (CI on a deployment
// machine). The htp exporter (or the seq2seq exporter, for an encoder-decoder) runs in its
// --check-only mode on the ONNX file(s) and writes the record to a temporary file. Kept out of
// validator.hpp, which runs no process of its own.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/detail/process.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/exporter_call.hpp"
#include "modelexport/export/reference_check.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/tasks.hpp"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace modelexport {

/// Who compares: the exporter's interpreter and script, and how long it may take.
struct reference_runner {
    std::string python;
    fs::path exporter_script;  ///< tools/htp_exporter.py (htp_seq2seq.py beside it for encoder-decoders)
    std::chrono::seconds timeout{1800};
};

/// What a comparison gave: the record (passed), a mismatch (`mismatch` names the output), or a
/// comparison that could not run (`record.status` not_run, with the reason: never the model's fault).
struct reference_outcome {
    reference_check record;
    std::string mismatch;
};

namespace detail {

/// A private temporary directory, removed with this object.
class temp_dir {
public:
    temp_dir() {
        const char* root = std::getenv("TMPDIR");
        std::string templ = (root && *root ? std::string(root) : std::string("/tmp")) + "/modelexport-reference-XXXXXX";
        std::vector<char> buffer(templ.begin(), templ.end());
        buffer.push_back('\0');
        if (!::mkdtemp(buffer.data()))
            throw io_error(templ, std::string("cannot create a temporary directory: ") + std::strerror(errno));
        path_ = buffer.data();
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

}  // namespace detail

/// Compares `model` (a single-file task's ONNX file, or an encoder-decoder's primary file, whose
/// directory holds the others) with `src`'s torch model for `task`.
MODELEXPORT_ENTRY reference_outcome compare_with_source(const fs::path& model, const task_info& task,
                                                        const model_source& src, const reference_runner& runner);

#if MODELEXPORT_DEFINES(PRODUCE)
MODELEXPORT_ENTRY reference_outcome compare_with_source(const fs::path& model, const task_info& task,
                                                        const model_source& src, const reference_runner& runner) {
    detail::temp_dir tmp;
    const fs::path record_file = tmp.path() / "reference.json";
    std::vector<std::string> args = exporter_call_for(runner.exporter_script, task, src, model, record_file).args;
    args.push_back("--check-only");
    run_result r = run_exporter_process(runner.python, args, runner.timeout);
    if (ended_on_reference_mismatch(r)) return {reference_check::not_run("mismatch"), reference_mismatch_text(r)};
    if (!r.ok()) {
        const std::string last = last_error_line(r);
        return {reference_check::not_run("the source's torch model could not be compared (" +
                                         r.describe(runner.timeout) + (last.empty() ? "" : ": " + last) + ")"),
                {}};
    }
    try {
        json table = parse_json_text(read_text_file(record_file, 16u << 20), record_file.string(), {16u << 20, 64});
        return {reference_check::from_table(table), {}};
    } catch (const std::exception& e) {
        return {reference_check::not_run(std::string("the comparison wrote no usable record: ") + e.what()), {}};
    }
}
#endif

/// Whether a source has torch weights the comparison can load (any layout htp_weights.py reads).
inline bool has_torch_weights(const model_source& src) {
    for (const char* name :
         {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"})
        if (src.file(name)) return true;
    return false;
}

}  // namespace modelexport
