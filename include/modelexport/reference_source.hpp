// modelexport/reference_source.hpp — `validate --reference SOURCE`: an existing package compared
// with a source's torch model (docs/design.md §5.5).
//
// The export's reference check again, for CI on a deployment machine: the htp exporter (or the
// seq2seq exporter, for an encoder-decoder package) runs in its --check-only mode on the package's
// ONNX file(s) and writes the record to a temporary file. Kept out of validator.hpp, which runs no
// process of its own.
#pragma once

#include "modelexport/process.hpp"
#include "modelexport/reference_check.hpp"
#include "modelexport/source.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validator.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace modelexport {

struct reference_request {
    std::string source;          ///< directory or Hub id
    fs::path hub_cache;          ///< empty: the environment's
    std::string python;          ///< the exporter's interpreter
    fs::path exporter_script;    ///< tools/htp_exporter.py
    std::chrono::seconds timeout{1800};
};

namespace detail {

/// The largest max_abs_diff of a record's steps.
inline double worst_difference(const json& record) {
    double worst = 0;
    for (const auto& step : record.value("steps", json::array()))
        for (const auto& out : step.value("outputs", json::array())) worst = std::max(worst, out.value("max_abs_diff", 0.0));
    return worst;
}

}  // namespace detail

/// The "reference" check of a validated package: pass with the largest difference, fail naming the
/// output that differs, or fail saying the comparison could not run (the source could not be
/// loaded), which is never the package's fault and says so.
inline check_result reference_against(const fs::path& dir, const validation_report& report, const reference_request& req) {
    check_result c{"reference", severity::error, check_status::fail, {}, json::object()};
    const task_info* task = report.task.empty() ? nullptr : find_task(report.task);
    if (!task) {
        c.message = dir.string() + ": the package's task is unknown, so no torch model can be built to compare with";
        return c;
    }
    model_source src = resolve_source(req.source, req.hub_cache.empty() ? hub_cache_dir() : req.hub_cache);
    const char* tmp_root = std::getenv("TMPDIR");
    std::string templ = (tmp_root && *tmp_root ? std::string(tmp_root) : std::string("/tmp")) + "/modelexport-reference-XXXXXX";
    std::vector<char> buffer(templ.begin(), templ.end());
    buffer.push_back('\0');
    if (!::mkdtemp(buffer.data())) throw io_error(templ, std::string("cannot create a temporary directory: ") + std::strerror(errno));
    const fs::path tmp = buffer.data();
    const fs::path record_file = tmp / "reference.json";
    std::vector<std::string> args;
    const fs::path model = dir / report.model;
    if (!task->encoder_decoder.empty()) {
        const fs::path script = req.exporter_script.parent_path() / std::string(task->encoder_decoder.exporter);
        args = {script.string(), "--source", src.dir.string(), "--task", std::string(task->encoder_decoder.exporter_task),
                "--output-dir", model.parent_path().string(), "--modules", record_file.string(), "--check-only"};
    } else {
        args = {req.exporter_script.string(), "--source", src.dir.string(), "--task", report.task, "--onnx", model.string(),
                "--modules", record_file.string(), "--check-only"};
    }
    if (src.boundary != src.dir) args.insert(args.end(), {"--source-boundary", src.boundary.string()});
    run_options ro;
    ro.timeout = req.timeout;
    ro.env = {{"PYTHONDONTWRITEBYTECODE", "1"}, {"PYTHONUNBUFFERED", "1"}};
    run_result r = run_process(req.python, args, ro);
    std::string last = r.last_err.empty() ? std::string() : printable(r.last_err.back());
    std::error_code ec;
    json record;
    if (r.ok()) {
        try {
            record = parse_json_text(read_text_file(record_file, 16u << 20), record_file.string(), {16u << 20, 64})
                         .value("reference_check", json::object());
        } catch (const std::exception& e) {
            last = e.what();
        }
    }
    fs::remove_all(tmp, ec);
    if (!r.timed_out && r.signal == 0 && r.exit_status == reference_mismatch_status) {
        c.message = model.string() + ": " + last.substr(std::min(last.find("reference check failed"), last.size()));
        return c;
    }
    if (!r.ok() || !record.is_object() || record.value("status", "") != "passed") {
        c.message = "the comparison with " + req.source + " could not run (" +
                    (r.ok() ? record.value("reason", last) : r.describe(req.timeout) + (last.empty() ? "" : ": " + last)) +
                    "); this says nothing about the package";
        return c;
    }
    c.status = check_status::pass;
    c.metrics = {{"max_abs_diff", detail::worst_difference(record)}, {"atol", record.value("atol", 0.0)}};
    c.message = "outputs within " + json(record.value("atol", 0.0)).dump() + " of " + req.source + "'s torch model (max abs diff " +
                json(detail::worst_difference(record)).dump() + ")";
    return c;
}

}  // namespace modelexport
