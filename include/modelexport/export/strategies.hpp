// modelexport/export/strategies.hpp — the "produce ONNX" step: htp, prebuilt, command
// (docs/design.md §3).
//
// Each strategy writes its model file(s) into the staging directory and returns
// a produced_onnx: which files it staged, which inputs it read (for the depfile)
// and what it learned on the way (the trace, torch's parameter count). That is
// also the unit the export cache stores (§10): everything after this step is
// deterministic in it.
#pragma once

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/detail/process.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/exporter_call.hpp"
#include "modelexport/export/final_file.hpp"
#include "modelexport/export/module_table.hpp"
#include "modelexport/export/reference_check.hpp"
#include "modelexport/export/reference_source.hpp"
#include "modelexport/export/sentence_pipeline.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/export/staged_hashes.hpp"
#include "modelexport/export_options.hpp"
#include "modelexport/onnx/external_data.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/tasks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelexport {

/// What producing the ONNX model gave.
struct produced_onnx {
    std::vector<std::string> models;  ///< ONNX files staged, by package name ("model.onnx"); the first is the primary
    std::vector<std::string> data_files;                    ///< their external data files ("model.onnx_data")
    std::vector<fs::path> inputs;                           ///< source files read, for the depfile
    staged_hashes hashes;                                   ///< sha256 of staged files a copy already computed
    std::vector<traced_module> modules;                     ///< the trace (htp only); of the primary file
    std::vector<std::vector<traced_module>> model_modules;  ///< several models: each one's trace, parallel to `models`
    std::string torch_version;
    std::string onnx_exporter;
    long long parameters = 0;      ///< torch's count (htp only)
    std::string signature_source;  ///< where the exporter took the signature from: "optimum" or "task table" (htp only)
    sentence_pipeline pipeline;    ///< --library sentence-transformers: what sentence_embedding computes
    reference_check reference = reference_check::not_run("the strategy copies an ONNX model it did not export");
    json exporter_seconds =
        json::object();  ///< the exporter's own phases ("phase_seconds" of its table), for --report only
    std::string shown;   ///< how errors name the model: where it came from, not the staging path
};

namespace detail {

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
        s.replace(pos, from.size(), to);
    return s;
}

/// The options both htp exporters take: the opset, the reference check's tolerance or its refusal.
/// --raise-opset goes to modelexport's own exporters only (htp_exporter.py, or a copy under that name,
/// and the encoder-decoder one beside it): a custom --exporter-script keeps the arguments it always had.
inline void add_exporter_options(std::vector<std::string>& args, const export_options& opt) {
    args.insert(args.end(), {"--opset", std::to_string(opt.opset)});
    if (!opt.opset_given && opt.exporter_script.filename() == "htp_exporter.py") args.push_back("--raise-opset");
    if (!opt.reference_check)
        args.push_back("--no-reference-check");
    else if (opt.atol > 0)
        args.insert(args.end(), {"--atol", json(opt.atol).dump()});
}

/// Who runs: modelexport's own exporters, whose exit status reference_mismatch_status means a failed
/// reference check, or a user's command, whose statuses mean nothing to modelexport.
enum class exporter_kind { htp, command };

/// Runs a child for the export and turns its failure into export_failed (reference_mismatch when
/// an htp exporter's reference check failed).
inline void run_exporter(const std::string& what, const std::string& program, const std::vector<std::string>& args,
                         const export_options& opt, exporter_kind kind = exporter_kind::htp) {
    run_result r = run_exporter_process(program, args, opt.timeout, opt.exporter_line);
    if (kind == exporter_kind::htp && ended_on_reference_mismatch(r))
        throw reference_mismatch(what, reference_mismatch_text(r),
                                 "the package would not compute the source model; --atol raises the tolerance, "
                                 "--no-reference-check skips the check");
    if (!r.ok()) {
        std::string tail = r.stderr_tail();
        throw export_failed(what,
                            "exporter failed (" + r.describe(opt.timeout) + ")" + (tail.empty() ? "" : ": " + tail),
                            r.timed_out ? "raise --timeout if the model is large" : "");
    }
}

/// The module folders a sentence-transformers checkpoint's modules.json names ("1_Pooling", "2_Dense"):
/// its pipeline reads their files. Only plain folder names of the source; the exporter refuses the rest.
inline std::vector<std::string> recipe_module_folders(const model_source& src) {
    std::vector<std::string> folders;
    json modules;
    try {
        auto path = src.file("modules.json");
        if (!path) return folders;
        modules = read_json_file(*path);
    } catch (const std::exception&) {  // unreadable: the exporter names the problem when it reads it
        return folders;
    }
    if (!modules.is_array()) return folders;
    for (const auto& m : modules) {
        auto p = m.is_object() ? m.find("path") : m.end();
        if (p == m.end() || !p->is_string()) continue;
        std::string folder = p->get<std::string>();
        if (!folder.empty() && folder != "." && folder != ".." && folder.find('/') == std::string::npos)
            folders.push_back(folder);
    }
    return folders;
}

/// Files of the source directory the exporter may read: the top level's regular files and those of
/// sentence-transformers' module folders (other subfolders, onnx/, are read only when named).
inline std::vector<fs::path> source_files(const model_source& src) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(src.dir, ec)) {
        if (!fs::is_regular_file(e.path(), ec)) continue;
        if (src.file(e.path().filename().string())) files.push_back(e.path());
    }
    for (const std::string& folder : recipe_module_folders(src)) {
        if (!fs::is_directory(fs::symlink_status(src.dir / folder, ec))) continue;
        for (const auto& e : fs::directory_iterator(src.dir / folder, ec)) {
            const std::string name = folder + "/" + e.path().filename().string();
            if (fs::is_regular_file(e.path(), ec) && src.file(name)) files.push_back(src.dir / name);
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

/// A file an exporter or command produced (`from`, inside the staging directory)
/// becomes the package file `to`: moved when it is a regular file with one link;
/// copied into a new inode when it is a symlink or shares its inode with another
/// file (the bytes are read through it, never written; the package holds no
/// links); refused when it is, or links to, anything else (FIFO, socket, device,
/// directory) — nothing is ever opened that could block. `who` names the exporter.
inline void adopt_exporter_file(const fs::path& from, const fs::path& to, const std::string& who) {
    const std::string name = from.filename().string();
    struct stat st {};
    if (::lstat(from.c_str(), &st) != 0) throw export_failed(who, "wrote no " + name);
    if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
        if (from != to && ::rename(from.c_str(), to.c_str()) != 0)
            throw io_error(to.string(),
                           std::string("cannot move the exporter's ") + name + ": " + std::strerror(errno));
        return;
    }
    struct stat target {};
    if (S_ISLNK(st.st_mode) && ::stat(from.c_str(), &target) != 0)
        throw export_failed(who, "wrote " + name + " as a broken link");
    if (!S_ISREG(st.st_mode) && !(S_ISLNK(st.st_mode) && S_ISREG(target.st_mode)))
        throw export_failed(who, "wrote " + name + " as " +
                                     file_kind(S_ISLNK(st.st_mode) ? target.st_mode : st.st_mode) +
                                     (S_ISLNK(st.st_mode) ? " (through a link)" : "") + ", not a regular file");
    fs::path copy = to.string() + ".copy";
    copy_file_hashed(from, copy);
    ::unlink(from.c_str());
    if (::rename(copy.c_str(), to.c_str()) != 0)
        throw io_error(to.string(), std::string("cannot move the copied ") + name + ": " + std::strerror(errno));
}

/// Per-tensor external data becomes one model.onnx_data (onnx/external_data.hpp); what that read and wrote is recorded.
inline bool gather_into(produced_onnx& out, const fs::path& model, const external_file_resolver& resolve) {
    gathered_data g = gather_external_data(model, out.shown, resolve);
    out.inputs.insert(out.inputs.end(), g.inputs.begin(), g.inputs.end());
    out.hashes.remember(g.sha256);
    if (g.rewritten) out.data_files = {external_data_name};
    return g.rewritten;
}

/// The exporter's module table (--modules), read by module_table; any other shape is the exporter's failure.
inline module_table read_module_table(const fs::path& table, const std::string& exporter) {
    try {
        return module_table::from_json(
            parse_json_text(read_text_file(table, 64u << 20), ".modules.json", {64u << 20, 64}));
    } catch (const std::exception& e) {  // limits, not JSON, or the wrong shape (nlohmann type errors)
        throw export_failed(exporter, std::string("the exporter wrote an unusable module table: ") + e.what());
    }
}

/// The single-file exporter's table (tools/htp_exporter.py): model.onnx's trace and the exporter's reports.
inline void read_module_table(const fs::path& table, const std::string& exporter, produced_onnx& out) {
    module_table t = read_module_table(table, exporter);
    if (t.models.size() != 1)
        throw export_failed(exporter, "the exporter wrote an unusable module table: several files for one model");
    t.fill(out);
}

/// The seq2seq exporter's table (format 2, tools/htp_seq2seq.py): one entry per ONNX file, kept in
/// `files`' order; each must be a file the task declares.
inline void read_module_tables(const fs::path& table, const std::string& exporter,
                               const std::vector<std::string_view>& files, produced_onnx& out) {
    module_table t = read_module_table(table, exporter);
    try {
        t.order_as(files);
    } catch (const std::exception& e) {
        throw export_failed(exporter, std::string("the exporter wrote an unusable module table: ") + e.what());
    }
    t.fill(out);
}

}  // namespace detail

/// htp: the torch exporter writes model.onnx and the module table into the staging directory.
inline produced_onnx produce_htp(const model_source& src, const task_info& task, const fs::path& stage,
                                 const export_options& opt) {
    produced_onnx out;
    const std::string exporter = opt.exporter_script.string();
    out.shown = "model.onnx written by " + exporter;
    const fs::path model = stage / "model.onnx", table = stage / ".modules.json";
    if (opt.exporter_script.empty() || !fs::is_regular_file(opt.exporter_script))
        throw export_failed(exporter, "exporter script not found", "pass --exporter-script or reinstall modelexport");
    std::vector<std::string> args = exporter_call_for(opt.exporter_script, task, src, model, table).args;
    detail::add_exporter_options(args, opt);
    if (opt.library != "transformers") args.insert(args.end(), {"--library", opt.library});
    if (!opt.model_factory.empty()) {
        args.insert(args.end(), {"--model", opt.model_factory});
        std::string file = opt.model_factory.substr(0, opt.model_factory.rfind(':'));
        out.inputs.push_back(fs::path(file).is_absolute() ? fs::path(file) : src.dir / file);
    }
    final_file_hash early(stage, "model.onnx");  // hashed and made durable while the exporter checks it
    detail::run_exporter(exporter, opt.python, args, early.watching(opt));
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(model, ec)) || fs::is_directory(fs::symlink_status(model, ec)))
        throw export_failed(exporter, "the exporter exited successfully but wrote no ONNX model");
    detail::adopt_exporter_file(model, model, exporter);
    if (fs::file_size(model) == 0)
        throw export_failed(exporter, "the exporter exited successfully but wrote no ONNX model");
    if (auto sha = early.result()) out.hashes.remember("model.onnx", *sha);
    detail::gather_into(out, model, files_inside(stage, out.shown));  // torch writes a file per tensor above 2 GiB
    if (!fs::is_regular_file(table))
        throw export_failed(exporter, "the exporter wrote model.onnx but no module table (--modules)");
    detail::read_module_table(table, exporter, out);
    fs::remove(table);
    for (const auto& f : detail::source_files(src)) out.inputs.push_back(f);
    for (const auto& f : htp_exporter_files(opt.exporter_script)) out.inputs.push_back(f);
    return out;
}

/// htp for an encoder-decoder task: the seq2seq exporter beside htp_exporter.py writes the task's
/// ONNX files (encoder, decoders, merged decoder) and a format-2 module table into the staging directory.
inline produced_onnx produce_htp_seq2seq(const model_source& src, const task_info& task, const fs::path& stage,
                                         const export_options& opt) {
    produced_onnx out;
    const fs::path table = stage / ".modules.json";
    exporter_call call = exporter_call_for(opt.exporter_script, task, src,
                                           stage / std::string(task.encoder_decoder.files.front()), table);
    const std::string& exporter = call.script;
    out.shown = "the ONNX files written by " + exporter;
    if (!opt.model_factory.empty())
        throw usage_error("--model", "a model factory is not supported for " + std::string(task.name));
    if (opt.library != "transformers")
        throw usage_error("--library", opt.library + " exports feature-extraction only, not " + std::string(task.name));
    if (!fs::is_regular_file(exporter))
        throw export_failed(exporter, "exporter script not found", "reinstall modelexport");
    detail::add_exporter_options(call.args, opt);
    detail::run_exporter(exporter, opt.python, call.args, opt);
    for (auto name : task.encoder_decoder.files) {
        const fs::path model = stage / std::string(name);
        detail::adopt_exporter_file(model, model, exporter);
        if (fs::file_size(model) == 0)
            throw export_failed(exporter,
                                "the exporter exited successfully but wrote an empty " + model.filename().string());
    }
    if (!fs::is_regular_file(table)) throw export_failed(exporter, "the exporter wrote no module table (--modules)");
    detail::read_module_tables(table, exporter, task.encoder_decoder.files, out);
    fs::remove(table);
    for (const auto& f : detail::source_files(src)) out.inputs.push_back(f);
    for (const auto& f : htp_exporter_files(opt.exporter_script)) out.inputs.push_back(f);
    return out;
}

namespace detail {

/// {output}: the directory modelexport creates for --command, held open from its creation.
/// The command may do anything to the name: what it left is taken only when the name still
/// is that directory (not a link, not another directory), and only through the descriptor
/// (openat, O_NOFOLLOW), so no file from elsewhere can be moved into the package.
class command_output {
public:
    explicit command_output(fs::path path) : path_(std::move(path)) {
        if (::mkdir(path_.c_str(), 0755) != 0)
            throw io_error(path_.string(), std::string("cannot create {output}: ") + std::strerror(errno));
        fd_.reset(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd_ || ::fstat(fd_.get(), &created_) != 0)
            throw io_error(path_.string(), std::string("cannot open {output}: ") + std::strerror(errno));
    }
    command_output(const command_output&) = delete;
    command_output& operator=(const command_output&) = delete;
    ~command_output() { remove_tree(path_); }  // its leftovers, whatever modes the command gave them

    const fs::path& path() const { return path_; }

    /// After the command: the name must still be the directory created. Its mode is restored
    /// (the directory is modelexport's; a command's `chmod 000 {output}` does not hide its files).
    void check_unchanged() const {
        struct stat now {};
        if (::lstat(path_.c_str(), &now) != 0)
            throw export_failed("--command", "the command removed {output} (" + path_.string() + ")");
        if (S_ISLNK(now.st_mode) || now.st_dev != created_.st_dev || now.st_ino != created_.st_ino)
            throw export_failed("--command",
                                "the command replaced {output} (" + path_.string() + ") with " +
                                    (S_ISLNK(now.st_mode) ? std::string("a symbolic link")
                                                          : "another " + file_kind(now.st_mode).substr(2)) +
                                    "; nothing is taken from it");
        ::fchmod(fd_.get(), 0755);
    }

    /// {output} as a path that resolves through the descriptor (for the external-data resolver).
    fs::path through_descriptor() const { return "/proc/self/fd/" + std::to_string(fd_.get()); }

    /// Whether the command left anything at `name` (a path relative to {output}).
    bool has(const std::string& name) const {
        auto [parent, base] = locate(name);
        struct stat st {};
        return ::fstatat(parent.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    }

    /// Moves the regular file the command left at `name` to `to` (copied into a new inode when it
    /// shares its inode). A link, a special file or a path through a link is refused.
    void take(const std::string& name, const fs::path& to) const {
        auto [parent, base] = locate(name);
        struct stat st {};
        if (::fstatat(parent.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) throw export_failed("--command", "the command wrote no " + name + " into {output}");
            throw export_failed("--command",
                                "cannot read the command's " + name + " in {output}: " + std::strerror(errno));
        }
        if (S_ISLNK(st.st_mode))
            throw export_failed("--command",
                                "the command's " + name +
                                    " is a symbolic link; a file is taken from {output} only as a regular file in it");
        if (!S_ISREG(st.st_mode))
            throw export_failed("--command",
                                "the command wrote " + name + " as " + file_kind(st.st_mode) + ", not a regular file");
        if (st.st_nlink == 1) {
            if (::renameat(parent.get(), base.c_str(), AT_FDCWD, to.c_str()) != 0)
                throw io_error(to.string(), "cannot move the command's " + name + ": " + std::strerror(errno));
            return;
        }
        unique_fd in(::openat(parent.get(), base.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        if (!in)
            throw export_failed("--command",
                                "cannot read the command's " + name + " in {output}: " + std::strerror(errno));
        copy_file_hashed("/proc/self/fd/" + std::to_string(in.get()),
                         to);  // the inode opened, whatever the name names now
    }

private:
    /// The directory holding `name` (its last component) opened below {output} component by component.
    std::pair<unique_fd, std::string> locate(const std::string& name) const {
        fs::path rel = fs::path(name).lexically_normal();
        unique_fd dir(::dup(fd_.get()));
        std::string base;
        for (auto it = rel.begin(); it != rel.end(); ++it) {
            if (std::next(it) == rel.end()) {
                base = it->string();
                break;
            }
            if (*it == ".." || it->string().empty() || rel.is_absolute())
                throw usage_error("--onnx-file", "'" + name + "' is not a path inside {output}");
            dir.reset(::openat(dir.get(), it->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!dir)
                throw export_failed("--command", "the command's " + name + " is not inside {output} (" + it->string() +
                                                     " is not a directory in it)");
        }
        if (base.empty() || base == ".." || base == ".")
            throw usage_error("--onnx-file", "'" + name + "' is not a file name inside {output}");
        return {std::move(dir), base};
    }

    fs::path path_;
    unique_fd fd_;
    struct stat created_ {};
};

}  // namespace detail

/// command: the user's command writes into {output}; its model (and model.onnx_data) move into the package.
inline produced_onnx produce_command(const model_source& src, const fs::path& stage, const export_options& opt) {
    produced_onnx out;
    out.shown = "model.onnx written by --command";
    if (opt.command.empty()) throw usage_error("--command", "the command strategy needs --command");
    detail::command_output output(stage / ".command-output");
    std::string cmd = detail::replace_all(opt.command, "{source}", detail::shell_quote(src.dir.string()));
    cmd = detail::replace_all(cmd, "{output}", detail::shell_quote(output.path().string()));
    if (opt.log) opt.log("running: " + cmd);  // the exact command, after substitution
    detail::run_exporter("--command", "/bin/sh", {"-c", cmd}, opt, detail::exporter_kind::command);
    output.check_unchanged();
    output.take(opt.onnx_file.empty() ? "model.onnx" : opt.onnx_file, stage / "model.onnx");
    out.models = {"model.onnx"};
    bool gathered =
        detail::gather_into(out, stage / "model.onnx", files_inside(output.through_descriptor(), out.shown));
    if (!gathered && output.has("model.onnx_data")) {
        output.take("model.onnx_data", stage / "model.onnx_data");
        out.data_files = {"model.onnx_data"};
    }
    out.inputs = detail::source_files(src);
    return out;
}

/// prebuilt: model.onnx (else onnx/model.onnx, or --onnx-file) and its model.onnx_data, copied from the source.
inline produced_onnx produce_prebuilt(const model_source& src, const fs::path& stage, const export_options& opt) {
    produced_onnx out;
    std::vector<std::string> candidates = opt.onnx_file.empty()
                                              ? std::vector<std::string>{"model.onnx", "onnx/model.onnx"}
                                              : std::vector<std::string>{opt.onnx_file};
    std::optional<fs::path> found;
    std::string found_name;
    for (const auto& c : candidates)
        if (!found && (found = src.file(c))) found_name = c;
    if (!found) throw invalid_input(src.dir.string(), "has no " + candidates.front() + " for the prebuilt strategy");
    out.shown = (src.dir / found_name).string();
    out.hashes.remember("model.onnx", copy_file_hashed(*found, stage / "model.onnx").sha256);
    out.models = {"model.onnx"};
    out.inputs.push_back(*found);
    // Beside the model in the source (not beside a cache blob), under the same containment rule.
    const fs::path beside = fs::path(found_name).parent_path();
    auto find = [&](const std::string& location) { return src.file((beside / location).string()); };
    if (detail::gather_into(out, stage / "model.onnx", files_of_source(find, out.shown))) return out;
    if (auto data = find("model.onnx_data")) {
        out.hashes.remember("model.onnx_data", copy_file_hashed(*data, stage / "model.onnx_data").sha256);
        out.data_files = {"model.onnx_data"};
        out.inputs.push_back(*data);
    }
    return out;
}

/// The "produce ONNX" step: runs strategy `how` (never automatic) into `stage`.
/// The reference check of a model the htp exporter did not trace (prebuilt, command): run when the
/// source has torch weights, through the exporter's --check-only mode (export/reference_source.hpp).
inline void check_against_source(produced_onnx& out, const model_source& src, const task_info& task,
                                 const fs::path& stage, const export_options& opt) {
    if (!opt.reference_check)
        out.reference = {"skipped", "--no-reference-check", json::object()};
    else if (!has_torch_weights(src))
        out.reference = reference_check::not_run("the source has no torch weights to compare with");
    else if (!task.encoder_decoder.empty())
        out.reference = reference_check::not_run("a single model.onnx of an encoder-decoder task");
    else {
        reference_outcome o =
            compare_with_source(stage / out.models.front(), task, src, {opt.python, opt.exporter_script, opt.timeout});
        if (!o.mismatch.empty())
            throw reference_mismatch(out.shown, o.mismatch,
                                     "the model does not compute the source's torch weights; --atol raises the "
                                     "tolerance, --no-reference-check skips the check");
        out.reference = o.record;
    }
}

MODELEXPORT_ENTRY produced_onnx produce_onnx(strategy how, const model_source& src, const task_info& task,
                                             const fs::path& stage, const export_options& opt);

#if MODELEXPORT_DEFINES(PRODUCE)
MODELEXPORT_ENTRY produced_onnx produce_onnx(strategy how, const model_source& src, const task_info& task,
                                             const fs::path& stage, const export_options& opt) {
    produced_onnx out;
    switch (how) {
        case strategy::htp:
            return task.encoder_decoder.empty() ? produce_htp(src, task, stage, opt)
                                                : produce_htp_seq2seq(src, task, stage, opt);
        case strategy::command:
            out = produce_command(src, stage, opt);
            break;
        case strategy::prebuilt:
            out = produce_prebuilt(src, stage, opt);
            break;
        default:
            throw usage_error("--strategy", "no strategy chosen (call choose_strategy first)");
    }
    check_against_source(out, src, task, stage, opt);
    return out;
}
#endif

/// What the export step says it is doing, for progress.
inline std::string describe(strategy how, const export_options& opt) {
    return how == strategy::htp       ? "running the torch exporter (" + opt.python + ")"
           : how == strategy::command ? "running the export command"
                                      : "copying the prebuilt ONNX model";
}

}  // namespace modelexport
