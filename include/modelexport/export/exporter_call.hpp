// modelexport/export/exporter_call.hpp — the command line of modelexport's own exporters and what their
// exit statuses mean (docs/design.md §3).
//
// One place builds the arguments of tools/htp_exporter.py (or the encoder-decoder exporter beside
// it) and reads how a run ended, for the three callers: the htp export of a single-file task, the
// htp export of an encoder-decoder, and the reference check of a model the exporter did not trace.
#pragma once

#include "modelexport/detail/process.hpp"
#include "modelexport/export/reference_check.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/tasks.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace modelexport {

/// The interpreter's argument list for an exporter: the script first.
struct exporter_call {
    std::string script;
    std::vector<std::string> args;
};

/// The exporter for `task` on `src`: htp_exporter.py writing or reading `model`, or, for an
/// encoder-decoder, the exporter beside it working in `model`'s directory. `table` is where it
/// writes its module table (or, with --check-only, its reference-check record).
inline exporter_call exporter_call_for(const fs::path& htp_script, const task_info& task, const model_source& src,
                                       const fs::path& model, const fs::path& table) {
    exporter_call call;
    if (task.encoder_decoder.empty()) {
        call.script = htp_script.string();
        call.args = {call.script, "--source",     src.dir.string(), "--task",      std::string(task.name),
                     "--onnx",    model.string(), "--modules",      table.string()};
    } else {
        call.script = (htp_script.parent_path() / std::string(task.encoder_decoder.exporter)).string();
        call.args = {call.script,
                     "--source",
                     src.dir.string(),
                     "--task",
                     std::string(task.encoder_decoder.exporter_task),
                     "--output-dir",
                     model.parent_path().string(),
                     "--modules",
                     table.string()};
    }
    // Hub snapshots link into ../../blobs: the exporter must accept links inside the repository folder.
    // Only then, so that custom --exporter-script programs keep their argument list for local sources.
    if (src.boundary != src.dir) call.args.insert(call.args.end(), {"--source-boundary", src.boundary.string()});
    return call;
}

/// Runs an exporter (or a user's export command) with the environment every exporter gets.
inline run_result run_exporter_process(const std::string& program, const std::vector<std::string>& args,
                                       std::chrono::seconds timeout,
                                       std::function<void(const std::string&, bool)> on_line = nullptr) {
    run_options ro;
    ro.timeout = timeout;
    ro.on_line = std::move(on_line);
    ro.env = {{"PYTHONDONTWRITEBYTECODE", "1"}, {"PYTHONUNBUFFERED", "1"}};
    return run_process(program, args, ro);
}

/// The last line the exporter wrote to stderr, printable.
inline std::string last_error_line(const run_result& r) {
    return r.last_err.empty() ? std::string() : printable(r.last_err.back());
}

/// Whether the child exited on its own with `status` (not killed, not timed out).
inline bool exited_with(const run_result& r, int status) {
    return !r.timed_out && r.signal == 0 && r.exit_status == status;
}

/// The last stderr line from `marker` on (the whole line when it has no marker): the tool's own
/// account of a failure, without the prefix its logger adds.
inline std::string last_error_from(const run_result& r, const std::string& marker) {
    const std::string last = last_error_line(r);
    return last.substr(std::min(last.find(marker), last.size()));
}

/// Whether one of modelexport's exporters ended on a failed reference check (only they use that status).
inline bool ended_on_reference_mismatch(const run_result& r) { return exited_with(r, reference_mismatch_status); }

/// The exporter's one-line account of a failed reference check (from "reference check failed").
inline std::string reference_mismatch_text(const run_result& r) { return last_error_from(r, "reference check failed"); }

/// The exporter script, the modules beside it (every htp_*.py: the ones it imports, htp_weights.py,
/// htp_optimum.py, htp_reference.py, ..., and the seq2seq exporter run instead of it for
/// encoder-decoder tasks, htp_seq2seq.py) and the task table it reads (share/tasks.json: beside it when installed, in
/// ../share/ in the source tree; the first found, as htp_tasks.py looks): all of them change
/// the ONNX bytes, so they are depfile inputs and part of the cache key. A custom
/// --exporter-script may come without the siblings.
inline std::vector<fs::path> htp_exporter_files(const fs::path& script) {
    std::vector<fs::path> out{script};
    std::error_code ec;
    const fs::path dir = script.parent_path();
    std::vector<fs::path> siblings;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        // htp_variants.py runs after the cached step (export/variants.hpp): editing it must not lose the fp32 exports.
        if (name.rfind("htp_", 0) == 0 && e.path().extension() == ".py" && e.path() != script &&
            name != "htp_variants.py" && fs::is_regular_file(e.path(), ec))
            siblings.push_back(e.path());
    }
    std::sort(siblings.begin(), siblings.end());  // directory order is the file system's: the key must not depend on it
    out.insert(out.end(), siblings.begin(), siblings.end());
    for (const fs::path& table : {dir / "tasks.json", dir / ".." / "share" / "tasks.json"})
        if (fs::is_regular_file(table, ec)) {
            out.push_back(table.lexically_normal());
            break;
        }
    return out;
}

}  // namespace modelexport
